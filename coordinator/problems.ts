/**
 * Errors on the HTTP API: every failure becomes an RFC 9457 `application/problem+json` document
 * `{type, title, status, detail, code, culprits?}` with the stable KmsError `code`.
 * Only KmsError messages reach `detail` (they carry public data by contract); anything else is a
 * 500 `Internal` with a fixed text, so no stack trace, library message or secret leaks.
 */
import type { Blame, ErrorCode } from '../protocol/errors.ts';
import { isKmsError, KmsError } from '../protocol/errors.ts';

export const PROBLEM_CONTENT_TYPE = 'application/problem+json';

/** HTTP status and title for every code (RFC 9110 §15 status semantics). */
const STATUS: Record<ErrorCode, [number, string]> = {
  ValidationError: [400, 'Invalid request'],
  DecodeError: [400, 'Undecodable value'],
  MessageTooLarge: [413, 'Request too large'],
  UnsupportedVersion: [400, 'Unsupported version'],
  InvalidElement: [400, 'Invalid group element'],
  InvalidScalar: [400, 'Invalid scalar'],
  InvalidIdentifier: [400, 'Invalid identifier'],
  ContextMismatch: [400, 'Context mismatch'],
  DuplicateMessage: [409, 'Duplicate message'],
  // A node misbehaved: the coordinator acted as a gateway to a faulty upstream (RFC 9110 §15.6.3).
  ParticipantMisbehaved: [502, 'Participant misbehaved'],
  ProtocolAborted: [502, 'Protocol aborted'],
  NonceReused: [502, 'Nonce reused'],
  EpochMismatch: [409, 'Epoch mismatch'],
  InvalidSignature: [400, 'Invalid signature'],
  KeyNotFound: [404, 'Key not found'],
  AliasExists: [409, 'Alias already exists'],
  InvalidKeyState: [409, 'Operation not allowed in the key state'],
  QuorumUnavailable: [503, 'Quorum unavailable'],
  Timeout: [504, 'Timeout'],
  Conflict: [409, 'Conflict'],
  NotFound: [404, 'Not found'],
  Unauthorized: [401, 'Unauthorized'],
  Forbidden: [403, 'Forbidden'],
  PolicyDenied: [403, 'Denied by policy'],
  ApprovalExpired: [410, 'Approval request expired'],
  PeerNotAllowed: [403, 'Peer not allowed'],
  IdempotencyKeyMismatch: [422, 'Idempotency-Key reused with a different request'],
  UnsupportedMediaType: [415, 'Unsupported media type'],
  NotAcceptable: [406, 'Not acceptable'],
  SealError: [500, 'Seal error'],
  SealerUnavailable: [503, 'Sealer unavailable'],
  StorageError: [503, 'Storage error'],
  StoreLocked: [503, 'Store locked'],
  AuditWriteFailed: [503, 'Audit record could not be written'],
  Overloaded: [503, 'Overloaded'],
  TransportError: [502, 'Node transport error'],
  Internal: [500, 'Internal error'],
};

/** Seconds a client should wait before retrying a 503 that is expected to clear (RFC 9110 §10.2.3). */
export const RETRY_AFTER_SECONDS = 5;

export type Problem = {
  type: string;
  title: string;
  status: number;
  detail: string;
  code: ErrorCode;
  culprits?: Blame[];
};

export function statusOf(code: ErrorCode): number {
  return STATUS[code]?.[0] ?? 500;
}

export function problemType(code: ErrorCode): string {
  return `urn:threshold-kms:problem:${code}`;
}

export function problemOf(err: unknown): Problem {
  if (!isKmsError(err)) {
    return {
      type: problemType('Internal'),
      title: STATUS.Internal[1],
      status: 500,
      detail: 'internal error',
      code: 'Internal',
    };
  }
  const [status, title] = STATUS[err.code] ?? [500, 'Internal error'];
  const p: Problem = { type: problemType(err.code), title, status, detail: err.message, code: err.code };
  if (err.culprits.length > 0) {
    p.culprits = err.culprits.map((b) => {
      const c: Blame = { participant: b.participant, reason: b.reason };
      return {
        ...c,
        ...(b.round === undefined ? {} : { round: b.round }),
        ...(b.evidence === undefined ? {} : { evidence: b.evidence }),
      };
    });
  }
  return p;
}

type FastifyLikeError = {
  code?: unknown;
  statusCode?: unknown;
  validation?: readonly { instancePath?: string; keyword?: string; message?: string; params?: unknown }[];
  validationContext?: string;
};

/**
 * Translates the errors fastify raises before a handler runs (schema validation, content-type
 * parsing, JSON syntax, prototype poisoning, body limit) into KmsErrors. Messages are rebuilt from
 * known parts, never copied from a library, so they cannot echo request bytes unbounded.
 */
export function fromFastifyError(err: unknown): KmsError {
  if (isKmsError(err)) return err;
  const e = (typeof err === 'object' && err !== null ? err : {}) as FastifyLikeError;
  if (Array.isArray(e.validation) && e.validation.length > 0) {
    const v = e.validation[0]!;
    const where = `${e.validationContext ?? 'request'}${v.instancePath ?? ''}`;
    if (v.keyword === 'maxLength' && /\/message$/.test(v.instancePath ?? '')) {
      return new KmsError('MessageTooLarge', `${where} is longer than the limit`);
    }
    if (v.keyword === 'additionalProperties') {
      const extra = (v.params as { additionalProperty?: unknown } | undefined)?.additionalProperty;
      const name = typeof extra === 'string' ? JSON.stringify(extra.slice(0, 64)) : 'field';
      return new KmsError('ValidationError', `${where}: unknown field ${name}`);
    }
    return new KmsError('ValidationError', `${where} ${String(v.message ?? 'is invalid').slice(0, 200)}`);
  }
  const code = typeof e.code === 'string' ? e.code : '';
  switch (code) {
    case 'FST_ERR_CTP_BODY_TOO_LARGE':
      return new KmsError('MessageTooLarge', 'request body is larger than the limit');
    case 'FST_ERR_CTP_INVALID_MEDIA_TYPE':
    case 'FST_ERR_CTP_INVALID_CONTENT_LENGTH':
      return new KmsError('UnsupportedMediaType', 'send the body as application/json');
    case 'FST_ERR_CTP_EMPTY_JSON_BODY':
      return new KmsError('ValidationError', 'body must be a JSON object, not empty');
    case 'FST_ERR_CTP_INVALID_JSON_BODY':
      return new KmsError('ValidationError', 'body is not valid JSON');
    case 'FST_ERR_BAD_URL':
      return new KmsError('ValidationError', 'the URL is not valid percent-encoded UTF-8');
  }
  const status = typeof e.statusCode === 'number' ? e.statusCode : 500;
  if (err instanceof SyntaxError || status === 400) {
    // JSON syntax errors and secure-json-parse's __proto__ / constructor.prototype rejection.
    return new KmsError('ValidationError', 'body is not acceptable JSON');
  }
  if (status === 413) return new KmsError('MessageTooLarge', 'request body is larger than the limit');
  if (status === 415) return new KmsError('UnsupportedMediaType', 'send the body as application/json');
  if (status === 404) return new KmsError('NotFound', 'no such route');
  if (status >= 400 && status < 500) return new KmsError('ValidationError', 'request rejected');
  return new KmsError('Internal', 'internal error', { cause: err });
}
