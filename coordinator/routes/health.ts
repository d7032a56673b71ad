/** Unauthenticated probes: liveness, readiness, Prometheus metrics, the OpenAPI document. */
import type { AppContext, KmsApp } from './context.ts';

const healthBody = {
  type: 'object',
  properties: {
    status: { type: 'string', enum: ['pass', 'fail'] },
    checks: { type: 'object', additionalProperties: true },
  },
};

export function healthRoutes(app: KmsApp, ctx: AppContext): void {
  app.get(
    '/healthz',
    {
      config: { public: true },
      schema: { summary: 'Liveness: the process is up', tags: ['health'], response: { 200: healthBody } },
    },
    async () => ({ status: 'pass' }),
  );

  app.get(
    '/readyz',
    {
      config: { public: true },
      schema: {
        summary: 'Readiness: store open and enough nodes reachable',
        tags: ['health'],
        response: { 200: healthBody, 503: healthBody },
      },
    },
    async (_req, reply) => {
      const store = ctx.storeOpen();
      let reachable = 0;
      let total = 0;
      try {
        const nodes = await ctx.cluster.nodes();
        total = nodes.length;
        reachable = nodes.filter((n) => n.reachable).length;
      } catch {
        reachable = 0;
      }
      const nodesOk = reachable >= ctx.config.readyMinNodes;
      const ok = store && nodesOk;
      return reply.code(ok ? 200 : 503).send({
        status: ok ? 'pass' : 'fail',
        checks: {
          store: store ? 'pass' : 'fail',
          nodes: { reachable, total, required: ctx.config.readyMinNodes },
        },
      });
    },
  );

  app.get(
    '/metrics',
    {
      config: { public: true },
      schema: { summary: 'Prometheus metrics', tags: ['health'], produces: ['text/plain'] },
    },
    async (_req, reply) => {
      const text = await ctx.metrics.registry.metrics();
      return reply.type(ctx.metrics.registry.contentType).send(text);
    },
  );

  app.get(
    '/openapi.json',
    { config: { public: true }, schema: { summary: 'This OpenAPI document', tags: ['health'] } },
    async () => app.swagger(),
  );
}
