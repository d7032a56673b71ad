/**
 * Access control: 401 without a valid token, 403 for the wrong role, 404 for a key a limited
 * signer token may not see; tokens stored hashed; revocation; every role against every route.
 * Using or changing a key needs a principal's signed request (issue 12): no bearer token of any
 * role can, each gets 401 naming what is missing (test/signed-api.test.ts covers signed requests).
 * The real coordinator over three real node daemons (libp2p, SoftHSM2 tokens), one for the file.
 */
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { PERMISSIONS, type Permission, ROLES, type Role } from '../coordinator/auth.ts';

/** Permissions whose routes now need a principal's signature: a bearer token never suffices. */
const SIGNED_ONLY: readonly Permission[] = ['keys:create', 'keys:sign', 'keys:events', 'keys:lifecycle'];
import { startTestCoordinator, type TestCoordinator } from './helpers/coordinator.ts';

let c: TestCoordinator;
const tokens: Partial<Record<Role, { token: string; tokenId: string }>> = {};
let keyA: any;
let keyB: any;

beforeAll(async () => {
  c = await startTestCoordinator();
  keyA = (await c.call('POST', '/v1/keys', { keySpec: 'FROST_ED25519', threshold: 2, alias: 'key-a' })).body;
  keyB = (await c.call('POST', '/v1/keys', { keySpec: 'FROST_ED25519', threshold: 2, alias: 'key-b' })).body;
  for (const role of ROLES) {
    const r = await c.call('POST', '/v1/tokens', { role, name: `${role}-token` });
    expect(r.status).toBe(201);
    tokens[role] = r.body;
  }
});
afterAll(async () => {
  await c.stop();
});

function expectProblem(r: { status: number; body: any; headers: Headers }, status: number, code: string) {
  expect(r.status).toBe(status);
  expect(r.headers.get('content-type')).toMatch(/^application\/problem\+json/);
  expect(r.body.code).toBe(code);
}

/** One request per permission, each needing exactly that permission; fresh keys where it mutates. */
async function routeFor(
  p: Permission,
): Promise<{ method: string; path: string; body?: unknown; ok: number }> {
  switch (p) {
    case 'keys:create':
      return { method: 'POST', path: '/v1/keys', body: { keySpec: 'FROST_ED25519', threshold: 2 }, ok: 201 };
    case 'keys:read':
      return { method: 'GET', path: `/v1/keys/${keyA.keyId}`, ok: 200 };
    case 'keys:sign':
      return { method: 'POST', path: `/v1/keys/${keyA.keyId}/sign`, body: { message: '00' }, ok: 200 };
    case 'keys:verify':
      return {
        method: 'POST',
        path: `/v1/keys/${keyA.keyId}/verify`,
        body: { message: '00', signature: '00' },
        ok: 200,
      };
    case 'keys:events':
      return { method: 'POST', path: `/v1/keys/${keyA.keyId}/refresh`, ok: 200 };
    case 'keys:lifecycle':
      return { method: 'POST', path: `/v1/keys/${keyA.keyId}/enable`, ok: 200 };
    case 'nodes:read':
      return { method: 'GET', path: '/v1/nodes', ok: 200 };
    case 'audit:read':
      return { method: 'GET', path: '/v1/audit?limit=1', ok: 200 };
    case 'tokens:manage':
      return { method: 'GET', path: '/v1/tokens', ok: 200 };
  }
}

const ALL_PERMISSIONS: Permission[] = [
  'keys:create',
  'keys:read',
  'keys:sign',
  'keys:verify',
  'keys:events',
  'keys:lifecycle',
  'nodes:read',
  'audit:read',
  'tokens:manage',
];

describe('roles', () => {
  for (const role of ROLES) {
    it(`${role}: allowed exactly its permissions`, async () => {
      for (const p of ALL_PERMISSIONS) {
        const r = await routeFor(p);
        const res = await c.call(r.method, r.path, r.body, { token: tokens[role]!.token });
        if (SIGNED_ONLY.includes(p)) {
          expectProblem(res, 401, 'Unauthorized');
          expect(res.body.detail).toMatch(
            /principal's signed request: signature-input, signature, content-digest missing/,
          );
        } else if (PERMISSIONS[role].includes(p)) expect(res.status, `${role} ${p}: ${res.text}`).toBe(r.ok);
        else expectProblem(res, 403, 'Forbidden');
      }
    });
  }

  it('the role table matches issue 5', () => {
    expect(PERMISSIONS.admin).toEqual(ALL_PERMISSIONS);
    expect([...PERMISSIONS.operator].sort()).toEqual([
      'keys:create',
      'keys:events',
      'keys:lifecycle',
      'keys:read',
      'keys:verify',
      'nodes:read',
    ]);
    expect([...PERMISSIONS.signer].sort()).toEqual(['keys:read', 'keys:sign', 'keys:verify']);
    expect([...PERMISSIONS.auditor].sort()).toEqual(['audit:read', 'keys:read', 'keys:verify', 'nodes:read']);
  });

  it('a bearer token, even the admin token, cannot use or change a key; nothing changes', async () => {
    const before = { ...c.observed.calls };
    for (const token of [tokens.signer!.token, tokens.admin!.token]) {
      expectProblem(
        await c.call('POST', '/v1/keys', { keySpec: 'FROST_ED25519', threshold: 2 }, { token }),
        401,
        'Unauthorized',
      );
      expectProblem(
        await c.call('POST', `/v1/keys/${keyB.keyId}/disable`, undefined, { token }),
        401,
        'Unauthorized',
      );
      expectProblem(
        await c.call('POST', `/v1/keys/${keyB.keyId}/sign`, { message: '00' }, { token }),
        401,
        'Unauthorized',
      );
    }
    expect(c.observed.calls).toEqual(before);
    expect((await c.call('GET', `/v1/keys/${keyB.keyId}`)).body.state).toBe('Enabled');
  });
});

describe('authentication', () => {
  it('401 without a token, with a malformed header, with an unknown or forged token', async () => {
    const tid = tokens.admin!.tokenId;
    for (const headers of [
      {},
      { authorization: 'Basic Zm9vOmJhcg==' },
      { authorization: 'Bearer' },
      { authorization: 'Bearer nope' },
      { authorization: `Bearer kms_${tid}_${'A'.repeat(43)}` },
      { authorization: `Bearer ${tokens.admin!.token}x` },
    ]) {
      const r = await c.call('GET', '/v1/keys', undefined, { token: null, headers });
      expectProblem(r, 401, 'Unauthorized');
      expect(r.headers.get('www-authenticate')).toBe('Bearer');
    }
  });

  it('tokens are listed without secrets and stored only hashed', async () => {
    const r = await c.call('GET', '/v1/tokens');
    expect(r.status).toBe(200);
    for (const t of r.body.tokens)
      expect(Object.keys(t).sort()).toEqual(expect.arrayContaining(['createdAt', 'name', 'role', 'tokenId']));
    expect(r.text).not.toMatch(/"(token|hash)"/);
    // scan every file of the store for the token text
    const files: string[] = [];
    const walk = (d: string) => {
      for (const f of readdirSync(d)) {
        const p = join(d, f);
        if (statSync(p).isDirectory()) walk(p);
        else files.push(p);
      }
    };
    walk(c.dir);
    const secretPart = tokens.operator!.token.split('_')[2]!;
    for (const f of files) expect(readFileSync(f).includes(secretPart), f).toBe(false);
  });

  it('revoked tokens stop working; revoking an unknown token is 404', async () => {
    const t = (await c.call('POST', '/v1/tokens', { role: 'auditor', name: 'short-lived' })).body;
    expect((await c.call('GET', '/v1/nodes', undefined, { token: t.token })).status).toBe(200);
    const del = await c.call('DELETE', `/v1/tokens/${t.tokenId}`);
    expect(del.status).toBe(200);
    expect(del.body.tokenId).toBe(t.tokenId);
    expectProblem(await c.call('GET', '/v1/nodes', undefined, { token: t.token }), 401, 'Unauthorized');
    expectProblem(await c.call('DELETE', `/v1/tokens/${t.tokenId}`), 404, 'NotFound');
    expectProblem(
      await c.call('DELETE', `/v1/tokens/${t.tokenId}`, undefined, { token: tokens.operator!.token }),
      403,
      'Forbidden',
    );
  });

  it('token creation input is validated', async () => {
    expectProblem(await c.call('POST', '/v1/tokens', { role: 'root', name: 'x' }), 400, 'ValidationError');
    expectProblem(await c.call('POST', '/v1/tokens', { role: 'admin' }), 400, 'ValidationError');
    expectProblem(
      await c.call('POST', '/v1/tokens', { role: 'operator', name: 'x', keyIds: [keyA.keyId] }),
      400,
      'ValidationError',
    );
    expectProblem(
      await c.call('POST', '/v1/tokens', { role: 'signer', name: 'x', keyIds: ['not-a-key-id'] }),
      400,
      'ValidationError',
    );
    expectProblem(
      await c.call('POST', '/v1/tokens', { role: 'signer', name: 'x', admin: true }),
      400,
      'ValidationError',
    );
  });
});

describe('signer tokens limited to keys', () => {
  it('see and use only their keys; others are 404 as if absent', async () => {
    const t = (await c.call('POST', '/v1/tokens', { role: 'signer', name: 'limited', keyIds: [keyA.keyId] }))
      .body;
    expect(t.keyIds).toEqual([keyA.keyId]);
    const opt = { token: t.token };
    const list = await c.call('GET', '/v1/keys', undefined, opt);
    expect(list.body.keys.map((k: any) => k.keyId)).toEqual([keyA.keyId]);
    expect((await c.call('GET', '/v1/keys/key-a', undefined, opt)).status).toBe(200);
    // Signing is a principal's signed request: not even its own key's signer token can.
    expectProblem(
      await c.call('POST', `/v1/keys/${keyA.keyId}/sign`, { message: '01' }, opt),
      401,
      'Unauthorized',
    );
    const signs = c.observed.calls.sign;
    for (const path of [`/v1/keys/${keyB.keyId}`, '/v1/keys/key-b', `/v1/keys/${keyB.keyId}/public-key`]) {
      const r = await c.call('GET', path, undefined, opt);
      expectProblem(r, 404, 'KeyNotFound');
      // indistinguishable from a key that does not exist
      const absent = await c.call('GET', '/v1/keys/00000000-0000-4000-8000-000000000000', undefined, opt);
      expect(r.body.title).toBe(absent.body.title);
    }
    expectProblem(
      await c.call('POST', `/v1/keys/${keyB.keyId}/sign`, { message: '01' }, opt),
      401,
      'Unauthorized',
    );
    expectProblem(
      await c.call('POST', '/v1/keys/key-b/verify', { message: '01', signature: '00' }, opt),
      404,
      'KeyNotFound',
    );
    expect(c.observed.calls.sign).toBe(signs);
    // an unlimited signer sees both
    const all = await c.call('GET', '/v1/keys', undefined, { token: tokens.signer!.token });
    expect(all.body.keys.map((k: any) => k.keyId)).toEqual(expect.arrayContaining([keyA.keyId, keyB.keyId]));
  });

  it('denied calls are audited with the caller, the code and the key', async () => {
    await c.call('GET', '/v1/tokens', undefined, { token: tokens.auditor!.token });
    await c.call('POST', `/v1/keys/${keyB.keyId}/disable`, undefined, { token: tokens.auditor!.token });
    const records = (await c.call('GET', '/v1/audit?limit=1000')).body.records;
    const mine = records.filter((r: any) => r.entry.caller?.tokenId === tokens.auditor!.tokenId);
    expect(mine.filter((r: any) => r.entry.status === 403).at(-1).entry).toMatchObject({
      code: 'Forbidden',
      action: 'ListTokens',
      method: 'GET',
    });
    // A token that tried to change a key is named, with the key: GET /v1/audit?keyId= shows it.
    expect(mine.filter((r: any) => r.entry.status === 401).at(-1).entry).toMatchObject({
      code: 'Unauthorized',
      action: 'DisableKey',
      keyId: keyB.keyId,
    });
    const byKey = (await c.call('GET', `/v1/audit?keyId=${keyB.keyId}&limit=1000`)).body.records;
    expect(
      byKey.some((r: any) => r.entry.status === 401 && r.entry.caller?.tokenId === tokens.auditor!.tokenId),
    ).toBe(true);
  });
});
