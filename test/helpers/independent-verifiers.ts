/**
 * Signature checks that share no code with the service: the OpenSSL command line for Ed25519 and
 * Ed448 (RFC 8032, `openssl pkeyutl -verify -rawin`), libsecp256k1 for BIP340 (the `secp256k1`
 * package's native addon: its point arithmetic, with the BIP340 "Verification" steps spelled out
 * here, since the package exposes no Schnorr call), and noble's RFC 9591 verifiers, imported
 * straight from @noble/curves, for the suites that only RFC 9591 defines.
 */
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ristretto255_FROST } from '@noble/curves/ed25519.js';
import { p256_FROST } from '@noble/curves/nist.js';
import { secp256k1_FROST } from '@noble/curves/secp256k1.js';
// The addon itself: the package's main entry would fall back to JavaScript (elliptic) silently.
import libsecp256k1 from 'secp256k1/bindings.js';
import type { KeySpecName, SigningKeySpecName } from '../../protocol/suites.ts';

export type Verifier = 'openssl' | 'libsecp256k1' | 'noble-rfc9591';

export const VERIFIER_OF: Record<SigningKeySpecName, Verifier> = {
  FROST_ED25519: 'openssl',
  FROST_ED448: 'openssl',
  FROST_SECP256K1_TR: 'libsecp256k1',
  FROST_SECP256K1: 'noble-rfc9591',
  FROST_P256: 'noble-rfc9591',
  FROST_RISTRETTO255: 'noble-rfc9591',
};

// RFC 8410 §4: SEQUENCE { SEQUENCE { OID id-Ed25519 / id-Ed448 }, BIT STRING key }.
const SPKI_PREFIX = {
  FROST_ED25519: '302a300506032b6570032100',
  FROST_ED448: '3043300506032b6571033a00',
} as const;

/** RFC 8410 SubjectPublicKeyInfo PEM of a raw Ed25519 / Ed448 public key. */
export function edwardsPem(keySpec: 'FROST_ED25519' | 'FROST_ED448', publicKey: Uint8Array): string {
  const der = Buffer.concat([Buffer.from(SPKI_PREFIX[keySpec], 'hex'), publicKey]);
  const lines = der.toString('base64').match(/.{1,64}/g) ?? [];
  return `-----BEGIN PUBLIC KEY-----\n${lines.join('\n')}\n-----END PUBLIC KEY-----\n`;
}

/** `openssl pkeyutl -verify -rawin` (pure EdDSA over the whole message) with an SPKI PEM. */
export function opensslVerify(pem: string, message: Uint8Array, signature: Uint8Array): boolean {
  const d = mkdtempSync(join(tmpdir(), 'tkms-openssl-'));
  try {
    writeFileSync(join(d, 'pub.pem'), pem);
    writeFileSync(join(d, 'msg'), message);
    writeFileSync(join(d, 'sig'), signature);
    execFileSync(
      'openssl',
      [
        'pkeyutl',
        '-verify',
        '-pubin',
        '-inkey',
        join(d, 'pub.pem'),
        '-rawin',
        '-in',
        join(d, 'msg'),
        '-sigfile',
        join(d, 'sig'),
      ],
      { stdio: 'pipe' },
    );
    return true;
  } catch {
    return false;
  } finally {
    rmSync(d, { recursive: true, force: true });
  }
}

const N = 0xfffffffffffffffffffffffffffffffebaaedce6af48a03bbfd25e8cd0364141n;

/** BIP340 tagged hash: SHA256(SHA256(tag) || SHA256(tag) || data...). */
function taggedHash(tag: string, ...data: Uint8Array[]): Buffer {
  const t = createHash('sha256').update(tag).digest();
  const h = createHash('sha256').update(t).update(t);
  for (const d of data) h.update(d);
  return h.digest();
}

/**
 * BIP340 "Verification" on libsecp256k1: P = lift_x(pk); e = H_challenge(r || pk || m) mod n;
 * R = [s]G - [e]P; valid iff R is not infinity, has even y and x(R) = r. libsecp256k1 rejects an
 * x that is not on the curve, s >= n and a result at infinity (those calls throw).
 */
export function bip340VerifyLibsecp256k1(
  publicKey: Uint8Array,
  message: Uint8Array,
  signature: Uint8Array,
): boolean {
  if (publicKey.length !== 32 || signature.length !== 64) return false;
  const P = Uint8Array.of(0x02, ...publicKey); // lift_x: the even-y point with this x
  const r = signature.subarray(0, 32);
  const s = signature.subarray(32);
  const e = BigInt(`0x${taggedHash('BIP0340/challenge', r, publicKey, message).toString('hex')}`) % N;
  if (e === 0n) return false; // [0]P is infinity: libsecp256k1 refuses the tweak (negligible)
  const minusE = Buffer.from((N - e).toString(16).padStart(64, '0'), 'hex');
  try {
    if (!libsecp256k1.publicKeyVerify(P)) return false;
    const R = libsecp256k1.publicKeyTweakAdd(libsecp256k1.publicKeyTweakMul(P, minusE, true), s, true);
    return R[0] === 0x02 && Buffer.from(R.subarray(1)).equals(Buffer.from(r));
  } catch {
    return false;
  }
}

/** noble's RFC 9591 §6 verifier (`FROST.verify`) for the suites only RFC 9591 defines. */
function nobleVerify(keySpec: KeySpecName, publicKey: Uint8Array, message: Uint8Array, sig: Uint8Array) {
  const frost =
    keySpec === 'FROST_SECP256K1'
      ? secp256k1_FROST
      : keySpec === 'FROST_P256'
        ? p256_FROST
        : keySpec === 'FROST_RISTRETTO255'
          ? ristretto255_FROST
          : undefined;
  if (!frost) throw new Error(`${keySpec} has a standard verifier; use it`);
  try {
    return frost.verify(sig, message, publicKey);
  } catch {
    return false;
  }
}

/**
 * Checks a signature under the API public key with the independent verifier of its key spec
 * (VERIFIER_OF). `pem` (Ed25519 / Ed448): the PEM to hand OpenSSL, e.g. the API's; default: built
 * here from the raw key.
 */
export function verifyIndependently(
  keySpec: KeySpecName,
  publicKey: Uint8Array,
  message: Uint8Array,
  signature: Uint8Array,
  pem?: string,
): boolean {
  switch (keySpec) {
    case 'FROST_ED25519':
    case 'FROST_ED448':
      return opensslVerify(pem ?? edwardsPem(keySpec, publicKey), message, signature);
    case 'FROST_SECP256K1_TR':
      return bip340VerifyLibsecp256k1(publicKey, message, signature);
    default:
      return nobleVerify(keySpec, publicKey, message, signature);
  }
}
