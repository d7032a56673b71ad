/**
 * Test fixture: the real devnet, as `npm run devnet` starts it: a coordinator and N node processes
 * on 127.0.0.1, each node with its own SoftHSM2 token (tests fail with the install hint when
 * SoftHSM2 is missing; `.ci/run` installs it). Ports are picked free; state lives in a temp dir.
 */
import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { SOFTHSM_INSTALL_HINT, findSoftHsmLibrary } from '../../node/softhsm.ts';
import { NODE_BIN, ROOT, freeRange, readProcesses, stopProcess } from '../../scripts/devnet-lib.ts';

const run = promisify(execFile);

export type Devnet = {
  dir: string;
  url: string;
  token: string;
  env: Record<string, string>;
  /** Runs `kms` (scripts/kms.ts) against this devnet; resolves with stdout, exit code, stderr. */
  kms(args: string[]): Promise<{ code: number; stdout: string; stderr: string }>;
  api(method: string, path: string, body?: unknown): Promise<{ status: number; body: any }>;
  /** Starts (or restarts) the whole devnet with its existing state. */
  start(): Promise<void>;
  /** Waits (up to 20 s) until the coordinator sees at least `count` nodes reachable. */
  waitReachable(count: number): Promise<void>;
  stopAll(): Promise<void>;
  cleanup(): Promise<void>;
};

export async function createDevnet(nodes = 5): Promise<Devnet> {
  try {
    findSoftHsmLibrary();
  } catch {
    throw new Error(`end-to-end tests need SoftHSM2 for per-node HSM tokens. ${SOFTHSM_INSTALL_HINT}`);
  }
  const dir = mkdtempSync(join(tmpdir(), 'tkms-devnet-'));
  const port = await freeRange(1);
  const p2p = await freeRange(nodes + 1);
  const env: Record<string, string> = {
    KMS_DEVNET_DIR: dir,
    KMS_NODES: String(nodes),
    KMS_PORT: String(port),
    KMS_P2P_PORT_BASE: String(p2p),
  };
  const url = `http://127.0.0.1:${port}`;
  const d: Devnet = {
    dir,
    url,
    token: '',
    env,
    kms: async (args) => {
      try {
        const r = await run(NODE_BIN, ['scripts/kms.ts', ...args], {
          cwd: ROOT,
          env: { ...process.env, ...env, KMS_URL: url, KMS_TOKEN: d.token },
          timeout: 120_000,
        });
        return { code: 0, stdout: r.stdout, stderr: r.stderr };
      } catch (e) {
        const err = e as { code?: number; stdout?: string; stderr?: string };
        return {
          code: typeof err.code === 'number' ? err.code : -1,
          stdout: err.stdout ?? '',
          stderr: err.stderr ?? '',
        };
      }
    },
    api: async (method, path, body) => {
      const r = await fetch(`${url}${path}`, {
        method,
        headers: {
          authorization: `Bearer ${d.token}`,
          ...(body === undefined ? {} : { 'content-type': 'application/json' }),
        },
        ...(body === undefined ? {} : { body: JSON.stringify(body) }),
      });
      const text = await r.text();
      let parsed: unknown = text;
      try {
        parsed = JSON.parse(text);
      } catch {
        /* not JSON (PEM) */
      }
      return { status: r.status, body: parsed };
    },
    start: async () => {
      try {
        await run(NODE_BIN, ['scripts/devnet.ts', '--detach'], {
          cwd: ROOT,
          env: { ...process.env, ...env },
          timeout: 180_000,
        });
      } catch (e) {
        const err = e as { stderr?: string };
        throw new Error(`devnet did not start: ${err.stderr ?? String(e)}`);
      }
      d.token = readFileSync(join(dir, 'admin-token'), 'utf8').trim();
    },
    waitReachable: async (count) => {
      for (let i = 0; i < 100; i++) {
        const r = await d.api('GET', '/v1/nodes');
        const list = r.body?.nodes as { reachable: boolean }[] | undefined;
        if (list && list.filter((n) => n.reachable).length >= count) return;
        await new Promise((res) => setTimeout(res, 200));
      }
      throw new Error(`fewer than ${count} nodes reachable`);
    },
    stopAll: async () => {
      await Promise.all(readProcesses(dir).map((p) => stopProcess(dir, p.name)));
    },
    cleanup: async () => {
      try {
        await d.stopAll();
      } finally {
        rmSync(dir, { recursive: true, force: true });
      }
    },
  };
  return d;
}
