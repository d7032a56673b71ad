/**
 * RFC 9421 HTTP Message Signatures for API requests, computed the same way by the client (CLI,
 * client module) and by every node, which recomputes the signature base itself from the method,
 * path, query, headers and body the coordinator forwards (the coordinator is only a courier).
 *
 * Our profile (the issue "Nodes decide"): label `sig1`; covered components exactly
 * `"@method" "@path" "@query" "content-digest"` (`@query` only when the request has one); parameters
 * `created`, `expires`, `nonce`, `keyid` (the principal id) and `alg` (`ed25519` or
 * `ecdsa-p256-sha256`); the body bound by RFC 9530 `Content-Digest: sha-256=:…:`.
 * Header parsing and serialization use `structured-headers` (RFC 8941/9651); the plain forms our
 * clients send (`plainSignatureInput`, `sig1=:…:`) are read as text, with the same result.
 */
import { parseDictionary, serializeDictionary, serializeInnerList, type InnerList } from 'structured-headers';
import { utf8ToBytes } from '../protocol/bytes.ts';
import { KmsError } from '../protocol/errors.ts';
import { contentDigest, contentDigestMatches } from './content-digest.ts';
import {
  PRINCIPAL_ALGS,
  type PrincipalAlg,
  type PrincipalKey,
  verifyPrincipalSignature,
} from './principal-key.ts';

export const SIGNATURE_LABEL = 'sig1';
/** Longest accepted `expires - created` (seconds): bounds the nonce memory a node needs. */
export const MAX_SIGNATURE_LIFETIME_S = 300;
/** Tolerated clock skew between a client's `created` and a node's clock (seconds). */
export const MAX_CLOCK_SKEW_S = 60;

/** The parts of an HTTP request a signature covers, as the coordinator forwards them. */
export type SignedRequest = {
  readonly method: string;
  /** Absolute path, e.g. `/v1/keys/k1/sign` (RFC 9421 §2.2.6). */
  readonly path: string;
  /** `?a=b` including the `?`, or empty when the request has no query (§2.2.7). */
  readonly query: string;
  /** Header values by lower-case name: at least `content-digest`, `signature-input`, `signature`. */
  readonly headers: Readonly<Record<string, string>>;
  readonly body: Uint8Array;
};

export type SignatureParams = {
  readonly created: number;
  readonly expires: number;
  readonly nonce: string;
  readonly keyid: string;
  readonly alg: PrincipalAlg;
};

export type VerifiedRequest = SignatureParams & { readonly principal: string };

class SignatureError extends KmsError {}
const fail = (msg: string): never => {
  throw new SignatureError('Unauthorized', `request signature: ${msg}`);
};

/** The covered components our profile requires for this request. */
export function coveredComponents(req: Pick<SignedRequest, 'query'>): string[] {
  return req.query
    ? ['@method', '@path', '@query', 'content-digest']
    : ['@method', '@path', 'content-digest'];
}

function componentValue(req: SignedRequest, name: string): string {
  switch (name) {
    case '@method':
      return req.method.toUpperCase();
    case '@path':
      return req.path;
    case '@query':
      return req.query || '?';
    case '@authority':
      return (req.headers.host ?? fail('no host header')).toLowerCase();
    default: {
      if (name.startsWith('@')) return fail(`unsupported derived component ${name}`);
      const v = req.headers[name];
      if (v === undefined) return fail(`covered header ${name} is missing`);
      // §2.1: leading and trailing whitespace removed.
      return v.trim();
    }
  }
}

/**
 * The signature base of RFC 9421 §2.5 for `label`, from the request's `Signature-Input`: one line
 * per covered component, then `"@signature-params"` with the serialized inner list.
 */
export function signatureBase(req: SignedRequest, innerList: InnerList): Uint8Array {
  const lines: string[] = [];
  for (const [item] of innerList[0]) {
    if (typeof item !== 'string') fail('covered components must be strings');
    const name = item as string;
    if (name !== name.toLowerCase()) fail('component names are lower case');
    const value = componentValue(req, name);
    if (/[\r\n]/.test(value)) fail(`component ${name} has a line break`);
    lines.push(`"${name}": ${value}`);
  }
  lines.push(`"@signature-params": ${serializeInnerList(innerList)}`);
  return utf8ToBytes(lines.join('\n'));
}

/**
 * A covered-components list in a form whose RFC 8941 parse and re-serialization are both plain
 * text: label `sig1` its only member; the inner list's items our profile's component names with no
 * parameters, one space apart; its parameters each `;key=value` once, the value an integer without
 * leading zeros or a string without escapes. Anything else (whitespace, other members, booleans,
 * tokens, decimals, escapes, a repeated key, ...) goes through `structured-headers`.
 */
const FAST_COMPONENT = '"(?:@method|@path|@query|content-digest)"';
const FAST_KEY = '[a-z*][a-z0-9_.*-]*';
const FAST_VALUE = '(?:0|-?[1-9][0-9]{0,14}|"[\\x20\\x21\\x23-\\x5b\\x5d-\\x7e]*")';
const FAST_INPUT = new RegExp(
  `^${SIGNATURE_LABEL}=(\\((${FAST_COMPONENT}(?: ${FAST_COMPONENT})*)\\)((?:;${FAST_KEY}=${FAST_VALUE})*))$`,
);
const FAST_PARAM = new RegExp(`;(${FAST_KEY})=(${FAST_VALUE})`, 'y');
/**
 * `sig1=:<canonical base64 of 64 bytes>:`, what `signRequest` issues: 21 groups of 4, then the last
 * byte as 2 characters whose 4 pad bits are zero (A, Q, g or w) and `==`.
 */
const FAST_SIGNATURE = new RegExp(`^${SIGNATURE_LABEL}=:([A-Za-z0-9+/]{85}[AQgw]==):$`);

/** A parsed Signature-Input member: component names, parameters, the inner list serialized. */
export type SignatureInput = {
  readonly names: readonly unknown[];
  readonly params: ReadonlyMap<string, unknown>;
  readonly serialized: string;
};

/**
 * The `sig1` member of a Signature-Input in the plain form above, as `structured-headers` would
 * parse and serialize it (test/request-check-fast.test.ts checks them equal), or undefined
 * when it is not in that form (the caller then parses it in full).
 */
export function plainSignatureInput(headerValue: string): SignatureInput | undefined {
  const m = FAST_INPUT.exec(headerValue);
  if (!m) return undefined;
  const names = m[2]!.split(' ').map((n) => n.slice(1, -1));
  const params = new Map<string, unknown>();
  const text = m[3]!;
  FAST_PARAM.lastIndex = 0;
  while (FAST_PARAM.lastIndex < text.length) {
    const p = FAST_PARAM.exec(text);
    // A repeated key: RFC 8941 keeps the last, which serializes differently; parse it in full.
    if (!p || params.has(p[1]!)) return undefined;
    const v = p[2]!;
    params.set(p[1]!, v.charCodeAt(0) === 34 ? v.slice(1, -1) : Number(v));
  }
  return { names, params, serialized: m[1]! };
}

/** The Signature's `sig1` bytes when it is the plain canonical 64-byte form, else undefined. */
function plainSignature(headerValue: string): Uint8Array | undefined {
  const m = FAST_SIGNATURE.exec(headerValue);
  if (!m) return undefined;
  // Canonical base64 (the pad bits zero): exactly 64 bytes, as RFC 8941 decodes the same text.
  const b = Buffer.from(m[1]!, 'base64');
  return b.length === 64 ? b : undefined;
}

/** The signature base for covered `names` whose inner list serializes to `serialized`. */
function signatureBaseOf(req: SignedRequest, names: readonly string[], serialized: string): Uint8Array {
  let base = '';
  for (const name of names) {
    const value = componentValue(req, name);
    if (/[\r\n]/.test(value)) fail(`component ${name} has a line break`);
    base += `"${name}": ${value}\n`;
  }
  return Buffer.from(`${base}"@signature-params": ${serialized}`, 'utf8');
}

function innerListOf(headerValue: string, label: string, what: string): InnerList | ArrayBuffer {
  let dict: ReturnType<typeof parseDictionary>;
  try {
    dict = parseDictionary(headerValue);
  } catch {
    return fail(`${what} is not a structured dictionary`);
  }
  const member = dict.get(label) ?? fail(`${what} has no ${label}`);
  if (Array.isArray(member[0])) return member as InnerList;
  if (member[0] instanceof ArrayBuffer) return member[0];
  return fail(`${what} ${label} has the wrong type`);
}

/** Our profile's parameters, each present exactly with its type. */
function paramsOf(p: ReadonlyMap<string, unknown>): SignatureParams {
  const created = p.get('created');
  const expires = p.get('expires');
  const nonce = p.get('nonce');
  const keyid = p.get('keyid');
  const alg = p.get('alg');
  if (!Number.isSafeInteger(created)) fail('created is required (integer seconds)');
  if (!Number.isSafeInteger(expires)) fail('expires is required (integer seconds)');
  if (typeof nonce !== 'string' || nonce.length < 16 || nonce.length > 128)
    fail('nonce is required (16-128 chars)');
  if (typeof keyid !== 'string' || keyid.length < 1 || keyid.length > 128)
    fail('keyid is required (the principal id)');
  if (typeof alg !== 'string' || !PRINCIPAL_ALGS.includes(alg as PrincipalAlg)) {
    fail(`alg must be one of ${PRINCIPAL_ALGS.join(', ')}`);
  }
  return {
    created: created as number,
    expires: expires as number,
    nonce: nonce as string,
    keyid: keyid as string,
    alg: alg as PrincipalAlg,
  };
}

/**
 * Verifies a request against our profile: label `sig1`, exactly the required components, the
 * body's Content-Digest, the time window against `nowS` (the verifier's own clock), and the
 * principal's signature. `lookup` gives the principal's key by id. Replay (the nonce) is the
 * caller's check: it keeps each nonce until `expires`. Throws Unauthorized with a reason.
 */
export function verifyRequest(
  req: SignedRequest,
  lookup: (principalId: string) => PrincipalKey | undefined,
  nowS: number,
): VerifiedRequest {
  const inputHeader = req.headers['signature-input'] ?? fail('Signature-Input header is missing');
  const sigHeader = req.headers.signature ?? fail('Signature header is missing');
  // The plain forms our clients send are read as text; any other is parsed in full (RFC 8941).
  const plain = plainSignatureInput(inputHeader);
  let input: InnerList | undefined;
  if (!plain) {
    const parsed = innerListOf(inputHeader, SIGNATURE_LABEL, 'Signature-Input');
    if (parsed instanceof ArrayBuffer) return fail('Signature-Input member must be an inner list');
    input = parsed;
  }
  let sig: Uint8Array | ArrayBuffer | undefined = plainSignature(sigHeader);
  if (!sig) {
    const parsed = innerListOf(sigHeader, SIGNATURE_LABEL, 'Signature');
    if (!(parsed instanceof ArrayBuffer)) return fail('Signature member must be a byte sequence');
    sig = parsed;
  }
  const names = plain ? plain.names : input![0].map(([n]) => n);
  const want = coveredComponents(req);
  if (names.length !== want.length || names.some((n, i) => n !== want[i])) {
    fail(`covered components must be (${want.map((w) => `"${w}"`).join(' ')})`);
  }
  const params = paramsOf(plain ? plain.params : input![1]);
  if (params.expires <= params.created) fail('expires must be after created');
  if (params.expires - params.created > MAX_SIGNATURE_LIFETIME_S) {
    fail(`a signature may live at most ${MAX_SIGNATURE_LIFETIME_S} s`);
  }
  if (params.created > nowS + MAX_CLOCK_SKEW_S) fail('created is in the future');
  if (params.expires <= nowS) fail('the signature has expired');
  const digest = req.headers['content-digest'] ?? fail('Content-Digest header is missing');
  if (!contentDigestMatches(digest, req.body)) fail('Content-Digest does not match the body');
  const key = lookup(params.keyid) ?? fail(`unknown principal ${params.keyid}`);
  if (key.alg !== params.alg) fail(`principal ${params.keyid} signs with ${key.alg}, not ${params.alg}`);
  const base = plain ? signatureBaseOf(req, want, plain.serialized) : signatureBase(req, input!);
  const sigBytes = sig instanceof Uint8Array ? sig : new Uint8Array(sig);
  if (!verifyPrincipalSignature(key, base, sigBytes)) {
    fail('the signature does not verify');
  }
  return { ...params, principal: params.keyid };
}

/**
 * The headers a client adds to sign `req` (without its signature headers): Content-Digest,
 * Signature-Input and Signature. `sign` makes the raw signature over the base (64 bytes).
 */
export function signRequest(
  req: Omit<SignedRequest, 'headers'> & { headers?: Readonly<Record<string, string>> },
  params: SignatureParams,
  sign: (base: Uint8Array) => Uint8Array,
): { 'content-digest': string; 'signature-input': string; signature: string } {
  const digest = contentDigest(req.body);
  const p = new Map<string, string | number>([
    ['created', params.created],
    ['expires', params.expires],
    ['nonce', params.nonce],
    ['keyid', params.keyid],
    ['alg', params.alg],
  ]);
  const inner: InnerList = [coveredComponents(req).map((c) => [c, new Map()]), p];
  const full: SignedRequest = { ...req, headers: { ...(req.headers ?? {}), 'content-digest': digest } };
  const signature = sign(signatureBase(full, inner));
  return {
    'content-digest': digest,
    'signature-input': serializeDictionary(new Map([[SIGNATURE_LABEL, inner]])),
    signature: serializeDictionary(new Map([[SIGNATURE_LABEL, [signature, new Map()]]])),
  };
}
