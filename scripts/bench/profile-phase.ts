/**
 * The CPU profile of one load phase: the coordinator and node-1 restarted under `--cpu-prof`,
 * 32 clients for `plan.profileMs`, then stopped cleanly (so the profiles are written) and
 * summarized (cpuprofile.ts); the files go to `<out>/<destName>/`.
 */
import { copyFileSync, mkdirSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { readPid } from '../devnet-lib.ts';
import { type ProfileSummary, summarizeProfileFile } from './cpuprofile.ts';
import { signsOk, target } from './devnet-api.ts';
import type { BenchDevnet } from './devnet-run.ts';
import { closedLoop, signRequest } from './load.ts';
import type { ServicePlan } from './service-plan.ts';

/** Restarts coordinator and node-1 under --cpu-prof, runs one load phase, stops, summarizes. */
export async function profilePhase(
  d: BenchDevnet,
  keyId: string,
  plan: ServicePlan,
  outDir: string,
  log: (l: string) => void,
  destName = 'profile',
): Promise<ProfileSummary[]> {
  const profDir = join(d.dir, 'cpu-prof');
  mkdirSync(profDir, { recursive: true });
  await d.stop();
  d.setEnv(['coordinator', 'node-1'], { NODE_OPTIONS: `--cpu-prof --cpu-prof-dir=${profDir}` });
  await d.startProcesses(() => signsOk(target(d), keyId));
  const pids = new Map<number, string>();
  for (const name of ['coordinator', 'node-1']) {
    const pid = readPid(d.dir, name);
    if (pid !== undefined) pids.set(pid, name);
  }
  const r = await closedLoop(target(d), signRequest(keyId), {
    concurrency: 32,
    durationMs: plan.profileMs,
    warmupMs: 500,
  });
  log(
    `profile load phase: 32 clients, ${(plan.profileMs / 1000).toFixed(0)} s, ${r.perSecond.toFixed(0)} sig/s (under the profiler)`,
  );
  await d.stop();
  const dest = join(outDir, destName);
  rmSync(dest, { recursive: true, force: true });
  mkdirSync(dest, { recursive: true });
  const out: ProfileSummary[] = [];
  for (const f of readdirSync(profDir).filter((x) => x.endsWith('.cpuprofile'))) {
    // CPU.<yyyymmdd>.<hhmmss>.<pid>.<tid>.<seq>.cpuprofile
    const pid = Number(f.split('.')[3]);
    const name = pids.get(pid) ?? `pid-${pid}`;
    const src = join(profDir, f);
    const s = summarizeProfileFile(src, 25, plan.profileMs);
    const size = statSync(src).size;
    const kept = `${name}.cpuprofile`;
    if (size <= 5 * 2 ** 20) copyFileSync(src, join(dest, kept));
    out.push({
      ...s,
      file:
        size <= 5 * 2 ** 20
          ? `${destName}/${kept}`
          : `(${(size / 2 ** 20).toFixed(1)} MB, not kept: see ${destName}/${name}-top.json)`,
    });
    writeFileSync(join(dest, `${name}-top.json`), `${JSON.stringify({ ...s, file: name }, null, 2)}\n`);
  }
  return out.sort((a, b) => a.file.localeCompare(b.file));
}
