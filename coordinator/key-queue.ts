/**
 * Per-key reader/writer lock. Signing takes the key's lock SHARED, so signatures on one key run
 * concurrently (each is its own session with fresh nonces); key events (refresh, reshare, repair)
 * and lifecycle changes take it EXCLUSIVE: one waits for the running signs to finish, and signs
 * that arrive while it waits or runs queue behind it, so a sign never runs against an epoch a
 * reshare is replacing and two lifecycle changes cannot interleave. Waiters are served in arrival
 * order (a queued exclusive blocks later shared requests, so key events are never starved).
 * Different keys never wait for each other.
 */
export type LockMode = 'shared' | 'exclusive';

type Waiter = { readonly shared: boolean; readonly go: () => void };
type Lock = { readers: number; writer: boolean; readonly waiters: Waiter[] };

export class KeyedQueue {
  readonly #locks = new Map<string, Lock>();
  readonly #running = new Set<Promise<unknown>>();

  /** Runs `fn` holding `key`'s lock (exclusive by default); `fn`'s failure is the caller's, the lock is released. */
  run<T>(key: string, fn: () => Promise<T>, mode: LockMode = 'exclusive'): Promise<T> {
    const shared = mode === 'shared';
    const p = this.#acquire(key, shared).then(async () => {
      try {
        return await fn();
      } finally {
        this.#release(key, shared);
      }
    });
    const tracked = p.then(
      () => undefined,
      () => undefined,
    );
    this.#running.add(tracked);
    void tracked.then(() => this.#running.delete(tracked));
    return p;
  }

  /** Resolves when every queued operation has settled (for shutdown). */
  async idle(): Promise<void> {
    while (this.#running.size > 0) await Promise.all(this.#running);
  }

  #acquire(key: string, shared: boolean): Promise<void> {
    let l = this.#locks.get(key);
    if (!l) {
      l = { readers: 0, writer: false, waiters: [] };
      this.#locks.set(key, l);
    }
    const free = !l.writer && l.waiters.length === 0 && (shared || l.readers === 0);
    if (free) {
      if (shared) l.readers++;
      else l.writer = true;
      return Promise.resolve();
    }
    const lock = l;
    return new Promise((go) => lock.waiters.push({ shared, go }));
  }

  #release(key: string, shared: boolean): void {
    const l = this.#locks.get(key);
    if (!l) return;
    if (shared) l.readers--;
    else l.writer = false;
    // Wake waiters in order: a run of shared ones together, or one exclusive once nobody holds it.
    while (!l.writer && l.waiters.length > 0) {
      const head = l.waiters[0] as Waiter;
      if (head.shared) {
        l.readers++;
      } else if (l.readers === 0) {
        l.writer = true;
      } else break;
      l.waiters.shift();
      head.go();
    }
    if (!l.writer && l.readers === 0 && l.waiters.length === 0) this.#locks.delete(key);
  }
}
