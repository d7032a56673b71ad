/**
 * BENCH-ONLY. The single-key baseline of the service benchmark: the coordinator's real HTTP app
 * (coordinator/app.ts startCoordinator: fastify, auth, LevelDB key store, audit log, pino logging
 * at the product's default level) in front of WholeKeyCluster, which holds every key WHOLE in this
 * one process (scripts/bench/whole-key-cluster.ts). It is what the service would cost without
 * distribution; it is never part of the product. Run as a child process of the benchmark (so it
 * has its own event loop, like the devnet coordinator), it reports its URL over IPC and stops on
 * SIGTERM.
 *
 * Like the devnet's coordinator it serves HTTPS (a certificate made as scripts/devnet-tls.ts makes
 * the devnet's) and takes only client-signed requests for keys: the app verifies each request's
 * signature once, against the genesis it installs on WholeKeyCluster (whose simulated nodes keep
 * it but check nothing: no node work, the best a single server can do). The devnet's request is
 * verified by the coordinator and again, with the policy, by each signing node.
 *
 * Env: BENCH_BASELINE_DIR (data dir), BENCH_BASELINE_TOKEN (admin token), BENCH_BASELINE_NODES,
 * BENCH_BASELINE_GENESIS (governance genesis file), BENCH_BASELINE_TLS_CERT/KEY (PEM files).
 */
import { startCoordinator } from '../../coordinator/app.ts';
import { parseConfig } from '../../coordinator/config.ts';
import { loadGenesis } from '../../coordinator/governance.ts';
import { governanceHash } from '../../policy/governance.ts';
import { WholeKeyCluster } from './whole-key-cluster.ts';

const dataDir = process.env.BENCH_BASELINE_DIR;
const adminToken = process.env.BENCH_BASELINE_TOKEN;
if (!dataDir || !adminToken || !process.send) {
  process.stderr.write(
    'baseline-server: run by scripts/bench/service.ts (needs its env and an IPC channel)\n',
  );
  process.exit(2);
}
const genesisFile = process.env.BENCH_BASELINE_GENESIS;
const certFile = process.env.BENCH_BASELINE_TLS_CERT;
const keyFile = process.env.BENCH_BASELINE_TLS_KEY;
const genesis = genesisFile ? loadGenesis(genesisFile) : undefined;
const cluster = new WholeKeyCluster({
  nodes: Number(process.env.BENCH_BASELINE_NODES ?? 5),
  ...(genesis ? { genesisHash: governanceHash(genesis) } : {}),
});
const config = parseConfig({
  host: '127.0.0.1',
  port: 0,
  dataDir,
  adminToken,
  ...(genesisFile ? { governance: { genesisFile } } : {}),
  ...(certFile && keyFile ? { tls: { certFile, keyFile } } : {}),
});
const server = await startCoordinator({ config, cluster });
process.send({ url: server.url });
const stop = async () => {
  await server.close();
  await cluster.close();
  process.exit(0);
};
process.on('SIGTERM', () => void stop());
process.on('disconnect', () => void stop());
