/**
 * Signed session messages over the real network path: honest node daemons (real libp2p, Noise,
 * LevelDB) and a Byzantine node-4 with its real sealed identity (helpers/lying-peer.ts), which
 * signs what it sends with that identity, as any node does. Shown here:
 * - a lie in its DKG echo about an honest node names node-4, not the honest node, with evidence a
 *   third party checks from the cluster file's peer ids alone (review: "blame can be shifted by a
 *   lying echo");
 * - frames whose signature is not the sender's are dropped before any machine sees them: the DKG
 *   completes although each carries a conflicting message;
 * - two validly signed, different sub-shares abort naming node-4 with their digests and signatures,
 *   and neither the coordinator's answer nor node-1's audit log holds a sub-share (review I-1).
 */
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AuditLog } from '../common/audit-log.ts';
import { publicKeyOfPeer, verifyIdentitySignature } from '../net/identity.ts';
import { NodeStore } from '../node/store.ts';
import { fromHex, toHex } from '../protocol/bytes.ts';
import { encodeEnvelope, encodeSignedFrame, envelopeDigest, signedMessage } from '../protocol/codec.ts';
import { participantIdOf } from '../protocol/elements.ts';
import { isKmsError, type KmsError } from '../protocol/errors.ts';
import type { ParticipantId } from '../protocol/ids.ts';
import { keySpec } from '../protocol/suites.ts';
import { type TestCluster, startTestCluster } from './helpers/cluster.ts';
import { type Env, type LyingPeer, startLyingPeer } from './helpers/lying-peer.ts';

const SPEC = 'FROST_ED25519' as const;
const spec = keySpec(SPEC);
const pid = (k: number) => participantIdOf(spec, k) as ParticipantId;
const ALL = ['node-1', 'node-2', 'node-3', 'node-4'];

async function failure(p: Promise<unknown>): Promise<KmsError> {
  const e = await p.then(
    () => undefined,
    (err: unknown) => err,
  );
  if (!isKmsError(e))
    throw new Error(`expected a typed KmsError, got ${e === undefined ? 'success' : String(e)}`);
  return e;
}

describe('signed session messages (real libp2p, a lying node with its real identity)', () => {
  let c: TestCluster;
  let liar: LyingPeer;
  let run = 0;
  const peers = new Map<string, string>();
  const dkg = (lie: NonNullable<LyingPeer['lies']['dkg']>) => {
    liar.lies = { keySpec: SPEC, dkg: lie };
    return c.cluster.createKey({ keyId: `signed-${++run}`, keySpec: SPEC, threshold: 3, participants: ALL });
  };
  /** A signed statement from evidence JSON, checked against a node's peer id as a third party would. */
  const signedBy = (node: string, j: Record<string, any>) =>
    verifyIdentitySignature(
      publicKeyOfPeer(peers.get(node)!),
      signedMessage(j.header, fromHex(j.digest)),
      fromHex(j.signature),
    );

  beforeAll(async () => {
    c = await startTestCluster(4, { sessionTimeoutMs: 5_000 });
    for (const [id, n] of c.nodes) peers.set(id, n.peerId);
    liar = await startLyingPeer(c, 'node-4', { keySpec: SPEC });
  }, 60_000);
  afterAll(async () => {
    await liar?.stop().catch(() => {});
    await c?.close();
  });

  it('a DKG echo lying about an honest node names the liar, with evidence checkable from the peer ids', async () => {
    const e = await failure(
      dkg((env) => {
        if (env.header.round !== 'dkg.echo') return [env];
        // node-2's real signature stays in the echo: it does not cover the digest the liar claims.
        const digests = { ...(env.body.digests as Record<string, Uint8Array>), [pid(2)]: randomBytes(32) };
        return [{ header: env.header, body: { ...env.body, digests } }];
      }),
    );
    expect(e.code).toBe('ParticipantMisbehaved');
    expect(e.culprits.map((b) => b.participant)).toEqual(['node-4']);
    const ev = JSON.parse(e.culprits[0]!.evidence!);
    expect(ev.kind).toBe('forged-echo');
    expect(ev.sender).toBe(pid(2));
    // Node-4 signed the echo; node-2 did not sign what the echo claims it sent.
    expect(signedBy('node-4', ev.echo)).toBe(true);
    expect(toHex(envelopeDigest(fromHex(ev.echo.bytes)))).toBe(ev.echo.digest);
    expect(signedBy('node-2', ev.claimed)).toBe(false);
  });

  it('frames not signed by their sender are dropped: the DKG completes although each carried a conflicting message', async () => {
    const k = await dkg((env) => {
      if (env.header.round === 'dkg.confirm') return [env];
      // First a conflicting copy under a signature that is not node-4's (random bytes); dropped
      // unseen, it cannot make anyone see equivocation. Then the real, signed message.
      const conflicting: Env = { header: env.header, body: { ...env.body, extra: randomBytes(8) } };
      return [encodeSignedFrame(encodeEnvelope(conflicting), randomBytes(64)), env];
    });
    expect(k.epoch).toBe(0);
  });

  it('two signed sub-shares to one node: equivocation named with digests and signatures, no sub-share anywhere (I-1)', async () => {
    const shares: string[] = [];
    const keyId = `signed-${run + 1}`;
    const e = await failure(
      dkg((env, to) => {
        if (env.header.round !== 'dkg.r2' || to !== 'node-1') return [env];
        const share = env.body.share as Uint8Array;
        const other = spec.Point.Fn.toBytes(spec.Point.Fn.add(spec.Point.Fn.fromBytes(share), 1n));
        shares.push(toHex(share), toHex(other));
        return [env, { header: env.header, body: { share: other } }];
      }),
    );
    expect(shares).toHaveLength(2);
    const eq = e.culprits.find((b) => b.reason === 'equivocation');
    expect(eq?.participant).toBe('node-4');
    const ev = JSON.parse(eq!.evidence!);
    expect(ev.kind).toBe('two-signed-messages');
    expect(ev.a.digest).not.toBe(ev.b.digest);
    expect(signedBy('node-4', ev.a)).toBe(true);
    expect(signedBy('node-4', ev.b)).toBe(true);
    const answer = JSON.stringify({ ...e.toJSON(), message: e.message });
    for (const s of shares) expect(answer).not.toContain(s);
    // node-1's audit log recorded the failure with the same culprits, and no sub-share either.
    await c.stopNode('node-1');
    const store = await NodeStore.open(join(c.dir, 'node-1'));
    try {
      const records = await (await AuditLog.open(store.auditDb())).list({ keyId });
      const failed = records.filter((r) => JSON.stringify(r).includes('session.failed'));
      expect(failed.length).toBeGreaterThan(0);
      const text = JSON.stringify(records);
      expect(text).toContain('two-signed-messages');
      for (const s of shares) expect(text).not.toContain(s);
    } finally {
      await store.close();
    }
  });
});
