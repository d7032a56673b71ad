/**
 * A hash-chained, append-only audit log on a LevelDB (sub)level, shared by the node and the
 * coordinator. Each record carries the hash of its predecessor, so editing, reordering or deleting
 * a record in the middle breaks the chain and `verify()` names the first broken sequence number.
 * Truncating the tail cannot be detected from the log alone: callers that need that anchor `head()`
 * somewhere else (e.g. in a signed checkpoint).
 *
 * Fail closed (threats-and-faults I6): every append is synced to disk before it resolves, and a
 * failed write throws InfraError('AuditWriteFailed') so the caller fails the request it audits.
 * Audit order is the sequence number, not the wall clock (F-32).
 *
 * Group commit (issue 17): an append is chained in memory at once (sequence number and hash taken
 * in call order) and queued; one LevelDB batch written with `sync: true` (one fdatasync) carries
 * every record queued while the previous batch was on disk, and each append resolves only after the
 * batch holding it is synced. A LevelDB batch is atomic and batches reach the log in order, so after
 * a crash the log is a prefix of the chain that holds every record that was ever acknowledged.
 * `head()` is the last synced record (what the log can vouch for); `tail()` the last chained one.
 * A deferred append starts no batch of its own: it is chained at once and written with the next
 * one (a signature's decision record rides with the request's own record: one sync, not two).
 * Crash points (common/crash-points.ts): `audit.commit.before` a batch chained and queued, not yet
 * written; `audit.commit.after` the batch synced, no append resolved yet.
 *
 * Entries must be plain JSON (strings, finite numbers, booleans, null, arrays, objects) and must
 * never contain secrets: the log is stored unencrypted.
 */
import { hash as oneShotHash } from 'node:crypto';
import type { AbstractLevel } from 'abstract-level';
import { sha256 } from '@noble/hashes/sha2.js';
import { bytesToHex, utf8ToBytes } from '@noble/hashes/utils.js';
import { InfraError } from '../protocol/errors.ts';
import { crashPoint } from './crash-points.ts';

export type AuditRecord = {
  readonly seq: number;
  /** ISO 8601 wall-clock time of the append; informational only. */
  readonly time: string;
  readonly prevHash: string;
  readonly hash: string;
  readonly entry: Record<string, unknown>;
};

export type AuditVerifyResult = { ok: boolean; count: number; brokenAt?: number };

/** Any `level` database or sublevel; the log always uses utf8 keys and values explicitly. */
export type AuditDb = AbstractLevel<any, any, any>;

/** prevHash of record 1. */
export const GENESIS_HASH = '0'.repeat(64);

const ENC = { keyEncoding: 'utf8', valueEncoding: 'utf8' } as const;
/** `sync` is classic-level's fsync-on-write option (not in abstract-level's types, hence a variable). */
const SYNC_BATCH = { ...ENC, sync: true };
/** At most this many records per synced batch (a burst larger than this takes several syncs). */
const MAX_BATCH = 1024;
/** Longest a deferred record (`append(entry, { defer: true })`) waits for a batch to carry it. */
const DEFER_MS = 100;
const SEQ_DIGITS = 16;
const DEFAULT_LIMIT = 100;
const MAX_LIMIT = 1000;

function seqKey(seq: number): string {
  return String(seq).padStart(SEQ_DIGITS, '0');
}

/**
 * Canonical JSON: object keys sorted, no whitespace. Rejects values JSON cannot represent
 * faithfully (undefined, functions, bigint, non-finite numbers), so the hash covers exactly what
 * is stored.
 */
export function canonicalJson(v: unknown): string {
  // The same text as canonicalJsonByParts, made by one JSON.stringify of a copy whose keys are in
  // sorted order (about twice as fast). V8 orders integer-like keys first whatever their insertion
  // order, so an object with such a key is encoded part by part instead.
  let copy: unknown;
  try {
    copy = sortedCopy(v);
  } catch (e) {
    if (e === INDEX_KEY_FOUND) return canonicalJsonByParts(v);
    throw e;
  }
  return JSON.stringify(copy);
}

const INDEX_KEY = /^(?:0|[1-9][0-9]*)$/;
const INDEX_KEY_FOUND = Symbol('index key');

/** A copy of `v` whose objects have their keys in sorted order; rejects what canonicalJson rejects. */
function sortedCopy(v: unknown): unknown {
  if (v === null) return null;
  switch (typeof v) {
    case 'string':
    case 'boolean':
      return v;
    case 'number':
      if (!Number.isFinite(v)) throw new TypeError('non-finite number');
      return v;
    case 'object': {
      if (Array.isArray(v)) {
        const out: unknown[] = new Array(v.length);
        for (let i = 0; i < v.length; i++) out[i] = sortedCopy(v[i]);
        return out;
      }
      const proto = Object.getPrototypeOf(v);
      if (proto !== Object.prototype && proto !== null) throw new TypeError('not a plain object');
      const o = v as Record<string, unknown>;
      const keys = Object.keys(o).sort();
      // No prototype: a key `__proto__` is an own property like any other.
      const out: Record<string, unknown> = Object.create(null);
      for (let i = 0; i < keys.length; i++) {
        const k = keys[i]!;
        if (INDEX_KEY.test(k)) throw INDEX_KEY_FOUND;
        out[k] = sortedCopy(o[k]);
      }
      return out;
    }
    default:
      throw new TypeError(`cannot encode ${typeof v}`);
  }
}

/** Canonical JSON built part by part: the reference for canonicalJson (test/request-check-fast). */
export function canonicalJsonByParts(v: unknown): string {
  if (v === null) return 'null';
  switch (typeof v) {
    case 'string':
    case 'boolean':
      return JSON.stringify(v);
    case 'number':
      if (!Number.isFinite(v)) throw new TypeError('non-finite number');
      return JSON.stringify(v);
    case 'object': {
      // Loops, not map/join: this runs for every audit record, on every node and the coordinator.
      if (Array.isArray(v)) {
        let out = '[';
        for (let i = 0; i < v.length; i++) out += (i === 0 ? '' : ',') + canonicalJsonByParts(v[i]);
        return `${out}]`;
      }
      const proto = Object.getPrototypeOf(v);
      if (proto !== Object.prototype && proto !== null) throw new TypeError('not a plain object');
      const o = v as Record<string, unknown>;
      const keys = Object.keys(o).sort();
      let out = '{';
      for (let i = 0; i < keys.length; i++) {
        const k = keys[i]!;
        out += `${i === 0 ? '' : ','}${JSON.stringify(k)}:${canonicalJsonByParts(o[k])}`;
      }
      return `${out}}`;
    }
    default:
      throw new TypeError(`cannot encode ${typeof v}`);
  }
}

/** hash = SHA-256(prevHash ‖ "\n" ‖ canonicalJson({seq, time, entry})), hex. */
export function auditHash(
  prevHash: string,
  seq: number,
  time: string,
  entry: Record<string, unknown>,
): string {
  return bytesToHex(sha256(utf8ToBytes(`${prevHash}\n${canonicalJson({ seq, time, entry })}`)));
}

const HASH_RE = /^[0-9a-f]{64}$/;

/** Parses a stored value; returns undefined if it is not a well-formed record (hash not checked here). */
function parseRecord(raw: string): AuditRecord | undefined {
  let v: unknown;
  try {
    v = JSON.parse(raw);
  } catch {
    return undefined;
  }
  if (typeof v !== 'object' || v === null || Array.isArray(v)) return undefined;
  const r = v as Record<string, unknown>;
  if (!Number.isSafeInteger(r['seq']) || (r['seq'] as number) < 1) return undefined;
  if (typeof r['time'] !== 'string') return undefined;
  if (typeof r['prevHash'] !== 'string' || !HASH_RE.test(r['prevHash'])) return undefined;
  if (typeof r['hash'] !== 'string' || !HASH_RE.test(r['hash'])) return undefined;
  const e = r['entry'];
  if (typeof e !== 'object' || e === null || Array.isArray(e)) return undefined;
  return {
    seq: r['seq'] as number,
    time: r['time'],
    prevHash: r['prevHash'],
    hash: r['hash'],
    entry: e as Record<string, unknown>,
  };
}

/**
 * The record an append resolves to. Its `entry` is the canonical copy (parsed from the canonical
 * JSON that was hashed and stored, so it is exactly what is read back), parsed on first access
 * only: most callers never read it, and the parse is a copy per record.
 */
function auditRecord(seq: number, time: string, prevHash: string, hash: string, ce: string): AuditRecord {
  let entry: Record<string, unknown> | undefined;
  return {
    seq,
    time,
    prevHash,
    hash,
    get entry(): Record<string, unknown> {
      entry ??= JSON.parse(ce) as Record<string, unknown>;
      return entry;
    },
  };
}

const logs = new WeakMap<object, Promise<AuditLog>>();

/** A link of the chain: a record's sequence number and hash (`{0, GENESIS_HASH}` before record 1). */
export type AuditLink = { seq: number; hash: string };

/** An entry, or a function of the record it will follow (for entries that name their predecessor). */
export type AuditEntry = Record<string, unknown> | ((prev: AuditLink) => Record<string, unknown>);

type Queued = {
  readonly key: string;
  readonly value: string;
  readonly record: AuditRecord;
  readonly resolve: (r: AuditRecord) => void;
  readonly reject: (e: unknown) => void;
};

export class AuditLog {
  readonly #db: AuditDb;
  readonly #now: () => Date;
  /** The last record known synced: what `head()` answers. */
  #synced: AuditLink;
  /** The last record chained (synced or queued): the next record's predecessor. */
  #tail: AuditLink;
  /** Chained records waiting for the next synced batch, in sequence order. */
  #queue: Queued[] = [];
  /** Whether a batch is being written (appends meanwhile wait for the next one). */
  #flushing = false;
  /** Set after a failed write: the in-memory chain may no longer match disk, so refuse further appends. */
  #broken = false;
  /** The timer that writes deferred records no later append has carried. */
  #deferred: ReturnType<typeof setTimeout> | undefined;

  private constructor(db: AuditDb, seq: number, head: string, now: () => Date) {
    this.#db = db;
    this.#synced = { seq, hash: head };
    this.#tail = { seq, hash: head };
    this.#now = now;
  }

  /**
   * Opens the log stored in `db` (which must already be, or become, open). Returns the same instance
   * for the same `db` object, so two callers in one process never fork the chain. The db must not be
   * written by another process (LevelDB's lock already prevents that).
   */
  static open(db: AuditDb, opts: { now?: () => Date } = {}): Promise<AuditLog> {
    const existing = logs.get(db);
    if (existing) return existing;
    const p = AuditLog.#load(db, opts.now ?? (() => new Date()));
    logs.set(db, p);
    p.catch(() => logs.delete(db));
    return p;
  }

  static async #load(db: AuditDb, now: () => Date): Promise<AuditLog> {
    try {
      if (db.status === 'opening' || db.status === 'closed') await db.open();
      let last: AuditRecord | undefined;
      for await (const [k, raw] of db.iterator({ ...ENC, reverse: true, limit: 1 })) {
        last = parseRecord(raw as string);
        if (!last || seqKey(last.seq) !== k) {
          throw new InfraError('StorageError', `audit log: last record ${String(k)} is malformed`);
        }
      }
      return new AuditLog(db, last?.seq ?? 0, last?.hash ?? GENESIS_HASH, now);
    } catch (e) {
      if (e instanceof InfraError) throw e;
      throw new InfraError('StorageError', 'audit log: cannot read the log', { cause: e });
    }
  }

  /** The last synced sequence number and hash: an anchor for detecting truncation. */
  head(): AuditLink {
    return { ...this.#synced };
  }

  /** False once a write failed: every later append is refused (AuditWriteFailed). */
  get writable(): boolean {
    return !this.#broken;
  }

  /** The last chained record, synced or still waiting for its batch (>= `head()`). */
  tail(): AuditLink {
    return { ...this.#tail };
  }

  /**
   * Appends an entry; resolves once the batch holding it is synced to disk. The record's place in
   * the chain is fixed by call order, synchronously. Rejects with InfraError('AuditWriteFailed').
   * `defer`: no batch is started for it; it rides with the next append's batch (or one started
   * after DEFER_MS at the latest): for a record whose caller answers only after a later record of
   * its own is synced, which then covers both (batches reach the disk in chain order).
   */
  append(entry: AuditEntry, opts: { defer?: boolean } = {}): Promise<AuditRecord> {
    if (this.#broken) {
      return Promise.reject(
        new InfraError('AuditWriteFailed', 'audit log: a previous write failed; reopen the store'),
      );
    }
    const prev = this.#tail;
    const seq = prev.seq + 1;
    const time = this.#now().toISOString();
    let hash: string;
    let value: string;
    let ce: string;
    try {
      const e = typeof entry === 'function' ? entry({ ...prev }) : entry;
      // The entry's canonical JSON, made once: the hashed text is canonicalJson({seq, time, entry})
      // and the stored value canonicalJson({seq, time, prevHash, hash, entry}), keys in sorted order
      // (what auditHash and verify() compute).
      ce = canonicalJson(e);
      const t = JSON.stringify(time);
      // One-shot hash (no Hash object per record); the string is hashed as UTF-8.
      hash = oneShotHash('sha256', `${prev.hash}\n{"entry":${ce},"seq":${seq},"time":${t}}`, 'hex');
      // Store a canonical copy so what is read back is exactly what was hashed.
      value = `{"entry":${ce},"hash":"${hash}","prevHash":"${prev.hash}","seq":${seq},"time":${t}}`;
    } catch (e) {
      // Nothing chained: a rejected entry does not consume a sequence number.
      return Promise.reject(
        new InfraError('AuditWriteFailed', 'audit log: entry is not plain JSON', { cause: e }),
      );
    }
    this.#tail = { seq, hash };
    const record = auditRecord(seq, time, prev.hash, hash, ce);
    return new Promise<AuditRecord>((resolve, reject) => {
      this.#queue.push({ key: seqKey(seq), value, record, resolve, reject });
      if (opts.defer) this.#flushLater();
      else this.#flushNow();
    });
  }

  #flushNow(): void {
    if (this.#deferred !== undefined) {
      clearTimeout(this.#deferred);
      this.#deferred = undefined;
    }
    if (this.#flushing) return;
    this.#flushing = true;
    // A microtask, not a timer: appends made in the same tick join the first batch, and a lone
    // append waits for nothing but its own sync.
    queueMicrotask(() => void this.#flush());
  }

  /** A deferred record is written by the next batch, or by one started after DEFER_MS. */
  #flushLater(): void {
    if (this.#flushing || this.#deferred !== undefined) return;
    this.#deferred = setTimeout(() => {
      this.#deferred = undefined;
      this.#flushNow();
    }, DEFER_MS);
    this.#deferred.unref?.();
  }

  /** Writes queued records, one synced batch at a time, until the queue is empty. */
  async #flush(): Promise<void> {
    while (this.#queue.length > 0) {
      const batch = this.#queue.splice(0, MAX_BATCH);
      crashPoint('audit.commit.before');
      try {
        await this.#db.batch(
          batch.map((q) => ({ type: 'put' as const, key: q.key, value: q.value })),
          SYNC_BATCH,
        );
      } catch (e) {
        // We cannot know whether the batch reached disk; stop appending rather than fork the chain.
        this.#broken = true;
        const err = new InfraError('AuditWriteFailed', 'audit log: write failed', { cause: e });
        for (const q of [...batch, ...this.#queue.splice(0)]) q.reject(err);
        break;
      }
      crashPoint('audit.commit.after');
      const last = batch[batch.length - 1]!.record;
      this.#synced = { seq: last.seq, hash: last.hash };
      for (const q of batch) q.resolve(q.record);
    }
    this.#flushing = false;
  }

  /**
   * Records with seq > `after`, oldest first, optionally only those whose `entry.keyId` equals
   * `keyId`, at most `limit` (default 100, max 1000). A malformed record is a StorageError.
   */
  async list(opts: { after?: number; keyId?: string; limit?: number } = {}): Promise<AuditRecord[]> {
    const limit = Math.min(Math.max(1, Math.floor(opts.limit ?? DEFAULT_LIMIT)), MAX_LIMIT);
    const after = Math.max(0, Math.floor(opts.after ?? 0));
    const out: AuditRecord[] = [];
    try {
      for await (const [k, raw] of this.#db.iterator({ ...ENC, gt: seqKey(after) })) {
        const r = parseRecord(raw as string);
        if (!r || seqKey(r.seq) !== k) {
          throw new InfraError('StorageError', `audit log: record ${String(k)} is malformed`);
        }
        if (opts.keyId !== undefined && r.entry['keyId'] !== opts.keyId) continue;
        out.push(r);
        if (out.length >= limit) break;
      }
    } catch (e) {
      if (e instanceof InfraError) throw e;
      throw new InfraError('StorageError', 'audit log: cannot read the log', { cause: e });
    }
    return out;
  }

  /**
   * Records with seq < `before` (default: all), NEWEST first, at most `limit` (max 1000): for
   * callers that need the recent tail (a node rebuilding its replay cache at start).
   */
  async recent(opts: { before?: number; limit?: number } = {}): Promise<AuditRecord[]> {
    const limit = Math.min(Math.max(1, Math.floor(opts.limit ?? DEFAULT_LIMIT)), MAX_LIMIT);
    const range = opts.before === undefined ? {} : { lt: seqKey(Math.max(0, Math.floor(opts.before))) };
    const out: AuditRecord[] = [];
    try {
      for await (const [k, raw] of this.#db.iterator({ ...ENC, ...range, reverse: true, limit })) {
        const r = parseRecord(raw as string);
        if (!r || seqKey(r.seq) !== k) {
          throw new InfraError('StorageError', `audit log: record ${String(k)} is malformed`);
        }
        out.push(r);
      }
    } catch (e) {
      if (e instanceof InfraError) throw e;
      throw new InfraError('StorageError', 'audit log: cannot read the log', { cause: e });
    }
    return out;
  }

  /**
   * Walks the whole chain: sequence numbers contiguous from 1, each prevHash equal to the previous
   * hash, each hash recomputed. `brokenAt` is the first sequence number that fails.
   */
  async verify(): Promise<AuditVerifyResult> {
    let expectSeq = 1;
    let prev = GENESIS_HASH;
    try {
      for await (const [k, raw] of this.#db.iterator(ENC)) {
        const r = parseRecord(raw as string);
        if (
          !r ||
          r.seq !== expectSeq ||
          seqKey(r.seq) !== k ||
          r.prevHash !== prev ||
          auditHash(r.prevHash, r.seq, r.time, r.entry) !== r.hash
        ) {
          return { ok: false, count: expectSeq - 1, brokenAt: expectSeq };
        }
        prev = r.hash;
        expectSeq++;
      }
    } catch (e) {
      throw new InfraError('StorageError', 'audit log: cannot read the log', { cause: e });
    }
    return { ok: true, count: expectSeq - 1 };
  }
}
