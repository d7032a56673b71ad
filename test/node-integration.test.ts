/**
 * Integration over real libp2p in one process: node daemons (real TCP, Noise, yamux, LevelDB,
 * each node with its own SoftHSM2 token) driven by the coordinator's Libp2pCluster. DKG, signing and every key event for
 * FROST_ED25519 and FROST_SECP256K1_TR; signing around a stopped node; an aborted event leaves the
 * old epoch usable; no share bytes in the LevelDB files.
 */
import { createPublicKey, verify as cryptoVerify } from 'node:crypto';
import { readFileSync, readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { schnorr } from '@noble/curves/secp256k1.js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { EpochInfo } from '../coordinator/cluster.ts';
import { fromHex } from '../protocol/bytes.ts';
import { isKmsError } from '../protocol/errors.ts';
import { keySpec } from '../protocol/suites.ts';
import { NodeStore } from '../node/store.ts';
import { Pkcs11Sealer } from '../node/sealer-pkcs11.ts';
import { type TestCluster, startTestCluster } from './helpers/cluster.ts';

const enc = (s: string) => new TextEncoder().encode(s);

function independentVerify(k: EpochInfo, msg: Uint8Array, sig: Uint8Array): boolean {
  if (k.keySpec === 'FROST_ED25519') {
    const key = createPublicKey({
      key: { kty: 'OKP', crv: 'Ed25519', x: Buffer.from(fromHex(k.publicKey)).toString('base64url') },
      format: 'jwk',
    });
    return cryptoVerify(null, msg, key, sig);
  }
  if (k.keySpec === 'FROST_SECP256K1_TR') return schnorr.verify(sig, msg, fromHex(k.publicKey));
  throw new Error(`no independent verifier for ${k.keySpec}`);
}

function filesUnder(dir: string): string[] {
  return readdirSync(dir).flatMap((f) => {
    const p = join(dir, f);
    return statSync(p).isDirectory() ? filesUnder(p) : [p];
  });
}

describe('node daemons over real libp2p', () => {
  let c: TestCluster;
  beforeAll(async () => {
    c = await startTestCluster(4, { sealer: 'pkcs11' });
  });
  afterAll(async () => {
    await c?.close();
  });

  for (const keySpecName of ['FROST_ED25519', 'FROST_SECP256K1_TR'] as const) {
    it(`${keySpecName}: DKG, sign, refresh, reshare (grow and raise t), repair, sign under the same key`, async () => {
      const keyId = `key-${keySpecName}`;
      const k0 = await c.cluster.createKey({
        keyId,
        keySpec: keySpecName,
        threshold: 2,
        participants: ['node-1', 'node-2', 'node-3'],
      });
      expect(k0.publicKey).toHaveLength(keySpec(keySpecName).publicKeyLength * 2);
      const m = enc(`message for ${keySpecName}`);
      const s0 = await c.cluster.sign({ key: k0, message: m });
      expect(s0.signers).toHaveLength(2);
      expect(independentVerify(k0, m, s0.signature)).toBe(true);

      const k1 = await c.cluster.refresh({ key: k0 });
      expect(k1.epoch).toBe(1);
      expect(k1.publicKey).toBe(k0.publicKey);
      expect(k1.transcriptHash).not.toBe(k0.transcriptHash);
      expect(independentVerify(k1, m, (await c.cluster.sign({ key: k1, message: m })).signature)).toBe(true);

      const k2 = await c.cluster.reshare({
        key: k1,
        threshold: 3,
        participants: ['node-1', 'node-2', 'node-3', 'node-4'],
      });
      expect(k2).toMatchObject({ epoch: 2, threshold: 3, publicKey: k0.publicKey });
      const s2 = await c.cluster.sign({ key: k2, message: m });
      expect(s2.signers).toHaveLength(3);
      expect(independentVerify(k2, m, s2.signature)).toBe(true);

      // Every member of the new committee holds the key, node-4 included.
      const status = await c.cluster.nodes();
      for (const n of ['node-1', 'node-2', 'node-3', 'node-4']) {
        expect(status.find((x) => x.id === n)?.keys).toContain(keyId);
      }

      const k3 = await c.cluster.repair({ key: k2, participant: 'node-4' });
      expect(k3.epoch).toBe(2);
      expect(independentVerify(k3, m, (await c.cluster.sign({ key: k3, message: m })).signature)).toBe(true);
    });
  }

  it('signs around a stopped node and names it; an aborted reshare leaves the old epoch usable', async () => {
    const k = await c.cluster.createKey({
      keyId: 'key-faults',
      keySpec: 'FROST_ED25519',
      threshold: 2,
      participants: ['node-1', 'node-2', 'node-3'],
    });
    await c.stopNode('node-1');
    try {
      const m = enc('node-1 is down');
      const s = await c.cluster.sign({ key: k, message: m });
      expect(s.signers).not.toContain('node-1');
      expect(independentVerify(k, m, s.signature)).toBe(true);
      // A reshare that needs node-1 in the new committee cannot finish: it aborts, names node-1,
      // and the current epoch still signs.
      const err = await c.cluster
        .reshare({ key: k, threshold: 2, participants: ['node-1', 'node-2', 'node-3'] })
        .catch((e: unknown) => e);
      expect(isKmsError(err)).toBe(true);
      expect(JSON.stringify((err as { culprits: unknown }).culprits)).toContain('node-1');
      const again = await c.cluster.sign({ key: k, message: m });
      expect(independentVerify(k, m, again.signature)).toBe(true);
    } finally {
      await c.startNode('node-1');
    }
    const back = await c.cluster.sign({ key: k, message: enc('all back') });
    expect(back.signature).toHaveLength(64);
  });

  it('nodes enforce the key state themselves: a disabled or pending-deletion key does not sign', async () => {
    const k = await c.cluster.createKey({
      keyId: 'key-states',
      keySpec: 'FROST_SECP256K1_TR',
      threshold: 2,
      participants: ['node-1', 'node-2', 'node-3'],
    });
    const m = enc('state check');
    for (const state of ['Disabled', 'PendingDeletion'] as const) {
      await c.cluster.setKeyState({ keyId: k.keyId, state });
      // Straight to the nodes, past the coordinator's own state check: every member refuses, and
      // the answer says what is true of the key (coordinator/threshold-signer.ts stateRefusal).
      const err = await c.cluster.sign({ key: k, message: m }).catch((e: unknown) => e);
      expect(isKmsError(err) && err.code).toBe('InvalidKeyState');
      expect((err as { details?: { refusedBy?: string[] } }).details?.refusedBy?.length).toBe(2);
    }
    // PendingDeletion leaves only through cancel-deletion (to Disabled); the nodes check the table.
    const back = await c.cluster.setKeyState({ keyId: k.keyId, state: 'Enabled', members: k.participants });
    expect(back.map((o) => o.error?.code)).toEqual(['InvalidKeyState', 'InvalidKeyState', 'InvalidKeyState']);
    await c.cluster.setKeyState({ keyId: k.keyId, state: 'Disabled', operation: 'cancelDeletion' });
    await c.cluster.setKeyState({ keyId: k.keyId, state: 'Enabled' });
    expect(independentVerify(k, m, (await c.cluster.sign({ key: k, message: m })).signature)).toBe(true);
  });

  it('keeps no unsealed share in the LevelDB files', async () => {
    await c.stopNode('node-2');
    try {
      const dataDir = join(c.dir, 'node-2');
      const store = await NodeStore.open(dataDir);
      const token = c.tokens.get('node-2')!;
      const sealer = await Pkcs11Sealer.open({
        library: token.library,
        tokenLabel: token.label,
        pin: token.pin,
        softhsmConf: token.confPath,
      });
      const key = await store.getKey('key-faults');
      const sealed = await store.getSealedShare('key-faults', key!.activeEpoch!);
      const share = await sealer.unseal(
        { scope: `key-faults/${key!.activeEpoch}`, nodeId: 'node-2', purpose: 'share' },
        sealed!,
      );
      await sealer.close();
      await store.close();
      expect(share.length).toBe(32);
      const hex = Buffer.from(share).toString('hex');
      for (const f of filesUnder(dataDir)) {
        const raw = readFileSync(f);
        expect(raw.includes(Buffer.from(share)), `${f} holds the share bytes`).toBe(false);
        expect(raw.includes(Buffer.from(hex)), `${f} holds the share hex`).toBe(false);
      }
    } finally {
      await c.startNode('node-2');
    }
  });
});
