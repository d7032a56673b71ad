/**
 * Signing nonces of the sessions this node is part of: memory only, never persisted (a node that
 * restarts has forgotten them, so it refuses to finish a session it committed to before the crash:
 * RFC 9591 §5.1, threats I1). Each entry is single-use (protocol/sign.ts consumes it), bounded in
 * number and age, and bound to (session, key, epoch). The number is bounded node-wide and per key
 * (security review L-4): sessions committed and never finished on one key (a failed attempt leaves
 * its honest signers' entries open until the TTL) make that key answer Overloaded, not every key.
 */
import type { Key } from '@noble/curves/abstract/frost.js';
import { KmsError, StateError } from '../protocol/errors.ts';
import type { Epoch, ParticipantId } from '../protocol/ids.ts';
import { type SigningTweak, defaultSigningTweak } from '../protocol/key-tweak.ts';
import { type NonceState, type SigningCommitment, signerCommit, signerSign } from '../protocol/sign.ts';
import type { KeySpec } from '../protocol/suites.ts';

type Entry = { keyId: string; epoch: number; state: NonceState; expires: number };

export class NonceTable {
  readonly #entries = new Map<string, Entry>();
  /** Open entries by key id (keys with none are absent). */
  readonly #perKey = new Map<string, number>();
  readonly #max: number;
  readonly #maxPerKey: number;
  readonly #ttlMs: number;

  constructor(opts: { max?: number; maxPerKey?: number; ttlMs?: number } = {}) {
    this.#max = opts.max ?? 10_000;
    // Far above one key's honest concurrency (a signing session holds its entry for one round trip).
    this.#maxPerKey = opts.maxPerKey ?? Math.min(1_000, this.#max);
    this.#ttlMs = opts.ttlMs ?? 60_000;
  }

  get size(): number {
    return this.#entries.size;
  }

  /** Open entries of one key. */
  openFor(keyId: string): number {
    return this.#perKey.get(keyId) ?? 0;
  }

  #sweep(now: number): void {
    // One TTL and a monotonic clock: insertion order is expiry order, so the expired are a prefix.
    for (const [sid, e] of this.#entries) {
      if (e.expires > now) break;
      this.#remove(sid, e);
    }
  }

  #remove(sessionId: string, e: Entry): void {
    this.#entries.delete(sessionId);
    const n = (this.#perKey.get(e.keyId) ?? 0) - 1;
    if (n > 0) this.#perKey.set(e.keyId, n);
    else this.#perKey.delete(e.keyId);
  }

  commit(spec: KeySpec, sessionId: string, keyId: string, epoch: number, key: Key): SigningCommitment {
    const now = performance.now();
    this.#sweep(now);
    if (this.#entries.has(sessionId)) {
      throw new KmsError('Conflict', `signing session ${sessionId} already committed on this node`);
    }
    if (this.#entries.size >= this.#max) throw new KmsError('Overloaded', 'too many open signing sessions');
    if (this.openFor(keyId) >= this.#maxPerKey) {
      throw new KmsError('Overloaded', `too many open signing sessions for key ${keyId}`);
    }
    const { commitment, state } = signerCommit({ spec, key, epoch: epoch as Epoch });
    this.#entries.set(sessionId, { keyId, epoch, state, expires: now + this.#ttlMs });
    this.#perKey.set(keyId, this.openFor(keyId) + 1);
    return commitment;
  }

  sign(
    spec: KeySpec,
    sessionId: string,
    keyId: string,
    epoch: number,
    key: Key,
    req: {
      message: Uint8Array;
      commitments: { identifier: string; hiding: Uint8Array; binding: Uint8Array }[];
      /** Issue 14: the key signed for (node/sign-tweak.ts); absent = the suite's default. */
      tweak?: SigningTweak | undefined;
    },
  ): Uint8Array {
    const e = this.#entries.get(sessionId);
    // Taken out before use: whatever happens next, this nonce never signs again.
    if (e) this.#remove(sessionId, e);
    if (!e || e.expires <= performance.now()) {
      throw new StateError(
        'NonceReused',
        `no open signing session ${sessionId} on this node (expired, used or unknown)`,
      );
    }
    if (e.keyId !== keyId || e.epoch !== epoch) {
      throw new StateError('EpochMismatch', 'signing session belongs to another key or epoch');
    }
    void key;
    const out = signerSign(e.state, {
      message: req.message,
      // FROST_SECP256K1_TR: the BIP341 key path with no merkle root (protocol/key-tweak.ts).
      tweak: 'tweak' in req ? req.tweak : defaultSigningTweak(spec),
      commitments: req.commitments.map((c) => ({
        identifier: c.identifier as ParticipantId,
        hiding: c.hiding,
        binding: c.binding,
        epoch: epoch as Epoch,
      })),
    });
    return out.share;
  }

  /**
   * Discards the open entry of an abandoned session (the coordinator's `sign-abort`), so a failed
   * attempt does not hold its place until the TTL (L-4). The nonce is dropped, never used: a later
   * `sign` for this session is refused like any unknown one. False if there was none.
   */
  release(sessionId: string): boolean {
    const e = this.#entries.get(sessionId);
    if (!e) return false;
    this.#remove(sessionId, e);
    return true;
  }

  clear(): void {
    this.#entries.clear();
    this.#perKey.clear();
  }
}
