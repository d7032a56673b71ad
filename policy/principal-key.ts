/**
 * Principals' public keys and their signatures. A principal (user, service, approver, admin) is
 * identified by a public key, never a shared secret: Ed25519 (RFC 8032) or ECDSA P-256 with
 * SHA-256 (FIPS 186-5), the two algorithms RFC 9421 §3.3.4/§3.3.6 name `ecdsa-p256-sha256` and
 * `ed25519`, so passkeys/WebAuthn and cloud or hardware keys can be principals.
 */
import { ed25519 } from '@noble/curves/ed25519.js';
import { p256 } from '@noble/curves/nist.js';
import sodium from 'sodium-native';
import { KmsError } from '../protocol/errors.ts';

export type PrincipalAlg = 'ed25519' | 'ecdsa-p256-sha256';
export const PRINCIPAL_ALGS: readonly PrincipalAlg[] = ['ed25519', 'ecdsa-p256-sha256'];

/** A principal's public key: Ed25519 32 raw bytes; P-256 SEC1 (33 compressed or 65 uncompressed). */
export type PrincipalKey = { readonly alg: PrincipalAlg; readonly publicKey: Uint8Array };

/** Checks the key's encoding (a point on the curve); throws ValidationError otherwise. */
export function checkPrincipalKey(k: PrincipalKey): PrincipalKey {
  try {
    if (k.alg === 'ed25519') {
      if (k.publicKey.length !== 32) throw new Error('length');
      ed25519.Point.fromBytes(k.publicKey);
    } else {
      if (k.publicKey.length !== 33 && k.publicKey.length !== 65) throw new Error('length');
      p256.Point.fromBytes(k.publicKey);
    }
    return k;
  } catch {
    throw new KmsError('ValidationError', `not a valid ${k.alg} public key`);
  }
}

/**
 * Verifies `signature` over `data`. Ed25519: RFC 8032 (64 bytes). ECDSA P-256: `r ‖ s` (64 bytes),
 * SHA-256 of the data (RFC 9421 §3.3.4); high-S is accepted because WebCrypto and HSMs make it.
 * Never throws: false on any malformed input. Ed25519 runs on libsodium (sodium-native, as the
 * FROST Ed25519 fast path does): every node checks a signature per signed request, and noble's
 * Ed25519 verification costs about 10x more (bench/results, request check). P-256 stays on noble.
 * `verifyPrincipalSignatureNoble` is the reference it is tested equal to
 * (test/policy-request-signature.test.ts).
 */
export function verifyPrincipalSignature(k: PrincipalKey, data: Uint8Array, signature: Uint8Array): boolean {
  try {
    if (signature.length !== 64) return false;
    if (k.alg === 'ed25519') {
      if (k.publicKey.length !== 32) return false;
      return sodium.crypto_sign_verify_detached(signature, data, k.publicKey);
    }
    return verifyPrincipalSignatureNoble(k, data, signature);
  } catch {
    return false;
  }
}

/** The same check with noble (pure JS): the reference for `verifyPrincipalSignature`. */
export function verifyPrincipalSignatureNoble(
  k: PrincipalKey,
  data: Uint8Array,
  signature: Uint8Array,
): boolean {
  try {
    if (signature.length !== 64) return false;
    if (k.alg === 'ed25519') return ed25519.verify(signature, data, k.publicKey, { zip215: false });
    return p256.verify(signature, data, k.publicKey, { prehash: true, lowS: false, format: 'compact' });
  } catch {
    return false;
  }
}
