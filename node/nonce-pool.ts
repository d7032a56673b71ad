/**
 * Pre-generated signing nonces for one-round online signing (RFC 9591 §5.1: round one may run
 * ahead of time). Per key, a pool of nonce pairs whose commitments the coordinator holds
 * (`sign-precommit`, or new ones handed back with each `sign-one` share); a signature then needs
 * one request per signer. Memory only, never persisted: a restarted node has none, so every
 * commitment it published before is refused after (the coordinator falls back to two rounds).
 *
 * Single use, enforced here and nowhere else: `take` removes the entry synchronously, before the
 * caller awaits anything, and whether or not a share follows; a commitment presented once is never
 * found again, so two coordinators racing for it get at most one share, and a replayed list none.
 *
 * Each pool belongs to one key epoch as this node holds it (its `ActiveKey` entry: node/active-keys.ts
 * drops that entry on every state or epoch change, so a pool made under the old entry is discarded
 * at its next use), and its entries are found only under this node's own identifier in a request
 * for that key and epoch: a coordinator cannot spend one key's or epoch's commitments on another.
 * Bounded per key (oldest entries evicted first: an evicted nonce is dropped, never used) and per
 * node (the least recently used key's pool goes first).
 */
import { randomFillSync } from 'node:crypto';
import { bytesToHex } from '../protocol/bytes.ts';
import type { Epoch } from '../protocol/ids.ts';
import { type NonceState, type SigningCommitment, signerCommit } from '../protocol/sign.ts';
import type { ActiveKey } from './active-keys.ts';

type Pool = {
  /** The active-key entry the nonces were made for; another one means the key changed. */
  readonly owner: ActiveKey;
  readonly epoch: number;
  /** This node's FROST identifier in the key (the only list entry its nonces are found under). */
  readonly identifier: string;
  /** Hiding commitment (hex) -> nonce state, oldest first. */
  readonly entries: Map<string, NonceState>;
};

/** Defaults: far above one coordinator's cached depth per key (coordinator/commitment-cache.ts). */
export const POOL_MAX_PER_KEY = 64;
export const POOL_MAX = 20_000;

export class NoncePool {
  /** keyId -> pool, least recently used first. */
  readonly #pools = new Map<string, Pool>();
  readonly #maxPerKey: number;
  readonly #max: number;
  #size = 0;
  /**
   * The 32 random bytes per nonce that RFC 9591 §4.1 nonce_generate hashes with the share, served
   * from a block the OS fills once per 128 of them (not one getRandomValues call each); each slice
   * is copied out once and wiped from the block at once, so it is never served twice nor kept.
   */
  readonly #block: Uint8Array<ArrayBuffer> = new Uint8Array(4096);
  #used = this.#block.length;
  readonly #random = (n = 32): Uint8Array<ArrayBuffer> => {
    if (n > this.#block.length) return randomFillSync(new Uint8Array(n));
    if (this.#used + n > this.#block.length) {
      randomFillSync(this.#block);
      this.#used = 0;
    }
    const out = this.#block.slice(this.#used, this.#used + n);
    this.#block.fill(0, this.#used, this.#used + n);
    this.#used += n;
    return out;
  };

  constructor(opts: { maxPerKey?: number; max?: number } = {}) {
    this.#max = opts.max ?? POOL_MAX;
    this.#maxPerKey = Math.min(opts.maxPerKey ?? POOL_MAX_PER_KEY, this.#max);
  }

  /** Open pre-generated nonces on this node. */
  get size(): number {
    return this.#size;
  }

  sizeOf(keyId: string): number {
    return this.#pools.get(keyId)?.entries.size ?? 0;
  }

  /** This node's identifier in `keyId`, while it holds a pool for it. */
  identifierOf(keyId: string): string | undefined {
    return this.#pools.get(keyId)?.identifier;
  }

  /**
   * `count` new nonce pairs for the active key `a` (at most the per-key bound); returns their
   * commitments. A pool of an older entry of the key is discarded first.
   */
  generate(keyId: string, a: ActiveKey, count: number): SigningCommitment[] {
    let pool = this.#pools.get(keyId);
    if (pool && pool.owner !== a) {
      this.drop(keyId);
      pool = undefined;
    }
    pool ??= { owner: a, epoch: a.record.epoch, identifier: a.record.participant, entries: new Map() };
    // Most recently used last.
    this.#pools.delete(keyId);
    this.#pools.set(keyId, pool);
    const n = Math.max(0, Math.min(count, this.#maxPerKey));
    const out: SigningCommitment[] = [];
    for (let i = 0; i < n; i++) {
      if (pool.entries.size >= this.#maxPerKey) this.#evictOldest(pool);
      while (this.#size >= this.#max && this.#evictLru(keyId)) {}
      if (this.#size >= this.#max) break;
      const { commitment, state } = signerCommit({
        spec: a.spec,
        key: a.key,
        epoch: pool.epoch as Epoch,
        rng: this.#random,
      });
      pool.entries.set(bytesToHex(commitment.hiding), state);
      this.#size++;
      out.push(commitment);
    }
    return out;
  }

  /**
   * Removes and returns the nonce whose commitment is (`hiding`, `binding`) in `keyId`'s pool for
   * `epoch`, or undefined. Synchronous, so no other request can take it meanwhile; the entry is
   * gone whatever the caller does next (a binding that differs consumes it too).
   */
  take(keyId: string, epoch: number, hiding: Uint8Array, binding: Uint8Array): Taken | undefined {
    const pool = this.#pools.get(keyId);
    if (!pool) return undefined;
    const k = bytesToHex(hiding);
    const state = pool.entries.get(k);
    if (!state) return undefined;
    pool.entries.delete(k);
    this.#size--;
    if (pool.entries.size === 0) this.#pools.delete(keyId);
    if (pool.epoch !== epoch || bytesToHex(state.commitment.binding) !== bytesToHex(binding)) {
      state.nonces.hiding.fill(0);
      state.nonces.binding.fill(0);
      return undefined;
    }
    return { state, owner: pool.owner };
  }

  /** Discards a key's pool (its nonces are never used). */
  drop(keyId: string): void {
    const pool = this.#pools.get(keyId);
    if (!pool) return;
    this.#pools.delete(keyId);
    this.#size -= pool.entries.size;
    for (const s of pool.entries.values()) {
      s.nonces.hiding.fill(0);
      s.nonces.binding.fill(0);
    }
  }

  clear(): void {
    for (const k of [...this.#pools.keys()]) this.drop(k);
    this.#block.fill(0);
    this.#used = this.#block.length;
  }

  #evictOldest(pool: Pool): void {
    const first = pool.entries.entries().next();
    if (first.done) return;
    pool.entries.delete(first.value[0]);
    first.value[1].nonces.hiding.fill(0);
    first.value[1].nonces.binding.fill(0);
    this.#size--;
  }

  /** Drops the least recently used pool other than `keep`'s; false if there is none. */
  #evictLru(keep: string): boolean {
    for (const k of this.#pools.keys()) {
      if (k === keep) continue;
      this.drop(k);
      return true;
    }
    return false;
  }
}

/** A nonce taken out of the pool, and the active-key entry it was made for. */
export type Taken = { readonly state: NonceState; readonly owner: ActiveKey };
