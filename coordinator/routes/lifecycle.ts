/**
 * Lifecycle routes: disable, enable, schedule-deletion, cancel-deletion. Every member of the key's
 * committee is told first (Cluster.setKeyState; the nodes check the same table and enforce the
 * state), then the record changes. If any member did not confirm, the record keeps its state and
 * the caller gets 503 QuorumUnavailable naming the nodes that missed it (M-2); members that did
 * apply the change are brought back to the record by the sweeper's reconcile pass.
 */
import { KmsError } from '../../protocol/errors.ts';
import type { KeyState, SettableKeyState } from '../cluster.ts';
import { type KeyRecord, keyView } from '../key-store.ts';
import {
  DAY_MS,
  DEFAULT_PENDING_WINDOW_DAYS,
  type StateChange,
  changeStateOnNodes,
  transition,
} from '../lifecycle.ts';
import type { Operation } from '../../policy/policy-rule.ts';
import { type AppContext, type KmsApp, auditDecision, underKey } from './context.ts';
import { runSigned } from './operations.ts';
import { emptyBody, keyIdParam, keyObject, pendingWindowDays, responses, signed } from './schemas.ts';

export function lifecycleRoutes(app: KmsApp, ctx: AppContext): void {
  const routes: {
    path: string;
    op: StateChange;
    action: Operation;
    summary: string;
    body: Record<string, unknown>;
  }[] = [
    {
      path: 'disable',
      op: 'disable',
      action: 'DisableKey',
      summary: 'Disable a key (no signing until enabled)',
      body: emptyBody,
    },
    { path: 'enable', op: 'enable', action: 'EnableKey', summary: 'Enable a disabled key', body: emptyBody },
    {
      path: 'schedule-deletion',
      op: 'scheduleDeletion',
      action: 'ScheduleKeyDeletion',
      summary: 'Schedule destruction of every share after a pending window (7-30 days)',
      body: { type: 'object', additionalProperties: false, properties: { pendingWindowDays } },
    },
    {
      path: 'cancel-deletion',
      op: 'cancelDeletion',
      action: 'CancelKeyDeletion',
      summary: 'Cancel a scheduled deletion; the key becomes Disabled',
      body: emptyBody,
    },
  ];
  for (const r of routes) {
    ctx.operations.set(r.action, async (req, params, body: { pendingWindowDays?: number } | undefined) => ({
      status: 200,
      body: await underKey(ctx, req, params.keyId!, r.op, async (rec) => {
        const next: KeyState = transition(rec.state, r.op);
        const days = body?.pendingWindowDays ?? DEFAULT_PENDING_WINDOW_DAYS;
        const deletionDate =
          r.op === 'scheduleDeletion' ? new Date(ctx.clock.now() + days * DAY_MS).toISOString() : undefined;
        await auditDecision(ctx, req, { from: rec.state, to: next, deletionDate });
        if (next !== rec.state) {
          try {
            await changeStateOnNodes(ctx.cluster, rec, r.op, next as SettableKeyState, req.auth ?? undefined);
            ctx.metrics.sessions.inc({ operation: 'set-state', outcome: 'ok' });
          } catch (e) {
            ctx.metrics.sessions.inc({
              operation: 'set-state',
              outcome: e instanceof KmsError ? e.code : 'Internal',
            });
            throw e;
          }
        }
        const { deletionDate: _old, ...rest } = rec;
        const updated: KeyRecord = {
          ...rest,
          state: next,
          ...(deletionDate === undefined ? {} : { deletionDate }),
        };
        await ctx.keys.put(updated);
        return keyView(updated);
      }),
    }));
    app.post<{ Params: { keyId: string }; Body: { pendingWindowDays?: number } | undefined }>(
      `/v1/keys/:keyId/${r.path}`,
      {
        config: { signed: r.action, action: r.action },
        schema: {
          summary: `${r.summary} (signed request; key id, not alias)`,
          tags: ['lifecycle'],
          security: signed,
          params: keyIdParam,
          body: r.body,
          response: responses(200, keyObject),
        },
      },
      async (req, reply) => runSigned(ctx, req, reply, r.action, req.params, req.body),
    );
  }
}
