/**
 * One-round signing against a Byzantine member (issue 17; RFC 9591 §5.4 identifiable abort): a
 * lying peer with a real node identity (test/helpers/lying-peer.ts) publishes well-formed
 * commitments with no nonce behind them and answers `sign-one` with a random share. The real
 * coordinator (Libp2pCluster) takes it into one-round attempts like any member, names it for the
 * invalid share, and every signature it returns verifies (OpenSSL) with honest shares only.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { EpochInfo } from '../coordinator/cluster.ts';
import { fromHex } from '../protocol/bytes.ts';
import { type TestCluster, startTestCluster } from './helpers/cluster.ts';
import { verifyIndependently } from './helpers/independent-verifiers.ts';
import { type LyingPeer, startLyingPeer } from './helpers/lying-peer.ts';

const SPEC = 'FROST_ED25519' as const;
const ALL = ['node-1', 'node-2', 'node-3', 'node-4'];
const enc = (s: string) => new TextEncoder().encode(s);

describe('one-round signing with a lying member', () => {
  let c: TestCluster;
  let liar: LyingPeer;
  let key: EpochInfo;
  beforeAll(async () => {
    c = await startTestCluster(4, { sessionTimeoutMs: 5_000 });
    key = await c.cluster.createKey({ keyId: 'k-one-round', keySpec: SPEC, threshold: 2, participants: ALL });
    liar = await startLyingPeer(c, 'node-4', { keySpec: SPEC });
  }, 60_000);
  afterAll(async () => {
    await liar?.stop().catch(() => {});
    await c?.close();
  });

  it("a member's invalid one-round share is named and the others sign", async () => {
    let oneRoundAsked = 0;
    liar.lies = {
      keySpec: SPEC,
      signPrecommit: true,
      signOne: () => {
        oneRoundAsked++;
        // A well-formed scalar (7, little-endian) that is not its share.
        return { share: `07${'00'.repeat(31)}` };
      },
    };
    const named: string[] = [];
    // The first signature warms the cache (two rounds); the rotation then brings node-4 into
    // one-round attempts.
    for (let i = 0; i < 3 * ALL.length; i++) {
      const m = enc(`one round ${i}`);
      const s = await c.cluster.sign({ key, message: m });
      expect(verifyIndependently(SPEC, fromHex(key.publicKey), m, s.signature)).toBe(true);
      expect(s.signers).not.toContain('node-4');
      for (const b of s.excluded) named.push(`${b.participant}/${b.reason}`);
    }
    expect(oneRoundAsked).toBeGreaterThan(0);
    expect(named).toContain('node-4/invalid-signature-share');
    expect(named.every((n) => n.startsWith('node-4/'))).toBe(true);
  });
});
