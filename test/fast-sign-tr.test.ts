/**
 * The fast FROST(secp256k1, SHA-256)-TR signing path (protocol/fast-sign.ts on
 * protocol/backend-secp256k1-native.ts, libsecp256k1) against noble's schnorr_FROST, the reference:
 * every vector gives the vector's nonces, commitments, shares and signature; randomized runs with the
 * same nonces give byte-identical commitments, shares, signatures and culprits for group keys with
 * even and odd y, from the trusted dealer (untweaked) and from noble's DKG (Taproot-tweaked), and the
 * signatures verify as BIP340 signatures; every invalid element is rejected exactly where noble
 * rejects it; and source mutations of the even-y rules are caught by these same comparisons.
 */
import { mkdtemp, readFile, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import type { FrostPublic, FrostSecret, Key, NonceCommitments, RNG } from '@noble/curves/abstract/frost.js';
import { schnorr, secp256k1 } from '@noble/curves/secp256k1.js';
import { bytesToHex, concatBytes, hexToBytes } from '@noble/hashes/utils.js';
import fc from 'fast-check';
import { propertyOptions } from './helpers/properties.ts';
import { afterAll, describe, expect, it } from 'vitest';
import { decodeElement } from '../protocol/elements.ts';
import { DecodeError } from '../protocol/errors.ts';
import { checkElement, fastFrost, type FrostSigning, signingFrost } from '../protocol/fast-sign.ts';
import { keySpec } from '../protocol/suites.ts';
import { loadInvalidElements, loadVectors, suiteHashes } from './helpers/vectors.ts';
import { runSigningVector } from './helpers/fast-vectors.ts';
import { seeded } from './helpers/rng.ts';

const spec = keySpec('FROST_SECP256K1_TR');
const noble = spec.frost;
const fast = fastFrost(spec) as FrostSigning;
const Fn = secp256k1.Point.Fn;
const idOf = (k: number) => noble.Identifier.fromNumber(k);

/** What happens when `f` runs: its result as hex, or 'throws'. */
function outcome(f: () => Uint8Array | boolean): string {
  try {
    const r = f();
    return typeof r === 'boolean' ? String(r) : bytesToHex(r);
  } catch {
    return 'throws';
  }
}

const oddY = (p: Uint8Array) => p[0] === 0x03;
const xOnly = (p: Uint8Array) => p.subarray(1);

/** A key as the signers hold it: one public package, each signer's secret share. */
type KeySet = {
  kind: 'dealer' | 'dkg';
  public: FrostPublic;
  secrets: Record<string, FrostSecret>;
  /** DKG keys: the untweaked group key, the sum of the round-one constant-term commitments. */
  internal?: Uint8Array;
};

function dealerKey(t: number, n: number, rng?: RNG): KeySet {
  const deal = rng
    ? noble.trustedDealer({ min: t, max: n }, undefined, undefined, rng)
    : noble.trustedDealer({ min: t, max: n });
  return { kind: 'dealer', public: deal.public, secrets: deal.secretShares };
}

/** A dealer key whose group element has the wanted y parity. */
function dealerKeyWithParity(t: number, n: number, odd: boolean): KeySet {
  for (let seed = 1; seed < 200; seed++) {
    const k = dealerKey(t, n, seeded(seed * 7919 + t * 31 + n));
    if (oddY(k.public.commitments[0]!) === odd) return k;
  }
  throw new Error('no dealer key of that parity in 200 seeds');
}

/** noble's DKG (schnorr_FROST: the output carries the Taproot tweak with an empty merkle root). */
function dkgKey(t: number, n: number, seed: number): KeySet {
  const ids = Array.from({ length: n }, (_, i) => idOf(i + 1));
  const rng = seeded(seed);
  const r1 = ids.map((id) => noble.DKG.round1(id, { min: t, max: n }, undefined, rng));
  const others = (i: number) => r1.filter((_, j) => j !== i).map((p) => p.public);
  const r2 = r1.map((p, i) => noble.DKG.round2(p.secret, others(i)));
  const keys: Key[] = r1.map((p, i) =>
    noble.DKG.round3(
      p.secret,
      others(i),
      r2.filter((_, j) => j !== i).map((m) => m[ids[i]!]!),
    ),
  );
  for (const k of keys)
    expect(bytesToHex(k.public.commitments[0]!)).toBe(bytesToHex(keys[0]!.public.commitments[0]!));
  const P = secp256k1.Point;
  const internal = r1.reduce((acc, p) => acc.add(P.fromBytes(p.public.commitment[0]!)), P.ZERO);
  return {
    kind: 'dkg',
    public: keys[0]!.public,
    secrets: Object.fromEntries(keys.map((k) => [k.secret.identifier, k.secret])),
    internal: internal.toBytes(),
  };
}

/** DKG keys of both parities (deterministic seeds, so the coverage cannot silently vanish). */
function dkgKeysBothParities(t: number, n: number): KeySet[] {
  const found = new Map<boolean, KeySet>();
  for (let seed = 1; seed <= 40 && found.size < 2; seed++) {
    const k = dkgKey(t, n, seed * 104729 + t);
    const odd = oddY(k.public.commitments[0]!);
    if (!found.has(odd)) found.set(odd, k);
  }
  expect([...found.keys()].sort()).toEqual([false, true]);
  return [...found.values()];
}

describe('FROST_SECP256K1_TR fast path: vectors', () => {
  it('is the path sign.ts uses for secp256k1-tr; every other suite has its own (test/fast-suites.test.ts)', () => {
    expect(signingFrost(spec)).toBe(fast);
    expect(fast).not.toBe(noble);
    for (const other of ['FROST_ED25519', 'FROST_SECP256K1', 'FROST_P256'] as const) {
      expect(fastFrost(keySpec(other))).toBeDefined();
      expect(fastFrost(keySpec(other))).not.toBe(fast);
    }
  });

  for (const { name, vector: v } of loadVectors(spec)) {
    it(`${name}: nonces, commitments, shares, aggregate signature (BIP340)`, () => {
      const { sig, pub, msg, list, shares } = runSigningVector(spec, fast, v);
      expect(bytesToHex(noble.aggregate(pub, list, msg, shares))).toBe(v.final_output.sig);
      expect(sig.length).toBe(64);
      expect(schnorr.verify(sig, msg, xOnly(pub.commitments[0]!))).toBe(true);
    });
  }
});

type Transcript = {
  gens: ReturnType<FrostSigning['commit']>[];
  list: NonceCommitments[];
  shares: Record<string, Uint8Array>;
  sig: Uint8Array;
};

/** One session of `impl` with nonces from `seed`: commit, every signer's share, aggregate. */
function session(
  impl: FrostSigning,
  key: KeySet,
  ids: readonly string[],
  msg: Uint8Array,
  seed: number,
): Transcript {
  const rng = seeded(seed);
  const gens = ids.map((id) => impl.commit(key.secrets[id]!, rng));
  const list = gens.map((g) => g.commitments);
  const shares: Record<string, Uint8Array> = {};
  ids.forEach((id, i) => {
    shares[id] = impl.signShare(key.secrets[id]!, key.public, gens[i]!.nonces, list, msg);
  });
  return { gens, list, shares, sig: impl.aggregate(key.public, list, msg, shares) };
}

/**
 * Both implementations with the same nonces: byte-identical commitments, shares and signature,
 * which verifies as BIP340 under the group key's x; every share verifies. Returns the transcript.
 */
function crossCheck(impl: FrostSigning, key: KeySet, ids: readonly string[], msg: Uint8Array, seed: number) {
  const ours = session(impl, key, ids, msg, seed);
  const ref = session(noble, key, ids, msg, seed);
  expect(ours.gens).toEqual(ref.gens);
  expect(ours.shares).toEqual(ref.shares);
  expect(bytesToHex(ours.sig)).toBe(bytesToHex(ref.sig));
  const pk = xOnly(key.public.commitments[0]!);
  expect(ours.sig.length).toBe(64);
  expect(schnorr.verify(ours.sig, msg, pk)).toBe(true);
  expect(noble.verify(ours.sig, msg, pk)).toBe(true);
  for (const id of ids) expect(impl.verifyShare(key.public, ours.list, msg, id, ours.shares[id]!)).toBe(true);
  return ours;
}

/** Whether the session's group commitment R (RFC 9591 §4.5) has odd y, recomputed with noble. */
function groupCommitmentOddY(key: KeySet, list: readonly NonceCommitments[], msg: Uint8Array): boolean {
  const P = secp256k1.Point;
  const VK = P.fromBytes(key.public.commitments[0]!);
  const PK = (evenY(VK) ? VK : VK.negate()).toBytes();
  const sorted = [...list].sort((a, b) =>
    Fn.fromBytes(hexToBytes(a.identifier)) < Fn.fromBytes(hexToBytes(b.identifier)) ? -1 : 1,
  );
  const { H1, H4, H5 } = suiteHashes(spec);
  const enc = concatBytes(...sorted.flatMap((c) => [hexToBytes(c.identifier), c.hiding, c.binding]));
  const prefix = concatBytes(PK, H4(msg), H5(enc));
  let R = P.ZERO;
  for (const c of sorted) {
    const rho = H1(concatBytes(prefix, hexToBytes(c.identifier)));
    R = R.add(P.fromBytes(c.hiding)).add(P.fromBytes(c.binding).multiply(rho));
  }
  return !evenY(R);
}

/** Even y, from the SEC1 compressed prefix (0x02). */
const evenY = (p: InstanceType<typeof secp256k1.Point>) => p.toBytes(true)[0] === 0x02;
const firstSigners = (key: KeySet) => Object.keys(key.secrets).slice(0, key.public.signers.min);

// noble's DKG is slow (~40 ms at 2-of-3, ~160 ms at 3-of-5): one small pool for the file.
const dkgPool: KeySet[] = [...dkgKeysBothParities(2, 3), ...dkgKeysBothParities(3, 5)];
const dealerPool: KeySet[] = [
  dealerKeyWithParity(3, 5, false),
  dealerKeyWithParity(3, 5, true),
  dealerKeyWithParity(2, 3, false),
  dealerKeyWithParity(2, 3, true),
];

describe('FROST_SECP256K1_TR fast path: randomized cross-checks against noble', () => {
  it('DKG keys carry the Taproot tweak in the stored package, and signing does not apply it again', () => {
    const P = secp256k1.Point;
    for (const key of dkgPool) {
      // BIP341 taproot_tweak_pubkey with an empty merkle root: Q = lift_x(x(P)) + [t]G.
      const internal = P.fromBytes(key.internal!);
      const even = evenY(internal) ? internal : internal.negate();
      const t = Fn.fromBytes(schnorr.utils.taggedHash('TapTweak', xOnly(even.toBytes())));
      expect(bytesToHex(key.public.commitments[0]!)).toBe(bytesToHex(even.add(P.BASE.multiply(t)).toBytes()));
      const msg = new TextEncoder().encode('tweaked');
      const r = crossCheck(fast, key, firstSigners(key), msg, 42);
      // The signature is for the tweaked key only (a second tweak would give a third key).
      expect(schnorr.verify(r.sig, msg, xOnly(key.internal!))).toBe(false);
    }
  });

  it('every key parity (dealer and DKG) with R of both parities', () => {
    for (const key of [...dealerPool, ...dkgPool]) {
      const parities = new Set<boolean>();
      for (let seed = 1; parities.size < 2 && seed < 40; seed++) {
        const msg = new TextEncoder().encode(`both ${seed}`);
        const r = crossCheck(fast, key, firstSigners(key), msg, seed);
        parities.add(groupCommitmentOddY(key, r.list, msg));
      }
      expect(parities.size).toBe(2);
    }
    expect(
      new Set([...dealerPool, ...dkgPool].map((k) => `${k.kind} ${oddY(k.public.commitments[0]!)}`)).size,
    ).toBe(4);
  });

  it('random thresholds, signer subsets, identifiers, messages and nonces: byte-identical to noble', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 2, max: 5 }),
        fc.integer({ min: 0, max: 2 }),
        fc.uint8Array({ minLength: 0, maxLength: 80 }),
        fc.integer(),
        fc.nat({ max: 7 }),
        (t, extra, msg, seed, pick) => {
          let key: KeySet;
          if (pick < dkgPool.length) key = dkgPool[pick]!;
          else if (pick === dkgPool.length) {
            const n = t + extra;
            const ids = Array.from({ length: n }, (_, i) => noble.Identifier.derive(`node-${seed}-${i}`));
            const deal = noble.trustedDealer({ min: t, max: n }, ids);
            key = { kind: 'dealer', public: deal.public, secrets: deal.secretShares };
          } else key = dealerKey(t, t + extra);
          const all = Object.keys(key.secrets);
          const { min, max } = key.public.signers;
          // A random min..max subset of signers, in arbitrary order (both sort by identifier).
          const k = min + (Math.abs(seed) % (max - min + 1));
          crossCheck(fast, key, all.slice(0, k).reverse(), msg, seed);
        },
      ),
      propertyOptions(30),
    );
  });

  it('names exactly the signers noble names when shares are corrupted (RFC 9591 §5.4)', () => {
    const keys = [...dealerPool, ...dkgPool];
    fc.assert(
      fc.property(
        fc.nat({ max: keys.length - 1 }),
        fc.integer(),
        fc.array(fc.nat(), { minLength: 1, maxLength: 3 }),
        (which, seed, bad) => {
          const key = keys[which]!;
          const ids = Object.keys(key.secrets).slice(0, key.public.signers.max);
          const msg = new TextEncoder().encode(`message ${seed}`);
          const { expected, got } = culprits(fast, key, ids, msg, seed, bad);
          expect(Array.isArray(expected) && expected.length > 0).toBe(true);
          expect(got).toEqual(expected);
        },
      ),
      propertyOptions(12),
    );
  });

  it('refuses what noble refuses in round two: reused nonces, altered own commitment, wrong list size', () => {
    for (const key of dealerPool.slice(0, 2)) {
      const results = [fast, noble].map((impl) => refusals(impl, key));
      expect(results[0]).toEqual(results[1]);
      // Refused: swapped own commitment, too few, signer missing; then signs once and zeroes the
      // nonces; reuse refused; another signer with these nonces refused; a missing share refused.
      expect(results[0]!.map((r) => (r === 'throws' || r === 'true' ? r : 'ok'))).toEqual([
        'throws',
        'throws',
        'throws',
        'ok',
        'true',
        'throws',
        'throws',
        'throws',
      ]);
    }
  });
});

/** Corrupts the shares at `bad` and returns the cheaters noble names and those `impl` names. */
function culprits(
  impl: FrostSigning,
  key: KeySet,
  ids: string[],
  msg: Uint8Array,
  seed: number,
  bad: number[],
) {
  const r = session(impl, key, ids, msg, seed);
  const shares = { ...r.shares };
  for (const b of bad) {
    const id = ids[b % ids.length]!;
    shares[id] = Fn.toBytes(Fn.add(Fn.fromBytes(shares[id]!), BigInt(b) + 1n));
  }
  const cheatersOf = (f: FrostSigning): unknown => {
    try {
      f.aggregate(key.public, r.list, msg, shares);
      return 'no error';
    } catch (e) {
      return (e as { cheaters?: unknown }).cheaters;
    }
  };
  const verdicts = (f: FrostSigning) =>
    ids.map((id) => outcome(() => f.verifyShare(key.public, r.list, msg, id, shares[id]!)));
  return {
    expected: cheatersOf(noble),
    got: cheatersOf(impl),
    verdicts: { expected: verdicts(noble), got: verdicts(impl) },
  };
}

function refusals(impl: FrostSigning, key: KeySet): string[] {
  const ids = Object.keys(key.secrets).slice(0, 3);
  const msg = new Uint8Array([1, 2, 3]);
  const out: string[] = [];
  const rng = seeded(7);
  const gens = ids.map((id) => impl.commit(key.secrets[id]!, rng));
  const list = gens.map((g) => g.commitments);
  const [a, b] = [key.secrets[ids[0]!]!, key.secrets[ids[1]!]!];
  const swapped = list.map((c, i) => (i === 0 ? { ...c, hiding: list[1]!.hiding } : c));
  out.push(outcome(() => impl.signShare(a, key.public, gens[0]!.nonces, swapped, msg)));
  out.push(outcome(() => impl.signShare(a, key.public, gens[0]!.nonces, list.slice(0, 2), msg)));
  out.push(outcome(() => impl.signShare(a, key.public, gens[0]!.nonces, list.slice(1), msg)));
  out.push(outcome(() => impl.signShare(a, key.public, gens[0]!.nonces, list, msg)));
  out.push(String(gens[0]!.nonces.hiding.every((x) => x === 0)));
  out.push(outcome(() => impl.signShare(a, key.public, gens[0]!.nonces, list, msg)));
  out.push(outcome(() => impl.signShare(b, key.public, gens[0]!.nonces, list, msg)));
  const s1 = impl.signShare(b, key.public, gens[1]!.nonces, list, msg);
  out.push(outcome(() => impl.aggregate(key.public, list, msg, { [ids[1]!]: s1 })));
  return out;
}

// ---- invalid elements ----

const P_FIELD = secp256k1.Point.Fp.ORDER;
const be32 = (x: bigint) => {
  const b = new Uint8Array(32);
  let v = x;
  for (let i = 31; i >= 0; i--) {
    b[i] = Number(v & 0xffn);
    v >>= 8n;
  }
  return b;
};
const compressed = (prefix: number, x: bigint) => concatBytes(Uint8Array.of(prefix), be32(x));
const onCurveX = (x: bigint) => {
  try {
    secp256k1.Point.fromBytes(compressed(0x02, x));
    return true;
  } catch {
    return false;
  }
};

function candidates(): { what: string; bytes: Uint8Array }[] {
  const out: { what: string; bytes: Uint8Array }[] = [];
  for (const hex of loadInvalidElements(spec))
    out.push({ what: `elements.json ${hex}`, bytes: hexToBytes(hex) });
  const valid = [1n, 2n, 3n, 987654321n, Fn.ORDER - 1n].map((k) => secp256k1.Point.BASE.multiply(k));
  for (const [i, p] of valid.entries()) {
    const c = p.toBytes(true);
    out.push({ what: `valid ${i}`, bytes: c });
    // The other prefix is the negation: also valid.
    out.push({
      what: `valid ${i} negated`,
      bytes: concatBytes(Uint8Array.of(c[0] === 2 ? 3 : 2), c.subarray(1)),
    });
    for (const prefix of [0x00, 0x01, 0x04, 0x05, 0x06, 0x07, 0xff])
      out.push({
        what: `valid ${i} with prefix ${prefix}`,
        bytes: concatBytes(Uint8Array.of(prefix), c.subarray(1)),
      });
    // SEC1 uncompressed and hybrid forms: not RFC 9591 SerializeElement outputs (Ne = 33).
    const u = p.toBytes(false);
    out.push({ what: `valid ${i} uncompressed`, bytes: u });
    out.push({
      what: `valid ${i} hybrid`,
      bytes: concatBytes(Uint8Array.of(evenY(p) ? 6 : 7), u.subarray(1)),
    });
    out.push({ what: `valid ${i} truncated`, bytes: c.subarray(0, 32) });
    out.push({ what: `valid ${i} extended`, bytes: concatBytes(c, Uint8Array.of(0)) });
  }
  // Non-canonical x: x + p < 2^256 for small on-curve x, both parities; and x = p, x = 2^256 - 1.
  let found = 0;
  for (let x = 1n; found < 4 && x < 200n; x++) {
    if (!onCurveX(x)) continue;
    found++;
    out.push({ what: `x=${x} valid`, bytes: compressed(0x02, x) });
    out.push({ what: `x=${x}+p even`, bytes: compressed(0x02, x + P_FIELD) });
    out.push({ what: `x=${x}+p odd`, bytes: compressed(0x03, x + P_FIELD) });
  }
  expect(found).toBe(4);
  out.push({ what: 'x=p', bytes: compressed(0x02, P_FIELD) });
  out.push({ what: 'x=2^256-1', bytes: compressed(0x03, 2n ** 256n - 1n) });
  // Off the curve: x with x^3 + 7 not a square.
  let off = 0;
  for (let x = 1n; off < 4; x++) {
    if (onCurveX(x)) continue;
    off++;
    out.push({ what: `x=${x} off curve even`, bytes: compressed(0x02, x) });
    out.push({ what: `x=${x} off curve odd`, bytes: compressed(0x03, x) });
  }
  // The identity in the encodings other libraries use for it.
  out.push({ what: 'identity 0x00', bytes: Uint8Array.of(0) });
  out.push({ what: 'identity 33 zeros', bytes: new Uint8Array(33) });
  out.push({ what: 'identity 0x02||0', bytes: compressed(0x02, 0n) });
  out.push({ what: 'identity 0x03||0', bytes: compressed(0x03, 0n) });
  // Random strings with a compressed prefix: about half are on the curve.
  const rng = seeded(99);
  for (let i = 0; i < 40; i++)
    out.push({ what: `random ${i}`, bytes: concatBytes(Uint8Array.of(2 + (i % 2)), rng(32)) });
  return out;
}

/** The project's strict RFC 9591 §3.1 decoder (noble's point checks, exactly 33 bytes, canonical). */
const strictAccepts = (b: Uint8Array) => {
  try {
    decodeElement(spec, b);
    return true;
  } catch {
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

const WHERE = [
  'hiding',
  'binding',
  'group key',
  'verifying share',
  'other verifying share',
  'key commitment',
] as const;

/** Signing and share verification with one element replaced, for `impl`. */
function withBadElement(impl: FrostSigning, key: KeySet, where: (typeof WHERE)[number], bad: Uint8Array) {
  const ids = Object.keys(key.secrets);
  const signers = ids.slice(0, key.public.signers.min);
  const msg = new Uint8Array([9]);
  const rng = seeded(5);
  const gens = signers.map((id) => impl.commit(key.secrets[id]!, rng));
  const list: NonceCommitments[] = gens.map((g) => ({ ...g.commitments }));
  const pub = {
    ...key.public,
    commitments: [...key.public.commitments],
    verifyingShares: { ...key.public.verifyingShares },
  } as FrostPublic;
  const b = bad as NonceCommitments['hiding'];
  if (where === 'hiding') list[1] = { ...list[1]!, hiding: b };
  if (where === 'binding') list[1] = { ...list[1]!, binding: b };
  if (where === 'group key') (pub.commitments as Uint8Array[])[0] = bad;
  if (where === 'key commitment') (pub.commitments as Uint8Array[])[1] = bad;
  if (where === 'verifying share') (pub.verifyingShares as Record<string, Uint8Array>)[signers[1]!] = bad;
  // A member of the key who is not signing in this session.
  if (where === 'other verifying share')
    (pub.verifyingShares as Record<string, Uint8Array>)[ids[signers.length]!] = bad;
  const sign = outcome(() => impl.signShare(key.secrets[signers[0]!]!, pub, gens[0]!.nonces, list, msg));
  const verify = outcome(() => impl.verifyShare(pub, list, msg, signers[1]!, Fn.toBytes(7n)));
  return { sign, verify };
}

describe('FROST_SECP256K1_TR fast path: invalid elements rejected exactly where noble rejects them', () => {
  const all = candidates();

  it('the element check agrees with the strict decoder on every candidate (cold and cached)', () => {
    const accepted = all.filter((c) => strictAccepts(c.bytes));
    // Both kinds are present, so agreement is not vacuous.
    expect(accepted.length).toBeGreaterThanOrEqual(20);
    expect(all.length - accepted.length).toBeGreaterThan(60);
    for (let pass = 0; pass < 2; pass++) {
      for (const c of all) expect([c.what, fastAccepts(c.bytes)]).toEqual([c.what, strictAccepts(c.bytes)]);
    }
  });

  it('a 33-byte invalid element anywhere in a session fails in both, for even- and odd-y keys', () => {
    const bad = all.filter((c) => c.bytes.length === 33 && !strictAccepts(c.bytes));
    expect(bad.length).toBeGreaterThan(30);
    // 3-of-5 keys, 3 signers: a signer's verifying share is read to verify its share; a
    // non-signer's only when the key has odd y (noble decodes every element to negate the package).
    const keys = dealerPool.slice(0, 2);
    for (const key of keys) {
      for (const c of bad) {
        for (const where of WHERE) {
          const ours = withBadElement(fast, key, where, c.bytes);
          const ref = withBadElement(noble, key, where, c.bytes);
          expect([c.what, where, ours]).toEqual([c.what, where, ref]);
          if (where === 'hiding' || where === 'binding' || where === 'group key')
            expect(ours.sign).toBe('throws');
          if (where === 'verifying share') expect(ours.verify).toBe('throws');
        }
      }
    }
    // The odd-key case refuses an invalid element noble never reads with an even key.
    expect(withBadElement(fast, dealerPool[1]!, 'other verifying share', bad[0]!.bytes).sign).toBe('throws');
    expect(withBadElement(fast, dealerPool[0]!, 'other verifying share', bad[0]!.bytes).sign).not.toBe(
      'throws',
    );
  });

  it('refuses the 65-byte SEC1 forms of valid points everywhere (RFC 9591 §3.1: Ne = 33)', () => {
    // noble's point parser also takes uncompressed points; the fast path and decodeElement do not.
    const u = secp256k1.Point.BASE.multiply(12345n).toBytes(false);
    for (const key of dealerPool.slice(0, 2)) {
      for (const where of ['hiding', 'binding', 'group key'] as const)
        expect(withBadElement(fast, key, where, u).sign).toBe('throws');
      expect(withBadElement(fast, key, 'verifying share', u).verify).toBe('throws');
    }
  });
});

// ---- mutation check: the comparisons above catch a broken even-y rule ----

const PROTOCOL_DIR = fileURLToPath(new URL('../protocol/', import.meta.url));
const ROOT = fileURLToPath(new URL('../', import.meta.url));
const tempDirs: string[] = [];
afterAll(async () => {
  for (const d of tempDirs) await rm(d, { recursive: true, force: true });
});

/** protocol/fast-sign.ts with `from` replaced by `to`, loaded from a temp dir; its TR signing. */
async function mutant(from: string | null, to: string): Promise<FrostSigning> {
  let src = await readFile(join(PROTOCOL_DIR, 'fast-sign.ts'), 'utf8');
  if (from !== null) {
    expect(src.split(from).length - 1).toBe(1);
    src = src.replace(from, to);
  }
  // Relative imports point back at protocol/ (the same backend module); bare ones resolve via a link.
  src = src.replaceAll(
    /from '\.\/([^']+)'/g,
    (_m, f: string) => `from '${pathToFileURL(join(PROTOCOL_DIR, f)).href}'`,
  );
  const dir = await mkdtemp(join(tmpdir(), 'fast-sign-mutant-'));
  tempDirs.push(dir);
  await symlink(join(ROOT, 'node_modules'), join(dir, 'node_modules'));
  const file = join(dir, 'fast-sign.ts');
  await writeFile(file, src);
  const mod = (await import(pathToFileURL(file).href)) as typeof import('../protocol/fast-sign.ts');
  return mod.fastFrost(spec) as FrostSigning;
}

/** The equality checks of this file, compact: true when `impl` agrees with noble on all of them. */
function agreesWithNoble(impl: FrostSigning): boolean {
  try {
    for (const key of [...dealerPool.slice(0, 2), dkgPool[0]!, dkgPool[1]!]) {
      for (let seed = 1; seed <= 4; seed++)
        crossCheck(impl, key, firstSigners(key), Uint8Array.of(seed), seed);
      const ids = Object.keys(key.secrets).slice(0, key.public.signers.max);
      const c = culprits(impl, key, ids, Uint8Array.of(7), 3, [1]);
      expect(c.got).toEqual(c.expected);
      expect(c.verdicts.got).toEqual(c.verdicts.expected);
      const bad = compressed(0x02, 5n);
      for (const where of WHERE)
        expect(withBadElement(impl, key, where, bad)).toEqual(withBadElement(noble, key, where, bad));
    }
    return true;
  } catch {
    return false;
  }
}

describe('FROST_SECP256K1_TR fast path: mutation check', () => {
  const MUTATIONS: [string, string, string][] = [
    ['nonces not negated for odd-y R', 'const oddR = taproot && hasOddY(s.R);', 'const oddR = false;'],
    [
      'share not negated for an odd-y key',
      'return Fn.add(v.negate ? Fn.neg(sk) : sk, v.add);',
      'return Fn.add(sk, v.add);',
    ],
    ['binding factors hash the odd-y key', 'PK: odd ? negateElement(VK) : VK', 'PK: VK'],
    [
      'commitment share not negated for odd-y R',
      'if (taproot && hasOddY(s.R)) commShare = negateElement(commShare);',
      '',
    ],
    [
      'verifying share not negated for an odd-y key',
      'group.mul(Y, v.negate ? Fn.neg(k) : k)',
      'group.mul(Y, k)',
    ],
    ['odd-y package elements not checked', 'if (odd) {', 'if (false) {'],
  ];

  it('the unmutated copy passes the compact checks (the harness itself works)', async () => {
    expect(agreesWithNoble(await mutant(null, ''))).toBe(true);
  });

  for (const [what, from, to] of MUTATIONS) {
    it(`catches: ${what}`, async () => {
      expect(agreesWithNoble(await mutant(from, to))).toBe(false);
    });
  }
});
