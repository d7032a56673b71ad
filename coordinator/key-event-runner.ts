/**
 * Runs a key-creating session (DKG, refresh, reshare) on every member, then commits or aborts it
 * everywhere. Key events follow the two-phase rule (threats I5): every member runs the session and
 * persists its new share as pending before confirming; a member that ends with a complete
 * certificate (every new member's confirmation) activates the new epoch.
 *
 * A member's answer is never taken as proof (security review C-1): each result is proven
 * (protocol/epoch.ts certificateGaps: consistent package + every new member's confirmation)
 * against the group element the coordinator trusts before anything is committed, sent or cached.
 * A DKG has no group element to trust yet: it is reported created only when every member returned
 * the same proven (group element, transcript hash, package digest) (see dkgAgreed for a member
 * that crashed after its certificate); only then is every member sent `confirm-key` (a member
 * holds its completed key unconfirmed until then: it neither signs nor runs key events); otherwise
 * it is aborted and every member destroys what it holds of the key, which an unconfirmed key
 * allows at once. A member that misses its confirm-key is confirmed by the next sync
 * (epoch-sync.ts).
 */
import { TL } from '../common/timeline.ts';
import type { FrostPublic } from '@noble/curves/abstract/frost.js';
import { fromHex, toHex } from '../protocol/bytes.ts';
import { participantIdOf } from '../protocol/elements.ts';
import { certificateGaps } from '../protocol/epoch.ts';
import { type Blame, type KmsError, ProtocolError, isKmsError } from '../protocol/errors.ts';
import { type Epoch, type SessionId, nodeIndex } from '../protocol/ids.ts';
import { packageDigest } from '../protocol/package-proof.ts';
import { publicFromHex } from '../protocol/packages.ts';
import { outputPublicKey } from '../protocol/key-tweak.ts';
import { type KeySpec, keySpec } from '../protocol/suites.ts';
import { crashPoint } from '../common/crash-points.ts';
import { certFromHex } from '../net/certificate.ts';
import type { SessionAnswer, SessionSpec } from '../net/rpc.ts';
import type { AuthorizationWire } from '../net/signed-request.ts';
import type { EpochInfo, ProgressFn } from './cluster.ts';
import type { EpochSync } from './epoch-sync.ts';
import { type NodeRpc, byNodeIndex } from './node-rpc.ts';
import { isRefusal, refusalError } from './node-refusal.ts';

/** A new member's answer when its session ended with a certificate. */
export type SessionResult = Extract<SessionAnswer, { certificate: unknown }>;

/** A new member's result, judged: what it claims (`claim`) and whether that is proven. */
type Judged = { node: string; r: SessionResult; claim: string; pub?: FrostPublic; gaps: string[] };

export class KeyEventRunner {
  readonly #n: NodeRpc;
  readonly #sync: EpochSync;

  constructor(n: NodeRpc, sync: EpochSync) {
    this.#n = n;
    this.#sync = sync;
  }

  /**
   * Runs a key-creating session on every member, then commits or aborts it everywhere.
   * `groupElement` (hex) is the key's known group element for refresh and reshare (from the
   * proven package the session starts from); a DKG has none. `auth` is the client-signed request
   * each member verifies before it joins (the nodes decide); members that refuse it make the whole
   * event a refusal, reported as the nodes gave it (node-refusal.ts).
   */
  async run(
    session: SessionSpec,
    retiring: readonly string[],
    progress?: ProgressFn,
    groupElement?: string,
    auth?: AuthorizationWire,
  ): Promise<EpochInfo> {
    const members = [...new Set([...(session.dealers ?? []), ...session.participants])].sort(byNodeIndex);
    progress?.({ phase: session.kind, detail: `session ${session.sessionId} on ${members.join(', ')}` });
    TL?.(`coord ${session.kind} prepare`);
    await this.#n.prepare(session, members);
    TL?.(`coord ${session.kind} prepared; session rpcs`);
    const settled = await Promise.allSettled(
      members.map((m) =>
        this.#n
          .rpc(
            m,
            { op: 'session', session, ...(auth === undefined ? {} : { auth }) },
            this.#n.sessionTimeoutMs + 5_000,
          )
          .then((x) => {
            TL?.(`coord answer from ${m}`);
            return x;
          }),
      ),
    );
    TL?.(`coord ${session.kind} all answers`);
    const spec = keySpec(session.keySpec);
    const judged = new Map<string, Judged>();
    const failed: { node: string; err: unknown }[] = [];
    settled.forEach((r, i) => {
      const node = members[i]!;
      if (r.status === 'rejected') failed.push({ node, err: r.reason });
      else if ('certificate' in r.value && session.participants.includes(node)) {
        judged.set(node, judge(spec, session, node, r.value, groupElement));
      }
    });
    const proven = [...judged.values()].filter((j) => j.gaps.length === 0);
    // A member that claims a result it cannot prove lied (an honest member's complete
    // certificate always proves its epoch): named with the gaps as evidence.
    const culprits: Blame[] = [...judged.values()]
      .filter((j) => j.gaps.length > 0)
      .map((j) => ({
        participant: j.node,
        reason: 'bad-confirmation',
        round: `${session.kind}.result`,
        evidence: j.gaps.join(',').slice(0, 512),
      }));
    // Proven results that disagree: the claim most members hold is the reference; with a tie no
    // one can tell, and nothing is committed.
    const byClaim = new Map<string, Judged[]>();
    for (const j of proven) byClaim.set(j.claim, [...(byClaim.get(j.claim) ?? []), j]);
    const ranked = [...byClaim.values()].sort((a, b) => b.length - a.length);
    const top = ranked[0];
    const tie = ranked.length > 1 && ranked[1]!.length === top!.length;
    if (ranked.length > 1 && !tie) {
      for (const group of ranked.slice(1)) {
        for (const j of group) {
          culprits.push({
            participant: j.node,
            reason: 'equivocation',
            round: `${session.kind}.result`,
            evidence: j.claim,
          });
        }
      }
    }
    const commitable =
      top !== undefined &&
      !tie &&
      (session.kind === 'dkg' ? dkgAgreed(session, top.length, culprits, failed) : ranked.length === 1);
    if (!commitable) {
      await this.#abort(session, members);
      const refusals = failed.flatMap((f) => (isRefusal(f.err) ? [{ node: f.node, err: f.err }] : []));
      if (refusals.length > 0) throw refusalError(session.kind, refusals);
      throw this.eventError(session.kind, failed, culprits, {
        results: Object.fromEntries([...judged.values()].map((j) => [j.node, j.claim])),
      });
    }
    if (culprits.length > 0) {
      // Proven result in hand, committed below; the members that claimed otherwise are named.
      this.#n.log.warn({ keyId: session.keyId, culprits }, 'members claimed results they cannot prove');
    }
    const first = top[0]!;
    const pub = first.pub!;
    TL?.(`coord ${session.kind} judged`);
    crashPoint('coordinator.event.before-commit');
    progress?.({ phase: 'commit', detail: `epoch ${session.epoch}` });
    const lagging = session.participants.filter((p) => !top.some((j) => j.node === p));
    let undelivered = false;
    await Promise.allSettled(
      lagging.map((m) =>
        this.#n
          .rpc(
            m,
            {
              op: 'commit-epoch',
              keyId: session.keyId,
              epoch: session.epoch,
              certificate: first.r.certificate,
              transcriptHash: first.r.transcriptHash,
            },
            5_000,
          )
          .catch((e: unknown) => {
            undelivered = true;
            this.#n.log.warn({ node: m, keyId: session.keyId, err: String(e) }, 'commit lagging');
          }),
      ),
    );
    await Promise.allSettled(
      retiring.map((m) =>
        this.#n
          .rpc(
            m,
            {
              op: 'retire',
              keyId: session.keyId,
              epoch: session.epoch,
              public: first.r.public,
              certificate: first.r.certificate,
              transcriptHash: first.r.transcriptHash,
              sessionId: session.sessionId,
            },
            5_000,
          )
          .catch((e: unknown) => {
            undelivered = true;
            this.#n.log.warn({ node: m, keyId: session.keyId, err: String(e) }, 'retire failed');
          }),
      ),
    );
    crashPoint('coordinator.event.after-commit');
    TL?.(`coord ${session.kind} lagging/retire done`);
    if (session.kind === 'dkg') {
      // Agreement proven: the members may use the key (C-1). Sent last, so a crash before it leaves
      // every member's key unconfirmed, and the restarted coordinator discards it (threats F-04).
      const confirm = {
        op: 'confirm-key',
        keyId: session.keyId,
        epoch: session.epoch,
        groupElement: first.r.groupElement,
        transcriptHash: first.r.transcriptHash,
      } as const;
      await Promise.allSettled(
        session.participants.map((m) =>
          this.#n.rpc(m, confirm, 5_000).catch((e: unknown) => {
            undelivered = true;
            this.#n.log.warn({ node: m, keyId: session.keyId, err: String(e) }, 'confirm-key not delivered');
          }),
        ),
      );
    }
    // Not cached while a member missed its commit-epoch, retire or confirm-key: the next operation
    // syncs (#sync) and brings it along.
    TL?.(`coord ${session.kind} confirm done`);
    if (!undelivered) this.#sync.remember(session.keyId, session.epoch, pub);
    return {
      keyId: session.keyId,
      keySpec: session.keySpec,
      epoch: session.epoch,
      threshold: session.threshold,
      participants: session.participants,
      // FROST_SECP256K1_TR: the BIP341 output key of the key path (protocol/key-tweak.ts).
      publicKey: toHex(outputPublicKey(spec, fromHex(first.r.groupElement))),
      groupElement: first.r.groupElement,
      transcriptHash: first.r.transcriptHash,
    };
  }

  /**
   * Nothing committed: every member drops its pending share; after a DKG, every member also
   * destroys whatever it holds of the never-committed key (a member that completed holds it
   * active but unconfirmed, which `destroy` drops at once: node/key-confirmation.ts).
   */
  async #abort(session: SessionSpec, members: readonly string[]): Promise<void> {
    await Promise.allSettled(
      members.map((m) =>
        this.#n.rpc(m, { op: 'abort-epoch', keyId: session.keyId, epoch: session.epoch }, 5_000),
      ),
    );
    if (session.kind !== 'dkg') return;
    const destroyed = await Promise.allSettled(
      members.map((m) => this.#n.rpc(m, { op: 'destroy', keyId: session.keyId }, 5_000)),
    );
    const missed = members.filter((_, i) => destroyed[i]!.status === 'rejected');
    if (missed.length > 0) {
      this.#n.log.warn({ keyId: session.keyId, nodes: missed }, 'aborted DKG: destroy not delivered');
    }
  }

  eventError(
    kind: string,
    failed: { node: string; err: unknown }[],
    named: readonly Blame[] = [],
    details: Record<string, unknown> = {},
  ): KmsError {
    const culprits: Blame[] = [...named];
    for (const f of failed) {
      if (isKmsError(f.err) && f.err.culprits.length > 0) culprits.push(...f.err.culprits);
    }
    // A member that aborted on proof of misbehaviour stops answering the others, who then name it
    // unresponsive: that blame is a consequence, not a fault of its own.
    const aborted = new Set(
      failed
        .filter((f) => isKmsError(f.err) && f.err.culprits.some((c) => !isConsequence(c)))
        .map((f) => f.node),
    );
    // A member that told the others it aborted (node/session-abort.ts) and answered with whom it
    // blames is explained by its own answer; one that failed by itself (its store, its HSM) is not,
    // and stays named `aborted`.
    // A member whose own answer is its deadline (Timeout) aborted because someone else was
    // silent: that is explained too, even when it could not name whom (it heard everyone's last
    // round, but not what came after).
    const explained = new Set(
      failed
        .filter((f) => isKmsError(f.err) && (f.err.culprits.length > 0 || f.err.code === 'Timeout'))
        .map((f) => f.node),
    );
    // Several honest members name the same culprit; report each (participant, reason) once.
    const unique = [
      ...new Map(
        culprits
          .filter((c) => !(c.reason === 'unresponsive' && aborted.has(c.participant)))
          .filter((c) => !(c.reason === 'aborted' && explained.has(c.participant)))
          .map((c) => [`${c.participant}/${c.reason}`, c]),
      ).values(),
    ];
    const misbehaved = unique.some((c) => !isConsequence(c));
    const unreachable = failed.filter(
      (f) => isKmsError(f.err) && ['Timeout', 'QuorumUnavailable'].includes(f.err.code),
    );
    const code = misbehaved
      ? 'ParticipantMisbehaved'
      : unreachable.length > 0
        ? 'QuorumUnavailable'
        : 'ProtocolAborted';
    const first = failed[0];
    const why = first && isKmsError(first.err) ? `: ${first.node}: ${first.err.message}` : '';
    return new ProtocolError(code, `${kind} aborted${why}; the previous epoch stays active`, {
      culprits: unique,
      details: { ...details, failed: failed.map((f) => f.node) },
    });
  }
}

/**
 * Blame that proves no misbehaviour: a member did not answer in time, or stopped the session and
 * said so (a signed abort after a local failure: its store, its HSM, its deadline).
 */
function isConsequence(c: Blame): boolean {
  return c.reason === 'unresponsive' || c.reason === 'aborted';
}

/**
 * A DKG has no key to prove its result against, so agreement decides (C-1): every member returned
 * the same proven result, with no claim that disagrees or fails its proof. A member that only
 * failed to answer (crashed after its certificate was complete, or timed out; it holds the epoch
 * pending and is sent `commit-epoch`) is tolerated when at least max(t, 2) members returned that
 * same result and no failure names misbehaviour: fewer than t colluders (a single liar, at the
 * least) can then never be the only ones vouching for a key (threats F-01 vs. review C-1).
 */
function dkgAgreed(
  s: SessionSpec,
  agreeing: number,
  culprits: readonly Blame[],
  failed: readonly { node: string; err: unknown }[],
): boolean {
  if (culprits.length > 0) return false;
  if (agreeing === s.participants.length) return true;
  const misbehaviour = failed.some((f) => isKmsError(f.err) && f.err.culprits.some((c) => !isConsequence(c)));
  return !misbehaviour && agreeing >= Math.max(s.threshold, 2);
}

/**
 * A new member's result: its claim (group element, transcript hash, package digest) and the gaps
 * of its proof against the trusted group element (a DKG's own claimed one), the session's epoch,
 * threshold and committee.
 */
function judge(
  spec: KeySpec,
  s: SessionSpec,
  node: string,
  r: SessionResult,
  groupElement: string | undefined,
): Judged {
  let pub: FrostPublic;
  try {
    pub = publicFromHex(spec, r.public);
  } catch {
    return { node, r, claim: `${r.groupElement}/${r.transcriptHash}/<undecodable>`, gaps: ['<package>'] };
  }
  const claim = `${r.groupElement}/${r.transcriptHash}/${packageDigest(pub)}`;
  const gaps: string[] = [];
  if (r.epoch !== s.epoch) gaps.push('<epoch>');
  if (toHex(pub.commitments[0]!) !== r.groupElement) gaps.push('<group-element>');
  const committee = s.participants.map((p) => participantIdOf(spec, nodeIndex(p)!)).sort();
  const listed = Object.keys(pub.verifyingShares).sort();
  if (pub.signers.min !== s.threshold || committee.join() !== listed.join()) gaps.push('<committee>');
  if (gaps.length > 0) return { node, r, claim, pub, gaps };
  const trusted = fromHex(groupElement ?? r.groupElement);
  const cert = certFromHex(s.keyId, s.epoch, r.transcriptHash, trusted, r.certificate, s.sessionId);
  const rec = {
    epoch: s.epoch as Epoch,
    public: pub,
    transcriptHash: fromHex(r.transcriptHash),
    sessionId: s.sessionId as SessionId,
  };
  return { node, r, claim, pub, gaps: certificateGaps(spec.name, rec, trusted, cert) };
}
