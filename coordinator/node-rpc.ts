/**
 * The coordinator's side of the node RPC (`/tkms/rpc/1.0.0`, net/rpc.ts): one request to one
 * configured node, reachability probes and paged status reads. The parts of the libp2p cluster
 * (epoch sync, key events, signing) share one of these.
 */
import type { NodeStatus } from './cluster.ts';
import { KmsError, isKmsError } from '../protocol/errors.ts';
import { nodeIndex } from '../protocol/ids.ts';
import type { ClusterPeer } from '../net/cluster-file.ts';
import {
  MAX_SIGN_BATCH,
  MAX_SIGN_BATCH_BYTES,
  type RequestOf,
  type RpcAnswers,
  type RpcOp,
  STATUS_PAGE,
  type SessionSpec,
  type SignBatchWire,
  type SignOneAnswer,
  type SignOneItem,
  checkRpcAnswer,
  decodeRpcAnswer,
  encodeRpc,
} from '../net/rpc.ts';
import { RPC_PROTOCOL, type Transport, errorFromWire } from '../net/transport.ts';

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
    /** Coalesce concurrent `sign-one` requests to a node into `sign-batch` (default: on). */
    batchSigning?: boolean;
  }) {
    this.#batching = opts.batchSigning !== false;
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
    if (req.op === 'sign-one' && this.#batching) {
      return this.#batcher(peer.peerId).add(req as RequestOf<'sign-one'>, timeoutMs) as Promise<
        RpcAnswers[O]
      >;
    }
    const res = await this.#t.request(peer.peerId, RPC_PROTOCOL, encodeRpc(req), { timeoutMs });
    return decodeRpcAnswer(req.op as O, res);
  }

  /** Whether `sign-one` requests to one node in one event-loop turn travel as one `sign-batch`. */
  readonly #batching: boolean;
  readonly #batchers = new Map<string, SignBatcher>();

  #batcher(peerId: string): SignBatcher {
    let b = this.#batchers.get(peerId);
    if (b === undefined) {
      b = new SignBatcher(this.#t, peerId, this.log);
      this.#batchers.set(peerId, b);
    }
    return b;
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

type Queued = {
  /** The item's JSON, once: the batch frame is these joined. */
  readonly json: string;
  /** Its UTF-8 length: decides the batch it joins. */
  readonly bytes: number;
  readonly timeoutMs: number;
  readonly resolve: (a: SignOneAnswer) => void;
  readonly reject: (e: unknown) => void;
};

/** After a node refused `sign-batch` as unknown (an older node), single requests for this long. */
const UNBATCHED_RETRY_MS = 60_000;

/**
 * Coalesces the `sign-one` requests bound for one node (issue 17): those that arrive within one
 * event-loop turn leave together at its end (setImmediate: a lone request waits for no timer and
 * leaves alone, as a plain `sign-one`), as `sign-batch` frames of at most MAX_SIGN_BATCH items and
 * MAX_SIGN_BATCH_BYTES. Each caller gets its own item's answer or its own error, of the class and
 * code a lone `sign-one` would have met; a failure of the whole frame (timeout, transport) is every
 * item's error, as it would have been for each alone. A node that does not know `sign-batch` refuses
 * the frame at its schema check, before any item ran (no nonce taken): the items go again singly.
 */
class SignBatcher {
  readonly #t: Transport;
  readonly #peer: string;
  readonly #log: ClusterLog;
  #queue: Queued[] = [];
  #scheduled = false;
  /** Until when this node is sent single requests only (it refused `sign-batch`). */
  #unbatchedUntil = 0;

  constructor(t: Transport, peer: string, log: ClusterLog) {
    this.#t = t;
    this.#peer = peer;
    this.#log = log;
  }

  add(req: RequestOf<'sign-one'>, timeoutMs: number): Promise<SignOneAnswer> {
    const { op: _op, ...item }: { op: string } & SignOneItem = req;
    return new Promise<SignOneAnswer>((resolve, reject) => {
      const json = JSON.stringify(item);
      this.#queue.push({ json, bytes: Buffer.byteLength(json), timeoutMs, resolve, reject });
      if (!this.#scheduled) {
        this.#scheduled = true;
        setImmediate(() => this.#flush());
      }
    });
  }

  #flush(): void {
    const queue = this.#queue;
    this.#queue = [];
    this.#scheduled = false;
    if (queue.length === 1 || performance.now() < this.#unbatchedUntil) {
      for (const q of queue) void this.#single(q);
      return;
    }
    let batch: Queued[] = [];
    let bytes = 0;
    for (const q of queue) {
      if (batch.length > 0 && (batch.length >= MAX_SIGN_BATCH || bytes + q.bytes > MAX_SIGN_BATCH_BYTES)) {
        this.#send(batch);
        batch = [];
        bytes = 0;
      }
      batch.push(q);
      bytes += q.bytes + 1;
    }
    this.#send(batch);
  }

  /** Sends one item as a plain `sign-one`; settles its caller, and resolves to its error if any. */
  #single(q: Queued): Promise<unknown> {
    return this.#t
      .request(this.#peer, RPC_PROTOCOL, encodeText(`{"op":"sign-one",${q.json.slice(1)}`), {
        timeoutMs: q.timeoutMs,
      })
      .then((res) => decodeRpcAnswer('sign-one', res))
      .then(
        (a) => {
          q.resolve(a);
          return undefined;
        },
        (e: unknown) => {
          q.reject(e);
          return e;
        },
      );
  }

  #send(batch: Queued[]): void {
    if (batch.length === 1) {
      void this.#single(batch[0]!);
      return;
    }
    // No caller waits longer than its own deadline.
    const timeoutMs = Math.min(...batch.map((q) => q.timeoutMs));
    const frame = encodeText(`{"op":"sign-batch","items":[${batch.map((q) => q.json).join(',')}]}`);
    this.#t.request(this.#peer, RPC_PROTOCOL, frame, { timeoutMs }).then(
      (res) => {
        let answer: SignBatchWire;
        try {
          answer = decodeRpcAnswer('sign-batch', res);
          if (answer.results.length !== batch.length)
            throw new KmsError('DecodeError', 'sign-batch answer does not match the request');
        } catch (e) {
          for (const q of batch) q.reject(e);
          return;
        }
        answer.results.forEach((r, i) => {
          const q = batch[i]!;
          if (!('ok' in r)) {
            q.reject(errorFromWire(r.error, this.#peer));
            return;
          }
          let ok: SignOneAnswer;
          try {
            ok = checkRpcAnswer('sign-one', r.ok);
          } catch (e) {
            q.reject(e);
            return;
          }
          q.resolve(ok);
        });
      },
      (e: unknown) => {
        if (isKmsError(e) && e.code === 'ValidationError') {
          // The frame failed the node's schema, so no item ran: each goes again alone. If none is
          // refused alone as well, the node does not know `sign-batch` (an older node): it gets
          // single requests for a while (a bad item, refused alone too, does not decide that).
          void Promise.all(batch.map((q) => this.#single(q))).then((errs) => {
            if (errs.some((x) => isKmsError(x) && x.code === 'ValidationError')) return;
            this.#log.warn({ peer: this.#peer }, 'node refused sign-batch; sending single sign-one requests');
            this.#unbatchedUntil = performance.now() + UNBATCHED_RETRY_MS;
          });
          return;
        }
        for (const q of batch) q.reject(e);
      },
    );
  }
}

const textEncoder = new TextEncoder();
function encodeText(s: string): Uint8Array {
  return textEncoder.encode(s);
}

export function byNodeIndex(a: string, b: string): number {
  return (nodeIndex(a) ?? 0) - (nodeIndex(b) ?? 0);
}
