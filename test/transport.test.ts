/**
 * The libp2p transport over real TCP on 127.0.0.1 (port 0), several transports in one process.
 */
import { generateKeyPair } from '@libp2p/crypto/keys';
import { type AddressInfo, createServer } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { isKmsError, KmsError, StateError } from '../protocol/errors.ts';
import {
  generateIdentityKey,
  identityKeyFromBytes,
  identityKeyToBytes,
  type IdentityKey,
  parsePeerId,
  peerIdOf,
} from '../net/identity.ts';
import {
  type AllowedPeer,
  createTransport,
  PROTOCOL_RPC,
  PROTOCOL_SESSION,
  type Transport,
  type TransportConfig,
  type TransportLogger,
} from '../net/transport.ts';

const LISTEN = ['/ip4/127.0.0.1/tcp/0'];
const started: Transport[] = [];

afterEach(async () => {
  await Promise.all(started.splice(0).map((t) => t.stop()));
});

async function make(
  key: IdentityKey,
  allow: AllowedPeer[] = [],
  opts: Partial<TransportConfig> = {},
): Promise<Transport> {
  const t = await createTransport({ privateKey: key, listen: LISTEN, allow, ...opts });
  started.push(t);
  return t;
}

const entry = (t: Transport): AllowedPeer => ({ peerId: t.peerId, addresses: t.addresses() });

/** Two transports that allow each other. */
async function pair(optsA: Partial<TransportConfig> = {}, optsB: Partial<TransportConfig> = {}) {
  const a = await make(await generateIdentityKey(), [], optsA);
  const b = await make(await generateIdentityKey(), [entry(a)], optsB);
  await a.setAllowList([entry(b)]);
  return { a, b };
}

async function codeOf(p: Promise<unknown>): Promise<string> {
  try {
    await p;
  } catch (e) {
    if (!isKmsError(e)) throw new Error(`expected a KmsError, got ${String(e)}`);
    return e.code;
  }
  throw new Error('expected the promise to reject');
}

const enc = (s: string) => new TextEncoder().encode(s);
const dec = (b: Uint8Array) => new TextDecoder().decode(b);

describe('identity', () => {
  it('round-trips an Ed25519 key through bytes and keeps the peer id', async () => {
    const key = await generateIdentityKey();
    const bytes = identityKeyToBytes(key);
    const back = identityKeyFromBytes(bytes);
    expect(peerIdOf(back)).toBe(peerIdOf(key));
    expect(parsePeerId(peerIdOf(key))).toBe(peerIdOf(key));
    expect(peerIdOf(await generateIdentityKey())).not.toBe(peerIdOf(key));
  });

  it('refuses garbage and non-Ed25519 keys with a DecodeError', async () => {
    expect(() => identityKeyFromBytes(new Uint8Array([1, 2, 3]))).toThrow(KmsError);
    const secp = await generateKeyPair('secp256k1');
    expect(() => identityKeyFromBytes(identityKeyToBytes(secp))).toThrow(/Ed25519/);
    expect(() => parsePeerId('not-a-peer-id')).toThrow(KmsError);
  });
});

describe('transport', () => {
  it('exchanges a request and a response; the handler sees the Noise-authenticated caller', async () => {
    const { a, b } = await pair();
    const seen: string[] = [];
    await b.handle(PROTOCOL_RPC, async (from, req) => {
      seen.push(from);
      return enc(`echo:${dec(req)}`);
    });
    expect(a.addresses().every((x) => x.endsWith(`/p2p/${a.peerId}`))).toBe(true);
    const res = await a.request(b.peerId, PROTOCOL_RPC, enc('hello'));
    expect(dec(res)).toBe('echo:hello');
    expect(seen).toEqual([a.peerId]);
    // An empty body is a valid frame too, and the reverse direction reuses the allow-list.
    await a.handle(PROTOCOL_SESSION, async (from, req) => enc(`${from === b.peerId}:${req.byteLength}`));
    expect(dec(await b.request(a.peerId, PROTOCOL_SESSION, new Uint8Array(0)))).toBe('true:0');
    expect(await a.isReachable(b.peerId)).toBe(true);
  });

  it('refuses a peer that is not on the allow-list before any handler runs', async () => {
    const warnings: Record<string, unknown>[] = [];
    const logger: TransportLogger = {
      child: () => logger,
      info: () => {},
      warn: (obj) => {
        warnings.push(obj);
      },
    };
    const b = await make(await generateIdentityKey(), [], { logger });
    const stranger = await make(await generateIdentityKey(), [entry(b)]);
    let calls = 0;
    await b.handle(PROTOCOL_RPC, async () => {
      calls++;
      return new Uint8Array(0);
    });
    const code = await codeOf(stranger.request(b.peerId, PROTOCOL_RPC, enc('hi'), { timeoutMs: 3000 }));
    expect(['PeerNotAllowed', 'QuorumUnavailable', 'TransportError']).toContain(code);
    expect(await stranger.isReachable(b.peerId, 3000)).toBe(false);
    expect(calls).toBe(0);
    expect(warnings.some((w) => w.peer === stranger.peerId && w.stage === 'inbound-encrypted')).toBe(true);
    // Outbound: b refuses to even try a peer it does not know.
    expect(await codeOf(b.request(stranger.peerId, PROTOCOL_RPC, enc('hi')))).toBe('PeerNotAllowed');
    expect(await b.isReachable(stranger.peerId)).toBe(false);
  });

  it('drops a peer removed from the allow-list', async () => {
    const { a, b } = await pair();
    let calls = 0;
    await b.handle(PROTOCOL_RPC, async () => {
      calls++;
      return enc('ok');
    });
    expect(dec(await a.request(b.peerId, PROTOCOL_RPC, enc('1')))).toBe('ok');
    await b.setAllowList([]);
    const code = await codeOf(a.request(b.peerId, PROTOCOL_RPC, enc('2'), { timeoutMs: 3000 }));
    expect(['PeerNotAllowed', 'QuorumUnavailable', 'TransportError']).toContain(code);
    expect(calls).toBe(1);
  });

  it('refuses an oversized request on send, before any I/O', async () => {
    const { a, b } = await pair({ maxMessageBytes: 1024 });
    let calls = 0;
    await b.handle(PROTOCOL_RPC, async () => {
      calls++;
      return new Uint8Array(0);
    });
    expect(await codeOf(a.request(b.peerId, PROTOCOL_RPC, new Uint8Array(1025)))).toBe('MessageTooLarge');
    expect(dec(await a.request(b.peerId, PROTOCOL_RPC, new Uint8Array(1024)))).toBe('');
    expect(calls).toBe(1);
  });

  it('refuses an oversized frame on receive (request and response directions)', async () => {
    // `a` allows itself 4 MiB (a sender bypassing b's limit); b accepts 64 KiB.
    const { a, b } = await pair({ maxMessageBytes: 4 * 1024 * 1024 }, { maxMessageBytes: 64 * 1024 });
    let calls = 0;
    await b.handle(PROTOCOL_RPC, async (_from, req) => {
      calls++;
      return new Uint8Array(req.byteLength * 4);
    });
    expect(await codeOf(a.request(b.peerId, PROTOCOL_RPC, new Uint8Array(2 * 1024 * 1024)))).toBe(
      'MessageTooLarge',
    );
    expect(calls).toBe(0);
    // b's handler answering more than b's own limit: refused by b before sending.
    expect(await codeOf(a.request(b.peerId, PROTOCOL_RPC, new Uint8Array(20 * 1024)))).toBe(
      'MessageTooLarge',
    );
    expect(calls).toBe(1);
    // A response above the caller's limit: b (limit 64 KiB) calls a, whose handler answers 1 MiB.
    await a.handle(PROTOCOL_RPC, async () => new Uint8Array(1024 * 1024));
    expect(await codeOf(b.request(a.peerId, PROTOCOL_RPC, enc('x')))).toBe('MessageTooLarge');
    // The connection is still usable afterwards.
    expect((await a.request(b.peerId, PROTOCOL_RPC, new Uint8Array(10))).byteLength).toBe(40);
  });

  it('times out when a handler never answers, and the handler is told the caller left', async () => {
    const { a, b } = await pair();
    let aborted: Promise<void> | undefined;
    await b.handle(PROTOCOL_RPC, (_from, _req, ctx) => {
      aborted = new Promise((resolve) =>
        ctx.signal.addEventListener('abort', () => resolve(), { once: true }),
      );
      return new Promise<Uint8Array>(() => {});
    });
    const t0 = performance.now();
    expect(await codeOf(a.request(b.peerId, PROTOCOL_RPC, enc('x'), { timeoutMs: 300 }))).toBe('Timeout');
    const elapsed = performance.now() - t0;
    expect(elapsed).toBeGreaterThanOrEqual(250);
    expect(elapsed).toBeLessThan(3000);
    expect(aborted).toBeDefined();
    await aborted;
    // A caller's own abort signal is honoured too.
    const ac = new AbortController();
    setTimeout(() => ac.abort(), 50);
    expect(await codeOf(a.request(b.peerId, PROTOCOL_RPC, enc('y'), { signal: ac.signal }))).toBe(
      'ProtocolAborted',
    );
  });

  it('enforces the handler deadline on the serving side', async () => {
    const { a, b } = await pair({}, { handlerTimeoutMs: 200 });
    await b.handle(PROTOCOL_RPC, () => new Promise<Uint8Array>(() => {}));
    expect(await codeOf(a.request(b.peerId, PROTOCOL_RPC, enc('x'), { timeoutMs: 5000 }))).toBe('Timeout');
  });

  it("rethrows a handler's KmsError typed on the caller, and hides untyped errors", async () => {
    const { a, b } = await pair();
    const culprits = [
      { participant: 'node-3', reason: 'bad-share' as const, round: 'dkg/2', evidence: 'abcd' },
    ];
    await b.handle(PROTOCOL_RPC, async (_from, req) => {
      if (dec(req) === 'typed') throw new StateError('InvalidKeyState', 'key k1 is disabled', { culprits });
      throw new Error('secret-material-0xdeadbeef');
    });
    let caught: unknown;
    try {
      await a.request(b.peerId, PROTOCOL_RPC, enc('typed'));
    } catch (e) {
      caught = e;
    }
    expect(caught).toBeInstanceOf(StateError);
    const err = caught as StateError;
    expect(err.code).toBe('InvalidKeyState');
    expect(err.message).toBe('key k1 is disabled');
    expect(err.culprits).toEqual(culprits);

    try {
      await a.request(b.peerId, PROTOCOL_RPC, enc('untyped'));
      caught = undefined;
    } catch (e) {
      caught = e;
    }
    expect(isKmsError(caught) && caught.code).toBe('Internal');
    expect(String((caught as Error).message)).not.toContain('secret');
  });

  it('keeps its peer id across a restart with the same (serialized) key', async () => {
    const key = await generateIdentityKey();
    const bytes = identityKeyToBytes(key);
    const first = await make(key);
    const id = first.peerId;
    expect(id).toBe(peerIdOf(key));
    await first.stop();
    started.splice(started.indexOf(first), 1);

    const second = await make(identityKeyFromBytes(bytes));
    expect(second.peerId).toBe(id);
    const caller = await make(await generateIdentityKey(), [entry(second)]);
    await second.setAllowList([entry(caller)]);
    await second.handle(PROTOCOL_RPC, async () => enc('back'));
    expect(dec(await caller.request(id, PROTOCOL_RPC, enc('?')))).toBe('back');
  });

  it('serves 200 concurrent requests over one warm connection', async () => {
    const { a, b } = await pair();
    let inFlight = 0;
    let peak = 0;
    await b.handle(PROTOCOL_RPC, async (_from, req) => {
      inFlight++;
      peak = Math.max(peak, inFlight);
      await new Promise((r) => setTimeout(r, 5));
      inFlight--;
      return req.slice().reverse();
    });
    const results = await Promise.all(
      Array.from({ length: 200 }, (_, i) =>
        a.request(b.peerId, PROTOCOL_RPC, enc(`r${String(i).padStart(3, '0')}`)),
      ),
    );
    results.forEach((r, i) => {
      expect(dec(r)).toBe(`r${String(i).padStart(3, '0')}`.split('').reverse().join(''));
    });
    expect(peak).toBeGreaterThan(1);
    expect(peak).toBeLessThanOrEqual(32);
  });

  it('answers calls beyond the per-peer concurrency limit with Overloaded', async () => {
    const { a, b } = await pair({ maxConcurrentPerPeer: 10 }, { maxConcurrentPerPeer: 2 });
    let calls = 0;
    await b.handle(PROTOCOL_RPC, async () => {
      calls++;
      await new Promise((r) => setTimeout(r, 200));
      return enc('ok');
    });
    const settled = await Promise.allSettled(
      Array.from({ length: 6 }, () => a.request(b.peerId, PROTOCOL_RPC, enc('x'))),
    );
    const ok = settled.filter((s) => s.status === 'fulfilled').length;
    const overloaded = settled.filter(
      (s) => s.status === 'rejected' && isKmsError(s.reason) && s.reason.code === 'Overloaded',
    );
    expect(ok).toBe(2);
    expect(overloaded.length).toBe(4);
    expect(calls).toBe(2);
  });

  it('reports an unreachable peer as QuorumUnavailable', async () => {
    const a = await make(await generateIdentityKey());
    const gone = await make(await generateIdentityKey(), [entry(a)]);
    const goneEntry = entry(gone);
    await gone.stop();
    started.splice(started.indexOf(gone), 1);
    await a.setAllowList([goneEntry]);
    expect(await codeOf(a.request(goneEntry.peerId, PROTOCOL_RPC, enc('x'), { timeoutMs: 2000 }))).toBe(
      'QuorumUnavailable',
    );
    expect(await a.isReachable(goneEntry.peerId, 2000)).toBe(false);
  });

  it('keeps a live connection whose handler is slow: silence is probed, not taken for a stall', async () => {
    const warnings: unknown[] = [];
    const logger: TransportLogger = {
      child: () => logger,
      info: () => {},
      warn: (obj, msg) => {
        warnings.push({ ...obj, msg });
      },
    };
    // The caller's liveness window is a sixth of the handler's time: it probes several times.
    const { a, b } = await pair({ livenessTimeoutMs: 100, logger });
    let callerLeft = false;
    await b.handle(PROTOCOL_RPC, async (_from, req, ctx) => {
      ctx.signal.addEventListener('abort', () => {
        callerLeft = true;
      });
      await new Promise((r) => setTimeout(r, 600));
      return req;
    });
    expect(dec(await a.request(b.peerId, PROTOCOL_RPC, enc('slow')))).toBe('slow');
    expect(callerLeft).toBe(false);
    expect(warnings).toEqual([]);
  });

  it('dials a peer that hangs up one attempt at a time, with a backoff between attempts', async () => {
    // A listener that accepts and at once closes every connection: each dial fails outright.
    let accepted = 0;
    const server = createServer((socket) => {
      accepted++;
      socket.destroy();
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    try {
      const { port } = server.address() as AddressInfo;
      const ghost = peerIdOf(await generateIdentityKey());
      const a = await make(await generateIdentityKey(), [
        { peerId: ghost, addresses: [`/ip4/127.0.0.1/tcp/${port}`] },
      ]);
      // Twenty concurrent requests share one dial.
      const codes = await Promise.all(
        Array.from({ length: 20 }, () => codeOf(a.request(ghost, PROTOCOL_RPC, enc('x')))),
      );
      expect(new Set(codes)).toEqual(new Set(['QuorumUnavailable']));
      expect(accepted).toBe(1);
      // Later requests each wait out the backoff, then dial once (100, 200, 400 ms...).
      for (let i = 0; i < 3; i++)
        expect(await codeOf(a.request(ghost, PROTOCOL_RPC, enc('x')))).toBe('QuorumUnavailable');
      expect(accepted).toBe(4);
    } finally {
      await new Promise((r) => server.close(r));
    }
  });

  it('stops cleanly: no sockets or servers left open', async () => {
    const tcpHandles = () =>
      process.getActiveResourcesInfo().filter((r) => r === 'TCPSocketWrap' || r === 'TCPServerWrap').length;
    // Sockets of earlier tests' transports are released a few event-loop turns after their stop().
    for (let i = 0; i < 50 && tcpHandles() > 0; i++) await new Promise((r) => setTimeout(r, 20));
    const before = tcpHandles();
    const { a, b } = await pair();
    await b.handle(PROTOCOL_RPC, async () => enc('ok'));
    await a.request(b.peerId, PROTOCOL_RPC, enc('x'));
    expect(tcpHandles()).toBeGreaterThan(before);
    await Promise.all(started.splice(0).map((t) => t.stop()));
    for (let i = 0; i < 50 && tcpHandles() > before; i++) await new Promise((r) => setTimeout(r, 20));
    expect(tcpHandles()).toBe(before);
    expect(await codeOf(a.request(b.peerId, PROTOCOL_RPC, enc('x'), { timeoutMs: 1000 }))).not.toBe('');
  });
});
