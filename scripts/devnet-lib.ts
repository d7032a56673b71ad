/**
 * The local devnet's layout and process control, shared by `npm run devnet` (scripts/devnet.ts),
 * `kms devnet status|stop|start` and the end-to-end tests, so all three run the same topology.
 *
 * <dir>/                     (KMS_DEVNET_DIR, default .devnet)
 *   admin-token              bootstrap admin bearer token (0600), unless KMS_ADMIN_TOKEN is set
 *                            (container layout: in coordinator/, the only service that reads it)
 *   admin-key                the bootstrap admin principal's Ed25519 private key (PKCS#8 PEM, 0600):
 *                            the CLI signs requests with it by default
 *   api-url                  the coordinator's HTTPS URL (the CLI's default KMS_URL)
 *   ca.pem                   the devnet's CA: it signed the coordinator's certificate (its key is gone)
 *   cluster.json             allow-list: every node's and the coordinator's peer id and address
 *   governance-genesis.json  governance version 1 (principal admin, admins 1 of [admin], one policy
 *                            allowing admin everything); its hash is every node's genesisHash
 *                            (container layout: these three public files are in public/, the
 *                            only top-level folder the nodes mount, read-only)
 *   processes.json           how to start each process (used by `kms devnet start <name>`)
 *   coordinator/             coordinator.json, identity.sealed + identity-passphrase (0600),
 *                            tls/server.{pem,key}, data/
 *   node-<k>/                node.json (adminListen: its /healthz, /readyz, /metrics), data/,
 *                            softhsm/ (token + softhsm2.conf) and pin, or passphrase
 *   logs/<name>.log          each process's output
 *   <name>.pid               pid of each running process
 */
import { execFile, spawn } from 'node:child_process';
import { closeSync, existsSync, mkdtempSync, openSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { promisify } from 'node:util';
import { SOFTHSM_INSTALL_HINT, findSoftHsmLibrary } from '../node/softhsm.ts';
import type { Governance, Principal } from '../policy/governance.ts';
import { OPERATIONS } from '../policy/policy-rule.ts';
import { trustCa } from './devnet-tls.ts';

const run = promisify(execFile);

export const ROOT = resolve(import.meta.dirname, '..');
export const NODE_BIN = process.execPath;

export type ProcessSpec = { name: string; args: string[]; env: Record<string, string> };

export function devnetDir(env: NodeJS.ProcessEnv = process.env): string {
  return resolve(env.KMS_DEVNET_DIR ?? '.devnet');
}

/** The admin port of every node container (docker-compose.yml's health checks ask it). */
export const DOCKER_ADMIN_PORT = 9100;

export function devnetApiUrlFile(dir: string): string {
  return join(dir, 'api-url');
}

/**
 * Where the devnet keeps the files every process may read (allow-list, genesis, CA): the devnet
 * dir itself, or its `public/` folder in the container layout (nodes mount only that, read-only).
 */
export function devnetPublicDir(dir: string): string {
  const pub = join(dir, 'public');
  return existsSync(join(pub, 'cluster.json')) ? pub : dir;
}

/** The devnet's allow-list (every node's peer id): what `kms audit verify --nodes` checks against. */
export function devnetClusterFile(dir: string): string {
  return join(devnetPublicDir(dir), 'cluster.json');
}

/** The bootstrap admin principal's id and private key file (PKCS#8 PEM, 0600). */
export const DEVNET_ADMIN = 'admin';
export function devnetAdminKeyFile(dir: string): string {
  return join(dir, 'admin-key');
}

/**
 * The devnet's governance genesis (version 1): one principal, `admin`, the admin group of one
 * with quorum 1, and one policy allowing `admin` every operation on every key with no approvals.
 * A development convenience (the devnet says so when it starts); approval flows are policies
 * added on top by later versions, signed by the admin quorum (docs/policies.md).
 */
export function genesisGovernance(admin: Principal): Governance {
  return {
    version: 1,
    previous: null,
    principals: [admin],
    groups: { admins: [admin.id] },
    admins: { group: 'admins', quorum: 1 },
    policies: [
      {
        id: 'devnet-admin-everything',
        effect: 'allow',
        operations: [...OPERATIONS],
        keys: ['*'],
        principals: [admin.id],
      },
    ],
  };
}

/** The devnet's API URL and CA file, when `dir` holds a devnet that has them. */
export function devnetApi(dir: string): { url: string; caFile: string } | undefined {
  try {
    const url = readFileSync(devnetApiUrlFile(dir), 'utf8').trim();
    const caFile = join(dir, 'ca.pem');
    return url !== '' && existsSync(caFile) ? { url, caFile } : undefined;
  } catch {
    return undefined;
  }
}

/**
 * Each node's admin URL (`http://<adminListen>`), from its node.json. The admin ports are local to
 * each node's machine, so only a client on that machine (here: the devnet's) can read them.
 */
export function nodeAdminUrls(dir: string): Map<string, string> {
  const out = new Map<string, string>();
  for (const p of readProcesses(dir)) {
    if (p.name === 'coordinator') continue;
    try {
      const cfg = JSON.parse(readFileSync(join(dir, p.name, 'node.json'), 'utf8')) as {
        adminListen?: string;
      };
      if (cfg.adminListen) out.set(p.name, `http://${cfg.adminListen}`);
    } catch {
      /* a node without a readable config has no admin URL */
    }
  }
  return out;
}

export function pidFile(dir: string, name: string): string {
  return join(dir, `${name}.pid`);
}

export function readPid(dir: string, name: string): number | undefined {
  try {
    const pid = Number(readFileSync(pidFile(dir, name), 'utf8').trim());
    return Number.isInteger(pid) && pid > 0 ? pid : undefined;
  } catch {
    return undefined;
  }
}

export function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

export function readProcesses(dir: string): ProcessSpec[] {
  const file = join(dir, 'processes.json');
  if (!existsSync(file)) {
    throw new Error(`no devnet in ${dir} (processes.json missing): start one with \`npm run devnet\``);
  }
  return JSON.parse(readFileSync(file, 'utf8')) as ProcessSpec[];
}

/** Starts one devnet process detached, output appended to logs/<name>.log, pid in <name>.pid. */
export function startProcess(dir: string, p: ProcessSpec, opts: { detached?: boolean } = {}): number {
  const log = openSync(join(dir, 'logs', `${p.name}.log`), 'a');
  const child = spawn(NODE_BIN, p.args, {
    cwd: ROOT,
    env: { ...process.env, ...p.env },
    stdio: ['ignore', log, log],
    detached: opts.detached ?? false,
  });
  closeSync(log);
  if (child.pid === undefined) throw new Error(`could not start ${p.name}`);
  writeFileSync(pidFile(dir, p.name), `${child.pid}\n`);
  if (opts.detached) child.unref();
  return child.pid;
}

/** Sends SIGTERM, waits up to `graceMs` for the process to exit, then SIGKILL. */
export async function stopProcess(dir: string, name: string, graceMs = 10_000): Promise<boolean> {
  const pid = readPid(dir, name);
  if (pid === undefined || !isAlive(pid)) {
    rmSync(pidFile(dir, name), { force: true });
    return false;
  }
  process.kill(pid, 'SIGTERM');
  const until = Date.now() + graceMs;
  while (isAlive(pid) && Date.now() < until) await new Promise((r) => setTimeout(r, 100));
  if (isAlive(pid)) process.kill(pid, 'SIGKILL');
  rmSync(pidFile(dir, name), { force: true });
  return true;
}

export type DevnetStatus = { name: string; pid?: number; running: boolean }[];

export function devnetStatus(dir: string): DevnetStatus {
  return readProcesses(dir).map((p) => {
    const pid = readPid(dir, p.name);
    return pid === undefined
      ? { name: p.name, running: false }
      : { name: p.name, pid, running: isAlive(pid) };
  });
}

async function portFree(port: number): Promise<boolean> {
  return new Promise((done) => {
    const s = createServer();
    s.once('error', () => done(false));
    s.listen(port, '127.0.0.1', () => s.close(() => done(true)));
  });
}

/**
 * A base port such that base..base+count-1 are all free on 127.0.0.1 now (tests, benchmarks).
 * Picked below Linux's ephemeral range (32768-60999), so outgoing connections of other processes
 * cannot take the port between this probe and the listen.
 */
export async function freeRange(count: number): Promise<number> {
  for (let attempt = 0; attempt < 50; attempt++) {
    const base = 10000 + Math.floor(Math.random() * (22000 - count));
    let ok = true;
    for (let i = 0; i < count && ok; i++) ok = await portFree(base + i);
    if (ok) return base;
  }
  throw new Error('no free port range on 127.0.0.1');
}

/**
 * A throwaway devnet for tests and benchmarks: the processes `npm run devnet` starts, in a temp
 * dir on free ports, each node on its own SoftHSM2 token (an error with the install hint when
 * SoftHSM2 is missing). `start()` runs `scripts/devnet.ts --detach` (again: the state is kept) and
 * makes this process trust the devnet's CA (its `url` is HTTPS); `stopAll()` stops every process;
 * `dispose()` also removes the dir.
 */
export type TempDevnet = {
  readonly dir: string;
  readonly url: string;
  /** The devnet's CA (PEM), once started: the coordinator's certificate chains to it. */
  readonly caFile: string;
  readonly nodes: number;
  /** KMS_* settings of this devnet, for child processes (devnet, kms). */
  readonly env: Record<string, string>;
  /** The admin principal's private key (PKCS#8 PEM): signs requests as `admin`. */
  readonly adminKeyFile: string;
  token: string;
  /** What the last `start()` printed on stdout (the ready message). */
  output: string;
  start(timeoutMs?: number): Promise<void>;
  stopAll(): Promise<void>;
  dispose(): Promise<void>;
};

export async function createTempDevnet(nodes: number, purpose: string): Promise<TempDevnet> {
  try {
    findSoftHsmLibrary();
  } catch {
    throw new Error(`${purpose} needs SoftHSM2 for per-node HSM tokens. ${SOFTHSM_INSTALL_HINT}`);
  }
  const dir = mkdtempSync(join(tmpdir(), 'tkms-devnet-'));
  const port = await freeRange(1);
  const p2p = await freeRange(nodes + 1);
  const admin = await freeRange(nodes + 1);
  const env = {
    KMS_DEVNET_DIR: dir,
    KMS_NODES: String(nodes),
    KMS_PORT: String(port),
    KMS_P2P_PORT_BASE: String(p2p),
    KMS_ADMIN_PORT_BASE: String(admin),
  };
  const d: TempDevnet = {
    dir,
    nodes,
    url: `https://127.0.0.1:${port}`,
    caFile: join(dir, 'ca.pem'),
    env,
    adminKeyFile: devnetAdminKeyFile(dir),
    token: '',
    output: '',
    start: async (timeoutMs = 180_000) => {
      try {
        const r = await run(NODE_BIN, ['scripts/devnet.ts', '--detach'], {
          cwd: ROOT,
          env: { ...process.env, ...env },
          timeout: timeoutMs,
        });
        d.output = r.stdout;
      } catch (e) {
        throw new Error(`devnet did not start: ${(e as { stderr?: string }).stderr ?? String(e)}`);
      }
      d.token = readFileSync(join(dir, 'admin-token'), 'utf8').trim();
      trustCa(d.caFile);
    },
    stopAll: async () => {
      if (!existsSync(join(dir, 'processes.json'))) return; // never initialized
      await Promise.all(readProcesses(dir).map((p) => stopProcess(dir, p.name)));
    },
    dispose: async () => {
      try {
        await d.stopAll();
      } finally {
        rmSync(dir, { recursive: true, force: true });
      }
    },
  };
  return d;
}
