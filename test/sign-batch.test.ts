import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Libp2pCluster } from '../coordinator/cluster-libp2p.ts';
import type { EpochInfo } from '../coordinator/cluster.ts';
import { NodeRpc } from '../coordinator/node-rpc.ts';
import { type ClusterPeer, loadClusterFile } from '../net/cluster-file.ts';
import { generateIdentityKey, peerIdOf } from '../net/identity.ts';
import { type RequestOf, type RpcAnswers, type RpcOp, decodeRpcAnswer, encodeRpc } from '../net/rpc.ts';
import type { AuthorizationWire } from '../net/signed-request.ts';
import { RPC_PROTOCOL, type Transport, createTransport } from '../net/transport.ts';
import { fromHex } from '../protocol/bytes.ts';
import { KmsError } from '../protocol/errors.ts';
import { keySpec } from '../protocol/suites.ts';
import { type TestCluster, startTestCluster } from './helpers/cluster.ts';
import { verifyIndependently } from './helpers/independent-verifiers.ts';
import { authorizer, signingCluster } from './helpers/signing-cluster.ts';
import { oneRoundKit } from './helpers/one-round-kit.ts';

const SPEC = keySpec('FROST_ED25519');
const NODES = ['node-1', 'node-2', 'node-3'];
const enc = (s: string) => new TextEncoder().encode(s);
const dec = new TextDecoder();
const independentVerify = (k: EpochInfo, m: Uint8Array, sig: Uint8Array) =>
  verifyIndependently(k.keySpec, fromHex(k.publicKey), m, sig);

let tc: TestCluster;
let other: Transport;
let peers: ClusterPeer[];
let peerOf: Map<string, string>;
let nodeOf: Map<string, string>;
let auth: (method: string, path: string, body?: unknown) => AuthorizationWire;

type Sent = { node: string; op: string; items: number };

/**
 * `t` recording every RPC frame it sends (op and item count); with `renameBatch` it sends a
 * `sign-batch` under an op the nodes do not know, as to a node older than `sign-batch`.
 */
function recording(t: Transport, sent: Sent[], renameBatch = false): Transport {
  return new Proxy(t, {
    get(target, prop) {
      if (prop === 'request') {
        return (peer: string, protocol: string, body: Uint8Array, opts?: { timeoutMs?: number }) => {
          let out = body;
          if (protocol === RPC_PROTOCOL) {
            const v = JSON.parse(dec.decode(body)) as { op: string; items?: unknown[] };
            sent.push({ node: nodeOf.get(peer)!, op: v.op, items: v.items?.length ?? 1 });
            if (renameBatch && v.op === 'sign-batch') out = encodeRpc({ ...v, op: 'sign-batch-v2' });
          }
          return target.request(peer, protocol, out, opts);
        };
      }
      const v = Reflect.get(target, prop, target);
      return typeof v === 'function' ? v.bind(target) : v;
    },
  });
}

const nodeRpc = (transport: Transport) =>
  new NodeRpc({
    transport,
    nodes: peers,
    sessionTimeoutMs: 30_000,
    signTimeoutMs: 20_000,
    statusTimeoutMs: 5_000,
    log: { warn: () => {}, info: () => {} },
  });

/** A raw RPC from the fixture's coordinator identity, never batched. */
async function rpc<O extends RpcOp>(node: string, req: RequestOf<O>): Promise<RpcAnswers[O]> {
  const out = await tc.coordinatorTransport.request(peerOf.get(node)!, RPC_PROTOCOL, encodeRpc(req), {
    timeoutMs: 20_000,
  });
  return decodeRpcAnswer(req.op as O, out);
}

const { signAuth, precommit, signOneReq, aggregate } = oneRoundKit(SPEC, rpc, () => auth);

beforeAll(async () => {
  const keyB = await generateIdentityKey();
  tc = await startTestCluster(3, {
    coordinators: [{ id: 'coordinator-b', peerId: peerIdOf(keyB), addresses: [] }],
  });
  peers = loadClusterFile(join(tc.dir, 'cluster.json')).nodes;
  peerOf = new Map(peers.map((n) => [n.id, n.peerId]));
  nodeOf = new Map(peers.map((n) => [n.peerId, n.id]));
  other = await createTransport({
    privateKey: keyB,
    listen: [],
    allow: peers.map((p) => ({ peerId: p.peerId, addresses: p.addresses })),
  });
  auth = authorizer(tc.governance!.admin, tc.governance!.admin2);
}, 120_000);
afterAll(async () => {
  await other?.stop();
  await tc?.close();
});

describe('sign-batch', () => {
  let key: EpochInfo;
  beforeAll(async () => {
    key = await tc.cluster.createKey({
      keyId: 'sign-batch',
      keySpec: 'FROST_ED25519',
      threshold: 2,
      participants: NODES,
    });
  }, 60_000);

  it('requests to one node in one turn leave as one frame; each caller gets its own share or its own error', async () => {
    const sent: Sent[] = [];
    const n = nodeRpc(recording(other, sent));
    const signers = ['node-1', 'node-3'];
    const lists = [
      await precommit(key, signers),
      await precommit(key, signers),
      await precommit(key, signers),
    ];
    const ms = [enc('batched 0'), enc('batched 1'), enc('batched 2'), enc('batched 3')];
    const reqs = [
      signOneReq(key, ms[0]!, lists[0]!, signAuth(key.keyId, ms[0]!)),
      // Signed for another message: this item alone is refused.
      signOneReq(key, ms[1]!, lists[1]!, signAuth(key.keyId, enc('something else'))),
      // Item 0's commitments again, in the same frame, with a valid request of its own: replayed.
      signOneReq(key, ms[2]!, lists[0]!, signAuth(key.keyId, ms[2]!)),
      signOneReq(key, ms[3]!, lists[2]!, signAuth(key.keyId, ms[3]!)),
    ];
    const results = await Promise.allSettled(reqs.map((r) => n.rpc('node-1', r, 20_000)));
    expect(sent).toEqual([{ node: 'node-1', op: 'sign-batch', items: 4 }]);

    expect(results.map((r) => r.status)).toEqual(['fulfilled', 'rejected', 'rejected', 'fulfilled']);
    const err = (i: number) => (results[i] as PromiseRejectedResult).reason as KmsError;
    expect(err(1)).toBeInstanceOf(KmsError);
    expect(err(1).code).toBe('Unauthorized');
    expect(err(2).code).toBe('NonceReused');

    // The same refusals sent alone: a lone request leaves as a plain sign-one, and its error has
    // the same class and code as the batched item's.
    const lone = await precommit(key, signers);
    const single = await n
      .rpc('node-1', signOneReq(key, ms[1]!, lone, signAuth(key.keyId, enc('something else'))), 20_000)
      .then(
        () => new KmsError('Internal', 'expected a refusal'),
        (e: unknown) => e as KmsError,
      );
    const replayed = await n
      .rpc('node-1', signOneReq(key, ms[2]!, lists[0]!, signAuth(key.keyId, ms[2]!)), 20_000)
      .then(
        () => new KmsError('Internal', 'expected a refusal'),
        (e: unknown) => e as KmsError,
      );
    expect(sent.slice(1).map((s) => s.op)).toEqual(['sign-one', 'sign-one']);
    for (const [alone, batched] of [
      [single, err(1)],
      [replayed, err(2)],
    ] as const) {
      expect(alone).toBeInstanceOf(KmsError);
      expect(alone.constructor).toBe(batched.constructor);
      expect(alone.code).toBe(batched.code);
      expect(alone.message).toBe(batched.message);
    }

    // The two good items' shares make valid signatures with node-3's.
    for (const [i, list] of [
      [0, lists[0]!],
      [3, lists[2]!],
    ] as const) {
      const own = (results[i] as PromiseFulfilledResult<{ share: string }>).value.share;
      const o = await rpc('node-3', signOneReq(key, ms[i]!, list, signAuth(key.keyId, ms[i]!)));
      const signature = await aggregate(key, ms[i]!, list, [own, o.share]);
      expect(independentVerify(key, ms[i]!, signature)).toBe(true);
    }
  });

  it('the real coordinator signs concurrently through batches; every signature verifies', async () => {
    const sent: Sent[] = [];
    const inner = new Libp2pCluster({
      transport: recording(other, sent),
      nodes: peers,
      signTimeoutMs: 20_000,
      statusTimeoutMs: 5_000,
    });
    const mine = signingCluster(inner, tc.governance!.admin, tc.governance!.admin2, Date.now);
    // Warm the coordinator's commitment cache (the first signature finds it empty: two rounds).
    for (let i = 0; i < 3; i++) {
      const m = enc(`warm ${i}`);
      expect(independentVerify(key, m, (await mine.sign({ key, message: m })).signature)).toBe(true);
    }
    for (let round = 0; round < 3; round++) {
      const ms = Array.from({ length: 12 }, (_, i) => enc(`concurrent ${round}.${i}`));
      const sigs = await Promise.all(ms.map((m) => mine.sign({ key, message: m })));
      for (const [i, s] of sigs.entries()) expect(independentVerify(key, ms[i]!, s.signature)).toBe(true);
    }
    const batches = sent.filter((s) => s.op === 'sign-batch');
    expect(batches.length).toBeGreaterThan(0);
    expect(Math.max(...batches.map((b) => b.items))).toBeGreaterThan(1);
  });

  it('a node that does not know sign-batch gets single sign-one requests, each answered', async () => {
    const sent: Sent[] = [];
    const n = nodeRpc(recording(other, sent, true));
    const signers = ['node-2', 'node-3'];
    const lists = [await precommit(key, signers), await precommit(key, signers)];
    const ms = [enc('old node 0'), enc('old node 1')];
    const shares = await Promise.all(
      ms.map((m, i) => n.rpc('node-2', signOneReq(key, m, lists[i]!, signAuth(key.keyId, m)), 20_000)),
    );
    // The refused frame ran no item: both commitments were still there for the single requests.
    expect(sent.map((s) => s.op)).toEqual(['sign-batch', 'sign-one', 'sign-one']);
    for (const [i, m] of ms.entries()) {
      const o = await rpc('node-3', signOneReq(key, m, lists[i]!, signAuth(key.keyId, m)));
      const signature = await aggregate(key, m, lists[i]!, [shares[i]!.share, o.share]);
      expect(independentVerify(key, m, signature)).toBe(true);
    }
    // Later concurrent requests to that node go singly at once (no batch attempt meanwhile).
    const more = [await precommit(key, signers), await precommit(key, signers)];
    await Promise.all(
      more.map((l, i) =>
        n.rpc('node-2', signOneReq(key, enc(`old ${i}`), l, signAuth(key.keyId, enc(`old ${i}`))), 20_000),
      ),
    );
    expect(sent.slice(3).map((s) => s.op)).toEqual(['sign-one', 'sign-one']);
  });
});
