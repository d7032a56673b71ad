/**
 * `Idempotency-Key` on POST (as Fireblocks and Stripe do it): the first completed answer to a
 * (caller, key) pair is stored and replayed for every repeat, so a retried create or sign never
 * starts a second session. A repeat that arrives while the first is still running waits for it.
 * The same key with a different method, path or body is refused (422 IdempotencyKeyMismatch).
 * 5xx answers are not stored: the operation did not complete, so a retry may run it again.
 * Records older than the TTL are deleted (security review L-5): every SWEEP_EVERY stored answers,
 * one bounded sweep step examines the next SWEEP_BATCH records (key order, wrapping), so the store
 * holds about one TTL's worth of answers and no request waits for a full scan.
 */
import { createHash } from 'node:crypto';
import type { AbstractLevel } from 'abstract-level';
import { KmsError } from '../protocol/errors.ts';
import { canonicalJson } from '../common/audit-log.ts';

export const IDEMPOTENCY_HEADER = 'idempotency-key';
export const IDEMPOTENCY_KEY_RE = /^[\x21-\x7e]{1,255}$/;
/** Stored answers are replayed for a day, then the key may be used afresh. */
export const IDEMPOTENCY_TTL_MS = 24 * 3600 * 1000;
/** Stored answers between two sweep steps, and records one step examines (4 per stored answer). */
const SWEEP_EVERY = 256;
const SWEEP_BATCH = 1024;

export type StoredResponse = {
  readonly fingerprint: string;
  readonly status: number;
  readonly contentType: string;
  readonly body: string;
  readonly storedAt: number;
};

type Db = AbstractLevel<any, string, any>;

export type IdempotencyBegin =
  | { kind: 'replay'; response: StoredResponse }
  | { kind: 'new'; finish: (r: Omit<StoredResponse, 'fingerprint' | 'storedAt'> | null) => Promise<void> };

export function fingerprint(method: string, url: string, body: unknown): string {
  let canon: string;
  try {
    canon = body === undefined ? '' : canonicalJson(body);
  } catch {
    canon = JSON.stringify(body) ?? '';
  }
  return createHash('sha256').update(`${method} ${url}\n${canon}`).digest('hex');
}

export class IdempotencyStore {
  readonly #db: AbstractLevel<any, string, StoredResponse>;
  readonly #inflight = new Map<string, { fingerprint: string; done: Promise<void> }>();
  readonly #now: () => number;
  /** Writes (stored answers and sweep deletions) run one at a time, so a sweep never deletes a fresh answer. */
  #writes: Promise<unknown> = Promise.resolve();
  #stored = 0;
  #cursor: string | undefined;
  #sweeping: Promise<number> | undefined;

  constructor(db: Db, now: () => number = Date.now) {
    this.#db = db.sublevel<string, StoredResponse>('idempotency', { valueEncoding: 'json' }) as any;
    this.#now = now;
  }

  async begin(scope: string, key: string, fp: string): Promise<IdempotencyBegin> {
    const id = `${scope}\n${key}`;
    for (;;) {
      const running = this.#inflight.get(id);
      if (running) {
        if (running.fingerprint !== fp) throw mismatch();
        await running.done;
        continue;
      }
      let stored: StoredResponse | undefined;
      try {
        stored = await this.#db.get(id);
      } catch (e) {
        throw new KmsError('StorageError', 'idempotency store: read failed', { cause: e });
      }
      // Another request may have claimed the key while we read.
      if (this.#inflight.has(id)) continue;
      if (stored && this.#now() - stored.storedAt < IDEMPOTENCY_TTL_MS) {
        if (stored.fingerprint !== fp) throw mismatch();
        return { kind: 'replay', response: stored };
      }
      let release!: () => void;
      const done = new Promise<void>((r) => (release = r));
      this.#inflight.set(id, { fingerprint: fp, done });
      return {
        kind: 'new',
        finish: async (r) => {
          try {
            if (r !== null) {
              await this.#serial(() => this.#db.put(id, { ...r, fingerprint: fp, storedAt: this.#now() }));
              if (++this.#stored >= SWEEP_EVERY) {
                this.#stored = 0;
                // Not awaited: the answer does not wait for housekeeping. A failed step only leaves
                // expired records (never replayed: begin checks the TTL) for the next step.
                this.#sweeping ??= this.sweep().finally(() => (this.#sweeping = undefined));
                this.#sweeping.catch(() => {});
              }
            }
          } finally {
            this.#inflight.delete(id);
            release();
          }
        },
      };
    }
  }

  /**
   * One sweep step: examines up to `limit` records after where the previous step stopped (wrapping
   * at the end) and deletes those older than the TTL. Returns how many it deleted.
   */
  async sweep(limit: number = SWEEP_BATCH): Promise<number> {
    const expired = (v: StoredResponse | undefined) =>
      v !== undefined && !(this.#now() - v.storedAt < IDEMPOTENCY_TTL_MS);
    const candidates: string[] = [];
    let seen = 0;
    let last: string | undefined;
    try {
      const range = this.#cursor === undefined ? { limit } : { limit, gt: this.#cursor };
      for await (const [k, v] of this.#db.iterator(range)) {
        seen++;
        last = k;
        if (expired(v)) candidates.push(k);
      }
    } catch (e) {
      throw new KmsError('StorageError', 'idempotency store: sweep read failed', { cause: e });
    }
    this.#cursor = seen < limit ? undefined : last;
    if (candidates.length === 0) return 0;
    return this.#serial(async () => {
      // Read again behind every earlier write: an answer stored since the scan is kept.
      const now = await this.#db.getMany(candidates);
      const gone = candidates.filter((id, i) => expired(now[i]) && !this.#inflight.has(id));
      if (gone.length > 0) await this.#db.batch(gone.map((key) => ({ type: 'del' as const, key })));
      return gone.length;
    });
  }

  #serial<T>(fn: () => Promise<T>): Promise<T> {
    const p = this.#writes.then(fn);
    this.#writes = p.catch(() => undefined);
    return p;
  }
}

function mismatch(): KmsError {
  return new KmsError('IdempotencyKeyMismatch', 'this Idempotency-Key was used for a different request');
}
