/**
 * The configured nodes with their reachability and the keys each holds, and each node's own audit
 * chain relayed as the node signed it (review M-3: the coordinator cannot rewrite it unseen).
 */
import { signedAuditHeadSchema } from '../../net/node-audit-head.ts';
import { MAX_AUDIT_PAGE } from '../../net/rpc.ts';
import { KmsError } from '../../protocol/errors.ts';
import type { AppContext, KmsApp } from './context.ts';
import { auditRecord, bearer, NODE_ID, responses } from './schemas.ts';

export function nodeRoutes(app: KmsApp, ctx: AppContext): void {
  app.get(
    '/v1/nodes',
    {
      config: { permission: 'nodes:read', action: 'ListNodes' },
      schema: {
        summary: 'List nodes',
        tags: ['nodes'],
        security: bearer,
        response: responses(200, {
          type: 'object',
          additionalProperties: false,
          required: ['nodes'],
          properties: {
            nodes: {
              type: 'array',
              items: {
                type: 'object',
                additionalProperties: false,
                required: ['id', 'peerId', 'address', 'reachable', 'keys'],
                properties: {
                  id: { type: 'string' },
                  peerId: { type: 'string' },
                  address: { type: 'string', description: 'dialable multiaddr' },
                  reachable: { type: 'boolean' },
                  keys: { type: 'array', items: { type: 'string' } },
                },
              },
            },
          },
        }),
      },
    },
    async () => ({ nodes: await ctx.cluster.nodes() }),
  );
  app.get<{ Params: { nodeId: string }; Querystring: { after?: string; limit?: string } }>(
    '/v1/nodes/:nodeId/audit',
    {
      config: { permission: 'audit:read', action: 'GetNodeAudit' },
      schema: {
        summary: "A page of a node's own audit chain and its head signed with the node identity key",
        description:
          'Relayed as the node answered it: check the chain and the signed head against the node peer id from the cluster file (kms audit verify --nodes).',
        tags: ['audit'],
        security: bearer,
        params: {
          type: 'object',
          additionalProperties: false,
          required: ['nodeId'],
          properties: { nodeId: { type: 'string', pattern: NODE_ID } },
        },
        querystring: {
          type: 'object',
          additionalProperties: false,
          properties: {
            after: {
              type: 'string',
              pattern: '^(0|[1-9][0-9]{0,15})$',
              description: 'sequence number (exclusive)',
            },
            limit: {
              type: 'string',
              pattern: '^[1-9][0-9]{0,3}$',
              description: `page size, at most ${MAX_AUDIT_PAGE} (default 100)`,
            },
          },
        },
        response: responses(200, {
          type: 'object',
          additionalProperties: false,
          required: ['node', 'records', 'head'],
          properties: {
            node: { type: 'string' },
            records: {
              type: 'array',
              items: auditRecord,
            },
            head: signedAuditHeadSchema,
            nextAfter: { type: 'integer', description: 'pass as `after` for the next page' },
          },
        }),
      },
    },
    async (req) => {
      if (!ctx.cluster.nodeAudit) throw new KmsError('NotFound', 'this cluster keeps no node audit chains');
      if (!ctx.cluster.nodeIds().includes(req.params.nodeId)) {
        throw new KmsError('NotFound', `node ${req.params.nodeId} is not configured`);
      }
      const limit = Math.min(Number(req.query.limit ?? 100), MAX_AUDIT_PAGE);
      const page = await ctx.cluster.nodeAudit(req.params.nodeId, {
        limit,
        ...(req.query.after === undefined ? {} : { after: Number(req.query.after) }),
      });
      const last = page.records.at(-1);
      return {
        node: req.params.nodeId,
        records: page.records,
        head: page.head,
        ...(page.records.length === limit && last ? { nextAfter: last.seq } : {}),
      };
    },
  );
}
