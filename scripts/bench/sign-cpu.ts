/**
 * A focused measurement of the signing path's CPU (issue 17, the wire and node share): a 3-of-5
 * devnet (5 nodes), one FROST_ED25519 and one FROST_SECP256K1_TR key, an untimed warm-up, then per
 * key a sequential phase (p50) and closed-loop phases at the given concurrencies, each with the CPU
 * per signature of every process (/proc accounting) and the 1-min load average beside it. With
 * `--profile DIR`, a last Ed25519 phase at the highest concurrency runs with the coordinator and
 * node-1 under --cpu-prof, and their profiles are summarized (cpuprofile.ts).
 *
 * Depends only on load.ts, devnet-run.ts, cpuprofile.ts and scripts/devnet-lib.ts, so the same
 * file runs on an older checkout to measure "before".
 *
 *   node scripts/bench/sign-cpu.ts [--seconds 4] [--concurrency 1,32] [--profile DIR] [--json FILE]
 */
import { mkdirSync, readdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { readPid } from '../devnet-lib.ts';
import { summarizeProfileFile } from './cpuprofile.ts';
import { createBenchDevnet } from './devnet-run.ts';
import { closedLoop, type HttpTarget, LoadClient, type LoadResult, sequential, signRequest } from './load.ts';

const { values } = parseArgs({
  options: {
    seconds: { type: 'string', default: '4' },
    concurrency: { type: 'string', default: '1,32' },
    sequential: { type: 'string', default: '100' },
    profile: { type: 'string' },
    json: { type: 'string' },
  },
});
const seconds = Number(values.seconds);
const levels = values.concurrency!.split(',').map(Number);
const seqCount = Number(values.sequential);

function cpuMs(pid: number): number {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return (Number(f[11]) + Number(f[12])) * 10;
  } catch {
    return 0;
  }
}

type Row = {
  keySpec: string;
  phase: string;
  perSecond: number;
  p50: number;
  signatures: number;
  errors: number;
  cpuMsPerSig: Record<string, number>;
  serverMsPerSig: number;
  clientMsPerSig: number;
  load1: number;
};

async function measured(
  pids: { name: string; pid: number }[],
  fn: () => Promise<LoadResult>,
): Promise<[LoadResult, Record<string, number>, number]> {
  const s0 = pids.map((p) => cpuMs(p.pid));
  const c0 = process.cpuUsage();
  const r = await fn();
  const c = process.cpuUsage(c0);
  const n = Math.max(1, r.completed ?? r.ok + r.errors);
  const by = Object.fromEntries(pids.map((p, i) => [p.name, (cpuMs(p.pid) - s0[i]!) / n]));
  return [r, by, (c.user + c.system) / 1000 / n];
}

async function createKey(t: HttpTarget, keySpec: string): Promise<string> {
  const c = new LoadClient(t);
  try {
    const a = await c.call('POST', '/v1/keys', {
      keySpec,
      threshold: 3,
      participants: ['node-1', 'node-2', 'node-3', 'node-4', 'node-5'],
    });
    if (a.status !== 200 && a.status !== 201)
      throw new Error(`create key: ${a.status} ${JSON.stringify(a.body)}`);
    return (a.body as { keyId: string }).keyId;
  } finally {
    c.close();
  }
}

const d = await createBenchDevnet(5);
const rows: Row[] = [];
try {
  await d.start();
  const t: HttpTarget = { url: d.url, token: d.token, signer: d.signer };
  const keys = [
    { keySpec: 'FROST_ED25519', keyId: await createKey(t, 'FROST_ED25519') },
    { keySpec: 'FROST_SECP256K1_TR', keyId: await createKey(t, 'FROST_SECP256K1_TR') },
  ];
  const pidsNow = () =>
    ['coordinator', 'node-1', 'node-2', 'node-3', 'node-4', 'node-5'].flatMap((name) => {
      const pid = readPid(d.dir, name);
      return pid === undefined ? [] : [{ name, pid }];
    });
  // Untimed warm-up (JIT, caches, commitment caches) of both keys.
  for (const k of keys)
    for (const c of [1, 8, 32])
      await closedLoop(t, signRequest(k.keyId), { concurrency: c, durationMs: 700 });
  const row = (keySpec: string, phase: string, r: LoadResult, by: Record<string, number>, client: number) => {
    const server = Object.values(by).reduce((a, x) => a + x, 0);
    const out: Row = {
      keySpec,
      phase,
      perSecond: r.perSecond,
      p50: r.latencyMs.p50,
      signatures: r.ok,
      errors: r.errors,
      cpuMsPerSig: by,
      serverMsPerSig: server,
      clientMsPerSig: client,
      load1: os.loadavg()[0] ?? 0,
    };
    rows.push(out);
    const procs = Object.entries(by)
      .map(([n, ms]) => `${n.replace('coordinator', 'coord')} ${ms.toFixed(2)}`)
      .join(', ');
    console.log(
      `${keySpec.padEnd(18)} ${phase.padEnd(5)} ${r.perSecond.toFixed(0).padStart(5)} sig/s p50 ${r.latencyMs.p50.toFixed(2)} ms | CPU ms/sig server ${server.toFixed(2)} + client ${client.toFixed(2)} (${procs}) | load ${out.load1.toFixed(2)}${r.errors ? ` | ${r.errors} errors ${r.errorSamples[0]}` : ''}`,
    );
  };
  {
    // Background CPU with no requests (timers, probes): what a phase's CPU per signature includes.
    const pids = pidsNow();
    const s0 = pids.map((p) => cpuMs(p.pid));
    await new Promise((r) => setTimeout(r, 3000));
    const idle = pids.map((p, i) => `${p.name} ${((cpuMs(p.pid) - s0[i]!) / 3).toFixed(1)}`).join(', ');
    console.log(`idle CPU ms per second: ${idle}`);
  }
  for (const k of keys) {
    const pids = pidsNow();
    const [s, sBy, sC] = await measured(pids, () =>
      sequential(t, signRequest(k.keyId), { count: seqCount, warmup: 10 }),
    );
    row(k.keySpec, 'seq', s, sBy, sC);
    for (const c of levels) {
      const [r, by, cl] = await measured(pids, () =>
        closedLoop(t, signRequest(k.keyId), { concurrency: c, durationMs: seconds * 1000, warmupMs: 300 }),
      );
      row(k.keySpec, `@${c}`, r, by, cl);
    }
  }
  if (values.profile) {
    const dir = values.profile;
    const prof = join(d.dir, 'cpu-prof');
    mkdirSync(dir, { recursive: true });
    await d.stop();
    d.setEnv(['coordinator', 'node-1'], { NODE_OPTIONS: `--cpu-prof --cpu-prof-dir=${prof}` });
    await d.start();
    const k = keys[0]!;
    const top = Math.max(...levels);
    for (const c of [1, 8, top])
      await closedLoop(t, signRequest(k.keyId), { concurrency: c, durationMs: 700 });
    const r = await closedLoop(t, signRequest(k.keyId), { concurrency: top, durationMs: seconds * 1000 });
    console.log(`profile phase: ${r.perSecond.toFixed(0)} sig/s (under the profiler)`);
    const node1 = readPid(d.dir, 'node-1');
    await d.stop();
    for (const f of readdirSync(prof).filter((x) => x.endsWith('.cpuprofile'))) {
      const pid = Number(f.split('.')[3]);
      const name = pid === node1 ? 'node-1' : 'coordinator';
      const dest = join(dir, `${name}-${pid}.cpuprofile`);
      renameSync(join(prof, f), dest);
      const s = summarizeProfileFile(dest, 15, seconds * 1000);
      console.log(`\n${dest}: busy ${s.busyMs.toFixed(0)} ms, idle ${s.idleMs.toFixed(0)} ms`);
      for (const p of s.packages.slice(0, 8)) console.log(`  ${(100 * p.share).toFixed(1)}%  ${p.name}`);
      for (const fn of s.functions.slice(0, 15))
        console.log(`  ${(100 * fn.share).toFixed(1)}%  ${fn.name}  ${fn.where}`);
    }
  }
} finally {
  await d.stop();
  await d.dispose();
}
if (values.json) writeFileSync(values.json, `${JSON.stringify(rows, null, 2)}\n`);
