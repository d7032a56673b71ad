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
import type { SessionSpec } from '../net/rpc.ts';
import type { Transport } from '../net/transport.ts';
import type { Cluster, EpochInfo, KeyState, NodeStatus, ProgressFn, SignResult } from './cluster.ts';
import { EpochSync } from './epoch-sync.ts';
import { KeyEventRunner } from './key-event-runner.ts';
import { type ClusterLog, NodeRpc, byNodeIndex } from './node-rpc.ts';
import { ThresholdSigner } from './threshold-signer.ts';

export type Libp2pClusterOptions = {
  transport: Transport;
  nodes: readonly ClusterPeer[];
  /** Deadline of a DKG / key-event session on the nodes, plus slack for the answer. */
  sessionTimeoutMs?: number;
  /** Deadline of one signing round trip to one node. */
  signTimeoutMs?: number;
  statusTimeoutMs?: number;
  log?: ClusterLog;
};

export class Libp2pCluster implements Cluster {
  readonly #n: NodeRpc;
  readonly #sync: EpochSync;
  readonly #events: KeyEventRunner;
  readonly #signer: ThresholdSigner;

  constructor(opts: Libp2pClusterOptions) {
    this.#n = new NodeRpc({
      transport: opts.transport,
      nodes: opts.nodes,
      sessionTimeoutMs: opts.sessionTimeoutMs ?? 30_000,
      signTimeoutMs: opts.signTimeoutMs ?? 5_000,
      statusTimeoutMs: opts.statusTimeoutMs ?? 2_000,
      log: opts.log ?? { warn: () => {}, info: () => {} },
    });
    this.#sync = new EpochSync(this.#n);
    this.#events = new KeyEventRunner(this.#n, this.#sync);
    this.#signer = new ThresholdSigner(this.#n, this.#sync);
  }

  nodes(): Promise<NodeStatus[]> {
    return this.#n.statuses();
  }

  sign(req: { key: EpochInfo; message: Uint8Array }): Promise<SignResult> {
    return this.#signer.sign(req);
  }

  async createKey(req: Parameters<Cluster['createKey']>[0]): Promise<EpochInfo> {
    this.#n.checkMembers(req.participants);
    const session: SessionSpec = {
      kind: 'dkg',
      sessionId: randomUUID(),
      keyId: req.keyId,
      keySpec: req.keySpec,
      epoch: 0,
      threshold: req.threshold,
      participants: [...req.participants].sort(byNodeIndex),
    };
    return this.#events.run(session, [], req.progress);
  }

  async refresh(req: { key: EpochInfo; progress?: ProgressFn }): Promise<EpochInfo> {
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
    return this.#events.run(session, [], req.progress);
  }

  async reshare(req: Parameters<Cluster['reshare']>[0]): Promise<EpochInfo> {
    const { k } = await this.#sync.sync(req.key, true);
    this.#n.checkMembers(req.participants);
    const newMembers = [...req.participants].sort(byNodeIndex);
    // Only t members of the old committee deal (the old threshold is explicit: never inferred).
    const dealers = await this.#n.pickReachable(k.participants, k.threshold);
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
    };
    // Old members outside the new committee retire their share once the event is committed.
    const retiring = k.participants.filter((p) => !newMembers.includes(p));
    return this.#events.run(session, retiring, req.progress);
  }

  async repair(req: { key: EpochInfo; participant: string; progress?: ProgressFn }): Promise<EpochInfo> {
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
      members.map((m) => this.#n.rpc(m, { op: 'session', session }, this.#n.sessionTimeoutMs + 5_000)),
    );
    const failed = results.flatMap((r, i) =>
      r.status === 'rejected' ? [{ node: members[i]!, err: r.reason }] : [],
    );
    if (failed.length > 0) throw this.#events.eventError('repair', failed);
    return k;
  }

  async setKeyState(req: { keyId: string; state: KeyState }): Promise<void> {
    if (req.state !== 'Enabled' && req.state !== 'Disabled' && req.state !== 'PendingDeletion') return;
    const state = req.state;
    const results = await Promise.allSettled(
      [...this.#n.nodes.keys()].map((n) =>
        this.#n.rpc(n, { op: 'set-state', keyId: req.keyId, state }, 5_000),
      ),
    );
    const failedNodes = results.flatMap((r, i) =>
      r.status === 'rejected' && !(isKmsError(r.reason) && r.reason.code === 'KeyNotFound')
        ? [[...this.#n.nodes.keys()][i]]
        : [],
    );
    if (failedNodes.length > 0) {
      // Nodes that missed the change keep enforcing the old state; report it so the caller retries.
      this.#n.log.warn(
        { keyId: req.keyId, state, nodes: failedNodes },
        'key state not delivered to every node',
      );
    }
  }

  async destroyKey(req: { keyId: string }): Promise<void> {
    await Promise.allSettled(
      [...this.#n.nodes.keys()].map((n) => this.#n.rpc(n, { op: 'destroy', keyId: req.keyId }, 5_000)),
    );
    this.#sync.forget(req.keyId);
  }

  async close(): Promise<void> {
    await this.#n.transport.stop();
  }
}
