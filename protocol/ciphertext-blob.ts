/**
 * The ciphertext blob of `Encrypt` (AWS KMS `CiphertextBlob`): versioned and self-describing, so
 * `Decrypt` reads the key id from it, and a wrong encryption context is recognized from the label
 * digest before any node is asked. Byte layout (all integers big-endian):
 *
 *   offset  size  field
 *   0       4     magic "TKC1"
 *   4       1     format version (1)
 *   5       1     scheme (1 = TDH2-ristretto255 + AES-256-GCM, protocol/tdh2.ts)
 *   6       2     key id length n (1..128)
 *   8       n     key id (UTF-8)
 *   8+n     32    label digest: SHA-256 of the encryption context's label (protocol/tdh2.ts)
 *   +32     32    u   (ristretto255)
 *   +32     32    ū   (ristretto255)
 *   +32     32    e   (scalar, little-endian)
 *   +32     32    f   (scalar, little-endian)
 *   +32     4     AEAD ciphertext length m (16..4112)
 *   +4      m     AEAD ciphertext with its 16-byte tag
 * Nothing may follow. Scalars must be canonical (< L); elements are checked by isValidCiphertext.
 */
import { sha256 } from '@noble/hashes/sha2.js';
import { bytesToNumberLE } from '@noble/curves/utils.js';
import { concatBytes, equalBytes, utf8ToBytes } from './bytes.ts';
import { DecodeError } from './errors.ts';
import { Fq } from './ristretto-ops.ts';
import { MAX_PLAINTEXT, type Tdh2Ciphertext } from './tdh2.ts';

const MAGIC = utf8ToBytes('TKC1');
export const BLOB_VERSION = 1;
export const SCHEME_TDH2_RISTRETTO255_AES256GCM = 1;

export type CiphertextBlob = {
  readonly keyId: string;
  readonly labelDigest: Uint8Array;
  readonly ct: Tdh2Ciphertext;
};

export function labelDigest(label: Uint8Array): Uint8Array {
  return sha256(label);
}

function u16(n: number): Uint8Array {
  return Uint8Array.of(n >> 8, n & 0xff);
}
function u32(n: number): Uint8Array {
  return Uint8Array.of((n >>> 24) & 0xff, (n >>> 16) & 0xff, (n >>> 8) & 0xff, n & 0xff);
}

export function encodeBlob(keyId: string, label: Uint8Array, ct: Tdh2Ciphertext): Uint8Array {
  const id = utf8ToBytes(keyId);
  if (id.length < 1 || id.length > 128) throw new DecodeError('DecodeError', 'key id must be 1-128 bytes');
  return concatBytes(
    MAGIC,
    Uint8Array.of(BLOB_VERSION, SCHEME_TDH2_RISTRETTO255_AES256GCM),
    u16(id.length),
    id,
    labelDigest(label),
    ct.u,
    ct.uBar,
    Fq.toBytes(ct.e),
    Fq.toBytes(ct.f),
    u32(ct.c.length),
    ct.c,
  );
}

export function decodeBlob(b: Uint8Array): CiphertextBlob {
  const bad = (why: string): never => {
    throw new DecodeError('DecodeError', `InvalidCiphertext: ${why}`);
  };
  let o = 0;
  const take = (n: number) => {
    if (o + n > b.length) bad('truncated ciphertext blob');
    const s = b.subarray(o, o + n);
    o += n;
    return s;
  };
  if (!equalBytes(take(4), MAGIC)) bad('not a ciphertext blob of this service');
  const [version, scheme] = take(2);
  if (version !== BLOB_VERSION)
    throw new DecodeError('UnsupportedVersion', `ciphertext blob version ${version}`);
  if (scheme !== SCHEME_TDH2_RISTRETTO255_AES256GCM) bad(`unknown scheme ${scheme}`);
  const idLen = (take(1)[0]! << 8) | take(1)[0]!;
  if (idLen < 1 || idLen > 128) bad('key id length');
  let keyId: string;
  try {
    keyId = new TextDecoder('utf-8', { fatal: true }).decode(take(idLen));
  } catch {
    return bad('key id is not UTF-8');
  }
  const labelD = take(32).slice();
  const u = take(32).slice();
  const uBar = take(32).slice();
  const e = bytesToNumberLE(take(32));
  const f = bytesToNumberLE(take(32));
  if (e >= Fq.ORDER || f >= Fq.ORDER) bad('non-canonical scalar');
  const len = take(4).reduce((acc, x) => acc * 256 + x, 0);
  if (len < 16 || len > MAX_PLAINTEXT + 16) bad('AEAD ciphertext length');
  const c = take(len).slice();
  if (o !== b.length) bad('trailing bytes');
  return { keyId, labelDigest: labelD, ct: { c, u, uBar, e, f } };
}
