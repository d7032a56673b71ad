/**
 * protocol/fast-group.ts ValidElementCache: what it answers without asking the check (issue 17: it
 * is consulted ~10 times per signature share, so it is two generations now, O(1) per call).
 * An encoding is known valid only after the check accepted it (or `add` recorded one made valid
 * by construction); a refused one is never cached; the cache is bounded, the oldest entries going
 * first, while one looked up again (the group key at every signature) stays.
 */
import { describe, expect, it } from 'vitest';
import { ValidElementCache } from '../protocol/fast-group.ts';

const enc = (n: number) => {
  const b = new Uint8Array(32);
  new DataView(b.buffer).setUint32(0, n);
  return b;
};

describe('ValidElementCache', () => {
  it('caches accepted encodings only, by content', () => {
    const c = new ValidElementCache(64);
    let calls = 0;
    const valid = (b: Uint8Array) => {
      calls++;
      return b[31] === 0;
    };
    const bad = enc(1);
    bad[31] = 1;
    expect(c.check(enc(1), valid)).toBe(true);
    expect(c.check(enc(1).slice(), valid)).toBe(true); // another array, same bytes: no second check
    expect(calls).toBe(1);
    expect(c.check(bad, valid)).toBe(false);
    expect(c.check(bad, valid)).toBe(false);
    expect(calls).toBe(3);
    expect(c.has(bad)).toBe(false);
    c.add(enc(2));
    expect(c.has(enc(2))).toBe(true);
    expect(c.check(enc(2), valid)).toBe(true);
    expect(calls).toBe(3);
    c.clear();
    expect(c.has(enc(1))).toBe(false);
  });

  it('is bounded: old entries are checked again, an entry in use stays', () => {
    const max = 64;
    const c = new ValidElementCache(max);
    const checked: number[] = [];
    const ok = (b: Uint8Array) => {
      checked.push(new DataView(b.buffer).getUint32(0));
      return true;
    };
    const hot = enc(1_000_000);
    c.check(hot, ok);
    for (let i = 0; i < 10 * max; i++) {
      c.check(enc(i), ok);
      c.check(hot, ok); // used at every step (as a group key is at every signature)
    }
    expect(checked.filter((n) => n === 1_000_000)).toHaveLength(1);
    // The first entries are long gone: checking them again calls the check again.
    checked.length = 0;
    c.check(enc(0), ok);
    expect(checked).toEqual([0]);
    // At most `max` entries known at any time.
    let known = 0;
    for (let i = 0; i < 10 * max; i++) if (c.has(enc(i))) known++;
    expect(known).toBeLessThanOrEqual(max);
    expect(known).toBeGreaterThan(0);
  });
});
