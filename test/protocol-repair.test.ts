import { describe, expect, it } from 'vitest';
import type { Key } from '@noble/curves/abstract/frost.js';
import { decodeScalar, encodeScalar } from '../protocol/elements.ts';
import type { KmsError } from '../protocol/errors.ts';
import { asEpoch, type ParticipantId } from '../protocol/ids.ts';
import {
  recoverShare,
  type RepairResult,
  repairDeltas,
  repairMachine,
  repairSigma,
} from '../protocol/repair.ts';
import { simulate, type Tamper } from '../protocol/simulate.ts';
import { KEY_SPEC_REGISTRY, type KeySpec } from '../protocol/suites.ts';
import { ALL_SPECS, canSign, dkg, freshSession, KEY_ID, pids } from './key-events-fixture.ts';
import { loadRepairVector } from './helpers/vectors.ts';

function runRepair(
  spec: KeySpec,
  keys: Map<ParticipantId, Key>,
  helpers: ParticipantId[],
  target: ParticipantId,
  tamper?: Tamper,
) {
  const pub = keys.get(helpers[0]!)!.public;
  const sessionId = freshSession();
  const machines = [...helpers, target].map((self) => {
    const key = helpers.includes(self) ? keys.get(self) : undefined;
    return repairMachine({
      spec,
      keyId: KEY_ID,
      sessionId,
      self,
      epoch: asEpoch(3),
      public: pub,
      helpers,
      target,
      ...(key ? { key } : {}),
    });
  });
  return simulate<RepairResult>(machines, tamper);
}

describe('repair', () => {
  for (const spec of ALL_SPECS) {
    it(`${spec.name}: 3 helpers of a 3-of-5 key rebuild member 2's share`, () => {
      const ids = pids(spec, [1, 2, 3, 4, 5]);
      const keys = dkg(spec, 3, ids);
      const target = ids[1]!;
      const helpers = [ids[0]!, ids[3]!, ids[4]!];
      const out = runRepair(spec, keys, helpers, target);
      expect(out.errors.size).toBe(0);
      const r = out.results.get(target)!;
      expect(r.role).toBe('target');
      const rebuilt = (r as { key: Key }).key;
      expect(rebuilt.secret.signingShare).toEqual(keys.get(target)!.secret.signingShare);
      for (const h of helpers) expect(out.results.get(h)).toEqual({ role: 'helper' });
      // No message carries a helper's share: only deltas (random), their commitments and sigmas.
      for (const env of out.sent) {
        for (const h of helpers) {
          const share = keys.get(h)!.secret.signingShare;
          expect(
            JSON.stringify(env.body, (_k, v) =>
              v instanceof Uint8Array ? Buffer.from(v).toString('hex') : v,
            ),
          ).not.toContain(Buffer.from(share).toString('hex'));
        }
      }
      const g = rebuilt.public.commitments[0]!;
      expect(canSign(spec, [rebuilt, keys.get(ids[2]!)!, keys.get(ids[3]!)!], g)).toBe(true);
    });
  }

  it('deltas add up to λ_i(target)·s_i, sigmas add up to the lost share (algebra of ZF repairable.rs)', () => {
    const spec = KEY_SPEC_REGISTRY.FROST_RISTRETTO255;
    const ids = pids(spec, [1, 2, 3, 4]);
    const keys = dkg(spec, 2, ids);
    const helpers = [ids[0]!, ids[2]!];
    const target = ids[3]!;
    const Fn = spec.Point.Fn;
    const d = helpers.map((h) =>
      repairDeltas(spec, helpers, h, target, Fn.fromBytes(keys.get(h)!.secret.signingShare)),
    );
    const sigmas = helpers.map((h) =>
      repairSigma(
        spec,
        d.map((m) => m.get(h)!),
      ),
    );
    expect(Fn.toBytes(recoverShare(spec, sigmas))).toEqual(keys.get(target)!.secret.signingShare);
  });

  describe('ZF FROST repair-share.json vectors', () => {
    // The vectors pin only the arithmetic of steps 2 and 3 (sum of the random values, sum of the
    // sigmas): step 1's deltas come from ZF's seeded RNG and its Lagrange inputs are not in the
    // file, so the delta generation itself cannot be checked against them.
    for (const spec of ALL_SPECS) {
      it(spec.name, () => {
        const v = loadRepairVector(spec);
        const sc = (hex: string | undefined) =>
          decodeScalar(spec, Buffer.from(hex ?? '', 'hex'), 'vector scalar', false);
        const g = v.scalar_generation;
        const sum = repairSigma(spec, [sc(g.random_scalar_1), sc(g.random_scalar_2), sc(g.random_scalar_3)]);
        expect(Buffer.from(encodeScalar(spec, sum)).toString('hex')).toBe(g.random_scalar_sum);
        const s = v.sigma_generation;
        const rec = recoverShare(spec, [sc(s.sigma_1), sc(s.sigma_2), sc(s.sigma_3), sc(s.sigma_4)]);
        expect(Buffer.from(encodeScalar(spec, rec)).toString('hex')).toBe(s.sigma_sum);
      });
    }
  });

  describe('blame', () => {
    const spec = KEY_SPEC_REGISTRY.FROST_P256;
    const ids = pids(spec, [1, 2, 3, 4]);
    const keys = dkg(spec, 3, ids);
    const target = ids[0]!;
    const helpers = [ids[1]!, ids[2]!, ids[3]!];
    const g = keys.get(ids[1]!)!.public.commitments[0]!;
    const Fn = spec.Point.Fn;
    const expectBlame = (out: ReturnType<typeof runRepair>, culprit: string, reason: string) => {
      expect(out.errors.size).toBeGreaterThan(0);
      expect(out.results.has(target)).toBe(false);
      for (const e of out.errors.values()) {
        expect((e as KmsError).code).toBe('ParticipantMisbehaved');
        expect((e as KmsError).culprits).toMatchObject([{ participant: culprit, reason }]);
      }
      expect(
        canSign(
          spec,
          helpers.map((h) => keys.get(h)!),
          g,
        ),
      ).toBe(true);
    };

    it('bad delta -> bad-share', () => {
      const liar = helpers[0]!;
      const out = runRepair(spec, keys, helpers, target, (env) =>
        env.header.round === 'repair.delta' && env.header.from === liar && env.header.to !== '*'
          ? { ...env, body: { delta: Fn.toBytes(Fn.add(Fn.fromBytes(env.body.delta), 1n)) } }
          : env,
      );
      expectBlame(out, liar, 'bad-share');
    });

    it('bad sigma -> bad-share', () => {
      const liar = helpers[1]!;
      const out = runRepair(spec, keys, helpers, target, (env) =>
        env.header.round === 'repair.sigma' && env.header.from === liar
          ? { ...env, body: { ...env.body, sigma: Fn.toBytes(Fn.add(Fn.fromBytes(env.body.sigma), 1n)) } }
          : env,
      );
      expectBlame(out, liar, 'bad-share');
    });

    it('deltas that do not add up to the weighted share -> wrong-group-key', () => {
      const liar = helpers[2]!;
      const out = runRepair(spec, keys, helpers, target, (env) =>
        env.header.round === 'repair.delta' && env.header.from === liar && env.header.to === '*'
          ? { ...env, body: { commitments: [spec.Point.BASE.toBytes(), ...env.body.commitments.slice(1)] } }
          : env,
      );
      expectBlame(out, liar, 'wrong-group-key');
    });

    it('wrong-length delta commitments -> wrong-vector-length', () => {
      const liar = helpers[0]!;
      const out = runRepair(spec, keys, helpers, target, (env) =>
        env.header.round === 'repair.delta' && env.header.from === liar && env.header.to === '*'
          ? { ...env, body: { commitments: env.body.commitments.slice(1) } }
          : env,
      );
      expectBlame(out, liar, 'wrong-vector-length');
    });

    it('different delta commitments to the target -> equivocation', () => {
      const liar = helpers[1]!;
      // The target sees a permuted (still summing correctly) vector; helpers see the real one.
      const out = runRepair(spec, keys, helpers, target, (env, to) =>
        env.header.round === 'repair.delta' &&
        env.header.from === liar &&
        env.header.to === '*' &&
        to === target
          ? { ...env, body: { commitments: [...env.body.commitments].reverse() } }
          : env,
      );
      expectBlame(out, liar, 'equivocation');
    });
  });
});
