/**
 * Software sealer: AES-256-GCM under keys derived from a passphrase. The embedded default for
 * development; production nodes should use the PKCS#11 sealer.
 *
 * Key hierarchy:
 * - master key = scrypt(passphrase, salt, N = 2^logN, r = 8, p = 1), 32 bytes (RFC 7914). The salt
 *   and cost parameters live in a small params record that the key store persists, together with a
 *   check value = HKDF-SHA256(master, salt, ".../check") that detects a wrong passphrase at open time
 *   (it reveals nothing a sealed blob would not: both allow only an offline guess of the passphrase).
 * - wrap key = HKDF-SHA256(master, salt, ".../wrap") (RFC 5869).
 * - one random 256-bit data key per scope, stored wrapped (AES-256-GCM under the wrap key, the scope
 *   as associated data). destroyScope deletes the wrapped key and leaves a tombstone, so every blob
 *   of that scope becomes unopenable and the scope is never silently re-keyed.
 *
 * Blobs use the shared format of sealed-blob.ts. Wrong passphrase: InfraError('SealerUnavailable');
 * tampered, foreign or wrong-context blob, or a destroyed scope: InfraError('SealError').
 */
import { createCipheriv, createDecipheriv, randomBytes, timingSafeEqual } from 'node:crypto';
import { hkdf } from '@noble/hashes/hkdf.js';
import { scryptAsync } from '@noble/hashes/scrypt.js';
import { sha256 } from '@noble/hashes/sha2.js';
import { bytesToHex, hexToBytes } from '@noble/hashes/utils.js';
import type { AbstractLevel } from 'abstract-level';
import { InfraError } from '../protocol/errors.ts';
import type { PinGuard } from './pin-guard.ts';
import {
  associatedData,
  BACKEND_SOFTWARE,
  checkContext,
  encodeBlob,
  IV_BYTES,
  openHeader,
  TAG_BYTES,
} from './sealed-blob.ts';
import type { SealContext, Sealer } from './sealer.ts';

/** Where the software sealer keeps its params record and wrapped per-scope keys. Writes are synced. */
export interface SealerKeyStore {
  getParams(): Promise<string | undefined>;
  putParams(params: string): Promise<void>;
  /** The wrapped key, `'destroyed'` for a tombstone, or undefined. */
  getScopeKey(scope: string): Promise<Uint8Array | 'destroyed' | undefined>;
  putScopeKey(scope: string, wrapped: Uint8Array): Promise<void>;
  /** Deletes the wrapped key and writes the tombstone in one synced batch. */
  destroyScopeKey(scope: string): Promise<void>;
  /** Scopes with a live wrapped key (tombstones excluded). */
  listScopes(): Promise<string[]>;
}

type AnyLevel = AbstractLevel<any, any, any>;

const KEY_ENC = { keyEncoding: 'utf8', valueEncoding: 'view' } as const;
/** `sync` is classic-level's fsync option; held in a variable because abstract-level's types omit it. */
const SYNC = { ...KEY_ENC, sync: true };
const TOMBSTONE = Uint8Array.of(0);
const utf8 = (s: string): Uint8Array => new TextEncoder().encode(s);

/** A SealerKeyStore on a LevelDB (sub)level: `params` and `scope!<scope>` keys. */
export function levelSealerKeyStore(db: AnyLevel): SealerKeyStore {
  const wrap = async <T>(what: string, fn: () => Promise<T>): Promise<T> => {
    try {
      return await fn();
    } catch (e) {
      throw new InfraError('StorageError', `sealer key store: cannot ${what}`, { cause: e });
    }
  };
  return {
    getParams: () =>
      wrap('read params', async () => {
        const v = (await db.get('params', KEY_ENC)) as Uint8Array | undefined;
        return v === undefined ? undefined : new TextDecoder().decode(v);
      }),
    putParams: (params) =>
      wrap('write params', () => db.put('params', new TextEncoder().encode(params), SYNC)),
    getScopeKey: (scope) =>
      wrap('read a scope key', async () => {
        const v = (await db.get(`scope!${scope}`, KEY_ENC)) as Uint8Array | undefined;
        if (v === undefined) return undefined;
        return v.length === 1 && v[0] === 0 ? 'destroyed' : v;
      }),
    putScopeKey: (scope, wrapped) => wrap('write a scope key', () => db.put(`scope!${scope}`, wrapped, SYNC)),
    destroyScopeKey: (scope) =>
      wrap('destroy a scope key', () =>
        db.batch([{ type: 'put', key: `scope!${scope}`, value: TOMBSTONE }], SYNC),
      ),
    listScopes: () =>
      wrap('list scope keys', async () => {
        const out: string[] = [];
        for await (const [k, v] of db.iterator({ gt: 'scope!', lt: 'scope!\uffff', ...KEY_ENC })) {
          const value = v as Uint8Array;
          if (!(value.length === 1 && value[0] === 0)) out.push((k as string).slice('scope!'.length));
        }
        return out;
      }),
  };
}

export type SoftwareSealerOptions = {
  passphrase: string;
  keyStore: SealerKeyStore;
  /** scrypt cost for a NEW params record (existing records keep theirs). Default 15 (N = 2^15). */
  scryptLogN?: number;
  /** Bounded passphrase attempts; without one, attempts are unbounded. */
  guard?: PinGuard;
};

type Params = { v: 1; kdf: 'scrypt'; logN: number; r: number; p: number; salt: string; check: string };

/** Bounds accepted from a stored params record: low enough to open in seconds, high enough to matter. */
const MIN_LOG_N = 10;
const MAX_LOG_N = 20;
const WRAP_DOMAIN = 'threshold-kms/software-sealer/scope-key/v1';

function parseParams(raw: string): Params {
  let v: unknown;
  try {
    v = JSON.parse(raw);
  } catch {
    v = undefined;
  }
  const p = v as Partial<Params> | undefined;
  if (
    p?.v !== 1 ||
    p.kdf !== 'scrypt' ||
    !Number.isInteger(p.logN) ||
    p.logN! < MIN_LOG_N ||
    p.logN! > MAX_LOG_N ||
    p.r !== 8 ||
    p.p !== 1 ||
    typeof p.salt !== 'string' ||
    !/^[0-9a-f]{64}$/.test(p.salt) ||
    typeof p.check !== 'string' ||
    !/^[0-9a-f]{64}$/.test(p.check)
  ) {
    throw new InfraError('StorageError', 'software sealer params record is corrupt');
  }
  return p as Params;
}

function gcmEncrypt(key: Uint8Array, iv: Uint8Array, aad: Uint8Array, pt: Uint8Array): Uint8Array {
  const c = createCipheriv('aes-256-gcm', key, iv, { authTagLength: TAG_BYTES });
  c.setAAD(aad);
  const head = c.update(pt);
  const tail = c.final();
  const out = new Uint8Array(head.length + tail.length + TAG_BYTES);
  out.set(head, 0);
  out.set(tail, head.length);
  out.set(c.getAuthTag(), head.length + tail.length);
  return out;
}

/** Returns undefined when the tag does not verify. */
function gcmDecrypt(
  key: Uint8Array,
  iv: Uint8Array,
  aad: Uint8Array,
  ctTag: Uint8Array,
): Uint8Array | undefined {
  if (ctTag.length < TAG_BYTES) return undefined;
  const d = createDecipheriv('aes-256-gcm', key, iv, { authTagLength: TAG_BYTES });
  d.setAAD(aad);
  d.setAuthTag(ctTag.subarray(ctTag.length - TAG_BYTES));
  const head = d.update(ctTag.subarray(0, ctTag.length - TAG_BYTES));
  try {
    const tail = d.final();
    const out = new Uint8Array(head.length + tail.length);
    out.set(head, 0);
    out.set(tail, head.length);
    return out;
  } catch {
    head.fill(0);
    return undefined;
  }
}

export class SoftwareSealer implements Sealer {
  readonly kind = 'software' as const;
  readonly #store: SealerKeyStore;
  #wrapKey: Uint8Array | undefined;
  /** Unwrapped data keys, cached; zeroed on destroyScope and close. */
  readonly #keys = new Map<string, Uint8Array>();
  /** Serializes key creation so two concurrent seals of a new scope do not create two keys. */
  #tail: Promise<unknown> = Promise.resolve();

  private constructor(store: SealerKeyStore, wrapKey: Uint8Array) {
    this.#store = store;
    this.#wrapKey = wrapKey;
  }

  /**
   * Derives the master key (scrypt, about 100 ms at N = 2^15) and checks it against the stored check
   * value; on first use creates and persists the params record. Wrong passphrase: SealerUnavailable.
   */
  static async open(opts: SoftwareSealerOptions): Promise<SoftwareSealer> {
    if (typeof opts.passphrase !== 'string' || opts.passphrase.length === 0) {
      throw new InfraError('SealerUnavailable', 'software sealer: no passphrase configured');
    }
    const unlock = async (): Promise<SoftwareSealer> => {
      const raw = await opts.keyStore.getParams();
      const fresh = raw === undefined;
      const params: Params = fresh
        ? {
            v: 1,
            kdf: 'scrypt',
            logN: opts.scryptLogN ?? 15,
            r: 8,
            p: 1,
            salt: bytesToHex(randomBytes(32)),
            check: '',
          }
        : parseParams(raw);
      if (fresh && (params.logN < MIN_LOG_N || params.logN > MAX_LOG_N)) {
        throw new InfraError('ValidationError', `scryptLogN must be in [${MIN_LOG_N}, ${MAX_LOG_N}]`);
      }
      const salt = hexToBytes(params.salt);
      const master = await scryptAsync(new TextEncoder().encode(opts.passphrase.normalize('NFKC')), salt, {
        N: 2 ** params.logN,
        r: params.r,
        p: params.p,
        dkLen: 32,
      });
      const check = hkdf(sha256, master, salt, utf8('threshold-kms/software-sealer/check'), 32);
      const wrapKey = hkdf(sha256, master, salt, utf8('threshold-kms/software-sealer/wrap'), 32);
      master.fill(0);
      if (fresh) {
        await opts.keyStore.putParams(JSON.stringify({ ...params, check: bytesToHex(check) }));
      } else if (!timingSafeEqual(check, hexToBytes(params.check))) {
        wrapKey.fill(0);
        throw new InfraError('SealerUnavailable', 'software sealer: wrong passphrase');
      }
      return new SoftwareSealer(opts.keyStore, wrapKey);
    };
    const isWrong = (e: unknown) => e instanceof InfraError && e.code === 'SealerUnavailable';
    return opts.guard ? opts.guard.attempt(unlock, isWrong) : unlock();
  }

  #serial<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.#tail.then(fn);
    this.#tail = run.catch(() => undefined);
    return run;
  }

  #wrap(): Uint8Array {
    if (!this.#wrapKey) throw new InfraError('SealerUnavailable', 'software sealer is closed');
    return this.#wrapKey;
  }

  #wrapAad(scope: string): Uint8Array {
    return new TextEncoder().encode(`${WRAP_DOMAIN}\n${scope}`);
  }

  /** The data key of a scope; creates one when `create` and none exists. */
  async #dataKey(scope: string, create: boolean): Promise<Uint8Array> {
    const cached = this.#keys.get(scope);
    if (cached) return cached;
    return this.#serial(async () => {
      const again = this.#keys.get(scope);
      if (again) return again;
      const stored = await this.#store.getScopeKey(scope);
      if (stored === 'destroyed')
        throw new InfraError('SealError', `sealer scope ${scope} has been destroyed`);
      if (stored === undefined) {
        if (!create)
          throw new InfraError('SealError', `no sealing key for scope ${scope} (foreign or destroyed blob)`);
        const key = new Uint8Array(randomBytes(32));
        const iv = randomBytes(IV_BYTES);
        const wrapped = new Uint8Array(IV_BYTES + 32 + TAG_BYTES);
        wrapped.set(iv, 0);
        wrapped.set(gcmEncrypt(this.#wrap(), iv, this.#wrapAad(scope), key), IV_BYTES);
        await this.#store.putScopeKey(scope, wrapped);
        this.#keys.set(scope, key);
        return key;
      }
      const key = gcmDecrypt(
        this.#wrap(),
        stored.subarray(0, IV_BYTES),
        this.#wrapAad(scope),
        stored.subarray(IV_BYTES),
      );
      if (key?.length !== 32) throw new InfraError('SealError', `sealing key of scope ${scope} is corrupt`);
      this.#keys.set(scope, key);
      return key;
    });
  }

  async seal(ctx: SealContext, plaintext: Uint8Array): Promise<Uint8Array> {
    checkContext(ctx);
    const key = await this.#dataKey(ctx.scope, true);
    const iv = new Uint8Array(randomBytes(IV_BYTES));
    const ct = gcmEncrypt(key, iv, associatedData(BACKEND_SOFTWARE, ctx), plaintext);
    return encodeBlob(BACKEND_SOFTWARE, ctx.scope, iv, ct);
  }

  async unseal(ctx: SealContext, sealed: Uint8Array): Promise<Uint8Array> {
    const blob = openHeader(BACKEND_SOFTWARE, ctx, sealed);
    const key = await this.#dataKey(ctx.scope, false);
    const pt = gcmDecrypt(key, blob.iv, associatedData(BACKEND_SOFTWARE, ctx), blob.ciphertext);
    if (!pt)
      throw new InfraError('SealError', 'sealed blob does not open: tampered, foreign or wrong context');
    return pt;
  }

  async destroyScope(scope: string): Promise<void> {
    await this.#serial(async () => {
      this.#wrap();
      await this.#store.destroyScopeKey(scope);
      this.#keys.get(scope)?.fill(0);
      this.#keys.delete(scope);
    });
  }

  async listScopes(): Promise<string[]> {
    this.#wrap();
    return this.#store.listScopes();
  }

  async close(): Promise<void> {
    await this.#tail;
    for (const k of this.#keys.values()) k.fill(0);
    this.#keys.clear();
    this.#wrapKey?.fill(0);
    this.#wrapKey = undefined;
  }
}
