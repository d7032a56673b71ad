/**
 * protocol/psbt.ts against an independent wallet (bitcoinjs-lib + tiny-secp256k1, and
 * @scure/btc-signer to finalize): the inputs of a key are found at the root and at derived paths,
 * other keys' inputs are left alone, the BIP341 signature hashes equal bitcoinjs's, a PSBT signed
 * through insertSignatures finalizes and validates in both libraries, the outputs are reported with
 * their addresses, and what must be refused is refused with the reason.
 */
import { base64 } from '@scure/base';
import * as btc from '@scure/btc-signer';
import { describe, expect, it } from 'vitest';
import { toHex } from '../protocol/bytes.ts';
import { formatPath } from '../protocol/derivation.ts';
import {
  MAX_PSBT_BYTES,
  type PsbtKey,
  analyzePsbt,
  insertSignatures,
  parsePsbt,
  inputSigningTweak,
  psbtFacts,
} from '../protocol/psbt.ts';
import { KEY_SPEC_REGISTRY } from '../protocol/suites.ts';
import {
  bitcoin,
  bitcoinjsSighash,
  buildPsbt,
  keyPathSign,
  p2tr,
  regtestAddress,
  validateInput,
  wholeKey,
  xOnlyAt,
} from './helpers/psbt-wallet.ts';

const TR = KEY_SPEC_REGISTRY.FROST_SECP256K1_TR;

const fpBytes = (n: number) => {
  const b = new Uint8Array(4);
  new DataView(b.buffer).setUint32(0, n, false);
  return b;
};

describe('PSBT signing (protocol/psbt.ts)', () => {
  const k = wholeKey();
  const key: PsbtKey = { spec: TR, groupElement: k.groupElement, chainCode: k.chainCode, merkleRoot: null };
  const other = wholeKey();

  it('finds root and derived inputs, leaves foreign ones, sighashes equal bitcoinjs, the signed PSBT validates', () => {
    const dest = regtestAddress();
    const change = p2tr(xOnlyAt(k, 'm/1/0')).address;
    const psbt = buildPsbt(
      [
        { internalKey: xOnlyAt(k, 'm'), amount: 50_000n },
        { internalKey: xOnlyAt(other, 'm'), amount: 20_000n },
        {
          internalKey: xOnlyAt(k, 'm/0/5'),
          amount: 30_000n,
          derivation: { fingerprint: k.fingerprint, path: 'm/0/5' },
        },
        {
          internalKey: xOnlyAt(k, 'm/7'),
          amount: 10_000n,
          derivation: { fingerprint: k.fingerprint, path: 'm/7' },
          sighashType: 1,
        },
      ],
      [
        { address: dest, value: 90_000n },
        {
          address: change,
          value: 19_000n,
          change: { internalKey: xOnlyAt(k, 'm/1/0'), fingerprint: k.fingerprint, path: 'm/1/0' },
        },
      ],
    );
    const tx = parsePsbt(psbt.toBase64());
    const a = analyzePsbt(tx, key, 'regtest');
    expect(a.inputCount).toBe(4);
    expect(a.owned.map((o) => [o.index, formatPath(o.path), o.sighashType])).toEqual([
      [0, 'm', 0],
      [2, 'm/0/5', 0],
      [3, 'm/7', 1],
    ]);
    expect(a.notOwned).toEqual([1]);
    // The change output pays back to the key (m/1/0, named by its tap_bip32_derivation).
    expect(a.outputs).toEqual([
      { index: 0, address: dest, script: toHex(psbt.txOutputs[0]!.script), amount: 90_000, toKey: null },
      { index: 1, address: change, script: toHex(psbt.txOutputs[1]!.script), amount: 19_000, toKey: [1, 0] },
    ]);
    expect(psbtFacts(a, 'regtest').outputs).toEqual([
      { address: dest, amount: 90_000 },
      { address: change, amount: 19_000, toKey: 'm/1/0' },
    ]);
    expect(a.fee).toBe(1_000);
    for (const o of a.owned) {
      expect(toHex(o.sighash)).toBe(toHex(bitcoinjsSighash(psbt, o.index)));
      expect(toHex(o.outputKey)).toBe(toHex(p2tr(o.internalKey).outputKey));
      expect(inputSigningTweak(key, o)).toEqual({
        ...(o.path.length > 0 ? { derivation: { chainCode: k.chainCode, path: o.path } } : {}),
        taproot: { kind: 'keyPath', merkleRoot: null },
      });
    }
    const signed = insertSignatures(
      tx,
      a.owned.map((o) => ({ input: o, signature: keyPathSign(k, formatPath(o.path), null, o.sighash) })),
    );

    // bitcoinjs: each of our inputs validates (libsecp256k1, bitcoinjs's own hash) and finalizes;
    // the other key's input stays unsigned until its owner signs it.
    const back = bitcoin.Psbt.fromBase64(signed, { network: bitcoin.networks.regtest });
    expect(back.data.inputs[1]!.tapKeySig).toBeUndefined();
    expect(back.data.inputs[3]!.tapKeySig!.length).toBe(65);
    for (const o of a.owned) {
      expect(validateInput(back, o.index)).toBe(true);
      back.finalizeInput(o.index);
    }
    const sig1 = keyPathSign(other, 'm', null, bitcoinjsSighash(psbt, 1));
    back.updateInput(1, { tapKeySig: sig1 });
    back.finalizeInput(1);
    const hex = back.extractTransaction().toHex();
    expect(bitcoin.Transaction.fromHex(hex).ins).toHaveLength(4);

    // @scure/btc-signer finalizes the same PSBT to the same transaction.
    const s = btc.Transaction.fromPSBT(base64.decode(signed));
    s.updateInput(1, { tapKeySig: sig1 }, true);
    s.finalize();
    expect(s.hex).toBe(hex);
  });

  it('a key with a merkle root signs key-path spends of that output only', () => {
    const root = new Uint8Array(32).fill(7);
    const withRoot: PsbtKey = { ...key, merkleRoot: root };
    const internal = xOnlyAt(k, 'm');
    const out = bitcoin.payments.p2tr({
      internalPubkey: internal,
      hash: root,
      network: bitcoin.networks.regtest,
    });
    const psbt = new bitcoin.Psbt({ network: bitcoin.networks.regtest });
    psbt.addInput({
      hash: new Uint8Array(32).fill(1),
      index: 0,
      witnessUtxo: { script: out.output!, value: 5_000n },
      tapInternalKey: internal,
      tapMerkleRoot: root,
    });
    // A derived child is the internal key of a key-path-only output (BIP86), whatever the root's tree.
    const child = xOnlyAt(k, 'm/2');
    psbt.addInput({
      hash: new Uint8Array(32).fill(2),
      index: 0,
      witnessUtxo: { script: p2tr(child).script, value: 5_000n },
      tapInternalKey: child,
      tapBip32Derivation: [
        { masterFingerprint: fpBytes(k.fingerprint), path: 'm/2', pubkey: child, leafHashes: [] },
      ],
    });
    psbt.addOutput({ address: regtestAddress(), value: 9_000n });
    const a = analyzePsbt(parsePsbt(psbt.toBase64()), withRoot, 'regtest');
    expect(a.owned.map((o) => [o.index, formatPath(o.path)])).toEqual([
      [0, 'm'],
      [1, 'm/2'],
    ]);
    expect(inputSigningTweak(withRoot, a.owned[1]!)).toEqual({
      derivation: { chainCode: k.chainCode, path: [2] },
      taproot: { kind: 'keyPath', merkleRoot: null },
    });
    expect(toHex(a.owned[0]!.outputKey)).toBe(toHex(out.pubkey!));
    // The same key without the merkle root does not own that output.
    expect(analyzePsbt(parsePsbt(psbt.toBase64()), key, 'regtest').owned.map((o) => o.index)).toEqual([1]);
    const back = bitcoin.Psbt.fromBase64(
      insertSignatures(parsePsbt(psbt.toBase64()), [
        { input: a.owned[0]!, signature: keyPathSign(k, 'm', root, a.owned[0]!.sighash) },
        { input: a.owned[1]!, signature: keyPathSign(k, 'm/2', null, a.owned[1]!.sighash) },
      ]),
    );
    expect(validateInput(back, 0)).toBe(true);
    expect(validateInput(back, 1)).toBe(true);
  });

  it('refuses what it must not sign, with the reason', () => {
    const mine = { internalKey: xOnlyAt(k, 'm'), amount: 1_000n };
    const outs = [{ address: regtestAddress(), value: 500n }];
    const analyze = (p: bitcoin.Psbt) => analyzePsbt(parsePsbt(p.toBase64()), key, 'regtest');
    expect(() => analyze(buildPsbt([{ ...mine, sighashType: 2 }], outs))).toThrow(
      /sighash type 0x2 is not signed/,
    );
    expect(() => analyze(buildPsbt([{ ...mine, sighashType: 0x81 }], outs))).toThrow(/sighash type 0x81/);
    expect(() => analyze(buildPsbt([mine, { ...mine, noWitnessUtxo: true }], outs))).toThrow(
      /input 1 has no witness_utxo/,
    );
    // A tap_internal_key that is not the internal key of the prevout's output (scure checks the
    // BIP341 commitment while parsing).
    const lying = buildPsbt([mine], outs);
    lying.data.inputs[0]!.tapInternalKey = xOnlyAt(other, 'm');
    expect(() => analyze(lying)).toThrow(/does not parse.*Taproot commitment does not match/);
    // A hardened path is never this key's (no node can derive it): the input stays unsigned.
    const hardened = buildPsbt(
      [
        {
          internalKey: xOnlyAt(k, "m/0'/1"),
          amount: 1_000n,
          derivation: { fingerprint: k.fingerprint, path: "m/0'/1" },
        },
      ],
      outs,
    );
    expect(analyze(hardened).owned).toEqual([]);
    // A derivation entry with another fingerprint is not followed.
    const foreignFp = buildPsbt(
      [
        {
          internalKey: xOnlyAt(k, 'm/3'),
          amount: 1_000n,
          derivation: { fingerprint: k.fingerprint ^ 1, path: 'm/3' },
        },
      ],
      outs,
    );
    expect(analyze(foreignFp).owned).toEqual([]);
    // Outputs above the inputs.
    expect(() => analyze(buildPsbt([mine], [{ address: regtestAddress(), value: 2_000n }]))).toThrow(
      /outputs spend more than the inputs/,
    );
    // Bounds and encoding.
    const many = (count: number, internalKey: Uint8Array) =>
      buildPsbt(
        Array.from({ length: count }, () => ({ internalKey, amount: 1_000n })),
        [{ address: regtestAddress(), value: 500n }],
      ).toBase64();
    expect(() => parsePsbt(many(257, xOnlyAt(other, 'm')))).toThrow(/expected 1 to 256 inputs, got 257/);
    expect(() => analyzePsbt(parsePsbt(many(65, xOnlyAt(k, 'm'))), key, 'regtest')).toThrow(
      /65 inputs of this key: at most 64 per request/,
    );
    expect(() => parsePsbt('A'.repeat(Math.ceil(MAX_PSBT_BYTES / 3) * 4 + 4))).toThrow(
      /at most 100000 bytes/,
    );
    expect(() => parsePsbt('not base64!')).toThrow(/not base64/);
    expect(() => parsePsbt(base64.encode(new TextEncoder().encode('psbt\xff')))).toThrow(/does not parse/);
    // Only Taproot keys.
    expect(() =>
      analyzePsbt(parsePsbt(buildPsbt([mine], outs).toBase64()), {
        ...key,
        spec: KEY_SPEC_REGISTRY.FROST_SECP256K1,
      }),
    ).toThrow(/FROST_SECP256K1 keys do not sign Taproot inputs/);
    // A signature that does not verify is never inserted.
    const a = analyze(buildPsbt([mine], outs));
    expect(() =>
      insertSignatures(parsePsbt(buildPsbt([mine], outs).toBase64()), [
        { input: a.owned[0]!, signature: keyPathSign(other, 'm', null, a.owned[0]!.sighash) },
      ]),
    ).toThrow(/does not verify/);
  });
});
