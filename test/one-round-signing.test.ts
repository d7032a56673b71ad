import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { AuditRecord } from '../common/audit-log.ts';
import type { EpochInfo } from '../coordinator/cluster.ts';
import { generateIdentityKey, peerIdOf } from '../net/identity.ts';
import { type RequestOf, type RpcAnswers, type RpcOp, decodeRpcAnswer, encodeRpc } from '../net/rpc.ts';
import type { AuthorizationWire } from '../net/signed-request.ts';
import { RPC_PROTOCOL, type Transport, createTransport } from '../net/transport.ts';
import { MAX_SHARES_PER_SIGN_REQUEST } from '../node/request-guard.ts';
import { fromHex } from '../protocol/bytes.ts';
import { KmsError } from '../protocol/errors.ts';
import { keySpec } from '../protocol/suites.ts';
import { type TestCluster, startTestCluster } from './helpers/cluster.ts';
import { verifyIndependently } from './helpers/independent-verifiers.ts';
import { authorizer } from './helpers/signing-cluster.ts';
import { type Listed, oneRoundKit } from './helpers/one-round-kit.ts';

const SPEC = keySpec('FROST_ED25519');
const NODES = ['node-1', 'node-2', 'node-3'];
const enc = (s: string) => new TextEncoder().encode(s);
/** OpenSSL's Ed25519 verification under the key's API public key (not our code). */
const independentVerify = (k: EpochInfo, m: Uint8Array, sig: Uint8Array) =>
  verifyIndependently(k.keySpec, fromHex(k.publicKey), m, sig);

let tc: TestCluster;
let other: Transport;
let peerOf: Map<string, string>;
let auth: (method: string, path: string, body?: unknown) => AuthorizationWire;

/** A raw RPC from a coordinator identity (`via`: the fixture's own transport or the second one). */
async function rpc<O extends RpcOp>(
  node: string,
  req: RequestOf<O>,
  via?: Transport,
): Promise<RpcAnswers[O]> {
  const t = via ?? tc.coordinatorTransport;
  const out = await t.request(peerOf.get(node)!, RPC_PROTOCOL, encodeRpc(req), { timeoutMs: 20_000 });
  return decodeRpcAnswer(req.op as O, out);
}
async function codeOf(p: Promise<unknown>): Promise<string> {
  try {
    await p;
  } catch (e) {
    if (e instanceof KmsError) return e.code;
    throw e;
  }
  return 'ok';
}

const { signAuth, precommit, signOneReq, aggregate } = oneRoundKit(SPEC, rpc, () => auth);

const signOne = (
  n: string,
  key: EpochInfo,
  message: Uint8Array,
  commitments: Listed[],
  a: AuthorizationWire,
  via?: Transport,
) => rpc(n, signOneReq(key, message, commitments, a), via);

/** The node's audit records after `after`. */
async function auditOf(node: string, after: number): Promise<AuditRecord[]> {
  const page = await rpc(node, { op: 'audit', after, limit: 500 });
  return page.records;
}
const headOf = async (node: string) => (await rpc(node, { op: 'audit', limit: 1 })).head.seq;
/** How many shares `node` gave since `after`, in one round (`share: true`) and in two (`request.share`). */
async function sharesSince(node: string, after: number): Promise<{ one: number; two: number }> {
  const recs = await auditOf(node, after);
  return {
    one: recs.filter((r) => r.entry['share'] === true && r.entry['decision'] === 'allow').length,
    two: recs.filter((r) => r.entry['event'] === 'request.share').length,
  };
}

beforeAll(async () => {
  const keyB = await generateIdentityKey();
  tc = await startTestCluster(3, {
    coordinators: [{ id: 'coordinator-b', peerId: peerIdOf(keyB), addresses: [] }],
  });
  const file = JSON.parse(readFileSync(join(tc.dir, 'cluster.json'), 'utf8')) as {
    nodes: { id: string; peerId: string; addresses: string[] }[];
  };
  peerOf = new Map(file.nodes.map((n) => [n.id, n.peerId]));
  other = await createTransport({
    privateKey: keyB,
    listen: [],
    allow: file.nodes.map((p) => ({ peerId: p.peerId, addresses: p.addresses })),
  });
  auth = authorizer(tc.governance!.admin, tc.governance!.admin2);
}, 120_000);
afterAll(async () => {
  await other?.stop();
  await tc?.close();
});

describe('one-round signing with real nodes', () => {
  let key: EpochInfo;
  beforeAll(async () => {
    key = await tc.cluster.createKey({
      keyId: 'one-round',
      keySpec: 'FROST_ED25519',
      threshold: 2,
      participants: NODES,
    });
  }, 60_000);

  it('one request per signer signs; the same commitment list replayed is refused by every signer', async () => {
    const signers = ['node-1', 'node-3'];
    const list = await precommit(key, signers);
    const m = enc('one round');
    const a = signAuth(key.keyId, m);
    const shares = await Promise.all(signers.map((n) => signOne(n, key, m, list, a)));
    const signature = await aggregate(
      key,
      m,
      list,
      shares.map((s) => s.share),
    );
    expect(independentVerify(key, m, signature)).toBe(true);

    // The same list again, even with a fresh signed request for the same message: no share.
    const again = signAuth(key.keyId, m);
    for (const n of signers) expect(await codeOf(signOne(n, key, m, list, again))).toBe('NonceReused');
    // And with the original request (a pure replay of the whole message).
    for (const n of signers) expect(await codeOf(signOne(n, key, m, list, a))).toBe('NonceReused');
  });

  it('two coordinators racing for the same commitments: exactly one share per node', async () => {
    const signers = ['node-1', 'node-2'];
    const list = await precommit(key, signers);
    const m = enc('raced');
    // Each coordinator carries a valid signed request of its own for the same message.
    const [a1, a2] = [signAuth(key.keyId, m), signAuth(key.keyId, m)];
    for (const n of signers) {
      const results = await Promise.allSettled([
        signOne(n, key, m, list, a1),
        signOne(n, key, m, list, a2, other),
      ]);
      const ok = results.filter((r) => r.status === 'fulfilled');
      expect(ok, `${n} gave exactly one share`).toHaveLength(1);
      const lost = results.find((r) => r.status === 'rejected') as PromiseRejectedResult;
      expect((lost.reason as KmsError).code).toBe('NonceReused');
    }
  });

  it('a node restarted after publishing refuses its old commitments; the real coordinator falls back to two rounds', async () => {
    const signers = ['node-2', 'node-3'];
    const list = await precommit(key, signers);
    await tc.stopNode('node-2');
    await tc.startNode('node-2');
    const m = enc('after restart');
    expect(await codeOf(signOne('node-2', key, m, list, signAuth(key.keyId, m)))).toBe('NonceReused');

    // The real coordinator: whatever its cache holds, every signature verifies.
    const since = Object.fromEntries(
      await Promise.all(NODES.map(async (n) => [n, await headOf(n)] as const)),
    );
    for (let i = 0; i < 6; i++) {
      const msg = enc(`real coordinator ${i}`);
      const s = await tc.cluster.sign({ key, message: msg });
      expect(independentVerify(key, msg, s.signature)).toBe(true);
    }
    const counts = await Promise.all(NODES.map((n) => sharesSince(n, since[n]!)));
    const one = counts.reduce((x, c) => x + c.one, 0);
    const two = counts.reduce((x, c) => x + c.two, 0);
    // The first signature found the cache empty (two rounds) and warmed it; later ones took one round.
    expect(two).toBeGreaterThanOrEqual(2);
    expect(one).toBeGreaterThanOrEqual(2);

    // node-2 restarts again: the coordinator's cached commitments of node-2 are now stale; it
    // still signs (node-2 refuses NonceReused, the request is signed in two rounds or without it).
    await tc.stopNode('node-2');
    await tc.startNode('node-2');
    for (let i = 0; i < 4; i++) {
      const msg = enc(`after the second restart ${i}`);
      const s = await tc.cluster.sign({ key, message: msg });
      expect(independentVerify(key, msg, s.signature)).toBe(true);
    }
  });

  it('a key state change discards the pool: commitments made before disable/enable are refused', async () => {
    const list = await precommit(key, ['node-1', 'node-2']);
    for (const state of ['Disabled', 'Enabled'] as const) {
      const out = await tc.cluster.setKeyState({ keyId: key.keyId, state, members: NODES });
      expect(out.every((o) => o.ok)).toBe(true);
    }
    const m = enc('after a state change');
    expect(await codeOf(signOne('node-1', key, m, list, signAuth(key.keyId, m)))).toBe('NonceReused');
  });

  it('the node-side request check holds on the one-round path: one signed request yields at most 3 shares, across a restart too', async () => {
    const m = enc('budget');
    const a = signAuth(key.keyId, m);
    const codes: string[] = [];
    for (let i = 0; i <= MAX_SHARES_PER_SIGN_REQUEST; i++) {
      const list = await precommit(key, ['node-1', 'node-3']);
      codes.push(await codeOf(signOne('node-1', key, m, list, a)));
    }
    expect(codes.slice(0, MAX_SHARES_PER_SIGN_REQUEST)).toEqual(
      Array(MAX_SHARES_PER_SIGN_REQUEST).fill('ok'),
    );
    expect(codes.at(-1)).toBe('Unauthorized');
    // Still so after a restart: the node rebuilds the count from the shares its allow records carry.
    await tc.stopNode('node-1');
    await tc.startNode('node-1');
    const after = await precommit(key, ['node-1', 'node-3']);
    expect(await codeOf(signOne('node-1', key, m, after, a))).toBe('Unauthorized');
    // A different message than the signed one is refused (and its commitment is gone).
    const list = await precommit(key, ['node-1', 'node-3']);
    expect(await codeOf(signOne('node-1', key, enc('another message'), list, signAuth(key.keyId, m)))).toBe(
      'Unauthorized',
    );
    expect(await codeOf(signOne('node-1', key, m, list, signAuth(key.keyId, m)))).toBe('NonceReused');
  });
});
