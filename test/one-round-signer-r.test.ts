/**
 * One-round signing, the coordinator's shortcut (issue 17): each signer reports the group
 * commitment R it computed for its share (protocol/sign.ts SignatureShare.groupCommitment), and the
 * coordinator forms the signature from that R and z = Σ z_i, returned only if it verifies under the
 * (tweaked) key; otherwise it runs the full aggregate (its own R, every share checked, the culprit
 * named: RFC 9591 §5.4).
 *
 * Protocol level, every suite with a fast path: an honest R gives the same bytes as the full
 * aggregate (valid under the independent verifiers); a wrong R, a wrong share or a malformed R
 * gives no signature, and the full aggregate still names the liar.
 * Cluster level: a lying peer with a real node identity (test/helpers/lying-peer.ts) answers
 * `sign-one` with a wrong share and the honest R, a wrong R, or a malformed R: every signature the
 * coordinator returns verifies (OpenSSL) and the liar is named.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { EpochInfo } from '../coordinator/cluster.ts';
import { fromHex, toHex } from '../protocol/bytes.ts';
import { participantIdOf } from '../protocol/elements.ts';
import { groupCommitment } from '../protocol/fast-sign.ts';
import { asEpoch, type ParticipantId } from '../protocol/ids.ts';
import { defaultSigningTweak } from '../protocol/key-tweak.ts';
import {
  aggregate,
  type SignatureShare,
  signatureFromGroupCommitment,
  signerCommit,
  signerSign,
} from '../protocol/sign.ts';
import { KEY_SPECS, keySpec, publicKeyFromGroupElement } from '../protocol/suites.ts';
import { type TestCluster, startTestCluster } from './helpers/cluster.ts';
import { verifyIndependently } from './helpers/independent-verifiers.ts';
import { type LyingPeer, startLyingPeer } from './helpers/lying-peer.ts';

const E0 = asEpoch(0);
const enc = (s: string) => new TextEncoder().encode(s);

function session(name: (typeof KEY_SPECS)[number], message: Uint8Array) {
  const spec = keySpec(name);
  const dealt = spec.frost.trustedDealer({ min: 3, max: 5 });
  const ids = (Object.keys(dealt.secretShares).sort() as ParticipantId[]).slice(1, 4);
  const keyOf = (id: string) => ({ public: dealt.public, secret: dealt.secretShares[id]! });
  const cs = ids.map((id) => signerCommit({ spec, key: keyOf(id), epoch: E0 }));
  const commitments = cs.map((c) => c.commitment);
  const tweak = defaultSigningTweak(spec);
  const shares: SignatureShare[] = cs.map((c) => signerSign(c.state, { message, commitments, tweak }));
  return { spec, pub: dealt.public, commitments, shares, tweak };
}

describe('signatureFromGroupCommitment (protocol)', () => {
  for (const name of KEY_SPECS) {
    it(`${name}: every signer reports the same R; the signature equals the full aggregate's`, () => {
      const message = enc(`signer R ${name}`);
      const s = session(name, message);
      const R = s.shares[0]!.groupCommitment!;
      expect(R).toHaveLength(s.spec.elementLength);
      for (const sh of s.shares) expect(toHex(sh.groupCommitment!)).toBe(toHex(R));
      const args = { spec: s.spec, public: s.pub, message, tweak: s.tweak };
      const fast = signatureFromGroupCommitment({
        ...args,
        groupCommitment: R,
        shares: s.shares.map((x) => x.share),
      });
      const full = aggregate({ ...args, epoch: E0, commitments: s.commitments, shares: s.shares });
      expect(fast).toBeDefined();
      expect(toHex(fast!)).toBe(toHex(full));
      if (s.tweak === undefined) {
        const pk = publicKeyFromGroupElement(s.spec, s.pub.commitments[0]!);
        expect(verifyIndependently(name, pk, message, fast!)).toBe(true);
      }
    });

    it(`${name}: a wrong share, a wrong R or a malformed R gives no signature; the full path names the liar`, () => {
      const message = enc(`signer R lies ${name}`);
      const s = session(name, message);
      const R = s.shares[0]!.groupCommitment!;
      const args = { spec: s.spec, public: s.pub, message, tweak: s.tweak };
      const honest = s.shares.map((x) => x.share);
      // A wrong share (the honest one plus or minus 1: its least significant bit flipped) with the
      // honest R: the signature does not verify.
      const lie = Uint8Array.from(honest[1]!);
      const bigEndian = ['FROST_SECP256K1_TR', 'FROST_SECP256K1', 'FROST_P256'].includes(name);
      lie[bigEndian ? lie.length - 1 : 0]! ^= 1;
      expect(
        signatureFromGroupCommitment({ ...args, groupCommitment: R, shares: [honest[0]!, lie, honest[2]!] }),
      ).toBeUndefined();
      // A wrong R (another session's, a valid element) with the honest shares.
      const other = session(name, message).shares[0]!.groupCommitment!;
      expect(
        signatureFromGroupCommitment({ ...args, groupCommitment: other, shares: honest }),
      ).toBeUndefined();
      // A malformed R: wrong length, or not an element.
      expect(
        signatureFromGroupCommitment({ ...args, groupCommitment: R.subarray(1), shares: honest }),
      ).toBeUndefined();
      expect(
        signatureFromGroupCommitment({
          ...args,
          groupCommitment: new Uint8Array(R.length).fill(0xff),
          shares: honest,
        }),
      ).toBeUndefined();
      // The full path: the liar's share is named with evidence.
      const shares = s.shares.map((x, i) => (i === 1 ? { ...x, share: lie } : x));
      let culprits: string[] = [];
      try {
        aggregate({ ...args, epoch: E0, commitments: s.commitments, shares });
      } catch (e) {
        culprits = (e as { culprits: { participant: string; evidence?: string }[] }).culprits.map(
          (c) => `${c.participant}/${c.evidence === toHex(lie) ? 'evidence' : 'none'}`,
        );
      }
      expect(culprits).toEqual([`${s.shares[1]!.identifier}/evidence`]);
    });
  }
});

const SPEC = 'FROST_ED25519' as const;
const ALL = ['node-1', 'node-2', 'node-3', 'node-4'];

describe('one-round signing: signers report R (cluster)', () => {
  let c: TestCluster;
  let liar: LyingPeer | undefined;
  let key: EpochInfo;
  beforeAll(async () => {
    c = await startTestCluster(4, { sessionTimeoutMs: 5_000 });
    key = await c.cluster.createKey({ keyId: 'k-signer-r', keySpec: SPEC, threshold: 2, participants: ALL });
  }, 60_000);
  afterAll(async () => {
    await liar?.stop().catch(() => {});
    await c?.close();
  });

  it('honest members: every signature is valid under an independent verifier', async () => {
    for (let i = 0; i < 2 * ALL.length; i++) {
      const m = enc(`honest ${i}`);
      const s = await c.cluster.sign({ key, message: m });
      expect(verifyIndependently(SPEC, fromHex(key.publicKey), m, s.signature)).toBe(true);
      expect(s.excluded).toEqual([]);
    }
  });

  // A wrong share (7) with: the honest R (the shortcut's verification fails), a wrong R (another
  // valid element), a malformed R (refused by the answer's schema).
  const lies: [string, (R: string) => string, string][] = [
    ['the honest R', (R) => R, 'node-4/invalid-signature-share'],
    // The group key: a valid element, not this session's R.
    ['a wrong R', () => key.publicKey, 'node-4/invalid-signature-share'],
    ['a malformed R', (R) => R.slice(2), 'node-4/malformed-message'],
  ];
  for (const [what, rOf, expected] of lies) {
    it(`a lying member's wrong share with ${what}: the signature is valid and the liar named`, async () => {
      let asked = 0;
      const lying = {
        keySpec: SPEC,
        signPrecommit: true as const,
        signOne: (req: {
          commitments: { identifier: string; hiding: string; binding: string }[];
          message: string;
        }) => {
          asked++;
          const R = groupCommitment(
            keySpec(SPEC),
            { commitments: [fromHex(key.publicKey)] } as never,
            req.commitments.map((x) => ({
              identifier: x.identifier,
              hiding: fromHex(x.hiding),
              binding: fromHex(x.binding),
            })),
            fromHex(req.message),
          )!;
          return { share: `07${'00'.repeat(31)}`, groupCommitment: rOf(toHex(R)) };
        },
      };
      if (liar === undefined) liar = await startLyingPeer(c, 'node-4', lying);
      else liar.lies = lying;
      const named: string[] = [];
      for (let i = 0; i < 3 * ALL.length; i++) {
        const m = enc(`${what} ${i}`);
        const s = await c.cluster.sign({ key, message: m });
        expect(verifyIndependently(SPEC, fromHex(key.publicKey), m, s.signature)).toBe(true);
        expect(s.signers).not.toContain('node-4');
        for (const b of s.excluded) named.push(`${b.participant}/${b.reason}`);
      }
      expect(asked).toBeGreaterThan(0);
      expect(named).toContain(expected);
      expect(named.every((n) => n.startsWith('node-4/'))).toBe(true);
    }, 60_000);
  }
});

// Its own cluster: the cache starts without the real node-4's (valid) commitments.
describe('one-round signing: commitments checked before blame (cluster)', () => {
  let c: TestCluster;
  let key: EpochInfo;
  const participant = participantIdOf(keySpec(SPEC), 4);
  beforeAll(async () => {
    c = await startTestCluster(4, { sessionTimeoutMs: 5_000 });
    key = await c.cluster.createKey({ keyId: 'k-signer-r2', keySpec: SPEC, threshold: 2, participants: ALL });
  }, 60_000);
  afterAll(async () => {
    await c?.close();
  });

  it('a member that publishes invalid commitments is named for them; its co-signers are not', async () => {
    let asked = 0;
    const lying = {
      keySpec: SPEC,
      // Not group elements (a non-canonical encoding): the coordinator caches them unchecked.
      signPrecommit: (req: { count: number }) => ({
        identifier: participant,
        commitments: Array.from({ length: req.count }, () => ({
          hiding: 'ff'.repeat(32),
          binding: 'ff'.repeat(32),
        })),
      }),
      signOne: () => {
        asked++;
        return { share: `07${'00'.repeat(31)}` };
      },
    };
    const liar = await startLyingPeer(c, 'node-4', lying);
    try {
      const named: string[] = [];
      for (let i = 0; i < 3 * ALL.length; i++) {
        const m = enc(`invalid commitments ${i}`);
        const s = await c.cluster.sign({ key, message: m });
        expect(verifyIndependently(SPEC, fromHex(key.publicKey), m, s.signature)).toBe(true);
        expect(s.signers).not.toContain('node-4');
        for (const b of s.excluded) named.push(`${b.participant}/${b.reason}/${b.round}`);
      }
      expect(asked).toBeGreaterThan(0);
      expect(named).toContain('node-4/malformed-message/sign.precommit');
      expect(named.every((n) => n.startsWith('node-4/'))).toBe(true);
    } finally {
      await liar.stop().catch(() => {});
    }
  }, 60_000);
});
