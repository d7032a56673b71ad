/**
 * One system's signing phase: sequential sign latency, then closed-loop throughput at each
 * concurrency level, with the CPU per signature of the measured processes (process-cpu.ts); and
 * the untimed warm-up run before the first measured phase.
 */
import type { KeySpecName } from '../../protocol/suites.ts';
import { closedLoop, type HttpTarget, LoadClient, type LoadResult, sequential, signRequest } from './load.ts';
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

/**
 * Untimed warm-up before the first measured phase: `perLevel` signatures with `keyId` at each of
 * `concurrency` (closed loop, a fresh client per level as the measured phases use). On freshly
 * started processes the first suite measured otherwise pays JIT compilation and first-use costs
 * (lazy tables, connection pools, LevelDB caches) inside its numbers: ~1-2 ms per signature.
 */
export async function warmUp(
  target: HttpTarget,
  keyId: string,
  opts: { readonly concurrency: readonly number[]; readonly perLevel: number },
): Promise<{ signatures: number; errors: number; errorSamples: string[] }> {
  const spec = signRequest(keyId);
  let signatures = 0;
  let errors = 0;
  const errorSamples: string[] = [];
  for (const c of opts.concurrency) {
    const client = new LoadClient(target, c);
    let left = opts.perLevel;
    const worker = async () => {
      while (left > 0) {
        left--;
        try {
          const a = await client.call(spec.method, spec.path, spec.body());
          if (a.status < 200 || a.status >= 300) {
            errors++;
            if (errorSamples.length < 3)
              errorSamples.push(`${a.status} ${JSON.stringify(a.body).slice(0, 80)}`);
          } else signatures++;
        } catch (e) {
          errors++;
          if (errorSamples.length < 3) errorSamples.push(`transport: ${(e as Error).message}`);
        }
      }
    };
    try {
      await Promise.all(Array.from({ length: Math.min(c, opts.perLevel) }, worker));
    } finally {
      client.close();
    }
  }
  return { signatures, errors, errorSamples };
}
