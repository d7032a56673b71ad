/**
 * The self-describing format of a sealed blob, shared by both sealer backends:
 *
 *   version (1 byte, = 1) ‖ backend (1 byte: 1 software, 2 pkcs11) ‖ scope length (u16 BE) ‖ scope (UTF-8)
 *   ‖ iv (12 bytes) ‖ AES-256-GCM ciphertext ‖ tag (16 bytes)
 *
 * The associated data binds the header and the whole SealContext, each field length-prefixed so no
 * two contexts encode alike: a blob opened under another scope, node or purpose fails the tag check.
 */
import { InfraError } from '../protocol/errors.ts';
import type { SealContext } from './sealer.ts';

export const BLOB_VERSION = 1;
export const BACKEND_SOFTWARE = 1;
export const BACKEND_PKCS11 = 2;
export const IV_BYTES = 12;
export const TAG_BYTES = 16;
const MAX_FIELD = 0xffff;
const AAD_DOMAIN = 'threshold-kms/sealed-blob/v1';

export type ParsedBlob = {
  readonly backend: number;
  readonly scope: string;
  readonly iv: Uint8Array;
  /** Ciphertext followed by the 16-byte tag. */
  readonly ciphertext: Uint8Array;
};

const enc = new TextEncoder();
const dec = new TextDecoder('utf-8', { fatal: true });

function field(s: string): Uint8Array {
  const b = enc.encode(s);
  if (b.length > MAX_FIELD) throw new InfraError('SealError', 'seal context field too long');
  const out = new Uint8Array(2 + b.length);
  new DataView(out.buffer).setUint16(0, b.length);
  out.set(b, 2);
  return out;
}

function concat(parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let o = 0;
  for (const p of parts) {
    out.set(p, o);
    o += p.length;
  }
  return out;
}

/** Checks a context before use: non-empty fields, scope without control characters. */
export function checkContext(ctx: SealContext): void {
  for (const [k, v] of [
    ['scope', ctx.scope],
    ['nodeId', ctx.nodeId],
    ['purpose', ctx.purpose],
  ] as const) {
    // biome-ignore lint/suspicious/noControlCharactersInRegex: rejecting control characters is the point.
    if (typeof v !== 'string' || v.length === 0 || v.length > 256 || /[\u0000-\u001f]/.test(v)) {
      throw new InfraError('SealError', `seal context: invalid ${k}`);
    }
  }
}

/** Associated data for AES-GCM: domain, format version, backend, scope, node id, purpose. */
export function associatedData(backend: number, ctx: SealContext): Uint8Array {
  return concat([
    field(AAD_DOMAIN),
    Uint8Array.of(BLOB_VERSION, backend),
    field(ctx.scope),
    field(ctx.nodeId),
    field(ctx.purpose),
  ]);
}

export function encodeBlob(
  backend: number,
  scope: string,
  iv: Uint8Array,
  ciphertext: Uint8Array,
): Uint8Array {
  return concat([Uint8Array.of(BLOB_VERSION, backend), field(scope), iv, ciphertext]);
}

/** Parses the header; any malformation is a SealError (the blob is never used). */
export function decodeBlob(blob: Uint8Array): ParsedBlob {
  if (!(blob instanceof Uint8Array) || blob.length < 4)
    throw new InfraError('SealError', 'sealed blob is truncated');
  if (blob[0] !== BLOB_VERSION)
    throw new InfraError('SealError', `sealed blob has unsupported version ${blob[0]}`);
  const backend = blob[1]!;
  const scopeLen = new DataView(blob.buffer, blob.byteOffset, blob.byteLength).getUint16(2);
  const ivAt = 4 + scopeLen;
  if (blob.length < ivAt + IV_BYTES + TAG_BYTES)
    throw new InfraError('SealError', 'sealed blob is truncated');
  let scope: string;
  try {
    scope = dec.decode(blob.subarray(4, ivAt));
  } catch {
    throw new InfraError('SealError', 'sealed blob has a malformed scope');
  }
  return {
    backend,
    scope,
    iv: blob.slice(ivAt, ivAt + IV_BYTES),
    ciphertext: blob.slice(ivAt + IV_BYTES),
  };
}

/** Decodes and checks that the blob belongs to this backend and scope before any decryption. */
export function openHeader(backend: number, ctx: SealContext, blob: Uint8Array): ParsedBlob {
  checkContext(ctx);
  const p = decodeBlob(blob);
  if (p.backend !== backend)
    throw new InfraError('SealError', 'sealed blob was sealed by another sealer backend');
  if (p.scope !== ctx.scope) throw new InfraError('SealError', 'sealed blob belongs to another scope');
  return p;
}
