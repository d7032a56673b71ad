/**
 * Requests waiting for approvals (Vault control groups, Fireblocks quorums): an operation the nodes
 * refused with `PolicyDenied {pending: true, needs}` is kept here with the initiator's signed
 * request, exactly as signed; approvers add their signed approvals (policy/approvals.ts); once the
 * policy's quorum is in, the coordinator runs the operation again with the approvals attached and
 * records its result (`Executed`) or error (`Failed`). A request not approved in time is `Expired`.
 * The nodes verify the initiator's and every approver's signature themselves: this store is only
 * the courier's mailbox. Bounded: at most `maxOpen` pending requests, finished ones kept for a
 * retention period and then deleted (oldest first when the store is full).
 */
import type { AbstractLevel } from 'abstract-level';
import { KmsError } from '../protocol/errors.ts';
import type { Operation } from '../policy/policy-rule.ts';
import type { SignedRequestWire } from '../net/signed-request.ts';
import type { PendingNeeds } from './node-refusal.ts';
import type { Problem } from './problems.ts';

export type ApprovalState = 'Pending' | 'Executed' | 'Failed' | 'Expired';
export const APPROVAL_STATES: readonly ApprovalState[] = ['Pending', 'Executed', 'Failed', 'Expired'];

export type ApprovalRecord = {
  readonly requestId: string;
  readonly operation: Operation;
  /** The key the operation names (null for CreateKey). */
  readonly keyId: string | null;
  /** requestDigest of the initiator's signed request: what approvers sign (policy/approvals.ts). */
  readonly digest: string;
  readonly initiator: string;
  readonly state: ApprovalState;
  readonly createdAt: string;
  readonly expiresAt: string;
  /**
   * Approvals received, one per principal (the latest); `counts` whether the policy counts it (a
   * member of a group still needed, never the initiator).
   */
  readonly approvals: readonly { principal: string; approvedAt: string; counts: boolean }[];
  /** What is still missing, per group (the nodes' `needs`, then recounted as approvals arrive). */
  readonly needed: PendingNeeds;
  /** The initiator's signed request as it was signed (also what the approvers approve). */
  readonly signedRequest: SignedRequestWire;
  /** The approvers' signed approvals as they were signed, forwarded to the nodes. */
  readonly approvalRequests: readonly SignedRequestWire[];
  /** Executed: the operation's answer. */
  readonly result?: { readonly status: number; readonly body: unknown };
  /** Failed: the operation's problem document. */
  readonly error?: Problem;
  readonly finishedAt?: string;
};

/** The public view: everything but the approvers' raw signed approvals. */
export function approvalView(r: ApprovalRecord): Record<string, unknown> {
  const { approvalRequests: _a, ...rest } = r;
  return rest;
}

export type ApprovalLimits = {
  /** How long a request waits for its approvals (ms); its initiator's signature may end it sooner. */
  readonly ttlMs: number;
  /** Pending requests at most; more answer 503 Overloaded. */
  readonly maxOpen: number;
  /** How long finished and expired requests stay readable (ms). */
  readonly retentionMs: number;
};

type Db = AbstractLevel<any, string, any>;

/** Records at most (pending + finished): beyond it the oldest finished are deleted first. */
const MAX_RECORDS_FACTOR = 10;

export class ApprovalStore {
  readonly #db: AbstractLevel<any, string, ApprovalRecord>;
  readonly limits: ApprovalLimits;
  readonly #now: () => number;

  constructor(db: Db, limits: ApprovalLimits, now: () => number = Date.now) {
    this.#db = db.sublevel<string, ApprovalRecord>('approval-requests', { valueEncoding: 'json' }) as any;
    this.limits = limits;
    this.#now = now;
  }

  /** The record with `Pending` turned `Expired` once its time is up (persisted). */
  async get(requestId: string): Promise<ApprovalRecord> {
    const r = await storage(() => this.#db.get(requestId));
    if (!r) throw new KmsError('NotFound', `request ${JSON.stringify(requestId)} not found`);
    return this.#expire(r);
  }

  async #expire(r: ApprovalRecord): Promise<ApprovalRecord> {
    if (r.state !== 'Pending' || Date.parse(r.expiresAt) > this.#now()) return r;
    const e: ApprovalRecord = { ...r, state: 'Expired', finishedAt: r.expiresAt };
    await storage(() => this.#db.put(r.requestId, e));
    return e;
  }

  async put(r: ApprovalRecord): Promise<void> {
    await storage(() => this.#db.put(r.requestId, r));
  }

  /** Stores a new Pending request, after pruning; Overloaded when `maxOpen` are pending. */
  async create(r: ApprovalRecord): Promise<void> {
    const all = await this.#all();
    const now = this.#now();
    const drop: string[] = [];
    let open = 0;
    const finished: ApprovalRecord[] = [];
    for (const x of all) {
      const y = await this.#expire(x);
      if (y.state === 'Pending') open++;
      else if (now - Date.parse(y.finishedAt ?? y.expiresAt) > this.limits.retentionMs)
        drop.push(y.requestId);
      else finished.push(y);
    }
    if (open >= this.limits.maxOpen) {
      throw new KmsError(
        'Overloaded',
        `${open} requests are waiting for approvals (the limit); approve, or let some expire`,
      );
    }
    const cap = this.limits.maxOpen * MAX_RECORDS_FACTOR;
    const excess = open + finished.length - drop.length + 1 - cap;
    if (excess > 0) {
      finished.sort((a, b) => (a.finishedAt ?? a.expiresAt).localeCompare(b.finishedAt ?? b.expiresAt));
      drop.push(...finished.slice(0, excess).map((f) => f.requestId));
    }
    await storage(() =>
      this.#db.batch([
        ...drop.map((key) => ({ type: 'del' as const, key })),
        { type: 'put' as const, key: r.requestId, value: r },
      ]),
    );
  }

  /** Requests, newest first, optionally in one state; at most `limit`. */
  async list(opts: { state?: ApprovalState; limit: number }): Promise<ApprovalRecord[]> {
    const out: ApprovalRecord[] = [];
    for (const x of await this.#all()) {
      const r = await this.#expire(x);
      if (opts.state === undefined || r.state === opts.state) out.push(r);
    }
    out.sort((a, b) => b.createdAt.localeCompare(a.createdAt));
    return out.slice(0, opts.limit);
  }

  async #all(): Promise<ApprovalRecord[]> {
    return storage(async () => {
      const out: ApprovalRecord[] = [];
      for await (const v of this.#db.values()) out.push(v);
      return out;
    });
  }
}

async function storage<T>(fn: () => Promise<T>): Promise<T> {
  try {
    return await fn();
  } catch (e) {
    if (e instanceof KmsError) throw e;
    throw new KmsError('StorageError', 'approval requests: read or write failed', { cause: e });
  }
}
