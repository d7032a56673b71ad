/**
 * Property tests over every suite: random (t, n) -> (t', n') reshares (grow, shrink, raise and
 * lower the threshold, overlapping and disjoint committees) followed by a refresh. After each
 * event any t' new members sign under the unchanged group key, t'-1 cannot, and old-epoch shares
 * do not combine with new ones. Ed25519 and secp256k1-tr (native backends) take n, n' up to 15;
 * the noble-only suites get smaller random committees plus one 10..15 run each with thresholds
 * capped (ed448, the slowest, at 4), since every party verifies every confirmation (cost ~ n'^2).
 */
import type { Key } from '@noble/curves/abstract/frost.js';
import fc from 'fast-check';
import { propertyOptions } from './helpers/properties.ts';
import { describe, expect, it } from 'vitest';
import type { ParticipantId } from '../protocol/ids.ts';
import { KEY_SPEC_REGISTRY, type KeySpec } from '../protocol/suites.ts';
import {
  belowThresholdFails,
  canSign,
  dealt,
  dkg,
  interpolatesToGroup,
  newKeys,
  pickRandom,
  pids,
  runRefresh,
  runReshare,
} from './key-events-fixture.ts';

type Case = { t: number; n: number; t2: number; n2: number; overlap: number; seed: number };

const caseArb = (maxN: number) =>
  fc
    .record({
      n: fc.integer({ min: 2, max: maxN }),
      n2: fc.integer({ min: 2, max: maxN }),
      tf: fc.double({ min: 0, max: 1, noNaN: true }),
      t2f: fc.double({ min: 0, max: 1, noNaN: true }),
      of: fc.double({ min: 0, max: 1, noNaN: true }),
      seed: fc.integer(),
    })
    .map(
      ({ n, n2, tf, t2f, of, seed }): Case => ({
        n,
        n2,
        t: Math.min(n, 2 + Math.floor(tf * (n - 1))),
        t2: Math.min(n2, 2 + Math.floor(t2f * (n2 - 1))),
        // How many new members come from the old committee: 0 (disjoint) .. min(n, n2).
        overlap: Math.floor(of * (Math.min(n, n2) + 1)),
        seed,
      }),
    );

function mulberry(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** Checks the three properties for the keys of one epoch, with `old` the previous epoch's keys. */
function checkEpoch(
  spec: KeySpec,
  keys: Map<ParticipantId, Key>,
  old: Map<ParticipantId, Key>,
  g: Uint8Array,
  rnd: () => number,
) {
  const v = [...keys.values()];
  const t = v[0]!.public.signers.min;
  expect(v.every((k) => k.public.commitments[0]!.every((b, i) => b === g[i]))).toBe(true);
  const quorum = pickRandom(v, t, rnd);
  expect(canSign(spec, quorum, g)).toBe(true);
  expect(belowThresholdFails(spec, quorum.slice(0, t - 1), g)).toBe(true);
  // One old share in place of a new one, identifiers kept distinct.
  const o = pickRandom([...old.values()], 1, rnd)[0]!;
  const rest = pickRandom(
    v.filter((k) => k.secret.identifier !== o.secret.identifier),
    t - 1,
    rnd,
  );
  const mixed = [...rest, o];
  expect(interpolatesToGroup(spec, mixed, g)).toBe(false);
  expect(canSign(spec, mixed, g)).toBe(false);
}

function runCase(spec: KeySpec, c: Case): void {
  const rnd = mulberry(c.seed);
  const oldIds = pids(
    spec,
    Array.from({ length: c.n }, (_, i) => i + 1),
  );
  // Large DKGs are slow in noble; the dealer gives the same package shape (DKG-started reshares,
  // including the taproot-tweaked one, are in protocol-reshare.test.ts).
  const old = c.n > 6 ? dealt(spec, c.t, oldIds) : dkg(spec, c.t, oldIds);
  const g = old.get(oldIds[0]!)!.public.commitments[0]!;
  const kept = pickRandom(oldIds, Math.min(c.overlap, c.n2), rnd);
  const fresh = pids(
    spec,
    Array.from({ length: c.n2 - kept.length }, (_, i) => c.n + 1 + i),
  );
  const newParticipants = [...kept, ...fresh];
  const out = runReshare(spec, old, {
    oldEpoch: 0,
    dealers: pickRandom(oldIds, c.t, rnd),
    newParticipants,
    newThreshold: c.t2,
  });
  expect(out.errors.size).toBe(0);
  const reshared = newKeys(out);
  expect(reshared.size).toBe(c.n2);
  checkEpoch(spec, reshared, old, g, rnd);
  const refreshed = runRefresh(spec, reshared, 1);
  expect(refreshed.errors.size).toBe(0);
  checkEpoch(spec, newKeys(refreshed), reshared, g, rnd);
}

// FROST_ED25519 and FROST_SECP256K1_TR run key events on native backends (protocol/group.ts), so
// they take n, n' up to 15 with any threshold; the noble-only suites keep smaller committees.
const PLAN: { spec: KeySpec; maxN: number; runs: number; bigRuns: number; capT?: number }[] = [
  { spec: KEY_SPEC_REGISTRY.FROST_SECP256K1_TR, maxN: 15, runs: 6, bigRuns: 2 },
  { spec: KEY_SPEC_REGISTRY.FROST_SECP256K1, maxN: 6, runs: 4, bigRuns: 1, capT: 8 },
  { spec: KEY_SPEC_REGISTRY.FROST_P256, maxN: 6, runs: 3, bigRuns: 1, capT: 8 },
  { spec: KEY_SPEC_REGISTRY.FROST_RISTRETTO255, maxN: 6, runs: 4, bigRuns: 1, capT: 8 },
  { spec: KEY_SPEC_REGISTRY.FROST_ED25519, maxN: 15, runs: 4, bigRuns: 1 },
  { spec: KEY_SPEC_REGISTRY.FROST_ED448, maxN: 4, runs: 2, bigRuns: 1, capT: 4 },
];

describe('key events: properties over every suite', () => {
  for (const { spec, maxN, runs, bigRuns, capT } of PLAN) {
    it(`${spec.name}: random (t, n) -> (t', n') reshare then refresh, n <= ${maxN}`, () => {
      fc.assert(
        fc.property(caseArb(maxN), (c) => runCase(spec, c)),
        propertyOptions(runs),
      );
    });
    if (bigRuns > 0) {
      it(`${spec.name}: large committees (n, n' in 10..15)`, () => {
        fc.assert(
          fc.property(
            caseArb(15)
              .filter((c) => c.n >= 10 && c.n2 >= 10)
              // Noble-only suites cap thresholds at 8 to bound the cost on a shared 2-core machine.
              .map((c) => (capT ? { ...c, t: Math.min(c.t, capT), t2: Math.min(c.t2, capT) } : c)),
            (c) => runCase(spec, c),
          ),
          propertyOptions(bigRuns),
        );
      });
    }
  }

  it('FROST_ED25519 and FROST_ED448: one fixed shrink (10 -> 4, threshold lowered) and grow (3 -> 6, disjoint)', () => {
    runCase(KEY_SPEC_REGISTRY.FROST_ED25519, { t: 7, n: 10, t2: 3, n2: 4, overlap: 2, seed: 1 });
    runCase(KEY_SPEC_REGISTRY.FROST_ED448, { t: 2, n: 3, t2: 2, n2: 6, overlap: 0, seed: 2 });
  });
});
