/**
 * Key routes: create (runs DKG), list, describe, public key (JSON or PEM/SPKI).
 */
import { TL } from '../../common/timeline.ts';
import { randomUUID } from 'node:crypto';
import { KmsError } from '../../protocol/errors.ts';
import {
  ALL_KEY_SPECS,
  KEY_SPEC_REGISTRY,
  KEY_USAGES,
  type KeySpecName,
  type KeyUsage,
} from '../../protocol/suites.ts';
import { canSeeKey } from '../auth.ts';
import { KEY_ID_RE, type KeyRecord, keyView } from '../key-store.ts';
import { transition } from '../lifecycle.ts';
import { custodyFields, publicKeyAt } from '../custody.ts';
import { pathQuery } from './custody.ts';
import { publicKeyPem } from '../spki.ts';
import {
  type AppContext,
  type KmsApp,
  type OpRequest,
  auditDecision,
  callerOf,
  chooseParticipants,
  plain,
  visibleKey,
} from './context.ts';
import { runSigned } from './operations.ts';
import {
  ALIAS,
  bearer,
  keyIdParam,
  keyObject,
  participantsSpec,
  responses,
  signed,
  threshold,
} from './schemas.ts';

type CreateBody = {
  keySpec: KeySpecName;
  /** Default SIGN_VERIFY; ENCRYPT_DECRYPT needs key spec TDH2_RISTRETTO255 (issue 15). */
  keyUsage?: KeyUsage;
  threshold: number;
  participants?: number | string[];
  alias?: string;
  description?: string;
  /** Issue 14: FROST_SECP256K1_TR only, the merkle root of the output's script tree (hex). */
  merkleRoot?: string;
};

export const PEM_TYPE = 'application/x-pem-file';

export function keyRoutes(app: KmsApp, ctx: AppContext): void {
  ctx.operations.set('CreateKey', async (r, _params, body: CreateBody) => ({
    status: 201,
    body: await createKey(r, body),
  }));

  app.post<{ Body: CreateBody }>(
    '/v1/keys',
    {
      config: { signed: 'CreateKey', action: 'CreateKey' },
      schema: {
        summary: 'Create a key: runs a DKG among the participants (signed request)',
        tags: ['keys'],
        security: signed,
        body: {
          type: 'object',
          additionalProperties: false,
          required: ['keySpec', 'threshold'],
          properties: {
            keySpec: { type: 'string', enum: [...ALL_KEY_SPECS] },
            keyUsage: { type: 'string', enum: [...KEY_USAGES] },
            threshold,
            participants: participantsSpec,
            alias: { type: 'string', pattern: ALIAS },
            description: { type: 'string', maxLength: 1024 },
            merkleRoot: {
              type: 'string',
              pattern: '^[0-9a-fA-F]{64}$',
              description:
                'FROST_SECP256K1_TR only: the BIP341 merkle root of the script tree whose internal key ' +
                'this key is; key-path signing then tweaks with it (docs/custody.md). Absent: key path only',
            },
          },
        },
        response: responses(201, keyObject),
      },
    },
    async (req, reply) => runSigned(ctx, req, reply, 'CreateKey', {}, req.body),
  );

  /** The DKG: every member checks the signed body (keySpec, threshold, participants) itself. */
  async function createKey(req: OpRequest, b: CreateBody) {
    TL?.('coord dkg start');
    if (b.alias !== undefined && KEY_ID_RE.test(b.alias.toLowerCase())) {
      throw new KmsError('ValidationError', 'alias must not look like a key id');
    }
    const keyUsage = b.keyUsage ?? 'SIGN_VERIFY';
    if (KEY_SPEC_REGISTRY[b.keySpec].usage !== keyUsage) {
      throw new KmsError(
        'ValidationError',
        `key spec ${b.keySpec} is for ${KEY_SPEC_REGISTRY[b.keySpec].usage}, not keyUsage ${keyUsage}`,
      );
    }
    if (b.merkleRoot !== undefined && b.keySpec !== 'FROST_SECP256K1_TR') {
      throw new KmsError(
        'ValidationError',
        `merkleRoot applies to FROST_SECP256K1_TR keys only, not ${b.keySpec}`,
      );
    }
    const participants = await chooseParticipants(ctx, b.participants, null);
    if (b.threshold > participants.length) {
      throw new KmsError(
        'ValidationError',
        `threshold ${b.threshold} exceeds the ${participants.length} participants`,
      );
    }
    const keyId = randomUUID();
    req.audit.keyId = keyId;
    req.audit.participants = participants;
    await auditDecision(ctx, req, { keySpec: b.keySpec, threshold: b.threshold, alias: b.alias });
    TL?.('coord audited');
    const rec: KeyRecord = {
      keyId,
      alias: b.alias ?? null,
      keySpec: b.keySpec,
      keyUsage,
      state: 'Creating',
      createdAt: new Date(ctx.clock.now()).toISOString(),
      threshold: b.threshold,
      participants,
      epochInfo: null,
      ...(b.description === undefined ? {} : { description: b.description }),
    };
    await ctx.keys.create(rec);
    TL?.('coord keys.create');
    const done = await ctx.queue.run(keyId, async () => {
      TL?.('coord queued');
      const started = performance.now();
      try {
        const info = await ctx.cluster.createKey({
          keyId,
          keySpec: b.keySpec,
          threshold: b.threshold,
          participants,
          progress: (e) => req.log.debug({ keyId, ...e }, 'dkg progress'),
          ...(req.auth ? { auth: req.auth } : {}),
          ...(b.merkleRoot === undefined ? {} : { merkleRoot: b.merkleRoot.toLowerCase() }),
        });
        ctx.metrics.sessions.inc({ operation: 'dkg', outcome: 'ok' });
        req.log.info({ keyId, ms: Math.round(performance.now() - started) }, 'key created');
        const next: KeyRecord = {
          ...rec,
          state: 'Enabled',
          epochInfo: info,
          // Issue 14: the chain code every member computed from the same outcome, and the merkle root.
          ...custodyFields(KEY_SPEC_REGISTRY[b.keySpec], info, b.merkleRoot ?? null),
        };
        TL?.('coord cluster.createKey done');
        await ctx.keys.put(next);
        TL?.('coord keys.put done');
        req.audit.epoch = info.epoch;
        req.audit.participants = info.participants;
        return next;
      } catch (e) {
        ctx.metrics.sessions.inc({ operation: 'dkg', outcome: (e as KmsError).code ?? 'Internal' });
        // The DKG did not commit: forget the key (and free its alias); nodes drop partial state.
        await ctx.keys.releaseAlias(rec, null).catch(() => undefined);
        await ctx.cluster.destroyKey({ keyId }).catch(() => undefined);
        throw e;
      }
    });
    return keyView(done);
  }

  app.get<{ Querystring: { limit?: string; nextToken?: string } }>(
    '/v1/keys',
    {
      config: { permission: 'keys:read', action: 'ListKeys' },
      schema: {
        summary: 'List keys (paginated)',
        tags: ['keys'],
        security: bearer,
        querystring: {
          type: 'object',
          additionalProperties: false,
          properties: {
            limit: { type: 'string', pattern: '^[1-9][0-9]{0,5}$', description: 'page size (default 100)' },
            nextToken: { type: 'string', maxLength: 64, description: 'from the previous page' },
          },
        },
        response: responses(200, {
          type: 'object',
          additionalProperties: false,
          required: ['keys'],
          properties: { keys: { type: 'array', items: keyObject }, nextToken: { type: 'string' } },
        }),
      },
    },
    async (req) => {
      const limit = Math.min(Number(req.query.limit ?? 100), ctx.config.limits.maxListLimit);
      const caller = callerOf(req);
      const page = await ctx.keys.list({
        limit,
        ...(req.query.nextToken === undefined ? {} : { nextToken: req.query.nextToken }),
        visible: (r) => canSeeKey(caller, r.keyId),
      });
      return plain({ keys: page.keys.map(keyView), nextToken: page.nextToken });
    },
  );

  app.get<{ Params: { keyId: string } }>(
    '/v1/keys/:keyId',
    {
      config: { permission: 'keys:read', action: 'DescribeKey' },
      schema: {
        summary: 'Describe a key by id or alias',
        tags: ['keys'],
        security: bearer,
        params: keyIdParam,
        response: responses(200, keyObject),
      },
    },
    async (req) => keyView(await visibleKey(ctx, req, req.params.keyId)),
  );

  app.get<{
    Params: { keyId: string };
    Querystring: { path?: string; format?: 'json' | 'xpub'; network?: string };
  }>(
    '/v1/keys/:keyId/public-key',
    {
      config: { permission: 'keys:read', action: 'GetPublicKey' },
      schema: {
        summary: `Public key as JSON, or PEM SubjectPublicKeyInfo with Accept: ${PEM_TYPE}`,
        description:
          'PEM exists for Ed25519/Ed448 (RFC 8410), secp256k1 and P-256 (RFC 5480); BIP340 keys as the even-Y secp256k1 point; ristretto255 has none (406).',
        tags: ['keys'],
        security: bearer,
        params: keyIdParam,
        // Issue 14: the key at a non-hardened path, and its BIP32 xpub (docs/custody.md).
        querystring: {
          type: 'object',
          additionalProperties: false,
          properties: {
            path: pathQuery,
            format: { type: 'string', enum: ['json', 'xpub'], description: 'xpub: add the BIP32 xpub' },
            network: {
              type: 'string',
              enum: ['bitcoin', 'testnet', 'signet', 'regtest'],
              description: 'xpub (bitcoin, default) or tpub',
            },
          },
        },
        produces: ['application/json', PEM_TYPE],
        response: responses(200, {
          type: 'object',
          additionalProperties: false,
          required: ['keyId', 'keySpec', 'publicKey'],
          properties: {
            keyId: { type: 'string' },
            keySpec: { type: 'string' },
            publicKey: {
              type: 'string',
              description: 'FROST_SECP256K1_TR: the BIP341 output key (x-only); see taproot.internalKey',
            },
            path: { type: 'string' },
            xpub: { type: 'string', description: 'BIP32 extended public key at path (format=xpub)' },
            taproot: keyObject.properties.taproot,
          },
        }),
      },
    },
    async (req, reply) => {
      const rec = await visibleKey(ctx, req, req.params.keyId);
      transition(rec.state, 'getPublicKey');
      // Issue 14: the key at a derivation path and its xpub (coordinator/custody.ts).
      const at = publicKeyAt(rec, req.query.path, req.query.format, req.query.network);
      const publicKey = at.publicKey;
      const accept: string = String(req.headers.accept ?? '');
      if (accept.split(',').some((t) => t.trim().split(';')[0] === PEM_TYPE)) {
        const pem = publicKeyPem(rec.keySpec, Buffer.from(publicKey, 'hex'));
        if (pem === undefined)
          throw new KmsError('NotAcceptable', `${rec.keySpec} has no standard SPKI encoding; ask for JSON`);
        return reply.type(PEM_TYPE).send(pem);
      }
      return { keyId: rec.keyId, keySpec: rec.keySpec, ...at };
    },
  );
}
