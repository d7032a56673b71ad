/**
 * Scale and issue 17 reporting (scripts/bench/scale.ts, scripts/bench/report.ts): the scale table
 * calls a run flat only when latency, throughput and CPU per signature stay within bounds, and the
 * targets table reads each benchmark's saved results and says met or not from the numbers.
 */
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { issue17TargetsMarkdown } from '../scripts/bench/report.ts';
import {
  flatness,
  perStoredKey,
  type ScaleLevel,
  type ScaleResults,
  scaleMarkdown,
  scalePlan,
} from '../scripts/bench/scale.ts';
import { summarize } from '../scripts/bench/stats.ts';

const dirs: string[] = [];
afterEach(async () => {
  for (const d of dirs.splice(0)) await rm(d, { recursive: true, force: true });
});

const load = (perSecond: number, p50: number) => ({
  concurrency: 16,
  ok: perSecond * 5,
  errors: 0,
  errorSamples: [],
  windowS: 5,
  perSecond,
  latencyMs: summarize([p50, p50, p50]),
});

function level(keysStored: number, p50: number, perSecond: number, cpu: number, dbBytes: number): ScaleLevel {
  return {
    keysStored,
    restartS: 5,
    signSequential: load(10, p50),
    cpuMsPerSign: cpu,
    cpuMsPerSignByProcess: { coordinator: cpu / 2, 'node-1': cpu / 2 },
    signLoad: load(perSecond, p50 * 4),
    getKey: load(100, 1),
    listKeys: load(100, 2),
    idleCpuMsPerS: { coordinator: 8, 'node-1': 6 },
    processes: [
      { name: 'coordinator', dbBytes, tokenBytes: 0, rssBytes: 200 * 2 ** 20 },
      { name: 'node-1', dbBytes: dbBytes * 5, tokenBytes: 4096, rssBytes: 160 * 2 ** 20 },
    ],
  };
}

const results = (levels: ScaleLevel[]): ScaleResults => ({
  plan: scalePlan({ quick: false, maxKeys: 100_000 }),
  levels,
  perRealKey: [
    { name: 'coordinator', dbBytes: 4000, tokenBytes: 0, rssBytes: 0 },
    { name: 'node-1', dbBytes: 7700, tokenBytes: 800, rssBytes: 0 },
  ],
  notes: [],
});

describe('scale report', () => {
  it('is flat only when p50, throughput and CPU per signature all stay within bounds', () => {
    const flat = results([level(21, 10, 100, 20, 1e6), level(100_000, 11, 95, 21, 20e6)]);
    expect(flatness(flat)).toMatchObject({ flat: true });
    expect(perStoredKey(flat)[0]).toMatchObject({ name: 'coordinator', dbBytes: 19e6 / (100_000 - 21) });
    expect(scaleMarkdown(flat, 100)).toContain('**flat**');
    // CPU per signature growing 30% is not flat, whatever the wall clock says.
    const cpuGrows = results([level(21, 10, 100, 20, 1e6), level(100_000, 10, 100, 26, 20e6)]);
    expect(flatness(cpuGrows).flat).toBe(false);
    expect(scaleMarkdown(cpuGrows, 100)).toContain('**not flat**');
    expect(flatness(results([level(21, 10, 100, 20, 1e6), level(10_000, 10, 70, 20, 5e6)])).flat).toBe(false);
  });

  it('the targets table reads the saved results and marks each target met or not', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'targets-'));
    dirs.push(dir);
    expect(issue17TargetsMarkdown(dir)).toBeUndefined();
    const scale = results([level(21, 10, 100, 20, 1e6), level(100_000, 11, 95, 26, 20e6)]);
    await writeFile(
      join(dir, 'scale.json'),
      JSON.stringify({
        machine: { gitCommit: 'abc1234', date: '2026-12-07T20:00:00Z', loadAverageAtStart: 1 },
        data: scale,
      }),
    );
    const suite = (keySpec: string, ours: number, noble: number) => ({
      keySpec,
      ourBackend: 'test',
      ratio: ours / noble,
      noble: { summedCpuMs: { p50: noble } },
      ours: {
        summedCpuMs: { p50: ours },
        rounds: [{ round: 'sign.share', meanCpuMs: ours / 4, parties: 3 }],
      },
    });
    await writeFile(
      join(dir, 'protocol-suites.json'),
      JSON.stringify({
        data: {
          size: { t: 3, n: 5 },
          measured: { date: '2026-12-07T20:00:00Z', commit: 'def5678', loadAverage: 1 },
          rows: [suite('FROST_ED25519', 3, 50), suite('FROST_ED448', 120, 100)],
        },
      }),
    );
    await writeFile(
      join(dir, 'service-targets-x.json'),
      JSON.stringify({
        label: 'x',
        commit: '',
        startedAt: '2026-12-07T20:00:00Z',
        loadAverage: { start: 1, end: 1 },
        targets: [
          {
            what: 'DKG 3-of-5 (FROST_ED25519) through the API, p50',
            target: '<= 60 ms',
            measured: '55 ms',
            met: true,
          },
        ],
        profiles: [],
      }),
    );
    await writeFile(
      join(dir, 'targets-notes.json'),
      JSON.stringify({ dkg: 'four rounds between five processes' }),
    );
    const md = issue17TargetsMarkdown(dir)!;
    const row = (start: string) => md.split('\n').find((l) => l.startsWith(`| ${start}`)) ?? '';
    expect(row('FROST_ED25519 3-of-5 threshold')).toContain('| yes |');
    expect(row('FROST_ED448 3-of-5 threshold')).toContain('| **no** |');
    expect(row('DKG 3-of-5')).toContain('| yes | four rounds between five processes |');
    // CPU per signature grew 1.3x: the scale target is not met.
    expect(row('scale: 100000 keys')).toContain('CPU per signature 1.30x | **no** |');
    expect(md).toContain('2 of 4 met');
  });
});
