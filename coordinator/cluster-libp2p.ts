/**
 * The real Cluster: drives sessions on the node daemons over libp2p (net/rpc.ts requests on
 * `/tkms/rpc/1.0.0`). The coordinator is one of the nodes' allowed peers; it sees public data only
 * (commitments, verifying shares, signature shares, confirmations), never a share.
 *
 * Its parts: node-rpc.ts (requests to one node), epoch-sync.ts (each key's epoch and package as the
 * members hold them), key-event-runner.ts (DKG, refresh, reshare: run, then commit or abort
 * everywhere), threshold-signer.ts (RFC 9591 signing with identifiable abort).
 */
import { randomUUID } from 'node:crypto';
import { KmsError, isKmsError } from '../protocol/errors.ts';
import type { ClusterPeer } from '../net/cluster-file.ts';
import type { AuditAnswer, SessionSpec } from '../net/rpc.ts';
import type { AuthorizationWire } from '../net/signed-request.ts';
import type { Transport } from '../net/transport.ts';
import { stateChangeTo } from '../protocol/key-states.ts';
import {
  type Cluster,
  type DestroyOutcome,
  type EpochInfo,
  type NodeGovernance,
  type NodeKeyStatesPage,
  type NodeOutcome,
  type NodeStatus,
  type ProgressFn,
  type SignResult,
  failedOutcome,
} from './cluster.ts';
import { EpochSync } from './epoch-sync.ts';
import { KeyEventRunner } from './key-event-runner.ts';
import { type ClusterLog, NodeRpc, byNodeIndex } from './node-rpc.ts';
import { isRefusal, pendingNeeds, refusalError } from './node-refusal.ts';
import { ThresholdSigner } from './threshold-signer.ts';
import { type DecryptRequest, type DecryptResult, ThresholdDecryptor } from './decryptor.ts';
import { BackupCourier } from './backups.ts';

export type Libp2pClusterOptions = {
  transport: Transport;
  nodes: readonly ClusterPeer[];
  /** Deadline of a DKG / key-event session on the nodes, plus slack for the answer. */
  sessionTimeoutMs?: number;
  /** Deadline of one signing round trip to one node. */
  signTimeoutMs?: number;
  statusTimeoutMs?: number;
  log?: ClusterLog;
  /** Concurrent `sign-one` requests to one node travel as one `sign-batch` (default: on; node-rpc.ts). */
  batchSigning?: boolean;
};

export class Libp2pCluster implements Cluster {
  readonly #n: NodeRpc;
  readonly #sync: EpochSync;
  readonly #events: KeyEventRunner;
  readonly #signer: ThresholdSigner;
  readonly #decryptor: ThresholdDecryptor;
  readonly backups: BackupCourier;

  constructor(opts: Libp2pClusterOptions) {
    this.#n = new NodeRpc({
      transport: opts.transport,
      nodes: opts.nodes,
      sessionTimeoutMs: opts.sessionTimeoutMs ?? 30_000,
      signTimeoutMs: opts.signTimeoutMs ?? 5_000,
      statusTimeoutMs: opts.statusTimeoutMs ?? 2_000,
      log: opts.log ?? { warn: () => {}, info: () => {} },
      ...(opts.batchSigning === undefined ? {} : { batchSigning: opts.batchSigning }),
    });
    this.#sync = new EpochSync(this.#n);
    this.#events = new KeyEventRunner(this.#n, this.#sync);
    this.#signer = new ThresholdSigner(this.#n, this.#sync);
    this.#decryptor = new ThresholdDecryptor(this.#n, this.#sync);
    this.backups = new BackupCourier(this.#n, this.#sync);
  }

  nodes(): Promise<NodeStatus[]> {
    return this.#n.statuses();
  }

  sign(req: Parameters<Cluster['sign']>[0]): Promise<SignResult> {
    return this.#signer.sign(req);
  }

  decrypt(req: DecryptRequest): Promise<DecryptResult> {
    return this.#decryptor.decrypt(req);
  }

  async createKey(req: Parameters<Cluster['createKey']>[0]): Promise<EpochInfo> {
    this.#n.checkMembers(req.participants);
    // Refused here, before any node is asked (each node would refuse it as well).
    if (!Number.isInteger(req.threshold) || req.threshold < 2 || req.threshold > req.participants.length) {
      throw new KmsError(
        'ValidationError',
        `threshold ${req.threshold} must be in [2, ${req.participants.length}] (the committee size)`,
      );
    }
    const session: SessionSpec = {
      kind: 'dkg',
      sessionId: randomUUID(),
      keyId: req.keyId,
      keySpec: req.keySpec,
      epoch: 0,
      threshold: req.threshold,
      participants: [...req.participants].sort(byNodeIndex),
      ...(req.merkleRoot ? { merkleRoot: req.merkleRoot.toLowerCase() } : {}),
    };
    return this.#events.run(session, [], req.progress, undefined, req.auth);
  }

  async refresh(req: {
    key: EpochInfo;
    progress?: ProgressFn;
    auth?: AuthorizationWire;
  }): Promise<EpochInfo> {
    const { k } = await this.#sync.sync(req.key, true);
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
      oldPublic: await this.#sync.publicHex(k),
    };
    return this.#events.run(session, [], req.progress, k.groupElement, req.auth);
  }

  async reshare(req: Parameters<Cluster['reshare']>[0]): Promise<EpochInfo> {
    const { k, answered } = await this.#sync.sync(req.key, true);
    this.#n.checkMembers(req.participants);
    const newMembers = [...req.participants].sort(byNodeIndex);
    // Only t members of the old committee deal (the old threshold is explicit: never inferred),
    // picked among those that just answered the sync with the key's package (issue 17: no second
    // probe round); if too few did, the probe decides (and names who is reachable).
    const fresh = k.participants.filter((p) => answered?.includes(p)).slice(0, k.threshold);
    const dealers =
      fresh.length === k.threshold ? fresh : await this.#n.pickReachable(k.participants, k.threshold);
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
      oldPublic: await this.#sync.publicHex(k),
      ...(req.custody ? { chainCode: req.custody.chainCode, merkleRoot: req.custody.merkleRoot } : {}),
    };
    // Old members outside the new committee retire their share once the event is committed.
    const retiring = k.participants.filter((p) => !newMembers.includes(p));
    return this.#events.run(session, retiring, req.progress, k.groupElement, req.auth);
  }

  async repair(req: Parameters<Cluster['repair']>[0]): Promise<EpochInfo> {
    const { k } = await this.#sync.sync(req.key, true);
    if (!k.participants.includes(req.participant)) {
      throw new KmsError('ValidationError', `${req.participant} is not in the committee of key ${k.keyId}`);
    }
    const others = k.participants.filter((p) => p !== req.participant);
    const helpers = await this.#n.pickReachable(others, k.threshold);
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
      oldPublic: await this.#sync.publicHex(k),
      target: req.participant,
    };
    req.progress?.({ phase: 'repair', detail: `helpers ${helpers.join(', ')}` });
    const members = [...helpers, req.participant];
    await this.#n.prepare(session, members);
    const results = await Promise.allSettled(
      members.map((m) =>
        this.#n.rpc(
          m,
          { op: 'session', session, ...(req.auth === undefined ? {} : { auth: req.auth }) },
          this.#n.sessionTimeoutMs + 5_000,
        ),
      ),
    );
    const failed = results.flatMap((r, i) =>
      r.status === 'rejected' ? [{ node: members[i]!, err: r.reason }] : [],
    );
    const refusals = failed.flatMap((f) => (isRefusal(f.err) ? [{ node: f.node, err: f.err }] : []));
    if (refusals.length > 0) throw refusalError('repair', refusals);
    if (failed.length > 0) throw this.#events.eventError('repair', failed);
    return k;
  }

  /** Per-member outcomes (M-2): a member that misses the change is reported, never ignored. */
  async setKeyState(req: Parameters<Cluster['setKeyState']>[0]): Promise<NodeOutcome[]> {
    const operation = req.operation ?? stateChangeTo(req.state);
    const members = req.members ?? [...this.#n.nodes.keys()];
    return Promise.all(
      members.map(async (node): Promise<NodeOutcome> => {
        try {
          const set = {
            op: 'set-state',
            keyId: req.keyId,
            state: req.state,
            operation,
            ...(req.auth === undefined ? {} : { auth: req.auth }),
          } as const;
          await this.#n.rpc(node, set, 5_000);
          return { node, ok: true };
        } catch (e) {
          // A node that holds nothing of the key has nothing to enforce: it confirms by its absence.
          if (isKmsError(e) && e.code === 'KeyNotFound') return { node, ok: true, absent: true };
          const needs = pendingNeeds(e);
          return { ...failedOutcome(node, e), ...(needs === undefined ? {} : { needs }) };
        }
      }),
    );
  }

  /** Per-node outcomes (M-2): the caller keeps the key PendingDeletion until every member confirmed. */
  async destroyKey(req: { keyId: string; nodes?: readonly string[] }): Promise<DestroyOutcome[]> {
    const nodes = req.nodes ?? [...this.#n.nodes.keys()];
    const outcomes = await Promise.all(nodes.map((node) => this.#destroyOn(node, req.keyId)));
    this.#sync.forget(req.keyId);
    return outcomes;
  }

  async #destroyOn(node: string, keyId: string): Promise<DestroyOutcome> {
    try {
      // No signature: each node destroys only a key whose signed schedule-deletion it processed
      // and whose window has passed on its own clock (a node that missed it says InvalidKeyState;
      // no one can move it to PendingDeletion without a principal's signature).
      const a = await this.#n.rpc(node, { op: 'destroy', keyId }, 5_000);
      return {
        node,
        ok: true,
        ...(a.absent ? { absent: true } : {}),
        epochs: a.epochs,
        scopes: a.scopes,
        pendingScopes: a.pendingScopes,
      };
    } catch (e) {
      return failedOutcome(node, e);
    }
  }

  nodeIds(): readonly string[] {
    return [...this.#n.nodes.keys()];
  }

  async nodeKeyStates(node: string, page: { after?: string; limit: number }): Promise<NodeKeyStatesPage> {
    const s = await this.#n.rpc(
      node,
      { op: 'status', limit: page.limit, ...(page.after === undefined ? {} : { after: page.after }) },
      this.#n.statusTimeoutMs,
    );
    return {
      keys: s.keys.map((k) => ({ keyId: k.keyId, state: k.state })),
      ...(s.next === undefined ? {} : { next: s.next }),
    };
  }

  async governance(): Promise<NodeGovernance[]> {
    return Promise.all(
      [...this.#n.nodes.keys()].map(async (node): Promise<NodeGovernance> => {
        try {
          const governance = await this.#n.rpc(node, { op: 'governance' }, this.#n.statusTimeoutMs);
          return { node, ok: true, governance };
        } catch (e) {
          const f = failedOutcome(node, e);
          return { node, ok: false, error: f.error! };
        }
      }),
    );
  }

  async updateGovernance(
    req: Parameters<NonNullable<Cluster['updateGovernance']>>[0],
  ): Promise<NodeOutcome[]> {
    const nodes = req.nodes ?? [...this.#n.nodes.keys()];
    return Promise.all(
      nodes.map(async (node): Promise<NodeOutcome> => {
        try {
          await this.#n.rpc(
            node,
            { op: 'governance-update', document: req.document, signatures: [...req.signatures] },
            5_000,
          );
          return { node, ok: true };
        } catch (e) {
          return failedOutcome(node, e);
        }
      }),
    );
  }

  async reviewSign(req: { key: EpochInfo; auth: AuthorizationWire }): Promise<void> {
    await Promise.allSettled(
      req.key.participants.map((n) =>
        this.#n.rpc(n, { op: 'sign-review', keyId: req.key.keyId, auth: req.auth }, this.#n.statusTimeoutMs),
      ),
    );
  }

  nodeAudit(node: string, page: { after?: number; limit: number }): Promise<AuditAnswer> {
    return this.#n.rpc(
      node,
      { op: 'audit', limit: page.limit, ...(page.after === undefined ? {} : { after: page.after }) },
      this.#n.statusTimeoutMs + 3_000,
    );
  }

  async close(): Promise<void> {
    await this.#n.transport.stop();
  }
}
