/**
 * Exact-length reads over an async byte source (a file stream), for parsing a framed format while
 * streaming: memory holds at most one requested read plus one source piece.
 */
const EMPTY = new Uint8Array(0);

/** A plain Uint8Array view of the same bytes: a Buffer's `slice` aliases, a Uint8Array's copies. */
const plain = (b: Uint8Array): Uint8Array =>
  Object.getPrototypeOf(b) === Uint8Array.prototype
    ? b
    : new Uint8Array(b.buffer, b.byteOffset, b.byteLength);

export class ByteReader {
  readonly #it: AsyncIterator<Uint8Array>;
  #pending: Uint8Array = EMPTY;
  #ended = false;
  #position = 0;

  constructor(source: AsyncIterable<Uint8Array>) {
    this.#it = source[Symbol.asyncIterator]();
  }

  /** Bytes handed out so far. */
  get position(): number {
    return this.#position;
  }

  /**
   * Exactly `n` bytes, or fewer only when the source ended. The result may be a view of a piece the
   * source yielded (no copy when a piece holds the whole read): sources must not reuse their pieces,
   * as Node's streams do not.
   */
  async read(n: number): Promise<Uint8Array> {
    if (this.#pending.length === 0 && !this.#ended) {
      const r = await this.#it.next();
      if (r.done) this.#ended = true;
      else this.#pending = plain(r.value);
    }
    if (this.#pending.length >= n) {
      const view = this.#pending.subarray(0, n);
      this.#pending = this.#pending.subarray(n);
      this.#position += n;
      return view;
    }
    const out = new Uint8Array(n);
    let filled = 0;
    while (filled < n) {
      if (this.#pending.length === 0) {
        if (this.#ended) break;
        const r = await this.#it.next();
        if (r.done) {
          this.#ended = true;
          break;
        }
        this.#pending = plain(r.value);
        continue;
      }
      const take = Math.min(n - filled, this.#pending.length);
      out.set(this.#pending.subarray(0, take), filled);
      this.#pending = this.#pending.subarray(take);
      filled += take;
    }
    this.#position += filled;
    return filled === n ? out : out.subarray(0, filled);
  }

  /** Stops the source early (closes the file) when the reader is abandoned. */
  async close(): Promise<void> {
    this.#pending = EMPTY;
    if (!this.#ended) {
      this.#ended = true;
      await this.#it.return?.();
    }
  }
}
