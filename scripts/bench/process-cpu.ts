/**
 * CPU accounting of the measured processes (devnet CPU accounting): user + system time of each
 * process from /proc/<pid>/stat, and of this process (the load generator) from process.cpuUsage,
 * over one call, divided by the requests it answered. Robust to other load on a shared machine,
 * unlike wall time. Linux only (10 ms clock ticks).
 */
import { readFileSync } from 'node:fs';
import { readPid } from '../devnet-lib.ts';
import type { BenchDevnet } from './devnet-run.ts';
import type { LoadResult } from './load.ts';
import type { CpuPerRequest } from './service-plan.ts';

export type NamedPid = { readonly name: string; readonly pid: number };

/** The pids of the devnet's processes by name (the coordinator, node-1..n), those that run. */
export function devnetPids(d: BenchDevnet): NamedPid[] {
  return ['coordinator', ...Array.from({ length: d.nodes }, (_, i) => `node-${i + 1}`)].flatMap((name) => {
    const pid = readPid(d.dir, name);
    return pid === undefined ? [] : [{ name, pid }];
  });
}

/** User + system CPU (ms) of `pids` so far, from /proc/<pid>/stat (fields 14 and 15, clock ticks). */
export function cpuMsOf(pids: readonly number[]): number {
  let ticks = 0;
  for (const pid of pids) {
    try {
      const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
      const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      ticks += Number(f[11]) + Number(f[12]);
    } catch {
      // gone: counts nothing
    }
  }
  return ticks * 10;
}

/** Runs `fn` and returns its result with the CPU per answered request of `pids` and of this process. */
export async function withCpu(
  pids: readonly NamedPid[],
  fn: () => Promise<LoadResult>,
): Promise<[LoadResult, CpuPerRequest]> {
  const s0 = pids.map((p) => cpuMsOf([p.pid]));
  const c0 = process.cpuUsage();
  const r = await fn();
  const c = process.cpuUsage(c0);
  const n = Math.max(1, r.completed ?? r.ok + r.errors);
  const byProcess = Object.fromEntries(pids.map((p, i) => [p.name, (cpuMsOf([p.pid]) - s0[i]!) / n]));
  const serverMs = Object.values(byProcess).reduce((a, x) => a + x, 0);
  return [r, { serverMs, clientMs: (c.user + c.system) / 1000 / n, byProcess }];
}
