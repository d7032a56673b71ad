/**
 * Signed operations (issue "Nodes decide"): sign, create, refresh, reshare, repair and the state
 * changes run only on a principal's RFC 9421 signature, which the coordinator forwards to the nodes
 * as it was signed. An operation the nodes refuse only for missing approvals answers `202` with an
 * approval request (coordinator/approval-requests.ts); when its approvals are in, the same signed
 * request runs again with them attached, and the request records the result.
 */
import { randomUUID } from 'node:crypto';
import type { FastifyReply, FastifyRequest } from 'fastify';
import { KmsError, StateError } from '../../protocol/errors.ts';
import type { Operation } from '../../policy/policy-rule.ts';
import { requestDigest, type SignedRequestWire } from '../../net/signed-request.ts';
import { type ApprovalRecord, approvalView } from '../approval-requests.ts';
import { KEY_ID_RE } from '../key-store.ts';
import { isRefusal, type PendingNeeds, pendingNeeds } from '../node-refusal.ts';
import { problemOf } from '../problems.ts';
import { PENDING_APPROVAL_TTL_S } from '../../policy/approvals.ts';
import { signatureParam } from '../signed-api.ts';
import { type AppContext, callerEntry, type OpRequest, plain } from './context.ts';

/**
 * Signed requests name keys by key id: the signature covers the path, and an alias may point at
 * another key by the time a node sees it. An alias is refused, saying how to find the key id.
 */
export async function requireKeyId(ctx: AppContext, keyIdOrAlias: string): Promise<string> {
  if (KEY_ID_RE.test(keyIdOrAlias)) return keyIdOrAlias;
  const rec = await ctx.keys.resolve(keyIdOrAlias).catch(() => undefined);
  if (!rec) throw new StateError('KeyNotFound', `key ${JSON.stringify(keyIdOrAlias)} not found`);
  throw new KmsError(
    'ValidationError',
    `signed requests name keys by key id, not by alias (${JSON.stringify(keyIdOrAlias)}): ` +
      `sign the path with the key id (GET /v1/keys/${keyIdOrAlias} shows it)`,
  );
}

/** The nodes that refused an operation, for its audit record (their decision, not a fault). */
function noteRefusal(r: OpRequest, e: unknown): void {
  if (!isRefusal(e)) return;
  const by = e.details?.['refusedBy'];
  if (Array.isArray(by)) r.audit.refusedBy = by as string[];
}

/**
 * The route handler of a signed operation: key id check, then the operation; a refusal by the
 * nodes that only lacks approvals opens an approval request and answers 202 with it.
 */
export async function runSigned(
  ctx: AppContext,
  req: FastifyRequest,
  reply: FastifyReply,
  op: Operation,
  params: { keyId?: string },
  body: unknown,
): Promise<unknown> {
  if (params.keyId !== undefined) req.audit.keyId = await requireKeyId(ctx, params.keyId);
  const runner = ctx.operations.get(op);
  if (!runner) throw new KmsError('Internal', `no runner for ${op}`);
  try {
    const out = await runner(req, params, body);
    return reply.code(out.status).send(out.body);
  } catch (e) {
    noteRefusal(req, e);
    const needs = pendingNeeds(e);
    if (!needs || !req.auth || req.principal === null) throw e;
    const rec = await openApproval(ctx, req.auth.request, req.principal, op, req.audit.keyId ?? null, needs);
    if ((op === 'Sign' || op === 'SignPsbt') && req.audit.keyId && ctx.cluster.reviewSign) {
      // Every committee member, not only the signers asked, keeps the request approvable.
      const info = (await ctx.keys.resolve(req.audit.keyId).catch(() => undefined))?.epochInfo;
      if (info) await ctx.cluster.reviewSign({ key: info, auth: { request: req.auth.request } });
    }
    req.audit.approvalRequestId = rec.requestId;
    return reply.code(202).header('location', `/v1/requests/${rec.requestId}`).send(approvalView(rec));
  }
}

async function openApproval(
  ctx: AppContext,
  wire: SignedRequestWire,
  initiator: string,
  operation: Operation,
  keyId: string | null,
  needs: PendingNeeds,
): Promise<ApprovalRecord> {
  const now = ctx.clock.now();
  // Every node that refused the request as pending verifies the initiator's signature again at the
  // time it first saw it, for PENDING_APPROVAL_TTL_S (policy/approvals.ts): no longer than that.
  const approvable = (signatureParam(wire, 'created') ?? now / 1000) * 1000 + PENDING_APPROVAL_TTL_S * 1000;
  const rec: ApprovalRecord = {
    requestId: randomUUID(),
    operation,
    keyId,
    digest: requestDigest(wire),
    initiator,
    state: 'Pending',
    createdAt: new Date(now).toISOString(),
    expiresAt: new Date(Math.min(now + ctx.approvals.limits.ttlMs, approvable)).toISOString(),
    approvals: [],
    needed: needs.map((n) => ({ group: n.group, needed: n.needed, have: [...n.have] })),
    signedRequest: wire,
    approvalRequests: [],
  };
  await ctx.approvals.create(rec);
  return rec;
}

/**
 * What is still missing once `approvers` approved, by the groups the nodes named: distinct members
 * of each group, not the initiator unless the nodes counted it already (the admin-quorum guard of
 * key events counts an initiating admin: policy/evaluate.ts). The nodes decide; this only says when
 * to ask them again.
 */
function recount(
  ctx: AppContext,
  rec: ApprovalRecord,
  approvers: readonly string[],
): { needed: PendingNeeds; counted: Set<string> } {
  const groups = ctx.governance.current()?.document.groups ?? {};
  const counted = new Set<string>();
  const needed = rec.needed.map((n) => {
    const members = new Set(groups[n.group] ?? []);
    const initiatorCounts = n.have.includes(rec.initiator);
    const others = [...new Set(approvers)].filter((a) => a !== rec.initiator && members.has(a));
    const have = [...(initiatorCounts ? [rec.initiator] : []), ...others].sort();
    for (const h of have) counted.add(h);
    return { group: n.group, needed: n.needed, have };
  });
  return { needed, counted };
}

/**
 * Adds `principal`'s signed approval to the request; when every group has its count, runs the
 * operation again with all approvals attached and records its result or error. One approval per
 * principal (a later one replaces an earlier). Runs under the request's own lock.
 */
export async function approve(
  ctx: AppContext,
  requestId: string,
  approval: { principal: string; wire: SignedRequestWire; requestDigest: string },
  log: OpRequest['log'],
): Promise<ApprovalRecord> {
  return ctx.queue.run(`approval-request/${requestId}`, async () => {
    const rec = await ctx.approvals.get(requestId);
    if (rec.state === 'Expired') {
      throw new KmsError(
        'ApprovalExpired',
        `request ${requestId} expired at ${rec.expiresAt} without its approvals`,
      );
    }
    if (rec.state !== 'Pending')
      throw new KmsError('Conflict', `request ${requestId} is already ${rec.state}`);
    if (approval.requestDigest !== rec.digest) {
      throw new KmsError('ValidationError', `requestDigest does not name request ${requestId}`);
    }
    const time = new Date(ctx.clock.now()).toISOString();
    const others = rec.approvals.filter((a) => a.principal !== approval.principal);
    const wires = [
      ...rec.approvalRequests.filter((_, i) => rec.approvals[i]?.principal !== approval.principal),
      approval.wire,
    ];
    if (!ctx.governance.current()) await ctx.governance.read();
    const principals = [...others.map((a) => a.principal), approval.principal];
    const { needed, counted } = recount(ctx, rec, principals);
    let next: ApprovalRecord = {
      ...rec,
      approvals: [...others, { principal: approval.principal, approvedAt: time, counts: false }].map((a) => ({
        ...a,
        counts: counted.has(a.principal),
      })),
      approvalRequests: wires,
      needed,
    };
    if (needed.every((n) => n.have.length >= n.needed)) next = await execute(ctx, next, log);
    await ctx.approvals.put(next);
    return next;
  });
}

/** Runs an approved request with its approvals attached; the record carries the outcome. */
async function execute(ctx: AppContext, rec: ApprovalRecord, log: OpRequest['log']): Promise<ApprovalRecord> {
  const runner = ctx.operations.get(rec.operation);
  if (!runner) throw new KmsError('Internal', `no runner for ${rec.operation}`);
  const raw = Buffer.from(rec.signedRequest.body, 'base64');
  const body = raw.length === 0 ? {} : JSON.parse(raw.toString('utf8'));
  const r: OpRequest = {
    id: randomUUID(),
    audit: {
      action: rec.operation,
      approvalRequestId: rec.requestId,
      requestDigest: rec.digest,
      approvers: rec.approvals.filter((a) => a.counts).map((a) => a.principal),
      ...(rec.keyId === null ? {} : { keyId: rec.keyId }),
    },
    caller: null,
    principal: rec.initiator,
    auth: { request: rec.signedRequest, approvals: [...rec.approvalRequests] },
    log,
  };
  const finishedAt = new Date(ctx.clock.now()).toISOString();
  let status: number;
  let outcome: ApprovalRecord;
  try {
    const out = await runner(r, rec.keyId === null ? {} : { keyId: rec.keyId }, body);
    status = out.status;
    outcome = { ...rec, state: 'Executed', result: { status: out.status, body: out.body }, finishedAt };
  } catch (e) {
    noteRefusal(r, e);
    const still = pendingNeeds(e);
    const p = problemOf(e);
    status = p.status;
    // The nodes still want approvals (one expired, or the governance changed): keep waiting.
    outcome = still ? { ...rec, needed: still } : { ...rec, state: 'Failed', error: p, finishedAt };
    await auditExecution(ctx, r, rec, status, p.code);
    return outcome;
  }
  await auditExecution(ctx, r, rec, status, undefined);
  return outcome;
}

async function auditExecution(
  ctx: AppContext,
  r: OpRequest,
  rec: ApprovalRecord,
  status: number,
  code: string | undefined,
): Promise<void> {
  const a = r.audit;
  await ctx.audit.append(
    plain({
      type: 'request',
      requestId: r.id,
      method: rec.signedRequest.method,
      route: 'approved request',
      status,
      code,
      caller: callerEntry(null, rec.initiator),
      action: a.action,
      keyId: a.keyId,
      epoch: a.epoch,
      participants: a.participants ? [...a.participants] : undefined,
      signers: a.signers ? [...a.signers] : undefined,
      culprits: a.culprits?.map((b) =>
        plain({ participant: b.participant, reason: b.reason, round: b.round }),
      ),
      messageSha256: a.messageSha256,
      requestDigest: a.requestDigest,
      approvers: a.approvers ? [...a.approvers] : undefined,
      approvalRequestId: a.approvalRequestId,
      refusedBy: a.refusedBy ? [...a.refusedBy] : undefined,
    }),
  );
}
