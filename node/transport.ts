/**
 * The peer transport: libp2p over TCP, Noise and yamux, with one request/response exchange per
 * stream. ALL stream I/O of the service lives in this file, so a libp2p major version change
 * touches nothing else (libp2p 3: a Stream is a MessageStream with `send()`/events, no sink/source).
 *
 * Security properties, in the order a connection meets them:
 * - the allow-list is enforced by libp2p's connection gater right after the Noise handshake
 *   (denyInbound/OutboundEncryptedConnection) and before dialing (denyDialPeer), so an unknown
 *   peer never reaches protocol negotiation or a handler;
 * - handlers re-check the allow-list (second line, e.g. after `setAllowList` shrank it) and are
 *   given the Noise-authenticated peer id, never a claimed one;
 * - every frame is varint-length-prefixed and bounded by `maxMessageBytes`; the reader refuses an
 *   oversized length before reading its body and never buffers more than the limit;
 * - every stream operation (dial + protocol negotiation, write, read, handler) has a deadline;
 * - per-peer limits: libp2p resets streams beyond `maxInboundStreamsPerPeer`; handler calls beyond
 *   `maxConcurrentPerPeer` are answered with an `Overloaded` error frame.
 *
 * Wire format of one exchange: request = one frame holding the caller's bytes; response = one
 * frame holding a CBOR envelope, `{v:1, ok:true, body}` or `{v:1, ok:false, kind, code, message,
 * culprits}`, so a KmsError thrown by a remote handler is rethrown typed on the caller.
 */

import { noise } from '@chainsafe/libp2p-noise';
import { yamux } from '@chainsafe/libp2p-yamux';
import type { Connection, PeerId, PrivateKey, Stream } from '@libp2p/interface';
import { peerIdFromString } from '@libp2p/peer-id';
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
  for (const [name, v] of [
    ['maxMessageBytes', maxMessageBytes],
    ['timeoutMs', timeoutMs],
    ['handlerTimeoutMs', handlerTimeoutMs],
    ['maxInboundStreamsPerPeer', maxInboundStreams],
    ['maxConcurrentPerPeer', maxConcurrent],
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
      transports: [tcp()],
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
      },
    });
  } catch (e) {
    throw new InfraError('TransportError', 'could not start the libp2p transport', { cause: e });
  }
  const peerId = node.peerId.toString();
  log?.info({ peerId, addresses: node.getMultiaddrs().map(String) }, 'transport started');

  const stopController = new AbortController();
  const inbound = new Map<string, number>();
  const outbound = new Map<string, Semaphore>();

  const handleOpts = { maxInboundStreams, maxOutboundStreams: maxInboundStreams };

  /** Aborts a stream the remote never finishes closing, so it cannot hold a stream slot forever. */
  const reap = (stream: Stream) => {
    if (stream.status !== 'open') return;
    const timer = setTimeout(
      () => stream.abort(new KmsError('Timeout', 'stream not closed by the peer')),
      timeoutMs,
    );
    timer.unref();
    stream.addEventListener('close', () => clearTimeout(timer), { once: true });
  };

  async function serve(
    protocol: string,
    handler: Handler,
    stream: Stream,
    connection: Connection,
  ): Promise<void> {
    const from = connection.remotePeer.toString();
    const reply = async (envelope: Uint8Array) => {
      const signal = AbortSignal.any([AbortSignal.timeout(timeoutMs), stopController.signal]);
      await writeFrame(stream, envelope, signal);
      await stream.close({ signal });
      reap(stream);
    };
    const refuse = async (err: KmsError) => {
      // Whatever the caller sends is discarded unread; it learns why from the error frame.
      void stream.closeRead().catch(() => {});
      await reply(encodeError(err));
    };
    if (!isAllowed(from)) {
      log?.warn({ peer: from, protocol }, 'refused stream from peer not on the allow-list');
      await refuse(new KmsError('PeerNotAllowed', 'peer is not on the allow-list')).catch((e) =>
        abortStream(stream, e),
      );
      return;
    }
    const active = inbound.get(from) ?? 0;
    if (active >= maxConcurrent) {
      await refuse(new KmsError('Overloaded', 'too many concurrent requests from this peer')).catch((e) =>
        abortStream(stream, e),
      );
      return;
    }
    inbound.set(from, active + 1);
    // The caller resetting the stream (its deadline passed, it aborted) cancels the handler.
    const callerGone = new AbortController();
    const onClose = () => callerGone.abort(new KmsError('ProtocolAborted', 'caller closed the stream'));
    stream.addEventListener('close', onClose, { once: true });
    try {
      let request: Uint8Array;
      const readDeadline = AbortSignal.any([
        AbortSignal.timeout(timeoutMs),
        stopController.signal,
        callerGone.signal,
      ]);
      try {
        request = await readFrame(stream, maxMessageBytes, readDeadline);
      } catch (e) {
        const err = streamError(e, readDeadline, undefined, from);
        if (err.code === 'MessageTooLarge') {
          await refuse(err);
          return;
        }
        throw err;
      }
      let response: Uint8Array;
      const deadline = AbortSignal.any([
        AbortSignal.timeout(handlerTimeoutMs),
        stopController.signal,
        callerGone.signal,
      ]);
      try {
        response = encodeOk(
          await raceSignal(handler(from, request, { protocol, signal: deadline }), deadline),
        );
      } catch (e) {
        if (callerGone.signal.aborted) return;
        const err = isKmsError(e) ? e : deadline.aborted ? timeoutError(from) : null;
        if (err === null) {
          // A non-typed error may carry anything in its message; only its name leaves this node.
          log?.warn(
            { peer: from, protocol, error: e instanceof Error ? e.name : typeof e },
            'handler failed',
          );
        }
        response = encodeError(err ?? new KmsError('Internal', 'internal error in request handler'));
      }
      if (response.byteLength > maxMessageBytes) {
        response = encodeError(new KmsError('MessageTooLarge', 'response exceeds the maximum message size'));
      }
      await reply(response);
    } catch (e) {
      abortStream(stream, e);
    } finally {
      stream.removeEventListener('close', onClose);
      const n = (inbound.get(from) ?? 1) - 1;
      if (n === 0) inbound.delete(from);
      else inbound.set(from, n);
    }
  }

  function dialTarget(target: string): Multiaddr[] | PeerId {
    const entry = allow.get(target);
    if (entry === undefined || entry.length === 0) return peerIdFromString(target);
    return entry;
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
    // One fresh deadline per stream operation: (queueing +) dial + negotiation, write, read.
    const op = () => AbortSignal.any([AbortSignal.timeout(t), ...base]);

    let sem = outbound.get(target);
    if (sem === undefined) {
      sem = new Semaphore(maxConcurrent);
      outbound.set(target, sem);
    }
    let signal = op();
    try {
      await sem.acquire(signal);
    } catch (e) {
      throw streamError(e, signal, user, target);
    }
    let stream: Stream | undefined;
    let written = false;
    try {
      try {
        stream = await node.dialProtocol(dialTarget(target), protocol, {
          signal,
          maxOutboundStreams: maxInboundStreams,
        });
      } catch (e) {
        throw dialError(e, signal, user, target);
      }
      const s = stream;
      // Listen for the answer while writing: a peer that refuses the request (too large,
      // overloaded) answers before reading it all, and our write may never complete.
      const readTimeout = new AbortController();
      const readSignal = AbortSignal.any([readTimeout.signal, ...base]);
      let answer: Uint8Array | undefined;
      const reading = readFrame(s, maxMessageBytes, readSignal).then((f) => {
        answer = f;
      });
      const answered = reading.catch(() => {});
      signal = op();
      const writing = (async () => {
        await writeFrame(s, body, signal);
        await s.close({ signal });
        written = true;
      })();
      writing.catch(() => {});
      try {
        await Promise.race([writing, answered]);
      } catch (e) {
        // The peer may have answered and then dropped the rest of our write; give it one turn.
        await Promise.race([answered, new Promise((r) => setImmediate(r))]);
        if (answer === undefined) throw streamError(e, signal, user, target);
      }
      if (answer === undefined) {
        const timer = setTimeout(
          () => readTimeout.abort(new DOMException('read timed out', 'TimeoutError')),
          t,
        );
        try {
          await reading;
        } catch (e) {
          throw streamError(e, readSignal, user, target);
        } finally {
          clearTimeout(timer);
        }
      }
      if (answer === undefined) throw new KmsError('Internal', 'no response frame');
      return decodeResponse(answer, target);
    } catch (e) {
      const err = isKmsError(e) ? e : streamError(e, signal, user, target);
      if (stream !== undefined) abortStream(stream, err);
      throw err;
    } finally {
      if (stream !== undefined) {
        // Answered before our write finished: the rest of the request is moot.
        if (!written)
          abortStream(stream, new KmsError('ProtocolAborted', 'peer answered before the request was sent'));
        else reap(stream);
      }
      sem.release();
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
    (stream, connection) => serve(PROTOCOL_PING, async () => new Uint8Array(0), stream, connection),
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
        (stream, connection) => serve(protocol, handler, stream, connection),
        handleOpts,
      );
    },
    request,
    isReachable,
    async stop() {
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
  if (signal.aborted) return Promise.reject(signal.reason);
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

// ---- frames: varint length prefix + payload -------------------------------------------------------

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

async function writeFrame(stream: Stream, payload: Uint8Array, signal: AbortSignal): Promise<void> {
  signal.throwIfAborted();
  if (!stream.send(new Uint8ArrayList(encodeVarint(payload.byteLength), payload))) {
    await stream.onDrain({ signal });
  }
}

/**
 * Reads exactly one frame. The length is checked as soon as the prefix arrives: an oversized frame
 * is refused at once and the stream's readable end is closed, so the rest is discarded unread.
 * Never holds more than prefix + maxBytes.
 */
function readFrame(stream: Stream, maxBytes: number, signal: AbortSignal): Promise<Uint8Array> {
  return new Promise<Uint8Array>((resolve, reject) => {
    const buf = new Uint8ArrayList();
    let length: number | undefined;
    let prefix = 0;
    const cleanup = () => {
      stream.removeEventListener('message', onMessage);
      stream.removeEventListener('remoteCloseWrite', onEnd);
      stream.removeEventListener('close', onClose);
      signal.removeEventListener('abort', onAbort);
    };
    const fail = (e: unknown) => {
      cleanup();
      reject(e);
    };
    const eof = () =>
      new KmsError('TransportError', `stream ended after ${buf.byteLength} bytes, before a complete frame`);
    const onMessage = (evt: { data: Uint8Array | Uint8ArrayList }) => {
      buf.append(evt.data);
      try {
        if (length === undefined) {
          const parsed = decodeVarint(buf);
          if (parsed === undefined) return;
          [length, prefix] = parsed;
          if (length > maxBytes) {
            cleanup();
            void stream.closeRead().catch(() => {});
            reject(
              new KmsError('MessageTooLarge', `frame of ${length} bytes exceeds the limit of ${maxBytes}`),
            );
            return;
          }
        }
        if (buf.byteLength > prefix + length) {
          fail(new DecodeError('DecodeError', 'unexpected bytes after the frame'));
        } else if (buf.byteLength === prefix + length) {
          cleanup();
          resolve(buf.subarray(prefix));
        } else if (stream.remoteWriteStatus !== 'writable' && stream.readBufferLength === 0) {
          fail(eof());
        }
      } catch (e) {
        fail(e);
      }
    };
    const onEnd = () => fail(eof());
    const onClose = (evt: { error?: Error }) => fail(evt.error ?? eof());
    const onAbort = () => fail(signal.reason);
    if (signal.aborted) return reject(signal.reason);
    if (stream.remoteWriteStatus !== 'writable' && stream.readBufferLength === 0) return reject(eof());
    stream.addEventListener('message', onMessage);
    stream.addEventListener('remoteCloseWrite', onEnd);
    stream.addEventListener('close', onClose);
    signal.addEventListener('abort', onAbort, { once: true });
  });
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

/** Only code, message and culprits cross the wire: `details` and `cause` stay on the node. */
function encodeError(e: KmsError): Uint8Array {
  const culprits = e.culprits.map((b) => {
    const out: Record<string, string> = { participant: b.participant, reason: b.reason };
    if (b.round !== undefined) out.round = b.round;
    if (b.evidence !== undefined) out.evidence = b.evidence;
    return out;
  });
  return cborEncode({
    v: ENVELOPE_VERSION,
    ok: false,
    kind: kindOf(e),
    code: e.code,
    message: e.message,
    culprits,
  });
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
  const { kind, code, message, culprits } = env;
  if (typeof kind !== 'string' || !Object.hasOwn(ERROR_CLASSES, kind)) throw bad('error kind');
  if (typeof code !== 'string' || !/^[A-Za-z]{1,64}$/.test(code)) throw bad('error code');
  if (typeof message !== 'string' || message.length > MAX_ERROR_MESSAGE) throw bad('error message');
  if (!Array.isArray(culprits) || culprits.length > MAX_CULPRITS) throw bad('culprits');
  const blames: Blame[] = culprits.map((c: unknown) => {
    if (!isRecord(c) || typeof c.participant !== 'string' || typeof c.reason !== 'string')
      throw bad('culprit');
    const b: { participant: string; reason: BlameReason; round?: string; evidence?: string } = {
      participant: c.participant,
      reason: c.reason as BlameReason,
    };
    if (typeof c.round === 'string') b.round = c.round;
    if (typeof c.evidence === 'string') b.evidence = c.evidence;
    return b;
  });
  const Cls = ERROR_CLASSES[kind as ErrorKind];
  // The code comes from an allow-listed, authenticated peer; it is carried as-is.
  throw new Cls(code as ErrorCode, message, { culprits: blames, details: { peer } });
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
