/**
 * Coordinator entry point.
 *
 *   node coordinator/main.ts --config FILE         run the HTTP API and drive the nodes
 *   node coordinator/main.ts init --config FILE    create the libp2p identity; prints {"peerId"}
 *
 * The cluster section of the config (`cluster`, see coordinator/config.ts for the rest):
 *   clusterFile   the allow-list file shared with the nodes (every node's peer id and address)
 *   identityFile  the coordinator's libp2p private key, SEALED (coordinator/identity-sealer.ts;
 *                 created by `init`; a plaintext key file of an older version is sealed in place)
 *   identityPassphraseFile  the passphrase that seals it (or env KMS_IDENTITY_PASSPHRASE_FILE,
 *                 KMS_IDENTITY_PASSPHRASE); required: the key is never kept in the clear
 *   listen        libp2p multiaddrs (optional; the coordinator only dials)
 *   sessionTimeoutMs, signTimeoutMs   deadlines of key events and of one signing round trip
 * Env KMS_ADMIN_TOKEN_FILE: read the bootstrap admin token from a file.
 * `--insecure-http`: serve plain HTTP on a non-loopback host (see coordinator/config.ts: without
 * it, such a host needs `tls`).
 */
import { readFileSync } from 'node:fs';
import pino from 'pino';
import { KmsError } from '../protocol/errors.ts';
import { loadClusterFile } from '../net/cluster-file.ts';
import { type IdentityKey, peerIdOf } from '../net/identity.ts';
import { runCli, stopOnSignals } from '../common/process.ts';
import { createTransport } from '../net/transport.ts';
import { startCoordinator } from './app.ts';
import { Libp2pCluster } from './cluster-libp2p.ts';
import { checkListenSecurity, loadConfig } from './config.ts';
import { loadCoordinatorIdentity, readIdentityPassphrase } from './identity-sealer.ts';

type ClusterSection = {
  clusterFile: string;
  identityFile: string;
  identityPassphraseFile?: string;
  listen?: string[];
  sessionTimeoutMs?: number;
  signTimeoutMs?: number;
};

function clusterSection(raw: Record<string, unknown> | undefined): ClusterSection {
  const c = raw ?? {};
  if (typeof c.clusterFile !== 'string' || typeof c.identityFile !== 'string') {
    throw new KmsError(
      'ValidationError',
      'config: cluster.clusterFile and cluster.identityFile are required',
    );
  }
  return c as unknown as ClusterSection;
}

/** The sealed identity (H-4); an old plaintext key file is sealed in place, and that is said. */
function identity(c: ClusterSection, create: boolean, say: (msg: string) => void): Promise<IdentityKey> {
  return loadCoordinatorIdentity({
    file: c.identityFile,
    passphrase: readIdentityPassphrase(
      c.identityPassphraseFile === undefined ? {} : { file: c.identityPassphraseFile },
    ),
    create,
    onMigrated: (file) =>
      say(`the identity key file ${file} was plaintext: sealed it in place (replaced by its sealed form)`),
  });
}

async function init(configFile: string): Promise<void> {
  const cfg = loadConfig({ file: configFile });
  const c = clusterSection(cfg.cluster);
  const key = await identity(c, true, (msg) => process.stderr.write(`coordinator: ${msg}\n`));
  process.stdout.write(`${JSON.stringify({ peerId: peerIdOf(key) })}\n`);
}

async function run(configFile: string, flags: { insecureHttp?: boolean }): Promise<void> {
  const tokenFile = process.env.KMS_ADMIN_TOKEN_FILE;
  const overrides: Record<string, unknown> = {};
  if (flags.insecureHttp) overrides.insecureHttp = true;
  if (tokenFile && !process.env.KMS_ADMIN_TOKEN)
    overrides.adminToken = readFileSync(tokenFile, 'utf8').trim();
  const cfg = loadConfig({ file: configFile, overrides });
  checkListenSecurity(cfg); // before anything starts: a refused bind leaves nothing behind
  const logger = pino({
    level: cfg.logLevel,
    base: { service: 'coordinator' },
    redact: ['req.headers.authorization', '*.token', '*.adminToken'],
  });
  const c = clusterSection(cfg.cluster);
  const cluster = loadClusterFile(c.clusterFile);
  const key = await identity(c, false, (msg) => logger.warn({ file: c.identityFile }, msg));
  const transport = await createTransport({
    privateKey: key,
    listen: c.listen ?? [],
    allow: cluster.nodes.map((n) => ({ peerId: n.peerId, addresses: n.addresses })),
    logger,
  });
  const libp2pCluster = new Libp2pCluster({
    transport,
    nodes: cluster.nodes,
    ...(c.sessionTimeoutMs ? { sessionTimeoutMs: c.sessionTimeoutMs } : {}),
    ...(c.signTimeoutMs ? { signTimeoutMs: c.signTimeoutMs } : {}),
    log: logger.child({ component: 'cluster' }),
  });
  const server = await startCoordinator({ config: cfg, cluster: libp2pCluster, logger });
  logger.info(
    { url: server.url, peerId: transport.peerId, nodes: cluster.nodes.length },
    'coordinator ready',
  );
  stopOnSignals(logger, async () => {
    await server.close();
    await libp2pCluster.close();
  });
}

runCli({
  name: 'coordinator',
  description: 'threshold KMS coordinator: HTTP API, auth, audit, session orchestration',
  run,
  runFlags: [['--insecure-http', 'serve plain HTTP on a non-loopback host (no TLS): an explicit choice']],
  init: {
    description: 'create the coordinator libp2p identity if missing and print its peer id',
    action: init,
  },
});
