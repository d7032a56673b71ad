/**
 * Key lifecycle on the coordinator: the state table (protocol/key-states.ts, shared with the nodes),
 * the rule that a state change is done only when every member of the key's committee confirmed it
 * (M-2), the sweeper that destroys the shares when a deletion window ends, and the reconcile pass
 * that brings a node that missed changes (it was down) back to the coordinator's records.
 */
import type { Logger } from 'pino';
import { type Blame, KmsError } from '../protocol/errors.ts';
import {
  type KeyState,
  LIFECYCLE,
  type SettableKeyState,
  type StateChange,
  pathBetween,
  transition,
} from '../protocol/key-states.ts';
import type { AuthorizationWire } from '../net/signed-request.ts';
import type { Cluster, NodeKeyStatesPage, NodeOutcome } from './cluster.ts';
import type { KeyedQueue } from './key-queue.ts';
import type { KeyRecord, KeyStore } from './key-store.ts';

export { KEY_STATES, LIFECYCLE, transition } from '../protocol/key-states.ts';
export type { KeyOperation, KeyState, StateChange } from '../protocol/key-states.ts';

/** The nodes that must confirm a change of this key: its current committee. */
export function membersOf(rec: KeyRecord): readonly string[] {
  return rec.epochInfo?.participants ?? rec.participants;
}

/**
 * The error for a change that not every member confirmed: 503 QuorumUnavailable (it clears when
 * the nodes are back; Retry-After), naming each node that missed it and why. Unreachable nodes are
 * also the `culprits` (`unresponsive`).
 */
export function notConfirmedError(what: string, keyId: string, outcomes: readonly NodeOutcome[]): KmsError {
  const missed = outcomes.filter((o) => !o.ok);
  const named = missed.map((o) => `${o.node} (${o.error?.code ?? 'no answer'})`).join(', ');
  const culprits: Blame[] = missed
    .filter((o) => o.error?.code !== 'InvalidKeyState')
    .map((o) => ({ participant: o.node, reason: 'unresponsive' }));
  return new KmsError(
    'QuorumUnavailable',
    `${what} of key ${keyId} was not confirmed by ${named}; the key keeps its state (retry when the nodes are back)`,
    {
      culprits,
      details: {
        confirmed: outcomes.filter((o) => o.ok).map((o) => o.node),
        missed: missed.map((o) => ({ node: o.node, code: o.error?.code ?? 'Internal' })),
      },
    },
  );
}

/**
 * The members' refusals of the signed request (Unauthorized, PolicyDenied) as the client's answer:
 * if every member that did not confirm refused it, their decision is the error (a pending refusal,
 * with the approvals still missing, when no member refused outright). Undefined otherwise.
 */
export function refusedError(
  what: string,
  keyId: string,
  outcomes: readonly NodeOutcome[],
): KmsError | undefined {
  const missed = outcomes.filter((o) => !o.ok);
  const refused = missed.filter((o) => o.error?.code === 'Unauthorized' || o.error?.code === 'PolicyDenied');
  if (refused.length === 0 || refused.length !== missed.length) return undefined;
  const plain = refused.find((o) => o.needs === undefined);
  const pick = plain ?? refused[0]!;
  const nodes = refused.map((o) => o.node).sort();
  return new KmsError(
    pick.error!.code,
    `${what} of key ${keyId} refused by ${nodes.join(', ')}: ${pick.error!.message}`,
    {
      details: {
        refusedBy: nodes,
        ...(plain === undefined && pick.needs ? { pending: true, needs: pick.needs } : {}),
      },
    },
  );
}

/**
 * Tells every member the key's new state, with the client-signed request each member checks
 * (`auth`), and resolves only when all of them confirmed; otherwise throws: the members' refusal
 * when they all refused it, else notConfirmedError (the caller keeps the record's state).
 */
export async function changeStateOnNodes(
  cluster: Cluster,
  rec: KeyRecord,
  operation: StateChange,
  state: SettableKeyState,
  auth?: AuthorizationWire,
): Promise<NodeOutcome[]> {
  const outcomes = await cluster.setKeyState({
    keyId: rec.keyId,
    state,
    operation,
    members: membersOf(rec),
    ...(auth === undefined ? {} : { auth }),
  });
  if (outcomes.some((o) => !o.ok)) {
    throw refusedError(operation, rec.keyId, outcomes) ?? notConfirmedError(operation, rec.keyId, outcomes);
  }
  return outcomes;
}

export const MIN_PENDING_WINDOW_DAYS = 7;
export const MAX_PENDING_WINDOW_DAYS = 30;
export const DEFAULT_PENDING_WINDOW_DAYS = 30;
export const DAY_MS = 24 * 3600 * 1000;

export type Clock = { now(): number };
export const systemClock: Clock = { now: () => Date.now() };

/** What one reconcile pass did. */
export type ReconcileReport = {
  /** Node ids whose page was read. */
  readonly read: string[];
  /** Nodes that could not be asked this pass (retried on the next). */
  readonly unreachable: string[];
  /** Re-sent changes, one per node and key. */
  readonly fixed: { node: string; keyId: string; from: string; to: string; ok: boolean }[];
};

/**
 * Destroys the shares of keys whose deletion window has ended: cluster.destroyKey on every node;
 * only when every member of the committee confirmed does the record become Destroyed (public
 * metadata kept for the audit trail, alias freed). Otherwise the key stays PendingDeletion and the
 * next sweep retries (M-2). Each sweep also runs one bounded reconcile pass (`reconcile`).
 */
export class DeletionSweeper {
  readonly #store: KeyStore;
  readonly #cluster: Cluster;
  readonly #queue: KeyedQueue;
  readonly #clock: Clock;
  readonly #intervalMs: number;
  readonly #pageSize: number;
  readonly #audit: (entry: Record<string, unknown>) => Promise<unknown>;
  readonly #log: Logger | undefined;
  /** Per node: the last key id its reconcile pages reached (the next pass continues after it). */
  readonly #cursor = new Map<string, string>();
  /** Node/key divergences that cannot be fixed (a node destroyed a live key), logged once. */
  readonly #reported = new Set<string>();
  #timer: NodeJS.Timeout | undefined;
  #running: Promise<string[]> | undefined;

  constructor(opts: {
    store: KeyStore;
    cluster: Cluster;
    queue: KeyedQueue;
    clock: Clock;
    intervalMs: number;
    audit: (entry: Record<string, unknown>) => Promise<unknown>;
    logger?: Logger;
    /** Keys read per node per reconcile pass (bounds the work of one pass). Default 100. */
    reconcilePageSize?: number;
  }) {
    this.#store = opts.store;
    this.#cluster = opts.cluster;
    this.#queue = opts.queue;
    this.#clock = opts.clock;
    this.#intervalMs = opts.intervalMs;
    this.#pageSize = opts.reconcilePageSize ?? 100;
    this.#audit = opts.audit;
    this.#log = opts.logger;
  }

  start(): void {
    if (this.#timer) return;
    this.#timer = setInterval(() => {
      void this.sweep().catch((e) => this.#log?.warn({ err: e }, 'deletion sweep failed'));
    }, this.#intervalMs);
    this.#timer.unref();
  }

  async stop(): Promise<void> {
    if (this.#timer) clearInterval(this.#timer);
    this.#timer = undefined;
    await this.#running?.catch(() => undefined);
  }

  /**
   * One pass: destroys the keys whose window ended, then one reconcile pass; resolves with the key
   * ids destroyed. Concurrent calls share the pass.
   */
  sweep(): Promise<string[]> {
    this.#running ??= (async () => {
      const destroyed = await this.#sweep();
      await this.reconcile().catch((e) => this.#log?.warn({ err: e }, 'reconcile pass failed'));
      return destroyed;
    })().finally(() => {
      this.#running = undefined;
    });
    return this.#running;
  }

  async #sweep(): Promise<string[]> {
    const now = this.#clock.now();
    const due = (await this.#store.inState('PendingDeletion')).filter(
      (r) => r.deletionDate !== undefined && Date.parse(r.deletionDate) <= now,
    );
    const destroyed: string[] = [];
    for (const r of due) {
      const ok = await this.#queue.run(r.keyId, () => this.#destroy(r.keyId, now));
      if (ok) destroyed.push(r.keyId);
    }
    return destroyed;
  }

  async #destroy(keyId: string, now: number): Promise<boolean> {
    // Re-read under the key's queue: a cancel may have won the race.
    const rec = await this.#store.get(keyId);
    if (
      rec?.state !== 'PendingDeletion' ||
      rec.deletionDate === undefined ||
      Date.parse(rec.deletionDate) > now
    ) {
      return false;
    }
    await this.#audit({
      type: 'decision',
      action: 'destroy',
      keyId,
      decision: 'allow',
      caller: { tokenId: 'system', name: 'deletion-sweeper' },
    });
    let outcomes: Awaited<ReturnType<Cluster['destroyKey']>>;
    try {
      outcomes = await this.#cluster.destroyKey({ keyId });
    } catch (e) {
      outcomes = this.#cluster.nodeIds().map((node) => ({
        node,
        ok: false,
        error: { code: (e as { code?: 'Internal' }).code ?? 'Internal', message: 'destroy failed' },
      }));
    }
    const members = new Set(membersOf(rec));
    const missed = outcomes.filter((o) => members.has(o.node) && !o.ok);
    const nodes = outcomes.map((o) => ({
      node: o.node,
      ok: o.ok,
      ...(o.error ? { code: o.error.code } : {}),
      ...(o.epochs ? { epochs: o.epochs } : {}),
      ...(o.pendingScopes?.length ? { pendingScopes: o.pendingScopes } : {}),
    }));
    if (missed.length > 0) {
      await this.#audit({
        type: 'session',
        action: 'destroy',
        keyId,
        outcome: 'failed',
        code: 'QuorumUnavailable',
        missed: missed.map((o) => o.node),
        nodes,
      });
      this.#log?.warn(
        { keyId, missed: missed.map((o) => o.node) },
        'shares not destroyed on every member; key stays PendingDeletion, will retry',
      );
      return false;
    }
    const next: KeyRecord = { ...rec, state: transition(rec.state, 'destroy') };
    await this.#store.releaseAlias(rec, next);
    await this.#audit({
      type: 'session',
      action: 'destroy',
      keyId,
      outcome: 'ok',
      epoch: rec.epochInfo?.epoch ?? null,
      nodes,
    });
    return true;
  }

  /**
   * One bounded reconcile pass (M-2): for each node, one page of its key states (status RPC,
   * `reconcilePageSize` keys, continuing where the previous pass stopped) is compared with the
   * records; where a committee member differs (it was down or its answer was lost) the changes are
   * re-sent one legal step at a time (pathBetween), and a key Destroyed here but not there is
   * destroyed there. Each re-send is audited. Keys this coordinator has no record of are left alone
   * (another coordinator may own them).
   */
  async reconcile(): Promise<ReconcileReport> {
    const report: ReconcileReport = { read: [], unreachable: [], fixed: [] };
    for (const node of this.#cluster.nodeIds()) {
      const after = this.#cursor.get(node);
      let page: NodeKeyStatesPage;
      try {
        page = await this.#cluster.nodeKeyStates(node, {
          limit: this.#pageSize,
          ...(after === undefined ? {} : { after }),
        });
      } catch {
        report.unreachable.push(node);
        continue;
      }
      report.read.push(node);
      if (page.next === undefined) this.#cursor.delete(node);
      else this.#cursor.set(node, page.next);
      for (const k of page.keys) {
        const fix = await this.#queue.run(k.keyId, () => this.#reconcileKey(node, k.keyId, k.state));
        if (fix) report.fixed.push(fix);
      }
    }
    return report;
  }

  async #reconcileKey(
    node: string,
    keyId: string,
    nodeState: KeyState,
  ): Promise<ReconcileReport['fixed'][number] | undefined> {
    const rec = await this.#store.get(keyId).catch(() => undefined);
    if (!rec || rec.state === 'Creating' || rec.state === nodeState) return undefined;
    if (rec.state === 'Destroyed') {
      const [o] = await this.#cluster.destroyKey({ keyId, nodes: [node] });
      const ok = o?.ok === true;
      await this.#reconciled(node, keyId, nodeState, 'Destroyed', ['destroy'], ok, o);
      return { node, keyId, from: nodeState, to: 'Destroyed', ok };
    }
    if (!membersOf(rec).includes(node)) return undefined;
    const path = pathBetween(nodeState, rec.state);
    if (path === null) {
      // E.g. a node destroyed a live key's share: nothing to re-send; a repair rebuilds it.
      const tag = `${node}/${keyId}`;
      if (!this.#reported.has(tag)) {
        this.#reported.add(tag);
        this.#log?.warn({ node, keyId, nodeState, state: rec.state }, 'node state cannot be reconciled');
      }
      return undefined;
    }
    let state: KeyState = nodeState;
    let last: NodeOutcome | undefined;
    for (const op of path) {
      const to = LIFECYCLE[state][op] as SettableKeyState;
      [last] = await this.#cluster.setKeyState({ keyId, state: to, operation: op, members: [node] });
      if (!last?.ok) break;
      state = to;
    }
    const ok = state === rec.state;
    await this.#reconciled(node, keyId, nodeState, rec.state, path, ok, last);
    return { node, keyId, from: nodeState, to: rec.state, ok };
  }

  async #reconciled(
    node: string,
    keyId: string,
    from: string,
    to: string,
    operations: readonly string[],
    ok: boolean,
    last: NodeOutcome | undefined,
  ): Promise<void> {
    await this.#audit({
      type: 'session',
      action: 'reconcile',
      keyId,
      node,
      from,
      to,
      operations,
      outcome: ok ? 'ok' : 'failed',
      ...(ok || !last?.error ? {} : { code: last.error.code }),
      caller: { tokenId: 'system', name: 'reconcile' },
    });
    if (!ok) this.#log?.warn({ node, keyId, from, to, code: last?.error?.code }, 'reconcile step failed');
  }
}
