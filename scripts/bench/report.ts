/**
 * Benchmark reports: each benchmark writes `bench/results/<name>.json` (machine-readable) and a
 * markdown section `bench/results/<name>.md`; SUMMARY.md is the machine/versions header followed by
 * every section present, so a benchmark added later (e.g. the service one) shows up by writing its
 * own section with `writeResults`. Charts are small hand-written SVG line charts.
 */
import { execFileSync } from 'node:child_process';
import { mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import os from 'node:os';
import { join } from 'node:path';
import { CPU_CLOCK, fmtMs } from './stats.ts';
import type { ProtocolResults, ProtocolRow, RequestCheckSection } from './protocol.ts';

export const RESULTS_DIR = join(import.meta.dirname, '..', '..', 'bench', 'results');

export type MachineInfo = {
  readonly os: string;
  readonly cpuModel: string;
  readonly cores: number;
  readonly memoryGiB: number;
  readonly node: string;
  readonly libraries: Readonly<Record<string, string>>;
  readonly gitCommit: string;
  readonly date: string;
  /** 1-minute load average when the run started: above ~0.5 the machine was shared. */
  readonly loadAverageAtStart: number;
  readonly cpuClock: string;
};

const LIBRARIES = ['@noble/curves', '@noble/hashes', 'sodium-native', 'libp2p', 'fastify'];

export function machineInfo(): MachineInfo {
  const require = createRequire(import.meta.url);
  const libraries: Record<string, string> = {};
  for (const name of LIBRARIES) {
    try {
      const pkgPath = join(import.meta.dirname, '..', '..', 'node_modules', name, 'package.json');
      libraries[name] = (JSON.parse(readFileSync(pkgPath, 'utf8')) as { version: string }).version;
    } catch {
      libraries[name] = 'not installed';
    }
  }
  try {
    const sodium = require('sodium-native') as { sodium_version_string?: () => string };
    if (typeof sodium.sodium_version_string === 'function')
      libraries.libsodium = sodium.sodium_version_string();
  } catch {
    // sodium-native missing: the version table says so above.
  }
  let gitCommit = 'unknown';
  try {
    gitCommit = execFileSync('git', ['rev-parse', '--short', 'HEAD'], { encoding: 'utf8' }).trim();
  } catch {
    // not a git checkout
  }
  const cpus = os.cpus();
  return {
    os: `${os.type()} ${os.release()} ${os.arch()}`,
    cpuModel: cpus[0]?.model.trim() ?? 'unknown',
    cores: cpus.length,
    memoryGiB: Math.round((os.totalmem() / 2 ** 30) * 10) / 10,
    node: process.version,
    libraries,
    gitCommit,
    date: new Date().toISOString(),
    loadAverageAtStart: os.loadavg()[0] ?? 0,
    cpuClock: CPU_CLOCK,
  };
}

export type BenchFile<T> = {
  readonly name: string;
  readonly machine: MachineInfo;
  /** 1-minute load average when the run ended (this benchmark itself adds about 1). */
  readonly loadAverageAtEnd: number;
  readonly durationS: number;
  /** Process CPU time / wall time over the run: near 1 when the benchmark had a core to itself. */
  readonly cpuShare: number;
  readonly data: T;
};

/** Writes `<name>.json` and `<name>.md` and rebuilds SUMMARY.md from every section present. */
export function writeResults<T>(
  file: BenchFile<T>,
  markdown: string,
  charts: Record<string, string> = {},
  dir = RESULTS_DIR,
): string[] {
  mkdirSync(dir, { recursive: true });
  const written: string[] = [];
  const put = (name: string, text: string) => {
    writeFileSync(join(dir, name), text);
    written.push(join(dir, name));
  };
  put(`${file.name}.json`, `${JSON.stringify(file, null, 2)}\n`);
  put(`${file.name}.md`, markdown);
  for (const [name, svg] of Object.entries(charts)) put(name, svg);
  put('SUMMARY.md', summary(file, dir));
  return written;
}

function summary(file: BenchFile<unknown>, dir: string): string {
  const m = file.machine;
  const loadEnd = file.loadAverageAtEnd;
  const targets = issue17TargetsMarkdown(dir);
  if (targets !== undefined) writeFileSync(join(dir, TARGETS_MD), targets);
  // The issue 17 targets first, then every benchmark's section in name order.
  const sections = readdirSync(dir)
    .filter((f) => f.endsWith('.md') && f !== 'SUMMARY.md')
    .sort((a, b) => Number(b === TARGETS_MD) - Number(a === TARGETS_MD) || a.localeCompare(b))
    .map((f) => readFileSync(join(dir, f), 'utf8').trim());
  // Our own single-threaded run adds about 1 to the load average by its end.
  const shared = m.loadAverageAtStart > 0.5 || loadEnd > 1.5 || file.cpuShare < 0.9;
  return [
    '# Benchmark summary',
    '',
    'Produced by `npm run bench` (scripts/bench.ts). Machine-readable results sit next to this file',
    "(`<benchmark>.json`); each section below comes from its benchmark's `<benchmark>.md`.",
    '',
    '## Machine and versions (latest run)',
    '',
    '| | |',
    '|---|---|',
    `| Date | ${m.date} |`,
    `| OS | ${m.os} |`,
    `| CPU | ${m.cpuModel}, ${m.cores} cores |`,
    `| Memory | ${m.memoryGiB} GiB |`,
    `| Node | ${m.node} |`,
    ...Object.entries(m.libraries).map(([k, v]) => `| ${k} | ${v} |`),
    `| Commit | ${m.gitCommit} |`,
    `| CPU clock | ${m.cpuClock} |`,
    `| Load average (1 min) at start / end | ${m.loadAverageAtStart.toFixed(2)} / ${loadEnd.toFixed(2)} |`,
    `| CPU time / wall time of the ${file.name} run | ${file.cpuShare.toFixed(2)} |`,
    '',
    shared
      ? '**Numbers taken on a shared machine:** other processes (other agents building and testing this project) were running on the same 2 cores during this run (see the load average and the CPU/wall ratio above). The tables report CPU time of this process, which preemption does not inflate, but shared caches and frequency still add noise: treat differences under ~20% as noise.'
      : 'The machine was otherwise idle during this run (load average at start at or below 0.5, CPU/wall ratio at least 0.9).',
    '',
    ...sections.flatMap((s) => [s, '']),
  ].join('\n');
}

/**
 * Rewrites SUMMARY.md (and the targets section) from the saved results in `dir`, with the machine
 * table of the newest saved run: for results written by benchmarks that leave SUMMARY.md alone
 * (the suite comparison, the issue 17 service targets).
 */
export function rebuildSummary(dir = RESULTS_DIR): string {
  let newest: BenchFile<unknown> | undefined;
  for (const f of readdirSync(dir).filter((x) => x.endsWith('.json'))) {
    try {
      const v = JSON.parse(readFileSync(join(dir, f), 'utf8')) as Partial<BenchFile<unknown>>;
      if (typeof v.name !== 'string' || typeof v.machine?.date !== 'string') continue;
      if (!newest || v.machine.date > newest.machine.date) newest = v as BenchFile<unknown>;
    } catch {
      // not a result file
    }
  }
  if (!newest) throw new Error(`no saved benchmark results in ${dir}`);
  writeFileSync(join(dir, 'SUMMARY.md'), summary(newest, dir));
  return join(dir, 'SUMMARY.md');
}

// ---------------------------------------------------------------------------------------------
// Issue 17 targets: one table from the saved results of the benchmarks that measure them

const TARGETS_MD = 'targets.md';
/** Hand-written notes, by target id: what dominates where no profile in the results says it. */
const TARGET_NOTES = 'targets-notes.json';

type Measured = { what: string; target: string; measured: string; met: boolean | null; context?: boolean };
type TargetRow = Measured & { id: string; dominates: string; source: string };

/** The fields of scripts/bench/targets-report.ts TargetsResults this table reads. */
type ServiceTargetsFile = {
  label: string;
  commit: string;
  startedAt: string;
  loadAverage: { start: number; end: number };
  targets: Measured[];
  profiles: { file: string; busyMs: number; wallMs: number; packages: { name: string; share: number }[] }[];
};

/** The fields of scripts/bench/protocol.ts SuiteComparison (protocol-suites.json) this table reads. */
type SuitesFile = {
  data: {
    size: { t: number; n: number };
    measured: { date: string; commit: string; loadAverage: number };
    rows: {
      keySpec: string;
      ourBackend: string;
      ratio: number;
      noble: { summedCpuMs: { p50: number } };
      ours: { summedCpuMs: { p50: number }; rounds: { round: string; meanCpuMs: number; parties: number }[] };
    }[];
  };
};

/** The fields of scripts/bench/scale.ts ScaleResults (scale.json) this table reads. */
type ScaleFile = {
  machine: { gitCommit: string; date: string; loadAverageAtStart: number };
  data: {
    levels: {
      keysStored: number;
      signSequential: { latencyMs: { p50: number } };
      cpuMsPerSign?: number;
      signLoad: { perSecond: number };
      idleCpuMsPerS: Record<string, number>;
    }[];
  };
};

function readJson<T>(path: string): T | undefined {
  try {
    return JSON.parse(readFileSync(path, 'utf8')) as T;
  } catch {
    return undefined;
  }
}

const profileLine = (p: ServiceTargetsFile['profiles'][number]) =>
  `${p.file.replace(/^.*\//, '').replace(/\.cpuprofile$/, '')} ${((p.busyMs / p.wallMs) * 100).toFixed(0)}% busy: ${p.packages
    .slice(0, 3)
    .map((a) => `${a.name} ${(a.share * 100).toFixed(0)}%`)
    .join(', ')}`;

/** The targets table, or undefined when no result it reads is in `dir`. */
export function issue17TargetsMarkdown(dir: string): string | undefined {
  const rows: TargetRow[] = [];
  const notes = readJson<Record<string, string>>(join(dir, TARGET_NOTES)) ?? {};
  const note = (id: string, fallback: string) => notes[id] ?? fallback;

  // Service targets (scripts/bench/targets.ts benchTargets): the newest run.
  const service = readdirSync(dir)
    .filter((f) => /^service-targets-.+\.json$/.test(f))
    .map((f) => ({ f, v: readJson<ServiceTargetsFile>(join(dir, f)) }))
    .filter((x): x is { f: string; v: ServiceTargetsFile } => x.v !== undefined && Array.isArray(x.v.targets))
    .sort((a, b) => b.v.startedAt.localeCompare(a.v.startedAt))[0];
  if (service) {
    const src = `${service.f} (${service.v.commit ? `commit ${service.v.commit.slice(0, 7)}` : 'a working tree, see its section'}, ${service.v.startedAt.slice(0, 16)}Z, load ${service.v.loadAverage.start.toFixed(1)})`;
    const profiles = service.v.profiles.map(profileLine).join('; ');
    for (const t of service.v.targets) {
      const id = /crypto-bound/.test(t.what)
        ? `crypto-limit-${t.what.split(' ')[0]}`
        : /CPU-bound/.test(t.what)
          ? `cpu-throughput-${t.what.split(' ')[0]}`
          : /throughput/.test(t.what)
            ? `throughput-${t.what.split(' ')[0]}`
            : /p50 \/ reference/.test(t.what)
              ? `latency-${t.what.split(' ')[0]}`
              : /^DKG/.test(t.what)
                ? 'dkg'
                : /^reshare/.test(t.what)
                  ? 'reshare'
                  : t.what;
      const signing = /throughput|latency/.test(id);
      rows.push({
        ...t,
        id,
        dominates: note(id, signing && profiles ? `profile under 32 clients: ${profiles}` : '-'),
        source: src,
      });
    }
  }

  // Every suite at most noble's FROST (scripts/bench/protocol.ts benchSuites).
  const suites = readJson<SuitesFile>(join(dir, 'protocol-suites.json'));
  if (suites?.data?.rows) {
    const m = suites.data.measured;
    const size = `${suites.data.size.t}-of-${suites.data.size.n}`;
    for (const r of suites.data.rows) {
      const top = [...r.ours.rounds].sort((a, b) => b.meanCpuMs * b.parties - a.meanCpuMs * a.parties)[0];
      rows.push({
        id: `suite-${r.keySpec}`,
        what: `${r.keySpec} ${size} threshold signature / noble's FROST (CPU, all parties)`,
        target: '<= 1x',
        measured: `${r.ratio.toFixed(2)}x (${fmtMs(r.ours.summedCpuMs.p50)} vs ${fmtMs(r.noble.summedCpuMs.p50)} ms)`,
        met: Number.isFinite(r.ratio) ? r.ratio <= 1 : null,
        dominates: note(
          `suite-${r.keySpec}`,
          `${r.ourBackend}; largest round ${top ? `${top.round} (${fmtMs(top.meanCpuMs)} ms x ${top.parties})` : '-'}`,
        ),
        source: `protocol-suites.json (commit ${m.commit}, ${m.date.slice(0, 16)}Z, load ${m.loadAverage.toFixed(1)})`,
      });
    }
  }

  // Scale: flat latency and throughput with 10 000 and 100 000 keys (scripts/bench/scale.ts).
  const scale = readJson<ScaleFile>(join(dir, 'scale.json'));
  const levels = scale?.data?.levels ?? [];
  if (scale && levels.length >= 2) {
    const first = levels[0]!;
    const src = `scale.json (commit ${scale.machine.gitCommit}, ${scale.machine.date.slice(0, 16)}Z, load ${scale.machine.loadAverageAtStart.toFixed(1)})`;
    for (const l of levels.slice(1)) {
      const p50 = l.signSequential.latencyMs.p50 / first.signSequential.latencyMs.p50;
      const tp = l.signLoad.perSecond / first.signLoad.perSecond;
      const cpu =
        l.cpuMsPerSign !== undefined && first.cpuMsPerSign !== undefined
          ? l.cpuMsPerSign / first.cpuMsPerSign
          : Number.NaN;
      const cpuText = Number.isFinite(cpu) ? `, CPU per signature ${cpu.toFixed(2)}x` : '';
      rows.push({
        id: `scale-${l.keysStored}`,
        what: `scale: ${l.keysStored} keys stored vs ${first.keysStored} (sign p50, throughput${Number.isFinite(cpu) ? ', CPU per signature' : ''})`,
        target: 'flat (p50 <= 1.25x, throughput >= 0.8x, CPU <= 1.2x)',
        measured: `p50 ${p50.toFixed(2)}x (${fmtMs(l.signSequential.latencyMs.p50)} vs ${fmtMs(first.signSequential.latencyMs.p50)} ms), throughput ${tp.toFixed(2)}x${cpuText}`,
        met: p50 <= 1.25 && tp >= 0.8 && (!Number.isFinite(cpu) || cpu <= 1.2),
        dominates: note(
          `scale-${l.keysStored}`,
          `idle CPU coordinator ${(l.idleCpuMsPerS['coordinator'] ?? 0).toFixed(0)} ms/s (${(first.idleCpuMsPerS['coordinator'] ?? 0).toFixed(0)} at ${first.keysStored} keys), node-1 ${(l.idleCpuMsPerS['node-1'] ?? 0).toFixed(0)} ms/s (${(first.idleCpuMsPerS['node-1'] ?? 0).toFixed(0)})`,
        ),
        source: src,
      });
    }
  }
  if (rows.length === 0) return undefined;
  const met = rows.filter((r) => r.met === true).length;
  const context = rows.filter((r) => r.context).length;
  const out = [
    '## Issue 17 targets',
    '',
    `Each target of issue 17, as measured by the benchmark named in "source" (its commit, start time and 1-minute load average: a 2-core machine shared with other processes, so wall-clock numbers move with the load; CPU-time numbers much less). ${met} of ${rows.length - context} met${context ? ` (plus ${context} context row${context === 1 ? '' : 's'}, no target of ${context === 1 ? 'its' : 'their'} own)` : ''}. Rebuilt from the saved results by \`npm run bench -- summary\`; details in each benchmark's section below.`,
    '',
    '| target | goal | measured | met | what dominates | source |',
    '|---|---|---|---|---|---|',
    ...rows.map(
      (r) =>
        `| ${r.what} | ${r.target} | ${r.measured} | ${r.context ? 'context' : r.met === null ? 'n/a' : r.met ? 'yes' : '**no**'} | ${r.dominates} | ${r.source} |`,
    ),
  ];
  const general = notes['general'];
  if (general) out.push('', general);
  return `${out.join('\n')}\n`;
}

// ---------------------------------------------------------------------------------------------
// Protocol benchmark rendering

const sizeLabel = (r: ProtocolRow) =>
  `${r.size.t}-of-${r.size.n}${r.newSize ? ` -> ${r.newSize.t}-of-${r.newSize.n}` : ''}`;

/** Issue 8 targets for one 3-of-5 signature, all parties summed (ms). */
const SIGN_TARGETS: Partial<Record<string, number>> = { FROST_ED25519: 3, FROST_SECP256K1_TR: 5 };

export function protocolMarkdown(r: ProtocolResults, durationS: number): string {
  const single = new Map(r.singleKey.map((s) => [s.keySpec, s]));
  const find = (keySpec: string, op: string, impl: string, t: number, n: number) =>
    r.rows.find(
      (x) =>
        x.keySpec === keySpec &&
        x.operation === op &&
        x.implementation === impl &&
        x.size.t === t &&
        x.size.n === n,
    );
  const sizes = [
    ...new Map(
      r.rows
        .filter((x) => x.operation === 'sign' || x.operation === 'dkg')
        .map((x) => [`${x.size.t}/${x.size.n}`, x.size]),
    ).values(),
  ].sort((a, b) => a.n - b.n || a.t - b.t);
  const cell = (row: ProtocolRow | undefined) => (row ? fmtMs(row.summedCpuMs.p50) : '-');
  const crit = (row: ProtocolRow | undefined) => (row ? fmtMs(row.criticalPathCpuMs.p50) : '-');
  const ratio = (row: ProtocolRow | undefined) =>
    row && Number.isFinite(row.ratioToSingleKey) ? `${row.ratioToSingleKey.toFixed(1)}x` : '-';
  const mark = (row: ProtocolRow | undefined) => (row?.sampled ? ' *' : '');
  const out: string[] = [];
  out.push(
    `## Protocol, in one process${r.plan.quick ? ' (QUICK: harness check only, not a measurement)' : ''}`,
    '',
  );
  out.push(
    `CPU milliseconds (median over iterations). **Summed** = all parties' work added up; **critical path** = with one core per party and free messages (slowest party per round, summed over rounds). "x single" = summed / a plain single-key signature of the same suite measured in the same run. Run took ${durationS.toFixed(0)} s.`,
    '',
  );
  out.push(
    '### One threshold signature (noble FROST: commit, signShare, aggregate) vs a single-key signature',
    '',
  );
  const ops = ['sign', 'dkg'] as const;
  const hasOurs = (op: string) => r.rows.some((x) => x.operation === op && x.implementation === 'ours');
  for (const op of ops) {
    if (op === 'dkg')
      out.push(
        '### DKG (noble: DKG.round1/2/3; ours: with proofs bound to the session, echo and confirmation rounds)',
        '',
      );
    const head = ['Key spec', 'Size', 'single-key', 'noble summed', 'noble critical', 'noble x single'];
    if (hasOurs(op)) head.push('ours summed', 'ours critical', 'ours x single');
    out.push(`| ${head.join(' | ')} |`, `|${head.map(() => '---').join('|')}|`);
    for (const ks of r.plan.keySpecs) {
      for (const s of sizes) {
        const noble = find(ks, op, 'noble-frost', s.t, s.n);
        const ours = find(ks, op, 'ours', s.t, s.n);
        if (!noble && !ours) continue;
        const line = [
          ks,
          `${s.t}-of-${s.n}${mark(noble)}`,
          fmtMs(single.get(ks)?.cpuMsPerOp.p50 ?? Number.NaN),
          cell(noble),
          crit(noble),
          ratio(noble),
        ];
        if (hasOurs(op)) line.push(cell(ours), crit(ours), ratio(ours));
        out.push(`| ${line.join(' | ')} |`);
      }
    }
    out.push('');
    if (op === 'dkg')
      out.push('`*` only some parties of rounds 2-3 were timed; the sum is extrapolated (see Skipped).', '');
  }
  const events = r.rows.filter(
    (x) => x.operation === 'refresh' || x.operation === 'reshare' || x.operation === 'repair',
  );
  out.push('### Key events (ours)', '');
  if (events.length === 0) out.push('Not measured in this run: see Skipped.', '');
  else {
    out.push('| Key spec | Event | Size | summed | critical | x single |', '|---|---|---|---|---|---|');
    for (const e of events)
      out.push(`| ${e.keySpec} | ${e.operation} | ${sizeLabel(e)} | ${cell(e)} | ${crit(e)} | ${ratio(e)} |`);
    out.push('');
  }
  out.push('### Where the time goes at 3-of-5 (per round: mean and slowest party, CPU ms)', '');
  out.push(
    '| Key spec | Operation | Impl | Round | parties (timed) | mean | slowest |',
    '|---|---|---|---|---|---|---|',
  );
  for (const ks of ['FROST_ED25519', 'FROST_SECP256K1_TR']) {
    for (const row of r.rows.filter((x) => x.keySpec === ks && x.size.t === 3 && x.size.n === 5)) {
      for (const rd of row.rounds) {
        out.push(
          `| ${ks} | ${row.operation}${row.newSize ? ` -> ${row.newSize.t}-of-${row.newSize.n}` : ''} | ${row.implementation} | ${rd.round} | ${rd.parties} (${rd.measured}) | ${fmtMs(rd.meanCpuMs)} | ${fmtMs(rd.maxCpuMs)} |`,
        );
      }
    }
  }
  out.push(
    '',
    'For our message-driven machines a "round" is the round of the message being handled (one entry per delivery; `start` includes building the machine), so "parties" counts deliveries.',
    '',
  );
  out.push('### Targets of issue 8 (one 3-of-5 signature, all parties summed)', '');
  out.push('| Key spec | target | noble FROST | ours |', '|---|---|---|---|');
  for (const [ks, target] of Object.entries(SIGN_TARGETS)) {
    const noble = find(ks, 'sign', 'noble-frost', 3, 5);
    const ours = find(ks, 'sign', 'ours', 3, 5);
    out.push(
      `| ${ks} | <= ${target} ms | ${cell(noble)} ms | ${ours ? `${cell(ours)} ms` : 'not measured'} |`,
    );
  }
  out.push('');
  if (r.requestCheck) out.push(...requestCheckMarkdown(r.requestCheck));
  out.push('### Primitive costs (the levers): noble vs libsodium', '');
  out.push('| Group | Operation | Library | ms per op (median) |', '|---|---|---|---|');
  for (const p of r.primitives)
    out.push(`| ${p.group} | ${p.operation} | ${p.library} | ${fmtMs(p.cpuMsPerOp.p50)} |`);
  const ed = (op: string, lib: string) =>
    r.primitives.find((p) => p.group === 'ed25519' && p.operation === op && p.library.startsWith(lib));
  const speedups = ['decode + subgroup check', 'fixed-base multiply', 'variable-base multiply']
    .map((op) => {
      const a = ed(op, 'noble');
      const b = ed(op, 'libsodium');
      return a && b ? `${op} ${(a.cpuMsPerOp.p50 / b.cpuMsPerOp.p50).toFixed(0)}x` : null;
    })
    .filter((x) => x !== null);
  if (speedups.length) out.push('', `libsodium is faster on Ed25519 by: ${speedups.join(', ')}.`);
  out.push('');
  out.push('### Skipped, and why', '');
  for (const s of r.skipped) out.push(`- ${s}`);
  out.push('', 'Charts: `protocol-sign-vs-n.svg`, `protocol-dkg-vs-n.svg` (summed CPU, log scales).', '');
  return out.join('\n');
}

/** The request-check section (scripts/bench/request-check.ts). */
function requestCheckMarkdown(c: RequestCheckSection): string[] {
  const k = c.costs;
  const out = [
    '### A node\'s check of a signed request, beside the signature it authorizes (issue "Nodes decide")',
    '',
  ];
  if (c.measured.alone)
    out.push(
      `**Re-measured on ${c.measured.date.slice(0, 10)} (commit ${c.measured.commit}, load average ${c.measured.loadAverage.toFixed(2)}) by \`npm run bench -- protocol --only request-check\`: this section only, with the 3-of-5 signatures of our machines it divides by measured again in the same process. Every other table of this page is from the full run described in the summary's machine table, and was not re-measured.**`,
      '',
    );
  out.push(
    'One signed `POST /v1/keys/{keyId}/sign` (32-byte message, Ed25519 principal) checked as a signing node checks it at `sign-commit` (node/request-guard.ts, its pure part): request digest, governance lookup of the principal, RFC 9421 `verifyRequest` (structured headers, RFC 9530 Content-Digest, the Ed25519 signature) and `evaluate` of the devnet genesis policy. Not included: the audit-log write and replay-cache bookkeeping (I/O). The t signers each check the request once per signature (`sign-share` is bound to the checked request without a second verification); the coordinator also checks it once (early error), not counted below.',
    '',
    '| | ms per op (median) |',
    '|---|---|',
    `| whole check, one node (Ed25519 on libsodium, as nodes run it) | ${fmtMs(k.checkCpuMs.p50)} |`,
    `| of which the Ed25519 signature, libsodium (sodium-native) | ${fmtMs(k.verifyNativeCpuMs.p50)} |`,
    `| the Ed25519 signature with noble instead (the reference) | ${fmtMs(k.verifyNobleCpuMs.p50)} |`,
    '',
    `| Key spec | Size | signature, ours summed (ms) | checks per signature | checks / signature | with noble's verifier | target < ${(c.target * 100).toFixed(0)}% |`,
    '|---|---|---|---|---|---|---|',
  );
  for (const row of c.rows)
    out.push(
      `| ${row.keySpec} | ${row.size.t}-of-${row.size.n} | ${fmtMs(row.signSummedCpuMs)} | ${row.checksPerSignature} | ${(row.ratio * 100).toFixed(1)}% | ${(row.ratioNoble * 100).toFixed(0)}% | ${row.ratio < c.target ? 'met' : '**not met**'} |`,
    );
  out.push('');
  return out;
}

export function protocolCharts(r: ProtocolResults): Record<string, string> {
  const charts: Record<string, string> = {};
  for (const op of ['sign', 'dkg'] as const) {
    const series = r.plan.keySpecs.flatMap((ks) =>
      (['noble-frost', 'ours'] as const).map((impl) => ({
        label: `${ks}${impl === 'ours' ? ' (ours)' : ''}`,
        dashed: impl === 'ours',
        points: r.rows
          .filter((x) => x.keySpec === ks && x.operation === op && x.implementation === impl)
          .map((x) => ({ x: x.size.n, y: x.summedCpuMs.p50 }))
          .sort((a, b) => a.x - b.x),
      })),
    );
    charts[`protocol-${op}-vs-n.svg`] = lineChart({
      title: `${op === 'sign' ? 'One threshold signature (t = about 2n/3)' : 'DKG'}: CPU, all parties summed`,
      xLabel: 'n (parties)',
      yLabel: 'CPU ms',
      series: series.filter((s) => s.points.length > 0),
    });
  }
  return charts;
}

// ---------------------------------------------------------------------------------------------
// A small SVG line chart with log-scaled axes

export type Series = {
  readonly label: string;
  readonly dashed?: boolean;
  readonly points: readonly { x: number; y: number }[];
};

const COLORS = ['#1f77b4', '#d62728', '#2ca02c', '#9467bd', '#ff7f0e', '#8c564b', '#e377c2', '#17becf'];

const esc = (s: string) => s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');

export function lineChart(opts: {
  title: string;
  xLabel: string;
  yLabel: string;
  series: readonly Series[];
}): string {
  const W = 760;
  const H = 440;
  const m = { l: 70, r: 230, t: 40, b: 50 };
  const pts = opts.series.flatMap((s) => s.points).filter((p) => p.x > 0 && p.y > 0);
  const xs = pts.map((p) => p.x);
  const ys = pts.map((p) => p.y);
  const lx0 = Math.floor(Math.log10(Math.min(...xs, 2)));
  const lx1 = Math.ceil(Math.log10(Math.max(...xs, 10)));
  const ly0 = Math.floor(Math.log10(Math.min(...ys, 1)));
  const ly1 = Math.ceil(Math.log10(Math.max(...ys, 10)));
  const X = (x: number) => m.l + ((Math.log10(x) - lx0) / (lx1 - lx0 || 1)) * (W - m.l - m.r);
  const Y = (y: number) => H - m.b - ((Math.log10(y) - ly0) / (ly1 - ly0 || 1)) * (H - m.t - m.b);
  const el: string[] = [];
  el.push(`<rect width="${W}" height="${H}" fill="white"/>`);
  el.push(`<text x="${m.l}" y="24" font-size="15" font-weight="bold">${esc(opts.title)}</text>`);
  for (let e = ly0; e <= ly1; e++) {
    for (const k of [1, 2, 5]) {
      const v = k * 10 ** e;
      if (v < 10 ** ly0 || v > 10 ** ly1) continue;
      const y = Y(v).toFixed(1);
      el.push(
        `<line x1="${m.l}" x2="${W - m.r}" y1="${y}" y2="${y}" stroke="${k === 1 ? '#ccc' : '#eee'}"/>`,
      );
      el.push(
        `<text x="${m.l - 6}" y="${y}" font-size="11" text-anchor="end" dominant-baseline="middle">${v >= 1 ? v : v.toPrecision(1)}</text>`,
      );
    }
  }
  const xTicks = [...new Set(xs)].sort((a, b) => a - b);
  for (const v of xTicks) {
    const x = X(v).toFixed(1);
    el.push(`<line x1="${x}" x2="${x}" y1="${m.t}" y2="${H - m.b}" stroke="#eee"/>`);
    el.push(`<text x="${x}" y="${H - m.b + 16}" font-size="11" text-anchor="middle">${v}</text>`);
  }
  el.push(
    `<rect x="${m.l}" y="${m.t}" width="${W - m.l - m.r}" height="${H - m.t - m.b}" fill="none" stroke="#333"/>`,
  );
  el.push(
    `<text x="${(m.l + W - m.r) / 2}" y="${H - 12}" font-size="12" text-anchor="middle">${esc(opts.xLabel)}</text>`,
  );
  el.push(
    `<text transform="translate(18 ${(m.t + H - m.b) / 2}) rotate(-90)" font-size="12" text-anchor="middle">${esc(opts.yLabel)}</text>`,
  );
  opts.series.forEach((s, i) => {
    const color = COLORS[i % COLORS.length] as string;
    const p = s.points.filter((q) => q.x > 0 && q.y > 0);
    const d = p.map((q, j) => `${j ? 'L' : 'M'}${X(q.x).toFixed(1)},${Y(q.y).toFixed(1)}`).join(' ');
    el.push(
      `<path d="${d}" fill="none" stroke="${color}" stroke-width="2"${s.dashed ? ' stroke-dasharray="6 4"' : ''}/>`,
    );
    for (const q of p)
      el.push(
        `<circle cx="${X(q.x).toFixed(1)}" cy="${Y(q.y).toFixed(1)}" r="3" fill="${color}"><title>${esc(s.label)} n=${q.x}: ${fmtMs(q.y)} ms</title></circle>`,
      );
    const ly = m.t + 10 + i * 18;
    el.push(
      `<line x1="${W - m.r + 12}" x2="${W - m.r + 36}" y1="${ly}" y2="${ly}" stroke="${color}" stroke-width="2"${s.dashed ? ' stroke-dasharray="6 4"' : ''}/>`,
    );
    el.push(
      `<text x="${W - m.r + 42}" y="${ly}" font-size="11" dominant-baseline="middle">${esc(s.label)}</text>`,
    );
  });
  return `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}" font-family="sans-serif">\n${el.join('\n')}\n</svg>\n`;
}
