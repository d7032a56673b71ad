/**
 * A node's admin server (config `adminListen`, off by default): plain HTTP meant for loopback, with
 * no authentication and nothing secret in it.
 *
 *   GET /healthz   200 while the process runs (liveness)
 *   GET /readyz    200 when the node can do its work, else 503; the body says which check failed
 *   GET /metrics   Prometheus text format (node/metrics.ts)
 *
 * Ready means all of:
 * - sealer: a seal and unseal round trip under the node's identity scope succeeds (the HSM token
 *   is there and the session works, not merely configured);
 * - store: LevelDB is open and no write has failed (NodeStore.healthy);
 * - reachable: a coordinator on the allow-list answers a ping, OR a majority of the other nodes
 *   do. A node has no single threshold (each key has its own), so "a majority of its peers" stands
 *   in for "t peers": with it the node can take part in sessions for any key with t <= n/2 + 1
 *   while its coordinator restarts, and compose health checks do not wait on the coordinator.
 */
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { ClusterFile } from '../net/cluster-file.ts';
import type { Transport } from '../net/transport.ts';
import type { NodeMetrics } from './metrics.ts';
import type { Sealer } from './sealer.ts';
import type { NodeStore } from './store.ts';

type Verdict = 'pass' | 'fail';

export type Readiness = {
  readonly status: Verdict;
  readonly checks: {
    readonly sealer: Verdict;
    readonly store: Verdict;
    readonly coordinator: Verdict;
    /** Other nodes answering a ping, out of how many, and how many make the node ready. */
    readonly peers: { readonly reachable: number; readonly of: number; readonly needed: number };
  };
};

export type ReadinessDeps = {
  readonly nodeId: string;
  readonly sealer: Sealer;
  readonly store: Pick<NodeStore, 'healthy'>;
  readonly transport: Pick<Transport, 'isReachable'>;
  readonly cluster: ClusterFile;
  /** Per-check bound (ping, sealer round trip). Default 1000 ms. */
  readonly timeoutMs?: number;
};

const PROBE = new Uint8Array([0x72, 0x65, 0x61, 0x64, 0x79]); // "ready"

function within<T>(ms: number, p: Promise<T>, fallback: T): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<T>((resolve) => {
    timer = setTimeout(() => resolve(fallback), ms);
  });
  return Promise.race([p.catch(() => fallback), late]).finally(() => clearTimeout(timer));
}

/** The checks behind /readyz, as one function the server calls per request. */
export function readinessProbe(d: ReadinessDeps): () => Promise<Readiness> {
  const t = d.timeoutMs ?? 1_000;
  const peers = d.cluster.nodes.filter((n) => n.id !== d.nodeId).map((n) => n.peerId);
  const needed = Math.floor(peers.length / 2) + 1;
  const ctx = { scope: 'identity', nodeId: d.nodeId, purpose: 'readiness-probe' };
  const sealerWorks = async () => {
    const opened = await d.sealer.unseal(ctx, await d.sealer.seal(ctx, PROBE));
    return opened.length === PROBE.length && opened.every((b, i) => b === PROBE[i]);
  };
  return async () => {
    const [sealer, coordinators, nodes] = await Promise.all([
      within(t, sealerWorks(), false),
      Promise.all(d.cluster.coordinators.map((c) => d.transport.isReachable(c.peerId, t))),
      Promise.all(peers.map((p) => d.transport.isReachable(p, t))),
    ]);
    const store = d.store.healthy();
    const coordinator = coordinators.some(Boolean);
    const reachable = nodes.filter(Boolean).length;
    const ready = sealer && store && (coordinator || reachable >= needed);
    const v = (b: boolean): Verdict => (b ? 'pass' : 'fail');
    return {
      status: v(ready),
      checks: {
        sealer: v(sealer),
        store: v(store),
        coordinator: v(coordinator),
        peers: { reachable, of: peers.length, needed },
      },
    };
  };
}

export type HealthServer = {
  /** `http://host:port`, with the port actually bound. */
  readonly url: string;
  close(): Promise<void>;
};

function parseListen(listen: string): { host: string; port: number } {
  const m = /^(?:\[([^\]]+)\]|([^:]+)):(\d{1,5})$/.exec(listen);
  const port = Number(m?.[3]);
  if (!m || port > 65535) throw new Error(`adminListen ${listen} is not host:port`);
  return { host: m[1] ?? m[2]!, port };
}

/** Starts the admin server on `listen` (`host:port`; port 0 = any free port). */
export async function startHealthServer(opts: {
  listen: string;
  metrics: NodeMetrics;
  ready: () => Promise<Readiness>;
  log: { warn: (o: object, m: string) => void };
}): Promise<HealthServer> {
  const { host, port } = parseListen(opts.listen);
  const json = (res: ServerResponse, status: number, body: unknown) => {
    res.writeHead(status, { 'content-type': 'application/json', 'cache-control': 'no-store' });
    res.end(JSON.stringify(body));
  };
  const handle = async (req: IncomingMessage, res: ServerResponse) => {
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.writeHead(405, { allow: 'GET, HEAD' }).end();
      return;
    }
    switch ((req.url ?? '/').split('?')[0]) {
      case '/healthz':
        return json(res, 200, { status: 'pass' });
      case '/readyz': {
        const r = await opts.ready();
        return json(res, r.status === 'pass' ? 200 : 503, r);
      }
      case '/metrics': {
        const text = await opts.metrics.registry.metrics();
        res.writeHead(200, { 'content-type': opts.metrics.registry.contentType });
        res.end(text);
        return;
      }
      default:
        return json(res, 404, { status: 'fail', detail: 'not found: /healthz, /readyz, /metrics' });
    }
  };
  const server = createServer({ requestTimeout: 10_000, headersTimeout: 5_000 }, (req, res) => {
    handle(req, res).catch((e: unknown) => {
      opts.log.warn({ err: (e as Error).message }, 'admin request failed');
      if (!res.headersSent) json(res, 500, { status: 'fail' });
      else res.destroy();
    });
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  const addr = server.address();
  const bound = typeof addr === 'object' && addr !== null ? addr.port : port;
  return {
    url: `http://${host.includes(':') ? `[${host}]` : host}:${bound}`,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}
