/**
 * Non-hardened hierarchical derivation of threshold keys: child public keys from the group key and
 * a chain code, and the additive tweak that turns signing with the parent shares into signing with
 * the child key. No private key is ever formed: each signer adds the tweak to its share's
 * contribution (protocol/key-tweak.ts), as RFC 9591 key tweaking and BIP32 public derivation allow.
 *
 * secp256k1 (FROST_SECP256K1_TR, FROST_SECP256K1): BIP32 CKDpub exactly. For a path m/i1/.../ik,
 *   I = HMAC-SHA512(c_par, serP(K_par) || ser32(i)),  K_i = K_par + parse256(I_L)·G,  c_i = I_R,
 * and the cumulative tweak is Σ parse256(I_L) mod n (BIP32 "Public parent key → public child key").
 * The key the tweak applies to is the stored group element (for Taproot: the internal key P with
 * even y), so child keys equal what any BIP32 wallet derives from the xpub (xpubOf below).
 *
 * Ed25519 (FROST_ED25519): an additive scheme of the same shape (documented in docs/custody.md):
 *   I = SHA-512("TKMS/ed25519-derive/v1" || A_par || c_par || ser32(i)),
 *   t = int_LE(I[0..32]) mod L,  A_i = A_par + t·B,  c_i = I[32..64].
 * The children are ordinary Ed25519 public keys (RFC 8032 verification accepts their signatures);
 * they are not BIP32-Ed25519 or SLIP-0010 keys (those derive from a seed, which does not exist here).
 *
 * Hardened indices (≥ 2^31) are refused: CKDpriv hashes the parent PRIVATE key, which exists
 * nowhere (only its shares do), so no set of signers could compute a hardened child.
 */
import { hmac } from '@noble/hashes/hmac.js';
import { ripemd160 } from '@noble/hashes/legacy.js';
import { sha256, sha512 } from '@noble/hashes/sha2.js';
import { bytesToNumberBE, bytesToNumberLE } from '@noble/curves/utils.js';
import { HDKey } from '@scure/bip32';
import { concatBytes, utf8ToBytes } from './bytes.ts';
import { KmsError } from './errors.ts';
import { type Backend, type Elem, groupOf } from './group.ts';
import type { KeySpec } from './suites.ts';

/** First hardened index (BIP32). */
export const HARDENED_OFFSET = 0x80000000;
/** Deepest path accepted: bounds the work a request can ask for (one HMAC and one point addition per level). */
export const MAX_PATH_DEPTH = 32;
export const CHAIN_CODE_LENGTH = 32;

/** Non-hardened child indices from the root, e.g. [0, 5] for m/0/5. */
export type DerivationPath = readonly number[];

const HARDENED_WHY =
  'hardened derivation needs the parent private key, which no node holds (a threshold key exists ' +
  'only as shares); use non-hardened indices 0 to 2147483647';

function invalid(message: string): KmsError {
  return new KmsError('ValidationError', message);
}

/** Parses `m`, `m/0/5`: decimal non-hardened indices only; `'`, `h`, `H` or ≥ 2^31 are refused. */
export function parsePath(path: string): DerivationPath {
  if (typeof path !== 'string' || path.length > 16 * MAX_PATH_DEPTH) {
    throw invalid('derivation path: expected a string like m/0/5');
  }
  const parts = path.split('/');
  if (parts[0] !== 'm') throw invalid(`derivation path ${JSON.stringify(path)}: must start with m`);
  const out: number[] = [];
  for (const p of parts.slice(1)) {
    if (/^\d+['hH]$/.test(p))
      throw invalid(`derivation path ${JSON.stringify(path)}: ${p} is hardened; ${HARDENED_WHY}`);
    if (!/^(0|[1-9]\d{0,9})$/.test(p)) {
      throw invalid(`derivation path ${JSON.stringify(path)}: ${JSON.stringify(p)} is not an index`);
    }
    out.push(checkIndex(Number(p)));
  }
  return checkPath(out);
}

function checkIndex(i: number): number {
  if (!Number.isSafeInteger(i) || i < 0) throw invalid(`derivation index ${i}: not an index`);
  if (i >= HARDENED_OFFSET) throw invalid(`derivation index ${i} is hardened; ${HARDENED_WHY}`);
  return i;
}

/** Validates an index list (non-hardened, at most MAX_PATH_DEPTH levels). */
export function checkPath(path: DerivationPath): DerivationPath {
  if (!Array.isArray(path)) throw invalid('derivation path: expected an index list');
  if (path.length > MAX_PATH_DEPTH) throw invalid(`derivation path: at most ${MAX_PATH_DEPTH} levels`);
  for (const i of path) checkIndex(i);
  return path;
}

export function formatPath(path: DerivationPath): string {
  return ['m', ...path.map(String)].join('/');
}

/**
 * The chain code of a key, fixed at creation: SHA-256 tagged hash (BIP340 construction) with tag
 * "TKMS/chain-code/v1" over the suite name, the DKG's group element and the DKG transcript hash
 * (protocol/dkg.ts DkgResult). Every member computes the same value; it changes with no later key
 * event (refresh, reshare and repair keep the group element and the stored chain code), and it is
 * not computable from the public key alone, so publishing a child key does not reveal the tree.
 */
export function chainCodeFor(
  spec: KeySpec,
  groupElement: Uint8Array,
  transcriptHash: Uint8Array,
): Uint8Array {
  return taggedHash('TKMS/chain-code/v1', utf8ToBytes(spec.name), groupElement, transcriptHash);
}

function taggedHash(tag: string, ...parts: Uint8Array[]): Uint8Array {
  const t = sha256(utf8ToBytes(tag));
  return sha256(concatBytes(t, t, ...parts));
}

function ser32(i: number): Uint8Array {
  const b = new Uint8Array(4);
  new DataView(b.buffer).setUint32(0, i, false);
  return b;
}

/** One level of derivation: the child's key, chain code and the scalar added at this level. */
type Step = { readonly key: Elem; readonly chainCode: Uint8Array; readonly tweak: bigint };

export type Derived = {
  /** The child public key as a serialized group element (SerializeElement). */
  readonly key: Uint8Array;
  readonly chainCode: Uint8Array;
  /** Σ of the per-level tweaks mod the group order: child = parent + tweak·G. */
  readonly tweak: bigint;
  readonly depth: number;
  /** Last index (0 at the root). */
  readonly index: number;
  /** BIP32 fingerprint of the parent key (first 4 bytes of HASH160(serP(K_par))); 0 at the root. */
  readonly parentFingerprint: number;
};

function stepFor(
  spec: KeySpec,
): (key: Elem, keyBytes: Uint8Array, c: Uint8Array, i: number, g: ReturnType<typeof groupOf>) => Step {
  const Fn = spec.Point.Fn;
  if (spec.curve === 'secp256k1') {
    // BIP32 CKDpub: I_L ≥ n or K_i at infinity makes the index invalid ("proceed with the next").
    return (key, keyBytes, c, i, g) => {
      const I = hmac(sha512, c, concatBytes(keyBytes, ser32(i)));
      const t = bytesToNumberBE(I.subarray(0, 32));
      if (t >= Fn.ORDER)
        throw invalid(`derivation index ${i} is invalid for this key (BIP32: I_L ≥ n); use the next index`);
      const child = key.add(g.baseMul(t));
      if (child.is0())
        throw invalid(
          `derivation index ${i} is invalid for this key (BIP32: child at infinity); use the next index`,
        );
      return { key: child, chainCode: I.slice(32), tweak: t };
    };
  }
  if (spec.name === 'FROST_ED25519') {
    const dst = utf8ToBytes('TKMS/ed25519-derive/v1');
    return (key, keyBytes, c, i, g) => {
      const I = sha512(concatBytes(dst, keyBytes, c, ser32(i)));
      const t = Fn.create(bytesToNumberLE(I.subarray(0, 32)));
      const child = t === 0n ? g.ZERO : key.add(g.baseMul(t));
      if (child.is0()) throw invalid(`derivation index ${i} is invalid for this key; use the next index`);
      return { key: child, chainCode: I.slice(32), tweak: t };
    };
  }
  throw invalid(`${spec.name} keys do not support derivation (secp256k1 and Ed25519 keys do)`);
}

/** Whether the suite supports derivation at all. */
export function derivable(spec: KeySpec): boolean {
  return spec.curve === 'secp256k1' || spec.name === 'FROST_ED25519';
}

/**
 * Derives the child at `path` from a group element and its chain code. `backend` selects the group
 * arithmetic (native libsecp256k1 / libsodium, or noble: the reference; both give the same bytes).
 */
export function derive(
  spec: KeySpec,
  groupElement: Uint8Array,
  chainCode: Uint8Array,
  path: DerivationPath,
  backend: Backend = 'native',
): Derived {
  checkPath(path);
  if (!(chainCode instanceof Uint8Array) || chainCode.length !== CHAIN_CODE_LENGTH) {
    throw invalid(`chain code: expected ${CHAIN_CODE_LENGTH} bytes`);
  }
  const g = groupOf(spec, backend);
  const step = stepFor(spec);
  const Fn = spec.Point.Fn;
  let key = g.decode(groupElement, 'group element');
  let keyBytes = groupElement;
  let c = chainCode;
  let tweak = 0n;
  let parent = 0;
  for (const i of path) {
    parent = fingerprint(keyBytes);
    const s = step(key, keyBytes, c, i, g);
    key = s.key;
    keyBytes = key.toBytes();
    c = s.chainCode;
    tweak = Fn.add(tweak, s.tweak);
  }
  return {
    key: keyBytes,
    chainCode: c,
    tweak,
    depth: path.length,
    index: path.length === 0 ? 0 : path[path.length - 1]!,
    parentFingerprint: path.length === 0 ? 0 : parent,
  };
}

/** BIP32 key identifier prefix: first 4 bytes of HASH160 of the serialized key, big-endian. */
function fingerprint(key: Uint8Array): number {
  const h = ripemd160(sha256(key));
  return new DataView(h.buffer, h.byteOffset, 4).getUint32(0, false);
}

/** BIP32 version bytes of extended public keys (xpub mainnet, tpub for the test networks). */
export const XPUB_VERSIONS = {
  bitcoin: { public: 0x0488b21e, private: 0x0488ade4 },
  test: { public: 0x043587cf, private: 0x04358394 },
} as const;
export type XpubNetwork = keyof typeof XPUB_VERSIONS;

/**
 * BIP32 serialization of the extended public key at `path` (@scure/bip32 encodes it): version,
 * depth, parent fingerprint, index, chain code, compressed key. secp256k1 suites only: an xpub of
 * a Taproot key carries the internal key P (wallets apply the TapTweak, BIP86).
 */
export function xpubOf(
  spec: KeySpec,
  groupElement: Uint8Array,
  chainCode: Uint8Array,
  path: DerivationPath = [],
  network: XpubNetwork = 'bitcoin',
): string {
  if (spec.curve !== 'secp256k1')
    throw invalid(`extended public keys (BIP32) exist for secp256k1 keys only, not ${spec.name}`);
  const d = derive(spec, groupElement, chainCode, path);
  return new HDKey({
    versions: XPUB_VERSIONS[network],
    publicKey: d.key,
    chainCode: d.chainCode,
    depth: d.depth,
    index: d.index,
    parentFingerprint: d.parentFingerprint,
  }).publicExtendedKey;
}

/** Parses an xpub/tpub (@scure/bip32): its compressed key and chain code, refusing private keys. */
export function parseXpub(xpub: string): {
  key: Uint8Array;
  chainCode: Uint8Array;
  depth: number;
  network: XpubNetwork;
} {
  for (const network of ['bitcoin', 'test'] as const) {
    let k: HDKey;
    try {
      k = HDKey.fromExtendedKey(xpub, XPUB_VERSIONS[network]);
    } catch {
      continue;
    }
    if (k.privateKey) throw invalid('expected an extended PUBLIC key, got a private one');
    return { key: k.publicKey!, chainCode: k.chainCode!, depth: k.depth, network };
  }
  throw invalid('not a BIP32 extended public key (xpub or tpub)');
}
