/**
 * Envelope encryption of a file or stream of any size (issue 15, "Files and CLI"): a fresh AES-256
 * data key per file, wrapped by the KMS key (client/encrypt.ts `generateDataKey`, no node
 * involved) and stored in the header (client/envelope-header.ts); the data in chunks of C bytes,
 * each sealed with AES-256-GCM. Format byte by byte: docs/envelope-format.md.
 *
 * Chunk i (0-based) = AES-256-GCM(data key, nonce_i, aad_i, P_i) = ciphertext ‖ 16-byte tag, with
 *   nonce_i = N ⊕ (0³² ‖ u64(i))               (N the header's file nonce; as RFC 8446 §5.3)
 *   aad_i   = SHA-256(header) ‖ u64(i) ‖ final_i  (final_i = 1 on the last chunk, else 0)
 * Every chunk but the last holds exactly C plaintext bytes; the last holds 0..C (an empty file is one
 * empty final chunk). This is the STREAM construction of Hoang, Reyhanitabar, Rogaway and Vizár
 * ("Online Authenticated-Encryption and its Nonce-Reuse Misuse-Resistance", CRYPTO 2015), which is
 * nOAE-secure: the index in nonce and AAD detects reordering, the final flag detects truncation at a
 * chunk boundary and appended chunks, the header digest binds every chunk to this file's header,
 * and the per-file data key makes a chunk from any other file fail.
 *
 * Streaming with bounded memory: at most two chunks (the one being sealed or opened, and one read
 * ahead to learn whether it is the last) plus the file streams' buffers. Decryption verifies each
 * chunk's tag before its plaintext leaves this module; the file functions write to a temporary name
 * beside the output and move it into place only on success, removing it on any failure.
 */
import { createCipheriv, createDecipheriv, createHash, randomBytes, randomFillSync } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { link, open, rename, rm, stat } from 'node:fs/promises';
import { basename, dirname, join, resolve } from 'node:path';
import { pipeline } from 'node:stream/promises';
import { DecodeError, KmsError } from '../protocol/errors.ts';
import { ByteReader } from './byte-reader.ts';
import { DATA_KEY_BYTES, generateDataKey, type Unwrap } from './encrypt.ts';
import { checkContext, contextDifference, type EncryptionContext } from './encryption-context.ts';
import {
  checkChunkSize,
  encodeHeader,
  type EnvelopeHeader,
  FILE_NONCE_BYTES,
  readHeader,
} from './envelope-header.ts';

export const DEFAULT_CHUNK_SIZE = 64 * 1024;
const TAG_BYTES = 16;
/** Decryption reads several chunks at a time: most chunks then lie within one piece (no copy). */
const DECRYPT_READ_SIZE = 1024 * 1024;
/** Chunk indices stay below 2^32 (with 64 KiB chunks: 256 TiB), far inside GCM's per-key limits. */
const MAX_CHUNKS = 2 ** 32;

/** Bytes of input consumed so far, and the input's size when known (a file's; a stream's if given). */
export type Progress = (bytesDone: number, bytesTotal: number | undefined) => void;

export type EncryptStreamOptions = {
  readonly keyId: string;
  /** The KMS key's public key (ristretto255 group element). */
  readonly publicKey: Uint8Array;
  readonly encryptionContext?: EncryptionContext;
  /** Plaintext bytes per chunk (default 64 KiB). */
  readonly chunkSize?: number;
  readonly onProgress?: Progress;
  /** Total plaintext bytes, for progress only. */
  readonly totalBytes?: number;
};

export type DecryptStreamOptions = {
  /** Opens the wrapped data key through the cluster (the CLI: `POST /v1/decrypt`). */
  readonly unwrap: Unwrap;
  /** When given, must equal the header's exactly; checked before `unwrap` is called. */
  readonly encryptionContext?: EncryptionContext;
  readonly onProgress?: Progress;
  /** Total encrypted bytes, for progress only. */
  readonly totalBytes?: number;
  /** Called once with the checked header, before `unwrap`. */
  readonly onHeader?: (header: EnvelopeHeader) => void;
};

const EMPTY = new Uint8Array(0);

function chunkNonce(fileNonce: Uint8Array, index: number): Uint8Array {
  const n = new Uint8Array(fileNonce);
  const view = new DataView(n.buffer);
  view.setUint32(4, view.getUint32(4) ^ Math.floor(index / 2 ** 32));
  view.setUint32(8, (view.getUint32(8) ^ index) >>> 0);
  return n;
}

function chunkAad(headerDigest: Uint8Array, index: number, final: boolean): Uint8Array {
  const aad = new Uint8Array(headerDigest.length + 9);
  aad.set(headerDigest, 0);
  new DataView(aad.buffer).setBigUint64(headerDigest.length, BigInt(index));
  aad[aad.length - 1] = final ? 1 : 0;
  return aad;
}

function sealChunk(
  key: Uint8Array,
  fileNonce: Uint8Array,
  headerDigest: Uint8Array,
  index: number,
  final: boolean,
  plaintext: Uint8Array,
): [Uint8Array, Uint8Array] {
  const c = createCipheriv('aes-256-gcm', key, chunkNonce(fileNonce, index), { authTagLength: TAG_BYTES });
  c.setAAD(chunkAad(headerDigest, index, final));
  // Two pieces rather than one concatenation: one allocation of the chunk's size, not two.
  const body = c.update(plaintext);
  c.final();
  return [body, c.getAuthTag()];
}

/** The chunk's plaintext iff its tag verifies under this index and final flag; undefined otherwise. */
function tryOpen(
  key: Uint8Array,
  fileNonce: Uint8Array,
  headerDigest: Uint8Array,
  index: number,
  final: boolean,
  sealed: Uint8Array,
): Uint8Array | undefined {
  const body = sealed.subarray(0, sealed.length - TAG_BYTES);
  const d = createDecipheriv('aes-256-gcm', key, chunkNonce(fileNonce, index), { authTagLength: TAG_BYTES });
  d.setAAD(chunkAad(headerDigest, index, final));
  d.setAuthTag(sealed.subarray(sealed.length - TAG_BYTES));
  const out = d.update(body);
  try {
    d.final();
    return out;
  } catch {
    out.fill(0);
    return undefined;
  }
}

function openChunk(
  key: Uint8Array,
  fileNonce: Uint8Array,
  headerDigest: Uint8Array,
  index: number,
  final: boolean,
  sealed: Uint8Array,
): Uint8Array {
  const fail = (why: string): never => {
    throw new DecodeError('DecodeError', `InvalidCiphertext: chunk ${index}: ${why}`);
  };
  if (sealed.length < TAG_BYTES) fail('shorter than its tag (file truncated)');
  const pt = tryOpen(key, fileNonce, headerDigest, index, final, sealed);
  if (pt) return pt;
  // Explain the failure: a chunk that verifies with the other final flag pins it down.
  const other = tryOpen(key, fileNonce, headerDigest, index, !final, sealed);
  if (other) {
    other.fill(0);
    if (final) fail('the file is truncated: this chunk is not the last one');
    fail('bytes follow the final chunk (data appended)');
  }
  return fail(
    index === 0
      ? 'failed authentication (the chunk or the header was changed)'
      : 'failed authentication (changed, reordered, or from another file)',
  );
}

/** Envelope-encrypts a byte stream: yields the header, then the sealed chunks. */
export async function* encryptStream(
  source: AsyncIterable<Uint8Array>,
  opts: EncryptStreamOptions,
): AsyncGenerator<Uint8Array> {
  const chunkSize = checkChunkSize(opts.chunkSize ?? DEFAULT_CHUNK_SIZE);
  const encryptionContext = checkContext(opts.encryptionContext ?? {});
  const dataKey = generateDataKey({ keyId: opts.keyId, publicKey: opts.publicKey, encryptionContext });
  const reader = new ByteReader(source);
  try {
    const fileNonce = randomFillSync(new Uint8Array(FILE_NONCE_BYTES));
    const header = encodeHeader({
      chunkSize,
      fileNonce,
      keyId: opts.keyId,
      encryptionContext,
      ciphertextBlob: dataKey.ciphertextBlob,
    });
    const headerDigest = createHash('sha256').update(header).digest();
    yield header;
    let current = await reader.read(chunkSize);
    for (let index = 0; ; index++) {
      if (index >= MAX_CHUNKS) throw new KmsError('ValidationError', 'input too large for one envelope file');
      // Read one chunk ahead: the current chunk is the last iff nothing follows it.
      const next = current.length < chunkSize ? EMPTY : await reader.read(chunkSize);
      const final = next.length === 0;
      yield* sealChunk(dataKey.plaintext, fileNonce, headerDigest, index, final, current);
      opts.onProgress?.(reader.position, opts.totalBytes);
      if (final) return;
      current = next;
    }
  } finally {
    dataKey.plaintext.fill(0);
    await reader.close();
  }
}

/**
 * Decrypts an envelope stream: reads and checks the header, checks the caller's context against it
 * (before any node is asked), unwraps the data key, then yields each chunk's plaintext only after
 * its tag verified. Throws InvalidCiphertext-class errors naming the failing chunk.
 */
export async function* decryptStream(
  source: AsyncIterable<Uint8Array>,
  opts: DecryptStreamOptions,
): AsyncGenerator<Uint8Array> {
  const reader = new ByteReader(source);
  let dataKey: Uint8Array | undefined;
  try {
    const { header, raw } = await readHeader(reader);
    if (opts.encryptionContext !== undefined) {
      const differ = contextDifference(checkContext(opts.encryptionContext), header.encryptionContext);
      if (differ.length > 0)
        throw new KmsError(
          'ContextMismatch',
          `InvalidCiphertext: the encryption context given does not match the file's (differs in: ${differ.join(', ')})`,
        );
    }
    opts.onHeader?.(header);
    dataKey = await opts.unwrap(header.ciphertextBlob, header.encryptionContext);
    if (dataKey.length !== DATA_KEY_BYTES)
      throw new KmsError('ValidationError', 'InvalidCiphertext: the unwrapped data key is not 32 bytes');
    const headerDigest = createHash('sha256').update(raw).digest();
    const frame = header.chunkSize + TAG_BYTES;
    let current = await reader.read(frame);
    if (current.length === 0)
      throw new DecodeError('DecodeError', 'InvalidCiphertext: no chunks (file truncated)');
    for (let index = 0; ; index++) {
      if (index >= MAX_CHUNKS) throw new DecodeError('DecodeError', 'InvalidCiphertext: too many chunks');
      const next = current.length < frame ? EMPTY : await reader.read(frame);
      const final = next.length === 0;
      const plaintext = openChunk(dataKey, header.fileNonce, headerDigest, index, final, current);
      yield plaintext;
      opts.onProgress?.(reader.position, opts.totalBytes);
      if (final) return;
      current = next;
    }
  } finally {
    dataKey?.fill(0);
    await reader.close();
  }
}

export type FilePaths = { readonly input: string; readonly output: string; readonly overwrite?: boolean };

/**
 * Streams `input` through `transform` into a fresh temporary file beside `output` (mode 0600), then
 * moves it into place; on any failure the temporary file is removed and `output` is untouched.
 */
async function transformFile(
  paths: FilePaths,
  /** Bytes per read from the input: a chunk's worth lets the reader pass pieces on without copying. */
  readSize: number,
  transform: (source: AsyncIterable<Uint8Array>, total: number) => AsyncIterable<Uint8Array>,
): Promise<void> {
  if (resolve(paths.input) === resolve(paths.output))
    throw new KmsError('ValidationError', 'input and output must be different files');
  const { size } = await stat(paths.input);
  if (!paths.overwrite && (await stat(paths.output).catch(() => undefined)))
    throw new KmsError('Conflict', `output ${paths.output} exists (pass overwrite to replace it)`);
  const tmp = join(
    dirname(paths.output),
    `.${basename(paths.output)}.${randomBytes(6).toString('hex')}.partial`,
  );
  // Created here, before streaming starts, so that the cleanup below always finds it.
  const out = await open(tmp, 'wx', 0o600);
  try {
    await pipeline(
      createReadStream(paths.input, { highWaterMark: readSize }),
      (source: AsyncIterable<Uint8Array>) => transform(source, size),
      out.createWriteStream(),
    );
    // link(2) refuses an existing target: no file that appeared meanwhile is replaced.
    await (paths.overwrite ? rename : link)(tmp, paths.output);
  } catch (e) {
    await rm(tmp, { force: true });
    throw e;
  }
  if (!paths.overwrite) await rm(tmp, { force: true });
}

export type EncryptFileOptions = FilePaths & Omit<EncryptStreamOptions, 'totalBytes'>;

/** `kms encrypt --in FILE --out FILE.enc`: envelope-encrypts a file of any size. */
export async function encryptFile(opts: EncryptFileOptions): Promise<void> {
  const readSize = checkChunkSize(opts.chunkSize ?? DEFAULT_CHUNK_SIZE);
  await transformFile(opts, readSize, (source, total) =>
    encryptStream(source, { ...opts, totalBytes: total }),
  );
}

export type DecryptFileOptions = FilePaths & Omit<DecryptStreamOptions, 'totalBytes'>;

/** `kms decrypt --in FILE.enc --out FILE`: the plaintext appears at `output` only if every chunk verified. */
export async function decryptFile(opts: DecryptFileOptions): Promise<EnvelopeHeader> {
  let header: EnvelopeHeader | undefined;
  await transformFile(opts, DECRYPT_READ_SIZE, (source, total) =>
    decryptStream(source, {
      ...opts,
      totalBytes: total,
      onHeader: (h) => {
        header = h;
        opts.onHeader?.(h);
      },
    }),
  );
  return header!;
}
