/**
 * The node's LevelDB store (`level` / classic-level): key records, epoch records with their sealed
 * shares, the sealed libp2p identity, the sealer's wrapped scope keys, the session ids this node has
 * started, and (in its own sublevel) the hash-chained audit trail.
 *
 * - One process per data directory: a second open fails with StoreLocked, naming the directory.
 * - A corrupt database or a record that fails validation is a StorageError naming the record;
 *   nothing is repaired silently and no unvalidated record is used.
 * - Writes that must survive a crash are synced (`sync: true`), and related writes go in one atomic
 *   batch: an epoch record and its sealed share, or the activation of an epoch together with the
 *   deletion of the old one, land entirely or not at all.
 * - Shares are stored sealed only (node/sealer.ts); this file never sees plaintext shares.
 */
import { mkdirSync } from 'node:fs';
import { Level } from 'level';
import { Ajv } from 'ajv';
import { InfraError, KmsError } from '../protocol/errors.ts';
import type { PublicPackageHex } from '../protocol/packages.ts';
import { KEY_SPECS, type KeySpecName } from '../protocol/suites.ts';

export type NodeKeyState = 'Enabled' | 'Disabled' | 'PendingDeletion' | 'Destroyed';

export type KeyRecord = {
  keyId: string;
  keySpec: KeySpecName;
  state: NodeKeyState;
  activeEpoch?: number;
  pendingEpoch?: number;
};

export type EpochRecordStored = {
  keyId: string;
  keySpec: KeySpecName;
  epoch: number;
  threshold: number;
  /** Node ids of the committee. */
  participants: string[];
  /** This node's FROST identifier. */
  participant: string;
  public: PublicPackageHex;
  /** Session that made the epoch (certificates bind it). */
  sessionId?: string;
  transcriptHash: string;
  status: 'pending' | 'active';
  certificate?: Record<string, { R: string; z: string }>;
};

const HEX = { type: 'string', pattern: '^([0-9a-f]{2})*$' } as const;
const ajv = new Ajv({ strict: false });
const validKey = ajv.compile({
  type: 'object',
  additionalProperties: false,
  required: ['keyId', 'keySpec', 'state'],
  properties: {
    keyId: { type: 'string', minLength: 1, maxLength: 128 },
    keySpec: { enum: KEY_SPECS },
    state: { enum: ['Enabled', 'Disabled', 'PendingDeletion', 'Destroyed'] },
    activeEpoch: { type: 'integer', minimum: 0 },
    pendingEpoch: { type: 'integer', minimum: 0 },
  },
});
const validEpoch = ajv.compile({
  type: 'object',
  additionalProperties: false,
  required: ['keyId', 'keySpec', 'epoch', 'threshold', 'participants', 'participant', 'public', 'transcriptHash', 'status'],
  properties: {
    keyId: { type: 'string', minLength: 1, maxLength: 128 },
    keySpec: { enum: KEY_SPECS },
    epoch: { type: 'integer', minimum: 0 },
    threshold: { type: 'integer', minimum: 1 },
    participants: { type: 'array', items: { type: 'string' }, minItems: 1 },
    participant: HEX,
    public: {
      type: 'object',
      required: ['min', 'max', 'commitments', 'verifyingShares'],
      properties: {
        min: { type: 'integer' },
        max: { type: 'integer' },
        commitments: { type: 'array', items: HEX },
        verifyingShares: { type: 'object', additionalProperties: HEX },
      },
    },
    sessionId: { type: 'string' },
    transcriptHash: HEX,
    status: { enum: ['pending', 'active'] },
    certificate: { type: 'object' },
  },
});

const JSON_ENC = { keyEncoding: 'utf8', valueEncoding: 'json' } as const;
const BIN_ENC = { keyEncoding: 'utf8', valueEncoding: 'view' } as const;
/** classic-level's fsync option: not in abstract-level's option types, hence spread from a variable. */
const SYNC = { sync: true } as Record<string, unknown>;

const keyKey = (keyId: string) => `key!${keyId}`;
const epochKey = (keyId: string, epoch: number) => `epoch!${keyId}!${String(epoch).padStart(10, '0')}`;
const shareKey = (keyId: string, epoch: number) => `share!${keyId}!${String(epoch).padStart(10, '0')}`;

type Db = Level<string, any>;
/** One operation of an atomic batch (level's batch op type, minus its overload gymnastics). */
type BatchOp = { type: 'put' | 'del'; key: string; value?: unknown; keyEncoding?: string; valueEncoding?: string };

export class NodeStore {
  readonly #db: Db;
  readonly #dir: string;

  private constructor(db: Db, dir: string) {
    this.#db = db;
    this.#dir = dir;
  }

  static async open(dir: string): Promise<NodeStore> {
    try {
      mkdirSync(dir, { recursive: true, mode: 0o700 });
    } catch (e) {
      throw new InfraError('StorageError', `cannot create data directory ${dir}: ${(e as NodeJS.ErrnoException).code}`);
    }
    const db: Db = new Level<string, any>(dir, { keyEncoding: 'utf8', valueEncoding: 'json' });
    try {
      await db.open();
    } catch (e) {
      const cause = (e as { cause?: { message?: string }; code?: string }).cause;
      const msg = `${(e as Error).message} ${cause?.message ?? ''}`;
      if (/lock/i.test(msg)) {
        throw new InfraError('StoreLocked', `data directory ${dir} is in use by another process (LevelDB LOCK held)`);
      }
      if (/corrupt/i.test(msg)) {
        throw new InfraError('StorageError', `data directory ${dir} is corrupt; restore it from a backup or repair the share`);
      }
      throw new InfraError('StorageError', `cannot open data directory ${dir}: ${(e as Error).message}`, { cause: e });
    }
    return new NodeStore(db, dir);
  }

  get dir(): string {
    return this.#dir;
  }

  /** Sublevel for the audit log (node/audit-log.ts). */
  auditDb() {
    return this.#db.sublevel<string, string>('audit', { keyEncoding: 'utf8', valueEncoding: 'utf8' });
  }

  /** Sublevel for the software sealer's params and wrapped scope keys. */
  sealerDb() {
    return this.#db.sublevel<string, Uint8Array>('sealer', { keyEncoding: 'utf8', valueEncoding: 'view' });
  }

  async #get<T>(key: string, what: string, validate?: (v: unknown) => boolean): Promise<T | undefined> {
    let v: unknown;
    try {
      v = await this.#db.get(key, JSON_ENC);
    } catch (e) {
      throw new InfraError('StorageError', `cannot read ${what}`, { cause: e });
    }
    if (v === undefined) return undefined;
    if (validate && !validate(v)) throw new InfraError('StorageError', `stored ${what} is invalid; refusing to use it`);
    return v as T;
  }

  async #batch(ops: BatchOp[], what: string): Promise<void> {
    try {
      await this.#db.batch(ops as any, SYNC);
    } catch (e) {
      const code = (e as { code?: string }).code ?? '';
      const full = /ENOSPC|No space/i.test(`${(e as Error).message} ${code}`);
      throw new InfraError('StorageError', `${full ? 'disk full: ' : ''}cannot write ${what}; nothing was changed`, {
        cause: e,
      });
    }
  }

  async getIdentity(): Promise<Uint8Array | undefined> {
    try {
      return (await this.#db.get('identity', BIN_ENC)) as Uint8Array | undefined;
    } catch (e) {
      throw new InfraError('StorageError', 'cannot read the sealed identity', { cause: e });
    }
  }

  async putIdentity(sealed: Uint8Array): Promise<void> {
    await this.#batch([{ type: 'put', key: 'identity', value: sealed, ...BIN_ENC }], 'the sealed identity');
  }

  getKey(keyId: string): Promise<KeyRecord | undefined> {
    return this.#get<KeyRecord>(keyKey(keyId), `key record ${keyId}`, validKey);
  }

  async listKeys(): Promise<KeyRecord[]> {
    const out: KeyRecord[] = [];
    for await (const [k, v] of this.#db.iterator({ gt: 'key!', lt: 'key!\xff', ...JSON_ENC })) {
      if (!validKey(v)) throw new InfraError('StorageError', `stored key record ${k} is invalid`);
      out.push(v as KeyRecord);
    }
    return out;
  }

  getEpoch(keyId: string, epoch: number): Promise<EpochRecordStored | undefined> {
    return this.#get<EpochRecordStored>(epochKey(keyId, epoch), `epoch record ${keyId}/${epoch}`, validEpoch);
  }

  async getSealedShare(keyId: string, epoch: number): Promise<Uint8Array | undefined> {
    try {
      return (await this.#db.get(shareKey(keyId, epoch), BIN_ENC)) as Uint8Array | undefined;
    } catch (e) {
      throw new InfraError('StorageError', `cannot read the sealed share ${keyId}/${epoch}`, { cause: e });
    }
  }

  /** A new epoch's record and sealed share, PENDING, in one synced batch. */
  async putPendingEpoch(rec: EpochRecordStored, sealedShare: Uint8Array): Promise<void> {
    if (!validEpoch(rec)) throw new KmsError('ValidationError', 'invalid epoch record');
    const key = (await this.getKey(rec.keyId)) ?? { keyId: rec.keyId, keySpec: rec.keySpec, state: 'Enabled' as const };
    if (key.activeEpoch !== undefined && rec.epoch <= key.activeEpoch) {
      throw new KmsError('EpochMismatch', `epoch ${rec.epoch} does not follow active epoch ${key.activeEpoch}`);
    }
    await this.#batch(
      [
        { type: 'put', key: epochKey(rec.keyId, rec.epoch), value: rec, ...JSON_ENC },
        { type: 'put', key: shareKey(rec.keyId, rec.epoch), value: sealedShare, ...BIN_ENC },
        { type: 'put', key: keyKey(rec.keyId), value: { ...key, pendingEpoch: rec.epoch }, ...JSON_ENC },
      ],
      `pending epoch ${rec.keyId}/${rec.epoch}`,
    );
  }

  /** A repaired share of the current epoch, stored directly as active (repair keeps the epoch). */
  async putRepairedEpoch(rec: EpochRecordStored, sealedShare: Uint8Array): Promise<void> {
    if (!validEpoch(rec)) throw new KmsError('ValidationError', 'invalid epoch record');
    const key = (await this.getKey(rec.keyId)) ?? { keyId: rec.keyId, keySpec: rec.keySpec, state: 'Enabled' as const };
    const { pendingEpoch: _p, ...rest } = key;
    await this.#batch(
      [
        { type: 'put', key: epochKey(rec.keyId, rec.epoch), value: { ...rec, status: 'active' }, ...JSON_ENC },
        { type: 'put', key: shareKey(rec.keyId, rec.epoch), value: sealedShare, ...BIN_ENC },
        { type: 'put', key: keyKey(rec.keyId), value: { ...rest, activeEpoch: rec.epoch }, ...JSON_ENC },
      ],
      `repaired share ${rec.keyId}/${rec.epoch}`,
    );
  }

  /**
   * Makes a pending epoch active and deletes every older epoch's record and share, atomically.
   * Returns the deleted epochs (the caller destroys their HSM keys afterwards).
   */
  async activateEpoch(
    keyId: string,
    epoch: number,
    commit: { transcriptHash: string; certificate: Record<string, { R: string; z: string }> },
  ): Promise<number[]> {
    const key = await this.getKey(keyId);
    const rec = await this.getEpoch(keyId, epoch);
    if (!key || !rec) throw new KmsError('InvalidKeyState', `no pending epoch ${epoch} of ${keyId}`);
    if (key.activeEpoch === epoch && rec.status === 'active') return [];
    const older: number[] = [];
    for await (const k of this.#db.keys({ gte: epochKey(keyId, 0), lt: epochKey(keyId, epoch), keyEncoding: 'utf8' })) {
      older.push(Number(k.slice(k.lastIndexOf('!') + 1)));
    }
    const { pendingEpoch: _p, ...rest } = key;
    await this.#batch(
      [
        {
          type: 'put',
          key: epochKey(keyId, epoch),
          value: { ...rec, status: 'active', transcriptHash: commit.transcriptHash, certificate: commit.certificate },
          ...JSON_ENC,
        },
        { type: 'put', key: keyKey(keyId), value: { ...rest, activeEpoch: epoch }, ...JSON_ENC },
        ...older.flatMap((e) => [
          { type: 'del' as const, key: epochKey(keyId, e), keyEncoding: 'utf8' },
          { type: 'del' as const, key: shareKey(keyId, e), keyEncoding: 'utf8' },
        ]),
      ],
      `activation of ${keyId}/${epoch}`,
    );
    return older;
  }

  /** Drops a pending epoch (aborted event); the active epoch is untouched. */
  async discardPendingEpoch(keyId: string, epoch: number): Promise<void> {
    const key = await this.getKey(keyId);
    const rec = await this.getEpoch(keyId, epoch);
    if (!rec || rec.status !== 'pending') return;
    const ops: BatchOp[] = [
      { type: 'del', key: epochKey(keyId, epoch), keyEncoding: 'utf8' },
      { type: 'del', key: shareKey(keyId, epoch), keyEncoding: 'utf8' },
    ];
    if (key && key.activeEpoch === undefined) ops.push({ type: 'del', key: keyKey(keyId), keyEncoding: 'utf8' });
    else if (key) {
      const { pendingEpoch: _p, ...rest } = key;
      ops.push({ type: 'put', key: keyKey(keyId), value: rest, ...JSON_ENC });
    }
    await this.#batch(ops, `discard of ${keyId}/${epoch}`);
  }

  async setKeyState(keyId: string, state: NodeKeyState): Promise<void> {
    const key = await this.getKey(keyId);
    if (!key) throw new KmsError('KeyNotFound', `no key ${keyId}`);
    await this.#batch([{ type: 'put', key: keyKey(keyId), value: { ...key, state }, ...JSON_ENC }], `state of ${keyId}`);
  }

  /** Deletes every epoch and share of a key and marks it Destroyed. Returns the deleted epochs. */
  async destroyKey(keyId: string): Promise<number[]> {
    const key = await this.getKey(keyId);
    if (!key) return [];
    const epochs: number[] = [];
    for await (const k of this.#db.keys({ gt: `epoch!${keyId}!`, lt: `epoch!${keyId}!\xff`, keyEncoding: 'utf8' })) {
      epochs.push(Number(k.slice(k.lastIndexOf('!') + 1)));
    }
    await this.#batch(
      [
        ...epochs.flatMap((e) => [
          { type: 'del' as const, key: epochKey(keyId, e), keyEncoding: 'utf8' },
          { type: 'del' as const, key: shareKey(keyId, e), keyEncoding: 'utf8' },
        ]),
        { type: 'put', key: keyKey(keyId), value: { keyId, keySpec: key.keySpec, state: 'Destroyed' }, ...JSON_ENC },
      ],
      `destruction of ${keyId}`,
    );
    return epochs;
  }

  async markSessionSeen(sessionId: string): Promise<void> {
    await this.#batch([{ type: 'put', key: `session!${sessionId}`, value: 1, ...JSON_ENC }], `session ${sessionId}`);
  }

  async wasSessionSeen(sessionId: string): Promise<boolean> {
    return (await this.#get<number>(`session!${sessionId}`, `session ${sessionId}`)) !== undefined;
  }

  async close(): Promise<void> {
    await this.#db.close();
  }
}
