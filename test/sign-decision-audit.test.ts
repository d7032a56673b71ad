/**
 * A signature's decision record (issue 17): chained before any node is asked and written in one
 * synced batch with the request's own record, which the answer waits for. Over the real nodes of
 * a test cluster, with the coordinator's audit store in a LevelDB of the test's own whose writes
 * can be made to fail: the decision precedes the request record of the same request; a signature
 * whose decision cannot be written is never returned; once the log has failed, no node is asked.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Level } from 'level';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildApp, type CoordinatorApp } from '../coordinator/app.ts';
import { parseConfig } from '../coordinator/config.ts';
import { signedInit } from '../client/sign-request.ts';
import type { AuditDb } from '../common/audit-log.ts';
import { ADMIN_TOKEN, startTestCoordinator, type TestCoordinator } from './helpers/coordinator.ts';
import { type ObservedCluster, observeCluster } from './helpers/observed-cluster.ts';

let c: TestCoordinator;
let dir: string;
let auditDb: Level;
let built: CoordinatorApp;
let cluster: ObservedCluster;
/** Set: every audit batch from now on fails, as a full or broken disk would. */
let failWrites = false;

beforeAll(async () => {
  c = await startTestCoordinator({ nodes: 3 });
  dir = mkdtempSync(join(tmpdir(), 'kms-sign-audit-'));
  auditDb = new Level(join(dir, 'audit'));
  await auditDb.open();
  const batch = auditDb.batch.bind(auditDb) as (...a: unknown[]) => Promise<void>;
  (auditDb as unknown as { batch: (...a: unknown[]) => Promise<void> }).batch = (...a: unknown[]) =>
    failWrites ? Promise.reject(new Error('no space left on device')) : batch(...a);
  cluster = observeCluster(c.cluster);
  built = await buildApp({
    config: parseConfig({ dataDir: join(dir, 'data'), adminToken: ADMIN_TOKEN, logLevel: 'silent' }),
    cluster,
    clock: c.clock,
    auditDb: auditDb as unknown as AuditDb,
  });
});

afterAll(async () => {
  await built?.close();
  await auditDb?.close().catch(() => undefined);
  await c?.stop();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

async function signed(method: 'POST', path: string, body: unknown) {
  const init = signedInit(method, `http://localhost${path}`, c.admin, {
    body,
    nowS: Math.floor(c.clock.now() / 1000),
  });
  return built.app.inject({ method, url: path, headers: init.headers, payload: init.body as string });
}

describe("a signature's decision record", () => {
  let keyId = '';

  it('precedes the request record of the same request, both durable before the answer', async () => {
    const k = await signed('POST', '/v1/keys', { keySpec: 'FROST_ED25519', threshold: 2 });
    expect(k.statusCode, k.body).toBe(201);
    keyId = k.json().keyId;
    const s = await signed('POST', `/v1/keys/${keyId}/sign`, { message: '68656c6c6f' });
    expect(s.statusCode, s.body).toBe(200);
    // Read back from the store itself: what is on disk when the answer has left.
    const recs = (await built.context.audit.list({ keyId, limit: 100 })).filter(
      (r) => r.entry['action'] === 'Sign',
    );
    const decision = recs.find((r) => r.entry['type'] === 'decision');
    const request = recs.find((r) => r.entry['type'] === 'request');
    expect(decision?.entry).toMatchObject({ decision: 'allow', keyId, caller: { principal: 'admin' } });
    expect(request?.entry).toMatchObject({ status: 200, requestId: decision?.entry['requestId'] });
    expect(decision!.seq).toBeLessThan(request!.seq);
    expect(decision!.entry['messageSha256']).toBe(request!.entry['messageSha256']);
    expect(decision!.entry['requestDigest']).toBe(request!.entry['requestDigest']);
    expect(built.context.audit.head().seq).toBeGreaterThanOrEqual(request!.seq);
  });

  it('that cannot be written discards the signature: 503 AuditWriteFailed, no signature in the answer', async () => {
    const before = cluster.calls.sign;
    failWrites = true;
    const s = await signed('POST', `/v1/keys/${keyId}/sign`, { message: '776f726c64' });
    expect(s.statusCode, s.body).toBe(503);
    expect(s.json().code).toBe('AuditWriteFailed');
    expect(s.body).not.toMatch(/signature"\s*:\s*"[0-9a-f]/);
    // The nodes were asked meanwhile (the decision is written with the request's record).
    expect(cluster.calls.sign).toBe(before + 1);
    expect(built.context.audit.writable).toBe(false);
  });

  it('once the log has failed, a signature asks no node', async () => {
    const before = cluster.calls.sign;
    const s = await signed('POST', `/v1/keys/${keyId}/sign`, { message: '616761696e' });
    expect(s.statusCode, s.body).toBe(503);
    expect(s.json().code).toBe('AuditWriteFailed');
    expect(cluster.calls.sign).toBe(before);
  });
});
