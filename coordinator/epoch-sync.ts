/**
 * The coordinator's view of each key's current epoch and public package, as the members hold them
 * (F-06, I5): asked of the nodes, PROVEN, cached per `keyId/epoch`.
 *
 * Nothing one node says is taken as proof (security review C-2, H-1). A package is used (to sign,
 * to start a key event, to bring members forward) only if it is proven against the group element
 * this coordinator already trusts (protocol/epoch.ts certificateGaps: a Feldman-consistent package
 * plus a valid confirmation from every member), or, for an epoch whose members hold no
 * certificate, if at least `threshold` members of the committee hold that very package. A newer
 * epoch than the caller's record is adopted only with both: a proven certificate AND at least the
 * new threshold of the new committee holding it (active, or pending with the same package digest).
 */
import type { FrostPublic } from '@noble/curves/abstract/frost.js';
import { fromHex } from '../protocol/bytes.ts';
import { participantIdOf } from '../protocol/elements.ts';
import { certificateGaps } from '../protocol/epoch.ts';
import { KmsError, StateError, isKmsError } from '../protocol/errors.ts';
import type { Epoch, SessionId } from '../protocol/ids.ts';
import { nodeIndex } from '../protocol/ids.ts';
import { packageDigest, packageGaps } from '../protocol/package-proof.ts';
import { type PublicPackageHex, publicFromHex, publicToHex } from '../protocol/packages.ts';
import { type KeySpec, keySpec } from '../protocol/suites.ts';
import { LruMap } from '../common/lru-map.ts';
import { certFromHex } from '../net/certificate.ts';
import type { PublicAnswer, RpcRequest } from '../net/rpc.ts';
import type { EpochInfo } from './cluster.ts';
import { type NodeRpc, byNodeIndex } from './node-rpc.ts';

/** One node's `public` answer, decoded and judged against the trusted group element. */
type Judged = {
  node: string;
  r: PublicAnswer;
  pub: FrostPublic;
  digest: string;
  /** Its certificate proves its epoch (consistent package + every member's confirmation). */
  proven: boolean;
  /** Its package is consistent with the trusted group element (no certificate needed). */
  consistent: boolean;
};

const MAX_CACHED_PUBLICS = 16_384;

export class EpochSync {
  readonly #n: NodeRpc;
  /**
   * PROVEN public packages by `keyId/epoch`; at most MAX_CACHED_PUBLICS, least recently used dropped
   * first (issue 17, scale: bounded however many keys are stored; a dropped one is asked again).
   */
  readonly #publics = new LruMap<string, FrostPublic>(MAX_CACHED_PUBLICS);
  /** Epochs found on the members that are newer than the caller's record (see sync). */
  readonly #newer = new Map<string, EpochInfo>();

  constructor(n: NodeRpc) {
    this.#n = n;
  }

  /**
   * Caches the package of an epoch this coordinator saw committed; the caller has proven it
   * against the key's group element (key-event-runner.ts) before.
   */
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
    this.#newer.delete(keyId);
  }

  /** The committee's proven public package for an epoch. */
  async public(k: EpochInfo): Promise<FrostPublic> {
    const cached = this.#publics.get(`${k.keyId}/${k.epoch}`);
    if (cached) return cached;
    const spec = keySpec(k.keySpec);
    const judged = await this.#ask(spec, k, k.participants);
    const pub = current(k, judged);
    if (!pub) throw unproven(k, judged);
    this.#publics.set(`${k.keyId}/${k.epoch}`, pub.pub);
    return pub.pub;
  }

  /**
   * The key's epoch as its members hold it, and its proven package (F-06, I5). A coordinator that
   * crashed between the members' commit and its own store write passes the older epoch: a newer
   * epoch of the same group key wins only if it is proven and held by at least its threshold of
   * its committee. Members left behind by a crash are then sent `commit-epoch`, and members that
   * left the committee but still hold a share are sent `retire`, both with the proven package and
   * certificate; each node checks them itself. Asks every node once per epoch seen by this process
   * (or when `force`d).
   */
  async sync(
    given: EpochInfo,
    force = false,
  ): Promise<{ k: EpochInfo; pub: FrostPublic; answered?: readonly string[] }> {
    const newer = this.#newer.get(given.keyId);
    const k0 = newer && newer.epoch > given.epoch ? newer : given;
    const cached = this.#publics.get(`${k0.keyId}/${k0.epoch}`);
    if (cached && !force) return { k: k0, pub: cached };
    const spec = keySpec(k0.keySpec);
    const ids = [...this.#n.nodes.keys()];
    const judged = await this.#ask(spec, k0, ids);
    const adopted = newest(spec, k0, ids, judged);
    let k = k0;
    let chosen: Judged | undefined;
    if (adopted) {
      chosen = adopted.proof;
      k = {
        ...k0,
        epoch: adopted.proof.r.epoch,
        threshold: adopted.proof.pub.signers.min,
        participants: adopted.committee,
        transcriptHash: adopted.proof.r.transcriptHash!,
      };
      this.#n.log.warn(
        { keyId: k.keyId, epoch: k.epoch, recorded: given.epoch, holders: adopted.holders },
        'members hold a newer proven epoch',
      );
      this.#newer.set(k.keyId, k);
    } else {
      chosen = current(
        k0,
        judged.filter((j) => k0.participants.includes(j.node)),
      );
    }
    if (!chosen) throw unproven(k0, judged);
    const ignored = judged.filter((j) => j.r.epoch > k.epoch && !j.proven).map((j) => j.node);
    if (ignored.length > 0) {
      this.#n.log.warn(
        { keyId: k.keyId, epoch: k.epoch, nodes: ignored },
        'ignored newer epochs that are not proven',
      );
    }
    if (chosen.proven) await this.#bringForward(k, chosen, ids, judged);
    this.#publics.set(`${k.keyId}/${k.epoch}`, chosen.pub);
    // The nodes that answered just now (a key event picks its dealers among them, no second probe).
    return { k, pub: chosen.pub, answered: judged.map((j) => j.node) };
  }

  async publicHex(k: EpochInfo): Promise<PublicPackageHex> {
    return publicToHex(await this.public(k));
  }

  /** Asks `nodes` for their `public` answer, in parallel; each judged against `k`'s group element. */
  async #ask(spec: KeySpec, k: EpochInfo, nodes: readonly string[]): Promise<Asked> {
    const trusted = fromHex(k.groupElement);
    const answers = await Promise.all(
      nodes.map((n) =>
        this.#n.rpc(n, { op: 'public', keyId: k.keyId }, this.#n.statusTimeoutMs).then(
          (r) => ({ n, r, code: undefined }),
          (e: unknown) => ({ n, r: undefined, code: isKmsError(e) ? e.code : undefined }),
        ),
      ),
    );
    const out: Asked = Object.assign([] as Judged[], {
      notFound: answers.filter((a) => a.code === 'KeyNotFound').map((a) => a.n),
    });
    for (const { n, r } of answers) {
      if (!r) continue;
      try {
        const pub = publicFromHex(spec, r.public);
        out.push({
          node: n,
          r,
          pub,
          digest: packageDigest(pub),
          proven: proven(spec, k.keyId, r, pub, trusted),
          consistent: packageGaps(spec.name, pub, trusted).length === 0,
        });
      } catch {
        /* a malformed answer: ignore it */
      }
    }
    return out;
  }

  /**
   * Sends the proven epoch to members that lag (`commit-epoch`) and to leavers (`retire`). A key's
   * epoch 0 reaches this only once its DKG was committed here, so a member that holds it
   * unconfirmed (it missed its `confirm-key`, or was just brought to it) is sent `confirm-key`;
   * the node checks the values against what it completed itself.
   */
  async #bringForward(k: EpochInfo, proof: Judged, ids: readonly string[], judged: Judged[]): Promise<void> {
    const byNode = new Map(judged.map((j) => [j.node, j.r]));
    const confirm: RpcRequest = {
      op: 'confirm-key',
      keyId: k.keyId,
      epoch: k.epoch,
      groupElement: k.groupElement,
      transcriptHash: proof.r.transcriptHash!,
    };
    const send = (n: string, req: RpcRequest) =>
      this.#n.rpc(n, req, this.#n.statusTimeoutMs).then(
        () => true,
        (e: unknown) => {
          this.#n.log.warn(
            { node: n, keyId: k.keyId, op: req.op, err: String(e) },
            'member not brought to the epoch',
          );
          return false;
        },
      );
    await Promise.all(
      ids.map(async (n) => {
        const r = byNode.get(n);
        const member = k.participants.includes(n);
        const first = member && k.epoch === 0;
        if (first && r?.epoch === 0 && r.unconfirmed) {
          await send(n, confirm);
          return;
        }
        if ((r?.epoch ?? -1) >= k.epoch || (!member && !r)) return;
        const req: RpcRequest = member
          ? {
              op: 'commit-epoch',
              keyId: k.keyId,
              epoch: k.epoch,
              certificate: proof.r.certificate!,
              transcriptHash: proof.r.transcriptHash!,
            }
          : {
              op: 'retire',
              keyId: k.keyId,
              epoch: k.epoch,
              public: proof.r.public,
              certificate: proof.r.certificate!,
              transcriptHash: proof.r.transcriptHash!,
              sessionId: proof.r.sessionId ?? '',
            };
        if ((await send(n, req)) && first) await send(n, confirm);
      }),
    );
  }
}

/** The judged answers, and the nodes that answered that they hold no share of the key. */
type Asked = Judged[] & { notFound: string[] };

function unproven(k: EpochInfo, asked: Asked): KmsError {
  if (k.participants.length > 0 && k.participants.every((p) => asked.notFound.includes(p))) {
    return new StateError(
      'KeyNotFound',
      `key ${k.keyId}: no member of its committee holds a share of it (${k.participants.join(', ')})`,
    );
  }
  return new KmsError(
    'QuorumUnavailable',
    `no proven package of ${k.keyId} epoch ${k.epoch}: no member answered with a complete certificate, and fewer than ${k.threshold} agree`,
  );
}

/**
 * The package of `k.epoch` from these answers: a proven one (over `k`'s transcript hash when the
 * record has one), else one consistent package held by at least `k.threshold` of them.
 */
function current(k: EpochInfo, judged: readonly Judged[]): Judged | undefined {
  const same = judged.filter((j) => j.r.epoch === k.epoch && j.consistent);
  const proof = same.find((j) => j.proven && (!k.transcriptHash || j.r.transcriptHash === k.transcriptHash));
  if (proof) return proof;
  const byDigest = new Map<string, Judged[]>();
  for (const j of same) byDigest.set(j.digest, [...(byDigest.get(j.digest) ?? []), j]);
  for (const group of byDigest.values()) {
    if (new Set(group.map((j) => j.node)).size >= k.threshold) return group[0];
  }
  return undefined;
}

/**
 * The newest epoch after `k0.epoch` that is proven AND held by at least its threshold of its
 * committee (active, or pending with the same package digest), with that committee.
 */
function newest(
  spec: KeySpec,
  k0: EpochInfo,
  ids: readonly string[],
  judged: readonly Judged[],
): { proof: Judged; committee: string[]; holders: string[] } | undefined {
  const candidates = judged
    .filter((j) => j.r.epoch > k0.epoch && j.proven)
    .sort((a, b) => b.r.epoch - a.r.epoch);
  for (const c of candidates) {
    const committee = ids
      .filter((n) => participantIdOf(spec, nodeIndex(n)!) in c.pub.verifyingShares)
      .sort(byNodeIndex);
    const holders = judged
      .filter(
        (j) =>
          committee.includes(j.node) &&
          ((j.r.epoch === c.r.epoch && j.digest === c.digest) ||
            (j.r.pending?.epoch === c.r.epoch && j.r.pending.publicDigest === c.digest)),
      )
      .map((j) => j.node);
    if (new Set(holders).size >= c.pub.signers.min) return { proof: c, committee, holders };
  }
  return undefined;
}

/** Whether a member's `public` answer carries a certificate that proves its epoch (I5, C-2). */
function proven(
  spec: KeySpec,
  keyId: string,
  r: PublicAnswer,
  pub: FrostPublic,
  trusted: Uint8Array,
): boolean {
  if (!r.certificate || !r.transcriptHash || Object.keys(r.certificate).length === 0) return false;
  const cert = certFromHex(keyId, r.epoch, r.transcriptHash, trusted, r.certificate, r.sessionId ?? '');
  const rec = {
    epoch: r.epoch as Epoch,
    public: pub,
    transcriptHash: fromHex(r.transcriptHash),
    ...(r.sessionId ? { sessionId: r.sessionId as SessionId } : {}),
  };
  return certificateGaps(spec.name, rec, trusted, cert).length === 0;
}
