/**
 * Integrity: a package or certificate that ONE party reports is never taken as proof (security
 * review C-1, C-2, H-1, H-2, L-1, L-2). A Byzantine node with node-1's real, allow-listed identity
 * (helpers/lying-peer.ts) speaks the real protocols to honest node daemons and to the real
 * coordinator API (helpers/coordinator.ts startClusterCoordinator): it forges DKG results, epoch
 * packages with self-made certificates, verifying shares, padded commitments and refusals. Each
 * lie is refused or named, the honest nodes keep their shares, and the keys keep signing.
 */
import { randomUUID } from 'node:crypto';
import { cpSync, rmSync } from 'node:fs';
import { createPublicKey, verify as cryptoVerify } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Libp2pCluster } from '../coordinator/cluster-libp2p.ts';
import type { EpochInfo } from '../coordinator/cluster.ts';
import { fromHex } from '../protocol/bytes.ts';
import { participantIdOf } from '../protocol/elements.ts';
import { StateError, isKmsError } from '../protocol/errors.ts';
import { keySpec } from '../protocol/suites.ts';
import { loadNodeConfig } from '../node/config.ts';
import type { RpcRequest } from '../net/rpc.ts';
import { type ClusterCoordinator, startClusterCoordinator } from './helpers/coordinator.ts';
import {
  type LyingPeer,
  asPublicAnswer,
  asSessionAnswer,
  forgeEpoch,
  startLyingPeer,
} from './helpers/lying-peer.ts';

const SPEC = 'FROST_ED25519' as const;
const spec = keySpec(SPEC);
const ALL = ['node-1', 'node-2', 'node-3', 'node-4'];
const HONEST = ['node-2', 'node-3', 'node-4'];
const hex = (s: string) => Buffer.from(s).toString('hex');

let cc: ClusterCoordinator;
let liar: LyingPeer;
/** Made while every node was honest; node-1 (later the liar) is a member. */
let k: { keyId: string; publicKey: string };

type Named = { participant: string; reason: string; evidence?: string };

function verifies(publicKey: string, msg: string, sigHex: string): boolean {
  const key = createPublicKey({
    key: { kty: 'OKP', crv: 'Ed25519', x: Buffer.from(fromHex(publicKey)).toString('base64url') },
    format: 'jwk',
  });
  return cryptoVerify(null, Buffer.from(msg), key, Buffer.from(sigHex, 'hex'));
}

async function createKey(participants: string[], threshold = 2) {
  const r = await cc.call('POST', '/v1/keys', { keySpec: SPEC, threshold, participants });
  expect(r.status, r.text).toBe(201);
  return r.body as { keyId: string; publicKey: string; epoch: number };
}

/** Signs through the API; the signature verifies; returns who was left out. */
async function signs(key: { keyId: string; publicKey: string }, msg: string): Promise<Named[]> {
  const r = await cc.call('POST', `/v1/keys/${key.keyId}/sign`, { message: hex(msg) });
  expect(r.status, r.text).toBe(200);
  expect(verifies(key.publicKey, msg, r.body.signature)).toBe(true);
  return r.body.excluded as Named[];
}

/** Each honest node's state and active epoch of `keyId` (status RPC), undefined if it holds none. */
async function held(
  keyId: string,
): Promise<Record<string, { state: string; activeEpoch?: number } | undefined>> {
  const out: Record<string, { state: string; activeEpoch?: number } | undefined> = {};
  for (const n of HONEST) {
    const s = await cc.rpc(n, { op: 'status', limit: 5000 });
    out[n] = (s.keys as { keyId: string; state: string; activeEpoch?: number }[]).find(
      (x) => x.keyId === keyId,
    );
  }
  return out;
}

/** The error code a node answers `req` with ('ok' if it accepts). */
async function answer(node: string, req: RpcRequest): Promise<string> {
  return cc.rpc(node, req).then(
    () => 'ok',
    (e: unknown) => (isKmsError(e) ? e.code : `raw:${String(e)}`),
  );
}

/** Keys an honest node holds live (not Destroyed). */
async function liveKeys(node: string): Promise<string[]> {
  const s = await cc.rpc(node, { op: 'status', limit: 5000 });
  return (s.keys as { keyId: string; state: string }[])
    .filter((x) => x.state !== 'Destroyed')
    .map((x) => x.keyId);
}

beforeAll(async () => {
  cc = await startClusterCoordinator(4, { sessionTimeoutMs: 3_000 });
}, 60_000);
afterAll(async () => {
  await liar?.stop().catch(() => {});
  await cc?.stop();
});

describe('honest cluster', () => {
  it('POST /v1/keys creates a key only every member agrees on, and it signs', async () => {
    k = await createKey(ALL);
    expect(await signs(k, 'honest')).toEqual([]);
  });
});

describe('a lying node-1 with its real identity', () => {
  beforeAll(async () => {
    liar = await startLyingPeer(cc.tc, 'node-1', { keySpec: SPEC });
  }, 30_000);

  it('C-1: a forged DKG result from a silent member is not reported created; the DKG aborts, no honest node keeps a share, the liar is named', async () => {
    liar.lies = {
      keySpec: SPEC,
      session: (s) =>
        asSessionAnswer(
          forgeEpoch(SPEC, {
            keyId: s.keyId,
            sessionId: s.sessionId,
            epoch: 0,
            min: s.threshold,
            members: s.participants,
          }),
        ),
    };
    const before = await Promise.all(HONEST.map(liveKeys));
    const r = await cc.call('POST', '/v1/keys', { keySpec: SPEC, threshold: 2, participants: ALL });
    expect(r.status).not.toBe(201);
    const named = (r.body.culprits as Named[]).map((c) => c.participant);
    expect(named).toContain('node-1');
    expect(named.every((n) => n === 'node-1')).toBe(true);
    expect(await Promise.all(HONEST.map(liveKeys))).toEqual(before);
  }, 20_000);

  it('C-1: a member that ran the DKG but reports another key is named equivocation; every honest node destroys the key it completed', async () => {
    let keyId = '';
    liar.lies = {
      keySpec: SPEC,
      dkg: (env) => [env],
      session: (s) => {
        keyId = s.keyId;
        return asSessionAnswer(
          forgeEpoch(SPEC, {
            keyId: s.keyId,
            sessionId: s.sessionId,
            epoch: 0,
            min: s.threshold,
            members: s.participants,
          }),
        );
      },
    };
    const r = await cc.call('POST', '/v1/keys', { keySpec: SPEC, threshold: 2, participants: ALL });
    expect(r.status).toBe(502);
    expect(r.body.code).toBe('ParticipantMisbehaved');
    expect((r.body.culprits as Named[]).map((c) => `${c.participant}/${c.reason}`)).toEqual([
      'node-1/equivocation',
    ]);
    expect(keyId).not.toBe('');
    for (const h of Object.values(await held(keyId)))
      expect(h === undefined || h.state === 'Destroyed').toBe(true);
  }, 20_000);

  it('C-2: a forged epoch-1000 package with a self-made certificate and EpochMismatch answers destroy nothing; the keys still sign and refresh', async () => {
    // A key whose committee the liar is not in, and the key it is in.
    const outside = await createKey(HONEST);
    const forged = (keyId: string, groupElement: Uint8Array) => {
      const f = forgeEpoch(SPEC, {
        keyId,
        sessionId: 'forged-session',
        epoch: 1000,
        min: 2,
        members: ['node-1', 'node-999'],
        groupElement,
      });
      return asPublicAnswer(f, ['node-1', 'node-999']);
    };
    const groups = new Map<string, Uint8Array>();
    for (const key of [k, outside]) {
      const p = await cc.rpc('node-2', { op: 'public', keyId: key.keyId });
      groups.set(key.keyId, fromHex(p.public.commitments[0]));
    }
    liar.lies = {
      keySpec: SPEC,
      public: (req) => forged(req.keyId, groups.get(req.keyId)!),
      signCommit: () => {
        throw new StateError('EpochMismatch', 'epoch 1000 is active here');
      },
    };
    const named: Named[] = [];
    for (let i = 0; i < ALL.length; i++)
      named.push(...(await signs(k, `c2 ${i}`)), ...(await signs(outside, `c2o ${i}`)));
    expect(named.length).toBeGreaterThan(0);
    expect(named.every((b) => b.participant === 'node-1')).toBe(true);
    // A refresh syncs with every node (forced): the forged epoch is not adopted, nothing retired.
    const refreshed = await cc.call('POST', `/v1/keys/${outside.keyId}/refresh`, {});
    expect(refreshed.status, refreshed.text).toBe(200);
    expect(refreshed.body.epoch).toBe(1);
    // The node refuses the forged retire on its own, too.
    const f = forged(k.keyId, groups.get(k.keyId)!);
    expect(
      await answer('node-2', {
        op: 'retire',
        keyId: k.keyId,
        epoch: 1000,
        public: f.public,
        certificate: f.certificate!,
        transcriptHash: f.transcriptHash!,
        sessionId: f.sessionId!,
      }),
    ).toBe('ProtocolAborted');
    const kHeld = await held(k.keyId);
    const oHeld = await held(outside.keyId);
    for (const n of HONEST) {
      expect(kHeld[n]).toMatchObject({ activeEpoch: 0 });
      expect(oHeld[n]).toMatchObject({ activeEpoch: 1 });
    }
    await signs(k, 'c2 after');
    expect(await signs(outside, 'c2o after')).toEqual([]);
  }, 60_000);

  it('H-1: forged verifying shares from a committee member never get honest signers blamed (a restarted coordinator, empty cache)', async () => {
    const p = await cc.rpc('node-2', { op: 'public', keyId: k.keyId });
    const Q = fromHex(p.public.commitments[0]);
    liar.lies = {
      keySpec: SPEC,
      // Its real epoch, every member listed, verifying shares it chose, a certificate it signed.
      public: (req) =>
        asPublicAnswer(
          forgeEpoch(SPEC, {
            keyId: req.keyId,
            sessionId: p.sessionId,
            epoch: p.epoch,
            min: 2,
            members: ALL,
            groupElement: Q,
          }),
          ALL,
        ),
    };
    // A coordinator that restarted: it knows the key's record only, no package.
    const fresh = new Libp2pCluster({
      transport: cc.transport,
      nodes: cc.peers,
      signTimeoutMs: 3_000,
      statusTimeoutMs: 1_000,
    });
    const info: EpochInfo = {
      keyId: k.keyId,
      keySpec: SPEC,
      epoch: p.epoch,
      threshold: 2,
      participants: ALL,
      publicKey: k.publicKey,
      groupElement: p.public.commitments[0],
      transcriptHash: p.transcriptHash,
    };
    const named: string[] = [];
    for (let i = 0; i < ALL.length; i++) {
      const msg = `h1 ${i}`;
      const s = await fresh.sign({ key: info, message: Buffer.from(msg) });
      expect(verifies(k.publicKey, msg, Buffer.from(s.signature).toString('hex'))).toBe(true);
      expect(s.signers).not.toContain('node-1');
      named.push(...s.excluded.map((b) => `${b.participant}/${b.reason}`));
    }
    expect(named).toContain('node-1/invalid-signature-share');
    expect(named.every((n) => n.startsWith('node-1/'))).toBe(true);
  }, 30_000);

  it('H-2: a padded commitment is blamed malformed-message on its sender, never on honest co-signers; a refusal is not named unresponsive', async () => {
    liar.lies = {
      keySpec: SPEC,
      signCommit: () => ({
        identifier: participantIdOf(spec, 1),
        hiding: Buffer.from(spec.Point.BASE.multiply(7n).toBytes()).toString('hex'),
        binding: Buffer.from(spec.Point.BASE.multiply(11n).toBytes()).toString('hex'),
        note: 'x',
      }),
    };
    const named: Named[] = [];
    for (let i = 0; i < ALL.length; i++) named.push(...(await signs(k, `h2 ${i}`)));
    expect(named.map((b) => `${b.participant}/${b.reason}`)).toContain('node-1/malformed-message');
    expect(named.every((b) => b.participant === 'node-1')).toBe(true);
    liar.lies = {
      keySpec: SPEC,
      signCommit: () => {
        throw new StateError('ValidationError', 'refused');
      },
    };
    for (let i = 0; i < ALL.length; i++) expect(await signs(k, `refused ${i}`)).toEqual([]);
  }, 30_000);
});

describe('retire and repair refuse what they cannot check (L-1, L-2)', () => {
  it('a replayed genuine retire of an older epoch, and one naming a committee the node is in, are refused; the share survives', async () => {
    const key = await createKey(HONEST);
    // node-2 leaves at epoch 1: its genuine retire is recorded off the wire.
    cc.tap.records.length = 0;
    cc.tap.on = true;
    const dir3 = loadNodeConfig(cc.tc.configPath('node-3')).dataDir;
    const backup3 = `${dir3}.epoch0`;
    await cc.tc.stopNode('node-3');
    cpSync(dir3, backup3, { recursive: true });
    await cc.restartNode('node-3');
    const r1 = await cc.call('POST', `/v1/keys/${key.keyId}/reshare`, {
      threshold: 2,
      participants: ['node-3', 'node-4'],
    });
    expect(r1.status, r1.text).toBe(200);
    cc.tap.on = false;
    const retire = cc.tap.records.find((t) => t.req.op === 'retire' && t.node === 'node-2')
      ?.req as RpcRequest;
    expect(retire).toBeDefined();
    expect(await held(key.keyId).then((h) => h['node-2'])).toBeUndefined();
    // node-2 rejoins at epoch 2; the replayed epoch-1 retire must not take its new share.
    const r2 = await cc.call('POST', `/v1/keys/${key.keyId}/reshare`, { threshold: 2, participants: HONEST });
    expect(r2.status, r2.text).toBe(200);
    expect(await answer('node-2', retire)).toBe('EpochMismatch');
    expect((await held(key.keyId))['node-2']).toMatchObject({ activeEpoch: 2 });
    // node-3 restored to its epoch-0 backup: the epoch-1 retire names a committee it is in.
    await cc.tc.stopNode('node-3');
    rmSync(dir3, { recursive: true, force: true });
    cpSync(backup3, dir3, { recursive: true });
    await cc.restartNode('node-3');
    expect(await answer('node-3', retire)).toBe('InvalidKeyState');
    expect((await held(key.keyId))['node-3']).toMatchObject({ activeEpoch: 0 });
    rmSync(backup3, { recursive: true, force: true });
  }, 60_000);

  it('repair: a helper refuses another epoch, the target refuses a package that does not match its threshold, committee or key; a real repair then works', async () => {
    const key = await createKey(HONEST);
    const p = await cc.rpc('node-2', { op: 'public', keyId: key.keyId });
    const base = {
      kind: 'repair' as const,
      keyId: key.keyId,
      keySpec: SPEC,
      epoch: 0,
      threshold: 2,
      participants: HONEST,
      oldEpoch: 0,
      oldThreshold: 2,
      oldParticipants: HONEST,
      dealers: ['node-2', 'node-3'],
      oldPublic: p.public,
      target: 'node-4',
    };
    const session = (over: Record<string, unknown>, to: string) =>
      answer(to, { op: 'session', session: { ...base, sessionId: randomUUID(), ...over } } as RpcRequest);
    expect(await session({ epoch: 1 }, 'node-2')).toBe('EpochMismatch');
    expect(await session({ threshold: 3 }, 'node-4')).toBe('ValidationError');
    expect(await session({ participants: ALL }, 'node-4')).toBe('ValidationError');
    // Another key's package (consistent, but over another group element than the target holds).
    const other = forgeEpoch(SPEC, { keyId: key.keyId, sessionId: 's', epoch: 0, min: 2, members: HONEST });
    expect(await session({ oldPublic: other.public }, 'node-4')).toBe('ValidationError');
    expect((await held(key.keyId))['node-4']).toMatchObject({ activeEpoch: 0 });
    const repaired = await cc.call('POST', `/v1/keys/${key.keyId}/repair`, { participant: 'node-4' });
    expect(repaired.status, repaired.text).toBe(200);
    expect(await signs(key, 'after repair')).toEqual([]);
  }, 30_000);
});
