/**
 * `kms devnet status|stop|start [name]`: rehearse failures on a running local devnet by stopping
 * and starting single processes while the rest run. The devnet dir comes from KMS_DEVNET_DIR
 * (default .devnet). A node started this way rejoins with its old state.
 */
import type { Command } from 'commander';
import type { Io } from './kms.ts';
import {
  devnetDir,
  devnetStatus,
  readPid,
  isAlive,
  readProcesses,
  startProcess,
  stopProcess,
} from './devnet-lib.ts';

export function registerDevnet(program: Command, io: Io): void {
  const devnet = program
    .command('devnet')
    .description('control the processes of a local devnet (`npm run devnet`)')
    .addHelpText(
      'after',
      '\nExamples:\n  $ npx kms devnet status\n  $ npx kms devnet stop node-3\n  $ npx kms devnet start node-3\n',
    );
  const json = () => (program.opts() as { json?: boolean }).json === true;

  devnet
    .command('status')
    .description('list the devnet processes and whether each runs')
    .action(() => {
      const s = devnetStatus(devnetDir());
      if (json()) io.out(`${JSON.stringify(s, null, 2)}\n`);
      else
        for (const p of s)
          io.out(`${p.name.padEnd(12)} ${p.running ? `running (pid ${p.pid})` : 'stopped'}\n`);
    });

  devnet
    .command('stop')
    .argument('[name]', 'process to stop (coordinator, node-1, ...); all when omitted')
    .description('stop one devnet process (SIGTERM, then SIGKILL after 10 s), or all of them')
    .action(async (name?: string) => {
      const dir = devnetDir();
      const names = name ? [checkName(dir, name)] : readProcesses(dir).map((p) => p.name);
      for (const n of names) {
        const stopped = await stopProcess(dir, n);
        io.out(`${n}: ${stopped ? 'stopped' : 'was not running'}\n`);
      }
    });

  devnet
    .command('start')
    .argument('<name>', 'process to start (coordinator, node-1, ...)')
    .description('start one devnet process again with its old state')
    .action((name: string) => {
      const dir = devnetDir();
      const p = readProcesses(dir).find((x) => x.name === checkName(dir, name))!;
      const pid = readPid(dir, p.name);
      if (pid !== undefined && isAlive(pid)) {
        io.out(`${p.name}: already running (pid ${pid})\n`);
        return;
      }
      const started = startProcess(dir, p, { detached: true });
      io.out(`${p.name}: started (pid ${started})\n`);
    });
}

function checkName(dir: string, name: string): string {
  const names = readProcesses(dir).map((p) => p.name);
  if (!names.includes(name)) throw new Error(`unknown devnet process ${name}; one of ${names.join(', ')}`);
  return name;
}
