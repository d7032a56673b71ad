/**
 * Active key material by key id: the unsealed package, its epoch record and the key's state, so
 * signing reads neither LevelDB nor the HSM (bench/results: two store reads per sign were ~28% of a
 * node's busy time). The daemon is its store's only writer: every write that changes a key's state
 * or active epoch drops the entry (set-state, destroy, activate, commit, confirm, retire, repair).
 * At most `maxKeys` entries (default 4096), least recently used dropped first: memory stays bounded
 * however many keys the node holds (issue 17, scale); a dropped key is read and unsealed again.
 */
import type { Key } from '@noble/curves/abstract/frost.js';
import { LruMap } from '../common/lru-map.ts';
import { KmsError } from '../protocol/errors.ts';
import { publicFromHex } from '../protocol/packages.ts';
import { type KeySpec, keySpec } from '../protocol/suites.ts';
import { shareCtx } from './node-context.ts';
import type { Sealer } from './sealer.ts';
import type { EpochRecordStored, NodeStore } from './store.ts';

/** An active key epoch as signing needs it. */
export type ActiveKey = {
  record: EpochRecordStored;
  key: Key;
  spec: KeySpec;
  state: string;
  /** A DKG's key the coordinator has not confirmed yet (node/key-confirmation.ts). */
  unconfirmed?: true;
};

/** Active keys held in memory per node by default. */
export const DEFAULT_MAX_ACTIVE_KEYS = 4096;

export class ActiveKeys {
  readonly #nodeId: string;
  readonly #store: NodeStore;
  readonly #sealer: Sealer;
  readonly #keys: LruMap<string, ActiveKey>;

  constructor(nodeId: string, store: NodeStore, sealer: Sealer, maxKeys = DEFAULT_MAX_ACTIVE_KEYS) {
    this.#nodeId = nodeId;
    this.#store = store;
    this.#sealer = sealer;
    this.#keys = new LruMap(maxKeys);
  }

  /** Entries held now (at most `maxKeys`). */
  get size(): number {
    return this.#keys.size;
  }

  has(keyId: string): boolean {
    return this.#keys.has(keyId);
  }

  /** The active epoch's record and unsealed key package (cached). */
  async active(keyId: string): Promise<ActiveKey> {
    const hit = this.#keys.get(keyId);
    if (hit) return hit;
    const k = await this.#store.getKey(keyId);
    if (!k || k.state === 'Destroyed' || k.activeEpoch === undefined) {
      throw new KmsError('KeyNotFound', `no active share of ${keyId} on ${this.#nodeId}`);
    }
    const record = await this.#store.getEpoch(keyId, k.activeEpoch);
    if (!record) throw new KmsError('KeyNotFound', `no record of ${keyId} epoch ${k.activeEpoch}`);
    const spec = keySpec(record.keySpec);
    const entry: ActiveKey = {
      record,
      key: await this.#load(spec, record),
      spec,
      state: k.state,
      ...(k.unconfirmed ? { unconfirmed: true as const } : {}),
    };
    this.#keys.set(keyId, entry);
    return entry;
  }

  drop(keyId: string): void {
    this.#keys.delete(keyId);
  }

  clear(): void {
    this.#keys.clear();
  }

  async #load(spec: KeySpec, record: EpochRecordStored): Promise<Key> {
    const sealed = await this.#store.getSealedShare(record.keyId, record.epoch);
    if (!sealed)
      throw new KmsError('KeyNotFound', `share of ${record.keyId} epoch ${record.epoch} is missing`);
    const signingShare = await this.#sealer.unseal(
      shareCtx(this.#nodeId, record.keyId, record.epoch),
      sealed,
    );
    return {
      public: publicFromHex(spec, record.public),
      secret: { identifier: record.participant, signingShare },
    } as Key;
  }
}
