/**
 * A throwaway local devnet for the service benchmark: the same processes `npm run devnet` starts
 * (scripts/devnet.ts: a coordinator and N nodes, each node with its own SoftHSM2 token), in a temp
 * dir on free ports. `stop()` stops every process, and `dispose()` also removes the dir; callers
 * run them in `finally` so an error never leaves processes behind.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { type PrincipalSigner, principalFromPem } from '../../client/sign-request.ts';
import { createTempDevnet, DEVNET_ADMIN, readProcesses, startProcess } from '../devnet-lib.ts';

export type BenchDevnet = {
  readonly dir: string;
  readonly url: string;
  readonly nodes: number;
  token: string;
  /** The devnet's admin principal (`<dir>/admin-key`): signs every request that uses a key. */
  readonly signer: PrincipalSigner;
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
  const t = await createTempDevnet(nodes, 'the service benchmark');
  const { dir } = t;
  let signer: PrincipalSigner | undefined;
  const d: BenchDevnet = {
    dir,
    nodes,
    url: t.url,
    get token() {
      return t.token;
    },
    set token(v: string) {
      t.token = v;
    },
    get signer() {
      // Made by the devnet at its first start.
      signer ??= principalFromPem(DEVNET_ADMIN, readFileSync(t.adminKeyFile));
      return signer;
    },
    start: () => t.start(300_000),
    startProcesses: async (ready, timeoutMs = 120_000) => {
      for (const p of readProcesses(dir)) startProcess(dir, p, { detached: true });
      const until = Date.now() + timeoutMs;
      while (Date.now() < until) {
        if (await ready().catch(() => false)) return;
        await new Promise((r) => setTimeout(r, 500));
      }
      throw new Error(`devnet in ${dir} not ready after ${timeoutMs} ms`);
    },
    stop: () => t.stopAll(),
    setEnv: (names, extra) => {
      const procs = readProcesses(dir).map((p) =>
        names.includes(p.name) ? { ...p, env: { ...p.env, ...extra } } : p,
      );
      writeFileSync(join(dir, 'processes.json'), `${JSON.stringify(procs, null, 2)}\n`);
    },
    dispose: () => t.dispose(),
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
