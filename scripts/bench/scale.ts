/**
 * The scale benchmark (issue 17 item 4): does the service stay flat as keys accumulate? One 5-node
 * devnet (real processes, SoftHSM2 tokens). A few keys are real (DKG through the API, each signed
 * once so the nodes hold it as an active key); then the stores are filled up to 10 000 (and, with
 * `--max-keys 100000`, 100 000) keys by the bench-only bulk path (bulk-keys.ts: full-size clones of
 * one real key's records in the coordinator's and every node's LevelDB, never signed with).
 *
 * At each level, after a restart: sequential sign latency and closed-loop throughput of one real
 * key, the latency of reading one key and of listing a page of keys, the idle CPU of the
 * coordinator and of a node (the coordinator's deletion sweeper runs every 5 s here instead of
 * 60 s, so background work that scans every key shows), and the bytes on disk (LevelDB directories,
 * SoftHSM2 tokens) and in memory (resident set size) of every process. Bytes per key are the
 * differences between levels divided by the keys added; per real key (DKG, HSM object, active-key
 * cache) from the real keys made at the start.
 */
import { readdirSync, readFileSync, statSync } from 'node:fs';
import os from 'node:os';
import { join } from 'node:path';
import { DEFAULT_MAX_ACTIVE_KEYS } from '../../node/active-keys.ts';
import { readPid } from '../devnet-lib.ts';
import { activeKeyBytes } from './active-key-memory.ts';
import { cloneKeys } from './bulk-keys.ts';
import { mustOk, signsOk, target } from './devnet-api.ts';
import { type BenchDevnet, createBenchDevnet } from './devnet-run.ts';
import { cpuMsOf } from './process-cpu.ts';
import {
  LoadClient,
  type LoadResult,
  type RequestSpec,
  closedLoop,
  sequential,
  signRequest,
} from './load.ts';
import { type BenchFile, machineInfo, writeResults } from './report.ts';
import { fmtMs } from './stats.ts';

export type ScalePlan = {
  readonly quick: boolean;
  /** Keys made by DKG through the API before any clone (plus one made first, to warm up). */
  readonly realKeys: number;
  /** Levels measured: keys stored (the first is the real keys alone). */
  readonly keyCounts: readonly number[];
  readonly sequentialCount: number;
  readonly warmup: number;
  readonly concurrency: number;
  readonly loadMs: number;
  readonly loadWarmupMs: number;
  readonly readCount: number;
  readonly idleMs: number;
  readonly sweepIntervalMs: number;
};

export function scalePlan(opts: { quick: boolean; maxKeys: number }): ScalePlan {
  if (opts.quick) {
    return {
      quick: true,
      realKeys: 3,
      keyCounts: [4, 200],
      sequentialCount: 10,
      warmup: 3,
      concurrency: 8,
      loadMs: 1_000,
      loadWarmupMs: 200,
      readCount: 10,
      idleMs: 1_000,
      sweepIntervalMs: 500,
    };
  }
  const realKeys = 20;
  return {
    quick: false,
    realKeys,
    keyCounts: [realKeys + 1, 10_000, 100_000].filter((n) => n <= Math.max(opts.maxKeys, realKeys)),
    sequentialCount: 300,
    warmup: 30,
    concurrency: 16,
    loadMs: 5_000,
    loadWarmupMs: 1_000,
    readCount: 200,
    idleMs: 10_000,
    sweepIntervalMs: 5_000,
  };
}

/** Bytes of one process's state: its LevelDB directory, and for nodes its SoftHSM2 token directory. */
export type ProcessBytes = {
  readonly name: string;
  readonly dbBytes: number;
  readonly tokenBytes: number;
  readonly rssBytes: number;
};

export type ScaleLevel = {
  readonly keysStored: number;
  /** Wall time from starting the processes to the first good signature. */
  readonly restartS: number;
  readonly signSequential: LoadResult;
  /** CPU ms of all devnet processes together per sequential signature. */
  readonly cpuMsPerSign: number;
  /** The same by process. */
  readonly cpuMsPerSignByProcess: Record<string, number>;
  readonly signLoad: LoadResult;
  readonly getKey: LoadResult;
  readonly listKeys: LoadResult;
  /** CPU ms per second of wall time, idle (no requests), by process name. */
  readonly idleCpuMsPerS: Record<string, number>;
  readonly processes: readonly ProcessBytes[];
};

export type ScaleResults = {
  readonly plan: ScalePlan;
  readonly levels: ScaleLevel[];
  /** Bytes per real key (DKG'd, signed once) by process, from before/after the real keys. */
  readonly perRealKey: { name: string; dbBytes: number; tokenBytes: number; rssBytes: number }[];
  /**
   * Memory of one active (signing) key on a node, measured in the bench process on entries of
   * node/active-keys.ts's shape (active-key-memory.ts), and the most a node holds.
   */
  readonly activeKey?: { bytesPerKey: number; recordJsonBytes: number; maxEntries: number };
  readonly notes: string[];
};

const processNames = (d: BenchDevnet) => [
  'coordinator',
  ...Array.from({ length: d.nodes }, (_, i) => `node-${i + 1}`),
];

function dirBytes(dir: string): number {
  let total = 0;
  let entries: string[];
  try {
    entries = readdirSync(dir);
  } catch {
    return 0;
  }
  for (const e of entries) {
    const p = join(dir, e);
    const s = statSync(p, { throwIfNoEntry: false });
    if (!s) continue;
    total += s.isDirectory() ? dirBytes(p) : s.size;
  }
  return total;
}

/**
 * RssAnon of a live process, bytes (0 when it is not running): the resident memory the process
 * allocated (JS heap, native buffers, LevelDB caches), without the file pages LevelDB maps to read
 * its tables, which the kernel counts in VmRSS and may drop at any time.
 */
function rssOf(pid: number | undefined): number {
  if (pid === undefined) return 0;
  try {
    const m = /RssAnon:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Number(m[1]) * 1024 : 0;
  } catch {
    return 0;
  }
}

/** utime + stime of a process, ms (0 for none). */
const cpuOf = (pid: number | undefined): number => (pid === undefined ? 0 : cpuMsOf([pid]));

function totalCpuMs(pids: readonly (number | undefined)[]): number {
  let ms = 0;
  for (const p of pids) ms += cpuOf(p);
  return ms;
}

function measureBytes(d: BenchDevnet): ProcessBytes[] {
  return processNames(d).map((name) => {
    const base = join(d.dir, name);
    const db = name === 'coordinator' ? join(base, 'data') : join(base, 'data');
    let tokenBytes = 0;
    for (const e of readdirSync(base, { withFileTypes: true })) {
      if (e.isDirectory() && e.name !== 'data' && /token|softhsm|hsm/i.test(e.name))
        tokenBytes += dirBytes(join(base, e.name));
    }
    return { name, dbBytes: dirBytes(db), tokenBytes, rssBytes: rssOf(readPid(d.dir, name)) };
  });
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function idleCpu(d: BenchDevnet, ms: number): Promise<Record<string, number>> {
  const names = ['coordinator', 'node-1'];
  const pids = names.map((n) => readPid(d.dir, n));
  const c0 = pids.map(cpuOf);
  const t0 = performance.now();
  await sleep(ms);
  const wallS = (performance.now() - t0) / 1000;
  return Object.fromEntries(names.map((n, i) => [n, (cpuOf(pids[i]) - c0[i]!) / wallS]));
}

async function measureLevel(
  d: BenchDevnet,
  keyId: string,
  keysStored: number,
  restartS: number,
  plan: ScalePlan,
  log: (l: string) => void,
): Promise<ScaleLevel> {
  const t = target(d);
  // CPU of every devnet process over the sequential phase, per signature: unlike latency, hardly
  // moved by other processes sharing the cores.
  const names = processNames(d);
  const pids = names.map((n) => readPid(d.dir, n));
  const each0 = pids.map(cpuOf);
  const cpu0 = totalCpuMs(pids);
  const signSequential = await sequential(t, signRequest(keyId), {
    count: plan.sequentialCount,
    warmup: plan.warmup,
  });
  const signs = plan.sequentialCount + plan.warmup;
  const cpuMsPerSign = (totalCpuMs(pids) - cpu0) / signs;
  const cpuMsPerSignByProcess = Object.fromEntries(
    names.map((n, i) => [n, (cpuOf(pids[i]) - each0[i]!) / signs]),
  );
  const signLoad = await closedLoop(t, signRequest(keyId), {
    concurrency: plan.concurrency,
    durationMs: plan.loadMs,
    warmupMs: plan.loadWarmupMs,
  });
  const get: RequestSpec = { method: 'GET', path: `/v1/keys/${keyId}`, body: () => undefined };
  const getKey = await sequential(t, get, { count: plan.readCount, warmup: plan.warmup });
  const list: RequestSpec = { method: 'GET', path: '/v1/keys?limit=100', body: () => undefined };
  const listKeys = await sequential(t, list, { count: plan.readCount, warmup: plan.warmup });
  await sleep(1_000); // let the load's garbage settle before reading the resident sizes
  const processes = measureBytes(d);
  const idleCpuMsPerS = await idleCpu(d, plan.idleMs);
  const errs = signSequential.errors + signLoad.errors + getKey.errors + listKeys.errors;
  log(
    `${keysStored} keys: sign p50 ${fmtMs(signSequential.latencyMs.p50)} ms p99 ${fmtMs(signSequential.latencyMs.p99)} ms, ${fmtMs(cpuMsPerSign)} CPU ms/sig, ` +
      `${signLoad.perSecond.toFixed(0)} sig/s @${plan.concurrency}, get ${fmtMs(getKey.latencyMs.p50)} ms, ` +
      `list ${fmtMs(listKeys.latencyMs.p50)} ms, idle CPU coordinator ${idleCpuMsPerS['coordinator']!.toFixed(1)} ms/s` +
      `, restart ${restartS.toFixed(1)} s${errs ? `, ${errs} errors (${[...signSequential.errorSamples, ...signLoad.errorSamples, ...getKey.errorSamples, ...listKeys.errorSamples][0]})` : ''}`,
  );
  return {
    keysStored,
    restartS,
    signSequential,
    cpuMsPerSign,
    cpuMsPerSignByProcess,
    signLoad,
    getKey,
    listKeys,
    idleCpuMsPerS,
    processes,
  };
}

export async function runScaleBench(plan: ScalePlan, log: (l: string) => void): Promise<ScaleResults> {
  const levels: ScaleLevel[] = [];
  const notes: string[] = [];
  const activeKey = { ...activeKeyBytes(plan.quick ? 200 : 4000), maxEntries: DEFAULT_MAX_ACTIVE_KEYS };
  log(
    `active key in memory: ${activeKey.bytesPerKey.toFixed(0)} B (at most ${activeKey.maxEntries} per node)`,
  );
  const d = await createBenchDevnet(5);
  try {
    log('starting the 5-node devnet (SoftHSM2 tokens)...');
    await d.start();
    // For every later start (each level restarts the processes).
    d.setEnv(['coordinator'], { KMS_DELETION_SWEEP_INTERVAL_MS: String(plan.sweepIntervalMs) });
    const c = new LoadClient(target(d));
    const keyIds: string[] = [];
    let before: ProcessBytes[] = [];
    try {
      // One key before the "before" reading: the first DKG and signature warm up code and caches
      // that do not grow with the key count.
      for (let i = 0; i <= plan.realKeys; i++) {
        if (i === 1) {
          await sleep(1_000);
          before = measureBytes(d);
        }
        const body = await mustOk(c, 'POST', '/v1/keys', {
          keySpec: 'FROST_ED25519',
          threshold: 3,
          participants: ['node-1', 'node-2', 'node-3', 'node-4', 'node-5'],
        });
        keyIds.push(body.keyId as string);
        // Signed once: the nodes now hold it as an active key (unsealed, in memory).
        await mustOk(c, 'POST', `/v1/keys/${body.keyId}/sign`, { message: '00'.repeat(32) });
      }
    } finally {
      c.close();
    }
    await sleep(1_000);
    const after = measureBytes(d);
    const perRealKey = after.map((a, i) => ({
      name: a.name,
      dbBytes: (a.dbBytes - before[i]!.dbBytes) / plan.realKeys,
      tokenBytes: (a.tokenBytes - before[i]!.tokenBytes) / plan.realKeys,
      rssBytes: (a.rssBytes - before[i]!.rssBytes) / plan.realKeys,
    }));
    const refKey = keyIds[0]!;
    let stored = keyIds.length;
    for (const count of plan.keyCounts) {
      if (count > stored) {
        await d.stop();
        const t0 = performance.now();
        await cloneKeys(d.dir, d.nodes, refKey, count - stored);
        log(
          `bulk path: ${count - stored} cloned keys written in ${((performance.now() - t0) / 1000).toFixed(1)} s`,
        );
        stored = count;
      } else {
        // The first level restarts too, so every level is measured the same way (fresh processes).
        await d.stop();
      }
      const t0 = performance.now();
      await d.startProcesses(() => signsOk(target(d), refKey), 600_000);
      const restartS = (performance.now() - t0) / 1000;
      levels.push(await measureLevel(d, refKey, stored, restartS, plan, log));
    }
    return { plan, levels, perRealKey, activeKey, notes };
  } finally {
    await d.dispose();
  }
}

// ---------------------------------------------------------------------------------------------
// Report

const kib = (b: number) => (Math.abs(b) >= 10 * 1024 ? `${(b / 1024).toFixed(0)} KiB` : `${b.toFixed(0)} B`);
const mib = (b: number) => `${(b / 2 ** 20).toFixed(1)}`;

/** Bytes per key between the first and the last level (clones: stored, not active). */
export function perStoredKey(r: ScaleResults): { name: string; dbBytes: number; rssBytes: number }[] {
  const first = r.levels[0];
  const last = r.levels.at(-1);
  if (!first || !last || last.keysStored === first.keysStored) return [];
  const added = last.keysStored - first.keysStored;
  return last.processes.map((p, i) => ({
    name: p.name,
    dbBytes: (p.dbBytes - first.processes[i]!.dbBytes) / added,
    rssBytes: (p.rssBytes - first.processes[i]!.rssBytes) / added,
  }));
}

/** "flat" when the last level's sign p50 and throughput are within 25% of the first level's. */
export function flatness(r: ScaleResults): {
  p50Ratio: number;
  throughputRatio: number;
  cpuRatio: number;
  flat: boolean;
} {
  const first = r.levels[0];
  const last = r.levels.at(-1);
  if (!first || !last)
    return { p50Ratio: Number.NaN, throughputRatio: Number.NaN, cpuRatio: Number.NaN, flat: false };
  const p50Ratio = last.signSequential.latencyMs.p50 / first.signSequential.latencyMs.p50;
  const throughputRatio = last.signLoad.perSecond / first.signLoad.perSecond;
  const cpuRatio = last.cpuMsPerSign / first.cpuMsPerSign;
  return {
    p50Ratio,
    throughputRatio,
    cpuRatio,
    flat: p50Ratio <= 1.25 && throughputRatio >= 0.8 && cpuRatio <= 1.2,
  };
}

export function scaleMarkdown(r: ScaleResults, durationS: number): string {
  const out: string[] = [];
  out.push(
    `## Scale: keys stored (FROST_ED25519 3-of-5, 5-node devnet)${r.plan.quick ? ' (QUICK: harness check only, not a measurement)' : ''}`,
    '',
    `\`npm run bench -- scale\` (10 000 keys) or \`npm run bench -- scale --max-keys 100000\` (scripts/bench/scale.ts). ${r.plan.realKeys} keys are real (DKG through the API, each signed once); the rest are full-size clones of one of them written into the stopped devnet's stores (scripts/bench/bulk-keys.ts: the coordinator's key record; every node's key record, epoch record and sealed share), never signed with. Every level restarts all processes, then measures one real key: ${r.plan.sequentialCount} sequential signatures, ${r.plan.loadMs / 1000} s at ${r.plan.concurrency} clients, ${r.plan.readCount} reads of the key and of a 100-key page of \`GET /v1/keys\`; then ${r.plan.idleMs / 1000} s idle with the coordinator's deletion sweeper every ${r.plan.sweepIntervalMs / 1000} s (60 s by default), to show background work that grows with the key count. Run time ${durationS.toFixed(0)} s.`,
    '',
    '| keys stored | sign p50 ms | p95 | p99 | CPU ms per signature | sig/s @' +
      `${r.plan.concurrency} | p50 ms @${r.plan.concurrency} | get key p50 ms | list 100 p50 ms | idle CPU coordinator ms/s | idle CPU node-1 ms/s | restart s | errors |`,
    '|---|---|---|---|---|---|---|---|---|---|---|---|---|',
  );
  for (const l of r.levels) {
    const errs = l.signSequential.errors + l.signLoad.errors + l.getKey.errors + l.listKeys.errors;
    out.push(
      `| ${l.keysStored} | ${fmtMs(l.signSequential.latencyMs.p50)} | ${fmtMs(l.signSequential.latencyMs.p95)} | ${fmtMs(l.signSequential.latencyMs.p99)} | ${fmtMs(l.cpuMsPerSign)} | ${l.signLoad.perSecond.toFixed(0)} | ${fmtMs(l.signLoad.latencyMs.p50)} | ${fmtMs(l.getKey.latencyMs.p50)} | ${fmtMs(l.listKeys.latencyMs.p50)} | ${(l.idleCpuMsPerS['coordinator'] ?? 0).toFixed(1)} | ${(l.idleCpuMsPerS['node-1'] ?? 0).toFixed(1)} | ${l.restartS.toFixed(1)} | ${errs} |`,
    );
  }
  const names = Object.keys(r.levels[0]?.cpuMsPerSignByProcess ?? {});
  if (names.length > 0) {
    out.push(
      '',
      'CPU ms per sequential signature by process (user + system from /proc, over the sequential phase including its warm-up; idle background work included):',
      '',
      `| keys stored | ${names.join(' | ')} |`,
      `|---|${names.map(() => '---').join('|')}|`,
      ...r.levels.map(
        (l) =>
          `| ${l.keysStored} | ${names.map((n) => fmtMs(l.cpuMsPerSignByProcess?.[n] ?? Number.NaN)).join(' | ')} |`,
      ),
    );
  }
  const f = flatness(r);
  out.push(
    '',
    `Last level vs first: sign p50 ${f.p50Ratio.toFixed(2)}x, throughput ${f.throughputRatio.toFixed(2)}x, CPU per signature ${f.cpuRatio.toFixed(2)}x: **${f.flat ? 'flat' : 'not flat'}** (flat = p50 within +25 %, throughput within -20 %, CPU per signature within +20 %; latency and throughput move with the other processes sharing the 2 cores, see the load average; CPU per signature much less).`,
    '',
    '### Bytes per key',
    '',
    '| process | LevelDB per stored key | anonymous resident memory per stored key | LevelDB per real key | HSM token per real key | RssAnon growth per real key (heap growth of the DKGs included: see Active keys below) |',
    '|---|---|---|---|---|---|',
  );
  const stored = perStoredKey(r);
  for (const p of r.perRealKey) {
    const s = stored.find((x) => x.name === p.name);
    out.push(
      `| ${p.name} | ${s ? kib(s.dbBytes) : '-'} | ${s ? kib(s.rssBytes) : '-'} | ${kib(p.dbBytes)} | ${p.tokenBytes ? kib(p.tokenBytes) : '-'} | ${kib(p.rssBytes)} |`,
    );
  }
  out.push(
    '',
    '"Per stored key": differences between the first and the last level divided by the keys added (clones: on disk, never loaded). "Per real key": before and after the real keys (their DKG, audit records, one signature each; on nodes the active-key cache holds the unsealed package). Memory is RssAnon (/proc/<pid>/status: what the process allocated, without the file pages of the mapped LevelDB tables); it moves with garbage collection by a few MiB, so per-key memory below ~1 KiB is within noise at 10 000 keys (~100 B at 100 000).',
    '',
    '| keys stored | ' +
      (r.levels[0]?.processes.map((p) => `${p.name} LevelDB MiB / RssAnon MiB`).join(' | ') ?? '') +
      ' |',
    `|---|${(r.levels[0]?.processes ?? []).map(() => '---').join('|')}|`,
  );
  for (const l of r.levels) {
    out.push(
      `| ${l.keysStored} | ${l.processes.map((p) => `${mib(p.dbBytes)} / ${mib(p.rssBytes)}`).join(' | ')} |`,
    );
  }
  if (r.activeKey) {
    const a = r.activeKey;
    out.push(
      '',
      `**Active keys** (a node signing with a key keeps its epoch record, decoded package and unsealed share in memory, node/active-keys.ts): ${a.bytesPerKey.toFixed(0)} B per FROST_ED25519 3-of-5 key (its stored record is ${a.recordJsonBytes} B of JSON), at most ${a.maxEntries} keys per node (least recently used dropped): ${((a.bytesPerKey * a.maxEntries) / 2 ** 20).toFixed(1)} MiB at most. Measured in the benchmark process on entries of exactly that shape from a real DKG, heap and array buffers after a full GC (scripts/bench/active-key-memory.ts).`,
    );
  }
  if (r.notes.length > 0) out.push('', ...r.notes.map((n) => `- ${n}`));
  return `${out.join('\n')}\n`;
}

/** Runs the scale benchmark and writes scale.json, scale.md and SUMMARY.md. */
export async function benchScale(
  opts: { quick: boolean; out: string; maxKeys: number },
  log: (line: string) => void = console.log,
): Promise<ScaleResults> {
  const machine = machineInfo();
  const t0 = performance.now();
  const c0 = process.cpuUsage();
  log(`scale benchmark${opts.quick ? ' (--quick)' : ''}, up to ${opts.quick ? 200 : opts.maxKeys} keys...`);
  const results = await runScaleBench(scalePlan(opts), (l) => log(`  ${l}`));
  const c1 = process.cpuUsage(c0);
  const durationS = (performance.now() - t0) / 1000;
  const file: BenchFile<ScaleResults> = {
    name: 'scale',
    machine,
    loadAverageAtEnd: os.loadavg()[0] ?? 0,
    durationS,
    cpuShare: (c1.user + c1.system) / 1e6 / durationS,
    data: results,
  };
  for (const w of writeResults(file, scaleMarkdown(results, durationS), {}, opts.out)) log(`wrote ${w}`);
  return results;
}

/** Rewrites scale.md and SUMMARY.md from a saved scale.json (no measuring). */
export function renderScale(opts: { out: string }, log: (line: string) => void = console.log): void {
  const file = JSON.parse(readFileSync(join(opts.out, 'scale.json'), 'utf8')) as BenchFile<ScaleResults>;
  for (const w of writeResults(file, scaleMarkdown(file.data, file.durationS), {}, opts.out))
    log(`wrote ${w}`);
}
