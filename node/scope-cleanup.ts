/**
 * Destroying sealer scopes (one HSM key per key epoch) reliably (security review L-3). A scope whose
 * epoch is gone must lose its key, or a restored LevelDB backup (F-34) could reopen an old epoch's
 * share and undo a proactive refresh. So a failed `destroyScope` is never swallowed: the scope is
 * recorded in the node store as still to destroy, retried periodically and at start-up, and the
 * start-up sweep also destroys scopes the store no longer accounts for (a crash between deleting an
 * epoch and destroying its key). Every outcome is audited on the node.
 *
 * What the sweep never destroys: `identity`, the active and pending epochs, and epochs after the
 * active one (an aborted key event keeps its epoch's scope, because the retry seals the same epoch
 * number: node/key-events.ts abortEpoch), nor scopes of keys this node has no record of (an aborted
 * DKG or a reshare this node was joining may be retried with that epoch number). Those cannot open
 * anything: their sealed shares were deleted with the epoch.
 */
import type { NodeContext } from './node-context.ts';

export type ScopeCleanupDeps = Pick<NodeContext, 'store' | 'sealer' | 'log' | 'record'>;

export type ScopeOutcome = {
  /** Scopes whose HSM key is now destroyed. */
  readonly destroyed: string[];
  /** Scopes that could not be destroyed now: recorded, retried later. */
  readonly pending: string[];
};

/** How often a running node retries the scopes it still owes. */
export const SCOPE_RETRY_MS = 60_000;
/** Pending scopes retried per pass (bounded work). */
const RETRY_BATCH = 256;
const SCOPE_RE = /^(.+)\/(0|[1-9][0-9]{0,11})$/;

/**
 * Destroys the scopes of `epochs` of a key. Never throws (it runs after a commit that must stand):
 * a scope that cannot be destroyed now is recorded and retried, and audited either way.
 */
export function destroyEpochScopes(
  c: ScopeCleanupDeps,
  keyId: string,
  epochs: readonly number[],
): Promise<ScopeOutcome> {
  return destroyScopes(
    c,
    epochs.map((e) => `${keyId}/${e}`),
  );
}

/** Destroys sealer scopes; see destroyEpochScopes. */
export async function destroyScopes(c: ScopeCleanupDeps, scopes: readonly string[]): Promise<ScopeOutcome> {
  const destroyed: string[] = [];
  const pending: string[] = [];
  for (const scope of scopes) {
    try {
      await c.sealer.destroyScope(scope);
      destroyed.push(scope);
    } catch (e) {
      pending.push(scope);
      c.log.warn(
        { scope, code: (e as { code?: string }).code },
        'destroying a sealer scope failed; will retry',
      );
    }
  }
  await settle(c, destroyed, pending);
  return { destroyed, pending };
}

/** Retries the recorded scopes (at most RETRY_BATCH of them). Never throws. */
export async function retryPendingScopes(c: ScopeCleanupDeps): Promise<ScopeOutcome> {
  let scopes: string[];
  try {
    scopes = await c.store.pendingScopes({ limit: RETRY_BATCH });
  } catch (e) {
    c.log.warn({ code: (e as { code?: string }).code }, 'cannot read the pending sealer scopes');
    return { destroyed: [], pending: [] };
  }
  return scopes.length === 0 ? { destroyed: [], pending: [] } : destroyScopes(c, scopes);
}

/**
 * Start-up sweep: retries the recorded scopes, then destroys the sealer's scopes that no live
 * epoch accounts for: every scope of a key Destroyed on this node, and scopes of epochs before the
 * key's active epoch. Never throws (a node with an unavailable sealer still starts and reports it).
 */
export async function sweepOrphanScopes(c: ScopeCleanupDeps): Promise<ScopeOutcome> {
  const retried = await retryPendingScopes(c);
  let listed: string[];
  try {
    listed = await c.sealer.listScopes();
  } catch (e) {
    c.log.warn({ code: (e as { code?: string }).code }, 'cannot list sealer scopes; orphan sweep skipped');
    return retried;
  }
  const orphans: string[] = [];
  for (const scope of listed) {
    const m = SCOPE_RE.exec(scope);
    if (!m) continue;
    const keyId = m[1]!;
    const epoch = Number(m[2]);
    const k = await c.store.getKey(keyId).catch(() => undefined);
    if (!k) continue;
    if (k.state === 'Destroyed' || (k.activeEpoch !== undefined && epoch < k.activeEpoch))
      orphans.push(scope);
  }
  const swept = orphans.length === 0 ? { destroyed: [], pending: [] } : await destroyScopes(c, orphans);
  if (orphans.length > 0) {
    await c
      .record({ event: 'scope.orphans', found: orphans, destroyed: swept.destroyed, pending: swept.pending })
      .catch(() => {});
  }
  return {
    destroyed: [...retried.destroyed, ...swept.destroyed],
    pending: [...new Set([...retried.pending, ...swept.pending])],
  };
}

/** Retries the recorded scopes every `intervalMs` until stopped. */
export function startScopeRetry(c: ScopeCleanupDeps, intervalMs: number): { stop(): Promise<void> } {
  let running: Promise<unknown> | undefined;
  const timer = setInterval(() => {
    running ??= retryPendingScopes(c).finally(() => {
      running = undefined;
    });
  }, intervalMs);
  timer.unref();
  return {
    stop: async () => {
      clearInterval(timer);
      await running;
    },
  };
}

/** Records the outcome: pending scopes are written (synced), destroyed ones forgotten; audited. */
async function settle(
  c: ScopeCleanupDeps,
  destroyed: readonly string[],
  pending: readonly string[],
): Promise<void> {
  try {
    await c.store.addPendingScopes(pending);
    await c.store.removePendingScopes(destroyed);
  } catch (e) {
    // The store is failing (it latches, the node reports unhealthy): the start-up sweep catches up.
    c.log.warn({ code: (e as { code?: string }).code }, 'cannot record sealer scope outcomes');
  }
  if (destroyed.length === 0 && pending.length === 0) return;
  await c
    .record({ event: 'scope.destroy', destroyed: [...destroyed], pending: [...pending] })
    .catch(() => {});
}
