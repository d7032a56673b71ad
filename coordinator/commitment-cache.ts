/**
 * The coordinator's cache of nodes' pre-published signing commitments (issue 17, one-round
 * signing; RFC 9591 §5.1 ahead of time): per (key, epoch, node), commitments the node answered to
 * `sign-precommit` or handed back with a `sign-one` share, of the suite's element length (checked
 * as group elements, RFC 9591 §3.1, by the coordinator only when an attempt using them fails, before
 * it blames anyone; by every signer always: coordinator/threshold-signer.ts). Each is taken out when used, never handed out twice; a
 * commitment the node no longer holds (it restarted, or another coordinator used it) is refused by
 * the node, and the cache forgets the rest of that node's entries for the key. Memory only, and
 * not trusted for safety: single use is the node's rule (node/nonce-pool.ts), not this cache's.
 */

export type CachedCommitment = { readonly hiding: Uint8Array; readonly binding: Uint8Array };

/** Depth kept per (key, node): enough for this many concurrent signatures of one key. */
export const CACHE_DEPTH = 32;
/** Bound on cached commitments over every key (least recently used keys go first). */
export const CACHE_MAX = 200_000;

type Entry = { epoch: number; byNode: Map<string, CachedCommitment[]> };

export class CommitmentCache {
  /** keyId -> the key's commitments for one epoch (least recently used first). */
  readonly #keys = new Map<string, Entry>();
  /** `keyId\nnode` -> commitments asked of the node and not answered yet. */
  readonly #inflight = new Map<string, number>();
  readonly #depth: number;
  readonly #max: number;
  #size = 0;

  constructor(opts: { depth?: number; max?: number } = {}) {
    this.#depth = opts.depth ?? CACHE_DEPTH;
    this.#max = opts.max ?? CACHE_MAX;
  }

  get depth(): number {
    return this.#depth;
  }

  /** Cached commitments of `node` for the key's `epoch`. */
  count(keyId: string, epoch: number, node: string): number {
    const e = this.#keys.get(keyId);
    return e && e.epoch === epoch ? (e.byNode.get(node)?.length ?? 0) : 0;
  }

  /**
   * How many commitments to ask `node` for now (at most `max`): what fills its depth, counting
   * those already asked for; counted as asked until `settle`.
   */
  reserve(keyId: string, epoch: number, node: string, max: number): number {
    const k = `${keyId}\n${node}`;
    const asked = this.#inflight.get(k) ?? 0;
    const n = Math.max(0, Math.min(max, this.#depth - this.count(keyId, epoch, node) - asked));
    if (n > 0) this.#inflight.set(k, asked + n);
    return n;
  }

  /** The answer to `reserve`d commitments came (or failed). */
  settle(keyId: string, node: string, asked: number): void {
    if (asked <= 0) return;
    const k = `${keyId}\n${node}`;
    const left = (this.#inflight.get(k) ?? 0) - asked;
    if (left > 0) this.#inflight.set(k, left);
    else this.#inflight.delete(k);
  }

  /** Adds commitments of `node` (a newer epoch of the key replaces the older one's). */
  add(keyId: string, epoch: number, node: string, cs: readonly CachedCommitment[]): void {
    let e = this.#keys.get(keyId);
    if (e && e.epoch !== epoch) {
      if (epoch < e.epoch) return;
      this.forgetKey(keyId);
      e = undefined;
    }
    e ??= { epoch, byNode: new Map() };
    this.#keys.delete(keyId);
    this.#keys.set(keyId, e);
    const list = e.byNode.get(node) ?? [];
    e.byNode.set(node, list);
    for (const c of cs) {
      if (list.length >= this.#depth) break;
      list.push(c);
      this.#size++;
    }
    while (this.#size > this.#max) {
      const lru = this.#keys.keys().next().value;
      if (lru === undefined || lru === keyId) break;
      this.forgetKey(lru);
    }
  }

  /**
   * One commitment of each of `nodes` for the key's `epoch`, taken out of the cache, or undefined
   * (and nothing taken) if one of them has none.
   */
  take(keyId: string, epoch: number, nodes: readonly string[]): CachedCommitment[] | undefined {
    const e = this.#keys.get(keyId);
    if (!e || e.epoch !== epoch) return undefined;
    if (!nodes.every((n) => (e.byNode.get(n)?.length ?? 0) > 0)) return undefined;
    this.#size -= nodes.length;
    // Oldest first: the node evicts its oldest nonces first when its pool is full.
    return nodes.map((n) => e.byNode.get(n)!.shift()!);
  }

  /** Forgets `node`'s commitments for the key (it refused one: it no longer holds them). */
  forgetNode(keyId: string, node: string): void {
    const e = this.#keys.get(keyId);
    const list = e?.byNode.get(node);
    if (!e || !list) return;
    this.#size -= list.length;
    e.byNode.delete(node);
  }

  forgetKey(keyId: string): void {
    const e = this.#keys.get(keyId);
    if (!e) return;
    for (const l of e.byNode.values()) this.#size -= l.length;
    this.#keys.delete(keyId);
  }
}
