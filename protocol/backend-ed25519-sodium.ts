/**
 * The Ed25519 group (RFC 9591 §6.1, FROST(Ed25519, SHA-512)) on libsodium through sodium-native:
 * about 0.03 ms to decode and subgroup-check a point, 0.014 ms per fixed-base and 0.06 ms per
 * variable-base multiplication, against about 0.7 ms, 0.3 ms and 0.25 ms in noble (see the
 * primitives table of the protocol benchmark). Scalars stay noble bigints (libsodium has no scalar
 * multiplication in its core API); only the point arithmetic is native.
 */
import { ed25519 } from '@noble/curves/ed25519.js';
import sodium from 'sodium-native';
import type { FastGroup } from './fast-group.ts';

const Fn = ed25519.Point.Fn;
const BYTES = 32;

/** Little-endian 32-byte scalar buffer for libsodium (RFC 8032 scalar encoding). */
function scalarBytes(k: bigint): Uint8Array {
  if (k <= 0n || k >= Fn.ORDER) throw new RangeError('scalar out of range');
  return Fn.toBytes(k);
}

export const ed25519Sodium: FastGroup = {
  elementLength: BYTES,
  Fn,
  /**
   * libsodium's check is exactly RFC 9591 §3.1 for Ed25519: canonical y (< p), not of small order
   * (which also rejects the identity and every x = 0 point, i.e. the "negative zero" encodings),
   * on the curve, and in the prime-order subgroup ([L]P = identity).
   */
  isValidElement(bytes) {
    return (
      bytes instanceof Uint8Array &&
      bytes.length === BYTES &&
      sodium.crypto_core_ed25519_is_valid_point(bytes)
    );
  },
  baseMul(k) {
    const n = scalarBytes(k);
    const out = new Uint8Array(BYTES);
    try {
      sodium.crypto_scalarmult_ed25519_base_noclamp(out, n);
    } finally {
      // The scalar may be a secret nonce: wipe the copy we made.
      sodium.sodium_memzero(n);
    }
    return out;
  },
  mul(p, k) {
    const out = new Uint8Array(BYTES);
    // noclamp: the scalar is used as is (libsodium only clears bit 255, which is 0 below the order).
    sodium.crypto_scalarmult_ed25519_noclamp(out, scalarBytes(k), p);
    return out;
  },
  /**
   * libsodium's scalarmult refuses (-1, thrown by sodium-native) an input that is not canonical,
   * of small order, off the curve (ge25519_frombytes) or outside the prime-order subgroup: the
   * checks of is_valid_point, whose extra is_on_curve test frombytes already implies. Its only
   * other refusals are a zero scalar or an identity result, impossible for k in [1, L) and P of
   * order L: so undefined exactly when isValidElement(P) is false.
   */
  mulChecked(p, k) {
    const n = scalarBytes(k);
    if (!(p instanceof Uint8Array) || p.length !== BYTES) return undefined;
    const out = new Uint8Array(BYTES);
    try {
      sodium.crypto_scalarmult_ed25519_noclamp(out, n, p);
    } catch {
      return undefined;
    }
    return out;
  },
  add(p, q) {
    const out = new Uint8Array(BYTES);
    sodium.crypto_core_ed25519_add(out, p, q);
    return out;
  },
};

/** SHA-512 (libsodium; about 8x noble's for the short inputs FROST hashes). */
export function sha512Sodium(msg: Uint8Array): Uint8Array {
  const out = new Uint8Array(64);
  sodium.crypto_hash_sha512(out, msg);
  return out;
}

/** RFC 8032 verification of R || S under the 32-byte key (cofactorless, canonical S, R not small order). */
export function ed25519VerifySodium(sig: Uint8Array, msg: Uint8Array, publicKey: Uint8Array): boolean {
  return sodium.crypto_sign_verify_detached(sig, msg, publicKey);
}
