/**
 * Runs one participant's protocol machine (protocol/machine.ts) over the network: the session
 * layer of the node daemon. It provides what the pure machines assume:
 * - a ready barrier: messages that arrive before the local session starts are held only for
 *   sessions the coordinator announced, only from their members, within byte budgets and a deadline
 *   (node/early-buffer.ts); anything else is refused with a typed error;
 * - context binding: an envelope is delivered only if its header names this session, key, key spec
 *   and protocol, and its `from` is the participant the Noise-authenticated sender really is
 *   (a spoofed sender is dropped and named);
 * - signatures: every envelope leaves signed by this node's identity key (protocol/codec.ts
 *   `signEnvelope`), and one is delivered only if it carries a signature by the key of the
 *   Noise-authenticated sender's peer id; an unsigned or badly signed one is dropped, its sender
 *   named. Machines get the same check (`signatureCheck`) for the signatures echoes forward;
 * - duplicates and replays of finished or foreign sessions are dropped;
 * - a deadline (monotonic clock): when it passes, the session aborts naming the members that did
 *   not send in the last round anyone reached;
 * - a signed abort (node/session-abort.ts): a session that fails here for any reason of its own
 *   (a failed persist, the machine's verdict, the deadline) is announced at once to the other
 *   members, who end theirs naming this node `aborted`; `abandon` does the same for a session that
 *   failed before its machine started;
 * - a hook before sending, given each step with its effects (protocol/machine.ts `Effect`), so the
 *   caller can persist a pending share before the confirmation leaves.
 */
import { TL } from '../common/timeline.ts';
import { sha256 } from '@noble/hashes/sha2.js';
import { checkEnvelopeSignature, decodeEnvelope, encodeEnvelope, signEnvelope } from '../protocol/codec.ts';
import { bytesToHex } from '../protocol/bytes.ts';
import { type Blame, KmsError, ProtocolError, isKmsError } from '../protocol/errors.ts';
import type { ParticipantId } from '../protocol/ids.ts';
import type { Envelope, Machine, ProtocolKind, SignatureCheck, Step } from '../protocol/machine.ts';
import type { KeySpecName } from '../protocol/suites.ts';
import { EarlyBuffer, type EarlyLimits, type EarlyStats } from './early-buffer.ts';
import { abortEnvelope, abortRound, abortedError, isReceivedAbort, readAbort } from './session-abort.ts';
import type { RefusalCounter } from './metrics.ts';

export type SessionMember = { readonly nodeId: string; readonly participant: ParticipantId };

export type SessionContext = {
  readonly sessionId: string;
  readonly keyId: string;
  readonly keySpec: KeySpecName;
  readonly protocol: ProtocolKind;
  /** Every member the machine may talk to (for reshare: old dealers and new members). */
  readonly members: readonly SessionMember[];
  readonly self: SessionMember;
  readonly timeoutMs: number;
  /** The epoch the session's envelopes carry (its abort's header); default 0 (a DKG's). */
  readonly epoch?: number;
};

export type SendFn = (nodeId: string, frame: Uint8Array) => Promise<void>;

/** Signs with this node's identity key (net/identity.ts `identitySigner`). */
export type SignFn = (message: Uint8Array) => Uint8Array;
/** Checks a signature by a node's identity key (net/identity.ts `nodeSignatureVerifier`). */
export type NodeVerifyFn = (nodeId: string, message: Uint8Array, signature: Uint8Array) => boolean;

/** Called with each step before its messages leave; awaiting it delays sending (persist first). */
export type BeforeSend = (step: Step<any, any, any>) => Promise<void>;

type Active = {
  ctx: SessionContext;
  deliver: (from: string, env: Envelope<any>) => void;
};

const FINISHED_MEMORY = 4096;

export class SessionRunner {
  readonly #send: SendFn;
  readonly #sign: SignFn;
  readonly #verify: NodeVerifyFn;
  readonly #log: { warn: (o: object, msg: string) => void; debug: (o: object, msg: string) => void };
  readonly #active = new Map<string, Active>();
  readonly #early: EarlyBuffer;
  readonly #finished = new Set<string>();
  readonly #refusals: RefusalCounter | undefined;

  constructor(opts: {
    send: SendFn;
    /** Signs every outgoing envelope (the node identity key). */
    sign: SignFn;
    /** Checks every incoming envelope's signature against its sender node's identity key. */
    verify: NodeVerifyFn;
    log: { warn: (o: object, msg: string) => void; debug: (o: object, msg: string) => void };
    /** Bounds of the early-message buffer (defaults: node/early-buffer.ts). */
    early?: Partial<EarlyLimits>;
    /** Clock of the early-message buffer (monotonic ms); tests pass their own. */
    now?: () => number;
    /** Counts the messages this layer drops (node/metrics.ts). */
    refusals?: RefusalCounter;
  }) {
    this.#send = opts.send;
    this.#sign = opts.sign;
    this.#verify = opts.verify;
    this.#log = opts.log;
    this.#refusals = opts.refusals;
    this.#early = new EarlyBuffer({
      ...(opts.early ? { limits: opts.early } : {}),
      ...(opts.now ? { now: opts.now } : {}),
    });
  }

  /** What the early-message buffer holds and has refused (to watch its bounds). */
  get earlyStats(): EarlyStats {
    return this.#early.stats;
  }

  /**
   * The coordinator announces a session before asking any member to start it (`prepare` RPC):
   * until it starts here, messages for it from `members` (node ids) are held, for at most `ttlMs`.
   */
  announce(sessionId: string, members: readonly string[], ttlMs: number): void {
    if (this.#finished.has(sessionId)) {
      throw new KmsError('Conflict', `session ${sessionId} was already run on this node`);
    }
    if (this.#active.has(sessionId)) return;
    this.#early.announce(sessionId, members, ttlMs);
  }

  /** Forgets held early messages and stops the buffer's sweep timer (the node stops). */
  close(): void {
    this.#early.clear();
  }

  get activeCount(): number {
    return this.#active.size;
  }

  /**
   * The pure signature check a machine gets in its config (protocol/machine.ts SignatureCheck):
   * a signature by `members`' participant, checked against that node's identity key.
   */
  signatureCheck(members: readonly SessionMember[]): SignatureCheck {
    const nodeOf = new Map(members.map((m) => [m.participant as string, m.nodeId]));
    const verify = this.#verify;
    return (participant, message, signature) => {
      const nodeId = nodeOf.get(participant);
      return nodeId !== undefined && verify(nodeId, message, signature);
    };
  }

  /** Inbound frame from `fromNodeId` (resolved from the Noise-authenticated peer id). */
  onFrame(fromNodeId: string, frame: Uint8Array): void {
    const env = decodeEnvelope(frame); // DecodeError -> the transport answers the sender with it
    const sid = env.header.sessionId;
    if (this.#finished.has(sid)) {
      this.#refusals?.refuse('finished-session');
      this.#log.debug({ sessionId: sid, from: fromNodeId }, 'dropped message for a finished session');
      return;
    }
    const active = this.#active.get(sid);
    if (active) {
      active.deliver(fromNodeId, env);
      return;
    }
    // Ready barrier: the local start request may still be on its way. Held only if announced and
    // within budget; a refusal (ContextMismatch, Overloaded) goes back to the sender as a typed error.
    try {
      this.#early.hold(sid, fromNodeId, frame);
    } catch (e) {
      this.#log.debug(
        {
          sessionId: sid,
          from: fromNodeId,
          code: isKmsError(e) ? e.code : 'Internal',
          bytes: frame.byteLength,
        },
        'early message refused',
      );
      throw e;
    }
  }

  /** Runs the machine to completion. Rejects with ProtocolError (culprits) or Timeout. */
  run<R>(ctx: SessionContext, machine: Machine<any, any, R>, beforeSend?: BeforeSend): Promise<R> {
    if (this.#active.has(ctx.sessionId) || this.#finished.has(ctx.sessionId)) {
      return Promise.reject(
        new KmsError('Conflict', `session ${ctx.sessionId} was already run on this node`),
      );
    }
    const byNode = new Map(ctx.members.map((m) => [m.nodeId, m]));
    const byParticipant = new Map(ctx.members.map((m) => [m.participant as string, m]));
    const seen = new Set<string>();
    const spokeIn = new Map<string, Set<string>>(); // round -> participants heard from
    let lastRound: string | undefined;
    let state: unknown;
    let queue: Promise<void> = Promise.resolve();
    const sendChains = new Map<string, Promise<void>>();

    return new Promise<R>((resolve, reject) => {
      let settled = false;
      const finish = (err: unknown, result?: R) => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        this.#active.delete(ctx.sessionId);
        this.#remember(ctx.sessionId);
        if (err === undefined) resolve(result as R);
        else {
          // Failed here: the others hear it now, not at their deadline (an abort received is not echoed).
          if (!isReceivedAbort(err)) this.#broadcastAbort(ctx, err);
          reject(err);
        }
      };
      // The members not heard from in the last round anyone reached: who the session waits for.
      const silent = (): Blame[] => {
        const culprits: Blame[] = [];
        if (lastRound !== undefined) {
          const heard = spokeIn.get(lastRound) ?? new Set();
          for (const m of ctx.members) {
            if (m.nodeId !== ctx.self.nodeId && !heard.has(m.participant)) {
              culprits.push({ participant: m.nodeId, reason: 'unresponsive', round: lastRound });
            }
          }
        } else {
          for (const m of ctx.members) {
            if (m.nodeId !== ctx.self.nodeId)
              culprits.push({ participant: m.nodeId, reason: 'unresponsive' });
          }
        }
        return culprits;
      };
      const timer = setTimeout(() => {
        finish(
          new ProtocolError('Timeout', `session ${ctx.sessionId} did not finish within ${ctx.timeoutMs} ms`, {
            culprits: silent(),
          }),
        );
      }, ctx.timeoutMs);

      const emit = async (step: Step<any, any, R>) => {
        state = step.state;
        TL?.(
          `node emit ${[...new Set(step.out.map((e) => e.header.round))].join(',')}${step.done !== undefined ? ' DONE' : ''}`,
        );
        if (beforeSend && (step.out.length > 0 || (step.effects?.length ?? 0) > 0)) await beforeSend(step);
        const sends: Promise<void>[] = [];
        for (const env of step.out) {
          const frame = signEnvelope(env as Envelope<Record<string, unknown>>, this.#sign);
          const targets =
            env.header.to === '*'
              ? ctx.members.filter((m) => m.nodeId !== ctx.self.nodeId)
              : [byParticipant.get(env.header.to)].filter((m): m is SessionMember => m !== undefined);
          for (const t of targets) {
            // Per-peer chains keep each peer's messages in order; peers proceed independently.
            const prev = sendChains.get(t.nodeId) ?? Promise.resolve();
            const next = prev.then(() =>
              this.#send(t.nodeId, frame).catch((e: unknown) => {
                // A peer that already sent us its own message of this round has finished the round
                // (e.g. it had every confirmation and then went away): our copy only mattered for
                // its own completion, so this session goes on. Otherwise fail fast, naming it.
                if (spokeIn.get(env.header.round)?.has(t.participant)) {
                  this.#log.warn(
                    { sessionId: ctx.sessionId, to: t.nodeId, round: env.header.round },
                    'late delivery failure to a peer that had finished the round',
                  );
                  return;
                }
                throw new ProtocolError('ProtocolAborted', `could not deliver to ${t.nodeId}`, {
                  culprits: [{ participant: t.nodeId, reason: 'unresponsive', round: env.header.round }],
                  cause: e,
                });
              }),
            );
            sendChains.set(t.nodeId, next);
            sends.push(next);
          }
        }
        if (step.done !== undefined) {
          // Done means delivered: every message this member ever sent in the session (e.g. its
          // confirmation) has reached its peers before the caller sees success.
          await Promise.all([...sends, ...sendChains.values()]);
          TL?.('node all sent');
          finish(undefined, step.done);
          return;
        }
        // Not awaited: one slow or frozen peer must not hold up the messages of the others (head
        // of line), or the deadline would find nothing processed and blame every member. A failed
        // delivery still aborts the session, naming that peer.
        Promise.all(sends).catch((e: unknown) =>
          finish(isKmsError(e) ? e : new KmsError('Internal', 'session failed', { cause: e })),
        );
      };

      const deliver = (fromNodeId: string, env: Envelope<any>) => {
        queue = queue
          .then(async () => {
            if (settled) return;
            const sender = byNode.get(fromNodeId);
            const h = env.header;
            if (!sender) {
              this.#refusals?.refuse('non-member');
              this.#log.warn(
                { sessionId: ctx.sessionId, from: fromNodeId },
                'message from a non-member dropped',
              );
              return;
            }
            if (h.from !== sender.participant) {
              // The Noise-authenticated peer claims to be someone else: drop, name it.
              this.#refusals?.refuse('spoofed-sender');
              this.#log.warn(
                { sessionId: ctx.sessionId, from: fromNodeId, claimed: h.from },
                'spoofed sender dropped',
              );
              return;
            }
            if (
              h.keyId !== ctx.keyId ||
              h.keySpec !== ctx.keySpec ||
              h.protocol !== ctx.protocol ||
              (h.to !== '*' && h.to !== ctx.self.participant)
            ) {
              this.#refusals?.refuse('foreign-session');
              this.#log.warn(
                { sessionId: ctx.sessionId, from: fromNodeId, round: h.round },
                'foreign message dropped',
              );
              return;
            }
            try {
              checkEnvelopeSignature(env, (m, sig) => this.#verify(fromNodeId, m, sig));
            } catch (e) {
              // Not signed by the authenticated sender's identity key: dropped, its sender named.
              this.#refusals?.refuse('malformed');
              this.#log.warn(
                {
                  sessionId: ctx.sessionId,
                  from: fromNodeId,
                  round: h.round,
                  signature: isKmsError(e) ? e.details?.signature : undefined,
                },
                'message with a missing or bad signature dropped',
              );
              return;
            }
            const digest = bytesToHex(sha256(encodeEnvelope(env as Envelope<Record<string, unknown>>)));
            if (seen.has(digest)) return this.#refusals?.refuse('duplicate'); // retransmission or replay
            seen.add(digest);
            if (h.round === abortRound(ctx.protocol)) {
              if (h.epoch !== (ctx.epoch ?? 0)) {
                this.#refusals?.refuse('foreign-session');
                this.#log.warn(
                  { sessionId: ctx.sessionId, from: fromNodeId },
                  'abort for another epoch dropped',
                );
                return;
              }
              let abort: ReturnType<typeof readAbort>;
              try {
                abort = readAbort(env.body as Record<string, unknown>, new Set(byNode.keys()));
              } catch (e) {
                throw blameSender(e, fromNodeId, h.round, byParticipant);
              }
              // The sender's deadline passed: the session stalled for everyone, so this member names
              // whom it waits for too, as its own deadline would a moment later.
              const own =
                abort.code === 'Timeout' ? silent().filter((b) => b.participant !== fromNodeId) : [];
              finish(abortedError(fromNodeId, env as Envelope<Record<string, unknown>>, abort, own));
              return;
            }
            let round = spokeIn.get(h.round);
            if (!round) {
              round = new Set();
              spokeIn.set(h.round, round);
            }
            round.add(h.from);
            lastRound = h.round;
            let step: Step<any, any, R>;
            TL?.(`node recv ${h.round} from ${fromNodeId}`);
            try {
              step = machine.receive(state, env);
            } catch (e) {
              throw blameSender(e, fromNodeId, h.round, byParticipant);
            }
            await emit(step);
          })
          .catch((e: unknown) =>
            finish(isKmsError(e) ? e : new KmsError('Internal', 'session failed', { cause: e })),
          );
      };

      this.#active.set(ctx.sessionId, { ctx, deliver });
      queue = queue
        .then(async () => {
          await emit(machine.start());
        })
        .catch((e: unknown) =>
          finish(isKmsError(e) ? e : new KmsError('Internal', 'session failed', { cause: e })),
        );
      // Queued now, behind the start and ahead of anything that arrives from here on: held
      // messages are delivered in arrival order. They decoded when they arrived, so they decode again.
      for (const m of this.#early.take(ctx.sessionId)) deliver(m.from, decodeEnvelope(m.frame));
    });
  }

  /**
   * This member will not run `ctx` (it failed before its machine started, e.g. it could not read
   * its share or record the session): its peers are told at once with a signed abort. Nothing
   * happens for a session that runs or ran here (the run announces its own failure).
   */
  abandon(ctx: SessionContext, err: unknown): void {
    if (this.#active.has(ctx.sessionId) || this.#finished.has(ctx.sessionId)) return;
    this.#early.take(ctx.sessionId); // held messages of a session that will not run here
    this.#remember(ctx.sessionId);
    this.#broadcastAbort(ctx, err);
  }

  /** Sends the signed abort of `ctx` to every other member; best effort, never awaited. */
  #broadcastAbort(ctx: SessionContext, err: unknown): void {
    let frame: Uint8Array;
    try {
      frame = signEnvelope(abortEnvelope({ ...ctx, epoch: ctx.epoch ?? 0 }, err), this.#sign);
    } catch (e) {
      this.#log.warn({ sessionId: ctx.sessionId, err: String(e) }, 'could not sign the session abort');
      return;
    }
    for (const m of ctx.members) {
      if (m.nodeId === ctx.self.nodeId) continue;
      this.#send(m.nodeId, frame).catch((e: unknown) =>
        this.#log.debug(
          { sessionId: ctx.sessionId, to: m.nodeId, err: String(e) },
          'session abort not delivered',
        ),
      );
    }
  }

  #remember(sessionId: string): void {
    this.#finished.add(sessionId);
    if (this.#finished.size > FINISHED_MEMORY) {
      const oldest = this.#finished.values().next().value;
      if (oldest !== undefined) this.#finished.delete(oldest);
    }
  }
}

/**
 * A machine's verdict on one message, in node ids: its culprits are FROST identifiers, which the
 * coordinator and operators cannot map back to nodes. A DecodeError carries no culprit, but the
 * message came over an authenticated channel from `fromNodeId`, so the malformed message is that
 * node's (threats F-20: inside a session, abort naming the culprit).
 */
function blameSender(
  e: unknown,
  fromNodeId: string,
  round: string,
  byParticipant: Map<string, SessionMember>,
): KmsError {
  if (!isKmsError(e)) return new KmsError('Internal', 'session failed', { cause: e });
  if (e.culprits.length === 0) {
    return new ProtocolError(
      'ParticipantMisbehaved',
      `malformed ${round} message from ${fromNodeId}: ${e.message}`,
      {
        culprits: [{ participant: fromNodeId, reason: 'malformed-message', round }],
        cause: e,
      },
    );
  }
  const culprits = e.culprits.map((b) => ({
    ...b,
    participant: byParticipant.get(b.participant)?.nodeId ?? b.participant,
  }));
  const Cls = e.constructor as new (...a: ConstructorParameters<typeof KmsError>) => KmsError;
  return new Cls(e.code, e.message, {
    culprits,
    ...(e.details ? { details: { ...e.details } } : {}),
    cause: e,
  });
}
