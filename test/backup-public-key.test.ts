/**
 * `kms backup verify --public-key` (scripts/kms-backup.ts) takes the key's public key in any form a
 * user holds (issue 14 x 16): the group element, the Taproot internal key, or the API's `publicKey`,
 * which for FROST_SECP256K1_TR is the BIP341 output key tweaked with the key's merkle root. Keys are
 * independent: the output keys are computed here by @scure/btc-signer and bitcoinjs-lib from the
 * internal key.
 */
import { schnorr } from '@noble/curves/secp256k1.js';
import * as btc from '@scure/btc-signer';
import * as bitcoin from 'bitcoinjs-lib';
import * as ecc from 'tiny-secp256k1';
import { describe, expect, it } from 'vitest';
import { toHex } from '../protocol/bytes.ts';
import type { BackupBundle } from '../protocol/officer-backup.ts';
import { keySpec, publicKeyFromGroupElement } from '../protocol/suites.ts';
import { expectedPublicKey } from '../scripts/kms-backup.ts';

function bundleOf(groupElement: Uint8Array, merkleRoot?: string): BackupBundle {
  const metadata: Record<string, string> = merkleRoot ? { chainCode: 'ab'.repeat(32), merkleRoot } : {};
  return { body: { keySpec: 'FROST_SECP256K1_TR', groupElement, metadata } } as unknown as BackupBundle;
}

bitcoin.initEccLib(ecc);

describe('backup verify --public-key for a Taproot key', () => {
  const spec = keySpec('FROST_SECP256K1_TR');
  const secret = schnorr.utils.randomSecretKey();
  const internal = schnorr.getPublicKey(secret);
  // The group element of a TR key is the internal key with even y (docs/custody.md).
  const element = Uint8Array.from([0x02, ...internal]);
  const want = toHex(publicKeyFromGroupElement(spec, element));
  const root = '11'.repeat(32);

  it('accepts the group element, the internal key and the output key with an empty root', () => {
    const b = bundleOf(element);
    const output = toHex(btc.p2tr(internal).tweakedPubkey);
    for (const form of [toHex(element), toHex(internal), output])
      expect(toHex(expectedPublicKey(b, form))).toBe(want);
  });

  it("accepts the output key tweaked with the bundle's merkle root, and no other key", () => {
    const b = bundleOf(element, root);
    const tweaked = bitcoin.payments.p2tr({ internalPubkey: internal, hash: Buffer.from(root, 'hex') })
      .pubkey!;
    expect(toHex(expectedPublicKey(b, toHex(tweaked)))).toBe(want);
    const other = toHex(schnorr.getPublicKey(schnorr.utils.randomSecretKey()));
    expect(toHex(expectedPublicKey(b, other))).toBe(other);
  });
});
