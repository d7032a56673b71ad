/**
 * Token management (admin only). The token is returned once, at creation; only its hash is kept.
 */
import { type Role, tokenView } from '../auth.ts';
import { PROBLEM_CONTENT_TYPE, problemOf } from '../problems.ts';
import { KmsError } from '../../protocol/errors.ts';
import { type AppContext, type KmsApp, auditDecision } from './context.ts';
import { bearer, KEY_ID, responses, role } from './schemas.ts';

const tokenObject = {
  type: 'object',
  additionalProperties: false,
  required: ['tokenId', 'name', 'role', 'createdAt'],
  properties: {
    tokenId: { type: 'string' },
    name: { type: 'string' },
    role,
    keyIds: { type: 'array', items: { type: 'string' } },
    createdAt: { type: 'string', format: 'date-time' },
  },
};

export function tokenRoutes(app: KmsApp, ctx: AppContext): void {
  app.post<{ Body: { role: Role; name: string; keyIds?: string[] } }>(
    '/v1/tokens',
    {
      config: { permission: 'tokens:manage', action: 'CreateToken' },
      schema: {
        summary: 'Create an API token (shown once)',
        tags: ['tokens'],
        security: bearer,
        body: {
          type: 'object',
          additionalProperties: false,
          required: ['role', 'name'],
          properties: {
            role,
            name: { type: 'string', minLength: 1, maxLength: 128, pattern: '^[\\x20-\\x7e]+$' },
            keyIds: {
              type: 'array',
              items: { type: 'string', pattern: KEY_ID },
              minItems: 1,
              maxItems: 1000,
              uniqueItems: true,
              description: 'signer tokens only: the keys this token may see and use',
            },
          },
        },
        response: responses(201, {
          type: 'object',
          additionalProperties: false,
          required: ['tokenId', 'token', 'name', 'role', 'createdAt'],
          properties: {
            ...tokenObject.properties,
            token: { type: 'string', description: 'the bearer token; not shown again' },
          },
        }),
      },
    },
    async (req, reply) => {
      await auditDecision(ctx, req, { role: req.body.role, name: req.body.name, keyIds: req.body.keyIds });
      const { token, record } = await ctx.tokens.create(req.body);
      req.audit.action = 'CreateToken';
      // A replayed create must not reveal the token again (and the idempotency store must never hold it).
      const p = problemOf(
        new KmsError(
          'Conflict',
          `token ${record.tokenId} was already created with this Idempotency-Key; a token is shown only once`,
        ),
      );
      req.idempotencyOverride = {
        status: p.status,
        contentType: PROBLEM_CONTENT_TYPE,
        body: JSON.stringify(p),
      };
      return reply.code(201).send({ ...tokenView(record), token });
    },
  );

  app.get(
    '/v1/tokens',
    {
      config: { permission: 'tokens:manage', action: 'ListTokens' },
      schema: {
        summary: 'List tokens (never the tokens themselves)',
        tags: ['tokens'],
        security: bearer,
        response: responses(200, {
          type: 'object',
          additionalProperties: false,
          required: ['tokens'],
          properties: { tokens: { type: 'array', items: tokenObject } },
        }),
      },
    },
    async () => ({ tokens: (await ctx.tokens.list()).map(tokenView) }),
  );

  app.delete<{ Params: { tokenId: string } }>(
    '/v1/tokens/:tokenId',
    {
      config: { permission: 'tokens:manage', action: 'RevokeToken' },
      schema: {
        summary: 'Revoke a token',
        tags: ['tokens'],
        security: bearer,
        params: {
          type: 'object',
          additionalProperties: false,
          required: ['tokenId'],
          properties: { tokenId: { type: 'string', pattern: '^[A-Za-z0-9-]{1,64}$' } },
        },
        response: responses(200, tokenObject),
      },
    },
    async (req) => {
      await auditDecision(ctx, req, { tokenId: req.params.tokenId });
      return tokenView(await ctx.tokens.revoke(req.params.tokenId));
    },
  );
}
