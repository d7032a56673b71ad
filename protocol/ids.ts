/**
 * Branded identifiers. A string that names a key, a session or a node is not interchangeable with
 * another: the brand makes the compiler catch a session id passed where a key id belongs.
 */
declare const brand: unique symbol;
export type Brand<T, B extends string> = T & { readonly [brand]: B };

/** Key id chosen by the coordinator (UUID). */
export type KeyId = Brand<string, 'KeyId'>;
/** Session id chosen by the initiator of a run; bound into every message of the run. */
export type SessionId = Brand<string, 'SessionId'>;
/** Human node name in the cluster config: `node-1`, `node-2`, ... */
export type NodeId = Brand<string, 'NodeId'>;
/**
 * FROST participant identifier: the suite's canonical scalar serialization, hex (noble's format).
 * Node `node-k` has participant identifier `Identifier.fromNumber(k)`.
 */
export type ParticipantId = Brand<string, 'ParticipantId'>;
/** Key epoch: 0 after DKG, +1 for each committed refresh or reshare (a repair rebuilds a share of the current epoch). */
export type Epoch = Brand<number, 'Epoch'>;

export const asKeyId = (s: string): KeyId => s as KeyId;
export const asSessionId = (s: string): SessionId => s as SessionId;
export const asNodeId = (s: string): NodeId => s as NodeId;
export const asParticipantId = (s: string): ParticipantId => s as ParticipantId;
export const asEpoch = (n: number): Epoch => n as Epoch;

const NODE_ID_RE = /^node-([1-9][0-9]{0,3})$/;

/** `node-7` -> 7. Participant index k is the FROST identifier of node-k. */
export function nodeIndex(id: string): number | undefined {
  const m = NODE_ID_RE.exec(id);
  return m ? Number(m[1]) : undefined;
}

export function nodeIdOf(index: number): NodeId {
  return `node-${index}` as NodeId;
}
