/**
 * Protocol benchmark, in one process: the CPU cost of DKG and of one threshold signature for every
 * key spec, all parties summed and along the critical path, beside a plain single-key signature and
 * the primitive costs (point decoding, subgroup check, scalar multiplication) that dominate them.
 *
 * Cost model. Each party's work in each round is timed on its own (main-thread CPU time). "Summed"
 * adds every party's work: what the whole cluster spends. "Critical path" is what a run would take
 * if every party had its own core and messages were free: for noble's lock-step rounds the slowest
 * party of each round, summed over rounds; for our message-driven machines a virtual clock per
 * party (a party's clock = max(its clock, the sender's clock when the message was sent) + the cost of
 * handling it), whose maximum at the end is the critical path.
 *
 * Sampling. At large n the parties of a DKG round do the same work, so for the big sizes only
 * `sampleParties` parties run DKG rounds 2-3 and the sum is extrapolated as mean x parties; such
 * rows say so (`sampled`).
 */
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { loadavg } from 'node:os';
import { join } from 'node:path';
import { ed25519 } from '@noble/curves/ed25519.js';
import { ed448 } from '@noble/curves/ed448.js';
import { schnorr, secp256k1 } from '@noble/curves/secp256k1.js';
import type { Key, NonceCommitments } from '@noble/curves/abstract/frost.js';
import {
  KEY_SPEC_REGISTRY,
  publicKeyFromGroupElement,
  KEY_SPECS,
  type KeySpec,
  type KeySpecName,
  type SigningKeySpecName,
  verifySignature,
} from '../../protocol/suites.ts';
import type { Envelope, Machine, Step } from '../../protocol/machine.ts';
import { simulate } from '../../protocol/simulate.ts';
import type { DkgConfig } from '../../protocol/dkg.ts';
import type { RefreshConfig } from '../../protocol/refresh.ts';
import type { RepairConfig } from '../../protocol/repair.ts';
import type { ReshareConfig } from '../../protocol/reshare.ts';
import type * as SignNs from '../../protocol/sign.ts';
import { asEpoch, asKeyId, asParticipantId, asSessionId, type ParticipantId } from '../../protocol/ids.ts';
import { microbench, type Sample, type Summary, summarize, timed } from './stats.ts';
import { type BenchFile, machineInfo, RESULTS_DIR } from './report.ts';
import { measureRequestCheck, type RequestCheckResults, requestCheckRows } from './request-check.ts';

export type Size = { readonly t: number; readonly n: number };
export type Operation = 'dkg' | 'sign' | 'refresh' | 'reshare' | 'repair';
/** `noble-frost`: noble's own RFC 9591 FROST API driven directly; `ours`: protocol/ machines. */
export type Implementation = 'noble-frost' | 'ours';

/** One round of one run: how many parties do it, how many were timed, and their costs. */
export type RoundCost = {
  readonly round: string;
  readonly parties: number;
  readonly measured: number;
  readonly meanCpuMs: number;
  readonly maxCpuMs: number;
};

/** One run of one operation. */
export type OpRun = {
  readonly summedCpuMs: number;
  readonly criticalPathCpuMs: number;
  readonly summedWallMs: number;
  readonly rounds: readonly RoundCost[];
};

export type ProtocolRow = {
  readonly keySpec: KeySpecName;
  readonly operation: Operation;
  readonly implementation: Implementation;
  readonly size: Size;
  /** For reshare: the new committee. */
  readonly newSize?: Size;
  readonly iterations: number;
  /** Over iterations, ms. */
  readonly summedCpuMs: Summary;
  readonly criticalPathCpuMs: Summary;
  readonly summedWallMs: Summary;
  /** Rounds of the median run (by summed CPU). */
  readonly rounds: readonly RoundCost[];
  /** Summed CPU (p50) / the suite's single-key signature (p50). */
  readonly ratioToSingleKey: number;
  /** Set when only some parties of the expensive rounds were timed. */
  readonly sampled?: string;
};

export type SingleKeyRow = {
  readonly keySpec: KeySpecName;
  readonly how: string;
  readonly cpuMsPerOp: Summary;
  readonly ops: number;
};

export type PrimitiveRow = {
  readonly group: string;
  readonly operation: string;
  readonly library: string;
  readonly cpuMsPerOp: Summary;
  readonly ops: number;
};

export type ProtocolResults = {
  readonly plan: ProtocolPlan;
  readonly singleKey: readonly SingleKeyRow[];
  readonly rows: readonly ProtocolRow[];
  readonly primitives: readonly PrimitiveRow[];
  /** What was not measured, and why. */
  readonly skipped: readonly string[];
  /** A node's check of a signed request beside the 3-of-5 signature (scripts/bench/request-check.ts). */
  readonly requestCheck?: RequestCheckSection;
};

/** The request check and when it was measured (a `--only request-check` run adds it to a saved run). */
export type RequestCheckSection = RequestCheckResults & {
  readonly measured: {
    readonly date: string;
    readonly commit: string;
    readonly loadAverage: number;
    /** True when only this section (and the 3-of-5 signing rows it divides by) was measured. */
    readonly alone: boolean;
  };
};

export type SizePlan = {
  readonly size: Size;
  readonly keySpecs: readonly KeySpecName[];
  readonly operations: readonly ('dkg' | 'sign')[];
  readonly iterations: { readonly dkg: number; readonly sign: number };
  /** Time only this many parties in DKG rounds 2-3 (undefined: all). */
  readonly sampleParties?: number;
};

export type ProtocolPlan = {
  readonly quick: boolean;
  readonly keySpecs: readonly KeySpecName[];
  readonly sizes: readonly SizePlan[];
  /** Key events with our machines: reshare goes from `size` to `newSize`. */
  readonly keyEvents: { readonly size: Size; readonly newSize: Size; readonly iterations: number };
  readonly singleKeyIterations: number;
  readonly primitiveIterations: number;
  /** Sizes left out of the plan, with the reason (for the summary). */
  readonly skipped: readonly string[];
};

const ALL = KEY_SPECS;
/** Suites without Ed25519/Ed448's costly decoding + subgroup check (see the primitives table). */
const FAST: readonly KeySpecName[] = [
  'FROST_SECP256K1_TR',
  'FROST_SECP256K1',
  'FROST_P256',
  'FROST_RISTRETTO255',
];
const EDWARDS: readonly KeySpecName[] = ['FROST_ED25519', 'FROST_ED448'];

/**
 * The full plan, chosen to stay within about five minutes on a 2-core machine. Measured cost of
 * noble's DKG grows like n^2 * t (every party checks every other party's t commitments), which is
 * what bounds the big sizes.
 */
export function fullPlan(): ProtocolPlan {
  return {
    quick: false,
    keySpecs: ALL,
    sizes: [
      { size: { t: 2, n: 3 }, keySpecs: ALL, operations: ['dkg', 'sign'], iterations: { dkg: 5, sign: 20 } },
      { size: { t: 3, n: 5 }, keySpecs: ALL, operations: ['dkg', 'sign'], iterations: { dkg: 3, sign: 20 } },
      { size: { t: 7, n: 10 }, keySpecs: ALL, operations: ['dkg', 'sign'], iterations: { dkg: 1, sign: 5 } },
      {
        size: { t: 14, n: 20 },
        keySpecs: ALL,
        operations: ['dkg', 'sign'],
        iterations: { dkg: 1, sign: 1 },
        sampleParties: 2,
      },
      {
        size: { t: 34, n: 50 },
        keySpecs: FAST,
        operations: ['dkg', 'sign'],
        iterations: { dkg: 1, sign: 1 },
        sampleParties: 1,
      },
      {
        size: { t: 34, n: 50 },
        keySpecs: EDWARDS,
        operations: ['dkg', 'sign'],
        iterations: { dkg: 1, sign: 1 },
        sampleParties: 1,
      },
      {
        size: { t: 67, n: 100 },
        keySpecs: FAST,
        operations: ['dkg', 'sign'],
        iterations: { dkg: 1, sign: 1 },
        sampleParties: 1,
      },
    ],
    keyEvents: { size: { t: 3, n: 5 }, newSize: { t: 4, n: 7 }, iterations: 3 },
    singleKeyIterations: 300,
    primitiveIterations: 300,
    skipped: [
      '67-of-100 for FROST_ED25519 and FROST_ED448 (DKG and signing): noble decodes and subgroup-checks every received point (about 0.7 ms each for Ed25519, see the primitives table), so one 67-of-100 DKG party alone would take 20-40 s and one signature 15-30 s, past the 5-minute budget; the four other suites show the growth to n = 100, and Ed25519/Ed448 are measured up to 34-of-50.',
      'Our machines (DKG, sign) run at 2-of-3, 3-of-5 and 7-of-10 only, and key events at 3-of-5 (reshare to 4-of-7): same budget.',
      'DKG at 14-of-20 and up times only 1-2 parties of rounds 2-3 (all parties do the same work there) and extrapolates the sum; round 1 is timed for every party. Signing is always timed for every signer.',
    ],
  };
}

/** Tiny counts for the smoke test: checks that every code path runs and the output is well formed. */
export function quickPlan(keySpecs: readonly KeySpecName[] = ALL): ProtocolPlan {
  return {
    quick: true,
    keySpecs,
    sizes: [
      { size: { t: 2, n: 3 }, keySpecs, operations: ['dkg', 'sign'], iterations: { dkg: 1, sign: 1 } },
      {
        size: { t: 3, n: 5 },
        keySpecs,
        operations: ['sign'],
        iterations: { dkg: 0, sign: 1 },
        sampleParties: 2,
      },
    ],
    keyEvents: { size: { t: 2, n: 3 }, newSize: { t: 3, n: 4 }, iterations: 1 },
    singleKeyIterations: 3,
    primitiveIterations: 3,
    skipped: ['--quick: tiny sizes and iteration counts, for checking the harness only; not a measurement.'],
  };
}

// ---------------------------------------------------------------------------------------------
// Cost bookkeeping

type RoundLog = Map<string, { parties: number; samples: Sample[] }>;

function logRound(log: RoundLog, round: string, parties: number, sample: Sample): void {
  const r = log.get(round) ?? { parties, samples: [] };
  r.parties = Math.max(r.parties, parties);
  r.samples.push(sample);
  log.set(round, r);
}

/** Lock-step rounds: summed = mean x parties per round; critical path = slowest party per round. */
function lockStepRun(log: RoundLog): OpRun {
  const rounds: RoundCost[] = [];
  let summedCpuMs = 0;
  let summedWallMs = 0;
  let criticalPathCpuMs = 0;
  for (const [round, { parties, samples }] of log) {
    const cpu = samples.map((s) => s.cpuMs);
    const meanCpuMs = cpu.reduce((a, b) => a + b, 0) / cpu.length;
    const meanWall = samples.reduce((a, s) => a + s.wallMs, 0) / samples.length;
    const maxCpuMs = Math.max(...cpu);
    summedCpuMs += meanCpuMs * parties;
    summedWallMs += meanWall * parties;
    criticalPathCpuMs += maxCpuMs;
    rounds.push({ round, parties, measured: samples.length, meanCpuMs, maxCpuMs });
  }
  return { summedCpuMs, criticalPathCpuMs, summedWallMs, rounds };
}

// ---------------------------------------------------------------------------------------------
// noble's own FROST, driven directly

const MESSAGE = new TextEncoder().encode('threshold-kms benchmark message: 32 bytes+');

function ids(spec: KeySpec, n: number): string[] {
  return Array.from({ length: n }, (_, i) => spec.frost.Identifier.fromNumber(i + 1));
}

/** Which party indexes to time in the expensive rounds. */
function sampleOf(count: number, sample: number | undefined): number[] {
  const k = sample === undefined ? count : Math.min(count, sample);
  return Array.from({ length: k }, (_, i) => i);
}

/** One DKG with noble's DKG.round1/2/3 (RFC 9591 leaves DKG out; this is noble's PedPoP DKG). */
export function nobleDkg(spec: KeySpec, size: Size, sampleParties?: number): { run: OpRun; keys: Key[] } {
  const f = spec.frost;
  const signers = { min: size.t, max: size.n };
  const all = ids(spec, size.n);
  const log: RoundLog = new Map();
  const r1 = all.map((id) => {
    const { value, sample } = timed(() => f.DKG.round1(id, signers));
    logRound(log, 'dkg.round1', size.n, sample);
    return value;
  });
  const others = (i: number) => r1.filter((_, j) => j !== i).map((p) => p.public);
  const timedParties = sampleOf(size.n, sampleParties);
  const r2 = new Map<number, Record<string, { identifier: string; signingShare: Uint8Array }>>();
  for (const i of timedParties) {
    const p = r1[i];
    if (!p) continue;
    const { value, sample } = timed(() => f.DKG.round2(p.secret, others(i)));
    logRound(log, 'dkg.round2', size.n, sample);
    r2.set(i, value);
  }
  // Shares from parties whose round 2 was not timed: the same polynomial evaluation round2 does
  // (noble's polynomialEvaluate), without its n proof-of-knowledge checks, which are not needed
  // to produce a share and would dominate the harness's own time at n = 100.
  const Fn = f.utils.Fn;
  const shareFor = (from: number, to: number): { identifier: string; signingShare: Uint8Array } => {
    const done = r2.get(from);
    const toId = all[to] as string;
    if (done) return done[toId] as { identifier: string; signingShare: Uint8Array };
    const coeffs = r1[from]?.secret.coefficients ?? [];
    const x = r1[to]?.secret.identifier ?? 0n;
    let acc = Fn.ZERO;
    for (let k = coeffs.length - 1; k >= 0; k--) acc = Fn.add(Fn.mul(acc, x), coeffs[k] as bigint);
    return { identifier: all[from] as string, signingShare: Fn.toBytes(acc) };
  };
  const keys: Key[] = [];
  for (const i of timedParties) {
    const p = r1[i];
    if (!p) continue;
    const received = all
      .map((_, j) => j)
      .filter((j) => j !== i)
      .map((j) => shareFor(j, i));
    const { value, sample } = timed(() => f.DKG.round3(p.secret, others(i), received));
    logRound(log, 'dkg.round3', size.n, sample);
    keys.push(value);
  }
  const first = keys[0];
  if (!first || keys.some((k) => !equalBytes(k.public.commitments[0], first.public.commitments[0]))) {
    throw new Error(`${spec.name} ${size.t}-of-${size.n}: DKG parties disagree on the group key`);
  }
  return { run: lockStepRun(log), keys };
}

/**
 * One threshold signature with noble: every signer commits (RFC 9591 §5.1) and signs (§5.2), the
 * coordinator aggregates (§5.3; noble verifies the aggregate and checks shares only on failure).
 */
export function nobleSign(spec: KeySpec, size: Size): OpRun {
  const f = spec.frost;
  const dealt = f.trustedDealer({ min: size.t, max: size.n });
  const signerIds = ids(spec, size.n).slice(0, size.t);
  const log: RoundLog = new Map();
  const nonces = signerIds.map((id) => {
    const secret = dealt.secretShares[id];
    if (!secret) throw new Error(`no share for ${id}`);
    const { value, sample } = timed(() => f.commit(secret));
    logRound(log, 'sign.commit', size.t, sample);
    return { id, secret, gen: value };
  });
  const list: NonceCommitments[] = nonces.map((x) => x.gen.commitments);
  const shares: Record<string, Uint8Array> = {};
  // Every signer is timed: aggregation needs all shares anyway, so sampling would save nothing.
  for (const { id, secret, gen } of nonces) {
    const { value, sample } = timed(() => f.signShare(secret, dealt.public, gen.nonces, list, MESSAGE));
    logRound(log, 'sign.share', size.t, sample);
    shares[id] = value;
  }
  const { value: sig, sample } = timed(() => f.aggregate(dealt.public, list, MESSAGE, shares));
  logRound(log, 'sign.aggregate', 1, sample);
  if (!f.verify(sig, MESSAGE, dealt.public.commitments[0] as Uint8Array)) {
    throw new Error(`${spec.name} ${size.t}-of-${size.n}: aggregate signature does not verify`);
  }
  return lockStepRun(log);
}

function equalBytes(a: Uint8Array | undefined, b: Uint8Array | undefined): boolean {
  if (!a || !b || a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

// ---------------------------------------------------------------------------------------------
// Our machines (protocol/*.ts), run with protocol/simulate.ts under a virtual clock

/**
 * Wraps machines so that each start/receive is timed, and computes the critical path with a
 * virtual clock per party (see the header comment). Envelopes are tagged with their sender's
 * clock when sent; simulate() hands the same envelope objects to their recipients.
 */
export function runMachines<R>(builders: readonly (() => Machine<any, any, R>)[]): {
  run: OpRun;
  results: ReadonlyMap<string, R>;
} {
  const sentAt = new WeakMap<object, number>();
  const clock = new Map<string, number>();
  const log: RoundLog = new Map();
  let summedCpuMs = 0;
  let summedWallMs = 0;
  const n = builders.length;
  // Building a machine validates its inputs (packages, thresholds): party work, timed with start.
  const built = builders.map((b) => timed(b));
  const machines = built.map((b) => b.value);
  const account = (self: string, round: string, sample: Sample, readyAt: number, step: Step<any, any, R>) => {
    const at = Math.max(clock.get(self) ?? 0, readyAt) + sample.cpuMs;
    clock.set(self, at);
    for (const env of step.out) sentAt.set(env, at);
    summedCpuMs += sample.cpuMs;
    summedWallMs += sample.wallMs;
    logRound(log, round, n, sample);
  };
  const wrapped: Machine<any, any, R>[] = machines.map((m, i) => ({
    self: m.self,
    start() {
      const { value, sample } = timed(() => m.start());
      const setup = built[i]?.sample ?? { cpuMs: 0, wallMs: 0 };
      account(
        m.self,
        'start',
        { cpuMs: sample.cpuMs + setup.cpuMs, wallMs: sample.wallMs + setup.wallMs },
        0,
        value,
      );
      return value;
    },
    receive(state: unknown, env: Envelope<any>) {
      const { value, sample } = timed(() => m.receive(state, env));
      account(m.self, env.header.round, sample, sentAt.get(env) ?? 0, value);
      return value;
    },
  }));
  const sim = simulate(wrapped);
  if (sim.errors.size > 0) {
    const [who, e] = [...sim.errors][0] as [string, unknown];
    throw new Error(`machine ${who} failed: ${e instanceof Error ? `${e.name}: ${e.message}` : String(e)}`);
  }
  // Rounds as handled per party: a party handling k messages of a round counts k samples there.
  const rounds: RoundCost[] = [...log].map(([round, { samples }]) => {
    const cpu = samples.map((s) => s.cpuMs);
    return {
      round,
      parties: samples.length,
      measured: samples.length,
      meanCpuMs: cpu.reduce((a, b) => a + b, 0) / cpu.length,
      maxCpuMs: Math.max(...cpu),
    };
  });
  return {
    run: { summedCpuMs, criticalPathCpuMs: Math.max(0, ...clock.values()), summedWallMs, rounds },
    results: sim.results as ReadonlyMap<string, R>,
  };
}

/** Builds every party's machine for one session of an operation (fresh session id each call). */
export type SessionFactory = (
  spec: KeySpec,
  size: Size,
  newSize: Size,
) => (() => Machine<any, any, unknown>)[];

/** Runs one session of an operation and returns its costs. */
export type Runner = (spec: KeySpec, size: Size, newSize: Size) => OpRun;

/**
 * A row with our code. `load` imports the module and returns a runner, or null when the module (or
 * the export) is not in the tree yet; its rows are then listed under Skipped. To add a row for a
 * new protocol, add one entry to OUR_OPERATIONS (machines: wrap a SessionFactory with `machines`).
 */
export type OurOperation = {
  readonly operation: Operation;
  readonly module: string;
  readonly load: () => Promise<Runner | null>;
};

/** A Runner for message-driven machines: simulate() under the virtual clock. */
const machines =
  (factory: SessionFactory): Runner =>
  (spec, size, newSize) =>
    runMachines(factory(spec, size, newSize)).run;

/** Imports a protocol module if it exists; null (not an error) if it has not been written yet. */
async function optionalModule(path: string): Promise<Record<string, unknown> | null> {
  try {
    return (await import(new URL(path, import.meta.url).href)) as Record<string, unknown>;
  } catch (e) {
    if ((e as { code?: string }).code === 'ERR_MODULE_NOT_FOUND') return null;
    throw e;
  }
}

const KEY_ID = asKeyId('00000000-0000-4000-8000-00000000bench');
let sessions = 0;
const freshSession = () => asSessionId(`bench-${++sessions}`);
const pid = (spec: KeySpec, k: number): ParticipantId => asParticipantId(spec.frost.Identifier.fromNumber(k));
const range = (from: number, to: number) => Array.from({ length: to - from + 1 }, (_, i) => from + i);

/** Keys from noble's DKG (untimed fixture for the key events), cached per suite and size. */
const fixtures = new Map<string, Map<ParticipantId, Key>>();
function fixtureKeys(spec: KeySpec, size: Size): Map<ParticipantId, Key> {
  const tag = `${spec.name}/${size.t}/${size.n}`;
  let keys = fixtures.get(tag);
  if (!keys) {
    keys = new Map(nobleDkg(spec, size).keys.map((k) => [asParticipantId(k.secret.identifier), k]));
    fixtures.set(tag, keys);
  }
  // Machines own their inputs; hand each session its own copy.
  return new Map([...keys].map(([id, k]) => [id, structuredClone(k)]));
}

type Loaded = Record<string, unknown>;
type SignModule = typeof SignNs;
const fn = <F>(mod: Loaded | null, name: string): F | null =>
  mod && typeof mod[name] === 'function' ? (mod[name] as F) : null;

export const OUR_OPERATIONS: readonly OurOperation[] = [
  {
    operation: 'dkg',
    module: 'protocol/dkg.ts',
    load: async () => {
      const dkgMachine = fn<(cfg: DkgConfig) => Machine<any, any, unknown>>(
        await optionalModule('../../protocol/dkg.ts'),
        'dkgMachine',
      );
      if (!dkgMachine) return null;
      return machines((spec, size) => {
        const sessionId = freshSession();
        const participants = range(1, size.n).map((k) => pid(spec, k));
        return participants.map(
          (self) => () =>
            dkgMachine({ spec, keyId: KEY_ID, sessionId, self, participants, threshold: size.t }),
        );
      });
    },
  },
  {
    operation: 'refresh',
    module: 'protocol/refresh.ts',
    load: async () => {
      const refreshMachine = fn<(cfg: RefreshConfig) => Machine<any, any, unknown>>(
        await optionalModule('../../protocol/refresh.ts'),
        'refreshMachine',
      );
      if (!refreshMachine) return null;
      return machines((spec, size) => {
        const sessionId = freshSession();
        return [...fixtureKeys(spec, size)].map(
          ([self, key]) =>
            () =>
              refreshMachine({
                spec,
                keyId: KEY_ID,
                sessionId,
                self,
                oldEpoch: asEpoch(0),
                newEpoch: asEpoch(1),
                threshold: size.t,
                key,
              }),
        );
      });
    },
  },
  {
    operation: 'reshare',
    module: 'protocol/reshare.ts',
    load: async () => {
      const reshareMachine = fn<(cfg: ReshareConfig) => Machine<any, any, unknown>>(
        await optionalModule('../../protocol/reshare.ts'),
        'reshareMachine',
      );
      if (!reshareMachine) return null;
      // Committee 1..n (threshold t) to 1..n' (threshold t'): the first t old members deal.
      return machines((spec, size, newSize) => {
        const sessionId = freshSession();
        const old = fixtureKeys(spec, size);
        const oldPublic = (old.values().next().value as Key).public;
        const dealers = range(1, size.t).map((k) => pid(spec, k));
        const newParticipants = range(1, newSize.n).map((k) => pid(spec, k));
        const parties = [...new Set([...dealers, ...newParticipants])];
        return parties.map((self) => () => {
          const oldKey = old.get(self);
          return reshareMachine({
            spec,
            keyId: KEY_ID,
            sessionId,
            self,
            oldEpoch: asEpoch(0),
            newEpoch: asEpoch(1),
            oldThreshold: size.t,
            oldPublic,
            dealers,
            newParticipants,
            newThreshold: newSize.t,
            ...(oldKey ? { oldKey } : {}),
          });
        });
      });
    },
  },
  {
    operation: 'repair',
    module: 'protocol/repair.ts',
    load: async () => {
      const repairMachine = fn<(cfg: RepairConfig) => Machine<any, any, unknown>>(
        await optionalModule('../../protocol/repair.ts'),
        'repairMachine',
      );
      if (!repairMachine) return null;
      // Members 1..t rebuild member n's share.
      return machines((spec, size) => {
        const sessionId = freshSession();
        const keys = fixtureKeys(spec, size);
        const pub = (keys.values().next().value as Key).public;
        const helpers = range(1, size.t).map((k) => pid(spec, k));
        const target = pid(spec, size.n);
        return [...helpers, target].map((self) => () => {
          const key = keys.get(self);
          return repairMachine({
            spec,
            keyId: KEY_ID,
            sessionId,
            self,
            epoch: asEpoch(0),
            public: pub,
            helpers,
            target,
            ...(self !== target && key ? { key } : {}),
          });
        });
      });
    },
  },
  {
    operation: 'sign',
    module: 'protocol/sign.ts',
    load: async () => {
      const mod = await optionalModule('../../protocol/sign.ts');
      const signerCommit = fn<SignModule['signerCommit']>(mod, 'signerCommit');
      const signerSign = fn<SignModule['signerSign']>(mod, 'signerSign');
      const aggregate = fn<SignModule['aggregate']>(mod, 'aggregate');
      if (!signerCommit || !signerSign || !aggregate) return null;
      // Every party runs in its own process in production: forget the points another party
      // already checked, so each party is charged its own checks (protocol/fast-sign.ts cache).
      const fast = await optionalModule('../../protocol/fast-sign.ts');
      const forget = fn<() => void>(fast, 'forgetValidatedElements') ?? (() => {});
      // Not a message machine but lock-step functions: every signer commits (RFC 9591 §5.1), checks
      // the commitment list and signs (§5.2); the coordinator aggregates (§5.3/5.4). Keys come from
      // noble's trusted dealer, as in the noble rows.
      return (spec, size) => {
        const dealt = spec.frost.trustedDealer({ min: size.t, max: size.n });
        const epoch = asEpoch(0);
        const log: RoundLog = new Map();
        const signers = range(1, size.t).map((k) => pid(spec, k));
        const states = signers.map((id) => {
          const secret = dealt.secretShares[id];
          if (!secret) throw new Error(`no share for ${id}`);
          const key: Key = { public: dealt.public, secret };
          forget();
          const { value, sample } = timed(() => signerCommit({ spec, key, epoch }));
          logRound(log, 'sign.commit', size.t, sample);
          return value;
        });
        const commitments = states.map((s) => s.commitment);
        const shares = states.map((s) => {
          forget();
          const { value, sample } = timed(() => signerSign(s.state, { message: MESSAGE, commitments }));
          logRound(log, 'sign.share', size.t, sample);
          return value;
        });
        forget();
        const { value: sig, sample } = timed(() =>
          aggregate({ spec, public: dealt.public, epoch, commitments, shares, message: MESSAGE }),
        );
        logRound(log, 'sign.aggregate', 1, sample);
        const pk = publicKeyFromGroupElement(spec, dealt.public.commitments[0] as Uint8Array);
        if (!verifySignature(spec, MESSAGE, sig, pk))
          throw new Error('our aggregate signature does not verify');
        return lockStepRun(log);
      };
    },
  },
];

/** One row with our machines, or the reason there is none (listed under Skipped). */
export async function ourRow(
  op: OurOperation,
  spec: KeySpec,
  size: Size,
  newSize: Size,
  iterations: number,
  singleKeyMs: number,
): Promise<ProtocolRow | string> {
  const runner = await op.load();
  if (!runner)
    return `${op.operation} (ours): ${op.module} is not in the tree yet (or does not export its machine)`;
  const runs: OpRun[] = [];
  try {
    for (let i = 0; i < iterations; i++) runs.push(runner(spec, size, newSize));
  } catch (e) {
    // A half-written module must not sink the whole benchmark: report it instead.
    return `${op.operation} (ours) ${spec.name} ${size.t}-of-${size.n}: failed: ${e instanceof Error ? e.message : String(e)}`;
  }
  return toRow(
    spec.name,
    op.operation,
    'ours',
    size,
    runs,
    singleKeyMs,
    undefined,
    op.operation === 'reshare' ? newSize : undefined,
  );
}

// ---------------------------------------------------------------------------------------------
// Single-key baselines and primitives

const singleKeySigners: Record<
  Exclude<KeySpecName, 'TDH2_RISTRETTO255'>,
  { how: string; make: () => () => Uint8Array; verify: (sig: Uint8Array) => boolean }
> = {
  FROST_ED25519: single(
    'ed25519.sign (RFC 8032)',
    () => ed25519.utils.randomSecretKey(),
    (m, k) => ed25519.sign(m, k),
    (s, m, k) => ed25519.verify(s, m, ed25519.getPublicKey(k)),
  ),
  FROST_SECP256K1_TR: single(
    'schnorr.sign (BIP340)',
    () => schnorr.utils.randomSecretKey(),
    (m, k) => schnorr.sign(m, k),
    (s, m, k) => schnorr.verify(s, m, schnorr.getPublicKey(k)),
  ),
  FROST_SECP256K1: frostWhole('FROST_SECP256K1'),
  FROST_P256: frostWhole('FROST_P256'),
  FROST_RISTRETTO255: frostWhole('FROST_RISTRETTO255'),
  FROST_ED448: single(
    'ed448.sign (RFC 8032)',
    () => ed448.utils.randomSecretKey(),
    (m, k) => ed448.sign(m, k),
    (s, m, k) => ed448.verify(s, m, ed448.getPublicKey(k)),
  ),
};

function single(
  how: string,
  key: () => Uint8Array,
  sign: (m: Uint8Array, k: Uint8Array) => Uint8Array,
  verify: (s: Uint8Array, m: Uint8Array, k: Uint8Array) => boolean,
) {
  const k = key();
  return { how, make: () => () => sign(MESSAGE, k), verify: (s: Uint8Array) => verify(s, MESSAGE, k) };
}

/** RFC 9591 Schnorr with the whole key (noble's frost.sign): the suite's own single-signer signature. */
function frostWhole(name: KeySpecName) {
  const f = KEY_SPEC_REGISTRY[name].frost;
  const k = f.utils.randomScalar();
  const pk = KEY_SPEC_REGISTRY[name].Point.BASE.multiply(f.utils.Fn.fromBytes(k)).toBytes();
  return {
    how: `${name.toLowerCase().replace('frost_', '')}_FROST.sign with the whole key`,
    make: () => () => f.sign(MESSAGE, k),
    verify: (s: Uint8Array) => verifySignature(KEY_SPEC_REGISTRY[name], MESSAGE, s, pk),
  };
}

export function singleKeySign(name: KeySpecName, iterations: number): SingleKeyRow {
  // Encryption keys (TDH2_RISTRETTO255) do not sign.
  if (name === 'TDH2_RISTRETTO255') throw new Error(`${name} is not a signing suite`);
  const s = singleKeySigners[name];
  const sign = s.make();
  if (!s.verify(sign())) throw new Error(`${name}: single-key signature does not verify`);
  const m = microbench(sign, { iterations, warmup: Math.min(20, iterations) });
  return { keySpec: name, how: s.how, cpuMsPerOp: m.cpuMsPerOp, ops: m.ops };
}

type Sodium = {
  crypto_core_ed25519_is_valid_point(p: Uint8Array): boolean;
  crypto_scalarmult_ed25519_base_noclamp(q: Uint8Array, n: Uint8Array): void;
  crypto_scalarmult_ed25519_noclamp(q: Uint8Array, n: Uint8Array, p: Uint8Array): void;
  crypto_core_ed25519_BYTES: number;
};

function loadSodium(): Sodium | null {
  try {
    return createRequire(import.meta.url)('sodium-native') as Sodium;
  } catch {
    return null;
  }
}

/**
 * The levers of issue 8: what a received point costs to decode and subgroup-check, and what the two
 * kinds of scalar multiplication cost, in noble and in libsodium (sodium-native). Same inputs for both.
 */
export function primitives(iterations: number, skipped: string[]): PrimitiveRow[] {
  const rows: PrimitiveRow[] = [];
  const add = (group: string, operation: string, library: string, fn: () => unknown) => {
    const m = microbench(fn, { iterations, warmup: Math.min(20, iterations) });
    rows.push({ group, operation, library, cpuMsPerOp: m.cpuMsPerOp, ops: m.ops });
  };
  const ed = ed25519.Point;
  const s = ed.Fn.fromBytes(ed25519_scalar());
  const P = ed.BASE.multiply(ed.Fn.fromBytes(ed25519_scalar()));
  const Pb = P.toBytes();
  const sb = ed.Fn.toBytes(s); // little-endian, as libsodium wants
  add('ed25519', 'decode point', 'noble', () => ed.fromBytes(Pb));
  add('ed25519', 'decode + subgroup check', 'noble', () => ed.fromBytes(Pb).isTorsionFree());
  add('ed25519', 'fixed-base multiply', 'noble', () => ed.BASE.multiply(s));
  add('ed25519', 'variable-base multiply', 'noble', () => P.multiply(s));
  add('ed25519', 'variable-base multiply (unsafe)', 'noble', () => P.multiplyUnsafe(s));
  const sodium = loadSodium();
  if (sodium) {
    const q = new Uint8Array(sodium.crypto_core_ed25519_BYTES);
    sodium.crypto_scalarmult_ed25519_noclamp(q, sb, Pb);
    if (!equalBytes(q, P.multiply(s).toBytes())) throw new Error('sodium and noble disagree on s*P');
    add('ed25519', 'decode + subgroup check', 'libsodium (sodium-native)', () =>
      sodium.crypto_core_ed25519_is_valid_point(Pb),
    );
    add('ed25519', 'fixed-base multiply', 'libsodium (sodium-native)', () =>
      sodium.crypto_scalarmult_ed25519_base_noclamp(q, sb),
    );
    add('ed25519', 'variable-base multiply', 'libsodium (sodium-native)', () =>
      sodium.crypto_scalarmult_ed25519_noclamp(q, sb, Pb),
    );
  } else {
    skipped.push('libsodium rows: sodium-native did not load (run `npm install`; it ships prebuilds).');
  }
  // Context for the other suites (noble only; no native secp256k1 binding is installed).
  const k = secp256k1.Point;
  const ks = k.Fn.fromBytes(secp256k1.utils.randomSecretKey());
  const K = k.BASE.multiply(k.Fn.fromBytes(secp256k1.utils.randomSecretKey()));
  const Kb = K.toBytes(true);
  add('secp256k1', 'decode point', 'noble', () => k.fromBytes(Kb));
  add('secp256k1', 'fixed-base multiply', 'noble', () => k.BASE.multiply(ks));
  add('secp256k1', 'variable-base multiply', 'noble', () => K.multiply(ks));
  const r = KEY_SPEC_REGISTRY.FROST_RISTRETTO255.Point;
  const R = r.BASE.multiply(ks % r.Fn.ORDER || 1n);
  const Rb = R.toBytes();
  add('ristretto255', 'decode point (prime-order group: no subgroup check)', 'noble', () => r.fromBytes(Rb));
  add('ristretto255', 'variable-base multiply', 'noble', () => R.multiply(ks % r.Fn.ORDER || 1n));
  return rows;
}

function ed25519_scalar(): Uint8Array {
  return KEY_SPEC_REGISTRY.FROST_ED25519.frost.utils.randomScalar();
}

// ---------------------------------------------------------------------------------------------
// The benchmark

function toRow(
  keySpec: KeySpecName,
  operation: Operation,
  implementation: Implementation,
  size: Size,
  runs: readonly OpRun[],
  singleKeyMs: number,
  sampled?: string,
  newSize?: Size,
): ProtocolRow {
  const summed = summarize(runs.map((r) => r.summedCpuMs));
  const median = [...runs].sort((a, b) => a.summedCpuMs - b.summedCpuMs)[
    Math.floor((runs.length - 1) / 2)
  ] as OpRun;
  return {
    keySpec,
    operation,
    implementation,
    size,
    ...(newSize ? { newSize } : {}),
    iterations: runs.length,
    summedCpuMs: summed,
    criticalPathCpuMs: summarize(runs.map((r) => r.criticalPathCpuMs)),
    summedWallMs: summarize(runs.map((r) => r.summedWallMs)),
    rounds: median.rounds,
    ratioToSingleKey: summed.p50 / singleKeyMs,
    ...(sampled ? { sampled } : {}),
  };
}

export type Progress = (line: string) => void;

const sizeText = (r: ProtocolRow) =>
  `${r.size.t}-of-${r.size.n}${r.newSize ? ` -> ${r.newSize.t}-of-${r.newSize.n}` : ''}`;

export async function runProtocolBench(
  plan: ProtocolPlan,
  progress: Progress = () => {},
): Promise<ProtocolResults> {
  const skipped = [...plan.skipped];
  const singleKey = plan.keySpecs.map((name) => singleKeySign(name, plan.singleKeyIterations));
  const singleMs = new Map(singleKey.map((r) => [r.keySpec, r.cpuMsPerOp.p50]));
  for (const r of singleKey) progress(`single-key ${r.keySpec}: ${r.cpuMsPerOp.p50.toFixed(3)} ms`);
  const rows: ProtocolRow[] = [];
  // One untimed small run per suite first, so the first timed row does not pay for JIT warm-up.
  for (const name of plan.keySpecs) {
    nobleDkg(KEY_SPEC_REGISTRY[name], { t: 2, n: 3 });
    nobleSign(KEY_SPEC_REGISTRY[name], { t: 2, n: 3 });
  }
  for (const sp of plan.sizes) {
    for (const name of sp.keySpecs.filter((k) => plan.keySpecs.includes(k))) {
      const spec = KEY_SPEC_REGISTRY[name];
      const single = singleMs.get(name) ?? Number.NaN;
      for (const op of sp.operations) {
        const iterations = sp.iterations[op];
        if (iterations <= 0) continue;
        const runs: OpRun[] = [];
        for (let i = 0; i < iterations; i++) {
          runs.push(op === 'dkg' ? nobleDkg(spec, sp.size, sp.sampleParties).run : nobleSign(spec, sp.size));
        }
        const sampled =
          op === 'dkg' && sp.sampleParties !== undefined && sp.sampleParties < sp.size.n
            ? `${sp.sampleParties} of ${sp.size.n} parties timed in rounds 2-3`
            : undefined;
        const row = toRow(name, op, 'noble-frost', sp.size, runs, single, sampled);
        rows.push(row);
        progress(
          `${op} noble ${name} ${sp.size.t}-of-${sp.size.n}: summed ${row.summedCpuMs.p50.toFixed(1)} ms, critical ${row.criticalPathCpuMs.p50.toFixed(1)} ms`,
        );
      }
    }
  }
  // Our machines, where their modules exist: DKG and sign at the small sizes (same iteration
  // counts as noble's), key events at plan.keyEvents.
  const small = plan.sizes.filter((s) => s.sampleParties === undefined);
  for (const op of OUR_OPERATIONS) {
    const runsFor: { size: Size; iterations: number }[] =
      op.operation === 'dkg' || op.operation === 'sign'
        ? small
            .filter((s) => s.operations.includes(op.operation as 'dkg' | 'sign'))
            .map((s) => ({ size: s.size, iterations: s.iterations[op.operation as 'dkg' | 'sign'] }))
        : [{ size: plan.keyEvents.size, iterations: plan.keyEvents.iterations }];
    for (const name of plan.keySpecs) {
      for (const { size, iterations } of runsFor) {
        if (iterations <= 0) continue;
        const row = await ourRow(
          op,
          KEY_SPEC_REGISTRY[name],
          size,
          plan.keyEvents.newSize,
          iterations,
          singleMs.get(name) ?? Number.NaN,
        );
        if (typeof row === 'string') {
          if (!skipped.includes(row)) skipped.push(row);
          continue;
        }
        rows.push(row);
        progress(
          `${op.operation} ours ${name} ${sizeText(row)}: summed ${row.summedCpuMs.p50.toFixed(1)} ms, critical ${row.criticalPathCpuMs.p50.toFixed(1)} ms`,
        );
      }
    }
  }
  for (const op of ['dkg', 'sign', 'refresh', 'reshare', 'repair'] as const) {
    if (!OUR_OPERATIONS.some((o) => o.operation === op)) {
      skipped.push(`${op} (ours): no machine registered in OUR_OPERATIONS (scripts/bench/protocol.ts) yet`);
    }
  }
  const primitiveRows = primitives(plan.primitiveIterations, skipped);
  // The request check is compared with our 3-of-5 signatures: measured above in a full run, here
  // when the plan did not run them (--quick samples 3-of-5).
  const size35 = { t: 3, n: 5 };
  const signs: ProtocolRow[] = [];
  const signOp = OUR_OPERATIONS.find((o) => o.operation === 'sign');
  for (const name of (['FROST_ED25519', 'FROST_SECP256K1_TR'] as const).filter((k) =>
    plan.keySpecs.includes(k),
  )) {
    const have = rows.find(
      (r) =>
        r.keySpec === name &&
        r.operation === 'sign' &&
        r.implementation === 'ours' &&
        r.size.t === 3 &&
        r.size.n === 5,
    );
    const row =
      have ??
      (signOp
        ? await ourRow(signOp, KEY_SPEC_REGISTRY[name], size35, size35, 1, singleMs.get(name) ?? Number.NaN)
        : undefined);
    if (row && typeof row !== 'string') signs.push(row);
  }
  const requestCheck = requestCheckOf(signs, plan.quick ? 20 : 3000, false);
  progress(`request check: ${requestCheck.costs.checkCpuMs.p50.toFixed(3)} ms per signed request and node`);
  return { plan, singleKey, rows, primitives: primitiveRows, skipped, requestCheck };
}

/** The request-check section over our signing rows `signs` (measured in the same process). */
export function requestCheckOf(
  signs: readonly ProtocolRow[],
  iterations: number,
  alone: boolean,
): RequestCheckSection {
  const costs = measureRequestCheck(iterations);
  return {
    ...requestCheckRows(
      costs,
      signs.map((r) => ({ keySpec: r.keySpec, size: r.size, summedCpuMs: r.summedCpuMs.p50 })),
    ),
    measured: { date: new Date().toISOString(), commit: gitCommit(), loadAverage: loadavg()[0] ?? 0, alone },
  };
}

/**
 * Measures only the request check and the 3-of-5 signatures of our machines it is compared with
 * (FROST_ED25519 and FROST_SECP256K1_TR, `iterations` each): `npm run bench -- protocol --only
 * request-check` adds this to a saved run without re-measuring the rest.
 */
export async function runRequestCheckOnly(
  iterations: { sign: number; check: number },
  progress: Progress = () => {},
): Promise<{ section: RequestCheckSection; signRows: ProtocolRow[] }> {
  const op = OUR_OPERATIONS.find((o) => o.operation === 'sign');
  if (!op) throw new Error('no signing machine registered in OUR_OPERATIONS');
  const signRows: ProtocolRow[] = [];
  const size = { t: 3, n: 5 };
  for (const name of ['FROST_ED25519', 'FROST_SECP256K1_TR'] as const) {
    const spec = KEY_SPEC_REGISTRY[name];
    await ourRow(op, spec, { t: 2, n: 3 }, size, 1, Number.NaN); // JIT warm-up, untimed
    const row = await ourRow(op, spec, size, size, iterations.sign, Number.NaN);
    if (typeof row === 'string') throw new Error(row);
    signRows.push(row);
    progress(`sign ours ${name} 3-of-5: summed ${row.summedCpuMs.p50.toFixed(2)} ms`);
  }
  const section = requestCheckOf(signRows, iterations.check, true);
  progress(`request check: ${section.costs.checkCpuMs.p50.toFixed(3)} ms per signed request and node`);
  return { section, signRows };
}

function gitCommit(): string {
  try {
    return execFileSync('git', ['rev-parse', '--short', 'HEAD'], { stdio: ['ignore', 'pipe', 'ignore'] })
      .toString()
      .trim();
  } catch {
    return 'unknown';
  }
}

// ---------------------------------------------------------------------------------------------
// Every suite's threshold signature, ours beside noble's FROST (issue 17 item 3)

/** How our signing path computes each suite (protocol/fast-sign.ts and its backends). */
export const OUR_SIGNING_BACKEND: Readonly<Record<SigningKeySpecName, string>> = {
  FROST_ED25519: 'libsodium (sodium-native)',
  FROST_SECP256K1_TR: 'libsecp256k1 (secp256k1 addon)',
  FROST_SECP256K1: 'libsecp256k1 (secp256k1 addon)',
  FROST_P256: 'OpenSSL fixed-base and x-only ECDH (node:crypto), noble MSM, points decoded once',
  FROST_RISTRETTO255: 'libsodium (libsodium-wrappers-sumo, WebAssembly)',
  FROST_ED448: 'noble, points decoded once, subgroup check by sqrt + Jacobi, OpenSSL Ed448 verify',
};

/** One implementation's costs over the iterations: summed and critical path, and the median rounds. */
export type SigningCost = {
  readonly summedCpuMs: Summary;
  readonly criticalPathCpuMs: Summary;
  /** Per round: median over iterations of the mean and of the slowest party. */
  readonly rounds: readonly RoundCost[];
};

export type SuiteComparisonRow = {
  readonly keySpec: SigningKeySpecName;
  readonly ourBackend: string;
  readonly noble: SigningCost;
  readonly ours: SigningCost;
  /** ours / noble, summed CPU p50 (the target: at most 1). */
  readonly ratio: number;
  /** ours / noble, critical path p50. */
  readonly criticalRatio: number;
};

/** A DKG beside noble's (ours has more rounds: echo and confirmation; see protocol/dkg.ts). */
export type SuiteDkgRow = {
  readonly keySpec: SigningKeySpecName;
  readonly noble: SigningCost;
  readonly ours: SigningCost;
  readonly ratio: number;
};

export type SuiteComparison = {
  readonly size: Size;
  readonly iterations: number;
  readonly rows: readonly SuiteComparisonRow[];
  /** DKG at the same size (fewer iterations), when measured. */
  readonly dkg?: { readonly iterations: number; readonly rows: readonly SuiteDkgRow[] };
  readonly measured: { readonly date: string; readonly commit: string; readonly loadAverage: number };
};

function signingCost(runs: readonly OpRun[]): SigningCost {
  const median = (xs: number[]) => summarize(xs).p50;
  const first = runs[0];
  return {
    summedCpuMs: summarize(runs.map((r) => r.summedCpuMs)),
    criticalPathCpuMs: summarize(runs.map((r) => r.criticalPathCpuMs)),
    rounds: (first?.rounds ?? []).map((r, i) => ({
      round: r.round,
      parties: r.parties,
      measured: r.measured,
      meanCpuMs: median(runs.map((x) => x.rounds[i]?.meanCpuMs ?? Number.NaN)),
      maxCpuMs: median(runs.map((x) => x.rounds[i]?.maxCpuMs ?? Number.NaN)),
    })),
  };
}

/**
 * One threshold signature of every suite at `size` (default 3-of-5), ours (protocol/sign.ts: commit,
 * check the list and sign, aggregate; each party charged its own element checks) and noble's FROST
 * driven directly, alternating which goes first in each iteration so that both see the same load.
 */
export async function measureSuiteComparison(
  opts: { iterations: number; dkgIterations?: number; size?: Size; keySpecs?: readonly SigningKeySpecName[] },
  progress: Progress = () => {},
): Promise<SuiteComparison> {
  const size = opts.size ?? { t: 3, n: 5 };
  const op = OUR_OPERATIONS.find((o) => o.operation === 'sign');
  const ours = op ? await op.load() : null;
  if (!ours) throw new Error('protocol/sign.ts is not in the tree (no signing runner)');
  const rows: SuiteComparisonRow[] = [];
  for (const name of opts.keySpecs ?? ALL) {
    const spec = KEY_SPEC_REGISTRY[name];
    // Untimed warm-up of both paths (JIT, lazy tables such as noble's base-point precomputation).
    for (let i = 0; i < 3; i++) {
      nobleSign(spec, size);
      ours(spec, size, size);
    }
    const noble: OpRun[] = [];
    const mine: OpRun[] = [];
    for (let i = 0; i < opts.iterations; i++) {
      if (i % 2 === 0) {
        noble.push(nobleSign(spec, size));
        mine.push(ours(spec, size, size));
      } else {
        mine.push(ours(spec, size, size));
        noble.push(nobleSign(spec, size));
      }
    }
    const n = signingCost(noble);
    const o = signingCost(mine);
    const row: SuiteComparisonRow = {
      keySpec: name,
      ourBackend: OUR_SIGNING_BACKEND[name],
      noble: n,
      ours: o,
      ratio: o.summedCpuMs.p50 / n.summedCpuMs.p50,
      criticalRatio: o.criticalPathCpuMs.p50 / n.criticalPathCpuMs.p50,
    };
    rows.push(row);
    progress(
      `${name} ${size.t}-of-${size.n}: noble ${n.summedCpuMs.p50.toFixed(2)} ms, ours ${o.summedCpuMs.p50.toFixed(2)} ms (${row.ratio.toFixed(2)}x)`,
    );
  }
  const dkgOp = OUR_OPERATIONS.find((o) => o.operation === 'dkg');
  const ourDkg = dkgOp && (opts.dkgIterations ?? 0) > 0 ? await dkgOp.load() : null;
  const dkgRows: SuiteDkgRow[] = [];
  if (ourDkg) {
    for (const name of opts.keySpecs ?? ALL) {
      const spec = KEY_SPEC_REGISTRY[name];
      nobleDkg(spec, { t: 2, n: 3 });
      ourDkg(spec, { t: 2, n: 3 }, size);
      const noble: OpRun[] = [];
      const mine: OpRun[] = [];
      for (let i = 0; i < (opts.dkgIterations ?? 0); i++) {
        noble.push(nobleDkg(spec, size).run);
        mine.push(ourDkg(spec, size, size));
      }
      const n = signingCost(noble);
      const o = signingCost(mine);
      dkgRows.push({ keySpec: name, noble: n, ours: o, ratio: o.summedCpuMs.p50 / n.summedCpuMs.p50 });
      progress(
        `${name} DKG ${size.t}-of-${size.n}: noble ${n.summedCpuMs.p50.toFixed(1)} ms, ours ${o.summedCpuMs.p50.toFixed(1)} ms`,
      );
    }
  }
  return {
    size,
    iterations: opts.iterations,
    rows,
    ...(ourDkg ? { dkg: { iterations: opts.dkgIterations ?? 0, rows: dkgRows } } : {}),
    measured: { date: new Date().toISOString(), commit: gitCommit(), loadAverage: loadavg()[0] ?? 0 },
  };
}

/**
 * protocol-suites.md: every suite's signature beside noble's FROST; with `before` (the same
 * measurement on the code before the fast suites) the ratio then and now.
 */
export function suiteComparisonMarkdown(c: SuiteComparison, before?: SuiteComparison): string {
  const f = (x: number) => (x >= 10 ? x.toFixed(1) : x.toFixed(2));
  const size = `${c.size.t}-of-${c.size.n}`;
  const lines = [
    `## Every suite's threshold signature vs noble's FROST (${size})`,
    '',
    `CPU milliseconds, median of ${c.iterations} iterations, all parties summed (commit by each signer, check the list and sign, aggregate) and along the critical path; noble's FROST (commit, signShare, aggregate) driven directly beside ours (protocol/sign.ts on protocol/fast-sign.ts), alternating in one process. Target (issue 17): ours at most noble's. Measured ${c.measured.date} at ${c.measured.commit}, load average ${c.measured.loadAverage.toFixed(1)}.`,
    '',
    `| Key spec | our backend | noble summed | ours summed | ours / noble | noble critical | ours critical |${before ? ' before: ours / noble |' : ''} met |`,
    `|---|---|---|---|---|---|---|${before ? '---|' : ''}---|`,
  ];
  for (const r of c.rows) {
    const then = before?.rows.find((b) => b.keySpec === r.keySpec);
    lines.push(
      `| ${r.keySpec} | ${r.ourBackend} | ${f(r.noble.summedCpuMs.p50)} | ${f(r.ours.summedCpuMs.p50)} | ${r.ratio.toFixed(2)}x | ${f(r.noble.criticalPathCpuMs.p50)} | ${f(r.ours.criticalPathCpuMs.p50)} |${before ? ` ${then ? `${then.ratio.toFixed(2)}x (${f(then.ours.summedCpuMs.p50)} vs ${f(then.noble.summedCpuMs.p50)})` : '-'} |` : ''} ${r.ratio <= 1 ? 'yes' : 'no'} |`,
    );
  }
  if (before) {
    lines.push(
      '',
      `"before": the same harness on the code before the fast suites (commit ${before.measured.commit}, measured ${before.measured.date}, load average ${before.measured.loadAverage.toFixed(1)}), where FROST_SECP256K1, FROST_P256, FROST_RISTRETTO255 and FROST_ED448 ran noble's FROST behind our list checks.`,
    );
  }
  if (c.dkg) {
    const thenDkg = before?.dkg;
    lines.push(
      '',
      `### DKG (${size}, median of ${c.dkg.iterations}): noble's DKG.round1/2/3 beside ours (protocol/dkg.ts machines, which add proofs bound to the session, an echo round and a confirmation round)`,
      '',
      `| Key spec | noble summed | ours summed | ours / noble | noble critical | ours critical |${thenDkg ? ' before: ours / noble |' : ''}`,
      `|---|---|---|---|---|---|${thenDkg ? '---|' : ''}`,
    );
    for (const r of c.dkg.rows) {
      const then = thenDkg?.rows.find((b) => b.keySpec === r.keySpec);
      lines.push(
        `| ${r.keySpec} | ${f(r.noble.summedCpuMs.p50)} | ${f(r.ours.summedCpuMs.p50)} | ${r.ratio.toFixed(2)}x | ${f(r.noble.criticalPathCpuMs.p50)} | ${f(r.ours.criticalPathCpuMs.p50)} |${thenDkg ? ` ${then ? `${then.ratio.toFixed(2)}x` : '-'} |` : ''}`,
      );
    }
    lines.push(
      '',
      'Our DKG runs every party in one process here, so a point checked by one party is not checked again by the next (group.ts cache), as in the DKG rows of protocol.md; noble decodes at every use either way.',
    );
  }
  lines.push('', `### Per round (${size}, CPU ms: median of the per-party mean / of the slowest party)`, '');
  lines.push('| Key spec | round | parties | noble mean | noble slowest | ours mean | ours slowest |');
  lines.push('|---|---|---|---|---|---|---|');
  for (const r of c.rows) {
    for (const nr of r.noble.rounds) {
      const or = r.ours.rounds.find((x) => x.round === nr.round);
      lines.push(
        `| ${r.keySpec} | ${nr.round} | ${nr.parties} | ${nr.meanCpuMs.toFixed(3)} | ${nr.maxCpuMs.toFixed(3)} | ${or ? or.meanCpuMs.toFixed(3) : '-'} | ${or ? or.maxCpuMs.toFixed(3) : '-'} |`,
      );
    }
  }
  lines.push(
    '',
    'Where our time goes (CPU profiles of the sign step, node --cpu-prof): FROST_P256 is dominated by the t-point MSM of the group commitment (noble interleaved wNAF, as in noble FROST: node:crypto has no full variable-base multiply) that every signer and the aggregator compute; FROST_ED448 by decoding the 2t + 1 received points once per party (two square roots each: the decoding and the subgroup check) and the same MSM; the libsodium and libsecp256k1 suites by the per-party element checks, hashing and the JavaScript around them.',
    '',
  );
  return lines.join('\n');
}

/**
 * `npm run bench -- protocol --only suites`: measures the suite comparison and writes
 * protocol-suites.json and protocol-suites.md to `out` (SUMMARY.md is left to its writer). A
 * `protocol-suites-before.json` in `out` (the same measurement on older code) adds the ratio then.
 */
export async function benchSuites(
  opts: { quick: boolean; out: string },
  log: Progress = console.log,
): Promise<SuiteComparison> {
  const t0 = performance.now();
  const c0 = process.cpuUsage();
  const data = await measureSuiteComparison(
    { iterations: opts.quick ? 1 : 31, dkgIterations: opts.quick ? 1 : 5 },
    (l) => log(`  ${l}`),
  );
  const c1 = process.cpuUsage(c0);
  const durationS = (performance.now() - t0) / 1000;
  const file: BenchFile<SuiteComparison> = {
    name: 'protocol-suites',
    machine: machineInfo(),
    loadAverageAtEnd: loadavg()[0] ?? 0,
    durationS,
    cpuShare: (c1.user + c1.system) / 1e6 / durationS,
    data,
  };
  const beforePath = join(opts.out, 'protocol-suites-before.json');
  const before = existsSync(beforePath)
    ? (JSON.parse(readFileSync(beforePath, 'utf8')) as BenchFile<SuiteComparison>).data
    : undefined;
  mkdirSync(opts.out, { recursive: true });
  const json = join(opts.out, 'protocol-suites.json');
  const md = join(opts.out, 'protocol-suites.md');
  writeFileSync(json, `${JSON.stringify(file, null, 2)}\n`);
  writeFileSync(md, suiteComparisonMarkdown(data, before));
  log(`wrote ${json}`);
  log(`wrote ${md}`);
  return data;
}

if (import.meta.main && process.argv[2] === 'suites') {
  const out = process.argv[3] ?? RESULTS_DIR;
  await benchSuites({ quick: process.argv.includes('--quick'), out });
}
