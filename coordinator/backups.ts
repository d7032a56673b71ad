/**
 * The coordinator's part in backup, restore and import (issue 16): a courier. It asks t members
 * to deal to the officers (`backup-deal`, each checks the client-signed request itself), assembles
 * the dealings into the bundle, has every dealer sign it (`backup-sign`) and checks the result as
 * anyone would (protocol/officer-backup.ts `verifyBundle`). For a restore or an import it hands the
 * signed request, which carries every dealing sealed to its node, to each new member
 * (`external-deal`), proves the members' confirmations into the certificate (protocol/epoch.ts
 * `certificateGaps`, against the group element the request names), and commits and confirms the
 * new key as after a DKG; a failure before the commit aborts the pending epoch on every member.
 * It never sees a share, a sub-share or an officer's key.
 */
import type { FrostPublic } from '@noble/curves/abstract/frost.js';
import { officerSetFromJson } from '../client/officer-key.ts';
import { fromHex } from '../protocol/bytes.ts';
import { certificateGaps } from '../protocol/epoch.ts';
import { type KmsError, ProtocolError, isKmsError } from '../protocol/errors.ts';
import type { Epoch, KeyId, ParticipantId, SessionId } from '../protocol/ids.ts';
import {
  assembleBundle,
  type BackupBundle,
  type BackupPlan,
  encodeBundle,
  finishBundle,
  verifyBundle,
  withCustody,
} from '../protocol/officer-backup.ts';
import { packageDigest } from '../protocol/package-proof.ts';
import { publicFromHex } from '../protocol/packages.ts';
import { keySpec, type KeySpecName, publicKeyFromGroupElement } from '../protocol/suites.ts';
import { certFromHex } from '../net/certificate.ts';
import type { Confirmations, ExternalDealAnswer } from '../net/rpc.ts';
import type { AuthorizationWire } from '../net/signed-request.ts';
import type { EpochInfo } from './cluster.ts';
import type { EpochSync } from './epoch-sync.ts';
import { isRefusal, refusalError } from './node-refusal.ts';
import { byNodeIndex, type NodeRpc } from './node-rpc.ts';
import { participantIdOf } from '../protocol/elements.ts';
import { nodeIndex } from '../protocol/ids.ts';
import { base64 } from '@scure/base';

export type BackupRequest = {
  readonly key: EpochInfo;
  /** `{officers: [{name, publicKey}], threshold}` as the principal signed it. */
  readonly officerSet: unknown;
  readonly metadata: Readonly<Record<string, string>>;
  readonly auth?: AuthorizationWire;
};

export type ExternalRequestFacts = {
  readonly kind: 'restore' | 'import';
  readonly keyId: string;
  readonly keySpec: KeySpecName;
  readonly groupElement: string;
  readonly epoch: number;
  readonly threshold: number;
  readonly participants: readonly string[];
  readonly sessionId: string;
  readonly auth?: AuthorizationWire;
};

const DEAL_TIMEOUT_MS = 30_000;

/** Throws the members' refusal as they gave it, else the first failure. */
function failure(what: string, failed: { node: string; err: unknown }[]): KmsError {
  const refusals = failed.flatMap((f) => (isRefusal(f.err) ? [{ node: f.node, err: f.err }] : []));
  if (refusals.length > 0) return refusalError(what, refusals);
  const first = failed[0]!;
  const err = first.err;
  return new ProtocolError(
    isKmsError(err) ? err.code : 'ProtocolAborted',
    `${what} failed on ${first.node}: ${isKmsError(err) ? err.message : String(err)}`,
    {
      ...(isKmsError(err) && err.culprits.length > 0 ? { culprits: err.culprits } : {}),
      details: { failed: failed.map((f) => f.node) },
    },
  );
}

async function everyone<T>(
  nodes: readonly string[],
  call: (node: string) => Promise<T>,
): Promise<{ ok: Map<string, T>; failed: { node: string; err: unknown }[] }> {
  const settled = await Promise.allSettled(nodes.map(call));
  const ok = new Map<string, T>();
  const failed: { node: string; err: unknown }[] = [];
  settled.forEach((r, i) => {
    if (r.status === 'fulfilled') ok.set(nodes[i]!, r.value);
    else failed.push({ node: nodes[i]!, err: r.reason });
  });
  return { ok, failed };
}

export class BackupCourier {
  readonly #n: NodeRpc;
  readonly #sync: EpochSync;

  constructor(n: NodeRpc, sync: EpochSync) {
    this.#n = n;
    this.#sync = sync;
  }

  /** The bundle (verified here as anyone would) of a backup of `key` to the signed officer set. */
  async backup(req: BackupRequest): Promise<{ bundle: Uint8Array; bundleId: string; epoch: number }> {
    const { key } = req;
    const spec = keySpec(key.keySpec);
    const officerSet = officerSetFromJson(req.officerSet);
    const dealers = (await this.#n.pickReachable(key.participants, key.threshold)).sort(byNodeIndex);
    const auth = req.auth === undefined ? {} : { auth: req.auth };
    const dealt = await everyone(dealers, (d) =>
      this.#n.rpc(
        d,
        {
          op: 'backup-deal',
          keyId: key.keyId,
          epoch: key.epoch,
          dealers,
          metadata: { ...req.metadata },
          ...auth,
        },
        DEAL_TIMEOUT_MS,
      ),
    );
    if (dealt.failed.length > 0) throw failure('backup', dealt.failed);
    const answers = dealers.map((d) => dealt.ok.get(d)!);
    const first = answers[0]!;
    if (answers.some((a) => a.bundleId !== first.bundleId || a.epoch !== first.epoch))
      throw new ProtocolError('ProtocolAborted', 'the dealers answered for different backups');
    const committee = publicFromHex(spec, first.public);
    if (answers.some((a) => packageDigest(publicFromHex(spec, a.public)) !== packageDigest(committee)))
      throw new ProtocolError('ProtocolAborted', 'the dealers hold different packages of the epoch');
    // Issue 14: each dealer dealt with its own custody data (chain code, merkle root), checked by it
    // against what this coordinator named; the bundle's metadata carries exactly that.
    const custody = first.custody;
    const same = (a: typeof custody) =>
      a?.chainCode === custody?.chainCode && (a?.merkleRoot ?? null) === (custody?.merkleRoot ?? null);
    if (answers.some((a) => !same(a.custody)))
      throw new ProtocolError('ProtocolAborted', 'the dealers hold different custody data of the key', {
        details: { dealers },
      });
    const plan: BackupPlan = {
      bundleId: first.bundleId,
      keyId: key.keyId as KeyId,
      keySpec: spec.name,
      epoch: first.epoch as Epoch,
      metadata: withCustody(req.metadata, custody),
      committee,
      officerSet,
      dealers: dealers.map((d) => participantIdOf(spec, nodeIndex(d)!) as ParticipantId),
    };
    const body = assembleBundle(
      plan,
      answers.map((a) => ({
        dealer: a.dealing.dealer as ParticipantId,
        commitments: a.dealing.commitments.map((c) => fromHex(c)),
        ciphertexts: a.dealing.ciphertexts.map((c) => fromHex(c)),
        proof: { R: fromHex(a.dealing.proof.R), z: fromHex(a.dealing.proof.z) },
      })),
    );
    const unsigned = base64.encode(encodeBundle({ body, signatures: [] }));
    const signed = await everyone(dealers, (d) =>
      this.#n.rpc(
        d,
        { op: 'backup-sign', keyId: key.keyId, bundleId: plan.bundleId, bundle: unsigned },
        DEAL_TIMEOUT_MS,
      ),
    );
    if (signed.failed.length > 0) throw failure('backup signature', signed.failed);
    const bundle: BackupBundle = finishBundle(
      body,
      dealers.map((d) => {
        const s = signed.ok.get(d)!;
        return { dealer: s.dealer as ParticipantId, R: fromHex(s.R), z: fromHex(s.z) };
      }),
    );
    // Checked here as anyone would, against the key this coordinator knows (the group element: for
    // a Taproot key the API public key is the output key, not the bundle's internal key).
    const problems = verifyBundle(bundle, {
      keyId: key.keyId,
      publicKey: publicKeyFromGroupElement(spec, fromHex(key.groupElement)),
    });
    if (problems.length > 0)
      throw new ProtocolError('ProtocolAborted', 'the assembled backup does not verify', {
        details: { problems },
      });
    return { bundle: encodeBundle(bundle), bundleId: plan.bundleId, epoch: plan.epoch };
  }

  /**
   * Restore or import: every new member checks the dealings of the signed request and answers its
   * confirmation; with every confirmation proven, the key is committed and confirmed everywhere.
   */
  async external(req: ExternalRequestFacts): Promise<EpochInfo> {
    const members = [...req.participants].sort(byNodeIndex);
    this.#n.checkMembers(members);
    const auth = req.auth === undefined ? {} : { auth: req.auth };
    const dealt = await everyone(members, (m) =>
      this.#n.rpc(m, { op: 'external-deal', kind: req.kind, keyId: req.keyId, ...auth }, DEAL_TIMEOUT_MS),
    );
    // Nothing committed: every member drops its pending share (a restore may be retried with the
    // same key id, so nothing is destroyed: a member keeps no record of a key it never activated).
    const abort = async () => {
      await Promise.allSettled(
        members.map((m) => this.#n.rpc(m, { op: 'abort-epoch', keyId: req.keyId, epoch: req.epoch }, 5_000)),
      );
    };
    if (dealt.failed.length > 0) {
      if (dealt.ok.size > 0) await abort();
      throw failure(req.kind, dealt.failed);
    }
    const answers = members.map((m) => [m, dealt.ok.get(m)!] as const);
    let pub: FrostPublic;
    let certificate: Confirmations;
    let transcriptHash: string;
    try {
      ({ pub, certificate, transcriptHash } = this.#prove(req, answers));
    } catch (e) {
      await abort();
      throw e;
    }
    const commit = await everyone(members, (m) =>
      this.#n.rpc(
        m,
        { op: 'commit-epoch', keyId: req.keyId, epoch: req.epoch, certificate, transcriptHash },
        5_000,
      ),
    );
    if (commit.failed.length > 0)
      this.#n.log.warn(
        { keyId: req.keyId, failed: commit.failed.map((f) => f.node) },
        `${req.kind}: commit not delivered`,
      );
    const confirmed = await everyone(members, (m) =>
      this.#n.rpc(
        m,
        {
          op: 'confirm-key',
          keyId: req.keyId,
          epoch: req.epoch,
          groupElement: req.groupElement,
          transcriptHash,
        },
        5_000,
      ),
    );
    if (commit.failed.length === 0 && confirmed.failed.length === 0)
      this.#sync.remember(req.keyId, req.epoch, pub);
    const a = answers[0]![1];
    return {
      keyId: req.keyId,
      keySpec: req.keySpec,
      epoch: req.epoch,
      threshold: req.threshold,
      participants: members,
      publicKey: a.publicKey,
      groupElement: req.groupElement,
      transcriptHash,
    };
  }

  /** Every member's answer agrees and the confirmations make a complete certificate (C-1). */
  #prove(
    req: ExternalRequestFacts,
    answers: readonly (readonly [string, ExternalDealAnswer])[],
  ): { pub: FrostPublic; certificate: Confirmations; transcriptHash: string } {
    const spec = keySpec(req.keySpec);
    const first = answers[0]![1];
    const pub = publicFromHex(spec, first.public);
    for (const [m, a] of answers) {
      const same =
        a.epoch === req.epoch &&
        a.groupElement === req.groupElement &&
        a.transcriptHash === first.transcriptHash &&
        packageDigest(publicFromHex(spec, a.public)) === packageDigest(pub) &&
        a.participant === participantIdOf(spec, nodeIndex(m)!);
      if (!same)
        throw new ProtocolError('ParticipantMisbehaved', `${m} answered another ${req.kind} result`, {
          culprits: [{ participant: m, reason: 'equivocation', round: `${req.kind}.result` }],
        });
    }
    const certificate: Confirmations = Object.fromEntries(
      answers.map(([, a]) => [a.participant, { R: a.R, z: a.z }]),
    );
    const group = fromHex(req.groupElement);
    const cert = certFromHex(req.keyId, req.epoch, first.transcriptHash, group, certificate, req.sessionId);
    const gaps = certificateGaps(
      spec.name,
      {
        epoch: req.epoch as Epoch,
        public: pub,
        transcriptHash: fromHex(first.transcriptHash),
        sessionId: req.sessionId as SessionId,
      },
      group,
      cert,
    );
    if (gaps.length > 0)
      throw new ProtocolError(
        'ProtocolAborted',
        `${req.kind}: the certificate does not prove: ${gaps.join(', ')}`,
      );
    return { pub, certificate, transcriptHash: first.transcriptHash };
  }
}
