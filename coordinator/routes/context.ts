/**
 * What every route module receives: the stores, the cluster, the per-key queue and the audit log,
 * plus the per-request audit facts (`request.audit`) that the app's onSend hook writes before the
 * answer leaves.
 */
import type { FastifyInstance } from 'fastify';
import type { Logger } from 'pino';
import type { AuditLog } from '../../common/audit-log.ts';
import type { AuthorizationWire } from '../../net/signed-request.ts';
import type { Operation } from '../../policy/policy-rule.ts';
import type { ApprovalStore } from '../approval-requests.ts';
import type { AuthFailureLog } from '../auth-failures.ts';
import type { GovernanceView } from '../governance.ts';
import { KmsError, StateError } from '../../protocol/errors.ts';
import type { Blame } from '../../protocol/errors.ts';
import { nodeIndex } from '../../protocol/ids.ts';
import type { Caller, Permission } from '../auth.ts';
import { canSeeKey, type TokenStore } from '../auth.ts';
import type { Cluster, NodeStatus } from '../cluster.ts';
import type { CoordinatorConfig } from '../config.ts';
import type { IdempotencyBegin, IdempotencyStore } from '../idempotency.ts';
import type { KeyedQueue } from '../key-queue.ts';
import type { KeyRecord, KeyStore } from '../key-store.ts';
import type { Clock, KeyOperation } from '../lifecycle.ts';
import { transition } from '../lifecycle.ts';
import type { CoordinatorMetrics } from '../metrics.ts';
import type { Problem } from '../problems.ts';

/** The fastify instance type the route modules accept (any server/logger flavour). */
export type KmsApp = FastifyInstance<any, any, any, any, any>;

export type AppContext = {
  readonly config: CoordinatorConfig;
  readonly cluster: Cluster;
  readonly keys: KeyStore;
  readonly tokens: TokenStore;
  readonly idempotency: IdempotencyStore;
  readonly audit: AuditLog;
  readonly queue: KeyedQueue;
  readonly metrics: CoordinatorMetrics;
  readonly clock: Clock;
  readonly log: Logger;
  /** The governance as the nodes hold it (installs the genesis, relays versions, reads them back). */
  readonly governance: GovernanceView;
  /** Requests waiting for approvals. */
  readonly approvals: ApprovalStore;
  /** The signed operations by name: routes register them, approved requests are run by them. */
  readonly operations: Map<Operation, OpRunner>;
  /** Unauthenticated failures, aggregated per source and minute (M-3). */
  readonly authFailures: AuthFailureLog;
  /** Whether the key store is open (for /readyz). */
  storeOpen(): boolean;
};

/**
 * What an operation needs of the request that asks for it: the route passes the fastify request
 * (which has these fields); an approved request is run again from its stored signed request.
 */
export type OpRequest = {
  readonly id: string;
  readonly audit: RequestAudit;
  readonly caller: Caller | null;
  /** The principal whose signature the request carries (signed operations). */
  readonly principal: string | null;
  /** The signed request and its approvals, forwarded to the nodes as they were signed. */
  readonly auth: AuthorizationWire | null;
  readonly log: Pick<Logger, 'debug' | 'info' | 'warn'>;
};

/** A signed operation: its answer's status and body. */
export type OpRunner = (
  r: OpRequest,
  params: { keyId?: string },
  body: any,
) => Promise<{ status: number; body: unknown }>;

/** Facts about one request gathered by handlers, written to the audit log by the onSend hook. */
export type RequestAudit = {
  action?: string;
  keyId?: string;
  epoch?: number;
  participants?: readonly string[];
  signers?: readonly string[];
  culprits?: readonly Blame[];
  /** Sign: SHA-256 of the message, hex (the message itself is never logged). */
  messageSha256?: string;
  /** The signed request's digest (net/signed-request.ts requestDigest) and its approvers. */
  requestDigest?: string;
  approvers?: readonly string[];
  /** The approval request this operation ran for (coordinator/approval-requests.ts). */
  approvalRequestId?: string;
  /** Nodes that refused it (their decision: PolicyDenied, Unauthorized). */
  refusedBy?: readonly string[];
};

/** Routes authenticated by a principal's RFC 9421 signature instead of a bearer token. */
export type SignedAction = Operation | 'ApproveRequest' | 'UpdateGovernance';

export type RouteConfig = {
  /** Needed permission (bearer-token routes); absent on public and signed routes. */
  permission?: Permission;
  /** Signed routes: the action the principal's signature authorizes (no bearer token can). */
  signed?: SignedAction;
  /** Public routes skip authentication and the audit log (health probes, metrics, OpenAPI). */
  public?: boolean;
  /** Audit `action` name. */
  action?: string;
};

declare module 'fastify' {
  interface FastifyContextConfig {
    permission?: Permission;
    signed?: SignedAction;
    public?: boolean;
    action?: string;
  }
  interface FastifyRequest {
    caller: Caller | null;
    /** Signed routes: the verified principal. */
    principal: string | null;
    /** Signed routes: what the principal signed, as the nodes will get it. */
    auth: AuthorizationWire | null;
    /** The body's bytes exactly as received (what a Content-Digest covers). */
    rawBody: Buffer | null;
    audit: RequestAudit;
    problem: Problem | null;
    idempotency: Extract<IdempotencyBegin, { kind: 'new' }> | null;
    /** What an idempotent replay should return instead of the real body (secrets shown once). */
    idempotencyOverride: { status: number; contentType: string; body: string } | null;
    replayed: boolean;
  }
}

export function callerOf(req: Pick<OpRequest, 'caller'>): Caller {
  if (!req.caller) throw new KmsError('Unauthorized', 'a bearer token is required');
  return req.caller;
}

/** Caller summary for audit entries: never the token. A signed request's principal. */
export function callerEntry(
  c: Caller | null,
  principal: string | null = null,
): Record<string, unknown> | null {
  if (principal !== null) return { principal };
  return c ? { tokenId: c.tokenId, name: c.name, role: c.role } : null;
}

/** Drops undefined fields: audit entries must be plain JSON. */
export function plain(o: Record<string, unknown>): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(o)) if (v !== undefined) out[k] = v;
  return out;
}

/**
 * Resolves a key the caller may see; a key outside a signer's list is KeyNotFound, as if absent.
 * `shared`: the store's frozen record, not a copy (read-only callers: KeyStore.view).
 */
export async function visibleKey(
  ctx: AppContext,
  req: OpRequest,
  keyIdOrAlias: string,
  shared = false,
): Promise<KeyRecord> {
  const rec = await ctx.keys.resolve(keyIdOrAlias, shared);
  // Bearer tokens limited to keys; a signed request is the nodes' to decide.
  if (req.principal === null && !canSeeKey(callerOf(req), rec.keyId)) {
    throw new StateError('KeyNotFound', `key ${JSON.stringify(keyIdOrAlias)} not found`);
  }
  req.audit.keyId = rec.keyId;
  return rec;
}

/**
 * Runs `fn` under the key's lock (shared for `sign`, exclusive otherwise) after re-reading the record there (another operation may have
 * changed it while this one waited) and checking the lifecycle table for `op`. A `sign` gets the
 * store's frozen record (no copy per request): it must not change it.
 */
export async function underKey<T>(
  ctx: AppContext,
  req: OpRequest,
  keyIdOrAlias: string,
  op: KeyOperation,
  fn: (rec: KeyRecord) => Promise<T>,
): Promise<T> {
  const shared = op === 'sign';
  const first = await visibleKey(ctx, req, keyIdOrAlias, shared);
  // Signs share the key's lock (they may overlap); every other operation holds it alone.
  return ctx.queue.run(
    first.keyId,
    async () => {
      const rec = await (shared ? ctx.keys.view(first.keyId) : ctx.keys.get(first.keyId));
      if (!rec) throw new StateError('KeyNotFound', `key ${JSON.stringify(keyIdOrAlias)} not found`);
      transition(rec.state, op);
      if (rec.epochInfo) {
        req.audit.epoch = rec.epochInfo.epoch;
        req.audit.participants = rec.epochInfo.participants;
      }
      return fn(rec);
    },
    op === 'sign' ? 'shared' : 'exclusive',
  );
}

/**
 * Audits the decision to run a state-changing operation; throws AuditWriteFailed before any change.
 * `defer` (AuditLog.append): chained at once, written with the request's own record.
 */
export async function auditDecision(
  ctx: AppContext,
  req: OpRequest,
  extra: Record<string, unknown> = {},
  opts: { defer?: boolean } = {},
): Promise<void> {
  await ctx.audit.append(
    plain({
      type: 'decision',
      decision: 'allow',
      requestId: req.id,
      action: req.audit.action,
      caller: callerEntry(req.caller, req.principal),
      keyId: req.audit.keyId,
      epoch: req.audit.epoch,
      participants: req.audit.participants,
      messageSha256: req.audit.messageSha256,
      requestDigest: req.audit.requestDigest,
      approvers: req.audit.approvers ? [...req.audit.approvers] : undefined,
      approvalRequestId: req.audit.approvalRequestId,
      ...extra,
    }),
    opts,
  );
}

/**
 * The committee for a new key or a reshare: a list of node ids (each must be configured), or a
 * count (that many reachable nodes, preferring `prefer`), or by default every configured node.
 */
export async function chooseParticipants(
  ctx: AppContext,
  spec: number | readonly string[] | undefined,
  fallback: readonly string[] | null,
  prefer: readonly string[] = [],
): Promise<string[]> {
  if (spec === undefined && fallback !== null) return [...fallback];
  const byIndex = (a: string, b: string) => (nodeIndex(a) ?? 0) - (nodeIndex(b) ?? 0);
  if (typeof spec !== 'number') {
    // Named or all: the configured ids decide, no probe (issue 17: a status round to every node,
    // each listing its keys, used to precede every DKG and reshare).
    const known = new Set(ctx.cluster.nodeIds());
    if (spec === undefined) return [...known].sort(byIndex);
    for (const id of spec) {
      if (!known.has(id))
        throw new KmsError('ValidationError', `participants: unknown node ${JSON.stringify(id)}`);
    }
    return [...spec].sort(byIndex);
  }
  const nodes: NodeStatus[] = await ctx.cluster.nodes();
  if (spec > nodes.length) {
    throw new KmsError(
      'ValidationError',
      `participants: ${spec} requested but only ${nodes.length} nodes are configured`,
    );
  }
  const reachable = nodes.filter((n) => n.reachable).map((n) => n.id);
  const ordered = [
    ...reachable.filter((id) => prefer.includes(id)).sort(byIndex),
    ...reachable.filter((id) => !prefer.includes(id)).sort(byIndex),
  ];
  if (ordered.length < spec) {
    throw new KmsError(
      'QuorumUnavailable',
      `participants: ${spec} requested but only ${ordered.length} nodes are reachable`,
    );
  }
  return ordered.slice(0, spec).sort(byIndex);
}
