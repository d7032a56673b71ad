/**
 * Signed requests through the API (issue 12, "the coordinator is a courier"): the real coordinator
 * over three real node daemons. No bearer token uses or changes a key; a principal's RFC 9421
 * signature does, forwarded to every node exactly as signed. A request tampered with after signing
 * is refused by the coordinator's own check and, sent on by a coordinator that skips it (the
 * coordinator identity speaking the real RPC), by every node. An approval flow with three
 * principals; an expired request; denied requests on a key in GET /v1/audit?keyId=; governance
 * changes with and without the admin quorum; each node's own audit chain relayed and verified.
 */
import { ed25519 } from '@noble/curves/ed25519.js';
import { sha256 } from '@noble/hashes/sha2.js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { generatePrincipal, principalEntry, signGovernance } from '../client/sign-request.ts';
import { type Governance, governanceHash } from '../policy/governance.ts';
import { type AuthorizationWire, requestDigest } from '../net/signed-request.ts';
import { verifyNodeAuditPage } from '../net/node-audit-head.ts';
import { isKmsError } from '../protocol/errors.ts';
import {
  ADMIN_TOKEN,
  adminGenesis,
  startTestCoordinator,
  type TestCoordinator,
} from './helpers/coordinator.ts';

const alice = generatePrincipal('alice').signer;
const bob = generatePrincipal('bob').signer;
const carol = generatePrincipal('carol', 'ecdsa-p256-sha256').signer;
const dave = generatePrincipal('dave').signer;
const MEMBERS = ['node-1', 'node-2', 'node-3'];

let c: TestCoordinator;
let keyId: string;
let publicKey: string;

beforeAll(async () => {
  c = await startTestCoordinator({
    sealer: 'software',
    // Two admins, both needed for a governance change; alice signs only with 2 approvals of
    // {bob, carol, alice} (never herself); dave may do nothing.
    genesis: (admin, admin2) => ({
      ...adminGenesis([admin, admin2], {
        principals: [alice, bob, carol, dave],
        groups: { approvers: ['bob', 'carol', 'alice'] },
        policies: [
          {
            id: 'alice-signs-with-two-approvals',
            effect: 'allow',
            operations: ['Sign'],
            keys: ['*'],
            principals: ['alice'],
            approvals: { group: 'approvers', count: 2 },
          },
        ],
      }),
      admins: { group: 'admins', quorum: 2 },
    }),
  });
  const k = await c.call('POST', '/v1/keys', {
    keySpec: 'FROST_ED25519',
    threshold: 2,
    participants: MEMBERS,
    alias: 'signed-api',
  });
  expect(k.status, k.text).toBe(201);
  keyId = k.body.keyId;
  publicKey = k.body.publicKey;
}, 60_000);
afterAll(async () => {
  await c?.stop();
});

const verifies = (signature: string, message: string) =>
  ed25519.verify(Buffer.from(signature, 'hex'), Buffer.from(message, 'hex'), Buffer.from(publicKey, 'hex'));

/** The code each member answers to a raw RPC from the coordinator identity. */
async function nodeAnswers(req: Parameters<TestCoordinator['rpc']>[1]): Promise<Record<string, string>> {
  const out: Record<string, string> = {};
  for (const n of MEMBERS) {
    out[n] = await c.rpc(n, req).then(
      () => 'ok',
      (e: unknown) => (isKmsError(e) ? e.code : String(e)),
    );
  }
  return out;
}

describe('signed requests', () => {
  it('no bearer token uses or changes a key: 401 naming what is missing, and nothing runs', async () => {
    const before = { ...c.observed.calls };
    for (const [path, body] of [
      [`/v1/keys/${keyId}/sign`, { message: '00' }],
      ['/v1/keys', { keySpec: 'FROST_ED25519', threshold: 2 }],
      [`/v1/keys/${keyId}/refresh`, undefined],
      [`/v1/keys/${keyId}/disable`, undefined],
      [`/v1/keys/${keyId}/schedule-deletion`, { pendingWindowDays: 7 }],
    ] as const) {
      // None, and the bootstrap admin token itself.
      for (const token of [null, ADMIN_TOKEN]) {
        const r = await c.call('POST', path, body, { token, principal: null });
        expect(r.status, path).toBe(401);
        expect(r.body.code).toBe('Unauthorized');
        expect(r.body.detail).toContain('signature-input, signature, content-digest missing');
      }
    }
    expect(c.observed.calls).toEqual(before);
    // Reads keep bearer tokens.
    expect((await c.call('GET', `/v1/keys/${keyId}`)).status).toBe(200);
  });

  it('a signed request signs; the signature verifies under the key', async () => {
    const r = await c.call('POST', `/v1/keys/${keyId}/sign`, { message: '68656c6c6f' });
    expect(r.status, r.text).toBe(200);
    expect(verifies(r.body.signature, '68656c6c6f')).toBe(true);
  });

  it('an alias in a signed path is refused with the way to the key id', async () => {
    const r = await c.call('POST', '/v1/keys/signed-api/sign', { message: '00' }, { keepAlias: true });
    expect(r.status).toBe(400);
    expect(r.body.detail).toContain('signed requests name keys by key id');
  });

  it('tampered after signing: the coordinator refuses it, and so does every node it would reach', async () => {
    const signs = c.observed.calls.sign;
    const auth = c.authFor('POST', `/v1/keys/${keyId}/sign`, { message: '01' });
    const swapped = Buffer.from('{"message":"02"}').toString('base64');
    const forged: AuthorizationWire = { request: { ...auth.request, body: swapped } };
    const otherKey: AuthorizationWire = { request: { ...auth.request, path: `/v1/keys/${keyId}x/sign` } };
    // Sent through the HTTP API with the tampered parts: the coordinator's own check refuses.
    const viaApi = await fetch(`${c.url}/v1/keys/${keyId}/sign`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', ...auth.request.headers },
      body: '{"message":"02"}',
    });
    expect(viaApi.status).toBe(401);
    expect(((await viaApi.json()) as { detail: string }).detail).toContain('Content-Digest does not match');
    const withQuery = await fetch(`${c.url}/v1/keys/${keyId}/sign?fast=1`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', ...auth.request.headers },
      body: '{"message":"01"}',
    });
    expect(withQuery.status).toBe(401);
    expect(c.observed.calls.sign).toBe(signs);
    // A coordinator that skips its check and forwards them anyway: every node refuses round one.
    const commit = (a: AuthorizationWire, n: number) =>
      ({ op: 'sign-commit', sessionId: `tampered-${n}`, keyId, epoch: 0, auth: a }) as const;
    expect(await nodeAnswers(commit(forged, 1))).toEqual({
      'node-1': 'Unauthorized',
      'node-2': 'Unauthorized',
      'node-3': 'Unauthorized',
    });
    expect(await nodeAnswers(commit(otherKey, 2))).toEqual({
      'node-1': 'Unauthorized',
      'node-2': 'Unauthorized',
      'node-3': 'Unauthorized',
    });
    // No signature at all: refused too.
    const { auth: _none, ...bare } = commit(auth, 3);
    expect(await nodeAnswers(bare)).toEqual({
      'node-1': 'Unauthorized',
      'node-2': 'Unauthorized',
      'node-3': 'Unauthorized',
    });
  });
});

describe('approvals', () => {
  it('alice needs two approvers: bob, then alice herself (does not count), then carol: executed', async () => {
    const message = '616c696365';
    const r = await c.call('POST', `/v1/keys/${keyId}/sign`, { message }, { principal: alice });
    expect(r.status, r.text).toBe(202);
    const req = r.body;
    expect(r.headers.get('location')).toBe(`/v1/requests/${req.requestId}`);
    expect(req).toMatchObject({
      operation: 'Sign',
      keyId,
      state: 'Pending',
      initiator: 'alice',
      approvals: [],
      needed: [{ group: 'approvers', needed: 2, have: [] }],
    });
    expect(req.digest).toBe(requestDigest(req.signedRequest));
    const listed = await c.call('GET', '/v1/requests?state=Pending');
    expect(listed.body.requests.map((x: { requestId: string }) => x.requestId)).toContain(req.requestId);

    const approve = (who: typeof bob, digest = req.digest) =>
      c.call(
        'POST',
        `/v1/requests/${req.requestId}/approvals`,
        { requestDigest: digest },
        { principal: who },
      );
    const wrong = await approve(bob, '0'.repeat(64));
    expect(wrong.status).toBe(400);
    const b = await approve(bob);
    expect(b.status, b.text).toBe(200);
    expect(b.body).toMatchObject({
      state: 'Pending',
      needed: [{ group: 'approvers', needed: 2, have: ['bob'] }],
    });
    const a = await approve(alice);
    expect(a.body.state).toBe('Pending');
    expect(a.body.approvals.find((x: { principal: string }) => x.principal === 'alice').counts).toBe(false);
    const signs = c.observed.calls.sign;
    const done = await approve(carol);
    expect(done.status, done.text).toBe(200);
    expect(done.body.state, done.text).toBe('Executed');
    expect(done.body.result.status).toBe(200);
    expect(verifies(done.body.result.body.signature, message)).toBe(true);
    expect(c.observed.calls.sign).toBe(signs + 1);
    expect((await c.call('GET', `/v1/requests/${req.requestId}`)).body.state).toBe('Executed');
    // Done: a further approval changes nothing.
    expect((await approve(bob)).status).toBe(409);

    // Every member verified the initiator and both approvers itself and wrote it in its own chain.
    const page = await c.call('GET', '/v1/nodes/node-1/audit?limit=500');
    expect(page.status, page.text).toBe(200);
    const peer = c.peers.find((p) => p.id === 'node-1')!;
    expect(verifyNodeAuditPage({ nodeId: 'node-1', peerId: peer.peerId, ...page.body })).toMatchObject({
      ok: true,
    });
    const allowed = page.body.records.find(
      (x: any) =>
        x.entry.initiator === 'alice' && x.entry.decision === 'allow' && x.entry.rpc === 'sign-commit',
    );
    expect(allowed.entry).toMatchObject({
      operation: 'Sign',
      keyId,
      // Each verified approval is recorded; the policy never counted alice's own.
      approvers: ['alice', 'bob', 'carol'],
      requestDigest: req.digest,
      messageSha256: Buffer.from(sha256(Buffer.from(message, 'hex'))).toString('hex'),
    });
  });

  it('approvals may come long after the initiator signed (hours, within 24 h): the nodes verify its signature at the time they first saw it pending', async () => {
    const message = '0d';
    const r = await c.call('POST', `/v1/keys/${keyId}/sign`, { message }, { principal: alice });
    expect(r.status, r.text).toBe(202);
    // Approvable for 24 h from the initiator's signature, not the 120 s the signature itself lives.
    expect(Date.parse(r.body.expiresAt)).toBeGreaterThan(c.clock.now() + 23 * 3600_000);
    c.clock.t += 3 * 3600_000; // three hours later: the initiator's signature has long expired
    for (const who of [bob, carol]) {
      const a = await c.call(
        'POST',
        `/v1/requests/${r.body.requestId}/approvals`,
        { requestDigest: r.body.digest },
        { principal: who },
      );
      expect(a.status, a.text).toBe(200);
    }
    const done = (await c.call('GET', `/v1/requests/${r.body.requestId}`)).body;
    expect(done.state, JSON.stringify(done)).toBe('Executed');
    expect(verifies(done.result.body.signature, message)).toBe(true);
  });

  it('a request not approved in time expires: ApprovalExpired, state Expired', async () => {
    const r = await c.call('POST', `/v1/keys/${keyId}/sign`, { message: '0e' }, { principal: alice });
    expect(r.status).toBe(202);
    c.clock.t += 24 * 3600_000 + 1_000;
    const late = await c.call(
      'POST',
      `/v1/requests/${r.body.requestId}/approvals`,
      { requestDigest: r.body.digest },
      { principal: bob },
    );
    expect(late.status).toBe(410);
    expect(late.body.code).toBe('ApprovalExpired');
    expect((await c.call('GET', `/v1/requests/${r.body.requestId}`)).body.state).toBe('Expired');
    expect(
      (await c.call('GET', '/v1/requests?state=Expired')).body.requests.some(
        (x: { requestId: string }) => x.requestId === r.body.requestId,
      ),
    ).toBe(true);
  });

  it('a request the nodes deny is 403, and GET /v1/audit?keyId= shows it with who asked', async () => {
    const r = await c.call('POST', `/v1/keys/${keyId}/disable`, undefined, { principal: dave });
    expect(r.status, r.text).toBe(403);
    expect(r.body.code).toBe('PolicyDenied');
    expect(r.body.detail).toContain('no policy allows dave');
    expect((await c.call('GET', `/v1/keys/${keyId}`)).body.state).toBe('Enabled');
    const records = (await c.call('GET', `/v1/audit?keyId=${keyId}&limit=1000`)).body.records;
    const denied = records.find((x: any) => x.entry.type === 'request' && x.entry.status === 403);
    expect(denied.entry).toMatchObject({
      action: 'DisableKey',
      keyId,
      code: 'PolicyDenied',
      caller: { principal: 'dave' },
      refusedBy: MEMBERS,
    });
  });
});

describe('governance through the coordinator', () => {
  it('a change with the admin quorum reaches every node; without it, refused by the coordinator and every node', async () => {
    const g = await c.call('GET', '/v1/governance');
    expect(g.status, g.text).toBe(200);
    expect(g.body).toMatchObject({ version: 1, hash: governanceHash(c.genesis), disagreeing: [] });
    const erin = generatePrincipal('erin').signer;
    const next: Governance = {
      ...c.genesis,
      version: 2,
      previous: g.body.hash,
      principals: [...c.genesis.principals, principalEntry(erin)],
    };
    // One admin of a quorum of two: refused here, and by each node asked directly.
    const one = [signGovernance(next, c.admin)];
    const short = await c.call('POST', '/v1/governance', { document: next, signatures: one });
    expect(short.status).toBe(403);
    expect(short.body.detail).toContain('the admin quorum is 2');
    expect(await nodeAnswers({ op: 'governance-update', document: next, signatures: one })).toEqual({
      'node-1': 'PolicyDenied',
      'node-2': 'PolicyDenied',
      'node-3': 'PolicyDenied',
    });
    // Bob is no admin: his signature does not count either.
    const notAdmin = [signGovernance(next, c.admin), signGovernance(next, bob)];
    expect((await c.call('POST', '/v1/governance', { document: next, signatures: notAdmin })).status).toBe(
      403,
    );
    // Both admins: every node takes version 2.
    const both = [signGovernance(next, c.admin), signGovernance(next, c.admin2)];
    const ok = await c.call('POST', '/v1/governance', { document: next, signatures: both });
    expect(ok.status, ok.text).toBe(200);
    expect(ok.body).toMatchObject({ version: 2, hash: governanceHash(next) });
    expect(ok.body.nodes.map((n: { ok: boolean }) => n.ok)).toEqual([true, true, true]);
    const after = await c.call('GET', '/v1/governance');
    expect(after.body.version).toBe(2);
    expect(after.body.nodes.map((n: { version: number }) => n.version)).toEqual([2, 2, 2]);
    // The new principal signs requests now (and the policy decides: erin may not disable).
    const byErin = await c.call('POST', `/v1/keys/${keyId}/disable`, undefined, { principal: erin });
    expect(byErin.status).toBe(403);
    expect(byErin.body.code).toBe('PolicyDenied');
  });
});
