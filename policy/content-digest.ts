/**
 * RFC 9530 `Content-Digest`: the request body bound into the RFC 9421 signature. We issue and
 * require `sha-256`; other algorithms in the field are ignored, a missing `sha-256` is refused.
 */
import { sha256 } from '@noble/hashes/sha2.js';
import { parseDictionary, serializeDictionary } from 'structured-headers';
import { KmsError } from '../protocol/errors.ts';
import { equalBytes } from '../protocol/bytes.ts';

/** `sha-256=:<base64>:` for `body`. */
export function contentDigest(body: Uint8Array): string {
  return serializeDictionary({ 'sha-256': sha256(body) });
}

/** Whether the header's `sha-256` member equals the body's SHA-256. Throws ValidationError if malformed. */
export function contentDigestMatches(header: string, body: Uint8Array): boolean {
  let dict: ReturnType<typeof parseDictionary>;
  try {
    dict = parseDictionary(header);
  } catch {
    throw new KmsError('ValidationError', 'Content-Digest is not a structured dictionary (RFC 9530)');
  }
  const member = dict.get('sha-256');
  if (!member || !(member[0] instanceof ArrayBuffer)) {
    throw new KmsError('ValidationError', 'Content-Digest has no sha-256 byte sequence');
  }
  return equalBytes(new Uint8Array(member[0]), sha256(body));
}
