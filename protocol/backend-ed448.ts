/**
 * The Ed448 group (RFC 9591 §6.3, FROST(Ed448, SHAKE256)) for the fast signing path: noble's points
 * (protocol/backend-noble-points.ts: each encoding decoded and subgroup-checked once per process,
 * where noble's FROST does it at every use), a subgroup check with square roots and Jacobi symbols
 * (about 0.45 ms per decoding against 2.1 ms), and OpenSSL's Ed448 verifier (through node:crypto)
 * for the aggregate signature: about 0.2 ms against about 3.7 ms for noble's verify.
 *
 * node:crypto has no raw Ed448 scalar multiplication (its keys are RFC 8032 seeds, hashed and
 * clamped), so ScalarBaseMult stays noble's constant-time `multiply`.
 */
// biome-ignore lint/style/noRestrictedImports: OpenSSL arithmetic only (no I/O): the layer rule is about I/O.
import { createPublicKey, verify as cryptoVerify } from 'node:crypto';
import { ed448, ed448_FROST } from '@noble/curves/ed448.js';
import { ed448InPrimeOrderSubgroup } from './backend-ed448-subgroup.ts';
import { type NobleBackedGroup, nobleBackedGroup } from './backend-noble-points.ts';
import { equalBytes } from './bytes.ts';

const Point = ed448.Point;
/** FROST's Ed448 scalars are 57 bytes (RFC 9591 §6.3 SerializeScalar), not Point.Fn's 56. */
const Fn = ed448_FROST.utils.Fn;
const BYTES = 57;

/**
 * RFC 9591 §3.1 DeserializeElement, with protocol/elements.ts decodeElementNoble's decision: noble's
 * decoding and curve check, the subgroup check of backend-ed448-subgroup.ts (equal to noble's
 * isTorsionFree, 8x faster), and the canonical re-encoding check.
 */
function decodeValid(bytes: Uint8Array) {
  try {
    const p = Point.fromBytes(bytes);
    p.assertValidity();
    if (p.is0()) return undefined;
    const { x, y } = p.toAffine();
    if (!ed448InPrimeOrderSubgroup(x, y)) return undefined;
    // Canonical: re-serializing gives the same bytes.
    return equalBytes(p.toBytes(), bytes) ? p : undefined;
  } catch {
    return undefined;
  }
}

export const ed448Noble: NobleBackedGroup = nobleBackedGroup(Point as any, Fn, BYTES, {
  decodeValid,
  identityEncodable: true,
});

/**
 * RFC 8032 Ed448 verification (empty context) of R || S under a 57-byte key, on OpenSSL. FROST(Ed448)
 * signatures are RFC 8032 signatures (RFC 9591 §6.3: H2 is RFC 8032's dom4 hash). Never throws.
 */
export function ed448VerifyOpenSsl(sig: Uint8Array, msg: Uint8Array, publicKey: Uint8Array): boolean {
  if (sig.length !== 2 * BYTES || publicKey.length !== BYTES) return false;
  try {
    const key = createPublicKey({
      key: { kty: 'OKP', crv: 'Ed448', x: Buffer.from(publicKey).toString('base64url') },
      format: 'jwk',
    });
    return cryptoVerify(null, msg, key, sig);
  } catch {
    return false;
  }
}
