/**
 * FROST signing (RFC 9591 §5) on a fast group backend (protocol/fast-group.ts), with the same API
 * and the same results as noble's `commit` / `signShare` / `verifyShare` / `aggregate`, which stay
 * the reference: test/fast-sign.test.ts checks every RFC 9591 vector and randomized runs against
 * noble byte for byte, and the rejection of every invalid element where noble rejects it.
 *
 * Where the time goes and what is saved (3-of-5, noble's ed25519_FROST, ~50 ms summed): noble
 * decodes and subgroup-checks every received point at every use (~0.7 ms each, twice per point per
 * party), and multiplies in JavaScript. Here each distinct encoding is checked once per process
 * (ValidElementCache: the group key and verifying shares once at first use, each commitment once
 * per party), the arithmetic is native, and the aggregate is verified with one native signature
 * check, the shares only when it fails (§5.3, §5.4).
 *
 * FROST(secp256k1, SHA-256)-TR (BIP340/Taproot, noble's schnorr_FROST) runs the same way on
 * libsecp256k1 (protocol/backend-secp256k1-native.ts), with noble's even-y rules (taprootSigning):
 * ~2 ms summed for 3-of-5 against ~17 ms with noble; test/fast-sign-tr.test.ts is its proof.
 *
 * The other suites (rfc9591Suite; test/fast-suites.test.ts is their proof) run on: libsecp256k1
 * (FROST(secp256k1, SHA-256)), libsodium's ristretto255 (backend-ristretto255-sodium.ts), OpenSSL +
 * noble for P-256 (backend-p256-openssl.ts: OpenSSL fixed-base multiply and an x-only check of the
 * aggregate equation, noble's MSM for the group commitment) and noble for Ed448 with a subgroup
 * check by square root and Jacobi symbols and OpenSSL's verifier (backend-ed448.ts). 3-of-5, summed:
 * 0.12x, 0.22x, 0.66x and 0.38x of noble's FROST (bench/results/protocol-suites.md).
 *
 * Every RFC 9591 input check is kept: elements canonical, on the curve, of prime order, not the
 * identity (§3.1); scalars below the order (§3.1); identifiers canonical and non-zero (§5.1);
 * the commitment list between MIN and MAX entries, without duplicates, with the signer's own
 * commitment present and matching its nonces (§5.2); shares only from listed signers (§5.3).
 */
import type {
  FROST,
  FrostPublic,
  FrostSecret,
  GenNonce,
  NonceCommitments,
  Nonces,
  RNG,
} from '@noble/curves/abstract/frost.js';
import { p256_hasher } from '@noble/curves/nist.js';
import { schnorr, secp256k1_hasher } from '@noble/curves/secp256k1.js';
import { bytesToNumberBE, bytesToNumberLE } from '@noble/curves/utils.js';
import { sha256 } from '@noble/hashes/sha2.js';
import { shake256 } from '@noble/hashes/sha3.js';
import { randomBytes } from '@noble/hashes/utils.js';
import { ed448Noble, ed448VerifyOpenSsl } from './backend-ed448.ts';
import { ed25519Sodium, ed25519VerifySodium, sha512Sodium } from './backend-ed25519-sodium.ts';
import { p256OpenSsl } from './backend-p256-openssl.ts';
import { ristretto255Sodium } from './backend-ristretto255-sodium.ts';
import { bip340Equation, hasOddY, negateElement, secp256k1Native } from './backend-secp256k1-native.ts';
import { bytesToHex, concatBytes, equalBytes, utf8ToBytes } from './bytes.ts';
import { decodeElement } from './elements.ts';
import type { AffineTweak } from './key-tweak.ts';
import { DecodeError, ProtocolError } from './errors.ts';
import { type FastGroup, ValidElementCache } from './fast-group.ts';
import type { KeySpec, KeySpecName } from './suites.ts';

/** The four signing operations of noble's FROST API, which sign.ts calls. */
export type FrostSigning = Pick<FROST, 'commit' | 'signShare' | 'verifyShare' | 'aggregate'>;

/** What a suite adds to its group (RFC 9591 §6: hashes, challenge, signature encoding). */
type FastSuite = {
  readonly group: FastGroup;
  readonly cache: ValidElementCache;
  /** H1 (rho), H3 (nonce): hash to scalar with the suite's DST. */
  readonly H1: (m: Uint8Array) => bigint;
  readonly H3: (m: Uint8Array) => bigint;
  /** H4 (msg), H5 (com): hash to bytes with the suite's DST. */
  readonly H4: (m: Uint8Array) => Uint8Array;
  readonly H5: (m: Uint8Array) => Uint8Array;
  /** §4.6 compute_challenge(R, PK, msg). */
  readonly challenge: (R: Uint8Array, PK: Uint8Array, msg: Uint8Array) => bigint;
  readonly encodeSignature: (R: Uint8Array, z: bigint) => Uint8Array;
  /** A fast standard verifier for the encoded signature; `false` falls back to the group equation. */
  readonly quickVerify: (sig: Uint8Array, msg: Uint8Array, PK: Uint8Array) => boolean;
};

function ed25519Suite(): FastSuite {
  const Fn = ed25519Sodium.Fn;
  const ctx = 'FROST-ED25519-SHA512-v1';
  // RFC 9591 §6.1: H(m) = SHA-512(contextString || tag || m), read little-endian, mod L.
  const toScalar = (tag: string) => {
    const dst = utf8ToBytes(ctx + tag);
    return (m: Uint8Array) => Fn.create(bytesToNumberLE(sha512Sodium(concatBytes(dst, m))));
  };
  const toBytes = (tag: string) => {
    const dst = utf8ToBytes(ctx + tag);
    return (m: Uint8Array) => sha512Sodium(concatBytes(dst, m));
  };
  return {
    group: ed25519Sodium,
    cache: new ValidElementCache(),
    H1: toScalar('rho'),
    H3: toScalar('nonce'),
    H4: toBytes('msg'),
    H5: toBytes('com'),
    // §6.1 H2 is undecorated SHA-512, so FROST(Ed25519) signatures are RFC 8032 signatures.
    challenge: (R, PK, msg) => Fn.create(bytesToNumberLE(sha512Sodium(concatBytes(R, PK, msg)))),
    encodeSignature: (R, z) => concatBytes(R, Fn.toBytes(z)),
    quickVerify: ed25519VerifySodium,
  };
}

/**
 * FROST(secp256k1, SHA-256)-TR, the BIP340/Taproot variant (noble's `schnorr_FROST`, compatible with
 * ZF frost-secp256k1-tr): RFC 9591 §6.5 hashes with the "-TR-v1" context string, the BIP340 tagged
 * challenge over x-only R and PK, signatures x(R) || z. Its even-y rules are in taprootSigning.
 */
function secp256k1TrSuite(): FastSuite {
  const ctx = 'FROST-secp256k1-SHA256-TR-v1';
  const group = secp256k1Native;
  const Fn = group.Fn;
  // RFC 9591 §6.5: H1/H3 = hash_to_field(m, 1) with expand_message_xmd(SHA-256), DST = ctx || tag.
  const toScalar = (tag: string) => {
    const DST = utf8ToBytes(ctx + tag);
    return (m: Uint8Array) => secp256k1_hasher.hashToScalar(m, { DST });
  };
  const toBytes = (tag: string) => {
    const dst = utf8ToBytes(ctx + tag);
    return (m: Uint8Array) => sha256(concatBytes(dst, m));
  };
  // BIP340: e = int(hash_BIP0340/challenge(x(R) || x(PK) || m)) mod n.
  const challenge = (R: Uint8Array, PK: Uint8Array, msg: Uint8Array) =>
    Fn.create(
      bytesToNumberBE(schnorr.utils.taggedHash('BIP0340/challenge', R.subarray(1), PK.subarray(1), msg)),
    );
  return {
    group,
    cache: new ValidElementCache(),
    H1: toScalar('rho'),
    H3: toScalar('nonce'),
    H4: toBytes('msg'),
    H5: toBytes('com'),
    challenge,
    encodeSignature: (R, z) => concatBytes(R.subarray(1), Fn.toBytes(z)),
    // BIP340 verification of x(R) || z under the even-y key (33-byte compressed, prefix 0x02).
    quickVerify: (sig, msg, PK) =>
      sig.length === 64 &&
      !hasOddY(PK) &&
      bip340Equation(sig, PK, challenge(concatBytes(Uint8Array.of(0x02), sig.subarray(0, 32)), PK, msg)),
  };
}

/**
 * A suite of RFC 9591 §6.2-§6.5 whose challenge is H2 (hash to scalar with the suite's "chal" DST, or
 * `chalDst`) over SerializeElement(R) || SerializeElement(PK) || msg, and whose signature is
 * SerializeElement(R) || SerializeScalar(z): FROST(ristretto255, SHA-512), FROST(P-256, SHA-256),
 * FROST(secp256k1, SHA-256) and FROST(Ed448, SHAKE256) (whose H2 is RFC 8032's dom4 prefix).
 */
function rfc9591Suite(opts: {
  ctx: string;
  group: FastGroup;
  /** hash_to_field / H(m) mod order with the DST `dst`. */
  hashToScalar: (m: Uint8Array, dst: Uint8Array) => bigint;
  /** The suite's hash H(m) (for H4, H5). */
  hash: (m: Uint8Array) => Uint8Array;
  chalDst?: string;
  quickVerify?: FastSuite['quickVerify'];
}): FastSuite {
  const { ctx, group, hashToScalar, hash } = opts;
  const Fn = group.Fn;
  const toScalar = (tag: string) => {
    const dst = utf8ToBytes(ctx + tag);
    return (m: Uint8Array) => hashToScalar(m, dst);
  };
  const toBytes = (tag: string) => {
    const dst = utf8ToBytes(ctx + tag);
    return (m: Uint8Array) => hash(concatBytes(dst, m));
  };
  const chal = utf8ToBytes(opts.chalDst ?? `${ctx}chal`);
  return {
    group,
    cache: new ValidElementCache(),
    H1: toScalar('rho'),
    H3: toScalar('nonce'),
    H4: toBytes('msg'),
    H5: toBytes('com'),
    challenge: (R, PK, msg) => hashToScalar(concatBytes(R, PK, msg), chal),
    encodeSignature: (R, z) => concatBytes(R, Fn.toBytes(z)),
    quickVerify: opts.quickVerify ?? (() => false),
  };
}

/** RFC 9591 §6.2-§6.3: H(m) read little-endian and reduced modulo the order. */
const leHashToScalar =
  (hash: (m: Uint8Array) => Uint8Array, Fn: FastGroup['Fn']) => (m: Uint8Array, dst: Uint8Array) =>
    Fn.create(bytesToNumberLE(hash(concatBytes(dst, m))));

const shake256x114 = (m: Uint8Array) => shake256(m, { dkLen: 114 });

const SUITES: Partial<Record<KeySpecName, () => FastSuite>> = {
  FROST_ED25519: ed25519Suite,
  FROST_SECP256K1_TR: secp256k1TrSuite,
  // RFC 9591 §6.5: hash_to_field with expand_message_xmd(SHA-256) (as noble's secp256k1_FROST).
  FROST_SECP256K1: () =>
    rfc9591Suite({
      ctx: 'FROST-secp256k1-SHA256-v1',
      group: secp256k1Native,
      hashToScalar: (m, DST) => secp256k1_hasher.hashToScalar(m, { DST }),
      hash: sha256,
    }),
  // RFC 9591 §6.4, the same construction on P-256.
  FROST_P256: () =>
    rfc9591Suite({
      ctx: 'FROST-P256-SHA256-v1',
      group: p256OpenSsl,
      hashToScalar: (m, DST) => p256_hasher.hashToScalar(m, { DST }),
      hash: sha256,
    }),
  // RFC 9591 §6.2: SHA-512, little-endian, mod L.
  FROST_RISTRETTO255: () =>
    rfc9591Suite({
      ctx: 'FROST-RISTRETTO255-SHA512-v1',
      group: ristretto255Sodium,
      hashToScalar: leHashToScalar(sha512Sodium, ristretto255Sodium.Fn),
      hash: sha512Sodium,
    }),
  // RFC 9591 §6.3: SHAKE256 with 114 bytes out, little-endian, mod L; H2 is RFC 8032's, so the
  // aggregate is an RFC 8032 signature that OpenSSL's Ed448 verifier checks.
  FROST_ED448: () =>
    rfc9591Suite({
      ctx: 'FROST-ED448-SHAKE256-v1',
      group: ed448Noble,
      hashToScalar: leHashToScalar(shake256x114, ed448Noble.Fn),
      hash: shake256x114,
      chalDst: 'SigEd448\0\0',
      quickVerify: ed448VerifyOpenSsl,
    }),
};
const built = new Map<KeySpecName, FastSuite>();

function suiteOf(spec: KeySpec): FastSuite | undefined {
  let s = built.get(spec.name);
  if (s === undefined) {
    const make = SUITES[spec.name];
    if (make === undefined) return undefined;
    s = make();
    built.set(spec.name, s);
  }
  return s;
}

// ---- input checks (RFC 9591 §3.1) ----

function element(suite: FastSuite, bytes: unknown, what: string): Uint8Array {
  if (!(bytes instanceof Uint8Array) || bytes.length !== suite.group.elementLength) {
    throw new DecodeError('InvalidElement', `${what}: elements are ${suite.group.elementLength} bytes`);
  }
  if (!suite.cache.check(bytes, suite.group.isValidElement)) {
    throw new DecodeError(
      'InvalidElement',
      `${what}: not a valid prime-order, non-identity, canonical element`,
    );
  }
  return bytes;
}

function scalar(suite: FastSuite, bytes: unknown, what: string): bigint {
  const Fn = suite.group.Fn;
  if (!(bytes instanceof Uint8Array) || bytes.length !== Fn.BYTES) {
    throw new DecodeError('InvalidScalar', `${what}: scalars are ${Fn.BYTES} bytes`);
  }
  const n = Fn.isLE ? bytesToNumberLE(bytes) : BigInt(`0x${bytesToHex(bytes) || '0'}`);
  if (n >= Fn.ORDER) throw new DecodeError('InvalidScalar', `${what}: not reduced modulo the group order`);
  return n;
}

/** Identifiers are the canonical hex of a non-zero scalar (noble's form). */
function identifier(suite: FastSuite, id: unknown): bigint {
  const Fn = suite.group.Fn;
  if (typeof id !== 'string' || id.length !== 2 * Fn.BYTES || !/^[0-9a-f]*$/.test(id)) {
    throw new DecodeError('InvalidIdentifier', 'identifier: expected canonical hex');
  }
  const n = scalar(suite, hexBytes(id), 'identifier');
  if (n === 0n) throw new DecodeError('InvalidIdentifier', 'identifier: zero is not allowed');
  return n;
}

function hexBytes(hex: string): Uint8Array {
  const out = new Uint8Array(hex.length / 2);
  for (let i = 0; i < out.length; i++) out[i] = Number.parseInt(hex.slice(2 * i, 2 * i + 2), 16);
  return out;
}

function checkPublic(pub: FrostPublic): void {
  const ok =
    typeof pub === 'object' &&
    pub !== null &&
    typeof pub.signers === 'object' &&
    Number.isSafeInteger(pub.signers.min) &&
    Number.isSafeInteger(pub.signers.max) &&
    pub.signers.min >= 2 &&
    pub.signers.min <= pub.signers.max &&
    Array.isArray(pub.commitments) &&
    pub.commitments.length >= 1 &&
    typeof pub.verifyingShares === 'object' &&
    pub.verifyingShares !== null;
  if (!ok) throw new DecodeError('DecodeError', 'public key package: malformed');
}

function checkCount(pub: FrostPublic, n: number): void {
  // RFC 9591 §5.2/§5.3: MIN_PARTICIPANTS <= NUM_PARTICIPANTS <= MAX_PARTICIPANTS.
  if (n < pub.signers.min || n > pub.signers.max) {
    throw new ProtocolError('ProtocolAborted', `wrong number of commitments: ${n}`);
  }
}

/**
 * §5.2 inputs of one signer, checked as noble checks them: the public package, the list size, the
 * share and both nonces as scalars (zero nonces = already used), and this signer's own commitment in
 * the list, which the coordinator must hand back exactly as derived from these nonces.
 */
function signInputs(
  suite: FastSuite,
  secret: FrostSecret,
  pub: FrostPublic,
  nonces: Nonces,
  list: NonceCommitments[],
): { sk: bigint; d: bigint; e: bigint } {
  checkPublic(pub);
  if (!Array.isArray(list)) throw new DecodeError('DecodeError', 'commitment list: must be an array');
  checkCount(pub, list.length);
  const sk = scalar(suite, secret.signingShare, 'signing share');
  const d = scalar(suite, nonces.hiding, 'hiding nonce');
  const e = scalar(suite, nonces.binding, 'binding nonce');
  if (d === 0n || e === 0n) throw new ProtocolError('NonceReused', 'signing nonces already used');
  const own = list.find((c) => c.identifier === secret.identifier);
  if (own === undefined) throw new ProtocolError('ProtocolAborted', 'missing signer commitment');
  const expected = committed(suite, nonces) ?? {
    hiding: suite.group.baseMul(d),
    binding: suite.group.baseMul(e),
  };
  if (!equalBytes(own.hiding, expected.hiding) || !equalBytes(own.binding, expected.binding)) {
    throw new ProtocolError('ProtocolAborted', 'incorrect signer commitment');
  }
  return { sk, d, e };
}

/**
 * The commitments `commit` derived from this very nonce object, if it made it and its bytes are
 * unchanged (a digest of them is kept, not the nonces): [d]G and [e]G without computing them again
 * (two constant-time multiplications, 1.1 ms on Ed448). Anything else is recomputed.
 */
type Committed = { readonly digest: Uint8Array; readonly hiding: Uint8Array; readonly binding: Uint8Array };
const commitMemo = new WeakMap<object, Committed>();

function nonceDigest(nonces: Nonces): Uint8Array {
  return sha256(concatBytes(nonces.hiding, nonces.binding));
}

function committed(suite: FastSuite, nonces: Nonces): Committed | undefined {
  const m = commitMemo.get(nonces);
  if (m === undefined || m.hiding.length !== suite.group.elementLength) return undefined;
  return equalBytes(m.digest, nonceDigest(nonces)) ? m : undefined;
}

// ---- RFC 9591 §4.4-§4.6 ----

type Entry = {
  readonly id: string;
  readonly x: bigint;
  readonly hiding: Uint8Array;
  readonly binding: Uint8Array;
  rho: bigint;
};
type Session = {
  readonly entries: Entry[];
  readonly R: Uint8Array;
  readonly c: bigint;
  readonly PK: Uint8Array;
};

/**
 * The signer's own entry with its nonces (d, e), already checked to be the list's entry under its
 * identifier and equal to ([d]G, [e]G) (signInputs).
 */
type OwnNonces = { readonly id: string; readonly d: bigint; readonly e: bigint };

/**
 * Binding factors (§4.4), group commitment (§4.5) and challenge (§4.6) of one signing session for
 * the (validated) group key PK: the key signed for, which the binding factors hash too. `own`: the
 * signer's own term D_i + ρ_i·E_i is [d_i + ρ_i·e_i]G, one constant-time fixed-base multiplication
 * instead of a variable-base one and an addition (the same point: D_i = [d]G, E_i = [e]G).
 */
function session(
  suite: FastSuite,
  PK: Uint8Array,
  list: readonly NonceCommitments[],
  msg: Uint8Array,
  own?: OwnNonces,
): Session {
  const { group } = suite;
  const Fn = group.Fn;
  if (!Array.isArray(list)) throw new DecodeError('DecodeError', 'commitment list: must be an array');
  if (!(msg instanceof Uint8Array)) throw new DecodeError('DecodeError', 'message: must be bytes');
  // A binding element is multiplied by its binding factor below; where the backend's
  // multiplication checks its input itself (mulChecked), that is its check (bindingTerm).
  const fused = bindingCheckedByMul(suite);
  const entries: Entry[] = list.map((c) => ({
    id: c.identifier,
    x: identifier(suite, c.identifier),
    hiding: element(suite, c.hiding, `commitment ${c.identifier} hiding`),
    binding: fused
      ? sized(suite, c.binding, `commitment ${c.identifier} binding`)
      : element(suite, c.binding, `commitment ${c.identifier} binding`),
    rho: 0n,
  }));
  // §4.3: the list is encoded sorted by identifier; duplicates would make λ undefined (§4.2).
  entries.sort((a, b) => (a.x < b.x ? -1 : a.x > b.x ? 1 : 0));
  for (let i = 1; i < entries.length; i++) {
    if (entries[i]!.x === entries[i - 1]!.x)
      throw new DecodeError('InvalidIdentifier', 'commitment list: duplicate identifier');
  }
  const encoded = concatBytes(...entries.flatMap((e) => [Fn.toBytes(e.x), e.hiding, e.binding]));
  const prefix = concatBytes(PK, suite.H4(msg), suite.H5(encoded));
  let R: Uint8Array | undefined;
  for (const e of entries) e.rho = suite.H1(concatBytes(prefix, Fn.toBytes(e.x)));
  if (entries.length === 0) throw new ProtocolError('ProtocolAborted', 'empty commitment list');
  if (group.msm !== undefined) {
    // §4.5 as one multi-scalar multiplication: Σ D_i + Σ ρ_i·E_i (hiding terms carry scalar 1).
    R = group.msm(
      [...entries.map((e) => e.hiding), ...entries.map((e) => e.binding)],
      [...entries.map(() => 1n), ...entries.map((e) => e.rho)],
    );
  } else {
    for (const e of entries) {
      const k = own !== undefined && e.id === own.id ? Fn.add(own.d, Fn.mul(e.rho, own.e)) : 0n;
      const term = k !== 0n ? group.baseMul(k) : group.add(e.hiding, bindingTerm(suite, e, fused));
      R = R === undefined ? term : group.add(R, term);
    }
  }
  if (R === undefined) throw new ProtocolError('ProtocolAborted', 'empty commitment list');
  return { entries, R, c: suite.challenge(R, PK, msg), PK };
}

/** Whether session() leaves the binding elements' §3.1 check to the multiplication (mulChecked). */
function bindingCheckedByMul(suite: FastSuite): boolean {
  return suite.group.mulChecked !== undefined && suite.group.msm === undefined;
}

/** An element's length only; its §3.1 check follows where it is used (bindingTerm). */
function sized(suite: FastSuite, bytes: unknown, what: string): Uint8Array {
  if (!(bytes instanceof Uint8Array) || bytes.length !== suite.group.elementLength) {
    throw new DecodeError('InvalidElement', `${what}: elements are ${suite.group.elementLength} bytes`);
  }
  return bytes;
}

/**
 * ρ_i·E_i of one entry (§4.5). `fused`: E_i was not checked yet, unless already known valid, and
 * the multiplication checks it (the backend's mulChecked, exactly isValidElement): refused with the
 * same DecodeError as element() would have thrown, before R exists.
 */
function bindingTerm(suite: FastSuite, e: Entry, fused: boolean): Uint8Array {
  const { group, cache } = suite;
  if (!fused || cache.has(e.binding)) return group.mul(e.binding, e.rho);
  const out = group.mulChecked!(e.binding, e.rho);
  if (out === undefined) {
    throw new DecodeError(
      'InvalidElement',
      `commitment ${e.id} binding: not a valid prime-order, non-identity, canonical element`,
    );
  }
  cache.add(e.binding);
  return out;
}

/**
 * Whether signing with `spec` on the fast path checks every commitment's binding element in the
 * session itself (as the multiplication's input check), so sign.ts need not check it beforehand.
 */
export function sessionChecksBinding(spec: KeySpec): boolean {
  const suite = suiteOf(spec);
  return suite !== undefined && bindingCheckedByMul(suite);
}

/** §4.2 derive_interpolating_value(L, x_i): λ_i = Π x_j / Π (x_j − x_i) over j ≠ i. */
function lambda(suite: FastSuite, entries: readonly Entry[], xi: bigint): bigint {
  const Fn = suite.group.Fn;
  let num = Fn.ONE;
  let den = Fn.ONE;
  for (const { x } of entries) {
    if (x === xi) continue;
    num = Fn.mul(num, x);
    den = Fn.mul(den, Fn.sub(x, xi));
  }
  return Fn.div(num, den);
}

function baseMulOrIdentity(suite: FastSuite, k: bigint): Uint8Array | undefined {
  return k === 0n ? undefined : suite.group.baseMul(k);
}

/**
 * The key a session signs for, as an affine image of the stored package (protocol/key-tweak.ts):
 * shares are used as a·s_i + b and verifying shares as a·Y_i + b·G, a = -1 iff `negate`; `PK` is
 * the resulting group key (for BIP340: with even y).
 */
type View = { readonly negate: boolean; readonly add: bigint; readonly PK: Uint8Array };

/** The package as it is (RFC 9591). */
function plainView(suite: FastSuite, pub: FrostPublic): View {
  return { negate: false, add: 0n, PK: element(suite, pub.commitments[0], 'group public key') };
}

/**
 * A resolved tweak. noble's reference (key-tweak.ts tweakPackageNoble) decodes every element of the
 * package to shift it, so every one is checked here too (cached): the same packages are refused.
 */
function tweakedView(suite: FastSuite, pub: FrostPublic, t: AffineTweak): View {
  for (const [i, c] of pub.commitments.entries()) element(suite, c, `key commitment ${i}`);
  for (const [id, y] of Object.entries(pub.verifyingShares)) element(suite, y, `verifying share ${id}`);
  const Fn = suite.group.Fn;
  if (typeof t.add !== 'bigint' || t.add < 0n || t.add >= Fn.ORDER) {
    throw new DecodeError('InvalidScalar', 'tweak: not a reduced scalar');
  }
  return { negate: t.negate === true, add: t.add, PK: element(suite, t.key, 'tweaked group key') };
}

/** The share a signer signs with under `v`: a·s_i + b. */
function viewShare(suite: FastSuite, v: View, sk: bigint): bigint {
  const Fn = suite.group.Fn;
  return Fn.add(v.negate ? Fn.neg(sk) : sk, v.add);
}

/**
 * §5.4 verify_signature_share, with the session already computed, under the view: [z]B =
 * commShare + [c·λ](a·Y + b·G). `taproot`: the commitment share is negated when R has odd y
 * (noble's adjustGroupCommitmentShare: the signer then signed with negated nonces).
 */
function shareValid(
  suite: FastSuite,
  pub: FrostPublic,
  v: View,
  s: Session,
  id: string,
  z: bigint,
  taproot: boolean,
): boolean {
  const { group } = suite;
  const Fn = group.Fn;
  const e = s.entries.find((x) => x.id === id);
  if (e === undefined) throw new DecodeError('InvalidIdentifier', `${id} is not in the commitment list`);
  const Y = element(suite, pub.verifyingShares[id], `verifying share ${id}`);
  const lhs = baseMulOrIdentity(suite, z);
  let commShare = group.add(e.hiding, group.mul(e.binding, e.rho));
  if (taproot && hasOddY(s.R)) commShare = negateElement(commShare);
  const k = Fn.mul(s.c, lambda(suite, s.entries, e.x));
  let rhs = group.add(commShare, group.mul(Y, v.negate ? Fn.neg(k) : k));
  const bk = Fn.mul(v.add, k);
  if (bk !== 0n) rhs = group.add(rhs, group.baseMul(bk));
  return lhs !== undefined && equalBytes(lhs, rhs);
}

/** The operations of sign.ts with the key given as a view (plain, even-y, or a resolved tweak). */
type Core = {
  /**
   * The signature over `msg` from a group commitment R the signers reported and their shares (z = Σ
   * z_i, the suite's encoding), returned only if it verifies under the key of `view` exactly as
   * `aggregate` checks its own (BIP340 for Taproot, the suite's standard verifier, else the group
   * equation [z]B = R + [c]PK); undefined otherwise (a wrong, malformed or odd R, a bad share).
   */
  combine(
    pub: FrostPublic,
    R: Uint8Array,
    msg: Uint8Array,
    shares: readonly Uint8Array[],
    view: (pub: FrostPublic) => View,
  ): Uint8Array | undefined;
  signShare(
    secret: FrostSecret,
    pub: FrostPublic,
    nonces: Nonces,
    list: NonceCommitments[],
    msg: Uint8Array,
    view: (pub: FrostPublic) => View,
  ): Uint8Array;
  verifyShare(
    pub: FrostPublic,
    list: NonceCommitments[],
    msg: Uint8Array,
    id: string,
    share: Uint8Array,
    view: (pub: FrostPublic) => View,
  ): boolean;
  aggregate(
    pub: FrostPublic,
    list: NonceCommitments[],
    msg: Uint8Array,
    shares: Record<string, Uint8Array>,
    view: (pub: FrostPublic) => View,
  ): Uint8Array;
};

/**
 * §5.2 sign, §5.4 verify_signature_share and §5.3 aggregate of one suite. `taproot` adds noble's
 * schnorr_FROST rules for R (adjustNonces, adjustGroupCommitmentShare) and the BIP340 check.
 */
function core(suite: FastSuite, taproot: boolean): Core {
  const Fn = suite.group.Fn;
  return {
    // §5.2 sign. Consumes (zeroes) the nonces on success, as noble's signShare does.
    signShare(secret, pub, nonces, list, msg, view) {
      // Checked against the nonces as committed, before any negation (as noble does).
      const { sk, d, e } = signInputs(suite, secret, pub, nonces, list);
      const v = view(pub);
      const s = session(suite, v.PK, list, msg, { id: secret.identifier, d, e });
      const self = s.entries.find((x) => x.id === secret.identifier)!;
      // BIP340 (noble's adjustNonces): nonces negated when R has odd y, so the aggregate's R is even.
      const oddR = taproot && hasOddY(s.R);
      const dA = oddR ? Fn.neg(d) : d;
      const eA = oddR ? Fn.neg(e) : e;
      // z_i = d_i + e_i·ρ_i + λ_i·s'_i·c with s'_i = a·s_i + b
      const z = Fn.add(
        Fn.add(dA, Fn.mul(eA, self.rho)),
        Fn.mul(Fn.mul(lambda(suite, s.entries, self.x), viewShare(suite, v, sk)), s.c),
      );
      nonces.hiding.fill(0);
      nonces.binding.fill(0);
      const out = Fn.toBytes(z);
      // The group commitment this share was made for, for the coordinator (groupCommitmentOf).
      shareR.set(out, s.R);
      return out;
    },

    combine(pub, R, msg, shares, view) {
      checkPublic(pub);
      if (!(R instanceof Uint8Array) || R.length !== suite.group.elementLength) return undefined;
      if (!(msg instanceof Uint8Array) || shares.length < pub.signers.min || shares.length > pub.signers.max)
        return undefined;
      let z = Fn.ZERO;
      for (const zi of shares) {
        try {
          z = Fn.add(z, scalar(suite, zi, 'signature share'));
        } catch {
          return undefined;
        }
      }
      const v = view(pub);
      if (taproot) {
        // x(R) || z: the signers negated their nonces when R has odd y (adjustNonces), so the
        // signature's R is the even-y point of x(R); BIP340 verification checks exactly that.
        if (R[0] !== 0x02 && R[0] !== 0x03) return undefined;
        const sig = suite.encodeSignature(R, z);
        return bip340Equation(sig, v.PK, suite.challenge(R, v.PK, msg)) ? sig : undefined;
      }
      const sig = suite.encodeSignature(R, z);
      // The standard verifier decodes and checks R itself (libsodium, OpenSSL: canonical, not of
      // small order, and equal to [z]B - [c]PK, so of prime order).
      if (suite.quickVerify(sig, msg, v.PK)) return sig;
      // The group equation, as `aggregate` falls back to it, on R checked first (RFC 9591 §3.1).
      if (!suite.group.isValidElement(R)) return undefined;
      const c = suite.challenge(R, v.PK, msg);
      if (suite.group.schnorrEquation?.(R, z, v.PK, c)) return sig;
      const zB = baseMulOrIdentity(suite, z);
      return zB !== undefined && equalBytes(zB, suite.group.add(R, suite.group.mul(v.PK, c)))
        ? sig
        : undefined;
    },

    verifyShare(pub, list, msg, id, share, view) {
      checkPublic(pub);
      identifier(suite, id);
      const z = scalar(suite, share, 'signature share');
      const v = view(pub);
      return shareValid(suite, pub, v, session(suite, v.PK, list, msg), id, z, taproot);
    },

    // §5.3 aggregate: verify the aggregate signature; only if that fails check every share (§5.4)
    // and name the signers whose shares are invalid (`cheaters`, as noble's error carries them).
    aggregate(pub, list, msg, shares, view) {
      checkPublic(pub);
      const fail = (cheaters: string[]) =>
        Object.assign(new ProtocolError('InvalidSignature', 'aggregation failed'), { cheaters });
      if (!Array.isArray(list) || typeof shares !== 'object' || shares === null) throw fail([]);
      // Where noble decodes the key: first with schnorr_FROST (adjustPublic), else in the session.
      const early = taproot ? view(pub) : undefined;
      if (list.length < pub.signers.min || list.length > pub.signers.max) throw fail([]);
      const ids = list.map((c) => c.identifier);
      if (new Set(ids).size !== ids.length || ids.length !== Object.keys(shares).length) throw fail([]);
      for (const id of ids) {
        if (!Object.hasOwn(shares, id) || !Object.hasOwn(pub.verifyingShares, id)) throw fail([]);
      }
      const v = early ?? view(pub);
      const s = session(suite, v.PK, list, msg);
      const zs = new Map<string, bigint>();
      let z = Fn.ZERO;
      for (const id of ids) {
        const zi = scalar(suite, shares[id], `signature share ${id}`);
        zs.set(id, zi);
        z = Fn.add(z, zi);
      }
      const sig = suite.encodeSignature(s.R, z);
      if (taproot) {
        // The challenge of this session is BIP340's for (x(R), x(PK), msg): no need to hash again.
        if (bip340Equation(sig, v.PK, s.c)) return sig;
      } else {
        if (suite.quickVerify(sig, msg, v.PK)) return sig;
        if (suite.group.schnorrEquation?.(s.R, z, v.PK, s.c)) return sig;
        // The exact §5.3 equation [z]B = R + [c]PK, for the negligible cases the standard verifier
        // refuses although the equation holds (e.g. R the identity).
        const zB = baseMulOrIdentity(suite, z);
        if (zB !== undefined && equalBytes(zB, suite.group.add(s.R, suite.group.mul(v.PK, s.c)))) return sig;
      }
      const cheaters = ids.filter((id) => !shareValid(suite, pub, v, s, id, zs.get(id)!, taproot));
      throw fail(cheaters);
    },
  };
}

// ---- the four operations, with noble's contracts ----

function makeSigning(suite: FastSuite, c: Core, view: (pub: FrostPublic) => View): FrostSigning {
  const { group } = suite;
  const Fn = group.Fn;
  return {
    // §5.1 commit, nonces by §4.1 nonce_generate: H3(random_bytes(32) || SerializeScalar(sk)).
    // BIP340's even-y rules only apply once R is known, so it is the same for every suite.
    commit(secret: FrostSecret, rng: RNG = randomBytes): GenNonce {
      identifier(suite, secret.identifier);
      const sk = scalar(suite, secret.signingShare, 'signing share');
      const skBytes = Fn.toBytes(sk);
      const hiding = suite.H3(concatBytes(rng(32), skBytes));
      const binding = suite.H3(concatBytes(rng(32), skBytes));
      skBytes.fill(0);
      const nonces = { hiding: Fn.toBytes(hiding), binding: Fn.toBytes(binding) } as Nonces;
      const commitments = {
        identifier: secret.identifier,
        hiding: group.baseMul(hiding),
        binding: group.baseMul(binding),
      };
      // [d]G and [e]G with d, e in [1, order) (H3 output, zero only with negligible probability,
      // and baseMul refuses zero): valid by construction, so the signer does not check them again
      // when its own entry of the list comes back (ValidElementCache.add).
      suite.cache.add(commitments.hiding);
      suite.cache.add(commitments.binding);
      commitMemo.set(nonces, {
        digest: nonceDigest(nonces),
        hiding: commitments.hiding.slice(),
        binding: commitments.binding.slice(),
      });
      return { nonces, commitments } as GenNonce;
    },
    signShare: (secret, pub, nonces, list, msg) =>
      c.signShare(
        secret as FrostSecret,
        pub as FrostPublic,
        nonces as Nonces,
        list as NonceCommitments[],
        msg,
        view,
      ) as ReturnType<FROST['signShare']>,
    verifyShare: (pub, list, msg, id, share) =>
      c.verifyShare(pub as FrostPublic, list as NonceCommitments[], msg, id, share, view),
    aggregate: (pub, list, msg, shares) =>
      c.aggregate(pub as FrostPublic, list as NonceCommitments[], msg, shares, view) as ReturnType<
        FROST['aggregate']
      >,
  };
}

// ---- the BIP340/Taproot variant (noble's schnorr_FROST hooks, secp256k1.ts) ----

/**
 * noble's adjustPublic (frostPubToEvenY): if the group key Y has odd y, sign for -Y, so negate the
 * key, every share and every verifying share. A negated element is valid iff the element is, so only
 * parities change here. noble decodes every commitment and verifying share of an odd-y package to
 * negate it; they are checked here too (cached), so exactly the same packages are refused. No
 * Taproot tweak is applied here: that is a tweak (protocol/key-tweak.ts, `fastTweaked`).
 */
function evenView(suite: FastSuite, pub: FrostPublic): View {
  const VK = element(suite, pub.commitments[0], 'group public key');
  const odd = hasOddY(VK);
  if (odd) {
    for (const [i, c] of pub.commitments.entries()) element(suite, c, `key commitment ${i}`);
    for (const [id, y] of Object.entries(pub.verifyingShares)) element(suite, y, `verifying share ${id}`);
  }
  return { negate: odd, add: 0n, PK: odd ? negateElement(VK) : VK };
}

/**
 * The group commitment R (§4.5, SerializeElement, before BIP340's even-y adjustment) each share
 * made on the fast path was computed for, keyed by the share's bytes object: the signer reports it
 * with its share (one-round signing) without computing it again. Weak: it goes with the share.
 */
const shareR = new WeakMap<Uint8Array, Uint8Array>();

/** R of a share this process just made on the fast path (see shareR), or undefined. */
export function groupCommitmentOf(share: Uint8Array): Uint8Array | undefined {
  return shareR.get(share);
}

const signing = new Map<KeySpecName, FrostSigning>();

/** The fast implementation of `spec`'s signing operations, or undefined if the suite has none. */
export function fastFrost(spec: KeySpec): FrostSigning | undefined {
  let f = signing.get(spec.name);
  if (f === undefined) {
    const suite = suiteOf(spec);
    if (suite === undefined) return undefined;
    const taproot = spec.name === 'FROST_SECP256K1_TR';
    f = makeSigning(suite, core(suite, taproot), (pub) =>
      taproot ? evenView(suite, pub) : plainView(suite, pub),
    );
    signing.set(spec.name, f);
  }
  return f;
}

/** Signing for a tweaked key (protocol/key-tweak.ts): the operations of sign.ts with the resolved tweak. */
export type TweakedSigning = {
  signShare(
    secret: FrostSecret,
    pub: FrostPublic,
    nonces: Nonces,
    list: NonceCommitments[],
    msg: Uint8Array,
    tweak: AffineTweak,
  ): Uint8Array;
  verifyShare(
    pub: FrostPublic,
    list: NonceCommitments[],
    msg: Uint8Array,
    id: string,
    share: Uint8Array,
    tweak: AffineTweak,
  ): boolean;
  aggregate(
    pub: FrostPublic,
    list: NonceCommitments[],
    msg: Uint8Array,
    shares: Record<string, Uint8Array>,
    tweak: AffineTweak,
  ): Uint8Array;
};

const tweaked = new Map<KeySpecName, TweakedSigning>();

/** The fast tweaked signing of `spec`, or undefined if the suite has no fast backend. */
export function fastTweaked(spec: KeySpec): TweakedSigning | undefined {
  let f = tweaked.get(spec.name);
  if (f === undefined) {
    const suite = suiteOf(spec);
    if (suite === undefined) return undefined;
    const c = core(suite, spec.name === 'FROST_SECP256K1_TR');
    const at = (t: AffineTweak) => (pub: FrostPublic) => tweakedView(suite, pub, t);
    f = {
      signShare: (secret, pub, nonces, list, msg, t) => c.signShare(secret, pub, nonces, list, msg, at(t)),
      verifyShare: (pub, list, msg, id, share, t) => c.verifyShare(pub, list, msg, id, share, at(t)),
      aggregate: (pub, list, msg, shares, t) => c.aggregate(pub, list, msg, shares, at(t)),
    };
    tweaked.set(spec.name, f);
  }
  return f;
}

/**
 * `combine` (Core) for `spec` under the key as signed (the plain package, its even-y form for
 * BIP340, or a resolved tweak), or undefined if the suite has no fast backend.
 */
export function fastCombine(spec: KeySpec): Combine | undefined {
  let f = combiners.get(spec.name);
  if (f === undefined) {
    const suite = suiteOf(spec);
    if (suite === undefined) return undefined;
    const taproot = spec.name === 'FROST_SECP256K1_TR';
    const c = core(suite, taproot);
    f = (pub, R, msg, shares, tweak) =>
      c.combine(pub, R, msg, shares, (p) =>
        tweak !== undefined
          ? tweakedView(suite, p, tweak)
          : taproot
            ? evenView(suite, p)
            : plainView(suite, p),
      );
    combiners.set(spec.name, f);
  }
  return f;
}

/**
 * The group commitment R (§4.5) of a session over `list` and `msg` for the untweaked key (BIP340:
 * its even-y form), as a signer computes it; undefined if the suite has no fast backend. For tests
 * and tools that need the R an honest signer reports (one-round signing).
 */
export function groupCommitment(
  spec: KeySpec,
  pub: FrostPublic,
  list: readonly { identifier: string; hiding: Uint8Array; binding: Uint8Array }[],
  msg: Uint8Array,
): Uint8Array | undefined {
  const suite = suiteOf(spec);
  if (suite === undefined) return undefined;
  const v = spec.name === 'FROST_SECP256K1_TR' ? evenView(suite, pub) : plainView(suite, pub);
  return session(suite, v.PK, list as NonceCommitments[], msg).R;
}

type Combine = (
  pub: FrostPublic,
  R: Uint8Array,
  msg: Uint8Array,
  shares: readonly Uint8Array[],
  tweak?: AffineTweak,
) => Uint8Array | undefined;
const combiners = new Map<KeySpecName, Combine>();

/** The signing operations sign.ts uses for `spec`: the fast ones where there are, noble's otherwise. */
export function signingFrost(spec: KeySpec): FrostSigning {
  return fastFrost(spec) ?? spec.frost;
}

/**
 * RFC 9591 §3.1 element check for signing inputs, throwing DecodeError('InvalidElement') exactly
 * when decodeElement does; on a fast suite each distinct encoding is checked once (cached).
 */
export function checkElement(spec: KeySpec, bytes: Uint8Array, what = 'element'): void {
  const suite = suiteOf(spec);
  if (suite === undefined) {
    decodeElement(spec, bytes, what);
    return;
  }
  element(suite, bytes, what);
}

/**
 * Forgets every cached element check. For benchmarks that run all parties in one process: calling
 * it before each party's step charges that party its own checks, as a separate process would pay.
 */
export function forgetValidatedElements(): void {
  for (const s of built.values()) {
    s.cache.clear();
    s.group.forget?.();
  }
}
