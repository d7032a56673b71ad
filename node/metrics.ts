/**
 * Prometheus metrics of one node daemon, served on its admin port (node/health.ts). One registry
 * per node, so several nodes in one process (tests) keep their own counts. Labels are bounded:
 * protocol kinds, error codes, fixed refusal reasons; never key ids, session ids or peer ids.
 */
import { Counter, collectDefaultMetrics, Gauge, Histogram, Registry } from 'prom-client';
import { isKmsError } from '../protocol/errors.ts';
import type { ProtocolKind } from '../protocol/machine.ts';
import type { SealContext, Sealer } from './sealer.ts';

/** Why an inbound message was not processed. */
export type RefusedReason =
  /** From a peer that may not send it (an RPC from a node, a session message from a coordinator). */
  | 'not-allowed'
  /** It does not decode. */
  | 'malformed'
  /** For a session that already ended here. */
  | 'finished-session'
  /** From a node that is not a member of the session. */
  | 'non-member'
  /** Its `from` is not the participant the authenticated sender is. */
  | 'spoofed-sender'
  /** Its header names another key, key spec, protocol or recipient than the session's. */
  | 'foreign-session'
  /** An exact copy of a message already processed (retransmission or replay). */
  | 'duplicate'
  /** For a session not started here that the coordinator did not announce (or not with the sender). */
  | 'unannounced-session'
  /** Early messages beyond the byte budget or announced sessions beyond their bound. */
  | 'over-budget';

/** The refusal an error thrown at an inbound message stands for; undefined: not a refusal. */
function refusalOf(e: unknown): RefusedReason | undefined {
  if (!isKmsError(e)) return undefined;
  switch (e.code) {
    case 'PeerNotAllowed':
      return 'not-allowed';
    case 'DecodeError':
    case 'MessageTooLarge':
    case 'UnsupportedVersion':
      return 'malformed';
    case 'ContextMismatch':
      return 'unannounced-session';
    case 'Overloaded':
      return 'over-budget';
    default:
      return undefined;
  }
}

/** The part of NodeMetrics the session layer counts with. */
export type RefusalCounter = { refuse(reason: RefusedReason): void };

const LATENCY_BUCKETS = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5];
const SESSION_BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60];

/** The outcome label of a failed operation: its stable error code (a bounded set). */
function outcomeOf(e: unknown): string {
  return isKmsError(e) ? e.code : 'Internal';
}

export class NodeMetrics implements RefusalCounter {
  readonly registry = new Registry();
  readonly sessions = new Counter({
    name: 'kms_node_sessions_total',
    help: "This node's part in sessions (dkg, refresh, reshare, repair; sign = signing round two) by outcome: ok or the error code",
    labelNames: ['protocol', 'outcome'] as const,
    registers: [this.registry],
  });
  readonly sessionDuration = new Histogram({
    name: 'kms_node_session_duration_seconds',
    help: "Duration of this node's part in a session, by protocol",
    labelNames: ['protocol'] as const,
    buckets: SESSION_BUCKETS,
    registers: [this.registry],
  });
  #nonceCount: () => number = () => 0;
  readonly noncesOutstanding: Gauge = new Gauge({
    name: 'kms_node_nonces_outstanding',
    help: 'Signing nonce pairs committed (round one) and not yet used or expired',
    registers: [this.registry],
    collect: (): void => this.noncesOutstanding.set(this.#nonceCount()),
  });
  readonly sealOperations = new Counter({
    name: 'kms_node_seal_operations_total',
    help: 'Seal and unseal operations of the HSM or software sealer, by outcome: ok or the error code',
    labelNames: ['operation', 'outcome'] as const,
    registers: [this.registry],
  });
  readonly sealDuration = new Histogram({
    name: 'kms_node_seal_duration_seconds',
    help: 'Latency of seal and unseal operations',
    labelNames: ['operation'] as const,
    buckets: LATENCY_BUCKETS,
    registers: [this.registry],
  });
  readonly messagesRefused = new Counter({
    name: 'kms_node_messages_refused_total',
    help: 'Inbound messages not processed, by reason',
    labelNames: ['reason'] as const,
    registers: [this.registry],
  });

  constructor() {
    collectDefaultMetrics({ register: this.registry, prefix: 'kms_node_' });
  }

  /** Counts a session's outcome and duration when `run` settles; returns `run` unchanged. */
  observeSession<T>(protocol: ProtocolKind, run: Promise<T>): Promise<T> {
    const end = this.sessionDuration.startTimer({ protocol });
    return run.then(
      (r) => {
        end();
        this.sessions.inc({ protocol, outcome: 'ok' });
        return r;
      },
      (e: unknown) => {
        end();
        this.sessions.inc({ protocol, outcome: outcomeOf(e) });
        throw e;
      },
    );
  }

  refuse(reason: RefusedReason): void {
    this.messagesRefused.inc({ reason });
  }

  /** Runs `take` (accepting one inbound message); counts what it throws if that is a refusal. */
  refusing<T>(take: () => T): T {
    try {
      return take();
    } catch (e) {
      const reason = refusalOf(e);
      if (reason !== undefined) this.refuse(reason);
      throw e;
    }
  }

  /** The nonce gauge reads `count` at each scrape. */
  watchNonces(count: () => number): void {
    this.#nonceCount = count;
  }

  async #timed<T>(operation: 'seal' | 'unseal', op: () => Promise<T>): Promise<T> {
    const end = this.sealDuration.startTimer({ operation });
    try {
      const r = await op();
      this.sealOperations.inc({ operation, outcome: 'ok' });
      return r;
    } catch (e) {
      this.sealOperations.inc({ operation, outcome: outcomeOf(e) });
      throw e;
    } finally {
      end();
    }
  }

  /**
   * The same sealer, with every seal and unseal counted and timed. A proxy, so whatever else the
   * sealer offers passes through untouched (bound to the sealer itself).
   */
  instrument<S extends Sealer>(sealer: S): S {
    const seal = (ctx: SealContext, plaintext: Uint8Array) =>
      this.#timed('seal', () => sealer.seal(ctx, plaintext));
    const unseal = (ctx: SealContext, sealed: Uint8Array) =>
      this.#timed('unseal', () => sealer.unseal(ctx, sealed));
    return new Proxy(sealer, {
      get(target, prop) {
        if (prop === 'seal') return seal;
        if (prop === 'unseal') return unseal;
        const v = Reflect.get(target, prop, target);
        return typeof v === 'function' ? v.bind(target) : v;
      },
    });
  }
}
