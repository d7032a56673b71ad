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
  /** `flags`: the boolean flags of `run` that were given (e.g. `insecureHttp` for `--insecure-http`). */
  run: (configFile: string, flags: Record<string, boolean>) => Promise<void>;
  init: { description: string; action: (configFile: string) => Promise<void> };
  /** Extra boolean flags of `run`: [flag, description]. */
  runFlags?: readonly (readonly [string, string])[];
}): void {
  const program = new Command().name(opts.name).description(opts.description);
  const run = program
    .command('run', { isDefault: true })
    .description(`run the ${opts.name} (the default command)`)
    .requiredOption('-c, --config <file>', `${opts.name} config file (JSON)`);
  for (const [flag, description] of opts.runFlags ?? []) run.option(flag, description);
  run.action(async ({ config, ...flags }: { config: string } & Record<string, boolean>) =>
    opts.run(config, flags),
  );
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
