/**
 * BENCH-ONLY. The single-key baseline of the service benchmark: the coordinator's real HTTP app
 * (coordinator/app.ts startCoordinator: fastify, auth, LevelDB key store, audit log, pino logging
 * at the product's default level) in front of WholeKeyCluster, which holds every key WHOLE in this
 * one process (scripts/bench/whole-key-cluster.ts). It is what the service would cost without
 * distribution; it is never part of the product. Run as a child process of the benchmark (so it
 * has its own event loop, like the devnet coordinator), it reports its URL over IPC and stops on
 * SIGTERM.
 *
 * Env: BENCH_BASELINE_DIR (data dir), BENCH_BASELINE_TOKEN (admin token), BENCH_BASELINE_NODES.
 */
import { startCoordinator } from '../../coordinator/app.ts';
import { parseConfig } from '../../coordinator/config.ts';
import { WholeKeyCluster } from './whole-key-cluster.ts';

const dataDir = process.env.BENCH_BASELINE_DIR;
const adminToken = process.env.BENCH_BASELINE_TOKEN;
if (!dataDir || !adminToken || !process.send) {
  process.stderr.write(
    'baseline-server: run by scripts/bench/service.ts (needs its env and an IPC channel)\n',
  );
  process.exit(2);
}
const cluster = new WholeKeyCluster({ nodes: Number(process.env.BENCH_BASELINE_NODES ?? 5) });
const config = parseConfig({ host: '127.0.0.1', port: 0, dataDir, adminToken });
const server = await startCoordinator({ config, cluster });
process.send({ url: server.url });
const stop = async () => {
  await server.close();
  await cluster.close();
  process.exit(0);
};
process.on('SIGTERM', () => void stop());
process.on('disconnect', () => void stop());
