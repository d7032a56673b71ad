/**
 * A node's part in a backup to recovery officers (issue 16; protocol/officer-backup.ts): as one of
 * the t dealers it deals its share of the active epoch to the officers named by the client-signed
 * request (`backup-deal`), which it verifies itself (node/request-guard.ts, operation CreateBackup,
 * with the admin quorum), and later signs the assembled bundle (`backup-sign`) after checking every
 * public part of it and that its own dealing is in it unchanged. The online epoch stays active and
 * untouched. The bundle id is the signed request's digest, so the coordinator can neither choose it
 * nor reuse a request for a second bundle.
 *
 * The coordinator is a courier: it picks the dealers and carries the key's public metadata, both
 * checked here (the dealers are t members of this node's own committee; the metadata is bounded and
 * ends up signed in the bundle), and it never sees a sub-share unencrypted.
 */
import { base64 } from '@scure/base';
import { sealToOfficer, officerSetFromJson } from '../client/officer-key.ts';
import { toHex } from '../protocol/bytes.ts';
import { KmsError, StateError } from '../protocol/errors.ts';
import type { Epoch, KeyId } from '../protocol/ids.ts';
import {
  type BackupPlan,
  type BundleCustody,
  bundleCustody,
  decodeBundle,
  dealToOfficers,
  type OfficerDealing,
  type OfficerSet,
  signBundle,
  withCustody,
} from '../protocol/officer-backup.ts';
import { publicToHex } from '../protocol/packages.ts';
import { keySpec } from '../protocol/suites.ts';
import type { BackupDealAnswer, BackupSignAnswer, RequestOf } from '../net/rpc.ts';
import { assertConfirmed } from './key-confirmation.ts';
import { type NodeContext, participantOf } from './node-context.ts';
import type { BoundRequest } from './request-binding.ts';

/** Dealings waiting for their bundle to be signed: at most this many, each for this long. */
const MAX_OPEN_BACKUPS = 64;
const OPEN_BACKUP_TTL_MS = 10 * 60_000;
const KEY_PATH = /^\/v1\/keys\/([A-Za-z0-9._:-]{1,128})\/backups$/;

type Open = {
  keyId: string;
  epoch: number;
  dealing: OfficerDealing;
  custody: BundleCustody | undefined;
  until: number;
};

const sameCustody = (a: BundleCustody | undefined, b: BundleCustody | undefined): boolean =>
  a?.chainCode === b?.chainCode && (a?.merkleRoot ?? null) === (b?.merkleRoot ?? null);

/**
 * The metadata this dealer deals under: the coordinator's, with the custody entries (issue 14:
 * chain code, merkle root) from this node's OWN store. The coordinator may name them (it holds
 * them in its key record) but only as this node holds them: a restored key must derive the same
 * addresses and sign at the same paths as this one.
 */
export function dealtMetadata(
  keySpec: string,
  keyId: string,
  offered: Readonly<Record<string, string>>,
  own: BundleCustody | undefined,
): Record<string, string> {
  let named: BundleCustody | undefined;
  try {
    named = bundleCustody({ keySpec, metadata: offered });
  } catch (e) {
    throw new KmsError('ValidationError', `backup metadata of ${keyId}: ${(e as Error).message}`);
  }
  if (named !== undefined && !sameCustody(named, own))
    throw new StateError(
      'ContextMismatch',
      own === undefined
        ? `the coordinator names custody data for ${keyId}, this node holds none`
        : `the coordinator's custody data for ${keyId} (chain code, merkle root) is not this node's`,
    );
  return withCustody(offered, own);
}

const refuse = (what: string): never => {
  throw new KmsError('Unauthorized', `the signed request does not match: ${what}`);
};

/** `POST /v1/keys/{keyId}/backups {officers, threshold}`: the officer set the principal signed for. */
export function bindBackupRequest(
  req: { method: string; path: string; query: string; body: Uint8Array },
  held: { threshold: number } | undefined,
): BoundRequest & { officerSet: OfficerSet } {
  if (req.method.toUpperCase() !== 'POST') refuse(`method ${req.method}`);
  if (req.query !== '') refuse('a query on an operation that takes none');
  const m = KEY_PATH.exec(req.path) ?? refuse(`path ${req.path.slice(0, 200)}, not a backup`);
  let officerSet: OfficerSet;
  try {
    officerSet = officerSetFromJson(JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(req.body)));
  } catch (e) {
    return refuse(`the backup body is not an officer set (${(e as Error).message.slice(0, 200)})`);
  }
  if (!held) return refuse('a backup of a key this node does not hold');
  return {
    operation: 'CreateBackup',
    keyId: m[1]!,
    officerSet,
    // The officers become holders of the key: the admin quorum decides (policy/evaluate.ts), and the
    // officer threshold may not go below the policy's floor.
    keyEvent: { oldThreshold: held!.threshold, newThreshold: officerSet.threshold, committeeChanges: true },
  };
}

export class Backups {
  readonly #c: NodeContext;
  readonly #open = new Map<string, Open>();

  constructor(ctx: NodeContext) {
    this.#c = ctx;
  }

  async deal(req: RequestOf<'backup-deal'>): Promise<BackupDealAnswer> {
    const held = await this.#c.store.getActiveEpoch(req.keyId).catch(() => undefined);
    let officerSet: OfficerSet | undefined;
    const authorized = await this.#c.guard.authorize(
      {
        rpc: 'bound',
        operation: 'CreateBackup',
        keyId: req.keyId,
        bind: (r) => {
          const b = bindBackupRequest(r, held);
          officerSet = b.officerSet;
          return { operation: b.operation, keyId: b.keyId, ...(b.keyEvent ? { keyEvent: b.keyEvent } : {}) };
        },
      },
      req.auth,
    );
    if (!authorized || !officerSet)
      throw new KmsError(
        'Unauthorized',
        'a backup needs a client-signed request (POST /v1/keys/{id}/backups)',
      );
    const k = await this.#c.store.getKey(req.keyId);
    if (!k || k.activeEpoch === undefined) throw new StateError('KeyNotFound', `no share of ${req.keyId}`);
    if (k.state !== 'Enabled' && k.state !== 'Disabled')
      throw new StateError('InvalidKeyState', `key ${req.keyId} is ${k.state}: no backup`);
    assertConfirmed(k);
    const { key, record } = await this.#c.keys.active(req.keyId);
    if (record.epoch !== req.epoch)
      throw new StateError(
        'EpochMismatch',
        `backup of epoch ${req.epoch}, the active epoch is ${record.epoch}`,
      );
    const spec = keySpec(record.keySpec);
    // The dealers: t members of this node's own committee, itself among them (validatePlan checks
    // count and membership against the package this node holds).
    for (const d of req.dealers)
      if (!record.participants.includes(d))
        throw new KmsError('ValidationError', `${d} is not in the committee`);
    if (!req.dealers.includes(this.#c.cfg.nodeId))
      throw new KmsError('ValidationError', `${this.#c.cfg.nodeId} is not a dealer of this backup`);
    const bundleId = authorized.requestDigest;
    const custody = (await this.#c.store.getCustody(req.keyId)) ?? undefined;
    if (this.#open.has(bundleId)) throw new KmsError('Conflict', `backup ${bundleId} was already dealt`);
    const plan: BackupPlan = {
      bundleId,
      keyId: req.keyId as KeyId,
      keySpec: spec.name,
      epoch: record.epoch as Epoch,
      metadata: dealtMetadata(spec.name, req.keyId, req.metadata, custody),
      committee: key.public,
      officerSet,
      dealers: req.dealers.map((d) => participantOf(spec, d)),
    };
    const dealing = dealToOfficers(plan, key, sealToOfficer);
    this.#sweep();
    if (this.#open.size >= MAX_OPEN_BACKUPS) throw new KmsError('Overloaded', 'too many backups in progress');
    this.#open.set(bundleId, {
      keyId: req.keyId,
      epoch: record.epoch,
      dealing,
      custody,
      until: Date.now() + OPEN_BACKUP_TTL_MS,
    });
    await this.#c.record({
      event: 'backup.dealt',
      keyId: req.keyId,
      epoch: record.epoch,
      bundleId,
      officers: officerSet.officers.map((o) => o.name),
      officerThreshold: officerSet.threshold,
      initiator: authorized.initiator,
    });
    return {
      bundleId,
      epoch: record.epoch,
      public: publicToHex(key.public),
      dealing: {
        dealer: dealing.dealer,
        commitments: dealing.commitments.map(toHex),
        ciphertexts: dealing.ciphertexts.map(toHex),
        proof: { R: toHex(dealing.proof.R), z: toHex(dealing.proof.z) },
      },
      ...(custody === undefined
        ? {}
        : { custody: { chainCode: custody.chainCode, merkleRoot: custody.merkleRoot } }),
    };
  }

  /** Signs the bundle a dealing of this node went into, once (the open dealing is then dropped). */
  async sign(req: RequestOf<'backup-sign'>): Promise<BackupSignAnswer> {
    this.#sweep();
    const open = this.#open.get(req.bundleId);
    if (!open || open.keyId !== req.keyId)
      throw new StateError('NotFound', `no backup ${req.bundleId} of ${req.keyId} dealt here`);
    let body: ReturnType<typeof decodeBundle>['body'];
    try {
      body = decodeBundle(base64.decode(req.bundle)).body;
    } catch (e) {
      throw new KmsError('DecodeError', `backup bundle: ${(e as Error).message.slice(0, 300)}`);
    }
    if (body.bundleId !== req.bundleId || body.keyId !== req.keyId || body.epoch !== open.epoch)
      throw new StateError('ContextMismatch', 'the bundle is not the one this node dealt in');
    // Issue 14: the custody data the officers' key will be restored with is this node's own.
    let carried: BundleCustody | undefined;
    try {
      carried = bundleCustody(body);
    } catch (e) {
      throw new KmsError('ValidationError', `refusing to sign the bundle: ${(e as Error).message}`);
    }
    if (!sameCustody(carried, open.custody))
      throw new StateError(
        'ContextMismatch',
        `refusing to sign the bundle: its custody metadata (chainCode, merkleRoot) of ${req.keyId} is not this node's`,
      );
    const { key } = await this.#c.keys.active(req.keyId);
    const s = signBundle(body, key, open.dealing);
    this.#open.delete(req.bundleId);
    await this.#c.record({
      event: 'backup.signed',
      keyId: req.keyId,
      epoch: open.epoch,
      bundleId: req.bundleId,
    });
    return { dealer: s.dealer, R: toHex(s.R), z: toHex(s.z) };
  }

  #sweep(): void {
    const now = Date.now();
    for (const [id, o] of this.#open) if (o.until <= now) this.#open.delete(id);
  }
}
