/**
 * Process plumbing shared by the node and coordinator entry points: a graceful stop on SIGINT and
 * SIGTERM (a second signal is ignored; a stop that hangs is cut after 10 s), and the command line
 * with `run` (default) and `init`, whose failures print `<name>: <code>: <message>` and exit 1.
 */
import { Command } from 'commander';
import { KmsError } from '../protocol/errors.ts';

export function stopOnSignals(
  log: { info: (o: object, m: string) => void },
  stop: () => Promise<void>,
): void {
  let closing = false;
  const shutdown = async (signal: string) => {
    if (closing) return;
    closing = true;
    log.info({ signal }, 'shutting down');
    setTimeout(() => process.exit(1), 10_000).unref();
    await stop();
    process.exit(0);
  };
  process.on('SIGINT', () => void shutdown('SIGINT'));
  process.on('SIGTERM', () => void shutdown('SIGTERM'));
}

export function runCli(opts: {
  name: string;
  description: string;
  run: (configFile: string) => Promise<void>;
  init: { description: string; action: (configFile: string) => Promise<void> };
}): void {
  const program = new Command().name(opts.name).description(opts.description);
  program
    .command('run', { isDefault: true })
    .description(`run the ${opts.name} (the default command)`)
    .requiredOption('-c, --config <file>', `${opts.name} config file (JSON)`)
    .action(async (o: { config: string }) => opts.run(o.config));
  program
    .command('init')
    .description(opts.init.description)
    .requiredOption('-c, --config <file>', `${opts.name} config file (JSON)`)
    .action(async (o: { config: string }) => opts.init.action(o.config));
  program.parseAsync(process.argv).catch((e: unknown) => {
    const code = e instanceof KmsError ? e.code : 'Internal';
    process.stderr.write(`${opts.name}: ${code}: ${(e as Error).message}\n`);
    process.exit(1);
  });
}
