/**
 * An independent wallet for the PSBT tests: bitcoinjs-lib + tiny-secp256k1 (libsecp256k1) build
 * P2TR outputs and PSBTs, compute BIP341 signature hashes, finalize and validate; a local whole
 * secp256k1 key (with @scure/bip32 for children) stands in for a signer where a test needs one.
 */
import { randomBytes } from 'node:crypto';
import { schnorr } from '@noble/curves/secp256k1.js';
import { bytesToNumberBE, numberToBytesBE } from '@noble/curves/utils.js';
import { HDKey } from '@scure/bip32';
import * as bitcoin from 'bitcoinjs-lib';
import * as ecc from 'tiny-secp256k1';

bitcoin.initEccLib(ecc);

export { bitcoin, ecc };

const N = schnorr.Point.Fn.ORDER;

/** A whole BIP32 root key whose public key has even y (like the service's stored internal key). */
export type WholeKey = {
  readonly hd: HDKey;
  /** Compressed root public key (0x02 || x). */
  readonly groupElement: Uint8Array;
  readonly chainCode: Uint8Array;
  readonly fingerprint: number;
};

export function wholeKey(): WholeKey {
  for (;;) {
    const d = bytesToNumberBE(randomBytes(32)) % N;
    if (d === 0n) continue;
    const even = schnorr.Point.BASE.multiply(d).toAffine().y % 2n === 0n;
    const hd = new HDKey({
      privateKey: numberToBytesBE(even ? d : N - d, 32),
      chainCode: randomBytes(32),
    });
    return { hd, groupElement: hd.publicKey!, chainCode: hd.chainCode!, fingerprint: hd.fingerprint };
  }
}

/** The x-only internal key at a path (BIP32 public derivation, BIP340 x coordinate). */
export function xOnlyAt(k: WholeKey, path: string): Uint8Array {
  return k.hd.derive(path).publicKey!.subarray(1);
}

/** BIP341 taproot_tweak_seckey then BIP340 sign: the key-path signature of the child at `path`. */
export function keyPathSign(k: WholeKey, path: string, merkleRoot: Uint8Array | null, msg: Uint8Array) {
  const child = k.hd.derive(path);
  let d = bytesToNumberBE(child.privateKey!);
  if (child.publicKey![0] === 0x03) d = N - d;
  const t = bytesToNumberBE(
    schnorr.utils.taggedHash('TapTweak', child.publicKey!.subarray(1), merkleRoot ?? new Uint8Array(0)),
  );
  return schnorr.sign(msg, numberToBytesBE((d + t) % N, 32), randomBytes(32));
}

/** bitcoinjs's P2TR output for an internal key (its default reading: the key is internal). */
export function p2tr(internalKey: Uint8Array, network = bitcoin.networks.regtest) {
  const p = bitcoin.payments.p2tr({ internalPubkey: internalKey, network });
  return { script: p.output!, address: p.address!, outputKey: p.pubkey! };
}

export type WalletInput = {
  readonly internalKey: Uint8Array;
  readonly amount: bigint;
  /** BIP371 tap_bip32_derivation of the internal key (omitted: only tap_internal_key). */
  readonly derivation?: { readonly fingerprint: number; readonly path: string };
  readonly sighashType?: number;
  /** Omit witness_utxo (to test the refusal). */
  readonly noWitnessUtxo?: boolean;
};

const fp = (n: number) => {
  const b = new Uint8Array(4);
  new DataView(b.buffer).setUint32(0, n, false);
  return b;
};

/** A PSBT spending fabricated prevouts (random txids) to `outputs` (regtest addresses). */
export function buildPsbt(
  inputs: readonly WalletInput[],
  outputs: readonly {
    address: string;
    value: bigint;
    /** BIP371 output fields of a change output: its internal key and tap_bip32_derivation. */
    change?: { internalKey: Uint8Array; fingerprint: number; path: string };
  }[],
): bitcoin.Psbt {
  const psbt = new bitcoin.Psbt({ network: bitcoin.networks.regtest });
  for (const [i, inp] of inputs.entries()) {
    const out = p2tr(inp.internalKey);
    psbt.addInput({
      hash: randomBytes(32),
      index: i,
      ...(inp.noWitnessUtxo ? {} : { witnessUtxo: { script: out.script, value: inp.amount } }),
      tapInternalKey: inp.internalKey,
      ...(inp.derivation
        ? {
            tapBip32Derivation: [
              {
                masterFingerprint: fp(inp.derivation.fingerprint),
                path: inp.derivation.path,
                pubkey: inp.internalKey,
                leafHashes: [],
              },
            ],
          }
        : {}),
      ...(inp.sighashType === undefined ? {} : { sighashType: inp.sighashType }),
    });
  }
  for (const o of outputs) {
    psbt.addOutput({
      address: o.address,
      value: o.value,
      ...(o.change
        ? {
            tapInternalKey: o.change.internalKey,
            tapBip32Derivation: [
              {
                masterFingerprint: fp(o.change.fingerprint),
                path: o.change.path,
                pubkey: o.change.internalKey,
                leafHashes: [],
              },
            ],
          }
        : {}),
    });
  }
  return psbt;
}

/** bitcoinjs's BIP341 signature hash of input `i` of a PSBT (Transaction.hashForWitnessV1). */
export function bitcoinjsSighash(psbt: bitcoin.Psbt, i: number): Uint8Array {
  const tx = new bitcoin.Transaction();
  tx.version = psbt.version;
  tx.locktime = psbt.locktime;
  for (const inp of psbt.txInputs) tx.addInput(inp.hash, inp.index, inp.sequence);
  for (const o of psbt.txOutputs) tx.addOutput(o.script, o.value);
  const prev = psbt.data.inputs.map((x) => x.witnessUtxo!);
  return tx.hashForWitnessV1(
    i,
    prev.map((p) => p.script),
    prev.map((p) => p.value),
    psbt.data.inputs[i]!.sighashType ?? bitcoin.Transaction.SIGHASH_DEFAULT,
  );
}

/** Validates input `i`'s signatures with libsecp256k1 (bitcoinjs recomputes the hash itself). */
export function validateInput(psbt: bitcoin.Psbt, i: number): boolean {
  return psbt.validateSignaturesOfInput(i, (pub, msg, sig) => ecc.verifySchnorr(msg, pub, sig));
}

/** A fresh regtest P2TR destination. */
export function regtestAddress(): string {
  return p2tr(wholeKey().groupElement.subarray(1)).address;
}
