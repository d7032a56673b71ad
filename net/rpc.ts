/**
 * Coordinator -> node requests (`/tkms/rpc/1.0.0`): one table (`RpcAnswers`) types every operation's
 * request and answer, and both directions are validated by JSON schema: the node validates each
 * request before anything else looks at it (`decodeRpcRequest`), the coordinator validates each
 * answer against the schema of the operation it asked (`decodeRpcAnswer`), so a malformed or
 * padded answer from a node is a DecodeError naming that node, never data passed on.
 * JSON-shaped objects (binary values as lowercase hex, like the HTTP API) in one transport frame.
 * Node-to-node protocol messages do not use this: they are binary envelopes (protocol/codec.ts) on
 * `/tkms/session/1.0.0`.
 */
import { Ajv } from 'ajv';
import { KmsError } from '../protocol/errors.ts';
import {
  NODE_KEY_STATES,
  type NodeKeyState,
  SETTABLE_KEY_STATES,
  STATE_CHANGES,
  type SettableKeyState,
  type StateChange,
} from '../protocol/key-states.ts';
import type { RequestedTweak } from '../protocol/key-tweak.ts';
import type { PublicPackageHex } from '../protocol/packages.ts';
import { ALL_KEY_SPECS, KEY_SPECS, type KeySpecName, keySpec } from '../protocol/suites.ts';
import {
  type Governance,
  type GovernanceSignature,
  governanceSignaturesSchema,
} from '../policy/governance.ts';
import type { AuditRecord } from '../common/audit-log.ts';
import { type SignedAuditHead, signedAuditHeadSchema } from './node-audit-head.ts';
import type { WireError } from './transport.ts';
import { type AuthorizationWire, authorizationSchema } from './signed-request.ts';

export type { PublicPackageHex };

const HEX = '^([0-9a-f]{2})*$';
const hex = (maxLength = 2048) => ({ type: 'string', pattern: HEX, maxLength }) as const;
const nodeId = { type: 'string', pattern: '^node-[1-9][0-9]{0,3}$' } as const;
const id = { type: 'string', pattern: '^[A-Za-z0-9._:-]{1,128}$' } as const;
const epoch = { type: 'integer', minimum: 0, maximum: 2 ** 31 } as const;
const nodeList = { type: 'array', items: nodeId, minItems: 1, maxItems: 1000, uniqueItems: true } as const;

const publicPackage = {
  type: 'object',
  additionalProperties: false,
  required: ['min', 'max', 'commitments', 'verifyingShares'],
  properties: {
    min: { type: 'integer', minimum: 1, maximum: 1000 },
    max: { type: 'integer', minimum: 1, maximum: 1000 },
    commitments: { type: 'array', items: hex(300), minItems: 1, maxItems: 1000 },
    verifyingShares: {
      type: 'object',
      propertyNames: { pattern: '^[0-9a-f]{64,114}$' },
      additionalProperties: hex(300),
      maxProperties: 1000,
    },
  },
} as const;

export type Confirmations = Record<string, { R: string; z: string }>;
const confirmations = {
  type: 'object',
  propertyNames: { pattern: '^[0-9a-f]{64,114}$' },
  additionalProperties: {
    type: 'object',
    additionalProperties: false,
    required: ['R', 'z'],
    properties: { R: hex(300), z: hex(300) },
  },
  maxProperties: 1000,
} as const;

export type SessionKind = 'dkg' | 'refresh' | 'reshare' | 'repair';

/** What the initiator (coordinator) asks every member of a key-creating session to run. */
export type SessionSpec = {
  kind: SessionKind;
  sessionId: string;
  keyId: string;
  keySpec: KeySpecName;
  /** The epoch the session produces (0 for DKG). For repair: the current epoch. */
  epoch: number;
  threshold: number;
  /** The new committee (for DKG and refresh: the committee). */
  participants: string[];
  /** Reshare: the old epoch, its threshold (explicit: never inferred), committee and public package. */
  oldEpoch?: number;
  oldThreshold?: number;
  oldParticipants?: string[];
  /** Reshare and repair: the members of the old committee that deal / help. */
  dealers?: string[];
  oldPublic?: PublicPackageHex;
  /** Repair: the member whose share is rebuilt. */
  target?: string;
  /**
   * Custody (issue 14). DKG: the FROST_SECP256K1_TR merkle root of the signed CreateKey body (each
   * member checks it against the body). Reshare: the key's chain code and merkle root, which
   * dealers check against their own and joining members store (node/sign-tweak.ts).
   */
  merkleRoot?: string | null;
  chainCode?: string;
};
const sessionSpec = {
  type: 'object',
  additionalProperties: false,
  required: ['kind', 'sessionId', 'keyId', 'keySpec', 'epoch', 'threshold', 'participants'],
  properties: {
    kind: { enum: ['dkg', 'refresh', 'reshare', 'repair'] },
    sessionId: id,
    keyId: id,
    keySpec: { enum: ALL_KEY_SPECS },
    epoch,
    threshold: { type: 'integer', minimum: 1, maximum: 1000 },
    participants: nodeList,
    oldEpoch: epoch,
    oldThreshold: { type: 'integer', minimum: 1, maximum: 1000 },
    oldParticipants: nodeList,
    dealers: nodeList,
    oldPublic: publicPackage,
    target: nodeId,
    // Custody (issue 14).
    merkleRoot: { oneOf: [{ type: 'null' }, { type: 'string', pattern: '^[0-9a-f]{64}$' }] },
    chainCode: { type: 'string', pattern: '^[0-9a-f]{64}$' },
  },
} as const;

/**
 * The client-signed request (and its approvals) a guarded operation carries (`auth`): each node
 * verifies it itself (node/request-guard.ts). Required on `sign-commit`, `session` and `set-state`
 * once the node has a governance document installed.
 */
const authorization = authorizationSchema;

// ---- custody (issue 14): the tweak a sign request asks for (protocol/key-tweak.ts RequestedTweak) ----
const requestedTweak = {
  type: 'object',
  additionalProperties: false,
  properties: {
    derivationPath: { type: 'string', pattern: '^m(/[0-9]{1,10})*$', maxLength: 512 },
    taprootTweak: { enum: ['keyPath', 'none'] },
  },
} as const;

/** Longest page of the `audit` answer (records are small; a page stays far below a frame). */
export const MAX_AUDIT_PAGE = 500;

/**
 * The status answer lists key states a page at a time (key-id order, `after` the last id seen), so
 * it stays far below the transport's message limit however many keys a node holds.
 */
export const STATUS_PAGE = 1000;
export const MAX_STATUS_PAGE = 5000;

/** The `status` answer: the key count, one page of key states, `next` if more follow. */
export type StatusAnswer = {
  nodeId: string;
  keyCount: number;
  /** One page of keys: state and epochs (a few dozen bytes each, so a page stays far below a frame). */
  keys: { keyId: string; state: NodeKeyState; activeEpoch?: number; pendingEpoch?: number }[];
  next?: string;
  signingSessions: number;
};

export type RpcRequest =
  | { op: 'status'; after?: string; limit?: number }
  | { op: 'public'; keyId: string }
  | { op: 'session'; session: SessionSpec; auth?: AuthorizationWire }
  /** Sent to every member before `session`: hold early messages of this session from these members. */
  | { op: 'prepare'; sessionId: string; members: string[] }
  | { op: 'commit-epoch'; keyId: string; epoch: number; certificate: Confirmations; transcriptHash: string }
  | { op: 'abort-epoch'; keyId: string; epoch: number }
  /**
   * After a DKG every member agreed on (security review C-1): the node clears the key's
   * `unconfirmed` mark if these are the values it completed itself (node/key-confirmation.ts).
   */
  | { op: 'confirm-key'; keyId: string; epoch: number; groupElement: string; transcriptHash: string }
  | {
      op: 'retire';
      keyId: string;
      epoch: number;
      public: PublicPackageHex;
      certificate: Confirmations;
      transcriptHash: string;
      sessionId: string;
    }
  | {
      op: 'sign-commit';
      sessionId: string;
      keyId: string;
      epoch: number;
      auth?: AuthorizationWire;
      /** Custody (issue 14): the derivation path and Taproot tweak the signed request asks for. */
      tweak?: RequestedTweak;
    }
  /**
   * The coordinator gave up this signing attempt (it starts another for the same request): the
   * node discards the attempt's open nonce, never to be used, instead of holding it until its TTL.
   */
  | { op: 'sign-abort'; sessionId: string }
  /**
   * A signing request that waits for approvals: each committee member verifies it now and keeps
   * the time it did, so it can accept the initiator's (by then expired) signature with the
   * approvals later (node/request-guard.ts). Never makes a nonce; never signs.
   */
  | { op: 'sign-review'; keyId: string; auth?: AuthorizationWire }
  | {
      op: 'sign-share';
      sessionId: string;
      keyId: string;
      epoch: number;
      message: string;
      commitments: { identifier: string; hiding: string; binding: string }[];
    }
  // ---- one-round signing (issue 17; node/nonce-pool.ts, coordinator/commitment-cache.ts) ----
  /**
   * Pre-generated nonce commitments for the key's active epoch (RFC 9591 §5.1 ahead of time): the
   * node keeps the nonces in memory only; never signs anything.
   */
  | { op: 'sign-precommit'; keyId: string; epoch: number; count: number }
  /**
   * One-round signing: the client-signed request, its message and the commitment list, this
   * node's entry one it pre-published and has not used; the node takes that nonce out before
   * anything else and answers its share (and `refill` new commitments). Refused with NonceReused
   * when the commitment is not (or no longer) in its pool: the coordinator signs in two rounds.
   */
  | {
      op: 'sign-one';
      sessionId: string;
      keyId: string;
      epoch: number;
      message: string;
      commitments: { identifier: string; hiding: string; binding: string }[];
      refill?: number;
      auth?: AuthorizationWire;
    }
  /**
   * Several `sign-one` requests bound for this node in one frame (the coordinator coalesces those
   * of one event-loop turn: coordinator/node-rpc.ts). The node runs each item exactly as the
   * `sign-one` it carries and answers each item's share or error on its own, in order.
   */
  | { op: 'sign-batch'; items: SignOneItem[] }
  // ---- end of one-round signing ----
  /** `operation`: the table's operation that makes the change (default: the plain change to `state`). */
  | {
      op: 'set-state';
      keyId: string;
      state: SettableKeyState;
      operation?: StateChange;
      auth?: AuthorizationWire;
    }
  | { op: 'destroy'; keyId: string }
  /** The node's current governance version. */
  | { op: 'governance' }
  /** A new governance version: genesis by the configured hash, later ones with the admin quorum. */
  | { op: 'governance-update'; document: unknown; signatures: GovernanceSignature[] }
  /** A page of this node's audit chain (records with seq > `after`) and its freshly signed head. */
  | { op: 'audit'; after?: number; limit: number }
  // ---- envelope encryption (issue 15) ----
  /**
   * This node's TDH2 decryption share of `ciphertextBlob` (protocol/ciphertext-blob.ts) under
   * `encryptionContext`, for the client-signed Decrypt or ReEncrypt request in `auth`, which must
   * name exactly this blob, context and recipient (node/decryption.ts). With `recipient` (the
   * client's ephemeral ristretto255 key, in the signed body) the share is sealed to it.
   */
  | {
      op: 'decrypt-share';
      /** Which signed operation asks for the share: a Decrypt or the source half of a ReEncrypt. */
      operation: 'Decrypt' | 'ReEncrypt';
      keyId: string;
      epoch: number;
      ciphertextBlob: string;
      encryptionContext: Record<string, string>;
      recipient?: string;
      auth?: AuthorizationWire;
    }
  // ---- Backup, restore and import (issue 16: node/backup.ts, node/restore.ts) ----
  /**
   * A dealer of a backup deals its share of `epoch` to the officers the signed request names
   * (`auth`: POST /v1/keys/{keyId}/backups); `dealers` are the t members that deal, `metadata` the
   * key's public metadata the bundle carries.
   */
  | {
      op: 'backup-deal';
      keyId: string;
      epoch: number;
      dealers: string[];
      metadata: Record<string, string>;
      auth?: AuthorizationWire;
    }
  /** The assembled bundle body (base64 of a bundle with no signatures): the dealer checks and signs it. */
  | { op: 'backup-sign'; keyId: string; bundleId: string; bundle: string }
  /**
   * Restore or import: the signed request (`auth`) carries every dealing; the node checks them
   * against the group key, stores its new share as pending and answers its confirmation.
   */
  | { op: 'external-deal'; kind: 'restore' | 'import'; keyId: string; auth?: AuthorizationWire };
// ---- end of backup, restore and import ----

/** One item of a `sign-batch`: a `sign-one` request without its `op`. */
export type SignOneItem = Omit<Extract<RpcRequest, { op: 'sign-one' }>, 'op'>;

const req = (op: string, props: Record<string, unknown>, required: string[]) => ({
  type: 'object',
  additionalProperties: false,
  required: ['op', ...required],
  properties: { op: { const: op }, auth: authorization, ...props },
});

/** Most commitments one `sign-precommit` (or one `sign-one` refill) asks for (issue 17). */
export const MAX_PRECOMMIT = 64;
const signingCommitments = {
  type: 'array',
  minItems: 1,
  maxItems: 1000,
  items: {
    type: 'object',
    additionalProperties: false,
    required: ['identifier', 'hiding', 'binding'],
    properties: { identifier: hex(114), hiding: hex(300), binding: hex(300) },
  },
} as const;
const precommitted = {
  type: 'array',
  maxItems: MAX_PRECOMMIT,
  items: {
    type: 'object',
    additionalProperties: false,
    required: ['hiding', 'binding'],
    properties: { hiding: hex(300), binding: hex(300) },
  },
} as const;

/** Most items one `sign-batch` carries, and most bytes the coordinator puts in one (issue 17). */
export const MAX_SIGN_BATCH = 32;
export const MAX_SIGN_BATCH_BYTES = 256 * 1024;
const signOneProps = {
  sessionId: id,
  keyId: id,
  epoch,
  message: hex(2 * 64 * 1024),
  commitments: signingCommitments,
  refill: { type: 'integer', minimum: 0, maximum: MAX_PRECOMMIT },
} as const;
const signOneRequired = ['sessionId', 'keyId', 'epoch', 'message', 'commitments'];

const rpcSchema = {
  // Each branch names its `op` as a const: ajv goes straight to that branch (no trial of all).
  type: 'object',
  required: ['op'],
  discriminator: { propertyName: 'op' },
  oneOf: [
    req('status', { after: id, limit: { type: 'integer', minimum: 0, maximum: MAX_STATUS_PAGE } }, []),
    req('public', { keyId: id }, ['keyId']),
    req('session', { session: sessionSpec }, ['session']),
    req('prepare', { sessionId: id, members: nodeList }, ['sessionId', 'members']),
    req('commit-epoch', { keyId: id, epoch, certificate: confirmations, transcriptHash: hex(64) }, [
      'keyId',
      'epoch',
      'certificate',
      'transcriptHash',
    ]),
    req('abort-epoch', { keyId: id, epoch }, ['keyId', 'epoch']),
    req('confirm-key', { keyId: id, epoch, groupElement: hex(300), transcriptHash: hex(64) }, [
      'keyId',
      'epoch',
      'groupElement',
      'transcriptHash',
    ]),
    req(
      'retire',
      {
        keyId: id,
        epoch,
        public: publicPackage,
        certificate: confirmations,
        transcriptHash: hex(64),
        sessionId: id,
      },
      ['keyId', 'epoch', 'public', 'certificate', 'transcriptHash', 'sessionId'],
    ),
    req('sign-commit', { sessionId: id, keyId: id, epoch, tweak: requestedTweak }, [
      'sessionId',
      'keyId',
      'epoch',
    ]),
    req('sign-abort', { sessionId: id }, ['sessionId']),
    req('sign-review', { keyId: id }, ['keyId']),
    req(
      'sign-share',
      {
        sessionId: id,
        keyId: id,
        epoch,
        message: hex(2 * 64 * 1024),
        commitments: {
          type: 'array',
          minItems: 1,
          maxItems: 1000,
          items: {
            type: 'object',
            additionalProperties: false,
            required: ['identifier', 'hiding', 'binding'],
            properties: { identifier: hex(114), hiding: hex(300), binding: hex(300) },
          },
        },
      },
      ['sessionId', 'keyId', 'epoch', 'message', 'commitments'],
    ),
    // one-round signing (issue 17)
    req(
      'sign-precommit',
      { keyId: id, epoch, count: { type: 'integer', minimum: 1, maximum: MAX_PRECOMMIT } },
      ['keyId', 'epoch', 'count'],
    ),
    req('sign-one', signOneProps, signOneRequired),
    // Items bounded like `sign-one` requests (each may carry its own `auth`); no `auth` of its own.
    {
      type: 'object',
      additionalProperties: false,
      required: ['op', 'items'],
      properties: {
        op: { const: 'sign-batch' },
        items: {
          type: 'array',
          minItems: 1,
          maxItems: MAX_SIGN_BATCH,
          items: {
            type: 'object',
            additionalProperties: false,
            required: signOneRequired,
            properties: { auth: authorization, ...signOneProps },
          },
        },
      },
    },
    req(
      'set-state',
      { keyId: id, state: { enum: SETTABLE_KEY_STATES }, operation: { enum: STATE_CHANGES } },
      ['keyId', 'state'],
    ),
    req('destroy', { keyId: id }, ['keyId']),
    req('governance', {}, []),
    req(
      'governance-update',
      {
        // Shape checked by policy/governance.ts parseGovernance; the frame bounds its size.
        document: { type: 'object' },
        signatures: governanceSignaturesSchema,
      },
      ['document', 'signatures'],
    ),
    req(
      'audit',
      {
        after: { type: 'integer', minimum: 0, maximum: Number.MAX_SAFE_INTEGER },
        limit: { type: 'integer', minimum: 1, maximum: MAX_AUDIT_PAGE },
      },
      ['limit'],
    ),
    // Envelope encryption (issue 15). A blob of a 4 KiB plaintext with a 128-byte key id is 4,412
    // bytes; the context's own bound (8,192 UTF-8 bytes in all) is checked by the node.
    req(
      'decrypt-share',
      {
        operation: { enum: ['Decrypt', 'ReEncrypt'] },
        keyId: id,
        epoch,
        ciphertextBlob: hex(2 * 4608),
        encryptionContext: {
          type: 'object',
          maxProperties: 1024,
          propertyNames: { minLength: 1, maxLength: 8192 },
          additionalProperties: { type: 'string', maxLength: 8192 },
        },
        recipient: hex(64),
      },
      ['operation', 'keyId', 'epoch', 'ciphertextBlob', 'encryptionContext'],
    ),
    // Issue 16: backup, restore and import.
    req(
      'backup-deal',
      {
        keyId: id,
        epoch,
        dealers: nodeList,
        metadata: {
          type: 'object',
          maxProperties: 32,
          propertyNames: { pattern: '^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$' },
          additionalProperties: { type: 'string', maxLength: 1024 },
        },
      },
      ['keyId', 'epoch', 'dealers', 'metadata'],
    ),
    req(
      'backup-sign',
      {
        keyId: id,
        bundleId: id,
        bundle: { type: 'string', pattern: '^[A-Za-z0-9+/]*={0,2}$', maxLength: 1_400_000 },
      },
      ['keyId', 'bundleId', 'bundle'],
    ),
    req('external-deal', { kind: { enum: ['restore', 'import'] }, keyId: id }, ['kind', 'keyId']),
  ],
} as const;

// ---- answers ----------------------------------------------------------------------------

/** A member's `public` answer: its active epoch, its package and the certificate that made it. */
export type PublicAnswer = {
  epoch: number;
  public: PublicPackageHex;
  threshold: number;
  participants: string[];
  transcriptHash?: string;
  certificate?: Confirmations;
  sessionId?: string;
  /** A pending epoch this member holds (persisted, not yet committed) and its package digest. */
  pending?: { epoch: number; publicDigest: string };
  /** The active epoch is a DKG's that the coordinator has not confirmed yet (`confirm-key`). */
  unconfirmed?: true;
};

/** What a member of a key-creating session answers when its part ended. */
export type SessionAnswer =
  | {
      epoch: number;
      groupElement: string;
      publicKey: string;
      transcriptHash: string;
      public: PublicPackageHex;
      certificate: Confirmations;
    }
  | { dealt: true }
  | { helped: true }
  | { repaired: true };

export type CommitAnswer = { identifier: string; hiding: string; binding: string };
export type ShareAnswer = { share: string };
/** One-round signing (issue 17): commitments of nonces the node keeps for the key's epoch. */
export type PrecommitAnswer = { identifier: string; commitments: { hiding: string; binding: string }[] };
/**
 * `groupCommitment`: the group commitment R the node computed its share for (SerializeElement,
 * hex), on suites with a fast path; the coordinator's shortcut, never trusted (threshold-signer.ts).
 */
export type SignOneAnswer = ShareAnswer & {
  groupCommitment?: string;
  commitments?: { hiding: string; binding: string }[];
};
/** `sign-batch`: per item, in order, its `sign-one` answer or its error (net/transport.ts errorToWire). */
export type SignBatchAnswer = { results: ({ ok: SignOneAnswer } | { error: WireError })[] };
/** `sign-batch` as it arrives: each item's answer or error still unchecked (`checkRpcAnswer`). */
export type SignBatchWire = { results: ({ ok: unknown } | { error: unknown })[] };
export type OkAnswer = { ok: true; already?: boolean };
/**
 * `destroy`: the epochs whose records and sealed shares were deleted, the sealer scopes destroyed,
 * and those the node could not destroy yet and retries (`absent`: the node held nothing).
 */
export type DestroyAnswer = OkAnswer & {
  absent?: boolean;
  epochs: number[];
  scopes: string[];
  pendingScopes: string[];
};

/** `governance`: the node's current version, its hash and the document. */
export type GovernanceAnswer = { version: number; hash: string; document: Governance };

/** `audit`: one page of the node's hash chain, and its head signed with the node identity key. */
export type AuditAnswer = { records: AuditRecord[]; head: SignedAuditHead };

/**
 * `decrypt-share` (issue 15): the node's FROST identifier and its TDH2 share with its proof
 * (protocol/tdh2-share-box.ts encodeShare, 128 bytes), or that share sealed to the recipient.
 */
export type DecryptShareAnswer = { identifier: string; share?: string; sealed?: string };

/** Issue 16: a backup dealer's dealing (protocol/officer-backup.ts OfficerDealing, hex). */
export type BackupDealingWire = {
  dealer: string;
  commitments: string[];
  ciphertexts: string[];
  proof: { R: string; z: string };
};
/** `backup-deal`: the bundle id (the signed request's digest), the dealt epoch and its package. */
export type BackupDealAnswer = {
  bundleId: string;
  epoch: number;
  public: PublicPackageHex;
  dealing: BackupDealingWire;
  /** The dealer's own stored custody data (issue 14), which the bundle's metadata carries. */
  custody?: { chainCode: string; merkleRoot: string | null };
};
/** `backup-sign`: the dealer's signature over the bundle (protocol/officer-backup.ts DealerSignature). */
export type BackupSignAnswer = { dealer: string; R: string; z: string };
/** `external-deal`: the new member's pending epoch and its confirmation for the certificate. */
export type ExternalDealAnswer = {
  epoch: number;
  groupElement: string;
  publicKey: string;
  transcriptHash: string;
  public: PublicPackageHex;
  participant: string;
  R: string;
  z: string;
};

/** The RPC table: each operation's answer type (requests: `RpcRequest`, by `op`). */
export type RpcAnswers = {
  status: StatusAnswer;
  public: PublicAnswer;
  session: SessionAnswer;
  prepare: OkAnswer;
  'commit-epoch': OkAnswer;
  'abort-epoch': OkAnswer;
  'confirm-key': OkAnswer;
  retire: OkAnswer;
  'sign-commit': CommitAnswer;
  'sign-abort': OkAnswer;
  'sign-review': OkAnswer;
  'sign-share': ShareAnswer;
  'sign-precommit': PrecommitAnswer;
  'sign-one': SignOneAnswer;
  'sign-batch': SignBatchWire;
  'set-state': OkAnswer;
  destroy: DestroyAnswer;
  governance: GovernanceAnswer;
  'governance-update': OkAnswer;
  audit: AuditAnswer;
  'decrypt-share': DecryptShareAnswer;
  // Issue 16.
  'backup-deal': BackupDealAnswer;
  'backup-sign': BackupSignAnswer;
  'external-deal': ExternalDealAnswer;
};
export type RpcOp = RpcRequest['op'];
export type RequestOf<O extends RpcOp> = Extract<RpcRequest, { op: O }>;
/** The node's side of the table: one handler per operation. */
export type RpcHandlers = { [O in RpcOp]: (req: RequestOf<O>) => Promise<RpcAnswers[O]> };

const obj = (props: Record<string, unknown>, required: string[]) => ({
  type: 'object',
  additionalProperties: false,
  required,
  properties: props,
});
const okAnswer = obj({ ok: { const: true }, already: { type: 'boolean' } }, ['ok']);
/** A group element of one of the suites, exactly (the coordinator checks the key's own length). */
const anyElement = {
  type: 'string',
  pattern: `^(${[...new Set(KEY_SPECS.map((s) => keySpec(s).elementLength))].map((n) => `[0-9a-f]{${2 * n}}`).join('|')})$`,
} as const;
const signOneAnswer = obj({ share: hex(300), groupCommitment: anyElement, commitments: precommitted }, [
  'share',
]);
const answerSchemas: { [O in RpcOp]: object } = {
  status: obj(
    {
      nodeId,
      keyCount: { type: 'integer', minimum: 0 },
      keys: {
        type: 'array',
        maxItems: MAX_STATUS_PAGE,
        items: obj(
          {
            keyId: id,
            state: { enum: NODE_KEY_STATES },
            activeEpoch: epoch,
            pendingEpoch: epoch,
          },
          ['keyId', 'state'],
        ),
      },
      next: id,
      signingSessions: { type: 'integer', minimum: 0 },
    },
    ['nodeId', 'keyCount', 'keys', 'signingSessions'],
  ),
  public: obj(
    {
      epoch,
      public: publicPackage,
      threshold: { type: 'integer', minimum: 1, maximum: 1000 },
      participants: nodeList,
      transcriptHash: { type: 'string', pattern: HEX, maxLength: 64 },
      certificate: confirmations,
      sessionId: { type: 'string', pattern: '^[A-Za-z0-9._:-]{0,128}$' },
      pending: obj({ epoch, publicDigest: hex(64) }, ['epoch', 'publicDigest']),
      unconfirmed: { const: true },
    },
    ['epoch', 'public', 'threshold', 'participants'],
  ),
  session: {
    oneOf: [
      obj(
        {
          epoch,
          groupElement: hex(300),
          publicKey: hex(300),
          transcriptHash: hex(64),
          public: publicPackage,
          certificate: confirmations,
        },
        ['epoch', 'groupElement', 'publicKey', 'transcriptHash', 'public', 'certificate'],
      ),
      obj({ dealt: { const: true } }, ['dealt']),
      obj({ helped: { const: true } }, ['helped']),
      obj({ repaired: { const: true } }, ['repaired']),
    ],
  },
  prepare: okAnswer,
  'commit-epoch': okAnswer,
  'abort-epoch': okAnswer,
  'confirm-key': okAnswer,
  retire: okAnswer,
  'sign-commit': obj({ identifier: hex(114), hiding: hex(300), binding: hex(300) }, [
    'identifier',
    'hiding',
    'binding',
  ]),
  'sign-abort': okAnswer,
  'sign-review': okAnswer,
  'sign-share': obj({ share: hex(300) }, ['share']),
  'sign-precommit': obj({ identifier: hex(114), commitments: precommitted }, ['identifier', 'commitments']),
  'sign-one': signOneAnswer,
  // Each item is then checked as its own answer: a `sign-one` answer's schema or a typed error
  // (coordinator/node-rpc.ts; net/transport.ts errorFromWire), so a bad item fails only its caller.
  'sign-batch': obj(
    {
      results: {
        type: 'array',
        maxItems: MAX_SIGN_BATCH,
        items: {
          type: 'object',
          additionalProperties: false,
          minProperties: 1,
          maxProperties: 1,
          properties: { ok: { type: 'object' }, error: { type: 'object' } },
        },
      },
    },
    ['results'],
  ),
  'set-state': okAnswer,
  destroy: obj(
    {
      ok: { const: true },
      already: { type: 'boolean' },
      absent: { type: 'boolean' },
      epochs: { type: 'array', items: epoch, maxItems: 1000 },
      scopes: { type: 'array', items: { type: 'string', maxLength: 200 }, maxItems: 1000 },
      pendingScopes: { type: 'array', items: { type: 'string', maxLength: 200 }, maxItems: 1000 },
    },
    ['ok', 'epochs', 'scopes', 'pendingScopes'],
  ),
  governance: obj(
    {
      version: { type: 'integer', minimum: 1, maximum: 2 ** 31 },
      hash: { type: 'string', pattern: '^[0-9a-f]{64}$' },
      document: { type: 'object' },
    },
    ['version', 'hash', 'document'],
  ),
  'governance-update': okAnswer,
  audit: obj(
    {
      records: {
        type: 'array',
        maxItems: MAX_AUDIT_PAGE,
        items: obj(
          {
            seq: { type: 'integer', minimum: 1 },
            time: { type: 'string', maxLength: 64 },
            prevHash: { type: 'string', pattern: '^[0-9a-f]{64}$' },
            hash: { type: 'string', pattern: '^[0-9a-f]{64}$' },
            entry: { type: 'object' },
          },
          ['seq', 'time', 'prevHash', 'hash', 'entry'],
        ),
      },
      head: signedAuditHeadSchema,
    },
    ['records', 'head'],
  ),
  'decrypt-share': {
    ...obj({ identifier: hex(64), share: hex(256), sealed: hex(352) }, ['identifier']),
    oneOf: [{ required: ['share'] }, { required: ['sealed'] }],
  },
  // Issue 16.
  'backup-deal': obj(
    {
      bundleId: id,
      epoch,
      public: publicPackage,
      dealing: obj(
        {
          dealer: hex(114),
          commitments: { type: 'array', maxItems: 32, items: hex(300) },
          ciphertexts: { type: 'array', maxItems: 32, items: hex(600) },
          proof: obj({ R: hex(300), z: hex(300) }, ['R', 'z']),
        },
        ['dealer', 'commitments', 'ciphertexts', 'proof'],
      ),
      custody: obj(
        {
          chainCode: { type: 'string', pattern: '^[0-9a-f]{64}$' },
          merkleRoot: { oneOf: [{ type: 'null' }, { type: 'string', pattern: '^[0-9a-f]{64}$' }] },
        },
        ['chainCode', 'merkleRoot'],
      ),
    },
    ['bundleId', 'epoch', 'public', 'dealing'],
  ),
  'backup-sign': obj({ dealer: hex(114), R: hex(300), z: hex(300) }, ['dealer', 'R', 'z']),
  'external-deal': obj(
    {
      epoch,
      groupElement: hex(300),
      publicKey: hex(300),
      transcriptHash: hex(64),
      public: publicPackage,
      participant: hex(114),
      R: hex(300),
      z: hex(300),
    },
    ['epoch', 'groupElement', 'publicKey', 'transcriptHash', 'public', 'participant', 'R', 'z'],
  ),
};

const ajv = new Ajv({ allErrors: false, strict: false, discriminator: true });
const validate = ajv.compile(rpcSchema);

const enc = new TextEncoder();
const dec = new TextDecoder('utf-8', { fatal: true });

export function encodeRpc(v: unknown): Uint8Array {
  return enc.encode(JSON.stringify(v));
}

/** Parses a JSON frame; any malformed input is a DecodeError, never a raw SyntaxError. */
export function decodeJsonFrame(bytes: Uint8Array): unknown {
  try {
    return JSON.parse(dec.decode(bytes));
  } catch {
    throw new KmsError('DecodeError', 'rpc frame is not valid UTF-8 JSON');
  }
}

export function decodeRpcRequest(bytes: Uint8Array): RpcRequest {
  const v = decodeJsonFrame(bytes);
  if (!validate(v)) throw new KmsError('ValidationError', 'rpc request does not match the schema');
  return v as RpcRequest;
}

const answerValidators = Object.fromEntries(
  Object.entries(answerSchemas).map(([op, schema]) => [op, ajv.compile(schema)]),
) as { [O in RpcOp]: ReturnType<typeof ajv.compile> };

/** Decodes a node's answer to `op` and checks it against that operation's schema (DecodeError otherwise). */
export function decodeRpcAnswer<O extends RpcOp>(op: O, bytes: Uint8Array): RpcAnswers[O] {
  return checkRpcAnswer(op, decodeJsonFrame(bytes));
}

/** Checks an already parsed answer to `op` (a `sign-batch` item's) against that operation's schema. */
export function checkRpcAnswer<O extends RpcOp>(op: O, v: unknown): RpcAnswers[O] {
  if (!answerValidators[op](v)) throw new KmsError('DecodeError', `${op} answer does not match the schema`);
  return v as RpcAnswers[O];
}
