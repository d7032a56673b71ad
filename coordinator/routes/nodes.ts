/** The configured nodes with their reachability and the keys each holds. */
import type { AppContext, KmsApp } from './context.ts';
import { bearer, responses } from './schemas.ts';

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
}
