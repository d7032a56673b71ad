/**
 * The group arithmetic the key events (DKG, refresh, reshare, repair) and confirmations run on,
 * behind one small element interface with two implementations:
 *   - `native`: the fast backends of protocol/fast-group.ts (libsodium for Ed25519 and ristretto255,
 *     libsecp256k1 for secp256k1 and secp256k1-TR, OpenSSL + noble for P-256, noble with a fast
 *     subgroup check for Ed448), elements held as their canonical encodings, each received encoding
 *     checked once per process (ValidElementCache);
 *   - `noble`: noble's points, the reference every native result is checked against
 *     (test/fast-dkg.test.ts).
 * The element interface is the subset of noble's Point the protocol code uses, so both run the same
 * code. Identity results are representable (noble semantics), but never encodable for SEC1 curves.
 *
 * Side channels: `baseMul` is constant-time in every native backend (libsodium's fixed-base
 * multiply; libsecp256k1's blinded ecmult_gen; OpenSSL's P-256 multiply; noble's `multiply` for
 * Ed448), so it alone may take secrets (coefficients, nonces, shares). `multiplyUnsafe` may be
 * variable-time (libsecp256k1 ecmult, noble's multiplyUnsafe): public data only.
 */
import { getMinHashLength, mapHashToField } from '@noble/curves/abstract/modular.js';
import { bytesToNumberBE, bytesToNumberLE } from '@noble/curves/utils.js';
import { randomBytes } from '@noble/hashes/utils.js';
import { ed25519Sodium } from './backend-ed25519-sodium.ts';
import { ed448Noble } from './backend-ed448.ts';
import type { NobleBackedGroup } from './backend-noble-points.ts';
import { p256OpenSsl } from './backend-p256-openssl.ts';
import { ristretto255Negate, ristretto255Sodium } from './backend-ristretto255-sodium.ts';
import { secp256k1Native } from './backend-secp256k1-native.ts';
import { equalBytes } from './bytes.ts';
import { decodeElementNoble } from './elements.ts';
import { DecodeError } from './errors.ts';
import { type FastGroup, ValidElementCache } from './fast-group.ts';
import type { KeySpec, KeySpecName } from './suites.ts';

/** A group element: the part of noble's Point API the protocol code uses. */
export type Elem = {
  add(q: Elem): Elem;
  /** k·P for k in [0, order): variable-time, PUBLIC scalars and points only. */
  multiplyUnsafe(k: bigint): Elem;
  negate(): Elem;
  equals(q: Elem): boolean;
  is0(): boolean;
  /** SerializeElement (RFC 9591 §3.1); the identity throws for secp256k1, as in noble. */
  toBytes(): Uint8Array;
};

export type Backend = 'native' | 'noble';

export type Group = {
  readonly spec: KeySpec;
  readonly backend: Backend;
  readonly ZERO: Elem;
  /** k·G, constant-time (k may be secret); 0 gives the identity. */
  baseMul(k: bigint): Elem;
  /** RFC 9591 §3.1 DeserializeElement; DecodeError('InvalidElement') exactly where noble rejects. */
  decode(bytes: Uint8Array, what?: string): Elem;
  /** An encoding this process produced or already decoded (no check). */
  trusted(bytes: Uint8Array): Elem;
  /** Whether a non-identity element has even y (BIP340; secp256k1 only). */
  hasEvenY(p: Elem): boolean;
};

/** A uniformly random non-zero scalar, drawn exactly as noble's FROST `randomScalar(rng)` draws it. */
export function randomScalar(spec: KeySpec, rng: (n: number) => Uint8Array = randomBytes): bigint {
  const Fn = spec.Point.Fn;
  const t = mapHashToField(rng(getMinHashLength(Fn.ORDER)), Fn.ORDER, Fn.isLE);
  return Fn.isLE ? bytesToNumberLE(t) : bytesToNumberBE(t);
}

// ---- noble (reference) ----

function nobleGroup(spec: KeySpec): Group {
  const P = spec.Point;
  return {
    spec,
    backend: 'noble',
    ZERO: P.ZERO as Elem,
    baseMul: (k) => (k === 0n ? P.ZERO : P.BASE.multiply(k)) as Elem,
    decode: (bytes, what = 'element') => decodeElementNoble(spec, bytes, what) as Elem,
    trusted: (bytes) => P.fromBytes(bytes) as Elem,
    hasEvenY: (p) => ((p as any).toAffine().y & 1n) === 0n,
  };
}

// ---- native ----

/** Identity encodings: Ed25519 has one (y = 1), ristretto255 too (zeros), compressed secp256k1 none. */
const ED25519_IDENTITY = Uint8Array.from({ length: 32 }, (_, i) => (i === 0 ? 1 : 0));
const RISTRETTO_IDENTITY = new Uint8Array(32);

function nativeGroup(spec: KeySpec, fast: FastGroup): Group {
  const cache = new ValidElementCache();
  const order = fast.Fn.ORDER;
  const isEd = spec.name === 'FROST_ED25519';
  const isRistretto = spec.name === 'FROST_RISTRETTO255';
  const identity = isEd ? ED25519_IDENTITY : isRistretto ? RISTRETTO_IDENTITY : undefined;

  /** null is the identity. */
  class NativeElem implements Elem {
    readonly b: Uint8Array | null;
    constructor(b: Uint8Array | null) {
      this.b = b;
    }
    add(q: Elem): Elem {
      const o = (q as NativeElem).b;
      if (this.b === null) return q;
      if (o === null) return this;
      if (identity !== undefined) {
        const r = fast.add(this.b, o);
        return new NativeElem(equalBytes(r, identity) ? null : r);
      }
      // P + (-P): libsecp256k1 cannot encode the sum; it is the only way these inputs fail.
      if (this.b[0] !== o[0] && equalBytes(this.b.subarray(1), o.subarray(1))) return ZERO;
      return new NativeElem(fast.add(this.b, o));
    }
    multiplyUnsafe(k: bigint): Elem {
      if (k < 0n || k >= order) throw new RangeError('scalar out of range');
      if (k === 0n || this.b === null) return ZERO;
      return new NativeElem(fast.mul(this.b, k));
    }
    negate(): Elem {
      if (this.b === null) return this;
      // ristretto255 has no such bit: 0 - P on libsodium (the zero encoding is the identity).
      if (isRistretto) return new NativeElem(ristretto255Negate(this.b));
      // -(x, y) = (-x, y): Ed25519 flips the sign bit of x (never 0 in the prime-order subgroup
      // but for the identity), compressed secp256k1 the parity prefix of y.
      const out = this.b.slice();
      if (isEd) out[31] = (out[31] as number) ^ 0x80;
      else out[0] = out[0] === 0x02 ? 0x03 : 0x02;
      return new NativeElem(out);
    }
    equals(q: Elem): boolean {
      const o = (q as NativeElem).b;
      if (this.b === null || o === null) return this.b === o;
      return equalBytes(this.b, o);
    }
    is0(): boolean {
      return this.b === null;
    }
    toBytes(): Uint8Array {
      if (this.b !== null) return this.b.slice();
      if (identity !== undefined) return identity.slice();
      throw new Error('bad point: ZERO');
    }
  }
  const ZERO: Elem = new NativeElem(null);

  return {
    spec,
    backend: 'native',
    ZERO,
    baseMul: (k) => (k === 0n ? ZERO : new NativeElem(fast.baseMul(k))),
    decode(bytes, what = 'element') {
      if (
        bytes instanceof Uint8Array &&
        bytes.length === fast.elementLength &&
        cache.check(bytes, fast.isValidElement)
      ) {
        return new NativeElem(bytes.slice());
      }
      // For noble's precise error; test/fast-dkg.test.ts proves both reject the same encodings.
      decodeElementNoble(spec, bytes, what);
      throw new DecodeError('InvalidElement', `${what}: not a valid ${spec.curve} element`);
    },
    trusted: (bytes) => new NativeElem(bytes.slice()),
    hasEvenY: (p) => (p as NativeElem).b?.[0] === 0x02,
  };
}

const NATIVE: Partial<Record<KeySpecName, FastGroup>> = {
  FROST_ED25519: ed25519Sodium,
  FROST_SECP256K1_TR: secp256k1Native,
  // The same group and SEC1 encoding as the TR suite; only the hashes and signatures differ.
  FROST_SECP256K1: secp256k1Native,
  FROST_RISTRETTO255: ristretto255Sodium,
};
/** Suites whose fast backend computes on noble's points: elements stay noble points. */
const POINTS: Partial<Record<KeySpecName, NobleBackedGroup>> = {
  FROST_P256: p256OpenSsl,
  FROST_ED448: ed448Noble,
};
const groups = new Map<string, Group>();

/** The group of a suite: native where a fast backend exists, unless `backend` asks for noble. */
export function groupOf(spec: KeySpec, backend: Backend = 'native'): Group {
  const fast = backend === 'native' ? NATIVE[spec.name] : undefined;
  const points = backend === 'native' ? POINTS[spec.name] : undefined;
  const tag = `${spec.name}/${fast || points ? 'native' : 'noble'}`;
  let g = groups.get(tag);
  if (g === undefined) {
    g = fast ? nativeGroup(spec, fast) : points ? pointGroup(spec, points) : nobleGroup(spec);
    groups.set(tag, g);
  }
  return g;
}

/**
 * noble's points with the backend's element check (each encoding decoded and checked once per
 * process; Ed448's subgroup check by square root and Jacobi symbols) and its fixed-base multiply
 * (OpenSSL for P-256): the arithmetic is noble's, with no encoding between operations.
 */
function pointGroup(spec: KeySpec, fast: NobleBackedGroup): Group {
  type Point = ReturnType<NobleBackedGroup['pointOf']>;
  const order = fast.Fn.ORDER;
  /** A noble point whose variable-base multiplication is the backend's (OpenSSL for P-256). */
  class PointElem implements Elem {
    readonly p: Point;
    constructor(p: Point) {
      this.p = p;
    }
    add(q: Elem): Elem {
      return new PointElem(this.p.add((q as PointElem).p));
    }
    multiplyUnsafe(k: bigint): Elem {
      if (k < 0n || k >= order) throw new RangeError('scalar out of range');
      if (k === 0n || this.p.is0()) return ZERO;
      return new PointElem(fast.mulPoint(this.p, k));
    }
    negate(): Elem {
      return new PointElem(this.p.negate());
    }
    equals(q: Elem): boolean {
      return this.p.equals((q as PointElem).p);
    }
    is0(): boolean {
      return this.p.is0();
    }
    toBytes(): Uint8Array {
      return this.p.toBytes();
    }
  }
  const ZERO: Elem = new PointElem(spec.Point.ZERO as unknown as Point);
  return {
    spec,
    backend: 'native',
    ZERO,
    baseMul: (k) => (k === 0n ? ZERO : new PointElem(fast.basePoint(k))),
    decode(bytes, what = 'element') {
      const p = fast.validPoint(bytes);
      if (p !== undefined) return new PointElem(p);
      // For noble's precise error; test/fast-dkg.test.ts proves both reject the same encodings.
      decodeElementNoble(spec, bytes, what);
      throw new DecodeError('InvalidElement', `${what}: not a valid ${spec.curve} element`);
    },
    trusted: (bytes) => new PointElem(fast.pointOf(bytes)),
    hasEvenY: (e) => ((e as PointElem).p.toAffine().y & 1n) === 0n,
  };
}

/** Σ scalars[i]·points[i] over public inputs (variable-time). */
export function linearCombination(g: Group, points: readonly Elem[], scalars: readonly bigint[]): Elem {
  let acc = g.ZERO;
  points.forEach((p, i) => {
    acc = acc.add(p.multiplyUnsafe(scalars[i]!));
  });
  return acc;
}
