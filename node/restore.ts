/**
 * A node's part in a restore from recovery officers or an import of an external key (issue 16;
 * protocol/import-deal.ts). The client-signed request (`POST /v1/keys/{id}/restore`,
 * `POST /v1/keys/import`) carries every dealing; this node verifies the request itself
 * (node/request-guard.ts: RestoreKey / ImportKey, with the admin quorum), rebuilds the plan from the
 * signed body alone (for a restore: from the backup bundle, which it verifies in full, so the
 * group key, the officers' verifying shares and the key spec are the bundle's, never the
 * coordinator's word), checks every dealing against the group key, opens its own sub-shares with
 * its X25519 key and stores the new share as a PENDING epoch before it answers its confirmation.
 * The coordinator then brings the certificate (`commit-epoch`, every new member's confirmation over
 * the same transcript) and `confirm-key`, as after a DKG.
 *
 * The node's X25519 key is its Ed25519 identity key in Montgomery form (protocol/import-deal.ts
 * `nodeEncryptionKey`): the dealer takes it from the peer id in its cluster file, so no new key
 * needs distributing and the coordinator cannot substitute one.
 */
import { base64 } from '@scure/base';
import sodium from 'sodium-native';
import { fromHex, toHex } from '../protocol/bytes.ts';
import { DecodeError, KmsError } from '../protocol/errors.ts';
import {
  type ExternalDealing,
  type ExternalDealKind,
  type ExternalDealPlan,
  importDealer,
  nodeEncryptionKey,
  nodeEncryptionSecret,
  receiveExternal,
} from '../protocol/import-deal.ts';
import type { ParticipantId } from '../protocol/ids.ts';
import { outputPublicKey } from '../protocol/key-tweak.ts';
import {
  assertValidBundle,
  type BundleCustody,
  bundleCustody,
  decodeBundle,
  officerPackage,
} from '../protocol/officer-backup.ts';
import { publicToHex } from '../protocol/packages.ts';
import { isKeySpecName, type KeySpecName, keySpec } from '../protocol/suites.ts';
import type { IdentityKey } from '../net/identity.ts';
import type { ExternalDealAnswer, RequestOf } from '../net/rpc.ts';
import { type NodeContext, shareCtx } from './node-context.ts';
import type { BoundRequest } from './request-binding.ts';
import { dkgCustody } from './sign-tweak.ts';

/** Where the key came from (the AWS KMS `Origin` of docs/api.md): recorded in the audit. */
export type KeyOrigin = 'THRESHOLD_DKG' | 'IMPORTED' | 'RESTORED';

const KEY_ID = '[A-Za-z0-9._:-]{1,128}';
const RESTORE_PATH = new RegExp(`^/v1/keys/(${KEY_ID})/restore$`);
const IMPORT_PATH = '/v1/keys/import';
const HEX = /^(?:[0-9a-f]{2})*$/;
const NODE_ID = /^node-[1-9][0-9]{0,3}$/;
const ID = /^[A-Za-z0-9._:-]{1,128}$/;

/** The external dealing a signed request asks for, read from its body alone. */
export type ExternalRequest = {
  readonly kind: ExternalDealKind;
  readonly plan: ExternalDealPlan;
  readonly dealings: readonly ExternalDealing[];
  /** Restore: the bundle id and the key metadata it carries; import: what the request names. */
  readonly bundleId?: string;
  readonly metadata: Readonly<Record<string, string>>;
  /** Restore: the custody data (issue 14) the bundle carries, covered by its dealers' signatures. */
  readonly custody?: BundleCustody;
};

const refuse = (what: string): never => {
  throw new KmsError('Unauthorized', `the signed request does not match: ${what}`);
};

function field<T>(v: unknown, ok: (x: unknown) => boolean, what: string): T {
  if (!ok(v)) throw new DecodeError('DecodeError', `${what} is missing or malformed`);
  return v as T;
}
const isHex = (max: number) => (x: unknown) => typeof x === 'string' && x.length <= max && HEX.test(x);

function readDealings(v: unknown, participants: readonly string[]): ExternalDealing[] {
  const list = field<unknown[]>(v, (x) => Array.isArray(x) && x.length >= 1 && x.length <= 32, 'dealings');
  return list.map((d: any, i) => {
    if (d === null || typeof d !== 'object') throw new DecodeError('DecodeError', `dealings[${i}] malformed`);
    const commitments = field<string[]>(
      d.commitments,
      (x) => Array.isArray(x) && x.length <= 256 && x.every(isHex(300)),
      `dealings[${i}].commitments`,
    ).map((c) => fromHex(c));
    const raw = field<Record<string, string>>(
      d.ciphertexts,
      (x) => x !== null && typeof x === 'object' && !Array.isArray(x),
      `dealings[${i}].ciphertexts`,
    );
    const ciphertexts: Record<string, Uint8Array> = {};
    for (const p of participants)
      ciphertexts[p] = fromHex(field<string>(raw[p], isHex(1024), `dealings[${i}].ciphertexts.${p}`));
    return {
      dealer: field<string>(d.dealer, isHex(114), `dealings[${i}].dealer`) as ParticipantId,
      commitments,
      ciphertexts,
    };
  });
}

/**
 * Parses and checks a signed restore or import request: path, body and every public fact the
 * node needs (the plan), or Unauthorized naming what does not fit. Pure.
 */
export function readExternalRequest(
  kind: ExternalDealKind,
  req: { method: string; path: string; query: string; body: Uint8Array },
): ExternalRequest & BoundRequest {
  if (req.method.toUpperCase() !== 'POST') refuse(`method ${req.method}`);
  if (req.query !== '') refuse('a query on an operation that takes none');
  let b: any;
  try {
    b = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(req.body));
  } catch {
    return refuse(`the ${kind} body is not JSON`);
  }
  if (b === null || typeof b !== 'object') return refuse(`the ${kind} body is not an object`);
  try {
    const participants = field<string[]>(
      b.participants,
      (x) => Array.isArray(x) && x.length >= 2 && x.length <= 256 && x.every((p) => NODE_ID.test(p)),
      'participants',
    );
    const threshold = field<number>(b.threshold, Number.isSafeInteger, 'threshold');
    const sessionId = field<string>(b.sessionId, (x) => typeof x === 'string' && ID.test(x), 'sessionId');
    const dealings = readDealings(b.dealings, participants);
    const keyEvent = { oldThreshold: threshold, newThreshold: threshold, committeeChanges: true };
    if (kind === 'restore') {
      const m = RESTORE_PATH.exec(req.path) ?? refuse(`path ${req.path.slice(0, 200)}, not a restore`);
      const bundle = decodeBundle(
        base64.decode(field<string>(b.bundle, (x) => typeof x === 'string', 'bundle')),
      );
      // Everything public in the bundle: structure, signatures, commitments open to the key.
      assertValidBundle(bundle, { keyId: m[1]! });
      const officers = officerPackage(bundle);
      const epoch = field<number>(b.epoch, Number.isSafeInteger, 'epoch');
      if (epoch <= bundle.body.epoch)
        throw new DecodeError(
          'DecodeError',
          `epoch ${epoch} must follow the backup's epoch ${bundle.body.epoch}`,
        );
      if (dealings.length !== bundle.body.officerSet.threshold)
        throw new DecodeError(
          'DecodeError',
          `a restore needs exactly ${bundle.body.officerSet.threshold} officers' dealings, has ${dealings.length}`,
        );
      const dealers: Record<string, Uint8Array> = {};
      for (const d of dealings) {
        const vs = officers.verifyingShares[d.dealer];
        if (!vs) throw new DecodeError('DecodeError', `dealer ${d.dealer} is not an officer of this backup`);
        dealers[d.dealer] = vs;
      }
      const custody = bundleCustody(bundle.body);
      return {
        operation: 'RestoreKey',
        keyId: m[1]!,
        keyEvent,
        kind,
        bundleId: bundle.body.bundleId,
        metadata: bundle.body.metadata,
        ...(custody === undefined ? {} : { custody }),
        dealings,
        plan: {
          kind,
          keyId: m[1]!,
          keySpec: bundle.body.keySpec,
          sessionId,
          epoch,
          threshold,
          participants,
          groupElement: bundle.body.groupElement,
          dealers,
        },
      };
    }
    if (req.path !== IMPORT_PATH) refuse(`path ${req.path.slice(0, 200)}, not an import`);
    const keyId = field<string>(b.keyId, (x) => typeof x === 'string' && ID.test(x), 'keyId');
    const spec = field<KeySpecName>(b.keySpec, (x) => typeof x === 'string' && isKeySpecName(x), 'keySpec');
    const groupElement = fromHex(field<string>(b.groupElement, isHex(300), 'groupElement'));
    // A Taproot key is stored as its BIP341 internal key, even y (docs/custody.md): the importer must
    // say the secret is the internal key, and the element must be the even-y one.
    if (spec === 'FROST_SECP256K1_TR' && (b.taprootInternal !== true || groupElement[0] !== 0x02))
      throw new DecodeError(
        'DecodeError',
        'a FROST_SECP256K1_TR import must be an even-y internal key (taprootInternal)',
      );
    if (spec !== 'FROST_ED25519' && spec !== 'FROST_SECP256K1_TR')
      throw new DecodeError('DecodeError', `import of ${spec} keys is not supported`);
    const metadata: Record<string, string> = {};
    if (typeof b.alias === 'string') metadata.alias = b.alias.slice(0, 256);
    if (typeof b.description === 'string') metadata.description = b.description.slice(0, 1024);
    return {
      operation: 'ImportKey',
      keyId,
      keyEvent,
      kind,
      metadata,
      dealings,
      plan: {
        kind,
        keyId,
        keySpec: spec,
        sessionId,
        epoch: 0,
        threshold,
        participants,
        groupElement,
        dealers: { [importDealer(keySpec(spec))]: groupElement },
      },
    };
  } catch (e) {
    if (e instanceof KmsError && e.code === 'Unauthorized') throw e;
    return refuse(`the ${kind} body: ${(e as Error).message.slice(0, 300)}`);
  }
}

export class Restores {
  readonly #c: NodeContext;
  #x25519: { publicKey: Uint8Array; secretKey: Uint8Array } | undefined;

  constructor(ctx: NodeContext) {
    this.#c = ctx;
  }

  /** The node's identity key, whose Montgomery form opens the dealings sealed to this node. */
  attachIdentity(identity: IdentityKey): void {
    const seed = identity.raw.subarray(0, 32);
    const secretKey = sodium.sodium_malloc(32);
    secretKey.set(nodeEncryptionSecret(seed));
    this.#x25519 = { publicKey: nodeEncryptionKey(identity.publicKey.raw), secretKey };
  }

  close(): void {
    if (this.#x25519) sodium.sodium_memzero(this.#x25519.secretKey);
    this.#x25519 = undefined;
  }

  async deal(req: RequestOf<'external-deal'>): Promise<ExternalDealAnswer> {
    const self = this.#c.cfg.nodeId;
    const operation = req.kind === 'restore' ? 'RestoreKey' : 'ImportKey';
    let parsed: ExternalRequest | undefined;
    const authorized = await this.#c.guard.authorize(
      {
        rpc: 'bound',
        operation,
        keyId: req.keyId,
        bind: (r) => {
          const x = readExternalRequest(req.kind, r);
          parsed = x;
          return { operation: x.operation, keyId: x.keyId, ...(x.keyEvent ? { keyEvent: x.keyEvent } : {}) };
        },
      },
      req.auth,
    );
    if (!authorized || !parsed)
      throw new KmsError('Unauthorized', `a ${req.kind} needs a client-signed request`);
    const { plan, dealings } = parsed;
    if (!plan.participants.includes(self))
      throw new KmsError('ValidationError', `${self} is not in the new committee`);
    for (const p of plan.participants)
      if (p !== self && !this.#c.peerByNode.has(p))
        throw new KmsError('ValidationError', `unknown member ${p}`);
    // A key this node holds, held, or is taking in (pending) is never overwritten; only the empty
    // record an aborted restore or import leaves behind may be taken again.
    const existing = await this.#c.store.getKey(plan.keyId);
    if (
      existing &&
      (existing.state === 'Destroyed' ||
        existing.activeEpoch !== undefined ||
        existing.pendingEpoch !== undefined ||
        (await this.#c.store.listEpochs(plan.keyId)).length > 0)
    )
      throw new KmsError('Conflict', `key ${plan.keyId} already exists on ${self} (${existing.state})`);
    if (await this.#c.store.wasSessionSeen(plan.sessionId))
      throw new KmsError('Conflict', `session ${plan.sessionId} was already started on ${self}`);
    await this.#c.store.markSessionSeen(plan.sessionId);
    const box = this.#x25519;
    if (!box) throw new KmsError('Internal', 'the node has no identity attached');
    const open = (c: Uint8Array): Uint8Array => {
      if (c.length < sodium.crypto_box_SEALBYTES)
        throw new DecodeError('DecodeError', 'sealed box too short');
      const m = new Uint8Array(c.length - sodium.crypto_box_SEALBYTES);
      if (!sodium.crypto_box_seal_open(m, c, box.publicKey, box.secretKey))
        throw new DecodeError('DecodeError', 'sealed box does not open');
      return m;
    };
    const spec = keySpec(plan.keySpec);
    const result = receiveExternal(plan, dealings, self, box.publicKey, open);
    try {
      const sealed = await this.#c.sealer.seal(
        shareCtx(self, plan.keyId, plan.epoch),
        result.key.secret.signingShare,
      );
      await this.#c.store.putPendingEpoch(
        {
          keyId: plan.keyId,
          keySpec: plan.keySpec,
          epoch: plan.epoch,
          threshold: plan.threshold,
          participants: [...plan.participants],
          participant: result.key.secret.identifier,
          public: publicToHex(result.public),
          sessionId: plan.sessionId,
          transcriptHash: '',
          status: 'pending',
        },
        sealed,
      );
    } finally {
      result.key.secret.signingShare.fill(0);
    }
    // Custody data (issue 14): a restore keeps the chain code and merkle root the verified bundle
    // carries (signed by every dealer of the backup: the same addresses as before); an import gets a
    // chain code over its own transcript, as a DKG does, and the coordinator computes the same one
    // from the transcript hash all members confirm (coordinator/routes/backups.ts).
    if (parsed.custody !== undefined) {
      await this.#c.store.putCustody(plan.keyId, {
        chainCode: parsed.custody.chainCode,
        merkleRoot: parsed.custody.merkleRoot,
      });
    } else if (parsed.kind === 'import') {
      await this.#c.store.putCustody(
        plan.keyId,
        dkgCustody(spec, plan.groupElement, result.transcriptHash, null),
      );
    }
    const origin: KeyOrigin = parsed.kind === 'restore' ? 'RESTORED' : 'IMPORTED';
    await this.#c.record({
      event: parsed.kind === 'restore' ? 'key.restored' : 'key.imported',
      keyId: plan.keyId,
      keySpec: plan.keySpec,
      epoch: plan.epoch,
      origin,
      ...(parsed.bundleId ? { bundleId: parsed.bundleId } : {}),
      dealers: dealings.map((d) => d.dealer),
      initiator: authorized.initiator,
      sessionId: plan.sessionId,
    });
    return {
      epoch: plan.epoch,
      groupElement: toHex(plan.groupElement),
      publicKey: toHex(outputPublicKey(spec, plan.groupElement)),
      transcriptHash: toHex(result.transcriptHash),
      public: publicToHex(result.public),
      participant: result.key.secret.identifier,
      R: toHex(result.confirmation.R),
      z: toHex(result.confirmation.z),
    };
  }
}
