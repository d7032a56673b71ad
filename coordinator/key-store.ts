/**
 * Key metadata in LevelDB: the key record (public data only: the coordinator never holds a share),
 * its current EpochInfo, and an alias index. Keys are listed in key id order with an opaque
 * `nextToken` (the last key id returned), as AWS ListKeys does with Limit/Marker.
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
};

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
  };
}

export const KEY_ID_RE = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

type Db = AbstractLevel<any, string, any>;

export class KeyStore {
  readonly #db: Db;
  readonly #keys: AbstractLevel<any, string, KeyRecord>;
  readonly #aliases: AbstractLevel<any, string, string>;
  /** Alias claims are check-then-write: one at a time. */
  #aliasLock: Promise<unknown> = Promise.resolve();

  constructor(db: Db) {
    this.#db = db;
    this.#keys = db.sublevel<string, KeyRecord>('keys', { valueEncoding: 'json' }) as any;
    this.#aliases = db.sublevel<string, string>('aliases', { valueEncoding: 'utf8' }) as any;
  }

  async get(keyId: string): Promise<KeyRecord | undefined> {
    if (!KEY_ID_RE.test(keyId)) return undefined;
    return storage(() => this.#keys.get(keyId));
  }

  /** Resolves a key id or an alias; throws KeyNotFound. */
  async resolve(keyIdOrAlias: string): Promise<KeyRecord> {
    let rec: KeyRecord | undefined;
    if (KEY_ID_RE.test(keyIdOrAlias)) rec = await this.get(keyIdOrAlias);
    else {
      const id = await storage(() => this.#aliases.get(keyIdOrAlias));
      if (id !== undefined) rec = await this.get(id);
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
      const ops: any[] = [{ type: 'put', sublevel: this.#keys, key: rec.keyId, value: rec }];
      if (rec.alias !== null)
        ops.push({ type: 'put', sublevel: this.#aliases, key: rec.alias, value: rec.keyId });
      await storage(() => this.#db.batch(ops));
    });
  }

  async put(rec: KeyRecord): Promise<void> {
    await storage(() => this.#keys.put(rec.keyId, rec));
  }

  /** Frees the alias (a destroyed or failed key) and stores the record, or deletes it. */
  async releaseAlias(rec: KeyRecord, next: KeyRecord | null): Promise<void> {
    await this.#withAliasLock(() =>
      storage(async () => {
        const ops: any[] = [
          next
            ? { type: 'put', sublevel: this.#keys, key: rec.keyId, value: next }
            : { type: 'del', sublevel: this.#keys, key: rec.keyId },
        ];
        if (rec.alias !== null) ops.push({ type: 'del', sublevel: this.#aliases, key: rec.alias });
        await this.#db.batch(ops);
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

  /** Every key in a state (for the deletion sweeper and readiness). */
  async inState(state: KeyState): Promise<KeyRecord[]> {
    const out: KeyRecord[] = [];
    await storage(async () => {
      for await (const v of this.#keys.values()) if (v.state === state) out.push(v);
    });
    return out;
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
