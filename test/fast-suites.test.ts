/**
 * The fast signing path of FROST(secp256k1, SHA-256), FROST(P-256, SHA-256), FROST(ristretto255,
 * SHA-512) and FROST(Ed448, SHAKE256) (protocol/fast-sign.ts on libsecp256k1, OpenSSL + noble,
 * libsodium and noble + OpenSSL) against noble's FROST, the reference: every RFC 9591 vector gives
 * the vector's nonces, commitments, shares and signature; randomized runs with the same nonces give
 * byte-identical commitments, shares, signatures and culprits; every invalid element is refused
 * exactly where noble refuses it; Ed448's subgroup check decides as noble's isTorsionFree.
 */
import type { FrostPublic, NonceCommitments } from '@noble/curves/abstract/frost.js';
import { ed448 } from '@noble/curves/ed448.js';
import { bytesToHex, hexToBytes } from '@noble/hashes/utils.js';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { p256 } from '@noble/curves/nist.js';
import { ed448InPrimeOrderSubgroup } from '../protocol/backend-ed448-subgroup.ts';
import { p256OpenSsl } from '../protocol/backend-p256-openssl.ts';
import { decodeElementNoble } from '../protocol/elements.ts';
import { DecodeError } from '../protocol/errors.ts';
import {
  checkElement,
  fastFrost,
  type FrostSigning,
  forgetValidatedElements,
  signingFrost,
} from '../protocol/fast-sign.ts';
import { type KeySpec, type KeySpecName, keySpec } from '../protocol/suites.ts';
import { propertyOptions } from './helpers/properties.ts';
import { expectSameCheaters, runSigningVector } from './helpers/fast-vectors.ts';
import { seeded } from './helpers/rng.ts';
import { loadInvalidElements, loadVectors } from './helpers/vectors.ts';

const SUITES: readonly KeySpecName[] = ['FROST_SECP256K1', 'FROST_P256', 'FROST_RISTRETTO255', 'FROST_ED448'];
/** Randomized runs per property: Ed448 costs ~80 ms per noble session. */
const runs = (name: KeySpecName, n: number) => (name === 'FROST_ED448' ? Math.max(2, Math.floor(n / 4)) : n);

/** What happens when `f` runs: its result as hex, or 'throws'. */
function outcome(f: () => Uint8Array | boolean): string {
  try {
    const r = f();
    return typeof r === 'boolean' ? String(r) : bytesToHex(r);
  } catch {
    return 'throws';
  }
}

/** Both implementations through one session with the same nonces. */
function bothSessions(
  spec: KeySpec,
  fast: FrostSigning,
  deal: ReturnType<KeySpec['frost']['trustedDealer']>,
  ids: string[],
  msg: Uint8Array,
  seed: number,
) {
  const out = [fast, spec.frost].map((impl) => {
    forgetValidatedElements();
    const rng = seeded(seed);
    const gens = ids.map((id) => impl.commit(deal.secretShares[id]!, rng));
    const list = gens.map((g) => g.commitments);
    const shares: Record<string, Uint8Array> = {};
    ids.forEach((id, i) => {
      shares[id] = impl.signShare(deal.secretShares[id]!, deal.public, gens[i]!.nonces, list, msg);
    });
    return { gens, list, shares, sig: impl.aggregate(deal.public, list, msg, shares) };
  });
  return { fast: out[0]!, noble: out[1]! };
}

const nobleAccepts = (spec: KeySpec, b: Uint8Array) => {
  try {
    decodeElementNoble(spec, b);
    return true;
  } catch {
    return false;
  }
};
const fastAccepts = (spec: KeySpec, b: Uint8Array) => {
  try {
    checkElement(spec, b);
    return true;
  } catch (e) {
    if (!(e instanceof DecodeError) || e.code !== 'InvalidElement') throw e;
    return false;
  }
};

/** Little-endian / big-endian fixed-width encodings of a non-negative integer. */
const le = (v: bigint, n: number) =>
  Uint8Array.from({ length: n }, (_, i) => Number((v >> BigInt(8 * i)) & 0xffn));
const be = (v: bigint, n: number) => le(v, n).reverse();

/** Candidate encodings for one suite: the vectors' invalid elements, edge cases, valid points, noise. */
function candidates(spec: KeySpec): { what: string; bytes: Uint8Array }[] {
  const out: { what: string; bytes: Uint8Array }[] = [];
  for (const hex of loadInvalidElements(spec))
    out.push({ what: `elements.json ${hex}`, bytes: hexToBytes(hex) });
  const Ne = spec.elementLength;
  const P = spec.Point as any;
  const valid = [1n, 2n, 3n, 987654321n, 2n ** 200n + 12345n].map(
    (k) => P.BASE.multiply(k).toBytes() as Uint8Array,
  );
  for (const [i, b] of valid.entries()) out.push({ what: `valid ${i}`, bytes: b });
  const p: bigint = P.Fp.ORDER;
  if (spec.curve === 'secp256k1' || spec.curve === 'p256') {
    for (const [i, b] of valid.entries()) {
      for (const prefix of [0x00, 0x01, 0x04, 0x05, 0x06, 0x07, 0xff]) {
        const c = b.slice();
        c[0] = prefix;
        out.push({ what: `valid ${i} prefix ${prefix}`, bytes: c });
      }
      const flipped = b.slice();
      flipped[0] = b[0] === 0x02 ? 0x03 : 0x02;
      out.push({ what: `valid ${i} negated`, bytes: flipped });
      // The uncompressed form of a valid point: not SerializeElement's.
      out.push({ what: `valid ${i} uncompressed`, bytes: P.fromBytes(b).toBytes(false) });
    }
    // x ≥ p (x + p for small x), and small x values, with both prefixes.
    for (let x = 0n; x < 12n; x++) {
      for (const prefix of [0x02, 0x03]) {
        out.push({ what: `x=${x} prefix ${prefix}`, bytes: Uint8Array.of(prefix, ...be(x, 32)) });
        if (x + p < 2n ** 256n)
          out.push({ what: `x=${x}+p prefix ${prefix}`, bytes: Uint8Array.of(prefix, ...be(x + p, 32)) });
      }
    }
    out.push({ what: 'all ones', bytes: new Uint8Array(33).fill(0xff) });
  }
  if (spec.curve === 'ristretto255') {
    // Non-canonical s (≥ p, or odd: "negative"), the identity, small values.
    for (let s = 0n; s < 20n; s++) {
      out.push({ what: `s=${s}`, bytes: le(s, 32) });
      out.push({ what: `s=${s}+p`, bytes: le(s + p, 32) });
    }
    for (const [i, b] of valid.entries()) {
      const c = b.slice();
      c[31]! |= 0x80;
      out.push({ what: `valid ${i} high bit`, bytes: c });
      const odd = b.slice();
      odd[0]! ^= 1;
      out.push({ what: `valid ${i} low bit flipped`, bytes: odd });
    }
  }
  if (spec.curve === 'ed448') {
    // The 4-torsion ((0,±1), (±1,0)) and prime-order points plus each torsion point.
    const torsion = [
      P.fromAffine({ x: 0n, y: p - 1n }),
      P.fromAffine({ x: 1n, y: 0n }),
      P.fromAffine({ x: p - 1n, y: 0n }),
    ];
    out.push({ what: 'identity', bytes: P.ZERO.toBytes() });
    for (const [j, T] of torsion.entries()) {
      out.push({ what: `torsion ${j}`, bytes: T.toBytes() });
      for (const k of [1n, 5n, 987654321n, 2n ** 400n + 7n])
        out.push({ what: `mixed ${k}+T${j}`, bytes: P.BASE.multiply(k).add(T).toBytes() });
    }
    // Non-canonical y (y + p), the x sign bit on x = 0, and bits the encoding must keep zero.
    for (let y = 0n; y < 8n; y++) out.push({ what: `y=${y}+p`, bytes: le(y + p, 57) });
    const signOnOne = le(1n, 57);
    signOnOne[56] = 0x80;
    out.push({ what: 'y=1 with x sign', bytes: signOnOne });
    for (const [i, b] of valid.entries()) {
      const c = b.slice();
      c[56] = (c[56]! ^ 0x80) & 0xff;
      out.push({ what: `valid ${i} negated`, bytes: c });
      const d = b.slice();
      d[56] = d[56]! | 0x01;
      out.push({ what: `valid ${i} stray bit`, bytes: d });
    }
  }
  const rng = seeded(1234 + Ne);
  for (let i = 0; i < 60; i++) {
    const b = rng(Ne);
    // Half with a plausible SEC1 prefix, so the curve check (not only the prefix) is exercised.
    if ((spec.curve === 'secp256k1' || spec.curve === 'p256') && i % 2 === 0) b[0] = 0x02 | (i & 1);
    if (spec.curve === 'ed448' && i % 2 === 0) b[56] = b[56]! & 0x80;
    out.push({ what: `random ${i}`, bytes: b });
  }
  out.push({ what: 'short', bytes: new Uint8Array(Ne - 1) });
  out.push({ what: 'long', bytes: new Uint8Array(Ne + 1) });
  return out;
}

for (const name of SUITES) {
  const spec = keySpec(name);
  const noble = spec.frost;
  const fast = fastFrost(spec) as FrostSigning;
  const Fn = noble.utils.Fn;

  describe(`${name} fast path: RFC 9591 vectors`, () => {
    it('is the path sign.ts uses', () => {
      expect(fast).toBeDefined();
      expect(signingFrost(spec)).toBe(fast);
      expect(fast).not.toBe(noble);
    });

    for (const { name: file, vector: v } of loadVectors(spec)) {
      it(`${file}: nonces, commitments, shares, aggregate signature`, () => {
        const { sig, pub, msg } = runSigningVector(spec, fast, v);
        expect(noble.verify(sig, msg, pub.commitments[0]!)).toBe(true);
        if (name === 'FROST_ED448') expect(ed448.verify(sig, msg, pub.commitments[0]!)).toBe(true);
      });
    }
  });

  describe(`${name} fast path: randomized cross-checks against noble`, () => {
    it('same nonces give byte-identical commitments, shares and signatures', () => {
      fc.assert(
        fc.property(
          fc.integer({ min: 2, max: 5 }),
          fc.integer({ min: 0, max: 2 }),
          fc.uint8Array({ minLength: 0, maxLength: 80 }),
          fc.integer(),
          fc.boolean(),
          (t, extra, msg, seed, derived) => {
            const n = t + extra;
            const ids = derived
              ? Array.from({ length: n }, (_, i) => noble.Identifier.derive(`node-${seed}-${i}`))
              : undefined;
            const deal = noble.trustedDealer({ min: t, max: n }, ids);
            const all = Object.keys(deal.secretShares);
            const k = t + (Math.abs(seed) % (n - t + 1));
            const signers = all.slice(0, k).reverse();
            const r = bothSessions(spec, fast, deal, signers, msg, seed);
            expect(r.fast.gens).toEqual(r.noble.gens);
            expect(r.fast.shares).toEqual(r.noble.shares);
            expect(bytesToHex(r.fast.sig)).toBe(bytesToHex(r.noble.sig));
            expect(noble.verify(r.fast.sig, msg, deal.public.commitments[0]!)).toBe(true);
            for (const id of signers) {
              expect(fast.verifyShare(deal.public, r.fast.list, msg, id, r.fast.shares[id]!)).toBe(true);
            }
          },
        ),
        propertyOptions(runs(name, 12)),
      );
    });

    it('names exactly the signers noble names when shares are corrupted (RFC 9591 §5.4)', () => {
      fc.assert(
        fc.property(fc.integer(), fc.array(fc.nat(), { minLength: 1, maxLength: 3 }), (seed, bad) => {
          const deal = noble.trustedDealer({ min: 3, max: 4 });
          const ids = Object.keys(deal.secretShares).slice(0, 3);
          const msg = new TextEncoder().encode(`message ${seed}`);
          const r = bothSessions(spec, fast, deal, ids, msg, seed);
          expectSameCheaters(spec, fast, {
            pub: deal.public,
            list: r.fast.list,
            msg,
            ids,
            shares: r.fast.shares,
            bad,
          });
        }),
        propertyOptions(runs(name, 6)),
      );
    });

    it('refuses what noble refuses in round two: reused or altered nonces, altered own commitment, wrong list size', () => {
      const deal = noble.trustedDealer({ min: 3, max: 5 });
      const ids = Object.keys(deal.secretShares).slice(0, 3);
      const msg = new Uint8Array([1, 2, 3]);
      for (const impl of [fast, noble]) {
        const rng = seeded(7);
        const gens = ids.map((id) => impl.commit(deal.secretShares[id]!, rng));
        const list = gens.map((g) => g.commitments);
        const [a, b] = [deal.secretShares[ids[0]!]!, deal.secretShares[ids[1]!]!];
        const swapped = list.map((c, i) => (i === 0 ? { ...c, hiding: list[1]!.hiding } : c));
        expect(outcome(() => impl.signShare(a, deal.public, gens[0]!.nonces, swapped, msg))).toBe('throws');
        expect(outcome(() => impl.signShare(a, deal.public, gens[0]!.nonces, list.slice(0, 2), msg))).toBe(
          'throws',
        );
        expect(outcome(() => impl.signShare(a, deal.public, gens[0]!.nonces, list.slice(1), msg))).toBe(
          'throws',
        );
        // Nonces changed after commit (the remembered commitments no longer apply): refused.
        const altered = { hiding: gens[2]!.nonces.hiding.slice(), binding: gens[2]!.nonces.binding.slice() };
        altered.hiding[altered.hiding.length - 1]! ^= 1;
        const copy = gens[2]!.nonces.hiding.slice();
        gens[2]!.nonces.hiding.set(altered.hiding);
        expect(
          outcome(() => impl.signShare(deal.secretShares[ids[2]!]!, deal.public, gens[2]!.nonces, list, msg)),
        ).toBe('throws');
        gens[2]!.nonces.hiding.set(copy);
        // Signs once; the nonces are zeroed, so a second use is refused.
        expect(outcome(() => impl.signShare(a, deal.public, gens[0]!.nonces, list, msg))).not.toBe('throws');
        expect(gens[0]!.nonces.hiding.every((x) => x === 0)).toBe(true);
        expect(outcome(() => impl.signShare(a, deal.public, gens[0]!.nonces, list, msg))).toBe('throws');
        expect(outcome(() => impl.signShare(b, deal.public, gens[0]!.nonces, list, msg))).toBe('throws');
        const s1 = impl.signShare(b, deal.public, gens[1]!.nonces, list, msg);
        expect(outcome(() => impl.aggregate(deal.public, list, msg, { [ids[1]!]: s1 }))).toBe('throws');
      }
    });
  });

  describe(`${name} fast path: invalid elements rejected exactly where noble rejects them`, () => {
    const all = candidates(spec);

    it('element check agrees with noble on every candidate (twice: cold and cached)', () => {
      const accepted = all.filter((c) => nobleAccepts(spec, c.bytes));
      expect(accepted.length).toBeGreaterThanOrEqual(5);
      expect(all.length - accepted.length).toBeGreaterThan(40);
      for (let pass = 0; pass < 2; pass++) {
        if (pass === 0) forgetValidatedElements();
        for (const c of all)
          expect([c.what, fastAccepts(spec, c.bytes)]).toEqual([c.what, nobleAccepts(spec, c.bytes)]);
      }
    });

    it('an invalid element anywhere in a session fails in both (commitments, group key, verifying share)', () => {
      const bad = all
        .filter((c) => c.bytes.length === spec.elementLength && !nobleAccepts(spec, c.bytes))

        // A spread over the kinds (vector elements, torsion, non-canonical, off-curve, noise).
        .filter((_, i, arr) => i % Math.ceil(arr.length / (name === 'FROST_ED448' ? 6 : 12)) === 0);
      const deal = noble.trustedDealer({ min: 2, max: 3 });
      const ids = Object.keys(deal.secretShares).slice(0, 2);
      const msg = new Uint8Array([9]);
      for (const c of bad) {
        for (const where of ['hiding', 'binding', 'group key', 'verifying share'] as const) {
          const results = [fast, noble].map((impl) => {
            const rng = seeded(5);
            const gens = ids.map((id) => impl.commit(deal.secretShares[id]!, rng));
            const list: NonceCommitments[] = gens.map((g) => ({ ...g.commitments }));
            const pub: FrostPublic = {
              ...deal.public,
              commitments: [...deal.public.commitments],
              verifyingShares: { ...deal.public.verifyingShares },
            } as FrostPublic;
            if (where === 'hiding') list[1] = { ...list[1]!, hiding: c.bytes as NonceCommitments['hiding'] };
            if (where === 'binding')
              list[1] = { ...list[1]!, binding: c.bytes as NonceCommitments['binding'] };
            if (where === 'group key') (pub.commitments as Uint8Array[])[0] = c.bytes;
            if (where === 'verifying share')
              (pub.verifyingShares as Record<string, Uint8Array>)[ids[1]!] = c.bytes;
            const sign = outcome(() =>
              impl.signShare(deal.secretShares[ids[0]!]!, pub, gens[0]!.nonces, list, msg),
            );
            const verify = outcome(() => impl.verifyShare(pub, list, msg, ids[1]!, Fn.toBytes(7n)));
            return { sign, verify };
          });
          expect([c.what, where, results[0]]).toEqual([c.what, where, results[1]]);
          if (where !== 'verifying share') expect(results[0]!.sign).toBe('throws');
          else expect(results[0]!.verify).toBe('throws');
        }
      }
    });
  });
}

describe('Ed448 prime-order subgroup check (backend-ed448-subgroup.ts)', () => {
  const P = ed448.Point;
  const p = P.Fp.ORDER;
  const torsion = [
    P.ZERO,
    P.fromAffine({ x: 0n, y: p - 1n }),
    P.fromAffine({ x: 1n, y: 0n }),
    P.fromAffine({ x: p - 1n, y: 0n }),
  ];

  it('decides as noble’s isTorsionFree on k·G + T for every 4-torsion point T', () => {
    fc.assert(
      fc.property(fc.bigInt({ min: 1n, max: P.Fn.ORDER - 1n }), (k) => {
        const G = P.BASE.multiply(k);
        for (const T of torsion) {
          const Q = G.add(T);
          const { x, y } = Q.toAffine();
          expect(ed448InPrimeOrderSubgroup(x, y)).toBe(Q.isTorsionFree());
        }
      }),
      propertyOptions(25),
    );
  });

  it('decides as noble on points decoded from random encodings, and on the torsion points themselves', () => {
    const rng = seeded(448);
    let decoded = 0;
    for (let i = 0; i < 300; i++) {
      const b = rng(57);
      b[56] = b[56]! & 0x80;
      let Q: ReturnType<typeof P.fromBytes>;
      try {
        Q = P.fromBytes(b);
      } catch {
        continue;
      }
      decoded++;
      const { x, y } = Q.toAffine();
      expect(ed448InPrimeOrderSubgroup(x, y)).toBe(Q.isTorsionFree());
    }
    expect(decoded).toBeGreaterThan(100);
    for (const T of torsion) {
      const { x, y } = T.toAffine();
      expect(ed448InPrimeOrderSubgroup(x, y)).toBe(T.isTorsionFree());
    }
  });
});

describe('P-256 aggregate equation from x-only multiplications (backend-p256-openssl.ts)', () => {
  const P = p256.Point;
  const n = P.Fn.ORDER;
  const eq = p256OpenSsl.schnorrEquation!;

  it('holds exactly when [z]G = R + [c]PK; the mirror R = [z]G + [c]PK (same x of [c]PK) is refused', () => {
    fc.assert(
      fc.property(
        fc.bigInt({ min: 1n, max: n - 1n }),
        fc.bigInt({ min: 1n, max: n - 3n }),
        fc.bigInt({ min: 1n, max: n - 1n }),
        (z, c, sk) => {
          const PK = P.BASE.multiply(sk);
          const cPK = PK.multiply(c);
          const zG = P.BASE.multiply(z);
          const good = zG.subtract(cPK);
          fc.pre(!good.is0() && !zG.add(cPK).is0() && !good.add(P.BASE).is0());
          const pk = PK.toBytes();
          expect(eq(good.toBytes(), z, pk, c)).toBe(true);
          // T = [z]G - R = -[c]PK: x(T) = x([c]PK), only the second check tells them apart.
          expect(eq(zG.add(cPK).toBytes(), z, pk, c)).toBe(false);
          expect(eq(good.add(P.BASE).toBytes(), z, pk, c)).toBe(false);
          expect(eq(good.toBytes(), z, pk, c + 1n)).toBe(false);
          expect(eq(good.negate().toBytes(), z, pk, c)).toBe(false);
        },
      ),
      propertyOptions(25),
    );
  });

  it('does not decide (false) where the argument needs c ≠ 0 and c + 1 ≠ 0', () => {
    const PK = P.BASE.multiply(12345n).toBytes();
    const R = P.BASE.multiply(777n).toBytes();
    expect(eq(R, 5n, PK, 0n)).toBe(false);
    expect(eq(R, 5n, PK, n - 1n)).toBe(false);
    expect(eq(R, 0n, PK, 3n)).toBe(false);
  });
});

describe('P-256 variable-base multiplication from x-only multiplications (backend-p256-openssl.ts)', () => {
  const P = p256.Point;
  const n = P.Fn.ORDER;

  it('equals noble’s multiply for random and edge scalars, through the group.ts elements too', () => {
    fc.assert(
      fc.property(fc.bigInt({ min: 1n, max: n - 1n }), fc.bigInt({ min: 1n, max: n - 1n }), (sk, k) => {
        const A = P.BASE.multiply(sk);
        const want = A.multiply(k);
        expect(p256OpenSsl.mulPoint(A, k).equals(want)).toBe(true);
        expect(bytesToHex(p256OpenSsl.mul(A.toBytes(), k))).toBe(bytesToHex(want.toBytes()));
      }),
      propertyOptions(40),
    );
    const A = P.BASE.multiply(987654321n);
    for (const k of [1n, 2n, 3n, (1n << 96n) - 1n, 1n << 96n, n - 1n, n - 2n, (n - 1n) / 2n, (n + 1n) / 2n]) {
      expect([k, p256OpenSsl.mulPoint(A, k).equals(A.multiply(k))]).toEqual([k, true]);
    }
    // [k]P with [k]P = -P's neighbours and P itself as the result (Q + P = O for one candidate).
    expect(p256OpenSsl.mulPoint(A, 1n).equals(A)).toBe(true);
  });
});
