/**
 * noble's FROST DKG rounds (`frost.DKG.round1/round2/round3/clean`: Komlo–Goldberg KeyGen,
 * ePrint 2020/852 §5.1, with RFC 9591 Appendix C.2 VSS) restated on protocol/group.ts, so that they
 * run on the native backends. Same contracts, same packages, same results: with the same `rng`,
 * round1 gives noble's bytes, round2 noble's shares, round3 noble's key package; and it throws
 * wherever noble throws (test/fast-dkg.test.ts is the proof).
 *
 * FROST(secp256k1)-TR keeps the BIP341 INTERNAL key: round3 normalizes the group key to even y
 * (BIP340 x-only keys; shares, verifying shares and commitments negated with it) and applies no
 * TapTweak. The tweak (key path, merkle root, or none) is applied at signing time
 * (protocol/key-tweak.ts). noble's own DKG also adds the empty-merkle-root TapTweak (its adjustDKG);
 * the noble backend here removes it again (`untweakNoble`), so both backends give the same
 * internal-key packages. Packages made before this change carry the tweak ("baked", docs/custody.md).
 *
 * Where noble's time went (3-of-5, Ed25519, ~400 ms summed over the parties): every point is parsed
 * and subgroup-checked again at each use (round2, round3, merged commitment), in JavaScript. Here a
 * received encoding is checked once (group.ts cache), the commitments are decoded once per round,
 * and every multiplication is native. Secrets (coefficients, the PoK nonce) only meet the
 * constant-time `baseMul`; Feldman evaluations (public commitments, public identifiers) use the
 * variable-time `multiplyUnsafe`.
 */
import type { DKG_Round1, DKG_Round2, DKG_Secret, FROST, Key } from '@noble/curves/abstract/frost.js';
import { p256_hasher } from '@noble/curves/nist.js';
import { schnorr, secp256k1_hasher } from '@noble/curves/secp256k1.js';
import { bytesToNumberBE, bytesToNumberLE } from '@noble/curves/utils.js';
import { sha512 } from '@noble/hashes/sha2.js';
import { shake256 } from '@noble/hashes/sha3.js';
import { randomBytes } from '@noble/hashes/utils.js';
import { bytesToHex, concatBytes, equalBytes, fromHex, utf8ToBytes } from './bytes.ts';
import { type Backend, type Elem, type Group, groupOf, randomScalar } from './group.ts';
import type { KeySpec } from './suites.ts';

export type DkgRounds = Pick<FROST['DKG'], 'round1' | 'round2' | 'round3' | 'clean'>;
type Rng = (n: number) => Uint8Array;

/** The DKG rounds of a suite: the native restatement where a backend exists, else noble's own. */
export function dkgRounds(spec: KeySpec, backend: Backend = 'native'): DkgRounds {
  const g = groupOf(spec, backend);
  if (g.backend === 'noble') return spec.name === 'FROST_SECP256K1_TR' ? untweakNoble(spec) : spec.frost.DKG;
  return nativeRounds(spec, g);
}

/**
 * noble's FROST(secp256k1)-TR DKG with its empty-merkle-root TapTweak (adjustDKG) removed from the
 * output: the internal key P is the sum of the round-one constant terms, even-y normalized; noble's
 * output is P + t·G with t = hash_TapTweak(x(P)) (shares + t, verifying shares + t·G), checked and
 * undone here, so the result is the even-y internal-key package the native rounds produce.
 */
function untweakNoble(spec: KeySpec): DkgRounds {
  const DKG = spec.frost.DKG;
  const P = spec.Point;
  const Fn = P.Fn;
  return {
    round1: DKG.round1,
    round2: DKG.round2,
    clean: DKG.clean,
    round3(secret, round1, round2) {
      const own = secret.commitment[0];
      const key = DKG.round3(secret, round1, round2);
      let internal = P.fromBytes(own!);
      for (const p of round1) internal = internal.add(P.fromBytes(p.commitment[0]!));
      if ((internal.toAffine().y & 1n) === 1n) internal = internal.negate();
      const t = bytesToNumberBE(schnorr.utils.taggedHash('TapTweak', internal.toBytes().subarray(1)));
      const tG = P.BASE.multiply(t).negate();
      const untweak = (b: Uint8Array) => P.fromBytes(b).add(tG).toBytes();
      const commitments = key.public.commitments.map((c, i) => (i === 0 ? untweak(c) : c));
      if (!equalBytes(commitments[0]!, internal.toBytes()))
        throw new Error('noble DKG output is not the tweaked sum');
      return {
        public: {
          signers: key.public.signers,
          commitments,
          verifyingShares: Object.fromEntries(
            Object.entries(key.public.verifyingShares).map(([id, y]) => [id, untweak(y)]),
          ),
        },
        secret: {
          identifier: key.secret.identifier,
          signingShare: Fn.toBytes(Fn.sub(Fn.fromBytes(key.secret.signingShare), t)),
        },
      } as Key;
    },
  } as DkgRounds;
}

/** HDKG (RFC 9591 §6 "dkg" tag, as noble's suites define it). */
function hdkgOf(spec: KeySpec): (m: Uint8Array) => bigint {
  const Fn = spec.Point.Fn;
  const DST = utf8ToBytes(`${spec.contextString}dkg`);
  if (spec.name === 'FROST_ED25519' || spec.name === 'FROST_RISTRETTO255')
    return (m) => Fn.create(bytesToNumberLE(sha512(concatBytes(DST, m))));
  if (spec.name === 'FROST_SECP256K1_TR' || spec.name === 'FROST_SECP256K1')
    return (m) => secp256k1_hasher.hashToScalar(m, { DST });
  if (spec.name === 'FROST_P256') return (m) => p256_hasher.hashToScalar(m, { DST });
  // RFC 9591 §6.3: SHAKE256 with 114 bytes out, little-endian, mod L.
  if (spec.name === 'FROST_ED448')
    return (m) => Fn.create(bytesToNumberLE(shake256(concatBytes(DST, m), { dkLen: 114 })));
  throw new Error(`no native DKG for ${spec.name}`);
}

function nativeRounds(spec: KeySpec, g: Group): DkgRounds {
  const Fn = spec.Point.Fn;
  const hdkg = hdkgOf(spec);
  const taproot = spec.name === 'FROST_SECP256K1_TR';
  const fail = (msg: string): never => {
    throw new Error(msg);
  };

  const checkSigners = (s: { min: number; max: number }) => {
    if (
      typeof s !== 'object' ||
      s === null ||
      !Number.isSafeInteger(s.min) ||
      !Number.isSafeInteger(s.max) ||
      s.min < 2 ||
      s.max < 2 ||
      s.min > s.max
    )
      fail('Wrong signers info');
  };
  const serializeId = (n: bigint) => bytesToHex(Fn.toBytes(n));
  /** noble's parseIdentifier: canonical hex of a non-zero scalar below the order. */
  const parseId = (id: unknown): bigint => {
    if (typeof id !== 'string') return fail('identifier: expected string');
    const n = Fn.fromBytes(fromHex(id, 'identifier'));
    if (Fn.is0(n) || serializeId(n) !== id) fail('invalid identifier');
    return n;
  };
  const scalarOf = (b: Uint8Array): bigint => Fn.fromBytes(b); // throws at or above the order
  const horner = (commitment: readonly Elem[], x: bigint): Elem => {
    // RFC 9591 App. C.2: Σ_k x^k·C_k, public inputs.
    let acc = g.ZERO;
    for (let k = commitment.length - 1; k >= 0; k--) acc = acc.multiplyUnsafe(x).add(commitment[k]!);
    return acc;
  };
  const evalPoly = (coeffs: readonly bigint[], x: bigint): bigint => {
    let acc = Fn.ZERO;
    for (let k = coeffs.length - 1; k >= 0; k--) acc = Fn.add(Fn.mul(acc, x), coeffs[k]!);
    return acc;
  };
  /** noble's validateSecretShare: share·G (constant-time; share 0 is refused as noble's multiply does). */
  const checkShare = (x: bigint, commitment: readonly Elem[], share: bigint) => {
    if (share === 0n) fail('invalid scalar');
    if (!g.baseMul(share).equals(horner(commitment, x))) fail('invalid secret share');
  };
  const pokChallenge = (id: bigint, phi: Uint8Array, R: Uint8Array) =>
    hdkg(concatBytes(Fn.toBytes(id), phi, R));

  type Snapshot = { identifier: string; commitment: Uint8Array[]; proofOfKnowledge: Uint8Array };
  const copyBytes = (b: unknown): Uint8Array => {
    if (!(b instanceof Uint8Array)) return fail('expected bytes');
    return b.slice();
  };
  const canonical = (pkgs: readonly DKG_Round1[]): Snapshot[] => {
    if (!Array.isArray(pkgs)) fail('expected array');
    const snap = pkgs.map((p) => ({
      identifier: serializeId(parseId(p.identifier)),
      commitment: (Array.isArray(p.commitment) ? p.commitment : fail('expected array')).map(copyBytes),
      proofOfKnowledge: copyBytes(p.proofOfKnowledge),
    }));
    const num = new Map(snap.map((p) => [p.identifier, parseId(p.identifier)] as const));
    return snap.sort((a, b) => {
      const x = num.get(a.identifier)!;
      const y = num.get(b.identifier)!;
      return x < y ? -1 : x > y ? 1 : 0;
    });
  };
  const sameTranscript = (a: readonly Snapshot[], b: readonly Snapshot[]) =>
    a.length === b.length &&
    a.every(
      (p, i) =>
        p.identifier === b[i]!.identifier &&
        p.commitment.length === b[i]!.commitment.length &&
        p.commitment.every((c, j) => equalBytes(c, b[i]!.commitment[j]!)) &&
        equalBytes(p.proofOfKnowledge, b[i]!.proofOfKnowledge),
    );

  /** The PoK nonce pair (noble's genPointScalarPair: BIP340 suites keep R with even y). */
  const nonce = (rng: Rng): { k: bigint; R: Elem } => {
    let k = randomScalar(spec, rng);
    let R = g.baseMul(k);
    if (taproot && !g.hasEvenY(R)) {
      k = Fn.neg(k);
      R = R.negate();
    }
    return { k, R };
  };
  // Signature encoding of the PoK: BIP340 suites drop the (even) prefix byte of R.
  const encodePok = (R: Uint8Array, z: bigint) => concatBytes(taproot ? R.subarray(1) : R, Fn.toBytes(z));
  const decodePok = (sig: Uint8Array): { R: Elem; Rb: Uint8Array; z: bigint } => {
    if (!(sig instanceof Uint8Array)) return fail('expected bytes');
    const full = taproot ? concatBytes(Uint8Array.of(0x02), sig) : sig;
    const Rb = full.subarray(0, full.length - Fn.BYTES);
    const R = g.decode(Rb, 'proof of knowledge R');
    return { R, Rb, z: scalarOf(full.subarray(full.length - Fn.BYTES)) };
  };

  /**
   * BIP340/Taproot: the group key with even y (noble's frostPubToEvenY/frostSecretToEvenY, the
   * first half of its adjustDKG), so the stored key is the BIP341 internal key P = lift_x(x(P)).
   * No TapTweak: it is applied at signing (protocol/key-tweak.ts), never baked into the shares.
   */
  const taprootAdjust = (
    commitments: Elem[],
    shares: [string, Elem][],
    share: bigint,
  ): { commitments: Elem[]; shares: [string, Elem][]; share: bigint } => {
    if (g.hasEvenY(commitments[0]!)) return { commitments, shares, share };
    return {
      commitments: commitments.map((p) => p.negate()),
      shares: shares.map(([k, p]) => [k, p.negate()]),
      share: Fn.neg(share),
    };
  };

  const wipe = (secret: DKG_Secret) => {
    if (secret.coefficients) {
      for (let i = 0; i < secret.coefficients.length; i++) secret.coefficients[i]! -= secret.coefficients[i]!;
    }
  };

  const rounds = {
    round1(id: string, signers: { min: number; max: number }, secret?: Uint8Array, rng: Rng = randomBytes) {
      const idNum = parseId(id);
      checkSigners(signers);
      if (secret !== undefined && !(secret instanceof Uint8Array && secret.length === Fn.BYTES))
        fail('secret: expected scalar bytes');
      // noble's generateSecretPolynomial: constant term, then min-1 coefficients, in rng order.
      const coefficients = [secret === undefined ? randomScalar(spec, rng) : Fn.fromBytes(secret)];
      for (let i = 0; i < signers.min - 1; i++) coefficients.push(randomScalar(spec, rng));
      // RFC 9591 App. C.2: commit to every coefficient (secret: constant-time baseMul).
      const commitment = coefficients.map((a) => g.baseMul(a).toBytes());
      const { k, R } = nonce(rng);
      const Rb = R.toBytes();
      const z = Fn.add(k, Fn.mul(coefficients[0]!, pokChallenge(idNum, commitment[0]!, Rb)));
      return {
        public: {
          identifier: serializeId(idNum),
          commitment: commitment.map((c) => c.slice()),
          proofOfKnowledge: encodePok(Rb, z),
        },
        secret: {
          identifier: idNum,
          coefficients,
          commitment,
          signers: { min: signers.min, max: signers.max },
          step: 1,
        },
      };
    },

    round2(secret: DKG_Secret, others: readonly DKG_Round1[]) {
      checkSigners(secret.signers);
      if (!Array.isArray(others) || others.length !== secret.signers.max - 1)
        fail('wrong number of round1 packages');
      if (!secret.coefficients || secret.step === 3) fail('round3 package used in round2');
      const transcript = canonical(others);
      if (secret.round2Cache !== undefined) {
        if (!secret.round1Cache || !sameTranscript(secret.round1Cache as Snapshot[], transcript))
          fail('round1 packages do not match authenticated transcript');
        return secret.round2Cache;
      }
      const res: Record<string, DKG_Round2> = {};
      for (const p of transcript) {
        if (p.commitment.length !== secret.signers.min) fail('wrong number of commitments');
        const id = parseId(p.identifier);
        if (id === secret.identifier) fail('duplicate id');
        // Proof of knowledge of the constant term: R + c·phi == z·G (public inputs), then every
        // commitment is a valid element (RFC 9591 §3.1), each checked once.
        const { R, Rb, z } = decodePok(p.proofOfKnowledge);
        const phi = g.decode(p.commitment[0]!, 'commitment');
        const c = pokChallenge(id, p.commitment[0]!, Rb);
        if (!g.baseMul(z).equals(R.add(phi.multiplyUnsafe(c)))) fail('invalid proof of knowledge');
        for (const cm of p.commitment) g.decode(cm, 'commitment');
        if (res[p.identifier]) fail('Duplicate id');
        res[p.identifier] = {
          identifier: serializeId(secret.identifier),
          signingShare: Fn.toBytes(evalPoly(secret.coefficients!, id)),
        } as DKG_Round2;
      }
      secret.round1Cache = transcript as DKG_Round1[];
      secret.round2Cache = res;
      secret.step = 2;
      return res;
    },

    round3(secret: DKG_Secret, round1: readonly DKG_Round1[], round2: readonly DKG_Round2[]) {
      checkSigners(secret.signers);
      if (!Array.isArray(round1) || !Array.isArray(round2)) fail('expected arrays');
      if (round1.length !== secret.signers.max - 1) fail('wrong length of round1 packages');
      if (!secret.coefficients || secret.step !== 2 || !secret.round1Cache)
        fail('round2 package used in round3');
      const authenticated = secret.round1Cache as Snapshot[];
      if (!sameTranscript(authenticated, canonical(round1)))
        fail('round1 packages do not match authenticated transcript');
      if (round2.length !== authenticated.length) fail('wrong length of round2 packages');
      const merged = new Map<string, { commitment: Uint8Array[]; signingShare?: Uint8Array }>();
      for (const r1 of authenticated) merged.set(r1.identifier, { commitment: r1.commitment });
      for (const r2 of round2) {
        if (!r2.identifier || !r2.signingShare) fail('wrong round2 share');
        const m = merged.get(r2.identifier) ?? fail(`round1 share for ${r2.identifier} is missing`);
        m.signingShare = r2.signingShare;
      }
      if (secret.commitment.length !== secret.signers.min) fail('wrong commitments length');
      const self = serializeId(secret.identifier);
      const own = (secret.commitment as Uint8Array[]).map((c) => g.decode(c, 'own commitment'));
      const localShare = evalPoly(secret.coefficients!, secret.identifier);
      checkShare(secret.identifier, own, localShare);
      // Decode every sender's commitments once; check its share (RFC 9591 App. C.2 vss_verify).
      const commitments = new Map<string, Elem[]>([[self, own]]);
      let signingShare = Fn.ZERO;
      for (const [k, v] of merged) {
        if (!v.signingShare) fail('mismatch identifiers');
        const part = scalarOf(v.signingShare!);
        const points = v.commitment.map((c) => g.decode(c, 'commitment'));
        checkShare(secret.identifier, points, part);
        signingShare = Fn.add(signingShare, part);
        if (commitments.has(k)) fail('duplicated id');
        commitments.set(k, points);
      }
      signingShare = Fn.add(signingShare, localShare);
      let groupCommitment: Elem[] = Array.from({ length: secret.signers.min }, () => g.ZERO);
      for (const v of commitments.values()) {
        if (v.length !== secret.signers.min) fail('wrong commitments length');
        groupCommitment = groupCommitment.map((acc, i) => acc.add(v[i]!));
      }
      // Serialize as noble does (secp256k1 throws on an identity, Ed25519 encodes it).
      for (const c of groupCommitment) c.toBytes();
      let shares: [string, Elem][] = [...commitments.keys()].map((k) => [
        k,
        horner(groupCommitment, parseId(k)),
      ]);
      for (const [, p] of shares) p.toBytes();
      if (taproot) {
        const adj = taprootAdjust(groupCommitment, shares, signingShare);
        groupCommitment = adj.commitments;
        shares = adj.shares;
        signingShare = adj.share;
      }
      const key = {
        public: {
          signers: { min: secret.signers.min, max: secret.signers.max },
          commitments: groupCommitment.map((c) => c.toBytes()),
          verifyingShares: Object.fromEntries(shares.map(([k, p]) => [k, p.toBytes()])),
        },
        secret: { identifier: self, signingShare: Fn.toBytes(signingShare) },
      } as Key;
      wipe(secret);
      delete secret.coefficients;
      delete secret.round1Cache;
      delete secret.round2Cache;
      secret.step = 3;
      return key;
    },

    clean(secret: DKG_Secret) {
      secret.identifier -= secret.identifier;
      wipe(secret);
      delete secret.round1Cache;
      delete secret.round2Cache;
      secret.step = 3;
    },
  };
  return rounds as unknown as DkgRounds;
}
