/**
 * The one package check (protocol/package-proof.ts) and the epoch proof built on it
 * (protocol/epoch.ts certificateGaps): packages made by the real DKG, refresh and reshare machines
 * pass; the security review's forgery (C-2: chosen Y_i = y_i·G, the real group element copied into
 * commitments[0], confirmations made with the chosen y_i) fails although each of its confirmations
 * verifies on its own; wrong length, wrong constant term, one altered verifying share, too few
 * members and a missing confirmation each fail with a named gap. Ed25519 and secp256k1-TR.
 */
import type { FrostPublic, Key } from '@noble/curves/abstract/frost.js';
import fc from 'fast-check';
import { propertyOptions } from './helpers/properties.ts';
import { describe, expect, it } from 'vitest';
import { type Confirmation, confirm, confirmationContext, verifyConfirmation } from '../protocol/confirm.ts';
import { dkgMachine } from '../protocol/dkg.ts';
import { type Certificate, type EpochRecord, certificateGaps } from '../protocol/epoch.ts';
import { asEpoch, asSessionId, type ParticipantId } from '../protocol/ids.ts';
import { packageDigest, packageGaps } from '../protocol/package-proof.ts';
import { simulate } from '../protocol/simulate.ts';
import { KEY_SPEC_REGISTRY, type KeySpec } from '../protocol/suites.ts';
import type { DkgResult } from '../protocol/dkg.ts';
import { KEY_ID, newKeys, pids, runRefresh, runReshare } from './key-events-fixture.ts';

const SPECS: readonly KeySpec[] = [KEY_SPEC_REGISTRY.FROST_ED25519, KEY_SPEC_REGISTRY.FROST_SECP256K1_TR];

/** The production DKG machine (protocol/dkg.ts) run in memory: every member's result. */
function realDkg(spec: KeySpec, t: number, n: number): Map<ParticipantId, DkgResult> {
  const ids = pids(
    spec,
    Array.from({ length: n }, (_, i) => i + 1),
  );
  const sessionId = asSessionId(`dkg-${spec.name}-${t}-${n}`);
  const r = simulate(
    ids.map((self) => dkgMachine({ spec, keyId: KEY_ID, sessionId, self, participants: ids, threshold: t })),
  );
  expect(r.errors.size).toBe(0);
  return new Map(r.results);
}

function dkgCertificate(r: DkgResult, sessionId: string): Certificate {
  return {
    protocol: 'dkg',
    keyId: KEY_ID,
    sessionId: asSessionId(sessionId),
    epoch: asEpoch(0),
    transcriptHash: r.transcriptHash,
    groupElement: r.groupElement,
    confirmations: r.confirmations,
  };
}

/**
 * The review's forgery: a package with the real group element as commitments[0], other
 * commitments and every verifying share chosen by the forger (Y_i = y_i·G with known y_i), and a
 * confirmation for every member made with those y_i.
 */
function forge(
  spec: KeySpec,
  realGroup: Uint8Array,
  members: readonly ParticipantId[],
  min: number,
  epoch: number,
): { pub: FrostPublic; cert: Certificate } {
  const Fn = spec.Point.Fn;
  const rnd = () =>
    Fn.create(BigInt(`0x${Buffer.from(crypto.getRandomValues(new Uint8Array(48))).toString('hex')}`)) || 1n;
  const ys = new Map(members.map((m) => [m, rnd()]));
  const verifyingShares = Object.fromEntries(
    members.map((m) => [m, spec.Point.BASE.multiply(ys.get(m)!).toBytes()]),
  );
  const commitments = [
    realGroup,
    ...Array.from({ length: min - 1 }, () => spec.Point.BASE.multiply(rnd()).toBytes()),
  ];
  const pub = { signers: { min, max: members.length }, commitments, verifyingShares } as FrostPublic;
  const sessionId = asSessionId('forged');
  const transcriptHash = new Uint8Array(32).fill(7);
  const confirmations: Record<ParticipantId, Confirmation> = {};
  for (const m of members) {
    const ctx = confirmationContext({
      sessionId,
      participant: m,
      transcriptHash,
      groupElement: realGroup,
      epoch,
    });
    confirmations[m] = confirm(spec, ys.get(m)!, verifyingShares[m]!, ctx);
  }
  const cert: Certificate = {
    protocol: 'reshare',
    keyId: KEY_ID,
    sessionId,
    epoch: asEpoch(epoch),
    transcriptHash,
    groupElement: realGroup,
    confirmations,
  };
  return { pub, cert };
}

const rec = (epoch: number, pub: FrostPublic): EpochRecord => ({ epoch: asEpoch(epoch), public: pub });

describe.each(SPECS)('package proof ($name)', (spec) => {
  const dkgOut = realDkg(spec, 2, 3);
  const first = [...dkgOut.values()][0]!;
  const Q = first.groupElement;
  const pub0 = first.key.public;
  const keys0 = new Map<ParticipantId, Key>([...dkgOut].map(([p, r]) => [p, r.key]));

  it('honest DKG, refresh and reshare packages are consistent and their certificates prove the epoch', () => {
    expect(packageGaps(spec.name, pub0, Q)).toEqual([]);
    for (const r of dkgOut.values()) {
      expect(packageDigest(r.key.public)).toBe(packageDigest(pub0));
      expect(certificateGaps(spec.name, rec(0, pub0), Q, dkgCertificate(r, `dkg-${spec.name}-2-3`))).toEqual(
        [],
      );
    }
    const refreshed = runRefresh(spec, keys0, 0);
    expect(refreshed.errors.size).toBe(0);
    const r1 = [...refreshed.results.values()][0]!;
    expect(packageGaps(spec.name, r1.public, Q)).toEqual([]);
    expect(certificateGaps(spec.name, rec(1, r1.public), Q, r1.certificate)).toEqual([]);
    const reshared = runReshare(spec, newKeys(refreshed), {
      oldEpoch: 1,
      dealers: pids(spec, [1, 3]),
      newParticipants: pids(spec, [2, 3, 4, 5]),
      newThreshold: 3,
    });
    expect(reshared.errors.size).toBe(0);
    const r2 = [...reshared.results.values()].find((r) => r.key)!;
    expect(packageGaps(spec.name, r2.public, Q)).toEqual([]);
    expect(certificateGaps(spec.name, rec(2, r2.public), Q, r2.certificate)).toEqual([]);
  });

  it("the review's forgery fails although each forged confirmation verifies on its own (C-2)", () => {
    const members = pids(spec, [4, 999]);
    const { pub, cert } = forge(spec, Q, members, 2, 1000);
    for (const m of members) {
      const ctx = confirmationContext({
        sessionId: cert.sessionId,
        participant: m,
        transcriptHash: cert.transcriptHash,
        groupElement: Q,
        epoch: 1000,
      });
      expect(verifyConfirmation(spec, pub.verifyingShares[m]!, ctx, cert.confirmations[m]!)).toBe(true);
    }
    const gaps = certificateGaps(spec.name, rec(1000, pub), Q, cert);
    expect(gaps.length).toBeGreaterThan(0);
    expect(gaps.every((g) => g.startsWith('<verifying-share:'))).toBe(true);
    // A forged t = 1 package has no polynomial to be inconsistent with, but its only share would be
    // the key itself: with Y = Q the forger cannot confirm, with Y != Q the share is off the polynomial.
    const one = forge(spec, Q, pids(spec, [4]), 1, 1000);
    expect(certificateGaps(spec.name, rec(1000, one.pub), Q, one.cert)).toEqual([
      `<verifying-share:${pids(spec, [4])[0]}>`,
    ]);
  });

  it('wrong length, wrong constant term, an altered verifying share, too few members, a missing confirmation: each a named gap', () => {
    const extra = { ...pub0, commitments: [...pub0.commitments, pub0.commitments[1]!] } as FrostPublic;
    expect(packageGaps(spec.name, extra, Q)).toContain('<commitments>');
    const short = { ...pub0, commitments: pub0.commitments.slice(0, 1) } as FrostPublic;
    expect(packageGaps(spec.name, short, Q)).toContain('<commitments>');
    const other = spec.Point.BASE.multiply(12345n).toBytes();
    expect(packageGaps(spec.name, pub0, other)).toEqual(['<constant-term>']);
    const [a, b] = Object.keys(pub0.verifyingShares) as ParticipantId[];
    const altered = {
      ...pub0,
      verifyingShares: {
        ...pub0.verifyingShares,
        [a!]: spec.Point.fromBytes(pub0.verifyingShares[a!]!).add(spec.Point.BASE).toBytes(),
      },
    } as FrostPublic;
    expect(packageGaps(spec.name, altered, Q)).toEqual([`<verifying-share:${a}>`]);
    const few = { ...pub0, verifyingShares: { [a!]: pub0.verifyingShares[a!]! } } as FrostPublic;
    expect(packageGaps(spec.name, few, Q)).toEqual(['<members>']);
    const cert = dkgCertificate(first, `dkg-${spec.name}-2-3`);
    const { [b!]: _gone, ...rest } = cert.confirmations;
    expect(certificateGaps(spec.name, rec(0, pub0), Q, { ...cert, confirmations: rest })).toEqual([b]);
    // The certificate check cannot be skipped: the altered package fails it before any confirmation.
    expect(certificateGaps(spec.name, rec(0, altered), Q, cert)).toEqual([`<verifying-share:${a}>`]);
  });

  it('property: any honest reshare passes, and moving any one verifying share or commitment fails', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 2, max: 6 }),
        fc.double({ min: 0, max: 1, noNaN: true }),
        fc.nat(),
        (n2, tf, pick) => {
          const t2 = 2 + Math.floor(tf * (n2 - 1) * 0.999);
          const out = runReshare(spec, keys0, {
            oldEpoch: 0,
            dealers: pids(spec, [1, 2]),
            newParticipants: pids(
              spec,
              Array.from({ length: n2 }, (_, i) => i + 2),
            ),
            newThreshold: t2,
          });
          const r = [...out.results.values()].find((x) => x.key)!;
          expect(certificateGaps(spec.name, rec(1, r.public), Q, r.certificate)).toEqual([]);
          const ids = Object.keys(r.public.verifyingShares) as ParticipantId[];
          const victim = ids[pick % ids.length]!;
          const moved = {
            ...r.public,
            verifyingShares: {
              ...r.public.verifyingShares,
              [victim]: spec.Point.fromBytes(r.public.verifyingShares[victim]!)
                .add(spec.Point.BASE)
                .toBytes(),
            },
          } as FrostPublic;
          expect(packageGaps(spec.name, moved, Q)).toEqual([`<verifying-share:${victim}>`]);
          {
            const k = 1 + (pick % (t2 - 1));
            const cs = [...r.public.commitments];
            cs[k] = spec.Point.fromBytes(cs[k]!).add(spec.Point.BASE).toBytes();
            expect(packageGaps(spec.name, { ...r.public, commitments: cs } as FrostPublic, Q).length).toBe(
              ids.length,
            );
          }
        },
      ),
      propertyOptions(8),
    );
  });
});
