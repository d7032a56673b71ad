/**
 * A Map that holds at most `max` entries, dropping the least recently used (read or written) first:
 * for in-memory caches keyed by key id, which must not grow with the number of keys stored
 * (issue 17, scale). Reads through `get` count as use; `has`, iteration and `peek` do not.
 */
export class LruMap<K, V> extends Map<K, V> {
  readonly #max: number;

  constructor(max: number) {
    super();
    if (!Number.isSafeInteger(max) || max < 1) throw new RangeError('LruMap: max must be a positive integer');
    this.#max = max;
  }

  /** The value, now the most recently used. */
  override get(key: K): V | undefined {
    if (!super.has(key)) return undefined;
    const v = super.get(key) as V;
    super.delete(key);
    super.set(key, v);
    return v;
  }

  /** The value, without counting as use. */
  peek(key: K): V | undefined {
    return super.get(key);
  }

  /** Sets the value as the most recently used; drops the least recently used beyond `max`. */
  override set(key: K, value: V): this {
    super.delete(key);
    super.set(key, value);
    while (this.size > this.#max) super.delete(this.keys().next().value as K);
    return this;
  }
}
