/**
 * Key events through the API, for the service benchmark: DKG and same-committee reshare at each n
 * (t = floor(n/2) + 1), and reshare 3-of-5 -> 4-of-7.
 */
import type { KeySpecName } from '../../protocol/suites.ts';
import { createKey, reshare, target } from './devnet-api.ts';
import type { BenchDevnet } from './devnet-run.ts';
import type { KeyEventRow, ServicePlan } from './service-plan.ts';
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
