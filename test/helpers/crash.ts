/**
 * Test fixture for crash tests on real processes (issue 7, threats F-01..F-06, F-34): a devnet
 * (test/helpers/devnet-process.ts layout, SoftHSM2 tokens) whose processes this test process
 * starts itself, so one of them can be restarted with extra env (`KMS_ENABLE_CRASH_POINTS=1`,
 * `KMS_CRASH_AT=<point>`, see node/crash-points.ts) and then with its normal env again.
 *
 * Sessions use short deadlines so a crashed member costs seconds, not the default 30 s.
 *
 * A "probe" is added to the allow-list as a second coordinator: a libp2p peer in the test process
 * that sends node RPCs directly (`status` to read every node's active epoch while it runs, and
 * `sign-commit`/`sign-share` to drive one signing session by hand across a restart, with a sign
 * request signed by the devnet admin: `signAuth`).
 */
import { execFile } from 'node:child_process';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { signedHeaders } from '../../client/sign-request.ts';
import { generateIdentityKey, peerIdOf } from '../../net/identity.ts';
import type { AuthorizationWire } from '../../net/signed-request.ts';
import { type RpcRequest, decodeJsonFrame, encodeRpc } from '../../net/rpc.ts';
import { RPC_PROTOCOL, type Transport, createTransport } from '../../net/transport.ts';
import { NODE_BIN, type ProcessSpec, ROOT, readProcesses, startProcess } from '../../scripts/devnet-lib.ts';
import { trustCa } from '../../scripts/devnet-tls.ts';
import { type Devnet, createDevnet } from './devnet-process.ts';

const run = promisify(execFile);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** The environment that arms one crash point in a process. */
export const crashEnv = (point: string): Record<string, string> => ({
  KMS_ENABLE_CRASH_POINTS: '1',
  KMS_CRASH_AT: point,
});

export type NodeKeyStatus = { keyId: string; state: string; activeEpoch?: number; pendingEpoch?: number };

export type CrashNet = {
  readonly devnet: Devnet;
  readonly dir: string;
  readonly nodeIds: readonly string[];
  /** Starts `name` (stopping it first if it runs) with its normal env plus `extraEnv`; waits until it answers. */
  restart(name: string, extraEnv?: Record<string, string>): Promise<void>;
  /** Waits until a node answers the probe (the coordinator: until it sees every node). */
  waitUp(name: string): Promise<void>;
  /** Starts `name` without waiting for it to answer (an armed crash point may fire at once). */
  launch(name: string, extraEnv?: Record<string, string>): void;
  /** SIGTERM (then SIGKILL after a grace period) and wait until the process is gone. */
  stop(name: string): Promise<void>;
  /** SIGKILL now, like a power cut. */
  kill(name: string): Promise<void>;
  /** Whether the process runs (a zombie counts as dead). */
  running(name: string): boolean;
  /** Waits until the process is gone; throws after `timeoutMs`. */
  waitDead(name: string, timeoutMs: number): Promise<void>;
  /** The process's log (stdout and stderr). */
  log(name: string): string;
  /** A node RPC sent by the probe (typed KmsError on refusal, as the coordinator sees it). */
  rpc<T = any>(nodeId: string, req: RpcRequest, timeoutMs?: number): Promise<T>;
  /**
   * The `auth` of a raw `sign-commit` for `message` (hex) with `keyId`: a sign request signed by the
   * devnet admin, as the coordinator forwards a client's (the nodes require one).
   */
  signAuth(keyId: string, message: string): AuthorizationWire;
  /** A node's keys as its `status` RPC reports them. */
  keysOf(nodeId: string): Promise<NodeKeyStatus[]>;
  /** Waits until the coordinator answers and sees every node reachable. */
  waitApi(): Promise<void>;
  close(): Promise<void>;
};

/** Whether a pid is a live process (a zombie, which nobody may reap here, is dead). */
export function pidAlive(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const state = stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3);
    return state !== 'Z' && state !== 'X';
  } catch {
    return false;
  }
}

export async function createCrashNet(
  nodes: number,
  opts: { sessionTimeoutMs?: number; signTimeoutMs?: number } = {},
): Promise<CrashNet> {
  const sessionTimeoutMs = opts.sessionTimeoutMs ?? 3_000;
  const d = await createDevnet(nodes);
  const dir = d.dir;
  try {
    await run(NODE_BIN, ['scripts/devnet.ts', '--init-only'], {
      cwd: ROOT,
      env: { ...process.env, ...d.env },
      timeout: 120_000,
    });
  } catch (e) {
    await d.cleanup();
    throw new Error(`devnet init failed: ${(e as { stderr?: string }).stderr ?? String(e)}`);
  }
  d.token = readFileSync(join(dir, 'admin-token'), 'utf8').trim();
  trustCa(join(dir, 'ca.pem')); // the API is HTTPS with the devnet's own CA

  // Short deadlines (nodes: env; coordinator: its config file's cluster section).
  const specs = readProcesses(dir).map((p) =>
    p.name === 'coordinator'
      ? p
      : { ...p, env: { ...p.env, KMS_SESSION_TIMEOUT_MS: String(sessionTimeoutMs) } },
  );
  writeFileSync(join(dir, 'processes.json'), `${JSON.stringify(specs, null, 2)}\n`);
  const coordFile = join(dir, 'coordinator', 'coordinator.json');
  const coordCfg = JSON.parse(readFileSync(coordFile, 'utf8'));
  coordCfg.cluster.sessionTimeoutMs = sessionTimeoutMs;
  coordCfg.cluster.signTimeoutMs = opts.signTimeoutMs ?? 3_000;
  writeFileSync(coordFile, `${JSON.stringify(coordCfg, null, 2)}\n`);

  // The probe: a second allowed coordinator identity, living in this test process.
  const clusterFile = join(dir, 'cluster.json');
  const cluster = JSON.parse(readFileSync(clusterFile, 'utf8')) as {
    nodes: { id: string; peerId: string; addresses: string[] }[];
    coordinators: { id: string; peerId: string; addresses: string[] }[];
  };
  const probeKey = await generateIdentityKey();
  cluster.coordinators.push({ id: 'coordinator-probe', peerId: peerIdOf(probeKey), addresses: [] });
  writeFileSync(clusterFile, `${JSON.stringify(cluster, null, 2)}\n`);
  const peerOf = new Map(cluster.nodes.map((n) => [n.id, n.peerId]));

  const pids = new Map<string, number>();
  const spec = (name: string): ProcessSpec => {
    const s = specs.find((p) => p.name === name);
    if (!s) throw new Error(`no devnet process ${name}`);
    return s;
  };
  let probe: Transport | undefined;

  const net: CrashNet = {
    devnet: d,
    dir,
    nodeIds: cluster.nodes.map((n) => n.id),
    running: (name) => {
      const pid = pids.get(name);
      return pid !== undefined && pidAlive(pid);
    },
    launch: (name, extraEnv = {}) => {
      if (net.running(name)) throw new Error(`${name} is already running`);
      const s = spec(name);
      pids.set(name, startProcess(dir, { ...s, env: { ...s.env, ...extraEnv } }, { detached: true }));
    },
    restart: async (name, extraEnv = {}) => {
      if (net.running(name)) await net.stop(name);
      net.launch(name, extraEnv);
      await net.waitUp(name);
    },
    waitUp: async (name) => {
      if (name === 'coordinator') {
        await net.waitApi();
        return;
      }
      const until = Date.now() + 30_000;
      for (;;) {
        try {
          await net.rpc(name, { op: 'status' }, 2_000);
          return;
        } catch (e) {
          if (!net.running(name))
            throw new Error(`${name} exited while starting:\n${net.log(name).slice(-2000)}`);
          if (Date.now() > until) throw new Error(`${name} does not answer: ${String(e)}`);
          await sleep(150);
        }
      }
    },
    stop: async (name) => {
      const pid = pids.get(name);
      if (pid === undefined || !pidAlive(pid)) return;
      process.kill(pid, 'SIGTERM');
      const until = Date.now() + 10_000;
      while (pidAlive(pid) && Date.now() < until) await sleep(50);
      if (pidAlive(pid)) process.kill(pid, 'SIGKILL');
      while (pidAlive(pid)) await sleep(20);
    },
    kill: async (name) => {
      const pid = pids.get(name);
      if (pid === undefined || !pidAlive(pid)) return;
      process.kill(pid, 'SIGKILL');
      while (pidAlive(pid)) await sleep(20);
    },
    waitDead: async (name, timeoutMs) => {
      const until = Date.now() + timeoutMs;
      while (net.running(name)) {
        if (Date.now() > until) throw new Error(`${name} is still running after ${timeoutMs} ms`);
        await sleep(50);
      }
    },
    log: (name) => {
      const f = join(dir, 'logs', `${name}.log`);
      return existsSync(f) ? readFileSync(f, 'utf8') : '';
    },
    rpc: async (nodeId, req, timeoutMs = 5_000) => {
      const peer = peerOf.get(nodeId);
      if (!peer || !probe) throw new Error(`no node ${nodeId}`);
      return decodeJsonFrame(await probe.request(peer, RPC_PROTOCOL, encodeRpc(req), { timeoutMs })) as any;
    },
    signAuth: (keyId, message) => {
      const path = `/v1/keys/${keyId}/sign`;
      const body = JSON.stringify({ message });
      const headers = signedHeaders({ method: 'POST', url: `${d.url}${path}`, body }, d.admin());
      return {
        request: { method: 'POST', path, query: '', headers, body: Buffer.from(body).toString('base64') },
      };
    },
    keysOf: async (nodeId) => ((await net.rpc(nodeId, { op: 'status' })) as { keys: NodeKeyStatus[] }).keys,
    waitApi: async () => {
      const until = Date.now() + 30_000;
      let last = '';
      while (Date.now() < until) {
        try {
          const r = await d.api('GET', '/v1/nodes');
          const list = (r.body?.nodes ?? []) as { reachable: boolean }[];
          last = `${r.status} ${list.filter((n) => n.reachable).length}/${nodes}`;
          if (r.status === 200 && list.filter((n) => n.reachable).length === nodes) return;
        } catch (e) {
          last = String(e);
        }
        if (!net.running('coordinator'))
          throw new Error(`coordinator exited:\n${net.log('coordinator').slice(-2000)}`);
        await sleep(150);
      }
      throw new Error(`coordinator not ready: ${last}`);
    },
    close: async () => {
      try {
        await probe?.stop();
      } finally {
        await Promise.all(specs.map((p) => net.stop(p.name)));
        await d.cleanup();
      }
    },
  };

  try {
    probe = await createTransport({
      privateKey: probeKey,
      listen: [],
      allow: cluster.nodes.map((n) => ({ peerId: n.peerId, addresses: n.addresses })),
    });
    for (const p of specs) if (p.name !== 'coordinator') net.launch(p.name);
    for (const id of net.nodeIds) await net.waitUp(id);
    net.launch('coordinator');
    await net.waitUp('coordinator');
  } catch (e) {
    await net.close();
    throw e;
  }
  return net;
}
