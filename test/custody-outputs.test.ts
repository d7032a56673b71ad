/**
 * Issue 14 items 1, 2 and 5 through the API on real nodes (startClusterCoordinator: the real
 * coordinator over three node daemons that require client-signed requests), checked with libraries
 * independent of the service: bitcoinjs-lib + tiny-secp256k1 (libsecp256k1) and @scure/btc-signer
 * derive addresses from the key's `taproot.internalKey` and from the xpub (@scure/bip32) at several
 * paths; P2TR spends built by bitcoinjs (key path with an empty root, with a merkle root, from a
 * derived child, and a script path with another key as an untweaked leaf key), their sighashes
 * computed by bitcoinjs, signed through the sign route, finalized and validated by bitcoinjs; a
 * Solana transfer built by @solana/web3.js from a derived Ed25519 key verifies there; refresh and a
 * reshare that brings in a new member keep every address, descriptor and xpub, and the new member
 * signs at a derived path.
 */
import { HDKey } from '@scure/bip32';
import * as scure from '@scure/btc-signer';
import { PublicKey, SystemProgram, Transaction as SolanaTransaction } from '@solana/web3.js';
import * as bitcoin from 'bitcoinjs-lib';
import * as ecc from 'tiny-secp256k1';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type ClusterCoordinator, startClusterCoordinator } from './helpers/coordinator.ts';

bitcoin.initEccLib(ecc);

let c: ClusterCoordinator;
beforeAll(async () => {
  c = await startClusterCoordinator(3);
}, 120_000);
afterAll(async () => {
  await c?.stop();
});

const hex = (b: Uint8Array | string) => Buffer.from(b).toString('hex');
const buf = (h: string) => Buffer.from(h, 'hex');
const REGTEST = bitcoin.networks.regtest;
const SCURE_REGTEST = { bech32: 'bcrt', pubKeyHash: 0x6f, scriptHash: 0xc4, wif: 0xef };

async function get(path: string) {
  const r = await c.call('GET', path);
  expect(r.status, `${path}: ${r.text}`).toBe(200);
  return r.body;
}

async function createKey(body: Record<string, unknown>) {
  const r = await c.call('POST', '/v1/keys', { threshold: 2, participants: ['node-1', 'node-2'], ...body });
  expect(r.status, r.text).toBe(201);
  return r.body;
}

async function sign(keyId: string, body: Record<string, unknown>): Promise<Buffer> {
  const r = await c.call('POST', `/v1/keys/${keyId}/sign`, body);
  expect(r.status, r.text).toBe(200);
  return buf(r.body.signature);
}

/** Everything the API says about a key's outputs, for comparing before and after key events. */
async function outputsOf(keyId: string) {
  return {
    key: await get(`/v1/keys/${keyId}`).then((k) => ({ publicKey: k.publicKey, taproot: k.taproot })),
    xpub: (await get(`/v1/keys/${keyId}/public-key?format=xpub`)).xpub,
    child: await get(`/v1/keys/${keyId}/public-key?path=m/0/5&format=xpub&network=regtest`),
    address: await get(`/v1/keys/${keyId}/address?network=regtest&path=m/0/5`),
    descriptor: await get(`/v1/keys/${keyId}/descriptor`),
    watchOnly: await get(`/v1/keys/${keyId}/descriptor?path=m/0/*`),
  };
}

/** A one-input, one-output transaction spending `prev` (a P2TR output of `value` sats). */
function spend(prevScript: Uint8Array, value: number) {
  const psbt = new bitcoin.Psbt({ network: REGTEST });
  psbt.addInput({
    hash: Buffer.alloc(32, 7),
    index: 0,
    witnessUtxo: { script: prevScript, value: BigInt(value) } as any,
  });
  psbt.addOutput({
    address: 'bcrt1q6rz28mcfaxtmd6v789l9rrlrusdprr9pz3cppk',
    value: BigInt(value - 500),
  } as any);
  return psbt;
}

/** The input's BIP341 signature hash as bitcoinjs computes it (SIGHASH_DEFAULT). */
function sighash(
  psbt: bitcoin.Psbt,
  prevScript: Uint8Array,
  value: number,
  leafHash?: Uint8Array,
): Uint8Array {
  const tx = (psbt as any).__CACHE.__TX as bitcoin.Transaction;
  return tx.hashForWitnessV1(
    0,
    [prevScript],
    [BigInt(value)] as any,
    bitcoin.Transaction.SIGHASH_DEFAULT,
    leafHash,
  );
}

const validator = (pubkey: Uint8Array, msghash: Uint8Array, signature: Uint8Array) =>
  ecc.verifySchnorr(msghash, pubkey, signature);

describe('Taproot keys, addresses, descriptors, xpub and spends (real nodes, independent libraries)', () => {
  it('address, descriptor and xpub agree with bitcoinjs and scure from internalKey and from the xpub', async () => {
    const k = await createKey({ keySpec: 'FROST_SECP256K1_TR' });
    expect(k.taproot).toEqual({ internalKey: expect.any(String), outputKey: k.publicKey, merkleRoot: null });
    const internal = buf(k.taproot.internalKey);
    // The default reading of every library: the internal key is tweaked once, giving publicKey.
    const bjs = bitcoin.payments.p2tr({ internalPubkey: internal, network: bitcoin.networks.bitcoin });
    expect(hex(bjs.pubkey!)).toBe(k.publicKey);
    expect((await get(`/v1/keys/${k.keyId}/address?network=bitcoin`)).address).toBe(bjs.address);
    expect(scure.p2tr(internal).address).toBe(bjs.address);
    expect(await get(`/v1/keys/${k.keyId}/descriptor`)).toMatchObject({
      descriptor: expect.stringMatching(new RegExp(`^tr\\(${k.taproot.internalKey}\\)#[a-z0-9]{8}$`)),
      internalKey: k.taproot.internalKey,
      outputKey: k.publicKey,
    });

    const { xpub } = await get(`/v1/keys/${k.keyId}/public-key?format=xpub`);
    expect(xpub).toMatch(/^xpub/);
    const root = HDKey.fromExtendedKey(xpub);
    expect(hex(root.publicKey!.subarray(1))).toBe(k.taproot.internalKey);
    const { xpub: tpub } = await get(`/v1/keys/${k.keyId}/public-key?format=xpub&network=regtest`);
    expect(tpub).toMatch(/^tpub/);
    for (const path of ['m/0/0', 'm/0/5', 'm/1/2147483647', 'm/3/7/1']) {
      const childInternal = Buffer.from(root.derive(path).publicKey!.subarray(1));
      const expected = bitcoin.payments.p2tr({ internalPubkey: childInternal, network: REGTEST });
      expect(scure.p2tr(childInternal, undefined, SCURE_REGTEST).address).toBe(expected.address);
      const a = await get(`/v1/keys/${k.keyId}/address?network=regtest&path=${path}`);
      expect(a).toEqual({ address: expected.address, network: 'regtest', path });
      const p = await get(`/v1/keys/${k.keyId}/public-key?path=${path}&format=xpub`);
      expect(p.publicKey).toBe(hex(expected.pubkey!));
      expect(p.taproot).toEqual({
        internalKey: hex(childInternal),
        outputKey: p.publicKey,
        merkleRoot: null,
      });
      expect(p.xpub).toBe(root.derive(path).publicExtendedKey);
      expect((await get(`/v1/keys/${k.keyId}/descriptor?path=${path}`)).descriptor).toMatch(
        new RegExp(`^tr\\(${hex(childInternal)}\\)#`),
      );
    }
    const watch = await get(`/v1/keys/${k.keyId}/descriptor?path=m/0/*`);
    expect(watch.descriptor).toMatch(new RegExp(`^tr\\(${xpub}/0/\\*\\)#[a-z0-9]{8}$`));

    // The OpenAPI document says what publicKey is (the issue: no default reading may lose funds).
    const openapi = await c.call('GET', '/openapi.json');
    const keySchema =
      openapi.body.paths['/v1/keys/{keyId}'].get.responses['200'].content['application/json'].schema;
    expect(keySchema.properties.publicKey.description).toMatch(/BIP341 OUTPUT key.*taproot\.internalKey/s);
    expect(keySchema.properties.taproot.required).toEqual(['internalKey', 'outputKey', 'merkleRoot']);

    const hardened = await c.call('GET', `/v1/keys/${k.keyId}/address?network=bitcoin&path=m/0'/5`);
    expect(hardened.status).toBe(400);
    expect(hardened.body.code).toBe('ValidationError');
    expect(hardened.body.detail).toMatch(/hardened derivation needs the parent private key/);
    const wrong = await c.call('GET', `/v1/keys/${k.keyId}/address?network=solana`);
    expect(wrong.status).toBe(400);
  }, 60_000);

  it('P2TR spends built by bitcoinjs: key path (empty root, merkle root, derived child) and script path', async () => {
    // Key B: its untweaked internal key is the leaf key of key A's script tree.
    const b = await createKey({ keySpec: 'FROST_SECP256K1_TR' });
    const leafScript = bitcoin.script.compile([buf(b.taproot.internalKey), bitcoin.opcodes.OP_CHECKSIG]);
    const scriptTree = { output: leafScript };
    const root = bitcoin.payments.p2tr({ internalPubkey: buf(b.taproot.internalKey), scriptTree }).hash!;
    const a = await createKey({ keySpec: 'FROST_SECP256K1_TR', merkleRoot: hex(root) });
    expect(a.taproot.merkleRoot).toBe(hex(root));
    const outA = bitcoin.payments.p2tr({
      internalPubkey: buf(a.taproot.internalKey),
      scriptTree,
      network: REGTEST,
    });
    expect(a.publicKey).toBe(hex(outA.pubkey!));
    expect((await get(`/v1/keys/${a.keyId}/address?network=regtest`)).address).toBe(outA.address);
    expect((await get(`/v1/keys/${a.keyId}/descriptor`)).descriptor).toMatch(
      new RegExp(`^rawtr\\(${a.publicKey}\\)#`),
    );

    const value = 100_000;
    // Key path of A's output (the merkle root applied by each node from its stored record).
    {
      const psbt = spend(outA.output!, value);
      psbt.updateInput(0, { tapInternalKey: buf(a.taproot.internalKey), tapMerkleRoot: root });
      const tapKeySig = await sign(a.keyId, { message: hex(sighash(psbt, outA.output!, value)) });
      psbt.updateInput(0, { tapKeySig });
      expect(psbt.validateSignaturesOfInput(0, validator)).toBe(true);
      psbt.finalizeAllInputs();
      expect(psbt.extractTransaction().ins[0]!.witness).toHaveLength(1);
    }
    // Script path of A's output: B signs as the untweaked leaf key.
    {
      const redeem = { output: leafScript, redeemVersion: 0xc0 };
      const spendPath = bitcoin.payments.p2tr({
        internalPubkey: buf(a.taproot.internalKey),
        scriptTree,
        redeem,
        network: REGTEST,
      });
      const controlBlock = spendPath.witness![spendPath.witness!.length - 1]!;
      const psbt = spend(outA.output!, value);
      const leafHash = root; // a one-leaf tree: the merkle root is the leaf hash
      psbt.updateInput(0, { tapLeafScript: [{ leafVersion: 0xc0, script: leafScript, controlBlock }] });
      const message = sighash(psbt, outA.output!, value, leafHash);
      const signature = await sign(b.keyId, { message: hex(message), taprootTweak: 'none' });
      // Not a signature for B's output key: a script-path signature is by the untweaked key.
      expect(ecc.verifySchnorr(message, buf(b.publicKey), signature)).toBe(false);
      psbt.updateInput(0, { tapScriptSig: [{ pubkey: buf(b.taproot.internalKey), signature, leafHash }] });
      expect(psbt.validateSignaturesOfInput(0, validator)).toBe(true);
      psbt.finalizeAllInputs();
      expect(psbt.extractTransaction().ins[0]!.witness).toHaveLength(3);
    }
    // Key path of B's derived child m/0/5 (empty root), its internal key from the xpub.
    {
      const { xpub } = await get(`/v1/keys/${b.keyId}/public-key?format=xpub`);
      const child = Buffer.from(HDKey.fromExtendedKey(xpub).derive('m/0/5').publicKey!.subarray(1));
      const out = bitcoin.payments.p2tr({ internalPubkey: child, network: REGTEST });
      expect((await get(`/v1/keys/${b.keyId}/address?network=regtest&path=m/0/5`)).address).toBe(out.address);
      const psbt = spend(out.output!, value);
      psbt.updateInput(0, { tapInternalKey: child });
      const tapKeySig = await sign(b.keyId, {
        message: hex(sighash(psbt, out.output!, value)),
        derivationPath: 'm/0/5',
      });
      psbt.updateInput(0, { tapKeySig });
      expect(psbt.validateSignaturesOfInput(0, validator)).toBe(true);
      psbt.finalizeAllInputs();
    }
  }, 90_000);

  it('a key-path spend of a derived child built and finalized by @scure/btc-signer, checked by bitcoinjs', async () => {
    const k = await createKey({ keySpec: 'FROST_SECP256K1_TR' });
    const path = 'm/2/9';
    const { xpub } = await get(`/v1/keys/${k.keyId}/public-key?format=xpub`);
    const child = HDKey.fromExtendedKey(xpub).derive(path).publicKey!.subarray(1);
    const out = scure.p2tr(child, undefined, SCURE_REGTEST);
    expect((await get(`/v1/keys/${k.keyId}/address?network=regtest&path=${path}`)).address).toBe(out.address);
    const value = 50_000n;
    const tx = new scure.Transaction();
    tx.addInput({
      txid: new Uint8Array(32).fill(5),
      index: 1,
      witnessUtxo: { script: out.script, amount: value },
      tapInternalKey: child,
    });
    tx.addOutputAddress('bcrt1q6rz28mcfaxtmd6v789l9rrlrusdprr9pz3cppk', value - 400n, SCURE_REGTEST);
    const hash = tx.preimageWitnessV1(0, [out.script], scure.SigHash.DEFAULT, [value]);
    const tapKeySig = await sign(k.keyId, { message: hex(hash), derivationPath: path });
    tx.updateInput(0, { tapKeySig });
    tx.finalize();
    // bitcoinjs reads the finalized transaction, computes the sighash itself, and libsecp256k1
    // verifies the witness under the output key of the prevout.
    const parsed = bitcoin.Transaction.fromBuffer(Buffer.from(tx.extract()));
    const witness = parsed.ins[0]!.witness;
    expect(witness).toHaveLength(1);
    const again = parsed.hashForWitnessV1(
      0,
      [out.script],
      [value] as any,
      bitcoin.Transaction.SIGHASH_DEFAULT,
    );
    expect(hex(again)).toBe(hex(hash));
    expect(ecc.verifySchnorr(again, out.script.subarray(2), witness[0]!)).toBe(true);
  }, 60_000);

  it('a Solana transfer from a derived Ed25519 key, signed through the API, verifies with @solana/web3.js', async () => {
    const k = await createKey({ keySpec: 'FROST_ED25519' });
    expect(k.taproot).toBeUndefined();
    expect((await get(`/v1/keys/${k.keyId}/address?network=solana`)).address).toBe(
      new PublicKey(buf(k.publicKey)).toBase58(),
    );
    const { address } = await get(`/v1/keys/${k.keyId}/address?network=solana&path=m/44/501`);
    const child = await get(`/v1/keys/${k.keyId}/public-key?path=m/44/501`);
    const from = new PublicKey(address);
    expect(from.toBase58()).toBe(new PublicKey(buf(child.publicKey)).toBase58());
    const tx = new SolanaTransaction({
      feePayer: from,
      recentBlockhash: new PublicKey(Buffer.alloc(32, 9)).toBase58(),
    }).add(
      SystemProgram.transfer({
        fromPubkey: from,
        toPubkey: new PublicKey(Buffer.alloc(32, 3)),
        lamports: 5000,
      }),
    );
    const signature = await sign(k.keyId, {
      message: hex(tx.serializeMessage()),
      derivationPath: 'm/44/501',
    });
    tx.addSignature(from, signature);
    expect(tx.verifySignatures()).toBe(true);
    // The parent's signature over the same message is not the child's.
    const parent = await sign(k.keyId, { message: hex(tx.serializeMessage()) });
    tx.addSignature(from, parent);
    expect(tx.verifySignatures()).toBe(false);
    const noXpub = await c.call('GET', `/v1/keys/${k.keyId}/public-key?format=xpub`);
    expect(noXpub.status).toBe(400);
  }, 60_000);

  it('refresh and a reshare to a new member keep addresses, descriptors and xpub; the new member signs at a path', async () => {
    const k = await createKey({ keySpec: 'FROST_SECP256K1_TR' });
    const before = await outputsOf(k.keyId);
    expect((await c.call('POST', `/v1/keys/${k.keyId}/refresh`)).status).toBe(200);
    expect(await outputsOf(k.keyId)).toEqual(before);
    const r = await c.call('POST', `/v1/keys/${k.keyId}/reshare`, {
      threshold: 2,
      participants: ['node-2', 'node-3'],
    });
    expect(r.status, r.text).toBe(200);
    expect(await outputsOf(k.keyId)).toEqual(before);
    // node-3 learned the chain code in the reshare: with node-2 it signs for the child at m/0/5.
    const message = Buffer.alloc(32, 0x42);
    const s = await c.call('POST', `/v1/keys/${k.keyId}/sign`, {
      message: hex(message),
      derivationPath: 'm/0/5',
    });
    expect(s.status, s.text).toBe(200);
    expect(s.body.signers).toEqual(['node-2', 'node-3']);
    expect(s.body.publicKey).toBe(before.child.publicKey);
    expect(ecc.verifySchnorr(message, buf(before.child.publicKey), buf(s.body.signature))).toBe(true);
  }, 90_000);
});
