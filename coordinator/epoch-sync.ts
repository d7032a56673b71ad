/**
 * The coordinator's view of each key's current epoch and public package, as the members hold them
 * (F-06, I5): asked of the nodes, checked, cached per `keyId/epoch`.
 */
import type { FrostPublic } from '@noble/curves/abstract/frost.js';
import { fromHex, toHex } from '../protocol/bytes.ts';
import { participantIdOf } from '../protocol/elements.ts';
import { type Certificate, type EpochRecord, certificateGaps } from '../protocol/epoch.ts';
import { KmsError } from '../protocol/errors.ts';
import type { Epoch, KeyId, SessionId } from '../protocol/ids.ts';
import { nodeIndex } from '../protocol/ids.ts';
import { type PublicPackageHex, publicFromHex, publicToHex } from '../protocol/packages.ts';
import { type KeySpec, keySpec } from '../protocol/suites.ts';
import type { PublicAnswer, RpcRequest } from '../net/rpc.ts';
import type { EpochInfo } from './cluster.ts';
import { type NodeRpc, byNodeIndex } from './node-rpc.ts';

export class EpochSync {
  readonly #n: NodeRpc;
  /** Public packages by `keyId/epoch`: fetched from the committee once, then reused. */
  readonly #publics = new Map<string, FrostPublic>();
  /** Epochs found on the members that are newer than the caller's record (see sync). */
  readonly #newer = new Map<string, EpochInfo>();

  constructor(n: NodeRpc) {
    this.#n = n;
  }

  /** Caches the package of an epoch this coordinator saw committed. */
  remember(keyId: string, epoch: number, pub: FrostPublic): void {
    this.#publics.set(`${keyId}/${epoch}`, pub);
  }

  /** Drops the cached package of one epoch, or of every epoch of the key. */
  forget(keyId: string, epoch?: number): void {
    if (epoch !== undefined) {
      this.#publics.delete(`${keyId}/${epoch}`);
      return;
    }
    for (const k of this.#publics.keys()) if (k.startsWith(`${keyId}/`)) this.#publics.delete(k);
  }

  /** The committee's public package for an epoch: asked of members, checked against the group key. */
  async public(k: EpochInfo): Promise<FrostPublic> {
    const cacheKey = `${k.keyId}/${k.epoch}`;
    const cached = this.#publics.get(cacheKey);
    if (cached) return cached;
    const spec = keySpec(k.keySpec);
    for (const m of k.participants) {
      try {
        const r = await this.#n.rpc(m, { op: 'public', keyId: k.keyId }, this.#n.statusTimeoutMs);
        if (r.epoch !== k.epoch) continue;
        const pub = publicFromHex(spec, r.public);
        if (toHex(pub.commitments[0]!) !== k.groupElement) continue; // a lying member; ask another
        this.#publics.set(cacheKey, pub);
        return pub;
      } catch {
        /* try the next member */
      }
    }
    throw new KmsError(
      'QuorumUnavailable',
      `no committee member of ${k.keyId} answered with epoch ${k.epoch}`,
    );
  }

  /**
   * The key's epoch as its members hold it, and its public package (F-06, I5). A coordinator that
   * crashed between the members' commit and its own store write passes the older epoch: a newer
   * epoch of the same group key wins if its certificate (every member's confirmation) verifies.
   * Members left behind by a crash are then sent `commit-epoch`, and members that left the
   * committee but still hold a share are sent `retire`; each node checks the certificate itself.
   * Asks every node once per epoch seen by this process (or when `force`d).
   */
  async sync(given: EpochInfo, force = false): Promise<{ k: EpochInfo; pub: FrostPublic }> {
    const newer = this.#newer.get(given.keyId);
    const k0 = newer && newer.epoch > given.epoch ? newer : given;
    const cached = this.#publics.get(`${k0.keyId}/${k0.epoch}`);
    if (cached && !force) return { k: k0, pub: cached };
    const spec = keySpec(k0.keySpec);
    const ids = [...this.#n.nodes.keys()];
    const answers = await Promise.all(
      ids.map((n) =>
        this.#n.rpc(n, { op: 'public', keyId: k0.keyId }, this.#n.statusTimeoutMs).then(
          (r) => ({ n, r }),
          () => ({ n, r: undefined }),
        ),
      ),
    );
    let best: { epoch: number; pub: FrostPublic; proof?: PublicAnswer } | undefined;
    for (const { n, r } of answers) {
      if (
        !r ||
        r.epoch < k0.epoch ||
        (best && r.epoch < best.epoch) ||
        (best?.proof && r.epoch === best.epoch)
      )
        continue;
      try {
        const pub = publicFromHex(spec, r.public);
        if (toHex(pub.commitments[0]!) !== k0.groupElement) continue; // a lying member; ignore it
        const ok = proven(spec, k0.keyId, r, pub);
        if (r.epoch > k0.epoch ? !ok : !k0.participants.includes(n)) continue;
        best = { epoch: r.epoch, pub, ...(ok ? { proof: r } : {}) };
      } catch {
        /* a malformed answer: ignore it */
      }
    }
    if (!best)
      throw new KmsError(
        'QuorumUnavailable',
        `no committee member of ${k0.keyId} answered with epoch ${k0.epoch}`,
      );
    const pub = best.pub;
    const k: EpochInfo =
      best.epoch === k0.epoch
        ? k0
        : {
            ...k0,
            epoch: best.epoch,
            threshold: pub.signers.min,
            participants: ids
              .filter((n) => participantIdOf(spec, nodeIndex(n)!) in pub.verifyingShares)
              .sort(byNodeIndex),
            transcriptHash: best.proof!.transcriptHash!,
          };
    if (k.epoch > given.epoch) {
      this.#n.log.warn(
        { keyId: k.keyId, epoch: k.epoch, recorded: given.epoch },
        'members hold a newer certified epoch',
      );
      this.#newer.set(k.keyId, k);
    }
    const proof = best.proof;
    if (proof) {
      await Promise.all(
        answers.map(async ({ n, r }) => {
          const member = k.participants.includes(n);
          if ((r?.epoch ?? -1) >= k.epoch || (!member && !r)) return;
          const req: RpcRequest = member
            ? {
                op: 'commit-epoch',
                keyId: k.keyId,
                epoch: k.epoch,
                certificate: proof.certificate!,
                transcriptHash: proof.transcriptHash!,
              }
            : {
                op: 'retire',
                keyId: k.keyId,
                epoch: k.epoch,
                public: proof.public,
                certificate: proof.certificate!,
                transcriptHash: proof.transcriptHash!,
                sessionId: proof.sessionId ?? '',
              };
          await this.#n
            .rpc(n, req, this.#n.statusTimeoutMs)
            .catch((e: unknown) =>
              this.#n.log.warn(
                { node: n, keyId: k.keyId, op: req.op, err: String(e) },
                'member not brought to the epoch',
              ),
            );
        }),
      );
    }
    this.#publics.set(`${k.keyId}/${k.epoch}`, pub);
    return { k, pub };
  }

  async publicHex(k: EpochInfo): Promise<PublicPackageHex> {
    return publicToHex(await this.public(k));
  }
}

/** Whether a member's `public` answer carries a complete certificate for its epoch (I5). */
function proven(spec: KeySpec, keyId: string, r: PublicAnswer, pub: FrostPublic): boolean {
  if (!r.certificate || !r.transcriptHash || Object.keys(r.certificate).length === 0) return false;
  const cert = {
    protocol: 'reshare',
    keyId: keyId as KeyId,
    sessionId: (r.sessionId ?? '') as SessionId,
    epoch: r.epoch as Epoch,
    transcriptHash: fromHex(r.transcriptHash),
    groupElement: pub.commitments[0]!,
    confirmations: Object.fromEntries(
      Object.entries(r.certificate).map(([p, v]) => [p, { R: fromHex(v.R), z: fromHex(v.z) }]),
    ),
  } as Certificate;
  const rec: EpochRecord = { epoch: r.epoch as Epoch, public: pub };
  return certificateGaps(spec.name, rec, pub.commitments[0]!, cert).length === 0;
}
