/**
 * Node daemon entry point.
 *
 *   node node/main.ts --config FILE        run the node (see node/config.ts for the file and env)
 *   node node/main.ts init --config FILE   create the data dir and sealed identity; prints {"peerId"}
 *
 * Exit codes: 0 clean shutdown, 1 start-up failure (the message names the problem).
 */
import { Command } from 'commander';
import pino from 'pino';
import { KmsError } from '../protocol/errors.ts';
import { loadNodeConfig } from './config.ts';
import { initNode, startNode } from './daemon.ts';

/** Paths pino must never print, whatever a caller logs by mistake. */
export const REDACT = ['pin', 'passphrase', '*.pin', '*.passphrase', '*.share', '*.signingShare', '*.nonces', 'secret', '*.secret'];

async function run(configFile: string): Promise<void> {
  const cfg = loadNodeConfig(configFile);
  const logger = pino({ level: cfg.logLevel, base: { service: 'node' }, redact: REDACT });
  const node = await startNode(cfg, logger);
  let closing = false;
  const shutdown = async (signal: string) => {
    if (closing) return;
    closing = true;
    logger.info({ signal }, 'shutting down');
    const force = setTimeout(() => process.exit(1), 10_000);
    force.unref();
    await node.stop();
    process.exit(0);
  };
  process.on('SIGINT', () => void shutdown('SIGINT'));
  process.on('SIGTERM', () => void shutdown('SIGTERM'));
}

const program = new Command().name('node').description('threshold KMS node daemon: one custodian holding HSM-sealed key shares');
program
  .command('run', { isDefault: true })
  .description('run the node (the default command)')
  .requiredOption('-c, --config <file>', 'node config file (JSON)')
  .action(async (opts: { config: string }) => run(opts.config));
program
  .command('init')
  .description('create the data directory and the sealed libp2p identity; print the peer id')
  .requiredOption('-c, --config <file>', 'node config file (JSON)')
  .action(async (opts: { config: string }) => {
    const peerId = await initNode(loadNodeConfig(opts.config));
    process.stdout.write(`${JSON.stringify({ peerId })}\n`);
  });

program.parseAsync(process.argv).catch((e: unknown) => {
  const code = e instanceof KmsError ? e.code : 'Internal';
  process.stderr.write(`node: ${code}: ${(e as Error).message}\n`);
  process.exit(1);
});
