/**
 * Integrity: a package or certificate that ONE party reports is never taken as proof (security
 * review C-1, C-2, H-1, H-2, L-1, L-2). A Byzantine node with node-1's real, allow-listed identity
 * (helpers/lying-peer.ts) speaks the real protocols to honest node daemons and to the real
 * coordinator API (helpers/coordinator.ts startClusterCoordinator): it forges DKG results, epoch
 * packages with self-made certificates, verifying shares, padded commitments and refusals. Each
 * lie is refused or named, the honest nodes keep their shares, and the keys keep signing.
 */
import { randomUUID } from 'node:crypto';
import { cpSync, mkdtempSync, rmSync } from 'node:fs';
import { createPublicKey, verify as cryptoVerify } from 'node:crypto';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pino from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { signedHeaders } from '../client/sign-request.ts';
import { AuditLog } from '../common/audit-log.ts';
import { Libp2pCluster } from '../coordinator/cluster-libp2p.ts';
import type { EpochInfo } from '../coordinator/cluster.ts';
import { fromHex, toHex } from '../protocol/bytes.ts';
import { type DkgResult, dkgMachine } from '../protocol/dkg.ts';
import { participantIdOf } from '../protocol/elements.ts';
import { type Certificate, certificateGaps } from '../protocol/epoch.ts';
import { KmsError, StateError, isKmsError } from '../protocol/errors.ts';
import { asEpoch, asSessionId, type SessionId } from '../protocol/ids.ts';
import { packageDigest } from '../protocol/package-proof.ts';
import { publicToHex } from '../protocol/packages.ts';
import type { KeyEventResult } from '../protocol/reshare.ts';
import { simulate } from '../protocol/simulate.ts';
import { keySpec } from '../protocol/suites.ts';
import { ActiveKeys } from '../node/active-keys.ts';
import { loadNodeConfig } from '../node/config.ts';
import { KeyEvents } from '../node/key-events.ts';
import { type NodeContext, shareCtx } from '../node/node-context.ts';
import { SoftwareSealer } from '../node/sealer-software.ts';
import { NodeStore } from '../node/store.ts';
import { certToHex } from '../net/certificate.ts';
import type { RpcRequest } from '../net/rpc.ts';
import { type AuthorizationWire, toWire } from '../net/signed-request.ts';
import { type ClusterCoordinator, startClusterCoordinator } from './helpers/coordinator.ts';
import {
  type LyingPeer,
  asPublicAnswer,
  asSessionAnswer,
  forgeEpoch,
  startLyingPeer,
} from './helpers/lying-peer.ts';
import { KEY_ID, pids, runReshare } from './key-events-fixture.ts';

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

/**
 * A sign request for `keyId` signed by the genesis admin, as the coordinator forwards it to the
 * nodes (they require it): for calling a Libp2pCluster directly.
 */
function signAuth(keyId: string, message: Uint8Array): AuthorizationWire {
  return signedBy(`/v1/keys/${keyId}/sign`, { message: Buffer.from(message).toString('hex') });
}

/** `POST path` with `body`, signed by the genesis admin (a fresh nonce each time). */
function signedBy(path: string, body: unknown): AuthorizationWire {
  const raw = JSON.stringify(body);
  const headers = signedHeaders({ method: 'POST', url: `http://127.0.0.1${path}`, body: raw }, cc.admin);
  return {
    request: toWire({ method: 'POST', path, query: '', headers, body: new TextEncoder().encode(raw) }),
  };
}

/** A DKG's certificate: every member's confirmation (protocol/dkg.ts). */
function dkgCert(r: DkgResult, sessionId: SessionId): Certificate {
  return {
    protocol: 'dkg',
    keyId: KEY_ID,
    sessionId,
    epoch: asEpoch(0),
    transcriptHash: r.transcriptHash,
    groupElement: r.groupElement,
    confirmations: r.confirmations,
  };
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
      const message = Buffer.from(msg);
      const s = await fresh.sign({ key: info, message, auth: signAuth(k.keyId, message) });
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

  it('sync refuses a genuinely proven newer epoch that fewer than t of its committee hold: the coordinator keeps its epoch, the key signs, honest shares stay', async () => {
    const key = await createKey(HONEST);
    const p0 = await cc.rpc('node-2', { op: 'public', keyId: key.keyId });
    const Q = fromHex(p0.public.commitments[0]);
    // The liar joins a real reshare as a new member and withholds only its own confirmation: the
    // honest new members never complete and the event is aborted everywhere, while the liar, who
    // received every other confirmation, holds a COMPLETE certificate of epoch 1 over the key.
    let proof: KeyEventResult | undefined;
    liar.lies = {
      keySpec: SPEC,
      dkg: (env) => (env.header.round === 'reshare.confirm' ? [] : [env]),
      session: (_s, result) => {
        if (result && 'certificate' in result) proof = result;
        throw new KmsError('Internal', 'not telling');
      },
    };
    const newCommittee = ['node-1', 'node-2', 'node-3'];
    const r = await cc.call('POST', `/v1/keys/${key.keyId}/reshare`, {
      threshold: 2,
      participants: newCommittee,
    });
    expect(r.status, r.text).not.toBe(200);
    expect(proof).toBeDefined();
    const got = proof!;
    // Genuine: the package is consistent with the key's group element and every member confirmed.
    expect(
      certificateGaps(
        SPEC,
        {
          epoch: got.epoch,
          public: got.public,
          transcriptHash: got.transcriptHash,
          sessionId: got.certificate.sessionId,
        },
        Q,
        got.certificate,
      ),
    ).toEqual([]);
    for (const h of Object.values(await held(key.keyId))) {
      expect(h?.activeEpoch).toBe(0);
      expect(h).not.toHaveProperty('pendingEpoch');
    }
    // Now it answers `public` with that proven epoch 1, which no other member holds (1 < t = 2).
    liar.lies = {
      keySpec: SPEC,
      public: (req) => {
        if (req.keyId !== key.keyId) throw new KmsError('KeyNotFound', 'no');
        return {
          epoch: got.epoch,
          public: publicToHex(got.public),
          threshold: 2,
          participants: newCommittee,
          transcriptHash: toHex(got.transcriptHash),
          certificate: certToHex(got.certificate),
          sessionId: got.certificate.sessionId,
        };
      },
    };
    // A restarted coordinator (empty cache) syncs with every node before it signs: epoch 0 stays.
    const fresh = new Libp2pCluster({
      transport: cc.transport,
      nodes: cc.peers,
      signTimeoutMs: 3_000,
      statusTimeoutMs: 1_000,
    });
    const info: EpochInfo = {
      keyId: key.keyId,
      keySpec: SPEC,
      epoch: 0,
      threshold: 2,
      participants: HONEST,
      publicKey: key.publicKey,
      groupElement: p0.public.commitments[0],
      transcriptHash: p0.transcriptHash,
    };
    const message = Buffer.from('stale-proof');
    const s = await fresh.sign({ key: info, message, auth: signAuth(key.keyId, message) });
    expect(verifies(key.publicKey, 'stale-proof', Buffer.from(s.signature).toString('hex'))).toBe(true);
    expect(s.excluded).toEqual([]);
    const described = await cc.call('GET', `/v1/keys/${key.keyId}`);
    expect(described.body.epoch).toBe(0);
    // The API coordinator's forced sync (a refresh) does not adopt it either: its refresh is the
    // key's epoch 1 on its own committee, and the honest shares moved there.
    const refreshed = await cc.call('POST', `/v1/keys/${key.keyId}/refresh`, {});
    expect(refreshed.status, refreshed.text).toBe(200);
    expect(refreshed.body).toMatchObject({ epoch: 1, participants: HONEST });
    for (const h of Object.values(await held(key.keyId))) expect(h?.activeEpoch).toBe(1);
    expect(await signs(key, 'after stale proof')).toEqual([]);
  }, 45_000);
});

describe('a DKG key is used only once the coordinator confirmed that every member agreed (C-1)', () => {
  it('an unconfirmed key refuses to sign and a confirm-key naming another group element; confirmed with its own values, it signs', async () => {
    // A DKG run on the honest nodes by hand: each completes its certificate, no confirm-key yet.
    const keyId = randomUUID();
    const session = {
      kind: 'dkg' as const,
      sessionId: randomUUID(),
      keyId,
      keySpec: SPEC,
      epoch: 0,
      threshold: 2,
      participants: HONEST,
    };
    const auth = signedBy('/v1/keys', { keySpec: SPEC, threshold: 2, participants: HONEST });
    for (const n of HONEST) await cc.rpc(n, { op: 'prepare', sessionId: session.sessionId, members: HONEST });
    const results = await Promise.all(HONEST.map((n) => cc.rpc(n, { op: 'session', session, auth }, 15_000)));
    const { groupElement, transcriptHash, publicKey } = results[0];
    for (const h of Object.values(await held(keyId)))
      expect(h).toMatchObject({ state: 'Enabled', activeEpoch: 0 });
    expect((await cc.rpc('node-2', { op: 'public', keyId })).unconfirmed).toBe(true);

    const message = Buffer.from('before confirmation');
    const refused = await cc
      .rpc('node-2', {
        op: 'sign-commit',
        sessionId: randomUUID(),
        keyId,
        epoch: 0,
        auth: signAuth(keyId, message),
      })
      .catch((e: unknown) => e);
    expect(isKmsError(refused) && refused.code).toBe('InvalidKeyState');
    expect((refused as KmsError).message).toContain('not yet confirmed by the coordinator');

    // Another key's (genuine) group element, with this key's transcript: refused, nothing changes.
    const other = (await cc.rpc('node-2', { op: 'public', keyId: k.keyId })).public.commitments[0];
    const confirm = { op: 'confirm-key' as const, keyId, epoch: 0, groupElement, transcriptHash };
    expect(await answer('node-2', { ...confirm, groupElement: other })).toBe('Conflict');
    expect((await cc.rpc('node-2', { op: 'public', keyId })).unconfirmed).toBe(true);

    for (const n of HONEST) expect(await cc.rpc(n, confirm)).toEqual({ ok: true });
    expect(await cc.rpc('node-2', confirm)).toEqual({ ok: true, already: true });
    expect((await cc.rpc('node-2', { op: 'public', keyId })).unconfirmed).toBeUndefined();
    const cluster = new Libp2pCluster({ transport: cc.transport, nodes: cc.peers, signTimeoutMs: 3_000 });
    const info: EpochInfo = {
      keyId,
      keySpec: SPEC,
      epoch: 0,
      threshold: 2,
      participants: HONEST,
      publicKey,
      groupElement,
      transcriptHash,
    };
    const s = await cluster.sign({ key: info, message, auth: signAuth(keyId, message) });
    expect(verifies(publicKey, message.toString(), Buffer.from(s.signature).toString('hex'))).toBe(true);
    expect(s.excluded).toEqual([]);
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
      answer(to, {
        op: 'session',
        session: { ...base, sessionId: randomUUID(), ...over },
        auth: signedBy(`/v1/keys/${key.keyId}/repair`, { participant: 'node-4' }),
      } as RpcRequest);
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

describe('a leaving dealer retires only for the reshare it dealt in', () => {
  it('refuses a genuinely complete certificate of another session of the same epoch, accepts its own', async () => {
    // The node's retire decision (node/key-events.ts) on a real store and a real sealer, for
    // node-2 of a real key: two reshares from the same epoch-0 shares to the same epoch 1 (the
    // production machines in memory), each with a complete certificate; node-2 dealt in the first.
    const dir = mkdtempSync(join(tmpdir(), 'retire-'));
    const store = await NodeStore.open(dir);
    const sealer = await SoftwareSealer.open({
      passphrase: 'pw',
      keyStore: store.sealerKeyStore(),
      scryptLogN: 10,
    });
    try {
      const ids = pids(spec, [1, 2, 3]);
      const dkgSession = asSessionId(`retire-dkg-${randomUUID()}`);
      const d = simulate(
        ids.map((self) =>
          dkgMachine({ spec, keyId: KEY_ID, sessionId: dkgSession, self, participants: ids, threshold: 2 }),
        ),
      );
      const mine = d.results.get(ids[1]!)!;
      await store.putPendingEpoch(
        {
          keyId: KEY_ID,
          keySpec: SPEC,
          epoch: 0,
          threshold: 2,
          participants: ['node-1', 'node-2', 'node-3'],
          participant: ids[1]!,
          public: publicToHex(mine.key.public),
          transcriptHash: '',
          status: 'pending',
          sessionId: dkgSession,
        },
        await sealer.seal(shareCtx('node-2', KEY_ID, 0), mine.key.secret.signingShare),
      );
      await store.activateEpoch(KEY_ID, 0, {
        transcriptHash: toHex(mine.transcriptHash),
        certificate: certToHex(dkgCert(mine, dkgSession)),
      });
      const old = new Map([...d.results].map(([p, r]) => [p, r.key]));
      const reshare = () =>
        runReshare(spec, old, {
          oldEpoch: 0,
          dealers: [ids[0]!, ids[1]!],
          newParticipants: pids(spec, [3, 4]),
          newThreshold: 2,
        });
      const [dealtIn, other] = [reshare(), reshare()];
      const Q = mine.groupElement;
      const resultOf = (o: ReturnType<typeof reshare>) => o.results.get(pids(spec, [3])[0]!)!;
      for (const o of [dealtIn, other]) {
        expect(o.errors.size).toBe(0);
        const r = resultOf(o);
        expect(
          certificateGaps(
            SPEC,
            {
              epoch: r.epoch,
              public: r.public,
              transcriptHash: r.transcriptHash,
              sessionId: r.certificate.sessionId,
            },
            Q,
            r.certificate,
          ),
        ).toEqual([]);
      }
      expect(resultOf(dealtIn).certificate.sessionId).not.toBe(resultOf(other).certificate.sessionId);
      // What node-2 records as a leaving dealer (node/key-events.ts, reshare as a dealer).
      const asDealer = dealtIn.results.get(ids[1]!)!;
      await store.putDealt(KEY_ID, {
        epoch: 1,
        sessionId: asDealer.certificate.sessionId,
        transcriptHash: toHex(asDealer.transcriptHash),
        publicDigest: packageDigest(asDealer.public),
      });
      const keys = new ActiveKeys('node-2', store, sealer);
      const audit = await AuditLog.open(store.auditDb());
      const events = new KeyEvents({
        cfg: { nodeId: 'node-2' },
        store,
        sealer,
        keys,
        log: pino({ level: 'silent' }),
        record: async (e: Record<string, unknown>) => {
          await audit.append(e);
        },
      } as unknown as NodeContext);
      const retireOf = (r: KeyEventResult) =>
        ({
          op: 'retire',
          keyId: KEY_ID,
          epoch: r.epoch,
          public: publicToHex(r.public),
          certificate: certToHex(r.certificate),
          transcriptHash: toHex(r.transcriptHash),
          sessionId: r.certificate.sessionId,
        }) as const;
      const refused = await events.retire(retireOf(resultOf(other))).catch((e: unknown) => e);
      expect(isKmsError(refused) && refused.code).toBe('ProtocolAborted');
      expect((refused as Error).message).toContain(asDealer.certificate.sessionId);
      // Nothing was destroyed: the epoch-0 share is there and still opens to the same share.
      expect(await store.getKey(KEY_ID)).toMatchObject({ activeEpoch: 0 });
      const held0 = await keys.active(KEY_ID);
      expect(toHex(held0.key.secret.signingShare)).toBe(toHex(mine.key.secret.signingShare));
      // Its own reshare's certificate retires the share.
      expect(await events.retire(retireOf(resultOf(dealtIn)))).toEqual({ ok: true });
      expect(await store.getKey(KEY_ID)).toBeUndefined();
      expect(await store.getDealt(KEY_ID)).toBeUndefined();
    } finally {
      await sealer.close();
      await store.close();
      rmSync(dir, { recursive: true, force: true });
    }
  }, 30_000);
});
