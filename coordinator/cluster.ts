/**
 * What the coordinator needs from the nodes. The HTTP layer (routes, auth, audit, lifecycle) talks
 * only to this interface; `cluster-libp2p.ts` implements it by driving sessions on the node
 * daemons over libp2p. The coordinator never holds a share: every method returns public data only.
 *
 * Errors are KmsErrors: `QuorumUnavailable` (not enough reachable participants),
 * `ParticipantMisbehaved` (with culprits), `Timeout`, `KeyNotFound`, `InvalidKeyState`, and
 * `ValidationError` for a node id that is not configured or a repair target outside the committee.
 * test/cluster-contract.test.ts checks every implementation against what this file documents.
 */
import type { AuditAnswer, GovernanceAnswer } from '../net/rpc.ts';
import type { DecryptRequest, DecryptResult } from './decryptor.ts';
import type { AuthorizationWire } from '../net/signed-request.ts';
import type { GovernanceSignature } from '../policy/governance.ts';
import type { Blame, ErrorCode } from '../protocol/errors.ts';
import type { KeyState, NodeKeyState, SettableKeyState, StateChange } from '../protocol/key-states.ts';
import type { RequestedTweak, SigningTweak } from '../protocol/key-tweak.ts';
import type { KeySpecName } from '../protocol/suites.ts';
import type { BackupCourier } from './backups.ts';

export type {
  AuditAnswer,
  AuthorizationWire,
  GovernanceAnswer,
  KeyState,
  NodeKeyState,
  SettableKeyState,
  StateChange,
};

/**
 * What one node answered to a state change or a destroy (M-2: these are never fire-and-forget).
 * `ok` means the node confirmed; a node that holds nothing of the key confirms with `absent`.
 */
export type NodeOutcome = {
  readonly node: string;
  readonly ok: boolean;
  /** The node holds no record of the key (nothing to enforce or destroy there). */
  readonly absent?: boolean;
  /** Why the node did not confirm (unreachable, refused): public text only. */
  readonly error?: { readonly code: ErrorCode; readonly message: string };
  /** A `PolicyDenied` refusal that only lacks approvals: what is still missing (node-refusal.ts). */
  readonly needs?: readonly {
    readonly group: string;
    readonly needed: number;
    readonly have: readonly string[];
  }[];
};

/** A node's answer to `destroy`: which epochs it deleted, which sealer scopes it destroyed or still owes. */
export type DestroyOutcome = NodeOutcome & {
  readonly epochs?: readonly number[];
  readonly scopes?: readonly string[];
  /** Scopes whose HSM key could not be destroyed yet; the node retries them (L-3). */
  readonly pendingScopes?: readonly string[];
};

/** One page of a node's key states, in key id order (for reconciling nodes with the records). */
export type NodeKeyStatesPage = {
  readonly keys: readonly { readonly keyId: string; readonly state: NodeKeyState }[];
  /** Pass as `after` for the next page; absent on the last page. */
  readonly next?: string;
};

export type NodeStatus = {
  readonly id: string;
  readonly peerId: string;
  /** A dialable multiaddr of the node. */
  readonly address: string;
  readonly reachable: boolean;
  /** Key ids the node holds an active share for (empty when unreachable). */
  readonly keys: readonly string[];
};

/** Public description of one key epoch, as agreed by every member of its committee. */
export type EpochInfo = {
  readonly keyId: string;
  readonly keySpec: KeySpecName;
  readonly epoch: number;
  readonly threshold: number;
  /** Node ids of the committee, sorted (`node-1`, ...). */
  readonly participants: readonly string[];
  /**
   * API public key (suite's canonical encoding), hex: what signatures verify under. Never changes
   * across epochs. For FROST_SECP256K1_TR it is the BIP341 output key (x-only) of the key path with
   * no merkle root, the TapTweak of `groupElement` (protocol/key-tweak.ts `outputPublicKey`).
   */
  readonly publicKey: string;
  /**
   * Serialized group element (`commitments[0]`), hex. For FROST_SECP256K1_TR it is the BIP341
   * internal key P (compressed, even y: docs/custody.md), not the output key.
   */
  readonly groupElement: string;
  /** Transcript hash every member confirmed, hex. */
  readonly transcriptHash: string;
};

/** A sign request's tweak (issue 14): as asked (for the nodes) and as resolved here (for the aggregate). */
export type ClusterSignTweak = {
  readonly requested: RequestedTweak;
  readonly signing: SigningTweak | undefined;
};

export type SignResult = {
  readonly signature: Uint8Array;
  /** Node ids whose shares made the signature. */
  readonly signers: readonly string[];
  /** Nodes left out after they timed out or sent an invalid share, with the reason. */
  readonly excluded: readonly Blame[];
  /**
   * True when the cluster already checked the signature under the key's group element (RFC 9591
   * §5.3: the aggregate is verified before it is returned), so the API need not verify it again.
   */
  readonly verified?: boolean;
};

export type ProgressFn = (event: { phase: string; detail?: string }) => void;

/** One node's answer to `governance`: its current version, or why it did not answer. */
export type NodeGovernance =
  | { readonly node: string; readonly ok: true; readonly governance: GovernanceAnswer }
  | {
      readonly node: string;
      readonly ok: false;
      readonly error: { readonly code: ErrorCode; readonly message: string };
    };

/**
 * `auth` on the operations that use or change a key is the client-signed request (and its
 * approvals) exactly as the client signed it: the cluster forwards it to every node, and each node
 * verifies it and decides by its governance (issue "Nodes decide"). A node refuses with
 * `Unauthorized` (no, bad, expired or replayed signature) or `PolicyDenied` (a `details.pending`
 * one lists the approvals still missing); these refusals are the cluster's answer, not a fault.
 */
export interface Cluster {
  /** Backup, restore and import (issue 16, coordinator/backups.ts); absent where not supported. */
  readonly backups?: BackupCourier;
  /** Every configured node, probing reachability. */
  nodes(): Promise<NodeStatus[]>;
  /** The configured node ids (no probe). */
  nodeIds(): readonly string[];
  /** Runs a DKG among `participants`; resolves once every member committed epoch 0. */
  createKey(req: {
    keyId: string;
    keySpec: KeySpecName;
    threshold: number;
    participants: readonly string[];
    progress?: ProgressFn;
    auth?: AuthorizationWire;
    /** Issue 14: the FROST_SECP256K1_TR merkle root of the signed body (hex), each member checks it. */
    merkleRoot?: string | null;
  }): Promise<EpochInfo>;
  /** Signs with t reachable members of the current epoch, excluding and retrying around failures. */
  sign(req: {
    key: EpochInfo;
    message: Uint8Array;
    auth?: AuthorizationWire;
    /**
     * Issue 14: the derivation path and Taproot tweak the client asked for (sent to the nodes, each
     * resolves it itself) and the tweak this coordinator resolved from its record (to aggregate).
     */
    tweak?: ClusterSignTweak;
  }): Promise<SignResult>;
  /** Same committee and threshold, fresh shares: the next epoch. */
  refresh(req: { key: EpochInfo; progress?: ProgressFn; auth?: AuthorizationWire }): Promise<EpochInfo>;
  /** New committee and/or threshold; the old threshold is `key.threshold`, never inferred. */
  reshare(req: {
    key: EpochInfo;
    threshold: number;
    participants: readonly string[];
    progress?: ProgressFn;
    auth?: AuthorizationWire;
    /** Issue 14: the key's custody data, carried to joining members (dealers check it). */
    custody?: { chainCode: string; merkleRoot: string | null };
  }): Promise<EpochInfo>;
  /**
   * Rebuilds the share of `participant` (a committee member that lost it) from t helpers, at the
   * same epoch: the answer is the key's current EpochInfo, unchanged.
   */
  repair(req: {
    key: EpochInfo;
    participant: string;
    progress?: ProgressFn;
    auth?: AuthorizationWire;
  }): Promise<EpochInfo>;
  /**
   * Tells `members` (default: every configured node) the key's new lifecycle state, reached by
   * `operation` (default: the plain change to `state`, see protocol/key-states.ts); nodes check it
   * against the table and enforce it. Never throws for a node that missed it: one outcome per
   * member, and the caller decides (a change is done only when every member confirmed).
   */
  setKeyState(req: {
    keyId: string;
    state: SettableKeyState;
    operation?: StateChange;
    members?: readonly string[];
    auth?: AuthorizationWire;
  }): Promise<NodeOutcome[]>;
  /**
   * Destroys every share of the key on `nodes` (default: every configured node, since a node outside
   * the committee may still hold a share of an older epoch). Real nodes carry no signature for it:
   * each destroys only a key whose signed schedule-deletion it processed, once that window has passed
   * on its own clock (others refuse). One outcome per node; the caller keeps the key
   * PendingDeletion until every member confirmed.
   */
  destroyKey(req: { keyId: string; nodes?: readonly string[] }): Promise<DestroyOutcome[]>;
  /** One page of a node's key states (throws when the node cannot be reached). */
  nodeKeyStates(node: string, page: { after?: string; limit: number }): Promise<NodeKeyStatesPage>;
  /** Every configured node's current governance version (clusters whose nodes keep one). */
  governance?(): Promise<NodeGovernance[]>;
  /**
   * Offers a governance version to every configured node (`nodes`: only these); one outcome per
   * node. Genesis is accepted by its configured hash, later versions with the admin quorum.
   */
  updateGovernance?(req: {
    document: unknown;
    signatures: readonly GovernanceSignature[];
    nodes?: readonly string[];
  }): Promise<NodeOutcome[]>;
  /**
   * Shows a signing request that waits for approvals to every committee member (`sign-review`), so
   * each keeps it approvable after the initiator's signature expires (best effort, never signs).
   */
  reviewSign?(req: { key: EpochInfo; auth: AuthorizationWire }): Promise<void>;
  /** One page of a node's own audit chain and its signed head (throws when it cannot be reached). */
  nodeAudit?(node: string, page: { after?: number; limit: number }): Promise<AuditAnswer>;
  /**
   * Envelope encryption (issue 15): TDH2 decryption shares of t members, verified and combined (or
   * sealed to the client's key and returned), bad senders named and replaced (coordinator/decryptor.ts).
   */
  decrypt?(req: DecryptRequest): Promise<DecryptResult>;
  close(): Promise<void>;
}

/** The outcome of a node that did not confirm, from what its request threw (KmsError text is public). */
export function failedOutcome(node: string, e: unknown): NodeOutcome {
  const code = (e as { code?: ErrorCode }).code;
  const isKms = typeof code === 'string' && e instanceof Error;
  return {
    node,
    ok: false,
    error: isKms ? { code, message: e.message } : { code: 'Internal', message: 'request failed' },
  };
}
