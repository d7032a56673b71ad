/**
 * Scale (issue 17 item 4): the caches keyed by key id (a node's active keys, the coordinator's
 * proven public packages) hold at most a fixed number of entries, least recently used dropped
 * first (common/lru-map.ts).
 */
import { describe, expect, it } from 'vitest';
import { LruMap } from '../common/lru-map.ts';

describe('LruMap', () => {
  it('holds at most max entries, dropping the least recently used', () => {
    const m = new LruMap<string, number>(3);
    for (const [i, k] of ['a', 'b', 'c'].entries()) m.set(k, i);
    expect(m.get('a')).toBe(0); // a is now the most recently used
    m.set('d', 3); // drops b, the least recently used
    expect([...m.keys()]).toEqual(['c', 'a', 'd']);
    expect(m.has('b')).toBe(false);
    expect(m.peek('c')).toBe(2); // a peek is not a use
    m.set('e', 4);
    expect([...m.keys()]).toEqual(['a', 'd', 'e']);
    m.set('a', 9); // a write is a use
    m.set('f', 5);
    expect([...m.entries()]).toEqual([
      ['e', 4],
      ['a', 9],
      ['f', 5],
    ]);
  });

  it('stays at max under many distinct keys', () => {
    const m = new LruMap<number, number>(1000);
    for (let i = 0; i < 100_000; i++) m.set(i, i);
    expect(m.size).toBe(1000);
    expect(m.get(99_999)).toBe(99_999);
    expect(m.get(98_999)).toBeUndefined();
  });

  it('refuses a size that is not a positive integer', () => {
    expect(() => new LruMap(0)).toThrow(RangeError);
    expect(() => new LruMap(1.5)).toThrow(RangeError);
  });
});
