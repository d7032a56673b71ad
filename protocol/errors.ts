/**
 * One error hierarchy for the whole service. Every error carries a stable `code` that the HTTP API
 * maps to an RFC 9457 problem, and, where the protocol can prove it, the culprits (participant ids)
 * with evidence. Messages never contain secret material: callers pass public data only.
 */

export type ErrorCode =
  // input and wire format
  | 'ValidationError'
  | 'DecodeError'
  | 'MessageTooLarge'
  | 'UnsupportedVersion'
  | 'InvalidElement'
  | 'InvalidScalar'
  | 'InvalidIdentifier'
  | 'ContextMismatch'
  | 'DuplicateMessage'
  // protocol outcomes
  | 'ParticipantMisbehaved'
  | 'ProtocolAborted'
  | 'NonceReused'
  | 'EpochMismatch'
  | 'InvalidSignature'
  // key service
  | 'KeyNotFound'
  | 'AliasExists'
  | 'InvalidKeyState'
  | 'QuorumUnavailable'
  | 'Timeout'
  | 'Conflict'
  | 'NotFound'
  | 'Unauthorized'
  | 'Forbidden'
  // policy (policy/): a signed request the policy refuses; an approval request past its expiry
  | 'PolicyDenied'
  | 'ApprovalExpired'
  | 'PeerNotAllowed'
  // peer transport (node/transport.ts)
  | 'TransportError'
  | 'Overloaded'
  | 'IdempotencyKeyMismatch'
  | 'UnsupportedMediaType'
  | 'NotAcceptable'
  // local infrastructure
  | 'SealError'
  | 'SealerUnavailable'
  | 'StorageError'
  | 'StoreLocked'
  | 'AuditWriteFailed'
  | 'Internal';

/** Evidence against one participant: what it did, in which round, and the public bytes that prove it. */
export type Blame = {
  readonly participant: string;
  readonly reason: BlameReason;
  readonly round?: string;
  /** Public evidence (hex of the offending message or value). Never secret material. */
  readonly evidence?: string;
};

export type BlameReason =
  | 'bad-proof-of-knowledge'
  | 'bad-share'
  | 'equivocation'
  | 'wrong-vector-length'
  | 'invalid-element'
  | 'invalid-scalar'
  | 'invalid-signature-share'
  | 'wrong-group-key'
  | 'bad-confirmation'
  | 'malformed-message'
  | 'spoofed-sender'
  | 'unresponsive'
  // The member stopped the session itself and told the others with a signed abort
  // (node/session-abort.ts); the evidence is that abort's digest and signature.
  | 'aborted';

export class KmsError extends Error {
  readonly code: ErrorCode;
  readonly culprits: readonly Blame[];
  readonly details: Readonly<Record<string, unknown>> | undefined;

  constructor(
    code: ErrorCode,
    message: string,
    opts: { culprits?: readonly Blame[]; details?: Record<string, unknown>; cause?: unknown } = {},
  ) {
    super(message, opts.cause === undefined ? undefined : { cause: opts.cause });
    this.name = new.target.name;
    this.code = code;
    this.culprits = opts.culprits ?? [];
    this.details = opts.details;
  }

  toJSON(): Record<string, unknown> {
    return { code: this.code, message: this.message, culprits: this.culprits, details: this.details };
  }
}

/** Wire or input bytes that do not decode to a valid value (RFC 9591 §6: strict deserialization). */
export class DecodeError extends KmsError {}

/** A protocol run that had to stop; `culprits` names who is to blame when it is provable. */
export class ProtocolError extends KmsError {}

/** A request that is well-formed but not allowed in the current state. */
export class StateError extends KmsError {}

/** HSM, sealing and storage failures. Always fail closed. */
export class InfraError extends KmsError {}

export function isKmsError(e: unknown): e is KmsError {
  return e instanceof KmsError;
}

/** Wraps anything thrown by a library (TypeError, RangeError, noble's Error) into a typed error. */
export function asKmsError(e: unknown, code: ErrorCode, message: string): KmsError {
  if (e instanceof KmsError) return e;
  return new KmsError(code, message, { cause: e });
}

export function misbehaved(
  message: string,
  culprits: readonly Blame[],
  details?: Record<string, unknown>,
): ProtocolError {
  return new ProtocolError('ParticipantMisbehaved', message, details ? { culprits, details } : { culprits });
}
