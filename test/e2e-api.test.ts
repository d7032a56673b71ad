/**
 * The HTTP API against real processes: the coordinator and 3 node processes of a devnet, each node
 * on its own SoftHSM2 token. Every route, every role, and the lifecycle transitions, with the
 * nodes doing the work (test/coordinator-api.test.ts covers the same routes in depth on real node
 * daemons in one process; here the point is that separate processes, as deployed, behave the same).
 */
import { createPublicKey, verify as cryptoVerify } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type Devnet, createDevnet } from './helpers/devnet-process.ts';

const hex = (s: string) => Buffer.from(s, 'utf8').toString('hex');

/** Routes that use or change a key: signed by a principal (issue 12), never a bearer token's. */
const SIGNED_KEY_ROUTE = /^\/v1\/keys(?:\/[^/]+\/(?!verify$)[a-z-]+)?$/;

/**
 * A call with `token`; with the devnet's admin token, a request that uses or changes a key is
 * signed by the devnet's `admin` principal instead (as the CLI does). Other tokens send it as a
 * bearer request, which no route that uses a key accepts.
 */
async function as(d: Devnet, token: string, method: string, path: string, body?: unknown) {
  if (token === d.token && method === 'POST' && SIGNED_KEY_ROUTE.test(path)) {
    const r = await d.api(method, path, body);
    return { ...r, type: '' };
  }
  const r = await fetch(`${d.url}${path}`, {
    method,
    headers: {
      authorization: `Bearer ${token}`,
      ...(body === undefined ? {} : { 'content-type': 'application/json' }),
    },
    ...(body === undefined ? {} : { body: JSON.stringify(body) }),
  });
  const text = await r.text();
  let parsed: any = text;
  try {
    parsed = JSON.parse(text);
  } catch {
    /* PEM or metrics */
  }
  return { status: r.status, body: parsed, type: r.headers.get('content-type') ?? '' };
}

describe('HTTP API on real node processes', () => {
  let d: Devnet;
  beforeAll(async () => {
    d = await createDevnet(3);
    await d.start();
  }, 180_000);
  afterAll(async () => {
    await d?.cleanup();
  });

  it('serves the unauthenticated routes', async () => {
    expect((await fetch(`${d.url}/healthz`)).status).toBe(200);
    const ready = await fetch(`${d.url}/readyz`).then(async (r) => ({
      status: r.status,
      body: (await r.json()) as any,
    }));
    expect(ready.status).toBe(200);
    expect(ready.body.checks.nodes.reachable).toBe(3);
    const metrics = await fetch(`${d.url}/metrics`).then((r) => r.text());
    expect(metrics).toContain('# TYPE');
    const openapi = (await fetch(`${d.url}/openapi.json`).then((r) => r.json())) as {
      paths: Record<string, unknown>;
    };
    expect(Object.keys(openapi.paths)).toContain('/v1/keys/{keyId}/sign');
  });

  it('keys: create, list, get, public key, sign, verify, refresh, reshare, repair', async () => {
    const admin = d.token;
    const created = await as(d, admin, 'POST', '/v1/keys', {
      keySpec: 'FROST_ED25519',
      threshold: 2,
      participants: 2,
      alias: 'api-e2e',
    });
    expect(created.status).toBe(201);
    expect(created.body.participants).toHaveLength(2);
    const k = created.body;
    const byList = await as(d, admin, 'POST', '/v1/keys', {
      keySpec: 'FROST_SECP256K1_TR',
      threshold: 2,
      participants: ['node-1', 'node-3'],
    });
    expect(byList.status).toBe(201);
    expect(byList.body.participants).toEqual(['node-1', 'node-3']);

    const page1 = await as(d, admin, 'GET', '/v1/keys?limit=1');
    expect(page1.body.keys).toHaveLength(1);
    expect(page1.body.nextToken).toBeDefined();
    const page2 = await as(d, admin, 'GET', `/v1/keys?limit=1&nextToken=${page1.body.nextToken}`);
    expect(page2.body.keys).toHaveLength(1);
    expect(page2.body.keys[0].keyId).not.toBe(page1.body.keys[0].keyId);

    expect((await as(d, admin, 'GET', '/v1/keys/api-e2e')).body.keyId).toBe(k.keyId);
    const pk = await as(d, admin, 'GET', `/v1/keys/${k.keyId}/public-key`);
    expect(pk.body.publicKey).toBe(k.publicKey);

    const msg = hex('api on real nodes');
    const s = await as(d, admin, 'POST', `/v1/keys/${k.keyId}/sign`, { message: msg });
    expect(s.status).toBe(200);
    const spki = createPublicKey({
      key: { kty: 'OKP', crv: 'Ed25519', x: Buffer.from(k.publicKey, 'hex').toString('base64url') },
      format: 'jwk',
    });
    expect(cryptoVerify(null, Buffer.from(msg, 'hex'), spki, Buffer.from(s.body.signature, 'hex'))).toBe(
      true,
    );
    expect(
      (
        await as(d, admin, 'POST', `/v1/keys/${k.keyId}/verify`, {
          message: msg,
          signature: s.body.signature,
        })
      ).body,
    ).toEqual({
      valid: true,
    });
    const bad = `${s.body.signature.slice(0, -2)}00`;
    expect(
      (await as(d, admin, 'POST', `/v1/keys/${k.keyId}/verify`, { message: msg, signature: bad })).body.valid,
    ).toBe(false);

    const r1 = await as(d, admin, 'POST', `/v1/keys/${k.keyId}/refresh`, {});
    expect(r1.body).toMatchObject({ epoch: 1, publicKey: k.publicKey });
    // A committee change needs the admin quorum: the devnet's single admin is it.
    const r2 = await as(d, admin, 'POST', `/v1/keys/${k.keyId}/reshare`, { threshold: 2, participants: 3 });
    expect(r2.body).toMatchObject({ epoch: 2, threshold: 2, publicKey: k.publicKey });
    expect(r2.body.participants).toHaveLength(3);
    const rp = await as(d, admin, 'POST', `/v1/keys/${k.keyId}/repair`, { participant: 'node-2' });
    expect(rp.status, JSON.stringify(rp.body)).toBe(200);
    const after = await as(d, admin, 'POST', `/v1/keys/${k.keyId}/sign`, { message: msg });
    expect(after.body).toMatchObject({ epoch: 2 });
    expect(after.body.signers).toHaveLength(2);

    const nodes = await as(d, admin, 'GET', '/v1/nodes');
    expect(nodes.body.nodes.map((n: { reachable: boolean }) => n.reachable)).toEqual([true, true, true]);
    expect(nodes.body.nodes.find((n: { id: string }) => n.id === 'node-2').keys).toContain(k.keyId);
  });

  it('lifecycle: disable, enable, schedule and cancel deletion, enforced on signing', async () => {
    const admin = d.token;
    const k = (await as(d, admin, 'POST', '/v1/keys', { keySpec: 'FROST_ED25519', threshold: 2 })).body;
    const sign = () => as(d, admin, 'POST', `/v1/keys/${k.keyId}/sign`, { message: '00' });
    expect((await as(d, admin, 'POST', `/v1/keys/${k.keyId}/disable`)).body.state).toBe('Disabled');
    const refused = await sign();
    expect(refused.status).toBe(409);
    expect(refused.body.code).toBe('InvalidKeyState');
    expect((await as(d, admin, 'POST', `/v1/keys/${k.keyId}/enable`)).body.state).toBe('Enabled');
    expect((await sign()).status).toBe(200);
    const sched = await as(d, admin, 'POST', `/v1/keys/${k.keyId}/schedule-deletion`, {
      pendingWindowDays: 7,
    });
    expect(sched.body.state).toBe('PendingDeletion');
    expect(sched.body.deletionDate).toBeDefined();
    expect((await sign()).status).toBe(409);
    expect((await as(d, admin, 'POST', `/v1/keys/${k.keyId}/cancel-deletion`)).body.state).toBe('Disabled');
    expect((await as(d, admin, 'POST', `/v1/keys/${k.keyId}/enable`)).body.state).toBe('Enabled');
    expect((await sign()).status).toBe(200);
  });

  it('roles: tokens are shown once, limited by role and key, revocable, and every call is audited', async () => {
    const admin = d.token;
    const k1 = (await as(d, admin, 'POST', '/v1/keys', { keySpec: 'FROST_ED25519', threshold: 2 })).body;
    const k2 = (await as(d, admin, 'POST', '/v1/keys', { keySpec: 'FROST_ED25519', threshold: 2 })).body;
    const mk = async (role: string, keyIds?: string[]) => {
      const r = await as(d, admin, 'POST', '/v1/tokens', {
        role,
        name: `${role}-e2e`,
        ...(keyIds ? { keyIds } : {}),
      });
      expect(r.status).toBe(201);
      return r.body as { tokenId: string; token: string };
    };
    const signer = await mk('signer', [k1.keyId]);
    const operator = await mk('operator');
    const auditor = await mk('auditor');

    // No bearer token uses or changes a key (issue 12): each is 401, whatever its role.
    expect((await as(d, signer.token, 'POST', `/v1/keys/${k1.keyId}/sign`, { message: '01' })).status).toBe(
      401,
    );
    expect(
      (await as(d, signer.token, 'POST', '/v1/keys', { keySpec: 'FROST_ED25519', threshold: 2 })).status,
    ).toBe(401);
    expect((await as(d, operator.token, 'POST', `/v1/keys/${k2.keyId}/refresh`, {})).status).toBe(401);
    expect((await as(d, operator.token, 'GET', '/v1/tokens')).status).toBe(403);
    expect((await as(d, auditor.token, 'GET', '/v1/keys')).status).toBe(200);
    expect((await as(d, auditor.token, 'POST', `/v1/keys/${k1.keyId}/sign`, { message: '01' })).status).toBe(
      401,
    );
    // A signer token limited to k1 reads k1 and not k2.
    expect((await as(d, signer.token, 'GET', `/v1/keys/${k1.keyId}`)).status).toBe(200);
    expect((await as(d, signer.token, 'GET', `/v1/keys/${k2.keyId}`)).status).toBe(404);

    const listed = await as(d, admin, 'GET', '/v1/tokens');
    expect(JSON.stringify(listed.body)).not.toContain(signer.token);
    expect((await as(d, admin, 'DELETE', `/v1/tokens/${signer.tokenId}`)).status).toBe(200);
    expect((await as(d, signer.token, 'GET', `/v1/keys/${k1.keyId}`)).status).toBe(401);
    expect((await as(d, 'not-a-token', 'GET', '/v1/keys')).status).toBe(401);

    const byKey = await as(d, auditor.token, 'GET', `/v1/audit?keyId=${k1.keyId}&limit=1000`);
    expect(byKey.status).toBe(200);
    const k1Entries = byKey.body.records.map((r: { entry: any }) => r.entry);
    expect(k1Entries.every((e: any) => e.keyId === k1.keyId)).toBe(true);
    // The token's refused attempt to sign with k1 is on k1's record, naming the token.
    expect(
      k1Entries.some((e: any) => e.type === 'request' && e.status === 401 && e.caller?.name === 'signer-e2e'),
    ).toBe(true);
    // Denied calls are audited too, with the caller (and never the token itself).
    const all = await as(d, auditor.token, 'GET', '/v1/audit?limit=1000');
    const entries = all.body.records.map((r: { entry: any }) => r.entry);
    for (const [name, status] of [
      ['auditor-e2e', 401],
      ['operator-e2e', 403],
      ['signer-e2e', 404],
    ] as const) {
      expect(
        entries.some((e: any) => e.type === 'request' && e.status === status && e.caller?.name === name),
        `${name} ${status}`,
      ).toBe(true);
    }
    expect(entries.some((e: any) => e.type === 'request' && e.status === 401)).toBe(true);
    for (const t of [signer, operator, auditor]) expect(JSON.stringify(all.body)).not.toContain(t.token);
    const verify = await d.kms(['audit', 'verify']);
    expect(verify.code, verify.stderr).toBe(0);
    expect(verify.stdout).toContain('audit chain ok');
  });
});
