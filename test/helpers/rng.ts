/** Deterministic randomness for tests that must draw exactly the same nonces in two implementations. */
import type { RNG } from '@noble/curves/abstract/frost.js';

/** Replays byte chunks as an rng (a vector's nonce randomness, or a recorded stream). */
export function replay(chunks: Uint8Array[]): RNG {
  return ((n?: number) => {
    const c = chunks.shift();
    if (c === undefined || (n !== undefined && c.length !== n))
      throw new Error('randomness exhausted or wrong size');
    return c;
  }) as RNG;
}

/** A deterministic rng from a seed (linear congruential: test-only, never for keys). */
export function seeded(seed: number): RNG {
  let state = seed >>> 0 || 1;
  return ((n = 32) => {
    const out = new Uint8Array(n);
    for (let i = 0; i < n; i++) {
      state = (Math.imul(state, 1664525) + 1013904223) >>> 0;
      out[i] = state >>> 24;
    }
    return out;
  }) as RNG;
}
