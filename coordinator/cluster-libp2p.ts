/**
 * The real Cluster: drives sessions on the node daemons over libp2p (node/rpc.ts requests on
 * `/tkms/rpc/1.0.0`). The coordinator is one of the nodes' allowed peers; it sees public data only
 * (commitments, verifying shares, signature shares, confirmations), never a share.
 *
 * Key events follow the two-phase rule (threats I5): every member runs the session and persists
 * its new share as pending before confirming; a member that ends with a complete certificate (every
 * new member's confirmation) activates the new epoch. If at least one member holds the certificate
 * the event is committed, and lagging members are sent `commit-epoch`; if none does, every member
 * is told to `abort-epoch` and the old epoch stays active.
 */
import { randomUUID } from 'node:crypto';
import type { FrostPublic } from '@noble/curves/abstract/frost.js';
import { fromHex, toHex } from '../protocol/bytes.ts';
import { type Blame, KmsError, ProtocolError, isKmsError } from '../protocol/errors.ts';
import { participantIdOf } from '../protocol/elements.ts';
import { checkElement } from '../protocol/fast-sign.ts';
import { nodeIndex } from '../protocol/ids.ts';
import { type PublicPackageHex, publicFromHex, publicToHex } from '../protocol/packages.ts';
import { type Certificate, type EpochRecord, certificateGaps } from '../protocol/epoch.ts';
import type { Epoch, KeyId, SessionId } from '../protocol/ids.ts';
import { aggregateSignature } from '../protocol/sign.ts';
import { type KeySpec, keySpec, publicKeyFromGroupElement } from '../protocol/suites.ts';
import type { ClusterPeer } from '../net/cluster-file.ts';
import { crashPoint } from '../common/crash-points.ts';
import {
  type Confirmations,
  type RpcRequest,
  STATUS_PAGE,
  type SessionSpec,
  type StatusAnswer,
  decodeJsonFrame,
  encodeRpc,
} from '../net/rpc.ts';
import { RPC_PROTOCOL, type Transport } from '../net/transport.ts';
import type { Cluster, EpochInfo, KeyState, NodeStatus, ProgressFn, SignResult } from './cluster.ts';

/** A member's `public` answer: its active epoch and the certificate that made it. */
type PublicAnswer = {
  epoch: number;
  public: PublicPackageHex;
  threshold: number;
  transcriptHash?: string;
  certificate?: Confirmations;
  sessionId?: string;
};

type SessionResult = {
  epoch: number;
  groupElement: string;
  publicKey: string;
  transcriptHash: string;
  public: PublicPackageHex;
  certificate: Confirmations;
};

export type Libp2pClusterOptions = {
  transport: Transport;
  nodes: readonly ClusterPeer[];
  /** Deadline of a DKG / key-event session on the nodes, plus slack for the answer. */
  sessionTimeoutMs?: number;
  /** Deadline of one signing round trip to one node. */
  signTimeoutMs?: number;
  statusTimeoutMs?: number;
  log?: { warn: (o: object, msg: string) => void; info: (o: object, msg: string) => void };
};

export class Libp2pCluster implements Cluster {
  readonly #t: Transport;
  readonly #nodes: Map<string, ClusterPeer>;
  readonly #sessionTimeoutMs: number;
  readonly #signTimeoutMs: number;
  readonly #statusTimeoutMs: number;
  readonly #log: NonNullable<Libp2pClusterOptions['log']>;
  /** Public packages by `keyId/epoch`: fetched from the committee once, then reused. */
  readonly #publics = new Map<string, FrostPublic>();
  /** Epochs found on the members that are newer than the caller's record (see #sync). */
  readonly #newer = new Map<string, EpochInfo>();
  /** Rotates the first signer so load spreads over the committee. */
  #rotation = 0;

  constructor(opts: Libp2pClusterOptions) {
    this.#t = opts.transport;
    this.#nodes = new Map(opts.nodes.map((n) => [n.id, n]));
    this.#sessionTimeoutMs = opts.sessionTimeoutMs ?? 30_000;
    this.#signTimeoutMs = opts.signTimeoutMs ?? 5_000;
    this.#statusTimeoutMs = opts.statusTimeoutMs ?? 2_000;
    this.#log = opts.log ?? { warn: () => {}, info: () => {} };
  }

  async #rpc<T>(nodeId: string, req: RpcRequest, timeoutMs: number): Promise<T> {
    const peer = this.#nodes.get(nodeId);
    if (!peer) throw new KmsError('ValidationError', `unknown node ${nodeId}`);
    const res = await this.#t.request(peer.peerId, RPC_PROTOCOL, encodeRpc(req), { timeoutMs });
    return decodeJsonFrame(res) as T;
  }

  async nodes(): Promise<NodeStatus[]> {
    return Promise.all(
      [...this.#nodes.values()].map(async (n) => {
        const base = { id: n.id, peerId: n.peerId, address: n.addresses[0] ?? '' };
        try {
          return { ...base, reachable: true, keys: await this.#keysOf(n.id) };
        } catch {
          return { ...base, reachable: false, keys: [] };
        }
      }),
    );
  }

  /**
   * A node's key ids (not Destroyed), read a bounded page per RPC (node/rpc.ts STATUS_PAGE): one
   * answer with every key outgrew the transport's message limit near 10 000 keys.
   */
  async #keysOf(nodeId: string): Promise<string[]> {
    const keys: string[] = [];
    let after: string | undefined;
    // Bounded even if a node keeps answering `next`: at most the pages its own count calls for.
    for (let page = 0, pages = 1; page < pages; page++) {
      const s = await this.#rpc<StatusAnswer>(
        nodeId,
        { op: 'status', limit: STATUS_PAGE, ...(after === undefined ? {} : { after }) },
        this.#statusTimeoutMs,
      );
      if (!Array.isArray(s.keys) || !Number.isSafeInteger(s.keyCount)) {
        throw new KmsError('DecodeError', `malformed status answer from ${nodeId}`);
      }
      pages = Math.ceil(s.keyCount / STATUS_PAGE) + 1;
      for (const k of s.keys) if (k.state !== 'Destroyed') keys.push(k.keyId);
      if (s.next === undefined || s.keys.length === 0) break;
      after = s.next;
    }
    return keys;
  }

  /** Whether a node answers RPCs (a status probe that lists no keys). */
  async #answers(nodeId: string): Promise<boolean> {
    return this.#rpc(nodeId, { op: 'status', limit: 0 }, this.#statusTimeoutMs).then(
      () => true,
      () => false,
    );
  }

  #checkMembers(ids: readonly string[]): void {
    for (const id of ids) if (!this.#nodes.has(id)) throw new KmsError('ValidationError', `unknown node ${id}`);
  }

  async createKey(req: Parameters<Cluster['createKey']>[0]): Promise<EpochInfo> {
    this.#checkMembers(req.participants);
    const session: SessionSpec = {
      kind: 'dkg',
      sessionId: randomUUID(),
      keyId: req.keyId,
      keySpec: req.keySpec,
      epoch: 0,
      threshold: req.threshold,
      participants: [...req.participants].sort(byNodeIndex),
    };
    return this.#runEvent(session, [], req.progress);
  }

  async refresh(req: { key: EpochInfo; progress?: ProgressFn }): Promise<EpochInfo> {
    const { k } = await this.#sync(req.key, true);
    const session: SessionSpec = {
      kind: 'refresh',
      sessionId: randomUUID(),
      keyId: k.keyId,
      keySpec: k.keySpec,
      epoch: k.epoch + 1,
      threshold: k.threshold,
      participants: [...k.participants],
      oldEpoch: k.epoch,
      oldThreshold: k.threshold,
      oldParticipants: [...k.participants],
      oldPublic: await this.#publicHex(k),
    };
    return this.#runEvent(session, [], req.progress);
  }

  async reshare(req: Parameters<Cluster['reshare']>[0]): Promise<EpochInfo> {
    const { k } = await this.#sync(req.key, true);
    this.#checkMembers(req.participants);
    const newMembers = [...req.participants].sort(byNodeIndex);
    // Only t members of the old committee deal (the old threshold is explicit: never inferred).
    const dealers = await this.#pickReachable(k.participants, k.threshold);
    const session: SessionSpec = {
      kind: 'reshare',
      sessionId: randomUUID(),
      keyId: k.keyId,
      keySpec: k.keySpec,
      epoch: k.epoch + 1,
      threshold: req.threshold,
      participants: newMembers,
      oldEpoch: k.epoch,
      oldThreshold: k.threshold,
      oldParticipants: [...k.participants],
      dealers,
      oldPublic: await this.#publicHex(k),
    };
    // Old members outside the new committee retire their share once the event is committed.
    const retiring = k.participants.filter((p) => !newMembers.includes(p));
    return this.#runEvent(session, retiring, req.progress);
  }

  async repair(req: { key: EpochInfo; participant: string; progress?: ProgressFn }): Promise<EpochInfo> {
    const { k } = await this.#sync(req.key, true);
    if (!k.participants.includes(req.participant)) {
      throw new KmsError('ValidationError', `${req.participant} is not in the committee of key ${k.keyId}`);
    }
    const others = k.participants.filter((p) => p !== req.participant);
    const helpers = await this.#pickReachable(others, k.threshold);
    const session: SessionSpec = {
      kind: 'repair',
      sessionId: randomUUID(),
      keyId: k.keyId,
      keySpec: k.keySpec,
      epoch: k.epoch,
      threshold: k.threshold,
      participants: [...k.participants],
      oldEpoch: k.epoch,
      oldThreshold: k.threshold,
      oldParticipants: [...k.participants],
      dealers: helpers,
      oldPublic: await this.#publicHex(k),
      target: req.participant,
    };
    req.progress?.({ phase: 'repair', detail: `helpers ${helpers.join(', ')}` });
    const members = [...helpers, req.participant];
    const results = await Promise.allSettled(
      members.map((m) => this.#rpc<SessionResult>(m, { op: 'session', session }, this.#sessionTimeoutMs + 5_000)),
    );
    const failed = results.flatMap((r, i) => (r.status === 'rejected' ? [{ node: members[i]!, err: r.reason }] : []));
    if (failed.length > 0) throw this.#eventError('repair', failed);
    return k;
  }

  async #pickReachable(candidates: readonly string[], count: number): Promise<string[]> {
    const probed = await Promise.all(candidates.map(async (c) => [c, await this.#answers(c)] as const));
    const up = new Set(probed.filter(([, ok]) => ok).map(([c]) => c));
    const picked = candidates.filter((c) => up.has(c)).slice(0, count);
    if (picked.length < count) {
      throw new KmsError('QuorumUnavailable', `need ${count} reachable members, have ${picked.length}`, {
        details: { reachable: candidates.filter((c) => up.has(c)) },
      });
    }
    return picked;
  }

  /** Runs a key-creating session on every member, then commits or aborts it everywhere. */
  async #runEvent(session: SessionSpec, retiring: readonly string[], progress?: ProgressFn): Promise<EpochInfo> {
    const members = [...new Set([...(session.dealers ?? []), ...session.participants])].sort(byNodeIndex);
    progress?.({ phase: session.kind, detail: `session ${session.sessionId} on ${members.join(', ')}` });
    const settled = await Promise.allSettled(
      members.map((m) => this.#rpc<SessionResult>(m, { op: 'session', session }, this.#sessionTimeoutMs + 5_000)),
    );
    const ok = new Map<string, SessionResult>();
    const failed: { node: string; err: unknown }[] = [];
    settled.forEach((r, i) => {
      const node = members[i]!;
      if (r.status === 'fulfilled') ok.set(node, r.value);
      else failed.push({ node, err: r.reason });
    });
    // A complete certificate exists iff some new member finished; results of dealers that are not
    // new members carry no epoch (they only dealt).
    const finished = session.participants.filter((p) => ok.has(p) && ok.get(p)?.certificate);
    const first = finished.length > 0 ? ok.get(finished[0]!) : undefined;
    if (!first) {
      await Promise.allSettled(
        members.map((m) => this.#rpc(m, { op: 'abort-epoch', keyId: session.keyId, epoch: session.epoch }, 5_000)),
      );
      throw this.#eventError(session.kind, failed);
    }
    for (const p of finished) {
      const r = ok.get(p)!;
      if (r.groupElement !== first.groupElement || r.transcriptHash !== first.transcriptHash) {
        // Cannot happen with honest members (the confirmation round checks agreement); refuse loudly.
        throw new ProtocolError('ProtocolAborted', `members disagree on the result of session ${session.sessionId}`, {
          culprits: [{ participant: p, reason: 'equivocation' }],
        });
      }
    }
    crashPoint('coordinator.event.before-commit');
    progress?.({ phase: 'commit', detail: `epoch ${session.epoch}` });
    const lagging = session.participants.filter((p) => !finished.includes(p));
    let undelivered = false;
    await Promise.allSettled(
      lagging.map((m) =>
        this.#rpc(
          m,
          {
            op: 'commit-epoch',
            keyId: session.keyId,
            epoch: session.epoch,
            certificate: first.certificate,
            transcriptHash: first.transcriptHash,
          },
          5_000,
        ).catch((e: unknown) => {
          undelivered = true;
          this.#log.warn({ node: m, keyId: session.keyId, err: String(e) }, 'commit lagging');
        }),
      ),
    );
    await Promise.allSettled(
      retiring.map((m) =>
        this.#rpc(
          m,
          {
            op: 'retire',
            keyId: session.keyId,
            epoch: session.epoch,
            public: first.public,
            certificate: first.certificate,
            transcriptHash: first.transcriptHash,
            sessionId: session.sessionId,
          },
          5_000,
        ).catch((e: unknown) => {
          undelivered = true;
          this.#log.warn({ node: m, keyId: session.keyId, err: String(e) }, 'retire failed');
        }),
      ),
    );
    crashPoint('coordinator.event.after-commit');
    const spec = keySpec(session.keySpec);
    // Not cached while a member missed its commit-epoch or retire: the next operation syncs (#sync).
    if (!undelivered) this.#publics.set(`${session.keyId}/${session.epoch}`, publicFromHex(spec, first.public));
    return {
      keyId: session.keyId,
      keySpec: session.keySpec,
      epoch: session.epoch,
      threshold: session.threshold,
      participants: session.participants,
      publicKey: toHex(publicKeyFromGroupElement(spec, fromHex(first.groupElement))),
      groupElement: first.groupElement,
      transcriptHash: first.transcriptHash,
    };
  }

  #eventError(kind: string, failed: { node: string; err: unknown }[]): KmsError {
    const culprits: Blame[] = [];
    for (const f of failed) {
      if (isKmsError(f.err) && f.err.culprits.length > 0) culprits.push(...f.err.culprits);
    }
    // A member that aborted on proof of misbehaviour stops answering the others, who then name it
    // unresponsive: that blame is a consequence, not a fault of its own.
    const aborted = new Set(
      failed.filter((f) => isKmsError(f.err) && f.err.culprits.some((c) => c.reason !== 'unresponsive')).map((f) => f.node),
    );
    // Several honest members name the same culprit; report each (participant, reason) once.
    const unique = [
      ...new Map(
        culprits.filter((c) => !(c.reason === 'unresponsive' && aborted.has(c.participant))).map((c) => [`${c.participant}/${c.reason}`, c]),
      ).values(),
    ];
    const misbehaved = unique.some((c) => c.reason !== 'unresponsive');
    const unreachable = failed.filter((f) => isKmsError(f.err) && ['Timeout', 'QuorumUnavailable'].includes(f.err.code));
    const code = misbehaved ? 'ParticipantMisbehaved' : unreachable.length > 0 ? 'QuorumUnavailable' : 'ProtocolAborted';
    const first = failed[0];
    const why = first && isKmsError(first.err) ? `: ${first.node}: ${first.err.message}` : '';
    return new ProtocolError(code, `${kind} aborted${why}; the previous epoch stays active`, {
      culprits: unique,
      details: { failed: failed.map((f) => f.node) },
    });
  }

  /** The committee's public package for an epoch: asked of members, checked against the group key. */
  async #public(k: EpochInfo): Promise<FrostPublic> {
    const cacheKey = `${k.keyId}/${k.epoch}`;
    const cached = this.#publics.get(cacheKey);
    if (cached) return cached;
    const spec = keySpec(k.keySpec);
    for (const m of k.participants) {
      try {
        const r = await this.#rpc<{ epoch: number; public: PublicPackageHex }>(
          m,
          { op: 'public', keyId: k.keyId },
          this.#statusTimeoutMs,
        );
        if (r.epoch !== k.epoch) continue;
        const pub = publicFromHex(spec, r.public);
        if (toHex(pub.commitments[0]!) !== k.groupElement) continue; // a lying member; ask another
        this.#publics.set(cacheKey, pub);
        return pub;
      } catch {
        /* try the next member */
      }
    }
    throw new KmsError('QuorumUnavailable', `no committee member of ${k.keyId} answered with epoch ${k.epoch}`);
  }

  /**
   * The key's epoch as its members hold it, and its public package (F-06, I5). A coordinator that
   * crashed between the members' commit and its own store write passes the older epoch: a newer
   * epoch of the same group key wins if its certificate (every member's confirmation) verifies.
   * Members left behind by a crash are then sent `commit-epoch`, and members that left the
   * committee but still hold a share are sent `retire`; each node checks the certificate itself.
   * Asks every node once per epoch seen by this process (or when `force`d).
   */
  async #sync(given: EpochInfo, force = false): Promise<{ k: EpochInfo; pub: FrostPublic }> {
    const newer = this.#newer.get(given.keyId);
    const k0 = newer && newer.epoch > given.epoch ? newer : given;
    const cached = this.#publics.get(`${k0.keyId}/${k0.epoch}`);
    if (cached && !force) return { k: k0, pub: cached };
    const spec = keySpec(k0.keySpec);
    const ids = [...this.#nodes.keys()];
    const answers = await Promise.all(
      ids.map((n) =>
        this.#rpc<PublicAnswer>(n, { op: 'public', keyId: k0.keyId }, this.#statusTimeoutMs).then(
          (r) => ({ n, r }),
          () => ({ n, r: undefined }),
        ),
      ),
    );
    let best: { epoch: number; pub: FrostPublic; proof?: PublicAnswer } | undefined;
    for (const { n, r } of answers) {
      if (!r || r.epoch < k0.epoch || (best && r.epoch < best.epoch) || (best?.proof && r.epoch === best.epoch)) continue;
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
    if (!best) throw new KmsError('QuorumUnavailable', `no committee member of ${k0.keyId} answered with epoch ${k0.epoch}`);
    const pub = best.pub;
    const k: EpochInfo =
      best.epoch === k0.epoch
        ? k0
        : {
            ...k0,
            epoch: best.epoch,
            threshold: pub.signers.min,
            participants: ids.filter((n) => participantIdOf(spec, nodeIndex(n)!) in pub.verifyingShares).sort(byNodeIndex),
            transcriptHash: best.proof!.transcriptHash!,
          };
    if (k.epoch > given.epoch) {
      this.#log.warn({ keyId: k.keyId, epoch: k.epoch, recorded: given.epoch }, 'members hold a newer certified epoch');
      this.#newer.set(k.keyId, k);
    }
    const proof = best.proof;
    if (proof) {
      await Promise.all(
        answers.map(async ({ n, r }) => {
          const member = k.participants.includes(n);
          if ((r?.epoch ?? -1) >= k.epoch || (!member && !r)) return;
          const req: RpcRequest = member
            ? { op: 'commit-epoch', keyId: k.keyId, epoch: k.epoch, certificate: proof.certificate!, transcriptHash: proof.transcriptHash! }
            : {
                op: 'retire',
                keyId: k.keyId,
                epoch: k.epoch,
                public: proof.public,
                certificate: proof.certificate!,
                transcriptHash: proof.transcriptHash!,
                sessionId: proof.sessionId ?? '',
              };
          await this.#rpc(n, req, this.#statusTimeoutMs).catch((e: unknown) =>
            this.#log.warn({ node: n, keyId: k.keyId, op: req.op, err: String(e) }, 'member not brought to the epoch'),
          );
        }),
      );
    }
    this.#publics.set(`${k.keyId}/${k.epoch}`, pub);
    return { k, pub };
  }

  async #publicHex(k: EpochInfo): Promise<PublicPackageHex> {
    return publicToHex(await this.#public(k));
  }

  async sign(req: { key: EpochInfo; message: Uint8Array }): Promise<SignResult> {
    let { k, pub } = await this.#sync(req.key);
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
    // Each attempt uses fresh nonces and a new session; a node that timed out or sent an invalid
    // share is left out of the next attempt (RFC 9591 §5.4 identifiable abort).
    for (;;) {
      const avail = order.filter((n) => !out.has(n));
      if (avail.length < k.threshold) {
        throw new KmsError(
          'QuorumUnavailable',
          `key ${k.keyId}: ${avail.length} usable members left, threshold is ${k.threshold}`,
          { culprits: excluded },
        );
      }
      // RFC 9591 §4.3: commitment lists are sorted by identifier (node-k has identifier k).
      const signers = avail.slice(0, k.threshold).sort(byNodeIndex);
      const attempt = await this.#signOnce(spec, k, pub, signers, req.message);
      // Verified by the aggregate under pub.commitments[0], which #sync checked against k.groupElement.
      if ('signature' in attempt) return { signature: attempt.signature, signers, excluded, verified: true };
      if (!resynced && attempt.blame.some((b) => b.evidence === 'EpochMismatch' || b.evidence === 'KeyNotFound')) {
        // A member answered as if the epoch were not committed (it crashed before activating, or
        // this coordinator's record lags): sync once, then retry without excluding it.
        resynced = true;
        this.#publics.delete(`${k.keyId}/${k.epoch}`);
        ({ k, pub } = await this.#sync(k, true));
        order = orderOf(k.participants);
        continue;
      }
      for (const b of attempt.blame) {
        out.add(b.participant);
        excluded.push(b);
      }
    }
  }

  async #signOnce(
    spec: KeySpec,
    k: EpochInfo,
    pub: FrostPublic,
    signers: string[],
    message: Uint8Array,
  ): Promise<{ signature: Uint8Array } | { blame: Blame[] }> {
    const sessionId = randomUUID();
    const commits = await Promise.allSettled(
      signers.map((n) =>
        this.#rpc<CommitAnswer>(
          n,
          { op: 'sign-commit', sessionId, keyId: k.keyId, epoch: k.epoch },
          this.#signTimeoutMs,
        ),
      ),
    );
    const blame = unresponsive(signers, commits, 'sign.commit');
    if (blame.length > 0) return { blame };
    crashPoint('coordinator.sign.after-commit');
    const commitments = commits.map((c) => (c as PromiseFulfilledResult<CommitAnswer>).value);
    // Checked here, so a bad commitment is blamed on the node that sent it: forwarded unchecked, it
    // would make every honest co-signer refuse round two and be excluded instead (RFC 9591 §3.1).
    // Decoded once: the aggregate below reuses these bytes, and checkElement remembers the
    // encodings it accepted (fast-sign.ts), so the aggregate's own §3.1 checks are cache hits.
    const decoded = signers.map((n, i) => commitmentOf(spec, n, commitments[i]));
    const badCommit = signers.filter((_, i) => decoded[i] === undefined);
    if (badCommit.length > 0) {
      return { blame: badCommit.map((n) => ({ participant: n, reason: 'malformed-message', round: 'sign.commit' }) as Blame) };
    }
    const shares = await Promise.allSettled(
      signers.map((n) =>
        this.#rpc<{ share: string }>(
          n,
          { op: 'sign-share', sessionId, keyId: k.keyId, epoch: k.epoch, message: toHex(message), commitments },
          this.#signTimeoutMs,
        ),
      ),
    );
    const blame2 = unresponsive(signers, shares, 'sign.share');
    if (blame2.length > 0) return { blame: blame2 };
    crashPoint('coordinator.sign.after-share');
    try {
      const signature = aggregateSignature({
        spec,
        public: pub,
        epoch: k.epoch,
        message,
        commitments: decoded as DecodedCommitment[],
        shares: Object.fromEntries(
          shares.map((s, i) => [commitments[i]!.identifier, fromHex((s as PromiseFulfilledResult<{ share: string }>).value.share)]),
        ),
      });
      // The aggregate is returned only if it verifies under the group key (RFC 9591 §5.3).
      return { signature };
    } catch (e) {
      if (isKmsError(e) && e.code === 'ParticipantMisbehaved') {
        // Map FROST identifiers back to node ids.
        const byPid = new Map(signers.map((n) => [participantIdOf(spec, nodeIndex(n)!), n]));
        return {
          blame: e.culprits.map((c) => ({ ...c, participant: byPid.get(c.participant) ?? c.participant })),
        };
      }
      throw e;
    }
  }

  async setKeyState(req: { keyId: string; state: KeyState }): Promise<void> {
    if (req.state !== 'Enabled' && req.state !== 'Disabled' && req.state !== 'PendingDeletion') return;
    const state = req.state;
    const results = await Promise.allSettled(
      [...this.#nodes.keys()].map((n) => this.#rpc(n, { op: 'set-state', keyId: req.keyId, state }, 5_000)),
    );
    const failedNodes = results.flatMap((r, i) =>
      r.status === 'rejected' && !(isKmsError(r.reason) && r.reason.code === 'KeyNotFound')
        ? [[...this.#nodes.keys()][i]]
        : [],
    );
    if (failedNodes.length > 0) {
      // Nodes that missed the change keep enforcing the old state; report it so the caller retries.
      this.#log.warn({ keyId: req.keyId, state, nodes: failedNodes }, 'key state not delivered to every node');
    }
  }

  async destroyKey(req: { keyId: string }): Promise<void> {
    await Promise.allSettled([...this.#nodes.keys()].map((n) => this.#rpc(n, { op: 'destroy', keyId: req.keyId }, 5_000)));
    for (const k of this.#publics.keys()) if (k.startsWith(`${req.keyId}/`)) this.#publics.delete(k);
  }

  async close(): Promise<void> {
    await this.#t.stop();
  }
}

type CommitAnswer = { identifier: string; hiding: string; binding: string };
type DecodedCommitment = { identifier: string; hiding: Uint8Array; binding: Uint8Array };

/**
 * A round-one answer, decoded: the identifier the node's place gives it and two valid group
 * elements (RFC 9591 §3.1, on the suite's fast backend where it has one), or undefined.
 */
function commitmentOf(spec: KeySpec, node: string, c: CommitAnswer | undefined): DecodedCommitment | undefined {
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

function byNodeIndex(a: string, b: string): number {
  return (nodeIndex(a) ?? 0) - (nodeIndex(b) ?? 0);
}

function unresponsive(signers: string[], results: PromiseSettledResult<unknown>[], round: string): Blame[] {
  return results.flatMap((r, i) => {
    if (r.status === 'fulfilled') return [];
    const e = r.reason;
    const reason = isKmsError(e) && (e.code === 'ParticipantMisbehaved' || e.code === 'DecodeError') ? 'malformed-message' : 'unresponsive';
    return [{ participant: signers[i]!, reason, round, evidence: isKmsError(e) ? e.code : 'error' } as Blame];
  });
}
