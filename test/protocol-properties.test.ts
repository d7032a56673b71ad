/**
 * Property tests over random (t, n), every suite (threats S-06, S-09, and "corrupting any message
 * is rejected and blames the right party"). Run counts are small: noble's ed25519/ed448 cost tens of
 * milliseconds per operation, so large committees run on the dealer path and few DKG runs.
 */
import fc from 'fast-check';
import { propertyOptions } from './helpers/properties.ts';
import { describe, expect, it } from 'vitest';
import { dkgMachine } from '../protocol/dkg.ts';
import type { DkgResult } from '../protocol/dkg.ts';
import { KmsError, ProtocolError } from '../protocol/errors.ts';
import { asEpoch, asKeyId, asSessionId, type ParticipantId } from '../protocol/ids.ts';
import type { Envelope } from '../protocol/machine.ts';
import { aggregate, signerCommit, signerSign, sortCommitments } from '../protocol/sign.ts';
import { simulate } from '../protocol/simulate.ts';
import { KEY_SPECS, type KeySpec, keySpec, verifySignature } from '../protocol/suites.ts';
import type { FrostPublic, Key } from '@noble/curves/abstract/frost.js';

const SLOW = new Set(['FROST_ED25519', 'FROST_ED448']);
const msg = new TextEncoder().encode('property message');
const E0 = asEpoch(0);

const ids = (spec: KeySpec, n: number) =>
  Array.from({ length: n }, (_, i) => spec.frost.Identifier.fromNumber(i + 1) as ParticipantId);
const tn = (maxN: number) =>
  fc.integer({ min: 2, max: maxN }).chain((n) => fc.tuple(fc.integer({ min: 2, max: n }), fc.constant(n)));

function runDkg(spec: KeySpec, t: number, n: number, tamper?: Parameters<typeof simulate>[1]) {
  const P = ids(spec, n);
  return simulate(
    P.map((self) =>
      dkgMachine({
        spec,
        keyId: asKeyId('key-p'),
        sessionId: asSessionId('sess-p'),
        self,
        participants: P,
        threshold: t,
      }),
    ),
    tamper,
  );
}

function sign(spec: KeySpec, pub: FrostPublic, keys: Key[]): Uint8Array {
  const cs = keys.map((key) => signerCommit({ spec, key, epoch: E0 }));
  const commitments = sortCommitments(
    spec,
    cs.map((c) => c.commitment),
  );
  const shares = cs.map((c) => signerSign(c.state, { message: msg, commitments }));
  return aggregate({ spec, public: pub, epoch: E0, commitments, shares, message: msg });
}

/** t of n sign; t-1 are refused by the API, and interpolating t-1 shares gives the wrong key. */
function thresholdHolds(
  spec: KeySpec,
  pub: FrostPublic,
  keys: Key[],
  subset: number[],
  t: number,
  publicKey: Uint8Array,
) {
  const chosen = subset.slice(0, t).map((i) => keys[i]!);
  expect(verifySignature(spec, msg, sign(spec, pub, chosen), publicKey)).toBe(true);
  const fewer = chosen.slice(0, t - 1);
  const cs = fewer.map((key) => signerCommit({ spec, key, epoch: E0 }));
  const commitments = sortCommitments(
    spec,
    cs.map((c) => c.commitment),
  );
  expect(() => signerSign(cs[0]!.state, { message: msg, commitments })).toThrowError(KmsError);
  if (t - 1 >= 2) {
    const secret = spec.frost.combineSecret(
      fewer.map((k) => k.secret),
      { min: t - 1, max: keys.length },
    );
    expect(verifySignature(spec, msg, spec.frost.sign(msg, secret), publicKey)).toBe(false);
  } else {
    // One share alone: as a signing key it is not the group key.
    const one = fewer[0]!.secret.signingShare;
    expect(verifySignature(spec, msg, spec.frost.sign(msg, one), publicKey)).toBe(false);
  }
}

describe.each(KEY_SPECS.map((n) => keySpec(n)))('$name properties', (spec) => {
  const slow = SLOW.has(spec.name);

  it('dealer keys, n up to 15: any t of n sign, t-1 cannot', () => {
    fc.assert(
      fc.property(
        tn(15).chain(([t, n]) =>
          fc.tuple(
            fc.constant(t),
            fc.constant(n),
            fc.shuffledSubarray([...Array(n).keys()], { minLength: n, maxLength: n }),
          ),
        ),
        ([t, n, order]) => {
          const dealt = spec.frost.trustedDealer({ min: t, max: n });
          const keys = ids(spec, n).map((id) => ({ public: dealt.public, secret: dealt.secretShares[id]! }));
          const el = dealt.public.commitments[0]!;
          const pk = spec.publicKeyEncoding === 'bip340-xonly' ? el.slice(1) : el;
          thresholdHolds(spec, dealt.public, keys, order, t, pk);
        },
      ),
      propertyOptions(slow ? 2 : 4, { examples: [[[15, 15, [...Array(15).keys()].reverse()]]] }),
    );
  });

  it('DKG keys: every honest party agrees, any t of n sign, t-1 cannot', () => {
    fc.assert(
      fc.property(
        tn(slow ? 4 : 7).chain(([t, n]) =>
          fc.tuple(
            fc.constant(t),
            fc.constant(n),
            fc.shuffledSubarray([...Array(n).keys()], { minLength: n, maxLength: n }),
          ),
        ),
        ([t, n, order]) => {
          const r = runDkg(spec, t, n);
          expect(r.errors.size).toBe(0);
          const res = ids(spec, n).map((p) => r.results.get(p)!);
          for (const x of res) expect(x.groupElement).toEqual(res[0]!.groupElement);
          thresholdHolds(
            spec,
            res[0]!.key.public,
            res.map((x) => x.key),
            order,
            t,
            res[0]!.publicKey,
          );
        },
      ),
      propertyOptions(slow ? 1 : 2),
    );
  });

  it('corrupting any one DKG delivery is rejected and blames its sender', () => {
    let corruptedRuns = 0;
    fc.assert(
      fc.property(tn(slow ? 3 : 4), fc.nat(), fc.nat(), (tnv, pick, bytePick) => {
        const [t, n] = tnv;
        const deliveries = 4 * n * (n - 1);
        const target = pick % deliveries;
        let count = 0;
        let victimSender: ParticipantId | undefined;
        const r = runDkg(spec, t, n, (env: Envelope<any>, recipient) => {
          if (count++ !== target) return env;
          const corrupted = corrupt(env, bytePick, recipient);
          if (corrupted === env) return env;
          victimSender = env.header.from;
          return corrupted;
        });
        if (victimSender === undefined) {
          // The chosen delivery was never made (an earlier abort) or had nothing to corrupt.
          return;
        }
        corruptedRuns++;
        const errs = [...r.errors.entries()].filter(([who]) => who !== victimSender);
        expect(errs.length).toBeGreaterThan(0);
        for (const [, e] of errs) {
          expect(e).toBeInstanceOf(ProtocolError);
          expect((e as ProtocolError).code).toBe('ParticipantMisbehaved');
          for (const c of (e as ProtocolError).culprits) expect(c.participant).toBe(victimSender);
        }
        const keys = new Set(
          [...r.results.values()].map((x: DkgResult) => Buffer.from(x.groupElement).toString('hex')),
        );
        expect(keys.size).toBeLessThanOrEqual(1);
      }),
      propertyOptions(slow ? 2 : 6, { examples: [[[2, 3], 0, 5]] }),
    );
    expect(corruptedRuns).toBeGreaterThan(0);
  });
});

/** Flips one bit of one byte string in the body (for an echo: only in the reporter's own entry). */
function corrupt(env: Envelope<any>, pick: number, _recipient: ParticipantId): Envelope<any> {
  const body = env.body as Record<string, unknown>;
  const fields: { get: () => Uint8Array; set: (b: Uint8Array) => Record<string, unknown> }[] = [];
  for (const [k, v] of Object.entries(body)) {
    if (v instanceof Uint8Array) fields.push({ get: () => v, set: (b) => ({ ...body, [k]: b }) });
    if (Array.isArray(v)) {
      v.forEach((x, i) => {
        if (x instanceof Uint8Array)
          fields.push({ get: () => x, set: (b) => ({ ...body, [k]: v.map((y, j) => (j === i ? b : y)) }) });
      });
    }
    if (k === 'proof' && v && typeof v === 'object') {
      for (const [pk, pv] of Object.entries(v as Record<string, Uint8Array>)) {
        fields.push({ get: () => pv, set: (b) => ({ ...body, proof: { ...(v as object), [pk]: b } }) });
      }
    }
    if (k === 'digests' && v && typeof v === 'object') {
      // An echo misreporting a third party cannot be told apart from that party equivocating without
      // signatures; the echo's own entry is attributable to the reporter.
      const own = (v as Record<string, Uint8Array>)[env.header.from]!;
      fields.push({
        get: () => own,
        set: (b) => ({ ...body, digests: { ...(v as object), [env.header.from]: b } }),
      });
    }
  }
  if (fields.length === 0) return env;
  const f = fields[pick % fields.length]!;
  const b = f.get().slice();
  const at = Math.floor(pick / fields.length) % b.length;
  b[at] = b[at]! ^ (1 << (pick % 8));
  return { ...env, body: f.set(b) };
}
