/**
 * A node restored from an old backup (threats F-34, S-02; invariants I1, I5, I6), on real
 * processes with SoftHSM2: node-3's data dir is copied at epoch 0, the cluster refreshes to
 * epoch 1, and the copy is put back. The restored node must not sign with its stale epoch: asked
 * for epoch 1 it answers EpochMismatch, asked for epoch 0 it cannot even open the old share (the
 * HSM destroyed that epoch's key on activation: fail closed). Signing goes on with the others,
 * naming node-3 as excluded; `repair` brings it back (same epoch), after which it signs again and
 * takes part in the next refresh.
 */
import { cpSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { isKmsError } from '../protocol/errors.ts';
import { keySpec, verifySignature } from '../protocol/suites.ts';
import { type CrashNet, createCrashNet } from './helpers/crash.ts';

const SPEC = keySpec('FROST_ED25519');
const hex = (b: Uint8Array) => Buffer.from(b).toString('hex');
const codeOf = (e: unknown) => (isKmsError(e) ? e.code : String(e));

describe('restore a node from an old backup (F-34)', () => {
  let net: CrashNet;
  beforeAll(async () => {
    net = await createCrashNet(3, { sessionTimeoutMs: 5_000, signTimeoutMs: 4_000 });
  }, 120_000);
  afterAll(async () => {
    await net?.close();
  }, 60_000);

  let n = 0;
  async function sign(keyId: string, publicKey: string) {
    const msg = Buffer.from(`restore ${n++}`);
    const r = await net.devnet.api('POST', `/v1/keys/${keyId}/sign`, { message: hex(msg) });
    expect(r.status, JSON.stringify(r.body)).toBe(200);
    expect(
      verifySignature(SPEC, msg, Buffer.from(r.body.signature, 'hex'), Buffer.from(publicKey, 'hex')),
    ).toBe(true);
    return r.body as {
      signers: string[];
      excluded: { participant: string; reason: string }[];
      epoch: number;
    };
  }
  const epochOf = async (node: string, keyId: string) =>
    (await net.keysOf(node)).find((k) => k.keyId === keyId)?.activeEpoch;

  it('refuses its stale epoch, the others sign, repair brings it back', async () => {
    const created = await net.devnet.api('POST', '/v1/keys', { keySpec: SPEC.name, threshold: 2 });
    expect(created.status).toBe(201);
    const { keyId, publicKey } = created.body;
    await sign(keyId, publicKey);

    // Backup of node-3's data dir, taken with the node stopped, at epoch 0.
    const data = join(net.dir, 'node-3', 'data');
    const backup = join(net.dir, 'node-3-backup');
    await net.stop('node-3');
    cpSync(data, backup, { recursive: true });
    await net.restart('node-3');
    await net.waitApi();

    const refreshed = await net.devnet.api('POST', `/v1/keys/${keyId}/refresh`, {});
    expect(refreshed.status, JSON.stringify(refreshed.body)).toBe(200);
    expect(refreshed.body.epoch).toBe(1);
    for (const node of net.nodeIds) expect(await epochOf(node, keyId)).toBe(1);

    // Restore the old copy.
    await net.stop('node-3');
    rmSync(data, { recursive: true, force: true });
    cpSync(backup, data, { recursive: true });
    await net.restart('node-3');
    await net.waitApi();
    expect(await epochOf('node-3', keyId)).toBe(0);

    // Asked for the cluster's epoch it refuses; asked for its stale one it cannot open the share.
    // (Each with a sign request signed by the devnet admin: the node checks it before the key.)
    const auth = () => net.signAuth(keyId, hex(Buffer.from('restored')));
    const current = await net
      .rpc('node-3', { op: 'sign-commit', sessionId: 'restore-1', keyId, epoch: 1, auth: auth() })
      .catch((e) => e);
    expect(codeOf(current)).toBe('EpochMismatch');
    const stale = await net
      .rpc('node-3', { op: 'sign-commit', sessionId: 'restore-0', keyId, epoch: 0, auth: auth() })
      .catch((e) => e);
    expect(codeOf(stale), `stale epoch answered ${JSON.stringify(stale)}`).toBe('SealError');
    expect(stale.message).not.toMatch(/[0-9a-f]{64}/); // a clear error, no key material in it

    // Signing goes on with node-1 and node-2; whenever node-3 is asked it is named as excluded.
    let named = 0;
    for (let i = 0; i < 3; i++) {
      const s = await sign(keyId, publicKey);
      expect(s.signers).not.toContain('node-3');
      if (s.excluded.some((b) => b.participant === 'node-3')) named++;
    }
    expect(named).toBeGreaterThan(0);
    expect(await epochOf('node-3', keyId)).toBe(0); // nothing made it skip to an epoch it cannot prove

    // Repair rebuilds node-3's share of the current epoch from two helpers.
    const repaired = await net.devnet.api('POST', `/v1/keys/${keyId}/repair`, { participant: 'node-3' });
    expect(repaired.status, JSON.stringify(repaired.body)).toBe(200);
    expect(repaired.body).toMatchObject({ publicKey, epoch: 1 });
    for (const node of net.nodeIds) expect(await epochOf(node, keyId)).toBe(1);
    const signedBy3 = async () => {
      let count = 0;
      for (let i = 0; i < 3; i++) {
        const s = await sign(keyId, publicKey);
        expect(s.excluded).toEqual([]);
        if (s.signers.includes('node-3')) count++;
      }
      return count;
    };
    expect(await signedBy3()).toBeGreaterThan(0);

    // And it takes part in the next refresh like any member (which the stale copy could not).
    const again = await net.devnet.api('POST', `/v1/keys/${keyId}/refresh`, {});
    expect(again.status, JSON.stringify(again.body)).toBe(200);
    expect(again.body.epoch).toBe(2);
    for (const node of net.nodeIds) expect(await epochOf(node, keyId)).toBe(2);
    expect(await signedBy3()).toBeGreaterThan(0);
  }, 120_000);
});
