/**
 * The wire codec of every protocol message: deterministic CBOR (RFC 8949 §4.2, via cborg's default
 * canonical encoder), versioned, size-limited, with the whole binding header validated on decode
 * (invariant I3 / threats S-10: protocol, key spec, key id, session id, epoch, round, sender,
 * recipient). Bodies are plain data: byte strings, strings, safe integers, arrays and string-keyed
 * maps of those. Decoding never lets a raw TypeError/RangeError escape: every failure is a
 * DecodeError with a stable code, and the typed body readers name the offending field.
 *
 * Wire form: the CBOR map { v: 1, h: { header fields except version }, b: body }.
 *
 * Between nodes an envelope travels signed by its sender's node identity key (Ed25519,
 * net/identity.ts): the signed frame { v: 2, e: <the v1 envelope bytes>, s: <64-byte signature> }.
 * The signature is over `signedMessage(header, envelopeDigest(e))`: a domain prefix, the header in
 * clear and SHA-256 of the envelope bytes, so that a digest and its signature (as the echo rounds
 * forward them, and as blame evidence keeps them) can be checked by a third party without the body,
 * which may be secret (a DKG sub-share). Transcripts and digests are over the v1 envelope bytes.
 */
import { sha256 } from '@noble/hashes/sha2.js';
import { decode, encode } from 'cborg';
import { concatBytes, equalBytes, toHex, utf8ToBytes } from './bytes.ts';
import { DecodeError } from './errors.ts';
import type { Epoch, KeyId, ParticipantId, SessionId } from './ids.ts';
import { decodeIdentifier } from './elements.ts';
import type { Envelope, EnvelopeHeader, ProtocolKind } from './machine.ts';
import { isKeySpecName, KEY_SPEC_REGISTRY } from './suites.ts';

export const CODEC_VERSION = 1;
/** Version tag of the signed frame that wraps one v1 envelope and its sender's signature. */
export const SIGNED_FRAME_VERSION = 2;
/** Ed25519 signatures (RFC 8032 §5.1.6): the only kind of node identity key. */
export const SIGNATURE_LENGTH = 64;
/** Length of an envelope digest (SHA-256). */
export const ENVELOPE_DIGEST_LENGTH = 32;
/** Default upper bound on an encoded message (largest real one: reshare to n = 15 on ed448, ~10 KiB). */
export const DEFAULT_MAX_MESSAGE_BYTES = 256 * 1024;
const MAX_DEPTH = 8;
const MAX_ID_LENGTH = 128;
const ID_RE = /^[A-Za-z0-9][A-Za-z0-9._:-]*$/;
const ROUND_RE = /^[a-z][a-z0-9-]*(\.[a-z0-9-]+)*$/;
const MAX_ROUND_LENGTH = 64;
export const PROTOCOL_KINDS: readonly ProtocolKind[] = ['dkg', 'sign', 'refresh', 'reshare', 'repair'];

/** What a body may contain on the wire. */
export type WireValue =
  | Uint8Array
  | string
  | number
  | readonly WireValue[]
  | { readonly [k: string]: WireValue };
export type Body = Record<string, unknown>;

/** Strict, canonical CBOR decoding (RFC 8949 §4.2): shared by every deterministic codec here. */
export const CBOR_DECODE_OPTS = {
  strict: true,
  useMaps: true,
  rejectDuplicateMapKeys: true,
  allowUndefined: false,
  allowIndefinite: false,
  allowBigInt: false,
  allowInfinity: false,
  allowNaN: false,
} as const;

function bad(message: string): DecodeError {
  return new DecodeError('DecodeError', message);
}

/** Checks a body value (encode side) or converts a decoded one (Maps -> plain objects). */
function toWire(v: unknown, path: string, depth: number): unknown {
  if (depth > MAX_DEPTH) throw bad(`${path}: nested deeper than ${MAX_DEPTH}`);
  if (v instanceof Uint8Array) return v;
  if (typeof v === 'string') return v;
  if (typeof v === 'number') {
    if (!Number.isSafeInteger(v)) throw bad(`${path}: numbers must be safe integers`);
    return v;
  }
  if (Array.isArray(v)) return v.map((x, i) => toWire(x, `${path}[${i}]`, depth + 1));
  const entries: [unknown, unknown][] | undefined =
    v instanceof Map
      ? [...v.entries()]
      : v !== null && typeof v === 'object' && Object.getPrototypeOf(v) === Object.prototype
        ? Object.entries(v)
        : undefined;
  if (entries === undefined) {
    throw bad(`${path}: unsupported value type ${v === null ? 'null' : typeof v}`);
  }
  const out: Record<string, unknown> = {};
  for (const [k, x] of entries) {
    if (typeof k !== 'string') throw bad(`${path}: map keys must be strings`);
    // A `__proto__` key would set the prototype of the decoded object instead of a field.
    if (k === '__proto__') throw bad(`${path}: forbidden key __proto__`);
    if (x === undefined) throw bad(`${path}.${k}: undefined is not allowed`);
    out[k] = toWire(x, `${path}.${k}`, depth + 1);
  }
  return out;
}

function checkId(v: unknown, what: string): string {
  if (typeof v !== 'string' || v.length === 0 || v.length > MAX_ID_LENGTH || !ID_RE.test(v)) {
    throw bad(`header.${what}: must be 1..${MAX_ID_LENGTH} characters of [A-Za-z0-9._:-]`);
  }
  return v;
}

/** Validates every header field; throws DecodeError naming the first bad one. */
export function validateHeader(h: unknown): EnvelopeHeader {
  if (h === null || typeof h !== 'object' || Array.isArray(h)) throw bad('header: must be a map');
  const r = h as Record<string, unknown>;
  if (r.version !== CODEC_VERSION) {
    throw new DecodeError('UnsupportedVersion', `header.version: only version ${CODEC_VERSION} is supported`);
  }
  const known = new Set([
    'version',
    'protocol',
    'keySpec',
    'keyId',
    'sessionId',
    'epoch',
    'round',
    'from',
    'to',
  ]);
  for (const k of Object.keys(r)) if (!known.has(k)) throw bad(`header: unknown field ${JSON.stringify(k)}`);
  if (typeof r.protocol !== 'string' || !(PROTOCOL_KINDS as readonly string[]).includes(r.protocol)) {
    throw bad(`header.protocol: one of ${PROTOCOL_KINDS.join(', ')}`);
  }
  if (!isKeySpecName(r.keySpec)) throw bad('header.keySpec: not a registered key spec');
  const spec = KEY_SPEC_REGISTRY[r.keySpec];
  const keyId = checkId(r.keyId, 'keyId');
  const sessionId = checkId(r.sessionId, 'sessionId');
  if (typeof r.epoch !== 'number' || !Number.isSafeInteger(r.epoch) || r.epoch < 0) {
    throw bad('header.epoch: must be a non-negative integer');
  }
  if (typeof r.round !== 'string' || r.round.length > MAX_ROUND_LENGTH || !ROUND_RE.test(r.round)) {
    throw bad('header.round: must be a dotted lowercase round name');
  }
  const from = decodeIdentifier(spec, r.from, 'header.from');
  const to = r.to === '*' ? '*' : decodeIdentifier(spec, r.to, 'header.to');
  if (to === from) throw bad('header.to: a participant does not message itself');
  return {
    version: CODEC_VERSION,
    protocol: r.protocol as ProtocolKind,
    keySpec: r.keySpec,
    keyId: keyId as KeyId,
    sessionId: sessionId as SessionId,
    epoch: r.epoch as Epoch,
    round: r.round,
    from: from as ParticipantId,
    to: to as ParticipantId | '*',
  };
}

/** Deterministic encoding: the same envelope always gives the same bytes (transcripts hash these). */
export function encodeEnvelope(env: Envelope<Record<string, unknown>>): Uint8Array {
  const header = validateHeader(env.header);
  const { version: _v, ...h } = header;
  const body = toWire(env.body, 'body', 1);
  if (body === null || typeof body !== 'object' || Array.isArray(body) || body instanceof Uint8Array) {
    throw bad('body: must be a map');
  }
  const out = encode({ v: CODEC_VERSION, h, b: body });
  return out;
}

/**
 * Decodes and validates one message: a bare v1 envelope, or a signed frame (v2), whose envelope is
 * returned with its `signature` set, NOT checked here (the shell checks it against the sender's
 * identity with `checkEnvelopeSignature` before any machine sees it). Rejects: more than
 * `maxBytes` (MessageTooLarge), malformed or non-canonical CBOR, unknown version
 * (UnsupportedVersion), a signature of the wrong length, any invalid header field, and body values
 * outside WireValue. Field-level checks (lengths, points, scalars) are the machines' job, through
 * the read* helpers below.
 */
export function decodeEnvelope(
  bytes: Uint8Array,
  opts: { maxBytes?: number } = {},
): Envelope<Record<string, unknown>> {
  const max = opts.maxBytes ?? DEFAULT_MAX_MESSAGE_BYTES;
  if (!(bytes instanceof Uint8Array)) throw bad('message: expected bytes');
  if (bytes.length > max)
    throw new DecodeError('MessageTooLarge', `message: ${bytes.length} bytes exceeds ${max}`);
  let raw: unknown;
  try {
    raw = decode(bytes, CBOR_DECODE_OPTS);
  } catch {
    // cborg's messages describe the input structure only, but keep ours fixed and short.
    throw bad('message: not well-formed deterministic CBOR');
  }
  if (!(raw instanceof Map)) throw bad('message: top level must be a map');
  const v = raw.get('v');
  if (v === SIGNED_FRAME_VERSION) return decodeSignedFrame(raw, bytes);
  if (v !== CODEC_VERSION) {
    throw new DecodeError(
      'UnsupportedVersion',
      `message: version ${typeof v === 'number' ? v : '?'} is not supported`,
    );
  }
  for (const k of raw.keys())
    if (k !== 'v' && k !== 'h' && k !== 'b') throw bad('message: unknown top-level field');
  let top: Record<string, unknown>;
  try {
    top = toWire(raw, 'message', 0) as Record<string, unknown>;
  } catch (e) {
    if (e instanceof DecodeError) throw e;
    throw bad('message: unsupported structure');
  }
  const h = top.h;
  if (h === null || typeof h !== 'object' || Array.isArray(h) || h instanceof Uint8Array) {
    throw bad('header: must be a map');
  }
  const header = validateHeader({ ...(h as Record<string, unknown>), version: CODEC_VERSION });
  const body = top.b;
  if (body === null || typeof body !== 'object' || Array.isArray(body) || body instanceof Uint8Array) {
    throw bad('body: must be a map');
  }
  const env = { header, body: body as Record<string, unknown> };
  // One message, one encoding: otherwise the same message could hash to two transcripts.
  if (!equalBytes(encodeEnvelope(env), bytes)) throw bad('message: non-canonical encoding');
  return env;
}

function decodeSignedFrame(raw: Map<unknown, unknown>, bytes: Uint8Array): Envelope<Record<string, unknown>> {
  for (const k of raw.keys())
    if (k !== 'v' && k !== 'e' && k !== 's') throw bad('signed frame: unknown top-level field');
  const e = raw.get('e');
  const s = raw.get('s');
  if (!(e instanceof Uint8Array)) throw bad('signed frame: e must be the envelope bytes');
  if (!(s instanceof Uint8Array) || s.length !== SIGNATURE_LENGTH)
    throw bad(`signed frame: s must be a ${SIGNATURE_LENGTH}-byte signature`);
  // The inner envelope is a bare v1 one (no nesting): its own decode checks it fully.
  let inner: unknown;
  try {
    inner = decode(e, CBOR_DECODE_OPTS);
  } catch {
    throw bad('signed frame: envelope is not well-formed deterministic CBOR');
  }
  if (!(inner instanceof Map) || inner.get('v') !== CODEC_VERSION)
    throw bad('signed frame: envelope must be a version 1 envelope');
  const env = decodeEnvelope(e);
  if (!equalBytes(encodeSignedFrame(e, s), bytes)) throw bad('signed frame: non-canonical encoding');
  return { ...env, signature: s };
}

// ---- signed envelopes ----

const SIGNATURE_DOMAIN = utf8ToBytes('tkms/session-envelope-signature/v1\0');

/** SHA-256 of an encoded (v1) envelope: what echoes carry and what a signature binds. */
export function envelopeDigest(encoded: Uint8Array): Uint8Array {
  return sha256(encoded);
}

/**
 * The bytes a sender signs for one envelope: domain prefix ‖ canonical CBOR { h: header, d: digest }.
 * With the header in clear, a (digest, signature) pair shows who said what in which session and
 * round, so a verifier can check an echoed or kept signature without the (maybe secret) body.
 */
export function signedMessage(header: EnvelopeHeader, digest: Uint8Array): Uint8Array {
  if (!(digest instanceof Uint8Array) || digest.length !== ENVELOPE_DIGEST_LENGTH)
    throw bad(`digest: must be ${ENVELOPE_DIGEST_LENGTH} bytes`);
  const { version: _v, ...h } = validateHeader(header);
  return concatBytes(SIGNATURE_DOMAIN, encode({ h, d: digest }));
}

/** The signed frame { v: 2, e, s } of already encoded envelope bytes and their signature. */
export function encodeSignedFrame(encoded: Uint8Array, signature: Uint8Array): Uint8Array {
  if (!(signature instanceof Uint8Array) || signature.length !== SIGNATURE_LENGTH)
    throw bad(`signature: must be ${SIGNATURE_LENGTH} bytes`);
  return encode({ v: SIGNED_FRAME_VERSION, e: encoded, s: signature });
}

/** Encodes an envelope and signs it with `sign` (the node identity key): the frame to send. */
export function signEnvelope(
  env: Envelope<Record<string, unknown>>,
  sign: (message: Uint8Array) => Uint8Array,
): Uint8Array {
  const encoded = encodeEnvelope(env);
  return encodeSignedFrame(encoded, sign(signedMessage(env.header, envelopeDigest(encoded))));
}

/**
 * Checks the signature a decoded envelope arrived with, by `check` (the claimed sender's identity
 * key). Throws DecodeError 'InvalidSignature' when it is missing (details.signature = 'missing') or
 * does not verify ('invalid'): a tampered byte or another signer.
 */
export function checkEnvelopeSignature(
  env: Envelope<unknown>,
  check: (message: Uint8Array, signature: Uint8Array) => boolean,
): void {
  if (!(env.signature instanceof Uint8Array)) {
    throw new DecodeError('InvalidSignature', `${env.header.round}: unsigned envelope`, {
      details: { signature: 'missing' },
    });
  }
  const digest = envelopeDigest(encodeEnvelope(env as Envelope<Record<string, unknown>>));
  if (!check(signedMessage(env.header, digest), env.signature)) {
    throw new DecodeError('InvalidSignature', `${env.header.round}: signature does not verify`, {
      details: { signature: 'invalid' },
    });
  }
}

/** A message a party signed, in the form a third party can check: header, envelope digest, signature. */
export type SignedStatement = {
  readonly header: EnvelopeHeader;
  readonly digest: Uint8Array;
  readonly signature: Uint8Array;
};

/** Does `check` (the signer's identity key) accept this statement? */
export function statementVerifies(
  st: SignedStatement,
  check: (message: Uint8Array, signature: Uint8Array) => boolean,
): boolean {
  try {
    return check(signedMessage(st.header, st.digest), st.signature);
  } catch {
    return false;
  }
}

/**
 * Blame evidence as a string (errors.ts `Blame.evidence`): JSON, byte strings as lowercase hex.
 * Callers pass public data only: headers, digests, signatures, and the bytes of broadcasts whose
 * bodies are public (echoes). Never a point-to-point body: those carry secret shares (review I-1).
 */
export function evidenceString(e: Record<string, unknown>): string {
  return JSON.stringify(e, (_k, v: unknown) => (v instanceof Uint8Array ? toHex(v) : v));
}

/**
 * Rejects an envelope that belongs to another session, key, epoch, round or recipient
 * (threats S-10: replay and cross-session reuse). `expected` lists the fields that must match.
 */
export function assertBinding(env: Envelope<unknown>, expected: Partial<EnvelopeHeader>): void {
  for (const [k, want] of Object.entries(expected) as [keyof EnvelopeHeader, unknown][]) {
    if (want === undefined) continue;
    const got = env.header[k];
    if (got !== want) {
      throw new DecodeError('ContextMismatch', `message: header.${k} does not match this session`, {
        details: { field: k },
      });
    }
  }
}

// ---- typed body readers: each names the field and throws DecodeError, never TypeError ----

function field(body: unknown, name: string): unknown {
  if (body === null || typeof body !== 'object' || Array.isArray(body)) throw bad(`body: must be a map`);
  if (!Object.hasOwn(body, name)) throw bad(`body.${name}: missing`);
  return (body as Record<string, unknown>)[name];
}

export function readBytes(body: unknown, name: string, len?: number): Uint8Array {
  const v = field(body, name);
  if (!(v instanceof Uint8Array)) throw bad(`body.${name}: must be a byte string`);
  if (len !== undefined && v.length !== len) throw bad(`body.${name}: must be ${len} bytes, got ${v.length}`);
  return v;
}

export function readBytesArray(body: unknown, name: string, count?: number, len?: number): Uint8Array[] {
  const v = field(body, name);
  if (!Array.isArray(v)) throw bad(`body.${name}: must be an array`);
  if (count !== undefined && v.length !== count)
    throw bad(`body.${name}: must have ${count} items, got ${v.length}`);
  return v.map((x, i) => {
    if (!(x instanceof Uint8Array)) throw bad(`body.${name}[${i}]: must be a byte string`);
    if (len !== undefined && x.length !== len) throw bad(`body.${name}[${i}]: must be ${len} bytes`);
    return x;
  });
}

export function readString(body: unknown, name: string, maxLength = 1024): string {
  const v = field(body, name);
  if (typeof v !== 'string' || v.length > maxLength)
    throw bad(`body.${name}: must be a string of at most ${maxLength}`);
  return v;
}

export function readInt(body: unknown, name: string, min = 0, max = Number.MAX_SAFE_INTEGER): number {
  const v = field(body, name);
  if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < min || v > max) {
    throw bad(`body.${name}: must be an integer in [${min}, ${max}]`);
  }
  return v;
}

export function readMap(body: unknown, name: string): Record<string, unknown> {
  const v = field(body, name);
  if (v === null || typeof v !== 'object' || Array.isArray(v) || v instanceof Uint8Array) {
    throw bad(`body.${name}: must be a map`);
  }
  return v as Record<string, unknown>;
}
