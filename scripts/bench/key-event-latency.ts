/**
 * Key-event latency (issue 17's DKG and reshare targets), focused: a 7-node devnet started as the
 * targets benchmark starts it (scripts/bench/devnet-run.ts), then N x (DKG 3-of-5 through the API,
 * reshare of that key 3-of-5 -> 4-of-7), each request measured like `benchTargets` measures it (a
 * fresh client per request: connect + TLS + signing the request are inside). Prints p50/min/max
 * with the 1-min load average, the processes' idle CPU, and the CPU each process spent per
 * (DKG + reshare) (from /proc/<pid>/stat, 10 ms ticks). Only modules an older checkout has are
 * imported, so the same script measures before and after (copy it into a worktree).
 *
 *   node scripts/bench/key-event-latency.ts [--reps N] [--warmup N] [--timeline] [--profile DIR]
 *
 * --timeline restarts the devnet with KMS_KEY_EVENT_TIMELINE=1 (common/timeline.ts): the coordinator
 * and the nodes write one line per key-event phase to their logs (`<dir>/logs/<name>.log`); the
 * script prints them merged by time from the last DKG on (its reshare follows).
 * --profile DIR restarts the coordinator and node-1 with `--cpu-prof --cpu-prof-dir=DIR`.
 * --keep-logs keeps the devnet's directory.
 */
import { readFileSync } from 'node:fs';
import os from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { readPid } from '../devnet-lib.ts';
import { createBenchDevnet } from './devnet-run.ts';
import { type HttpTarget, LoadClient } from './load.ts';
import { fmtMs, summarize } from './stats.ts';

const { values } = parseArgs({
  options: {
    reps: { type: 'string', default: '10' },
    warmup: { type: 'string', default: '2' },
    timeline: { type: 'boolean', default: false },
    profile: { type: 'string' },
    'keep-logs': { type: 'boolean', default: false },
  },
});
const reps = Number(values.reps);
const warmup = Number(values.warmup);
const nodesOf = (n: number) => Array.from({ length: n }, (_, i) => `node-${i + 1}`);
const names = ['coordinator', ...nodesOf(7)];

async function mustOk(t: HttpTarget, method: string, path: string, body: unknown): Promise<any> {
  const c = new LoadClient(t);
  try {
    const a = await c.call(method, path, body);
    if (a.status < 200 || a.status >= 300) {
      throw new Error(`${method} ${path}: ${a.status} ${JSON.stringify(a.body).slice(0, 300)}`);
    }
    return a.body;
  } finally {
    c.close();
  }
}

const USER_HZ = 100; // clock ticks per second of /proc/<pid>/stat on Linux
function cpuMs(pid: number): number {
  try {
    const f = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const rest = f.slice(f.lastIndexOf(')') + 2).split(' ');
    return ((Number(rest[11]) + Number(rest[12])) * 1000) / USER_HZ;
  } catch {
    return 0;
  }
}

const d = await createBenchDevnet(7);
try {
  console.log(`starting the 7-node devnet in ${d.dir} ...`);
  await d.start();
  // processes.json exists after the first start: restart with the extra env.
  const env: Record<string, string> = {};
  if (values.timeline) env.KMS_KEY_EVENT_TIMELINE = '1';
  if (values.timeline || values.profile !== undefined) {
    await d.stop();
    d.setEnv(names, env);
    if (values.profile !== undefined) {
      d.setEnv(['coordinator', 'node-1'], { NODE_OPTIONS: `--cpu-prof --cpu-prof-dir=${values.profile}` });
    }
    await d.start();
  }
  const t: HttpTarget = { url: d.url, token: d.token, signer: d.signer };
  const pids = names.flatMap((name) => {
    const pid = readPid(d.dir, name);
    return pid === undefined ? [] : [{ name, pid }];
  });
  {
    // Background CPU with no event (heartbeats, timers): what the per-event numbers include.
    const c0 = new Map(pids.map((p) => [p.name, cpuMs(p.pid)]));
    await new Promise((r) => setTimeout(r, 5_000));
    console.log(
      `idle CPU ms per second: ${pids.map((p) => `${p.name} ${((cpuMs(p.pid) - (c0.get(p.name) ?? 0)) / 5).toFixed(1)}`).join(', ')}`,
    );
  }
  const dkg: number[] = [];
  const rs: number[] = [];
  const cpu0 = new Map(pids.map((p) => [p.name, cpuMs(p.pid)]));
  const load0 = os.loadavg()[0] ?? 0;
  for (let i = 0; i < warmup + reps; i++) {
    if (i === warmup) for (const p of pids) cpu0.set(p.name, cpuMs(p.pid));
    const t0 = performance.now();
    const body = await mustOk(t, 'POST', '/v1/keys', {
      keySpec: 'FROST_ED25519',
      threshold: 3,
      participants: nodesOf(5),
    });
    const t1 = performance.now();
    await mustOk(t, 'POST', `/v1/keys/${body.keyId}/reshare`, { threshold: 4, participants: nodesOf(7) });
    const t2 = performance.now();
    if (i >= warmup) {
      dkg.push(t1 - t0);
      rs.push(t2 - t1);
    }
    console.log(
      `${i < warmup ? 'warmup ' : ''}#${i}: dkg ${fmtMs(t1 - t0)} ms, reshare ${fmtMs(t2 - t1)} ms`,
    );
  }
  const load1 = os.loadavg()[0] ?? 0;
  const cpu = pids.map((p) => `${p.name} ${((cpuMs(p.pid) - (cpu0.get(p.name) ?? 0)) / reps).toFixed(1)}`);
  const a = summarize(dkg);
  const b = summarize(rs);
  console.log(
    `DKG 3-of-5:            p50 ${fmtMs(a.p50)} ms  min ${fmtMs(a.min)}  max ${fmtMs(a.max)}  (${reps} reps)`,
  );
  console.log(`reshare 3-of-5 -> 4-of-7: p50 ${fmtMs(b.p50)} ms  min ${fmtMs(b.min)}  max ${fmtMs(b.max)}`);
  console.log(`load average (1 min) ${load0.toFixed(2)} -> ${load1.toFixed(2)}`);
  console.log(`CPU ms per (DKG + reshare), by process (10 ms ticks): ${cpu.join(', ')}`);
  if (values.timeline) {
    const lines: { at: number; line: string }[] = [];
    for (const name of names) {
      let text = '';
      try {
        text = readFileSync(join(d.dir, 'logs', `${name}.log`), 'utf8');
      } catch {
        continue;
      }
      for (const l of text.split('\n')) {
        const m = /^TL (\d+\.\d+) (.*)$/.exec(l);
        if (m) lines.push({ at: Number(m[1]), line: `${name.padEnd(11)} ${m[2]}` });
      }
    }
    lines.sort((x, y) => x.at - y.at);
    // The last DKG and reshare: from the last 'dkg start' on the coordinator.
    const lastStart = lines.findLastIndex((l) => l.line.includes('coord dkg start'));
    const shown = lastStart >= 0 ? lines.slice(lastStart) : lines;
    const base = shown[0]?.at ?? 0;
    for (const l of shown) console.log(`${(l.at - base).toFixed(1).padStart(7)} ${l.line}`);
  }
} finally {
  await d.stop();
  if (values['keep-logs']) console.log(`kept ${d.dir}`);
  else await d.dispose();
}
