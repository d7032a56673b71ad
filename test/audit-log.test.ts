import { spawn } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { Level } from 'level';
import { afterEach, describe, expect, it } from 'vitest';
import { type AuditDb, AuditLog, auditHash, canonicalJson, GENESIS_HASH } from '../common/audit-log.ts';
import { generateIdentityKey, identitySigner, peerIdOf } from '../net/identity.ts';
import { AUDIT_HEAD_EVENT, verifyNodeAuditPage } from '../net/node-audit-head.ts';
import { NodeAudit } from '../node/node-audit.ts';
import { InfraError } from '../protocol/errors.ts';
import { crashEnv } from './helpers/crash.ts';

const CHILD = fileURLToPath(new URL('./helpers/audit-append-child.ts', import.meta.url));

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

type BatchOp = { key: string; value: string };

/**
 * Counts the batches the log hands to the real LevelDB sublevel and records, in one event list,
 * when each batch finished its synced write and when each append resolved. `hold()` keeps the next
 * batches from starting their write until `release()`.
 */
function observe(sub: AuditDb) {
  const batches: { seqs: number[]; sync: boolean }[] = [];
  const events: string[] = [];
  let gate: Promise<void> = Promise.resolve();
  let open: () => void = () => {};
  const real = sub.batch.bind(sub) as unknown as (
    ops: BatchOp[],
    opts: Record<string, unknown>,
  ) => Promise<void>;
  (sub as unknown as { batch: unknown }).batch = async (ops: BatchOp[], opts: Record<string, unknown>) => {
    const i = batches.push({ seqs: ops.map((o) => Number(o.key)), sync: opts['sync'] === true }) - 1;
    await gate;
    await real(ops, opts);
    events.push(`synced ${i}`);
  };
  return {
    batches,
    events,
    hold: () => {
      gate = new Promise((r) => {
        open = r;
      });
    },
    release: () => open(),
    /** Records the acknowledgement of `r` and passes it on. */
    ackedThen: <R extends { seq: number }>(r: R): R => {
      events.push(`ack ${r.seq}`);
      return r;
    },
  };
}

/** Every acknowledgement comes after the synced write of the batch that holds its record. */
function ackedAfterSync(o: ReturnType<typeof observe>): void {
  for (const [i, e] of o.events.entries()) {
    if (!e.startsWith('ack ')) continue;
    const seq = Number(e.slice(4));
    const b = o.batches.findIndex((x) => x.seqs.includes(seq));
    expect(b, `record ${seq} was in no batch`).toBeGreaterThanOrEqual(0);
    expect(o.batches[b]!.sync).toBe(true);
    const synced = o.events.indexOf(`synced ${b}`);
    expect(synced, `record ${seq} acknowledged before its batch was synced`).toBeGreaterThanOrEqual(0);
    expect(synced).toBeLessThan(i);
  }
}

describe('AuditLog group commit', () => {
  it('concurrent appends share one synced batch; each resolves only after the batch holding it', async () => {
    const db = await freshDb();
    const sub = db.sublevel('audit');
    const o = observe(sub);
    const log = await AuditLog.open(sub);
    const first = await Promise.all(
      Array.from({ length: 64 }, (_, i) => log.append({ i }).then((r) => o.ackedThen(r))),
    );
    // 64 appends in one tick: one batch, one sync.
    expect(o.batches).toEqual([{ seqs: first.map((r) => r.seq), sync: true }]);

    // Appends that arrive while a batch is on its way to disk wait for the next batch, together.
    o.hold();
    const lone = log.append({ lone: true }).then((r) => o.ackedThen(r));
    await new Promise((r) => setImmediate(r));
    const burst = Array.from({ length: 20 }, (_, i) => log.append({ burst: i }).then((r) => o.ackedThen(r)));
    await new Promise((r) => setTimeout(r, 20));
    // Nothing of the held batch or the burst behind it is acknowledged, nor vouched for by head().
    expect(o.events.filter((e) => e.startsWith('ack ')).length).toBe(64);
    expect(log.head().seq).toBe(64);
    expect(log.tail().seq).toBe(85);
    o.release();
    const later = await Promise.all([lone, ...burst]);
    expect(later.map((r) => r.seq)).toEqual(Array.from({ length: 21 }, (_, i) => 65 + i));
    expect(o.batches.slice(1).map((b) => b.seqs)).toEqual([[65], later.slice(1).map((r) => r.seq)]);
    ackedAfterSync(o);
    expect(log.head()).toEqual({ seq: 85, hash: later.at(-1)!.hash });
    expect(await log.verify()).toEqual({ ok: true, count: 85 });
  });

  it('a failed batch fails every append in it and queued behind it, and nothing after', async () => {
    const db = await freshDb();
    const sub = db.sublevel('audit');
    const o = observe(sub);
    const log = await AuditLog.open(sub);
    await log.append({ ok: 1 });
    o.hold();
    const held = log.append({ held: true });
    await new Promise((r) => setImmediate(r));
    const queued = [log.append({ q: 1 }), log.append({ q: 2 })];
    await db.close(); // the held write now fails
    o.release();
    for (const p of [held, ...queued]) await expect(p).rejects.toMatchObject({ code: 'AuditWriteFailed' });
    await expect(log.append({ after: true })).rejects.toMatchObject({ code: 'AuditWriteFailed' });
    expect(log.head().seq).toBe(1);
  });

  it("a node's checkpoint joins the batch of the record it follows and names it", async () => {
    const db = await freshDb();
    const sub = db.sublevel('audit');
    const o = observe(sub);
    const key = await generateIdentityKey();
    const audit = new NodeAudit(await AuditLog.open(sub), 'node-1', identitySigner(key), {
      checkpointEvery: 4,
    });
    try {
      const recs = await Promise.all(
        Array.from({ length: 4 }, (_, i) => audit.append({ event: 'request', i })),
      );
      expect(o.batches).toHaveLength(1);
      expect(o.batches[0]!.seqs).toEqual([1, 2, 3, 4, 5]);
      const page = await audit.page(undefined, 100);
      const cp = page.records[4]!;
      expect(cp.entry).toMatchObject({ event: AUDIT_HEAD_EVENT, seq: 4, hash: recs[3]!.hash });
      expect(
        verifyNodeAuditPage({
          nodeId: 'node-1',
          peerId: peerIdOf(key),
          records: page.records,
          head: page.head,
        }),
      ).toMatchObject({ ok: true, checkpoints: 1, last: { seq: 5 } });
    } finally {
      audit.stop();
    }
  });
});

/**
 * Runs the child until `stopAfter` acknowledgements (then SIGKILL; 0: never) or until it dies by
 * itself (an armed crash point).
 */
async function runChild(
  dir: string,
  stopAfter: number,
  env: Record<string, string> = {},
): Promise<{ ready: number; acks: Map<number, string>; signal: NodeJS.Signals | null }> {
  const child = spawn(process.execPath, [CHILD, dir, '16'], {
    stdio: ['ignore', 'pipe', 'inherit'],
    env: { ...process.env, ...env },
  });
  const acks = new Map<number, string>();
  let ready = -1;
  const lines = createInterface({ input: child.stdout! });
  lines.on('line', (line) => {
    const [a, b] = line.split(' ');
    if (a === 'ready') {
      ready = Number(b);
      return;
    }
    acks.set(Number(a), b!);
    if (acks.size === stopAfter) child.kill('SIGKILL');
  });
  const signal = await new Promise<NodeJS.Signals | null>((resolve) =>
    child.on('close', (_code, sig) => resolve(sig)),
  );
  return { ready, acks, signal };
}

async function reopen(dir: string): Promise<{ db: Level; log: AuditLog }> {
  const db = new Level(dir);
  await db.open();
  dbs.push(db);
  return { db, log: await AuditLog.open(db.sublevel('audit')) };
}

describe('AuditLog group commit across a crash (real processes)', () => {
  it('a process killed while batches are written and synced loses no acknowledged record', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'audit-crash-'));
    dirs.push(dir);
    const acked = new Map<number, string>();
    let lastReady = -1;
    for (const stopAfter of [150, 301, 457]) {
      const run = await runChild(dir, stopAfter);
      expect(run.signal).toBe('SIGKILL');
      // Each run continues the chain where the killed one left it: at or after its last acknowledgement.
      expect(run.ready).toBeGreaterThanOrEqual(Math.max(0, ...acked.keys()));
      expect(run.ready).toBeGreaterThan(lastReady);
      lastReady = run.ready;
      for (const [seq, hash] of run.acks) acked.set(seq, hash);
    }
    const { log } = await reopen(dir);
    const verified = await log.verify();
    expect(verified.ok).toBe(true);
    const top = Math.max(...acked.keys());
    expect(verified.count).toBeGreaterThanOrEqual(top);
    // Every acknowledged record is on disk, with the hash it was acknowledged with.
    const onDisk = new Map<number, string>();
    for (let after = 0; after < verified.count; ) {
      const page = await log.list({ after, limit: 1000 });
      for (const r of page) onDisk.set(r.seq, r.hash);
      after = page.at(-1)!.seq;
    }
    for (const [seq, hash] of acked) expect(onDisk.get(seq), `acknowledged record ${seq}`).toBe(hash);
  }, 60_000);

  it('crash points around the synced batch: before, nothing of it is kept; after, all of it is', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'audit-crash-'));
    dirs.push(dir);
    const before = await runChild(dir, 0, crashEnv('audit.commit.before'));
    expect(before.signal).toBe('SIGKILL');
    expect(before.acks.size).toBe(0);
    let { db, log } = await reopen(dir);
    expect(await log.verify()).toEqual({ ok: true, count: 0 });
    await db.close();

    const after = await runChild(dir, 0, crashEnv('audit.commit.after'));
    expect(after.signal).toBe('SIGKILL');
    expect(after.acks.size).toBe(0);
    ({ db, log } = await reopen(dir));
    // The first batch (the 16 appends made in the child's first tick) was synced before the kill:
    // kept whole, though none of it was acknowledged, and the chain verifies.
    expect(await log.verify()).toEqual({ ok: true, count: 16 });
    expect((await log.append({ next: true })).seq).toBe(17);
  }, 30_000);
});
