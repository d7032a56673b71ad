/**
 * Lifecycle routes: disable, enable, schedule-deletion, cancel-deletion. The nodes are told first
 * (Cluster.setKeyState, they enforce the state too), then the record changes; if the nodes cannot
 * be told, the record keeps its state and the caller gets the error.
 */
import { KmsError } from '../../protocol/errors.ts';
import type { KeyState } from '../cluster.ts';
import { type KeyRecord, keyView } from '../key-store.ts';
import { DAY_MS, DEFAULT_PENDING_WINDOW_DAYS, type KeyOperation, transition } from '../lifecycle.ts';
import { type AppContext, type KmsApp, auditDecision, underKey } from './context.ts';
import { bearer, emptyBody, keyIdParam, keyObject, pendingWindowDays, responses } from './schemas.ts';

export function lifecycleRoutes(app: KmsApp, ctx: AppContext): void {
  const routes: {
    path: string;
    op: KeyOperation;
    action: string;
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
    app.post<{ Params: { keyId: string }; Body: { pendingWindowDays?: number } | undefined }>(
      `/v1/keys/:keyId/${r.path}`,
      {
        config: { permission: 'keys:lifecycle', action: r.action },
        schema: {
          summary: r.summary,
          tags: ['lifecycle'],
          security: bearer,
          params: keyIdParam,
          body: r.body,
          response: responses(200, keyObject),
        },
      },
      async (req) =>
        underKey(ctx, req, req.params.keyId, r.op, async (rec) => {
          const next: KeyState = transition(rec.state, r.op);
          const days = req.body?.pendingWindowDays ?? DEFAULT_PENDING_WINDOW_DAYS;
          const deletionDate =
            r.op === 'scheduleDeletion' ? new Date(ctx.clock.now() + days * DAY_MS).toISOString() : undefined;
          await auditDecision(ctx, req, { from: rec.state, to: next, deletionDate });
          if (next !== rec.state) {
            try {
              await ctx.cluster.setKeyState({ keyId: rec.keyId, state: next });
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
    );
  }
}
