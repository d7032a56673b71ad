/**
 * The peer transport: libp2p over TCP, Noise and yamux. ALL stream I/O of the service lives in this
 * file, so a libp2p major version change touches nothing else (libp2p 3: a Stream is a
 * MessageStream with `send()`/events, no sink/source).
 *
 * Requests travel on long-lived channels: one yamux stream per (peer, protocol), opened on first
 * use and reused, carrying many concurrent exchanges tagged with request ids. A stream per request
 * cost a multistream-select round trip, a peer-store update on both sides and six more yamux
 * frames (SYN, window updates, FIN), about 0.6 ms of CPU per side per request; on a channel an
 * exchange is one data frame each way (about 0.07 ms). Socket writes of one event-loop turn leave
 * in one syscall (coalescingTcp).
 *
 * Security properties, in the order a connection meets them:
 * - the allow-list is enforced by libp2p's connection gater right after the Noise handshake
 *   (denyInbound/OutboundEncryptedConnection) and before dialing (denyDialPeer), so an unknown
 *   peer never reaches protocol negotiation or a handler;
 * - handlers re-check the allow-list on every request (second line, e.g. after `setAllowList`
 *   shrank it) and are given the Noise-authenticated peer id, never a claimed one;
 * - every frame is varint-length-prefixed and bounded by `maxMessageBytes` (plus its 5-byte
 *   header); the reader refuses an oversized length as soon as the prefix arrives, answers that
 *   request id with MessageTooLarge and discards the body unread, never buffering more than the limit;
 * - every operation (dial + channel opening, write, waiting for the answer, handler) has a deadline;
 *   a TCP connect has its own short one, and dials to a peer are one at a time with a backoff;
 * - a connection that owes us an answer and has gone silent is probed, and closed if the probe goes
 *   unanswered too (see "stalled connections" below), so a healed link is used again within seconds;
 * - per-peer limits: libp2p resets streams beyond `maxInboundStreamsPerPeer`; handler calls beyond
 *   `maxConcurrentPerPeer` are answered with an `Overloaded` error frame.
 *
 * Wire format on a channel: frames `varint(length) || type (1 byte) || id (u32 BE) || body`, where
 * type is REQUEST (caller's bytes), RESPONSE (a CBOR envelope, `{v:1, ok:true, body}` or `{v:1,
 * ok:false, kind, code, message, culprits}`, so a KmsError thrown by a remote handler is rethrown
 * typed on the caller) or CANCEL (the caller gave up: the handler's signal is aborted, as it is
 * when the stream closes). Answers come back in completion order.
 */

import { noise } from '@chainsafe/libp2p-noise';
import { yamux } from '@chainsafe/libp2p-yamux';
import { StreamState } from '@chainsafe/libp2p-yamux/stream';
import type {
  Connection,
  MultiaddrConnection,
  PeerId,
  PrivateKey,
  Stream,
  Transport as Libp2pTransport,
  Upgrader,
} from '@libp2p/interface';
import { peerIdFromString } from '@libp2p/peer-id';
import { setMaxListeners } from 'node:events';
import type { Socket } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import { tcp } from '@libp2p/tcp';
import { Uint8ArrayList } from 'uint8arraylist';
import { type Multiaddr, multiaddr } from '@multiformats/multiaddr';
import { decode as cborDecode, encode as cborEncode } from 'cborg';
import { createLibp2p, type Libp2p } from 'libp2p';
import {
  type Blame,
  type BlameReason,
  DecodeError,
  type ErrorCode,
  InfraError,
  isKmsError,
  KmsError,
  ProtocolError,
  StateError,
} from '../protocol/errors.ts';
import { parsePeerId } from './identity.ts';

/** Node-to-node and coordinator-to-node RPC (DKG start, key events, status). */
export const PROTOCOL_RPC = '/tkms/rpc/1.0.0';
/** Session messages of a running DKG / signing / key-event session. */
export const PROTOCOL_SESSION = '/tkms/session/1.0.0';
/** Liveness and admission check behind `isReachable`; every transport serves it. */
export const PROTOCOL_PING = '/tkms/ping/1.0.0';
export const RPC_PROTOCOL = PROTOCOL_RPC;
export const SESSION_PROTOCOL = PROTOCOL_SESSION;

export const DEFAULT_MAX_MESSAGE_BYTES = 1024 * 1024;
export const DEFAULT_TIMEOUT_MS = 10_000;
export const DEFAULT_HANDLER_TIMEOUT_MS = 60_000;
export const DEFAULT_MAX_INBOUND_STREAMS_PER_PEER = 64;
export const DEFAULT_MAX_CONCURRENT_PER_PEER = 32;
export const DEFAULT_LIVENESS_TIMEOUT_MS = 2_000;
/**
 * Budget of one TCP connect. Linux resends a SYN after 1 s, then 2 s, 4 s... so a connect begun
 * during a cut would notice the heal only at its next resend; an abandoned connect is followed at
 * once by a fresh one instead (connectionTo). One lost SYN still fits.
 */
const CONNECT_TIMEOUT_MS = 1_500;
/** Consecutive dial attempts to one peer start at least this far apart: doubling, capped low. */
const DIAL_BACKOFF_MIN_MS = 100;
const DIAL_BACKOFF_MAX_MS = 1_000;

export type AllowedPeer = { readonly peerId: string; readonly addresses: readonly string[] };

/** The subset of a pino logger the transport uses. */
export type TransportLogger = {
  child(bindings: Record<string, unknown>): TransportLogger;
  info(obj: Record<string, unknown>, msg?: string): void;
  warn(obj: Record<string, unknown>, msg?: string): void;
};

export type TransportConfig = {
  readonly privateKey: PrivateKey;
  /** Multiaddrs to listen on, e.g. `/ip4/127.0.0.1/tcp/0`. May be empty (dial-only coordinator). */
  readonly listen: readonly string[];
  readonly allow: readonly AllowedPeer[];
  readonly maxMessageBytes?: number;
  /** Deadline of each stream operation (dial + negotiation, write, read). Default 10 s. */
  readonly timeoutMs?: number;
  /**
   * Upper bound on one handler call (a session round may legitimately take longer than one
   * stream operation). The handler is also aborted as soon as the caller resets the stream,
   * e.g. because its own deadline passed. Default 60 s.
   */
  readonly handlerTimeoutMs?: number;
  readonly maxInboundStreamsPerPeer?: number;
  readonly maxConcurrentPerPeer?: number;
  /**
   * How long a connection may stay silent while it owes us an answer before it is probed, and how
   * long the probe may then go unanswered before the connection is closed as stalled. Default 2 s.
   */
  readonly livenessTimeoutMs?: number;
  readonly logger?: TransportLogger;
};

export type HandlerContext = {
  readonly protocol: string;
  /** Aborted when the handler's deadline passes, the caller gives up, or the transport stops. */
  readonly signal: AbortSignal;
};

/** `from` is the Noise-authenticated peer id of the caller. */
export type Handler = (from: string, request: Uint8Array, ctx: HandlerContext) => Promise<Uint8Array>;

export type RequestOptions = { readonly timeoutMs?: number; readonly signal?: AbortSignal };

export interface Transport {
  readonly peerId: string;
  /** Dialable multiaddrs including `/p2p/<peerId>`. */
  addresses(): string[];
  /** Replaces the allow-list; open connections to peers no longer on it are closed. */
  setAllowList(allow: readonly AllowedPeer[]): Promise<void>;
  handle(protocol: string, handler: Handler): Promise<void>;
  request(peerId: string, protocol: string, body: Uint8Array, opts?: RequestOptions): Promise<Uint8Array>;
  isReachable(peerId: string, timeoutMs?: number): Promise<boolean>;
  stop(): Promise<void>;
}

/** A frame length is a safe integer, so its varint prefix has at most 8 bytes. */
const MAX_VARINT_BYTES = 8;
const ENVELOPE_VERSION = 1;
/** Bounds on fields of a remote error, so a peer cannot make us carry huge strings around. */
const MAX_ERROR_MESSAGE = 2048;
const MAX_CULPRITS = 256;

export async function createTransport(cfg: TransportConfig): Promise<Transport> {
  const maxMessageBytes = cfg.maxMessageBytes ?? DEFAULT_MAX_MESSAGE_BYTES;
  const timeoutMs = cfg.timeoutMs ?? DEFAULT_TIMEOUT_MS;
  const handlerTimeoutMs = cfg.handlerTimeoutMs ?? DEFAULT_HANDLER_TIMEOUT_MS;
  const maxInboundStreams = cfg.maxInboundStreamsPerPeer ?? DEFAULT_MAX_INBOUND_STREAMS_PER_PEER;
  const maxConcurrent =
    cfg.maxConcurrentPerPeer ?? Math.min(DEFAULT_MAX_CONCURRENT_PER_PEER, maxInboundStreams);
  const livenessMs = cfg.livenessTimeoutMs ?? DEFAULT_LIVENESS_TIMEOUT_MS;
  for (const [name, v] of [
    ['maxMessageBytes', maxMessageBytes],
    ['timeoutMs', timeoutMs],
    ['handlerTimeoutMs', handlerTimeoutMs],
    ['maxInboundStreamsPerPeer', maxInboundStreams],
    ['maxConcurrentPerPeer', maxConcurrent],
    ['livenessTimeoutMs', livenessMs],
  ] as const) {
    if (!Number.isSafeInteger(v) || v <= 0)
      throw new KmsError('ValidationError', `${name} must be a positive integer`);
  }
  if (maxConcurrent > maxInboundStreams) {
    // Our outbound queue admits maxConcurrent streams per peer; libp2p would reset the excess.
    throw new KmsError('ValidationError', 'maxConcurrentPerPeer must not exceed maxInboundStreamsPerPeer');
  }
  const log = cfg.logger?.child({ component: 'transport' });

  let allow = buildAllowMap(cfg.allow);
  const isAllowed = (peer: PeerId | string): boolean => allow.has(peer.toString());
  const refuse = (stage: string) => (peer: PeerId) => {
    if (isAllowed(peer)) return false;
    log?.warn({ peer: peer.toString(), stage }, 'refused peer not on the allow-list');
    return true;
  };

  let node: Libp2p;
  try {
    node = await createLibp2p({
      privateKey: cfg.privateKey,
      addresses: { listen: [...cfg.listen] },
      transports: [tunedTcp(Math.min(timeoutMs, CONNECT_TIMEOUT_MS))],
      connectionEncrypters: [noise()],
      streamMuxers: [yamux()],
      connectionGater: {
        denyDialPeer: refuse('dial'),
        denyInboundEncryptedConnection: refuse('inbound-encrypted'),
        denyOutboundEncryptedConnection: refuse('outbound-encrypted'),
        denyInboundUpgradedConnection: refuse('inbound-upgraded'),
        denyOutboundUpgradedConnection: refuse('outbound-upgraded'),
      },
      connectionManager: {
        dialTimeout: timeoutMs,
        inboundUpgradeTimeout: timeoutMs,
        outboundStreamProtocolNegotiationTimeout: timeoutMs,
        inboundStreamProtocolNegotiationTimeout: timeoutMs,
        // The default (5 per second per host) is for the open internet; all our peers are
        // allow-listed and several may share one host (tests, devnet).
        inboundConnectionThreshold: 1000,
        // The default (10 connections in their handshake at once) refused dials when a whole
        // devnet of 15 nodes first connected for a DKG, and the session named the refused peers
        // unresponsive. Still bounded: pending handshakes hold memory and CPU.
        maxIncomingPendingConnections: 128,
      },
    });
  } catch (e) {
    throw new InfraError('TransportError', 'could not start the libp2p transport', { cause: e });
  }
  const peerId = node.peerId.toString();
  log?.info({ peerId, addresses: node.getMultiaddrs().map(String) }, 'transport started');

  const stopController = new AbortController();
  // Every request and handler in flight listens on it (armDeadline): many at once is expected.
  setMaxListeners(0, stopController.signal);
  const inbound = new Map<string, number>();
  const outbound = new Map<string, Semaphore>();

  const handleOpts = { maxInboundStreams, maxOutboundStreams: maxInboundStreams };

  /** Liveness of each connection, whichever side opened it (see "stalled connections" below). */
  const links = new WeakMap<Connection, Link>();
  const linkOf = (conn: Connection): Link => {
    let link = links.get(conn);
    if (link === undefined) {
      link = {
        conn,
        peer: conn.remotePeer.toString(),
        heard: performance.now(),
        owedSince: undefined,
        pending: 0,
        probing: false,
      };
      links.set(conn, link);
    }
    return link;
  };

  // ---- serving: one inbound channel per (peer, protocol) stream --------------------------------

  /**
   * Serves a channel: every REQUEST frame runs the handler (allow-list re-checked, per-peer
   * concurrency bounded, deadline), its answer goes back as a RESPONSE frame with the same id, in
   * completion order. A CANCEL frame, or the stream closing, aborts the handler (the caller left).
   */
  function serveChannel(protocol: string, handler: Handler, stream: Stream, connection: Connection): void {
    const from = connection.remotePeer.toString();
    const link = linkOf(connection);
    lazyWindowUpdates(stream);
    const running = new Map<number, AbortController>();
    const reader = new FrameReader(maxMessageBytes + FRAME_HEADER_BYTES);
    // A caller that does not read its answers within the deadline loses the whole channel. The
    // deadline is armed only when the frame has to wait for the stream to drain (rarely): a timer
    // and two signals per answer were a measurable part of a node's CPU per signature share.
    const sendDeadline = () => AbortSignal.any([AbortSignal.timeout(timeoutMs), stopController.signal]);
    const answer = (id: number, envelope: Uint8Array) => {
      sendFrame(stream, encodeFrame(FRAME_RESPONSE, id, envelope), sendDeadline, stopController.signal).catch(
        (e) => abortStream(stream, e),
      );
    };

    async function dispatch(id: number, request: Uint8Array): Promise<void> {
      if (!isAllowed(from)) {
        log?.warn({ peer: from, protocol }, 'refused request from peer not on the allow-list');
        answer(id, encodeError(new KmsError('PeerNotAllowed', 'peer is not on the allow-list')));
        return;
      }
      const active = inbound.get(from) ?? 0;
      if (active >= maxConcurrent) {
        answer(id, encodeError(new KmsError('Overloaded', 'too many concurrent requests from this peer')));
        return;
      }
      inbound.set(from, active + 1);
      const callerGone = new AbortController();
      running.set(id, callerGone);
      const handlerDeadline = armDeadline(handlerTimeoutMs, [stopController.signal, callerGone.signal]);
      const deadline = handlerDeadline.signal;
      let response: Uint8Array;
      try {
        response = encodeOk(
          await raceSignal(handler(from, request, { protocol, signal: deadline }), deadline),
        );
      } catch (e) {
        if (callerGone.signal.aborted) return; // nobody is waiting for this answer
        const err = isKmsError(e) ? e : deadline.aborted ? timeoutError(from) : null;
        if (err === null) {
          // A non-typed error may carry anything in its message; only its name leaves this node.
          log?.warn(
            { peer: from, protocol, error: e instanceof Error ? e.name : typeof e },
            'handler failed',
          );
        }
        response = encodeError(err ?? new KmsError('Internal', 'internal error in request handler'));
      } finally {
        handlerDeadline.done();
        running.delete(id);
        const n = (inbound.get(from) ?? 1) - 1;
        if (n === 0) inbound.delete(from);
        else inbound.set(from, n);
      }
      if (response.byteLength > maxMessageBytes) {
        response = encodeError(new KmsError('MessageTooLarge', 'response exceeds the maximum message size'));
      }
      answer(id, response);
    }

    const onMessage = (evt: { data: Uint8Array | Uint8ArrayList }) => {
      arrived(link);
      let frames: Frame[];
      try {
        frames = reader.push(evt.data);
      } catch (e) {
        log?.warn({ peer: from, protocol }, 'malformed frame; channel closed');
        abortStream(stream, e);
        return;
      }
      for (const f of frames) {
        if (f.type === FRAME_CANCEL) {
          running.get(f.id)?.abort(new KmsError('ProtocolAborted', 'caller cancelled the request'));
        } else if (f.type !== FRAME_REQUEST) {
          log?.warn({ peer: from, protocol }, 'unexpected frame type; channel closed');
          abortStream(stream, new DecodeError('DecodeError', 'unexpected frame type'));
          return;
        } else if (f.tooLarge) {
          // Its body was skipped unread (FrameReader); the channel stays usable.
          answer(
            f.id,
            encodeError(new KmsError('MessageTooLarge', 'request exceeds the maximum message size')),
          );
        } else if (running.has(f.id)) {
          answer(f.id, encodeError(new DecodeError('DecodeError', 'request id already in use')));
        } else {
          void dispatch(f.id, f.body);
        }
      }
    };
    stream.addEventListener('message', onMessage);
    stream.addEventListener(
      'close',
      () => {
        for (const c of running.values())
          c.abort(new KmsError('ProtocolAborted', 'caller closed the stream'));
        running.clear();
      },
      { once: true },
    );
    // The caller closed its side: finish once the running requests have answered.
    stream.addEventListener(
      'remoteCloseWrite',
      () => {
        const close = () => void stream.close().catch((e) => abortStream(stream, e));
        if (running.size === 0) return close();
        const timer = setInterval(() => {
          if (running.size === 0 || stream.status !== 'open') {
            clearInterval(timer);
            close();
          }
        }, 50);
        timer.unref();
      },
      { once: true },
    );
  }

  // ---- calling: one outbound channel per (peer, protocol), requests tagged with ids -------------

  /**
   * The open connection to a peer, dialed once and then reused: `dialProtocol` per request costs a
   * peer-store lookup (protobuf decode, peer id re-encoding) each time. Every outbound channel to a
   * peer lives on this one connection (it is replaced only once it is no longer open).
   */
  const connections = new Map<string, Connection>();
  const dialing = new Map<string, Dialing>();

  /**
   * At most one dial in flight per peer, shared by its callers; consecutive attempts start at least
   * a backoff apart (100 ms doubling to 1 s, reset by a success), so an unreachable peer costs about
   * one dial a second however many requests want it. An attempt that ran out of time (a path that
   * drops packets, see CONNECT_TIMEOUT_MS) is followed by another until `signal`, as the path may
   * heal meanwhile; one that failed outright (refused: nothing listens) fails its callers at once.
   */
  async function connectionTo(target: string, signal: AbortSignal): Promise<Connection> {
    for (;;) {
      const known = connections.get(target);
      if (known !== undefined && known.status === 'open') return known;
      let d = dialing.get(target);
      if (d === undefined) {
        d = { attempt: undefined, failures: 0, nextAt: 0 };
        dialing.set(target, d);
      }
      if (d.attempt === undefined) {
        const wait = d.nextAt - performance.now();
        if (wait > 0) {
          await sleep(wait, undefined, { signal });
          continue;
        }
        d.attempt = dialOnce(target, d);
      }
      try {
        return await raceSignal(d.attempt, signal);
      } catch (e) {
        if (signal.aborted || !dialTimedOut(e)) throw e;
      }
    }
  }

  function dialOnce(target: string, d: Dialing): Promise<Connection> {
    d.nextAt = performance.now() + Math.min(DIAL_BACKOFF_MAX_MS, DIAL_BACKOFF_MIN_MS * 2 ** d.failures);
    // Its own deadline: the callers sharing it come and go.
    const signal = AbortSignal.any([AbortSignal.timeout(timeoutMs), stopController.signal]);
    return node
      .dial(dialTarget(target), { signal })
      .then(
        (conn) => {
          d.failures = 0;
          connections.set(target, conn);
          return conn;
        },
        (e: unknown) => {
          d.failures++;
          throw e;
        },
      )
      .finally(() => {
        d.attempt = undefined;
      });
  }

  function dialTarget(target: string): Multiaddr[] | PeerId {
    const entry = allow.get(target);
    if (entry === undefined || entry.length === 0) return peerIdFromString(target);
    return entry;
  }

  const channels = new Map<string, Channel>();
  const opening = new Map<string, Promise<Channel>>();

  /** The open channel to (peer, protocol); concurrent callers share one opening. */
  function channelTo(target: string, protocol: string, signal: AbortSignal): Promise<Channel> {
    const key = `${target} ${protocol}`;
    const open = channels.get(key);
    if (open !== undefined && !open.closed) return Promise.resolve(open);
    let p = opening.get(key);
    if (p === undefined) {
      // Its own deadline, not the first caller's: a caller giving up must not fail the others.
      const sig = AbortSignal.any([AbortSignal.timeout(timeoutMs), stopController.signal]);
      p = (async () => {
        try {
          const conn = await connectionTo(target, sig);
          const link = linkOf(conn);
          owe(link); // the peer's side of the protocol negotiation
          let stream: Stream;
          try {
            stream = await conn.newStream(protocol, { signal: sig, maxOutboundStreams: maxInboundStreams });
          } finally {
            link.pending--;
          }
          const ch = openChannel(key, link, stream);
          channels.set(key, ch);
          return ch;
        } catch (e) {
          throw dialError(e, sig, undefined, target);
        } finally {
          opening.delete(key);
        }
      })();
      opening.set(key, p);
    }
    return raceSignal(p, signal);
  }

  function openChannel(key: string, link: Link, stream: Stream): Channel {
    const target = link.peer;
    lazyWindowUpdates(stream);
    const ch: Channel = { stream, link, pending: new Map(), nextId: 1, closed: false };
    const reader = new FrameReader(maxMessageBytes + FRAME_HEADER_BYTES);
    const end = (err: KmsError) => {
      if (ch.closed) return;
      ch.closed = true;
      if (channels.get(key) === ch) channels.delete(key);
      link.pending -= ch.pending.size;
      for (const p of ch.pending.values()) p.reject(err);
      ch.pending.clear();
    };
    stream.addEventListener('message', (evt: { data: Uint8Array | Uint8ArrayList }) => {
      let frames: Frame[];
      try {
        frames = reader.push(evt.data);
      } catch (e) {
        abortStream(stream, e);
        end(
          new DecodeError('DecodeError', 'malformed frame from peer', {
            details: { peer: target },
            cause: e,
          }),
        );
        return;
      }
      for (const f of frames) {
        if (f.type !== FRAME_RESPONSE) {
          const err = new DecodeError('DecodeError', 'unexpected frame type from peer', {
            details: { peer: target },
          });
          abortStream(stream, err);
          end(err);
          return;
        }
        const p = ch.pending.get(f.id);
        if (p === undefined) continue; // the answer to a request we gave up on
        ch.pending.delete(f.id);
        link.pending--;
        if (f.tooLarge) {
          p.reject(
            new KmsError('MessageTooLarge', 'peer sent a frame larger than the maximum message size', {
              details: { peer: target },
            }),
          );
        } else p.resolve(f.body);
      }
      arrived(link); // after the answers: what they settled is owed no more
    });
    const closed = (evt?: { error?: Error }) =>
      end(
        new KmsError('TransportError', `peer stream closed (${evt?.error?.name ?? 'closed'})`, {
          details: { peer: target },
          ...(evt?.error ? { cause: evt.error } : {}),
        }),
      );
    stream.addEventListener('close', closed, { once: true });
    stream.addEventListener(
      'remoteCloseWrite',
      () => {
        closed();
        void stream.close().catch((e) => abortStream(stream, e));
      },
      { once: true },
    );
    return ch;
  }

  /** One request and its answer on a channel, within `signal`; the peer is told if we give up. */
  async function exchange(ch: Channel, body: Uint8Array, signal: AbortSignal): Promise<Uint8Array> {
    const id = ch.nextId;
    ch.nextId = ch.nextId >= 0xffff_ffff ? 1 : ch.nextId + 1;
    const answer = new Promise<Uint8Array>((resolve, reject) => ch.pending.set(id, { resolve, reject }));
    answer.catch(() => {});
    owe(ch.link);
    try {
      // A peer that refuses the request (too large, overloaded) may answer before our write ends.
      const writing = sendFrame(ch.stream, encodeFrame(FRAME_REQUEST, id, body), signal);
      writing.catch(() => {});
      const frame = await raceSignal(Promise.race([answer, writing.then(() => answer)]), signal);
      return decodeResponse(frame, ch.link.peer);
    } catch (e) {
      if (ch.pending.delete(id)) {
        // Given up unanswered: still owed (`owedSince` stays) until something arrives.
        ch.link.pending--;
        // Tell the peer we left, so its handler stops (best effort).
        try {
          if (ch.stream.writeStatus === 'writable') ch.stream.send(encodeFrame(FRAME_CANCEL, id, EMPTY));
        } catch {
          /* the channel is going away anyway */
        }
      }
      throw e;
    }
  }

  async function request(
    target: string,
    protocol: string,
    body: Uint8Array,
    opts: RequestOptions = {},
  ): Promise<Uint8Array> {
    if (!isAllowed(target))
      throw new KmsError('PeerNotAllowed', 'peer is not on the allow-list', { details: { peer: target } });
    if (body.byteLength > maxMessageBytes) {
      throw new KmsError(
        'MessageTooLarge',
        `request of ${body.byteLength} bytes exceeds the limit of ${maxMessageBytes}`,
      );
    }
    const t = opts.timeoutMs ?? timeoutMs;
    const user = opts.signal;
    const base = [stopController.signal, ...(user ? [user] : [])];
    // One deadline for queueing + opening the channel, a fresh one for the exchange.
    const op = () => armDeadline(t, base);

    let sem = outbound.get(target);
    if (sem === undefined) {
      sem = new Semaphore(maxConcurrent);
      outbound.set(target, sem);
    }
    // Fast path (a free slot, the channel open): nothing to wait for before the exchange, so no
    // deadline is armed for that phase (a timer and two signals less per request).
    const open = channels.get(`${target} ${protocol}`);
    const fast =
      open !== undefined &&
      !open.closed &&
      !stopController.signal.aborted &&
      !user?.aborted &&
      sem.tryAcquire();
    const first = fast ? undefined : op();
    if (first !== undefined) {
      try {
        await sem.acquire(first.signal);
      } catch (e) {
        first.done();
        throw streamError(e, first.signal, user, target);
      }
    }
    try {
      let ch: Channel;
      if (first === undefined) ch = open!;
      else {
        try {
          ch = await channelTo(target, protocol, first.signal);
        } catch (e) {
          throw streamError(e, first.signal, user, target);
        } finally {
          first.done();
        }
      }
      const d = op();
      try {
        return await exchange(ch, body, d.signal);
      } catch (e) {
        throw streamError(e, d.signal, user, target);
      } finally {
        d.done();
      }
    } finally {
      sem.release();
    }
  }

  // ---- stalled connections ------------------------------------------------------------------------

  /*
   * TCP does not say when a path stops carrying packets: our data sits unacknowledged while the
   * retransmission timeout doubles (up to 120 s), and once the path heals nothing moves until the
   * next retransmission, about as long after the heal as the cut had lasted. So a connection is
   * suspect once it has owed us something for `livenessMs` with nothing at all arriving on it: an
   * answer to a request (pending, or given up unanswered: its timeout is no news from the peer) or
   * to a stream opening. Silence alone proves nothing (a handler may take long: a coordinator's
   * `session` call lasts a whole session), so the suspect is asked a ping on that same connection;
   * if nothing arrives within `livenessMs` more, it is closed: its requests fail at once and the
   * next request dials afresh (connectionTo), which a healed path carries at once. One timer looks
   * at our connection to each peer; the hot path pays a counter per request and a clock read per
   * arriving message.
   */
  const sweep = setInterval(
    () => {
      const now = performance.now();
      for (const conn of connections.values()) {
        const link = links.get(conn);
        if (link === undefined || link.owedSince === undefined || link.probing) continue;
        if (now - link.owedSince >= livenessMs && conn.status === 'open') void probe(link);
      }
    },
    Math.max(10, Math.floor(livenessMs / 4)),
  );
  sweep.unref();

  async function probe(link: Link): Promise<void> {
    link.probing = true;
    const since = performance.now();
    const signal = AbortSignal.any([AbortSignal.timeout(livenessMs), stopController.signal]);
    try {
      const ch = await channelTo(link.peer, PROTOCOL_PING, signal);
      // Another connection means this one is already closing (connectionTo replaced it).
      if (ch.link !== link) return;
      // Not through the per-peer semaphore: requests stuck on this very connection may fill it.
      await exchange(ch, EMPTY, signal);
    } catch {
      // Judged below by whether anything arrived, whatever became of the ping itself.
    } finally {
      link.probing = false;
    }
    if (link.heard >= since || stopController.signal.aborted) return;
    // Every connection to the peer that stayed silent too goes: the same path, equally cut (e.g.
    // the one the peer dialed to us, which a redial would otherwise be handed back).
    const probeMs = performance.now() - since;
    const stalled = node.getConnections(peerIdFromString(link.peer)).filter((conn) => {
      const heard = links.get(conn)?.heard;
      const silent = heard === undefined ? Date.now() - conn.timeline.open >= probeMs : heard < since;
      return silent && conn.status === 'open';
    });
    if (stalled.length === 0) return;
    log?.warn(
      {
        peer: link.peer,
        silentMs: Math.round(performance.now() - link.heard),
        connections: stalled.length,
      },
      'connection to peer stalled (a ping went unanswered); closed, the next request dials afresh',
    );
    for (const conn of stalled) {
      conn.abort(new KmsError('Timeout', 'peer connection stalled', { details: { peer: link.peer } }));
    }
  }

  /** A round trip on the ping protocol: proves the peer is up AND accepts us (its allow-list). */
  async function isReachable(target: string, t = timeoutMs): Promise<boolean> {
    if (!isAllowed(target)) return false;
    try {
      await request(target, PROTOCOL_PING, new Uint8Array(0), { timeoutMs: t });
      return true;
    } catch {
      return false;
    }
  }

  await node.handle(
    PROTOCOL_PING,
    (stream, connection) => serveChannel(PROTOCOL_PING, async () => new Uint8Array(0), stream, connection),
    handleOpts,
  );

  return {
    peerId,
    addresses: () => node.getMultiaddrs().map((ma) => ma.toString()),
    async setAllowList(next) {
      allow = buildAllowMap(next);
      for (const conn of node.getConnections()) {
        if (!isAllowed(conn.remotePeer)) {
          log?.info(
            { peer: conn.remotePeer.toString() },
            'closing connection to peer removed from the allow-list',
          );
          conn.abort(new KmsError('PeerNotAllowed', 'peer removed from the allow-list'));
        }
      }
    },
    async handle(protocol, handler) {
      await node.handle(
        protocol,
        (stream, connection) => serveChannel(protocol, handler, stream, connection),
        handleOpts,
      );
    },
    request,
    isReachable,
    async stop() {
      clearInterval(sweep);
      stopController.abort(new KmsError('TransportError', 'transport stopped'));
      await node.stop();
      log?.info({ peerId }, 'transport stopped');
    },
  };
}

/** Parses the allow-list; each address gets `/p2p/<peerId>` so a dial authenticates the peer. */
function buildAllowMap(list: readonly AllowedPeer[]): Map<string, Multiaddr[]> {
  const map = new Map<string, Multiaddr[]>();
  for (const entry of list) {
    const id = parsePeerId(entry.peerId);
    const addrs = entry.addresses.map((a) => {
      let ma: Multiaddr;
      try {
        ma = multiaddr(a);
      } catch (e) {
        throw new DecodeError(
          'ValidationError',
          `invalid multiaddr for peer ${id}: ${JSON.stringify(a.slice(0, 200))}`,
          {
            cause: e,
          },
        );
      }
      const p2p = ma.getComponents().findLast((c) => c.name === 'p2p')?.value;
      if (p2p === undefined) return ma.encapsulate(`/p2p/${id}`);
      if (p2p !== id) throw new KmsError('ValidationError', `address ${a} names another peer than ${id}`);
      return ma;
    });
    map.set(id, addrs);
  }
  return map;
}

// ---- TCP: bounded connects, one write syscall per event-loop turn ---------------------------------

/**
 * libp2p's TCP transport with two changes.
 *
 * Connects: a TCP connect not done within `connectTimeoutMs` is abandoned (CONNECT_TIMEOUT_MS says
 * why); the rest of the dial (Noise, yamux) keeps the dial's own deadline.
 *
 * Writes: libp2p's TCP connection writes every buffer it is given with its own `socket.write`, and
 * the layers above hand it many small ones: Noise writes each message as a 2-byte length and a
 * ciphertext, yamux sends a frame per SYN, window update, data chunk and FIN. One request/response
 * was 14 write syscalls per side, and `writeBuffer` the top entry of the coordinator's profile.
 * Here the socket is corked at the first write of a turn and uncorked once the turn's I/O callbacks
 * have run (setImmediate), so everything written in one turn leaves in one writev. Latency cost:
 * at most the rest of the current event-loop turn.
 */
function tunedTcp(
  connectTimeoutMs: number,
): (components: Parameters<ReturnType<typeof tcp>>[0]) => Libp2pTransport {
  const make = tcp();
  return (components) => {
    const inner = make(components);
    const wrapUpgrader = (u: Upgrader, connected?: () => void): Upgrader =>
      Object.assign(Object.create(u) as Upgrader, {
        upgradeOutbound: (maConn: MultiaddrConnection, opts: never) => {
          connected?.();
          return u.upgradeOutbound(corkWrites(maConn), opts);
        },
        upgradeInbound: (maConn: MultiaddrConnection, opts: never) =>
          u.upgradeInbound(corkWrites(maConn), opts),
      });
    return Object.assign(Object.create(inner) as Libp2pTransport, {
      dial: async (ma: Multiaddr, opts: Parameters<Libp2pTransport['dial']>[1]) => {
        // The upgrade starts once the socket is connected: that ends the connect budget.
        const connect = new AbortController();
        const timer = setTimeout(() => connect.abort(), connectTimeoutMs);
        const connected = () => clearTimeout(timer);
        try {
          return await inner.dial(ma, {
            ...opts,
            signal: opts.signal ? AbortSignal.any([opts.signal, connect.signal]) : connect.signal,
            upgrader: wrapUpgrader(opts.upgrader, connected),
          });
        } finally {
          clearTimeout(timer);
        }
      },
      createListener: (opts: Parameters<Libp2pTransport['createListener']>[0]) =>
        inner.createListener({ ...opts, upgrader: wrapUpgrader(opts.upgrader) }),
    });
  };
}

/**
 * This yamux answers every data frame it receives with a window update: one more Noise message and
 * socket write per exchange and side, and on loopback each write also wakes the peer process.
 * hashicorp/yamux and rust-yamux only send one once half the receive window is consumed; our
 * channels do the same. Streams being opened or accepted (SYN/ACK) keep the library's behaviour;
 * if the library's internals change shape, nothing is patched.
 */
function lazyWindowUpdates(stream: Stream): void {
  const s = stream as unknown as {
    state?: unknown;
    recvWindow?: unknown;
    recvWindowCapacity?: unknown;
    sendWindowUpdate?: () => void;
  };
  const send = s.sendWindowUpdate;
  if (
    typeof send !== 'function' ||
    typeof s.recvWindow !== 'number' ||
    typeof s.recvWindowCapacity !== 'number'
  )
    return;
  s.sendWindowUpdate = () => {
    const settled = s.state !== StreamState.Init && s.state !== StreamState.SYNReceived;
    if (settled && (s.recvWindowCapacity as number) * 2 > (s.recvWindow as number)) return;
    send.call(s);
  };
}

/** Corks the connection's socket for the rest of the turn at each turn's first write. */
function corkWrites(maConn: MultiaddrConnection): MultiaddrConnection {
  const conn = maConn as MultiaddrConnection & {
    socket?: Socket;
    sendData?: (data: Uint8ArrayList) => unknown;
  };
  const socket = conn.socket;
  const send = conn.sendData;
  if (socket === undefined || typeof socket.cork !== 'function' || typeof send !== 'function') return maConn;
  let corked = false;
  const flush = () => {
    corked = false;
    socket.uncork();
  };
  conn.sendData = (data: Uint8ArrayList) => {
    if (!corked && !socket.destroyed) {
      corked = true;
      socket.cork();
      setImmediate(flush);
    }
    return send.call(conn, data);
  };
  return maConn;
}

// ---- deadlines ----------------------------------------------------------------------------------

type Deadline = { readonly signal: AbortSignal; done(): void };

/**
 * AbortSignal.any([AbortSignal.timeout(ms), ...parents]) for an operation that ends: aborted with a
 * TimeoutError after `ms`, or with a parent's reason when one aborts; `done()` (call it when the
 * operation ends) clears the timer and the parent listeners. AbortSignal.timeout's timer lives its
 * whole length however soon the request ends, and the pair cost ~18 µs per request (a node's
 * handler deadline, every exchange); this is ~1 µs. The timer does not keep the process alive.
 */
function armDeadline(ms: number, parents: readonly AbortSignal[]): Deadline {
  const c = new AbortController();
  for (const p of parents) {
    if (p.aborted) {
      c.abort(p.reason);
      return { signal: c.signal, done: () => {} };
    }
  }
  const onParent = (e: Event) => c.abort((e.target as AbortSignal).reason);
  const timer = setTimeout(
    () => c.abort(new DOMException('The operation was aborted due to timeout', 'TimeoutError')),
    ms,
  );
  timer.unref();
  for (const p of parents) p.addEventListener('abort', onParent, { once: true });
  const done = () => {
    clearTimeout(timer);
    for (const p of parents) p.removeEventListener('abort', onParent);
  };
  c.signal.addEventListener('abort', done, { once: true });
  return { signal: c.signal, done };
}

// ---- errors -------------------------------------------------------------------------------------

function timeoutError(peer: string): KmsError {
  return new KmsError('Timeout', 'peer stream operation timed out', { details: { peer } });
}

/** Why an operation stopped: our deadline, the caller's signal, the transport stopping, or the wire. */
function streamError(e: unknown, signal: AbortSignal, user: AbortSignal | undefined, peer: string): KmsError {
  if (isKmsError(e)) return e;
  if (user?.aborted) {
    return isKmsError(user.reason)
      ? user.reason
      : new KmsError('ProtocolAborted', 'request aborted by the caller', { cause: e });
  }
  if (signal.aborted) {
    if (isKmsError(signal.reason)) return signal.reason;
    return timeoutError(peer);
  }
  const name = e instanceof Error ? e.name : '';
  if (
    name === 'InvalidDataLengthError' ||
    name === 'InvalidDataLengthLengthError' ||
    name === 'StreamBufferError'
  ) {
    return new KmsError('MessageTooLarge', 'peer sent a frame larger than the maximum message size', {
      details: { peer },
      cause: e,
    });
  }
  return new KmsError('TransportError', `peer stream failed (${name || 'unknown'})`, {
    details: { peer },
    cause: e,
  });
}

/** A dial that ran out of time (connect budget, deadline), as opposed to one refused outright. */
function dialTimedOut(e: unknown): boolean {
  if (e instanceof AggregateError) return e.errors.length > 0 && e.errors.every(dialTimedOut);
  const name = e instanceof Error ? e.name : '';
  return name === 'TimeoutError' || name === 'AbortError';
}

function dialError(e: unknown, signal: AbortSignal, user: AbortSignal | undefined, peer: string): KmsError {
  if (isKmsError(e) || user?.aborted || signal.aborted) return streamError(e, signal, user, peer);
  const name = e instanceof Error ? e.name : '';
  if (name === 'UnsupportedProtocolError') {
    return new KmsError('TransportError', 'peer does not serve this protocol', {
      details: { peer },
      cause: e,
    });
  }
  if (name === 'TooManyOutboundProtocolStreamsError') {
    return new KmsError('Overloaded', 'too many open streams to this peer', { details: { peer }, cause: e });
  }
  return new KmsError('QuorumUnavailable', 'peer is unreachable', {
    details: { peer, reason: 'unreachable' },
    cause: e,
  });
}

/** Races a promise against an abort signal, so a handler that never settles cannot hold a slot. */
function raceSignal<T>(p: Promise<T>, signal: AbortSignal): Promise<T> {
  if (signal.aborted) {
    p.catch(() => {}); // settles unobserved
    return Promise.reject(signal.reason);
  }
  return new Promise<T>((resolve, reject) => {
    const onAbort = () => reject(signal.reason);
    signal.addEventListener('abort', onAbort, { once: true });
    p.then(
      (v) => {
        signal.removeEventListener('abort', onAbort);
        resolve(v);
      },
      (e) => {
        signal.removeEventListener('abort', onAbort);
        reject(e);
      },
    );
  });
}

// ---- frames: varint length prefix, then type, request id and body ---------------------------------

const FRAME_REQUEST = 0;
const FRAME_RESPONSE = 1;
/** Caller to server: the caller gave up on this request id; abort its handler. */
const FRAME_CANCEL = 2;
/** Type (1 byte) and request id (u32, big-endian) ahead of the body. */
const FRAME_HEADER_BYTES = 5;
const EMPTY = new Uint8Array(0);

type Frame = {
  readonly type: number;
  readonly id: number;
  readonly body: Uint8Array;
  readonly tooLarge: boolean;
};

/** The caller's side of a channel: requests awaiting their RESPONSE frame, by id. */
type Channel = {
  readonly stream: Stream;
  readonly link: Link;
  readonly pending: Map<number, { resolve: (body: Uint8Array) => void; reject: (e: unknown) => void }>;
  nextId: number;
  closed: boolean;
};

/**
 * One connection's liveness ("stalled connections" in createTransport), times from
 * `performance.now()`: when anything last arrived on it; since when it has owed us an answer with
 * nothing arriving (undefined: owes nothing); answers awaited (requests, stream openings).
 */
type Link = {
  readonly conn: Connection;
  readonly peer: string;
  heard: number;
  owedSince: number | undefined;
  pending: number;
  probing: boolean;
};

/** A request or stream opening leaves on `link`: an answer is owed. */
function owe(link: Link): void {
  link.pending++;
  link.owedSince ??= performance.now();
}

/** Bytes arrived on `link`: what was owed is settled, what is still awaited is owed from now. */
function arrived(link: Link): void {
  link.heard = performance.now();
  link.owedSince = link.pending > 0 ? link.heard : undefined;
}

/** Dialing one peer: the attempt in flight, failures in a row, earliest start of the next attempt. */
type Dialing = { attempt: Promise<Connection> | undefined; failures: number; nextAt: number };

/** Unsigned LEB128, as used by libp2p's length-prefixed streams. */
function encodeVarint(n: number): Uint8Array {
  const out: number[] = [];
  let v = n;
  while (v >= 0x80) {
    out.push((v % 0x80) | 0x80);
    v = Math.floor(v / 0x80);
  }
  out.push(v);
  return Uint8Array.from(out);
}

/** Decodes a varint at the start of `buf`: [value, bytes used], or undefined if incomplete. */
function decodeVarint(buf: Uint8ArrayList): [number, number] | undefined {
  let value = 0;
  let scale = 1;
  for (let i = 0; i < Math.min(buf.byteLength, MAX_VARINT_BYTES); i++) {
    const b = buf.get(i);
    value += (b & 0x7f) * scale;
    if ((b & 0x80) === 0) {
      if (i > 0 && b === 0) throw new DecodeError('DecodeError', 'non-minimal frame length prefix');
      return [value, i + 1];
    }
    scale *= 0x80;
  }
  if (buf.byteLength >= MAX_VARINT_BYTES)
    throw new DecodeError('DecodeError', 'frame length prefix too long');
  return undefined;
}

/** One contiguous buffer, so the frame leaves as one yamux data frame (one Noise message). */
function encodeFrame(type: number, id: number, body: Uint8Array): Uint8Array {
  const prefix = encodeVarint(FRAME_HEADER_BYTES + body.byteLength);
  const out = new Uint8Array(prefix.length + FRAME_HEADER_BYTES + body.byteLength);
  out.set(prefix, 0);
  out[prefix.length] = type;
  new DataView(out.buffer).setUint32(prefix.length + 1, id);
  out.set(body, prefix.length + FRAME_HEADER_BYTES);
  return out;
}

/**
 * Splits a channel's bytes into frames. The length is checked as soon as the prefix arrives: a
 * frame over the limit is reported by its header alone (`tooLarge`, so the other side can be
 * answered for that id) and its body is discarded as it arrives, never buffered. Never holds more
 * than one prefix + limit of unparsed bytes.
 */
class FrameReader {
  readonly #buf = new Uint8ArrayList();
  readonly #maxFrame: number;
  /** Bytes of an oversized frame still to discard. */
  #skip = 0;

  constructor(maxFrame: number) {
    this.#maxFrame = maxFrame;
  }

  push(data: Uint8Array | Uint8ArrayList): Frame[] {
    this.#buf.append(data);
    const out: Frame[] = [];
    for (;;) {
      if (this.#skip > 0) {
        const n = Math.min(this.#skip, this.#buf.byteLength);
        this.#buf.consume(n);
        this.#skip -= n;
        if (this.#skip > 0) return out;
      }
      const parsed = decodeVarint(this.#buf);
      if (parsed === undefined) return out;
      const [length, prefix] = parsed;
      if (length < FRAME_HEADER_BYTES) throw new DecodeError('DecodeError', 'frame shorter than its header');
      if (this.#buf.byteLength < prefix + FRAME_HEADER_BYTES) return out;
      const type = this.#buf.get(prefix);
      const id = this.#buf.getUint32(prefix + 1);
      if (length > this.#maxFrame) {
        this.#buf.consume(prefix + FRAME_HEADER_BYTES);
        this.#skip = length - FRAME_HEADER_BYTES;
        out.push({ type, id, body: EMPTY, tooLarge: true });
        continue;
      }
      if (this.#buf.byteLength < prefix + length) return out;
      const body = this.#buf.subarray(prefix + FRAME_HEADER_BYTES, prefix + length);
      this.#buf.consume(prefix + length);
      out.push({ type, id, body, tooLarge: false });
    }
  }
}

/**
 * Writes one frame; waits for the stream to drain within `signal` (or the signal `deadline` makes
 * at that moment, when one is only needed if the write has to wait; `stop` is then checked first).
 */
async function sendFrame(
  stream: Stream,
  frame: Uint8Array,
  signal: AbortSignal | (() => AbortSignal),
  stop?: AbortSignal,
): Promise<void> {
  if (typeof signal === 'function') stop?.throwIfAborted();
  else signal.throwIfAborted();
  if (!stream.send(frame)) await stream.onDrain({ signal: typeof signal === 'function' ? signal() : signal });
}

function abortStream(stream: Stream, e: unknown): void {
  stream.abort(e instanceof Error ? e : new KmsError('TransportError', 'stream failed'));
}

// ---- response envelope --------------------------------------------------------------------------

type ErrorKind = 'KmsError' | 'DecodeError' | 'ProtocolError' | 'StateError' | 'InfraError';
const ERROR_CLASSES: Record<ErrorKind, typeof KmsError> = {
  KmsError,
  DecodeError,
  ProtocolError,
  StateError,
  InfraError,
};

function kindOf(e: KmsError): ErrorKind {
  if (e instanceof DecodeError) return 'DecodeError';
  if (e instanceof ProtocolError) return 'ProtocolError';
  if (e instanceof StateError) return 'StateError';
  if (e instanceof InfraError) return 'InfraError';
  return 'KmsError';
}

function encodeOk(body: Uint8Array): Uint8Array {
  return cborEncode({ v: ENVELOPE_VERSION, ok: true, body });
}

/**
 * A typed error as it crosses the wire, on its own (also inside a batched answer, net/rpc.ts
 * `sign-batch`): only code, message and culprits, `details` and `cause` stay on the node, except a
 * PolicyDenied's approvals still missing (`{pending: true, needs}`, node/request-guard.ts), which the
 * coordinator needs to open an approval request.
 */
export type WireError = {
  kind: string;
  code: string;
  message: string;
  culprits: Record<string, string>[];
  needs?: unknown;
};

export function errorToWire(e: KmsError): WireError {
  const culprits = e.culprits.map((b) => {
    const out: Record<string, string> = { participant: b.participant, reason: b.reason };
    if (b.round !== undefined) out.round = b.round;
    if (b.evidence !== undefined) out.evidence = b.evidence;
    return out;
  });
  const needs = e.code === 'PolicyDenied' && e.details?.['pending'] === true ? e.details['needs'] : undefined;
  return {
    kind: kindOf(e),
    code: e.code,
    message: e.message,
    culprits,
    ...(Array.isArray(needs) ? { needs } : {}),
  };
}

function encodeError(e: KmsError): Uint8Array {
  return cborEncode({ v: ENVELOPE_VERSION, ok: false, ...errorToWire(e) });
}

const MAX_NEEDS = 16;
const NAME_RE = /^[A-Za-z0-9._:@-]{1,128}$/;

/** A peer's `needs` list, bounded: groups, counts and the approvers it already counted. */
function decodeNeeds(v: unknown): { group: string; needed: number; have: string[] }[] | undefined {
  if (!Array.isArray(v) || v.length > MAX_NEEDS) return undefined;
  const out: { group: string; needed: number; have: string[] }[] = [];
  for (const n of v) {
    if (!isRecord(n) || typeof n.group !== 'string' || !NAME_RE.test(n.group)) return undefined;
    if (!Number.isSafeInteger(n.needed) || (n.needed as number) < 1 || (n.needed as number) > 1000)
      return undefined;
    const have = n.have;
    if (!Array.isArray(have) || have.length > 1000) return undefined;
    if (!have.every((h) => typeof h === 'string' && NAME_RE.test(h))) return undefined;
    out.push({ group: n.group, needed: n.needed as number, have: have as string[] });
  }
  return out;
}

function decodeResponse(frame: Uint8Array, peer: string): Uint8Array {
  const bad = (why: string) =>
    new DecodeError('DecodeError', `malformed response envelope from peer: ${why}`, { details: { peer } });
  let env: unknown;
  try {
    env = cborDecode(frame, { rejectDuplicateMapKeys: true, strict: true });
  } catch (e) {
    throw new DecodeError('DecodeError', 'response envelope is not valid CBOR', {
      details: { peer },
      cause: e,
    });
  }
  if (!isRecord(env) || env.v !== ENVELOPE_VERSION) throw bad('unknown version');
  if (env.ok === true) {
    if (!(env.body instanceof Uint8Array)) throw bad('body');
    return env.body;
  }
  if (env.ok !== false) throw bad('ok flag');
  throw errorFromWire(env, peer, 'malformed response envelope from peer');
}

/**
 * The typed error a peer sent (`errorToWire`), rebuilt with its class and code, its fields bounded;
 * a malformed one is a DecodeError naming the peer instead.
 */
export function errorFromWire(env: unknown, peer: string, what = 'malformed error from peer'): KmsError {
  const bad = (why: string) => new DecodeError('DecodeError', `${what}: ${why}`, { details: { peer } });
  if (!isRecord(env)) return bad('not an object');
  const { kind, code, message, culprits } = env;
  if (typeof kind !== 'string' || !Object.hasOwn(ERROR_CLASSES, kind)) return bad('error kind');
  if (typeof code !== 'string' || !/^[A-Za-z]{1,64}$/.test(code)) return bad('error code');
  if (typeof message !== 'string' || message.length > MAX_ERROR_MESSAGE) return bad('error message');
  if (!Array.isArray(culprits) || culprits.length > MAX_CULPRITS) return bad('culprits');
  const blames: Blame[] = [];
  for (const c of culprits as unknown[]) {
    if (!isRecord(c) || typeof c.participant !== 'string' || typeof c.reason !== 'string')
      return bad('culprit');
    const b: { participant: string; reason: BlameReason; round?: string; evidence?: string } = {
      participant: c.participant,
      reason: c.reason as BlameReason,
    };
    if (typeof c.round === 'string') b.round = c.round;
    if (typeof c.evidence === 'string') b.evidence = c.evidence;
    blames.push(b);
  }
  const Cls = ERROR_CLASSES[kind as ErrorKind];
  let pending: { pending: true; needs: NonNullable<ReturnType<typeof decodeNeeds>> } | undefined;
  if (code === 'PolicyDenied' && env.needs !== undefined) {
    const needs = decodeNeeds(env.needs);
    if (!needs) return bad('needs');
    pending = { pending: true, needs };
  }
  // The code comes from an allow-listed, authenticated peer; it is carried as-is.
  return new Cls(code as ErrorCode, message, { culprits: blames, details: { peer, ...pending } });
}

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v) && !(v instanceof Uint8Array);
}

// ---- per-peer outbound concurrency ---------------------------------------------------------------

/** FIFO counting semaphore: keeps our outbound concurrency under the peer's inbound limit. */
class Semaphore {
  private active = 0;
  private readonly waiters: Array<() => void> = [];
  private readonly limit: number;

  constructor(limit: number) {
    this.limit = limit;
  }

  /** Takes a free slot now, if there is one (then no one waits: waiters exist only when full). */
  tryAcquire(): boolean {
    if (this.active >= this.limit) return false;
    this.active++;
    return true;
  }

  acquire(signal: AbortSignal): Promise<void> {
    if (this.active < this.limit) {
      this.active++;
      return Promise.resolve();
    }
    if (signal.aborted) return Promise.reject(signal.reason);
    return new Promise<void>((resolve, reject) => {
      const grant = () => {
        signal.removeEventListener('abort', onAbort);
        this.active++;
        resolve();
      };
      const onAbort = () => {
        const i = this.waiters.indexOf(grant);
        if (i >= 0) this.waiters.splice(i, 1);
        reject(signal.reason);
      };
      signal.addEventListener('abort', onAbort, { once: true });
      this.waiters.push(grant);
    });
  }

  release(): void {
    this.active--;
    this.waiters.shift()?.();
  }
}
