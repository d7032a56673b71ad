/**
 * Unauthenticated failures (no, a bad or an unknown credential or signature) in the audit log,
 * aggregated (security review M-3): one synced record per source address and minute with a count,
 * instead of one synced write per failed request, so a flood of bad requests cannot turn the audit
 * log into a disk-write amplifier nor bury the records that matter. Bounded: at most MAX_SOURCES
 * sources per minute are told apart; the rest are counted together under `source: "*"`.
 */
const WINDOW_MS = 60_000;
export const MAX_SOURCES = 1000;
const MAX_SAMPLES = 10;

type Bucket = {
  count: number;
  codes: Map<string, number>;
  /** A few routes and key ids seen, for the reader of the record (bounded). */
  routes: Set<string>;
  keyIds: Set<string>;
};

export type AuthFailureEntry = {
  type: 'auth-failures';
  source: string;
  windowStart: string;
  count: number;
  codes: Record<string, number>;
  routes: string[];
  keyIds?: string[];
};

export class AuthFailureLog {
  readonly #append: (entry: Record<string, unknown>) => Promise<unknown>;
  readonly #now: () => number;
  #window = 0;
  #buckets = new Map<string, Bucket>();
  #timer: NodeJS.Timeout | undefined;
  #flushing: Promise<void> = Promise.resolve();

  constructor(append: (entry: Record<string, unknown>) => Promise<unknown>, now: () => number = Date.now) {
    this.#append = append;
    this.#now = now;
  }

  /** Counts one failure; the record is written when its minute is over (or at flush/close). */
  note(f: { source: string; code: string; route: string; keyId?: string }): void {
    const w = Math.floor(this.#now() / WINDOW_MS) * WINDOW_MS;
    if (w !== this.#window) {
      void this.flush();
      this.#window = w;
    }
    const source = this.#buckets.has(f.source) || this.#buckets.size < MAX_SOURCES ? f.source : '*';
    const b = this.#buckets.get(source) ?? {
      count: 0,
      codes: new Map(),
      routes: new Set(),
      keyIds: new Set(),
    };
    b.count++;
    b.codes.set(f.code, (b.codes.get(f.code) ?? 0) + 1);
    if (b.routes.size < MAX_SAMPLES) b.routes.add(f.route);
    if (f.keyId !== undefined && b.keyIds.size < MAX_SAMPLES) b.keyIds.add(f.keyId);
    this.#buckets.set(source, b);
    if (!this.#timer) {
      // One timer per open window: the record is written soon after its minute ends.
      this.#timer = setTimeout(
        () => {
          this.#timer = undefined;
          void this.flush();
        },
        w + WINDOW_MS - this.#now(),
      );
      this.#timer.unref();
    }
  }

  /** Writes one record per source of the current window (serialized; a failed write is retried next time). */
  flush(): Promise<void> {
    const buckets = this.#buckets;
    const window = this.#window;
    this.#buckets = new Map();
    if (this.#timer) clearTimeout(this.#timer);
    this.#timer = undefined;
    this.#flushing = this.#flushing.then(async () => {
      // A record that cannot be written is counted again into the next window, never lost.
      for (const [source, b] of buckets) {
        const entry: AuthFailureEntry = {
          type: 'auth-failures',
          source,
          windowStart: new Date(window).toISOString(),
          count: b.count,
          codes: Object.fromEntries(b.codes),
          routes: [...b.routes],
          ...(b.keyIds.size > 0 ? { keyIds: [...b.keyIds] } : {}),
        };
        await this.#append(entry as unknown as Record<string, unknown>).catch(() => {
          const again = this.#buckets.get(source);
          if (again) again.count += b.count;
          else this.#buckets.set(source, b);
        });
      }
    });
    return this.#flushing;
  }
}
