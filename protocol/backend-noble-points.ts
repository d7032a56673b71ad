/**
 * A FastGroup (protocol/fast-group.ts) on noble's points, for the suites without a native library
 * for the whole arithmetic (P-256, Ed448). It runs noble's own formulas, so its results are noble's;
 * what it saves over calling noble's FROST is work noble repeats:
 *   - each encoding is decoded once per process (noble decodes every point at every use, and its
 *     FROST decodes the group key and all 2t commitments in every signShare, verifyShare and
 *     aggregate): points this group checked or produced are kept decoded, by content, bounded;
 *   - a suite may plug a native primitive where one exists (OpenSSL's P-256 fixed-base multiply,
 *     its Ed448 verifier) through `Hooks`.
 * Multi-scalar multiplication is noble's interleaved wNAF (`mulAddUnsafe`, what its FROST uses),
 * with the scalar-one terms (hiding commitments) added directly as noble does.
 */
import type { IField } from '@noble/curves/abstract/modular.js';
import { mulAddUnsafe } from '@noble/curves/abstract/curve.js';
import { ProtocolError } from './errors.ts';
import type { FastGroup } from './fast-group.ts';

/** The part of noble's Point this file uses. */
type NoblePoint = {
  add(q: NoblePoint): NoblePoint;
  multiply(k: bigint): NoblePoint;
  multiplyUnsafe(k: bigint): NoblePoint;
  negate(): NoblePoint;
  equals(q: NoblePoint): boolean;
  is0(): boolean;
  toAffine(): { x: bigint; y: bigint };
  toBytes(): Uint8Array;
};
type NoblePointCons = {
  readonly BASE: NoblePoint;
  readonly ZERO: NoblePoint;
  readonly Fn: IField<bigint>;
  fromBytes(b: Uint8Array): NoblePoint;
};

export type Hooks = {
  /**
   * RFC 9591 §3.1 DeserializeElement: the decoded point if `bytes` is a canonical encoding of a
   * non-identity point of prime order, else undefined.
   */
  decodeValid(bytes: Uint8Array): NoblePoint | undefined;
  /** ScalarBaseMult(k) for k in [1, order), constant-time (k may be secret). Default: noble's. */
  baseMul?: (k: bigint) => Uint8Array;
  /**
   * [k]P for a valid point P (with its encoding) and k in [1, order), public inputs, if faster than
   * noble's multiplyUnsafe. Default: noble's.
   */
  mulPoint?: (p: NoblePoint, bytes: Uint8Array, k: bigint) => NoblePoint;
  /** Decoding of an encoding known to be valid, if faster than noble's `fromBytes`. */
  decodeTrusted?: (bytes: Uint8Array) => NoblePoint;
  /** Whether the identity has an encoding (Edwards: yes; SEC1 compressed: no). */
  identityEncodable: boolean;
  /**
   * x([k]P) for a valid P and k in [1, order), from a library that computes only x (ECDH). Only
   * for curves of prime order (cofactor 1), where it gives `schnorrEquation` below.
   */
  xOfMul?: (p: Uint8Array, k: bigint) => bigint;
};

/** Decoded points by content (latin1 of the encoding), oldest dropped first. */
class PointCache {
  readonly #map = new Map<string, NoblePoint>();
  readonly #max: number;
  constructor(max: number) {
    this.#max = max;
  }
  get(key: string): NoblePoint | undefined {
    return this.#map.get(key);
  }
  set(key: string, p: NoblePoint): void {
    if (this.#map.size >= this.#max) {
      const oldest = this.#map.keys().next().value;
      if (oldest !== undefined) this.#map.delete(oldest);
    }
    this.#map.set(key, p);
  }
  clear(): void {
    this.#map.clear();
  }
}

function latin1(b: Uint8Array): string {
  let s = '';
  for (let i = 0; i < b.length; i++) s += String.fromCharCode(b[i] as number);
  return s;
}

/**
 * The FastGroup, plus the same checks and fixed-base multiply with noble points as results, for
 * protocol/group.ts (key events), whose elements stay noble points between operations.
 */
export type NobleBackedGroup = FastGroup & {
  /** The decoded point if `bytes` passes RFC 9591 §3.1 DeserializeElement (cached), else undefined. */
  validPoint(bytes: Uint8Array): NoblePoint | undefined;
  /** A point this group checked or produced, decoded (no checks). */
  pointOf(bytes: Uint8Array): NoblePoint;
  /** [k]G as a point, k in [1, order), constant-time. */
  basePoint(k: bigint): NoblePoint;
  /** [k]P for a valid non-identity point and k in [1, order), variable-time (public inputs). */
  mulPoint(p: NoblePoint, k: bigint): NoblePoint;
};

export function nobleBackedGroup(
  Point: NoblePointCons,
  Fn: IField<bigint>,
  elementLength: number,
  hooks: Hooks,
): NobleBackedGroup {
  const cache = new PointCache(4096);
  /** Encodings that passed decodeValid (the other cache also holds produced points). */
  const valid = new PointCache(4096);
  const decodeTrusted = hooks.decodeTrusted ?? ((b: Uint8Array) => Point.fromBytes(b));
  const order = Fn.ORDER;
  /** A point this group checked or produced; decoded again (no checks needed) if evicted. */
  const point = (b: Uint8Array): NoblePoint => {
    const key = latin1(b);
    let p = cache.get(key);
    if (p === undefined) {
      p = decodeTrusted(b);
      cache.set(key, p);
    }
    return p;
  };
  const validPoint = (bytes: Uint8Array): NoblePoint | undefined => {
    if (!(bytes instanceof Uint8Array) || bytes.length !== elementLength) return undefined;
    const key = latin1(bytes);
    const hit = valid.get(key);
    if (hit !== undefined) return hit;
    const p = hooks.decodeValid(bytes);
    if (p === undefined) return undefined;
    valid.set(key, p);
    cache.set(key, p);
    return p;
  };
  const encode = (p: NoblePoint): Uint8Array => {
    if (p.is0() && !hooks.identityEncodable) {
      // As noble's SEC1 encoder refuses; negligible for honest inputs.
      throw new ProtocolError('ProtocolAborted', 'the result is the identity, which has no encoding');
    }
    const b = p.toBytes();
    cache.set(latin1(b), p);
    return b;
  };
  const range = (k: bigint) => {
    if (k <= 0n || k >= order) throw new RangeError('scalar out of range');
  };
  const baseMul = (k: bigint): Uint8Array => {
    range(k);
    return hooks.baseMul ? hooks.baseMul(k) : encode(Point.BASE.multiply(k));
  };
  return {
    elementLength,
    Fn,
    isValidElement: (bytes) => validPoint(bytes) !== undefined,
    validPoint,
    pointOf: point,
    basePoint(k) {
      range(k);
      return hooks.baseMul ? point(hooks.baseMul(k)) : Point.BASE.multiply(k);
    },
    baseMul,
    mul(p, k) {
      range(k);
      return encode(hooks.mulPoint ? hooks.mulPoint(point(p), p, k) : point(p).multiplyUnsafe(k));
    },
    mulPoint(p, k) {
      range(k);
      return hooks.mulPoint ? hooks.mulPoint(p, p.toBytes(), k) : p.multiplyUnsafe(k);
    },
    add(p, q) {
      return encode(point(p).add(point(q)));
    },
    msm(points, scalars) {
      let acc = Point.ZERO;
      const ps: NoblePoint[] = [];
      const ks: bigint[] = [];
      points.forEach((b, i) => {
        const k = scalars[i]!;
        if (k === 1n) acc = acc.add(point(b));
        else {
          range(k);
          ps.push(point(b));
          ks.push(k);
        }
      });
      if (ps.length > 0) acc = acc.add(mulAddUnsafe(Point as any, ps as any, ks) as unknown as NoblePoint);
      return encode(acc);
    },
    schnorrEquation(R, z, PK, c) {
      const xOfMul = hooks.xOfMul;
      if (xOfMul === undefined || z <= 0n || z >= order || c <= 0n || c >= order - 1n) return false;
      // T = [z]G - R must be [c]PK. x(T) = x([c]PK) gives T = ±[c]PK; then x(T + PK) = x([c+1]PK)
      // rules out T = -[c]PK: it would mean [1-c]PK = ±[c+1]PK, i.e. c = 0 or 2 = 0 modulo the
      // prime order of PK. So both x checks together prove the equation.
      const T = point(baseMul(z)).add(point(R).negate());
      if (T.is0()) return false;
      const U = T.add(point(PK));
      if (U.is0()) return false;
      return xOfMul(PK, c) === T.toAffine().x && xOfMul(PK, c + 1n) === U.toAffine().x;
    },
    forget() {
      cache.clear();
      valid.clear();
    },
  };
}
