/**
 * `npm run bench -- targets` (issue 17): the 3-of-5 devnet beside the single-key reference server
 * in one run, the protocol's own CPU per signature (the crypto-bound limit), DKG 3-of-5 and
 * reshare 3-of-5 -> 4-of-7 through the API, and a CPU profile.
 */
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import { join } from 'node:path';
import { startBaseline } from './baseline-process.ts';
import type { ProfileSummary } from './cpuprofile.ts';
import { measureCryptoLimit } from './crypto-limit.ts';
import { createKey, target } from './devnet-api.ts';
import { createBenchDevnet } from './devnet-run.ts';
import { dkgThenReshare } from './keyevent-phases.ts';
import type { HttpTarget } from './load.ts';
import { devnetPids } from './process-cpu.ts';
import { profilePhase } from './profile-phase.ts';
import { type KeyEventRow, quickPlan, type ServicePlan, type SignRow } from './service-plan.ts';
import { signPhase, warmUp } from './sign-phase.ts';
import { issue17Checks, type TargetsResults, targetsMarkdown, type WarmUpRow } from './targets-report.ts';

const KEY_SPECS = ['FROST_ED25519', 'FROST_SECP256K1_TR'] as const;

/** The commit checked out (12 hex digits), or '' in a copy without .git. */
export function gitHead(): string {
  const git = join(import.meta.dirname, '..', '..', '.git');
  try {
    let head = readFileSync(join(git, 'HEAD'), 'utf8').trim();
    if (head.startsWith('ref: ')) head = readFileSync(join(git, head.slice(5)), 'utf8').trim();
    return head.slice(0, 12);
  } catch {
    return '';
  }
}

/**
 * One run for the issue's targets: the protocol's CPU per 3-of-5 signature in this process (before
 * any server starts); a 7-node devnet (3-of-5 keys on node-1..5; the 4-of-7 reshare needs seven)
 * and the reference server (baseline-server.ts); an untimed warm-up of both systems with both key
 * specs at every concurrency level; then each key spec's devnet phase followed by the reference's
 * with the same client; DKG 3-of-5 and reshare 3-of-5 -> 4-of-7 through the API; a CPU profile of
 * the coordinator and node-1 under 32 clients. Writes `<out>/service-targets-<label>.json` and
 * `.md`, and `<out>/profile-<label>/`.
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
    warmupPerLevel: quick ? 10 : 200,
    keyEventReps: quick ? 2 : 10,
    keyEventWarmup: 1,
    cryptoIterations: quick ? 5 : 51,
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
  const cryptoLimit = await measureCryptoLimit(KEY_SPECS, { iterations: plan.cryptoIterations });
  for (const c of cryptoLimit)
    log(
      `protocol ${c.keySpec} 3-of-5: ${c.protocolCpuMs.p50.toFixed(2)} CPU ms per signature, all parties (crypto-bound limit ${c.limitPerSecond.toFixed(0)} sig/s on ${c.cores} cores)`,
    );
  const sign: SignRow[] = [];
  const keyEvents: KeyEventRow[] = [];
  const warmUps: WarmUpRow[] = [];
  let profiles: ProfileSummary[] = [];
  const d = await createBenchDevnet(7);
  const baseline = await startBaseline();
  try {
    log('starting the 7-node devnet (SoftHSM2 tokens)...');
    await d.start();
    const size = { t: 3, n: 5 };
    const systems = [
      { system: 'devnet', target: target(d), keys: new Map<string, string>() },
      { system: 'baseline', target: baseline.target, keys: new Map<string, string>() },
    ] as const satisfies readonly {
      system: SignRow['system'];
      target: HttpTarget;
      keys: Map<string, string>;
    }[];
    for (const s of systems)
      for (const keySpec of KEY_SPECS) s.keys.set(keySpec, (await createKey(s.target, keySpec, size)).keyId);
    // Untimed: every process warm on both suites before anything is measured (see warmUp).
    for (const s of systems)
      for (const keySpec of KEY_SPECS) {
        const w = await warmUp(s.target, s.keys.get(keySpec)!, {
          concurrency: plan.concurrency,
          perLevel: plan.warmupPerLevel,
        });
        warmUps.push({ system: s.system, keySpec, signatures: w.signatures, errors: w.errors });
        log(
          `warm-up ${s.system.padEnd(8)} ${keySpec}: ${w.signatures} signatures (untimed)${w.errors ? `, ${w.errors} errors (${w.errorSamples[0]})` : ''}`,
        );
      }
    const [dev, ref] = systems;
    for (const keySpec of KEY_SPECS) {
      sign.push(
        await signPhase(
          dev.target,
          'devnet',
          keySpec,
          size,
          dev.keys.get(keySpec)!,
          signPlan,
          log,
          devnetPids(d),
        ),
      );
      sign.push(
        await signPhase(ref.target, 'baseline', keySpec, size, ref.keys.get(keySpec)!, signPlan, log, [
          { name: 'reference', pid: baseline.pid },
        ]),
      );
    }
    await baseline.stop();
    keyEvents.push(
      ...(await dkgThenReshare(d, { reps: plan.keyEventReps, warmup: plan.keyEventWarmup }, log)),
    );
    if (opts.profile !== false) {
      const refKey = dev.keys.get('FROST_ED25519')!;
      profiles = await profilePhase(d, refKey, signPlan, opts.out, log, `profile-${opts.label}`);
    }
  } finally {
    await baseline.stop();
    await d.dispose();
  }
  const results: TargetsResults = {
    label: opts.label,
    commit: gitHead(),
    startedAt,
    loadAverage: { start: load0, end: os.loadavg()[0] ?? 0 },
    plan,
    sign,
    keyEvents,
    profiles,
    cryptoLimit,
    warmUp: warmUps,
    targets: issue17Checks({ sign, keyEvents, cryptoLimit }),
  };
  mkdirSync(opts.out, { recursive: true });
  writeFileSync(
    join(opts.out, `service-targets-${opts.label}.json`),
    `${JSON.stringify(results, null, 2)}\n`,
  );
  writeFileSync(join(opts.out, `service-targets-${opts.label}.md`), targetsMarkdown(results));
  for (const c of results.targets)
    log(
      `  ${c.context ? 'ctx ' : c.met === null ? 'n/a ' : c.met ? 'MET ' : 'MISS'}  ${c.what}: ${c.measured} (${c.context ? '' : 'target '}${c.target})`,
    );
  return results;
}
