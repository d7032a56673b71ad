/**
 * JSON schemas shared by the routes. Every object is closed (`additionalProperties: false`), so an
 * unknown or misspelt field is a 400 ValidationError, and binary values are strict even-length hex.
 * The OpenAPI document is generated from these (via @fastify/swagger).
 */
import { ALL_KEY_SPECS, KEY_USAGES } from '../../protocol/suites.ts';
import { ROLES } from '../auth.ts';
import { KEY_STATES, MAX_PENDING_WINDOW_DAYS, MIN_PENDING_WINDOW_DAYS } from '../lifecycle.ts';

export const HEX = '^(?:[0-9a-fA-F]{2})*$';
export const NODE_ID = '^node-[1-9][0-9]{0,3}$';
export const KEY_ID = '^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$';
/** Aliases: letters, digits, `_ . -`, starting with a letter; never UUID-shaped (checked in the handler). */
export const ALIAS = '^[A-Za-z][A-Za-z0-9_.-]{0,127}$';
export const KEY_ID_OR_ALIAS = '^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$';
export const MAX_NODES = 1000;

export const hex = (maxBytes: number, description: string) => ({
  type: 'string',
  pattern: HEX,
  maxLength: 2 * maxBytes,
  description,
});

export const nodeId = { type: 'string', pattern: NODE_ID, description: 'node id, e.g. node-1' };

export const participantsSpec = {
  description: 'a count (that many reachable nodes) or a list of node ids; default: every node',
  oneOf: [
    { type: 'integer', minimum: 2, maximum: MAX_NODES },
    { type: 'array', items: nodeId, minItems: 2, maxItems: MAX_NODES, uniqueItems: true },
  ],
};

export const threshold = {
  type: 'integer',
  minimum: 2,
  maximum: MAX_NODES,
  description: 'signers needed (t)',
};

export const keyIdParam = {
  type: 'object',
  additionalProperties: false,
  required: ['keyId'],
  properties: { keyId: { type: 'string', pattern: KEY_ID_OR_ALIAS, description: 'key id or alias' } },
};

export const blame = {
  type: 'object',
  additionalProperties: false,
  required: ['participant', 'reason'],
  properties: {
    participant: { type: 'string' },
    reason: { type: 'string' },
    round: { type: 'string' },
    evidence: { type: 'string' },
  },
};

export const keyObject = {
  type: 'object',
  additionalProperties: false,
  required: [
    'keyId',
    'alias',
    'keySpec',
    'state',
    'threshold',
    'participants',
    'epoch',
    'publicKey',
    'createdAt',
  ],
  properties: {
    keyId: { type: 'string', pattern: KEY_ID },
    alias: { type: ['string', 'null'] },
    keySpec: { type: 'string', enum: [...ALL_KEY_SPECS] },
    keyUsage: { type: 'string', enum: [...KEY_USAGES] },
    // Issue 16.
    origin: {
      type: 'string',
      enum: ['THRESHOLD_DKG', 'IMPORTED'],
      description: 'THRESHOLD_DKG: made by the nodes; IMPORTED: dealt from an external secret',
    },
    state: { type: 'string', enum: [...KEY_STATES] },
    threshold: { type: 'integer' },
    participants: { type: 'array', items: { type: 'string' } },
    epoch: { type: ['integer', 'null'], description: 'null while Creating' },
    publicKey: {
      type: ['string', 'null'],
      description:
        "suite's canonical encoding, hex; null while Creating. FROST_SECP256K1_TR: the BIP341 OUTPUT key " +
        '(x-only, already tweaked with the merkle root, or none), i.e. the key in the P2TR scriptPubKey; ' +
        'never pass it to a library as an internal key (it would be tweaked twice): use taproot.internalKey',
    },
    taproot: {
      type: 'object',
      additionalProperties: false,
      required: ['internalKey', 'outputKey', 'merkleRoot'],
      description: 'FROST_SECP256K1_TR keys (docs/custody.md): the BIP341 keys of the output at m',
      properties: {
        internalKey: {
          type: 'string',
          description: 'BIP341 internal key, x-only hex: for tr(KEY) descriptors, PSBT tap_internal_key',
        },
        outputKey: { type: 'string', description: 'BIP341 output key, x-only hex (equals publicKey)' },
        merkleRoot: {
          type: ['string', 'null'],
          description: 'script tree merkle root, hex; null for a key-path-only output (BIP86)',
        },
      },
    },
    createdAt: { type: 'string', format: 'date-time' },
    description: { type: 'string' },
    deletionDate: { type: 'string', format: 'date-time', description: 'when the shares are destroyed' },
  },
};

export const problem = {
  type: 'object',
  description: 'RFC 9457 problem details (application/problem+json)',
  required: ['type', 'title', 'status', 'detail', 'code'],
  properties: {
    type: { type: 'string' },
    title: { type: 'string' },
    status: { type: 'integer' },
    detail: { type: 'string' },
    code: { type: 'string' },
    culprits: { type: 'array', items: blame },
  },
};

/** Response map for a route: its success schema plus the problem shape for errors. */
export function responses(okStatus: number, ok: Record<string, unknown>): Record<string, unknown> {
  return { [okStatus]: ok, '4xx': problem, '5xx': problem };
}

/** One record of a hash-chained audit log (the coordinator's, or a node's relayed by it). */
export const auditRecord = {
  type: 'object',
  additionalProperties: false,
  required: ['seq', 'time', 'prevHash', 'hash', 'entry'],
  properties: {
    seq: { type: 'integer' },
    time: { type: 'string' },
    prevHash: { type: 'string' },
    hash: { type: 'string' },
    entry: { type: 'object', additionalProperties: true },
  },
};

export const emptyBody = { type: 'object', additionalProperties: false, properties: {} };

export const pendingWindowDays = {
  type: 'integer',
  minimum: MIN_PENDING_WINDOW_DAYS,
  maximum: MAX_PENDING_WINDOW_DAYS,
  description: `days before the shares are destroyed (${MIN_PENDING_WINDOW_DAYS}-${MAX_PENDING_WINDOW_DAYS}, default 30)`,
};

export const role = { type: 'string', enum: [...ROLES] };
export const bearer = [{ bearerAuth: [] }];
/** Signed routes: a principal's RFC 9421 signature (Signature-Input, Signature, Content-Digest). */
export const signed = [{ httpSignature: [] }];
