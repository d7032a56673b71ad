/**
 * The P-256 group (RFC 9591 §6.4, FROST(P-256, SHA-256)) for the fast signing path: OpenSSL (through
 * node:crypto's ECDH) where it exposes the arithmetic, noble's points elsewhere
 * (protocol/backend-noble-points.ts):
 *   - ScalarBaseMult is OpenSSL's constant-time P-256 multiplication (ECDH.setPrivateKey computes
 *     the public point): about 0.02 ms against 0.46 ms for noble's constant-time `multiply`;
 *   - decoding a compressed point is OpenSSL's (ECDH.convertKey: prefix, x < p, on the curve), then
 *     noble's point from the affine coordinates without a second square root: about 0.03 ms against
 *     0.065 ms. P-256 has cofactor 1, so every point on the curve but the identity (which has no
 *     compressed encoding) has prime order.
 * Variable-base multiplication stays noble's: node:crypto returns only x of [k]P (an ECDH secret).
 * That x is enough to check the aggregate's equation [z]G = R + [c]PK (backend-noble-points.ts
 * schnorrEquation: two x-only multiplications, about 0.3 ms, against 0.8 ms for noble's [c]PK).
 * test/fast-suites.test.ts checks every result against noble's FROST and every decoding decision
 * against noble's.
 */
// biome-ignore lint/style/noRestrictedImports: OpenSSL arithmetic only (no I/O): the layer rule is about I/O.
import { createECDH, ECDH } from 'node:crypto';
import { p256 } from '@noble/curves/nist.js';
import { bytesToNumberBE } from '@noble/curves/utils.js';
import { type NobleBackedGroup, nobleBackedGroup } from './backend-noble-points.ts';
import { DecodeError } from './errors.ts';

const Point = p256.Point;
const Fn = Point.Fn;
/** SEC1 compressed: 0x02/0x03 || x (RFC 9591 §6.4 SerializeElement). */
const BYTES = 33;
const CURVE = 'prime256v1';

function decodeValid(bytes: Uint8Array) {
  // Only the compressed form is SerializeElement's; OpenSSL would also take 65-byte forms.
  if (bytes.length !== BYTES || (bytes[0] !== 0x02 && bytes[0] !== 0x03)) return undefined;
  let u: Buffer;
  try {
    u = ECDH.convertKey(bytes, CURVE, undefined, undefined, 'uncompressed') as Buffer;
  } catch {
    return undefined;
  }
  return Point.fromAffine({ x: bytesToNumberBE(u.subarray(1, 33)), y: bytesToNumberBE(u.subarray(33, 65)) });
}

/** [k]G on OpenSSL, constant-time; k in [1, order). */
function baseMul(k: bigint): Uint8Array {
  const n = Fn.toBytes(k);
  try {
    // A fresh ECDH object per call: the secret scalar does not outlive the call in a shared one.
    const ecdh = createECDH(CURVE);
    ecdh.setPrivateKey(n);
    return new Uint8Array(ecdh.getPublicKey(undefined, 'compressed'));
  } finally {
    n.fill(0);
  }
}

/** x([k]P) on OpenSSL (an ECDH shared secret is exactly that); public k and P only. */
function xOfMul(p: Uint8Array, k: bigint): bigint {
  const ecdh = createECDH(CURVE);
  ecdh.setPrivateKey(Fn.toBytes(k));
  return bytesToNumberBE(ecdh.computeSecret(p));
}

const Fp = Point.Fp;
const A = Fp.create(-3n);
const B = p256.Point.CURVE().b;
const SHORT = 1n << 96n;

/**
 * [k]P from two x-only OpenSSL multiplications: x([k]P) and x([k+1]P). y is a square root of
 * x³ - 3x + b, up to sign; of Q = (x, ±y) only [k]P has x(Q + P) = x([k+1]P) (for the other,
 * -[k]P + P = ±([k]P + P) would need 2[k]P = 0 or 2P = 0, impossible in a group of prime order).
 * About 0.35 ms against 0.8 ms for noble's multiplyUnsafe. Public k and P only.
 */
function mulPoint(p: ReturnType<typeof Point.fromBytes>, bytes: Uint8Array, k: bigint) {
  // Short scalars (identifiers in Horner evaluations of commitments): noble's double-and-add is
  // cheaper below about 100 bits than two OpenSSL multiplications.
  if (k < SHORT) return p.multiplyUnsafe(k);
  // k + 1 = order: [k]P = -P (and OpenSSL refuses the zero scalar).
  if (k === Fn.ORDER - 1n) return p.negate();
  const x = xOfMul(bytes, k);
  const x1 = xOfMul(bytes, k + 1n);
  const y = Fp.sqrt(Fp.add(Fp.add(Fp.mul(Fp.sqr(x), x), Fp.mul(A, x)), B));
  const Q = Point.fromAffine({ x, y });
  // Q + P = O means Q = -P, which is not [k]P (k ≠ order - 1): then [k]P = -Q.
  const S = Q.add(p);
  return !S.is0() && S.toAffine().x === x1 ? Q : Q.negate();
}

export const p256OpenSsl: NobleBackedGroup = nobleBackedGroup(Point as any, Fn, BYTES, {
  decodeValid,
  decodeTrusted: (b) => {
    const p = decodeValid(b);
    // Only encodings this process produced or checked get here; anything else is a caller's bug.
    if (p === undefined) throw new DecodeError('InvalidElement', 'not a valid P-256 element');
    return p;
  },
  mulPoint: mulPoint as any,
  baseMul,
  identityEncodable: false,
  xOfMul,
});
