/**
 * What the parts of one node daemon share (node/daemon.ts builds it once): configuration, store,
 * sealer, the active-key cache, the audit append, and the session runner. Each part (key events,
 * signing, lifecycle) takes this and nothing else, so none reaches into another's state.
 */
import type pino from 'pino';
import { participantIdOf } from '../protocol/elements.ts';
import { KmsError } from '../protocol/errors.ts';
import { type ParticipantId, nodeIndex } from '../protocol/ids.ts';
import type { KeySpec } from '../protocol/suites.ts';
import type { ActiveKeys } from './active-keys.ts';
import type { NodeConfig } from './config.ts';
import type { NodeMetrics } from './metrics.ts';
import type { RequestGuard } from './request-guard.ts';
import type { SealContext, Sealer } from './sealer.ts';
import type { SessionRunner } from './session-runner.ts';
import type { NodeStore } from './store.ts';

export type NodeContext = {
  readonly cfg: NodeConfig;
  readonly store: NodeStore;
  readonly sealer: Sealer;
  readonly log: pino.Logger;
  /** Prometheus counters of this node (node/metrics.ts), served on its admin port. */
  readonly metrics: NodeMetrics;
  /** Unsealed active key material by key id (memory only). */
  readonly keys: ActiveKeys;
  /** Node id -> libp2p peer id of every node on the allow-list. */
  readonly peerByNode: ReadonlyMap<string, string>;
  /** Appends to this node's own audit chain. */
  record(entry: Record<string, unknown>): Promise<void>;
  /** Verifies client-signed requests and runs the policy before anything is done (node/request-guard.ts). */
  readonly guard: RequestGuard;
  /** The session layer (set once the transport is attached). */
  runner(): SessionRunner;
};

/** Sealer scope of a key epoch's share on this node. */
export const shareCtx = (nodeId: string, keyId: string, epoch: number): SealContext => ({
  scope: `${keyId}/${epoch}`,
  nodeId,
  purpose: 'share',
});

/** A node's FROST identifier in a key spec (node-k has identifier k). */
export function participantOf(spec: KeySpec, nodeId: string): ParticipantId {
  const k = nodeIndex(nodeId);
  if (k === undefined) throw new KmsError('ValidationError', `bad node id ${nodeId}`);
  return participantIdOf(spec, k) as ParticipantId;
}
