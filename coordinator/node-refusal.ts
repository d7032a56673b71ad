/**
 * Nodes refuse a client-signed operation themselves (issue "Nodes decide"): `Unauthorized` for a
 * missing, bad, expired or replayed signature, `PolicyDenied` when their governance does not allow
 * it (with `details.pending` and `needs` when only approvals are missing). Such a refusal is the
 * nodes' decision, never a fault of theirs: the coordinator reports it to the client as it is and
 * names no culprit. Honest nodes decide alike; when they do not, a plain refusal wins over a
 * pending one (approvals cannot satisfy a node that denies).
 */
import { isKmsError, KmsError } from '../protocol/errors.ts';

export type PendingNeeds = { group: string; needed: number; have: string[] }[];

/** Whether a node's error is its refusal of the signed request (not a fault or a failure). */
export function isRefusal(e: unknown): e is KmsError {
  return isKmsError(e) && (e.code === 'Unauthorized' || e.code === 'PolicyDenied');
}

/** The approvals still missing when `e` is a node's "pending" refusal. */
export function pendingNeeds(e: unknown): PendingNeeds | undefined {
  if (!isKmsError(e) || e.code !== 'PolicyDenied' || e.details?.['pending'] !== true) return undefined;
  const needs = e.details['needs'];
  return Array.isArray(needs) ? (needs as PendingNeeds) : undefined;
}

/**
 * The client's answer for refusals by `refusals` nodes of `what`: the code and message of a plain
 * refusal if any node gave one, else the pending refusal with its needs; the nodes are listed.
 */
export function refusalError(what: string, refusals: readonly { node: string; err: KmsError }[]): KmsError {
  const plain = refusals.find((r) => pendingNeeds(r.err) === undefined);
  const pick = plain ?? refusals[0]!;
  const nodes = refusals.map((r) => r.node).sort();
  const needs = plain === undefined ? pendingNeeds(pick.err) : undefined;
  return new KmsError(pick.err.code, `${what} refused by ${nodes.join(', ')}: ${pick.err.message}`, {
    details: { refusedBy: nodes, ...(needs === undefined ? {} : { pending: true, needs }) },
  });
}
