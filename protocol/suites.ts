/**
 * The registry of key specs: one entry per FROST ciphersuite the service offers. Each names its
 * curve, hash, RFC 9591 context string, and how public keys and signatures are encoded on the API.
 * The cryptography is noble's RFC 9591 implementation; this file only describes and selects it.
 */
import { ed25519, ed25519_FROST, ristretto255, ristretto255_FROST } from '@noble/curves/ed25519.js';
import { ed448, ed448_FROST } from '@noble/curves/ed448.js';
import { p256, p256_FROST } from '@noble/curves/nist.js';
import { schnorr, schnorr_FROST, secp256k1, secp256k1_FROST } from '@noble/curves/secp256k1.js';
import type { FROST, FROSTPointConstructor } from '@noble/curves/abstract/frost.js';
import { DecodeError, KmsError } from './errors.ts';

export const KEY_SPECS = [
  'FROST_ED25519',
  'FROST_SECP256K1_TR',
  'FROST_SECP256K1',
  'FROST_P256',
  'FROST_RISTRETTO255',
  'FROST_ED448',
] as const;
/**
 * Key specs of encryption keys (issue 15): not signing suites. TDH2_RISTRETTO255 keys are made,
 * refreshed, reshared and repaired by the ristretto255 FROST machinery (same group, identifiers
 * and packages as FROST_RISTRETTO255); their shares only ever make TDH2 decryption shares
 * (protocol/tdh2.ts), never signature shares.
 */
export const ENCRYPTION_KEY_SPECS = ['TDH2_RISTRETTO255'] as const;
/** Every key spec the API accepts: the signing suites (`KEY_SPECS`) and the encryption ones. */
export const ALL_KEY_SPECS = [...KEY_SPECS, ...ENCRYPTION_KEY_SPECS] as const;
export type KeySpecName = (typeof ALL_KEY_SPECS)[number];
/** The FROST signing suites only. */
export type SigningKeySpecName = (typeof KEY_SPECS)[number];

/** What a key is for (AWS KMS `KeyUsage`): a key has exactly one, fixed by its key spec. */
export const KEY_USAGES = ['SIGN_VERIFY', 'ENCRYPT_DECRYPT'] as const;
export type KeyUsage = (typeof KEY_USAGES)[number];

export type PublicKeyEncoding =
  | 'ed25519' // RFC 8032 32-byte point
  | 'bip340-xonly' // BIP340 32-byte x coordinate (even Y implied)
  | 'sec1-compressed' // 33-byte SEC1 compressed point
  | 'ristretto255' // 32-byte ristretto encoding
  | 'ed448'; // RFC 8032 57-byte point

export type SignatureEncoding =
  | 'ed25519' // RFC 8032 R || S, 64 bytes
  | 'bip340' // BIP340 x(R) || s, 64 bytes
  | 'rfc9591' // RFC 9591 §6: SerializeElement(R) || SerializeScalar(z)
  | 'ed448'; // RFC 8032 R || S, 114 bytes

export type KeySpec = {
  readonly name: KeySpecName;
  /** SIGN_VERIFY for FROST suites; ENCRYPT_DECRYPT keys never sign (and signing keys never decrypt). */
  readonly usage: KeyUsage;
  /** noble's RFC 9591 implementation of this suite. */
  readonly frost: FROST;
  /** The suite's group: point decoding, arithmetic and its scalar field (`Point.Fn`). */
  readonly Point: FROSTPointConstructor<any>;
  readonly curve: 'ed25519' | 'secp256k1' | 'p256' | 'ristretto255' | 'ed448';
  readonly hash: 'SHA-512' | 'SHA-256' | 'SHAKE256';
  /** RFC 9591 §6 context string (for secp256k1-tr: the frost-secp256k1-tr one). */
  readonly contextString: string;
  /** Byte length of a serialized scalar (Ns) and element (Ne), RFC 9591 §6. */
  readonly scalarLength: number;
  readonly elementLength: number;
  readonly publicKeyEncoding: PublicKeyEncoding;
  readonly publicKeyLength: number;
  readonly signatureEncoding: SignatureEncoding;
  readonly signatureLength: number;
  /** Folder under `test/vectors/frost/` with this suite's vectors. */
  readonly vectorsDir: string;
};

export const KEY_SPEC_REGISTRY: Readonly<Record<KeySpecName, KeySpec>> = {
  FROST_ED25519: {
    name: 'FROST_ED25519',
    usage: 'SIGN_VERIFY',
    Point: ed25519.Point as unknown as FROSTPointConstructor<any>,
    frost: ed25519_FROST,
    curve: 'ed25519',
    hash: 'SHA-512',
    contextString: 'FROST-ED25519-SHA512-v1',
    scalarLength: 32,
    elementLength: 32,
    publicKeyEncoding: 'ed25519',
    publicKeyLength: 32,
    signatureEncoding: 'ed25519',
    signatureLength: 64,
    vectorsDir: 'ed25519',
  },
  FROST_SECP256K1_TR: {
    name: 'FROST_SECP256K1_TR',
    usage: 'SIGN_VERIFY',
    Point: secp256k1.Point as unknown as FROSTPointConstructor<any>,
    frost: schnorr_FROST,
    curve: 'secp256k1',
    hash: 'SHA-256',
    contextString: 'FROST-secp256k1-SHA256-TR-v1',
    scalarLength: 32,
    elementLength: 33,
    publicKeyEncoding: 'bip340-xonly',
    publicKeyLength: 32,
    signatureEncoding: 'bip340',
    signatureLength: 64,
    vectorsDir: 'secp256k1-tr',
  },
  FROST_SECP256K1: {
    name: 'FROST_SECP256K1',
    usage: 'SIGN_VERIFY',
    Point: secp256k1.Point as unknown as FROSTPointConstructor<any>,
    frost: secp256k1_FROST,
    curve: 'secp256k1',
    hash: 'SHA-256',
    contextString: 'FROST-secp256k1-SHA256-v1',
    scalarLength: 32,
    elementLength: 33,
    publicKeyEncoding: 'sec1-compressed',
    publicKeyLength: 33,
    signatureEncoding: 'rfc9591',
    signatureLength: 65,
    vectorsDir: 'secp256k1',
  },
  FROST_P256: {
    name: 'FROST_P256',
    usage: 'SIGN_VERIFY',
    Point: p256.Point as unknown as FROSTPointConstructor<any>,
    frost: p256_FROST,
    curve: 'p256',
    hash: 'SHA-256',
    contextString: 'FROST-P256-SHA256-v1',
    scalarLength: 32,
    elementLength: 33,
    publicKeyEncoding: 'sec1-compressed',
    publicKeyLength: 33,
    signatureEncoding: 'rfc9591',
    signatureLength: 65,
    vectorsDir: 'p256',
  },
  FROST_RISTRETTO255: {
    name: 'FROST_RISTRETTO255',
    usage: 'SIGN_VERIFY',
    Point: ristretto255.Point as unknown as FROSTPointConstructor<any>,
    frost: ristretto255_FROST,
    curve: 'ristretto255',
    hash: 'SHA-512',
    contextString: 'FROST-RISTRETTO255-SHA512-v1',
    scalarLength: 32,
    elementLength: 32,
    publicKeyEncoding: 'ristretto255',
    publicKeyLength: 32,
    signatureEncoding: 'rfc9591',
    signatureLength: 64,
    vectorsDir: 'ristretto255',
  },
  FROST_ED448: {
    name: 'FROST_ED448',
    usage: 'SIGN_VERIFY',
    Point: ed448.Point as unknown as FROSTPointConstructor<any>,
    frost: ed448_FROST,
    curve: 'ed448',
    hash: 'SHAKE256',
    contextString: 'FROST-ED448-SHAKE256-v1',
    scalarLength: 57,
    elementLength: 57,
    publicKeyEncoding: 'ed448',
    publicKeyLength: 57,
    signatureEncoding: 'ed448',
    signatureLength: 114,
    vectorsDir: 'ed448',
  },
  TDH2_RISTRETTO255: {
    name: 'TDH2_RISTRETTO255',
    usage: 'ENCRYPT_DECRYPT',
    Point: ristretto255.Point as unknown as FROSTPointConstructor<any>,
    // The DKG and key events of ristretto255 (RFC 9591 identifiers and packages); never signs.
    frost: ristretto255_FROST,
    curve: 'ristretto255',
    hash: 'SHA-512',
    contextString: 'FROST-RISTRETTO255-SHA512-v1',
    scalarLength: 32,
    elementLength: 32,
    publicKeyEncoding: 'ristretto255',
    publicKeyLength: 32,
    // Not a signing suite: these describe nothing it produces (assertKeyUsage refuses signing).
    signatureEncoding: 'rfc9591',
    signatureLength: 64,
    vectorsDir: 'ristretto255',
  },
};

export function isKeySpecName(s: unknown): s is KeySpecName {
  return typeof s === 'string' && (ALL_KEY_SPECS as readonly string[]).includes(s);
}

/**
 * Refuses to use a key for what it is not for (AWS KMS InvalidKeyUsageException): signing with an
 * ENCRYPT_DECRYPT key, decrypting with a SIGN_VERIFY key. Checked by the coordinator and each node.
 */
export function assertKeyUsage(spec: KeySpecName, usage: KeyUsage): void {
  const has = KEY_SPEC_REGISTRY[spec].usage;
  if (has !== usage) {
    throw new KmsError('ValidationError', `InvalidKeyUsage: key spec ${spec} is for ${has}, not ${usage}`);
  }
}

export function keySpec(name: string): KeySpec {
  if (!isKeySpecName(name)) {
    throw new KmsError(
      'ValidationError',
      `unknown keySpec ${JSON.stringify(name)}; one of ${ALL_KEY_SPECS.join(', ')}`,
    );
  }
  return KEY_SPEC_REGISTRY[name];
}

/**
 * The API's public key from the group commitment (`FrostPublic.commitments[0]`, the serialized
 * group element). For BIP340 the x-only form (BIP340 §"Public Key Generation").
 */
export function publicKeyFromGroupElement(spec: KeySpec, element: Uint8Array): Uint8Array {
  if (element.length !== spec.elementLength) {
    throw new DecodeError('InvalidElement', `${spec.name} group element must be ${spec.elementLength} bytes`);
  }
  return spec.publicKeyEncoding === 'bip340-xonly' ? element.slice(1) : element.slice();
}

/** Verifies a signature under the API public key with the suite's standard verifier. Never throws. */
export function verifySignature(
  spec: KeySpec,
  message: Uint8Array,
  signature: Uint8Array,
  publicKey: Uint8Array,
): boolean {
  if (signature.length !== spec.signatureLength || publicKey.length !== spec.publicKeyLength) return false;
  try {
    switch (spec.name) {
      case 'FROST_SECP256K1_TR':
        return schnorr.verify(signature, message, publicKey);
      case 'FROST_ED25519':
        // RFC 8032 verification (cofactored, as RFC 9591 §6.1 requires of FROST(Ed25519)).
        return ed25519.verify(signature, message, publicKey, { zip215: false });
      case 'FROST_ED448':
        return ed448.verify(signature, message, publicKey);
      default:
        return spec.frost.verify(signature, message, publicKey);
    }
  } catch {
    return false;
  }
}
