/**
 * One system's signing phase: sequential sign latency, then closed-loop throughput at each
 * concurrency level, with the CPU per signature of the measured processes (process-cpu.ts); and
 * the untimed warm-up run before the first measured phase.
 */
import type { KeySpecName } from '../../protocol/suites.ts';
import { type HttpTarget, type LoadResult, closedLoop, sequential, signRequest } from './load.ts';
import { type NamedPid, withCpu } from './process-cpu.ts';
import type { CpuPerRequest, ServicePlan, SignRow, Size } from './service-plan.ts';
import { fmtMs } from './stats.ts';

export async function signPhase(
  target: HttpTarget,
  system: SignRow['system'],
  keySpec: KeySpecName,
  size: Size,
  keyId: string,
  plan: ServicePlan,
  log: (l: string) => void,
  pids: readonly NamedPid[] = [],
): Promise<SignRow> {
  const spec = signRequest(keyId);
  const [seq, seqCpu] = await withCpu(pids, () =>
    sequential(target, spec, { count: plan.sequentialCount, warmup: plan.warmup }),
  );
  const load: LoadResult[] = [];
  const loadCpu: CpuPerRequest[] = [];
  for (const concurrency of plan.concurrency) {
    const [r, cpu] = await withCpu(pids, () =>
      closedLoop(target, spec, { concurrency, durationMs: plan.loadMs, warmupMs: plan.loadWarmupMs }),
    );
    load.push(r);
    loadCpu.push(cpu);
  }
  const errs = seq.errors + load.reduce((a, r) => a + r.errors, 0);
  log(
    `${system.padEnd(8)} ${keySpec.padEnd(18)} ${size.t}-of-${size.n}: p50 ${fmtMs(seq.latencyMs.p50)} ms, ` +
      `sig/s ${load.map((r) => `${r.concurrency}:${r.perSecond.toFixed(0)}`).join(' ')}${errs ? `, ${errs} errors (${[...seq.errorSamples, ...load.flatMap((r) => r.errorSamples)][0]})` : ''}`,
  );
  return {
    system,
    keySpec,
    size,
    sequential: seq,
    load,
    ...(pids.length > 0 ? { cpu: { sequential: seqCpu, load: loadCpu } } : {}),
  };
}
