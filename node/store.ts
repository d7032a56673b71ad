/**
 * The node's LevelDB store (`level` / classic-level): sealed identity, key records, epoch records,
 * sealed shares per epoch, the used-session set, the audit log and the software sealer's keys.
 *
 * Crash safety (threats-and-faults I5, F-01..F-06, F-12): every write that must survive a crash is
 * synced (`sync: true`, fsync before the write resolves), and related writes go in ONE atomic batch
 * (a pending epoch with its share; activation with the deletion of older epochs), so a crash leaves
 * the old epoch or the new one, never a mix. Which epoch transitions are allowed is decided by
 * protocol/epoch.ts alone (propose, activate, abort, repaired): the store reads a key's records into
 * its state, applies the transition and persists the result in the unchanged record format (a
 * pending record written before records named their session cannot be activated: its certificate
 * cannot be checked, so it stays pending until abort-epoch). After any failed write the store refuses further writes
 * (LevelDB latches background errors until reopen) and reports itself unhealthy.
 *
 * Failure modes: a second open of the same directory (this or another process) is
 * InfraError('StoreLocked'); a corrupt database is InfraError('StorageError') and is never repaired
 * silently (F-14, F-16); every record is validated on read and a bad one is a StorageError naming its
 * key, never used (F-15). Shares are stored only as sealed blobs; nothing here sees plaintext.
 *
 * Layout (sublevels of one database, utf8 keys): `meta` (identity), `keys` (keyId -> JSON),
 * `epochs` and `shares` (`<keyId>!<epoch, 12 digits>`), `sessions` (sessionId -> ISO time),
 * `audit` (AuditLog), `sealer` (software sealer key store), `scopes` (sealer scopes still to
 * destroy, and PKCS#11 scope tombstones), `governance` (the chain of governance versions this node
 * accepted, by version: node/governance-store.ts).
 */
import { existsSync, readdirSync } from 'node:fs';
import { mkdir } from 'node:fs/promises';
import type { AbstractLevel } from 'abstract-level';
import { Level } from 'level';
import type { FrostPublic } from '@noble/curves/abstract/frost.js';
import { fromHex } from '../protocol/bytes.ts';
import {
  abort,
  activate,
  type EpochRecord,
  initialEpochState,
  type KeyEpochState,
  type NewKeyState,
  propose,
  proposeFirst,
  repaired,
} from '../protocol/epoch.ts';
import { InfraError, StateError } from '../protocol/errors.ts';
import type { Epoch, KeyId, SessionId } from '../protocol/ids.ts';
import { type PublicPackageHex, publicFromHex } from '../protocol/packages.ts';
import { NODE_KEY_STATES, type NodeKeyState } from '../protocol/key-states.ts';
import { ALL_KEY_SPECS, type KeySpecName, keySpec } from '../protocol/suites.ts';
import { certFromHex } from '../net/certificate.ts';
import type { ScopeTombstones } from './sealer.ts';
import { levelSealerKeyStore, type SealerKeyStore } from './sealer-software.ts';

/** The states a node stores (protocol/key-states.ts: the one table the coordinator uses too). */
export type KeyState = NodeKeyState;
const KEY_STATES: readonly KeyState[] = NODE_KEY_STATES;

export type KeyRecordStored = {
  keyId: string;
  keySpec: KeySpecName;
  state: KeyState;
  /** Absent until the first epoch (DKG) is activated, and after destroyKey. */
  activeEpoch?: number;
  pendingEpoch?: number;
  /**
   * Set when a DKG's epoch 0 is activated, cleared by the coordinator's `confirm-key` once every
   * member agreed (C-1): until then the key neither signs nor runs key events, and may be dropped
   * at once. Absent = confirmed (records written before this field existed, and every later key).
   */
  unconfirmed?: true;
};
/** Aliases kept for callers written against the first draft of this file. */
export type KeyRecord = KeyRecordStored;
export type { NodeKeyState };

/** A success certificate as stored: FROST participant id (hex) -> confirmation {R, z} (hex). */
export type StoredCertificate = Record<string, { R: string; z: string }>;

export type EpochRecordStored = {
  keyId: string;
  keySpec: KeySpecName;
  epoch: number;
  threshold: number;
  /** Node ids of the members of this epoch. */
  participants: string[];
  /** This node's FROST participant identifier (hex). */
  participant: string;
  public: PublicPackageHex;
  /** Hex; may be empty until the certificate arrives. */
  transcriptHash: string;
  status: 'pending' | 'active';
  /** Session that made the epoch (certificates bind it). */
  sessionId?: string;
  /** Set on activation. */
  certificate?: StoredCertificate;
};

/** A reshare this node dealt in while leaving the committee: the only one its `retire` accepts. */
export type DealtRecord = {
  epoch: number;
  sessionId: string;
  /** Hex. */
  transcriptHash: string;
  /** protocol/package-proof.ts packageDigest of the new epoch's package. */
  publicDigest: string;
};

function validDealt(v: unknown): v is DealtRecord {
  return (
    isObj(v) &&
    isEpochNum(v['epoch']) &&
    typeof v['sessionId'] === 'string' &&
    ID_RE.test(v['sessionId']) &&
    typeof v['transcriptHash'] === 'string' &&
    HEX_RE.test(v['transcriptHash']) &&
    typeof v['publicDigest'] === 'string' &&
    HEX_RE.test(v['publicDigest'])
  );
}

function validCustody(v: unknown): v is { chainCode: string; merkleRoot: string | null } {
  return (
    isObj(v) &&
    typeof v['chainCode'] === 'string' &&
    /^[0-9a-f]{64}$/.test(v['chainCode']) &&
    (v['merkleRoot'] === null ||
      (typeof v['merkleRoot'] === 'string' && /^[0-9a-f]{64}$/.test(v['merkleRoot'])))
  );
}

/** A sublevel of the store (any encodings), exposed for AuditLog and the software sealer. */
type AnySublevel = AbstractLevel<any, any, any>;

const UTF8 = { keyEncoding: 'utf8', valueEncoding: 'utf8' } as const;
const BYTES = { keyEncoding: 'utf8', valueEncoding: 'view' } as const;
/** classic-level's fsync option; a variable because abstract-level's option types omit it. */
const SYNC = { sync: true };
const ID_RE = /^[A-Za-z0-9._:-]{1,128}$/;
const HEX_RE = /^(?:[0-9a-f]{2})*$/;
const EPOCH_DIGITS = 12;
/**
 * Session ids are kept a day: a restarted node must refuse every session that may still run on its
 * peers, and none runs longer than its timeout (node/config.ts caps it at 10 min), so 144 of the
 * longest timeouts pass before an id is forgotten. A wall clock stepped forward by more than a day
 * could forget a live id early; one stepped back only keeps ids longer.
 */
export const SESSION_ID_RETENTION_MS = 24 * 3600 * 1000;
/** Every this many recorded ids, one bounded pass over the oldest-visited ids prunes expired ones. */
const SESSION_PRUNE_EVERY = 256;
/** Ids examined by one pass (4 per recorded id: a full round never lags far behind the writes). */
const SESSION_PRUNE_BATCH = 1024;

function checkId(what: string, id: string): void {
  if (typeof id !== 'string' || !ID_RE.test(id)) {
    throw new InfraError('ValidationError', `${what} must match ${ID_RE.source}`);
  }
}

const SCOPE_RE = /^[A-Za-z0-9._:-]{1,128}(?:\/[0-9]{1,12})?$/;

function checkScope(scope: string): void {
  if (typeof scope !== 'string' || !SCOPE_RE.test(scope)) {
    throw new InfraError('ValidationError', 'a sealer scope is `identity` or `<keyId>/<epoch>`');
  }
}

function checkEpoch(epoch: number): void {
  if (!Number.isSafeInteger(epoch) || epoch < 0 || epoch >= 10 ** EPOCH_DIGITS) {
    throw new InfraError('ValidationError', 'epoch must be a non-negative integer');
  }
}

const epochKey = (keyId: string, epoch: number) => `${keyId}!${String(epoch).padStart(EPOCH_DIGITS, '0')}`;

// ---- validation on read -------------------------------------------------------------------

function isObj(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function isEpochNum(v: unknown): v is number {
  return Number.isSafeInteger(v) && (v as number) >= 0;
}

function isKeySpec(v: unknown): v is KeySpecName {
  return typeof v === 'string' && (ALL_KEY_SPECS as readonly string[]).includes(v);
}

function validCertificate(v: unknown): v is StoredCertificate {
  return (
    isObj(v) &&
    Object.entries(v).every(
      ([k, c]) =>
        HEX_RE.test(k) &&
        isObj(c) &&
        typeof c['R'] === 'string' &&
        HEX_RE.test(c['R']) &&
        typeof c['z'] === 'string' &&
        HEX_RE.test(c['z']),
    )
  );
}

function validKeyRecord(v: unknown, keyId: string): v is KeyRecordStored {
  return (
    isObj(v) &&
    v['keyId'] === keyId &&
    isKeySpec(v['keySpec']) &&
    KEY_STATES.includes(v['state'] as KeyState) &&
    (v['activeEpoch'] === undefined || isEpochNum(v['activeEpoch'])) &&
    (v['pendingEpoch'] === undefined || isEpochNum(v['pendingEpoch'])) &&
    (v['unconfirmed'] === undefined || v['unconfirmed'] === true)
  );
}

function validPublic(v: unknown): v is PublicPackageHex {
  return (
    isObj(v) &&
    Number.isSafeInteger(v['min']) &&
    Number.isSafeInteger(v['max']) &&
    Array.isArray(v['commitments']) &&
    v['commitments'].every((c) => typeof c === 'string' && HEX_RE.test(c)) &&
    isObj(v['verifyingShares']) &&
    Object.entries(v['verifyingShares']).every(
      ([k, s]) => HEX_RE.test(k) && typeof s === 'string' && HEX_RE.test(s),
    )
  );
}

function validEpochRecord(v: unknown, keyId: string, epoch: number): v is EpochRecordStored {
  return (
    isObj(v) &&
    v['keyId'] === keyId &&
    v['epoch'] === epoch &&
    isKeySpec(v['keySpec']) &&
    Number.isSafeInteger(v['threshold']) &&
    (v['threshold'] as number) >= 1 &&
    Array.isArray(v['participants']) &&
    v['participants'].every((p) => typeof p === 'string') &&
    typeof v['participant'] === 'string' &&
    HEX_RE.test(v['participant']) &&
    validPublic(v['public']) &&
    typeof v['transcriptHash'] === 'string' &&
    HEX_RE.test(v['transcriptHash']) &&
    (v['status'] === 'pending' || v['status'] === 'active') &&
    (v['sessionId'] === undefined || typeof v['sessionId'] === 'string') &&
    (v['certificate'] === undefined || validCertificate(v['certificate']))
  );
}

/**
 * A stored epoch record as protocol/epoch.ts sees it: its package decoded. A stored package that
 * does not decode is a StorageError naming the record; one handed in by a caller is refused
 * (ValidationError) before anything is written.
 */
function epochRecordOf(r: EpochRecordStored, from: 'stored' | 'caller'): EpochRecord {
  let pub: FrostPublic;
  try {
    pub = publicFromHex(keySpec(r.keySpec), r.public);
  } catch (e) {
    const key = epochKey(r.keyId, r.epoch);
    if (from === 'caller') {
      throw new InfraError('ValidationError', `epoch record for ${key} has an invalid package`, { cause: e });
    }
    throw new InfraError('StorageError', `epoch record ${key} holds an invalid package`, {
      cause: e,
      details: { key: `epochs!${key}` },
    });
  }
  return {
    epoch: r.epoch as Epoch,
    public: pub,
    ...(r.transcriptHash ? { transcriptHash: fromHex(r.transcriptHash) } : {}),
    ...(r.sessionId ? { sessionId: r.sessionId as SessionId } : {}),
  };
}

/** The key record that stores `state` (protocol/epoch.ts) for key `k`. */
function keyRecordOf(
  k: Pick<KeyRecordStored, 'keyId' | 'keySpec' | 'state' | 'unconfirmed'>,
  state: KeyEpochState | NewKeyState,
): KeyRecordStored {
  return {
    keyId: k.keyId,
    keySpec: k.keySpec,
    state: k.state,
    ...(state.active ? { activeEpoch: state.active.epoch } : {}),
    ...(state.pending ? { pendingEpoch: state.pending.epoch } : {}),
    ...(k.unconfirmed ? { unconfirmed: true as const } : {}),
  };
}

/** Strips undefined optionals so JSON and `exactOptionalPropertyTypes` agree. */
function clean<T extends object>(o: T): T {
  return JSON.parse(JSON.stringify(o)) as T;
}

// ---- the store -----------------------------------------------------------------------------

export class NodeStore {
  readonly dir: string;
  readonly #db: Level<string, string>;
  readonly #meta: AnySublevel;
  readonly #keys: AnySublevel;
  readonly #epochs: AnySublevel;
  readonly #shares: AnySublevel;
  readonly #sessions: AnySublevel;
  readonly #audit: AnySublevel;
  readonly #sealer: AnySublevel;
  /** Sealer scopes: `pending!<scope>` still to destroy (L-3), `tomb!<scope>` destroyed for good. */
  readonly #scopes: AnySublevel;
  /** Governance versions (12-digit version -> JSON of the accepted document and its signatures). */
  readonly #governance: AnySublevel;
  /** Read-modify-write operations run one at a time. */
  #tail: Promise<unknown> = Promise.resolve();
  #failed: unknown;
  /**
   * The key count, kept until a write touches a key record: the `status` RPC (every coordinator
   * probe and reconcile page) asks it, and counting scans every key (issue 17, scale).
   */
  #keyCount: number | undefined;
  /** Writes that touched key records so far: a count scanned across one of them is not kept. */
  #keyWrites = 0;

  private constructor(dir: string, db: Level<string, string>) {
    this.dir = dir;
    this.#db = db;
    this.#meta = db.sublevel('meta');
    this.#keys = db.sublevel('keys');
    this.#epochs = db.sublevel('epochs');
    this.#shares = db.sublevel('shares');
    this.#sessions = db.sublevel('sessions');
    this.#audit = db.sublevel('audit');
    this.#sealer = db.sublevel('sealer');
    this.#scopes = db.sublevel('scopes');
    this.#governance = db.sublevel('governance');
  }

  /**
   * Opens (creating if new) the store in `dir`. StoreLocked if another process or another open
   * in this process holds it; StorageError if it is corrupt or damaged (never repaired here).
   */
  static async open(dir: string): Promise<NodeStore> {
    try {
      await mkdir(dir, { recursive: true, mode: 0o700 });
    } catch (e) {
      throw new InfraError('StorageError', `cannot create the data directory ${dir}`, { cause: e });
    }
    // An existing database missing its CURRENT file would otherwise be silently re-created empty.
    const files = readdirSync(dir);
    const hasCurrent = existsSync(`${dir}/CURRENT`);
    if (!hasCurrent && files.some((f) => /^(MANIFEST-\d+|\d+\.(log|ldb|sst))$/.test(f))) {
      throw new InfraError(
        'StorageError',
        `the store in ${dir} is damaged (CURRENT is missing); refusing to repair it`,
      );
    }
    const db = new Level<string, string>(dir, { createIfMissing: !hasCurrent, errorIfExists: false });
    try {
      await db.open();
    } catch (e) {
      const cause = (e as { cause?: { code?: string } }).cause;
      const code = cause?.code ?? (e as { code?: string }).code;
      if (code === 'LEVEL_LOCKED') {
        throw new InfraError(
          'StoreLocked',
          `the store in ${dir} is in use by another process (or already open); stop it first`,
          {
            cause: e,
          },
        );
      }
      if (code === 'LEVEL_CORRUPTION') {
        throw new InfraError(
          'StorageError',
          `the store in ${dir} is corrupt; refusing to repair it (restore from backup)`,
          {
            cause: e,
          },
        );
      }
      throw new InfraError('StorageError', `cannot open the store in ${dir}`, { cause: e });
    }
    return new NodeStore(dir, db);
  }

  async close(): Promise<void> {
    await this.#tail.catch(() => undefined);
    await this.#db.close();
  }

  /** False after a failed write: the node should report unhealthy and restart (F-12). */
  healthy(): boolean {
    return this.#failed === undefined && this.#db.status === 'open';
  }

  /** Sublevel for the node's AuditLog. */
  auditDb(): AnySublevel {
    return this.#audit;
  }

  /** Sublevel for the software sealer's params and wrapped scope keys. */
  sealerDb(): AnySublevel {
    return this.#sealer;
  }

  sealerKeyStore(): SealerKeyStore {
    return levelSealerKeyStore(this.#sealer);
  }

  // ---- low-level helpers -------------------------------------------------------------------

  #serial<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.#tail.then(fn);
    this.#tail = run.catch(() => undefined);
    return run;
  }

  async #read<T>(what: string, fn: () => Promise<T>): Promise<T> {
    try {
      return await fn();
    } catch (e) {
      if (e instanceof InfraError || e instanceof StateError) throw e;
      throw new InfraError('StorageError', `cannot read ${what}`, { cause: e });
    }
  }

  async #write(what: string, ops: any[]): Promise<void> {
    if (this.#failed !== undefined) {
      throw new InfraError(
        'StorageError',
        `store is unhealthy after a failed write; restart the node (${what})`,
      );
    }
    const touchesKeys = ops.some((o) => o.sublevel === this.#keys);
    try {
      await this.#db.batch(ops, SYNC);
      if (touchesKeys) {
        this.#keyWrites++;
        this.#keyCount = undefined;
      }
    } catch (e) {
      this.#failed = e;
      const disk = /no space|ENOSPC|disk full/i.test(
        String((e as Error)?.message ?? '') + String((e as { cause?: Error })?.cause?.message ?? ''),
      );
      throw new InfraError(
        'StorageError',
        `write failed (${what})${disk ? ': disk full' : ''}; nothing was written`,
        {
          cause: e,
          details: { reason: disk ? 'disk-full' : 'io' },
        },
      );
    }
  }

  async #getJson(sub: AnySublevel, key: string, what: string): Promise<unknown> {
    const raw = (await sub.get(key, UTF8)) as string | undefined;
    if (raw === undefined) return undefined;
    try {
      return JSON.parse(raw);
    } catch {
      throw new InfraError('StorageError', `${what} is corrupt (not JSON)`, { details: { key: what } });
    }
  }

  // ---- identity ----------------------------------------------------------------------------

  /** The sealed libp2p private key, if the node has one. */
  async getIdentity(): Promise<Uint8Array | undefined> {
    return this.#read('the identity', async () => {
      const v = (await this.#meta.get('identity', BYTES)) as Uint8Array | undefined;
      return v === undefined ? undefined : new Uint8Array(v);
    });
  }

  async putIdentity(sealed: Uint8Array): Promise<void> {
    return this.#serial(() =>
      this.#write('identity', [
        { type: 'put', sublevel: this.#meta, key: 'identity', value: sealed, ...BYTES },
      ]),
    );
  }

  // ---- keys --------------------------------------------------------------------------------

  async getKey(keyId: string): Promise<KeyRecordStored | undefined> {
    checkId('keyId', keyId);
    return this.#read(`key ${keyId}`, async () => {
      const v = await this.#getJson(this.#keys, keyId, `key record ${keyId}`);
      if (v === undefined) return undefined;
      if (!validKeyRecord(v, keyId)) {
        throw new InfraError('StorageError', `key record ${keyId} is corrupt`, {
          details: { key: `keys!${keyId}` },
        });
      }
      return v;
    });
  }

  /** All key records (including Destroyed tombstones). A corrupt record is a StorageError naming it. */
  async listKeys(): Promise<KeyRecordStored[]> {
    return this.#read('the key list', async () => {
      const out: KeyRecordStored[] = [];
      for await (const [k, raw] of this.#keys.iterator(UTF8)) {
        let v: unknown;
        try {
          v = JSON.parse(raw as string);
        } catch {
          v = undefined;
        }
        if (!validKeyRecord(v, k as string)) {
          throw new InfraError('StorageError', `key record ${String(k)} is corrupt`, {
            details: { key: `keys!${String(k)}` },
          });
        }
        out.push(v);
      }
      return out;
    });
  }

  /**
   * One page of key records in key-id order, after `after` (exclusive), at most `limit`; `more`
   * tells whether records follow. Bounded reads for the status RPC, whatever the key count.
   */
  async keyPage(opts: {
    after?: string;
    limit: number;
  }): Promise<{ records: KeyRecordStored[]; more: boolean }> {
    return this.#read('a key list page', async () => {
      const range = opts.after === undefined ? {} : { gt: opts.after };
      const rows = await this.#keys.iterator({ ...range, limit: opts.limit + 1, ...UTF8 }).all();
      const records = rows.slice(0, opts.limit).map(([k, raw]) => {
        let v: unknown;
        try {
          v = JSON.parse(raw as string);
        } catch {
          v = undefined;
        }
        if (!validKeyRecord(v, k as string)) {
          throw new InfraError('StorageError', `key record ${String(k)} is corrupt`, {
            details: { key: `keys!${String(k)}` },
          });
        }
        return v;
      });
      return { records, more: rows.length > opts.limit };
    });
  }

  /** The number of key records (including Destroyed tombstones); reads keys only. */
  async countKeys(): Promise<number> {
    if (this.#keyCount !== undefined) return this.#keyCount;
    const writes = this.#keyWrites;
    const n = await this.#read('the key count', async () => {
      let n = 0;
      for await (const _ of this.#keys.keys()) n++;
      return n;
    });
    if (writes === this.#keyWrites) this.#keyCount = n;
    return n;
  }

  /**
   * Sets a key's state. `check` runs on the current record inside the store's serial section (no
   * other write can slip between it and the write) and throws to refuse (node/key-lifecycle.ts
   * checks the transition table there).
   */
  async setKeyState(
    keyId: string,
    state: KeyState,
    opts: { check?: (current: KeyRecordStored) => void } = {},
  ): Promise<void> {
    checkId('keyId', keyId);
    if (!KEY_STATES.includes(state) || state === 'Destroyed') {
      throw new InfraError(
        'ValidationError',
        'state must be Enabled, Disabled or PendingDeletion (use destroyKey)',
      );
    }
    return this.#serial(async () => {
      const k = await this.getKey(keyId);
      if (!k) throw new StateError('KeyNotFound', `no key ${keyId} on this node`);
      if (k.state === 'Destroyed') throw new StateError('InvalidKeyState', `key ${keyId} is destroyed`);
      if (k.state === state) return;
      opts.check?.(k);
      await this.#write(`key ${keyId} state`, [this.#putKeyOp({ ...k, state })]);
    });
  }

  /**
   * Deletes every epoch record and sealed share of a key, and its custody data, in one synced
   * batch and returns the epochs deleted (the caller destroys their sealer scopes). By default a
   * `Destroyed` tombstone stays, so nothing can recreate the key; `keepTombstone: false` forgets
   * it entirely (a node retired from the committee that may be re-added by a later reshare).
   */
  async destroyKey(
    keyId: string,
    opts: { keepTombstone?: boolean; check?: (current: KeyRecordStored) => void } = {},
  ): Promise<number[]> {
    checkId('keyId', keyId);
    return this.#serial(async () => {
      const k = await this.getKey(keyId);
      if (k) opts.check?.(k);
      const epochs = await this.#epochNumbers(keyId);
      if (!k && epochs.length === 0) return [];
      if (!k && opts.keepTombstone !== false) {
        // Epochs without a key record cannot happen through this API; delete them, no tombstone.
        opts = { keepTombstone: false };
      }
      const ops: any[] = epochs.flatMap((e) => this.#delEpochOps(keyId, e));
      // The epochs' sealer scopes are owed from this same batch on: a crash before the caller
      // destroys them leaves them listed for the retry and the start-up sweep (L-3).
      for (const e of epochs) ops.push(this.#pendingScopeOp(`${keyId}/${e}`));
      // The key's custody data (issue 14) goes with its shares: nothing of a destroyed key remains
      // but its tombstone (a member re-added by a reshare gets it again with the reshare).
      ops.push({ type: 'del', sublevel: this.#meta, key: `custody!${keyId}`, ...UTF8 });
      if (opts.keepTombstone === false) ops.push({ type: 'del', sublevel: this.#keys, key: keyId, ...UTF8 });
      else if (k) ops.push(this.#putKeyOp({ keyId, keySpec: k.keySpec, state: 'Destroyed' }));
      await this.#write(`destroy key ${keyId}`, ops);
      return epochs;
    });
  }

  // ---- sealer scopes (L-3) ------------------------------------------------------------------

  #pendingScopeOp(scope: string) {
    return { type: 'put', sublevel: this.#scopes, key: `pending!${scope}`, value: '1', ...UTF8 };
  }

  /** Records sealer scopes that must still be destroyed (a destroyScope failed), synced. */
  async addPendingScopes(scopes: readonly string[]): Promise<void> {
    if (scopes.length === 0) return;
    for (const s of scopes) checkScope(s);
    return this.#serial(() =>
      this.#write(
        'pending scopes',
        scopes.map((s) => this.#pendingScopeOp(s)),
      ),
    );
  }

  /** Forgets pending scopes once their HSM keys are destroyed (one synced batch). */
  async removePendingScopes(scopes: readonly string[]): Promise<void> {
    if (scopes.length === 0) return;
    for (const s of scopes) checkScope(s);
    return this.#serial(() =>
      this.#write(
        'pending scopes done',
        scopes.map((s) => ({ type: 'del', sublevel: this.#scopes, key: `pending!${s}`, ...UTF8 })),
      ),
    );
  }

  /** Scopes still to destroy, in key order; at most `limit` (bounded work per retry). */
  async pendingScopes(opts: { limit?: number; keyId?: string } = {}): Promise<string[]> {
    const prefix = opts.keyId === undefined ? 'pending!' : `pending!${opts.keyId}/`;
    return this.#read('pending scopes', async () => {
      const out: string[] = [];
      const range = { gt: prefix, lt: `${prefix}\uffff`, limit: opts.limit ?? -1, ...UTF8 };
      for await (const k of this.#scopes.keys(range)) out.push((k as string).slice('pending!'.length));
      return out;
    });
  }

  /**
   * Tombstones of destroyed sealer scopes, for the PKCS#11 sealer (node/sealer-pkcs11.ts): a
   * destroyed scope is never re-created by a later seal. Writes are synced.
   */
  scopeTombstones(): ScopeTombstones {
    return {
      has: (scope) =>
        this.#read(`tombstone ${scope}`, async () => {
          checkScope(scope);
          return (await this.#scopes.get(`tomb!${scope}`, UTF8)) !== undefined;
        }),
      add: (scope) => {
        checkScope(scope);
        return this.#serial(() =>
          this.#write(`tombstone ${scope}`, [
            { type: 'put', sublevel: this.#scopes, key: `tomb!${scope}`, value: '1', ...UTF8 },
          ]),
        );
      },
    };
  }

  // ---- epochs ------------------------------------------------------------------------------

  async getEpoch(keyId: string, epoch: number): Promise<EpochRecordStored | undefined> {
    checkId('keyId', keyId);
    checkEpoch(epoch);
    const key = epochKey(keyId, epoch);
    return this.#read(`epoch ${key}`, async () => {
      const v = await this.#getJson(this.#epochs, key, `epoch record ${key}`);
      if (v === undefined) return undefined;
      if (!validEpochRecord(v, keyId, epoch)) {
        throw new InfraError('StorageError', `epoch record ${key} is corrupt`, {
          details: { key: `epochs!${key}` },
        });
      }
      return v;
    });
  }

  /** The active epoch's record, or undefined if the key has none. */
  async getActiveEpoch(keyId: string): Promise<EpochRecordStored | undefined> {
    const k = await this.getKey(keyId);
    if (!k || k.activeEpoch === undefined) return undefined;
    const r = await this.getEpoch(keyId, k.activeEpoch);
    if (r?.status !== 'active') {
      throw new InfraError(
        'StorageError',
        `key ${keyId} points at active epoch ${k.activeEpoch}, which is missing or not active`,
      );
    }
    return r;
  }

  async getSealedShare(keyId: string, epoch: number): Promise<Uint8Array | undefined> {
    checkId('keyId', keyId);
    checkEpoch(epoch);
    return this.#read(`share ${keyId}/${epoch}`, async () => {
      const v = (await this.#shares.get(epochKey(keyId, epoch), BYTES)) as Uint8Array | undefined;
      return v === undefined ? undefined : new Uint8Array(v);
    });
  }

  /** Epoch numbers with a record or a share, ascending. */
  async listEpochs(keyId: string): Promise<number[]> {
    checkId('keyId', keyId);
    return this.#read(`epochs of ${keyId}`, () => this.#epochNumbers(keyId));
  }

  async #epochNumbers(keyId: string): Promise<number[]> {
    const range = { gt: `${keyId}!`, lt: `${keyId}!~`, ...UTF8 };
    const set = new Set<number>();
    for (const sub of [this.#epochs, this.#shares]) {
      for await (const k of sub.keys(range)) {
        const n = Number((k as string).slice(keyId.length + 1));
        if (Number.isSafeInteger(n)) set.add(n);
      }
    }
    return [...set].sort((a, b) => a - b);
  }

  #putKeyOp(k: KeyRecordStored) {
    return { type: 'put', sublevel: this.#keys, key: k.keyId, value: JSON.stringify(clean(k)), ...UTF8 };
  }

  #putEpochOps(r: EpochRecordStored, sealed: Uint8Array) {
    const key = epochKey(r.keyId, r.epoch);
    return [
      { type: 'put', sublevel: this.#epochs, key, value: JSON.stringify(clean(r)), ...UTF8 },
      { type: 'put', sublevel: this.#shares, key, value: sealed, ...BYTES },
    ];
  }

  #delEpochOps(keyId: string, epoch: number) {
    const key = epochKey(keyId, epoch);
    return [
      { type: 'del', sublevel: this.#epochs, key, ...UTF8 },
      { type: 'del', sublevel: this.#shares, key, ...BYTES },
    ];
  }

  #checkRecord(r: EpochRecordStored, status: 'pending' | 'active', sealed: Uint8Array): void {
    checkId('keyId', r.keyId);
    checkEpoch(r.epoch);
    if (r.status !== status || !validEpochRecord(clean(r), r.keyId, r.epoch)) {
      throw new InfraError('ValidationError', `epoch record for ${r.keyId}/${r.epoch} is malformed`);
    }
    if (!(sealed instanceof Uint8Array) || sealed.length === 0) {
      throw new InfraError('ValidationError', 'sealed share must be non-empty bytes');
    }
  }

  /**
   * The key's epoch state as protocol/epoch.ts models it (packages decoded), read from its key
   * record and its active and pending epoch records; undefined when it holds no epoch. The store
   * changes epochs only through epoch.ts's transitions on this state and persists what they
   * return, so each rule (the epoch moves forward, one pending epoch at a time, the same group
   * element, a complete certificate to activate) is written once, there.
   */
  async #epochState(k: KeyRecordStored): Promise<KeyEpochState | NewKeyState | undefined> {
    const read = async (epoch: number, status: 'active' | 'pending') => {
      const r = await this.getEpoch(k.keyId, epoch);
      if (r?.status !== status) {
        throw new InfraError(
          'StorageError',
          `key ${k.keyId} points at ${status} epoch ${epoch}, which is missing or not ${status}`,
          { details: { key: `epochs!${epochKey(k.keyId, epoch)}` } },
        );
      }
      return epochRecordOf(r, 'stored');
    };
    const keyId = k.keyId as KeyId;
    const pending = k.pendingEpoch === undefined ? undefined : await read(k.pendingEpoch, 'pending');
    if (k.activeEpoch === undefined) return pending && proposeFirst(keyId, k.keySpec, pending);
    const active = await read(k.activeEpoch, 'active');
    const state = initialEpochState(keyId, k.keySpec, active.public, active.epoch);
    return pending ? { ...state, active, pending } : { ...state, active };
  }

  /**
   * Stores a key event's (or DKG's) new epoch as PENDING with its sealed share, in one synced batch
   * with the key record (created, Enabled, if new). protocol/epoch.ts `propose` (or `proposeFirst`
   * for a new key) decides: refused are an epoch not after the active one (EpochMismatch), a second
   * pending epoch and another group element (InvalidKeyState). A new event for the very epoch still
   * pending here replaces it (`abort`, then `propose`): the earlier attempt ended without this node
   * hearing its abort-epoch. Refused by the store itself: another key spec, a destroyed key.
   */
  async putPendingEpoch(
    record: EpochRecordStored,
    sealedShare: Uint8Array,
    custody?: { chainCode: string; merkleRoot: string | null },
  ): Promise<void> {
    this.#checkRecord(record, 'pending', sealedShare);
    if (custody !== undefined && !validCustody(custody))
      throw new InfraError('ValidationError', `custody data of ${record.keyId} is malformed`);
    const proposal = epochRecordOf(record, 'caller');
    return this.#serial(async () => {
      const k = await this.getKey(record.keyId);
      if (k) {
        if (k.state === 'Destroyed')
          throw new StateError('InvalidKeyState', `key ${record.keyId} is destroyed`);
        if (k.keySpec !== record.keySpec)
          throw new StateError('InvalidKeyState', `key ${record.keyId} is ${k.keySpec}`);
      }
      const state = k ? await this.#epochState(k) : undefined;
      const cleared = state && abort(state, proposal.epoch);
      const next = cleared
        ? propose(cleared, proposal)
        : proposeFirst(record.keyId as KeyId, record.keySpec, proposal);
      const key = keyRecordOf(
        {
          keyId: record.keyId,
          keySpec: record.keySpec,
          state: k?.state ?? 'Enabled',
          ...(k?.unconfirmed ? { unconfirmed: true as const } : {}),
        },
        next,
      );
      await this.#write(`pending epoch ${record.keyId}/${record.epoch}`, [
        ...this.#putEpochOps(record, sealedShare),
        this.#putKeyOp(key),
        ...(custody === undefined ? [] : [this.#putCustodyOp(record.keyId, custody)]),
      ]);
    });
  }

  /**
   * Makes a pending epoch active and deletes every older epoch's record and share, all in one
   * synced batch, only with a complete certificate: protocol/epoch.ts `activate` proves it (the
   * package consistent with the key's group element, a valid confirmation from every member over
   * `transcriptHash` and the session the pending record names) and refuses otherwise
   * (ProtocolAborted, the epoch stays pending). Returns the deleted epochs, for the caller to
   * destroy their sealer scopes. Idempotent: an already active epoch returns [].
   * `unconfirmed`: a key's FIRST epoch (a DKG's) is stored marked unconfirmed (KeyRecordStored);
   * ignored for later epochs (a key event on a confirmed key needs no second agreement).
   */
  async activateEpoch(
    keyId: string,
    epoch: number,
    proof: { transcriptHash: string; certificate: StoredCertificate },
    opts: { unconfirmed?: boolean } = {},
  ): Promise<number[]> {
    checkId('keyId', keyId);
    checkEpoch(epoch);
    if (typeof proof?.transcriptHash !== 'string' || !HEX_RE.test(proof.transcriptHash)) {
      throw new InfraError('ValidationError', 'transcriptHash must be hex');
    }
    if (!validCertificate(proof.certificate)) {
      throw new InfraError('ValidationError', 'certificate must map hex participant ids to {R, z} hex');
    }
    return this.#serial(async () => {
      const k = await this.getKey(keyId);
      if (!k) throw new StateError('KeyNotFound', `no key ${keyId} on this node`);
      if (k.state === 'Destroyed') throw new StateError('InvalidKeyState', `key ${keyId} is destroyed`);
      if (k.activeEpoch === epoch) return [];
      const state = await this.#epochState(k);
      const r = state?.pending?.epoch === epoch ? await this.getEpoch(keyId, epoch) : undefined;
      if (!state || r?.status !== 'pending')
        throw new StateError('InvalidKeyState', `no pending epoch ${epoch} of ${keyId}`);
      const cert = certFromHex(
        keyId,
        epoch,
        proof.transcriptHash,
        state.groupElement,
        proof.certificate,
        r.sessionId ?? '',
      );
      const next = activate(state, cert).state;
      const older = (await this.#epochNumbers(keyId)).filter((e) => e < next.active.epoch);
      const active: EpochRecordStored = {
        ...r,
        status: 'active',
        transcriptHash: proof.transcriptHash,
        certificate: proof.certificate,
      };
      const sealed = await this.getSealedShare(keyId, epoch);
      if (!sealed)
        throw new InfraError('StorageError', `pending epoch ${keyId}/${epoch} has no sealed share`);
      await this.#write(`activate ${keyId}/${epoch}`, [
        {
          type: 'put',
          sublevel: this.#epochs,
          key: epochKey(keyId, epoch),
          value: JSON.stringify(clean(active)),
          ...UTF8,
        },
        this.#putKeyOp(
          keyRecordOf(
            opts.unconfirmed && k.activeEpoch === undefined ? { ...k, unconfirmed: true } : k,
            next,
          ),
        ),
        ...older.flatMap((e) => this.#delEpochOps(keyId, e)),
      ]);
      return older;
    });
  }

  /**
   * Clears a key's `unconfirmed` mark (the coordinator's `confirm-key`). `check` runs on the
   * current record and its active epoch inside the serial section and throws to refuse. Returns
   * false, changing nothing, when the key is confirmed already.
   */
  async confirmKey(
    keyId: string,
    check: (current: KeyRecordStored, active: EpochRecordStored) => void,
  ): Promise<boolean> {
    checkId('keyId', keyId);
    return this.#serial(async () => {
      const k = await this.getKey(keyId);
      if (!k || k.state === 'Destroyed' || k.activeEpoch === undefined)
        throw new StateError('KeyNotFound', `no active share of ${keyId} on this node`);
      const active = await this.getEpoch(keyId, k.activeEpoch);
      if (active?.status !== 'active')
        throw new InfraError('StorageError', `key ${keyId} points at a missing active epoch`);
      check(k, active);
      if (!k.unconfirmed) return false;
      const { unconfirmed: _done, ...confirmed } = k;
      await this.#write(`confirm key ${keyId}`, [this.#putKeyOp(confirmed)]);
      return true;
    });
  }

  /**
   * Drops a pending epoch (an aborted key event) with its share: protocol/epoch.ts `abort` (the
   * active epoch stays; a key that never had an active epoch, an aborted DKG, is forgotten).
   * Returns false, changing nothing, if the epoch is not pending (absent or already active). A
   * pending record that no longer reads is deleted all the same: it would never be used.
   */
  async discardPendingEpoch(keyId: string, epoch: number): Promise<boolean> {
    checkId('keyId', keyId);
    checkEpoch(epoch);
    return this.#serial(async () => {
      const k = await this.getKey(keyId);
      // An abort that arrives after activation (a late or replayed abort) changes nothing.
      if (k?.activeEpoch === epoch) return false;
      const r = await this.getEpoch(keyId, epoch).catch((e: unknown) => {
        // A corrupt pending record may still be discarded: it would never be used anyway.
        if (e instanceof InfraError && e.code === 'StorageError') return 'corrupt' as const;
        throw e;
      });
      if (r !== 'corrupt' && r?.status === 'active') return false;
      const share = await this.getSealedShare(keyId, epoch);
      if (r === undefined && share === undefined && k?.pendingEpoch !== epoch) return false;
      const ops: any[] = this.#delEpochOps(keyId, epoch);
      if (k && k.state !== 'Destroyed' && k.pendingEpoch === epoch && r !== 'corrupt') {
        const next = abort((await this.#epochState(k))!, epoch as Epoch);
        ops.push(
          next
            ? this.#putKeyOp(keyRecordOf(k, next))
            : { type: 'del', sublevel: this.#keys, key: keyId, ...UTF8 },
        );
      } else if (k && k.activeEpoch === undefined && k.state !== 'Destroyed') {
        // Leftovers of a DKG whose record no longer reads: the key never existed.
        ops.push({ type: 'del', sublevel: this.#keys, key: keyId, ...UTF8 });
      } else if (k && k.pendingEpoch === epoch) {
        const { pendingEpoch: _drop, ...rest } = k;
        ops.push(this.#putKeyOp(rest));
      }
      // A key forgotten here (a DKG, or a joining member's first epoch) loses the custody data
      // its pending epoch was stored with (putPendingEpoch), as destroyKey drops it.
      if (ops.some((o) => o.type === 'del' && o.sublevel === this.#keys))
        ops.push({ type: 'del', sublevel: this.#meta, key: `custody!${keyId}`, ...UTF8 });
      await this.#write(`discard ${keyId}/${epoch}`, ops);
      return true;
    });
  }

  /**
   * Stores a repaired share as the ACTIVE share of its epoch (repair keeps the epoch), replacing
   * whatever this node held for that epoch, and deletes older epochs; one synced batch. Returns the
   * deleted older epochs. protocol/epoch.ts `repaired` decides: refused are an epoch older than the
   * active one (EpochMismatch) and another group element (InvalidKeyState).
   */
  async putRepairedEpoch(record: EpochRecordStored, sealedShare: Uint8Array): Promise<number[]> {
    this.#checkRecord(record, 'active', sealedShare);
    const rec = epochRecordOf(record, 'caller');
    return this.#serial(async () => {
      const k = await this.getKey(record.keyId);
      if (k?.state === 'Destroyed')
        throw new StateError('InvalidKeyState', `key ${record.keyId} is destroyed`);
      if (k && k.keySpec !== record.keySpec)
        throw new StateError('InvalidKeyState', `key ${record.keyId} is ${k.keySpec}`);
      const state = k ? await this.#epochState(k) : undefined;
      const next = repaired(state, record.keyId as KeyId, record.keySpec, rec);
      const older = (await this.#epochNumbers(record.keyId)).filter((e) => e < record.epoch);
      const key = keyRecordOf(
        {
          keyId: record.keyId,
          keySpec: record.keySpec,
          state: k?.state ?? 'Enabled',
          ...(k?.unconfirmed ? { unconfirmed: true as const } : {}),
        },
        next,
      );
      await this.#write(`repaired epoch ${record.keyId}/${record.epoch}`, [
        ...this.#putEpochOps(record, sealedShare),
        this.#putKeyOp(key),
        ...older.flatMap((e) => this.#delEpochOps(record.keyId, e)),
      ]);
      return older;
    });
  }

  /**
   * Records what this node saw as a dealer leaving the committee in a reshare (epoch, session,
   * transcript hash, new package digest), synced, so that it later accepts a `retire` for exactly
   * that event and no other (security review C-2, L-1).
   */
  async putDealt(keyId: string, dealt: DealtRecord): Promise<void> {
    checkId('keyId', keyId);
    checkEpoch(dealt.epoch);
    if (!validDealt(dealt)) throw new InfraError('ValidationError', `dealt record of ${keyId} is malformed`);
    return this.#serial(() =>
      this.#write(`dealt ${keyId}`, [
        {
          type: 'put',
          sublevel: this.#meta,
          key: `dealt!${keyId}`,
          value: JSON.stringify(clean(dealt)),
          ...UTF8,
        },
      ]),
    );
  }

  /** The reshare this node last dealt in as a leaving member, if any. */
  async getDealt(keyId: string): Promise<DealtRecord | undefined> {
    checkId('keyId', keyId);
    return this.#read(`dealt ${keyId}`, async () => {
      const v = await this.#getJson(this.#meta, `dealt!${keyId}`, `dealt record ${keyId}`);
      if (v === undefined) return undefined;
      if (!validDealt(v)) {
        throw new InfraError('StorageError', `dealt record ${keyId} is corrupt`, {
          details: { key: `meta!dealt!${keyId}` },
        });
      }
      return v;
    });
  }

  async deleteDealt(keyId: string): Promise<void> {
    checkId('keyId', keyId);
    return this.#serial(() =>
      this.#write(`dealt ${keyId}`, [{ type: 'del', sublevel: this.#meta, key: `dealt!${keyId}`, ...UTF8 }]),
    );
  }

  // ---- custody data (issue 14: chain code and Taproot merkle root, node/sign-tweak.ts) -------

  /**
   * The key's custody data (protocol/key-tweak.ts CustodyData, hex), synced. Written once when the
   * key's first epoch is stored (DKG) or when this node joins the key by reshare; later key events
   * keep it. Kept apart from the key record, whose shape the epoch transitions rewrite.
   */
  async putCustody(keyId: string, c: { chainCode: string; merkleRoot: string | null }): Promise<void> {
    checkId('keyId', keyId);
    if (!validCustody(c)) throw new InfraError('ValidationError', `custody data of ${keyId} is malformed`);
    return this.#serial(() => this.#write(`custody ${keyId}`, [this.#putCustodyOp(keyId, c)]));
  }

  #putCustodyOp(keyId: string, c: { chainCode: string; merkleRoot: string | null }) {
    return { type: 'put', sublevel: this.#meta, key: `custody!${keyId}`, value: JSON.stringify(c), ...UTF8 };
  }

  async getCustody(keyId: string): Promise<{ chainCode: string; merkleRoot: string | null } | undefined> {
    checkId('keyId', keyId);
    return this.#read(`custody ${keyId}`, async () => {
      const v = await this.#getJson(this.#meta, `custody!${keyId}`, `custody data ${keyId}`);
      if (v === undefined) return undefined;
      if (!validCustody(v)) {
        throw new InfraError('StorageError', `custody data ${keyId} is corrupt`, {
          details: { key: `meta!custody!${keyId}` },
        });
      }
      return { chainCode: v.chainCode, merkleRoot: v.merkleRoot };
    });
  }

  // ---- governance and deletion schedules (node/governance-store.ts, node/key-lifecycle.ts) --

  /** Appends an accepted governance version (synced); the caller checked it follows the chain. */
  async putGovernanceVersion(version: number, json: string): Promise<void> {
    checkEpoch(version);
    return this.#serial(() =>
      this.#write(`governance version ${version}`, [
        {
          type: 'put',
          sublevel: this.#governance,
          key: String(version).padStart(EPOCH_DIGITS, '0'),
          value: json,
          ...UTF8,
        },
      ]),
    );
  }

  /** Every stored governance version, oldest first, as stored (the caller parses and re-checks). */
  async listGovernanceVersions(): Promise<{ version: number; json: string }[]> {
    return this.#read('governance versions', async () => {
      const out: { version: number; json: string }[] = [];
      for await (const [k, v] of this.#governance.iterator(UTF8)) {
        out.push({ version: Number(k), json: v as string });
      }
      return out;
    });
  }

  /**
   * When this node processed a signed schedule-deletion of `keyId` (its own clock) and the window
   * it asked for: `destroy` waits for it (node/key-lifecycle.ts).
   */
  async putDeletionSchedule(keyId: string, d: { scheduledAt: string; windowDays: number }): Promise<void> {
    checkId('keyId', keyId);
    return this.#serial(() =>
      this.#write(`deletion schedule ${keyId}`, [
        {
          type: 'put',
          sublevel: this.#meta,
          key: `deletion!${keyId}`,
          value: JSON.stringify({ scheduledAt: d.scheduledAt, windowDays: d.windowDays }),
          ...UTF8,
        },
      ]),
    );
  }

  async getDeletionSchedule(keyId: string): Promise<{ scheduledAt: string; windowDays: number } | undefined> {
    checkId('keyId', keyId);
    return this.#read(`deletion schedule ${keyId}`, async () => {
      const v = await this.#getJson(this.#meta, `deletion!${keyId}`, `deletion schedule ${keyId}`);
      if (v === undefined) return undefined;
      if (
        !isObj(v) ||
        typeof v['scheduledAt'] !== 'string' ||
        !Number.isFinite(Date.parse(v['scheduledAt'])) ||
        !Number.isSafeInteger(v['windowDays'])
      ) {
        throw new InfraError('StorageError', `deletion schedule ${keyId} is corrupt`, {
          details: { key: `meta!deletion!${keyId}` },
        });
      }
      return { scheduledAt: v['scheduledAt'], windowDays: v['windowDays'] as number };
    });
  }

  async deleteDeletionSchedule(keyId: string): Promise<void> {
    checkId('keyId', keyId);
    return this.#serial(() =>
      this.#write(`deletion schedule ${keyId}`, [
        { type: 'del', sublevel: this.#meta, key: `deletion!${keyId}`, ...UTF8 },
      ]),
    );
  }

  // ---- sessions ----------------------------------------------------------------------------

  /** Recorded ids since the last prune pass, and where the next pass starts (key order, wraps). */
  #sessionMarks = 0;
  #sessionCursor: string | undefined;

  /**
   * Records a session id (synced) before the session starts, so a restarted node refuses it. Every
   * SESSION_PRUNE_EVERY ids it also runs one bounded prune pass (SESSION_ID_RETENTION_MS), so the
   * set holds about a day of ids, not every id ever seen (security review L-5).
   */
  async markSessionSeen(sessionId: string, now: Date = new Date()): Promise<void> {
    checkId('sessionId', sessionId);
    await this.#write(`session ${sessionId}`, [
      { type: 'put', sublevel: this.#sessions, key: sessionId, value: now.toISOString(), ...UTF8 },
    ]);
    if (++this.#sessionMarks >= SESSION_PRUNE_EVERY) {
      this.#sessionMarks = 0;
      await this.pruneSessions(new Date(now.getTime() - SESSION_ID_RETENTION_MS), {
        limit: SESSION_PRUNE_BATCH,
      });
    }
  }

  async wasSessionSeen(sessionId: string): Promise<boolean> {
    checkId('sessionId', sessionId);
    return this.#read(
      `session ${sessionId}`,
      async () => (await this.#sessions.get(sessionId, UTF8)) !== undefined,
    );
  }

  /**
   * Forgets session ids recorded before `before` (session ids are random, so reuse is not a risk).
   * With `limit`, examines at most that many ids, continuing after where the previous limited pass
   * stopped (wrapping at the end), so each pass is bounded work and every id is visited in turn.
   * Returns how many it forgot.
   */
  async pruneSessions(before: Date, opts: { limit?: number } = {}): Promise<number> {
    return this.#serial(async () => {
      const old: string[] = [];
      const limit = opts.limit;
      const range = {
        ...UTF8,
        ...(limit === undefined ? {} : { limit }),
        ...(limit === undefined || this.#sessionCursor === undefined ? {} : { gt: this.#sessionCursor }),
      };
      let seen = 0;
      let last: string | undefined;
      for await (const [k, v] of this.#sessions.iterator(range)) {
        seen++;
        last = k as string;
        const t = Date.parse(v as string);
        if (!Number.isFinite(t) || t < before.getTime()) old.push(k as string);
      }
      if (limit !== undefined) this.#sessionCursor = seen < limit ? undefined : last;
      if (old.length > 0) {
        await this.#write(
          'prune sessions',
          old.map((key) => ({ type: 'del', sublevel: this.#sessions, key, ...UTF8 })),
        );
      }
      return old.length;
    });
  }
}
