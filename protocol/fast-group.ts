/**
 * The small prime-order group interface that the fast FROST signing path (protocol/fast-sign.ts)
 * runs on. Elements travel as their canonical RFC 9591 §3.1 encodings (SerializeElement), scalars
 * as bigints below the group order. A backend implements it with a native library (or noble's
 * points with native parts, protocol/backend-noble-points.ts); noble stays the reference every
 * backend is checked against (test/fast-sign.test.ts, fast-sign-tr.test.ts, fast-suites.test.ts).
 */
import type { IField } from '@noble/curves/abstract/modular.js';

export type FastGroup = {
  /** Byte length of a serialized element (Ne, RFC 9591 §6). */
  readonly elementLength: number;
  /** The scalar field (noble's, so scalar encoding is the suite's). */
  readonly Fn: IField<bigint>;
  /**
   * RFC 9591 §3.1 DeserializeElement acceptance: a canonical encoding of a point on the curve, in
   * the prime-order subgroup, not the identity. Pure function of the bytes.
   */
  isValidElement(bytes: Uint8Array): boolean;
  /** ScalarBaseMult(k), k in [1, order). */
  baseMul(k: bigint): Uint8Array;
  /** ScalarMult(P, k) for a valid element P and k in [1, order). */
  mul(p: Uint8Array, k: bigint): Uint8Array;
  /**
   * ScalarMult(P, k), k in [1, order), for a P not yet checked: the multiplication itself applies
   * the whole isValidElement check to P and the result is undefined exactly when P fails it.
   * Optional: for a backend whose multiplication checks its input anyway (libsodium's Ed25519
   * scalarmult decodes and subgroup-checks P), so a received element is checked once, not twice.
   */
  mulChecked?(p: Uint8Array, k: bigint): Uint8Array | undefined;
  /** P + Q (the result may be the identity). */
  add(p: Uint8Array, q: Uint8Array): Uint8Array;
  /**
   * Σ scalars[i]·points[i] over valid elements and scalars in [1, order), variable-time (PUBLIC
   * inputs only). Optional: a backend whose single multiplications are cheap leaves it out and
   * callers add the products; the noble-backed groups share one wNAF walk, as noble's FROST does.
   */
  msm?(points: readonly Uint8Array[], scalars: readonly bigint[]): Uint8Array;
  /**
   * Whether [z]G = R + [c]PK for valid R and PK (the RFC 9591 §5.3 check), by a shortcut the backend
   * has. Optional, and one-sided: `true` only if the equation holds; `false` when it does not or the
   * shortcut cannot decide, and the caller then computes the equation itself.
   */
  schnorrEquation?(R: Uint8Array, z: bigint, PK: Uint8Array, c: bigint): boolean;
  /** Drops per-process caches of decoded points, if the backend keeps any (benchmarks). */
  forget?(): void;
};

/**
 * Remembers which encodings were found valid, so that a point received once per session (and the
 * group key and verifying shares, on every signature) is decoded and subgroup-checked once. Keyed
 * by content, not by array identity: validity is a pure function of the bytes, so a hit is exact
 * even if the caller's array is later reused. Bounded (oldest entries dropped first).
 */
export class ValidElementCache {
  /**
   * Two generations (each at most half the bound): lookups see both, insertions go to the young one,
   * and when it is full it becomes the old one and the old one is dropped whole. O(1) per call; a
   * Map that dropped its oldest entry on every insertion spent ~5 µs per insertion skipping the
   * holes left at its front. An entry found in the old generation moves to the young one, so the
   * group key and verifying shares, used at every signature, stay.
   */
  #young = new Map<string, true>();
  #old = new Map<string, true>();
  readonly #half: number;

  constructor(max = 8192) {
    this.#half = Math.max(1, Math.floor(max / 2));
  }

  check(bytes: Uint8Array, isValid: (b: Uint8Array) => boolean): boolean {
    const key = latin1(bytes);
    if (this.#known(key)) return true;
    if (!isValid(bytes)) return false;
    this.#put(key);
    return true;
  }

  /**
   * Records an encoding known valid without calling isValidElement here: the backend's own
   * ScalarBaseMult(k) output for k in [1, order) (a signer's fresh commitments, fast-sign.ts
   * commit: a signer does not re-check its own commitment when the list comes back), or a received
   * one that a backend operation checking exactly as isValidElement does just accepted (mulChecked).
   */
  add(bytes: Uint8Array): void {
    const key = latin1(bytes);
    if (!this.#known(key)) this.#put(key);
  }

  has(bytes: Uint8Array): boolean {
    return this.#known(latin1(bytes));
  }

  clear(): void {
    this.#young.clear();
    this.#old.clear();
  }

  #known(key: string): boolean {
    if (this.#young.has(key)) return true;
    if (!this.#old.has(key)) return false;
    this.#old.delete(key);
    this.#put(key);
    return true;
  }

  #put(key: string): void {
    this.#young.set(key, true);
    if (this.#young.size >= this.#half) {
      this.#old = this.#young;
      this.#young = new Map();
    }
  }
}

/** The bytes as a (flat) string key, one char per byte. */
function latin1(b: Uint8Array): string {
  return Buffer.from(b.buffer, b.byteOffset, b.byteLength).toString('latin1');
}
