/**
 * `npm run bench -- keyevents`: issue 17's key-event targets alone, measured as the targets run
 * measures them (targets.ts: the same 7-node devnet, the same dkgThenReshare phase): DKG 3-of-5
 * and reshare 3-of-5 -> 4-of-7 through the API, p50/min/max over the repetitions after untimed
 * ones, and the CPU each process spends per operation. Writes `<out>/keyevents-<label>.json`
 * and `.md` (not read by SUMMARY.md: the targets run is the record).
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import { join } from 'node:path';
import { createBenchDevnet } from './devnet-run.ts';
import { dkgThenReshare } from './keyevent-phases.ts';
import type { KeyEventRow } from './service-plan.ts';
import { fmtMs } from './stats.ts';
import { gitHead } from './targets.ts';
import { keyEventsTable } from './targets-report.ts';

export type KeyEventsResults = {
  readonly label: string;
  readonly commit: string;
  readonly startedAt: string;
  readonly loadAverage: { readonly start: number; readonly end: number };
  readonly reps: number;
  readonly warmup: number;
  readonly keyEvents: KeyEventRow[];
};

const TARGET_MS = { dkg: 60, reshare: 100 } as const;

export function keyEventsMarkdown(r: KeyEventsResults): string {
  return [
    `## Issue 17 key events (${r.label})`,
    '',
    `Run ${r.startedAt}, commit ${r.commit || '?'}, load average (1 min) ${r.loadAverage.start.toFixed(2)} at start / ${r.loadAverage.end.toFixed(2)} at end (a shared 2-core machine). A 7-node devnet (\`scripts/devnet.ts\`, SoftHSM2 tokens) as in \`npm run bench -- targets\`; ${r.reps} x (DKG of a new FROST_ED25519 3-of-5 key on node-1..5, then reshare of that key to 4-of-7 on node-1..7) after ${r.warmup} untimed, each request through the API with a fresh client (connect, TLS and signing the request inside the latency). CPU per operation: /proc accounting of each process over each call (whatever it did meanwhile counts), and the client's own.`,
    '',
    ...keyEventsTable(r.keyEvents),
    '',
    ...r.keyEvents.map(
      (e) =>
        `- ${e.operation} p50 ${fmtMs(e.latencyMs.p50)} ms: target <= ${TARGET_MS[e.operation]} ms, ${e.latencyMs.p50 <= TARGET_MS[e.operation] ? 'met' : '**not met**'}`,
    ),
    '',
  ].join('\n');
}

export async function benchKeyEvents(
  opts: { out: string; label?: string; quick?: boolean; reps?: number; warmup?: number },
  log: (l: string) => void = console.log,
): Promise<KeyEventsResults> {
  const label = opts.label ?? 'latest';
  const reps = opts.reps ?? (opts.quick ? 2 : 10);
  const warmup = opts.warmup ?? 1;
  const startedAt = new Date().toISOString();
  const load0 = os.loadavg()[0] ?? 0;
  const d = await createBenchDevnet(7);
  let keyEvents: KeyEventRow[];
  try {
    log('starting the 7-node devnet (SoftHSM2 tokens)...');
    await d.start();
    keyEvents = await dkgThenReshare(d, { reps, warmup }, log);
  } finally {
    await d.dispose();
  }
  const results: KeyEventsResults = {
    label,
    commit: gitHead(),
    startedAt,
    loadAverage: { start: load0, end: os.loadavg()[0] ?? 0 },
    reps,
    warmup,
    keyEvents,
  };
  mkdirSync(opts.out, { recursive: true });
  const json = join(opts.out, `keyevents-${label}.json`);
  const md = join(opts.out, `keyevents-${label}.md`);
  writeFileSync(json, `${JSON.stringify(results, null, 2)}\n`);
  const text = keyEventsMarkdown(results);
  writeFileSync(md, text);
  log(text);
  log(`wrote ${json}`);
  log(`wrote ${md}`);
  return results;
}
