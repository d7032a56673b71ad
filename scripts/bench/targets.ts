/**
 * `npm run bench -- targets` (issue 17): the 3-of-5 devnet beside the single-key reference server
 * in one run, DKG 3-of-5 and reshare 3-of-5 -> 4-of-7 through the API, and a CPU profile.
 */
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import { join } from 'node:path';
import { startBaseline } from './baseline-process.ts';
import type { ProfileSummary } from './cpuprofile.ts';
import { createKey, reshare, target } from './devnet-api.ts';
import { createBenchDevnet } from './devnet-run.ts';
import { devnetPids } from './process-cpu.ts';
import { profilePhase } from './profile-phase.ts';
import { type KeyEventRow, quickPlan, type ServicePlan, type SignRow } from './service-plan.ts';
import { signPhase } from './sign-phase.ts';
import { fmtMs, summarize } from './stats.ts';
import { issue17Checks, type TargetsResults, targetsMarkdown } from './targets-report.ts';

/**
 * One run for the issue's targets: a 7-node devnet (3-of-5 keys on node-1..5; the 4-of-7 reshare
 * needs seven) and the reference server (baseline-server.ts), each key spec's devnet phase followed
 * by the reference's with the same client; DKG 3-of-5 and reshare 3-of-5 -> 4-of-7 through the
 * API; then a CPU profile of the coordinator and node-1 under 32 clients. Writes
 * `<out>/service-targets-<label>.json` and `.md`, and `<out>/profile-<label>/`.
 */
export async function benchTargets(
  opts: { out: string; label: string; quick?: boolean; profile?: boolean },
  log: (l: string) => void = console.log,
): Promise<TargetsResults> {
  const quick = opts.quick ?? false;
  const plan = {
    sequentialCount: quick ? 20 : 200,
    warmup: quick ? 5 : 30,
    concurrency: quick ? [1, 8] : [1, 8, 16, 32, 64],
    loadMs: quick ? 1_000 : 3_000,
  };
  const signPlan: ServicePlan = {
    ...quickPlan(),
    quick,
    sequentialCount: plan.sequentialCount,
    warmup: plan.warmup,
    concurrency: plan.concurrency,
    loadMs: plan.loadMs,
    loadWarmupMs: quick ? 200 : 700,
    profileMs: quick ? 1_500 : 8_000,
  };
  const startedAt = new Date().toISOString();
  const load0 = os.loadavg()[0] ?? 0;
  const sign: SignRow[] = [];
  const keyEvents: KeyEventRow[] = [];
  let profiles: ProfileSummary[] = [];
  const d = await createBenchDevnet(7);
  const baseline = await startBaseline();
  try {
    log('starting the 7-node devnet (SoftHSM2 tokens)...');
    await d.start();
    const size = { t: 3, n: 5 };
    let refKey = '';
    for (const keySpec of ['FROST_ED25519', 'FROST_SECP256K1_TR'] as const) {
      const { keyId } = await createKey(target(d), keySpec, size);
      if (keySpec === 'FROST_ED25519') refKey = keyId;
      sign.push(await signPhase(target(d), 'devnet', keySpec, size, keyId, signPlan, log, devnetPids(d)));
      const ref = await createKey(baseline.target, keySpec, size);
      sign.push(
        await signPhase(baseline.target, 'baseline', keySpec, size, ref.keyId, signPlan, log, [
          { name: 'reference', pid: baseline.pid },
        ]),
      );
    }
    await baseline.stop();
    const reps = quick ? 2 : 10;
    const dkg: number[] = [];
    const rs: number[] = [];
    for (let i = 0; i < reps; i++) {
      const k = await createKey(target(d), 'FROST_ED25519', size);
      dkg.push(k.ms);
      rs.push(await reshare(target(d), k.keyId, { t: 4, n: 7 }));
    }
    keyEvents.push(
      {
        operation: 'dkg',
        keySpec: 'FROST_ED25519',
        from: size,
        devnetNodes: 7,
        reps,
        latencyMs: summarize(dkg),
      },
      {
        operation: 'reshare',
        keySpec: 'FROST_ED25519',
        from: size,
        to: { t: 4, n: 7 },
        devnetNodes: 7,
        reps,
        latencyMs: summarize(rs),
      },
    );
    log(
      `DKG 3-of-5 p50 ${fmtMs(summarize(dkg).p50)} ms, reshare 3-of-5 -> 4-of-7 p50 ${fmtMs(summarize(rs).p50)} ms (${reps} reps)`,
    );
    if (opts.profile !== false) {
      profiles = await profilePhase(d, refKey, signPlan, opts.out, log, `profile-${opts.label}`);
    }
  } finally {
    await baseline.stop();
    await d.dispose();
  }
  let commit = '';
  try {
    commit = readFileSync(join(import.meta.dirname, '..', '..', '.git', 'HEAD'), 'utf8').trim();
    if (commit.startsWith('ref: ')) {
      commit = readFileSync(join(import.meta.dirname, '..', '..', '.git', commit.slice(5)), 'utf8').trim();
    }
  } catch {
    // a worktree or a copy: leave it empty
  }
  const results: TargetsResults = {
    label: opts.label,
    commit: commit.slice(0, 12),
    startedAt,
    loadAverage: { start: load0, end: os.loadavg()[0] ?? 0 },
    plan,
    sign,
    keyEvents,
    profiles,
    targets: issue17Checks({ sign, keyEvents }),
  };
  mkdirSync(opts.out, { recursive: true });
  writeFileSync(
    join(opts.out, `service-targets-${opts.label}.json`),
    `${JSON.stringify(results, null, 2)}\n`,
  );
  writeFileSync(join(opts.out, `service-targets-${opts.label}.md`), targetsMarkdown(results));
  for (const c of results.targets)
    log(
      `  ${c.met === null ? 'n/a ' : c.met ? 'MET ' : 'MISS'}  ${c.what}: ${c.measured} (target ${c.target})`,
    );
  return results;
}
