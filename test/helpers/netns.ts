/**
 * Real network partitions for end-to-end tests (issue 13 item 5): each process of a devnet runs in
 * its own Linux network namespace, joined by a veth pair to a bridge in a dedicated "switch"
 * namespace; the test process reaches the same /24 through one more veth. A cut is an nftables
 * drop rule on the receiving namespace's input hook: packets vanish silently (no RST, no ICMP),
 * as on a broken link, and one direction can be cut alone.
 *
 * Network rule: traffic only inside a private 10.231.X.0/24 that no route of this machine uses
 * (the namespaces have no default route, IPv6 is off in them) and on loopback. Everything this file
 * creates is named `tkp-<owner>-...` (namespaces) or `tkp<owner>h` (the test process's veth), with
 * <owner> the creating process's pid in base 36 plus a sequence letter: a lab whose process is gone
 * (a crashed run) is removed, processes included, before a new one is built; `destroy()` removes
 * its own, also after a failure.
 *
 * `createNetnsDevnet` starts the devnet topology (scripts/devnet.ts --init-only: identities,
 * SoftHSM2 tokens, allow-list) in such namespaces: the generated configs are kept and only their
 * loopback addresses are replaced by each process's namespace address. The devnet's HTTPS
 * certificate names loopback only (and its CA key is gone), so the coordinator gets a certificate
 * for its namespace address from a CA made for this run (scripts/devnet-tls.ts), trusted by the
 * test process. A probe (a second allowed coordinator identity, as in crash.ts) in the test process
 * reads each node's `status` RPC.
 *
 * Needs root, iproute2 (`ip netns`) and nftables; without them `createNetnsLab` fails saying so.
 */
import { type ChildProcess, execFile, spawn } from 'node:child_process';
import {
  closeSync,
  copyFileSync,
  existsSync,
  mkdtempSync,
  openSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { generateIdentityKey, peerIdOf } from '../../net/identity.ts';
import { type RpcRequest, decodeJsonFrame, encodeRpc } from '../../net/rpc.ts';
import { RPC_PROTOCOL, type Transport, createTransport } from '../../net/transport.ts';
import {
  NODE_BIN,
  ROOT,
  type TempDevnet,
  createTempDevnet,
  readProcesses,
} from '../../scripts/devnet-lib.ts';
import { issueCert, makeCa, trustCa } from '../../scripts/devnet-tls.ts';
import { principalFromPem, signedInit } from '../../client/sign-request.ts';
import { type NodeKeyStatus, pidAlive } from './crash.ts';
import { SIGNED_ROUTE } from './devnet-process.ts';

const exec = promisify(execFile);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** What a run without the needed privileges is told. */
export const NETNS_HOW_TO_RUN =
  'it builds Linux network namespaces joined by veth pairs and cuts links with nftables, which needs ' +
  'root with iproute2 (`ip netns`) and nftables installed. Run it as root, e.g. ' +
  '`sudo npx vitest run test/partitions.test.ts`; CI runs it through `.ci/run`, which runs as root ' +
  'and installs both (apt-get install -y iproute2 nftables).';

const FAMILY = 'tkp';
/** The nftables table holding the cuts (one input chain), in every namespace of a lab. */
const TABLE = 'tkms_partition';

async function sh(cmd: string, args: readonly string[]): Promise<string> {
  try {
    return (await exec(cmd, [...args], { timeout: 15_000 })).stdout;
  } catch (e) {
    const err = e as { stderr?: string; message?: string };
    throw new Error(`${cmd} ${args.join(' ')}: ${(err.stderr || err.message || String(e)).trim()}`);
  }
}

const quiet = (p: Promise<unknown>) =>
  p.then(
    () => undefined,
    () => undefined,
  );

/** Fails (never skips) with how to run the test when root, `ip netns` or nft is missing. */
export async function requireNetns(): Promise<void> {
  const uid = process.getuid?.();
  if (uid !== 0) throw new Error(`this test needs root (it runs as uid ${uid}): ${NETNS_HOW_TO_RUN}`);
  for (const [cmd, args] of [
    ['ip', ['netns', 'list']],
    ['nft', ['--version']],
  ] as const) {
    try {
      await exec(cmd, [...args]);
    } catch (e) {
      throw new Error(`\`${cmd} ${args.join(' ')}\` failed (${String(e)}): ${NETNS_HOW_TO_RUN}`);
    }
  }
}

async function namespaces(): Promise<string[]> {
  return (await sh('ip', ['netns', 'list']))
    .split('\n')
    .map((l) => l.trim().split(' ')[0] ?? '')
    .filter((n) => n.length > 0);
}

async function links(): Promise<string[]> {
  return (await sh('ip', ['-o', 'link', 'show']))
    .split('\n')
    .map((l) => /^\d+:\s+([^@:\s]+)/.exec(l)?.[1] ?? '')
    .filter((n) => n.length > 0);
}

/** Kills every process inside a namespace, then removes it. */
async function removeNamespace(ns: string): Promise<void> {
  const pids = await sh('ip', ['netns', 'pids', ns]).catch(() => '');
  for (const p of pids.split(/\s+/).filter((s) => /^\d+$/.test(s))) {
    try {
      process.kill(Number(p), 'SIGKILL');
    } catch {
      /* already gone */
    }
  }
  await quiet(sh('ip', ['netns', 'del', ns]));
}

/** The pid encoded in an owner tag (`<pid base 36><sequence letter>`). */
const ownerPid = (owner: string) => Number.parseInt(owner.slice(0, -1), 36);

/** Removes namespaces and veths of labs whose creating process is gone (a crashed run). */
async function removeLeftovers(): Promise<void> {
  for (const link of await links()) {
    const m = new RegExp(`^${FAMILY}([0-9a-z]+)h$`).exec(link);
    if (m && !pidAlive(ownerPid(m[1]!))) await quiet(sh('ip', ['link', 'del', link]));
  }
  for (const ns of await namespaces()) {
    const m = new RegExp(`^${FAMILY}-([0-9a-z]+)-`).exec(ns);
    if (m && !pidAlive(ownerPid(m[1]!))) await removeNamespace(ns);
  }
}

/** A 10.231.X.0/24 that no address or route of this machine's namespace touches. */
async function freeSubnet(): Promise<string> {
  const used = `${await sh('ip', ['-4', '-o', 'addr', 'show'])}\n${await sh('ip', ['-4', 'route', 'show', 'table', 'all'])}`;
  if (/(^|\s)10\.0\.0\.0\/8|(^|\s)10\.231\.0\.0\/16/.test(used)) {
    throw new Error('10.231.0.0/16 is routed on this machine; partition tests need it unused');
  }
  for (let x = 0; x < 255; x++) if (!used.includes(`10.231.${x}.`)) return `10.231.${x}`;
  throw new Error('no free 10.231.X.0/24 for the partition test network');
}

export type NetnsLab = {
  /** The /24 of this lab, e.g. `10.231.0.0/24`. */
  readonly subnet: string;
  /** This (test) process's address on the lab network. */
  readonly hostIp: string;
  ipOf(name: string): string;
  nsOf(name: string): string;
  /** Packets from `from` no longer reach `to` (dropped on arrival at `to`, silently). */
  block(from: string, to: string): Promise<void>;
  /** Both directions between `a` and `b`. */
  cut(a: string, b: string): Promise<void>;
  /** Removes every cut. */
  heal(): Promise<void>;
  /** Packets dropped so far by the cuts installed in `name`'s namespace (nft counters). */
  dropped(name: string): Promise<number>;
  /** Starts `cmd args` inside `name`'s namespace (`ip netns exec` execs in place: the pid is the command's). */
  spawn(name: string, cmd: string, args: readonly string[], opts: Parameters<typeof spawn>[2]): ChildProcess;
  /** Kills what runs in the namespaces, removes them, the veths and the bridge. */
  destroy(): Promise<void>;
};

let labs = 0;

/** One namespace per name, each at `<subnet>.<index + 1>` on one bridge; the test process at .254. */
export async function createNetnsLab(names: readonly string[]): Promise<NetnsLab> {
  await requireNetns();
  if (names.length > 200) throw new Error('too many namespaces');
  await removeLeftovers();
  const owner = `${process.pid.toString(36)}${String.fromCharCode(97 + (labs++ % 26))}`;
  const prefix = `${FAMILY}-${owner}`;
  const sw = `${prefix}-sw`;
  const hostLink = `${FAMILY}${owner}h`;
  const net = await freeSubnet();
  const nsByName = new Map(names.map((n, i) => [n, `${prefix}-${i}`]));
  const ipByName = new Map(names.map((n, i) => [n, `${net}.${i + 1}`]));
  const created: string[] = [];

  const ns = (name: string) => {
    const v = nsByName.get(name);
    if (!v) throw new Error(`no namespace for ${name}`);
    return v;
  };
  const ip = (name: string) => ipByName.get(name)!;
  const nft = (name: string, args: readonly string[]) =>
    sh('ip', ['netns', 'exec', ns(name), 'nft', ...args]);

  const lab: NetnsLab = {
    subnet: `${net}.0/24`,
    hostIp: `${net}.254`,
    ipOf: (name) => {
      ns(name);
      return ip(name);
    },
    nsOf: ns,
    block: async (from, to) => {
      await nft(to, [
        'add',
        'rule',
        'inet',
        TABLE,
        'input',
        'ip',
        'saddr',
        lab.ipOf(from),
        'counter',
        'drop',
      ]);
    },
    cut: async (a, b) => {
      await lab.block(a, b);
      await lab.block(b, a);
    },
    heal: async () => {
      for (const n of names) await nft(n, ['flush', 'chain', 'inet', TABLE, 'input']);
    },
    dropped: async (name) => {
      const out = JSON.parse(await nft(name, ['-j', 'list', 'chain', 'inet', TABLE, 'input'])) as {
        nftables: { rule?: { expr: { counter?: { packets: number } }[] } }[];
      };
      let sum = 0;
      for (const item of out.nftables) for (const e of item.rule?.expr ?? []) sum += e.counter?.packets ?? 0;
      return sum;
    },
    spawn: (name, cmd, args, opts) => spawn('ip', ['netns', 'exec', ns(name), cmd, ...args], opts ?? {}),
    destroy: async () => {
      await quiet(sh('ip', ['link', 'del', hostLink]));
      for (const n of [...created].reverse()) await removeNamespace(n);
      // Namespace teardown is asynchronous in the kernel: wait (bounded) until its links are gone.
      for (let i = 0; i < 50; i++) {
        const left = (await namespaces()).filter((n) => n.startsWith(`${prefix}-`));
        if (left.length === 0 && !(await links()).includes(hostLink)) return;
        await sleep(100);
      }
      throw new Error(`network namespaces of ${prefix} are still present after cleanup`);
    },
  };

  const addNamespace = async (name: string) => {
    await sh('ip', ['netns', 'add', name]);
    created.push(name);
    // No IPv6 (no link-local chatter), loopback up; the only other link is the veth added below.
    await sh('ip', [
      'netns',
      'exec',
      name,
      'sysctl',
      '-q',
      '-w',
      'net.ipv6.conf.all.disable_ipv6=1',
      'net.ipv6.conf.default.disable_ipv6=1',
    ]);
    await sh('ip', ['-n', name, 'link', 'set', 'lo', 'up']);
  };

  try {
    await addNamespace(sw);
    await sh('ip', ['-n', sw, 'link', 'add', 'br0', 'type', 'bridge']);
    await sh('ip', ['-n', sw, 'link', 'set', 'br0', 'up']);
    for (const [i, name] of names.entries()) {
      const n = ns(name);
      await addNamespace(n);
      await sh('ip', ['-n', sw, 'link', 'add', `p${i}`, 'type', 'veth', 'peer', 'name', 'eth0', 'netns', n]);
      await sh('ip', ['-n', sw, 'link', 'set', `p${i}`, 'master', 'br0', 'up']);
      await sh('ip', ['-n', n, 'addr', 'add', `${ip(name)}/24`, 'dev', 'eth0']);
      await sh('ip', ['-n', n, 'link', 'set', 'eth0', 'up']);
      await nft(name, ['add', 'table', 'inet', TABLE]);
      await nft(name, [
        'add',
        'chain',
        'inet',
        TABLE,
        'input',
        '{',
        'type',
        'filter',
        'hook',
        'input',
        'priority',
        '0',
        ';',
        'policy',
        'accept',
        ';',
        '}',
      ]);
    }
    await sh('ip', ['link', 'add', hostLink, 'type', 'veth', 'peer', 'name', 'ph', 'netns', sw]);
    writeFileSync(`/proc/sys/net/ipv6/conf/${hostLink}/disable_ipv6`, '1');
    await sh('ip', ['-n', sw, 'link', 'set', 'ph', 'master', 'br0', 'up']);
    await sh('ip', ['addr', 'add', `${lab.hostIp}/24`, 'dev', hostLink]);
    await sh('ip', ['link', 'set', hostLink, 'up']);
  } catch (e) {
    await lab.destroy().catch(() => undefined);
    throw e;
  }
  return lab;
}

export type NetnsDevnet = {
  readonly lab: NetnsLab;
  readonly dir: string;
  readonly url: string;
  readonly nodeIds: readonly string[];
  /** The coordinator's HTTP API, as the admin. */
  api(method: string, path: string, body?: unknown): Promise<{ status: number; body: any }>;
  /** A node's keys as its `status` RPC reports them (asked by the probe, from the test process). */
  keysOf(nodeId: string): Promise<NodeKeyStatus[]>;
  /** Waits (bounded) until the coordinator's /v1/nodes view shows every node reachable. */
  waitAllReachable(): Promise<void>;
  log(name: string): string;
  close(): Promise<void>;
};

/**
 * The devnet (coordinator + `nodes` nodes, SoftHSM2 tokens) with each process in its own
 * namespace of a new lab. Short deadlines so a cut costs seconds.
 */
export async function createNetnsDevnet(
  nodes: number,
  opts: { sessionTimeoutMs: number; signTimeoutMs: number },
): Promise<NetnsDevnet> {
  const nodeIds = Array.from({ length: nodes }, (_, i) => `node-${i + 1}`);
  const lab = await createNetnsLab(['coordinator', ...nodeIds]);
  let t: TempDevnet | undefined;
  let probe: Transport | undefined;
  const children = new Map<string, ChildProcess>();
  const close = async () => {
    try {
      await probe?.stop();
    } finally {
      await Promise.all([...children.entries()].map(([, c]) => stopChild(c)));
      try {
        await lab.destroy();
      } finally {
        await t?.dispose();
      }
    }
  };
  try {
    t = await createTempDevnet(nodes, 'partition tests');
    const dir = t.dir;
    try {
      await exec(NODE_BIN, ['scripts/devnet.ts', '--init-only'], {
        cwd: ROOT,
        env: { ...process.env, ...t.env },
        timeout: 120_000,
      });
    } catch (e) {
      throw new Error(`devnet init failed: ${(e as { stderr?: string }).stderr ?? String(e)}`);
    }
    const token = readFileSync(join(dir, 'admin-token'), 'utf8').trim();

    // Each generated config keeps everything but its loopback address: it becomes the namespace's.
    const onLab = (name: string, s: string) => s.replaceAll('/ip4/127.0.0.1/', `/ip4/${lab.ipOf(name)}/`);
    for (const id of nodeIds) {
      const f = join(dir, id, 'node.json');
      const cfg = JSON.parse(readFileSync(f, 'utf8')) as { listen: string[] };
      cfg.listen = cfg.listen.map((a) => onLab(id, a));
      writeFileSync(f, `${JSON.stringify(cfg, null, 2)}\n`);
    }
    const coordFile = join(dir, 'coordinator', 'coordinator.json');
    const coordCfg = JSON.parse(readFileSync(coordFile, 'utf8'));
    coordCfg.host = lab.ipOf('coordinator');
    coordCfg.cluster.listen = (coordCfg.cluster.listen ?? []).map((a: string) => onLab('coordinator', a));
    coordCfg.cluster.sessionTimeoutMs = opts.sessionTimeoutMs;
    coordCfg.cluster.signTimeoutMs = opts.signTimeoutMs;
    writeFileSync(coordFile, `${JSON.stringify(coordCfg, null, 2)}\n`);
    // HTTPS: the devnet's certificate names loopback only, and its CA key is gone; this devnet
    // gets its own CA and a certificate for the coordinator's namespace address instead.
    const tls = coordCfg.tls as { certFile: string; keyFile: string } | undefined;
    if (tls) {
      const work = mkdtempSync(join(tmpdir(), 'tkms-netns-ca-'));
      try {
        const ca = makeCa(work, `threshold-kms partition test CA ${randomBytes(4).toString('hex')}`);
        const issued = issueCert(ca, work, 'server', {
          commonName: 'threshold-kms coordinator',
          usage: 'server',
          ips: [lab.ipOf('coordinator')],
        });
        copyFileSync(issued.certFile, tls.certFile);
        copyFileSync(issued.keyFile, tls.keyFile);
        copyFileSync(ca.certFile, join(dir, 'ca.pem'));
      } finally {
        rmSync(work, { recursive: true, force: true }); // the CA key goes with it
      }
      trustCa(join(dir, 'ca.pem'));
    }
    const clusterFile = join(dir, 'cluster.json');
    type Peer = { id: string; peerId: string; addresses: string[] };
    const cluster = JSON.parse(readFileSync(clusterFile, 'utf8')) as { nodes: Peer[]; coordinators: Peer[] };
    for (const p of [...cluster.nodes, ...cluster.coordinators])
      p.addresses = p.addresses.map((a) => onLab(p.id, a));
    const probeKey = await generateIdentityKey();
    cluster.coordinators.push({ id: 'coordinator-probe', peerId: peerIdOf(probeKey), addresses: [] });
    writeFileSync(clusterFile, `${JSON.stringify(cluster, null, 2)}\n`);
    const peerOf = new Map(cluster.nodes.map((n) => [n.id, n.peerId]));

    const url = `${tls ? 'https' : 'http'}://${lab.ipOf('coordinator')}:${coordCfg.port}`;
    const specs = readProcesses(dir);
    const launch = (name: string) => {
      const s = specs.find((p) => p.name === name);
      if (!s) throw new Error(`no devnet process ${name}`);
      const env =
        name === 'coordinator' ? s.env : { ...s.env, KMS_SESSION_TIMEOUT_MS: String(opts.sessionTimeoutMs) };
      const log = openSync(join(dir, 'logs', `${name}.log`), 'a');
      const child = lab.spawn(name, NODE_BIN, s.args, {
        cwd: ROOT,
        env: { ...process.env, ...env },
        stdio: ['ignore', log, log],
      });
      closeSync(log);
      children.set(name, child);
    };
    const log = (name: string) => {
      const f = join(dir, 'logs', `${name}.log`);
      return existsSync(f) ? readFileSync(f, 'utf8') : '';
    };
    const alive = (name: string) => {
      const c = children.get(name);
      return c !== undefined && c.exitCode === null && c.signalCode === null;
    };

    const rpc = async (nodeId: string, req: RpcRequest, timeoutMs = 3_000): Promise<any> => {
      const peer = peerOf.get(nodeId);
      if (!peer || !probe) throw new Error(`no node ${nodeId}`);
      return decodeJsonFrame(await probe.request(peer, RPC_PROTOCOL, encodeRpc(req), { timeoutMs }));
    };
    // Requests that use or change a key are signed as the devnet's admin principal, as the CLI does.
    const admin = principalFromPem('admin', readFileSync(join(dir, 'admin-key')));
    const api: NetnsDevnet['api'] = async (method, path, body) => {
      const headers = { authorization: `Bearer ${token}` };
      const init: RequestInit =
        method === 'POST' && SIGNED_ROUTE.test(path)
          ? signedInit(method, `${url}${path}`, admin, { headers, body: body ?? {} })
          : {
              method,
              headers: body === undefined ? headers : { ...headers, 'content-type': 'application/json' },
              ...(body === undefined ? {} : { body: JSON.stringify(body) }),
            };
      const r = await fetch(`${url}${path}`, { ...init, signal: AbortSignal.timeout(60_000) });
      const text = await r.text();
      let parsed: unknown = text;
      try {
        parsed = JSON.parse(text);
      } catch {
        /* not JSON */
      }
      return { status: r.status, body: parsed };
    };
    const waitAllReachable = async () => {
      const until = Date.now() + 30_000;
      let last = '';
      while (Date.now() < until) {
        try {
          const r = await api('GET', '/v1/nodes');
          const up = ((r.body?.nodes ?? []) as { reachable: boolean }[]).filter((n) => n.reachable).length;
          last = `${r.status}: ${up}/${nodes} reachable`;
          if (r.status === 200 && up === nodes) return;
        } catch (e) {
          last = String(e);
        }
        if (!alive('coordinator')) throw new Error(`coordinator exited:\n${log('coordinator').slice(-2000)}`);
        await sleep(150);
      }
      throw new Error(`coordinator does not see every node: ${last}\n${log('coordinator').slice(-2000)}`);
    };

    probe = await createTransport({
      privateKey: probeKey,
      listen: [],
      allow: cluster.nodes.map((n) => ({ peerId: n.peerId, addresses: n.addresses })),
    });
    for (const id of nodeIds) launch(id);
    for (const id of nodeIds) {
      const until = Date.now() + 30_000;
      for (;;) {
        try {
          await rpc(id, { op: 'status', limit: 0 }, 2_000);
          break;
        } catch (e) {
          if (!alive(id)) throw new Error(`${id} exited while starting:\n${log(id).slice(-2000)}`);
          if (Date.now() > until) throw new Error(`${id} does not answer on ${lab.ipOf(id)}: ${String(e)}`);
          await sleep(150);
        }
      }
    }
    launch('coordinator');
    await waitAllReachable();
    return {
      lab,
      dir,
      url,
      nodeIds,
      api,
      keysOf: async (nodeId) => ((await rpc(nodeId, { op: 'status' })) as { keys: NodeKeyStatus[] }).keys,
      waitAllReachable,
      log,
      close,
    };
  } catch (e) {
    await close().catch(() => undefined);
    throw e;
  }
}

/** SIGTERM, then SIGKILL after a grace period; resolves once the process has exited. */
async function stopChild(c: ChildProcess): Promise<void> {
  if (c.exitCode !== null || c.signalCode !== null) return;
  const exited = new Promise<void>((r) => c.once('exit', () => r()));
  c.kill('SIGTERM');
  const killer = setTimeout(() => c.kill('SIGKILL'), 8_000);
  await exited;
  clearTimeout(killer);
}
