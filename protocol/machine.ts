/**
 * The shape every protocol state machine in `protocol/` follows: a pure function from
 * (state, incoming message) to (new state, outgoing messages, maybe a result). No sockets, clocks or
 * disks: the node daemon (node/session-runner.ts) delivers messages and persists results, and tests
 * run the same machines in-process.
 *
 * A machine is driven like this:
 *   let step = machine.start();                // first outgoing messages
 *   for each envelope addressed to us:
 *     step = machine.receive(step.state, env);  // may throw ProtocolError (terminal, with culprits)
 *   until step.done is set.
 *
 * Between nodes every envelope is signed by its sender's node identity key (protocol/codec.ts
 * `signedMessage`); the shell checks the signature before `receive` and hands it over in
 * `env.signature`, so that echo rounds can forward it and blame carries transferable evidence. A
 * machine that checks forwarded signatures gets a pure `SignatureCheck` in its config.
 */
import type { Key } from '@noble/curves/abstract/frost.js';
import type { Epoch, KeyId, ParticipantId, SessionId } from './ids.ts';
import type { KeySpecName } from './suites.ts';

/** Which protocol a message belongs to. Bound into every envelope (RFC 9591 §7 + I3 context binding). */
export type ProtocolKind = 'dkg' | 'sign' | 'refresh' | 'reshare' | 'repair';

/**
 * Everything a message is bound to. The codec (protocol/codec.ts) serializes the header together
 * with the body, and a receiver rejects any envelope whose header differs from its session's.
 */
export type EnvelopeHeader = {
  readonly version: 1;
  readonly protocol: ProtocolKind;
  readonly keySpec: KeySpecName;
  readonly keyId: KeyId;
  readonly sessionId: SessionId;
  readonly epoch: Epoch;
  /** Round name, e.g. `dkg.r1`, `dkg.r2`, `dkg.echo`, `dkg.confirm`, `sign.commit`, `sign.share`. */
  readonly round: string;
  readonly from: ParticipantId;
  /** A participant, or `*` for a broadcast. */
  readonly to: ParticipantId | '*';
};

export type Envelope<Body = unknown> = {
  readonly header: EnvelopeHeader;
  readonly body: Body;
  /**
   * On a received envelope: its sender's signature over codec `signedMessage(header, digest)`,
   * already checked by the shell. Outgoing envelopes carry none: the shell signs them.
   */
  readonly signature?: Uint8Array;
};

/**
 * Does `signature` by `participant`'s node identity key verify over `message` (a codec
 * `signedMessage`)? Pure, never throws. The node builds it from the cluster file's peer ids.
 */
export type SignatureCheck = (
  participant: ParticipantId,
  message: Uint8Array,
  signature: Uint8Array,
) => boolean;

/**
 * What the shell must do before a step's messages leave. `persist-pending`: this member's new
 * share is known and its confirmation is in this step's messages, so the share must be sealed and
 * stored (synced) as pending first (invariant I5: never confirm a share that a crash could lose).
 */
export type Effect = {
  readonly kind: 'persist-pending';
  readonly key: Key;
  /** A DKG's transcript hash, which its confirmation binds (the shell derives custody data from it). */
  readonly transcriptHash?: Uint8Array;
};

export type Step<State, Body, Result> = {
  readonly state: State;
  /** Messages to send now. Point-to-point ones carry secret material and must go over an encrypted channel. */
  readonly out: readonly Envelope<Body>[];
  /** Set when the machine finished successfully. */
  readonly done?: Result;
  /** Side effects the shell performs before sending `out` (at most one per kind per session). */
  readonly effects?: readonly Effect[];
};

/**
 * A protocol machine for one participant of one session. `start` gives the first messages;
 * `receive` consumes one envelope that the transport authenticated as coming from `header.from`.
 * Both throw ProtocolError (terminal: the session aborts, with culprits where provable) or
 * DecodeError (the message is dropped and its sender blamed for a malformed message).
 */
export interface Machine<State, Body, Result> {
  readonly self: ParticipantId;
  start(): Step<State, Body, Result>;
  receive(state: State, env: Envelope<Body>): Step<State, Body, Result>;
}
