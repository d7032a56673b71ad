/**
 * PKCS#11 sealer (pkcs11js; tested against SoftHSM2). One AES-256 key per scope (per node and key
 * epoch), generated inside the token with CKA_TOKEN, CKA_PRIVATE, CKA_SENSITIVE and
 * CKA_EXTRACTABLE=false, labelled with the scope. Sealing is CKM_AES_GCM (PKCS#11 v2.40 §2.10.7)
 * with a random 96-bit IV and a 128-bit tag; the associated data binds the whole SealContext
 * (sealed-blob.ts). Destroying a scope destroys its HSM key (C_DestroyObject), so that epoch's blobs
 * can never be opened again, and leaves a tombstone, so a later `seal` in that scope is refused
 * instead of silently generating a new key (security review L-3; the software sealer does the same).
 *
 * The tombstones live in the node store (`ScopeTombstones`, NodeStore.scopeTombstones), not as token
 * objects: there is one per destroyed key epoch, forever, and HSM object slots are scarce (many
 * HSMs hold a few hundred to a few thousand objects; SoftHSM2 keeps one file per object and scans
 * them on every search), while the store already holds the epoch records they follow and syncs
 * every write. The tombstone is written (synced) before C_DestroyObject, so a crash between leaves
 * a tombstoned scope whose key still exists, which the node's start-up sweep destroys.
 *
 * At open the sealer checks every secret key on the token: AES, 256 bits, token object, private,
 * CKA_SENSITIVE and CKA_ALWAYS_SENSITIVE true, CKA_EXTRACTABLE false and CKA_NEVER_EXTRACTABLE true
 * (threats-and-faults F-19). Any other key makes it refuse to run.
 *
 * PIN attempts are bounded by a PinGuard with exponential backoff, because SoftHSM2 never locks a
 * token (F-17). Wrong PIN, missing token or missing library: InfraError('SealerUnavailable'), with
 * messages that never contain the PIN. Tampered, foreign or wrong-context blobs: 'SealError'.
 *
 * A token that goes away while the node runs (F-18: pulled, HSM restarted, its files gone) is
 * detected by the failure itself: a code that says so (CKR_SESSION_HANDLE_INVALID,
 * CKR_DEVICE_REMOVED, CKR_TOKEN_NOT_PRESENT, ...) or any other failure while the token no longer
 * answers C_GetTokenInfo (SoftHSM2 says CKR_GENERAL_ERROR for everything then). The sealer drops
 * its session and re-opens one: token found again by label, PIN login under the same PinGuard,
 * every key's attributes checked again, a bounded number of attempts with backoff. A library that
 * lost a token sees it again only after C_Finalize/C_Initialize (SoftHSM2 does), so later attempts
 * re-initialize the module; the other sealers of the process notice the new generation and re-open
 * their own sessions. While the token stays away each call fails with 'SealerUnavailable', and
 * calls fail fast (no HSM call) until the next reconnect round is due; the pause between rounds
 * doubles up to a bound. The operation that found the session broken runs once more on the new one.
 *
 * pkcs11js calls are synchronous and one PKCS#11 session is not safe for concurrent use, so every
 * call on the session runs under one async mutex. Login state is shared by all sessions of a
 * process on a token, so a process opens at most one sealer per token.
 */
import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import type * as P from 'pkcs11js';
import { InfraError } from '../protocol/errors.ts';
import { PinGuard } from './pin-guard.ts';
import {
  associatedData,
  BACKEND_PKCS11,
  checkContext,
  encodeBlob,
  IV_BYTES,
  openHeader,
  TAG_BYTES,
} from './sealed-blob.ts';
import type { ScopeTombstones, SealContext, Sealer } from './sealer.ts';
import { SOFTHSM_INSTALL_HINT } from './softhsm.ts';

const pkcs11js = createRequire(import.meta.url)('pkcs11js') as typeof P;

export type Pkcs11SealerOptions = {
  /** Path of the PKCS#11 module, e.g. /usr/lib/softhsm/libsofthsm2.so. */
  library: string;
  /** CK_TOKEN_INFO.label of the node's token (at most 32 bytes). */
  tokenLabel: string;
  pin: string;
  /**
   * SoftHSM2 only: the softhsm2.conf to put in SOFTHSM2_CONF before C_Initialize. One per process
   * (see softhsm.ts); a second, different value while the library is initialized is refused.
   */
  softhsmConf?: string;
  /** Bounded PIN attempts; default: an in-memory guard per (library, token), 3 attempts, 30 s base backoff. */
  guard?: PinGuard;
  /**
   * Where destroyed scopes are recorded (the node passes its store's). Default: in memory, for
   * tools and tests that open a token directly: their tombstones last as long as the sealer.
   */
  tombstones?: ScopeTombstones;
  /** Re-opening a lost session (see the file comment); defaults in DEFAULT_RECONNECT. */
  reconnect?: Partial<ReconnectPolicy>;
  /** Where session loss and recovery are reported (never with the PIN). */
  log?: SealerLog;
};

export type ReconnectPolicy = {
  /** Attempts per reconnect round. */
  attempts: number;
  /** Pause before the second attempt of a round; doubles for each further one. */
  delayMs: number;
  /** Pause after a failed round before the next is tried (calls fail fast meanwhile); doubles. */
  pauseMs: number;
  /** Longest pause between rounds. */
  maxPauseMs: number;
};

export const DEFAULT_RECONNECT: ReconnectPolicy = {
  attempts: 3,
  delayMs: 200,
  pauseMs: 1_000,
  maxPauseMs: 30_000,
};

export type SealerLog = {
  warn: (o: object, msg: string) => void;
  info: (o: object, msg: string) => void;
};

/** Tombstones kept in memory only (see Pkcs11SealerOptions.tombstones). */
export function memoryTombstones(): ScopeTombstones {
  const set = new Set<string>();
  return {
    has: async (scope) => set.has(scope),
    add: async (scope) => {
      set.add(scope);
    },
  };
}

/**
 * One loaded and initialized module per library path, shared by the sealers of a process.
 * `generation` counts re-initializations: a session opened in an older one is gone (its handle
 * may even name another sealer's new session), so it is never used or closed again.
 */
type Module = {
  p: P.PKCS11;
  library: string;
  conf: string | undefined;
  refs: number;
  tokens: Set<string>;
  generation: number;
};
const modules = new Map<string, Module>();

/**
 * The library may lock with the OS's primitives: a key generation runs on a worker thread
 * (C_GenerateKeyAsync, see #keyFor) while the main thread may call the library for another
 * sealer of the process; each session itself is only ever used by one call at a time (#serial).
 */
const INIT_ARGS: P.InitializationOptions = { flags: pkcs11js.CKF_OS_LOCKING_OK };
const defaultGuards = new Map<string, Promise<PinGuard>>();

function pkcs11Code(e: unknown): number | undefined {
  return e instanceof pkcs11js.Pkcs11Error ? e.code : undefined;
}

function ckrName(e: unknown): string {
  return e instanceof pkcs11js.Pkcs11Error ? e.message : 'native error';
}

function acquireModule(library: string, conf: string | undefined): Module {
  const existing = modules.get(library);
  if (existing) {
    if (conf !== undefined && existing.conf !== conf) {
      throw new InfraError(
        'SealerUnavailable',
        `this process already initialized ${library} with SOFTHSM2_CONF=${existing.conf ?? '(unset)'}; ` +
          'one SoftHSM2 configuration per process: create all tokens in one directory or run one node per process',
      );
    }
    existing.refs++;
    return existing;
  }
  if (!existsSync(library)) {
    const hint = library.includes('softhsm') ? ` ${SOFTHSM_INSTALL_HINT}` : '';
    throw new InfraError('SealerUnavailable', `PKCS#11 library not found: ${library}.${hint}`);
  }
  // SoftHSM2 reads SOFTHSM2_CONF during C_Initialize, so it must be set before.
  if (conf !== undefined) process.env['SOFTHSM2_CONF'] = conf;
  const p = new pkcs11js.PKCS11();
  try {
    p.load(library);
  } catch (e) {
    throw new InfraError('SealerUnavailable', `cannot load PKCS#11 library ${library}`, { cause: e });
  }
  try {
    p.C_Initialize(INIT_ARGS);
  } catch (e) {
    if (pkcs11Code(e) !== pkcs11js.CKR_CRYPTOKI_ALREADY_INITIALIZED) {
      try {
        p.close();
      } catch {
        // already failing
      }
      throw new InfraError('SealerUnavailable', `C_Initialize failed for ${library} (${ckrName(e)})`, {
        cause: e,
      });
    }
  }
  const m: Module = {
    p,
    library,
    conf: conf ?? process.env['SOFTHSM2_CONF'],
    refs: 1,
    tokens: new Set(),
    generation: 0,
  };
  modules.set(library, m);
  return m;
}

/**
 * C_Finalize then C_Initialize: the library reads its tokens again (how SoftHSM2 sees a token that
 * came back). Every session of the process ends with it; the generation tells the sealers so.
 */
function reinitialize(m: Module): void {
  try {
    m.p.C_Finalize();
  } catch {
    // not initialized any more: initialize below
  }
  m.generation++;
  try {
    m.p.C_Initialize(INIT_ARGS);
  } catch (e) {
    if (pkcs11Code(e) !== pkcs11js.CKR_CRYPTOKI_ALREADY_INITIALIZED) {
      // A token directory gone for good can make the library fail to initialize at all.
      throw new InfraError('SealerUnavailable', `C_Initialize failed for ${m.library} (${ckrName(e)})`, {
        cause: e,
        details: { reason: 'token-unavailable' },
      });
    }
  }
}

function releaseModule(m: Module): void {
  if (--m.refs > 0) return;
  modules.delete(m.library);
  try {
    m.p.C_Finalize();
  } catch {
    // nothing to do: the process is done with the library
  }
  try {
    m.p.close();
  } catch {
    // idem
  }
}

/** Reads a CK_BBOOL or CK_ULONG attribute value (native endianness, LE on our platforms). */
function attrNum(v: Buffer | undefined): number | undefined {
  if (!v || v.length === 0) return undefined;
  if (v.length === 1) return v[0];
  if (v.length === 4) return v.readUInt32LE(0);
  if (v.length === 8) return Number(v.readBigUInt64LE(0));
  return undefined;
}

/** Codes meaning the session, token or device is gone: unavailable, not a bad blob. */
const UNAVAILABLE_CODES = new Set<number>([
  pkcs11js.CKR_SESSION_HANDLE_INVALID,
  pkcs11js.CKR_SESSION_CLOSED,
  pkcs11js.CKR_DEVICE_REMOVED,
  pkcs11js.CKR_DEVICE_ERROR,
  pkcs11js.CKR_TOKEN_NOT_PRESENT,
  pkcs11js.CKR_USER_NOT_LOGGED_IN,
  pkcs11js.CKR_CRYPTOKI_NOT_INITIALIZED,
]);

export class Pkcs11Sealer implements Sealer {
  readonly kind = 'pkcs11' as const;
  readonly #m: Module;
  #slot: P.Handle;
  readonly #tokenLabel: string;
  /** Kept to log in again after the session is lost (F-18: recover after reconnect). */
  #pin: string;
  readonly #guard: PinGuard;
  #session: P.Handle | undefined;
  /** The module generation #session was opened in. */
  #gen: number;
  readonly #policy: ReconnectPolicy;
  readonly #log: SealerLog | undefined;
  /** Monotonic time before which no reconnect is tried (calls fail fast), and the next pause. */
  #retryAt = 0;
  #pause: number;
  readonly #keys = new Map<string, P.Handle>();
  readonly #tombstones: ScopeTombstones;
  /** Scopes destroyed by this object: checked inside the serial section, where no await can race. */
  readonly #destroyed = new Set<string>();
  #tail: Promise<unknown> = Promise.resolve();
  #closed = false;

  private constructor(
    m: Module,
    slot: P.Handle,
    opts: Pkcs11SealerOptions,
    guard: PinGuard,
    session: P.Handle,
  ) {
    this.#m = m;
    this.#slot = slot;
    this.#tokenLabel = opts.tokenLabel;
    this.#pin = opts.pin;
    this.#guard = guard;
    this.#session = session;
    this.#gen = m.generation;
    this.#tombstones = opts.tombstones ?? memoryTombstones();
    this.#policy = { ...DEFAULT_RECONNECT, ...opts.reconnect };
    this.#pause = this.#policy.pauseMs;
    this.#log = opts.log;
  }

  /**
   * Loads the library, finds the token by label, logs in (bounded attempts) and checks the
   * attributes of every secret key on the token. Throws InfraError('SealerUnavailable') on failure.
   */
  static async open(opts: Pkcs11SealerOptions): Promise<Pkcs11Sealer> {
    const labelBytes = Buffer.byteLength(opts.tokenLabel ?? '');
    if (labelBytes === 0 || labelBytes > 32) {
      throw new InfraError('SealerUnavailable', 'PKCS#11 token label must be 1 to 32 bytes');
    }
    if (typeof opts.pin !== 'string' || opts.pin.length === 0) {
      throw new InfraError('SealerUnavailable', 'no PKCS#11 PIN configured');
    }
    const guard = opts.guard ?? (await defaultGuard(opts.library, opts.tokenLabel));
    // Refuse early while locked out, before touching the module.
    guard.check();
    const m = acquireModule(opts.library, opts.softhsmConf);
    let session: P.Handle | undefined;
    // Until a sealer owns the session and the module reference, failures release them here.
    let owned = false;
    try {
      if (m.tokens.has(opts.tokenLabel)) {
        throw new InfraError(
          'SealerUnavailable',
          `token '${opts.tokenLabel}' is already open in this process`,
        );
      }
      const slot = findSlot(m.p, opts.tokenLabel);
      session = openSession(m.p, slot);
      const s = session;
      await guard.attempt(() => login(m.p, s, opts.pin, opts.tokenLabel), isWrongPin);
      const sealer = new Pkcs11Sealer(m, slot, opts, guard, session);
      m.tokens.add(opts.tokenLabel);
      owned = true;
      try {
        await sealer.checkKeys();
      } catch (e) {
        await sealer.close();
        throw e;
      }
      return sealer;
    } catch (e) {
      if (!owned) {
        if (session !== undefined) {
          try {
            m.p.C_CloseSession(session);
          } catch {
            // best effort
          }
        }
        releaseModule(m);
      }
      throw e;
    }
  }

  #serial<T>(fn: () => T | Promise<T>): Promise<T> {
    const run = this.#tail.then(() => {
      if (this.#closed) throw new InfraError('SealerUnavailable', 'PKCS#11 sealer is closed');
      return fn();
    });
    this.#tail = run.catch(() => undefined);
    return run;
  }

  /** A session of the current module generation that no call has found broken. */
  #live(): boolean {
    return this.#session !== undefined && this.#gen === this.#m.generation;
  }

  /**
   * Runs `fn` on the live session, in the serial section. A failure that means the session or the
   * token is gone drops the session, re-opens it and runs `fn` once more (see the file comment);
   * any other failure is `refused(e)` (default: SealError naming the CKR code).
   */
  #op<T>(
    what: string,
    fn: (s: P.Handle) => T | Promise<T>,
    refused?: (e: unknown) => InfraError,
  ): Promise<T> {
    return this.#serial(async () => {
      for (let round = 0; ; round++) {
        if (!this.#live()) await this.#reconnect(what);
        // Another sealer of this process may have re-initialized the module meanwhile.
        if (!this.#live()) {
          if (round < 2) continue;
          throw this.#unavailable(what, 'the PKCS#11 module was re-initialized');
        }
        try {
          return await fn(this.#session!);
        } catch (e) {
          if (!this.#lostBy(e)) {
            if (e instanceof InfraError) throw e;
            throw refused ? refused(e) : new InfraError('SealError', `HSM refused ${what} (${ckrName(e)})`);
          }
          this.#log?.warn({ token: this.#tokenLabel, during: what, ckr: ckrName(e) }, 'HSM session lost');
          this.#dropSession();
          if (round > 0) throw this.#unavailable(what, ckrName(e), e);
        }
      }
    });
  }

  /** Whether a failure means the session or token is gone (not a refusal of this operation). */
  #lostBy(e: unknown): boolean {
    const code = pkcs11Code(e);
    if (code !== undefined && UNAVAILABLE_CODES.has(code)) return true;
    if (code === undefined && !(e instanceof InfraError)) return true; // not even a CKR: native failure
    // Other codes are ambiguous (SoftHSM2 reports a bad GCM tag and a vanished token alike as
    // CKR_GENERAL_ERROR): the token answering or not tells them apart.
    try {
      this.#m.p.C_GetTokenInfo(this.#slot);
      return false;
    } catch {
      return true;
    }
  }

  #unavailable(what: string, why: string, cause?: unknown): InfraError {
    return new InfraError(
      'SealerUnavailable',
      `HSM token '${this.#tokenLabel}' is unavailable during ${what} (${why})`,
      { details: { reason: 'token-unavailable' }, ...(cause === undefined ? {} : { cause }) },
    );
  }

  /**
   * One reconnect round: up to `attempts` tries, with doubling pauses between them, to find the
   * token again, open a session, log in (under the PIN guard) and check the keys. Later tries
   * re-initialize the module first. Throws SealerUnavailable when the round fails; calls then fail
   * fast until the next round is due. A wrong PIN or a lockout ends the round at once.
   */
  async #reconnect(what: string): Promise<void> {
    const now = performance.now();
    if (now < this.#retryAt) {
      const wait = Math.ceil((this.#retryAt - now) / 1000);
      throw new InfraError(
        'SealerUnavailable',
        `HSM token '${this.#tokenLabel}' is unavailable (${what}); next reconnect attempt in ${wait} s`,
        { details: { reason: 'token-unavailable', retryAfterSeconds: wait } },
      );
    }
    this.#dropSession();
    let last: unknown;
    for (let i = 0; i < this.#policy.attempts; i++) {
      if (i > 0) await sleep(this.#policy.delayMs * 2 ** (i - 1));
      if (this.#closed) throw new InfraError('SealerUnavailable', 'PKCS#11 sealer is closed');
      try {
        if (i > 0) reinitialize(this.#m);
        await this.#open();
        this.#retryAt = 0;
        this.#pause = this.#policy.pauseMs;
        this.#log?.info({ token: this.#tokenLabel, attempt: i + 1 }, 'HSM session re-opened');
        return;
      } catch (e) {
        last = e;
        this.#dropSession();
        if (e instanceof InfraError && e.details?.['reason'] !== 'token-unavailable') break;
      }
    }
    this.#retryAt = performance.now() + this.#pause;
    this.#log?.warn(
      {
        token: this.#tokenLabel,
        nextAttemptMs: this.#pause,
        err: last instanceof Error ? last.message : 'failed',
      },
      'HSM token unavailable',
    );
    this.#pause = Math.min(this.#pause * 2, this.#policy.maxPauseMs);
    if (last instanceof InfraError && last.details?.['reason'] !== 'token-unavailable') throw last;
    throw this.#unavailable(what, last instanceof InfraError ? last.message : ckrName(last), last);
  }

  /**
   * Finds the token by label, opens a session and logs in, with no await in between (a handle of
   * a re-initialized module could name another sealer's session), then checks every key.
   * Failures of the token itself carry details.reason 'token-unavailable'; a wrong PIN or a
   * non-compliant key does not, and ends the reconnect round.
   */
  async #open(): Promise<void> {
    this.#guard.check();
    const p = this.#m.p;
    let s: P.Handle;
    let slot: P.Handle;
    try {
      slot = findSlot(p, this.#tokenLabel);
      s = openSession(p, slot);
    } catch (e) {
      throw this.#unavailable('re-opening the session', e instanceof InfraError ? e.message : ckrName(e), e);
    }
    try {
      login(p, s, this.#pin, this.#tokenLabel);
    } catch (e) {
      try {
        p.C_CloseSession(s);
      } catch {
        // best effort
      }
      if (isWrongPin(e)) {
        await this.#guard.recordFailure();
        throw e;
      }
      throw this.#unavailable('login', e instanceof InfraError ? e.message : ckrName(e), e);
    }
    this.#slot = slot;
    this.#session = s;
    this.#gen = this.#m.generation;
    // The token that came back is checked like one at open (F-19), before any await.
    try {
      const keys = this.#find(s, [{ type: pkcs11js.CKA_CLASS, value: pkcs11js.CKO_SECRET_KEY }]);
      for (const h of keys) this.#checkKey(s, h);
    } catch (e) {
      if (e instanceof InfraError) throw e;
      throw this.#unavailable('the key attribute check', ckrName(e), e);
    }
    await this.#guard.recordSuccess();
  }

  /** Forgets the session; closes it only if it belongs to the current module generation. */
  #dropSession(): void {
    if (this.#session === undefined) return;
    if (this.#gen === this.#m.generation) {
      try {
        this.#m.p.C_CloseSession(this.#session);
      } catch {
        // it is already gone
      }
    }
    this.#session = undefined;
    this.#keys.clear();
  }

  #find(s: P.Handle, template: P.Template): P.Handle[] {
    const p = this.#m.p;
    p.C_FindObjectsInit(s, template);
    const out: P.Handle[] = [];
    try {
      for (;;) {
        const batch = p.C_FindObjects(s, 64);
        if (batch.length === 0) break;
        out.push(...batch);
      }
    } finally {
      p.C_FindObjectsFinal(s);
    }
    // SoftHSM2 answers a search on a token that went away with nothing, not an error: "no such
    // key" holds only while the token still answers. Otherwise a destroyScope would report a key
    // destroyed that still exists, and forget it was owed (L-3). Throws, so #op sees the loss.
    if (out.length === 0) p.C_GetTokenInfo(this.#slot);
    return out;
  }

  /** Refuses a key that is not a sensitive, never-extractable AES-256 token key. */
  #checkKey(s: P.Handle, h: P.Handle): void {
    const p = this.#m.p;
    const want: [number, string, number][] = [
      [pkcs11js.CKA_KEY_TYPE, 'CKA_KEY_TYPE=CKK_AES', pkcs11js.CKK_AES],
      [pkcs11js.CKA_VALUE_LEN, 'CKA_VALUE_LEN=32', 32],
      [pkcs11js.CKA_TOKEN, 'CKA_TOKEN', 1],
      [pkcs11js.CKA_PRIVATE, 'CKA_PRIVATE', 1],
      [pkcs11js.CKA_SENSITIVE, 'CKA_SENSITIVE', 1],
      [pkcs11js.CKA_ALWAYS_SENSITIVE, 'CKA_ALWAYS_SENSITIVE', 1],
      [pkcs11js.CKA_EXTRACTABLE, 'CKA_EXTRACTABLE=false', 0],
      [pkcs11js.CKA_NEVER_EXTRACTABLE, 'CKA_NEVER_EXTRACTABLE', 1],
    ];
    const attrs = p.C_GetAttributeValue(s, h, [
      { type: pkcs11js.CKA_LABEL },
      ...want.map(([type]) => ({ type })),
    ]);
    const label = (attrs[0]?.value as Buffer | undefined)?.toString('utf8') ?? '?';
    const bad = want
      .filter(([, , v], i) => attrNum(attrs[i + 1]?.value as Buffer | undefined) !== v)
      .map(([, n]) => n);
    if (bad.length > 0) {
      throw new InfraError(
        'SealerUnavailable',
        `HSM key '${label}' on token '${this.#tokenLabel}' is not compliant (needs ${bad.join(', ')}); refusing to run`,
        { details: { label, failed: bad } },
      );
    }
  }

  /**
   * Checks the attributes of every secret key on the token (run at open). Throws
   * SealerUnavailable naming the first non-compliant key.
   */
  checkKeys(): Promise<number> {
    return this.#op('the key attribute check', (s) => {
      const keys = this.#find(s, [{ type: pkcs11js.CKA_CLASS, value: pkcs11js.CKO_SECRET_KEY }]);
      for (const h of keys) this.#checkKey(s, h);
      return keys.length;
    });
  }

  /** Labels (scopes) of the secret keys on the token, e.g. to find orphaned epochs. */
  listScopes(): Promise<string[]> {
    return this.#op('listing keys', (s) => {
      const keys = this.#find(s, [{ type: pkcs11js.CKA_CLASS, value: pkcs11js.CKO_SECRET_KEY }]);
      return keys.map((h) => {
        const [a] = this.#m.p.C_GetAttributeValue(s, h, [{ type: pkcs11js.CKA_LABEL }]);
        return (a?.value as Buffer | undefined)?.toString('utf8') ?? '';
      });
    });
  }

  #keyFor(s: P.Handle, scope: string, create: false): P.Handle;
  #keyFor(s: P.Handle, scope: string, create: true): P.Handle | Promise<P.Handle>;
  /**
   * The scope's key: cached, found on the token, or (`create`) generated. A generation runs on a
   * worker thread (C_GenerateKeyAsync: SoftHSM2 writes a token object attribute by attribute,
   * milliseconds the node's event loop keeps for its sessions); the caller's serial section holds
   * the session until it ends.
   */
  #keyFor(s: P.Handle, scope: string, create: boolean): P.Handle | Promise<P.Handle> {
    const cached = this.#keys.get(scope);
    if (cached) return cached;
    const found = this.#find(s, [
      { type: pkcs11js.CKA_CLASS, value: pkcs11js.CKO_SECRET_KEY },
      { type: pkcs11js.CKA_LABEL, value: scope },
    ]);
    if (found.length > 1) {
      throw new InfraError('SealError', `several HSM keys are labelled '${scope}'; refusing to guess`);
    }
    const h = found[0];
    if (h === undefined) {
      if (!create)
        throw new InfraError('SealError', `no HSM key for scope ${scope} (foreign or destroyed blob)`);
      return this.#m.p
        .C_GenerateKeyAsync(s, { mechanism: pkcs11js.CKM_AES_KEY_GEN }, [
          { type: pkcs11js.CKA_CLASS, value: pkcs11js.CKO_SECRET_KEY },
          { type: pkcs11js.CKA_KEY_TYPE, value: pkcs11js.CKK_AES },
          { type: pkcs11js.CKA_VALUE_LEN, value: 32 },
          { type: pkcs11js.CKA_LABEL, value: scope },
          { type: pkcs11js.CKA_TOKEN, value: true },
          { type: pkcs11js.CKA_PRIVATE, value: true },
          { type: pkcs11js.CKA_SENSITIVE, value: true },
          { type: pkcs11js.CKA_EXTRACTABLE, value: false },
          { type: pkcs11js.CKA_MODIFIABLE, value: false },
          { type: pkcs11js.CKA_ENCRYPT, value: true },
          { type: pkcs11js.CKA_DECRYPT, value: true },
          { type: pkcs11js.CKA_WRAP, value: false },
          { type: pkcs11js.CKA_UNWRAP, value: false },
          { type: pkcs11js.CKA_SIGN, value: false },
          { type: pkcs11js.CKA_VERIFY, value: false },
          { type: pkcs11js.CKA_DERIVE, value: false },
        ])
        .then((g) => this.#checked(s, scope, g));
    }
    return this.#checked(s, scope, h);
  }

  /** Found keys are checked before first use, not only at open: one may have been added since. */
  #checked(s: P.Handle, scope: string, h: P.Handle): P.Handle {
    this.#checkKey(s, h);
    this.#keys.set(scope, h);
    return h;
  }

  #gcm(iv: Uint8Array, aad: Uint8Array): P.Mechanism {
    const parameter: P.GcmParams = {
      type: pkcs11js.CK_PARAMS_AES_GCM,
      iv: Buffer.from(iv),
      ivBits: IV_BYTES * 8,
      aad: Buffer.from(aad),
      tagBits: TAG_BYTES * 8,
    };
    return { mechanism: pkcs11js.CKM_AES_GCM, parameter };
  }

  async seal(ctx: SealContext, plaintext: Uint8Array): Promise<Uint8Array> {
    checkContext(ctx);
    const tombstoned = await this.#tombstones.has(ctx.scope);
    if (tombstoned) throw new InfraError('SealError', `sealer scope ${ctx.scope} has been destroyed`);
    return this.#op('sealing', async (s) => {
      if (this.#destroyed.has(ctx.scope))
        throw new InfraError('SealError', `sealer scope ${ctx.scope} has been destroyed`);
      const key = await this.#keyFor(s, ctx.scope, true);
      // The scope may have been destroyed while its key was made (destroyScope marks it first).
      if (this.#destroyed.has(ctx.scope))
        throw new InfraError('SealError', `sealer scope ${ctx.scope} has been destroyed`);
      // Random 96-bit IV: one key per scope and few seals per key, far below the 2^32
      // invocations NIST SP 800-38D §8.3 allows for random IVs.
      const iv = new Uint8Array(randomBytes(IV_BYTES));
      const p = this.#m.p;
      p.C_EncryptInit(s, this.#gcm(iv, associatedData(BACKEND_PKCS11, ctx)), key);
      const ct = p.C_Encrypt(s, Buffer.from(plaintext), Buffer.alloc(plaintext.length + TAG_BYTES));
      return encodeBlob(BACKEND_PKCS11, ctx.scope, iv, new Uint8Array(ct));
    });
  }

  /**
   * Makes the scope's key now, ahead of its first `seal` (node/key-events.ts calls it when a key
   * event's session starts, so the generation overlaps the protocol rounds instead of standing
   * between the new share and its confirmation). The rules of `seal`: a destroyed scope is refused.
   */
  async prepareScope(ctx: SealContext): Promise<void> {
    checkContext(ctx);
    if (await this.#tombstones.has(ctx.scope))
      throw new InfraError('SealError', `sealer scope ${ctx.scope} has been destroyed`);
    await this.#op('preparing a scope', async (s) => {
      if (this.#destroyed.has(ctx.scope))
        throw new InfraError('SealError', `sealer scope ${ctx.scope} has been destroyed`);
      await this.#keyFor(s, ctx.scope, true);
    });
  }

  async unseal(ctx: SealContext, sealed: Uint8Array): Promise<Uint8Array> {
    const blob = openHeader(BACKEND_PKCS11, ctx, sealed);
    return this.#op(
      'unsealing',
      (s) => {
        const key = this.#keyFor(s, ctx.scope, false);
        const p = this.#m.p;
        const out = Buffer.alloc(blob.ciphertext.length);
        try {
          p.C_DecryptInit(s, this.#gcm(blob.iv, associatedData(BACKEND_PKCS11, ctx)), key);
          const pt = p.C_Decrypt(s, Buffer.from(blob.ciphertext), out);
          return new Uint8Array(pt);
        } catch (e) {
          out.fill(0);
          throw e;
        }
      },
      // SoftHSM2 reports a failed tag as CKR_GENERAL_ERROR, others as CKR_ENCRYPTED_DATA_INVALID.
      () => new InfraError('SealError', 'sealed blob does not open: tampered, foreign or wrong context'),
    );
  }

  async destroyScope(scope: string): Promise<void> {
    if (this.#closed) throw new InfraError('SealerUnavailable', 'PKCS#11 sealer is closed');
    // Tombstone first (synced): from here on no seal re-creates the scope, even after a crash.
    await this.#tombstones.add(scope);
    this.#destroyed.add(scope);
    return this.#op('destroying a scope', (s) => {
      const found = this.#find(s, [
        { type: pkcs11js.CKA_CLASS, value: pkcs11js.CKO_SECRET_KEY },
        { type: pkcs11js.CKA_LABEL, value: scope },
      ]);
      for (const h of found) this.#m.p.C_DestroyObject(s, h);
      this.#keys.delete(scope);
    });
  }

  async close(): Promise<void> {
    await this.#tail;
    if (this.#closed) return;
    this.#closed = true;
    if (this.#live() && this.#session !== undefined) {
      try {
        this.#m.p.C_Logout(this.#session);
      } catch {
        // not logged in any more
      }
    }
    this.#dropSession();
    this.#pin = '';
    this.#m.tokens.delete(this.#tokenLabel);
    releaseModule(this.#m);
  }
}

function findSlot(p: P.PKCS11, label: string): P.Handle {
  let slots: P.Handle[];
  try {
    slots = p.C_GetSlotList(true);
  } catch (e) {
    throw new InfraError('SealerUnavailable', `cannot list PKCS#11 slots (${ckrName(e)})`, { cause: e });
  }
  const matches = slots.filter((s) => {
    try {
      return p.C_GetTokenInfo(s).label.trimEnd() === label;
    } catch {
      return false;
    }
  });
  if (matches.length === 0) {
    throw new InfraError(
      'SealerUnavailable',
      `PKCS#11 token '${label}' not found (is the token created and SOFTHSM2_CONF right?)`,
    );
  }
  if (matches.length > 1)
    throw new InfraError('SealerUnavailable', `several PKCS#11 tokens are labelled '${label}'`);
  const slot = matches[0]!;
  const info = p.C_GetTokenInfo(slot);
  if ((info.flags & pkcs11js.CKF_USER_PIN_INITIALIZED) === 0) {
    throw new InfraError('SealerUnavailable', `PKCS#11 token '${label}' has no user PIN set`);
  }
  return slot;
}

/** CKU_USER login; an already logged-in token is fine. Errors name the token, never the PIN. */
function login(p: P.PKCS11, s: P.Handle, pin: string, label: string): void {
  try {
    p.C_Login(s, pkcs11js.CKU_USER, pin);
  } catch (e) {
    const code = pkcs11Code(e);
    if (code === pkcs11js.CKR_USER_ALREADY_LOGGED_IN) return;
    if (code === pkcs11js.CKR_PIN_INCORRECT || code === pkcs11js.CKR_PIN_LEN_RANGE) {
      throw new InfraError('SealerUnavailable', `wrong PIN for token '${label}'`, {
        details: { reason: 'pin-incorrect' },
      });
    }
    if (code === pkcs11js.CKR_PIN_LOCKED) {
      throw new InfraError('SealerUnavailable', `token '${label}' is locked`, {
        details: { reason: 'pin-locked' },
      });
    }
    throw new InfraError('SealerUnavailable', `login to token '${label}' failed (${ckrName(e)})`);
  }
}

function isWrongPin(e: unknown): boolean {
  return e instanceof InfraError && e.details?.['reason'] === 'pin-incorrect';
}

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

function openSession(p: P.PKCS11, slot: P.Handle): P.Handle {
  try {
    return p.C_OpenSession(slot, pkcs11js.CKF_SERIAL_SESSION | pkcs11js.CKF_RW_SESSION);
  } catch (e) {
    throw new InfraError('SealerUnavailable', `cannot open a PKCS#11 session (${ckrName(e)})`, { cause: e });
  }
}

function defaultGuard(library: string, label: string): Promise<PinGuard> {
  const k = `${library}\u0000${label}`;
  let g = defaultGuards.get(k);
  if (!g) {
    g = PinGuard.open();
    defaultGuards.set(k, g);
  }
  return g;
}
