import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Level } from 'level';
import { afterEach, describe, expect, it } from 'vitest';
import { AuditLog, auditHash, canonicalJson, GENESIS_HASH } from '../common/audit-log.ts';
import { InfraError } from '../protocol/errors.ts';

const dirs: string[] = [];
const dbs: Level[] = [];

async function freshDb(): Promise<Level> {
  const dir = await mkdtemp(join(tmpdir(), 'audit-'));
  dirs.push(dir);
  const db = new Level(dir);
  await db.open();
  dbs.push(db);
  return db;
}

afterEach(async () => {
  for (const db of dbs.splice(0)) await db.close();
  for (const d of dirs.splice(0)) await rm(d, { recursive: true, force: true });
});

describe('AuditLog', () => {
  it('appends a hash chain that verifies and lists in order', async () => {
    const db = await freshDb();
    const log = await AuditLog.open(db.sublevel('audit'));
    const a = await log.append({ op: 'CreateKey', keyId: 'k1' });
    const b = await log.append({ op: 'Sign', keyId: 'k2', n: 2 });
    const c = await log.append({ op: 'Sign', keyId: 'k1', nested: { z: 1, a: [1, 'x'] } });
    expect(a.seq).toBe(1);
    expect(a.prevHash).toBe(GENESIS_HASH);
    expect(b.prevHash).toBe(a.hash);
    expect(c.prevHash).toBe(b.hash);
    expect(c.hash).toBe(auditHash(b.hash, 3, c.time, c.entry));
    expect(await log.verify()).toEqual({ ok: true, count: 3 });
    expect((await log.list()).map((r) => r.seq)).toEqual([1, 2, 3]);
    expect((await log.list({ keyId: 'k1' })).map((r) => r.seq)).toEqual([1, 3]);
    expect((await log.list({ after: 1, limit: 1 })).map((r) => r.seq)).toEqual([2]);
    expect(log.head()).toEqual({ seq: 3, hash: c.hash });
  });

  it('serializes concurrent appends into one chain', async () => {
    const db = await freshDb();
    const log = await AuditLog.open(db.sublevel('audit'));
    const recs = await Promise.all(Array.from({ length: 20 }, (_, i) => log.append({ i })));
    expect(recs.map((r) => r.seq)).toEqual(Array.from({ length: 20 }, (_, i) => i + 1));
    expect(await log.verify()).toEqual({ ok: true, count: 20 });
  });

  it('continues the chain after reopening', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'audit-'));
    dirs.push(dir);
    let db = new Level(dir);
    const log1 = await AuditLog.open(db.sublevel('audit'));
    const first = await log1.append({ op: 'a' });
    await db.close();
    db = new Level(dir);
    dbs.push(db);
    const log2 = await AuditLog.open(db.sublevel('audit'));
    const second = await log2.append({ op: 'b' });
    expect(second.seq).toBe(2);
    expect(second.prevHash).toBe(first.hash);
    expect(await log2.verify()).toEqual({ ok: true, count: 2 });
  });

  it('detects a modified record, a deleted record and a garbage record', async () => {
    const db = await freshDb();
    const sub = db.sublevel('audit');
    const log = await AuditLog.open(sub);
    for (let i = 0; i < 5; i++) await log.append({ op: 'x', i });
    const key3 = '0000000000000003';
    const raw = await sub.get(key3);
    expect(raw).toBeDefined();
    await sub.put(key3, raw!.replace('"i":2', '"i":7'));
    expect(await log.verify()).toEqual({ ok: false, count: 2, brokenAt: 3 });
    await sub.put(key3, raw!);
    expect(await log.verify()).toEqual({ ok: true, count: 5 });
    await sub.del('0000000000000004');
    expect(await log.verify()).toEqual({ ok: false, count: 3, brokenAt: 4 });
    await sub.put('0000000000000004', 'not json');
    expect(await log.verify()).toEqual({ ok: false, count: 3, brokenAt: 4 });
    await expect(log.list()).rejects.toMatchObject({ code: 'StorageError' });
  });

  it('fails closed with AuditWriteFailed when the write fails', async () => {
    const db = await freshDb();
    const log = await AuditLog.open(db.sublevel('audit'));
    await log.append({ op: 'ok' });
    await db.close();
    const err = await log.append({ op: 'after-close' }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(InfraError);
    expect((err as InfraError).code).toBe('AuditWriteFailed');
    // Refuses further appends: the head may not match disk any more.
    await expect(log.append({ op: 'again' })).rejects.toMatchObject({ code: 'AuditWriteFailed' });
  });

  it('rejects entries that are not plain JSON', async () => {
    const db = await freshDb();
    const log = await AuditLog.open(db.sublevel('audit'));
    await expect(log.append({ n: 10n })).rejects.toMatchObject({ code: 'AuditWriteFailed' });
    await expect(log.append({ n: Number.NaN })).rejects.toMatchObject({ code: 'AuditWriteFailed' });
    // A rejected entry does not consume a sequence number.
    expect((await log.append({ ok: true })).seq).toBe(1);
  });

  it('canonical JSON sorts keys', () => {
    expect(canonicalJson({ b: 1, a: { d: [true, null], c: 's' } })).toBe(
      '{"a":{"c":"s","d":[true,null]},"b":1}',
    );
  });
});
