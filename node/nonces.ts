/**
 * Signing nonces of the sessions this node is part of: memory only, never persisted (a node that
 * restarts has forgotten them, so it refuses to finish a session it committed to before the crash:
 * RFC 9591 §5.1, threats I1). Each entry is single-use (protocol/sign.ts consumes it), bounded in
 * number and age, and bound to (session, key, epoch).
 */
import type { Key } from '@noble/curves/abstract/frost.js';
import { KmsError, StateError } from '../protocol/errors.ts';
import type { Epoch, ParticipantId } from '../protocol/ids.ts';
import { type NonceState, type SigningCommitment, signerCommit, signerSign } from '../protocol/sign.ts';
import type { KeySpec } from '../protocol/suites.ts';

type Entry = { keyId: string; epoch: number; state: NonceState; expires: number };

export class NonceTable {
  readonly #entries = new Map<string, Entry>();
  readonly #max: number;
  readonly #ttlMs: number;

  constructor(opts: { max?: number; ttlMs?: number } = {}) {
    this.#max = opts.max ?? 10_000;
    this.#ttlMs = opts.ttlMs ?? 60_000;
  }

  get size(): number {
    return this.#entries.size;
  }

  #sweep(now: number): void {
    for (const [sid, e] of this.#entries) if (e.expires <= now) this.#entries.delete(sid);
  }

  commit(spec: KeySpec, sessionId: string, keyId: string, epoch: number, key: Key): SigningCommitment {
    const now = performance.now();
    this.#sweep(now);
    if (this.#entries.has(sessionId)) {
      throw new KmsError('Conflict', `signing session ${sessionId} already committed on this node`);
    }
    if (this.#entries.size >= this.#max) throw new KmsError('Overloaded', 'too many open signing sessions');
    const { commitment, state } = signerCommit({ spec, key, epoch: epoch as Epoch });
    this.#entries.set(sessionId, { keyId, epoch, state, expires: now + this.#ttlMs });
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
    },
  ): Uint8Array {
    const e = this.#entries.get(sessionId);
    // Taken out before use: whatever happens next, this nonce never signs again.
    this.#entries.delete(sessionId);
    if (!e || e.expires <= performance.now()) {
      throw new StateError(
        'NonceReused',
        `no open signing session ${sessionId} on this node (expired, used or unknown)`,
      );
    }
    if (e.keyId !== keyId || e.epoch !== epoch) {
      throw new StateError('EpochMismatch', 'signing session belongs to another key or epoch');
    }
    void spec;
    void key;
    const out = signerSign(e.state, {
      message: req.message,
      commitments: req.commitments.map((c) => ({
        identifier: c.identifier as ParticipantId,
        hiding: c.hiding,
        binding: c.binding,
        epoch: epoch as Epoch,
      })),
    });
    return out.share;
  }

  clear(): void {
    this.#entries.clear();
  }
}
