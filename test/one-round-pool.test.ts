/**
 * The node's pool of pre-generated nonces (node/nonce-pool.ts; issue 17) on its own, with real
 * FROST key packages: bounded per key and per node (evicted nonces are dropped, never used),
 * single use, bound to the key's active entry, epoch and the exact commitment. The parties'
 * behaviour over the network is test/one-round-signing.test.ts.
 */
import type { Key } from '@noble/curves/abstract/frost.js';
import { describe, expect, it } from 'vitest';
import type { ActiveKey } from '../node/active-keys.ts';
import { NoncePool } from '../node/nonce-pool.ts';
import { keySpec } from '../protocol/suites.ts';

const spec = keySpec('FROST_ED25519');

/** An active-key entry of a fresh trusted-dealer key (participant 1), as node/active-keys.ts makes one. */
function activeKey(epoch = 0): ActiveKey {
  const dealt = spec.frost.trustedDealer({ min: 2, max: 3 });
  const [id, secret] = Object.entries(dealt.secretShares)[0]!;
  return {
    record: { epoch, participant: id } as ActiveKey['record'],
    key: { public: dealt.public, secret } as Key,
    spec,
    state: 'Enabled',
  };
}

describe('node nonce pool', () => {
  it('is bounded per key: the oldest nonces are evicted unused', () => {
    const pool = new NoncePool({ maxPerKey: 4, max: 100 });
    const a = activeKey();
    const first = pool.generate('k', a, 4);
    const more = pool.generate('k', a, 2);
    expect(pool.sizeOf('k')).toBe(4);
    expect(pool.take('k', 0, first[0]!.hiding, first[0]!.binding)).toBeUndefined();
    expect(pool.take('k', 0, first[1]!.hiding, first[1]!.binding)).toBeUndefined();
    expect(pool.take('k', 0, first[2]!.hiding, first[2]!.binding)).toBeDefined();
    expect(pool.take('k', 0, more[1]!.hiding, more[1]!.binding)).toBeDefined();
    expect(pool.generate('k', a, 1000)).toHaveLength(4);
  });

  it('is bounded per node: the least recently used key gives way', () => {
    const pool = new NoncePool({ maxPerKey: 3, max: 6 });
    const [a, b, c] = [activeKey(), activeKey(), activeKey()];
    const old = pool.generate('a', a, 3);
    pool.generate('b', b, 3);
    pool.generate('c', c, 3);
    expect(pool.size).toBe(6);
    expect(pool.sizeOf('a')).toBe(0);
    expect(pool.take('a', 0, old[0]!.hiding, old[0]!.binding)).toBeUndefined();
  });

  it('gives each nonce once, only for its key, epoch and exact commitment, and only while the key entry is the same', () => {
    const pool = new NoncePool();
    const a = activeKey(3);
    const [c1, c2, c3] = pool.generate('k', a, 3);
    expect(pool.identifierOf('k')).toBe(a.record.participant);
    // Another key, another epoch, or a binding commitment that differs: refused, and consumed.
    expect(pool.take('other', 3, c1!.hiding, c1!.binding)).toBeUndefined();
    expect(pool.take('k', 2, c1!.hiding, c1!.binding)).toBeUndefined();
    expect(pool.take('k', 3, c1!.hiding, c1!.binding)).toBeUndefined();
    expect(pool.take('k', 3, c2!.hiding, c3!.binding)).toBeUndefined();
    expect(pool.take('k', 3, c2!.hiding, c2!.binding)).toBeUndefined();
    const t = pool.take('k', 3, c3!.hiding, c3!.binding);
    expect(t?.owner).toBe(a);
    expect(pool.take('k', 3, c3!.hiding, c3!.binding)).toBeUndefined();
    // A new active entry of the key (state or epoch change) discards what the old one made.
    const [d] = pool.generate('k', a, 1);
    pool.generate('k', activeKey(3), 1);
    expect(pool.take('k', 3, d!.hiding, d!.binding)).toBeUndefined();
    pool.clear();
    expect(pool.size).toBe(0);
  });
});
