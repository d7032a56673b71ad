/**
 * Issue 14 item 3 on real nodes (test/helpers/coordinator.ts startClusterCoordinator: the real
 * coordinator over three node daemons that require client-signed requests): sign with a derivation
 * path and a Taproot tweak. Each node resolves the signed path and tweak against its own custody
 * data (node/sign-tweak.ts); signatures are checked by libsecp256k1 (tiny-secp256k1) and OpenSSL
 * (node:crypto) under child keys computed independently (@scure/bip32 from the API's xpub), and a
 * coordinator that names another path than the signed one is refused by every node.
 */
import { createPublicKey, randomUUID, verify as cryptoVerify } from 'node:crypto';
import { HDKey } from '@scure/bip32';
import { initEccLib, payments } from 'bitcoinjs-lib';
import * as ecc from 'tiny-secp256k1';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type ClusterCoordinator, startClusterCoordinator } from './helpers/coordinator.ts';

let c: ClusterCoordinator;
beforeAll(async () => {
  initEccLib(ecc);
  c = await startClusterCoordinator(3);
}, 120_000);
afterAll(async () => {
  await c?.stop();
});

const hex = (b: Uint8Array | string) => Buffer.from(b).toString('hex');
const digest = (s: string) => Buffer.from(Buffer.from(s.padEnd(32, '.')).subarray(0, 32));

/** BIP341 output key (x-only) of a key-path-only output of an internal key, as bitcoinjs derives it. */
function tweakedOutput(internal: Uint8Array): Uint8Array {
  return payments.p2tr({ internalPubkey: Buffer.from(internal) }).pubkey!;
}

describe('sign with derivationPath and taprootTweak (real nodes)', () => {
  it('FROST_SECP256K1_TR: child key path, root key path, and the untweaked key verify with libsecp256k1', async () => {
    const created = await c.call('POST', '/v1/keys', { keySpec: 'FROST_SECP256K1_TR', threshold: 2 });
    expect(created.status, created.text).toBe(201);
    const k = created.body;
    const internal = Buffer.from(k.taproot.internalKey, 'hex');
    expect(k.taproot.merkleRoot).toBeNull();
    expect(k.publicKey).toBe(k.taproot.outputKey);
    expect(hex(tweakedOutput(internal))).toBe(k.publicKey);

    const sign = async (body: Record<string, unknown>) => {
      const r = await c.call('POST', `/v1/keys/${k.keyId}/sign`, body);
      expect(r.status, r.text).toBe(200);
      return r.body as { signature: string; publicKey: string };
    };
    const m = digest('root key path');
    const root = await sign({ message: hex(m) });
    expect(root.publicKey).toBe(k.publicKey);
    expect(ecc.verifySchnorr(m, Buffer.from(k.publicKey, 'hex'), Buffer.from(root.signature, 'hex'))).toBe(
      true,
    );

    const leaf = await sign({ message: hex(m), taprootTweak: 'none' });
    expect(leaf.publicKey).toBe(k.taproot.internalKey);
    expect(ecc.verifySchnorr(m, internal, Buffer.from(leaf.signature, 'hex'))).toBe(true);

    const xpub = await c.call('GET', `/v1/keys/${k.keyId}/public-key?format=xpub`);
    expect(xpub.status, xpub.text).toBe(200);
    const child = await sign({ message: hex(m), derivationPath: 'm/0/5' });
    const hd = HDKey.fromExtendedKey(xpub.body.xpub).derive('m/0/5');
    expect(child.publicKey).toBe(hex(tweakedOutput(hd.publicKey!.subarray(1))));
    expect(child.publicKey).not.toBe(k.publicKey);
    expect(
      ecc.verifySchnorr(m, Buffer.from(child.publicKey, 'hex'), Buffer.from(child.signature, 'hex')),
    ).toBe(true);
    expect(ecc.verifySchnorr(m, Buffer.from(k.publicKey, 'hex'), Buffer.from(child.signature, 'hex'))).toBe(
      false,
    );

    const hardened = await c.call('POST', `/v1/keys/${k.keyId}/sign`, {
      message: hex(m),
      derivationPath: "m/0'",
    });
    expect(hardened.status).toBe(400);
    expect(hardened.body.code).toBe('ValidationError');
    expect(hardened.body.detail).toMatch(/hardened derivation needs the parent private key/);
  }, 60_000);

  it('FROST_ED25519: a derived child signs ordinary Ed25519 signatures (OpenSSL via node:crypto)', async () => {
    const created = await c.call('POST', '/v1/keys', { keySpec: 'FROST_ED25519', threshold: 2 });
    expect(created.status, created.text).toBe(201);
    const k = created.body;
    const msg = Buffer.from('a Solana message');
    const r = await c.call('POST', `/v1/keys/${k.keyId}/sign`, {
      message: hex(msg),
      derivationPath: 'm/7/1',
    });
    expect(r.status, r.text).toBe(200);
    expect(r.body.publicKey).not.toBe(k.publicKey);
    const spki = (pub: string) =>
      createPublicKey({
        key: Buffer.concat([Buffer.from('302a300506032b6570032100', 'hex'), Buffer.from(pub, 'hex')]),
        format: 'der',
        type: 'spki',
      });
    const sig = Buffer.from(r.body.signature, 'hex');
    expect(cryptoVerify(null, msg, spki(r.body.publicKey), sig)).toBe(true);
    expect(cryptoVerify(null, msg, spki(k.publicKey), sig)).toBe(false);
    const bad = await c.call('POST', `/v1/keys/${k.keyId}/sign`, { message: hex(msg), taprootTweak: 'none' });
    expect(bad.status).toBe(400);
    expect(bad.body.detail).toMatch(/FROST_SECP256K1_TR keys only/);
  }, 60_000);

  it('every node refuses a sign-commit whose path or tweak differs from the signed body', async () => {
    const created = await c.call('POST', '/v1/keys', { keySpec: 'FROST_SECP256K1_TR', threshold: 2 });
    expect(created.status, created.text).toBe(201);
    const k = created.body;
    const body = { message: hex(digest('bound')), derivationPath: 'm/0/5' };
    for (const tweak of [
      { derivationPath: 'm/0/6' },
      { derivationPath: 'm/0/5', taprootTweak: 'none' as const },
      {},
    ]) {
      for (const node of ['node-1', 'node-2', 'node-3']) {
        const auth = c.authFor('POST', `/v1/keys/${k.keyId}/sign`, body);
        const out = await c
          .rpc(node, { op: 'sign-commit', sessionId: randomUUID(), keyId: k.keyId, epoch: 0, auth, tweak })
          .then(
            (v) => ({ ok: v }),
            (e) => ({ err: e }),
          );
        expect('err' in out, `${node} ${JSON.stringify(tweak)}`).toBe(true);
        const err = (out as { err: { code?: string; message?: string } }).err;
        expect(err.code).toBe('Unauthorized');
        expect(err.message).toMatch(/another derivation path or taproot tweak/);
      }
    }
    // Each refusal is in the node's own audit chain, with the request it came with.
    for (const node of ['node-1', 'node-2', 'node-3']) {
      const head = (await c.rpc(node, { op: 'audit', limit: 1 })).head.seq as number;
      const page = await c.rpc(node, { op: 'audit', after: Math.max(0, head - 50), limit: 50 });
      const refusals = (page.records as { entry: Record<string, unknown> }[]).filter(
        (r) => r.entry['decision'] === 'refused' && /another derivation path/.test(String(r.entry['reason'])),
      );
      expect(refusals.length, node).toBe(3);
      expect(refusals[0]!.entry).toMatchObject({ rpc: 'sign-commit', operation: 'Sign', keyId: k.keyId });
    }
    // One-round signing (sign-one) names no tweak: a signed body asking for a child is refused,
    // never signed for the key itself with the node's pre-published nonce.
    const commitments = [];
    for (const node of ['node-1', 'node-2']) {
      const pre = await c.rpc(node, { op: 'sign-precommit', keyId: k.keyId, epoch: 0, count: 1 });
      commitments.push({ identifier: pre.identifier, ...pre.commitments[0] });
    }
    const auth = c.authFor('POST', `/v1/keys/${k.keyId}/sign`, body);
    const one = await c
      .rpc('node-1', {
        op: 'sign-one',
        sessionId: randomUUID(),
        keyId: k.keyId,
        epoch: 0,
        message: body.message,
        commitments,
        auth,
      })
      .then(
        (v) => ({ ok: v }),
        (e) => ({ err: e }),
      );
    expect('err' in one, JSON.stringify(one)).toBe(true);
    expect((one as { err: { code?: string } }).err.code).toBe('Unauthorized');
    expect((one as { err: { message?: string } }).err.message).toMatch(
      /another derivation path or taproot tweak/,
    );
  }, 60_000);
});
