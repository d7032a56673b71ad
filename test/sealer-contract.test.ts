/**
 * The Sealer contract (node/sealer.ts), run against both sealers: PKCS#11 on a real SoftHSM2 token
 * and the software sealer, each with its state in a real node store (LevelDB), as a node opens them
 * (node/sealer-open.ts). Backend-specific behaviour (key attributes, PIN and passphrase handling)
 * stays in test/sealer-pkcs11.test.ts and test/sealer-software.test.ts.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { PinGuard } from '../node/pin-guard.ts';
import type { SealContext, Sealer } from '../node/sealer.ts';
import { Pkcs11Sealer } from '../node/sealer-pkcs11.ts';
import { SoftwareSealer } from '../node/sealer-software.ts';
import { NodeStore } from '../node/store.ts';
import { InfraError } from '../protocol/errors.ts';
import { createTestToken, removeTokenDir, requireSoftHsm } from './helpers/softhsm.ts';

// Fails (never skips) with the install hint when SoftHSM2 is missing.
requireSoftHsm();

const cleanups: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

/** Opens the same sealer again (same token or passphrase, same node store), as a restarted node does. */
type Backend = { open(): Promise<Sealer> };

async function nodeStore(): Promise<NodeStore> {
  const dir = await mkdtemp(join(tmpdir(), 'sealer-contract-'));
  const store = await NodeStore.open(dir);
  cleanups.push(async () => {
    await store.close();
    await rm(dir, { recursive: true, force: true });
  });
  return store;
}

const BACKENDS: Record<'pkcs11' | 'software', () => Promise<Backend>> = {
  pkcs11: async () => {
    const t = await createTestToken({ label: 'node-1' });
    cleanups.push(() => removeTokenDir(t.dir));
    const store = await nodeStore();
    return {
      open: async () => {
        const s = await Pkcs11Sealer.open({
          library: t.library,
          tokenLabel: t.label,
          pin: t.pin,
          softhsmConf: t.confPath,
          guard: await PinGuard.open(),
          tombstones: store.scopeTombstones(),
        });
        cleanups.push(() => s.close());
        return s;
      },
    };
  },
  software: async () => {
    const store = await nodeStore();
    return {
      open: async () => {
        const s = await SoftwareSealer.open({
          passphrase: 'contract passphrase',
          keyStore: store.sealerKeyStore(),
          scryptLogN: 10,
        });
        cleanups.push(() => s.close());
        return s;
      },
    };
  },
};

const ctx: SealContext = { scope: 'key-1/1', nodeId: 'node-1', purpose: 'share' };
const other: SealContext = { ...ctx, scope: 'key-1/2' };
const secret = new Uint8Array(32).map((_, i) => 200 - i);

async function errCode(p: Promise<unknown>): Promise<string> {
  const e = await p.then(
    () => undefined,
    (x: unknown) => x,
  );
  expect(e).toBeInstanceOf(InfraError);
  return (e as InfraError).code;
}

for (const [name, backend] of Object.entries(BACKENDS)) {
  describe(`Sealer contract: ${name}`, () => {
    it('seal/unseal round trip; the blob never holds the plaintext; each seal has a fresh IV', async () => {
      const s = await (await backend()).open();
      expect(s.kind).toBe(name);
      const blob = await s.seal(ctx, secret);
      expect(Buffer.from(blob).includes(Buffer.from(secret))).toBe(false);
      expect(await s.unseal(ctx, blob)).toEqual(secret);
      expect(await s.seal(ctx, secret)).not.toEqual(blob);
    });

    it('binds the context as AAD: another scope, node or purpose does not open the blob', async () => {
      const s = await (await backend()).open();
      const blob = await s.seal(ctx, secret);
      await s.seal(other, secret); // the other scope's key exists, so only the binding can refuse
      expect(await errCode(s.unseal(other, blob))).toBe('SealError');
      expect(await errCode(s.unseal({ ...ctx, nodeId: 'node-2' }, blob))).toBe('SealError');
      expect(await errCode(s.unseal({ ...ctx, purpose: 'identity' }, blob))).toBe('SealError');
      expect(await s.unseal(ctx, blob)).toEqual(secret);
    });

    it('a tampered or truncated blob is refused, and the sealer keeps working', async () => {
      const s = await (await backend()).open();
      const blob = await s.seal(ctx, secret);
      for (const i of [0, 1, 4, 12, 20, blob.length - 17, blob.length - 1]) {
        const tampered = blob.slice();
        tampered[i]! ^= 0x80;
        expect(await errCode(s.unseal(ctx, tampered))).toBe('SealError');
      }
      expect(await errCode(s.unseal(ctx, blob.subarray(0, blob.length - 1)))).toBe('SealError');
      expect(await errCode(s.unseal(ctx, blob.subarray(0, 10)))).toBe('SealError');
      expect(await s.unseal(ctx, blob)).toEqual(secret);
    });

    it('destroyScope: blobs of that scope never open again, other scopes do; idempotent', async () => {
      const b = await backend();
      const s = await b.open();
      const blob = await s.seal(ctx, secret);
      const kept = await s.seal(other, secret);
      await s.destroyScope(ctx.scope);
      expect(await errCode(s.unseal(ctx, blob))).toBe('SealError');
      expect(await s.unseal(other, kept)).toEqual(secret);
      await s.destroyScope(ctx.scope);
      await s.close();
      const again = await b.open();
      expect(await errCode(again.unseal(ctx, blob))).toBe('SealError');
      expect(await again.unseal(other, kept)).toEqual(secret);
    });

    it('destroyScope leaves a tombstone: a later seal in that scope is refused, also after reopening', async () => {
      const b = await backend();
      const s = await b.open();
      await s.seal(ctx, secret);
      await s.destroyScope(ctx.scope);
      expect(await errCode(s.seal(ctx, secret))).toBe('SealError');
      // A scope destroyed before it ever had a key is tombstoned all the same.
      await s.destroyScope('key-9/0');
      expect(await errCode(s.seal({ ...ctx, scope: 'key-9/0' }, secret))).toBe('SealError');
      await s.close();
      const again = await b.open();
      expect(await errCode(again.seal(ctx, secret))).toBe('SealError');
      expect(await again.listScopes()).toEqual([]);
    });

    it('listScopes lists the scopes with a live key, not destroyed ones', async () => {
      const s = await (await backend()).open();
      expect(await s.listScopes()).toEqual([]);
      await s.seal(ctx, secret);
      await s.seal(other, secret);
      await s.seal({ scope: 'identity', nodeId: 'node-1', purpose: 'identity' }, secret);
      expect((await s.listScopes()).sort()).toEqual(['identity', 'key-1/1', 'key-1/2']);
      await s.destroyScope(other.scope);
      expect((await s.listScopes()).sort()).toEqual(['identity', 'key-1/1']);
    });

    it('close/reopen: sealed blobs open after a restart; a closed sealer refuses (SealerUnavailable)', async () => {
      const b = await backend();
      const s = await b.open();
      const blob = await s.seal(ctx, secret);
      await s.close();
      expect(await errCode(s.seal(ctx, secret))).toBe('SealerUnavailable');
      expect(await errCode(s.unseal(ctx, blob))).toBe('SealerUnavailable');
      const again = await b.open();
      expect(await again.unseal(ctx, blob)).toEqual(secret);
      expect(await again.listScopes()).toEqual([ctx.scope]);
    });
  });
}
