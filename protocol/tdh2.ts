/**
 * TDH2 threshold decryption on ristretto255, as a KEM-DEM hybrid (encryption keys of key spec
 * TDH2_RISTRETTO255). The scheme is TDH2 of Shoup and Gennaro, "Securing Threshold Cryptosystems
 * against Chosen Ciphertext Attack" (J. Cryptology 15(2), 2002; EUROCRYPT '98): CCA-secure in the
 * random-oracle model under CDH. Its message mask H1(h^r) ⊕ m is replaced here by an AEAD under a
 * key derived from h^r (the standard KEM-DEM composition); the AEAD ciphertext and the label are
 * inside the challenge e, so the validity proof binds them exactly as TDH2 binds c and L.
 *
 *   g = ristretto255 base, ḡ = from_hash(SHA-512("tkms/tdh2/v1/second-generator")) (nobody knows
 *   log_g ḡ); public key h = x·g (the key's group element); node i holds x_i with h_i = x_i·g.
 *   Encrypt(h, L, m):  r, s random; u = r·g, ū = r·ḡ, w = s·g, w̄ = s·ḡ; K = KDF(u, r·h);
 *                      c = AES-256-GCM_K(m, aad = L); e = H2(c, L, u, w, ū, w̄); f = s + r·e.
 *   Valid(ct, L):      e == H2(c, L, u, f·g − e·u, ū, f·ḡ − e·ū).
 *   Share_i(ct, L):    only for a valid ct: u_i = x_i·u with a Chaum–Pedersen proof (DLEQ,
 *                      Fiat–Shamir) that log_u u_i = log_g h_i: s_i random; e_i = H4(u_i, s_i·u,
 *                      s_i·g, context); f_i = s_i + x_i·e_i.
 *   Combine:           r·h = Σ λ_i·u_i over t valid shares; m = AES-256-GCM⁻¹_K(c, aad = L).
 * Pure: no I/O; randomness is injected where tests need determinism.
 */
import { gcm } from '@noble/ciphers/aes.js';
import { sha512 } from '@noble/hashes/sha2.js';
import { randomBytes } from '@noble/hashes/utils.js';
import { bytesToNumberLE, numberToBytesBE } from '@noble/curves/utils.js';
import { concatBytes, utf8ToBytes } from './bytes.ts';
import { DecodeError, KmsError } from './errors.ts';
import { Fq, libsodiumOps, type RistrettoOps } from './ristretto-ops.ts';

const DST = 'tkms/tdh2/v1/';
/** Largest plaintext, as AWS KMS Encrypt (4 KiB). */
export const MAX_PLAINTEXT = 4096;

/** Length-prefixed concatenation so that no two different item lists hash alike. */
function frame(items: readonly Uint8Array[]): Uint8Array {
  return concatBytes(...items.flatMap((it) => [numberToBytesBE(it.length, 4), it]));
}
function hashToScalar(label: string, items: readonly Uint8Array[]): bigint {
  return Fq.create(bytesToNumberLE(sha512(frame([utf8ToBytes(DST + label), ...items]))));
}
function randomScalar(rng: (n: number) => Uint8Array): bigint {
  for (;;) {
    const k = Fq.create(bytesToNumberLE(rng(64)));
    if (k !== 0n) return k;
  }
}

let gBarCache: Uint8Array | undefined;
/** The second generator ḡ (independent of g: a hash output). */
export function secondGenerator(ops: RistrettoOps = libsodiumOps): Uint8Array {
  if (!gBarCache) gBarCache = ops.fromHash(sha512(utf8ToBytes(`${DST}second-generator`)));
  return gBarCache;
}

/** The AEAD key and nonce from u and the shared secret r·h (single use: r is fresh). */
function kdf(u: Uint8Array, z: Uint8Array): { key: Uint8Array; nonce: Uint8Array } {
  const okm = sha512(frame([utf8ToBytes(`${DST}kdf`), u, z]));
  return { key: okm.subarray(0, 32), nonce: okm.subarray(32, 44) };
}

export type Tdh2Ciphertext = {
  /** AEAD ciphertext with its 16-byte tag. */
  readonly c: Uint8Array;
  readonly u: Uint8Array;
  readonly uBar: Uint8Array;
  readonly e: bigint;
  readonly f: bigint;
};

export type DecryptionShare = {
  /** The share's FROST identifier (hex scalar, as in the key's package). */
  readonly id: string;
  readonly ui: Uint8Array;
  readonly ei: bigint;
  readonly fi: bigint;
};

function challenge(
  c: Uint8Array,
  label: Uint8Array,
  u: Uint8Array,
  w: Uint8Array,
  uBar: Uint8Array,
  wBar: Uint8Array,
): bigint {
  return hashToScalar('e', [c, label, u, w, uBar, wBar]);
}

export function encrypt(
  publicKey: Uint8Array,
  label: Uint8Array,
  plaintext: Uint8Array,
  opts: { ops?: RistrettoOps; rng?: (n: number) => Uint8Array } = {},
): Tdh2Ciphertext {
  const ops = opts.ops ?? libsodiumOps;
  const rng = opts.rng ?? randomBytes;
  if (plaintext.length > MAX_PLAINTEXT)
    throw new KmsError('ValidationError', `plaintext is over ${MAX_PLAINTEXT} bytes`);
  if (!ops.isValid(publicKey))
    throw new DecodeError('InvalidElement', 'encryption public key is not a ristretto255 element');
  const gBar = secondGenerator(ops);
  const r = randomScalar(rng);
  const s = randomScalar(rng);
  const u = ops.baseMul(r);
  const uBar = ops.mul(gBar, r);
  const w = ops.baseMul(s);
  const wBar = ops.mul(gBar, s);
  const { key, nonce } = kdf(u, ops.mul(publicKey, r));
  const c = gcm(key, nonce, label).encrypt(plaintext);
  const e = challenge(c, label, u, w, uBar, wBar);
  const f = Fq.add(s, Fq.mul(r, e));
  return { c, u, uBar, e, f };
}

declare const VALID: unique symbol;
/** A ciphertext that passed TDH2's validity check for `label` (only `validateCiphertext` makes one). */
export type ValidCiphertext = {
  readonly ct: Tdh2Ciphertext;
  readonly label: Uint8Array;
  readonly [VALID]: true;
};

/** The validity check, remembered: a node checks once and computes its share from the result. */
export function validateCiphertext(
  ct: Tdh2Ciphertext,
  label: Uint8Array,
  ops: RistrettoOps = libsodiumOps,
): ValidCiphertext | undefined {
  return isValidCiphertext(ct, label, ops) ? ({ ct, label } as ValidCiphertext) : undefined;
}

/** TDH2's validity check (ciphertext and label): every node runs it before computing a share. */
export function isValidCiphertext(
  ct: Tdh2Ciphertext,
  label: Uint8Array,
  ops: RistrettoOps = libsodiumOps,
): boolean {
  try {
    if (!ops.isValid(ct.u) || !ops.isValid(ct.uBar)) return false;
    if (ct.e <= 0n || ct.e >= Fq.ORDER || ct.f <= 0n || ct.f >= Fq.ORDER) return false;
    const gBar = secondGenerator(ops);
    const w = ops.sub(ops.baseMul(ct.f), ops.mul(ct.u, ct.e));
    const wBar = ops.sub(ops.mul(gBar, ct.f), ops.mul(ct.uBar, ct.e));
    return challenge(ct.c, label, ct.u, w, ct.uBar, wBar) === ct.e;
  } catch {
    return false;
  }
}

function shareChallenge(
  id: string,
  u: Uint8Array,
  hi: Uint8Array,
  ui: Uint8Array,
  uHat: Uint8Array,
  hHat: Uint8Array,
): bigint {
  return hashToScalar('dleq', [utf8ToBytes(id), u, hi, ui, uHat, hHat]);
}

/**
 * Node i's decryption share, after checking the ciphertext against the label: refuses (throws
 * InvalidCiphertext-class ValidationError) before any secret is used on an invalid one.
 */
export function decryptionShare(
  ct: Tdh2Ciphertext,
  label: Uint8Array,
  share: { id: string; secret: bigint; verifyingShare: Uint8Array },
  opts: { ops?: RistrettoOps; rng?: (n: number) => Uint8Array } = {},
): DecryptionShare {
  const ops = opts.ops ?? libsodiumOps;
  const valid = validateCiphertext(ct, label, ops);
  if (!valid) {
    throw new KmsError(
      'ValidationError',
      'InvalidCiphertext: the ciphertext or its encryption context is not valid',
    );
  }
  return decryptionShareOf(valid, share, opts);
}

/** Node i's decryption share of a ciphertext already validated (`validateCiphertext`). */
export function decryptionShareOf(
  valid: ValidCiphertext,
  share: { id: string; secret: bigint; verifyingShare: Uint8Array },
  opts: { ops?: RistrettoOps; rng?: (n: number) => Uint8Array } = {},
): DecryptionShare {
  const ops = opts.ops ?? libsodiumOps;
  const { ct } = valid;
  const si = randomScalar(opts.rng ?? randomBytes);
  const ui = ops.mul(ct.u, share.secret);
  const ei = shareChallenge(share.id, ct.u, share.verifyingShare, ui, ops.mul(ct.u, si), ops.baseMul(si));
  return { id: share.id, ui, ei, fi: Fq.add(si, Fq.mul(share.secret, ei)) };
}

/** Checks node i's share against its verifying share h_i (Chaum–Pedersen). Never throws. */
export function verifyDecryptionShare(
  ct: Tdh2Ciphertext,
  verifyingShare: Uint8Array,
  s: DecryptionShare,
  ops: RistrettoOps = libsodiumOps,
): boolean {
  try {
    if (!ops.isValid(s.ui) || s.ei <= 0n || s.ei >= Fq.ORDER || s.fi <= 0n || s.fi >= Fq.ORDER) return false;
    const uHat = ops.sub(ops.mul(ct.u, s.fi), ops.mul(s.ui, s.ei));
    const hHat = ops.sub(ops.baseMul(s.fi), ops.mul(verifyingShare, s.ei));
    return shareChallenge(s.id, ct.u, verifyingShare, s.ui, uHat, hHat) === s.ei;
  } catch {
    return false;
  }
}

/**
 * Combines t shares (the caller verified each; `lagrange(id, ids)` gives λ_id at 0) and opens the
 * AEAD. A wrong label or a forged share makes the AEAD fail: ValidationError InvalidCiphertext.
 */
export function combine(
  ct: Tdh2Ciphertext,
  label: Uint8Array,
  shares: readonly DecryptionShare[],
  lagrange: (id: string, ids: readonly string[]) => bigint,
  ops: RistrettoOps = libsodiumOps,
): Uint8Array {
  const ids = shares.map((s) => s.id);
  let z: Uint8Array | undefined;
  for (const s of shares) {
    const term = ops.mul(s.ui, lagrange(s.id, ids));
    z = z ? ops.add(z, term) : term;
  }
  if (!z) throw new KmsError('ValidationError', 'no decryption shares');
  const { key, nonce } = kdf(ct.u, z);
  try {
    return gcm(key, nonce, label).decrypt(ct.c);
  } catch {
    throw new KmsError('ValidationError', 'InvalidCiphertext: decryption failed (wrong context or shares)');
  }
}

/**
 * The label of an encryption context (AWS KMS semantics: a string map, matched exactly): the
 * canonical form, keys sorted, length-prefixed. An absent context is the empty map.
 */
export function contextLabel(context: Readonly<Record<string, string>> = {}): Uint8Array {
  const keys = Object.keys(context).sort();
  return frame([
    utf8ToBytes(`${DST}context`),
    ...keys.flatMap((k) => [utf8ToBytes(k), utf8ToBytes(context[k]!)]),
  ]);
}
