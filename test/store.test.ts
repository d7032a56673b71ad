import { spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { Level } from 'level';
import { afterEach, describe, expect, it } from 'vitest';
import { AuditLog } from '../common/audit-log.ts';
import { SoftwareSealer } from '../node/sealer-software.ts';
import type { FrostPublic } from '@noble/curves/abstract/frost.js';
import { type EpochRecordStored, NodeStore, type StoredCertificate } from '../node/store.ts';
import { certFromHex } from '../net/certificate.ts';
import { fromHex, toHex } from '../protocol/bytes.ts';
import { dkgMachine } from '../protocol/dkg.ts';
import { activate, propose, proposeFirst, repaired } from '../protocol/epoch.ts';
import { InfraError, type KmsError, StateError } from '../protocol/errors.ts';
import { asEpoch, asKeyId, asSessionId } from '../protocol/ids.ts';
import { publicToHex } from '../protocol/packages.ts';
import { simulate } from '../protocol/simulate.ts';
import { KEY_SPEC_REGISTRY } from '../protocol/suites.ts';
import { KEY_ID, newKeys, pids, runRefresh } from './key-events-fixture.ts';

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

/**
 * A real key's chain of epochs, made once by the production machines (protocol/dkg.ts, then
 * refreshes): the store now proves every activation (protocol/epoch.ts), so records carry real
 * packages and certificates. Confirmations do not bind the key id, so any key id may use it.
 */
const SPEC = KEY_SPEC_REGISTRY.FROST_ED25519;
const IDS = pids(SPEC, [1, 2, 3]);
type ChainEpoch = {
  public: FrostPublic;
  sessionId: string;
  transcriptHash: string;
  certificate: StoredCertificate;
};
function chainOf(epochs: number): ChainEpoch[] {
  const sessionId = asSessionId(`store-dkg-${randomBytes(4).toString('hex')}`);
  const d = simulate(
    IDS.map((self) =>
      dkgMachine({ spec: SPEC, keyId: KEY_ID, sessionId, self, participants: IDS, threshold: 2 }),
    ),
  );
  const r0 = d.results.get(IDS[0]!)!;
  const hexCert = (c: Record<string, { R: Uint8Array; z: Uint8Array }>): StoredCertificate =>
    Object.fromEntries(Object.entries(c).map(([p, v]) => [p, { R: toHex(v.R), z: toHex(v.z) }]));
  const out: ChainEpoch[] = [
    {
      public: r0.key.public,
      sessionId,
      transcriptHash: toHex(r0.transcriptHash),
      certificate: hexCert(r0.confirmations),
    },
  ];
  let keys = new Map([...d.results].map(([p, r]) => [p, r.key]));
  for (let e = 1; e < epochs; e++) {
    const ev = runRefresh(SPEC, keys, e - 1);
    const r = ev.results.get(IDS[0]!)!;
    out.push({
      public: r.public,
      sessionId: r.certificate.sessionId,
      transcriptHash: toHex(r.transcriptHash),
      certificate: hexCert(r.certificate.confirmations),
    });
    keys = newKeys(ev);
  }
  return out;
}
const CHAIN = chainOf(4);

function epochRecord(
  keyId: string,
  epoch: number,
  status: 'pending' | 'active' = 'pending',
  chain: readonly ChainEpoch[] = CHAIN,
): EpochRecordStored {
  const c = chain[epoch] ?? chain[0]!;
  return {
    keyId,
    keySpec: 'FROST_ED25519',
    epoch,
    threshold: 2,
    participants: ['node-1', 'node-2', 'node-3'],
    participant: IDS[0]!,
    public: publicToHex(c.public),
    transcriptHash: '',
    status,
    sessionId: c.sessionId,
  };
}

/** The complete certificate of `epoch` of the chain (what a key event hands the store). */
const proof = (epoch: number, chain: readonly ChainEpoch[] = CHAIN) => ({
  transcriptHash: chain[epoch]!.transcriptHash,
  certificate: chain[epoch]!.certificate,
});
const cert = CHAIN[0]!.certificate;

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
    expect(await s.activateEpoch('key-1', 0, proof(0))).toEqual([]);
    expect(await s.getKey('key-1')).toEqual({
      keyId: 'key-1',
      keySpec: 'FROST_ED25519',
      state: 'Enabled',
      activeEpoch: 0,
    });
    const active0 = await s.getActiveEpoch('key-1');
    expect(active0?.status).toBe('active');
    expect(active0?.certificate).toEqual(cert);
    expect(active0?.transcriptHash).toBe(CHAIN[0]!.transcriptHash);

    // A reshare: epoch 1 pending beside active epoch 0; both shares present until activation.
    await s.putPendingEpoch(epochRecord('key-1', 1), Uint8Array.of(4, 5, 6));
    expect((await s.getActiveEpoch('key-1'))?.epoch).toBe(0);
    expect(await s.getSealedShare('key-1', 0)).toEqual(Uint8Array.of(1, 2, 3));
    expect(await s.getSealedShare('key-1', 1)).toEqual(Uint8Array.of(4, 5, 6));
    expect(await s.listEpochs('key-1')).toEqual([0, 1]);

    expect(await s.activateEpoch('key-1', 1, proof(1))).toEqual([0]);
    expect(await s.getSealedShare('key-1', 0)).toBeUndefined();
    expect(await s.getEpoch('key-1', 0)).toBeUndefined();
    expect((await s.getActiveEpoch('key-1'))?.epoch).toBe(1);
    expect(await s.listEpochs('key-1')).toEqual([1]);
    // Idempotent.
    expect(await s.activateEpoch('key-1', 1, proof(1))).toEqual([]);

    // Survives a restart.
    await s.close();
    const s2 = await openStore(dir);
    expect((await s2.getActiveEpoch('key-1'))?.epoch).toBe(1);
    expect(await s2.getSealedShare('key-1', 1)).toEqual(Uint8Array.of(4, 5, 6));
  });

  it('enforces the epoch rules', async () => {
    const s = await openStore(await tempDir());
    await s.putPendingEpoch(epochRecord('k', 0), Uint8Array.of(1));
    await s.activateEpoch('k', 0, proof(0));
    // Not after the active epoch.
    expect(await code(s.putPendingEpoch(epochRecord('k', 0), Uint8Array.of(1)))).toBe('EpochMismatch');
    await s.putPendingEpoch(epochRecord('k', 1), Uint8Array.of(2));
    // A second, different pending epoch.
    expect(await code(s.putPendingEpoch(epochRecord('k', 2), Uint8Array.of(3)))).toBe('InvalidKeyState');
    // Activation of an epoch that is not pending.
    expect(await code(s.activateEpoch('k', 5, proof(3)))).toBe('InvalidKeyState');
    // Malformed records are refused before anything is written.
    expect(await code(s.putPendingEpoch({ ...epochRecord('k', 3), threshold: 0 }, Uint8Array.of(1)))).toBe(
      'ValidationError',
    );
    expect(await code(s.putPendingEpoch(epochRecord('bad/id', 3), Uint8Array.of(1)))).toBe('ValidationError');
    expect(await code(s.putPendingEpoch(epochRecord('k', 3), new Uint8Array(0)))).toBe('ValidationError');
  });

  it("refuses what protocol/epoch.ts refuses, with epoch.ts's own error: incomplete certificate, epoch not forward, second pending, other group element", async () => {
    const s = await openStore(await tempDir());
    /** The store's refusal and the pure function's, as {code, message}: they must be the same. */
    const refusal = async (p: Promise<unknown>) => {
      const e = (await p.then(
        () => undefined,
        (x: unknown) => x,
      )) as KmsError | undefined;
      return e && { code: e.code, message: e.message };
    };
    const thrown = (f: () => unknown) => {
      try {
        f();
      } catch (e) {
        return { code: (e as KmsError).code, message: (e as KmsError).message };
      }
      return undefined;
    };
    const rec = (c: ChainEpoch, epoch: number) => ({
      epoch: asEpoch(epoch),
      public: c.public,
      sessionId: asSessionId(c.sessionId),
    });
    const certOf = (c: ChainEpoch, epoch: number, certificate = c.certificate) =>
      certFromHex('k', epoch, c.transcriptHash, CHAIN[0]!.public.commitments[0]!, certificate, c.sessionId);
    const [c0, c1, c2] = [CHAIN[0]!, CHAIN[1]!, CHAIN[2]!];

    // A DKG's first epoch with one confirmation missing: `activate` refuses; it stays pending.
    await s.putPendingEpoch(epochRecord('k', 0), Uint8Array.of(1));
    const { [IDS[2]!]: _gone, ...partial } = c0.certificate;
    const first = proposeFirst(asKeyId('k'), 'FROST_ED25519', rec(c0, 0));
    const incomplete = await refusal(s.activateEpoch('k', 0, { ...proof(0), certificate: partial }));
    expect(incomplete).toEqual(thrown(() => activate(first, certOf(c0, 0, partial))));
    expect(incomplete?.code).toBe('ProtocolAborted');
    // Confirmations over another transcript hash: refused the same way.
    const otherHash = await refusal(
      s.activateEpoch('k', 0, { ...proof(0), transcriptHash: c1.transcriptHash }),
    );
    expect(otherHash).toEqual(
      thrown(() => activate(first, { ...certOf(c0, 0), transcriptHash: fromHex(c1.transcriptHash) })),
    );
    expect(await s.getKey('k')).toMatchObject({ pendingEpoch: 0 });
    expect(await s.getKey('k')).not.toHaveProperty('activeEpoch');
    expect(await s.activateEpoch('k', 0, proof(0))).toEqual([]);

    const st0 = activate(first, certOf(c0, 0)).state;
    // An epoch that does not move forward.
    const notForward = await refusal(s.putPendingEpoch(epochRecord('k', 0), Uint8Array.of(2)));
    expect(notForward).toEqual(thrown(() => propose(st0, rec(c0, 0))));
    expect(notForward?.code).toBe('EpochMismatch');
    // Another key's package (another group element) as the next epoch.
    const other = chainOf(2);
    const otherKey = await refusal(
      s.putPendingEpoch(epochRecord('k', 1, 'pending', other), Uint8Array.of(2)),
    );
    expect(otherKey).toEqual(thrown(() => propose(st0, rec(other[1]!, 1))));
    expect(otherKey?.code).toBe('InvalidKeyState');
    // A second pending epoch while one is pending.
    await s.putPendingEpoch(epochRecord('k', 1), Uint8Array.of(3));
    const st1 = propose(st0, rec(c1, 1));
    const second = await refusal(s.putPendingEpoch(epochRecord('k', 2), Uint8Array.of(4)));
    expect(second).toEqual(thrown(() => propose(st1, rec(c2, 2))));
    expect(second?.code).toBe('InvalidKeyState');
    // A certificate of another epoch for the pending one.
    const wrongCert = await refusal(s.activateEpoch('k', 1, proof(2)));
    expect(wrongCert).toEqual(thrown(() => activate(st1, certOf(c2, 1))));
    // Nothing of that was written: epoch 0 active with its share, epoch 1 pending with its own.
    expect(await s.getKey('k')).toMatchObject({ activeEpoch: 0, pendingEpoch: 1 });
    expect(await s.getSealedShare('k', 0)).toEqual(Uint8Array.of(1));
    expect(await s.getSealedShare('k', 1)).toEqual(Uint8Array.of(3));
    // The same epoch again replaces the stale pending one (`abort`, then `propose`): a new attempt.
    await s.putPendingEpoch(epochRecord('k', 1), Uint8Array.of(5));
    expect(await s.getSealedShare('k', 1)).toEqual(Uint8Array.of(5));
    expect(await s.activateEpoch('k', 1, proof(1))).toEqual([0]);

    // Repair: never an older epoch, never another group element (`repaired`).
    const st1a = activate(st1, certOf(c1, 1)).state;
    const older = await refusal(s.putRepairedEpoch(epochRecord('k', 0, 'active'), Uint8Array.of(6)));
    expect(older).toEqual(thrown(() => repaired(st1a, asKeyId('k'), 'FROST_ED25519', rec(c0, 0))));
    expect(older?.code).toBe('EpochMismatch');
    const foreign = await refusal(s.putRepairedEpoch(epochRecord('k', 1, 'active', other), Uint8Array.of(6)));
    expect(foreign).toEqual(thrown(() => repaired(st1a, asKeyId('k'), 'FROST_ED25519', rec(other[1]!, 1))));
    expect(foreign?.code).toBe('InvalidKeyState');
    expect(await s.getSealedShare('k', 1)).toEqual(Uint8Array.of(5));
  });

  it('discards a pending epoch; an aborted DKG forgets the key', async () => {
    const s = await openStore(await tempDir());
    await s.putPendingEpoch(epochRecord('dkg', 0), Uint8Array.of(1));
    expect(await s.discardPendingEpoch('dkg', 0)).toBe(true);
    expect(await s.getKey('dkg')).toBeUndefined();
    expect(await s.listEpochs('dkg')).toEqual([]);

    await s.putPendingEpoch(epochRecord('k', 0), Uint8Array.of(1));
    await s.activateEpoch('k', 0, proof(0));
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
    await s.activateEpoch('k', 0, proof(0));
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
    await s.activateEpoch('r', 0, proof(0));
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
      await s.activateEpoch(id, 0, proof(0));
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
      await s.activateEpoch('k', epoch, proof(epoch));
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
        await s.activateEpoch('k', 0, ${JSON.stringify(proof(0))});
        await s.putPendingEpoch(${rec(1)}, Uint8Array.of(11));
        if (${JSON.stringify(stage)} === 'activated') await s.activateEpoch('k', 1, ${JSON.stringify(proof(1))});
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
    const e = await s.activateEpoch('missing', 1, proof(1)).catch((x: unknown) => x);
    expect(e).toBeInstanceOf(StateError);
  });
});
