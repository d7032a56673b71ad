import { schnorr } from '@noble/curves/secp256k1.js';
import { describe, expect, it } from 'vitest';
import { KmsError } from '../protocol/errors.ts';
import { asEpoch, type ParticipantId } from '../protocol/ids.ts';
import type { Envelope } from '../protocol/machine.ts';
import { dealingPolynomial, evaluatePolynomial, identifierScalar } from '../protocol/polynomial.ts';
import { reshareMachine } from '../protocol/reshare.ts';
import type { Tamper } from '../protocol/simulate.ts';
import { KEY_SPEC_REGISTRY, type KeySpec } from '../protocol/suites.ts';
import {
  ALL_SPECS,
  belowThresholdFails,
  canSign,
  dkg,
  freshSession,
  KEY_ID,
  newKeys,
  pids,
  runReshare,
  signWith,
  type EventOutcome,
} from './key-events-fixture.ts';

const TR = KEY_SPEC_REGISTRY.FROST_SECP256K1_TR;
const K1 = KEY_SPEC_REGISTRY.FROST_SECP256K1;

describe('reshare', () => {
  for (const spec of ALL_SPECS) {
    it(`${spec.name}: 2-of-3 -> 3-of-4 (overlapping), then -> 2-of-2 disjoint; key unchanged`, () => {
      const old = dkg(spec, 2, pids(spec, [1, 2, 3]));
      const g = old.get(pids(spec, [1])[0]!)!.public.commitments[0]!;
      const a = runReshare(spec, old, {
        oldEpoch: 0,
        dealers: pids(spec, [1, 3]),
        newParticipants: pids(spec, [2, 3, 4, 5]),
        newThreshold: 3,
      });
      expect(a.errors.size).toBe(0);
      const ka = newKeys(a);
      expect(ka.size).toBe(4);
      // The dealer that left (1) gets the certificate but no share.
      expect(a.results.get(pids(spec, [1])[0]!)!.key).toBeUndefined();
      for (const r of a.results.values()) expect(r.groupElement).toEqual(g);
      const va = [...ka.values()];
      expect(canSign(spec, va.slice(0, 3), g)).toBe(true);
      expect(canSign(spec, va.slice(1, 4), g)).toBe(true);
      expect(belowThresholdFails(spec, va.slice(0, 2), g)).toBe(true);

      const b = runReshare(spec, ka, {
        oldEpoch: 1,
        dealers: pids(spec, [2, 4, 5]),
        newParticipants: pids(spec, [6, 7]),
        newThreshold: 2,
      });
      expect(b.errors.size).toBe(0);
      const vb = [...newKeys(b).values()];
      expect(vb.length).toBe(2);
      expect(canSign(spec, vb, g)).toBe(true);
      expect(belowThresholdFails(spec, vb.slice(0, 1), g)).toBe(true);
    });
  }

  it('FROST_SECP256K1_TR: a reshared DKG key (taproot-tweaked) keeps the same x-only key; schnorr.verify accepts', () => {
    // Run until the tweaked group element has odd Y at least once, so signShare's even-Y negation is exercised.
    let sawOdd = false;
    let sawEven = false;
    for (let i = 0; i < 16 && !(sawOdd && sawEven); i++) {
      const old = dkg(TR, 2, pids(TR, [1, 2, 3]));
      const g = old.get(pids(TR, [1])[0]!)!.public.commitments[0]!;
      if (g[0] === 3) sawOdd = true;
      else sawEven = true;
      const out = runReshare(TR, old, {
        oldEpoch: 0,
        dealers: pids(TR, [2, 3]),
        newParticipants: pids(TR, [3, 4, 5, 6]),
        newThreshold: 3,
      });
      expect(out.errors.size).toBe(0);
      const keys = [...newKeys(out).values()];
      expect(keys[0]!.public.commitments[0]).toEqual(g);
      const msg = new TextEncoder().encode(`bip340 after reshare ${i}`);
      const sig = signWith(TR, keys.slice(1, 4), msg);
      expect(schnorr.verify(sig, msg, g.slice(1))).toBe(true);
      // Also against the pre-reshare signature path: the old shares sign under the same x-only key.
      const sigOld = signWith(TR, [...old.values()].slice(0, 2), msg);
      expect(schnorr.verify(sigOld, msg, g.slice(1))).toBe(true);
    }
    expect(sawOdd && sawEven).toBe(true);
  });

  describe('configuration (S-06: the old threshold is explicit, never inferred)', () => {
    const spec = K1;
    const old = dkg(spec, 3, pids(spec, [1, 2, 3, 4]));
    const oldPublic = old.get(pids(spec, [1])[0]!)!.public;
    const base = {
      spec,
      keyId: KEY_ID,
      sessionId: freshSession(),
      self: pids(spec, [5])[0]!,
      oldEpoch: asEpoch(0),
      newEpoch: asEpoch(1),
      oldThreshold: 3,
      oldPublic,
      dealers: pids(spec, [1, 2, 3]),
      newParticipants: pids(spec, [5, 6, 7]),
      newThreshold: 2,
    };
    const code = (f: () => unknown) => {
      try {
        f();
      } catch (e) {
        return (e as KmsError).code;
      }
      return 'no error';
    };
    it('accepts the valid config', () => {
      expect(() => reshareMachine(base)).not.toThrow();
    });
    it('refuses an old threshold that differs from the old package', () => {
      expect(code(() => reshareMachine({ ...base, oldThreshold: 2, dealers: pids(spec, [1, 2]) }))).toBe(
        'ValidationError',
      );
    });
    it('refuses fewer or more dealers than the old threshold', () => {
      expect(code(() => reshareMachine({ ...base, dealers: pids(spec, [1, 2]) }))).toBe('ValidationError');
      expect(code(() => reshareMachine({ ...base, dealers: pids(spec, [1, 2, 3, 4]) }))).toBe(
        'ValidationError',
      );
    });
    it('refuses a dealer outside the old committee and duplicate ids', () => {
      expect(code(() => reshareMachine({ ...base, dealers: pids(spec, [1, 2, 9]) }))).toBe('ValidationError');
      expect(code(() => reshareMachine({ ...base, newParticipants: pids(spec, [5, 5, 6]) }))).toBe(
        'ValidationError',
      );
    });
    it('refuses a new threshold above n or below 2', () => {
      expect(code(() => reshareMachine({ ...base, newThreshold: 4 }))).toBe('ValidationError');
      expect(code(() => reshareMachine({ ...base, newThreshold: 1 }))).toBe('ValidationError');
    });
    it('an old member refuses an oldPublic that differs from its stored package', () => {
      const other = dkg(spec, 3, pids(spec, [1, 2, 3, 4]));
      const self = pids(spec, [1])[0]!;
      expect(
        code(() =>
          reshareMachine({ ...base, self, oldKey: old.get(self)!, oldPublic: other.get(self)!.public }),
        ),
      ).toBe('ContextMismatch');
    });
    it('a dealer without its old key cannot take part', () => {
      expect(code(() => reshareMachine({ ...base, self: pids(spec, [1])[0]! }))).toBe('ValidationError');
    });
  });
});

// ---------------------------------------------------------------------------------------------
// Adversarial: each blame case names the culprit, nobody completes, and the old epoch still signs.

type Setup = {
  spec: KeySpec;
  old: ReturnType<typeof dkg>;
  g: Uint8Array;
  dealers: ParticipantId[];
  news: ParticipantId[];
};

function setup(spec: KeySpec): Setup {
  const old = dkg(spec, 2, pids(spec, [1, 2, 3]));
  return {
    spec,
    old,
    g: old.get(pids(spec, [1])[0]!)!.public.commitments[0]!,
    dealers: pids(spec, [1, 2]),
    news: pids(spec, [2, 3, 4]),
  };
}

function run(s: Setup, tamper: Tamper): EventOutcome {
  return runReshare(s.spec, s.old, {
    oldEpoch: 0,
    dealers: s.dealers,
    newParticipants: s.news,
    newThreshold: 2,
    tamper,
  });
}

function expectBlame(
  s: Setup,
  out: EventOutcome,
  culprit: ParticipantId,
  reason: string,
  opts: { noneComplete?: boolean } = {},
) {
  expect(out.errors.size).toBeGreaterThan(0);
  for (const e of out.errors.values()) {
    expect(e).toBeInstanceOf(KmsError);
    const k = e as KmsError;
    expect(k.code).toBe('ParticipantMisbehaved');
    expect(k.culprits.map((c) => c.participant)).toEqual([culprit]);
    expect(k.culprits[0]!.reason).toBe(reason);
  }
  if (opts.noneComplete !== false) expect(out.results.size).toBe(0);
  // The previous epoch is untouched and still signs.
  expect(canSign(s.spec, [...s.old.values()].slice(0, 2), s.g)).toBe(true);
}

const isDeal = (env: Envelope<any>) => env.header.round === 'reshare.deal';

describe('reshare blame', () => {
  for (const spec of [K1, KEY_SPEC_REGISTRY.FROST_ED25519]) {
    it(`${spec.name}: wrong-length commitment vector (threshold raise) -> wrong-vector-length`, () => {
      const s = setup(spec);
      const liar = s.dealers[0]!;
      const out = run(s, (env) =>
        isDeal(env) && env.header.from === liar && env.header.to === '*'
          ? { ...env, body: { commitments: [...env.body.commitments, spec.Point.BASE.toBytes()] } }
          : env,
      );
      expectBlame(s, out, liar, 'wrong-vector-length');
    });

    it(`${spec.name}: a shorter vector (threshold lowering) -> wrong-vector-length`, () => {
      const s = setup(spec);
      const liar = s.dealers[1]!;
      const out = run(s, (env) =>
        isDeal(env) && env.header.from === liar && env.header.to === '*'
          ? { ...env, body: { commitments: env.body.commitments.slice(0, 1) } }
          : env,
      );
      expectBlame(s, out, liar, 'wrong-vector-length');
    });

    it(`${spec.name}: bad sub-share to one member -> bad-share`, () => {
      const s = setup(spec);
      const liar = s.dealers[0]!;
      const victim = pids(spec, [4])[0]!;
      const Fn = spec.Point.Fn;
      const out = run(s, (env, to) =>
        isDeal(env) && env.header.from === liar && env.header.to === victim && to === victim
          ? { ...env, body: { share: Fn.toBytes(Fn.add(Fn.fromBytes(env.body.share), 1n)) } }
          : env,
      );
      expect([...out.errors.keys()]).toEqual([victim]);
      expectBlame(s, out, liar, 'bad-share');
    });

    it(`${spec.name}: commitments that do not add up to the group key -> wrong-group-key`, () => {
      const s = setup(spec);
      const liar = s.dealers[1]!;
      // The liar deals a consistent polynomial around a different secret.
      const fake = dealingPolynomial(spec, 2, spec.Point.Fn.fromBytes(spec.frost.utils.randomScalar()));
      const out = run(s, (env) => {
        if (!isDeal(env) || env.header.from !== liar) return env;
        if (env.header.to === '*')
          return { ...env, body: { commitments: fake.commitments.map((c) => c.toBytes()) } };
        const x = identifierScalar(spec, env.header.to);
        return {
          ...env,
          body: { share: spec.Point.Fn.toBytes(evaluatePolynomial(spec, fake.coefficients, x)) },
        };
      });
      expectBlame(s, out, liar, 'wrong-group-key');
    });

    it(`${spec.name}: different broadcasts to different parties -> equivocation`, () => {
      const s = setup(spec);
      const liar = s.dealers[0]!;
      const victim = pids(spec, [4])[0]!;
      // A second valid dealing of the liar's own share, shown to the victim only: every
      // sub-share check passes, the echo round catches it.
      const share = spec.Point.Fn.fromBytes(s.old.get(liar)!.secret.signingShare);
      const alt = dealingPolynomial(spec, 2, share);
      const out = run(s, (env, to) => {
        if (!isDeal(env) || env.header.from !== liar || to !== victim) return env;
        if (env.header.to === '*')
          return { ...env, body: { commitments: alt.commitments.map((c) => c.toBytes()) } };
        return {
          ...env,
          body: {
            share: spec.Point.Fn.toBytes(
              evaluatePolynomial(spec, alt.coefficients, identifierScalar(spec, victim)),
            ),
          },
        };
      });
      expectBlame(s, out, liar, 'equivocation');
    });

    it(`${spec.name}: bad confirmation -> bad-confirmation`, () => {
      const s = setup(spec);
      const liar = pids(spec, [3])[0]!;
      const out = run(s, (env) =>
        env.header.round === 'reshare.confirm' && env.header.from === liar
          ? {
              ...env,
              body: {
                ...env.body,
                z: spec.Point.Fn.toBytes(spec.Point.Fn.add(1n, spec.Point.Fn.fromBytes(env.body.z))),
              },
            }
          : env,
      );
      // The liar itself saw only valid confirmations and holds a complete certificate; every
      // other party refuses, so no certificate reaches the coordinator from them.
      expect(out.errors.has(liar)).toBe(false);
      expect([...out.results.keys()]).toEqual([liar]);
      out.results.clear();
      expectBlame(s, out, liar, 'bad-confirmation');
    });

    it(`${spec.name}: malformed message body -> malformed-message`, () => {
      const s = setup(spec);
      const liar = pids(spec, [4])[0]!;
      const out = run(s, (env) =>
        env.header.round === 'reshare.echo' && env.header.from === liar
          ? { ...env, body: { context: 'x' } }
          : env,
      );
      expectBlame(s, out, liar, 'malformed-message');
    });
  }
});
