/**
 * Threshold signing driven by the coordinator (RFC 9591 §5): round one (commitments) and round two
 * (signature shares) on t members of the key's active epoch, aggregated and verified here; a member
 * that times out or sends an invalid share is left out of the next attempt (§5.4 identifiable abort).
 */
import { randomUUID } from 'node:crypto';
import type { FrostPublic } from '@noble/curves/abstract/frost.js';
import { fromHex, toHex } from '../protocol/bytes.ts';
import { participantIdOf } from '../protocol/elements.ts';
import { type Blame, KmsError, StateError, isKmsError } from '../protocol/errors.ts';
import { checkElement } from '../protocol/fast-sign.ts';
import { nodeIndex } from '../protocol/ids.ts';
import { defaultSigningTweak } from '../protocol/key-tweak.ts';
import { aggregateSignature, signatureFromGroupCommitment } from '../protocol/sign.ts';
import { type KeySpec, keySpec } from '../protocol/suites.ts';
import { crashPoint } from '../common/crash-points.ts';
import { MAX_PRECOMMIT, type RpcAnswers } from '../net/rpc.ts';
import type { AuthorizationWire } from '../net/signed-request.ts';
import type { ClusterSignTweak, EpochInfo, SignResult } from './cluster.ts';
import type { EpochSync } from './epoch-sync.ts';
import { type NodeRpc, byNodeIndex } from './node-rpc.ts';
import { isRefusal, refusalError } from './node-refusal.ts';
import { type CachedCommitment, CommitmentCache } from './commitment-cache.ts';

/** Commitments a `sign-one` asks back per signer (refills the cache without another round trip). */
const REFILL_PER_SIGN = 2;
/** Pre-published commitments checked per event-loop turn (#accept). */
const ACCEPT_PER_TURN = 4;

export class ThresholdSigner {
  readonly #n: NodeRpc;
  readonly #sync: EpochSync;
  /** Rotates the first signer so load spreads over the committee. */
  #rotation = 0;
  /** Nodes' pre-published commitments (issue 17, one-round signing); undefined: two rounds always. */
  readonly #cache: CommitmentCache | undefined;

  constructor(n: NodeRpc, sync: EpochSync, opts: { oneRound?: boolean } = {}) {
    this.#n = n;
    this.#sync = sync;
    this.#cache = opts.oneRound === false ? undefined : new CommitmentCache();
  }

  /**
   * `auth`: the client-signed request each signer verifies at round one (the nodes decide). A
   * member that refuses it is left out without blame; when too few members remain, the refusal is
   * the answer (node-refusal.ts).
   */
  async sign(req: {
    key: EpochInfo;
    message: Uint8Array;
    auth?: AuthorizationWire;
    tweak?: ClusterSignTweak;
  }): Promise<SignResult> {
    let { k, pub } = await this.#sync.sync(req.key);
    const spec = keySpec(k.keySpec);
    const excluded: Blame[] = [];
    const out = new Set<string>();
    const rotation = this.#rotation++;
    const orderOf = (ps: readonly string[]) => {
      const start = rotation % ps.length;
      return [...ps.slice(start), ...ps.slice(0, start)];
    };
    let order = orderOf(k.participants);
    let resynced = false;
    // One round while every signer of the attempt has a cached commitment, until a node refuses one.
    let oneRound = this.#cache !== undefined && req.tweak === undefined;
    const refusals: { node: string; err: KmsError }[] = [];
    // Each attempt uses fresh nonces and a new session; a node that timed out or sent an invalid
    // share is left out of the next attempt (RFC 9591 §5.4 identifiable abort).
    for (;;) {
      const avail = order.filter((n) => !out.has(n));
      if (avail.length < k.threshold) {
        if (refusals.length > 0) throw refusalError(`signing with key ${k.keyId}`, refusals);
        const state = stateRefusal(k.keyId, excluded);
        if (state) throw state;
        throw new KmsError(
          'QuorumUnavailable',
          `key ${k.keyId}: ${avail.length} usable members left, threshold is ${k.threshold}`,
          { culprits: excluded },
        );
      }
      // RFC 9591 §4.3: commitment lists are sorted by identifier (node-k has identifier k).
      const signers = avail.slice(0, k.threshold).sort(byNodeIndex);
      // One round when every signer the rotation picked has a cached commitment; the choice of
      // signers never depends on the cache, so a member that publishes none (or bad ones) still
      // takes its turn, in two rounds, where a bad commitment is blamed on it (RFC 9591 §5.4).
      const cached = oneRound ? this.#cache?.take(k.keyId, k.epoch, signers) : undefined;
      if (oneRound) this.#warm(spec, k);
      const attempt = cached
        ? await this.#oneRound(spec, k, pub, signers, cached, req.message, req.auth)
        : await this.#once(spec, k, pub, signers, req.message, req.auth, req.tweak);
      if ('stale' in attempt) {
        // A node no longer holds a commitment it published (it restarted, or another coordinator
        // used it): not a fault. Its cache entries are gone; this request signs in two rounds.
        oneRound = false;
        continue;
      }
      // Verified by the aggregate under pub.commitments[0], which #sync proved against k.groupElement.
      if ('signature' in attempt) return { signature: attempt.signature, signers, excluded, verified: true };
      if ('refused' in attempt) {
        // The nodes' decision, not a fault: out of this call, never named as culprits.
        for (const r of attempt.refused) {
          out.add(r.node);
          refusals.push(r);
        }
        continue;
      }
      if (
        !resynced &&
        attempt.blame.some((b) => ['EpochMismatch', 'KeyNotFound', 'InvalidKeyState'].includes(b.evidence!))
      ) {
        // A member answered as if the epoch were not committed (it crashed before activating, or
        // missed its DKG's confirm-key, or this coordinator's record lags): sync once, then retry
        // without excluding it. The sync
        // moves to another epoch only on proof (epoch-sync.ts), never on the node's word (C-2);
        // a member that still answers so after it is left out like any other.
        resynced = true;
        try {
          ({ k, pub } = await this.#sync.sync(k, true));
        } catch (e) {
          // No member proves any epoch of the key: when every one asked holds no share, say so.
          throw stateRefusal(k.keyId, attempt.blame) ?? e;
        }
        order = orderOf(k.participants);
        continue;
      }
      for (const b of attempt.blame) {
        out.add(b.participant);
        // A member that refused a request this coordinator built (ValidationError) is left out
        // of this call, so the loop ends, but not named: the fault may be the coordinator's.
        if (b.evidence === 'ValidationError') {
          this.#n.log.warn({ keyId: k.keyId, node: b.participant }, 'member refused a signing request');
        } else excluded.push(b);
      }
    }
  }

  async #once(
    spec: KeySpec,
    k: EpochInfo,
    pub: FrostPublic,
    signers: string[],
    message: Uint8Array,
    auth: AuthorizationWire | undefined,
    tweak: ClusterSignTweak | undefined,
  ): Promise<
    { signature: Uint8Array } | { blame: Blame[] } | { refused: { node: string; err: KmsError }[] }
  > {
    const sessionId = randomUUID();
    const commits = await Promise.allSettled(
      signers.map((n) =>
        this.#n.rpc(
          n,
          {
            op: 'sign-commit',
            sessionId,
            keyId: k.keyId,
            epoch: k.epoch,
            ...(auth === undefined ? {} : { auth }),
            // Issue 14: what the client asked; each node resolves it against the signed body itself.
            ...(tweak === undefined ? {} : { tweak: tweak.requested }),
          },
          this.#n.signTimeoutMs,
        ),
      ),
    );
    const refused = commits.flatMap((c, i) =>
      c.status === 'rejected' && isRefusal(c.reason) ? [{ node: signers[i]!, err: c.reason }] : [],
    );
    // The signers that committed hold an open nonce for this session until round two uses it: if
    // round two is never sent, they are told to discard it now rather than keep it for its TTL (L-4).
    const committed = signers.filter((_, i) => commits[i]!.status === 'fulfilled');
    if (refused.length > 0) {
      await this.#abandon(sessionId, committed);
      return { refused };
    }
    const blame = unresponsive(signers, commits, 'sign.commit');
    if (blame.length > 0) {
      await this.#abandon(sessionId, committed);
      return { blame };
    }
    crashPoint('coordinator.sign.after-commit');
    const commitments = commits.map((c) => (c as PromiseFulfilledResult<CommitAnswer>).value);
    // Checked here, so a bad commitment is blamed on the node that sent it: forwarded unchecked, it
    // would make every honest co-signer refuse round two and be excluded instead (RFC 9591 §3.1).
    // Decoded once: the aggregate below reuses these bytes, and checkElement remembers the
    // encodings it accepted (fast-sign.ts), so the aggregate's own §3.1 checks are cache hits.
    const decoded = signers.map((n, i) => commitmentOf(spec, n, commitments[i]));
    const badCommit = signers.filter((_, i) => decoded[i] === undefined);
    if (badCommit.length > 0) {
      await this.#abandon(sessionId, committed);
      return {
        blame: badCommit.map(
          (n) => ({ participant: n, reason: 'malformed-message', round: 'sign.commit' }) as Blame,
        ),
      };
    }
    // Re-encoded from the decoded values, never the node's own objects (H-2): whatever else a
    // signer put in its answer cannot reach its co-signers and make them refuse round two.
    const forwarded = (decoded as DecodedCommitment[]).map((d) => ({
      identifier: d.identifier,
      hiding: toHex(d.hiding),
      binding: toHex(d.binding),
    }));
    const shares = await Promise.allSettled(
      signers.map((n) =>
        this.#n.rpc(
          n,
          {
            op: 'sign-share',
            sessionId,
            keyId: k.keyId,
            epoch: k.epoch,
            message: toHex(message),
            commitments: forwarded,
          },
          this.#n.signTimeoutMs,
        ),
      ),
    );
    const blame2 = unresponsive(signers, shares, 'sign.share');
    if (blame2.length > 0) return { blame: blame2 };
    crashPoint('coordinator.sign.after-share');
    return aggregateOrBlame({
      spec,
      pub,
      epoch: k.epoch,
      message,
      // The key resolved from this coordinator's record (coordinator/custody.ts); by default, for
      // FROST_SECP256K1_TR, the BIP341 key path with no merkle root (protocol/key-tweak.ts).
      tweak: tweak === undefined ? defaultSigningTweak(spec) : tweak.signing,
      commitments: decoded as DecodedCommitment[],
      signers,
      shares: shares.map((s) => (s as PromiseFulfilledResult<{ share: string }>).value.share),
    });
  }

  /**
   * One-round attempt (issue 17): one `sign-one` per signer with the message, the client-signed
   * request and the list of cached commitments; each node takes its nonce out before it verifies
   * anything (node/sign-one.ts). `stale`: a node refused its commitment as unknown (NonceReused).
   */
  async #oneRound(
    spec: KeySpec,
    k: EpochInfo,
    pub: FrostPublic,
    signers: string[],
    cached: CachedCommitment[],
    message: Uint8Array,
    auth: AuthorizationWire | undefined,
  ): Promise<
    | { signature: Uint8Array }
    | { blame: Blame[] }
    | { refused: { node: string; err: KmsError }[] }
    | { stale: string[] }
  > {
    const cache = this.#cache!;
    const sessionId = randomUUID();
    const decoded = signers.map((n, i) => ({
      identifier: participantIdOf(spec, nodeIndex(n)!),
      hiding: cached[i]!.hiding,
      binding: cached[i]!.binding,
    }));
    const commitments = decoded.map((d) => ({
      identifier: d.identifier,
      hiding: toHex(d.hiding),
      binding: toHex(d.binding),
    }));
    const messageHex = toHex(message);
    const shares = await Promise.allSettled(
      signers.map(async (n) => {
        const refill = cache.reserve(k.keyId, k.epoch, n, REFILL_PER_SIGN);
        let a: RpcAnswers['sign-one'];
        try {
          a = await this.#n.rpc(
            n,
            {
              op: 'sign-one',
              sessionId,
              keyId: k.keyId,
              epoch: k.epoch,
              message: messageHex,
              commitments,
              ...(refill > 0 ? { refill } : {}),
              ...(auth === undefined ? {} : { auth }),
            },
            this.#n.signTimeoutMs,
          );
        } catch (e) {
          cache.settle(k.keyId, n, refill);
          throw e;
        }
        // The refill is checked and cached after this turn, off this signature's critical path.
        this.#accept(spec, k, n, a.commitments ?? [], () => cache.settle(k.keyId, n, refill));
        return a;
      }),
    );
    // The cached commitments were only shape-checked when they came in (#accept): a signature
    // verified under the key needs no more. Before anyone is blamed or a failure handled, they are
    // checked as group elements (RFC 9591 §3.1): a node that published an invalid one is named for
    // it, and its co-signers, which refused the list because of it, are not.
    const publishers = () => blamePublishers(cache, k.keyId, badCommitments(spec, signers, decoded));
    if (shares.some((s) => s.status === 'rejected')) {
      const blamed = publishers();
      if (blamed) return blamed;
    }
    const stale = signers.filter((_, i) => {
      const s = shares[i]!;
      return s.status === 'rejected' && isKmsError(s.reason) && s.reason.code === 'NonceReused';
    });
    if (stale.length > 0) {
      for (const n of stale) cache.forgetNode(k.keyId, n);
      return { stale };
    }
    const refused = shares.flatMap((c, i) =>
      c.status === 'rejected' && isRefusal(c.reason) ? [{ node: signers[i]!, err: c.reason }] : [],
    );
    if (refused.length > 0) return { refused };
    const blame = unresponsive(signers, shares, 'sign.share');
    if (blame.length > 0) return { blame };
    const answers = shares.map((s) => (s as PromiseFulfilledResult<RpcAnswers['sign-one']>).value);
    // FROST_SECP256K1_TR: the BIP341 key path with no merkle root (protocol/key-tweak.ts).
    const tweak = defaultSigningTweak(spec);
    const fast = fromSignersR(spec, pub, message, tweak, answers);
    if (fast !== undefined) return { signature: fast };
    const blamed = publishers();
    if (blamed) return blamed;
    return aggregateOrBlame({
      spec,
      pub,
      epoch: k.epoch,
      message,
      tweak,
      commitments: decoded,
      signers,
      shares: answers.map((a) => a.share),
    });
  }

  /**
   * Asks every member of the key's epoch whose cached commitments run low for a batch
   * (`sign-precommit`), in the background: the request that found the cache empty signs in two
   * rounds meanwhile. A member that fails is asked again by a later request.
   */
  #warm(spec: KeySpec, k: EpochInfo): void {
    const cache = this.#cache!;
    for (const n of k.participants) {
      // Below a quarter of the depth only: a full cache refills with the shares' answers.
      if (cache.count(k.keyId, k.epoch, n) >= cache.depth / 4) continue;
      const count = cache.reserve(k.keyId, k.epoch, n, MAX_PRECOMMIT);
      if (count === 0) continue;
      this.#n
        .rpc(n, { op: 'sign-precommit', keyId: k.keyId, epoch: k.epoch, count }, this.#n.signTimeoutMs)
        .then(
          (a) => {
            const done = () => cache.settle(k.keyId, n, count);
            if (a.identifier === participantIdOf(spec, nodeIndex(n)!))
              this.#accept(spec, k, n, a.commitments, done);
            else done();
          },
          (e) => {
            cache.settle(k.keyId, n, count);
            this.#n.log.warn({ keyId: k.keyId, node: n, err: String(e) }, 'sign-precommit failed');
          },
        );
    }
  }

  /**
   * Caches a node's new commitments that have the suite's element length, drops the rest, then
   * calls `done`. Not checked as group elements here (RFC 9591 §3.1): a one-round signature that
   * verifies under the key needs no such check, and when an attempt fails #oneRound checks the
   * commitments it used before it blames anyone (badCommitments), so a node that published an
   * invalid one is named for it. A few per event-loop turn (setImmediate), off the critical path.
   */
  #accept(
    spec: KeySpec,
    k: EpochInfo,
    node: string,
    cs: readonly { hiding: string; binding: string }[],
    done: () => void,
  ): void {
    let i = 0;
    const step = () => {
      try {
        const ok: CachedCommitment[] = [];
        for (const end = Math.min(cs.length, i + ACCEPT_PER_TURN); i < end; i++) {
          const d = shapeOf(spec, cs[i]!);
          if (d) ok.push(d);
        }
        this.#cache!.add(k.keyId, k.epoch, node, ok);
      } catch (e) {
        i = cs.length;
        this.#n.log.warn({ keyId: k.keyId, node, err: String(e) }, 'commitments not cached');
      }
      if (i < cs.length) setImmediate(step);
      else done();
    };
    setImmediate(step);
  }

  /**
   * `sign-abort` to the members of an attempt that ends before round two: each discards its open
   * nonce entry for the session (node/nonces.ts release; the nonce is never used). Best effort:
   * a member that does not answer keeps the entry until its TTL, as before.
   */
  async #abandon(sessionId: string, nodes: readonly string[]): Promise<void> {
    await Promise.allSettled(
      nodes.map((n) => this.#n.rpc(n, { op: 'sign-abort', sessionId }, this.#n.statusTimeoutMs)),
    );
  }
}

/**
 * When every member left out answered with the same key-state error (InvalidKeyState: the key is
 * Disabled or PendingDeletion on them; KeyNotFound: they hold no share of it), that is what is
 * true about the key, and the caller gets that code rather than QuorumUnavailable.
 */
function stateRefusal(keyId: string, excluded: readonly Blame[]): KmsError | undefined {
  const code = excluded[0]?.evidence;
  if (code !== 'InvalidKeyState' && code !== 'KeyNotFound') return undefined;
  if (!excluded.every((b) => b.evidence === code)) return undefined;
  const nodes = [...new Set(excluded.map((b) => b.participant))].sort(byNodeIndex);
  const what = code === 'KeyNotFound' ? 'hold no share of it' : 'refuse it in its current state';
  return new StateError(code, `key ${keyId}: ${nodes.join(', ')} ${what}`, {
    details: { refusedBy: nodes },
  });
}

type CommitAnswer = { identifier: string; hiding: string; binding: string };
type DecodedCommitment = { identifier: string; hiding: Uint8Array; binding: Uint8Array };

/**
 * The signature from the signers' shares, returned only if it verifies under the group key
 * (RFC 9591 §5.3); a share that fails its check names its node (identifiable abort), mapped back
 * from the FROST identifier. Both rounds' paths (two rounds, one round) end here.
 */
function aggregateOrBlame(a: {
  spec: KeySpec;
  pub: Parameters<typeof aggregateSignature>[0]['public'];
  epoch: number;
  message: Uint8Array;
  tweak: Parameters<typeof aggregateSignature>[0]['tweak'];
  commitments: DecodedCommitment[];
  signers: readonly string[];
  shares: readonly string[];
}): { signature: Uint8Array } | { blame: Blame[] } {
  try {
    const signature = aggregateSignature({
      spec: a.spec,
      public: a.pub,
      epoch: a.epoch,
      message: a.message,
      tweak: a.tweak,
      commitments: a.commitments,
      shares: Object.fromEntries(a.shares.map((s, i) => [a.commitments[i]!.identifier, fromHex(s)])),
    });
    return { signature };
  } catch (e) {
    if (isKmsError(e) && e.code === 'ParticipantMisbehaved') {
      const byPid = new Map(a.signers.map((n) => [participantIdOf(a.spec, nodeIndex(n)!), n]));
      return {
        blame: e.culprits.map((c) => ({ ...c, participant: byPid.get(c.participant) ?? c.participant })),
      };
    }
    throw e;
  }
}

/**
 * One-round shortcut (issue 17): when every signer reported the same group commitment R with its
 * share (node/sign-one.ts; the suite's exact element length), the signature from that R and
 * z = Σ z_i, returned only if it verifies under the (tweaked) key as the aggregate verifies its
 * own (protocol/sign.ts signatureFromGroupCommitment). Safety: the signature is verified under the
 * key before it leaves either way; R from the signers only saves this coordinator recomputing it
 * (t variable-base multiplications). Anything else (an R missing, malformed or differing, a share
 * malformed, a signature that does not verify) gives undefined, and the caller runs the full
 * aggregate: its own R from the commitments it checked, every share verified, the culprit named
 * with evidence (RFC 9591 §5.4), so a lying signer is still named and no bad signature leaves.
 */
function fromSignersR(
  spec: KeySpec,
  pub: FrostPublic,
  message: Uint8Array,
  tweak: Parameters<typeof signatureFromGroupCommitment>[0]['tweak'],
  answers: readonly RpcAnswers['sign-one'][],
): Uint8Array | undefined {
  const R = answers[0]?.groupCommitment;
  if (R === undefined || R.length !== 2 * spec.elementLength) return undefined;
  if (!answers.every((a) => a.groupCommitment === R)) return undefined;
  try {
    return signatureFromGroupCommitment({
      spec,
      public: pub,
      message,
      tweak,
      groupCommitment: fromHex(R),
      shares: answers.map((a) => fromHex(a.share)),
    });
  } catch {
    return undefined;
  }
}

/**
 * The signers whose cached commitment (decoded[i], signers[i]) is not two valid group elements
 * (RFC 9591 §3.1, on the suite's fast backend where it has one; each encoding checked once).
 */
function badCommitments(
  spec: KeySpec,
  signers: readonly string[],
  decoded: readonly DecodedCommitment[],
): string[] {
  return signers.filter((_, i) => {
    try {
      checkElement(spec, decoded[i]!.hiding, 'hiding commitment');
      checkElement(spec, decoded[i]!.binding, 'binding commitment');
      return false;
    } catch {
      return true;
    }
  });
}

/** A pre-published commitment's two encodings if they have the suite's element length (hex), else undefined. */
function shapeOf(spec: KeySpec, c: { hiding: string; binding: string }): CachedCommitment | undefined {
  const n = 2 * spec.elementLength;
  if (c.hiding.length !== n || c.binding.length !== n) return undefined;
  try {
    return { hiding: fromHex(c.hiding), binding: fromHex(c.binding) };
  } catch {
    return undefined;
  }
}

/**
 * A round-one answer, decoded: the identifier the node's place gives it and two valid group
 * elements (RFC 9591 §3.1, on the suite's fast backend where it has one), or undefined.
 */
function commitmentOf(
  spec: KeySpec,
  node: string,
  c: CommitAnswer | undefined,
): DecodedCommitment | undefined {
  if (!c || c.identifier !== participantIdOf(spec, nodeIndex(node)!)) return undefined;
  try {
    const hiding = fromHex(c.hiding);
    const binding = fromHex(c.binding);
    checkElement(spec, hiding, 'hiding commitment');
    checkElement(spec, binding, 'binding commitment');
    return { identifier: c.identifier, hiding, binding };
  } catch {
    return undefined;
  }
}

function unresponsive(signers: string[], results: PromiseSettledResult<unknown>[], round: string): Blame[] {
  return results.flatMap((r, i) => {
    if (r.status === 'fulfilled') return [];
    const e = r.reason;
    const reason =
      isKmsError(e) && (e.code === 'ParticipantMisbehaved' || e.code === 'DecodeError')
        ? 'malformed-message'
        : 'unresponsive';
    return [{ participant: signers[i]!, reason, round, evidence: isKmsError(e) ? e.code : 'error' } as Blame];
  });
}

/**
 * The members whose pre-published commitments failed the group-element check (RFC 9591 §3.1) are
 * named for them and their cached commitments forgotten; undefined when there are none.
 */
function blamePublishers(
  cache: CommitmentCache,
  keyId: string,
  bad: readonly string[],
): { blame: Blame[] } | undefined {
  if (bad.length === 0) return undefined;
  for (const n of bad) cache.forgetNode(keyId, n);
  return {
    blame: bad.map(
      (n) => ({ participant: n, reason: 'malformed-message', round: 'sign.precommit' }) as Blame,
    ),
  };
}
