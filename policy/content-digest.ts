/**
 * RFC 9530 `Content-Digest`: the request body bound into the RFC 9421 signature. We issue and
 * require `sha-256`; other algorithms in the field are ignored, a missing `sha-256` is refused.
 */
import sodium from 'sodium-native';
import { parseDictionary, serializeDictionary } from 'structured-headers';
import { KmsError } from '../protocol/errors.ts';
import { equalBytes } from '../protocol/bytes.ts';

/** SHA-256 on libsodium (native; every node hashes every signed request's body). */
function sha256(body: Uint8Array): Buffer {
  const out = Buffer.alloc(32);
  sodium.crypto_hash_sha256(out, body);
  return out;
}

/** `sha-256=:<base64>:` for `body`. */
export function contentDigest(body: Uint8Array): string {
  return serializeDictionary({ 'sha-256': new Uint8Array(sha256(body)) });
}

/** Exactly what `contentDigest` issues: the one member `sha-256`, canonical base64 of 32 bytes. */
const ISSUED_FORM = /^sha-256=:([A-Za-z0-9+/]{42}[AEIMQUYcgkosw048]=):$/;

/** Whether the header's `sha-256` member equals the body's SHA-256. Throws ValidationError if malformed. */
export function contentDigestMatches(header: string, body: Uint8Array): boolean {
  const digest = sha256(body);
  // The form this API's clients send, compared as text (the canonical base64 of the body's digest
  // is the only one that decodes to it); any other form is parsed in full (RFC 8941) below.
  const m = ISSUED_FORM.exec(header);
  if (m && m[1] === digest.toString('base64')) return true;
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
  return equalBytes(new Uint8Array(member[0]), new Uint8Array(digest));
}
