import { spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { Level } from 'level';
import { afterEach, describe, expect, it } from 'vitest';
import { AuditLog } from '../common/audit-log.ts';
import { SoftwareSealer } from '../node/sealer-software.ts';
import { type EpochRecordStored, NodeStore } from '../node/store.ts';
import { InfraError, StateError } from '../protocol/errors.ts';

const cleanups: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

async function tempDir(): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'store-'));
  cleanups.push(() => rm(dir, { recursive: true, force: true }));
  return dir;
}

async function openStore(dir: string): Promise<NodeStore> {
  const s = await NodeStore.open(dir);
  cleanups.push(async () => {
    if (s.healthy()) await s.close();
  });
  return s;
}

function epochRecord(
  keyId: string,
  epoch: number,
  status: 'pending' | 'active' = 'pending',
): EpochRecordStored {
  return {
    keyId,
    keySpec: 'FROST_ED25519',
    epoch,
    threshold: 2,
    participants: ['node-1', 'node-2', 'node-3'],
    participant: `${'00'.repeat(31)}01`,
    public: {
      min: 2,
      max: 3,
      commitments: [randomBytes(32).toString('hex'), randomBytes(32).toString('hex')],
      verifyingShares: { [`${'00'.repeat(31)}01`]: randomBytes(32).toString('hex') },
    },
    transcriptHash: '',
    status,
    sessionId: `s-${epoch}`,
  };
}

const cert = { [`${'00'.repeat(31)}01`]: { R: 'aa'.repeat(32), z: 'bb'.repeat(32) } };

async function code(p: Promise<unknown>): Promise<string> {
  const e = await p.then(
    () => undefined,
    (x: unknown) => x,
  );
  expect(e).toBeDefined();
  return (e as InfraError).code;
}

describe('NodeStore', () => {
  it('refuses a second open of the same directory in this process: StoreLocked', async () => {
    const dir = await tempDir();
    await openStore(dir);
    const e = await NodeStore.open(dir).catch((x: unknown) => x);
    expect(e).toBeInstanceOf(InfraError);
    expect((e as InfraError).code).toBe('StoreLocked');
    expect((e as Error).message).toContain(dir);
  });

  it('refuses an open from another process: StoreLocked', async () => {
    const dir = await tempDir();
    await openStore(dir);
    const storeUrl = new URL('../node/store.ts', import.meta.url).href;
    const script = `import { NodeStore } from ${JSON.stringify(storeUrl)};
      try { await NodeStore.open(${JSON.stringify(dir)}); console.log('OPENED'); }
      catch (e) { console.log('CODE=' + e.code); }`;
    const r = spawnSync(process.execPath, ['--input-type=module', '-e', script], {
      encoding: 'utf8',
      timeout: 30_000,
    });
    expect(r.stdout.trim()).toBe('CODE=StoreLocked');
  });

  it('stores a pending epoch and activates it atomically, deleting older epochs', async () => {
    const dir = await tempDir();
    const s = await openStore(dir);
    const e0 = epochRecord('key-1', 0);
    await s.putPendingEpoch(e0, Uint8Array.of(1, 2, 3));
    expect(await s.getKey('key-1')).toEqual({
      keyId: 'key-1',
      keySpec: 'FROST_ED25519',
      state: 'Enabled',
      pendingEpoch: 0,
    });
    expect(await s.getActiveEpoch('key-1')).toBeUndefined();
    expect(await s.activateEpoch('key-1', 0, { transcriptHash: 'ab'.repeat(32), certificate: cert })).toEqual(
      [],
    );
    expect(await s.getKey('key-1')).toEqual({
      keyId: 'key-1',
      keySpec: 'FROST_ED25519',
      state: 'Enabled',
      activeEpoch: 0,
    });
    const active0 = await s.getActiveEpoch('key-1');
    expect(active0?.status).toBe('active');
    expect(active0?.certificate).toEqual(cert);
    expect(active0?.transcriptHash).toBe('ab'.repeat(32));

    // A reshare: epoch 1 pending beside active epoch 0; both shares present until activation.
    await s.putPendingEpoch(epochRecord('key-1', 1), Uint8Array.of(4, 5, 6));
    expect((await s.getActiveEpoch('key-1'))?.epoch).toBe(0);
    expect(await s.getSealedShare('key-1', 0)).toEqual(Uint8Array.of(1, 2, 3));
    expect(await s.getSealedShare('key-1', 1)).toEqual(Uint8Array.of(4, 5, 6));
    expect(await s.listEpochs('key-1')).toEqual([0, 1]);

    expect(await s.activateEpoch('key-1', 1, { transcriptHash: 'cd'.repeat(32), certificate: cert })).toEqual(
      [0],
    );
    expect(await s.getSealedShare('key-1', 0)).toBeUndefined();
    expect(await s.getEpoch('key-1', 0)).toBeUndefined();
    expect((await s.getActiveEpoch('key-1'))?.epoch).toBe(1);
    expect(await s.listEpochs('key-1')).toEqual([1]);
    // Idempotent.
    expect(await s.activateEpoch('key-1', 1)).toEqual([]);

    // Survives a restart.
    await s.close();
    const s2 = await openStore(dir);
    expect((await s2.getActiveEpoch('key-1'))?.epoch).toBe(1);
    expect(await s2.getSealedShare('key-1', 1)).toEqual(Uint8Array.of(4, 5, 6));
  });

  it('enforces the epoch rules', async () => {
    const s = await openStore(await tempDir());
    await s.putPendingEpoch(epochRecord('k', 0), Uint8Array.of(1));
    await s.activateEpoch('k', 0);
    // Not after the active epoch.
    expect(await code(s.putPendingEpoch(epochRecord('k', 0), Uint8Array.of(1)))).toBe('EpochMismatch');
    await s.putPendingEpoch(epochRecord('k', 1), Uint8Array.of(2));
    // A second, different pending epoch.
    expect(await code(s.putPendingEpoch(epochRecord('k', 2), Uint8Array.of(3)))).toBe('InvalidKeyState');
    // Activation of an epoch that is not pending.
    expect(await code(s.activateEpoch('k', 5))).toBe('InvalidKeyState');
    // Malformed records are refused before anything is written.
    expect(await code(s.putPendingEpoch({ ...epochRecord('k', 3), threshold: 0 }, Uint8Array.of(1)))).toBe(
      'ValidationError',
    );
    expect(await code(s.putPendingEpoch(epochRecord('bad/id', 3), Uint8Array.of(1)))).toBe('ValidationError');
    expect(await code(s.putPendingEpoch(epochRecord('k', 3), new Uint8Array(0)))).toBe('ValidationError');
  });

  it('discards a pending epoch; an aborted DKG forgets the key', async () => {
    const s = await openStore(await tempDir());
    await s.putPendingEpoch(epochRecord('dkg', 0), Uint8Array.of(1));
    expect(await s.discardPendingEpoch('dkg', 0)).toBe(true);
    expect(await s.getKey('dkg')).toBeUndefined();
    expect(await s.listEpochs('dkg')).toEqual([]);

    await s.putPendingEpoch(epochRecord('k', 0), Uint8Array.of(1));
    await s.activateEpoch('k', 0);
    await s.putPendingEpoch(epochRecord('k', 1), Uint8Array.of(2));
    expect(await s.discardPendingEpoch('k', 1)).toBe(true);
    expect(await s.getKey('k')).toEqual({
      keyId: 'k',
      keySpec: 'FROST_ED25519',
      state: 'Enabled',
      activeEpoch: 0,
    });
    expect(await s.getSealedShare('k', 1)).toBeUndefined();
    expect(await s.getSealedShare('k', 0)).toEqual(Uint8Array.of(1));
    // A late abort for the active epoch changes nothing.
    expect(await s.discardPendingEpoch('k', 0)).toBe(false);
    expect(await s.getSealedShare('k', 0)).toEqual(Uint8Array.of(1));
  });

  it('key states, destroyKey with a tombstone, repaired epochs', async () => {
    const s = await openStore(await tempDir());
    await s.putPendingEpoch(epochRecord('k', 0), Uint8Array.of(1));
    await s.activateEpoch('k', 0);
    await s.setKeyState('k', 'Disabled');
    expect((await s.getKey('k'))?.state).toBe('Disabled');
    expect(await code(s.setKeyState('nope', 'Enabled'))).toBe('KeyNotFound');
    // A repair replaces the share of the same epoch.
    await s.putRepairedEpoch(epochRecord('k', 0, 'active'), Uint8Array.of(9));
    expect(await s.getSealedShare('k', 0)).toEqual(Uint8Array.of(9));
    expect((await s.getKey('k'))?.state).toBe('Disabled');
    expect(await s.destroyKey('k')).toEqual([0]);
    expect(await s.getKey('k')).toEqual({ keyId: 'k', keySpec: 'FROST_ED25519', state: 'Destroyed' });
    expect(await s.getSealedShare('k', 0)).toBeUndefined();
    expect(await code(s.putPendingEpoch(epochRecord('k', 1), Uint8Array.of(1)))).toBe('InvalidKeyState');
    expect(await code(s.setKeyState('k', 'Enabled'))).toBe('InvalidKeyState');
    // Without a tombstone the key is forgotten entirely.
    await s.putPendingEpoch(epochRecord('r', 0), Uint8Array.of(1));
    await s.activateEpoch('r', 0);
    expect(await s.destroyKey('r', { keepTombstone: false })).toEqual([0]);
    expect(await s.getKey('r')).toBeUndefined();
    expect((await s.listKeys()).map((k) => k.keyId)).toEqual(['k']);
  });

  it('persists the identity and the used-session set', async () => {
    const dir = await tempDir();
    const s = await openStore(dir);
    expect(await s.getIdentity()).toBeUndefined();
    await s.putIdentity(Uint8Array.of(7, 7));
    expect(await s.wasSessionSeen('sess-1')).toBe(false);
    await s.markSessionSeen('sess-1', new Date('2020-01-01T00:00:00Z'));
    await s.markSessionSeen('sess-2');
    await s.close();
    const s2 = await openStore(dir);
    expect(await s2.getIdentity()).toEqual(Uint8Array.of(7, 7));
    expect(await s2.wasSessionSeen('sess-1')).toBe(true);
    expect(await s2.pruneSessions(new Date('2021-01-01T00:00:00Z'))).toBe(1);
    expect(await s2.wasSessionSeen('sess-1')).toBe(false);
    expect(await s2.wasSessionSeen('sess-2')).toBe(true);
  });

  it('validates records on read: a corrupt record is a StorageError naming its key, others still serve', async () => {
    const dir = await tempDir();
    const s = await openStore(dir);
    for (const id of ['good', 'bad']) {
      await s.putPendingEpoch(epochRecord(id, 0), Uint8Array.of(1));
      await s.activateEpoch(id, 0);
    }
    await s.close();
    const raw = new Level(dir);
    await raw
      .sublevel('keys')
      .put('bad', JSON.stringify({ keyId: 'bad', keySpec: 'FROST_ED25519', state: 'Hacked' }));
    const epochs = raw.sublevel('epochs');
    const ek = 'good!000000000000';
    const rec = JSON.parse((await epochs.get(ek))!);
    await epochs.put(ek, JSON.stringify({ ...rec, participant: 'not hex' }));
    await raw.close();

    const s2 = await openStore(dir);
    const e = await s2.getKey('bad').catch((x: unknown) => x);
    expect((e as InfraError).code).toBe('StorageError');
    expect((e as Error).message).toContain('bad');
    expect(await code(s2.listKeys())).toBe('StorageError');
    expect((await s2.getKey('good'))?.activeEpoch).toBe(0);
    const e2 = await s2.getActiveEpoch('good').catch((x: unknown) => x);
    expect((e2 as InfraError).code).toBe('StorageError');
    expect((e2 as Error).message).toContain('good!000000000000');
  });

  it('a corrupt or damaged database is a StorageError, never repaired', async () => {
    const dir = await tempDir();
    const s = await openStore(dir);
    await s.putIdentity(Uint8Array.of(1));
    await s.close();
    const files = await readdir(dir);
    const manifest = files.find((f) => f.startsWith('MANIFEST-'))!;
    const original = await readFile(join(dir, manifest));
    await writeFile(join(dir, manifest), Buffer.alloc(original.length, 0xa5));
    const e = await NodeStore.open(dir).catch((x: unknown) => x);
    expect((e as InfraError).code).toBe('StorageError');
    expect((e as Error).message).toMatch(/corrupt.*refusing to repair/);
    // The damaged files are left as they were.
    expect(await readFile(join(dir, manifest))).toEqual(Buffer.alloc(original.length, 0xa5));

    await writeFile(join(dir, manifest), original);
    await rm(join(dir, 'CURRENT'));
    const e2 = await NodeStore.open(dir).catch((x: unknown) => x);
    expect((e2 as InfraError).code).toBe('StorageError');
    expect((e2 as Error).message).toMatch(/CURRENT is missing/);
  });

  it('the LevelDB files hold only sealed shares: no plaintext share bytes on disk', async () => {
    const dir = await tempDir();
    const s = await openStore(dir);
    const sealer = await SoftwareSealer.open({
      passphrase: 'pw',
      keyStore: s.sealerKeyStore(),
      scryptLogN: 10,
    });
    const audit = await AuditLog.open(s.auditDb());
    const shares = [randomBytes(32), randomBytes(32)];
    const blobs: Uint8Array[] = [];
    for (const [epoch, share] of shares.entries()) {
      const blob = await sealer.seal({ scope: `k/${epoch}`, nodeId: 'node-1', purpose: 'share' }, share);
      blobs.push(blob);
      await s.putPendingEpoch(epochRecord('k', epoch), blob);
      await s.activateEpoch('k', epoch, { transcriptHash: 'ab'.repeat(32), certificate: cert });
      await audit.append({ event: 'epoch.active', keyId: 'k', epoch });
    }
    expect(
      await sealer.unseal(
        { scope: 'k/1', nodeId: 'node-1', purpose: 'share' },
        (await s.getSealedShare('k', 1))!,
      ),
    ).toEqual(new Uint8Array(shares[1]!));
    await sealer.close();
    await s.close();
    let all = Buffer.alloc(0);
    for (const f of await readdir(dir, { recursive: true })) {
      const p = resolve(dir, f);
      try {
        all = Buffer.concat([all, await readFile(p)]);
      } catch {
        // directories
      }
    }
    // Positive control: the sealed blob (incompressible) is found, so the search can find things.
    expect(all.includes(Buffer.from(blobs[1]!))).toBe(true);
    for (const share of shares) {
      expect(all.includes(share)).toBe(false);
      expect(all.includes(Buffer.from(share.toString('hex')))).toBe(false);
      expect(all.includes(Buffer.from(share.toString('base64')))).toBe(false);
    }
  });

  it('kill -9 after a synced write: the restarted store holds exactly the old or the new epoch', async () => {
    const storeUrl = new URL('../node/store.ts', import.meta.url).href;
    const rec = (e: number) => JSON.stringify(epochRecord('k', e));
    for (const stage of ['pending', 'activated'] as const) {
      const dir = await tempDir();
      const script = `import { NodeStore } from ${JSON.stringify(storeUrl)};
        const s = await NodeStore.open(${JSON.stringify(dir)});
        await s.putPendingEpoch(${rec(0)}, Uint8Array.of(10));
        await s.activateEpoch('k', 0);
        await s.putPendingEpoch(${rec(1)}, Uint8Array.of(11));
        if (${JSON.stringify(stage)} === 'activated') await s.activateEpoch('k', 1);
        process.kill(process.pid, 'SIGKILL');`;
      const r = spawnSync(process.execPath, ['--input-type=module', '-e', script], {
        encoding: 'utf8',
        timeout: 30_000,
      });
      expect(r.signal).toBe('SIGKILL');
      const s = await openStore(dir); // the lock died with the process
      if (stage === 'pending') {
        expect(await s.getKey('k')).toEqual({
          keyId: 'k',
          keySpec: 'FROST_ED25519',
          state: 'Enabled',
          activeEpoch: 0,
          pendingEpoch: 1,
        });
        expect(await s.getSealedShare('k', 0)).toEqual(Uint8Array.of(10));
        expect(await s.getSealedShare('k', 1)).toEqual(Uint8Array.of(11));
      } else {
        expect(await s.getKey('k')).toEqual({
          keyId: 'k',
          keySpec: 'FROST_ED25519',
          state: 'Enabled',
          activeEpoch: 1,
        });
        expect(await s.getSealedShare('k', 0)).toBeUndefined();
        expect(await s.getSealedShare('k', 1)).toEqual(Uint8Array.of(11));
      }
      await s.close();
    }
  });

  it('reports errors as typed KmsErrors', async () => {
    const s = await openStore(await tempDir());
    const e = await s.activateEpoch('missing', 1).catch((x: unknown) => x);
    expect(e).toBeInstanceOf(StateError);
  });
});
