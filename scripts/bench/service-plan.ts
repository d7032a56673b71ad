/**
 * The service benchmark's plans (how much of each phase a run measures) and the shapes of its
 * results, shared by the phases (sign-phase.ts, keyevent-phases.ts, profile-phase.ts), the runs
 * (service.ts, targets.ts, keyevents.ts) and the reports (service-report.ts, targets-report.ts).
 */
import type { KeySpecName } from '../../protocol/suites.ts';
import type { ProfileSummary } from './cpuprofile.ts';
import type { LoadResult } from './load.ts';
import type { Summary } from './stats.ts';

export type Size = { readonly t: number; readonly n: number };

export type ServicePlan = {
  readonly quick: boolean;
  readonly keySpecs: readonly KeySpecName[];
  readonly sizes: readonly Size[];
  readonly sequentialCount: number;
  readonly warmup: number;
  readonly concurrency: readonly number[];
  readonly loadMs: number;
  readonly loadWarmupMs: number;
  /** Key-event sizes on the 5-node devnet, and on the big devnet (null: skipped). */
  readonly keyEventN: readonly number[];
  readonly bigDevnet: { readonly nodes: number; readonly keyEventN: readonly number[] } | null;
  readonly keyEventReps: (n: number) => number;
  readonly keyCounts: readonly number[];
  readonly keyCountSigns: number;
  readonly profileMs: number;
};

export function fullPlan(): ServicePlan {
  return {
    quick: false,
    keySpecs: ['FROST_ED25519', 'FROST_SECP256K1_TR'],
    sizes: [
      { t: 2, n: 3 },
      { t: 3, n: 5 },
    ],
    sequentialCount: 200,
    warmup: 30,
    concurrency: [1, 8, 32, 128],
    loadMs: 4_000,
    loadWarmupMs: 1_000,
    keyEventN: [3, 5],
    bigDevnet: { nodes: 15, keyEventN: [9, 15] },
    keyEventReps: (n) => (n <= 5 ? 10 : n <= 9 ? 5 : 3),
    keyCounts: [100, 1_000, 10_000],
    keyCountSigns: 200,
    profileMs: 10_000,
  };
}

/** Tiny counts: checks the harness end to end in well under 2 minutes; measures nothing. */
export function quickPlan(): ServicePlan {
  return {
    quick: true,
    keySpecs: ['FROST_ED25519'],
    sizes: [{ t: 3, n: 5 }],
    sequentialCount: 10,
    warmup: 3,
    concurrency: [1, 8],
    loadMs: 1_000,
    loadWarmupMs: 200,
    keyEventN: [3],
    bigDevnet: null,
    keyEventReps: () => 1,
    keyCounts: [50],
    keyCountSigns: 10,
    profileMs: 1_500,
  };
}

/** CPU per answered request (ms): the measured server processes', and the load generator's own. */
export type CpuPerRequest = {
  readonly serverMs: number;
  readonly clientMs: number;
  /** serverMs by process name (coordinator, node-1, ...; the reference: `reference`). */
  readonly byProcess?: Readonly<Record<string, number>>;
};

export type SignRow = {
  readonly system: 'devnet' | 'baseline';
  readonly keySpec: KeySpecName;
  readonly size: Size;
  readonly sequential: LoadResult;
  readonly load: readonly LoadResult[];
  /**
   * CPU time per request from /proc (Linux, 10 ms ticks) over each call, warm-up included: robust
   * to other load on the machine, unlike wall time. `load[i]` matches `load` above.
   */
  readonly cpu?: { readonly sequential: CpuPerRequest; readonly load: readonly CpuPerRequest[] };
};

export type KeyEventRow = {
  readonly operation: 'dkg' | 'reshare';
  readonly keySpec: KeySpecName;
  readonly from: Size;
  readonly to?: Size;
  readonly devnetNodes: number;
  readonly reps: number;
  readonly latencyMs: Summary;
  /** Untimed operations before the measured ones (absent: none). */
  readonly warmup?: number;
  /**
   * CPU ms per operation by process (the devnet's, from /proc; `client`: the benchmark's own, which
   * signs the request and opens the connection), over each measured call: whatever a process did
   * meanwhile (background work the event started) counts too.
   */
  readonly cpuMsByProcess?: Readonly<Record<string, number>>;
};

export type KeyCountRow = {
  readonly keysStored: number;
  readonly latencyMs: Summary;
  readonly errors: number;
};

export type ServiceResults = {
  readonly plan: Omit<ServicePlan, 'keyEventReps'> & { keyEventReps: Record<string, number> };
  readonly sign: SignRow[];
  readonly keyEvents: KeyEventRow[];
  readonly keyCount: KeyCountRow[];
  readonly profiles: ProfileSummary[];
  readonly notes: string[];
  /**
   * How clients authenticated: 'signed' (RFC 9421 principal signatures over HTTPS, since the issue
   * "Nodes decide"); absent in runs made before, with bearer tokens over plain HTTP.
   */
  readonly auth?: 'signed';
};

export type TargetCheck = {
  readonly what: string;
  readonly target: string;
  readonly measured: string;
  readonly met: boolean | null;
  /** A row that puts the targets in context (e.g. the crypto-bound limit): no target of its own. */
  readonly context?: boolean;
};
