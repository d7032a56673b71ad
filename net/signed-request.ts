/**
 * The wire form of a client-signed API request as the coordinator forwards it to the nodes (the
 * `auth` field of node RPCs): exactly what the client signed, so each node recomputes the RFC 9421
 * signature base itself (policy/request-signature.ts). The coordinator cannot change a byte without
 * the signature failing on every node; it is a courier, not a trusted party.
 */
import { hash } from 'node:crypto';
import { KmsError } from '../protocol/errors.ts';
import type { SignedRequest } from '../policy/request-signature.ts';

/** A signed request on the wire: body in base64, the three signature headers verbatim. */
export type SignedRequestWire = {
  method: string;
  path: string;
  /** `?…` or empty. */
  query: string;
  headers: { 'content-digest': string; 'signature-input': string; signature: string };
  /** The request body, base64 (at most 192 KiB decoded: the coordinator's body limit, which holds a 64 KiB message hex-encoded plus JSON). */
  body: string;
};

/** A request with the signed approvals collected for it (POST /v1/requests/{id}/approvals). */
export type AuthorizationWire = { request: SignedRequestWire; approvals?: SignedRequestWire[] };

const header = { type: 'string', minLength: 1, maxLength: 4096 } as const;
export const signedRequestSchema = {
  type: 'object',
  additionalProperties: false,
  required: ['method', 'path', 'query', 'headers', 'body'],
  properties: {
    method: { enum: ['GET', 'POST', 'PUT', 'PATCH', 'DELETE'] },
    path: { type: 'string', pattern: '^/[\\x21-\\x7e]{0,1023}$' },
    query: { type: 'string', pattern: '^(\\?[\\x21-\\x7e]{0,1023})?$' },
    headers: {
      type: 'object',
      additionalProperties: false,
      required: ['content-digest', 'signature-input', 'signature'],
      properties: { 'content-digest': header, 'signature-input': header, signature: header },
    },
    body: { type: 'string', pattern: '^[A-Za-z0-9+/]*={0,2}$', maxLength: 262_144 },
  },
} as const;

export const authorizationSchema = {
  type: 'object',
  additionalProperties: false,
  required: ['request'],
  properties: {
    request: signedRequestSchema,
    approvals: { type: 'array', maxItems: 100, items: signedRequestSchema },
  },
} as const;

/** The verifier's view of a wire request. */
export function fromWire(w: SignedRequestWire): SignedRequest {
  return {
    method: w.method,
    path: w.path,
    query: w.query,
    headers: { ...w.headers },
    body: base64Bytes(w.body),
  };
}

/**
 * The decoded bytes as a plain Uint8Array whose `.buffer` holds them alone: a view of Buffer's own
 * decoding when it has a memory of its own (no second copy of a large body), a copy when it came
 * from Buffer's shared pool (whose memory holds unrelated bytes).
 */
function base64Bytes(b64: string): Uint8Array {
  const b = Buffer.from(b64, 'base64');
  if (b.byteOffset === 0 && b.byteLength === b.buffer.byteLength) {
    return new Uint8Array(b.buffer, 0, b.byteLength);
  }
  return new Uint8Array(b);
}

/** The wire form of a request a client signed (CLI, client module, coordinator forwarding). */
export function toWire(r: SignedRequest): SignedRequestWire {
  const h = r.headers;
  const need = (n: 'content-digest' | 'signature-input' | 'signature') => {
    const v = h[n];
    if (v === undefined) throw new KmsError('Unauthorized', `request signature: ${n} header is missing`);
    return v;
  };
  return {
    method: r.method.toUpperCase(),
    path: r.path,
    query: r.query,
    headers: {
      'content-digest': need('content-digest'),
      'signature-input': need('signature-input'),
      signature: need('signature'),
    },
    body: Buffer.from(r.body).toString('base64'),
  };
}

/**
 * The request's digest: SHA-256 over what the signature covers and its parameters (method, path,
 * query, Content-Digest, Signature-Input). Approvals name a request by it; audit records carry it.
 */
export function requestDigest(w: SignedRequestWire): string {
  const parts = [w.method, w.path, w.query, w.headers['content-digest'], w.headers['signature-input']];
  // SHA-256 of the UTF-8 encoding, hex (one-shot OpenSSL hash: computed for every signed request).
  return hash('sha256', parts.map((p) => `${p.length}:${p}`).join('\n'), 'hex');
}
