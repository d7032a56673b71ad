/**
 * Approvals of a pending request (Vault control groups, Turnkey consensus, Fireblocks quorums): each
 * approval is itself a client-signed request, `POST /v1/requests/{requestId}/approvals` with body
 * `{"requestDigest": "<hex>"}`, so a node checks every approver's signature itself and learns who
 * approved exactly which request. Invalid or foreign approvals are ignored (and reported), never
 * counted; the evaluator (policy/evaluate.ts) then counts distinct group members, never the initiator.
 */
import { KmsError } from '../protocol/errors.ts';
import type { PrincipalKey } from './principal-key.ts';
import { type SignedRequest, verifyRequest } from './request-signature.ts';

/**
 * How long a request may wait for its approvals (24 h, as Turnkey's approvals): every node keeps
 * the time it first verified a pending request, by digest, this long (node/request-guard.ts), and
 * the coordinator's request objects expire no later.
 */
export const PENDING_APPROVAL_TTL_S = 24 * 3600;

export const APPROVAL_PATH = /^\/v1\/requests\/([A-Za-z0-9_-]{1,128})\/approvals$/;

export type ApprovalCheck = {
  readonly approvers: string[];
  readonly rejected: { index: number; reason: string }[];
};

/** The principals whose signed approvals of `requestDigest` verify (at the verifier's time `nowS`). */
export function verifyApprovals(
  approvals: readonly SignedRequest[],
  requestDigest: string,
  lookup: (principalId: string) => PrincipalKey | undefined,
  nowS: number,
): ApprovalCheck {
  const approvers = new Set<string>();
  const rejected: { index: number; reason: string }[] = [];
  approvals.forEach((a, index) => {
    try {
      if (a.method.toUpperCase() !== 'POST' || !APPROVAL_PATH.test(a.path)) {
        throw new KmsError('Unauthorized', 'not an approval request');
      }
      let body: unknown;
      try {
        body = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(a.body));
      } catch {
        throw new KmsError('ValidationError', 'approval body is not JSON');
      }
      if ((body as { requestDigest?: unknown })?.requestDigest !== requestDigest) {
        throw new KmsError('ValidationError', 'approval names another request');
      }
      approvers.add(verifyRequest(a, lookup, nowS).principal);
    } catch (e) {
      rejected.push({ index, reason: e instanceof Error ? e.message : 'invalid approval' });
    }
  });
  return { approvers: [...approvers].sort(), rejected };
}
