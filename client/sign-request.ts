/**
 * Client side of signed API requests (issue "Nodes decide"): a principal's private key (PKCS#8
 * PEM, Ed25519 or ECDSA P-256, read with node:crypto) signs each request that uses or changes a
 * key, a principal or a policy, following the RFC 9421 profile of policy/request-signature.ts, and
 * binds the body with an RFC 9530 Content-Digest. The coordinator forwards exactly these bytes and
 * headers; every node recomputes the signature base itself. Used by the CLI and the test fixtures.
 */
import {
  createPrivateKey,
  createPublicKey,
  generateKeyPairSync,
  type KeyObject,
  randomBytes,
  sign as cryptoSign,
} from 'node:crypto';
import {
  type Governance,
  type GovernanceSignature,
  type Principal,
  governanceHash,
  governanceSigningBytes,
} from '../policy/governance.ts';
import type { PrincipalAlg } from '../policy/principal-key.ts';
import { MAX_SIGNATURE_LIFETIME_S, signRequest } from '../policy/request-signature.ts';
import { KmsError } from '../protocol/errors.ts';

/** A principal able to sign: its id (the governance document's), algorithm and raw public key. */
export type PrincipalSigner = {
  readonly id: string;
  readonly alg: PrincipalAlg;
  /** Ed25519: 32 raw bytes; P-256: SEC1 uncompressed (65 bytes). */
  readonly publicKey: Uint8Array;
  /** The raw 64-byte signature over `data` (Ed25519; P-256 `r ‖ s` over SHA-256 of `data`). */
  sign(data: Uint8Array): Uint8Array;
};

/** Default lifetime of a request signature: long enough for a slow DKG to reach every node. */
export const DEFAULT_SIGNATURE_LIFETIME_S = 120;

function signerOf(id: string, key: KeyObject): PrincipalSigner {
  const jwk = createPublicKey(key).export({ format: 'jwk' });
  if (key.asymmetricKeyType === 'ed25519') {
    return {
      id,
      alg: 'ed25519',
      publicKey: new Uint8Array(Buffer.from(jwk.x!, 'base64url')),
      sign: (data) => new Uint8Array(cryptoSign(null, data, key)),
    };
  }
  if (key.asymmetricKeyType === 'ec' && key.asymmetricKeyDetails?.namedCurve === 'prime256v1') {
    const x = Buffer.from(jwk.x!, 'base64url');
    const y = Buffer.from(jwk.y!, 'base64url');
    return {
      id,
      alg: 'ecdsa-p256-sha256',
      publicKey: new Uint8Array(Buffer.concat([Buffer.from([4]), x, y])),
      // RFC 9421 §3.3.4: r ‖ s, 32 bytes each (IEEE P1363), never DER.
      sign: (data) => new Uint8Array(cryptoSign('sha256', data, { key, dsaEncoding: 'ieee-p1363' })),
    };
  }
  throw new KmsError('ValidationError', 'principal key: only Ed25519 and ECDSA P-256 private keys can sign');
}

/** A signer from a PKCS#8 PEM private key (`kms principals create` writes one; mode 0600). */
export function principalFromPem(id: string, pem: string | Uint8Array): PrincipalSigner {
  let key: KeyObject;
  try {
    key = createPrivateKey({ key: Buffer.from(pem), format: 'pem' });
  } catch {
    // Never echo the file: it is a private key.
    throw new KmsError('ValidationError', 'principal key: not a PKCS#8 PEM private key');
  }
  return signerOf(id, key);
}

/** A new key pair for principal `id`: the PKCS#8 PEM to keep private and the signer. */
export function generatePrincipal(
  id: string,
  alg: PrincipalAlg = 'ed25519',
): { signer: PrincipalSigner; privateKeyPem: string } {
  const { privateKey } =
    alg === 'ed25519' ? generateKeyPairSync('ed25519') : generateKeyPairSync('ec', { namedCurve: 'P-256' });
  return {
    signer: signerOf(id, privateKey),
    privateKeyPem: privateKey.export({ format: 'pem', type: 'pkcs8' }).toString(),
  };
}

/** The principal's entry for a governance document (public key base64url). */
export function principalEntry(s: PrincipalSigner): Principal {
  return { id: s.id, alg: s.alg, publicKey: Buffer.from(s.publicKey).toString('base64url') };
}

/** An admin's signature approving a governance version (policy/governance.ts). */
export function signGovernance(doc: Governance, s: PrincipalSigner): GovernanceSignature {
  const bytes = governanceSigningBytes(governanceHash(doc));
  return { principal: s.id, signature: Buffer.from(s.sign(bytes)).toString('base64') };
}

export type SignOptions = {
  /** Signing time, seconds since the epoch (default: now). */
  readonly nowS?: number;
  /** Seconds the signature stays valid (default 120, at most 300). */
  readonly lifetimeS?: number;
  /** Default: 16 random bytes, base64url. */
  readonly nonce?: string;
};

/**
 * The three headers that sign `method url` with `body` (the exact bytes sent; empty when none):
 * `content-digest`, `signature-input`, `signature`. `@path` and `@query` come from the URL as it
 * is sent (WHATWG URL: percent-encoded path, `?query` or none).
 */
export function signedHeaders(
  req: { method: string; url: string | URL; body?: string | Uint8Array },
  s: PrincipalSigner,
  o: SignOptions = {},
): { 'content-digest': string; 'signature-input': string; signature: string } {
  const url = typeof req.url === 'string' ? new URL(req.url) : req.url;
  const created = o.nowS ?? Math.floor(Date.now() / 1000);
  const lifetime = o.lifetimeS ?? DEFAULT_SIGNATURE_LIFETIME_S;
  if (lifetime < 1 || lifetime > MAX_SIGNATURE_LIFETIME_S) {
    throw new KmsError('ValidationError', `signature lifetime must be 1-${MAX_SIGNATURE_LIFETIME_S} s`);
  }
  return signRequest(
    {
      method: req.method.toUpperCase(),
      path: url.pathname,
      query: url.search,
      body: bodyBytes(req.body),
    },
    {
      created,
      expires: created + lifetime,
      nonce: o.nonce ?? randomBytes(16).toString('base64url'),
      keyid: s.id,
      alg: s.alg,
    },
    (base) => s.sign(base),
  );
}

function bodyBytes(body: string | Uint8Array | undefined): Uint8Array {
  if (body === undefined) return new Uint8Array(0);
  return typeof body === 'string' ? new Uint8Array(Buffer.from(body, 'utf8')) : body;
}

/**
 * A fetch `RequestInit` for a signed request: `body` serialized once (a JSON value, or the exact
 * string/bytes to send), `content-type: application/json` when there is a body, and the signature
 * headers over exactly those bytes. Other headers in `headers` are passed along unsigned.
 */
export function signedInit(
  method: string,
  url: string | URL,
  s: PrincipalSigner,
  o: SignOptions & { body?: unknown; raw?: string | Uint8Array; headers?: Record<string, string> } = {},
): { method: string; headers: Record<string, string>; body?: string | Uint8Array } {
  const payload = o.raw ?? (o.body === undefined ? undefined : JSON.stringify(o.body));
  const headers: Record<string, string> = { ...(o.headers ?? {}) };
  if (payload !== undefined && headers['content-type'] === undefined)
    headers['content-type'] = 'application/json';
  Object.assign(
    headers,
    signedHeaders({ method, url, ...(payload === undefined ? {} : { body: payload }) }, s, o),
  );
  return { method, headers, ...(payload === undefined ? {} : { body: payload }) };
}

/** The body of an approval (policy/approvals.ts): `POST /v1/requests/{id}/approvals`. */
export function approvalBody(requestDigest: string): { requestDigest: string } {
  return { requestDigest };
}
