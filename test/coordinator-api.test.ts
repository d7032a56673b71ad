/**
 * The coordinator's HTTP API in depth: the real coordinator (fastify, LevelDB) over four real node
 * daemons in this process (libp2p on 127.0.0.1, each node on its own SoftHSM2 token), one cluster
 * for the whole file. A node is made unreachable by stopping its daemon.
 */
import { createHash, createPublicKey, verify as cryptoVerify } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { schnorr } from '@noble/curves/secp256k1.js';
import { p256 } from '@noble/curves/nist.js';
import { Validator } from '@seriousme/openapi-schema-validator';
import { Level } from 'level';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildApp, startCoordinator } from '../coordinator/app.ts';
import { loadConfig, parseConfig } from '../coordinator/config.ts';
import { LIFECYCLE } from '../coordinator/lifecycle.ts';
import { signedInit } from '../client/sign-request.ts';
import type { AuditDb } from '../common/audit-log.ts';
import { KEY_SPEC_REGISTRY, KEY_SPECS, verifySignature } from '../protocol/suites.ts';
import { verifyAuditChain } from '../scripts/kms.ts';
import { ADMIN_TOKEN, httpCall, startTestCoordinator, type TestCoordinator } from './helpers/coordinator.ts';
import { observeCluster } from './helpers/observed-cluster.ts';

let c: TestCoordinator;
beforeAll(async () => {
  c = await startTestCoordinator({ nodes: 4 });
});
afterAll(async () => {
  await c.stop();
});

async function createKey(body: Record<string, unknown> = {}) {
  const r = await c.call('POST', '/v1/keys', { keySpec: 'FROST_ED25519', threshold: 2, ...body });
  expect(r.status, r.text).toBe(201);
  return r.body;
}

function expectProblem(r: { status: number; headers: Headers; body: any }, status: number, code: string) {
  expect(r.status).toBe(status);
  expect(r.headers.get('content-type')).toMatch(/^application\/problem\+json/);
  expect(r.body.code).toBe(code);
  expect(r.body.status).toBe(status);
  expect(r.body.type).toContain(code);
  expect(typeof r.body.title).toBe('string');
  expect(typeof r.body.detail).toBe('string');
  expect(JSON.stringify(r.body)).not.toMatch(/at .*\.ts:\d+|node_modules/);
}

describe('keys', () => {
  it.each(KEY_SPECS)('%s: create, sign, verify with the suite verifier', async (keySpec) => {
    const k = await createKey({ keySpec, threshold: 3, participants: 3 });
    const spec = KEY_SPEC_REGISTRY[keySpec];
    expect(k).toMatchObject({ keySpec, state: 'Enabled', threshold: 3, epoch: 0, alias: null });
    expect(k.participants).toHaveLength(3);
    expect(k.publicKey).toHaveLength(2 * spec.publicKeyLength);
    for (const msg of ['', '68656c6c6f']) {
      const s = await c.call('POST', `/v1/keys/${k.keyId}/sign`, { message: msg });
      expect(s.status, s.text).toBe(200);
      expect(s.body.keyId).toBe(k.keyId);
      expect(s.body.epoch).toBe(0);
      expect(s.body.signers).toHaveLength(3);
      expect(s.body.excluded).toEqual([]);
      expect(s.body.signature).toHaveLength(2 * spec.signatureLength);
      const ok = verifySignature(
        spec,
        Buffer.from(msg, 'hex'),
        Buffer.from(s.body.signature, 'hex'),
        Buffer.from(k.publicKey, 'hex'),
      );
      expect(ok).toBe(true);
      const v = await c.call('POST', `/v1/keys/${k.keyId}/verify`, {
        message: msg,
        signature: s.body.signature,
      });
      expect(v.body).toEqual({ valid: true });
      const bad = await c.call('POST', `/v1/keys/${k.keyId}/verify`, {
        message: `${msg}00`,
        signature: s.body.signature,
      });
      expect(bad.body).toEqual({ valid: false });
    }
  });

  it('independent verifiers: node:crypto Ed25519 via the PEM, noble schnorr for BIP340, SPKI of P-256', async () => {
    const ed = await createKey({ keySpec: 'FROST_ED25519' });
    const pem = await c.call('GET', `/v1/keys/${ed.keyId}/public-key`, undefined, {
      headers: { accept: 'application/x-pem-file' },
    });
    expect(pem.status).toBe(200);
    expect(pem.headers.get('content-type')).toMatch(/application\/x-pem-file/);
    const msg = Buffer.from('independent check');
    const sig = (await c.call('POST', `/v1/keys/${ed.keyId}/sign`, { message: msg.toString('hex') })).body
      .signature;
    expect(cryptoVerify(null, msg, createPublicKey(pem.text), Buffer.from(sig, 'hex'))).toBe(true);

    const tr = await createKey({ keySpec: 'FROST_SECP256K1_TR' });
    const trSig = (await c.call('POST', `/v1/keys/${tr.keyId}/sign`, { message: msg.toString('hex') })).body
      .signature;
    expect(schnorr.verify(Buffer.from(trSig, 'hex'), msg, Buffer.from(tr.publicKey, 'hex'))).toBe(true);
    const trPem = await c.call('GET', `/v1/keys/${tr.keyId}/public-key`, undefined, {
      headers: { accept: 'application/x-pem-file' },
    });
    const jwk = createPublicKey(trPem.text).export({ format: 'jwk' });
    expect(jwk.crv).toBe('secp256k1');
    expect(Buffer.from(jwk.x!, 'base64url').toString('hex')).toBe(tr.publicKey);

    const p = await createKey({ keySpec: 'FROST_P256' });
    const pPem = await c.call('GET', `/v1/keys/${p.keyId}/public-key`, undefined, {
      headers: { accept: 'application/x-pem-file' },
    });
    const pj = createPublicKey(pPem.text).export({ format: 'jwk' });
    const point = p256.Point.fromBytes(Buffer.from(p.publicKey, 'hex')).toAffine();
    expect(BigInt(`0x${Buffer.from(pj.x!, 'base64url').toString('hex')}`)).toBe(point.x);

    const ris = await createKey({ keySpec: 'FROST_RISTRETTO255' });
    const rPem = await c.call('GET', `/v1/keys/${ris.keyId}/public-key`, undefined, {
      headers: { accept: 'application/x-pem-file' },
    });
    expectProblem(rPem, 406, 'NotAcceptable');
    const rJson = await c.call('GET', `/v1/keys/${ris.keyId}/public-key`);
    expect(rJson.body).toEqual({ keyId: ris.keyId, keySpec: 'FROST_RISTRETTO255', publicKey: ris.publicKey });
  });

  it('get by id and alias, description, list with pagination', async () => {
    const k = await createKey({
      alias: 'payments-main',
      description: 'hot wallet',
      participants: ['node-1', 'node-3'],
    });
    expect(k.participants).toEqual(['node-1', 'node-3']);
    expect((await c.call('GET', `/v1/keys/${k.keyId}`)).body).toEqual(k);
    expect((await c.call('GET', '/v1/keys/payments-main')).body).toEqual(k);
    expect(k.description).toBe('hot wallet');
    const all: any[] = [];
    let next: string | undefined;
    let pages = 0;
    do {
      const r = await c.call('GET', `/v1/keys?limit=2${next ? `&nextToken=${next}` : ''}`);
      expect(r.status).toBe(200);
      expect(r.body.keys.length).toBeLessThanOrEqual(2);
      all.push(...r.body.keys);
      next = r.body.nextToken;
      pages++;
    } while (next);
    expect(pages).toBeGreaterThan(1);
    expect(new Set(all.map((x) => x.keyId)).size).toBe(all.length);
    expect(all.map((x) => x.keyId)).toContain(k.keyId);
  });

  it('signing names excluded nodes and audits them as culprits; too few nodes is 503 QuorumUnavailable', async () => {
    const k = await createKey({ threshold: 2, participants: ['node-1', 'node-2', 'node-3'] });
    await c.tc.stopNode('node-1');
    try {
      // The coordinator rotates which t members it asks first; within one turn of the committee
      // some signature asks node-1, finds it down, leaves it out and signs with the other two.
      const answers = [];
      for (let i = 0; i < 3; i++) {
        const s = await c.call('POST', `/v1/keys/${k.keyId}/sign`, { message: 'aa' });
        expect(s.status, s.text).toBe(200);
        expect(s.body.signers).not.toContain('node-1');
        answers.push(s.body);
      }
      const s = answers.find((a) => a.excluded.length > 0);
      expect(s.signers).toEqual(['node-2', 'node-3']);
      expect(s.excluded).toEqual([
        expect.objectContaining({ participant: 'node-1', reason: 'unresponsive', round: 'sign.commit' }),
      ]);
      expect(
        verifySignature(
          KEY_SPEC_REGISTRY.FROST_ED25519,
          Uint8Array.of(0xaa),
          Buffer.from(s.signature, 'hex'),
          Buffer.from(k.publicKey, 'hex'),
        ),
      ).toBe(true);
      const audit = await c.call('GET', `/v1/audit?keyId=${k.keyId}&limit=1000`);
      const rec = audit.body.records.find(
        (r: any) => r.entry.type === 'request' && r.entry.action === 'Sign' && r.entry.culprits?.length > 0,
      );
      expect(rec.entry.culprits).toEqual(s.excluded);
      expect(rec.entry.signers).toEqual(['node-2', 'node-3']);
      await c.tc.stopNode('node-2');
      const q = await c.call('POST', `/v1/keys/${k.keyId}/sign`, { message: 'aa' });
      expectProblem(q, 503, 'QuorumUnavailable');
      expect(q.headers.get('retry-after')).toBeTruthy();
    } finally {
      await c.restartNode('node-1');
      await c.restartNode('node-2');
    }
  });

  it('participants as a count picks reachable nodes', async () => {
    await c.tc.stopNode('node-1');
    try {
      const k = await createKey({ participants: 3 });
      expect(k.participants).toEqual(['node-2', 'node-3', 'node-4']);
      const q = await c.call('POST', '/v1/keys', { keySpec: 'FROST_ED25519', threshold: 2, participants: 4 });
      expectProblem(q, 503, 'QuorumUnavailable');
    } finally {
      await c.restartNode('node-1');
    }
  });
});

describe('key events', () => {
  it('refresh and reshare move to the next epoch, repair keeps it; the public key never changes', async () => {
    const k = await createKey({ keySpec: 'FROST_SECP256K1_TR', threshold: 2, participants: 3 });
    const r1 = await c.call('POST', `/v1/keys/${k.keyId}/refresh`);
    expect(r1.status, r1.text).toBe(200);
    expect(r1.body).toMatchObject({
      epoch: 1,
      publicKey: k.publicKey,
      threshold: 2,
      participants: k.participants,
    });
    // A committee change needs the admin quorum (H-3); an initiating admin counts towards it.
    const r2 = await c.call('POST', `/v1/keys/${k.keyId}/reshare`, {
      threshold: 3,
      participants: ['node-1', 'node-2', 'node-3', 'node-4'],
    });
    expect(r2.status, r2.text).toBe(200);
    expect(r2.body).toMatchObject({
      epoch: 2,
      publicKey: k.publicKey,
      threshold: 3,
      participants: ['node-1', 'node-2', 'node-3', 'node-4'],
    });
    // docs/api.md: repair rebuilds that member's share of the same epoch.
    const r3 = await c.call('POST', `/v1/keys/${k.keyId}/repair`, { participant: 'node-4' });
    expect(r3.status, r3.text).toBe(200);
    expect(r3.body).toMatchObject({ epoch: 2, publicKey: k.publicKey, threshold: 3 });
    for (let i = 0; i < 4; i++) {
      // Four signatures rotate through the committee, so the repaired share of node-4 signs too.
      const s = await c.call('POST', `/v1/keys/${k.keyId}/sign`, { message: '01' });
      expect(s.status, s.text).toBe(200);
      expect(s.body.epoch).toBe(2);
      expect(s.body.signers).toHaveLength(3);
      expect(
        schnorr.verify(
          Buffer.from(s.body.signature, 'hex'),
          Uint8Array.of(1),
          Buffer.from(k.publicKey, 'hex'),
        ),
      ).toBe(true);
    }
    // a count keeps current members first
    const r4 = await c.call('POST', `/v1/keys/${k.keyId}/reshare`, { participants: 3, threshold: 2 });
    expect(r4.body).toMatchObject({ epoch: 3, threshold: 2, participants: ['node-1', 'node-2', 'node-3'] });
    // reshare with defaults keeps committee and threshold
    const r5 = await c.call('POST', `/v1/keys/${k.keyId}/reshare`, {});
    expect(r5.status, r5.text).toBe(200);
    expect(r5.body).toMatchObject({ epoch: 4, threshold: 2, participants: ['node-1', 'node-2', 'node-3'] });
    const bad = await c.call('POST', `/v1/keys/${k.keyId}/repair`, { participant: 'node-4' });
    expectProblem(bad, 400, 'ValidationError');
    const tooHigh = await c.call('POST', `/v1/keys/${k.keyId}/reshare`, { threshold: 4 });
    expectProblem(tooHigh, 400, 'ValidationError');
    expect((await c.call('GET', `/v1/keys/${k.keyId}`)).body.epoch).toBe(4);
  });

  it('operations on one key are serialized, different keys run concurrently', async () => {
    const a = await createKey();
    const b = await createKey();
    c.observed.delayMs = 150;
    try {
      c.observed.peakConcurrent = 0;
      const [s, r] = await Promise.all([
        c.call('POST', `/v1/keys/${a.keyId}/refresh`),
        c.call('POST', `/v1/keys/${a.keyId}/sign`, { message: '' }),
      ]);
      expect(c.observed.peakConcurrent).toBe(1);
      expect(s.status).toBe(200);
      expect(r.body.epoch).toBe(1); // the sign waited for the refresh and used the new epoch
      c.observed.peakConcurrent = 0;
      await Promise.all([
        c.call('POST', `/v1/keys/${a.keyId}/sign`, { message: '' }),
        c.call('POST', `/v1/keys/${b.keyId}/sign`, { message: '' }),
      ]);
      expect(c.observed.peakConcurrent).toBe(2);
    } finally {
      c.observed.delayMs = 0;
    }
  });
});

describe('lifecycle', () => {
  const OPS: Record<string, { path: string; body?: unknown }> = {
    sign: { path: 'sign', body: { message: '00' } },
    verify: { path: 'verify', body: { message: '00', signature: '00'.repeat(64) } },
    getPublicKey: { path: 'public-key' },
    refresh: { path: 'refresh' },
    reshare: { path: 'reshare', body: {} },
    repair: { path: 'repair', body: { participant: 'node-1' } },
    disable: { path: 'disable' },
    enable: { path: 'enable' },
    scheduleDeletion: { path: 'schedule-deletion', body: { pendingWindowDays: 7 } },
    cancelDeletion: { path: 'cancel-deletion' },
  };

  const MEMBERS = ['node-1', 'node-2', 'node-3'];
  /** The key's state on each member, as the nodes report it (status RPC). */
  const onMembers = async (keyId: string) => {
    const states = await c.keyStates(keyId);
    return MEMBERS.map((m) => states[m]);
  };

  async function keyIn(state: string) {
    const k = await createKey({ participants: MEMBERS });
    if (state === 'Disabled') await c.call('POST', `/v1/keys/${k.keyId}/disable`);
    if (state === 'PendingDeletion' || state === 'Destroyed') {
      await c.call('POST', `/v1/keys/${k.keyId}/schedule-deletion`, { pendingWindowDays: 7 });
    }
    if (state === 'Destroyed') {
      c.clock.t += 8 * 24 * 3600 * 1000;
      expect(await c.sweeper.sweep()).toContain(k.keyId);
    }
    expect((await c.call('GET', `/v1/keys/${k.keyId}`)).body.state).toBe(state);
    return k;
  }

  for (const state of ['Enabled', 'Disabled', 'PendingDeletion', 'Destroyed'] as const) {
    it(`state ${state}: every operation follows the table`, async () => {
      let k: any;
      for (const [op, req] of Object.entries(OPS)) {
        // A key in `state` serves every operation until one moves it to another state.
        k ??= await keyIn(state);
        const method = op === 'getPublicKey' ? 'GET' : 'POST';
        const r = await c.call(method, `/v1/keys/${k.keyId}/${req.path}`, req.body);
        const next = LIFECYCLE[state][op as keyof (typeof LIFECYCLE)['Enabled']];
        if (next === null) {
          expectProblem(r, 409, 'InvalidKeyState');
          expect((await c.call('GET', `/v1/keys/${k.keyId}`)).body.state).toBe(state);
        } else {
          expect(r.status, `${state} ${op}: ${r.text}`).toBe(200);
          if (method === 'POST' && op !== 'sign' && op !== 'verify') expect(r.body.state).toBe(next);
          expect((await c.call('GET', `/v1/keys/${k.keyId}`)).body.state).toBe(next);
          if (next !== state) {
            expect(await onMembers(k.keyId)).toEqual(MEMBERS.map(() => next));
            k = undefined;
          }
        }
      }
    });
  }

  it('schedule-deletion window: default 30 days, 7..30 enforced; sweeper destroys shares and frees the alias', async () => {
    const k = await createKey({ alias: 'to-delete', participants: MEMBERS });
    for (const days of [6, 31, 0, '7']) {
      const r = await c.call('POST', `/v1/keys/${k.keyId}/schedule-deletion`, { pendingWindowDays: days });
      expectProblem(r, 400, 'ValidationError');
    }
    const s = await c.call('POST', `/v1/keys/${k.keyId}/schedule-deletion`);
    expect(s.body.state).toBe('PendingDeletion');
    expect(Date.parse(s.body.deletionDate) - c.clock.t).toBe(30 * 24 * 3600 * 1000);
    c.clock.t += 29 * 24 * 3600 * 1000;
    expect(await c.sweeper.sweep()).not.toContain(k.keyId);
    const destroysBefore = c.observed.calls.destroyKey;
    expect(await onMembers(k.keyId)).toEqual(MEMBERS.map(() => 'PendingDeletion'));
    c.clock.t += 2 * 24 * 3600 * 1000;
    expect(await c.sweeper.sweep()).toContain(k.keyId);
    expect(c.observed.calls.destroyKey).toBe(destroysBefore + 1);
    // No member holds a share any more: the record is gone or marked Destroyed.
    for (const st of await onMembers(k.keyId)) expect([undefined, 'Destroyed']).toContain(st);
    const listed = (await c.call('GET', '/v1/nodes')).body.nodes;
    for (const n of listed) expect(n.keys).not.toContain(k.keyId);
    expect((await c.call('GET', `/v1/keys/${k.keyId}`)).body.state).toBe('Destroyed');
    expectProblem(await c.call('GET', '/v1/keys/to-delete'), 404, 'KeyNotFound');
    const again = await createKey({ alias: 'to-delete' });
    expect(again.alias).toBe('to-delete');
    const audit = await c.call('GET', `/v1/audit?keyId=${k.keyId}&limit=1000`);
    expect(
      audit.body.records.some((r: any) => r.entry.action === 'destroy' && r.entry.outcome === 'ok'),
    ).toBe(true);
  });
});

describe('bad input never changes anything and never yields 500', () => {
  const big = 'aa'.repeat(64 * 1024 + 1);
  const cases: [
    string,
    string,
    string,
    { body?: unknown; raw?: string; headers?: Record<string, string> },
    number,
    string,
  ][] = [
    ['malformed JSON', 'POST', '/v1/keys', { raw: '{"keySpec":' }, 400, 'ValidationError'],
    ['JSON array body', 'POST', '/v1/keys', { raw: '[1,2]' }, 400, 'ValidationError'],
    [
      'wrong type threshold',
      'POST',
      '/v1/keys',
      { body: { keySpec: 'FROST_ED25519', threshold: '2' } },
      400,
      'ValidationError',
    ],
    [
      'unknown field',
      'POST',
      '/v1/keys',
      { body: { keySpec: 'FROST_ED25519', threshold: 2, color: 'red' } },
      400,
      'ValidationError',
    ],
    [
      '__proto__',
      'POST',
      '/v1/keys',
      { raw: '{"keySpec":"FROST_ED25519","threshold":2,"__proto__":{"admin":true}}' },
      400,
      'ValidationError',
    ],
    [
      'constructor.prototype',
      'POST',
      '/v1/keys',
      { raw: '{"keySpec":"FROST_ED25519","threshold":2,"constructor":{"prototype":{}}}' },
      400,
      'ValidationError',
    ],
    [
      'unknown keySpec',
      'POST',
      '/v1/keys',
      { body: { keySpec: 'RSA_2048', threshold: 2 } },
      400,
      'ValidationError',
    ],
    [
      'threshold 0',
      'POST',
      '/v1/keys',
      { body: { keySpec: 'FROST_ED25519', threshold: 0 } },
      400,
      'ValidationError',
    ],
    [
      'threshold 1',
      'POST',
      '/v1/keys',
      { body: { keySpec: 'FROST_ED25519', threshold: 1 } },
      400,
      'ValidationError',
    ],
    [
      'threshold > participants',
      'POST',
      '/v1/keys',
      { body: { keySpec: 'FROST_ED25519', threshold: 3, participants: ['node-1', 'node-2'] } },
      400,
      'ValidationError',
    ],
    [
      'threshold > nodes',
      'POST',
      '/v1/keys',
      { body: { keySpec: 'FROST_ED25519', threshold: 5 } },
      400,
      'ValidationError',
    ],
    [
      'unknown node',
      'POST',
      '/v1/keys',
      { body: { keySpec: 'FROST_ED25519', threshold: 2, participants: ['node-1', 'node-9'] } },
      400,
      'ValidationError',
    ],
    [
      'bad node id',
      'POST',
      '/v1/keys',
      { body: { keySpec: 'FROST_ED25519', threshold: 2, participants: ['node-1', 'x'] } },
      400,
      'ValidationError',
    ],
    [
      'duplicate node',
      'POST',
      '/v1/keys',
      { body: { keySpec: 'FROST_ED25519', threshold: 2, participants: ['node-1', 'node-1'] } },
      400,
      'ValidationError',
    ],
    [
      'float threshold',
      'POST',
      '/v1/keys',
      { body: { keySpec: 'FROST_ED25519', threshold: 2.5 } },
      400,
      'ValidationError',
    ],
    [
      'uuid-shaped alias',
      'POST',
      '/v1/keys',
      { body: { keySpec: 'FROST_ED25519', threshold: 2, alias: 'abcdef01-2345-6789-abcd-ef0123456789' } },
      400,
      'ValidationError',
    ],
    [
      'text/plain body',
      'POST',
      '/v1/keys',
      { raw: 'hello', headers: { 'content-type': 'text/plain' } },
      415,
      'UnsupportedMediaType',
    ],
    [
      'xml body',
      'POST',
      '/v1/keys',
      { raw: '<a/>', headers: { 'content-type': 'application/xml' } },
      415,
      'UnsupportedMediaType',
    ],
    [
      'oversize body',
      'POST',
      '/v1/keys',
      { raw: JSON.stringify({ keySpec: 'FROST_ED25519', threshold: 2, description: 'x'.repeat(300_000) }) },
      413,
      'MessageTooLarge',
    ],
    ['unknown key', 'GET', '/v1/keys/00000000-0000-4000-8000-000000000000', {}, 404, 'KeyNotFound'],
    ['unknown alias', 'GET', '/v1/keys/no-such-alias', {}, 404, 'KeyNotFound'],
    ['bad key path', 'GET', '/v1/keys/%E0%A4%A', {}, 400, 'ValidationError'],
    ['unknown route', 'GET', '/v1/nothing', {}, 404, 'NotFound'],
    ['bad limit', 'GET', '/v1/keys?limit=-1', {}, 400, 'ValidationError'],
    ['bad nextToken', 'GET', '/v1/keys?nextToken=zzz', {}, 400, 'ValidationError'],
    ['unknown query', 'GET', '/v1/keys?x=1', {}, 400, 'ValidationError'],
    ['bad audit after', 'GET', '/v1/audit?after=abc', {}, 400, 'ValidationError'],
  ];
  it.each(cases)('%s', async (_name, method, path, req, status, code) => {
    const before = (await c.call('GET', '/v1/keys?limit=1000')).body.keys.length;
    const creates = c.observed.calls.createKey;
    const r = await c.call(method, path, req.body, {
      ...(req.raw === undefined ? {} : { raw: req.raw }),
      ...(req.headers ? { headers: req.headers } : {}),
    });
    expectProblem(r, status, code);
    expect((await c.call('GET', '/v1/keys?limit=1000')).body.keys.length).toBe(before);
    expect(c.observed.calls.createKey).toBe(creates);
  });

  it('sign/verify input: non-hex, odd hex, oversize message, unknown fields, missing message', async () => {
    const k = await createKey();
    const signs = c.observed.calls.sign;
    const bad: [unknown, number, string][] = [
      [{ message: 'zz' }, 400, 'ValidationError'],
      [{ message: 'abc' }, 400, 'ValidationError'],
      [{ message: 12 }, 400, 'ValidationError'],
      [{ message: null }, 400, 'ValidationError'],
      [{}, 400, 'ValidationError'],
      [{ message: '00', extra: 1 }, 400, 'ValidationError'],
      [{ message: big }, 413, 'MessageTooLarge'],
    ];
    for (const [body, status, code] of bad) {
      expectProblem(await c.call('POST', `/v1/keys/${k.keyId}/sign`, body), status, code);
    }
    expect(c.observed.calls.sign).toBe(signs);
    expectProblem(
      await c.call('POST', `/v1/keys/${k.keyId}/verify`, { message: '00', signature: 'xyz' }),
      400,
      'ValidationError',
    );
    expect(
      (await c.call('POST', `/v1/keys/${k.keyId}/verify`, { message: '00', signature: '00' })).body,
    ).toEqual({ valid: false });
    const max = 'ab'.repeat(64 * 1024);
    expect((await c.call('POST', `/v1/keys/${k.keyId}/sign`, { message: max })).status).toBe(200);
  });

  it('alias taken is 409 AliasExists and creates nothing', async () => {
    await createKey({ alias: 'unique-one' });
    const creates = c.observed.calls.createKey;
    expectProblem(
      await c.call('POST', '/v1/keys', { keySpec: 'FROST_ED25519', threshold: 2, alias: 'unique-one' }),
      409,
      'AliasExists',
    );
    expect(c.observed.calls.createKey).toBe(creates);
  });
});

describe('idempotency', () => {
  it('a repeated create returns the first result and runs one DKG; a different body is 422', async () => {
    const creates = c.observed.calls.createKey;
    const body = { keySpec: 'FROST_ED25519', threshold: 2, alias: 'idem-1' };
    const h = { 'idempotency-key': 'create-idem-1' };
    const [a, b] = await Promise.all([
      c.call('POST', '/v1/keys', body, { headers: h }),
      c.call('POST', '/v1/keys', body, { headers: h }),
    ]);
    const d = await c.call('POST', '/v1/keys', body, { headers: h });
    expect(a.status).toBe(201);
    expect(b.body).toEqual(a.body);
    expect(d.body).toEqual(a.body);
    expect(d.headers.get('idempotent-replayed')).toBe('true');
    expect(c.observed.calls.createKey).toBe(creates + 1);
    expectProblem(
      await c.call('POST', '/v1/keys', { ...body, alias: 'idem-2' }, { headers: h }),
      422,
      'IdempotencyKeyMismatch',
    );
    expect(c.observed.calls.createKey).toBe(creates + 1);
    // a different principal's same key is a different scope
    const other = await c.call(
      'POST',
      '/v1/keys',
      { ...body, alias: 'idem-3' },
      { headers: h, principal: c.admin2 },
    );
    expect(other.status).toBe(201);
    expect(other.body.keyId).not.toBe(a.body.keyId);
  });

  it('a repeated sign returns the same signature without a second session; invalid header is 400', async () => {
    const k = await createKey();
    const signs = c.observed.calls.sign;
    const h = { 'idempotency-key': 'sign-1' };
    const a = await c.call('POST', `/v1/keys/${k.keyId}/sign`, { message: '0102' }, { headers: h });
    const b = await c.call('POST', `/v1/keys/${k.keyId}/sign`, { message: '0102' }, { headers: h });
    expect(b.body).toEqual(a.body);
    expect(c.observed.calls.sign).toBe(signs + 1);
    expectProblem(
      await c.call(
        'POST',
        `/v1/keys/${k.keyId}/sign`,
        { message: '01' },
        { headers: { 'idempotency-key': 'x'.repeat(256) } },
      ),
      400,
      'ValidationError',
    );
  });

  it('a replayed token create does not reveal the token again', async () => {
    const h = { 'idempotency-key': 'tok-1' };
    const a = await c.call('POST', '/v1/tokens', { role: 'auditor', name: 'aud' }, { headers: h });
    expect(a.status).toBe(201);
    const b = await c.call('POST', '/v1/tokens', { role: 'auditor', name: 'aud' }, { headers: h });
    expectProblem(b, 409, 'Conflict');
    expect(b.text).not.toContain(a.body.token);
    expect(b.text).toContain(a.body.tokenId);
  });
});

describe('audit', () => {
  it('allowed and denied requests are recorded with the caller (never the token); the chain verifies', async () => {
    const k = await createKey();
    await c.call('GET', `/v1/keys/${k.keyId}`, undefined, { token: null });
    await c.call('GET', `/v1/keys/${k.keyId}`, undefined, { token: 'wrong-token' });
    const aud = (await c.call('POST', '/v1/tokens', { role: 'auditor', name: 'auditor-1' })).body;
    await c.call('POST', `/v1/keys/${k.keyId}/sign`, { message: '' }, { token: aud.token });
    await c.call('GET', '/v1/tokens', undefined, { token: aud.token });
    const signed = await c.call('POST', `/v1/keys/${k.keyId}/sign`, { message: '0a0b' });
    expect(signed.status).toBe(200);
    // Unauthenticated failures are aggregated: one record per source and minute, with a count (M-3).
    await c.context.authFailures.flush();
    const all: any[] = [];
    let after = 0;
    for (;;) {
      const page = await c.call('GET', `/v1/audit?after=${after}&limit=1000`);
      all.push(...page.body.records);
      if (page.body.nextAfter === undefined) break;
      after = page.body.nextAfter;
    }
    const text = JSON.stringify(all);
    expect(text).not.toContain(ADMIN_TOKEN);
    expect(text).not.toContain(aud.token);
    const mine = all.filter((r) => r.entry.keyId === k.keyId);
    expect(
      mine.find((r) => r.entry.type === 'decision' && r.entry.action === 'CreateKey')?.entry.caller,
    ).toEqual({ principal: 'admin' });
    const created = mine.find((r) => r.entry.type === 'request' && r.entry.action === 'CreateKey');
    expect(created.entry).toMatchObject({ status: 201, epoch: 0, participants: k.participants });
    expect(created.entry.requestDigest).toMatch(/^[0-9a-f]{64}$/);
    // Sign records carry the message's SHA-256 and the signed request's digest, never the message.
    const sign = mine.find(
      (r) => r.entry.type === 'request' && r.entry.action === 'Sign' && r.entry.status === 200,
    );
    expect(sign.entry).toMatchObject({
      caller: { principal: 'admin' },
      messageSha256: createHash('sha256').update(Buffer.from('0a0b', 'hex')).digest('hex'),
    });
    expect(sign.entry.requestDigest).toMatch(/^[0-9a-f]{64}$/);
    expect(all.filter((r) => r.entry.status === 401 && r.entry.caller === null)).toEqual([]);
    const failures = all.filter((r) => r.entry.type === 'auth-failures');
    const count = failures.reduce((n, r) => n + r.entry.count, 0);
    expect(count).toBeGreaterThanOrEqual(2);
    expect(failures.some((r) => r.entry.routes.includes('GET /v1/keys/:keyId'))).toBe(true);
    expect(failures.some((r) => (r.entry.keyIds ?? []).includes(k.keyId))).toBe(true);
    // A valid token that tried to use a key is named on its own record, with the key.
    const refused = mine.find((r) => r.entry.status === 401 && r.entry.action === 'Sign');
    expect(refused.entry.caller).toMatchObject({ tokenId: aud.tokenId, role: 'auditor' });
    const forbidden = all.find((r) => r.entry.status === 403 && r.entry.action === 'ListTokens');
    expect(forbidden.entry.caller).toMatchObject({ tokenId: aud.tokenId, role: 'auditor' });
    expect(verifyAuditChain(all)).toEqual({ ok: true, count: all.length });
    const server = await c.context.audit.verify();
    expect(server.ok).toBe(true);
    expect(server.count).toBeGreaterThanOrEqual(all.length);
    // a tampered record is found client-side
    const tampered = all.map((r) => ({ ...r }));
    tampered[1] = { ...tampered[1], entry: { ...tampered[1].entry, status: 200 } };
    expect(verifyAuditChain(tampered)).toMatchObject({ ok: false, brokenAt: 2 });
  });

  it('a request whose audit record cannot be written fails with 503 AuditWriteFailed and changes nothing', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'kms-audit-'));
    const auditDb = new Level(join(dir, 'audit'));
    await auditDb.open();
    const cluster = observeCluster(c.cluster); // the real nodes, counted
    const built = await buildApp({
      config: parseConfig({ dataDir: join(dir, 'data'), adminToken: ADMIN_TOKEN, logLevel: 'silent' }),
      cluster,
      clock: c.clock,
      auditDb: auditDb as unknown as AuditDb,
    });
    try {
      const H = { authorization: `Bearer ${ADMIN_TOKEN}` };
      const ok = await built.app.inject({ method: 'GET', url: '/v1/keys', headers: H });
      expect(ok.statusCode).toBe(200);
      await auditDb.close(); // the audit store fails from now on
      const create = signedInit('POST', 'http://localhost/v1/keys', c.admin, {
        body: { keySpec: 'FROST_ED25519', threshold: 2 },
        nowS: Math.floor(c.clock.now() / 1000),
      });
      for (const req of [
        { method: 'POST' as const, url: '/v1/keys', headers: create.headers, payload: create.body as string },
        { method: 'GET' as const, url: '/v1/keys', headers: H },
      ]) {
        const r = await built.app.inject(req);
        expect(r.statusCode, r.body).toBe(503);
        expect(r.headers['content-type']).toMatch(/problem\+json/);
        expect(r.json().code).toBe('AuditWriteFailed');
      }
      // Unauthenticated failures are aggregated (M-3): answered at once, written with their minute.
      const denied = await built.app.inject({ method: 'GET', url: '/v1/keys' });
      expect(denied.statusCode).toBe(401);
      expect(cluster.calls.createKey).toBe(0);
      expect((await built.context.keys.list({ limit: 10 })).keys).toHaveLength(0);
    } finally {
      await built.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('probes, metrics, OpenAPI', () => {
  it('healthz, readyz, metrics need no token', async () => {
    expect((await c.call('GET', '/healthz', undefined, { token: null })).body).toEqual({ status: 'pass' });
    const ready = await c.call('GET', '/readyz', undefined, { token: null });
    expect(ready.status).toBe(200);
    expect(ready.body.checks.nodes).toEqual({ reachable: 4, total: 4, required: 1 });
    const m = await c.call('GET', '/metrics', undefined, { token: null });
    expect(m.status).toBe(200);
    expect(m.text).toMatch(
      /kms_http_requests_total\{method="POST",route="\/v1\/keys\/:keyId\/sign",status="200"\} \d+/,
    );
    expect(m.text).toMatch(/kms_sign_duration_seconds_count\{key_spec="FROST_ED25519",result="ok"\} \d+/);
    expect(m.text).toMatch(/kms_sessions_total\{operation="dkg",outcome="ok"\} \d+/);
    expect(m.text).not.toMatch(/[0-9a-f]{8}-[0-9a-f]{4}-/); // no key ids in labels
  });

  it('readyz fails when fewer nodes than required are reachable', async () => {
    // A second coordinator over the same nodes, requiring all four.
    const dir = mkdtempSync(join(tmpdir(), 'kms-ready-'));
    const d = await startCoordinator({
      config: parseConfig({
        host: '127.0.0.1',
        port: 0,
        dataDir: dir,
        adminToken: ADMIN_TOKEN,
        logLevel: 'silent',
        readyMinNodes: 4,
      }),
      cluster: c.cluster,
    });
    const ready = () => httpCall(d.url, 'GET', '/readyz', undefined, { token: null });
    try {
      expect((await ready()).status).toBe(200);
      await c.tc.stopNode('node-2');
      const r = await ready();
      expect(r.status).toBe(503);
      expect(r.body.status).toBe('fail');
      expect(r.body.checks.nodes).toEqual({ reachable: 3, total: 4, required: 4 });
    } finally {
      await c.restartNode('node-2');
      await d.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('openapi.json validates and lists every route', async () => {
    const r = await c.call('GET', '/openapi.json', undefined, { token: null });
    expect(r.status).toBe(200);
    const v = new Validator();
    const res = await v.validate(r.body);
    expect(res.errors ?? []).toEqual([]);
    expect(res.valid).toBe(true);
    const ops = Object.entries(r.body.paths as Record<string, Record<string, unknown>>).flatMap(([p, m]) =>
      Object.keys(m).map((x) => `${x.toUpperCase()} ${p}`),
    );
    const expected = [
      'POST /v1/keys',
      'GET /v1/keys',
      'GET /v1/keys/{keyId}',
      'GET /v1/keys/{keyId}/public-key',
      // Issue 14: custody read routes.
      'GET /v1/keys/{keyId}/address',
      'GET /v1/keys/{keyId}/descriptor',
      'POST /v1/keys/{keyId}/sign',
      // Issue 14: PSBT signing.
      'POST /v1/keys/{keyId}/sign-psbt',
      'POST /v1/keys/{keyId}/verify',
      // Issue 15: envelope encryption.
      'POST /v1/keys/{keyId}/encrypt',
      'POST /v1/keys/{keyId}/generate-data-key',
      'POST /v1/keys/{keyId}/generate-data-key-without-plaintext',
      'POST /v1/decrypt',
      'POST /v1/re-encrypt',
      'POST /v1/keys/{keyId}/refresh',
      'POST /v1/keys/{keyId}/reshare',
      'POST /v1/keys/{keyId}/repair',
      'POST /v1/keys/{keyId}/disable',
      'POST /v1/keys/{keyId}/enable',
      'POST /v1/keys/{keyId}/schedule-deletion',
      'POST /v1/keys/{keyId}/cancel-deletion',
      // Issue 16: backup, restore, import.
      'POST /v1/keys/{keyId}/backups',
      'POST /v1/keys/{keyId}/restore',
      'POST /v1/keys/import',
      'POST /v1/tokens',
      'GET /v1/tokens',
      'DELETE /v1/tokens/{tokenId}',
      'GET /v1/nodes',
      'GET /v1/nodes/{nodeId}/audit',
      'GET /v1/audit',
      'GET /v1/governance',
      'POST /v1/governance',
      'GET /v1/requests',
      'GET /v1/requests/{requestId}',
      'POST /v1/requests/{requestId}/approvals',
      'GET /healthz',
      'GET /readyz',
      'GET /metrics',
      'GET /openapi.json',
    ];
    expect([...ops].sort()).toEqual([...expected].sort());
    expect(r.body.components.securitySchemes.bearerAuth).toEqual({ type: 'http', scheme: 'bearer' });
  });

  it('nodes lists id, peerId, address, reachable, keys', async () => {
    const r = await c.call('GET', '/v1/nodes');
    expect(r.body.nodes).toHaveLength(4);
    expect(Object.keys(r.body.nodes[0]).sort()).toEqual(['address', 'id', 'keys', 'peerId', 'reachable']);
    expect(r.body.nodes[0].id).toBe('node-1');
  });
});

describe('config', () => {
  it('file < env; unknown fields and bad values fail without echoing secrets', () => {
    const dir = mkdtempSync(join(tmpdir(), 'kms-cfg-'));
    try {
      const file = join(dir, 'c.json');
      writeFileSync(
        file,
        JSON.stringify({ port: 9000, dataDir: '/tmp/x', limits: { maxListLimit: 50 }, cluster: { a: 1 } }),
      );
      const cfg = loadConfig({
        file,
        env: { KMS_PORT: '9100', KMS_MAX_MESSAGE_BYTES: '1024', KMS_LOG_LEVEL: 'warn' },
      });
      expect(cfg).toMatchObject({ port: 9100, dataDir: '/tmp/x', logLevel: 'warn', cluster: { a: 1 } });
      expect(cfg.limits).toEqual({ bodyLimitBytes: 192 * 1024, maxMessageBytes: 1024, maxListLimit: 50 });
      expect(loadConfig({ env: {} }).port).toBe(8080);
      expect(() => loadConfig({ env: { KMS_PORT: '70000' } })).toThrow(/port/);
      expect(() => parseConfig({ prot: 1 })).toThrow(/"prot" is not a known field/);
      expect(() => parseConfig({ limits: { bodyLimitBytes: 2048 } })).toThrow(/bodyLimitBytes/);
      let msg = '';
      try {
        parseConfig({ adminToken: 'short secret' });
      } catch (e) {
        msg = (e as Error).message;
      }
      expect(msg).toMatch(/adminToken/);
      expect(msg).not.toContain('short secret');
      writeFileSync(file, '{not json');
      expect(() => loadConfig({ file, env: {} })).toThrow(/not valid JSON/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
