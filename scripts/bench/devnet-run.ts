/**
 * A throwaway local devnet for the service benchmark: the same processes `npm run devnet` starts
 * (scripts/devnet.ts: a coordinator and N nodes, each node with its own SoftHSM2 token), in a temp
 * dir on free ports. `stop()` stops every process, and `dispose()` also removes the dir; callers
 * run them in `finally` so an error never leaves processes behind.
 */
import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { findSoftHsmLibrary, SOFTHSM_INSTALL_HINT } from '../../node/softhsm.ts';
import { NODE_BIN, type ProcessSpec, ROOT, freeRange, readProcesses, startProcess, stopProcess } from '../devnet-lib.ts';

const run = promisify(execFile);



export type BenchDevnet = {
  readonly dir: string;
  readonly url: string;
  readonly nodes: number;
  token: string;
  /** Starts every process (again) with the state in `dir`; resolves when all nodes are reachable. */
  start(): Promise<void>;
  /**
   * Starts every process directly (no `/v1/nodes` readiness check) and waits until `ready()` is
   * true: with many keys stored the node status RPC outgrows the transport's message limit, so
   * the devnet script's readiness check cannot pass (see the key-count notes in service.md).
   */
  startProcesses(ready: () => Promise<boolean>, timeoutMs?: number): Promise<void>;
  /** SIGTERM to every process (a clean exit, so `--cpu-prof` files are written), then SIGKILL. */
  stop(): Promise<void>;
  /** Adds env to the named processes for their next start (e.g. NODE_OPTIONS=--cpu-prof). */
  setEnv(names: readonly string[], env: Record<string, string>): void;
  dispose(): Promise<void>;
};

export async function createBenchDevnet(nodes: number): Promise<BenchDevnet> {
  try {
    findSoftHsmLibrary();
  } catch {
    throw new Error(`the service benchmark needs SoftHSM2 for per-node HSM tokens. ${SOFTHSM_INSTALL_HINT}`);
  }
  const dir = mkdtempSync(join(tmpdir(), 'tkms-bench-'));
  const port = await freeRange(1);
  const p2p = await freeRange(nodes + 1);
  const env: Record<string, string> = {
    KMS_DEVNET_DIR: dir,
    KMS_NODES: String(nodes),
    KMS_PORT: String(port),
    KMS_P2P_PORT_BASE: String(p2p),
  };
  const d: BenchDevnet = {
    dir,
    nodes,
    url: `http://127.0.0.1:${port}`,
    token: '',
    start: async () => {
      try {
        await run(NODE_BIN, ['scripts/devnet.ts', '--detach'], {
          cwd: ROOT,
          env: { ...process.env, ...env },
          timeout: 300_000,
        });
      } catch (e) {
        const err = e as { stderr?: string };
        throw new Error(`devnet did not start: ${err.stderr ?? String(e)}`);
      }
      d.token = readFileSync(join(dir, 'admin-token'), 'utf8').trim();
    },
    startProcesses: async (ready, timeoutMs = 120_000) => {
      for (const p of readProcesses(dir)) startProcess(dir, p, { detached: true });
      const until = Date.now() + timeoutMs;
      while (Date.now() < until) {
        if (await ready().catch(() => false)) return;
        await new Promise((r) => setTimeout(r, 500));
      }
      throw new Error(`devnet in ${dir} not ready after ${timeoutMs} ms`);
    },
    stop: async () => {
      let procs: ProcessSpec[] = [];
      try {
        procs = readProcesses(dir);
      } catch {
        return; // never initialized
      }
      await Promise.all(procs.map((p) => stopProcess(dir, p.name)));
    },
    setEnv: (names, extra) => {
      const procs = readProcesses(dir).map((p) =>
        names.includes(p.name) ? { ...p, env: { ...p.env, ...extra } } : p,
      );
      writeFileSync(join(dir, 'processes.json'), `${JSON.stringify(procs, null, 2)}\n`);
    },
    dispose: async () => {
      try {
        await d.stop();
      } finally {
        rmSync(dir, { recursive: true, force: true });
      }
    },
  };
  return d;
}

/** Creates, starts, runs `fn`, and always stops and removes the devnet. */
export async function withDevnet<T>(nodes: number, fn: (d: BenchDevnet) => Promise<T>): Promise<T> {
  const d = await createBenchDevnet(nodes);
  try {
    await d.start();
    return await fn(d);
  } finally {
    await d.dispose();
  }
}
