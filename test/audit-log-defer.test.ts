/**
 * Deferred audit appends (issue 17, common/audit-log.ts `append(entry, { defer: true })`): chained
 * at once, written by the next append's synced batch (one sync for both), or by a batch of their
 * own after DEFER_MS when no later append comes; a failed batch rejects both.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Level } from 'level';
import { afterEach, describe, expect, it } from 'vitest';
import { type AuditDb, AuditLog } from '../common/audit-log.ts';
import { InfraError } from '../protocol/errors.ts';

const dirs: string[] = [];
const dbs: Level[] = [];

afterEach(async () => {
  for (const db of dbs.splice(0)) await db.close();
  for (const d of dirs.splice(0)) await rm(d, { recursive: true, force: true });
});

/** An audit sublevel whose synced batches are counted (the records each held) and can be failed. */
async function countedLog(): Promise<{ log: AuditLog; batches: number[][]; fail: { on: boolean } }> {
  const dir = await mkdtemp(join(tmpdir(), 'audit-defer-'));
  dirs.push(dir);
  const db = new Level(dir);
  await db.open();
  dbs.push(db);
  const sub = db.sublevel('audit');
  const batches: number[][] = [];
  const fail = { on: false };
  const real = sub.batch.bind(sub) as unknown as (ops: unknown[], opts: unknown) => Promise<void>;
  (sub as unknown as { batch: unknown }).batch = async (ops: { key: string }[], opts: unknown) => {
    batches.push(ops.map((o) => Number(o.key)));
    if (fail.on) throw new Error('disk full');
    return real(ops, opts);
  };
  return { log: await AuditLog.open(sub as unknown as AuditDb), batches, fail };
}

describe('AuditLog deferred appends', () => {
  it('a deferred record is chained at once and written by the next append’s batch', async () => {
    const { log, batches } = await countedLog();
    await log.append({ i: 0 });
    const decision = log.append({ type: 'decision' }, { defer: true });
    expect(log.tail().seq).toBe(2);
    expect(log.head().seq).toBe(1);
    // Something else happens meanwhile (a signing round): nothing is written for it.
    await new Promise((r) => setTimeout(r, 20));
    expect(batches).toEqual([[1]]);
    const request = await log.append({ type: 'request' });
    expect((await decision).seq).toBe(2);
    expect(request.seq).toBe(3);
    expect(batches).toEqual([[1], [2, 3]]);
    expect(await log.verify()).toEqual({ ok: true, count: 3 });
  });

  it('with no later append, a deferred record is written on its own within DEFER_MS', async () => {
    const { log, batches } = await countedLog();
    const r = await log.append({ type: 'decision' }, { defer: true });
    expect(r.seq).toBe(1);
    expect(batches).toEqual([[1]]);
    expect(log.head().seq).toBe(1);
  });

  it('a failed batch rejects the deferred record with the one that carried it', async () => {
    const { log, fail } = await countedLog();
    const decision = log.append({ type: 'decision' }, { defer: true });
    fail.on = true;
    const request = log.append({ type: 'request' });
    await expect(decision).rejects.toBeInstanceOf(InfraError);
    await expect(request).rejects.toMatchObject({ code: 'AuditWriteFailed' });
    expect(log.writable).toBe(false);
    await expect(log.append({ type: 'later' })).rejects.toMatchObject({ code: 'AuditWriteFailed' });
  });
});
