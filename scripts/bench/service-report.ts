/**
 * The service benchmark's report: issue 8's targets, service.md and its charts, from results.
 */
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { type Series, lineChart } from './report.ts';
import type { ServiceResults, SignRow, TargetCheck } from './service-plan.ts';
import { fmtMs } from './stats.ts';

const find = (r: ServiceResults, system: SignRow['system'], ks: string, t: number, n: number) =>
  r.sign.find((s) => s.system === system && s.keySpec === ks && s.size.t === t && s.size.n === n);
const at = (row: SignRow | undefined, c: number) =>
  row?.load.find((l) => l.concurrency === c)?.perSecond ?? Number.NaN;
const best = (row: SignRow | undefined) => Math.max(...(row?.load.map((l) => l.perSecond) ?? [Number.NaN]));

export function targetChecks(r: ServiceResults): TargetCheck[] {
  const out: TargetCheck[] = [];
  const minSigs: Record<string, number> = { FROST_ED25519: 400, FROST_SECP256K1_TR: 250 };
  for (const ks of r.plan.keySpecs) {
    const d = find(r, 'devnet', ks, 3, 5);
    const b = find(r, 'baseline', ks, 3, 5);
    const tp = at(d, 32) / at(b, 32);
    const p50 = (d?.sequential.latencyMs.p50 ?? Number.NaN) / (b?.sequential.latencyMs.p50 ?? Number.NaN);
    const ok = (x: number, f: (x: number) => boolean) => (Number.isFinite(x) ? f(x) : null);
    out.push({
      what: `${ks} 3-of-5 throughput at 32 clients / baseline`,
      target: '>= 0.5x',
      measured: `${tp.toFixed(3)}x (${at(d, 32).toFixed(0)} vs ${at(b, 32).toFixed(0)} sig/s)`,
      met: ok(tp, (x) => x >= 0.5),
    });
    out.push({
      what: `${ks} 3-of-5 sequential p50 / baseline`,
      target: '<= 3x',
      measured: `${p50.toFixed(1)}x (${fmtMs(d?.sequential.latencyMs.p50 ?? Number.NaN)} vs ${fmtMs(b?.sequential.latencyMs.p50 ?? Number.NaN)} ms)`,
      met: ok(p50, (x) => x <= 3),
    });
    const abs = d?.sequential.latencyMs.p50 ?? Number.NaN;
    out.push({
      what: `${ks} 3-of-5 sequential p50`,
      target: '<= 5 ms',
      measured: `${fmtMs(abs)} ms`,
      met: ok(abs, (x) => x <= 5),
    });
    const sigs = best(d);
    out.push({
      what: `${ks} 3-of-5 signatures/s (best concurrency)`,
      target: `>= ${minSigs[ks] ?? '?'}`,
      measured: sigs.toFixed(0),
      met: ok(sigs, (x) => x >= (minSigs[ks] ?? Number.POSITIVE_INFINITY)),
    });
  }
  const dkg = r.keyEvents.find((e) => e.operation === 'dkg' && e.from.t === 3 && e.from.n === 5);
  const rs = r.keyEvents.find((e) => e.operation === 'reshare' && e.from.n === 5 && e.to?.n === 7);
  out.push({
    what: 'DKG 3-of-5 (FROST_ED25519), p50',
    target: '<= 100 ms',
    measured: dkg ? `${fmtMs(dkg.latencyMs.p50)} ms` : 'not measured',
    met: dkg ? dkg.latencyMs.p50 <= 100 : null,
  });
  out.push({
    what: 'reshare 3-of-5 -> 4-of-7 (FROST_ED25519), p50',
    target: '<= 150 ms',
    measured: rs ? `${fmtMs(rs.latencyMs.p50)} ms` : 'not measured',
    met: rs ? rs.latencyMs.p50 <= 150 : null,
  });
  return out;
}

export function serviceMarkdown(r: ServiceResults, durationS: number, analysis: string[] = []): string {
  const out: string[] = [];
  out.push('## Service, end to end on the local devnet', '');
  if (r.plan.quick)
    out.push('**QUICK RUN (--quick): tiny counts; the numbers below check the harness only.**', '');
  out.push(
    `Real processes on this machine: the coordinator and 5 nodes (\`scripts/devnet.ts\`, one SoftHSM2 token per node), driven through the HTTP API by one in-process closed-loop load generator (node:http, keep-alive, one socket per client; random 32-byte messages). Baseline, in the same run and by the same generator: the same HTTP app (\`coordinator/app.ts\`) over \`WholeKeyCluster\`, one process holding each key whole (bench-only). Sequential: ${r.plan.sequentialCount} signatures after ${r.plan.warmup} warm-up; throughput: ${r.plan.loadMs / 1000} s per concurrency level after ${r.plan.loadWarmupMs / 1000} s warm-up. The load generator shares the 2 cores with every process it measures. Run time ${durationS.toFixed(0)} s.`,
    '',
  );
  out.push(
    r.auth === 'signed'
      ? "Requests: every request that uses a key is signed by the client as a principal (Ed25519, RFC 9421 with an RFC 9530 Content-Digest; the devnet: its admin key; the baseline: a principal of its own in a genesis like the devnet's), the signing done by the load generator per request, inside the measured latency; both serve HTTPS (certificates made by `scripts/devnet-tls.ts`). Devnet: the coordinator verifies the signature once (early error) and each of the t signing nodes verifies it again and runs the policy, auditing its decision. Baseline: the app verifies it once; its WholeKeyCluster checks nothing (no node work: the best a single server can do)."
      : "**Measured before client-signed requests and HTTPS** (run of the commit in service.json): clients sent a bearer token, no node checked a signature, and both the devnet and the baseline served plain HTTP. Not re-measured since: `npm run bench -- service` measures the current code (signed requests over HTTPS on both sides); a node's request check per signature is measured in the protocol section.",
    '',
  );
  out.push('### Signing: latency (sequential) and throughput (concurrent clients)', '');
  out.push(
    `| Key spec | system | size | p50 ms | p95 ms | p99 ms | ${r.plan.concurrency.map((c) => `sig/s @${c}`).join(' | ')} | p50 ms @32 | errors |`,
    `|---|---|---|---|---|---|${r.plan.concurrency.map(() => '---|').join('')}---|---|`,
  );
  for (const s of r.sign) {
    const l = s.sequential.latencyMs;
    const errors = s.sequential.errors + s.load.reduce((a, x) => a + x.errors, 0);
    const c32 = s.load.find((x) => x.concurrency === 32);
    out.push(
      `| ${s.keySpec} | ${s.system === 'baseline' ? 'baseline (1 process, whole key)' : 'devnet'} | ${s.system === 'baseline' ? 'whole key' : `${s.size.t}-of-${s.size.n}`} | ${fmtMs(l.p50)} | ${fmtMs(l.p95)} | ${fmtMs(l.p99)} | ${s.load.map((x) => x.perSecond.toFixed(0)).join(' | ')} | ${c32 ? fmtMs(c32.latencyMs.p50) : '-'} | ${errors} |`,
    );
  }
  out.push('');
  out.push('### Targets of issue 8 (service)', '');
  out.push('| | target | measured | met |', '|---|---|---|---|');
  for (const c of targetChecks(r))
    out.push(
      `| ${c.what} | ${c.target} | ${c.measured} | ${c.met === null ? 'n/a' : c.met ? 'yes' : '**no**'} |`,
    );
  out.push('');
  out.push('### DKG and reshare latency (FROST_ED25519, through the API)', '');
  out.push(
    't = floor(n/2) + 1; reshare keeps the committee and threshold (fresh shares, next epoch) except the 3-of-5 -> 4-of-7 row. Repetitions per size: ' +
      Object.entries(r.plan.keyEventReps)
        .map(([n, k]) => `n=${n}: ${k}`)
        .join(', ') +
      ' (fewer for large n to bound the run time).',
    '',
  );
  out.push(
    '| operation | size | devnet nodes | reps | p50 ms | min ms | max ms |',
    '|---|---|---|---|---|---|---|',
  );
  for (const e of r.keyEvents) {
    const size = `${e.from.t}-of-${e.from.n}${e.to ? ` -> ${e.to.t}-of-${e.to.n}` : ''}`;
    out.push(
      `| ${e.operation} | ${size} | ${e.devnetNodes} | ${e.reps} | ${fmtMs(e.latencyMs.p50)} | ${fmtMs(e.latencyMs.min)} | ${fmtMs(e.latencyMs.max)} |`,
    );
  }
  out.push('');
  out.push('### Sign latency vs keys stored (FROST_ED25519 3-of-5, sequential)', '');
  out.push(
    "How: a handful of keys are real (DKG through the API); the rest are clones of one real key written straight into the stopped devnet's stores by a bench-only bulk path (`scripts/bench/bulk-keys.ts`): the coordinator's key record and, on every node, the key record, epoch record and sealed share blob, with fresh key ids. The stores hold that many full-size records; the clones are never signed with. The devnet is restarted after each bulk write and warmed up before measuring.",
    '',
  );
  out.push('| keys stored | p50 ms | p95 ms | p99 ms | errors |', '|---|---|---|---|---|');
  for (const k of r.keyCount)
    out.push(
      `| ${k.keysStored} | ${fmtMs(k.latencyMs.p50)} | ${fmtMs(k.latencyMs.p95)} | ${fmtMs(k.latencyMs.p99)} | ${k.errors} |`,
    );
  out.push('');
  out.push('### CPU profile of one load phase (FROST_ED25519 3-of-5, 32 clients)', '');
  out.push(
    `The coordinator and node-1 were restarted with \`NODE_OPTIONS=--cpu-prof\` and profiled over ${r.plan.profileMs / 1000} s of load; the tables count only the last ${r.plan.profileMs / 1000} s of each profile (the load phase and the clean shutdown after it, not the start-up; the .cpuprofile files hold everything). Self time by package and by function, as shares of the sampled non-idle time (\`scripts/bench/cpuprofile.ts\`); files under \`profile/\`.`,
    '',
  );
  for (const p of r.profiles) {
    out.push(
      `**${p.file}**: ${(p.busyMs / 1000).toFixed(1)} s busy, ${(p.idleMs / 1000).toFixed(1)} s idle of ${(p.wallMs / 1000).toFixed(1)} s.`,
      '',
    );
    out.push('| package / area | self ms | share |', '|---|---|---|');
    for (const a of p.packages.slice(0, 10))
      out.push(`| ${a.name} | ${a.ms.toFixed(0)} | ${(a.share * 100).toFixed(1)}% |`);
    out.push('', '| function | where | self ms | share |', '|---|---|---|---|');
    for (const f of p.functions.slice(0, 12))
      out.push(`| \`${f.name}\` | ${f.where} | ${f.ms.toFixed(0)} | ${(f.share * 100).toFixed(1)}% |`);
    out.push('');
  }
  if (analysis.length) out.push('### What dominates, and what would close the gap', '', ...analysis, '');
  if (r.notes.length) out.push('### Notes', '', ...r.notes.map((n) => `- ${n}`), '');
  out.push(
    'Charts: `service-throughput-vs-concurrency.svg`, `service-latency-vs-concurrency.svg`, `service-keyevents-vs-n.svg`.',
    '',
  );
  return out.join('\n');
}

export function serviceCharts(r: ServiceResults): Record<string, string> {
  const label = (s: SignRow) =>
    `${s.keySpec.replace('FROST_', '')} ${s.system === 'baseline' ? 'baseline' : `${s.size.t}-of-${s.size.n}`}`;
  const tp: Series[] = r.sign.map((s) => ({
    label: label(s),
    dashed: s.system === 'baseline',
    points: s.load.map((l) => ({ x: l.concurrency, y: l.perSecond })),
  }));
  const lat: Series[] = r.sign.map((s) => ({
    label: label(s),
    dashed: s.system === 'baseline',
    points: s.load.map((l) => ({ x: l.concurrency, y: l.latencyMs.p50 })),
  }));
  const ev: Series[] = (['dkg', 'reshare'] as const).map((op) => ({
    label: op === 'dkg' ? 'DKG' : 'reshare (same committee)',
    points: r.keyEvents
      .filter((e) => e.operation === op && (!e.to || e.to.n === e.from.n))
      .map((e) => ({ x: e.from.n, y: e.latencyMs.p50 }))
      .sort((a, b) => a.x - b.x),
  }));
  return {
    'service-throughput-vs-concurrency.svg': lineChart({
      title: 'Signatures/s through the API vs concurrent clients',
      xLabel: 'concurrent clients',
      yLabel: 'signatures/s',
      series: tp.filter((s) => s.points.length),
    }),
    'service-latency-vs-concurrency.svg': lineChart({
      title: 'Sign latency (p50) vs concurrent clients',
      xLabel: 'concurrent clients',
      yLabel: 'ms',
      series: lat.filter((s) => s.points.length),
    }),
    'service-keyevents-vs-n.svg': lineChart({
      title: 'DKG and reshare latency through the API (FROST_ED25519)',
      xLabel: 'n (committee size)',
      yLabel: 'ms (p50)',
      series: ev.filter((s) => s.points.length),
    }),
  };
}

/** The hand-written reading of the profile (profile/ANALYSIS.md), when present: quoted in service.md. */
export function analysisOf(out: string): string[] {
  const f = join(out, 'profile', 'ANALYSIS.md');
  return existsSync(f) ? readFileSync(f, 'utf8').trim().split('\n') : [];
}
