/**
 * The service benchmark (issue 8, "Service, end to end on the local devnet"): real processes on
 * this machine (scripts/devnet.ts: a coordinator and N nodes, SoftHSM2 tokens), driven through the
 * HTTP API by one in-process load generator (load.ts). In the same run, the single-key baseline
 * (baseline-server.ts: the same HTTP app over WholeKeyCluster, one process holding whole keys) is
 * driven by the same generator, so the ratios compare like with like on the same machine state.
 *
 * Phases (5-node devnet): per key spec and size, sequential sign latency and closed-loop
 * throughput at 1/8/32/128 clients, each followed by the baseline for that key spec; DKG and
 * reshare latency for n = 3, 5; sign latency with 100 / 1000 / 10 000 keys stored (bulk-keys.ts);
 * a CPU profile of one load phase (coordinator and node-1 restarted under `--cpu-prof`). Then a
 * 15-node devnet for DKG and reshare at n = 9, 15 and reshare 3-of-5 -> 4-of-7.
 *
 * The parts: service-plan.ts (plans, result shapes), sign-phase.ts, keyevent-phases.ts,
 * profile-phase.ts, baseline-process.ts (the reference server), devnet-api.ts, process-cpu.ts
 * (CPU accounting), service-report.ts (service.md and charts). Issue 17's targets run is
 * targets.ts (report: targets-report.ts), its key-events-only run keyevents.ts.
 */
import { readFileSync } from 'node:fs';
import os from 'node:os';
import { join } from 'node:path';
import { startBaseline } from './baseline-process.ts';
import { cloneKeys } from './bulk-keys.ts';
import type { ProfileSummary } from './cpuprofile.ts';
import { createKey, signsOk, target } from './devnet-api.ts';
import { createBenchDevnet } from './devnet-run.ts';
import { keyEventsOn, reshareFiveToSeven } from './keyevent-phases.ts';
import { sequential, signRequest } from './load.ts';
import { profilePhase } from './profile-phase.ts';
import { type BenchFile, machineInfo, writeResults } from './report.ts';
import {
  fullPlan,
  type KeyCountRow,
  type KeyEventRow,
  quickPlan,
  type ServicePlan,
  type ServiceResults,
  type SignRow,
} from './service-plan.ts';
import { analysisOf, serviceCharts, serviceMarkdown, targetChecks } from './service-report.ts';
import { signPhase } from './sign-phase.ts';
import { fmtMs } from './stats.ts';

export async function runServiceBench(
  plan: ServicePlan,
  outDir: string,
  log: (l: string) => void,
): Promise<ServiceResults> {
  const sign: SignRow[] = [];
  const keyEvents: KeyEventRow[] = [];
  const keyCount: KeyCountRow[] = [];
  let profiles: ProfileSummary[] = [];
  const notes: string[] = [];

  const d = await createBenchDevnet(5);
  const baseline = await startBaseline();
  try {
    log('starting the 5-node devnet (SoftHSM2 tokens)...');
    await d.start();
    let keysStored = 0;
    let refKey = '';
    for (const keySpec of plan.keySpecs) {
      for (const size of plan.sizes) {
        const { keyId } = await createKey(target(d), keySpec, size);
        keysStored++;
        if (keySpec === 'FROST_ED25519' && size.t === 3 && size.n === 5) refKey = keyId;
        sign.push(await signPhase(target(d), 'devnet', keySpec, size, keyId, plan, log));
      }
      const { keyId } = await createKey(baseline.target, keySpec, { t: 3, n: 5 });
      sign.push(await signPhase(baseline.target, 'baseline', keySpec, { t: 3, n: 5 }, keyId, plan, log));
    }
    await baseline.stop();

    const small = await keyEventsOn(d, plan.keyEventN, plan, log);
    keyEvents.push(...small.rows);
    keysStored += small.created;

    if (!refKey) refKey = (await createKey(target(d), 'FROST_ED25519', { t: 3, n: 5 })).keyId;
    for (const count of plan.keyCounts) {
      if (count > keysStored) {
        await d.stop();
        const t0 = performance.now();
        await cloneKeys(d.dir, d.nodes, refKey, count - keysStored);
        log(
          `bulk path: ${count - keysStored} cloned key records written in ${((performance.now() - t0) / 1000).toFixed(1)} s`,
        );
        keysStored = count;
        await d.startProcesses(() => signsOk(target(d), refKey));
      }
      const r = await sequential(target(d), signRequest(refKey), {
        count: plan.keyCountSigns,
        warmup: plan.warmup,
      });
      keyCount.push({ keysStored, latencyMs: r.latencyMs, errors: r.errors });
      log(
        `${keysStored} keys stored: sign p50 ${fmtMs(r.latencyMs.p50)} ms, p99 ${fmtMs(r.latencyMs.p99)} ms`,
      );
    }

    profiles = await profilePhase(d, refKey, plan, outDir, log);
  } finally {
    await baseline.stop();
    await d.dispose();
  }

  if (plan.bigDevnet) {
    const big = await createBenchDevnet(plan.bigDevnet.nodes);
    try {
      log(`starting the ${plan.bigDevnet.nodes}-node devnet...`);
      await big.start();
      keyEvents.push(...(await keyEventsOn(big, plan.bigDevnet.keyEventN, plan, log)).rows);
      keyEvents.push(await reshareFiveToSeven(big, plan, log));
    } catch (e) {
      // Best effort: a big devnet that does not come up must not lose the rest of the run.
      const msg = `the ${plan.bigDevnet.nodes}-node devnet phase failed: ${
        String((e as Error).message)
          .split('\n')
          .slice(-1)[0]
      }`;
      notes.push(msg);
      log(msg);
    } finally {
      await big.dispose();
    }
  } else {
    notes.push('--quick: no big devnet (n = 9, 15 and the 3-of-5 -> 4-of-7 reshare are skipped).');
  }
  const reps: Record<string, number> = {};
  for (const n of [3, 5, 7, 9, 15]) reps[String(n)] = plan.keyEventReps(n);
  return {
    plan: { ...plan, keyEventReps: reps },
    sign,
    keyEvents,
    keyCount,
    profiles,
    notes,
    auth: 'signed',
  };
}

/** Rewrites service.md, the charts and SUMMARY.md from a saved service.json (no measuring). */
export function renderService(opts: { out: string }, log: (line: string) => void = console.log): void {
  const file = JSON.parse(readFileSync(join(opts.out, 'service.json'), 'utf8')) as BenchFile<ServiceResults>;
  const written = writeResults(
    file,
    serviceMarkdown(file.data, file.durationS, analysisOf(opts.out)),
    serviceCharts(file.data),
    opts.out,
  );
  for (const c of targetChecks(file.data))
    log(
      `  ${c.met === null ? 'n/a ' : c.met ? 'MET ' : 'MISS'}  ${c.what}: ${c.measured} (target ${c.target})`,
    );
  for (const w of written) log(`wrote ${w}`);
}

/** Runs the service benchmark and writes service.json, service.md, the charts and SUMMARY.md. */
export async function benchService(
  opts: { quick: boolean; out: string },
  log: (line: string) => void = console.log,
): Promise<ServiceResults> {
  const machine = machineInfo();
  const t0 = performance.now();
  const c0 = process.cpuUsage();
  log(`service benchmark${opts.quick ? ' (--quick)' : ''}...`);
  const results = await runServiceBench(opts.quick ? quickPlan() : fullPlan(), opts.out, (l) =>
    log(`  ${l}`),
  );
  const c1 = process.cpuUsage(c0);
  const durationS = (performance.now() - t0) / 1000;
  const file: BenchFile<ServiceResults> = {
    name: 'service',
    machine,
    loadAverageAtEnd: os.loadavg()[0] ?? 0,
    durationS,
    cpuShare: (c1.user + c1.system) / 1e6 / durationS,
    data: results,
  };
  const written = writeResults(
    file,
    serviceMarkdown(results, durationS, analysisOf(opts.out)),
    serviceCharts(results),
    opts.out,
  );
  log('');
  for (const c of targetChecks(results))
    log(
      `  ${c.met === null ? 'n/a' : c.met ? 'MET ' : 'MISS'}  ${c.what}: ${c.measured} (target ${c.target})`,
    );
  for (const w of written) log(`wrote ${w}`);
  return results;
}
