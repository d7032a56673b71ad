/**
 * Node daemon entry point.
 *
 *   node node/main.ts --config FILE        run the node (see node/config.ts for the file and env)
 *   node node/main.ts init --config FILE   create the data dir and sealed identity; prints {"peerId"}
 *
 * Exit codes: 0 clean shutdown, 1 start-up failure (the message names the problem).
 */
import pino from 'pino';
import { loadNodeConfig } from './config.ts';
import { initNode, startNode } from './daemon.ts';
import { runCli, stopOnSignals } from '../common/process.ts';

/** Paths pino must never print, whatever a caller logs by mistake. */
export const REDACT = [
  'pin',
  'passphrase',
  '*.pin',
  '*.passphrase',
  '*.share',
  '*.signingShare',
  '*.nonces',
  'secret',
  '*.secret',
];

async function run(configFile: string): Promise<void> {
  const cfg = loadNodeConfig(configFile);
  const logger = pino({ level: cfg.logLevel, base: { service: 'node' }, redact: REDACT });
  const node = await startNode(cfg, logger);
  stopOnSignals(logger, () => node.stop());
}

runCli({
  name: 'node',
  description: 'threshold KMS node daemon: one custodian holding HSM-sealed key shares',
  run,
  init: {
    description: 'create the data directory and the sealed libp2p identity; print the peer id',
    action: async (configFile) => {
      const peerId = await initNode(loadNodeConfig(configFile));
      process.stdout.write(`${JSON.stringify({ peerId })}\n`);
    },
  },
});
