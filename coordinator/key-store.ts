/**
 * Key metadata in LevelDB: the key record (public data only: the coordinator never holds a share),
 * its current EpochInfo, and an alias index. Keys are listed in key id order with an opaque
 * `nextToken` (the last key id returned), as AWS ListKeys does with Limit/Marker.
 *
 * The states background work looks for (`Creating` at start-up, `PendingDeletion` every sweep) are
 * indexed (`by-state` sublevel, `<state>!<keyId>`, written in the same batch as the record), so
 * finding them reads those keys only, not every key (issue 17, scale: a full scan of 100 000
 * records every sweep). A store written before the index gets it built by one scan at first use.
 */
import type { AbstractLevel } from 'abstract-level';
import { KmsError, StateError } from '../protocol/errors.ts';
import { KEY_SPEC_REGISTRY, type KeySpecName, type KeyUsage } from '../protocol/suites.ts';
import type { KeyState } from '../protocol/key-states.ts';
import type { EpochInfo } from './cluster.ts';
import { type TaprootView, apiPublicKey, taprootView } from './custody.ts';

export type KeyRecord = {
  readonly keyId: string;
  readonly alias: string | null;
  readonly keySpec: KeySpecName;
  /** SIGN_VERIFY or ENCRYPT_DECRYPT (issue 15); fixed by the key spec, absent on older records. */
  readonly keyUsage?: KeyUsage;
  readonly state: KeyState;
  readonly description?: string;
  readonly createdAt: string;
  /** When the shares will be destroyed (state PendingDeletion). */
  readonly deletionDate?: string;
  /** Requested threshold and committee (what DKG runs with while Creating). */
  readonly threshold: number;
  readonly participants: readonly string[];
  /** The agreed public epoch description; null until DKG commits. */
  readonly epochInfo: EpochInfo | null;
  /**
   * Custody (issue 14, coordinator/custody.ts): the chain code (hex, fixed at the DKG; absent on keys
   * created before it existed, which also marks a Taproot key whose stored element is not the
   * internal key) and the FROST_SECP256K1_TR merkle root (hex; null or absent = key path only).
   */
  readonly chainCode?: string;
  readonly merkleRoot?: string | null;
  /**
   * Where the key material came from (issue 16; AWS KMS `Origin`): THRESHOLD_DKG (created by the
   * nodes' DKG; absent means this) or IMPORTED (`POST /v1/keys/import`). A restore keeps it.
   */
  readonly origin?: KeyOrigin;
};

/** Issue 16: the key's origin (docs/api.md). */
export type KeyOrigin = 'THRESHOLD_DKG' | 'IMPORTED';

/** The API's key object (issue 5). */
export type KeyView = {
  keyId: string;
  alias: string | null;
  keySpec: KeySpecName;
  keyUsage: KeyUsage;
  state: KeyState;
  threshold: number;
  participants: string[];
  epoch: number | null;
  /** FROST_SECP256K1_TR: the BIP341 output key (x-only), with the key's merkle root if any. */
  publicKey: string | null;
  /** FROST_SECP256K1_TR keys with custody data (issue 14): internal and output key, merkle root. */
  taproot?: TaprootView;
  createdAt: string;
  description?: string;
  deletionDate?: string;
  /** Issue 16: THRESHOLD_DKG or IMPORTED. */
  origin: KeyOrigin;
};

export function keyView(r: KeyRecord): KeyView {
  const e = r.epochInfo;
  const taproot = taprootView(r);
  return {
    keyId: r.keyId,
    alias: r.alias,
    keySpec: r.keySpec,
    keyUsage: r.keyUsage ?? KEY_SPEC_REGISTRY[r.keySpec].usage,
    state: r.state,
    threshold: e?.threshold ?? r.threshold,
    participants: [...(e?.participants ?? r.participants)],
    epoch: e?.epoch ?? null,
    publicKey: apiPublicKey(r),
    ...(taproot === undefined ? {} : { taproot }),
    createdAt: r.createdAt,
    ...(r.description === undefined ? {} : { description: r.description }),
    ...(r.deletionDate === undefined ? {} : { deletionDate: r.deletionDate }),
    origin: r.origin ?? 'THRESHOLD_DKG',
  };
}

export const KEY_ID_RE = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

type Db = AbstractLevel<any, string, any>;

/** States `inState` finds through the `by-state` index. */
const INDEXED_STATES: readonly KeyState[] = ['Creating', 'PendingDeletion'];
/** In `by-state`: present once the index covers every record (sorts after every state name). */
const INDEX_BUILT = '~built';

/**
 * Key records kept in memory after a read or a write (this process is the store's only writer), so
 * a request's key reads skip LevelDB: two reads per signature were 8.6% of the coordinator's CPU
 * under load (issue 17, bench/results/issue17-one-round-signing.md). Least recently used go first.
 */
const RECORD_CACHE_MAX = 1024;

/** Freezes `v` and everything it holds (a record read from JSON: plain objects and arrays). */
function deepFreeze<T>(v: T): T {
  if (typeof v !== 'object' || v === null || ArrayBuffer.isView(v) || Object.isFrozen(v)) return v;
  for (const x of Object.values(v)) deepFreeze(x);
  return Object.freeze(v);
}

export class KeyStore {
  readonly #db: Db;
  readonly #keys: AbstractLevel<any, string, KeyRecord>;
  readonly #aliases: AbstractLevel<any, string, string>;
  readonly #byState: AbstractLevel<any, string, string>;
  #indexBuilt: Promise<void> | undefined;
  /** Alias claims are check-then-write: one at a time. */
  #aliasLock: Promise<unknown> = Promise.resolve();
  readonly #cache = new Map<string, KeyRecord>();
  /**
   * Bumped before and after every write: a read that overlapped one does not fill the cache (it
   * may have read the record the write replaces).
   */
  #writes = 0;

  constructor(db: Db) {
    this.#db = db;
    this.#keys = db.sublevel<string, KeyRecord>('keys', { valueEncoding: 'json' }) as any;
    this.#aliases = db.sublevel<string, string>('aliases', { valueEncoding: 'utf8' }) as any;
    this.#byState = db.sublevel<string, string>('by-state', { valueEncoding: 'utf8' }) as any;
  }

  /** The index entries of `keyId` when its record becomes `next` (null: deleted). */
  #indexOps(keyId: string, next: KeyRecord | null): any[] {
    return INDEXED_STATES.map((s) =>
      next?.state === s
        ? { type: 'put', sublevel: this.#byState, key: `${s}!${keyId}`, value: '' }
        : { type: 'del', sublevel: this.#byState, key: `${s}!${keyId}` },
    );
  }

  async get(keyId: string): Promise<KeyRecord | undefined> {
    const rec = await this.view(keyId);
    // A copy: a caller that changes its record changes nothing here until it puts it.
    return rec === undefined ? undefined : structuredClone(rec);
  }

  /**
   * The key's record without a copy: the cached record itself, deeply frozen (changing it throws),
   * for read-only paths that run per request (a signature reads its key twice). `get` for a
   * record to change and put.
   */
  async view(keyId: string): Promise<KeyRecord | undefined> {
    if (!KEY_ID_RE.test(keyId)) return undefined;
    const hit = this.#cache.get(keyId);
    if (hit !== undefined) {
      this.#keep(keyId, hit);
      return hit;
    }
    const writes = this.#writes;
    const rec = await storage(() => this.#keys.get(keyId));
    if (rec === undefined) return undefined;
    const frozen = deepFreeze(rec);
    if (writes === this.#writes) this.#keep(keyId, frozen);
    return frozen;
  }

  /** Caches `rec` (deeply frozen) as the key's record (null: forgets it), most recently used last. */
  #keep(keyId: string, rec: KeyRecord | null): void {
    this.#cache.delete(keyId);
    if (rec === null) return;
    this.#cache.set(keyId, deepFreeze(rec));
    if (this.#cache.size > RECORD_CACHE_MAX) this.#cache.delete(this.#cache.keys().next().value!);
  }

  /** Runs a write of `keyId`'s record; the cache holds `next` only once it is on disk. */
  async #written(keyId: string, next: KeyRecord | null, write: () => Promise<void>): Promise<void> {
    this.#writes++;
    this.#cache.delete(keyId);
    try {
      await write();
    } finally {
      this.#writes++;
    }
    this.#keep(keyId, next === null ? null : structuredClone(next));
  }

  /** Resolves a key id or an alias; throws KeyNotFound. `shared`: the frozen record (`view`), no copy. */
  async resolve(keyIdOrAlias: string, shared = false): Promise<KeyRecord> {
    const read = (id: string) => (shared ? this.view(id) : this.get(id));
    let rec: KeyRecord | undefined;
    if (KEY_ID_RE.test(keyIdOrAlias)) rec = await read(keyIdOrAlias);
    else {
      const id = await storage(() => this.#aliases.get(keyIdOrAlias));
      if (id !== undefined) rec = await read(id);
    }
    if (!rec) throw new StateError('KeyNotFound', `key ${JSON.stringify(keyIdOrAlias)} not found`);
    return rec;
  }

  /** Stores a new key, claiming its alias atomically; AliasExists when taken. */
  async create(rec: KeyRecord): Promise<void> {
    await this.#withAliasLock(async () => {
      if (rec.alias !== null) {
        const holder = await storage(() => this.#aliases.get(rec.alias!));
        if (holder !== undefined)
          throw new StateError('AliasExists', `alias ${JSON.stringify(rec.alias)} is taken`);
      }
      // One atomic batch on the root db: the key and its alias appear together or not at all.
      const ops: any[] = [
        { type: 'put', sublevel: this.#keys, key: rec.keyId, value: rec },
        ...this.#indexOps(rec.keyId, rec),
      ];
      if (rec.alias !== null)
        ops.push({ type: 'put', sublevel: this.#aliases, key: rec.alias, value: rec.keyId });
      await this.#written(rec.keyId, rec, () => storage(() => this.#db.batch(ops)));
    });
  }

  async put(rec: KeyRecord): Promise<void> {
    const ops: any[] = [
      { type: 'put', sublevel: this.#keys, key: rec.keyId, value: rec },
      ...this.#indexOps(rec.keyId, rec),
    ];
    await this.#written(rec.keyId, rec, () => storage(() => this.#db.batch(ops)));
  }

  /** Frees the alias (a destroyed or failed key) and stores the record, or deletes it. */
  async releaseAlias(rec: KeyRecord, next: KeyRecord | null): Promise<void> {
    await this.#withAliasLock(() =>
      storage(async () => {
        const ops: any[] = [
          next
            ? { type: 'put', sublevel: this.#keys, key: rec.keyId, value: next }
            : { type: 'del', sublevel: this.#keys, key: rec.keyId },
          ...this.#indexOps(rec.keyId, next),
        ];
        if (rec.alias !== null) ops.push({ type: 'del', sublevel: this.#aliases, key: rec.alias });
        await this.#written(rec.keyId, next, () => this.#db.batch(ops));
      }),
    );
  }

  /** A page of keys after `nextToken`, keeping only those `visible` accepts. */
  async list(opts: {
    limit: number;
    nextToken?: string;
    visible?: (r: KeyRecord) => boolean;
  }): Promise<{ keys: KeyRecord[]; nextToken?: string }> {
    if (opts.nextToken !== undefined && !KEY_ID_RE.test(opts.nextToken)) {
      throw new KmsError('ValidationError', 'nextToken is not one this service issued');
    }
    const keys: KeyRecord[] = [];
    let last: string | undefined;
    let more = false;
    await storage(async () => {
      const it = this.#keys.iterator(opts.nextToken === undefined ? {} : { gt: opts.nextToken });
      try {
        for await (const [k, v] of it) {
          if (opts.visible && !opts.visible(v)) continue;
          if (keys.length === opts.limit) {
            more = true;
            break;
          }
          keys.push(v);
          last = k;
        }
      } finally {
        await it.close();
      }
    });
    return more && last !== undefined ? { keys, nextToken: last } : { keys };
  }

  /** Every key in a state (for the deletion sweeper and readiness); indexed states read only their keys. */
  async inState(state: KeyState): Promise<KeyRecord[]> {
    const out: KeyRecord[] = [];
    if (!INDEXED_STATES.includes(state)) {
      await storage(async () => {
        for await (const v of this.#keys.values()) if (v.state === state) out.push(v);
      });
      return out;
    }
    await this.#buildIndex();
    await storage(async () => {
      for await (const k of this.#byState.keys({ gt: `${state}!`, lt: `${state}!~` })) {
        const rec = await this.#keys.get(k.slice(state.length + 1));
        // Re-checked: an entry the first build wrote while a concurrent write moved the key on.
        if (rec?.state === state) out.push(rec);
      }
    });
    return out;
  }

  /** Indexes a store written before the index existed: one scan, once. Later writes keep it whole. */
  #buildIndex(): Promise<void> {
    this.#indexBuilt ??= storage(async () => {
      if ((await this.#byState.get(INDEX_BUILT)) !== undefined) return;
      let ops: any[] = [];
      for await (const v of this.#keys.values()) {
        if (!INDEXED_STATES.includes(v.state)) continue;
        ops.push({ type: 'put', sublevel: this.#byState, key: `${v.state}!${v.keyId}`, value: '' });
        if (ops.length >= 1000) {
          await this.#db.batch(ops);
          ops = [];
        }
      }
      ops.push({ type: 'put', sublevel: this.#byState, key: INDEX_BUILT, value: '' });
      await this.#db.batch(ops);
    }).catch((e: unknown) => {
      this.#indexBuilt = undefined; // retried at the next call
      throw e;
    });
    return this.#indexBuilt;
  }

  #withAliasLock<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.#aliasLock.then(fn, fn);
    this.#aliasLock = run.catch(() => undefined);
    return run;
  }
}

async function storage<T>(fn: () => Promise<T>): Promise<T> {
  try {
    return await fn();
  } catch (e) {
    if (e instanceof KmsError) throw e;
    throw new KmsError('StorageError', 'key store: read or write failed', { cause: e });
  }
}
