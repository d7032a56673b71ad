/**
 * The memory behind the session layer's ready barrier (security review M-1). Node-to-node messages
 * that arrive before this node has started their session are held here only if the coordinator
 * announced the session (`prepare` RPC, before it asks any member to start) and only from the
 * members it named; and then within a byte budget per peer and one in total (encoded frame bytes,
 * the frames themselves are what is held) and a deadline on every entry. Everything else is refused
 * with a typed error, never held: an allow-listed peer can make this node keep at most
 * `perPeerBytes` of its frames, each for at most `ttlMs`, however much it sends.
 */
import { KmsError } from '../protocol/errors.ts';

export type EarlyLimits = {
  /** Bytes of early frames held from one peer, over all sessions. */
  readonly perPeerBytes: number;
  /** Bytes of early frames held from all peers. */
  readonly totalBytes: number;
  /** Lifetime of one held frame (also capped by its session's announcement). */
  readonly ttlMs: number;
  /** Announced sessions not yet started, at most. */
  readonly maxAnnounced: number;
};

/**
 * The largest real early message is ~10 KiB (protocol/codec.ts: a reshare to n = 15 on ed448), and a
 * peer sends a session at most a round or two before this node starts it, so 4 MiB per peer holds
 * hundreds of concurrent sessions' worth while a flood of maximal (256 KiB) frames stops at 16.
 */
export const DEFAULT_EARLY_LIMITS: EarlyLimits = {
  perPeerBytes: 4 * 1024 * 1024,
  totalBytes: 32 * 1024 * 1024,
  ttlMs: 30_000,
  maxAnnounced: 1024,
};

export type HeldFrame = { readonly from: string; readonly frame: Uint8Array };

type Held = HeldFrame & { readonly expires: number };
type Announced = { members: ReadonlySet<string>; deadline: number; held: Held[] };

export type EarlyStats = {
  /** Announced sessions not started yet. */
  readonly announced: number;
  /** Bytes held, in total and by peer. */
  readonly bytes: number;
  readonly bytesByPeer: ReadonlyMap<string, number>;
  /** Frames refused (unannounced session, non-member, over budget) since start. */
  readonly refused: number;
  /** Held frames dropped unused (deadline passed) since start. */
  readonly expired: number;
};

export class EarlyBuffer {
  readonly #limits: EarlyLimits;
  readonly #now: () => number;
  readonly #sessions = new Map<string, Announced>();
  readonly #bytesByPeer = new Map<string, number>();
  #bytes = 0;
  #refused = 0;
  #expired = 0;
  #timer: ReturnType<typeof setInterval> | undefined;

  constructor(opts: { limits?: Partial<EarlyLimits>; now?: () => number } = {}) {
    this.#limits = { ...DEFAULT_EARLY_LIMITS, ...opts.limits };
    for (const [name, v] of Object.entries(this.#limits)) {
      if (!Number.isSafeInteger(v) || v <= 0) {
        throw new KmsError('ValidationError', `early buffer ${name} must be a positive integer`);
      }
    }
    this.#now = opts.now ?? (() => performance.now());
  }

  get stats(): EarlyStats {
    return {
      announced: this.#sessions.size,
      bytes: this.#bytes,
      bytesByPeer: new Map(this.#bytesByPeer),
      refused: this.#refused,
      expired: this.#expired,
    };
  }

  has(sessionId: string): boolean {
    return this.#sessions.has(sessionId);
  }

  /**
   * Records that `sessionId` will start here with `members` (node ids) within `ttlMs`. Announcing
   * again (a coordinator retry) renews the deadline and member list and keeps what is held.
   */
  announce(sessionId: string, members: readonly string[], ttlMs: number): void {
    const now = this.#now();
    this.sweep(now);
    const deadline = now + ttlMs;
    const known = this.#sessions.get(sessionId);
    if (known) {
      known.members = new Set(members);
      known.deadline = deadline;
      return;
    }
    if (this.#sessions.size >= this.#limits.maxAnnounced) {
      throw new KmsError(
        'Overloaded',
        `more than ${this.#limits.maxAnnounced} sessions announced and not started`,
      );
    }
    this.#sessions.set(sessionId, { members: new Set(members), deadline, held: [] });
    this.#arm();
  }

  /**
   * Holds one frame of an announced session from one of its members, or throws: ContextMismatch
   * (not announced, or `from` is not a member), Overloaded (a byte budget is spent). The frame is
   * copied, so a view into a larger transport buffer does not keep that buffer alive.
   */
  hold(sessionId: string, from: string, frame: Uint8Array): void {
    const now = this.#now();
    this.sweep(now);
    const a = this.#sessions.get(sessionId);
    if (!a) throw this.#refuse('ContextMismatch', `session ${sessionId} was not announced to this node`);
    if (!a.members.has(from)) {
      throw this.#refuse('ContextMismatch', `${from} is not a member of session ${sessionId}`);
    }
    const size = frame.byteLength;
    const peer = this.#bytesByPeer.get(from) ?? 0;
    if (peer + size > this.#limits.perPeerBytes) {
      throw this.#refuse(
        'Overloaded',
        `early messages from ${from} exceed ${this.#limits.perPeerBytes} bytes`,
      );
    }
    if (this.#bytes + size > this.#limits.totalBytes) {
      throw this.#refuse('Overloaded', `early messages exceed ${this.#limits.totalBytes} bytes`);
    }
    a.held.push({ from, frame: frame.slice(), expires: Math.min(now + this.#limits.ttlMs, a.deadline) });
    this.#account(from, size);
  }

  /** The session starts: its held frames in arrival order (expired ones left out); forgets it. */
  take(sessionId: string): HeldFrame[] {
    const a = this.#sessions.get(sessionId);
    if (!a) return [];
    this.#sessions.delete(sessionId);
    const now = this.#now();
    const out: HeldFrame[] = [];
    for (const h of a.held) {
      this.#account(h.from, -h.frame.byteLength);
      if (h.expires > now) out.push({ from: h.from, frame: h.frame });
      else this.#expired++;
    }
    this.#disarmIfIdle();
    return out;
  }

  /** Drops expired announcements and held frames. Work is linear in what is held, itself bounded. */
  sweep(now: number = this.#now()): void {
    for (const [sid, a] of this.#sessions) {
      if (a.deadline <= now) {
        for (const h of a.held) this.#account(h.from, -h.frame.byteLength);
        this.#expired += a.held.length;
        this.#sessions.delete(sid);
        continue;
      }
      // Held in arrival order with one lifetime: the expired ones are a prefix.
      let n = 0;
      while (n < a.held.length && a.held[n]!.expires <= now) {
        this.#account(a.held[n]!.from, -a.held[n]!.frame.byteLength);
        n++;
      }
      if (n > 0) {
        a.held.splice(0, n);
        this.#expired += n;
      }
    }
    this.#disarmIfIdle();
  }

  /** Forgets everything (the node stops). */
  clear(): void {
    this.#sessions.clear();
    this.#bytesByPeer.clear();
    this.#bytes = 0;
    this.#disarmIfIdle();
  }

  #refuse(code: 'ContextMismatch' | 'Overloaded', message: string): KmsError {
    this.#refused++;
    return new KmsError(code, message);
  }

  #account(peer: string, delta: number): void {
    this.#bytes += delta;
    const v = (this.#bytesByPeer.get(peer) ?? 0) + delta;
    if (v > 0) this.#bytesByPeer.set(peer, v);
    else this.#bytesByPeer.delete(peer);
  }

  /** A sweep timer runs only while something is announced; unref'd, it never keeps the process up. */
  #arm(): void {
    if (this.#timer) return;
    const every = Math.max(50, Math.min(1_000, this.#limits.ttlMs));
    this.#timer = setInterval(() => this.sweep(), every);
    this.#timer.unref();
  }

  #disarmIfIdle(): void {
    if (this.#sessions.size > 0 || !this.#timer) return;
    clearInterval(this.#timer);
    this.#timer = undefined;
  }
}
