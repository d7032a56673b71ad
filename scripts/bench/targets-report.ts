/**
 * Issue 17's targets report: the checks (each target measured, met or not) and the markdown of a
 * targets run (targets.ts), from its results alone.
 */
import type { ProfileSummary } from './cpuprofile.ts';
import type { CryptoLimit } from './crypto-limit.ts';
import type { LoadResult } from './load.ts';
import type { CpuPerRequest, KeyEventRow, SignRow, TargetCheck } from './service-plan.ts';
import { fmtMs } from './stats.ts';

export type WarmUpRow = {
  readonly system: SignRow['system'];
  readonly keySpec: string;
  readonly signatures: number;
  readonly errors: number;
};

export type TargetsResults = {
  readonly label: string;
  readonly commit: string;
  readonly startedAt: string;
  readonly loadAverage: { readonly start: number; readonly end: number };
  readonly plan: {
    sequentialCount: number;
    warmup: number;
    concurrency: number[];
    loadMs: number;
    /** Untimed signatures per concurrency level, per key spec and system, before any phase (absent: none). */
    warmupPerLevel?: number;
    keyEventReps?: number;
    keyEventWarmup?: number;
    cryptoIterations?: number;
  };
  readonly sign: SignRow[];
  readonly keyEvents: KeyEventRow[];
  readonly profiles: ProfileSummary[];
  /** The protocol's CPU per 3-of-5 signature, measured in the same run (absent in older runs). */
  readonly cryptoLimit?: CryptoLimit[];
  /** The untimed warm-up before the first measured phase (absent in older runs: there was none). */
  readonly warmUp?: WarmUpRow[];
  readonly targets: TargetCheck[];
};

/** The measured level with the most signatures/s (each system at its own best concurrency). */
export function bestLevel(row: SignRow | undefined): { load: LoadResult; cpu?: CpuPerRequest } | undefined {
  if (!row || row.load.length === 0) return undefined;
  let i = 0;
  row.load.forEach((l, j) => {
    if (l.perSecond > row.load[i]!.perSecond) i = j;
  });
  const cpu = row.cpu?.load[i];
  return { load: row.load[i]!, ...(cpu ? { cpu } : {}) };
}

const f0 = (x: number) => (Number.isFinite(x) ? x.toFixed(0) : '?');
const f2 = (x: number) => (Number.isFinite(x) ? x.toFixed(2) : '?');

/**
 * The issue's targets, each measured and met or not: throughput at best concurrency >= 0.3x the
 * reference (each system at its own best level; and the same from CPU accounting), sequential
 * p50 <= 2.5x, DKG <= 60 ms, reshare <= 100 ms; with the crypto-bound limit beside the throughput
 * (a context row: what 0.3x of this reference asks in CPU per signature, and what the protocol
 * alone costs).
 */
export function issue17Checks(
  r: Pick<TargetsResults, 'sign' | 'keyEvents'> & { cryptoLimit?: readonly CryptoLimit[] },
): TargetCheck[] {
  const out: TargetCheck[] = [];
  const ok = (x: number, f: (x: number) => boolean) => (Number.isFinite(x) ? f(x) : null);
  for (const ks of new Set(r.sign.map((s) => s.keySpec))) {
    const d = r.sign.find((s) => s.system === 'devnet' && s.keySpec === ks);
    const b = r.sign.find((s) => s.system === 'baseline' && s.keySpec === ks);
    const bd = bestLevel(d);
    const bb = bestLevel(b);
    const refBest = bb?.load.perSecond ?? Number.NaN;
    const tp = (bd?.load.perSecond ?? Number.NaN) / refBest;
    out.push({
      what: `${ks} 3-of-5 throughput at best concurrency / reference (each at its own best level)`,
      target: '>= 0.3x',
      measured: `${tp.toFixed(3)}x (devnet ${f0(bd?.load.perSecond ?? Number.NaN)} sig/s @${bd?.load.concurrency} clients vs reference ${f0(refBest)} sig/s @${bb?.load.concurrency})`,
      met: ok(tp, (x) => x >= 0.3),
    });
    // The same from CPU accounting (robust to other load on a shared machine): what each system
    // would serve with every core to itself, client included (cores x 1000 / CPU ms per signature),
    // each at the level of its best throughput.
    const cores = r.cryptoLimit?.find((c) => c.keySpec === ks)?.cores ?? 2;
    const cpuOf = (l: ReturnType<typeof bestLevel>) =>
      l?.cpu ? l.cpu.serverMs + l.cpu.clientMs : Number.NaN;
    const cd = cpuOf(bd);
    const cb = cpuOf(bb);
    out.push({
      what: `${ks} 3-of-5 CPU-bound throughput (${cores} cores / CPU ms per signature at each one's best level, client included) / reference`,
      target: '>= 0.3x',
      measured: `${(cb / cd).toFixed(3)}x (${f0((cores * 1000) / cd)} vs ${f0((cores * 1000) / cb)} sig/s; ${f2(cd)} vs ${f2(cb)} CPU ms per signature)`,
      met: ok(cb / cd, (x) => x >= 0.3),
    });
    const lim = r.cryptoLimit?.find((c) => c.keySpec === ks);
    if (lim) {
      const p = lim.protocolCpuMs.p50;
      const need = (lim.cores * 1000) / (0.3 * refBest);
      out.push({
        what: `${ks} crypto-bound limit (context, not a target): ${lim.cores} cores / the protocol's CPU per 3-of-5 signature, all parties summed (in one process, same run)`,
        target: `0.3x the reference = ${f0(0.3 * refBest)} sig/s, which leaves <= ${f2(need)} CPU ms per signature for everything (every process and the client)`,
        measured: `protocol ${f2(p)} ms -> ${f0(lim.limitPerSecond)} sig/s = ${(lim.limitPerSecond / refBest).toFixed(2)}x the reference, so 0.3x is ${f0(((0.3 * refBest) / lim.limitPerSecond) * 100)}% of the limit; the devnet spends ${f2(cd)} ms (${(cd / p).toFixed(1)}x the protocol's)`,
        met: null,
        context: true,
      });
    }
    const dp = d?.sequential.latencyMs.p50 ?? Number.NaN;
    const bp = b?.sequential.latencyMs.p50 ?? Number.NaN;
    out.push({
      what: `${ks} 3-of-5 sequential sign p50 / reference`,
      target: '<= 2.5x',
      measured: `${(dp / bp).toFixed(2)}x (${fmtMs(dp)} vs ${fmtMs(bp)} ms)`,
      met: ok(dp / bp, (x) => x <= 2.5),
    });
  }
  const dkg = r.keyEvents.find((e) => e.operation === 'dkg' && e.from.t === 3 && e.from.n === 5);
  const rs = r.keyEvents.find((e) => e.operation === 'reshare' && e.from.n === 5 && e.to?.n === 7);
  out.push({
    what: 'DKG 3-of-5 (FROST_ED25519) through the API, p50',
    target: '<= 60 ms',
    measured: dkg ? `${fmtMs(dkg.latencyMs.p50)} ms` : 'not measured',
    met: dkg ? dkg.latencyMs.p50 <= 60 : null,
  });
  out.push({
    what: 'reshare 3-of-5 -> 4-of-7 (FROST_ED25519) through the API, p50',
    target: '<= 100 ms',
    measured: rs ? `${fmtMs(rs.latencyMs.p50)} ms` : 'not measured',
    met: rs ? rs.latencyMs.p50 <= 100 : null,
  });
  return out;
}

export function targetsMarkdown(r: TargetsResults): string {
  const out: string[] = [];
  out.push(`## Issue 17 service targets (${r.label})`, '');
  out.push(
    `Run ${r.startedAt}, commit ${r.commit || '?'}, load average (1 min) ${r.loadAverage.start.toFixed(2)} at start / ${r.loadAverage.end.toFixed(2)} at end (a shared 2-core machine: other processes ran meanwhile). ` +
      'Devnet: the coordinator and 7 nodes (`scripts/devnet.ts`, SoftHSM2 tokens), 3-of-5 keys on node-1..5. ' +
      "Reference: `scripts/bench/baseline-server.ts`, a minimal Node HTTPS server holding each key whole, signing with OpenSSL (Ed25519) or libsecp256k1 (BIP340) and appending one fdatasync'ed audit record per request. " +
      "Both driven by the same closed-loop client (`scripts/bench/load.ts`), which signs every request as a principal (RFC 9421, inside the measured latency); the reference verifies it once, the devnet's coordinator once and each signing node again (with its policy and audit record). " +
      `Sequential: ${r.plan.sequentialCount} signatures after ${r.plan.warmup} warm-up; throughput: ${r.plan.loadMs / 1000} s per concurrency level (${r.plan.concurrency.join(', ')} clients), each system compared at its own best level.`,
    '',
  );
  const warm = r.warmUp ?? [];
  out.push(
    warm.length > 0
      ? `Warm-up: before the first measured phase, every key spec on both systems was signed untimed, ${r.plan.warmupPerLevel ?? '?'} signatures at each concurrency level (${warm.map((w) => `${w.system === 'baseline' ? 'reference' : 'devnet'} ${w.keySpec}: ${w.signatures}${w.errors ? ` + ${w.errors} errors` : ''}`).join(', ')}), so that JIT compilation and first-use costs of freshly started processes fall outside every measured phase (without it, the first suite measured was always the slowest, by ~1-2 ms per signature).`
      : 'No untimed warm-up before the first measured phase in this run (the first suite measured on freshly started processes pays their JIT compilation and first-use costs).',
    '',
  );
  out.push('| | target | measured | met |', '|---|---|---|---|');
  for (const c of r.targets)
    out.push(
      `| ${c.what} | ${c.target} | ${c.measured} | ${c.context ? 'context' : c.met === null ? 'n/a' : c.met ? 'yes' : '**no**'} |`,
    );
  out.push('');
  out.push(...cryptoLimitText(r), '');
  out.push(
    `| key spec | system | p50 ms | p95 ms | ${r.plan.concurrency.map((c) => `sig/s @${c}`).join(' | ')} | errors |`,
    `|---|---|---|---|${r.plan.concurrency.map(() => '---|').join('')}---|`,
  );
  for (const s of r.sign) {
    const errors = s.sequential.errors + s.load.reduce((a, x) => a + x.errors, 0);
    out.push(
      `| ${s.keySpec} | ${s.system === 'baseline' ? 'reference (whole key)' : '3-of-5 devnet'} | ${fmtMs(s.sequential.latencyMs.p50)} | ${fmtMs(s.sequential.latencyMs.p95)} | ${s.load.map((x) => x.perSecond.toFixed(0)).join(' | ')} | ${errors} |`,
    );
  }
  out.push(
    '',
    'CPU per signature (ms; /proc accounting over each call, warm-up included): the measured processes (devnet: coordinator and 7 nodes; reference: its one process) + the load generator.',
    '',
    `| key spec | system | sequential | ${r.plan.concurrency.map((c) => `@${c}`).join(' | ')} |`,
    `|---|---|---|${r.plan.concurrency.map(() => '---|').join('')}`,
  );
  const cpuCell = (c: CpuPerRequest | undefined) =>
    c ? `${c.serverMs.toFixed(2)} + ${c.clientMs.toFixed(2)}` : '-';
  for (const s of r.sign)
    out.push(
      `| ${s.keySpec} | ${s.system === 'baseline' ? 'reference' : '3-of-5 devnet'} | ${cpuCell(s.cpu?.sequential)} | ${r.plan.concurrency.map((_, i) => cpuCell(s.cpu?.load[i])).join(' | ')} |`,
    );
  out.push('', "Server CPU per signature by process at each system's best level (ms):", '');
  for (const s of r.sign) {
    const b = bestLevel(s);
    const by = b?.cpu?.byProcess;
    if (by)
      out.push(
        `- ${s.keySpec} ${s.system === 'baseline' ? 'reference' : 'devnet'} @${b.load.concurrency}: ${Object.entries(
          by,
        )
          .map(([k, v]) => `${k} ${v.toFixed(2)}`)
          .join(', ')}`,
      );
  }
  out.push('', ...keyEventsTable(r.keyEvents), '');
  for (const p of r.profiles) {
    out.push(
      `**${p.file}** (FROST_ED25519 3-of-5, 32 clients): ${(p.busyMs / 1000).toFixed(1)} s busy, ${(p.idleMs / 1000).toFixed(1)} s idle of ${(p.wallMs / 1000).toFixed(1)} s.`,
      '',
      '| package / area | share |',
      '|---|---|',
      ...p.packages.slice(0, 8).map((a) => `| ${a.name} | ${(a.share * 100).toFixed(1)}% |`),
      '',
      '| function | where | share |',
      '|---|---|---|',
      ...p.functions
        .slice(0, 12)
        .map((f) => `| \`${f.name}\` | ${f.where} | ${(f.share * 100).toFixed(1)}% |`),
      '',
    );
  }
  return out.join('\n');
}

/**
 * What the 0.3x throughput target asks of this machine, beside what the protocol alone costs
 * (from the crypto-bound limit measured in the same run; nothing for older runs).
 */
function cryptoLimitText(r: TargetsResults): string[] {
  const lims = r.cryptoLimit ?? [];
  if (lims.length === 0) return [];
  const out = [
    `**What 0.3x asks of this machine.** Issue 17 was written with the reference at 1871 Ed25519 signatures/s, when 0.3x (561 sig/s) was about 60% of the crypto-bound limit (~900 sig/s: 2 cores over 2.2 CPU ms per 3-of-5 signature). The limit here: the protocol's own CPU per 3-of-5 signature, all parties summed (t commits, t list checks and shares, the aggregate and its verification; \`protocol/sign.ts\` as the protocol benchmark runs it, each party charged its own element checks), measured in this run in the benchmark's process before any server started (median of ${lims[0]!.iterations}, load ${lims[0]!.loadAverage.toFixed(1)}); the service also pays HTTP, TLS, request signatures, transport, audit records and process wake-ups on top.`,
    '',
    '| key spec | reference best sig/s | 0.3x of it | CPU ms per signature that leaves (all processes + client) | protocol CPU ms per signature | crypto-bound limit sig/s | 0.3x as a share of the limit | devnet CPU ms per signature at its best level |',
    '|---|---|---|---|---|---|---|---|',
  ];
  for (const lim of lims) {
    const ref = bestLevel(r.sign.find((s) => s.system === 'baseline' && s.keySpec === lim.keySpec));
    const dev = bestLevel(r.sign.find((s) => s.system === 'devnet' && s.keySpec === lim.keySpec));
    const refBest = ref?.load.perSecond ?? Number.NaN;
    const devCpu = dev?.cpu ? dev.cpu.serverMs + dev.cpu.clientMs : Number.NaN;
    out.push(
      `| ${lim.keySpec} | ${f0(refBest)} @${ref?.load.concurrency ?? '?'} | ${f0(0.3 * refBest)} | ${f2((lim.cores * 1000) / (0.3 * refBest))} | ${f2(lim.protocolCpuMs.p50)} | ${f0(lim.limitPerSecond)} | ${f0(((0.3 * refBest) / lim.limitPerSecond) * 100)}% | ${f2(devCpu)} @${dev?.load.concurrency ?? '?'} |`,
    );
  }
  return out;
}

/** DKG and reshare latency, with the CPU each process spent per operation when measured. */
export function keyEventsTable(events: readonly KeyEventRow[]): string[] {
  const withCpu = events.some((e) => e.cpuMsByProcess);
  const out = [
    `| operation | reps (untimed first) | p50 ms | min ms | max ms |${withCpu ? ' CPU ms per operation, by process (10 ms ticks) |' : ''}`,
    `|---|---|---|---|---|${withCpu ? '---|' : ''}`,
  ];
  for (const e of events) {
    const cpu = e.cpuMsByProcess
      ? Object.entries(e.cpuMsByProcess)
          .filter(([, v]) => v >= 0.05)
          .map(([k, v]) => `${k} ${v.toFixed(1)}`)
          .join(', ')
      : '-';
    const total = e.cpuMsByProcess ? Object.values(e.cpuMsByProcess).reduce((a, x) => a + x, 0) : 0;
    out.push(
      `| ${e.operation} ${e.from.t}-of-${e.from.n}${e.to ? ` -> ${e.to.t}-of-${e.to.n}` : ''} | ${e.reps}${e.warmup ? ` (+${e.warmup})` : ''} | ${fmtMs(e.latencyMs.p50)} | ${fmtMs(e.latencyMs.min)} | ${fmtMs(e.latencyMs.max)} |${withCpu ? ` ${e.cpuMsByProcess ? `${total.toFixed(0)} in all: ${cpu}` : '-'} |` : ''}`,
    );
  }
  return out;
}
