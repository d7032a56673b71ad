/** Starts a real coordinator (fastify on 127.0.0.1:0, LevelDB in a temp dir) over a LocalCluster. */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type RunningCoordinator, startCoordinator } from '../../coordinator/app.ts';
import { parseConfig } from '../../coordinator/config.ts';
import { LocalCluster } from '../../coordinator/local-cluster.ts';

export const ADMIN_TOKEN = `test-admin-${'x'.repeat(32)}`;

export type TestCoordinator = RunningCoordinator & {
  cluster: LocalCluster;
  dir: string;
  clock: { t: number; now(): number };
  /** fetch against the coordinator with a bearer token (admin by default). */
  call(
    method: string,
    path: string,
    body?: unknown,
    opts?: { token?: string | null; headers?: Record<string, string>; raw?: string },
  ): Promise<{ status: number; headers: Headers; body: any; text: string }>;
  stop(): Promise<void>;
};

export async function startTestCoordinator(
  opts: { nodes?: number; config?: Record<string, unknown> } = {},
): Promise<TestCoordinator> {
  const dir = mkdtempSync(join(tmpdir(), 'kms-coord-'));
  const cluster = new LocalCluster({ nodes: opts.nodes ?? 3 });
  const clock = { t: Date.parse('2030-01-01T00:00:00Z'), now: () => clock.t };
  const config = parseConfig({
    host: '127.0.0.1',
    port: 0,
    dataDir: dir,
    adminToken: ADMIN_TOKEN,
    logLevel: 'silent',
    ...opts.config,
  });
  const c = await startCoordinator({ config, cluster, clock });
  const call: TestCoordinator['call'] = async (method, path, body, o = {}) => {
    const headers: Record<string, string> = { ...(o.headers ?? {}) };
    const token = o.token === undefined ? ADMIN_TOKEN : o.token;
    if (token !== null) headers.authorization = `Bearer ${token}`;
    let payload: string | undefined = o.raw;
    if (body !== undefined) payload = JSON.stringify(body);
    if (payload !== undefined && headers['content-type'] === undefined)
      headers['content-type'] = 'application/json';
    const res = await fetch(`${c.url}${path}`, {
      method,
      headers,
      ...(payload === undefined ? {} : { body: payload }),
    });
    const text = await res.text();
    let parsed: unknown;
    try {
      parsed = JSON.parse(text);
    } catch {
      parsed = undefined;
    }
    return { status: res.status, headers: res.headers, body: parsed, text };
  };
  return {
    ...c,
    cluster,
    dir,
    clock,
    call,
    stop: async () => {
      await c.close();
      await cluster.close();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
