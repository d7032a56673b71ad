/**
 * Which key a threshold signature is for: the stored group key, a non-hardened child of it
 * (protocol/derivation.ts), and for FROST_SECP256K1_TR the BIP341 output key on top.
 *
 * Every such key is an affine image of the group key, Y' = a·Y + b·G with a = ±1, so signing for
 * it needs no secret beyond the shares: each signer uses a·s_i + b as its share (Σ λ_i = 1 over
 * any signing set, so the shares interpolate to a·s + b) and the verifying shares become
 * a·Y_i + b·G, which keeps RFC 9591 §5.4 share verification (identifiable abort) working.
 *
 * FROST_SECP256K1_TR, in this order (BIP32, BIP340, BIP341):
 *   1. derivation: K = P + d·G (P the stored internal key, d the path's cumulative tweak);
 *   2. "keyPath": K with even y (BIP340 lift_x: negate if odd), t = int(hash_TapTweak(x(K) || m))
 *      with m the 32-byte merkle root or empty (key-path-only, BIP86), Q = K + t·G;
 *      "none": Q = K (the key as a tapscript leaf key, BIP342);
 *   3. BIP340 signs for Q with even y: negate once more if Q has odd y.
 * The resolution below computes (a, b, Q) once; the signing backends apply it (fast-sign.ts) and
 * `tweakPackageNoble` applies the same steps to noble's key package (the reference: noble's
 * schnorr_FROST then does step 3 itself). test/taproot-tweak.test.ts proves both equal.
 *
 * Packages made by the DKG before the internal key was kept ("baked": the stored element already
 * is the empty-root output key, see docs/custody.md) sign only as before: no derivation, key path,
 * no merkle root.
 */
import type { FrostPublic, FrostSecret } from '@noble/curves/abstract/frost.js';
import { schnorr } from '@noble/curves/secp256k1.js';
import { bytesToNumberBE } from '@noble/curves/utils.js';
import { toHex } from './bytes.ts';
import { type DerivationPath, derivable, derive, parsePath } from './derivation.ts';
import { KmsError } from './errors.ts';
import { type Backend, type Elem, type Group, groupOf } from './group.ts';
import { type KeySpec, publicKeyFromGroupElement } from './suites.ts';

/** BIP341 tweak of a Taproot signature. */
export type TaprootTweak =
  /** Key-path spend of the output whose internal key is the (derived) key; merkleRoot null = no script path. */
  | { readonly kind: 'keyPath'; readonly merkleRoot: Uint8Array | null }
  /** The untweaked (derived) key, as a tapscript leaf key (script-path spends, BIP342). */
  | { readonly kind: 'none' };

export type SigningTweak = {
  /** Non-hardened derivation from the group key with the key's chain code. */
  readonly derivation?: { readonly chainCode: Uint8Array; readonly path: DerivationPath };
  /** FROST_SECP256K1_TR only; default key path with no merkle root. */
  readonly taproot?: TaprootTweak;
  /** FROST_SECP256K1_TR legacy packages whose stored key already is the output key (see above). */
  readonly taprootTweakBaked?: boolean;
};

/** A resolved tweak: shares a·s_i + b, verifying shares a·Y_i + b·G, signature verifies under `key`. */
export type AffineTweak = {
  /** a = -1. */
  readonly negate: boolean;
  /** b, a scalar below the group order. */
  readonly add: bigint;
  /** Y' as a serialized group element (FROST_SECP256K1_TR: even y, prefix 0x02). */
  readonly key: Uint8Array;
};

/** The default tweak of a suite's signatures: key path, no script path, for Taproot; none otherwise. */
export const KEY_PATH: SigningTweak = Object.freeze({
  taproot: Object.freeze({ kind: 'keyPath', merkleRoot: null } as const),
});

export function defaultSigningTweak(spec: KeySpec): SigningTweak | undefined {
  return spec.name === 'FROST_SECP256K1_TR' ? KEY_PATH : undefined;
}

function invalid(message: string): KmsError {
  return new KmsError('ValidationError', message);
}

/** BIP341 taproot_tweak_pubkey's t = int(hash_TapTweak(x(P) || merkleRoot)); t ≥ n is an error. */
export function tapTweak(xOnlyInternal: Uint8Array, merkleRoot: Uint8Array | null): bigint {
  if (merkleRoot !== null && (!(merkleRoot instanceof Uint8Array) || merkleRoot.length !== 32)) {
    throw invalid('merkleRoot: expected 32 bytes or null (key path only)');
  }
  const t = bytesToNumberBE(
    schnorr.utils.taggedHash('TapTweak', xOnlyInternal, merkleRoot ?? new Uint8Array(0)),
  );
  if (t >= schnorr.Point.Fn.ORDER) throw invalid('TapTweak hash is not below the group order (BIP341)');
  return t;
}

function checkTweak(spec: KeySpec, tweak: SigningTweak): void {
  const tr = spec.name === 'FROST_SECP256K1_TR';
  if (!tr && (tweak.taproot !== undefined || tweak.taprootTweakBaked)) {
    throw invalid(`taproot tweaks apply to FROST_SECP256K1_TR keys only, not ${spec.name}`);
  }
  if (tweak.taprootTweakBaked) {
    const t = tweak.taproot;
    if (
      tweak.derivation !== undefined ||
      (t !== undefined && (t.kind !== 'keyPath' || t.merkleRoot !== null))
    ) {
      throw invalid(
        'this Taproot key was created before internal keys were kept: its stored key already is the ' +
          'key-path output key, so it signs only key-path spends without merkle root or derivation',
      );
    }
  }
}

/** a·X + b·G on elements. */
type Affine = { negate: boolean; add: bigint; K: Elem };

function applySteps(
  spec: KeySpec,
  g: Group,
  element: Uint8Array,
  tweak: SigningTweak,
  backend: Backend,
): Affine {
  checkTweak(spec, tweak);
  const Fn = spec.Point.Fn;
  let st: Affine = { negate: false, add: 0n, K: g.decode(element, 'group element') };
  const neg = (s: Affine): Affine => ({ negate: !s.negate, add: Fn.neg(s.add), K: s.K.negate() });
  if (tweak.derivation !== undefined) {
    const d = derive(spec, element, tweak.derivation.chainCode, tweak.derivation.path, backend);
    st = { negate: false, add: d.tweak, K: g.decode(d.key, 'derived key') };
  }
  if (spec.name !== 'FROST_SECP256K1_TR') return st;
  const tr = tweak.taproot ?? { kind: 'keyPath', merkleRoot: null };
  if (tr.kind === 'keyPath' && !tweak.taprootTweakBaked) {
    if (!g.hasEvenY(st.K)) st = neg(st);
    const t = tapTweak(st.K.toBytes().subarray(1), tr.merkleRoot);
    const K = st.K.add(g.baseMul(t));
    if (K.is0()) throw invalid('Taproot output key is the point at infinity');
    st = { negate: st.negate, add: Fn.add(st.add, t), K };
  }
  if (!g.hasEvenY(st.K)) st = neg(st);
  return st;
}

const cache = new Map<string, AffineTweak>();
const CACHE_MAX = 1024;

function cacheKey(spec: KeySpec, element: Uint8Array, t: SigningTweak, backend: Backend): string {
  const tr = t.taproot;
  return [
    spec.name,
    backend,
    toHex(element),
    t.derivation ? `${toHex(t.derivation.chainCode)}/${t.derivation.path.join('/')}` : '-',
    tr === undefined ? '-' : tr.kind === 'none' ? 'none' : `kp:${tr.merkleRoot ? toHex(tr.merkleRoot) : ''}`,
    t.taprootTweakBaked ? 'baked' : '',
  ].join('|');
}

/**
 * Resolves a tweak for the group key `element` (a pure function of public inputs, cached). For the
 * fast signing path; `backend: 'noble'` computes it with noble's points (same result).
 */
export function resolveTweak(
  spec: KeySpec,
  element: Uint8Array,
  tweak: SigningTweak,
  backend: Backend = 'native',
): AffineTweak {
  const k = cacheKey(spec, element, tweak, backend);
  const hit = cache.get(k);
  if (hit !== undefined) return hit;
  const st = applySteps(spec, groupOf(spec, backend), element, tweak, backend);
  const out: AffineTweak = Object.freeze({ negate: st.negate, add: st.add, key: st.K.toBytes() });
  if (cache.size >= CACHE_MAX) cache.delete(cache.keys().next().value!);
  cache.set(k, out);
  return out;
}

/** The public key signatures with `tweak` verify under, in the suite's API encoding (TR: x-only). */
export function signingPublicKey(spec: KeySpec, element: Uint8Array, tweak?: SigningTweak): Uint8Array {
  if (tweak === undefined) return publicKeyFromGroupElement(spec, element);
  return publicKeyFromGroupElement(spec, resolveTweak(spec, element, tweak).key);
}

/**
 * The API public key of a key: for FROST_SECP256K1_TR the BIP341 output key of the key path with
 * no merkle root (what `publicKey` has always been), else the group key.
 */
export function outputPublicKey(spec: KeySpec, element: Uint8Array): Uint8Array {
  return signingPublicKey(spec, element, defaultSigningTweak(spec));
}

export type TaprootKeys = {
  /** BIP341 internal key (x-only): the stored key, or its child at the derivation path. */
  readonly internalKey: Uint8Array;
  /** BIP341 output key (x-only) for `merkleRoot`. */
  readonly outputKey: Uint8Array;
  readonly merkleRoot: Uint8Array | null;
  /** Parity of the output key's y (the control block's low bit for script-path spends). */
  readonly outputKeyParity: 0 | 1;
};

/** Internal and output key of a FROST_SECP256K1_TR key (optionally a derived child). */
export function taprootKeys(
  spec: KeySpec,
  element: Uint8Array,
  merkleRoot: Uint8Array | null,
  derivation?: SigningTweak['derivation'],
): TaprootKeys {
  if (spec.name !== 'FROST_SECP256K1_TR') throw invalid(`${spec.name} is not a Taproot key spec`);
  const g = groupOf(spec);
  let P = g.decode(element, 'group element');
  if (derivation)
    P = g.decode(derive(spec, element, derivation.chainCode, derivation.path).key, 'derived key');
  if (!g.hasEvenY(P)) P = P.negate();
  const t = tapTweak(P.toBytes().subarray(1), merkleRoot);
  const Q = P.add(g.baseMul(t));
  return {
    internalKey: P.toBytes().subarray(1),
    outputKey: Q.toBytes().subarray(1),
    merkleRoot,
    outputKeyParity: g.hasEvenY(Q) ? 0 : 1,
  };
}

/**
 * The reference: noble's key package (and a signer's secret) transformed by steps 1 and 2 above
 * with noble's points, for noble's `schnorr_FROST` / RFC 9591 operations (which apply step 3).
 */
export function tweakPackageNoble(
  spec: KeySpec,
  pub: FrostPublic,
  secret: FrostSecret | undefined,
  tweak: SigningTweak,
): { public: FrostPublic; secret?: FrostSecret } {
  checkTweak(spec, tweak);
  const P = spec.Point;
  const Fn = P.Fn;
  let cs = pub.commitments.map((c) => P.fromBytes(c));
  let ys = Object.entries(pub.verifyingShares).map(([id, y]) => [id, P.fromBytes(y)] as const);
  let s = secret === undefined ? undefined : Fn.fromBytes(secret.signingShare);
  const shift = (k: bigint) => {
    if (k === 0n) return;
    const kG = P.BASE.multiply(k);
    cs = cs.map((c, i) => (i === 0 ? c.add(kG) : c));
    ys = ys.map(([id, y]) => [id, y.add(kG)] as const);
    if (s !== undefined) s = Fn.add(s, k);
  };
  if (tweak.derivation !== undefined) {
    shift(
      derive(spec, pub.commitments[0]!, tweak.derivation.chainCode, tweak.derivation.path, 'noble').tweak,
    );
  }
  const tr = tweak.taproot ?? { kind: 'keyPath', merkleRoot: null };
  if (spec.name === 'FROST_SECP256K1_TR' && tr.kind === 'keyPath' && !tweak.taprootTweakBaked) {
    // noble's frostPubToEvenY / frostSecretToEvenY, then frostTweakPublic / frostTweakSecret.
    if ((cs[0]!.toAffine().y & 1n) === 1n) {
      cs = cs.map((c) => c.negate());
      ys = ys.map(([id, y]) => [id, y.negate()] as const);
      if (s !== undefined) s = Fn.neg(s);
    }
    shift(tapTweak(cs[0]!.toBytes().subarray(1), tr.merkleRoot));
  }
  const out: FrostPublic = {
    signers: { min: pub.signers.min, max: pub.signers.max },
    commitments: cs.map((c) => c.toBytes()),
    verifyingShares: Object.fromEntries(ys.map(([id, y]) => [id, y.toBytes()])),
  } as FrostPublic;
  if (secret === undefined || s === undefined) return { public: out };
  return {
    public: out,
    secret: { identifier: secret.identifier, signingShare: Fn.toBytes(s) } as FrostSecret,
  };
}

// ---- what a sign request asks for, and what a key's stored custody data makes of it ----

export const TAPROOT_TWEAK_MODES = ['keyPath', 'none'] as const;
export type TaprootTweakMode = (typeof TAPROOT_TWEAK_MODES)[number];

/**
 * The tweak a client asks for in a sign request (the API's `derivationPath` and `taprootTweak`,
 * as signed): every signing node resolves it itself against its own stored custody data, never
 * taking a tweak value from the coordinator.
 */
export type RequestedTweak = {
  /** `m/0/5`: non-hardened (protocol/derivation.ts parsePath); absent or `m` = the key itself. */
  readonly derivationPath?: string;
  /** FROST_SECP256K1_TR only; absent = `keyPath`. */
  readonly taprootTweak?: TaprootTweakMode;
};

/**
 * A key's custody data, fixed at creation and kept by every member and the coordinator alike: the
 * chain code (derivation.ts chainCodeFor over the DKG's group element and transcript hash) and,
 * for FROST_SECP256K1_TR, the merkle root of the output's script tree (null: key path only). Its
 * presence also says the stored group element of a Taproot key is the internal key (keys created
 * before custody data existed have none: they sign as they always did, key path, empty root).
 */
export type CustodyData = {
  readonly chainCode: Uint8Array;
  readonly merkleRoot: Uint8Array | null;
};

/** Equal requests (absent fields at their defaults), so a node can compare the coordinator's with the signed one. */
export function sameRequestedTweak(a: RequestedTweak | undefined, b: RequestedTweak | undefined): boolean {
  const norm = (t: RequestedTweak | undefined) => ({
    path: t?.derivationPath === undefined || t.derivationPath === 'm' ? 'm' : t.derivationPath,
    tr: t?.taprootTweak ?? 'keyPath',
  });
  const x = norm(a);
  const y = norm(b);
  return x.path === y.path && x.tr === y.tr;
}

/**
 * The SigningTweak of a request for a key with `custody` (undefined: created before custody data).
 * The key's merkle root applies to the key-path spend of the key itself (path `m`); derived children
 * are internal keys of key-path-only outputs (BIP86), as `tr(xpub/0/*)` describes them. Refuses
 * (ValidationError) what the key cannot do: hardened or malformed paths, `taprootTweak` on a key
 * that is not Taproot, derivation or `none` on a key without custody data.
 */
export function signingTweakFor(
  spec: KeySpec,
  custody: CustodyData | undefined,
  req: RequestedTweak | undefined,
): SigningTweak | undefined {
  const path = req?.derivationPath === undefined ? [] : parsePath(req.derivationPath);
  const mode = req?.taprootTweak;
  if (mode !== undefined && !(TAPROOT_TWEAK_MODES as readonly string[]).includes(mode)) {
    throw invalid(`taprootTweak: one of ${TAPROOT_TWEAK_MODES.join(', ')}`);
  }
  const tr = spec.name === 'FROST_SECP256K1_TR';
  if (mode !== undefined && !tr) {
    throw invalid(`taprootTweak applies to FROST_SECP256K1_TR keys only, not ${spec.name}`);
  }
  if (path.length > 0 && !derivable(spec)) {
    throw invalid(`${spec.name} keys do not support derivation (secp256k1 and Ed25519 keys do)`);
  }
  if (custody === undefined) {
    if (path.length > 0 || mode === 'none') {
      throw invalid(
        'this key was created before keys kept a chain code and their Taproot internal key: it signs ' +
          'only with the key itself (Taproot: the key path without merkle root); create a new key',
      );
    }
    return defaultSigningTweak(spec);
  }
  const derivation = path.length > 0 ? { chainCode: custody.chainCode, path } : undefined;
  if (!tr) return derivation ? { derivation } : undefined;
  const taproot: TaprootTweak =
    mode === 'none'
      ? { kind: 'none' }
      : { kind: 'keyPath', merkleRoot: path.length > 0 ? null : custody.merkleRoot };
  return derivation ? { derivation, taproot } : { taproot };
}
