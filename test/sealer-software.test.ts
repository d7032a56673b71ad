import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Level } from 'level';
import { afterEach, describe, expect, it } from 'vitest';
import { PinGuard } from '../node/pin-guard.ts';
import type { SealContext } from '../node/sealer.ts';
import { levelSealerKeyStore, SoftwareSealer } from '../node/sealer-software.ts';
import { InfraError } from '../protocol/errors.ts';

const cleanups: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

async function freshDb(): Promise<{ db: Level; dir: string }> {
  const dir = await mkdtemp(join(tmpdir(), 'sealer-sw-'));
  const db = new Level(dir);
  await db.open();
  cleanups.push(async () => {
    await db.close();
    await rm(dir, { recursive: true, force: true });
  });
  return { db, dir };
}

async function openSealer(
  db: Level,
  passphrase: string,
  extra: { guard?: PinGuard } = {},
): Promise<SoftwareSealer> {
  const s = await SoftwareSealer.open({
    passphrase,
    keyStore: levelSealerKeyStore(db.sublevel('sealer')),
    scryptLogN: 12,
    ...extra,
  });
  cleanups.push(() => s.close());
  return s;
}

const ctx: SealContext = { scope: 'key-1/1', nodeId: 'node-1', purpose: 'share' };
const secret = new TextEncoder().encode('a 32-byte secret share, honestly');

async function sealErr(p: Promise<unknown>): Promise<string> {
  const e = await p.then(
    () => undefined,
    (x: unknown) => x,
  );
  expect(e).toBeInstanceOf(InfraError);
  return (e as InfraError).code;
}

// Seal/unseal, AAD binding, tampering, destroyScope, listScopes, reopen: test/sealer-contract.test.ts.
describe('SoftwareSealer', () => {
  it('survives a restart with the same passphrase (default cost N = 2^15)', async () => {
    const { db } = await freshDb();
    const ks = levelSealerKeyStore(db.sublevel('sealer'));
    const s1 = await SoftwareSealer.open({ passphrase: 'pw', keyStore: ks });
    const blob = await s1.seal(ctx, secret);
    await s1.close();
    await expect(s1.seal(ctx, secret)).rejects.toMatchObject({ code: 'SealerUnavailable' });
    const s2 = await SoftwareSealer.open({ passphrase: 'pw', keyStore: ks });
    cleanups.push(() => s2.close());
    expect(await s2.unseal(ctx, blob)).toEqual(secret);
    const params = JSON.parse((await ks.getParams())!);
    expect(params.logN).toBe(15);
  });

  it('refuses a wrong passphrase with SealerUnavailable, never opening anything', async () => {
    const { db } = await freshDb();
    const s = await openSealer(db, 'right');
    await s.seal(ctx, secret);
    const e = await SoftwareSealer.open({
      passphrase: 'wrong',
      keyStore: levelSealerKeyStore(db.sublevel('sealer')),
    }).catch((x: unknown) => x);
    expect(e).toBeInstanceOf(InfraError);
    expect((e as InfraError).code).toBe('SealerUnavailable');
    expect((e as Error).message).not.toContain('wrong"');
    expect((e as Error).message).not.toContain('right');
  });

  it('bounds passphrase attempts with backoff', async () => {
    const { db } = await freshDb();
    await openSealer(db, 'right');
    let now = 1_000_000;
    const guard = await PinGuard.open({ maxAttempts: 3, baseDelayMs: 10_000, now: () => now });
    for (let i = 0; i < 3; i++) {
      await expect(openSealer(db, 'wrong', { guard })).rejects.toMatchObject({ code: 'SealerUnavailable' });
    }
    // Locked out: even the right passphrase is refused until the window passes.
    await expect(openSealer(db, 'right', { guard })).rejects.toThrow(/too many failed unlock attempts/);
    now += 10_001;
    await openSealer(db, 'right', { guard });
    expect(guard.state()).toEqual({ failures: 0, lockedUntil: 0 });
  });

  it('a blob copied to another node does not open there', async () => {
    const a = await freshDb();
    const b = await freshDb();
    const sa = await openSealer(a.db, 'same passphrase');
    const sb = await openSealer(b.db, 'same passphrase');
    const blob = await sa.seal(ctx, secret);
    await sb.seal(ctx, new Uint8Array(4)); // node b has its own key for the same scope
    expect(await sealErr(sb.unseal(ctx, blob))).toBe('SealError');
    expect(await sealErr(sb.unseal({ ...ctx, nodeId: 'node-2' }, blob))).toBe('SealError');
  });

  it('concurrent first seals of a scope share one key', async () => {
    const { db } = await freshDb();
    const s = await openSealer(db, 'pw');
    const blobs = await Promise.all(Array.from({ length: 8 }, () => s.seal(ctx, secret)));
    await s.close();
    const s2 = await openSealer(db, 'pw');
    for (const b of blobs) expect(await s2.unseal(ctx, b)).toEqual(secret);
  });
});

describe('PinGuard persistence', () => {
  it('keeps the failure count across restarts and refuses a corrupt counter file', async () => {
    const { dir } = await freshDb();
    const statePath = join(dir, 'pin-guard.json');
    let now = 1_000;
    const g1 = await PinGuard.open({ statePath, maxAttempts: 2, baseDelayMs: 5_000, now: () => now });
    await g1.recordFailure();
    await g1.recordFailure();
    // A "restarted" node sees the lockout.
    const g2 = await PinGuard.open({ statePath, maxAttempts: 2, baseDelayMs: 5_000, now: () => now });
    expect(g2.state()).toEqual({ failures: 2, lockedUntil: 6_000 });
    expect(() => g2.check()).toThrow(/try again in 5 s/);
    now = 6_001;
    g2.check();
    await g2.recordSuccess();
    expect((await PinGuard.open({ statePath })).state()).toEqual({ failures: 0, lockedUntil: 0 });
    const { writeFile } = await import('node:fs/promises');
    await writeFile(statePath, '{"failures": -1}');
    await expect(PinGuard.open({ statePath })).rejects.toMatchObject({ code: 'StorageError' });
  });
});
