/**
 * Bounded unlock attempts with exponential backoff (threats-and-faults F-17). SoftHSM2 never locks
 * a token after wrong PINs, and a software passphrase has no lock at all, so the node limits
 * attempts itself: after `maxAttempts` consecutive failures, each further attempt is refused until a
 * lockout window passes; the window doubles with every further failure, up to `maxDelayMs`.
 *
 * With a `statePath` the counter survives restarts (written synced, via temp file + rename), so
 * restarting the node does not reset the budget. The file holds counters only, never a PIN.
 */
import { randomBytes } from 'node:crypto';
import { open, readFile, rename } from 'node:fs/promises';
import { InfraError } from '../protocol/errors.ts';

export type PinGuardOptions = {
  /** File where the counter is persisted; omit to keep it in memory (tests, one-shot tools). */
  statePath?: string;
  /** Consecutive failures allowed before lockout. Default 3. */
  maxAttempts?: number;
  /** First lockout window. Default 30 s. */
  baseDelayMs?: number;
  /** Longest lockout window. Default 1 h. */
  maxDelayMs?: number;
  /** Wall clock in ms (persisted lockouts must outlive the process, so not monotonic). */
  now?: () => number;
};

export type PinGuardState = { failures: number; lockedUntil: number };

export class PinGuard {
  readonly #statePath: string | undefined;
  readonly #maxAttempts: number;
  readonly #baseDelayMs: number;
  readonly #maxDelayMs: number;
  readonly #now: () => number;
  #state: PinGuardState;

  private constructor(opts: PinGuardOptions, state: PinGuardState) {
    this.#statePath = opts.statePath;
    this.#maxAttempts = opts.maxAttempts ?? 3;
    this.#baseDelayMs = opts.baseDelayMs ?? 30_000;
    this.#maxDelayMs = opts.maxDelayMs ?? 3_600_000;
    this.#now = opts.now ?? Date.now;
    this.#state = state;
  }

  static async open(opts: PinGuardOptions = {}): Promise<PinGuard> {
    let state: PinGuardState = { failures: 0, lockedUntil: 0 };
    if (opts.statePath !== undefined) {
      let raw: string | undefined;
      try {
        raw = await readFile(opts.statePath, 'utf8');
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code !== 'ENOENT') {
          throw new InfraError('StorageError', 'cannot read the unlock-attempt counter', { cause: e });
        }
      }
      if (raw !== undefined) {
        const v = safeParse(raw);
        if (!v) {
          // Fail closed: an unreadable counter must not reset the budget silently.
          throw new InfraError('StorageError', `unlock-attempt counter ${opts.statePath} is corrupt`);
        }
        state = v;
      }
    }
    return new PinGuard(opts, state);
  }

  state(): PinGuardState {
    return { ...this.#state };
  }

  /** Throws SealerUnavailable while locked out. Call before every unlock attempt. */
  check(): void {
    const wait = this.#state.lockedUntil - this.#now();
    if (wait > 0) {
      throw new InfraError(
        'SealerUnavailable',
        `too many failed unlock attempts (${this.#state.failures}); try again in ${Math.ceil(wait / 1000)} s`,
        { details: { retryAfterSeconds: Math.ceil(wait / 1000), failures: this.#state.failures } },
      );
    }
  }

  async recordFailure(): Promise<void> {
    const failures = this.#state.failures + 1;
    let lockedUntil = 0;
    if (failures >= this.#maxAttempts) {
      const exp = Math.min(failures - this.#maxAttempts, 30);
      lockedUntil = this.#now() + Math.min(this.#baseDelayMs * 2 ** exp, this.#maxDelayMs);
    }
    await this.#save({ failures, lockedUntil });
  }

  async recordSuccess(): Promise<void> {
    if (this.#state.failures === 0 && this.#state.lockedUntil === 0) return;
    await this.#save({ failures: 0, lockedUntil: 0 });
  }

  /**
   * Runs one unlock attempt under the guard. `isWrongSecret` tells a wrong PIN/passphrase (counted)
   * from other failures such as a missing token (not counted).
   */
  async attempt<T>(fn: () => Promise<T> | T, isWrongSecret: (e: unknown) => boolean): Promise<T> {
    this.check();
    let result: T;
    try {
      result = await fn();
    } catch (e) {
      if (isWrongSecret(e)) await this.recordFailure();
      throw e;
    }
    await this.recordSuccess();
    return result;
  }

  async #save(state: PinGuardState): Promise<void> {
    this.#state = state;
    if (this.#statePath === undefined) return;
    const tmp = `${this.#statePath}.${randomBytes(6).toString('hex')}.tmp`;
    try {
      const fh = await open(tmp, 'w', 0o600);
      try {
        await fh.writeFile(JSON.stringify(state));
        await fh.sync();
      } finally {
        await fh.close();
      }
      await rename(tmp, this.#statePath);
    } catch (e) {
      throw new InfraError('StorageError', 'cannot persist the unlock-attempt counter', { cause: e });
    }
  }
}

function safeParse(raw: string): PinGuardState | undefined {
  try {
    const v = JSON.parse(raw) as Record<string, unknown>;
    if (
      typeof v === 'object' &&
      v !== null &&
      Number.isSafeInteger(v['failures']) &&
      (v['failures'] as number) >= 0 &&
      Number.isSafeInteger(v['lockedUntil']) &&
      (v['lockedUntil'] as number) >= 0
    ) {
      return { failures: v['failures'] as number, lockedUntil: v['lockedUntil'] as number };
    }
  } catch {
    // fall through
  }
  return undefined;
}
