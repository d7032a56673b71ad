/**
 * The signed abort of a key-event session (issue 13 item 8): a member whose own run fails (its
 * store write or its HSM fails, its machine throws, its deadline passes) tells the other members at
 * once, so they stop instead of waiting for their deadline. It is one more envelope of the session,
 * round `<protocol>.abort`, broadcast and signed with the node identity key like every other
 * (protocol/codec.ts `signEnvelope`), so the session runner's checks apply unchanged: accepted only
 * from a member, only as the Noise-authenticated sender, only with a valid signature by that node,
 * only for this session, key, key spec, protocol and epoch.
 *
 * Body `{ code, culprits }`: the error code the member failed with and, where it blames someone,
 * the node ids it named with reason, round and evidence. Public data only: never an error message,
 * a share or a point-to-point body (blame evidence is public by construction, protocol/errors.ts).
 * The receiver names the sender `aborted`, with the signed abort (its digest and signature) as
 * evidence a third party can check.
 */
import { envelopeDigest, encodeEnvelope, evidenceString, readString } from '../protocol/codec.ts';
import { type Blame, type BlameReason, DecodeError, ProtocolError, isKmsError } from '../protocol/errors.ts';
import type { Epoch, KeyId, ParticipantId, SessionId } from '../protocol/ids.ts';
import type { Envelope, ProtocolKind } from '../protocol/machine.ts';
import type { KeySpecName } from '../protocol/suites.ts';

/** What an abort is bound to (the runner's SessionContext has all of it). */
export type AbortScope = {
  readonly sessionId: string;
  readonly keyId: string;
  readonly keySpec: KeySpecName;
  readonly protocol: ProtocolKind;
  readonly epoch: number;
  readonly self: { readonly nodeId: string; readonly participant: ParticipantId };
  readonly members: readonly { readonly nodeId: string }[];
};

export type AbortBody = { readonly code: string; readonly culprits: readonly Blame[] };

/** Longest evidence string an abort carries per culprit; longer evidence is left out, not cut. */
export const MAX_ABORT_EVIDENCE = 16 * 1024;
const CODE_RE = /^[A-Za-z]{1,64}$/;
const REASON_RE = /^[a-z][a-z-]{0,63}$/;
const ROUND_RE = /^[a-z][a-z0-9-]*(\.[a-z0-9-]+)*$/;

/** The round name of a protocol's abort. */
export const abortRound = (protocol: ProtocolKind): string => `${protocol}.abort`;

/** Errors made from a received abort: the runner never answers one with an abort of its own. */
const received = new WeakSet<object>();

export function isReceivedAbort(e: unknown): boolean {
  return typeof e === 'object' && e !== null && received.has(e);
}

/** The abort envelope of `scope` for the error `err` this member failed with. */
export function abortEnvelope(scope: AbortScope, err: unknown): Envelope<Record<string, unknown>> {
  const members = new Set(scope.members.map((m) => m.nodeId));
  const code = isKmsError(err) ? err.code : 'Internal';
  const culprits = (isKmsError(err) ? err.culprits : [])
    .filter((b) => members.has(b.participant))
    .slice(0, members.size)
    .map((b) => ({
      participant: b.participant,
      reason: b.reason,
      ...(b.round !== undefined && ROUND_RE.test(b.round) && b.round.length <= 64 ? { round: b.round } : {}),
      ...(b.evidence !== undefined && b.evidence.length <= MAX_ABORT_EVIDENCE
        ? { evidence: b.evidence }
        : {}),
    }));
  return {
    header: {
      version: 1,
      protocol: scope.protocol,
      keySpec: scope.keySpec,
      keyId: scope.keyId as KeyId,
      sessionId: scope.sessionId as SessionId,
      epoch: scope.epoch as Epoch,
      round: abortRound(scope.protocol),
      from: scope.self.participant,
      to: '*',
    },
    body: { code, culprits },
  };
}

/**
 * Reads an abort body strictly (DecodeError naming the field): a code, and at most one culprit per
 * member, each a member's node id with a reason, maybe a round and bounded evidence.
 */
export function readAbort(body: Record<string, unknown>, members: ReadonlySet<string>): AbortBody {
  for (const k of Object.keys(body)) {
    if (k !== 'code' && k !== 'culprits') throw new DecodeError('DecodeError', `body: unknown field ${k}`);
  }
  const code = readString(body, 'code', 64);
  if (!CODE_RE.test(code)) throw new DecodeError('DecodeError', 'body.code: must be an error code');
  const list = body.culprits;
  if (!Array.isArray(list) || list.length > members.size) {
    throw new DecodeError('DecodeError', `body.culprits: must be an array of at most ${members.size}`);
  }
  const culprits = list.map((c, i): Blame => {
    const at = `body.culprits[${i}]`;
    if (c === null || typeof c !== 'object' || Array.isArray(c) || c instanceof Uint8Array)
      throw new DecodeError('DecodeError', `${at}: must be a map`);
    const r = c as Record<string, unknown>;
    for (const k of Object.keys(r)) {
      if (!['participant', 'reason', 'round', 'evidence'].includes(k))
        throw new DecodeError('DecodeError', `${at}: unknown field ${k}`);
    }
    const participant = readString(r, 'participant', 128);
    if (!members.has(participant)) throw new DecodeError('DecodeError', `${at}.participant: not a member`);
    const reason = readString(r, 'reason', 64);
    if (!REASON_RE.test(reason)) throw new DecodeError('DecodeError', `${at}.reason: not a blame reason`);
    const round = 'round' in r ? readString(r, 'round', 64) : undefined;
    if (round !== undefined && !ROUND_RE.test(round))
      throw new DecodeError('DecodeError', `${at}.round: not a round name`);
    const evidence = 'evidence' in r ? readString(r, 'evidence', MAX_ABORT_EVIDENCE) : undefined;
    return {
      participant,
      reason: reason as BlameReason,
      ...(round !== undefined ? { round } : {}),
      ...(evidence !== undefined ? { evidence } : {}),
    };
  });
  return { code, culprits };
}

/**
 * The error a member's session ends with when `fromNodeId` aborted it: that node named `aborted`,
 * with the signed abort as evidence (header fields, code, digest and signature: enough for anyone
 * holding the cluster file to check that this node said so). `own` are culprits this member names
 * itself (its deadline view when the sender's own deadline passed: the session stalled everywhere).
 */
export function abortedError(
  fromNodeId: string,
  env: Envelope<Record<string, unknown>>,
  abort: AbortBody,
  own: readonly Blame[] = [],
): ProtocolError {
  const h = env.header;
  const evidence = evidenceString({
    sessionId: h.sessionId,
    round: h.round,
    epoch: h.epoch,
    code: abort.code,
    digest: envelopeDigest(encodeEnvelope(env)),
    ...(env.signature ? { signature: env.signature } : {}),
  });
  const err = new ProtocolError(
    abort.code === 'Timeout' ? 'Timeout' : 'ProtocolAborted',
    `session ${h.sessionId} aborted by ${fromNodeId} (${abort.code})`,
    {
      culprits: [{ participant: fromNodeId, reason: 'aborted', round: h.round, evidence }, ...own],
      details: {
        abortedBy: fromNodeId,
        abortCode: abort.code,
        ...(abort.culprits.length > 0 ? { abortCulprits: abort.culprits } : {}),
      },
    },
  );
  received.add(err);
  return err;
}
