/** Reading the hash-chained audit log (admin, auditor). `kms audit verify` checks the chain client-side. */
import type { AppContext, KmsApp } from './context.ts';
import { auditRecord, bearer, KEY_ID, responses } from './schemas.ts';

export function auditRoutes(app: KmsApp, ctx: AppContext): void {
  app.get<{ Querystring: { keyId?: string; after?: string; limit?: string } }>(
    '/v1/audit',
    {
      config: { permission: 'audit:read', action: 'ListAudit' },
      schema: {
        summary: 'Audit records after a sequence number, oldest first',
        tags: ['audit'],
        security: bearer,
        querystring: {
          type: 'object',
          additionalProperties: false,
          properties: {
            keyId: { type: 'string', pattern: KEY_ID },
            after: {
              type: 'string',
              pattern: '^(0|[1-9][0-9]{0,15})$',
              description: 'sequence number (exclusive)',
            },
            limit: {
              type: 'string',
              pattern: '^[1-9][0-9]{0,3}$',
              description: 'page size, at most 1000 (default 100)',
            },
          },
        },
        response: responses(200, {
          type: 'object',
          additionalProperties: false,
          required: ['records'],
          properties: {
            records: {
              type: 'array',
              items: auditRecord,
            },
            nextAfter: { type: 'integer', description: 'pass as `after` for the next page' },
          },
        }),
      },
    },
    async (req) => {
      const limit = Math.min(Number(req.query.limit ?? 100), 1000);
      const records = await ctx.audit.list({
        limit,
        ...(req.query.after === undefined ? {} : { after: Number(req.query.after) }),
        ...(req.query.keyId === undefined ? {} : { keyId: req.query.keyId }),
      });
      const last = records.at(-1);
      return records.length === limit && last ? { records, nextAfter: last.seq } : { records };
    },
  );
}
