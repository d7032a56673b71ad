/**
 * What the coordinator needs from the nodes. The HTTP layer (routes, auth, audit, lifecycle) talks
 * only to this interface; `cluster-libp2p.ts` implements it by driving sessions on the node
 * daemons over libp2p. The coordinator never holds a share: every method returns public data only.
 *
 * Errors are KmsErrors: `QuorumUnavailable` (not enough reachable participants),
 * `ParticipantMisbehaved` (with culprits), `Timeout`, `KeyNotFound`, `InvalidKeyState`.
 */
import type { Blame } from '../protocol/errors.ts';
import type { KeySpecName } from '../protocol/suites.ts';

export type KeyState = 'Creating' | 'Enabled' | 'Disabled' | 'PendingDeletion' | 'Destroyed';

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
  /** API public key (suite's canonical encoding), hex. Never changes across epochs. */
  readonly publicKey: string;
  /** Serialized group element (`commitments[0]`), hex. */
  readonly groupElement: string;
  /** Transcript hash every member confirmed, hex. */
  readonly transcriptHash: string;
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

export interface Cluster {
  /** Every configured node, probing reachability. */
  nodes(): Promise<NodeStatus[]>;
  /** Runs a DKG among `participants`; resolves once every member committed epoch 0. */
  createKey(req: {
    keyId: string;
    keySpec: KeySpecName;
    threshold: number;
    participants: readonly string[];
    progress?: ProgressFn;
  }): Promise<EpochInfo>;
  /** Signs with t reachable members of the current epoch, excluding and retrying around failures. */
  sign(req: { key: EpochInfo; message: Uint8Array }): Promise<SignResult>;
  /** Same committee and threshold, fresh shares: the next epoch. */
  refresh(req: { key: EpochInfo; progress?: ProgressFn }): Promise<EpochInfo>;
  /** New committee and/or threshold; the old threshold is `key.threshold`, never inferred. */
  reshare(req: {
    key: EpochInfo;
    threshold: number;
    participants: readonly string[];
    progress?: ProgressFn;
  }): Promise<EpochInfo>;
  /** Rebuilds the share of `participant` (a committee member that lost it) from t helpers. */
  repair(req: { key: EpochInfo; participant: string; progress?: ProgressFn }): Promise<EpochInfo>;
  /** Tells every committee member the key's lifecycle state; nodes enforce it too. */
  setKeyState(req: { keyId: string; state: KeyState }): Promise<void>;
  /** Destroys every share of the key on every node (end of the deletion window). */
  destroyKey(req: { keyId: string }): Promise<void>;
  close(): Promise<void>;
}
