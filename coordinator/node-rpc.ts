/**
 * The coordinator's side of the node RPC (`/tkms/rpc/1.0.0`, net/rpc.ts): one request to one
 * configured node, reachability probes and paged status reads. The parts of the libp2p cluster
 * (epoch sync, key events, signing) share one of these.
 */
import type { NodeStatus } from './cluster.ts';
import { KmsError } from '../protocol/errors.ts';
import { nodeIndex } from '../protocol/ids.ts';
import type { ClusterPeer } from '../net/cluster-file.ts';
import {
  type RequestOf,
  type RpcAnswers,
  type RpcOp,
  STATUS_PAGE,
  type SessionSpec,
  decodeRpcAnswer,
  encodeRpc,
} from '../net/rpc.ts';
import { RPC_PROTOCOL, type Transport } from '../net/transport.ts';

export type ClusterLog = { warn: (o: object, msg: string) => void; info: (o: object, msg: string) => void };

export class NodeRpc {
  readonly #t: Transport;
  readonly nodes: ReadonlyMap<string, ClusterPeer>;
  readonly sessionTimeoutMs: number;
  readonly signTimeoutMs: number;
  readonly statusTimeoutMs: number;
  readonly log: ClusterLog;

  constructor(opts: {
    transport: Transport;
    nodes: readonly ClusterPeer[];
    sessionTimeoutMs: number;
    signTimeoutMs: number;
    statusTimeoutMs: number;
    log: ClusterLog;
  }) {
    this.#t = opts.transport;
    this.nodes = new Map(opts.nodes.map((n) => [n.id, n]));
    this.sessionTimeoutMs = opts.sessionTimeoutMs;
    this.signTimeoutMs = opts.signTimeoutMs;
    this.statusTimeoutMs = opts.statusTimeoutMs;
    this.log = opts.log;
  }

  get transport(): Transport {
    return this.#t;
  }

  async rpc<O extends RpcOp>(nodeId: string, req: RequestOf<O>, timeoutMs: number): Promise<RpcAnswers[O]> {
    const peer = this.nodes.get(nodeId);
    if (!peer) throw new KmsError('ValidationError', `unknown node ${nodeId}`);
    const res = await this.#t.request(peer.peerId, RPC_PROTOCOL, encodeRpc(req), { timeoutMs });
    return decodeRpcAnswer(req.op as O, res);
  }

  /**
   * Announces a key-creating session to the nodes in `to` before any of them is asked to start it:
   * a node holds early messages only of announced sessions and only from the members named here,
   * dealers and participants (node/early-buffer.ts). A node that misses it is only logged: the
   * `session` request that follows reaches it or fails as before, and is reported there.
   */
  async prepare(session: SessionSpec, to: readonly string[]): Promise<void> {
    const members = [...new Set([...(session.dealers ?? []), ...session.participants])];
    const results = await Promise.allSettled(
      to.map((m) =>
        this.rpc(m, { op: 'prepare', sessionId: session.sessionId, members }, this.statusTimeoutMs),
      ),
    );
    results.forEach((r, i) => {
      if (r.status === 'rejected') {
        this.log.warn(
          { node: to[i], sessionId: session.sessionId, err: String(r.reason) },
          'session not announced',
        );
      }
    });
  }

  async statuses(): Promise<NodeStatus[]> {
    return Promise.all(
      [...this.nodes.values()].map(async (n) => {
        const base = { id: n.id, peerId: n.peerId, address: n.addresses[0] ?? '' };
        try {
          return { ...base, reachable: true, keys: await this.keysOf(n.id) };
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
  async keysOf(nodeId: string): Promise<string[]> {
    const keys: string[] = [];
    let after: string | undefined;
    // Bounded even if a node keeps answering `next`: at most the pages its own count calls for.
    for (let page = 0, pages = 1; page < pages; page++) {
      const s = await this.rpc(
        nodeId,
        { op: 'status', limit: STATUS_PAGE, ...(after === undefined ? {} : { after }) },
        this.statusTimeoutMs,
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
  async answers(nodeId: string): Promise<boolean> {
    return this.rpc(nodeId, { op: 'status', limit: 0 }, this.statusTimeoutMs).then(
      () => true,
      () => false,
    );
  }

  checkMembers(ids: readonly string[]): void {
    for (const id of ids)
      if (!this.nodes.has(id)) throw new KmsError('ValidationError', `unknown node ${id}`);
  }

  async pickReachable(candidates: readonly string[], count: number): Promise<string[]> {
    const probed = await Promise.all(candidates.map(async (c) => [c, await this.answers(c)] as const));
    const up = new Set(probed.filter(([, ok]) => ok).map(([c]) => c));
    const picked = candidates.filter((c) => up.has(c)).slice(0, count);
    if (picked.length < count) {
      throw new KmsError('QuorumUnavailable', `need ${count} reachable members, have ${picked.length}`, {
        details: { reachable: candidates.filter((c) => up.has(c)) },
      });
    }
    return picked;
  }
}

export function byNodeIndex(a: string, b: string): number {
  return (nodeIndex(a) ?? 0) - (nodeIndex(b) ?? 0);
}
