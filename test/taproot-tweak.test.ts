/**
 * Taproot keys say what they are (issue 14): the DKG stores the BIP341 internal key P (even y) and
 * signing applies the TapTweak: key path with no merkle root (BIP86), key path with a merkle root,
 * or none (the key as a tapscript leaf key), also at derived paths. For every case the fast path
 * (libsecp256k1, protocol/fast-sign.ts) and the noble reference (noble's schnorr_FROST on the
 * tweaked package, key-tweak.ts tweakPackageNoble) give byte-identical shares and signatures, the
 * signatures verify with noble's BIP340 verifier and with libsecp256k1's equation under the
 * expected output key, every parity case (P before normalization, Q, R) occurs, identifiable abort
 * names a cheater under a tweak on both backends, and @scure/btc-signer spends a P2TR output of
 * our internal key and merkle root with our signature.
 */
import type { Key } from '@noble/curves/abstract/frost.js';
import { schnorr, secp256k1 } from '@noble/curves/secp256k1.js';
import { bytesToNumberBE } from '@noble/curves/utils.js';
import { bytesToHex, hexToBytes } from '@noble/hashes/utils.js';
import * as btc from '@scure/btc-signer';
import { describe, expect, it } from 'vitest';
import { bip340Equation } from '../protocol/backend-secp256k1-native.ts';
import { p2trAddress, p2trScriptPubKey } from '../protocol/bitcoin-output.ts';
import { concatBytes } from '../protocol/bytes.ts';
import { chainCodeFor, parsePath } from '../protocol/derivation.ts';
import { dkgMachine, sortIds } from '../protocol/dkg.ts';
import { KmsError } from '../protocol/errors.ts';
import { dkgRounds } from '../protocol/fast-dkg.ts';
import { asEpoch, type KeyId, type ParticipantId, type SessionId } from '../protocol/ids.ts';
import {
  KEY_PATH,
  outputPublicKey,
  resolveTweak,
  type SigningTweak,
  signingPublicKey,
  taprootKeys,
  tapTweak,
} from '../protocol/key-tweak.ts';
import { refreshMachine } from '../protocol/refresh.ts';
import { reshareMachine } from '../protocol/reshare.ts';
import {
  aggregate,
  type SignatureShare,
  type SigningCommitment,
  signerCommit,
  signerSign,
} from '../protocol/sign.ts';
import { simulate } from '../protocol/simulate.ts';
import { keySpec, publicKeyFromGroupElement } from '../protocol/suites.ts';
import { seeded } from './helpers/rng.ts';
import { suiteHashes } from './helpers/vectors.ts';

const spec = keySpec('FROST_SECP256K1_TR');
const P = secp256k1.Point;
const Fn = P.Fn;
const E0 = asEpoch(0);
const KEY_ID = '00000000-0000-4000-8000-00000000a14e' as KeyId;
const vectors = (
  await import('./vectors/bitcoin/bip341-wallet-scriptpubkey.json', { with: { type: 'json' } })
).default;

const idsOf = (n: number) =>
  Array.from({ length: n }, (_, i) => spec.frost.Identifier.fromNumber(i + 1) as ParticipantId);

type Dkg = { keys: Map<ParticipantId, Key>; group: Uint8Array; transcriptHash: Uint8Array; rawOdd: boolean };

/** A real DKG (protocol/dkg.ts, native rounds); `rawOdd`: the sum of constant terms had odd y. */
function dkg(t: number, n: number, seed: number): Dkg {
  const participants = idsOf(n);
  const run = simulate(
    participants.map((self, i) =>
      dkgMachine({
        spec,
        keyId: KEY_ID,
        sessionId: `tr-${seed}` as SessionId,
        self,
        participants,
        threshold: t,
        rng: seeded(seed * 1000 + i),
      }),
    ),
  );
  expect([...run.errors.values()]).toEqual([]);
  const results = [...run.results.values()];
  const first = results[0]!;
  // The round-one constant terms: the first element of every dkg.r1 commitment vector.
  let sum = P.ZERO;
  for (const e of run.sent) {
    if (e.header.round === 'dkg.r1') sum = sum.add(P.fromBytes((e.body.commitment as Uint8Array[])[0]!));
  }
  const even = (sum.toAffine().y & 1n) === 0n;
  expect(first.groupElement).toEqual((even ? sum : sum.negate()).toBytes());
  return {
    keys: new Map([...run.results].map(([id, r]) => [id, r.key])),
    group: first.groupElement,
    transcriptHash: first.transcriptHash,
    rawOdd: !even,
  };
}

/** DKGs until both parities of the raw group key were seen (normalization is exercised). */
const pool: Dkg[] = [];
for (let seed = 1; seed < 40 && (pool.length < 2 || new Set(pool.map((d) => d.rawOdd)).size < 2); seed++) {
  const d = dkg(2 + (seed % 2), 3 + (seed % 2), seed);
  if (pool.length < 2 || !pool.some((x) => x.rawOdd === d.rawOdd)) pool.push(d);
}

type Run = { sig: Uint8Array; shares: Uint8Array[]; commitments: SigningCommitment[] };

/** One signing session through sign.ts with fixed nonces, on a backend. */
function sign(
  d: Dkg,
  signers: ParticipantId[],
  msg: Uint8Array,
  tweak: SigningTweak | undefined,
  backend: 'native' | 'noble',
  seed: number,
  corrupt?: ParticipantId,
): Run {
  signers = sortIds(spec, signers);
  const cs = signers.map((id, i) =>
    signerCommit({ spec, key: d.keys.get(id)!, epoch: E0, rng: seeded(seed * 31 + i) }),
  );
  const commitments = cs.map((c) => c.commitment);
  const shares: SignatureShare[] = cs.map((c) =>
    signerSign(c.state, { message: msg, commitments, tweak, backend }),
  );
  if (corrupt !== undefined) {
    const i = signers.indexOf(corrupt);
    shares[i] = { ...shares[i]!, share: Fn.toBytes(Fn.add(Fn.fromBytes(shares[i]!.share), 1n)) };
  }
  const pub = d.keys.get(signers[0]!)!.public;
  const sig = aggregate({ spec, public: pub, epoch: E0, commitments, shares, message: msg, tweak, backend });
  return { sig, shares: shares.map((s) => s.share), commitments };
}

const codeOf = (f: () => unknown) => {
  try {
    f();
  } catch (e) {
    if (!(e instanceof KmsError)) return 'other';
    const culprits = (e as unknown as { culprits?: { participant: string }[] }).culprits ?? [];
    return [e.code, ...culprits.map((c) => c.participant)].join(' ');
  }
  return 'ok';
};

/** The expected BIP341 output key, computed with noble points from the x-only internal key. */
function expectedOutput(internalX: Uint8Array, root: Uint8Array | null): Uint8Array {
  const Pi = P.fromBytes(concatBytes(Uint8Array.of(0x02), internalX));
  const t = Fn.fromBytes(schnorr.utils.taggedHash('TapTweak', internalX, root ?? new Uint8Array(0)));
  return Pi.add(P.BASE.multiply(t)).toBytes().subarray(1);
}

/** Whether the session's group commitment R (RFC 9591 §4.5, binding factors over the key Q) has odd y. */
function groupCommitmentOddY(Q: Uint8Array, list: readonly SigningCommitment[], msg: Uint8Array): boolean {
  const { H1, H4, H5 } = suiteHashes(spec);
  const enc = concatBytes(...list.flatMap((c) => [hexToBytes(c.identifier), c.hiding, c.binding]));
  const prefix = concatBytes(Q, H4(msg), H5(enc));
  let R = P.ZERO;
  for (const c of list) {
    const rho = H1(concatBytes(prefix, hexToBytes(c.identifier)));
    R = R.add(P.fromBytes(c.hiding)).add(P.fromBytes(c.binding).multiply(rho));
  }
  return (R.toAffine().y & 1n) === 1n;
}

describe('Taproot: the stored key is the BIP341 internal key', () => {
  it('the DKG stores P with even y on both backends (noble: its empty-root TapTweak removed)', () => {
    for (const d of pool) expect(d.group[0]).toBe(0x02);
    expect(new Set(pool.map((d) => d.rawOdd))).toEqual(new Set([true, false]));
    // The noble-backend rounds give the same package (test/fast-dkg.test.ts compares every byte).
    expect(dkgRounds(spec, 'noble')).not.toBe(spec.frost.DKG);
  });

  it('TapTweak and output keys match the BIP341 wallet vectors (empty and non-empty merkle roots)', () => {
    for (const v of vectors.scriptPubKey) {
      const root = v.merkleRoot === null ? null : hexToBytes(v.merkleRoot);
      const internal = hexToBytes(v.internalPubkey);
      expect(Fn.toBytes(tapTweak(internal, root))).toEqual(hexToBytes(v.tweak));
      // The vector's internal key as a stored group element (even y, as the DKG stores it).
      const element = concatBytes(Uint8Array.of(0x02), internal);
      const keys = taprootKeys(spec, element, root);
      expect(bytesToHex(keys.internalKey)).toBe(v.internalPubkey);
      expect(bytesToHex(keys.outputKey)).toBe(v.tweakedPubkey);
      expect(bytesToHex(p2trScriptPubKey(keys.outputKey))).toBe(v.scriptPubKey);
      const tw: SigningTweak = { taproot: { kind: 'keyPath', merkleRoot: root } };
      expect(signingPublicKey(spec, element, tw)).toEqual(keys.outputKey);
      expect(resolveTweak(spec, element, tw, 'noble')).toEqual(resolveTweak(spec, element, tw, 'native'));
      if ('bip350Address' in v) expect(p2trAddress(keys.outputKey, 'bitcoin')).toBe(v.bip350Address);
    }
  });

  it('the API public key is the key-path output key; the raw group element is the internal key', () => {
    for (const d of pool) {
      const internal = publicKeyFromGroupElement(spec, d.group);
      expect(outputPublicKey(spec, d.group)).toEqual(expectedOutput(internal, null));
      expect(taprootKeys(spec, d.group, null).internalKey).toEqual(internal);
    }
  });
});

describe('Taproot signing with tweaks: fast path equals noble, signatures verify', () => {
  const root = hexToBytes(vectors.scriptPubKey[3]!.merkleRoot!);
  const chainCodeOf = (d: Dkg) => chainCodeFor(spec, d.group, d.transcriptHash);
  const cases: [string, (d: Dkg) => SigningTweak][] = [
    ['key path, no merkle root', () => KEY_PATH],
    ['key path, merkle root', () => ({ taproot: { kind: 'keyPath', merkleRoot: root } })],
    ['none (tapscript leaf key)', () => ({ taproot: { kind: 'none' } })],
    ['derived m/0/5, key path', (d) => ({ derivation: { chainCode: chainCodeOf(d), path: [0, 5] } })],
    [
      'derived m/7, merkle root',
      (d) => ({
        derivation: { chainCode: chainCodeOf(d), path: [7] },
        taproot: { kind: 'keyPath', merkleRoot: root },
      }),
    ],
    [
      'derived m/1/2/3, none',
      (d) => ({ derivation: { chainCode: chainCodeOf(d), path: [1, 2, 3] }, taproot: { kind: 'none' } }),
    ],
  ];

  it.each(cases)('%s', (_name, make) => {
    const oddR = new Set<boolean>();
    for (const [k, d] of pool.entries()) {
      const tweak = make(d);
      const signers = [...d.keys.keys()].slice(0, d.keys.values().next().value!.public.signers.min);
      const Q = resolveTweak(spec, d.group, tweak);
      // The expected key, computed independently with noble points (BIP32, BIP341).
      const K = P.fromBytes(
        tweak.derivation
          ? derivationRef.derive(d.group, tweak.derivation.chainCode, tweak.derivation.path)
          : d.group,
      );
      const tr = tweak.taproot ?? { kind: 'keyPath', merkleRoot: null };
      const xK = K.toBytes().subarray(1);
      const expected = tr.kind === 'none' ? xK : expectedOutput(xK, tr.merkleRoot);
      expect(signingPublicKey(spec, d.group, tweak)).toEqual(expected);
      expect(Q.key).toEqual(concatBytes(Uint8Array.of(0x02), expected));
      for (let seed = 1; seed <= 4; seed++) {
        const msg = Uint8Array.of(k, seed, 0x5a);
        const fast = sign(d, signers, msg, tweak, 'native', seed);
        const ref = sign(d, signers, msg, tweak, 'noble', seed);
        expect(bytesToHex(fast.sig)).toBe(bytesToHex(ref.sig));
        expect(fast.shares.map(bytesToHex)).toEqual(ref.shares.map(bytesToHex));
        expect(schnorr.verify(fast.sig, msg, expected)).toBe(true);
        const e = Fn.create(
          bytesToNumberBE(
            schnorr.utils.taggedHash('BIP0340/challenge', fast.sig.subarray(0, 32), expected, msg),
          ),
        );
        expect(bip340Equation(fast.sig, Q.key, e)).toBe(true);
        // Not a signature for the untweaked key.
        if (tr.kind !== 'none') expect(schnorr.verify(fast.sig, msg, xK)).toBe(false);
        oddR.add(groupCommitmentOddY(Q.key, fast.commitments, msg));
      }
    }
    expect(oddR.size).toBe(2);
  });

  it('every parity case occurs: raw P odd/even, derived key odd/even, output key Q odd/even', () => {
    expect(new Set(pool.map((d) => d.rawOdd)).size).toBe(2);
    const seenK = new Set<boolean>();
    const seenQ = new Set<boolean>();
    for (const d of pool) {
      const cc = chainCodeFor(spec, d.group, d.transcriptHash);
      for (let i = 0; i < 24 && (seenQ.size < 2 || seenK.size < 2); i++) {
        const root = Fn.toBytes(BigInt(i + 1));
        const derivation = { chainCode: cc, path: [i] };
        seenK.add(P.fromBytes(derivationRef.derive(d.group, cc, [i])).toBytes()[0] === 0x03);
        const keys = taprootKeys(spec, d.group, root, derivation);
        seenQ.add(keys.outputKeyParity === 1);
        const tweak: SigningTweak = { derivation, taproot: { kind: 'keyPath', merkleRoot: root } };
        // negate = the net sign of the shares: odd derived key XOR odd output key.
        const t = resolveTweak(spec, d.group, tweak);
        const kOdd = P.fromBytes(derivationRef.derive(d.group, cc, [i])).toBytes()[0] === 0x03;
        expect(t.negate).toBe(kOdd !== (keys.outputKeyParity === 1));
        const signers = [...d.keys.keys()].slice(0, d.keys.values().next().value!.public.signers.min);
        const msg = Uint8Array.of(i);
        const out = sign(d, signers, msg, tweak, 'native', i + 100);
        expect(out.sig).toEqual(sign(d, signers, msg, tweak, 'noble', i + 100).sig);
        expect(schnorr.verify(out.sig, msg, keys.outputKey)).toBe(true);
      }
    }
    expect(seenK.size).toBe(2);
    expect(seenQ.size).toBe(2);
  });

  it('identifiable abort under a tweak: both backends name the cheater', () => {
    for (const d of pool) {
      const signers = [...d.keys.keys()].slice(0, d.keys.values().next().value!.public.signers.min);
      const cheater = signers[signers.length - 1]!;
      for (const make of cases.map((c) => c[1])) {
        const tweak = make(d);
        const a = codeOf(() => sign(d, signers, Uint8Array.of(9), tweak, 'native', 3, cheater));
        const b = codeOf(() => sign(d, signers, Uint8Array.of(9), tweak, 'noble', 3, cheater));
        expect(a).toBe(`ParticipantMisbehaved ${cheater}`);
        expect(b).toBe(a);
      }
    }
  });

  it('signer and aggregator must use the same tweak (a mismatch is caught as invalid shares)', () => {
    const d = pool[0]!;
    const signers = sortIds(
      spec,
      [...d.keys.keys()].slice(0, d.keys.values().next().value!.public.signers.min),
    );
    const cs = signers.map((id) => signerCommit({ spec, key: d.keys.get(id)!, epoch: E0 }));
    const commitments = cs.map((c) => c.commitment);
    const msg = Uint8Array.of(1);
    const shares = cs.map((c) => signerSign(c.state, { message: msg, commitments, tweak: KEY_PATH }));
    const pub = d.keys.get(signers[0]!)!.public;
    expect(
      codeOf(() =>
        aggregate({
          spec,
          public: pub,
          epoch: E0,
          commitments,
          shares,
          message: msg,
          tweak: { taproot: { kind: 'none' } },
        }),
      ),
    ).toMatch(/^ParticipantMisbehaved/);
  });

  it('hardened paths and bad merkle roots are refused before any share is used', () => {
    const d = pool[0]!;
    expect(() => parsePath("m/0'/1")).toThrow(/hardened/);
    const bad: SigningTweak[] = [
      { derivation: { chainCode: new Uint8Array(32), path: [0x80000000] } },
      { taproot: { kind: 'keyPath', merkleRoot: new Uint8Array(31) } },
    ];
    for (const tweak of bad) {
      expect(
        codeOf(() => sign(d, [...d.keys.keys()].slice(0, 2), Uint8Array.of(1), tweak, 'native', 1)),
      ).toBe('ValidationError');
    }
  });
});

describe('legacy packages with the TapTweak baked in', () => {
  it('sign as before, and refuse derivation, merkle roots and "none"', () => {
    // noble's own DKG output is such a package (its adjustDKG adds the empty-root TapTweak).
    const ids = idsOf(3);
    const D = spec.frost.DKG;
    const r1 = ids.map((id, i) => D.round1(id, { min: 2, max: 3 }, undefined, seeded(77 + i)));
    const others = (i: number) => r1.filter((_, j) => j !== i).map((p) => p.public);
    const r2 = r1.map((p, i) => D.round2(p.secret, others(i)));
    const keys = r1.map((p, i) =>
      D.round3(
        p.secret,
        others(i),
        ids.flatMap((from, j) =>
          j === i ? [] : [{ identifier: from, signingShare: r2[j]![ids[i]!]!.signingShare }],
        ),
      ),
    );
    const d: Dkg = {
      keys: new Map(ids.map((id, i) => [id, keys[i]!])),
      group: keys[0]!.public.commitments[0]!,
      transcriptHash: new Uint8Array(32),
      rawOdd: false,
    };
    const baked: SigningTweak = { taprootTweakBaked: true };
    const msg = Uint8Array.of(4, 2);
    const a = sign(d, ids.slice(0, 2), msg, baked, 'native', 5);
    const b = sign(d, ids.slice(0, 2), msg, baked, 'noble', 5);
    const untweaked = sign(d, ids.slice(0, 2), msg, undefined, 'native', 5);
    expect(a.sig).toEqual(b.sig);
    expect(a.sig).toEqual(untweaked.sig);
    expect(schnorr.verify(a.sig, msg, publicKeyFromGroupElement(spec, d.group))).toBe(true);
    for (const tweak of [
      { ...baked, taproot: { kind: 'none' } },
      { ...baked, taproot: { kind: 'keyPath', merkleRoot: new Uint8Array(32) } },
      { ...baked, derivation: { chainCode: new Uint8Array(32), path: [1] } },
    ] as SigningTweak[]) {
      expect(codeOf(() => sign(d, ids.slice(0, 2), msg, tweak, 'native', 5))).toBe('ValidationError');
    }
  });
});

describe('key events keep the Taproot keys', () => {
  it('refresh and reshare keep internal key, output keys and derived children; new shares sign for them', () => {
    const d = pool[0]!;
    const t = d.keys.values().next().value!.public.signers.min;
    const n = d.keys.size;
    const participants = idsOf(n);
    const cc = chainCodeFor(spec, d.group, d.transcriptHash);
    const tweaks: SigningTweak[] = [
      KEY_PATH,
      { taproot: { kind: 'keyPath', merkleRoot: root32 } },
      { derivation: { chainCode: cc, path: [0, 5] } },
    ];
    const before = tweaks.map((tw) => signingPublicKey(spec, d.group, tw));
    const refreshed = simulate(
      participants.map((self) =>
        refreshMachine({
          spec,
          keyId: KEY_ID,
          sessionId: 'tr-refresh' as SessionId,
          self,
          oldEpoch: E0,
          newEpoch: asEpoch(1),
          threshold: t,
          key: structuredClone(d.keys.get(self)!),
        }),
      ),
    );
    expect([...refreshed.errors.values()]).toEqual([]);
    const newParticipants = idsOf(n + 1);
    const reshared = simulate(
      newParticipants.map((self) => {
        const oldKey = d.keys.get(self);
        return reshareMachine({
          spec,
          keyId: KEY_ID,
          sessionId: 'tr-reshare' as SessionId,
          self,
          oldEpoch: E0,
          newEpoch: asEpoch(1),
          oldThreshold: t,
          oldPublic: d.keys.get(participants[0]!)!.public,
          dealers: participants.slice(0, t),
          newParticipants,
          newThreshold: t + 1,
          ...(oldKey ? { oldKey: structuredClone(oldKey) } : {}),
        });
      }),
    );
    expect([...reshared.errors.values()]).toEqual([]);
    for (const run of [refreshed, reshared]) {
      const results = [...run.results.values()] as { key?: Key; groupElement: Uint8Array }[];
      expect(results[0]!.groupElement).toEqual(d.group);
      const after: Dkg = {
        keys: new Map(
          [...run.results]
            .filter(([, r]) => (r as { key?: Key }).key)
            .map(([id, r]) => [id as ParticipantId, (r as { key: Key }).key]),
        ),
        group: results[0]!.groupElement,
        transcriptHash: d.transcriptHash,
        rawOdd: d.rawOdd,
      };
      for (const [i, tw] of tweaks.entries()) {
        expect(signingPublicKey(spec, after.group, tw)).toEqual(before[i]);
        const signers = [...after.keys.keys()].slice(0, after.keys.values().next().value!.public.signers.min);
        const msg = Uint8Array.of(i, 0xee);
        const s = sign(after, signers, msg, tw, 'native', i + 1);
        expect(schnorr.verify(s.sig, msg, before[i]!)).toBe(true);
      }
    }
  });
});

describe('@scure/btc-signer spends our P2TR outputs with our signatures', () => {
  it('key path without and with a merkle root, and at a derived path', () => {
    const d = pool[1]!;
    const signers = [...d.keys.keys()].slice(0, d.keys.values().next().value!.public.signers.min);
    const cc = chainCodeFor(spec, d.group, d.transcriptHash);
    const cases: {
      tweak: SigningTweak;
      root: Uint8Array | null;
      derivation?: { chainCode: Uint8Array; path: number[] };
    }[] = [
      { tweak: KEY_PATH, root: null },
      { tweak: { taproot: { kind: 'keyPath', merkleRoot: root32 } }, root: root32 },
      {
        tweak: { derivation: { chainCode: cc, path: [3, 9] } },
        root: null,
        derivation: { chainCode: cc, path: [3, 9] },
      },
    ];
    for (const [k, c] of cases.entries()) {
      const keys = taprootKeys(spec, d.group, c.root, c.derivation);
      // scure derives the output from OUR internal key (and merkle root), independently of us.
      const out =
        c.root === null
          ? btc.p2tr(keys.internalKey)
          : { ...btc.p2tr(keys.internalKey), script: p2trScriptPubKey(keys.outputKey) };
      expect(bytesToHex(out.script)).toBe(bytesToHex(p2trScriptPubKey(keys.outputKey)));
      if (c.root === null)
        expect(btc.p2tr(keys.internalKey, undefined, btc.NETWORK).address).toBe(
          p2trAddress(keys.outputKey, 'bitcoin'),
        );
      const amount = 100_000n;
      const tx = new btc.Transaction();
      tx.addInput({
        txid: new Uint8Array(32).fill(k + 1),
        index: 0,
        witnessUtxo: { script: out.script, amount },
        tapInternalKey: keys.internalKey,
        ...(c.root ? { tapMerkleRoot: c.root } : {}),
      });
      tx.addOutputAddress(p2trAddress(keys.outputKey, 'bitcoin'), amount - 1_000n, btc.NETWORK);
      // BIP341 sighash computed by scure; the threshold signature is made for it.
      const sighash = tx.preimageWitnessV1(0, [out.script], btc.SigHash.DEFAULT, [amount]);
      const s = sign(d, signers, sighash, c.tweak, 'native', k + 1);
      tx.updateInput(0, { tapKeySig: s.sig });
      tx.finalize();
      expect(tx.isFinal).toBe(true);
      // scure's own check of the final witness: the signature verifies under the output key.
      const witness = tx.getInput(0).finalScriptWitness!;
      expect(witness[0]).toEqual(s.sig);
      expect(schnorr.verify(witness[0]!, sighash, keys.outputKey)).toBe(true);
    }
  });
});

const root32 = hexToBytes(vectors.scriptPubKey[1]!.merkleRoot!);

/** BIP32 CKDpub restated with noble points and node:crypto-free hashes, for the expected keys. */
const derivationRef = await (async () => {
  const { hmac } = await import('@noble/hashes/hmac.js');
  const { sha512 } = await import('@noble/hashes/sha2.js');
  return {
    derive(element: Uint8Array, chainCode: Uint8Array, path: readonly number[]): Uint8Array {
      let K = P.fromBytes(element);
      let c = chainCode;
      for (const i of path) {
        const data = new Uint8Array(37);
        data.set(K.toBytes(), 0);
        new DataView(data.buffer).setUint32(33, i, false);
        const I = hmac(sha512, c, data);
        K = K.add(P.BASE.multiply(Fn.fromBytes(I.subarray(0, 32))));
        c = I.subarray(32);
      }
      return K.toBytes();
    },
  };
})();
