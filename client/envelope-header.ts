/**
 * The header of an envelope-encrypted file (docs/envelope-format.md, byte by byte): everything a
 * decrypting client needs before the first chunk, and everything it checks before asking the
 * cluster to unwrap the data key. All integers are big-endian.
 *
 *   offset  size  field
 *   0       4     magic "TKE1"
 *   4       1     format version (1)
 *   5       1     suite (1 = AES-256-GCM in chunks, client/envelope-file.ts)
 *   6       4     header length H, from offset 0 (at most 65,536)
 *   10      4     chunk size C: plaintext bytes per chunk (1,024 .. 1,048,576)
 *   14      12    file nonce N (random)
 *   26      2     key id length n (1..128)
 *   28      n     key id (UTF-8), equal to the one inside the ciphertext blob
 *   28+n    2     encryption context entry count k
 *   ...           k entries, keys in ascending UTF-16 order and unique:
 *                 2 key length, key (UTF-8, non-empty), 2 value length, value (UTF-8)
 *   ...     4     ciphertext blob length b (1..8,192)
 *   ...     b     ciphertext blob (protocol/ciphertext-blob.ts): the wrapped 32-byte data key,
 *                 labelled with the encryption context above
 * The header ends exactly at offset H.
 */
import { decodeBlob, labelDigest } from '../protocol/ciphertext-blob.ts';
import { DecodeError, KmsError } from '../protocol/errors.ts';
import { equalBytes } from '../protocol/bytes.ts';
import { contextLabel } from '../protocol/tdh2.ts';
import type { ByteReader } from './byte-reader.ts';
import { checkContext, type EncryptionContext } from './encryption-context.ts';

export const MAGIC = new TextEncoder().encode('TKE1');
export const FORMAT_VERSION = 1;
export const SUITE_AES256GCM_CHUNKED = 1;
export const MAX_HEADER_BYTES = 65_536;
export const MIN_CHUNK_SIZE = 1024;
export const MAX_CHUNK_SIZE = 1024 * 1024;
export const FILE_NONCE_BYTES = 12;
const MAX_BLOB_BYTES = 8192;
/** Offset of the header length field's end: the fixed prefix read before the rest. */
const PREFIX_BYTES = 10;

export type EnvelopeHeader = {
  readonly chunkSize: number;
  readonly fileNonce: Uint8Array;
  readonly keyId: string;
  readonly encryptionContext: EncryptionContext;
  readonly ciphertextBlob: Uint8Array;
};

const utf8 = new TextEncoder();
const strictUtf8 = new TextDecoder('utf-8', { fatal: true });

export function checkChunkSize(n: number): number {
  if (!Number.isInteger(n) || n < MIN_CHUNK_SIZE || n > MAX_CHUNK_SIZE)
    throw new KmsError(
      'ValidationError',
      `chunk size must be an integer in ${MIN_CHUNK_SIZE}..${MAX_CHUNK_SIZE}`,
    );
  return n;
}

export function encodeHeader(h: EnvelopeHeader): Uint8Array {
  checkChunkSize(h.chunkSize);
  if (h.fileNonce.length !== FILE_NONCE_BYTES)
    throw new KmsError('ValidationError', 'file nonce must be 12 bytes');
  const keyId = utf8.encode(h.keyId);
  if (keyId.length < 1 || keyId.length > 128)
    throw new KmsError('ValidationError', 'key id must be 1-128 bytes');
  if (h.ciphertextBlob.length < 1 || h.ciphertextBlob.length > MAX_BLOB_BYTES)
    throw new KmsError('ValidationError', 'ciphertext blob length out of range');
  const ctx = checkContext(h.encryptionContext);
  const keys = Object.keys(ctx).sort();
  const parts: Uint8Array[] = [];
  const u16 = (n: number) => Uint8Array.of(n >> 8, n & 0xff);
  const u32 = (n: number) => Uint8Array.of(n >>> 24, (n >>> 16) & 0xff, (n >>> 8) & 0xff, n & 0xff);
  parts.push(u32(h.chunkSize), h.fileNonce, u16(keyId.length), keyId, u16(keys.length));
  for (const k of keys) {
    const kb = utf8.encode(k);
    const vb = utf8.encode(ctx[k]!);
    parts.push(u16(kb.length), kb, u16(vb.length), vb);
  }
  parts.push(u32(h.ciphertextBlob.length), h.ciphertextBlob);
  const bodyLength = parts.reduce((n, p) => n + p.length, 0);
  const total = PREFIX_BYTES + bodyLength;
  if (total > MAX_HEADER_BYTES) throw new KmsError('ValidationError', 'envelope header too large');
  const out = new Uint8Array(total);
  out.set(MAGIC, 0);
  out.set([FORMAT_VERSION, SUITE_AES256GCM_CHUNKED], 4);
  out.set(u32(total), 6);
  let o = PREFIX_BYTES;
  for (const p of parts) {
    out.set(p, o);
    o += p.length;
  }
  return out;
}

const bad = (why: string): never => {
  throw new DecodeError('DecodeError', `InvalidCiphertext: envelope header: ${why}`);
};

/**
 * Reads and checks the header from the start of an envelope file; returns it with its raw bytes
 * (which every chunk authenticates). Checks, before any node is asked: the structure, the key id
 * against the blob's, and the context against the blob's label digest.
 */
export async function readHeader(reader: ByteReader): Promise<{ header: EnvelopeHeader; raw: Uint8Array }> {
  const prefix = await reader.read(PREFIX_BYTES);
  if (prefix.length < 4 || !equalBytes(prefix.subarray(0, 4), MAGIC))
    bad('not an envelope-encrypted file of this service');
  if (prefix.length < PREFIX_BYTES) bad('truncated');
  if (prefix[4] !== FORMAT_VERSION)
    throw new DecodeError('UnsupportedVersion', `envelope format version ${prefix[4]} is not supported`);
  if (prefix[5] !== SUITE_AES256GCM_CHUNKED) bad(`unknown suite ${prefix[5]}`);
  const total = new DataView(prefix.buffer, prefix.byteOffset).getUint32(6);
  if (total <= PREFIX_BYTES || total > MAX_HEADER_BYTES) bad('header length out of range');
  const body = await reader.read(total - PREFIX_BYTES);
  if (body.length < total - PREFIX_BYTES) bad('truncated');
  const raw = new Uint8Array(total);
  raw.set(prefix, 0);
  raw.set(body, PREFIX_BYTES);
  return { header: parseBody(body), raw };
}

function parseBody(b: Uint8Array): EnvelopeHeader {
  const view = new DataView(b.buffer, b.byteOffset, b.byteLength);
  let o = 0;
  const need = (n: number) => {
    if (o + n > b.length) bad('a field runs past the header length');
  };
  const u16 = () => {
    need(2);
    o += 2;
    return view.getUint16(o - 2);
  };
  const u32 = () => {
    need(4);
    o += 4;
    return view.getUint32(o - 4);
  };
  const bytes = (n: number) => {
    need(n);
    o += n;
    return new Uint8Array(b.subarray(o - n, o));
  };
  const text = (n: number, what: string) => {
    try {
      return strictUtf8.decode(bytes(n));
    } catch {
      return bad(`${what} is not UTF-8`);
    }
  };
  const chunkSize = u32();
  if (chunkSize < MIN_CHUNK_SIZE || chunkSize > MAX_CHUNK_SIZE) bad('chunk size out of range');
  const fileNonce = bytes(FILE_NONCE_BYTES);
  const idLen = u16();
  if (idLen < 1 || idLen > 128) bad('key id length out of range');
  const keyId = text(idLen, 'key id');
  const count = u16();
  const ctx: Record<string, string> = Object.create(null);
  let previous: string | undefined;
  for (let i = 0; i < count; i++) {
    const k = text(u16(), 'context key');
    const v = text(u16(), 'context value');
    if (k.length === 0) bad('empty context key');
    // Canonical: ascending and unique, as protocol/tdh2.ts contextLabel orders them.
    if (previous !== undefined && !(previous < k)) bad('context keys are not in ascending order');
    previous = k;
    ctx[k] = v;
  }
  const blobLen = u32();
  if (blobLen < 1 || blobLen > MAX_BLOB_BYTES) bad('ciphertext blob length out of range');
  const ciphertextBlob = bytes(blobLen);
  if (o !== b.length) bad('bytes after the ciphertext blob');
  const encryptionContext: EncryptionContext = { ...ctx };
  try {
    checkContext(encryptionContext);
  } catch (e) {
    bad((e as Error).message);
  }
  const blob = decodeBlob(ciphertextBlob);
  if (blob.keyId !== keyId) bad('key id differs from the one in the ciphertext blob');
  if (!equalBytes(blob.labelDigest, labelDigest(contextLabel(encryptionContext))))
    bad('encryption context does not match the ciphertext blob (header changed)');
  return { chunkSize, fileNonce, keyId, encryptionContext, ciphertextBlob };
}
