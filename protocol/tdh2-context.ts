/**
 * The encryption context (AWS KMS semantics): a map of non-secret strings bound to a ciphertext as
 * its label (protocol/tdh2.ts `contextLabel`), matched exactly on decryption. AWS limits it to
 * 8,192 characters in all; we bound the UTF-8 bytes the same way so a context always fits a header.
 */
import { KmsError } from './errors.ts';

export type EncryptionContext = Readonly<Record<string, string>>;

/** Largest context, in UTF-8 bytes of all keys and values together (AWS: 8,192 characters). */
export const MAX_CONTEXT_BYTES = 8192;

const utf8 = new TextEncoder();

/** Refuses anything but a plain map of non-empty string keys to string values within the bound. */
export function checkContext(ctx: unknown): EncryptionContext {
  if (
    ctx === null ||
    typeof ctx !== 'object' ||
    Array.isArray(ctx) ||
    Object.getPrototypeOf(ctx) !== Object.prototype
  )
    throw new KmsError('ValidationError', 'encryption context must be a map of strings to strings');
  let bytes = 0;
  for (const [k, v] of Object.entries(ctx)) {
    if (k.length === 0) throw new KmsError('ValidationError', 'encryption context keys must not be empty');
    if (typeof v !== 'string')
      throw new KmsError('ValidationError', `encryption context value for "${k}" is not a string`);
    if (!k.isWellFormed() || !v.isWellFormed())
      throw new KmsError('ValidationError', 'encryption context must be well-formed Unicode');
    bytes += utf8.encode(k).length + utf8.encode(v).length;
  }
  if (bytes > MAX_CONTEXT_BYTES)
    throw new KmsError('ValidationError', `encryption context is over ${MAX_CONTEXT_BYTES} bytes`);
  return ctx as EncryptionContext;
}

/**
 * The keys on which two contexts differ (present in one only, or with different values), sorted.
 * Empty iff they match exactly. Context entries are not secret (AWS logs them), so naming keys is fine.
 */
export function contextDifference(a: EncryptionContext, b: EncryptionContext): string[] {
  const keys = new Set([...Object.keys(a), ...Object.keys(b)]);
  return [...keys].filter((k) => !Object.hasOwn(a, k) || !Object.hasOwn(b, k) || a[k] !== b[k]).sort();
}
