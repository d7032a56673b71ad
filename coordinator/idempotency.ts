/**
 * `Idempotency-Key` on POST (as Fireblocks and Stripe do it): the first completed answer to a
 * (caller, key) pair is stored and replayed for every repeat, so a retried create or sign never
 * starts a second session. A repeat that arrives while the first is still running waits for it.
 * The same key with a different method, path or body is refused (422 IdempotencyKeyMismatch).
 * 5xx answers are not stored: the operation did not complete, so a retry may run it again.
 */
import { createHash } from 'node:crypto';
import type { AbstractLevel } from 'abstract-level';
import { KmsError } from '../protocol/errors.ts';
import { canonicalJson } from '../common/audit-log.ts';

export const IDEMPOTENCY_HEADER = 'idempotency-key';
export const IDEMPOTENCY_KEY_RE = /^[\x21-\x7e]{1,255}$/;
/** Stored answers are replayed for a day, then the key may be used afresh. */
export const IDEMPOTENCY_TTL_MS = 24 * 3600 * 1000;

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
            if (r !== null) await this.#db.put(id, { ...r, fingerprint: fp, storedAt: this.#now() });
          } finally {
            this.#inflight.delete(id);
            release();
          }
        },
      };
    }
  }
}

function mismatch(): KmsError {
  return new KmsError('IdempotencyKeyMismatch', 'this Idempotency-Key was used for a different request');
}
