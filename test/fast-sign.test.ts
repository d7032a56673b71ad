/**
 * The fast signing path (protocol/fast-sign.ts on protocol/backend-ed25519-sodium.ts) against noble,
 * the reference: every RFC 9591 vector gives the vector's nonces, commitments, shares and signature;
 * randomized runs with the same nonces give byte-identical shares, signatures and culprits, and the
 * signatures verify with noble and OpenSSL; every invalid element is rejected exactly where noble
 * rejects it (elements.json, small-order and mixed-order points, non-canonical encodings).
 */
import { createPublicKey, verify as cryptoVerify } from 'node:crypto';
import type { DealerShares, FrostPublic, NonceCommitments } from '@noble/curves/abstract/frost.js';
import { ed25519 } from '@noble/curves/ed25519.js';
import { bytesToHex, hexToBytes } from '@noble/hashes/utils.js';
import fc from 'fast-check';
import { propertyOptions } from './helpers/properties.ts';
import { describe, expect, it } from 'vitest';
import { decodeElement, decodeElementNoble } from '../protocol/elements.ts';
import { DecodeError } from '../protocol/errors.ts';
import { checkElement, fastFrost, type FrostSigning, signingFrost } from '../protocol/fast-sign.ts';
import { keySpec } from '../protocol/suites.ts';
import { loadInvalidElements, loadVectors } from './helpers/vectors.ts';
import { expectSameCheaters, runSigningVector } from './helpers/fast-vectors.ts';
import { seeded } from './helpers/rng.ts';

const spec = keySpec('FROST_ED25519');
const noble = spec.frost;
const fast = fastFrost(spec) as FrostSigning;
const Fn = spec.Point.Fn;

function opensslVerifies(pk: Uint8Array, msg: Uint8Array, sig: Uint8Array): boolean {
  const key = createPublicKey({
    key: { kty: 'OKP', crv: 'Ed25519', x: Buffer.from(pk).toString('base64url') },
    format: 'jwk',
  });
  return cryptoVerify(null, msg, key, sig);
}

/** What happens when `f` runs: its result as hex, or 'throws'. */
function outcome(f: () => Uint8Array | boolean): string {
  try {
    const r = f();
    return typeof r === 'boolean' ? String(r) : bytesToHex(r);
  } catch {
    return 'throws';
  }
}

describe('FROST_ED25519 fast path: RFC 9591 vectors', () => {
  it('is the path sign.ts uses for Ed25519 (the other suites: test/fast-suites.test.ts)', () => {
    expect(signingFrost(spec)).toBe(fast);
    expect(fast).not.toBe(noble);
  });

  for (const { name, vector: v } of loadVectors(spec)) {
    it(`${name}: nonces, commitments, shares, aggregate signature`, () => {
      const { sig, pub, msg } = runSigningVector(spec, fast, v);
      expect(ed25519.verify(sig, msg, pub.commitments[0]!, { zip215: false })).toBe(true);
      expect(opensslVerifies(pub.commitments[0]!, msg, sig)).toBe(true);
    });
  }
});

type Run = {
  deal: DealerShares;
  ids: string[];
  msg: Uint8Array;
};

/** Both implementations through one session with the same nonces; returns both transcripts. */
function bothSessions(run: Run, seed: number) {
  const { deal, ids, msg } = run;
  const out = [fast, noble].map((impl) => {
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

describe('FROST_ED25519 fast path: randomized cross-checks against noble', () => {
  it('same nonces give byte-identical commitments, shares and signatures, which noble and OpenSSL verify', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 2, max: 6 }),
        fc.integer({ min: 0, max: 3 }),
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
          // A random t..n subset of signers, in arbitrary order (both sort by identifier).
          const k = t + (Math.abs(seed) % (n - t + 1));
          const signers = all.slice(0, k).reverse();
          const r = bothSessions({ deal, ids: signers, msg }, seed);
          expect(r.fast.gens).toEqual(r.noble.gens);
          expect(r.fast.shares).toEqual(r.noble.shares);
          expect(bytesToHex(r.fast.sig)).toBe(bytesToHex(r.noble.sig));
          const pk = deal.public.commitments[0]!;
          expect(ed25519.verify(r.fast.sig, msg, pk, { zip215: false })).toBe(true);
          expect(noble.verify(r.fast.sig, msg, pk)).toBe(true);
          expect(opensslVerifies(pk, msg, r.fast.sig)).toBe(true);
          for (const id of signers) {
            expect(fast.verifyShare(deal.public, r.fast.list, msg, id, r.fast.shares[id]!)).toBe(true);
          }
        },
      ),
      propertyOptions(25),
    );
  });

  it('names exactly the signers noble names when shares are corrupted (RFC 9591 §5.4)', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 3, max: 5 }),
        fc.integer(),
        fc.array(fc.nat(), { minLength: 1, maxLength: 3 }),
        (t, seed, bad) => {
          const deal = noble.trustedDealer({ min: t, max: t + 1 });
          const ids = Object.keys(deal.secretShares).slice(0, t);
          const msg = new TextEncoder().encode(`message ${seed}`);
          const r = bothSessions({ deal, ids, msg }, seed);
          expectSameCheaters(spec, fast, {
            pub: deal.public,
            list: r.fast.list,
            msg,
            ids,
            shares: r.fast.shares,
            bad,
          });
        },
      ),
      propertyOptions(10),
    );
  });

  it('refuses what noble refuses in round two: reused nonces, altered own commitment, wrong list size', () => {
    const deal = noble.trustedDealer({ min: 3, max: 5 });
    const ids = Object.keys(deal.secretShares).slice(0, 3);
    const msg = new Uint8Array([1, 2, 3]);
    for (const impl of [fast, noble]) {
      const rng = seeded(7);
      const gens = ids.map((id) => impl.commit(deal.secretShares[id]!, rng));
      const list = gens.map((g) => g.commitments);
      const [a, b] = [deal.secretShares[ids[0]!]!, deal.secretShares[ids[1]!]!];
      // Own commitment swapped for another signer's: refused, nonces untouched.
      const swapped = list.map((c, i) => (i === 0 ? { ...c, hiding: list[1]!.hiding } : c));
      expect(outcome(() => impl.signShare(a, deal.public, gens[0]!.nonces, swapped, msg))).toBe('throws');
      // Too few signers for the key, and the signer missing from the list.
      expect(outcome(() => impl.signShare(a, deal.public, gens[0]!.nonces, list.slice(0, 2), msg))).toBe(
        'throws',
      );
      expect(outcome(() => impl.signShare(a, deal.public, gens[0]!.nonces, list.slice(1), msg))).toBe(
        'throws',
      );
      // Signs once; the nonces are zeroed, so a second use is refused.
      expect(outcome(() => impl.signShare(a, deal.public, gens[0]!.nonces, list, msg))).not.toBe('throws');
      expect(gens[0]!.nonces.hiding.every((x) => x === 0)).toBe(true);
      expect(outcome(() => impl.signShare(a, deal.public, gens[0]!.nonces, list, msg))).toBe('throws');
      // Another signer's share with these nonces is refused (its commitment does not match).
      expect(outcome(() => impl.signShare(b, deal.public, gens[0]!.nonces, list, msg))).toBe('throws');
      // Aggregation with a missing share, or a share from a signer outside the list.
      const s1 = impl.signShare(b, deal.public, gens[1]!.nonces, list, msg);
      expect(outcome(() => impl.aggregate(deal.public, list, msg, { [ids[1]!]: s1 }))).toBe('throws');
    }
  });
});

// ---- invalid elements ----

const P = 2n ** 255n - 19n;
/** Encodings of y (with the x sign bit) as RFC 8032 writes them, without reducing y mod p. */
const encodeY = (y: bigint, sign: boolean) => {
  const b = new Uint8Array(32);
  let v = y;
  for (let i = 0; i < 32; i++) {
    b[i] = Number(v & 0xffn);
    v >>= 8n;
  }
  if (sign) b[31]! |= 0x80;
  return b;
};

function candidates(): { what: string; bytes: Uint8Array }[] {
  const out: { what: string; bytes: Uint8Array }[] = [];
  for (const hex of loadInvalidElements(spec))
    out.push({ what: `elements.json ${hex}`, bytes: hexToBytes(hex) });
  // The eight small-order points (the torsion subgroup), including the identity.
  const torsion = [
    '0100000000000000000000000000000000000000000000000000000000000000',
    'ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f',
    '0000000000000000000000000000000000000000000000000000000000000000',
    '0000000000000000000000000000000000000000000000000000000000000080',
    '26e8958fc2b227b045c3f489f2ef98f0d5dfac05d3c63339b13802886d53fc05',
    '26e8958fc2b227b045c3f489f2ef98f0d5dfac05d3c63339b13802886d53fc85',
    'c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac037a',
    'c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac03fa',
  ];
  for (const hex of torsion) out.push({ what: `small order ${hex}`, bytes: hexToBytes(hex) });
  // Mixed order: a prime-order point plus each torsion point.
  const G = spec.Point.BASE.multiply(123456789n);
  for (const hex of torsion.slice(1)) {
    const T = spec.Point.fromBytes(hexToBytes(hex));
    out.push({ what: `mixed order G+${hex}`, bytes: G.add(T).toBytes() });
  }
  // Non-canonical y: y + p for every y < 19 (so y + p < 2^255), with both sign bits; and the
  // "negative zero" sign bit on the x = 0 points.
  for (let y = 0n; y < 19n; y++) {
    out.push({ what: `y=${y}+p`, bytes: encodeY(y + P, false) });
    out.push({ what: `y=${y}+p, sign`, bytes: encodeY(y + P, true) });
  }
  out.push({ what: 'y=1, x sign set', bytes: encodeY(1n, true) });
  // Valid points, and the same with the sign bit flipped (the negation: still valid).
  for (let k = 1n; k <= 4n; k++) {
    const good = spec.Point.BASE.multiply(k * 987654321n).toBytes();
    out.push({ what: `valid ${k}`, bytes: good });
    const flipped = good.slice();
    flipped[31]! ^= 0x80;
    out.push({ what: `valid ${k} negated`, bytes: flipped });
  }
  // Random 32-byte strings: about half are not on the curve, the rest mostly not prime order.
  const rng = seeded(99);
  for (let i = 0; i < 40; i++) out.push({ what: `random ${i}`, bytes: rng(32) });
  // Wrong lengths.
  out.push({ what: '31 bytes', bytes: new Uint8Array(31) });
  out.push({ what: '33 bytes', bytes: new Uint8Array(33) });
  return out;
}

const nobleAccepts = (b: Uint8Array) => {
  try {
    decodeElementNoble(spec, b);
    return true;
  } catch {
    return false;
  }
};
/** protocol/elements.ts decodeElement, which takes the libsodium fast path for Ed25519. */
const decodeAccepts = (b: Uint8Array) => {
  try {
    decodeElement(spec, b);
    return true;
  } catch (e) {
    if (!(e instanceof DecodeError) || e.code !== 'InvalidElement') throw e;
    return false;
  }
};
const fastAccepts = (b: Uint8Array) => {
  try {
    checkElement(spec, b);
    return true;
  } catch (e) {
    if (!(e instanceof DecodeError) || e.code !== 'InvalidElement') throw e;
    return false;
  }
};

describe('FROST_ED25519 fast path: invalid elements rejected exactly where noble rejects them', () => {
  const all = candidates();

  it('element check agrees with noble on every candidate (twice: cold and cached)', () => {
    const accepted = all.filter((c) => nobleAccepts(c.bytes));
    // The set has both kinds, so agreement is not vacuous.
    expect(accepted.length).toBeGreaterThanOrEqual(8);
    expect(all.length - accepted.length).toBeGreaterThan(60);
    for (let pass = 0; pass < 2; pass++) {
      for (const c of all) expect([c.what, fastAccepts(c.bytes)]).toEqual([c.what, nobleAccepts(c.bytes)]);
      for (const c of all) expect([c.what, decodeAccepts(c.bytes)]).toEqual([c.what, nobleAccepts(c.bytes)]);
    }
  });

  it('an invalid element anywhere in a session fails in both (commitments, group key, verifying share)', () => {
    const bad = all.filter((c) => c.bytes.length === 32 && !nobleAccepts(c.bytes)).slice(0, 30);
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
          if (where === 'binding') list[1] = { ...list[1]!, binding: c.bytes as NonceCommitments['binding'] };
          if (where === 'group key') (pub.commitments as Uint8Array[])[0] = c.bytes;
          if (where === 'verifying share')
            (pub.verifyingShares as Record<string, Uint8Array>)[ids[1]!] = c.bytes;
          const sign = outcome(() =>
            impl.signShare(deal.secretShares[ids[0]!]!, pub, gens[0]!.nonces, list, msg),
          );
          const share = Fn.toBytes(7n);
          const verify = outcome(() => impl.verifyShare(pub, list, msg, ids[1]!, share));
          return { sign, verify };
        });
        expect([c.what, where, results[0]]).toEqual([c.what, where, results[1]]);
        if (where !== 'verifying share') expect(results[0]!.sign).toBe('throws');
        else expect(results[0]!.verify).toBe('throws');
      }
    }
  });
});
