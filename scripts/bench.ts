#!/usr/bin/env node
/**
 * `npm run bench -- protocol|service|all [--quick] [--out DIR]`: runs the benchmarks and writes
 * bench/results/ (JSON per benchmark, SUMMARY.md, SVG charts). See bench/results/SUMMARY.md.
 */
import { existsSync, readFileSync } from 'node:fs';
import os from 'node:os';
import { join } from 'node:path';
import { Command, Option } from 'commander';
import {
  benchSuites,
  fullPlan,
  type ProtocolResults,
  quickPlan,
  runProtocolBench,
  runRequestCheckOnly,
} from './bench/protocol.ts';
import {
  type BenchFile,
  machineInfo,
  protocolCharts,
  protocolMarkdown,
  RESULTS_DIR,
  rebuildSummary,
  writeResults,
} from './bench/report.ts';
import { fmtMs } from './bench/stats.ts';

type Opts = { quick: boolean; out: string };
type CliOpts = Opts & { renderOnly: boolean; only?: string; maxKeys: string; reps?: string };

/** Runs the protocol benchmark and writes its files; returns the results (also used by the smoke test). */
export async function benchProtocol(
  opts: Opts,
  log: (line: string) => void = console.log,
): Promise<ProtocolResults> {
  const machine = machineInfo();
  const t0 = performance.now();
  const c0 = process.cpuUsage();
  const results = await runProtocolBench(opts.quick ? quickPlan() : fullPlan(), (l) => log(`  ${l}`));
  const c1 = process.cpuUsage(c0);
  const durationS = (performance.now() - t0) / 1000;
  const file = {
    name: 'protocol',
    machine,
    loadAverageAtEnd: os.loadavg()[0] ?? 0,
    durationS,
    cpuShare: (c1.user + c1.system) / 1e6 / durationS,
    data: results,
  };
  const written = writeResults(file, protocolMarkdown(results, durationS), protocolCharts(results), opts.out);
  log('');
  log(keyTable(results));
  log('');
  for (const w of written) log(`wrote ${w}`);
  return results;
}

/**
 * Measures only a node's request check and the 3-of-5 signatures it is compared with, and adds
 * them to the saved protocol.json (the rest of it is kept as it was measured); re-renders.
 */
export async function benchRequestCheckOnly(
  opts: Opts,
  log: (line: string) => void = console.log,
): Promise<void> {
  const path = join(opts.out, 'protocol.json');
  if (!existsSync(path)) throw new Error(`--only request-check adds to a saved run: ${path} is missing`);
  const file = JSON.parse(readFileSync(path, 'utf8')) as BenchFile<ProtocolResults>;
  const { section } = await runRequestCheckOnly(
    opts.quick ? { sign: 1, check: 20 } : { sign: 20, check: 3000 },
    (l) => log(`  ${l}`),
  );
  const updated: BenchFile<ProtocolResults> = { ...file, data: { ...file.data, requestCheck: section } };
  const written = writeResults(
    updated,
    protocolMarkdown(updated.data, updated.durationS),
    protocolCharts(updated.data),
    opts.out,
  );
  for (const w of written) log(`wrote ${w}`);
}

/** Rewrites protocol.md, the charts and SUMMARY.md from a saved protocol.json (no measuring). */
export function renderProtocol(opts: Opts, log: (line: string) => void = console.log): void {
  const file = JSON.parse(
    readFileSync(join(opts.out, 'protocol.json'), 'utf8'),
  ) as BenchFile<ProtocolResults>;
  const written = writeResults(
    file,
    protocolMarkdown(file.data, file.durationS),
    protocolCharts(file.data),
    opts.out,
  );
  log(keyTable(file.data));
  for (const w of written) log(`wrote ${w}`);
}

/** The table printed at the end: every row up to n = 10, by key spec (larger n in SUMMARY.md). */
function keyTable(r: ProtocolResults): string {
  const lines = [
    `${'key spec'.padEnd(19)} ${'operation'.padEnd(8)} ${'size'.padEnd(16)} ${'impl'.padEnd(11)} ${'single-key'.padStart(10)} ${'summed'.padStart(8)} ${'critical'.padStart(9)} ${'x single'.padStart(9)}`,
  ];
  const order = ['sign', 'dkg', 'refresh', 'reshare', 'repair'];
  const rows = r.rows
    .filter((row) => row.size.n <= 10)
    .sort(
      (a, b) =>
        r.plan.keySpecs.indexOf(a.keySpec) - r.plan.keySpecs.indexOf(b.keySpec) ||
        order.indexOf(a.operation) - order.indexOf(b.operation) ||
        a.size.n - b.size.n ||
        a.implementation.localeCompare(b.implementation),
    );
  for (const row of rows) {
    const single = r.singleKey.find((s) => s.keySpec === row.keySpec)?.cpuMsPerOp.p50 ?? Number.NaN;
    const size = `${row.size.t}-of-${row.size.n}${row.newSize ? `->${row.newSize.t}-of-${row.newSize.n}` : ''}`;
    lines.push(
      [
        row.keySpec.padEnd(19),
        row.operation.padEnd(8),
        size.padEnd(16),
        row.implementation.padEnd(11),
        fmtMs(single).padStart(10),
        fmtMs(row.summedCpuMs.p50).padStart(8),
        fmtMs(row.criticalPathCpuMs.p50).padStart(9),
        `${row.ratioToSingleKey.toFixed(1)}x`.padStart(9),
      ].join(' '),
    );
  }
  lines.push('(CPU ms, median over iterations; n up to 100 and the primitives table in SUMMARY.md)');
  return lines.join('\n');
}

/**
 * The service benchmark lives in scripts/bench/service.ts (written separately); it must export
 * `benchService(opts: { quick: boolean; out: string }): Promise<void>`.
 */
async function benchService(opts: Opts): Promise<boolean> {
  const path = join(import.meta.dirname, 'bench', 'service.ts');
  if (!existsSync(path)) {
    console.error('service benchmark: scripts/bench/service.ts is not written yet; skipping.');
    return false;
  }
  const mod = (await import(path)) as { benchService?: (o: Opts) => Promise<void> };
  if (typeof mod.benchService !== 'function') {
    console.error(
      'service benchmark: scripts/bench/service.ts does not export benchService(opts); skipping.',
    );
    return false;
  }
  await mod.benchService(opts);
  return true;
}

async function main(argv: string[]): Promise<void> {
  const program = new Command()
    .name('npm run bench --')
    .description('Benchmarks of the threshold KMS; results go to bench/results/.')
    .addHelpText(
      'after',
      [
        '',
        'Benchmarks:',
        '  protocol  in one process: DKG and one threshold signature for every key spec (2-of-3 up to',
        '            67-of-100), CPU all parties summed and on the critical path, beside a plain',
        '            single-key signature; our key events; point/scalar primitive costs (noble vs',
        '            libsodium). About 5 minutes on 2 cores.',
        '  service   end to end on real processes (coordinator + 5 nodes, SoftHSM2; 15 nodes for',
        '            key events at n = 9, 15) through the HTTP API, beside a single-key baseline:',
        '            sign latency and throughput, DKG/reshare vs n, keys stored, a CPU profile.',
        '            About 10 minutes (--quick: under 1 minute).',
        '  scale     sign latency/throughput, key reads and idle CPU with 10 000 keys stored (100 000',
        '            with --max-keys 100000, about 10 more minutes), bytes per key on disk and in memory',
        '            on the coordinator and the nodes (scripts/bench/scale.ts). About 5 minutes.',
        '  all       protocol and service (scale runs on its own).',
        '  summary   rebuilds SUMMARY.md and its issue 17 targets table from the saved results.',
        '  targets   issue 17: 3-of-5 sign p50 and throughput beside the single-key reference server',
        '            (same client, same run), DKG 3-of-5 and reshare 3-of-5 -> 4-of-7 through the API,',
        '            CPU per signature, a CPU profile: service-targets-latest.json/md. Before anything is',
        '            measured, both systems sign untimed with both key specs at every concurrency level; the',
        "            protocol's own CPU per signature (the crypto-bound limit) is measured in the same run.",
        '            About 4 minutes.',
        "  keyevents the targets run's key events alone: DKG 3-of-5 and reshare 3-of-5 -> 4-of-7 through",
        '            the API on a 7-node devnet, p50/min/max over --reps (default 10, after 1 untimed),',
        '            CPU per operation by process: keyevents-latest.json/md. About 1 minute.',
        '  encryption  decrypt (coordinator combines, or sealed to the client), generate-data-key and',
        '            encrypt beside sign on one devnet (3-of-5); bench/results/encryption.md. About 3 minutes.',
        '',
        'Output: <name>.json (machine-readable), <name>.md, SUMMARY.md (machine, versions, all',
        'sections) and SVG charts.',
        '',
        'Examples:',
        '  npm run bench -- protocol',
        '  npm run bench -- protocol --quick --out /tmp/bench',
        "  npm run bench -- protocol --only request-check   (a node's request check vs signing, added to the saved run)",
        "  npm run bench -- protocol --only suites          (every suite's 3-of-5 signature vs noble's FROST: protocol-suites.md)",
        '  npm run bench -- scale --max-keys 100000',
      ].join('\n'),
    )
    .addOption(
      new Option('--quick', 'tiny sizes and iteration counts: checks the harness, measures nothing').default(
        false,
      ),
    )
    .addOption(new Option('--out <dir>', 'where to write results').default(RESULTS_DIR))
    .addOption(
      new Option(
        '--only <part>',
        'protocol only: measure just this part (request-check: added to the saved protocol.json; suites: protocol-suites.json/md)',
      ).choices(['request-check', 'suites']),
    )
    .addOption(
      new Option(
        '--render-only',
        're-render the .md, SVG and SUMMARY.md from the saved <benchmark>.json; measures nothing',
      ).default(false),
    )
    .addOption(
      new Option('--max-keys <n>', 'scale only: the largest key count measured (10000 or 100000)')
        .choices(['10000', '100000'])
        .default('10000'),
    )
    .addOption(new Option('--reps <n>', 'keyevents only: measured repetitions'))
    .argument('<which>', 'protocol | service | scale | all | summary | targets | keyevents | encryption')
    .showHelpAfterError()
    .action(async (which: string, o: CliOpts) => {
      // Issue 17: the service targets, the 3-of-5 devnet beside the single-key reference server.
      if (which === 'targets') {
        const { benchTargets } = await import('./bench/targets.ts');
        await benchTargets({ out: o.out, label: 'latest', quick: o.quick });
        return;
      }
      // Issue 17's key events alone (DKG 3-of-5, reshare 3-of-5 -> 4-of-7), as the targets run measures them.
      if (which === 'keyevents') {
        const { benchKeyEvents } = await import('./bench/keyevents.ts');
        await benchKeyEvents({
          out: o.out,
          quick: o.quick,
          ...(o.reps !== undefined ? { reps: Number(o.reps) } : {}),
        });
        return;
      }
      // Issue 15: decrypt and generate-data-key beside sign, on one devnet (scripts/bench/encryption.ts).
      if (which === 'encryption') {
        const { benchEncryption } = await import('./bench/encryption.ts');
        await benchEncryption({ quick: o.quick, out: o.out });
        return;
      }
      if (!['protocol', 'service', 'scale', 'summary', 'all'].includes(which))
        program.error(`unknown benchmark ${JSON.stringify(which)}: protocol | service | scale | all`);
      if (which === 'summary') {
        // SUMMARY.md and its issue 17 targets table, rebuilt from the saved results (measures nothing).
        console.log(`wrote ${rebuildSummary(o.out)}`);
        return;
      }
      if (which === 'scale') {
        const scale = (await import('./bench/scale.ts')) as typeof import('./bench/scale.ts');
        if (o.renderOnly) scale.renderScale(o);
        else await scale.benchScale({ quick: o.quick, out: o.out, maxKeys: Number(o.maxKeys) });
        return;
      }
      const opts: Opts = { quick: o.quick, out: o.out };
      if (o.only !== undefined) {
        if (which !== 'protocol') program.error(`--only ${o.only} belongs to the protocol benchmark`);
        if (o.only === 'suites') await benchSuites(opts);
        else await benchRequestCheckOnly(opts);
        return;
      }
      if (o.renderOnly) {
        if (which === 'protocol' || which === 'all') renderProtocol(opts);
        if (which === 'service' || which === 'all') {
          const { renderService } = (await import(
            './bench/service.ts'
          )) as typeof import('./bench/service.ts');
          renderService(opts);
        }
        return;
      }
      if (which === 'protocol' || which === 'all') {
        console.log(`protocol benchmark${opts.quick ? ' (--quick)' : ''}...`);
        await benchProtocol(opts);
      }
      if (which === 'service' || which === 'all') {
        const ran = await benchService(opts);
        if (!ran && which === 'service') process.exitCode = 1;
      }
    });
  await program.parseAsync(argv);
}

if (import.meta.main) {
  await main(process.argv);
}
