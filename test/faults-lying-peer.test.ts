/**
 * Lying peers over the real network path (threats S-04 (c), S-05 (a, b), S-06, S-09, S-10, F-20,
 * F-21, F-23, F-25): a Byzantine node that holds node-4's real, allow-listed identity
 * (helpers/lying-peer.ts) talks to honest node daemons and to the coordinator's Libp2pCluster
 * over real TCP + Noise + yamux. Every lie is either dropped (the session goes on) or the run
 * aborts naming node-4, and the honest nodes keep their state: the key made before the liar came
 * signs at its old epoch throughout, and after the real node-4 is back a reshare succeeds.
 * Protocol-level blame is unit-tested in test/protocol-*.test.ts; this file is about the wire.
 */
import { createPublicKey, randomBytes, verify as cryptoVerify } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { EpochInfo } from '../coordinator/cluster.ts';
import { fromHex } from '../protocol/bytes.ts';
import { decodeEnvelope } from '../protocol/codec.ts';
import { participantIdOf } from '../protocol/elements.ts';
import { type KmsError, isKmsError } from '../protocol/errors.ts';
import type { ParticipantId } from '../protocol/ids.ts';
import { keySpec } from '../protocol/suites.ts';
import { encodeRpc } from '../net/rpc.ts';
import { type TestCluster, startTestCluster } from './helpers/cluster.ts';
import { type Env, type LyingPeer, startLyingPeer } from './helpers/lying-peer.ts';

const SPEC = 'FROST_ED25519' as const;
const spec = keySpec(SPEC);
const enc = (s: string) => new TextEncoder().encode(s);
const pid = (k: number) => participantIdOf(spec, k) as ParticipantId;
const HONEST = ['node-1', 'node-2', 'node-3'];
const ALL = [...HONEST, 'node-4'];

function verifies(k: EpochInfo, msg: Uint8Array, sig: Uint8Array): boolean {
  const key = createPublicKey({
    key: { kty: 'OKP', crv: 'Ed25519', x: Buffer.from(fromHex(k.publicKey)).toString('base64url') },
    format: 'jwk',
  });
  return cryptoVerify(null, msg, key, sig);
}

async function failure(p: Promise<unknown>): Promise<KmsError> {
  const e = await p.then(
    () => undefined,
    (err: unknown) => err,
  );
  if (!isKmsError(e))
    throw new Error(`expected a typed KmsError, got ${e === undefined ? 'success' : String(e)}`);
  return e;
}

/** Keys the honest nodes hold (the coordinator's status RPC). */
async function honestKeys(c: TestCluster): Promise<string[][]> {
  const st = await c.cluster.nodes();
  return st.filter((s) => HONEST.includes(s.id)).map((s) => [...s.keys]);
}

const withBody = (env: Env, body: Record<string, unknown>): Env => ({ header: env.header, body });
const withHeader = (env: Env, h: Partial<Env['header']>): Env => ({
  header: { ...env.header, ...h },
  body: env.body,
});

describe('lying peer with a valid node identity (real libp2p, in-process daemons)', () => {
  let c: TestCluster;
  let liar: LyingPeer;
  let k0: EpochInfo;
  let dkgRun = 0;
  /** A DKG over all four nodes, node-4 lying as `lie` says. */
  const dkg = (lie: NonNullable<LyingPeer['lies']['dkg']> | undefined) => {
    liar.lies = { keySpec: SPEC, ...(lie ? { dkg: lie } : {}) };
    return c.cluster.createKey({ keyId: `lied-${++dkgRun}`, keySpec: SPEC, threshold: 3, participants: ALL });
  };

  beforeAll(async () => {
    c = await startTestCluster(4, { sessionTimeoutMs: 5_000 });
    // Made while every node is honest: the state the liar must not disturb.
    k0 = await c.cluster.createKey({ keyId: 'k0', keySpec: SPEC, threshold: 2, participants: ALL });
    liar = await startLyingPeer(c, 'node-4', { keySpec: SPEC });
  }, 60_000);
  afterAll(async () => {
    await liar?.stop().catch(() => {});
    await c?.close();
  });

  it('garbage bytes, oversized frames and node-to-node RPCs are refused with typed errors (F-20, F-21, F-22)', async () => {
    expect(await liar.sendRaw('node-1', randomBytes(200))).toBe('DecodeError');
    expect(await liar.sendRaw('node-1', new Uint8Array(0))).toBe('DecodeError');
    // Over the envelope limit (256 KiB) but under the transport's: the codec refuses it.
    expect(await liar.sendRaw('node-2', randomBytes(300 * 1024))).toBe('MessageTooLarge');
    // Over the transport's frame limit (1 MiB): refused from the length prefix, before the body.
    expect(await liar.sendRaw('node-2', new Uint8Array(2 * 1024 * 1024))).toBe('MessageTooLarge');
    // A node may not drive another node: RPCs are for coordinators only.
    expect(await liar.rpcRaw('node-1', encodeRpc({ op: 'status' }))).toBe('PeerNotAllowed');
    expect(
      await liar.rpcRaw('node-1', encodeRpc({ op: 'sign-commit', sessionId: 's', keyId: 'k0', epoch: 0 })),
    ).toBe('PeerNotAllowed');
    const m = enc('after garbage');
    const s = await c.cluster.sign({ key: k0, message: m });
    expect(verifies(k0, m, s.signature)).toBe(true);
  });

  it('an invalid signature share is named and signing goes on with the others (S-09)', async () => {
    liar.lies = { keySpec: SPEC };
    const named: string[] = [];
    // Rotation moves the liar into the signer set within one pass over the committee.
    for (let i = 0; i < ALL.length; i++) {
      const m = enc(`message ${i}`);
      const s = await c.cluster.sign({ key: k0, message: m });
      expect(verifies(k0, m, s.signature)).toBe(true);
      expect(s.signers).not.toContain('node-4');
      for (const b of s.excluded) named.push(`${b.participant}/${b.reason}`);
    }
    expect(named).toContain('node-4/invalid-signature-share');
    expect(named.every((n) => n.startsWith('node-4/'))).toBe(true);
  });

  it('a commitment with a foreign identifier or an invalid point is blamed on its sender, not on the honest signers (S-07, S-08)', async () => {
    for (const signCommit of [
      () => ({ identifier: pid(1), hiding: toHex(randomPoint()), binding: toHex(randomPoint()) }),
      () => ({ identifier: pid(4), hiding: '00'.repeat(32), binding: toHex(randomPoint()) }),
      () => ({ identifier: pid(4), hiding: toHex(randomPoint()), binding: 'ff'.repeat(32) }),
    ]) {
      liar.lies = { keySpec: SPEC, signCommit };
      const named: string[] = [];
      for (let i = 0; i < ALL.length; i++) {
        const m = enc(`commit lie ${i}`);
        const s = await c.cluster.sign({ key: k0, message: m });
        expect(verifies(k0, m, s.signature)).toBe(true);
        for (const b of s.excluded) named.push(`${b.participant}/${b.reason}`);
      }
      expect(named).toContain('node-4/malformed-message');
      expect(named.every((n) => n.startsWith('node-4/'))).toBe(true);
    }
  });

  it('a silent member makes the DKG abort everywhere, naming it unresponsive; no honest node keeps the key', async () => {
    const t0 = performance.now();
    const e = await failure(dkg(undefined));
    expect(performance.now() - t0).toBeLessThan(15_000);
    expect(e.code).toBe('QuorumUnavailable');
    expect(e.culprits.map((b) => `${b.participant}/${b.reason}`)).toEqual(['node-4/unresponsive']);
    for (const keys of await honestKeys(c)) expect(keys).toEqual(['k0']);
  });

  it('wrong-length commitments abort the DKG naming the dealer (S-06)', async () => {
    const e = await failure(
      dkg((env) => {
        if (env.header.round !== 'dkg.r1') return [env];
        const commitment = env.body.commitment as Uint8Array[];
        return [withBody(env, { ...env.body, commitment: commitment.slice(0, -1) })];
      }),
    );
    expect(e.code).toBe('ParticipantMisbehaved');
    expect(e.culprits.map((b) => `${b.participant}/${b.reason}`)).toEqual(['node-4/wrong-vector-length']);
    for (const keys of await honestKeys(c)) expect(keys).toEqual(['k0']);
  });

  it('equivocating round-1 commitments abort the DKG naming the dealer (S-05 a)', async () => {
    let other: Env | undefined;
    // The first DKG's round-1 message is a well-formed package the liar can show node-1 instead.
    const e = await failure(
      dkg((env, to) => {
        if (env.header.round !== 'dkg.r1') return [env];
        if (!other) other = env;
        if (to !== 'node-1') return [env];
        const c0 = env.body.commitment as Uint8Array[];
        const flipped = c0.map((x, i) =>
          i === c0.length - 1 ? spec.Point.fromBytes(x).add(spec.Point.BASE).toBytes() : x,
        );
        return [withBody(env, { ...env.body, commitment: flipped })];
      }),
    );
    expect(e.code).toBe('ParticipantMisbehaved');
    const named = e.culprits.map((b) => `${b.participant}/${b.reason}`);
    expect(named).toContain('node-4/equivocation');
    expect(named.every((n) => n.startsWith('node-4/'))).toBe(true);
    for (const keys of await honestKeys(c)) expect(keys).toEqual(['k0']);
  });

  it('a bad secret share to one node aborts the DKG everywhere naming the dealer (S-05 b)', async () => {
    const e = await failure(
      dkg((env, to) => {
        if (env.header.round !== 'dkg.r2' || to !== 'node-2') return [env];
        const share = spec.Point.Fn.fromBytes(env.body.share as Uint8Array);
        return [withBody(env, { share: spec.Point.Fn.toBytes(spec.Point.Fn.add(share, 1n)) })];
      }),
    );
    expect(e.code).toBe('ParticipantMisbehaved');
    expect(e.culprits.map((b) => `${b.participant}/${b.reason}`)).toEqual(['node-4/bad-share']);
    for (const keys of await honestKeys(c)) expect(keys).toEqual(['k0']);
  });

  it('a round-1 package replayed from an earlier session fails its session-bound proof (S-04 c)', async () => {
    const oldR1 = liar.sent
      .map((s) => decodeEnvelope(s.frame))
      .findLast((env) => env.header.round === 'dkg.r1');
    expect(oldR1).toBeDefined();
    const e = await failure(
      dkg((env) => (env.header.round === 'dkg.r1' ? [withBody(env, oldR1!.body)] : [env])),
    );
    expect(e.code).toBe('ParticipantMisbehaved');
    expect(e.culprits.map((b) => `${b.participant}/${b.reason}`)).toEqual(['node-4/bad-proof-of-knowledge']);
  });

  it('a message bound to another epoch aborts the session naming its sender (I3, F-23)', async () => {
    const e = await failure(
      dkg((env) => (env.header.round === 'dkg.r1' ? [withHeader(env, { epoch: 7 as never })] : [env])),
    );
    expect(e.culprits.length).toBeGreaterThan(0);
    expect(e.culprits.every((b) => b.participant === 'node-4')).toBe(true);
    for (const keys of await honestKeys(c)) expect(keys).toEqual(['k0']);
  });

  it('spoofed senders, foreign keys, replays of finished sessions, duplicates and garbage are dropped: the DKG completes (S-10, F-23, F-25)', async () => {
    const replays = liar.sent.slice(0, 2).map((s) => s.frame);
    expect(replays.length).toBe(2);
    const k = await dkg((env, to) =>
      env.header.round === 'dkg.confirm'
        ? [env]
        : [
            // Claims to be another member (the Noise-authenticated peer is node-4): dropped.
            withHeader(env, { from: pid(to === 'node-1' ? 2 : 1) }),
            // For another key under this very session id: dropped.
            withHeader(env, { keyId: 'k0' as never }),
            // Frames of earlier, finished sessions: dropped.
            ...replays,
            randomBytes(64),
            env,
            env, // an exact duplicate (retransmission) is harmless
          ],
    );
    expect(k.epoch).toBe(0);
    const m = enc('signed under a key made next to a liar');
    const s = await c.cluster.sign({ key: k, message: m });
    expect(verifies(k, m, s.signature)).toBe(true);
  });

  it('the honest nodes kept their state: k0 still signs at epoch 0, and reshares once the real node-4 is back', async () => {
    const m = enc('still epoch 0');
    const s = await c.cluster.sign({ key: k0, message: m });
    expect(verifies(k0, m, s.signature)).toBe(true);
    await liar.stop();
    await c.startNode('node-4');
    const k1 = await c.cluster.reshare({ key: k0, threshold: 3, participants: ALL });
    expect(k1.epoch).toBe(1);
    expect(k1.publicKey).toBe(k0.publicKey);
    const m2 = enc('epoch 1 after the liar');
    const s2 = await c.cluster.sign({ key: k1, message: m2 });
    expect(s2.excluded).toEqual([]);
    expect(verifies(k1, m2, s2.signature)).toBe(true);
  }, 30_000);
});

function randomPoint(): Uint8Array {
  return spec.Point.BASE.multiply(BigInt(`0x${randomBytes(16).toString('hex')}`) + 1n).toBytes();
}
function toHex(b: Uint8Array): string {
  return Buffer.from(b).toString('hex');
}
