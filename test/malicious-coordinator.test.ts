/**
 * A malicious coordinator (issue 12 "Nodes decide"; review H-3, H-4, M-3). The test double holds the
 * REAL coordinator identity of the fixture (the `coordinator` peer of its cluster.json) and speaks
 * the real RPC (net/rpc.ts over net/transport.ts) to three real node daemons that require
 * client-signed requests (test/helpers/cluster.ts with a genesis hash). Everything it tries without
 * a valid principal signature, a matching operation, the approvals the policy asks for, or the admin
 * quorum, every honest node refuses AND records in its own audit chain, whose pages and signed heads
 * the test verifies against each node's peer id (net/node-audit-head.ts). The legitimate paths
 * (genesis installed by hash, DKG, signing, an approval flow where 2 of 3 approvers approve, a
 * threshold lowered with the admin quorum, a governance change with the quorum, a state change, a
 * destroy after the window) succeed with real signatures.
 */
import { randomUUID } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { ed25519 } from '@noble/curves/ed25519.js';
import pino from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { AuditRecord } from '../common/audit-log.ts';
import { verifyNodeAuditPage } from '../net/node-audit-head.ts';
import {
  type RequestOf,
  type RpcAnswers,
  type RpcOp,
  type SessionAnswer,
  type SessionSpec,
  decodeRpcAnswer,
  encodeRpc,
} from '../net/rpc.ts';
import { type SignedRequestWire, requestDigest, toWire } from '../net/signed-request.ts';
import { RPC_PROTOCOL } from '../net/transport.ts';
import { loadNodeConfig } from '../node/config.ts';
import { startNode } from '../node/daemon.ts';
import { MAX_SHARES_PER_SIGN_REQUEST } from '../node/request-guard.ts';
import {
  type Governance,
  type GovernanceSignature,
  governanceHash,
  governanceSigningBytes,
  parseGovernance,
} from '../policy/governance.ts';
import { signRequest } from '../policy/request-signature.ts';
import { fromHex, toHex } from '../protocol/bytes.ts';
import { KmsError } from '../protocol/errors.ts';
import { publicFromHex } from '../protocol/packages.ts';
import { aggregateSignature } from '../protocol/sign.ts';
import { keySpec, verifySignature } from '../protocol/suites.ts';
import { type TestCluster, startTestCluster } from './helpers/cluster.ts';

type Principal = { id: string; publicKey: string; sign: (b: Uint8Array) => Uint8Array };
function principal(id: string): Principal {
  const sk = ed25519.utils.randomSecretKey();
  return {
    id,
    publicKey: Buffer.from(ed25519.getPublicKey(sk)).toString('base64url'),
    sign: (b) => ed25519.sign(b, sk),
  };
}
const admin1 = principal('admin1');
const admin2 = principal('admin2');
const alice = principal('alice');
const bob = principal('bob');
const ap1 = principal('ap1');
const ap2 = principal('ap2');
const ap3 = principal('ap3');
const mallory = principal('mallory'); // a key nobody listed

const genesis: Governance = parseGovernance({
  version: 1,
  previous: null,
  principals: [admin1, admin2, alice, bob, ap1, ap2, ap3].map((p) => ({
    id: p.id,
    alg: 'ed25519',
    publicKey: p.publicKey,
  })),
  groups: { admins: ['admin1', 'admin2'], approvers: ['ap1', 'ap2', 'ap3', 'bob'] },
  admins: { group: 'admins', quorum: 2 },
  policies: [
    // bob signs only with 2 approvals of the approvers (bob is one of them: never counted for himself).
    {
      id: 'bob-sign',
      effect: 'allow',
      operations: ['Sign'],
      keys: ['*'],
      principals: ['bob'],
      approvals: { group: 'approvers', count: 2 },
    },
    {
      id: 'alice-all',
      effect: 'allow',
      operations: [
        'Sign',
        'CreateKey',
        'RefreshKey',
        'ReshareKey',
        'RepairKey',
        'DisableKey',
        'EnableKey',
        'ScheduleKeyDeletion',
        'CancelKeyDeletion',
      ],
      keys: ['*'],
      principals: ['alice'],
      minThreshold: 2,
    },
  ],
});
const GENESIS = governanceHash(genesis);
const NODES = ['node-1', 'node-2', 'node-3'];
const SPEC = keySpec('FROST_ED25519');
const utf8 = (s: string) => new TextEncoder().encode(s);

/** A request `p` signs as the CLI would (RFC 9421 + RFC 9530), in the wire form the coordinator forwards. */
function signed(
  p: Principal,
  path: string,
  body: unknown,
  o: { created?: number; expires?: number; nonce?: string; keyid?: string } = {},
): SignedRequestWire {
  const now = Math.floor(Date.now() / 1000);
  const req = {
    method: 'POST',
    path,
    query: '',
    body: body === undefined ? new Uint8Array() : utf8(JSON.stringify(body)),
  };
  const headers = signRequest(
    req,
    {
      created: o.created ?? now,
      expires: o.expires ?? now + 120,
      nonce: o.nonce ?? randomUUID(),
      keyid: o.keyid ?? p.id,
      alg: 'ed25519',
    },
    p.sign,
  );
  return toWire({ ...req, headers });
}
const approval = (p: Principal, request: SignedRequestWire) =>
  signed(p, `/v1/requests/${randomUUID()}/approvals`, { requestDigest: requestDigest(request) });
const adminSigs = (doc: Governance, ...by: Principal[]): GovernanceSignature[] =>
  by.map((a) => ({
    principal: a.id,
    signature: Buffer.from(a.sign(governanceSigningBytes(governanceHash(doc)))).toString('base64'),
  }));

let tc: TestCluster;
let peerOf: Map<string, string>;

/** The malicious coordinator: the fixture's own coordinator identity, raw RPCs. */
async function rpc<O extends RpcOp>(
  node: string,
  req: RequestOf<O>,
  timeoutMs = 25_000,
): Promise<RpcAnswers[O]> {
  const out = await tc.coordinatorTransport.request(peerOf.get(node)!, RPC_PROTOCOL, encodeRpc(req), {
    timeoutMs,
  });
  return decodeRpcAnswer(req.op as O, out);
}
async function refusal(node: string, req: RequestOf<RpcOp>): Promise<KmsError> {
  try {
    await rpc(node, req);
  } catch (e) {
    if (e instanceof KmsError) return e;
    throw e;
  }
  throw new Error(`${node} accepted ${req.op}`);
}
/** Every node refuses `req` with `code` and a message matching `why`. */
async function everyNodeRefuses(req: (node: string) => RequestOf<RpcOp>, code: string, why: RegExp) {
  const errs = await Promise.all(NODES.map((n) => refusal(n, req(n))));
  for (const e of errs) {
    expect(e.code).toBe(code);
    expect(e.message).toMatch(why);
  }
  return errs;
}

/** A node's audit chain after `after`, checked against its peer id (chain and signed head). */
async function auditOf(node: string, after = 0): Promise<AuditRecord[]> {
  const out: AuditRecord[] = [];
  let from: { seq: number; hash: string } | undefined;
  let cursor = after;
  for (;;) {
    const page = await rpc(node, { op: 'audit', after: cursor, limit: 500 });
    if (cursor > 0 && !from) {
      // The record before the page anchors its chain: fetched and checked with the page.
      const prev = await rpc(node, { op: 'audit', after: cursor - 1, limit: 1 });
      from = { seq: prev.records[0]!.seq, hash: prev.records[0]!.hash };
    }
    const check = verifyNodeAuditPage({
      nodeId: node,
      peerId: peerOf.get(node)!,
      records: page.records,
      head: page.head,
      ...(from ? { from } : {}),
    });
    expect(check).toMatchObject({ ok: true });
    out.push(...page.records);
    if (page.records.length < 500 || !check.ok) return out;
    from = check.last;
    cursor = check.last.seq;
  }
}
const heads = async () =>
  Object.fromEntries(
    await Promise.all(
      NODES.map(async (n) => [n, (await rpc(n, { op: 'audit', limit: 1 })).head.seq] as const),
    ),
  );

/** Every node logged a refusal of `rpcName` whose reason matches `why` after `since`. */
async function everyNodeLogged(since: Record<string, number>, rpcName: string, why: RegExp, nodes = NODES) {
  for (const n of nodes) {
    const recs = await auditOf(n, since[n]);
    const hit = recs.find(
      (r) =>
        r.entry['rpc'] === rpcName &&
        r.entry['decision'] !== 'allow' &&
        typeof r.entry['reason'] === 'string' &&
        why.test(r.entry['reason'] as string),
    );
    expect(hit, `${n} logged the refused ${rpcName} (${why})`).toBeDefined();
  }
}

type Key = {
  keyId: string;
  threshold: number;
  participants: string[];
  epoch: number;
  public: SessionAnswer & { public: unknown };
};

async function session(
  members: string[],
  s: SessionSpec,
  auth?: { request: SignedRequestWire; approvals?: SignedRequestWire[] },
) {
  await Promise.all(members.map((m) => rpc(m, { op: 'prepare', sessionId: s.sessionId, members })));
  return Promise.all(members.map((m) => rpc(m, { op: 'session', session: s, ...(auth ? { auth } : {}) })));
}

async function createKey(threshold: number): Promise<Key> {
  const request = signed(alice, '/v1/keys', { keySpec: 'FROST_ED25519', threshold, participants: NODES });
  const keyId = randomUUID();
  const out = await session(
    NODES,
    {
      kind: 'dkg',
      sessionId: randomUUID(),
      keyId,
      keySpec: 'FROST_ED25519',
      epoch: 0,
      threshold,
      participants: NODES,
    },
    { request },
  );
  const result = out[0] as Key['public'];
  // Every member agreed (one result): the key is confirmed on each, as the coordinator does (C-1).
  const { groupElement, transcriptHash } = result as { groupElement: string; transcriptHash: string };
  await Promise.all(
    NODES.map((m) => rpc(m, { op: 'confirm-key', keyId, epoch: 0, groupElement, transcriptHash })),
  );
  return { keyId, threshold, participants: NODES, epoch: 0, public: result };
}

/** Round one and two on `signers` with `auth`; the aggregate, verified under the group key. */
async function sign(
  key: Key,
  signers: string[],
  message: Uint8Array,
  auth: { request: SignedRequestWire; approvals?: SignedRequestWire[] },
) {
  const sessionId = randomUUID();
  const commits = await Promise.all(
    signers.map((n) => rpc(n, { op: 'sign-commit', sessionId, keyId: key.keyId, epoch: key.epoch, auth })),
  );
  const shares = await Promise.all(
    signers.map((n) =>
      rpc(n, {
        op: 'sign-share',
        sessionId,
        keyId: key.keyId,
        epoch: key.epoch,
        message: toHex(message),
        commitments: commits,
      }),
    ),
  );
  const pkg = (key.public as { public: Parameters<typeof publicFromHex>[1] }).public;
  const signature = aggregateSignature({
    spec: SPEC,
    public: publicFromHex(SPEC, pkg),
    epoch: key.epoch,
    message,
    commitments: commits.map((c) => ({
      identifier: c.identifier,
      hiding: fromHex(c.hiding),
      binding: fromHex(c.binding),
    })),
    shares: Object.fromEntries(commits.map((c, i) => [c.identifier, fromHex(shares[i]!.share)])),
  });
  const groupKey = fromHex((key.public as { publicKey: string }).publicKey);
  expect(verifySignature(SPEC, message, signature, groupKey)).toBe(true);
  return signature;
}
const signRequestFor = (p: Principal, keyId: string, message: Uint8Array, o = {}) =>
  signed(p, `/v1/keys/${keyId}/sign`, { message: toHex(message) }, o);

beforeAll(async () => {
  tc = await startTestCluster(3, { genesisHash: GENESIS });
  const file = JSON.parse(readFileSync(join(tc.dir, 'cluster.json'), 'utf8')) as {
    nodes: { id: string; peerId: string }[];
    coordinators: { id: string; peerId: string }[];
  };
  peerOf = new Map(file.nodes.map((n) => [n.id, n.peerId]));
  // The double is the coordinator every node allows, not a stranger.
  expect(file.coordinators.find((c) => c.id === 'coordinator')?.peerId).toBe(tc.coordinatorTransport.peerId);
}, 120_000);
afterAll(async () => {
  await tc?.close();
});

describe('a malicious coordinator with the real coordinator identity', () => {
  let key: Key;
  let key3: Key;

  it('nothing runs before a genesis is installed; only the configured genesis is, by hash', async () => {
    const since = await heads();
    await everyNodeRefuses(
      () => ({ op: 'sign-commit', sessionId: randomUUID(), keyId: randomUUID(), epoch: 0 }),
      'Unauthorized',
      /no governance installed/,
    );
    await everyNodeLogged(since, 'sign-commit', /no governance installed/);
    const other = { ...genesis, admins: { group: 'admins', quorum: 1 } };
    await everyNodeRefuses(
      () => ({ op: 'governance-update', document: other, signatures: [] }),
      'PolicyDenied',
      /not the configured genesis/,
    );
    for (const n of NODES)
      expect(await rpc(n, { op: 'governance-update', document: genesis, signatures: [] })).toEqual({
        ok: true,
      });
    // The coordinator installs it at every start: answered `already`.
    expect(await rpc('node-1', { op: 'governance-update', document: genesis, signatures: [] })).toEqual({
      ok: true,
      already: true,
    });
    expect((await rpc('node-2', { op: 'governance' })).hash).toBe(GENESIS);
  });

  it('legitimate: a DKG and a signature with valid principal signatures', async () => {
    key = await createKey(2);
    const message = utf8('pay 1 to carol');
    await sign(key, ['node-1', 'node-2'], message, { request: signRequestFor(alice, key.keyId, message) });
    const recs = await auditOf('node-1');
    const allowed = recs.find((r) => r.entry['operation'] === 'Sign' && r.entry['decision'] === 'allow');
    expect(allowed?.entry).toMatchObject({ initiator: 'alice', keyId: key.keyId, rpc: 'sign-commit' });
    expect(
      recs.some(
        (r) =>
          r.entry['event'] === 'request.share' &&
          r.entry['messageSha256'] === allowed?.entry['messageSha256'],
      ),
    ).toBe(true);
  }, 60_000);

  it('signing with no, a forged, or an expired signature is refused and logged by every node', async () => {
    const since = await heads();
    const m = utf8('drain the wallet');
    const commit = (auth?: { request: SignedRequestWire }) => () => ({
      op: 'sign-commit' as const,
      sessionId: randomUUID(),
      keyId: key.keyId,
      epoch: 0,
      ...(auth ? { auth } : {}),
    });
    await everyNodeRefuses(commit(), 'Unauthorized', /client-signed request is required/);
    // mallory signs claiming to be alice.
    await everyNodeRefuses(
      commit({
        request: signed(mallory, `/v1/keys/${key.keyId}/sign`, { message: toHex(m) }, { keyid: 'alice' }),
      }),
      'Unauthorized',
      /does not verify/,
    );
    // alice's genuine request with one byte of its body changed.
    const genuine = signRequestFor(alice, key.keyId, utf8('pay 1 to carol'));
    const body = Buffer.from(genuine.body, 'base64');
    body[body.length - 3] = body[body.length - 3]! ^ 1;
    await everyNodeRefuses(
      commit({ request: { ...genuine, body: body.toString('base64') } }),
      'Unauthorized',
      /Content-Digest|not JSON|API accepts/,
    );
    const now = Math.floor(Date.now() / 1000);
    await everyNodeRefuses(
      commit({ request: signRequestFor(alice, key.keyId, m, { created: now - 200, expires: now - 10 }) }),
      'Unauthorized',
      /expired/,
    );
    await everyNodeLogged(since, 'sign-commit', /required/);
    await everyNodeLogged(since, 'sign-commit', /does not verify/);
    await everyNodeLogged(since, 'sign-commit', /expired/);
    // Nothing was committed: no node holds a signing nonce.
    for (const n of NODES) expect((await rpc(n, { op: 'status' })).signingSessions).toBe(0);
  });

  it('a replayed signing request is refused once it yielded its bounded number of shares; a message other than the signed one gets no share', async () => {
    const m = utf8('one signature only');
    const request = signRequestFor(alice, key.keyId, m);
    // A coordinator may retry an attempt (a co-signer failed): at most MAX_SHARES_PER_SIGN_REQUEST
    // shares per node for one signed request, each over the same authorized message.
    for (let i = 0; i < MAX_SHARES_PER_SIGN_REQUEST; i++)
      await sign(key, ['node-1', 'node-2'], m, { request });
    const since = await heads();
    for (const n of ['node-1', 'node-2']) {
      const e = await refusal(n, {
        op: 'sign-commit',
        sessionId: randomUUID(),
        keyId: key.keyId,
        epoch: 0,
        auth: { request },
      });
      expect(e.code).toBe('Unauthorized');
      expect(e.message).toMatch(/replayed/);
    }
    await everyNodeLogged(since, 'sign-commit', /replayed/, ['node-1', 'node-2']);

    // A valid request for one message; round two asks for another.
    const asked = utf8('pay 1 to carol');
    const auth = { request: signRequestFor(alice, key.keyId, asked) };
    const sessionId = randomUUID();
    const commits = await Promise.all(
      NODES.map((n) => rpc(n, { op: 'sign-commit', sessionId, keyId: key.keyId, epoch: 0, auth })),
    );
    const since2 = await heads();
    await everyNodeRefuses(
      () => ({
        op: 'sign-share',
        sessionId,
        keyId: key.keyId,
        epoch: 0,
        message: toHex(utf8('pay 1000 to mallory')),
        commitments: commits,
      }),
      'Unauthorized',
      /differs from the signed one/,
    );
    await everyNodeLogged(since2, 'sign-share', /differs from the signed one/);
  }, 60_000);

  it('fewer approvals than the policy asks, or the initiator approving itself, stays pending; 2 of 3 approvers sign', async () => {
    const m = utf8('bob pays');
    const request = signRequestFor(bob, key.keyId, m);
    const since = await heads();
    const one = await everyNodeRefuses(
      () => ({
        op: 'sign-commit',
        sessionId: randomUUID(),
        keyId: key.keyId,
        epoch: 0,
        auth: { request, approvals: [approval(ap1, request)] },
      }),
      'PolicyDenied',
      /approvals missing/,
    );
    // The coordinator learns what is missing (the transport carries `needs` for PolicyDenied).
    expect(one[0]!.details).toMatchObject({
      pending: true,
      needs: [{ group: 'approvers', needed: 2, have: ['ap1'] }],
    });
    const self = await everyNodeRefuses(
      () => ({
        op: 'sign-commit',
        sessionId: randomUUID(),
        keyId: key.keyId,
        epoch: 0,
        auth: { request, approvals: [approval(bob, request), approval(ap1, request)] },
      }),
      'PolicyDenied',
      /approvals missing/,
    );
    expect(self[0]!.details).toMatchObject({ needs: [{ have: ['ap1'] }] });
    // An approval of ANOTHER request does not count either.
    const otherRequest = signRequestFor(bob, key.keyId, utf8('something else'));
    await everyNodeRefuses(
      () => ({
        op: 'sign-commit',
        sessionId: randomUUID(),
        keyId: key.keyId,
        epoch: 0,
        auth: { request, approvals: [approval(ap1, request), approval(ap2, otherRequest)] },
      }),
      'PolicyDenied',
      /approvals missing/,
    );
    for (const n of NODES) {
      const recs = await auditOf(n, since[n]);
      expect(
        recs.filter((r) => r.entry['decision'] === 'pending' && r.entry['initiator'] === 'bob').length,
      ).toBe(3);
    }
    // The approval flow: two of the three approvers approve the request's digest.
    await sign(key, ['node-2', 'node-3'], m, {
      request,
      approvals: [approval(ap1, request), approval(ap3, request)],
    });
    const allowed = (await auditOf('node-3', since['node-3'])).find((r) => r.entry['decision'] === 'allow');
    expect(allowed?.entry).toMatchObject({ initiator: 'bob', approvers: ['ap1', 'ap3'] });
  }, 60_000);

  it('resharing to a lower threshold or another committee needs the admin quorum; with it the threshold is lowered', async () => {
    key3 = await createKey(3);
    const pkg = (key3.public as { public: NonNullable<SessionSpec['oldPublic']> }).public;
    const reshare = (threshold: number, participants: string[]): SessionSpec => ({
      kind: 'reshare',
      sessionId: randomUUID(),
      keyId: key3.keyId,
      keySpec: 'FROST_ED25519',
      epoch: 1,
      threshold,
      participants,
      oldEpoch: 0,
      oldThreshold: 3,
      oldParticipants: NODES,
      dealers: NODES,
      oldPublic: pkg,
    });
    const since = await heads();
    // Lower the threshold, signed by alice (whose rule allows ReshareKey), one admin approving.
    const lower = signed(alice, `/v1/keys/${key3.keyId}/reshare`, { threshold: 2 });
    const s1 = reshare(2, NODES);
    await Promise.all(NODES.map((m) => rpc(m, { op: 'prepare', sessionId: s1.sessionId, members: NODES })));
    await everyNodeRefuses(
      () => ({ op: 'session', session: s1, auth: { request: lower, approvals: [approval(admin1, lower)] } }),
      'PolicyDenied',
      /approvals missing: 1 of admins/,
    );
    // Another committee (two of the nodes, which would then hold a 2-of-2 of this key), no admin.
    const smaller = signed(alice, `/v1/keys/${key3.keyId}/reshare`, {
      threshold: 2,
      participants: ['node-1', 'node-2'],
    });
    const s2 = { ...reshare(2, ['node-1', 'node-2']) };
    await Promise.all(NODES.map((m) => rpc(m, { op: 'prepare', sessionId: s2.sessionId, members: NODES })));
    await everyNodeRefuses(
      () => ({ op: 'session', session: s2, auth: { request: smaller } }),
      'PolicyDenied',
      /approvals missing: 2 of admins/,
    );
    // A coordinator that reuses a signed "refresh-like" reshare (same committee) for a smaller one.
    const same = signed(alice, `/v1/keys/${key3.keyId}/reshare`, {});
    const s3 = reshare(2, ['node-1', 'node-2']);
    await Promise.all(NODES.map((m) => rpc(m, { op: 'prepare', sessionId: s3.sessionId, members: NODES })));
    await everyNodeRefuses(
      () => ({ op: 'session', session: s3, auth: { request: same } }),
      'Unauthorized',
      /does not match/,
    );
    await everyNodeLogged(since, 'session', /approvals missing: 1 of admins/);
    await everyNodeLogged(since, 'session', /approvals missing: 2 of admins/);
    await everyNodeLogged(since, 'session', /does not match/);
    // Nothing was dealt: every node still holds epoch 0 of the 3-of-3 key.
    for (const n of NODES)
      expect(await rpc(n, { op: 'public', keyId: key3.keyId })).toMatchObject({ epoch: 0, threshold: 3 });
    // With the admin quorum (two admins approve the digest), the threshold is lowered.
    const out = await session(NODES, reshare(2, NODES), {
      request: lower,
      approvals: [approval(admin1, lower), approval(admin2, lower)],
    });
    expect(out.every((o) => 'epoch' in o && o.epoch === 1)).toBe(true);
    for (const n of NODES)
      expect(await rpc(n, { op: 'public', keyId: key3.keyId })).toMatchObject({ epoch: 1, threshold: 2 });
  }, 90_000);

  it('a state change needs a signature, a replayed one is refused (also after a restart)', async () => {
    const since = await heads();
    await everyNodeRefuses(
      () => ({ op: 'set-state', keyId: key.keyId, state: 'Disabled' }),
      'Unauthorized',
      /client-signed request is required/,
    );
    // A signed "enable" does not disable.
    const enable = signed(alice, `/v1/keys/${key.keyId}/enable`, undefined);
    await everyNodeRefuses(
      () => ({ op: 'set-state', keyId: key.keyId, state: 'Disabled', auth: { request: enable } }),
      'Unauthorized',
      /does not match/,
    );
    await everyNodeLogged(since, 'set-state', /required/);
    await everyNodeLogged(since, 'set-state', /does not match/);
    const disable = signed(alice, `/v1/keys/${key.keyId}/disable`, undefined);
    for (const n of NODES)
      expect(
        await rpc(n, { op: 'set-state', keyId: key.keyId, state: 'Disabled', auth: { request: disable } }),
      ).toEqual({ ok: true });
    for (const n of NODES)
      expect(
        await rpc(n, {
          op: 'set-state',
          keyId: key.keyId,
          state: 'Enabled',
          auth: { request: signed(alice, `/v1/keys/${key.keyId}/enable`, undefined) },
        }),
      ).toEqual({ ok: true });
    // The same signed "disable" again: refused, and still refused by a node restarted meanwhile.
    await tc.stopNode('node-3');
    await tc.startNode('node-3');
    const since2 = await heads();
    await everyNodeRefuses(
      () => ({ op: 'set-state', keyId: key.keyId, state: 'Disabled', auth: { request: disable } }),
      'Unauthorized',
      /replayed/,
    );
    await everyNodeLogged(since2, 'set-state', /replayed/);
    for (const n of NODES)
      expect((await rpc(n, { op: 'status' })).keys.find((k) => k.keyId === key.keyId)?.state).toBe('Enabled');
  }, 60_000);

  it('destroy is refused before the deletion window on each node, and allowed after it', async () => {
    const schedule = signed(alice, `/v1/keys/${key.keyId}/schedule-deletion`, { pendingWindowDays: 7 });
    for (const n of NODES)
      expect(
        await rpc(n, {
          op: 'set-state',
          keyId: key.keyId,
          state: 'PendingDeletion',
          operation: 'scheduleDeletion',
          auth: { request: schedule },
        }),
      ).toEqual({ ok: true });
    const since = await heads();
    await everyNodeRefuses(
      () => ({ op: 'destroy', keyId: key.keyId }),
      'PolicyDenied',
      /7-day deletion window ends/,
    );
    await everyNodeLogged(since, 'destroy', /deletion window/);
    // node-1 eight days later (its own clock): the window has passed there, and only there.
    await tc.stopNode('node-1');
    tc.nodes.set(
      'node-1',
      await startNode(loadNodeConfig(tc.configPath('node-1')), pino({ level: 'silent' }), {
        clock: () => Date.now() + 8 * 86_400_000,
      }),
    );
    expect(await rpc('node-1', { op: 'destroy', keyId: key.keyId })).toMatchObject({ ok: true, epochs: [0] });
    expect((await refusal('node-2', { op: 'destroy', keyId: key.keyId })).code).toBe('PolicyDenied');
    await tc.stopNode('node-1');
    await tc.startNode('node-1');
  }, 60_000);

  it('a governance change needs the admin quorum of the current version', async () => {
    const v2 = parseGovernance({
      ...genesis,
      version: 2,
      previous: GENESIS,
      policies: [
        { id: 'bob-signs-freely', effect: 'allow', operations: ['Sign'], keys: ['*'], principals: ['bob'] },
        ...genesis.policies,
      ],
    });
    const since = await heads();
    await everyNodeRefuses(
      () => ({ op: 'governance-update', document: v2, signatures: adminSigs(v2, admin1) }),
      'PolicyDenied',
      /1 valid admin signature/,
    );
    // Signatures by non-admins, or over another version, do not count.
    await everyNodeRefuses(
      () => ({
        op: 'governance-update',
        document: v2,
        signatures: [...adminSigs(v2, admin1, alice), ...adminSigs(genesis, admin2)],
      }),
      'PolicyDenied',
      /admin quorum is 2/,
    );
    for (const n of NODES) {
      const recs = await auditOf(n, since[n]);
      expect(
        recs.filter((r) => r.entry['event'] === 'governance' && r.entry['decision'] === 'refused').length,
      ).toBe(2);
      expect((await rpc(n, { op: 'governance' })).document.version).toBe(1);
    }
    for (const n of NODES)
      expect(
        await rpc(n, { op: 'governance-update', document: v2, signatures: adminSigs(v2, admin1, admin2) }),
      ).toEqual({ ok: true });
    for (const n of NODES) expect((await rpc(n, { op: 'governance' })).hash).toBe(governanceHash(v2));
  });
});
