/**
 * PEM SubjectPublicKeyInfo for the suites where a standard exists: Ed25519 and Ed448 (RFC 8410),
 * secp256k1 and P-256 (RFC 5480, via node:crypto from a JWK). BIP340 x-only keys are published as
 * the even-Y secp256k1 point (BIP340 "lift_x"). ristretto255 has no SPKI standard: undefined.
 */
import { createPublicKey } from 'node:crypto';
import { p256 } from '@noble/curves/nist.js';
import { secp256k1 } from '@noble/curves/secp256k1.js';
import type { KeySpecName } from '../protocol/suites.ts';

// RFC 8410 §4: SEQUENCE { SEQUENCE { OID id-Ed25519 / id-Ed448 }, BIT STRING key }.
const ED25519_PREFIX = Buffer.from('302a300506032b6570032100', 'hex');
const ED448_PREFIX = Buffer.from('3043300506032b6571033a00', 'hex');

function pem(der: Buffer): string {
  const b64 = der
    .toString('base64')
    .replace(/(.{64})/g, '$1\n')
    .replace(/\n$/, '');
  return `-----BEGIN PUBLIC KEY-----\n${b64}\n-----END PUBLIC KEY-----\n`;
}

function ecPem(crv: 'secp256k1' | 'P-256', compressed: Uint8Array): string {
  const P = crv === 'P-256' ? p256.Point : secp256k1.Point;
  const a = P.fromBytes(compressed).toAffine();
  const b64u = (n: bigint) => Buffer.from(n.toString(16).padStart(64, '0'), 'hex').toString('base64url');
  const key = createPublicKey({ key: { kty: 'EC', crv, x: b64u(a.x), y: b64u(a.y) }, format: 'jwk' });
  return pem(key.export({ type: 'spki', format: 'der' }));
}

/** PEM of the API public key, or undefined when the suite has no SPKI standard. */
export function publicKeyPem(keySpec: KeySpecName, publicKey: Uint8Array): string | undefined {
  switch (keySpec) {
    case 'FROST_ED25519':
      return pem(Buffer.concat([ED25519_PREFIX, publicKey]));
    case 'FROST_ED448':
      return pem(Buffer.concat([ED448_PREFIX, publicKey]));
    case 'FROST_SECP256K1':
      return ecPem('secp256k1', publicKey);
    case 'FROST_P256':
      return ecPem('P-256', publicKey);
    case 'FROST_SECP256K1_TR':
      return ecPem('secp256k1', Uint8Array.of(0x02, ...publicKey));
    case 'FROST_RISTRETTO255':
      return undefined;
  }
}
