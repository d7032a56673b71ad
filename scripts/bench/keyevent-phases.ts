/**
 * Key events through the API, for the service benchmark: DKG and same-committee reshare at each n
 * (t = floor(n/2) + 1), and reshare 3-of-5 -> 4-of-7; issue 17's DKG 3-of-5 then reshare to
 * 4-of-7, with the CPU each process spends per operation.
 */
import type { KeySpecName } from '../../protocol/suites.ts';
import { createKey, reshare, target } from './devnet-api.ts';
import type { BenchDevnet } from './devnet-run.ts';
import { cpuMsOf, devnetPids } from './process-cpu.ts';
import type { KeyEventRow, ServicePlan, Size } from './service-plan.ts';
import { fmtMs, summarize } from './stats.ts';

export async function keyEventsOn(
  d: BenchDevnet,
  ns: readonly number[],
  plan: ServicePlan,
  log: (l: string) => void,
): Promise<{ rows: KeyEventRow[]; created: number }> {
  const rows: KeyEventRow[] = [];
  let created = 0;
  const ks: KeySpecName = 'FROST_ED25519';
  for (const n of ns) {
    const size = { t: Math.floor(n / 2) + 1, n };
    const reps = plan.keyEventReps(n);
    const dkg: number[] = [];
    let keyId = '';
    for (let i = 0; i < reps; i++) {
      const r = await createKey(target(d), ks, size);
      created++;
      dkg.push(r.ms);
      keyId = r.keyId;
    }
    rows.push({
      operation: 'dkg',
      keySpec: ks,
      from: size,
      devnetNodes: d.nodes,
      reps,
      latencyMs: summarize(dkg),
    });
    const rs: number[] = [];
    for (let i = 0; i < reps; i++) rs.push(await reshare(target(d), keyId, size));
    rows.push({
      operation: 'reshare',
      keySpec: ks,
      from: size,
      to: size,
      devnetNodes: d.nodes,
      reps,
      latencyMs: summarize(rs),
    });
    log(
      `key events n=${n} (${size.t}-of-${n}, ${reps} reps): DKG p50 ${fmtMs(summarize(dkg).p50)} ms, reshare p50 ${fmtMs(summarize(rs).p50)} ms`,
    );
  }
  return { rows, created };
}

export async function reshareFiveToSeven(
  d: BenchDevnet,
  plan: ServicePlan,
  log: (l: string) => void,
): Promise<KeyEventRow> {
  const reps = plan.keyEventReps(7);
  const ms: number[] = [];
  for (let i = 0; i < reps; i++) {
    const { keyId } = await createKey(target(d), 'FROST_ED25519', { t: 3, n: 5 });
    ms.push(await reshare(target(d), keyId, { t: 4, n: 7 }));
  }
  const latencyMs = summarize(ms);
  log(`reshare 3-of-5 -> 4-of-7 (${reps} reps): p50 ${fmtMs(latencyMs.p50)} ms`);
  return {
    operation: 'reshare',
    keySpec: 'FROST_ED25519',
    from: { t: 3, n: 5 },
    to: { t: 4, n: 7 },
    devnetNodes: d.nodes,
    reps,
    latencyMs,
  };
}

/**
 * Issue 17's key events: `warmup` untimed then `reps` measured rounds of DKG `from` (a new key)
 * and reshare of that key `from` -> `to`, each through the API; latency p50/min/max and the CPU
 * per operation of every devnet process (process-cpu.ts) and of the client. Used by the targets
 * run (targets.ts) and by `npm run bench -- keyevents` (keyevents.ts).
 */
export async function dkgThenReshare(
  d: BenchDevnet,
  opts: {
    readonly reps: number;
    readonly warmup: number;
    readonly keySpec?: KeySpecName;
    readonly from?: Size;
    readonly to?: Size;
  },
  log: (l: string) => void,
): Promise<[KeyEventRow, KeyEventRow]> {
  const keySpec = opts.keySpec ?? 'FROST_ED25519';
  const from = opts.from ?? { t: 3, n: 5 };
  const to = opts.to ?? { t: 4, n: 7 };
  const pids = devnetPids(d);
  const names = [...pids.map((p) => p.name), 'client'];
  const snap = () => ({ server: pids.map((p) => cpuMsOf([p.pid])), client: process.cpuUsage() });
  type Snap = ReturnType<typeof snap>;
  const spent = (a: Snap, b: Snap) => [
    ...b.server.map((x, i) => x - a.server[i]!),
    (b.client.user - a.client.user + b.client.system - a.client.system) / 1000,
  ];
  const dkgMs: number[] = [];
  const reshareMs: number[] = [];
  const dkgCpu = names.map(() => 0);
  const reshareCpu = names.map(() => 0);
  for (let i = 0; i < opts.warmup + opts.reps; i++) {
    const s0 = snap();
    const k = await createKey(target(d), keySpec, from);
    const s1 = snap();
    const ms = await reshare(target(d), k.keyId, to);
    const s2 = snap();
    if (i < opts.warmup) continue;
    dkgMs.push(k.ms);
    reshareMs.push(ms);
    spent(s0, s1).forEach((x, j) => {
      dkgCpu[j]! += x;
    });
    spent(s1, s2).forEach((x, j) => {
      reshareCpu[j]! += x;
    });
  }
  const perOp = (cpu: number[]) =>
    Object.fromEntries(names.map((n, j) => [n, cpu[j]! / Math.max(1, opts.reps)]));
  const dkg: KeyEventRow = {
    operation: 'dkg',
    keySpec,
    from,
    devnetNodes: d.nodes,
    reps: opts.reps,
    latencyMs: summarize(dkgMs),
    warmup: opts.warmup,
    cpuMsByProcess: perOp(dkgCpu),
  };
  const rs: KeyEventRow = {
    operation: 'reshare',
    keySpec,
    from,
    to,
    devnetNodes: d.nodes,
    reps: opts.reps,
    latencyMs: summarize(reshareMs),
    warmup: opts.warmup,
    cpuMsByProcess: perOp(reshareCpu),
  };
  log(
    `DKG ${from.t}-of-${from.n} p50 ${fmtMs(dkg.latencyMs.p50)} ms, reshare ${from.t}-of-${from.n} -> ${to.t}-of-${to.n} p50 ${fmtMs(rs.latencyMs.p50)} ms (${opts.reps} reps after ${opts.warmup} untimed)`,
  );
  return [dkg, rs];
}
