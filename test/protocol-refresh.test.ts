import { describe, expect, it } from 'vitest';
import { KmsError } from '../protocol/errors.ts';
import { asEpoch } from '../protocol/ids.ts';
import type { Envelope } from '../protocol/machine.ts';
import { evaluatePolynomial, identifierScalar, zeroPolynomial } from '../protocol/polynomial.ts';
import { refreshMachine } from '../protocol/refresh.ts';
import { KEY_SPEC_REGISTRY } from '../protocol/suites.ts';
import {
  ALL_SPECS,
  belowThresholdFails,
  canSign,
  dkg,
  freshSession,
  interpolatesToGroup,
  KEY_ID,
  newKeys,
  pids,
  runRefresh,
} from './key-events-fixture.ts';

const K1 = KEY_SPEC_REGISTRY.FROST_SECP256K1;

describe('refresh', () => {
  for (const spec of ALL_SPECS) {
    it(`${spec.name}: 3-of-4 refresh changes every share, keeps the key, old shares do not mix`, () => {
      const ids = pids(spec, [1, 2, 3, 4]);
      const old = dkg(spec, 3, ids);
      const g = old.get(ids[0]!)!.public.commitments[0]!;
      const out = runRefresh(spec, old, 0);
      expect(out.errors.size).toBe(0);
      const fresh = newKeys(out);
      expect(fresh.size).toBe(4);
      for (const id of ids) {
        const k = fresh.get(id)!;
        expect(k.public.commitments[0]).toEqual(g);
        expect(k.public.signers).toEqual({ min: 3, max: 4 });
        expect(k.secret.signingShare).not.toEqual(old.get(id)!.secret.signingShare);
        spec.frost.validateSecret(k.secret, k.public); // noble's own VSS check of the new share
      }
      const v = ids.map((id) => fresh.get(id)!);
      expect(canSign(spec, [v[0]!, v[1]!, v[3]!], g)).toBe(true);
      expect(belowThresholdFails(spec, v.slice(0, 2), g)).toBe(true);
      // Two new shares and one old one interpolate to something else: old shares are useless.
      const mixed = [v[0]!, v[1]!, old.get(ids[2]!)!];
      expect(interpolatesToGroup(spec, mixed, g)).toBe(false);
      expect(canSign(spec, mixed, g)).toBe(false);
      // Everyone agrees on the transcript and holds the same certificate.
      const hashes = new Set(
        [...out.results.values()].map((r) => Buffer.from(r.transcriptHash).toString('hex')),
      );
      expect(hashes.size).toBe(1);
    });
  }

  it('a refresh that changes the threshold is refused (S-06, ZF FROST 2.2.0)', () => {
    const ids = pids(K1, [1, 2, 3]);
    const old = dkg(K1, 2, ids);
    const key = old.get(ids[0]!)!;
    const base = {
      spec: K1,
      keyId: KEY_ID,
      sessionId: freshSession(),
      self: ids[0]!,
      oldEpoch: asEpoch(0),
      newEpoch: asEpoch(1),
      threshold: 2,
      key,
    };
    expect(() => refreshMachine(base)).not.toThrow();
    for (const threshold of [1, 3, 4]) {
      try {
        refreshMachine({ ...base, threshold });
        expect.unreachable();
      } catch (e) {
        expect((e as KmsError).code).toBe('ValidationError');
      }
    }
    expect(() => refreshMachine({ ...base, newEpoch: asEpoch(0) })).toThrow(KmsError);
  });

  describe('blame', () => {
    const spec = K1;
    const ids = pids(spec, [1, 2, 3, 4]);
    const old = dkg(spec, 3, ids);
    const g = old.get(ids[0]!)!.public.commitments[0]!;
    const isDeal = (env: Envelope<any>) => env.header.round === 'refresh.deal';
    const expectBlame = (out: ReturnType<typeof runRefresh>, culprit: string, reason: string) => {
      expect(out.errors.size).toBeGreaterThan(0);
      expect(out.results.size).toBe(0);
      for (const e of out.errors.values()) {
        expect((e as KmsError).code).toBe('ParticipantMisbehaved');
        expect((e as KmsError).culprits).toMatchObject([{ participant: culprit, reason }]);
      }
      expect(canSign(spec, [...old.values()].slice(0, 3), g)).toBe(true);
    };

    it('t commitments (the identity C_0 smuggled in as a real point, raising the degree) -> wrong-vector-length', () => {
      const liar = ids[1]!;
      const out = runRefresh(spec, old, 0, (env) =>
        isDeal(env) && env.header.from === liar && env.header.to === '*'
          ? { ...env, body: { commitments: [spec.Point.BASE.toBytes(), ...env.body.commitments] } }
          : env,
      );
      expectBlame(out, liar, 'wrong-vector-length');
    });

    it('bad sub-share -> bad-share', () => {
      const liar = ids[2]!;
      const victim = ids[0]!;
      const Fn = spec.Point.Fn;
      const out = runRefresh(spec, old, 0, (env) =>
        isDeal(env) && env.header.from === liar && env.header.to === victim
          ? { ...env, body: { share: Fn.toBytes(Fn.add(Fn.fromBytes(env.body.share), 1n)) } }
          : env,
      );
      expectBlame(out, liar, 'bad-share');
    });

    it('equivocating dealer -> equivocation', () => {
      const liar = ids[3]!;
      const victim = ids[1]!;
      const alt = zeroPolynomial(spec, 3);
      const out = runRefresh(spec, old, 0, (env, to) => {
        if (!isDeal(env) || env.header.from !== liar || to !== victim) return env;
        if (env.header.to === '*')
          return { ...env, body: { commitments: alt.commitments.map((c) => c.toBytes()) } };
        const x = identifierScalar(spec, victim);
        return {
          ...env,
          body: { share: spec.Point.Fn.toBytes(evaluatePolynomial(spec, alt.coefficients, x)) },
        };
      });
      expectBlame(out, liar, 'equivocation');
    });

    it('invalid (identity / garbage) commitment -> invalid-element', () => {
      const liar = ids[0]!;
      const out = runRefresh(spec, old, 0, (env) =>
        isDeal(env) && env.header.from === liar && env.header.to === '*'
          ? { ...env, body: { commitments: [new Uint8Array(33), env.body.commitments[1]] } }
          : env,
      );
      expectBlame(out, liar, 'invalid-element');
    });

    it('bad confirmation -> bad-confirmation', () => {
      const liar = ids[0]!;
      const out = runRefresh(spec, old, 0, (env) =>
        env.header.round === 'refresh.confirm' && env.header.from === liar
          ? { ...env, body: { ...env.body, transcriptHash: new Uint8Array(32) } }
          : env,
      );
      expect([...out.results.keys()]).toEqual([liar]);
      out.results.clear();
      expectBlame(out, liar, 'bad-confirmation');
    });
  });
});
