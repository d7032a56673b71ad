/**
 * Timing primitives for the benchmarks: CPU time of the calling thread (so that other processes
 * sharing the cores do not inflate the figure), wall time, and order statistics over samples.
 */

export type Sample = {
  /** CPU time of the process, ms (see cpuNow). */
  readonly cpuMs: number;
  /** Elapsed wall-clock time, ms. */
  readonly wallMs: number;
};

export type Summary = {
  readonly n: number;
  readonly min: number;
  readonly mean: number;
  readonly p50: number;
  readonly p95: number;
  readonly p99: number;
  readonly max: number;
};

/**
 * CPU time of this process (user + system). Measured here: Linux's RUSAGE_SELF is precise to the
 * microsecond, while RUSAGE_THREAD (`process.threadCpuUsage`) only advances in scheduler ticks
 * (4 ms), too coarse for one party's round. It includes V8's JIT and GC helper threads, which
 * are part of the real cost; the warm-up runs keep the JIT share small.
 */
const cpuNow = (): number => {
  const u = process.cpuUsage();
  return (u.user + u.system) / 1000;
};

export const CPU_CLOCK = 'process.cpuUsage (user + system, whole process)';

/** Runs `fn` once and returns its result with the time it took. */
export function timed<T>(fn: () => T): { value: T; sample: Sample } {
  const c0 = cpuNow();
  const w0 = performance.now();
  const value = fn();
  const w1 = performance.now();
  const c1 = cpuNow();
  return { value, sample: { cpuMs: c1 - c0, wallMs: w1 - w0 } };
}

/** Nearest-rank percentile of an ascending array (p in [0, 100]). */
export function percentile(sorted: readonly number[], p: number): number {
  if (sorted.length === 0) return Number.NaN;
  const rank = Math.ceil((p / 100) * sorted.length);
  return sorted[Math.min(sorted.length - 1, Math.max(0, rank - 1))] as number;
}

export function summarize(values: readonly number[]): Summary {
  const s = [...values].sort((a, b) => a - b);
  const mean = s.reduce((a, b) => a + b, 0) / (s.length || 1);
  return {
    n: s.length,
    min: s[0] ?? Number.NaN,
    mean: s.length ? mean : Number.NaN,
    p50: percentile(s, 50),
    p95: percentile(s, 95),
    p99: percentile(s, 99),
    max: s[s.length - 1] ?? Number.NaN,
  };
}

/**
 * Per-operation cost of a primitive: runs `fn` in batches so that each measured interval is long
 * compared with the clock's resolution, after `warmup` untimed calls (JIT).
 */
export function microbench(
  fn: () => unknown,
  opts: { readonly iterations: number; readonly warmup?: number; readonly batches?: number },
): { cpuMsPerOp: Summary; wallMsPerOp: Summary; ops: number } {
  const warmup = opts.warmup ?? Math.min(50, opts.iterations);
  for (let i = 0; i < warmup; i++) fn();
  const batches = Math.max(1, Math.min(opts.batches ?? 5, opts.iterations));
  const per = Math.max(1, Math.floor(opts.iterations / batches));
  const cpu: number[] = [];
  const wall: number[] = [];
  for (let b = 0; b < batches; b++) {
    const { sample } = timed(() => {
      for (let i = 0; i < per; i++) fn();
    });
    cpu.push(sample.cpuMs / per);
    wall.push(sample.wallMs / per);
  }
  return { cpuMsPerOp: summarize(cpu), wallMsPerOp: summarize(wall), ops: per * batches };
}

/** Round for display: 3 significant digits, never exponent notation for our ranges. */
export function fmtMs(ms: number): string {
  if (!Number.isFinite(ms)) return '-';
  if (ms >= 100) return ms.toFixed(0);
  if (ms >= 10) return ms.toFixed(1);
  if (ms >= 1) return ms.toFixed(2);
  return ms.toFixed(3);
}
