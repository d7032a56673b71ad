/**
 * A node's TDH2 decryption share sealed to the client (issue 15, "the coordinator need not see
 * plaintext"): the client puts an ephemeral ristretto255 public key A = a·g in its signed decrypt
 * request; each node seals its share (u_i and its Chaum–Pedersen proof, protocol/tdh2.ts) to A, so
 * the coordinator carries t sealed shares it cannot open and the client verifies and combines.
 *
 * The seal is ECIES on ristretto255 (DHIES of Abdalla, Bellare and Rogaway, CT-RSA 2001, with an
 * AEAD as the DEM): b random, B = b·g, (K, nonce) = SHA-512(DST ‖ B ‖ A ‖ b·A), box = B ‖
 * AES-256-GCM_K(share, aad). The AAD binds the key id, the share's identifier and the ciphertext's
 * u, so a sealed share cannot be moved to another request. Integrity against a lying coordinator is
 * not the seal's job: the client checks each opened share's proof against its verifying share, and
 * a forged share fails that check or the final AEAD (protocol/tdh2.ts combine).
 */
import { gcm } from '@noble/ciphers/aes.js';
import { bytesToNumberLE, numberToBytesBE } from '@noble/curves/utils.js';
import { sha512 } from '@noble/hashes/sha2.js';
import { randomBytes } from '@noble/hashes/utils.js';
import { concatBytes, fromHex, toHex, utf8ToBytes } from './bytes.ts';
import { DecodeError, KmsError } from './errors.ts';
import { Fq, libsodiumOps, type RistrettoOps } from './ristretto-ops.ts';
import type { DecryptionShare } from './tdh2.ts';

const DST = 'tkms/tdh2/v1/share-box';
/** Bytes of a share on the wire: identifier ‖ u_i ‖ e_i ‖ f_i (32 each; scalars little-endian). */
export const SHARE_BYTES = 128;
/** Bytes of a sealed share: B ‖ ciphertext ‖ tag. */
export const SEALED_SHARE_BYTES = 32 + SHARE_BYTES + 16;

function frame(items: readonly Uint8Array[]): Uint8Array {
  return concatBytes(...items.flatMap((it) => [numberToBytesBE(it.length, 4), it]));
}

export function encodeShare(s: DecryptionShare): Uint8Array {
  const id = fromHex(s.id, 'share identifier');
  if (id.length !== 32) throw new DecodeError('InvalidIdentifier', 'share identifier must be 32 bytes');
  return concatBytes(id, s.ui, Fq.toBytes(s.ei), Fq.toBytes(s.fi));
}

export function decodeShare(b: Uint8Array): DecryptionShare {
  if (b.length !== SHARE_BYTES) throw new DecodeError('DecodeError', 'decryption share must be 128 bytes');
  const ei = bytesToNumberLE(b.subarray(64, 96));
  const fi = bytesToNumberLE(b.subarray(96, 128));
  if (ei >= Fq.ORDER || fi >= Fq.ORDER) throw new DecodeError('InvalidScalar', 'non-canonical proof scalar');
  return { id: toHex(b.subarray(0, 32)), ui: b.slice(32, 64), ei, fi };
}

function boxKey(B: Uint8Array, A: Uint8Array, shared: Uint8Array) {
  const okm = sha512(frame([utf8ToBytes(DST), B, A, shared]));
  return { key: okm.subarray(0, 32), nonce: okm.subarray(32, 44) };
}

function aad(keyId: string, shareId: string, u: Uint8Array): Uint8Array {
  return frame([utf8ToBytes(`${DST}/aad`), utf8ToBytes(keyId), utf8ToBytes(shareId), u]);
}

/** A client's ephemeral key pair for one decrypt request (the secret never leaves the client). */
export function recipientKeyPair(
  ops: RistrettoOps = libsodiumOps,
  rng: (n: number) => Uint8Array = randomBytes,
): { secret: bigint; publicKey: Uint8Array } {
  for (;;) {
    const secret = Fq.create(bytesToNumberLE(rng(64)));
    if (secret !== 0n) return { secret, publicKey: ops.baseMul(secret) };
  }
}

/** Node side: seals `share` to the recipient's public key `A` (checked to be a valid element). */
export function sealShare(
  share: DecryptionShare,
  recipient: Uint8Array,
  bind: { keyId: string; u: Uint8Array },
  ops: RistrettoOps = libsodiumOps,
  rng: (n: number) => Uint8Array = randomBytes,
): Uint8Array {
  if (!ops.isValid(recipient))
    throw new KmsError('ValidationError', 'recipient public key is not a ristretto255 element');
  const eph = recipientKeyPair(ops, rng);
  const { key, nonce } = boxKey(eph.publicKey, recipient, ops.mul(recipient, eph.secret));
  const body = gcm(key, nonce, aad(bind.keyId, share.id, bind.u)).encrypt(encodeShare(share));
  return concatBytes(eph.publicKey, body);
}

/** Client side: opens a sealed share for `shareId`; throws DecodeError when it does not open. */
export function openShare(
  sealed: Uint8Array,
  recipientSecret: bigint,
  bind: { keyId: string; shareId: string; u: Uint8Array },
  ops: RistrettoOps = libsodiumOps,
): DecryptionShare {
  if (sealed.length !== SEALED_SHARE_BYTES) throw new DecodeError('DecodeError', 'sealed share length');
  const B = sealed.subarray(0, 32);
  if (!ops.isValid(B)) throw new DecodeError('InvalidElement', 'sealed share: bad ephemeral key');
  const A = ops.baseMul(recipientSecret);
  const { key, nonce } = boxKey(B, A, ops.mul(B, recipientSecret));
  let plain: Uint8Array;
  try {
    plain = gcm(key, nonce, aad(bind.keyId, bind.shareId, bind.u)).decrypt(sealed.subarray(32));
  } catch {
    throw new DecodeError('DecodeError', 'sealed share does not open (not sealed to this request)');
  }
  const s = decodeShare(plain);
  if (s.id !== bind.shareId) throw new DecodeError('DecodeError', 'sealed share names another member');
  return s;
}
