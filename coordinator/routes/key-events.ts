/**
 * Key events: refresh (same committee, fresh shares), reshare (new committee and/or threshold) and
 * repair (rebuild one member's lost share). Each yields the next epoch with the same public key;
 * the coordinator checks that before storing it.
 */
import { TL } from '../../common/timeline.ts';
import { KmsError, ProtocolError } from '../../protocol/errors.ts';
import type { EpochInfo } from '../cluster.ts';
import { type KeyRecord, keyView } from '../key-store.ts';
import type { KeyOperation } from '../lifecycle.ts';
import {
  type AppContext,
  type KmsApp,
  type OpRequest,
  auditDecision,
  chooseParticipants,
  underKey,
} from './context.ts';
import { runSigned } from './operations.ts';
import {
  emptyBody,
  keyIdParam,
  keyObject,
  nodeId,
  participantsSpec,
  responses,
  signed,
  threshold,
} from './schemas.ts';

type ReshareBody = { threshold?: number; participants?: number | string[] } | undefined;

export function keyEventRoutes(app: KmsApp, ctx: AppContext): void {
  async function run(
    req: OpRequest,
    keyId: string,
    op: KeyOperation,
    plan: (rec: KeyRecord, info: EpochInfo) => Promise<Record<string, unknown>>,
    call: (info: EpochInfo) => Promise<EpochInfo>,
  ) {
    TL?.(`coord ${op} start`);
    return underKey(ctx, req, keyId, op, async (rec) => {
      TL?.(`coord ${op} under key`);
      const info = rec.epochInfo!;
      const extra = await plan(rec, info);
      await auditDecision(ctx, req, extra);
      TL?.(`coord ${op} audited`);
      let next: EpochInfo;
      try {
        next = await call(info);
      } catch (e) {
        ctx.metrics.sessions.inc({ operation: op, outcome: e instanceof KmsError ? e.code : 'Internal' });
        throw e;
      }
      // Repair rebuilds one member's share of the same epoch; the other events make the next one.
      const stale = op === 'repair' ? next.epoch < info.epoch : next.epoch <= info.epoch;
      if (next.publicKey !== info.publicKey || next.keyId !== info.keyId || stale) {
        ctx.metrics.sessions.inc({ operation: op, outcome: 'ProtocolAborted' });
        throw new ProtocolError(
          'ProtocolAborted',
          `${op} returned an epoch that does not continue the key; not stored`,
        );
      }
      ctx.metrics.sessions.inc({ operation: op, outcome: 'ok' });
      const updated: KeyRecord = {
        ...rec,
        threshold: next.threshold,
        participants: next.participants,
        epochInfo: next,
      };
      TL?.(`coord ${op} cluster done`);
      await ctx.keys.put(updated);
      TL?.(`coord ${op} keys.put done`);
      req.audit.epoch = next.epoch;
      req.audit.participants = next.participants;
      return keyView(updated);
    });
  }

  const progress = (req: OpRequest, keyId: string) => (e: { phase: string; detail?: string }) =>
    req.log.debug({ keyId, ...e }, 'key event progress');
  // The signed request, as signed, for every member of the session to check (`auth`).
  const auth = (req: OpRequest) => (req.auth ? { auth: req.auth } : {});

  ctx.operations.set('RefreshKey', async (req, params) => ({
    status: 200,
    body: await run(
      req,
      params.keyId!,
      'refresh',
      async () => ({}),
      (info) => ctx.cluster.refresh({ key: info, progress: progress(req, info.keyId), ...auth(req) }),
    ),
  }));

  ctx.operations.set('ReshareKey', async (req, params, body: ReshareBody) => {
    let t = 0;
    let members: string[] = [];
    // Issue 14: the key's chain code and merkle root, carried to joining members (dealers check it).
    let custody: { chainCode: string; merkleRoot: string | null } | undefined;
    return {
      status: 200,
      body: await run(
        req,
        params.keyId!,
        'reshare',
        async (rec, info) => {
          members = await chooseParticipants(
            ctx,
            body?.participants,
            body?.participants === undefined ? info.participants : null,
            info.participants,
          );
          t = body?.threshold ?? info.threshold;
          if (t > members.length) {
            throw new KmsError(
              'ValidationError',
              `threshold ${t} exceeds the ${members.length} participants`,
            );
          }
          if (rec.chainCode !== undefined) {
            custody = { chainCode: rec.chainCode, merkleRoot: rec.merkleRoot ?? null };
          }
          return { newThreshold: t, newParticipants: members };
        },
        (info) =>
          ctx.cluster.reshare({
            key: info,
            threshold: t,
            participants: members,
            progress: progress(req, info.keyId),
            ...auth(req),
            ...(custody === undefined ? {} : { custody }),
          }),
      ),
    };
  });

  ctx.operations.set('RepairKey', async (req, params, body: { participant: string }) => ({
    status: 200,
    body: await run(
      req,
      params.keyId!,
      'repair',
      async (_rec, info) => {
        if (!info.participants.includes(body.participant)) {
          throw new KmsError('ValidationError', `${body.participant} is not a member of the key's committee`);
        }
        return { repaired: body.participant };
      },
      (info) =>
        ctx.cluster.repair({
          key: info,
          participant: body.participant,
          progress: progress(req, info.keyId),
          ...auth(req),
        }),
    ),
  }));

  app.post<{ Params: { keyId: string }; Body: Record<string, never> | undefined }>(
    '/v1/keys/:keyId/refresh',
    {
      config: { signed: 'RefreshKey', action: 'RefreshKey' },
      schema: {
        summary: 'Refresh the shares (same committee and threshold): next epoch, same public key',
        tags: ['key events'],
        security: signed,
        params: keyIdParam,
        body: emptyBody,
        response: responses(200, keyObject),
      },
    },
    async (req, reply) => runSigned(ctx, req, reply, 'RefreshKey', req.params, req.body),
  );

  app.post<{ Params: { keyId: string }; Body: ReshareBody }>(
    '/v1/keys/:keyId/reshare',
    {
      config: { signed: 'ReshareKey', action: 'ReshareKey' },
      schema: {
        summary: 'Reshare to a new committee and/or threshold: next epoch, same public key',
        tags: ['key events'],
        security: signed,
        params: keyIdParam,
        body: {
          type: 'object',
          additionalProperties: false,
          properties: { threshold, participants: participantsSpec },
        },
        response: responses(200, keyObject),
      },
    },
    async (req, reply) => runSigned(ctx, req, reply, 'ReshareKey', req.params, req.body),
  );

  app.post<{ Params: { keyId: string }; Body: { participant: string } }>(
    '/v1/keys/:keyId/repair',
    {
      config: { signed: 'RepairKey', action: 'RepairShare' },
      schema: {
        summary: "Rebuild a committee member's lost share from t helpers",
        tags: ['key events'],
        security: signed,
        params: keyIdParam,
        body: {
          type: 'object',
          additionalProperties: false,
          required: ['participant'],
          properties: { participant: nodeId },
        },
        response: responses(200, keyObject),
      },
    },
    async (req, reply) => runSigned(ctx, req, reply, 'RepairKey', req.params, req.body),
  );
}
