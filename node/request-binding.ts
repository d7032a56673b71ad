/**
 * Which operation a client-signed request asks for, read by the node itself from the request's
 * method, path and JSON body (the shapes the HTTP API accepts: docs/api.md), and whether it is
 * exactly the operation the coordinator asks this node to perform (the contract of the issue
 * "Nodes decide"): the same key id in the path, the same message, key spec, threshold, committee,
 * repair target or state change. A request that does not parse, names another key, or another
 * parameter, is refused (Unauthorized): the coordinator cannot reuse a signature for anything else.
 * Pure: no I/O.
 */
import { Ajv } from 'ajv';
import { KmsError } from '../protocol/errors.ts';
import type { RequestedTweak } from '../protocol/key-tweak.ts';
import type { StateChange } from '../protocol/key-states.ts';
import { ALL_KEY_SPECS, KEY_SPEC_REGISTRY, KEY_USAGES } from '../protocol/suites.ts';
import type { Operation } from '../policy/policy-rule.ts';
import type { SessionSpec } from '../net/rpc.ts';
import type { PsbtKey } from '../protocol/psbt.ts';
import {
  type PsbtAuthorization,
  type PsbtFacts,
  SIGN_PSBT_ACTION,
  SIGN_PSBT_BODY_SCHEMA,
  bindPsbt,
} from './psbt-binding.ts';

/** What the coordinator asks this node to do, as the node sees it. */
export type GuardedRequest =
  | {
      readonly rpc: 'sign-commit';
      readonly keyId: string;
      /**
       * Issue 14 (PSBT): the coordinator's tweak for this session and the key as this node stores
       * it (loaded by node/request-guard.ts for a signed sign-psbt request only).
       */
      readonly tweak?: RequestedTweak;
      readonly psbtKey?: PsbtKey;
    }
  | {
      readonly rpc: 'session';
      readonly session: SessionSpec;
      /** The key's active epoch as this node stores it (threshold and committee), if it holds one. */
      readonly held?: { readonly threshold: number; readonly participants: readonly string[] };
    }
  | { readonly rpc: 'set-state'; readonly keyId: string; readonly change: StateChange }
  /**
   * Issue 16 (backup, restore, import): an operation whose module binds the signed request itself
   * (node/backup.ts, node/restore.ts), with the same rule: exactly this operation or Unauthorized.
   */
  | {
      readonly rpc: 'bound';
      readonly operation: Operation;
      readonly keyId: string;
      readonly bind: (req: { method: string; path: string; query: string; body: Uint8Array }) => BoundRequest;
    };

/** The signed request's operation and the facts the policy needs. */
export type BoundRequest = {
  readonly operation: Operation;
  readonly keyId: string;
  /** Sign: the message the principal signed for. */
  readonly message?: Uint8Array;
  /** Sign (issue 14): the derivation path and Taproot tweak the principal signed for (node/sign-tweak.ts). */
  readonly tweak?: RequestedTweak;
  readonly keyEvent?: { oldThreshold: number; newThreshold: number; committeeChanges: boolean };
  /** SignPsbt (issue 14): what the session may sign, and the PSBT's facts for the audit and policy. */
  readonly psbt?: PsbtAuthorization;
  readonly psbtFacts?: PsbtFacts;
  /** Schedule deletion: the window asked for (days). */
  readonly pendingWindowDays?: number;
  /** Decrypt / ReEncrypt (issue 15): SHA-256 of the encryption context's label, for the audit. */
  readonly labelDigest?: string;
};

/** The API's bounds (coordinator/routes/schemas.ts, coordinator/lifecycle.ts). */
const MAX_NODES = 1000;
const MAX_MESSAGE_BYTES = 64 * 1024;
export const DEFAULT_PENDING_WINDOW_DAYS = 30;
const nodeId = { type: 'string', pattern: '^node-[1-9][0-9]{0,3}$' } as const;
const participants = {
  oneOf: [
    { type: 'integer', minimum: 2, maximum: MAX_NODES },
    { type: 'array', items: nodeId, minItems: 2, maxItems: MAX_NODES, uniqueItems: true },
  ],
} as const;
const threshold = { type: 'integer', minimum: 2, maximum: MAX_NODES } as const;
const closed = (properties: Record<string, unknown>, required: string[] = []) => ({
  type: 'object',
  additionalProperties: false,
  required,
  properties,
});
const ajv = new Ajv({ allErrors: false, strict: false });
const bodies = {
  sign: ajv.compile(
    closed(
      {
        message: { type: 'string', pattern: '^(?:[0-9a-fA-F]{2})*$', maxLength: 2 * MAX_MESSAGE_BYTES },
        // Custody (issue 14): which key of the tree signs; resolved by the node (node/sign-tweak.ts).
        derivationPath: { type: 'string', maxLength: 512 },
        taprootTweak: { enum: ['keyPath', 'none'] },
      },
      ['message'],
    ),
  ),
  create: ajv.compile(
    closed(
      {
        keySpec: { enum: ALL_KEY_SPECS },
        keyUsage: { enum: KEY_USAGES },
        threshold,
        participants,
        alias: { type: 'string', pattern: '^[A-Za-z][A-Za-z0-9_.-]{0,127}$' },
        description: { type: 'string', maxLength: 1024 },
        // Custody (issue 14): the Taproot script tree's merkle root.
        merkleRoot: { type: 'string', pattern: '^[0-9a-fA-F]{64}$' },
      },
      ['keySpec', 'threshold'],
    ),
  ),
  empty: ajv.compile(closed({})),
  signPsbt: ajv.compile(SIGN_PSBT_BODY_SCHEMA),
  reshare: ajv.compile(closed({ threshold, participants })),
  repair: ajv.compile(closed({ participant: nodeId }, ['participant'])),
  schedule: ajv.compile(closed({ pendingWindowDays: { type: 'integer', minimum: 7, maximum: 30 } })),
};

const STATE_PATHS: Readonly<Record<string, { change: StateChange; operation: Operation }>> = {
  disable: { change: 'disable', operation: 'DisableKey' },
  enable: { change: 'enable', operation: 'EnableKey' },
  'schedule-deletion': { change: 'scheduleDeletion', operation: 'ScheduleKeyDeletion' },
  'cancel-deletion': { change: 'cancelDeletion', operation: 'CancelKeyDeletion' },
};

const KEY_PATH = /^\/v1\/keys\/([A-Za-z0-9._:-]{1,128})\/([a-z-]{1,32})$/;

const mismatch = (what: string): never => {
  throw new KmsError('Unauthorized', `the signed request does not match: ${what}`);
};

/** Strict UTF-8 (a malformed body is refused); stateless between whole-buffer decodes, so shared. */
const UTF8 = new TextDecoder('utf-8', { fatal: true });

function body(
  bytes: Uint8Array,
  validate: ReturnType<typeof ajv.compile>,
  what: string,
): Record<string, any> {
  // An empty body stands for `{}` (routes without a body: refresh, enable, ...).
  let v: unknown = {};
  if (bytes.length > 0) {
    try {
      v = JSON.parse(UTF8.decode(bytes));
    } catch {
      return mismatch(`the ${what} body is not JSON`);
    }
  }
  if (!validate(v)) return mismatch(`the ${what} body is not one the API accepts`);
  return v as Record<string, any>;
}

const sameSet = (a: readonly string[], b: readonly string[]) =>
  a.length === b.length && new Set(a).size === a.length && a.every((x) => b.includes(x));

/** `POST /v1/keys/{keyId}/{action}`: the key id and action, or a mismatch. */
function keyAction(req: { method: string; path: string; query: string }): { keyId: string; action: string } {
  if (req.method.toUpperCase() !== 'POST') mismatch(`method ${req.method}`);
  if (req.query !== '') mismatch('a query on an operation that takes none');
  const m = KEY_PATH.exec(req.path) ?? mismatch(`path ${req.path.slice(0, 200)}`);
  return { keyId: m[1]!, action: m[2]! };
}

/**
 * Binds the signed request to `g`, the operation this node is asked to perform. Throws
 * Unauthorized naming the first difference.
 */
export function bindRequest(
  g: GuardedRequest,
  req: { method: string; path: string; query: string; body: Uint8Array },
): BoundRequest {
  if (g.rpc === 'bound') {
    const bound = g.bind(req);
    if (bound.operation !== g.operation || bound.keyId !== g.keyId)
      mismatch(`${bound.operation} of ${bound.keyId}, not ${g.operation} of ${g.keyId}`);
    return bound;
  }
  if (g.rpc === 'sign-commit') {
    const { keyId, action } = keyAction(req);
    if (action === SIGN_PSBT_ACTION) {
      // Issue 14: the node finds the PSBT's inputs of this key and their hashes itself.
      if (keyId !== g.keyId) mismatch(`key ${keyId}, not ${g.keyId}`);
      const b = body(req.body, bodies.signPsbt, SIGN_PSBT_ACTION);
      const key = g.psbtKey ?? mismatch('a PSBT for a key this node does not hold');
      const { psbt, facts } = bindPsbt(key, b as { psbt: string }, g.tweak);
      return { operation: 'SignPsbt', keyId, tweak: g.tweak ?? {}, psbt, psbtFacts: facts };
    }
    if (action !== 'sign') mismatch(`operation ${action}, not sign`);
    if (keyId !== g.keyId) mismatch(`key ${keyId}, not ${g.keyId}`);
    const b = body(req.body, bodies.sign, 'sign');
    const tweak: RequestedTweak = {
      ...(b['derivationPath'] === undefined ? {} : { derivationPath: b['derivationPath'] }),
      ...(b['taprootTweak'] === undefined ? {} : { taprootTweak: b['taprootTweak'] }),
    };
    const message = new Uint8Array(Buffer.from(b['message'], 'hex'));
    return { operation: 'Sign', keyId, message, ...(Object.keys(tweak).length > 0 ? { tweak } : {}) };
  }
  if (g.rpc === 'set-state') {
    const { keyId, action } = keyAction(req);
    const s = STATE_PATHS[action] ?? mismatch(`operation ${action} is not a state change`);
    if (s.change !== g.change) mismatch(`state change ${s.change}, not ${g.change}`);
    if (keyId !== g.keyId) mismatch(`key ${keyId}, not ${g.keyId}`);
    if (s.change === 'scheduleDeletion') {
      const b = body(req.body, bodies.schedule, 'schedule-deletion');
      return {
        operation: s.operation,
        keyId,
        pendingWindowDays: b['pendingWindowDays'] ?? DEFAULT_PENDING_WINDOW_DAYS,
      };
    }
    body(req.body, bodies.empty, action);
    return { operation: s.operation, keyId };
  }
  const s = g.session;
  if (s.kind === 'dkg') {
    if (req.method.toUpperCase() !== 'POST' || req.path !== '/v1/keys' || req.query !== '') {
      mismatch('a key-creating session needs a signed POST /v1/keys');
    }
    const b = body(req.body, bodies.create, 'create-key');
    if (b['keySpec'] !== s.keySpec) mismatch(`key spec ${b['keySpec']}, not ${s.keySpec}`);
    // Custody (issue 14): the merkle root the members store is the signed one.
    const root = typeof b['merkleRoot'] === 'string' ? b['merkleRoot'].toLowerCase() : null;
    if (root !== (s.merkleRoot ?? null)) mismatch(`merkle root ${root}, not ${s.merkleRoot ?? null}`);
    // A key has one usage, fixed by its spec (issue 15): the signed request must not ask another.
    const usage = b['keyUsage'] ?? 'SIGN_VERIFY';
    if (KEY_SPEC_REGISTRY[s.keySpec].usage !== usage)
      mismatch(`key usage ${usage} for key spec ${s.keySpec}`);
    if (b['threshold'] !== s.threshold) mismatch(`threshold ${b['threshold']}, not ${s.threshold}`);
    const p = b['participants'];
    if (Array.isArray(p) && !sameSet(p, s.participants)) mismatch('another committee');
    if (typeof p === 'number' && p !== s.participants.length) {
      mismatch(`a committee of ${p}, not ${s.participants.length}`);
    }
    return { operation: 'CreateKey', keyId: s.keyId };
  }
  const { keyId, action } = keyAction(req);
  if (action !== s.kind) mismatch(`operation ${action}, not ${s.kind}`);
  if (keyId !== s.keyId) mismatch(`key ${keyId}, not ${s.keyId}`);
  if (s.kind === 'refresh') {
    body(req.body, bodies.empty, 'refresh');
    if (!g.held) mismatch('a refresh of a key this node does not hold');
    if (s.threshold !== g.held!.threshold || !sameSet(s.participants, g.held!.participants)) {
      mismatch('a refresh changes neither the threshold nor the committee');
    }
    return { operation: 'RefreshKey', keyId };
  }
  if (s.kind === 'repair') {
    const b = body(req.body, bodies.repair, 'repair');
    if (b['participant'] !== s.target) mismatch(`repair of ${b['participant']}, not ${s.target}`);
    return { operation: 'RepairKey', keyId };
  }
  // Reshare: the old threshold and committee are this node's own when it holds the key (a dealer:
  // the members whose shares make the new ones), else those the session names.
  const b = body(req.body, bodies.reshare, 'reshare');
  const oldThreshold = g.held?.threshold ?? s.oldThreshold ?? mismatch('a reshare without its old threshold');
  const oldCommittee =
    g.held?.participants ?? s.oldParticipants ?? mismatch('a reshare without its old committee');
  if (s.oldThreshold !== undefined && s.oldThreshold !== oldThreshold) {
    mismatch(`old threshold ${s.oldThreshold}, this node holds ${oldThreshold}`);
  }
  const t = b['threshold'] ?? oldThreshold;
  if (t !== s.threshold) mismatch(`threshold ${t}, not ${s.threshold}`);
  const p = b['participants'];
  if (Array.isArray(p) && !sameSet(p, s.participants)) mismatch('another committee');
  if (typeof p === 'number' && p !== s.participants.length) {
    mismatch(`a committee of ${p}, not ${s.participants.length}`);
  }
  if (p === undefined && !sameSet(oldCommittee, s.participants))
    mismatch('another committee than the current one');
  return {
    operation: 'ReshareKey',
    keyId,
    keyEvent: {
      oldThreshold,
      newThreshold: s.threshold,
      committeeChanges: !sameSet(oldCommittee, s.participants),
    },
  };
}
