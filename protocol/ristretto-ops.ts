/**
 * ristretto255 (RFC 9496) group operations for threshold decryption (protocol/tdh2.ts), behind one
 * small interface with two implementations that must agree byte for byte:
 *   - `libsodium`: libsodium's crypto_core_ristretto255_* / crypto_scalarmult_ristretto255*
 *     (the WebAssembly build in libsodium-wrappers-sumo: sodium-native does not bind ristretto255);
 *   - `noble`: @noble/curves' ristretto255, the reference (test/tdh2.test.ts compares them).
 * Elements are canonical 32-byte encodings; scalars are bigints in [0, L) (encoded little-endian).
 * Identity results are never produced for honest inputs; both backends refuse them (libsodium
 * cannot encode them from a multiplication), so callers treat them as invalid input.
 */
import { ristretto255, ristretto255_hasher } from '@noble/curves/ed25519.js';
import sodium from 'libsodium-wrappers-sumo';
import { DecodeError } from './errors.ts';

await sodium.ready;

const P = ristretto255.Point;
export const Fq = P.Fn;

export type RistrettoOps = {
  readonly backend: 'libsodium' | 'noble';
  /** k·G (constant-time in libsodium; k may be secret). */
  baseMul(k: bigint): Uint8Array;
  /** k·A. */
  mul(a: Uint8Array, k: bigint): Uint8Array;
  add(a: Uint8Array, b: Uint8Array): Uint8Array;
  sub(a: Uint8Array, b: Uint8Array): Uint8Array;
  /** Whether `a` is a canonical encoding of a non-identity element. */
  isValid(a: Uint8Array): boolean;
  /** RFC 9496 §4.3.4 one-way map of 64 uniform bytes. */
  fromHash(h: Uint8Array): Uint8Array;
};

const IDENTITY = new Uint8Array(32);
const isIdentity = (a: Uint8Array) => a.length === 32 && a.every((b) => b === 0);

function scalarBytes(k: bigint): Uint8Array {
  if (k <= 0n || k >= Fq.ORDER) throw new DecodeError('InvalidScalar', 'scalar out of range or zero');
  return Fq.toBytes(k);
}

function fail(what: string): never {
  throw new DecodeError('InvalidElement', `ristretto255: ${what}`);
}

export const libsodiumOps: RistrettoOps = {
  backend: 'libsodium',
  baseMul: (k) => sodium.crypto_scalarmult_ristretto255_base(scalarBytes(k)),
  mul: (a, k) => {
    try {
      return sodium.crypto_scalarmult_ristretto255(scalarBytes(k), a);
    } catch {
      return fail('multiplication gave the identity or an invalid element');
    }
  },
  add: (a, b) => {
    const r = sodium.crypto_core_ristretto255_add(a, b);
    return isIdentity(r) ? fail('sum is the identity') : r;
  },
  sub: (a, b) => {
    const r = sodium.crypto_core_ristretto255_sub(a, b);
    return isIdentity(r) ? fail('difference is the identity') : r;
  },
  isValid: (a) => a.length === 32 && !isIdentity(a) && sodium.crypto_core_ristretto255_is_valid_point(a),
  fromHash: (h) => sodium.crypto_core_ristretto255_from_hash(h),
};

const enc = (p: InstanceType<typeof P>): Uint8Array => {
  if (p.is0()) fail('result is the identity');
  return p.toBytes();
};
const dec = (a: Uint8Array): InstanceType<typeof P> => {
  try {
    return P.fromBytes(a);
  } catch {
    return fail('not a canonical encoding');
  }
};

export const nobleOps: RistrettoOps = {
  backend: 'noble',
  baseMul: (k) => enc(P.BASE.multiply(Fq.fromBytes(scalarBytes(k)))),
  mul: (a, k) => enc(dec(a).multiply(Fq.fromBytes(scalarBytes(k)))),
  add: (a, b) => enc(dec(a).add(dec(b))),
  sub: (a, b) => enc(dec(a).subtract(dec(b))),
  isValid: (a) => {
    if (a.length !== 32 || isIdentity(a)) return false;
    try {
      P.fromBytes(a);
      return true;
    } catch {
      return false;
    }
  },
  fromHash: (h) => {
    if (h.length !== 64) fail('from_hash takes 64 bytes');
    return enc((ristretto255_hasher as any).deriveToCurve(h));
  },
};

export { IDENTITY };
