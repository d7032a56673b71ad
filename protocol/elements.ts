/**
 * Strict deserialization of group elements, scalars and identifiers from untrusted bytes
 * (RFC 9591 §3.1 DeserializeElement / DeserializeScalar, and invariant I2: validate before use).
 * Every failure is a DecodeError with a stable code; no raw TypeError or RangeError escapes.
 */
import { bytesToNumberBE, bytesToNumberLE } from '@noble/curves/utils.js';
import { ed25519Sodium } from './backend-ed25519-sodium.ts';
import { equalBytes, fromHex, toHex } from './bytes.ts';
import { DecodeError } from './errors.ts';
import type { KeySpec } from './suites.ts';

/** A decoded, validated group element: prime order, not the identity, canonically encoded. */
export function decodeElement(spec: KeySpec, bytes: Uint8Array, what = 'element'): any {
  if (!(bytes instanceof Uint8Array) || bytes.length !== spec.elementLength) {
    throw new DecodeError('InvalidElement', `${what}: ${spec.name} elements are ${spec.elementLength} bytes`);
  }
  // Fast path for Ed25519: libsodium's check is exactly RFC 9591 §3.1 (canonical, on the curve,
  // prime order, not the identity) at ~1/20 of noble's cost (bench/results); then decode only.
  // Invalid input falls through to noble for its precise error. test/fast-sign.test.ts proves
  // both paths accept exactly the same encodings.
  if (spec.name === 'FROST_ED25519' && ed25519Sodium.isValidElement(bytes))
    return spec.Point.fromBytes(bytes);
  return decodeElementNoble(spec, bytes, what);
}

/** The reference check, on noble alone (RFC 9591 §3.1); every fast path is tested against it. */
export function decodeElementNoble(spec: KeySpec, bytes: Uint8Array, what = 'element'): any {
  if (!(bytes instanceof Uint8Array) || bytes.length !== spec.elementLength) {
    throw new DecodeError('InvalidElement', `${what}: ${spec.name} elements are ${spec.elementLength} bytes`);
  }
  let p: any;
  try {
    p = spec.Point.fromBytes(bytes);
    p.assertValidity();
  } catch {
    throw new DecodeError('InvalidElement', `${what}: not a valid ${spec.curve} point encoding`);
  }
  if (p.is0()) throw new DecodeError('InvalidElement', `${what}: the identity element is not allowed`);
  if (!p.isTorsionFree()) throw new DecodeError('InvalidElement', `${what}: not in the prime-order subgroup`);
  // Canonical encoding: re-serializing must give the same bytes (rejects non-canonical y / x forms).
  if (!equalBytes(p.toBytes(), bytes))
    throw new DecodeError('InvalidElement', `${what}: non-canonical encoding`);
  return p;
}

export function encodeElement(p: any): Uint8Array {
  return p.toBytes();
}

/** A scalar in [0, order) (or [1, order) with `nonZero`), in the suite's byte order. */
export function decodeScalar(spec: KeySpec, bytes: Uint8Array, what = 'scalar', nonZero = true): bigint {
  if (!(bytes instanceof Uint8Array) || bytes.length !== spec.scalarLength) {
    throw new DecodeError('InvalidScalar', `${what}: ${spec.name} scalars are ${spec.scalarLength} bytes`);
  }
  const Fn = spec.Point.Fn;
  const n = Fn.isLE ? bytesToNumberLE(bytes) : bytesToNumberBE(bytes);
  if (n >= Fn.ORDER) throw new DecodeError('InvalidScalar', `${what}: not reduced modulo the group order`);
  if (nonZero && n === 0n) throw new DecodeError('InvalidScalar', `${what}: zero is not allowed`);
  return n;
}

export function encodeScalar(spec: KeySpec, n: bigint): Uint8Array {
  return spec.Point.Fn.toBytes(n);
}

/** A participant identifier: noble's canonical hex of a non-zero scalar. */
export function decodeIdentifier(spec: KeySpec, id: unknown, what = 'identifier'): string {
  if (typeof id !== 'string') throw new DecodeError('InvalidIdentifier', `${what}: must be a hex string`);
  let bytes: Uint8Array;
  try {
    bytes = fromHex(id, what, spec.scalarLength);
  } catch {
    throw new DecodeError(
      'InvalidIdentifier',
      `${what}: must be ${spec.scalarLength} bytes of lowercase hex`,
    );
  }
  try {
    decodeScalar(spec, bytes, what, true);
  } catch {
    throw new DecodeError('InvalidIdentifier', `${what}: must be a non-zero scalar below the group order`);
  }
  return toHex(bytes);
}

/** Identifier of `node-k`: the scalar k (noble's `Identifier.fromNumber`). */
export function participantIdOf(spec: KeySpec, index: number): string {
  return spec.frost.Identifier.fromNumber(index);
}
