/**
 * Reads a V8 `.cpuprofile` (what `node --cpu-prof` writes: a call tree of nodes with call frames,
 * and a sample list with time deltas) and sums SELF time by function and by package, so the
 * summary can say what dominates. `(idle)` is the process waiting for I/O; it is reported apart.
 */
import { readFileSync } from 'node:fs';

type CallFrame = { functionName: string; url: string; lineNumber: number; columnNumber: number };
type ProfileNode = { id: number; callFrame: CallFrame; children?: number[] };
export type CpuProfile = {
  nodes: ProfileNode[];
  startTime: number;
  endTime: number;
  samples: number[];
  timeDeltas: number[];
};

export type SelfTime = {
  readonly name: string;
  readonly where: string;
  readonly ms: number;
  readonly share: number;
};

export type ProfileSummary = {
  readonly file: string;
  readonly wallMs: number;
  readonly idleMs: number;
  /** Sampled time that was not idle (ms). */
  readonly busyMs: number;
  /** Top functions by self time (shares of busyMs). */
  readonly functions: readonly SelfTime[];
  /** Self time by package / area (shares of busyMs). */
  readonly packages: readonly SelfTime[];
};

/** Where a script URL belongs: an npm package, our own top-level folder, or node internals. */
export function areaOf(url: string): string {
  if (url === '') return '(native / V8)';
  const nm = url.lastIndexOf('node_modules/');
  if (nm >= 0) {
    const rest = url.slice(nm + 'node_modules/'.length).split('/');
    return rest[0]?.startsWith('@') ? `${rest[0]}/${rest[1]}` : (rest[0] ?? url);
  }
  if (url.startsWith('node:')) return 'node internals';
  const m = /\/(protocol|node|coordinator|scripts|transport)\/[^/]+$/.exec(url);
  if (m) return `ours: ${m[1]}/`;
  return url.replace(/^file:\/\//, '');
}

/**
 * `lastMs`: count only the samples of the profile's last `lastMs` milliseconds (to leave out the
 * process start-up when the load phase ends the profile).
 */
export function summarizeProfile(
  profile: CpuProfile,
  file: string,
  top = 25,
  lastMs?: number,
): ProfileSummary {
  const byId = new Map(profile.nodes.map((n) => [n.id, n]));
  const self = new Map<number, number>();
  const from = lastMs === undefined ? Number.NEGATIVE_INFINITY : profile.endTime - lastMs * 1000;
  let ts = profile.startTime;
  let first = Number.POSITIVE_INFINITY;
  // timeDeltas[i] is the time since the previous sample; it belongs to the sample before it.
  for (let i = 0; i < profile.samples.length; i++) {
    ts += profile.timeDeltas[i] ?? 0;
    if (ts < from) continue;
    first = Math.min(first, ts);
    const dt = profile.timeDeltas[i + 1] ?? 0;
    const id = profile.samples[i] as number;
    self.set(id, (self.get(id) ?? 0) + dt);
  }
  const fn = new Map<string, { name: string; where: string; us: number }>();
  const area = new Map<string, number>();
  let idle = 0;
  let total = 0;
  for (const [id, us] of self) {
    const n = byId.get(id);
    if (!n) continue;
    total += us;
    const name = n.callFrame.functionName || '(anonymous)';
    if (name === '(idle)') {
      idle += us;
      continue;
    }
    const file = n.callFrame.url.replace(/^file:\/\//, '');
    const short = file.includes('node_modules/')
      ? file.slice(file.lastIndexOf('node_modules/') + 13)
      : file.replace(/^.*\/main\//, '');
    const where = file ? `${short}:${n.callFrame.lineNumber + 1}` : '';
    const key = `${name}@${where}`;
    const e = fn.get(key) ?? { name, where, us: 0 };
    e.us += us;
    fn.set(key, e);
    const a = name.startsWith('(') ? name : areaOf(n.callFrame.url);
    area.set(a, (area.get(a) ?? 0) + us);
  }
  const busy = total - idle;
  const share = (us: number) => (busy > 0 ? us / busy : 0);
  return {
    file,
    wallMs:
      (profile.endTime - Math.max(profile.startTime, Number.isFinite(first) ? first : profile.startTime)) /
      1000,
    idleMs: idle / 1000,
    busyMs: busy / 1000,
    functions: [...fn.values()]
      .sort((a, b) => b.us - a.us)
      .slice(0, top)
      .map((e) => ({ name: e.name, where: e.where, ms: e.us / 1000, share: share(e.us) })),
    packages: [...area.entries()]
      .sort((a, b) => b[1] - a[1])
      .slice(0, top)
      .map(([name, us]) => ({ name, where: '', ms: us / 1000, share: share(us) })),
  };
}

export function summarizeProfileFile(path: string, top = 25, lastMs?: number): ProfileSummary {
  return summarizeProfile(JSON.parse(readFileSync(path, 'utf8')) as CpuProfile, path, top, lastMs);
}
