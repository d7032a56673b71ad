/**
 * `npm run devnet`: a coordinator and N nodes as separate processes on loopback, each node with
 * its own data directory and its own SoftHSM2 token (the software sealer when SoftHSM2 is not
 * installed, said clearly). The coordinator serves HTTPS with a certificate from a CA made for
 * this devnet (`<dir>/ca.pem`, the URL in `<dir>/api-url`: the CLI trusts both by itself); each
 * node serves /healthz, /readyz and /metrics on its own loopback admin port. The bootstrap admin
 * principal `admin` (its Ed25519 key in `<dir>/admin-key`) and the genesis governance document
 * (`governance-genesis.json`, its hash in every node's config) are made at the first start; the
 * coordinator's libp2p identity is sealed under a passphrase (coordinator/identity-sealer.ts).
 * Waits until every process is ready, prints the API URL, where the admin token and key are (never
 * the token itself: review I-1) and an example, and stays in the foreground until Ctrl-C, which
 * stops every process. State lives in the devnet dir and survives restarts; `--reset` wipes it.
 */
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { chmodSync, existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { generatePrincipal, principalEntry } from '../client/sign-request.ts';
import { createSoftHsmToken, findSoftHsmLibrary } from '../node/softhsm.ts';
import { governanceHash, parseGovernance } from '../policy/governance.ts';
import {
  NODE_BIN,
  type ProcessSpec,
  DEVNET_ADMIN,
  DOCKER_ADMIN_PORT,
  ROOT,
  devnetAdminKeyFile,
  devnetApiUrlFile,
  devnetDir,
  devnetPublicDir,
  genesisGovernance,
  readProcesses,
  startProcess,
  stopProcess,
} from './devnet-lib.ts';
import { ensureDevnetTls, trustCa } from './devnet-tls.ts';

const HELP = `Usage: npm run devnet -- [options]

Starts a local threshold KMS: one coordinator and N nodes on 127.0.0.1.

Options:
  --nodes N        number of nodes (env KMS_NODES, default 5)
  --port P         coordinator HTTPS port (env KMS_PORT, default 8080)
  --p2p-port B     libp2p ports: coordinator B, node-k B+k (env KMS_P2P_PORT_BASE, default 7100)
  --admin-port B   node admin ports (/healthz, /readyz, /metrics): node-k B+k
                   (env KMS_ADMIN_PORT_BASE, default 7200)
  --dir D          state directory (env KMS_DEVNET_DIR, default .devnet)
  --software       use the software sealer even if SoftHSM2 is installed (env KMS_SEALER=software)
  --reset          wipe the state directory first
  --detach         start the processes and exit (stop them with \`npx kms devnet stop\`)
  --init-only      create the state (identities, tokens, allow-list) and exit
  --docker         container layout of docker-compose.yml (host names, port 7000 everywhere)
  -h, --help       this help

Env KMS_ADMIN_TOKEN sets the admin token; otherwise one is generated into <dir>/admin-token.
The API is HTTPS: the devnet's CA is <dir>/ca.pem and the URL is in <dir>/api-url.
Requests that use or change keys are signed by a principal: the devnet makes \`admin\`, whose
private key is <dir>/admin-key (the CLI's default), and a genesis policy allowing it everything
with no approvals (a development convenience: add policies with \`kms governance\`).
`;

type Layout = {
  dir: string;
  nodes: number;
  port: number;
  p2pBase: number;
  adminBase: number;
  sealer: 'pkcs11' | 'software';
  /** Container layout (docker-compose.yml): every process on port 7000 of its own host name. */
  docker: boolean;
};

/** Where a process listens and how the others dial it, in the local or the container layout. */
function endpoint(l: Layout, name: string, k: number): { listen: string; dial: string } {
  if (l.docker) return { listen: '/ip4/0.0.0.0/tcp/7000', dial: `/dns4/${name}/tcp/7000` };
  const a = `/ip4/127.0.0.1/tcp/${l.p2pBase + k}`;
  return { listen: a, dial: a };
}

/** A node's admin listener: its own loopback port, or port 9100 inside its container. */
function adminListen(l: Layout, k: number): string {
  return l.docker ? `127.0.0.1:${DOCKER_ADMIN_PORT}` : `127.0.0.1:${l.adminBase + k}`;
}

function softhsmInstalled(): boolean {
  try {
    findSoftHsmLibrary();
    execFileSync('softhsm2-util', ['--version'], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

function log(msg: string): void {
  process.stderr.write(`devnet: ${msg}\n`);
}

function run(args: string[], env: Record<string, string> = {}): string {
  return execFileSync(NODE_BIN, args, { cwd: ROOT, env: { ...process.env, ...env }, encoding: 'utf8' });
}

function writeSecret(file: string, value: string): void {
  writeFileSync(file, value.endsWith('\n') ? value : `${value}\n`, { mode: 0o600 });
  chmodSync(file, 0o600);
}

/**
 * Where the admin bearer token lives: beside the admin key locally; in the container layout in
 * the coordinator's own folder, the one service that reads it (no node can: review H-5).
 */
function adminTokenFile(l: Layout): string {
  return l.docker ? join(l.dir, 'coordinator', 'admin-token') : join(l.dir, 'admin-token');
}

/** First start: node identities, tokens, the allow-list. Nothing secret leaves the devnet dir. */
async function create(l: Layout, adminToken: string | undefined): Promise<void> {
  mkdirSync(join(l.dir, 'logs'), { recursive: true });
  // Public files every process reads: in the container layout a folder of their own, so that
  // nodes mount it (read-only) and nothing else of the devnet dir.
  const pub = l.docker ? join(l.dir, 'public') : l.dir;
  mkdirSync(pub, { recursive: true });
  // The bootstrap admin principal and the genesis its hash pins on every node.
  const admin = generatePrincipal(DEVNET_ADMIN, 'ed25519');
  writeSecret(devnetAdminKeyFile(l.dir), admin.privateKeyPem);
  const genesis = parseGovernance(genesisGovernance(principalEntry(admin.signer)));
  const genesisHash = governanceHash(genesis);
  const genesisFile = join(pub, 'governance-genesis.json');
  writeFileSync(genesisFile, `${JSON.stringify(genesis, null, 2)}\n`);
  log(`made the admin principal (${devnetAdminKeyFile(l.dir)}) and the governance genesis ${genesisHash}`);
  const procs: ProcessSpec[] = [];
  const peers: { id: string; peerId: string; addresses: string[] }[] = [];
  for (let k = 1; k <= l.nodes; k++) {
    const name = `node-${k}`;
    const nd = join(l.dir, name);
    mkdirSync(nd, { recursive: true });
    const env: Record<string, string> = {};
    let sealer: Record<string, unknown>;
    if (l.sealer === 'pkcs11') {
      const pin = randomBytes(8).toString('hex');
      writeSecret(join(nd, 'pin'), pin);
      const token = await createSoftHsmToken({
        dir: join(nd, 'softhsm'),
        label: name,
        pin,
        soPin: randomBytes(8).toString('hex'),
      });
      sealer = {
        kind: 'pkcs11',
        library: token.library,
        tokenLabel: name,
        pinFile: 'pin',
        softhsmConf: token.confPath,
      };
      env.SOFTHSM2_CONF = token.confPath;
    } else {
      writeSecret(join(nd, 'passphrase'), randomBytes(24).toString('hex'));
      sealer = { kind: 'software', passphraseFile: 'passphrase' };
    }
    const ep = endpoint(l, name, k);
    writeFileSync(
      join(nd, 'node.json'),
      `${JSON.stringify({ nodeId: name, listen: [ep.listen], adminListen: adminListen(l, k), dataDir: 'data', cluster: l.docker ? '../public/cluster.json' : '../cluster.json', genesisHash, sealer }, null, 2)}\n`,
    );
    log(`initializing ${name} (${l.sealer} sealer)`);
    const { peerId } = JSON.parse(run(['node/main.ts', 'init', '--config', join(nd, 'node.json')], env)) as {
      peerId: string;
    };
    peers.push({ id: name, peerId, addresses: [`${ep.dial}/p2p/${peerId}`] });
    procs.push({ name, args: ['node/main.ts', '--config', join(nd, 'node.json')], env });
  }
  const cd = join(l.dir, 'coordinator');
  mkdirSync(cd, { recursive: true });
  const token = adminToken ?? randomBytes(24).toString('hex');
  if (!adminToken) writeSecret(adminTokenFile(l), token);
  // The passphrase that seals the coordinator's libp2p identity (review H-4).
  writeSecret(join(cd, 'identity-passphrase'), randomBytes(24).toString('hex'));
  const coordEp = endpoint(l, 'coordinator', 0);
  log('making the devnet CA and the coordinator certificate');
  const tls = ensureDevnetTls(l.dir, { docker: l.docker });
  // The coordinator's health check reads the CA from the public folder in the container layout.
  if (l.docker) writeFileSync(join(pub, 'ca.pem'), readFileSync(tls.caFile));
  writeFileSync(
    join(cd, 'coordinator.json'),
    `${JSON.stringify(
      {
        host: l.docker ? '0.0.0.0' : '127.0.0.1',
        port: l.port,
        tls: { certFile: tls.server.certFile, keyFile: tls.server.keyFile },
        dataDir: join(cd, 'data'),
        readyMinNodes: l.nodes,
        governance: { genesisFile },
        cluster: {
          clusterFile: join(pub, 'cluster.json'),
          identityFile: join(cd, 'identity.sealed'),
          identityPassphraseFile: join(cd, 'identity-passphrase'),
          listen: [coordEp.listen],
        },
      },
      null,
      2,
    )}\n`,
  );
  log('initializing coordinator');
  const { peerId } = JSON.parse(
    run(['coordinator/main.ts', 'init', '--config', join(cd, 'coordinator.json')]),
  ) as {
    peerId: string;
  };
  writeFileSync(
    join(pub, 'cluster.json'),
    `${JSON.stringify({ nodes: peers, coordinators: [{ id: 'coordinator', peerId, addresses: [`${coordEp.dial}/p2p/${peerId}`] }] }, null, 2)}\n`,
  );
  procs.push({
    name: 'coordinator',
    args: ['coordinator/main.ts', '--config', join(cd, 'coordinator.json')],
    env: adminToken ? {} : { KMS_ADMIN_TOKEN_FILE: adminTokenFile(l) },
  });
  // The URL as seen from this machine (in the container layout: the port published on 127.0.0.1).
  writeFileSync(devnetApiUrlFile(l.dir), `https://127.0.0.1:${l.port}\n`);
  writeFileSync(join(l.dir, 'processes.json'), `${JSON.stringify(procs, null, 2)}\n`);
}

async function waitReady(url: string, token: string, nodes: number, timeoutMs: number): Promise<void> {
  const until = Date.now() + timeoutMs;
  let last = '';
  while (Date.now() < until) {
    try {
      const r = await fetch(`${url}/v1/nodes`, { headers: { authorization: `Bearer ${token}` } });
      if (r.ok) {
        const body = (await r.json()) as { nodes?: { reachable: boolean }[] } | { reachable: boolean }[];
        const list = Array.isArray(body) ? body : (body.nodes ?? []);
        const up = list.filter((n) => n.reachable).length;
        let msg = `${up}/${nodes} nodes reachable`;
        if (up >= nodes) {
          // Ready when the nodes also hold the governance genesis: signed requests need it (a node
          // that started after the coordinator is offered it when the governance is read).
          const g = await fetch(`${url}/v1/governance`, { headers: { authorization: `Bearer ${token}` } });
          if (g.ok) return;
          msg = `${up}/${nodes} nodes reachable, governance genesis not yet on every node`;
        }
        if (msg !== last) log(msg);
        last = msg;
      }
    } catch {
      /* coordinator not listening yet */
    }
    await new Promise((r) => setTimeout(r, 300));
  }
  throw new Error(
    `devnet not ready after ${timeoutMs} ms (${last || 'coordinator not answering'}); see the logs/ folder`,
  );
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      nodes: { type: 'string' },
      port: { type: 'string' },
      'p2p-port': { type: 'string' },
      'admin-port': { type: 'string' },
      dir: { type: 'string' },
      software: { type: 'boolean' },
      reset: { type: 'boolean' },
      detach: { type: 'boolean' },
      docker: { type: 'boolean' },
      'init-only': { type: 'boolean' },
      help: { type: 'boolean', short: 'h' },
    },
  });
  if (values.help) {
    process.stdout.write(HELP);
    return;
  }
  const env = process.env;
  const dir = values.dir ? devnetDir({ KMS_DEVNET_DIR: values.dir }) : devnetDir(env);
  const nodes = Number(values.nodes ?? env.KMS_NODES ?? 5);
  const port = Number(values.port ?? env.KMS_PORT ?? 8080);
  const p2pBase = Number(values['p2p-port'] ?? env.KMS_P2P_PORT_BASE ?? 7100);
  const adminBase = Number(values['admin-port'] ?? env.KMS_ADMIN_PORT_BASE ?? 7200);
  if (!Number.isInteger(nodes) || nodes < 1 || nodes > 100) throw new Error('--nodes must be 1..100');
  if (!Number.isInteger(port) || port < 1 || port > 65535) throw new Error('--port must be a TCP port');
  if (!Number.isInteger(adminBase) || adminBase < 1 || adminBase + nodes > 65535)
    throw new Error('--admin-port must leave room for one TCP port per node');
  if (values.reset) {
    log(`--reset: wiping ${dir}`);
    for (const p of existsSync(join(dir, 'processes.json')) ? readProcesses(dir) : [])
      await stopProcess(dir, p.name);
    rmSync(dir, { recursive: true, force: true });
  }
  const forceSoftware = values.software || env.KMS_SEALER === 'software';
  const sealer = !forceSoftware && softhsmInstalled() ? 'pkcs11' : 'software';
  if (sealer === 'software') {
    log(
      forceSoftware
        ? 'software sealer (as asked): shares are sealed under a passphrase, not an HSM'
        : 'SoftHSM2 is not installed: using the SOFTWARE sealer (apt-get install -y softhsm2 for per-node HSM tokens)',
    );
  }
  const layout: Layout = { dir, nodes, port, p2pBase, adminBase, sealer, docker: values.docker ?? false };
  if (!existsSync(join(dir, 'processes.json'))) await create(layout, env.KMS_ADMIN_TOKEN);
  else log(`reusing the state in ${dir} (--reset to start afresh)`);
  if (values['init-only']) {
    log(`initialized ${dir}`);
    return;
  }
  const procs = readProcesses(dir);
  const token = env.KMS_ADMIN_TOKEN ?? readFileSync(join(dir, 'admin-token'), 'utf8').trim();
  const coordCfg = JSON.parse(readFileSync(join(dir, 'coordinator', 'coordinator.json'), 'utf8')) as {
    port: number;
    tls?: unknown;
  };
  if (coordCfg.tls === undefined) {
    throw new Error(`the devnet in ${dir} was made before the API served HTTPS: start afresh with --reset`);
  }
  if (!existsSync(join(devnetPublicDir(dir), 'governance-genesis.json'))) {
    throw new Error(
      `the devnet in ${dir} was made before requests were signed (no governance genesis, no admin key): start afresh with --reset`,
    );
  }
  const url = readFileSync(devnetApiUrlFile(dir), 'utf8').trim();
  const caFile = join(dir, 'ca.pem');
  trustCa(caFile);

  for (const p of procs) {
    startProcess(dir, p, { detached: values.detach ?? false });
    log(`started ${p.name}`);
  }
  let stopping = false;
  const stopAll = async () => {
    if (stopping) return;
    stopping = true;
    log('stopping every process');
    await Promise.all(procs.map((p) => stopProcess(dir, p.name)));
    log('stopped');
  };
  if (!values.detach) {
    process.on('SIGINT', () => void stopAll().then(() => process.exit(0)));
    process.on('SIGTERM', () => void stopAll().then(() => process.exit(0)));
  }
  try {
    await waitReady(url, token, procs.length - 1, 90_000);
  } catch (e) {
    if (!values.detach) await stopAll();
    throw e;
  }
  // The token itself is never printed (review I-1): terminals and CI logs keep what they show.
  const tokenWhere = env.KMS_ADMIN_TOKEN ? 'from KMS_ADMIN_TOKEN' : join(dir, 'admin-token');
  process.stdout.write(
    [
      '',
      `threshold KMS devnet ready: coordinator + ${procs.length - 1} nodes (${sealer} sealer)`,
      `  API URL      ${url}   (HTTPS; in ${devnetApiUrlFile(dir)})`,
      `  CA           ${caFile}`,
      `  admin token  ${tokenWhere}   (bearer token)`,
      `  admin key    ${devnetAdminKeyFile(dir)}   (principal \`${DEVNET_ADMIN}\`: the CLI signs requests with it)`,
      '',
      `Development convenience: the genesis policy lets \`${DEVNET_ADMIN}\` perform every operation on every`,
      'key with no approvals. Add principals and approval policies with `npx kms principals create`',
      'and `npx kms governance` (docs/policies.md).',
      '',
      'Try (the CLI finds the URL, the CA, the token and the admin key in the devnet dir by itself):',
      ...(dir === resolve('.devnet') ? [] : [`  export KMS_DEVNET_DIR=${dir}`]),
      `  curl --cacert ${caFile} ${url}/healthz`,
      '  npx kms keys create --spec FROST_ED25519 --threshold 3 --alias demo',
      '  npx kms keys sign demo --message hello',
      '',
      values.detach
        ? 'Processes run detached; stop them with `npx kms devnet stop`.'
        : 'Ctrl-C stops every process.',
      '',
    ].join('\n'),
  );
  if (values.detach) process.exit(0);
}

main().catch((e: unknown) => {
  process.stderr.write(`devnet: ${(e as Error).message}\n`);
  process.exit(1);
});
