/**
 * Bounded memory for everything a peer can send (security review M-1, L-4, L-5; threats F-21).
 *
 * Over the wire: a Byzantine node with node-4's real, allow-listed identity (helpers/lying-peer.ts)
 * floods node-1 with maximal (256 KiB) session frames: (a) for random session ids nobody announced,
 * (b) for an announced session it is not a member of, (c) for an announced session it is a member
 * of, far past the per-peer byte budget. Every frame of (a) and (b) is refused (ContextMismatch),
 * (c) is held up to the budget and refused (Overloaded) after it; node-1's retained memory stays
 * flat while an honest DKG and signing among node-1..3 run during and after the flood. The nodes
 * run in this process and memory is JS heap plus ArrayBuffers after a forced GC: that is exactly
 * what the node retains (frames are Uint8Arrays), whereas RSS does not shrink when freed pages stay
 * with the allocator. Before the fix the same flood kept every frame (~96 MiB).
 *
 * In-process units: the early buffer (budgets per peer and in total, TTL, unannounced and
 * non-member refused, announced-then-started delivers in order), the nonce table's per-key bound,
 * and the pruning of idempotency records and node session ids.
 */
import { randomUUID } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { Level } from 'level';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { IDEMPOTENCY_TTL_MS, IdempotencyStore } from '../coordinator/idempotency.ts';
import { signedHeaders } from '../client/sign-request.ts';
import { DEFAULT_EARLY_LIMITS } from '../node/early-buffer.ts';
import { NonceTable } from '../node/nonces.ts';
import { type SessionMember, SessionRunner } from '../node/session-runner.ts';
import { NodeStore, SESSION_ID_RETENTION_MS } from '../node/store.ts';
import { fromHex } from '../protocol/bytes.ts';
import { DEFAULT_MAX_MESSAGE_BYTES, encodeEnvelope } from '../protocol/codec.ts';
import { participantIdOf } from '../protocol/elements.ts';
import { isKmsError } from '../protocol/errors.ts';
import type { Epoch, KeyId, ParticipantId, SessionId } from '../protocol/ids.ts';
import type { Envelope, Machine } from '../protocol/machine.ts';
import { keySpec, verifySignature } from '../protocol/suites.ts';
import { type AuthorizationWire, toWire } from '../net/signed-request.ts';
import { type ClusterCoordinator, startClusterCoordinator } from './helpers/coordinator.ts';
import { type LyingPeer, startLyingPeer } from './helpers/lying-peer.ts';
import { testNodeKeys } from './helpers/node-keys.ts';

setFlagsFromString('--expose-gc');
const gc = runInNewContext('gc') as () => void;

const SPEC = 'FROST_ED25519' as const;
const spec = keySpec(SPEC);
const pid = (k: number) => participantIdOf(spec, k) as ParticipantId;
const member = (k: number): SessionMember => ({ nodeId: `node-${k}`, participant: pid(k) });
const MiB = 2 ** 20;
const silent = { warn: () => {}, debug: () => {} };
/** Session messages are signed by node identity keys: the unit runners below get test keys. */
const nodeKeys = testNodeKeys();

/** A well-formed session frame from node-`from` of `bytes` total (padding in the body). */
function frame(sessionId: string, from: number, bytes: number, n = 0): Uint8Array {
  const env = (pad: number): Envelope<Record<string, unknown>> => ({
    header: {
      version: 1,
      protocol: 'dkg',
      keySpec: SPEC,
      keyId: 'flood' as KeyId,
      sessionId: sessionId as SessionId,
      epoch: 0 as Epoch,
      round: 'dkg.r1',
      from: pid(from),
      to: '*',
    },
    body: { n, pad: new Uint8Array(pad) },
  });
  const overhead = encodeEnvelope(env(bytes)).byteLength - bytes;
  const out = encodeEnvelope(env(Math.max(0, bytes - overhead)));
  if (out.byteLength > DEFAULT_MAX_MESSAGE_BYTES) throw new Error(`frame of ${out.byteLength} bytes`);
  return out;
}
const MAX_FRAME = frame('probe', 4, DEFAULT_MAX_MESSAGE_BYTES).byteLength;

function codeOf(f: () => void): string {
  try {
    f();
    return 'ok';
  } catch (e) {
    return isKmsError(e) ? e.code : `raw:${String(e)}`;
  }
}

/** Collects `count` messages' `n` in the order the machine receives them. */
function collector(self: ParticipantId, count: number): Machine<number[], Record<string, unknown>, number[]> {
  return {
    self,
    start: () => ({ state: [], out: [] }),
    receive: (state, env) => {
      const next = [...state, env.body.n as number];
      return next.length === count ? { state: next, out: [], done: next } : { state: next, out: [] };
    },
  };
}

/** Sends `count` broadcast messages (n = 0..count-1) at start, then is done. */
function talker(
  self: ParticipantId,
  sessionId: string,
  count: number,
): Machine<null, Record<string, unknown>, true> {
  const out = Array.from({ length: count }, (_, n) => ({
    header: {
      version: 1 as const,
      protocol: 'dkg' as const,
      keySpec: SPEC,
      keyId: 'flood' as KeyId,
      sessionId: sessionId as SessionId,
      epoch: 0 as Epoch,
      round: `dkg.r${n + 1}`,
      from: self,
      to: '*' as const,
    },
    body: { n },
  }));
  return { self, start: () => ({ state: null, out, done: true }), receive: (s) => ({ state: s, out: [] }) };
}

describe('early-message buffer (unit, SessionRunner)', () => {
  const clock = { t: 0 };
  const runner = (early = {}) =>
    new SessionRunner({
      send: async () => {},
      ...nodeKeys.runner('node-1'),
      log: silent,
      early,
      now: () => clock.t,
    });

  it('refuses frames of unannounced sessions and from non-members, holding nothing', () => {
    const r = runner();
    expect(codeOf(() => r.onFrame('node-4', frame(randomUUID(), 4, 1000)))).toBe('ContextMismatch');
    const sid = randomUUID();
    r.announce(sid, ['node-1', 'node-2'], 10_000);
    expect(codeOf(() => r.onFrame('node-4', frame(sid, 4, 1000)))).toBe('ContextMismatch');
    expect(codeOf(() => r.onFrame('node-2', frame(sid, 2, 1000)))).toBe('ok');
    expect(r.earlyStats.refused).toBe(2);
    expect(r.earlyStats.bytesByPeer.get('node-4')).toBeUndefined();
    expect(r.earlyStats.bytesByPeer.get('node-2')).toBe(frame(sid, 2, 1000).byteLength);
    r.close();
  });

  it('holds at most the per-peer budget from one peer and the total from all (encoded bytes)', () => {
    const r = runner({ perPeerBytes: 10_000, totalBytes: 25_000 });
    const sid = randomUUID();
    r.announce(sid, ['node-1', 'node-2', 'node-3', 'node-4'], 10_000);
    const codes = (from: number, k: number) =>
      Array.from({ length: k }, (_, n) =>
        codeOf(() => r.onFrame(`node-${from}`, frame(sid, from, 3_000, n))),
      );
    // 3 frames of 3000 bytes fit in 10 000; the 4th would not.
    expect(codes(2, 5)).toEqual(['ok', 'ok', 'ok', 'Overloaded', 'Overloaded']);
    expect(codes(3, 3)).toEqual(['ok', 'ok', 'ok']);
    // 18 000 held; node-4 has budget left, the node as a whole room for two more.
    expect(codes(4, 3)).toEqual(['ok', 'ok', 'Overloaded']);
    const s = r.earlyStats;
    expect(s.bytes).toBeLessThanOrEqual(25_000);
    for (const v of s.bytesByPeer.values()) expect(v).toBeLessThanOrEqual(10_000);
    expect(s.refused).toBe(3);
    r.close();
  });

  it('drops held frames and announcements when their time is up', () => {
    const r = runner({ ttlMs: 1_000 });
    const a = randomUUID();
    const b = randomUUID();
    r.announce(a, ['node-2'], 5_000);
    r.announce(b, ['node-2'], 500);
    expect(codeOf(() => r.onFrame('node-2', frame(a, 2, 2_000)))).toBe('ok');
    expect(codeOf(() => r.onFrame('node-2', frame(b, 2, 2_000)))).toBe('ok');
    clock.t += 600; // b's announcement is over: its frame is dropped, new ones refused
    expect(codeOf(() => r.onFrame('node-2', frame(b, 2, 2_000, 1)))).toBe('ContextMismatch');
    expect(r.earlyStats.announced).toBe(1);
    clock.t += 600; // a's first frame lived its 1000 ms; the announcement (5000 ms) still stands
    expect(codeOf(() => r.onFrame('node-2', frame(a, 2, 2_000, 1)))).toBe('ok');
    const s = r.earlyStats;
    expect(s.expired).toBe(2);
    expect(s.bytes).toBe(frame(a, 2, 2_000, 1).byteLength);
    clock.t += 5_000;
    expect(codeOf(() => r.onFrame('node-2', frame(a, 2, 2_000, 2)))).toBe('ContextMismatch');
    expect(r.earlyStats.bytes).toBe(0);
    expect(r.earlyStats.announced).toBe(0);
  });

  it('delivers what it held, in arrival order, when the announced session starts', async () => {
    const sid = randomUUID();
    const one = runner();
    // node-2's real runner sends straight into node-1's before node-1 has started the session.
    const two = new SessionRunner({
      ...nodeKeys.runner('node-2'),
      log: silent,
      send: async (to, f) => {
        if (to === 'node-1') one.onFrame('node-2', f);
      },
    });
    const ctx = (self: number) => ({
      sessionId: sid,
      keyId: 'flood',
      keySpec: SPEC,
      protocol: 'dkg' as const,
      members: [member(1), member(2)],
      self: member(self),
      timeoutMs: 10_000,
    });
    // Not announced yet: node-2 cannot deliver and aborts naming node-1.
    const refused = await two.run({ ...ctx(2), sessionId: randomUUID() }, talker(pid(2), 'x', 1)).then(
      () => 'ok',
      (e: unknown) => (isKmsError(e) ? e.code : String(e)),
    );
    expect(refused).toBe('ProtocolAborted');
    one.announce(sid, ['node-1', 'node-2'], 10_000);
    await two.run(ctx(2), talker(pid(2), sid, 5));
    expect(one.earlyStats.bytes).toBeGreaterThan(0);
    expect(await one.run(ctx(1), collector(pid(1), 5))).toEqual([0, 1, 2, 3, 4]);
    expect(one.earlyStats.bytes).toBe(0);
    expect(one.earlyStats.announced).toBe(0);
    // Finished: a late announcement of the same id is refused.
    expect(codeOf(() => one.announce(sid, ['node-2'], 10_000))).toBe('Conflict');
  });
});

describe('nonce table bounded per key (unit, L-4)', () => {
  const deal = spec.frost.trustedDealer({ min: 2, max: 3 });
  const id = Object.keys(deal.secretShares)[0]!;
  const key = { public: deal.public, secret: deal.secretShares[id]! };

  it('one key at its bound answers Overloaded for that key only; used and expired entries free their place', async () => {
    const t = new NonceTable({ max: 100, maxPerKey: 5, ttlMs: 200 });
    const busy = Array.from({ length: 5 }, () => randomUUID());
    for (const s of busy) t.commit(spec, s, 'busy', 0, key);
    expect(codeOf(() => t.commit(spec, randomUUID(), 'busy', 0, key))).toBe('Overloaded');
    expect(codeOf(() => t.commit(spec, randomUUID(), 'other', 0, key))).toBe('ok');
    expect(t.openFor('busy')).toBe(5);
    // A used entry is gone (single use) and frees its place.
    expect(
      codeOf(() => t.sign(spec, busy[0]!, 'busy', 0, key, { message: new Uint8Array(1), commitments: [] })),
    ).not.toBe('ok');
    expect(t.openFor('busy')).toBe(4);
    expect(
      codeOf(() => t.sign(spec, busy[0]!, 'busy', 0, key, { message: new Uint8Array(1), commitments: [] })),
    ).toBe('NonceReused');
    // After the TTL the abandoned ones are forgotten on the next commit.
    await new Promise((r) => setTimeout(r, 250));
    expect(codeOf(() => t.commit(spec, randomUUID(), 'busy', 0, key))).toBe('ok');
    expect(t.openFor('busy')).toBe(1);
    expect(t.size).toBe(1);
  });
});

describe('pruning (unit, L-5)', () => {
  let dir: string;
  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), 'tkms-prune-'));
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('idempotency records older than the TTL are deleted by bounded sweep steps; fresh ones stay', async () => {
    const db = new Level<string, any>(join(dir, 'coord'));
    await db.open();
    const clock = { t: 1_000_000 };
    const idem = new IdempotencyStore(db, () => clock.t);
    const store = async (k: string) => {
      const b = await idem.begin('caller', k, 'fp');
      if (b.kind !== 'new') throw new Error('expected new');
      await b.finish({ status: 200, contentType: 'application/json', body: '{}' });
    };
    for (let i = 0; i < 300; i++) await store(`old-${i}`);
    clock.t += IDEMPOTENCY_TTL_MS;
    for (let i = 0; i < 20; i++) await store(`new-${i}`);
    // Two steps of 200 cover all 320 records (the cursor wraps): every old one goes.
    const removed = (await idem.sweep(200)) + (await idem.sweep(200));
    expect(removed).toBe(300);
    let left = 0;
    for await (const _ of db.sublevel('idempotency').keys()) left++;
    expect(left).toBe(20);
    expect((await idem.begin('caller', 'new-3', 'fp')).kind).toBe('replay');
    await db.close();
  });

  it('node session ids are pruned as new ones are recorded, and ids younger than the retention stay', async () => {
    const s = await NodeStore.open(join(dir, 'node'));
    const old = new Date(Date.now() - SESSION_ID_RETENTION_MS - 60_000);
    for (let i = 0; i < 300; i++) await s.markSessionSeen(`old-${i}`, old);
    const recent = new Date(Date.now() - 3_600_000);
    await s.markSessionSeen('recent', recent);
    // Marks without a date: each 256th runs a bounded pass that forgets what is past the retention.
    for (let i = 0; i < 600; i++) await s.markSessionSeen(`live-${i}`);
    let oldLeft = 0;
    for (let i = 0; i < 300; i++) if (await s.wasSessionSeen(`old-${i}`)) oldLeft++;
    expect(oldLeft).toBe(0);
    expect(await s.wasSessionSeen('recent')).toBe(true);
    expect(await s.wasSessionSeen('live-0')).toBe(true);
    await s.close();
  });
});

describe('flood from an allow-listed node (real libp2p, in-process daemons)', () => {
  /** Also how long an announced session's early frames are held (node `prepare`). */
  const SESSION_TIMEOUT_MS = 6_000;
  let cc: ClusterCoordinator;
  let liar: LyingPeer;

  beforeAll(async () => {
    cc = await startClusterCoordinator(4, { sessionTimeoutMs: SESSION_TIMEOUT_MS });
    liar = await startLyingPeer(cc.tc, 'node-4', { keySpec: SPEC });
  }, 60_000);
  afterAll(async () => {
    await liar?.stop().catch(() => {});
    await cc?.stop();
  }, 30_000);

  /** A key of node-1..3 made through the API (signed as the genesis admin, as the nodes require). */
  type ApiKey = { keyId: string; publicKey: string };
  const honestKey = async (): Promise<ApiKey> => {
    const r = await cc.call('POST', '/v1/keys', {
      keySpec: SPEC,
      threshold: 2,
      participants: ['node-1', 'node-2', 'node-3'],
    });
    expect(r.status, r.text).toBe(201);
    return r.body as ApiKey;
  };
  /** Signs `text` through the API; true when the signature verifies. Returns who was left out. */
  const signText = async (k: ApiKey, text: string) => {
    const m = new TextEncoder().encode(text);
    const r = await cc.call('POST', `/v1/keys/${k.keyId}/sign`, { message: Buffer.from(m).toString('hex') });
    expect(r.status, r.text).toBe(200);
    return {
      ok: verifySignature(spec, m, fromHex(r.body.signature), fromHex(k.publicKey)),
      excluded: r.body.excluded as { participant: string; reason: string }[],
    };
  };
  const signs = async (k: ApiKey) => (await signText(k, `signed next to a flood ${k.keyId}`)).ok;
  /** `path` with `body` signed by the genesis admin, as the coordinator forwards it to nodes. */
  const signedBy = (path: string, body?: unknown): AuthorizationWire => {
    const raw = body === undefined ? undefined : JSON.stringify(body);
    const headers = signedHeaders(
      { method: 'POST', url: `http://127.0.0.1${path}`, ...(raw === undefined ? {} : { body: raw }) },
      cc.admin,
    );
    return {
      request: toWire({
        method: 'POST',
        path,
        query: '',
        headers,
        body: raw === undefined ? new Uint8Array() : new TextEncoder().encode(raw),
      }),
    };
  };
  /** Sends `frames` to node-1, 8 at a time; the answer codes in order. */
  const flood = async (frames: (() => Uint8Array)[]) => {
    const codes: string[] = new Array(frames.length);
    let next = 0;
    const worker = async () => {
      while (next < frames.length) {
        const i = next++;
        codes[i] = await liar.sendRaw('node-1', frames[i]!());
      }
    };
    await Promise.all(Array.from({ length: 8 }, worker));
    return codes;
  };
  const retained = () => {
    gc();
    const m = process.memoryUsage();
    return m.heapUsed + m.arrayBuffers;
  };

  it('maximal frames (unannounced, non-member, member past its budget) are refused or bounded; memory stays flat; DKG and signing complete', async () => {
    // Warm-up: connections, streams and caches exist before the baseline is taken.
    expect(await signs(await honestKey())).toBe(true);
    await flood(Array.from({ length: 8 }, () => () => frame(randomUUID(), 4, MAX_FRAME)));
    const base = retained();

    const nonMember = randomUUID();
    const asMember = randomUUID();
    // (c) is three times the per-peer budget and short, so it is over well within the announcement
    // even on a loaded machine; (a) and (b) carry the bulk (~96 MiB in all).
    const PER_MEMBER = 48;
    const PER_KIND = 168;
    // Each session is announced right before its flood: an announcement lasts one session timeout,
    // and on a loaded machine the earlier floods alone once outlasted it, so (c) found its session
    // forgotten and every frame was refused unheld. (c) goes first, right after its announcement.
    const announce = (sessionId: string, members: string[]) =>
      cc.rpc('node-1', { op: 'prepare', sessionId, members });
    const [codes, key] = await Promise.all([
      (async () => {
        await announce(asMember, ['node-1', 'node-4']);
        const c = await flood(
          Array.from({ length: PER_MEMBER }, (_, n) => () => frame(asMember, 4, MAX_FRAME, n)),
        );
        await announce(nonMember, ['node-1', 'node-2']);
        const b = await flood(
          Array.from({ length: PER_KIND }, (_, n) => () => frame(nonMember, 4, MAX_FRAME, n)),
        );
        const a = await flood(
          Array.from({ length: PER_KIND }, () => () => frame(randomUUID(), 4, MAX_FRAME)),
        );
        return { a, b, c };
      })(),
      // An honest DKG among node-1..3 during the flood.
      honestKey(),
    ]);
    const sentMiB = ((2 * PER_KIND + PER_MEMBER) * MAX_FRAME) / MiB;
    expect(new Set(codes.a)).toEqual(new Set(['ContextMismatch']));
    expect(new Set(codes.b)).toEqual(new Set(['ContextMismatch']));
    const held = codes.c.filter((c) => c === 'ok').length;
    // The per-peer budget holds floor(4 MiB / 256 KiB) = 16 maximal frames; the rest are refused.
    expect(held).toBe(Math.floor(DEFAULT_EARLY_LIMITS.perPeerBytes / MAX_FRAME));
    expect(new Set(codes.c.slice(held))).toEqual(new Set(['Overloaded']));
    expect(await signs(key)).toBe(true);

    const growth = retained() - base;
    console.info(
      `flood: ${sentMiB.toFixed(0)} MiB sent to node-1, retained memory +${(growth / MiB).toFixed(1)} MiB (${held} frames held)`,
    );
    // At most the per-peer budget (4 MiB) plus noise, against ~96 MiB sent.
    expect(growth).toBeLessThan(12 * MiB);

    // After the session timeout the announcement is gone: what it held is freed, new frames refused.
    await new Promise((r) => setTimeout(r, SESSION_TIMEOUT_MS + 300));
    expect(await liar.sendRaw('node-1', frame(asMember, 4, 1_000))).toBe('ContextMismatch');
    expect(await signs(await honestKey())).toBe(true);
    expect(retained() - base).toBeLessThan(8 * MiB);
  }, 90_000);

  it("a failed signing attempt releases its honest signers' nonce entries at once (sign-abort), not after the 60 s TTL", async () => {
    const open = async (n: string) => (await cc.rpc(n, { op: 'status', limit: 1 })).signingSessions;
    const k = await honestKey();
    const before = { 'node-1': await open('node-1'), 'node-3': await open('node-3') };
    // The node's side: a committed entry is discarded by sign-abort, and its nonce never signs.
    const sid = randomUUID();
    const message = Buffer.from('never signed').toString('hex');
    const auth = signedBy(`/v1/keys/${k.keyId}/sign`, { message });
    const c = await cc.rpc('node-1', { op: 'sign-commit', sessionId: sid, keyId: k.keyId, epoch: 0, auth });
    expect(await open('node-1')).toBe(before['node-1'] + 1);
    expect(await cc.rpc('node-1', { op: 'sign-abort', sessionId: sid })).toEqual({ ok: true });
    expect(await open('node-1')).toBe(before['node-1']);
    const late = await cc
      .rpc('node-1', {
        op: 'sign-share',
        sessionId: sid,
        keyId: k.keyId,
        epoch: 0,
        message,
        commitments: [c],
      })
      .then(
        () => 'ok',
        (e: unknown) => (isKmsError(e) ? e.code : String(e)),
      );
    expect(late).toBe('NonceReused');
    // The coordinator's side: node-2's copy of the key is Disabled, so each attempt that asks it
    // fails after its co-signer committed; the coordinator tells that co-signer to drop its entry
    // before the next attempt, which signs without node-2.
    await cc.rpc('node-2', {
      op: 'set-state',
      keyId: k.keyId,
      state: 'Disabled',
      auth: signedBy(`/v1/keys/${k.keyId}/disable`),
    });
    let failedAttempts = 0;
    for (let i = 0; i < 3; i++) {
      const s = await signText(k, `after a failed attempt ${i}`);
      expect(s.ok).toBe(true);
      failedAttempts += s.excluded.filter((b) => b.participant === 'node-2').length;
    }
    // Three rotations: node-2 is among the first two signers asked in two of them.
    expect(failedAttempts).toBeGreaterThan(0);
    expect({ 'node-1': await open('node-1'), 'node-3': await open('node-3') }).toEqual(before);
  }, 30_000);
});
