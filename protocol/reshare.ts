/**
 * Resharing a key to a new committee and threshold, and the dealing engine it shares with
 * proactive refresh (protocol/refresh.ts).
 *
 * Verifiable secret redistribution (Desmedt–Jajodia 1997; Wong–Wang–Wing 2002): each of t old
 * members (the dealers) Shamir-shares its own old share s_i with a fresh degree t'-1 polynomial f_i
 * and Feldman commitments C_i. The new member j takes s'_j = Σ λ_i·f_i(j), with λ_i the Lagrange
 * coefficients of the dealer set at 0, so that Σ λ_i·f_i(0) = Σ λ_i·s_i = the old secret and the
 * group element is unchanged. Everyone checks C_i[0] against the dealer's old verifying share and
 * Σ λ_i·C_i[0] against the group element, so a dealer cannot change or lose the key (S-11).
 * The old threshold is an explicit input checked against the old package, never inferred from the
 * messages (S-06, the drand/kyber downgrade), and every commitment vector must have exactly t' entries.
 *
 * Rounds (every envelope bound to protocol, keySpec, keyId, sessionId and the NEW epoch):
 *   `<p>.deal`    dealer -> all (commitments) and dealer -> new member (sub-share, encrypted channel)
 *   `<p>.echo`    every party -> all: context digest, the digest of each dealer's broadcast and,
 *                 between nodes, that dealer's node signature of it (reliable-broadcast check: a
 *                 dealer who sent different commitments to different parties is caught here,
 *                 Kudelski-ING / S-11 a; an echoer who lies about a dealer is named instead of it,
 *                 protocol/signed-echo.ts)
 *   `<p>.confirm` new member -> all: Schnorr proof with the NEW share over the transcript hash and
 *                 the unchanged group element (protocol/confirm.ts); all of them form the certificate
 *                 that protocol/epoch.ts needs to activate the epoch (I5). The step that carries
 *                 a new member's confirmation carries a `persist-pending` effect with its new key.
 */
import type { FrostPublic, Key, RNG } from '@noble/curves/abstract/frost.js';
import { numberToBytesBE } from '@noble/curves/utils.js';
import { equalBytes, toHex, utf8ToBytes } from './bytes.ts';
import {
  assertBinding,
  encodeEnvelope,
  envelopeDigest,
  readBytes,
  readBytesArray,
  SIGNATURE_LENGTH,
} from './codec.ts';
import {
  type Confirmation,
  confirm,
  confirmationContext,
  hashTranscript,
  verifyConfirmation,
} from './confirm.ts';
import { decodeScalar } from './elements.ts';
import {
  type Blame,
  type BlameReason,
  DecodeError,
  asKmsError,
  misbehaved,
  ProtocolError,
  StateError,
} from './errors.ts';
import type { Certificate } from './epoch.ts';
import { type Backend, type Elem, type Group, groupOf, linearCombination, randomScalar } from './group.ts';
import type { Epoch, KeyId, ParticipantId, SessionId } from './ids.ts';
import type { Effect, Envelope, EnvelopeHeader, Machine, SignatureCheck, Step } from './machine.ts';
import {
  dealingPolynomial,
  evaluateCommitments,
  evaluatePolynomial,
  identifierScalar,
  lagrangeCoefficient,
  verifyFeldman,
} from './polynomial.ts';
import { duplicateConflict, type EchoCopy, echoMismatch, type ReceivedCopy } from './signed-echo.ts';
import type { KeySpec } from './suites.ts';

// ---------------------------------------------------------------------------------------------
// Message bodies (plain data: the codec serializes them; receivers re-validate every field)

export type DealBroadcastBody = { readonly commitments: readonly Uint8Array[] };
export type DealShareBody = { readonly share: Uint8Array };
export type EchoBody = {
  readonly context: Uint8Array;
  /** Per dealer (sorted): envelope digest of the dealer's broadcast as the echoer received it. */
  readonly digests: readonly Uint8Array[];
  /** Per dealer, between nodes: the dealer's signature of it (empty for the echoer's own dealing). */
  readonly signatures?: readonly Uint8Array[];
};
export type ConfirmBody = {
  readonly transcriptHash: Uint8Array;
  readonly groupElement: Uint8Array;
  readonly R: Uint8Array;
  readonly z: Uint8Array;
};
export type KeyEventBody = DealBroadcastBody | DealShareBody | EchoBody | ConfirmBody;

/** Outcome of refresh or reshare for one party. */
export type KeyEventResult = {
  readonly protocol: 'refresh' | 'reshare';
  readonly keyId: KeyId;
  readonly epoch: Epoch;
  /** The new share; absent for a dealer that is not in the new committee. */
  readonly key?: Key;
  readonly public: FrostPublic;
  readonly groupElement: Uint8Array;
  readonly transcriptHash: Uint8Array;
  readonly certificate: Certificate;
};

// ---------------------------------------------------------------------------------------------
// Dealing engine shared with refresh

/** How one kind of key event deals and combines; built by reshare/refresh from their configs. */
export type DealingPlan = {
  readonly protocol: 'refresh' | 'reshare';
  readonly spec: KeySpec;
  /** Group arithmetic (protocol/group.ts): native where the suite has a backend, else noble. */
  readonly group: Group;
  /** Randomness of the confirmation nonce (tests inject a seeded one); default CSPRNG. */
  readonly rng?: RNG;
  /** Checks forwarded node signatures (see DkgConfig.verify): set by the node, absent in-memory. */
  readonly verify?: SignatureCheck;
  readonly keyId: KeyId;
  readonly sessionId: SessionId;
  readonly self: ParticipantId;
  readonly newEpoch: Epoch;
  readonly dealers: readonly ParticipantId[];
  readonly receivers: readonly ParticipantId[];
  /** Exact number of commitments each dealer must send (S-06). */
  readonly commitmentLength: number;
  /** Power of x of commitments[0]: 1 for zero-sharings, which omit the identity C_0. */
  readonly firstPower: 0 | 1;
  /** Public parameters every party must agree on (hashed into the context digest and transcript). */
  readonly context: readonly Uint8Array[];
  /** Our dealing: coefficients (secret) and commitments; undefined when self is not a dealer. */
  readonly deal?: () => { coefficients: bigint[]; commitments: Elem[] };
  /** Extra per-dealer check on its commitments (e.g. constant term vs old verifying share). */
  readonly checkDealer: (dealer: ParticipantId, commitments: readonly Elem[]) => Blame | undefined;
  /** New share of self from the verified sub-shares (dealer -> f_dealer(self)). */
  readonly combineShare: (subShares: ReadonlyMap<ParticipantId, bigint>) => bigint;
  /** New public package from every dealer's commitments; throws ProtocolError if the key would change. */
  readonly combinePublic: (commitments: ReadonlyMap<ParticipantId, readonly Elem[]>) => FrostPublic;
};

type Phase = 'deal' | 'echo' | 'confirm' | 'done';

/** An echo as received: its body and its own signed copy (evidence if it lies). */
type EchoRecord = EchoBody & { readonly copy: EchoCopy };

export type KeyEventState = {
  readonly phase: Phase;
  readonly coefficients?: readonly bigint[];
  /** dealer -> decoded commitments, and our signed copy of its broadcast (digest: what echoes compare). */
  readonly commitments: ReadonlyMap<ParticipantId, readonly Elem[]>;
  readonly broadcasts: ReadonlyMap<ParticipantId, ReceivedCopy>;
  readonly subShares: ReadonlyMap<ParticipantId, bigint>;
  /** Digest and signature of each dealer's sub-share message: evidence, never the share (review I-1). */
  readonly subShareCopies: ReadonlyMap<ParticipantId, { digest: Uint8Array; signature?: Uint8Array }>;
  readonly verified: boolean;
  readonly echoes: ReadonlyMap<ParticipantId, EchoRecord>;
  readonly confirmations: ReadonlyMap<ParticipantId, ConfirmBody>;
  readonly newPublic?: FrostPublic;
  readonly newShare?: bigint;
  readonly transcriptHash?: Uint8Array;
};

const sortIds = (ids: readonly ParticipantId[]): ParticipantId[] => [...ids].sort();

function frameNumber(n: number): Uint8Array {
  return numberToBytesBE(n, 4);
}

function blame(participant: string, reason: BlameReason, round: string, evidence?: string): Blame {
  return evidence === undefined ? { participant, reason, round } : { participant, reason, round, evidence };
}

/** Our copy of a received envelope: header, envelope digest and (between nodes) signature. */
function copyOf(env: Envelope<unknown>): ReceivedCopy {
  const digest = envelopeDigest(encodeEnvelope(env as Envelope<Record<string, unknown>>));
  return env.signature
    ? { header: env.header, digest, signature: env.signature }
    : { header: env.header, digest };
}

/** The dealing engine as a Machine. */
export function dealingMachine(plan: DealingPlan): Machine<KeyEventState, KeyEventBody, KeyEventResult> {
  const { spec, self, protocol, group: grp } = plan;
  const dealers = sortIds(plan.dealers);
  const receivers = sortIds(plan.receivers);
  const parties = sortIds([...new Set([...dealers, ...receivers])]);
  const isDealer = dealers.includes(self);
  const isReceiver = receivers.includes(self);
  if (!isDealer && !isReceiver)
    throw new StateError('ValidationError', `${self} takes no part in this ${protocol}`);
  if (isDealer && !plan.deal)
    throw new StateError('ValidationError', `${self} is a dealer but has no old share`);
  const contextDigest = hashTranscript(`${protocol}.context`, plan.context);
  const R = { deal: `${protocol}.deal`, echo: `${protocol}.echo`, confirm: `${protocol}.confirm` };

  const header = (round: string, to: ParticipantId | '*'): EnvelopeHeader => ({
    version: 1,
    protocol,
    keySpec: spec.name,
    keyId: plan.keyId,
    sessionId: plan.sessionId,
    epoch: plan.newEpoch,
    round,
    from: self,
    to,
  });

  const checkHeader = (h: EnvelopeHeader) => {
    assertBinding(
      { header: h, body: undefined },
      {
        version: 1,
        protocol,
        keySpec: spec.name,
        keyId: plan.keyId,
        sessionId: plan.sessionId,
        epoch: plan.newEpoch,
      },
    );
    if (h.to !== '*' && h.to !== self)
      throw new DecodeError('ContextMismatch', 'message addressed to someone else');
    if (!parties.includes(h.from) || h.from === self) {
      throw misbehaved(`message from ${h.from}, who is not a party to this ${protocol}`, [
        blame(h.from, 'spoofed-sender', h.round),
      ]);
    }
  };

  /** Commitments of a dealer's broadcast, fully validated, or the blame. */
  const readDeal = (from: ParticipantId, body: unknown): Elem[] => {
    const raw = readBytesArray(body, 'commitments');
    // Exact length: a longer vector raises the threshold, a shorter one lowers it (S-06).
    if (raw.length !== plan.commitmentLength) {
      throw misbehaved(`dealer ${from} sent ${raw.length} commitments, expected ${plan.commitmentLength}`, [
        blame(from, 'wrong-vector-length', R.deal, String(raw.length)),
      ]);
    }
    let points: Elem[];
    try {
      points = raw.map((c, k) => grp.decode(c, `commitment ${k}`));
    } catch (e) {
      throw misbehaved(
        `dealer ${from} sent an invalid commitment`,
        [blame(from, 'invalid-element', R.deal)],
        {
          cause: String((e as Error).message),
        },
      );
    }
    const b = plan.checkDealer(from, points);
    if (b) throw misbehaved(`dealer ${from}: ${b.reason}`, [b]);
    return points;
  };

  const progress = (
    s: KeyEventState,
    out: Envelope<KeyEventBody>[],
  ): Step<KeyEventState, KeyEventBody, KeyEventResult> => {
    let st = s;
    const effects: Effect[] = [];
    const step = (x: { state: KeyEventState; out: Envelope<KeyEventBody>[]; done?: KeyEventResult }) =>
      effects.length > 0 ? { ...x, effects } : x;
    if (st.phase === 'deal') {
      const haveAll = dealers.every((d) => st.commitments.has(d) && (!isReceiver || st.subShares.has(d)));
      if (!haveAll) return { state: st, out };
      if (isReceiver) {
        const x = identifierScalar(spec, self);
        for (const d of dealers) {
          if (!verifyFeldman(spec, x, st.subShares.get(d)!, st.commitments.get(d)!, plan.firstPower, grp)) {
            throw misbehaved(`dealer ${d} sent ${self} a sub-share that does not match its commitments`, [
              blame(d, 'bad-share', R.deal, toHex(st.broadcasts.get(d)!.digest)),
            ]);
          }
        }
      }
      const digests = dealers.map((d) => st.broadcasts.get(d)!.digest);
      const body: EchoBody = { context: contextDigest, digests };
      if (plan.verify) {
        // Forward every dealer's signature, so that a lie about a dealer is provable.
        const signatures = dealers.map((d) => {
          if (d === self) return new Uint8Array(0);
          const sig = st.broadcasts.get(d)!.signature;
          if (!sig) throw new ProtocolError('ProtocolAborted', `${R.deal} of ${d} arrived unsigned`);
          return sig;
        });
        out.push({ header: header(R.echo, '*'), body: { ...body, signatures } });
      } else {
        out.push({ header: header(R.echo, '*'), body });
      }
      st = { ...st, phase: 'echo', verified: true };
    }
    if (st.phase === 'echo') {
      for (const [from, echo] of st.echoes) {
        if (!equalBytes(echo.context, contextDigest)) {
          // Someone runs this session with other parameters (old package, sets, thresholds): we
          // cannot tell who is wrong, so abort without blame.
          throw new ProtocolError(
            'ContextMismatch',
            `${from} runs this ${protocol} with different parameters`,
            {
              details: { from, theirs: toHex(echo.context), ours: toHex(contextDigest) },
            },
          );
        }
        dealers.forEach((d, i) => {
          const ours = st.broadcasts.get(d)!;
          const digest = echo.digests[i]!;
          if (equalBytes(ours.digest, digest)) return;
          const signature = echo.signatures?.[i];
          throw echoMismatch({
            self,
            reporter: from,
            sender: d,
            ours,
            theirs: signature && signature.length > 0 ? { digest, signature } : { digest },
            echo: echo.copy,
            round: R.deal,
            ...(plan.verify ? { verify: plan.verify } : {}),
          });
        });
      }
      if (!parties.every((p) => p === self || st.echoes.has(p))) return step({ state: st, out });
      const newPublic = plan.combinePublic(st.commitments);
      const groupElement = newPublic.commitments[0]!;
      const transcriptHash = hashTranscript(protocol, [
        ...plan.context,
        ...dealers.flatMap((d) => [utf8ToBytes(d), st.broadcasts.get(d)!.digest]),
        ...receivers.flatMap((r) => [utf8ToBytes(r), newPublic.verifyingShares[r]!]),
      ]);
      st = { ...st, phase: 'confirm', newPublic, transcriptHash };
      if (isReceiver) {
        const share = plan.combineShare(st.subShares);
        const vs = newPublic.verifyingShares[self]!;
        if (!grp.baseMul(share).equals(grp.trusted(vs))) {
          throw new ProtocolError('ProtocolAborted', 'new share does not match the new verifying share');
        }
        const ctx = confirmationContext({
          sessionId: plan.sessionId,
          participant: self,
          transcriptHash,
          groupElement,
          epoch: plan.newEpoch,
        });
        const nonce = () => spec.Point.Fn.toBytes(randomScalar(spec, plan.rng));
        const c = confirm(spec, share, vs, ctx, nonce, grp);
        const body: ConfirmBody = { transcriptHash, groupElement, R: c.R, z: c.z };
        out.push({ header: header(R.confirm, '*'), body });
        const confirmations = new Map(st.confirmations);
        confirmations.set(self, body);
        // The share is stored as pending before this confirmation leaves (the shell's effect).
        effects.push({
          kind: 'persist-pending',
          key: {
            public: newPublic,
            secret: { identifier: self, signingShare: spec.Point.Fn.toBytes(share) },
          } as Key,
        });
        // Sub-shares and coefficients are no longer needed: drop them from the state.
        st = { ...st, newShare: share, confirmations, subShares: new Map(), coefficients: [] };
      } else {
        st = { ...st, subShares: new Map(), coefficients: [] };
      }
    }
    if (st.phase === 'confirm') {
      const pub = st.newPublic!;
      const th = st.transcriptHash!;
      const g = pub.commitments[0]!;
      for (const [from, c] of st.confirmations) {
        if (from === self) continue;
        const ctx = confirmationContext({
          sessionId: plan.sessionId,
          participant: from,
          transcriptHash: th,
          groupElement: g,
          epoch: plan.newEpoch,
        });
        const ok =
          equalBytes(c.transcriptHash, th) &&
          equalBytes(c.groupElement, g) &&
          verifyConfirmation(spec, pub.verifyingShares[from]!, ctx, { R: c.R, z: c.z }, grp);
        if (!ok) {
          throw misbehaved(`confirmation from ${from} is invalid`, [
            blame(from, 'bad-confirmation', R.confirm, `${toHex(c.transcriptHash)}/${toHex(c.R)}`),
          ]);
        }
      }
      if (!receivers.every((r) => st.confirmations.has(r))) return step({ state: st, out });
      const confirmations: Record<ParticipantId, Confirmation> = {};
      for (const r of receivers) {
        const c = st.confirmations.get(r)!;
        confirmations[r] = { R: c.R, z: c.z };
      }
      const certificate: Certificate = {
        protocol,
        keyId: plan.keyId,
        sessionId: plan.sessionId,
        epoch: plan.newEpoch,
        transcriptHash: th,
        groupElement: g,
        confirmations,
      };
      const key: Key | undefined =
        st.newShare === undefined
          ? undefined
          : ({
              public: pub,
              secret: { identifier: self, signingShare: spec.Point.Fn.toBytes(st.newShare) },
            } as Key);
      const done: KeyEventResult = {
        protocol,
        keyId: plan.keyId,
        epoch: plan.newEpoch,
        public: pub,
        groupElement: g,
        transcriptHash: th,
        certificate,
        ...(key ? { key } : {}),
      };
      st = { ...st, phase: 'done', newShare: 0n };
      return step({ state: st, out, done });
    }
    return step({ state: st, out });
  };

  const receiveBody = (s: KeyEventState, env: Envelope<KeyEventBody>): KeyEventState => {
    const h = env.header;
    const from = h.from;
    if (h.round === R.deal && h.to === '*') {
      if (!dealers.includes(from))
        throw misbehaved(`${from} is not a dealer`, [blame(from, 'malformed-message', h.round)]);
      const points = readDeal(from, env.body);
      const copy = copyOf(env);
      const prev = s.broadcasts.get(from);
      if (prev) {
        if (equalBytes(prev.digest, copy.digest)) return s; // duplicate delivery: idempotent
        throw duplicateConflict(h, prev, copy);
      }
      return {
        ...s,
        commitments: new Map(s.commitments).set(from, points),
        broadcasts: new Map(s.broadcasts).set(from, copy),
      };
    }
    if (h.round === R.deal) {
      if (!dealers.includes(from) || !isReceiver) {
        throw misbehaved(`unexpected sub-share from ${from}`, [blame(from, 'malformed-message', h.round)]);
      }
      let share: bigint;
      try {
        share = decodeScalar(spec, readBytes(env.body, 'share'), 'sub-share', false);
      } catch {
        throw misbehaved(`dealer ${from} sent a malformed sub-share`, [
          blame(from, 'invalid-scalar', h.round),
        ]);
      }
      const prev = s.subShares.get(from);
      const copy = copyOf(env);
      if (prev !== undefined) {
        if (prev === share) return s;
        // Evidence: the two digests and signatures, never the sub-shares (review I-1).
        throw duplicateConflict(h, s.subShareCopies.get(from)!, copy);
      }
      if (s.phase !== 'deal')
        throw misbehaved(`late sub-share from ${from}`, [blame(from, 'malformed-message', h.round)]);
      return {
        ...s,
        subShares: new Map(s.subShares).set(from, share),
        subShareCopies: new Map(s.subShareCopies).set(from, copy),
      };
    }
    if (h.round === R.echo) {
      const bytes = encodeEnvelope(env as Envelope<Record<string, unknown>>);
      const echo: EchoRecord = {
        context: readBytes(env.body, 'context'),
        digests: readBytesArray(env.body, 'digests'),
        ...(plan.verify ? { signatures: readBytesArray(env.body, 'signatures', dealers.length) } : {}),
        copy: {
          header: h,
          digest: envelopeDigest(bytes),
          bytes,
          ...(env.signature ? { signature: env.signature } : {}),
        },
      };
      if (echo.digests.length !== dealers.length) {
        throw misbehaved(`echo from ${from} has ${echo.digests.length} digests`, [
          blame(from, 'wrong-vector-length', h.round),
        ]);
      }
      // One signature per dealer; the echoer's own dealing is signed by the echo itself (empty).
      echo.signatures?.forEach((sig, i) => {
        const want = dealers[i] === from ? 0 : SIGNATURE_LENGTH;
        if (sig.length !== want)
          throw new DecodeError('DecodeError', `body.signatures[${i}]: must be ${want} bytes`);
      });
      const prev = s.echoes.get(from);
      if (prev) {
        if (equalBytes(prev.copy.digest, echo.copy.digest)) return s;
        throw duplicateConflict(h, prev.copy, echo.copy);
      }
      return { ...s, echoes: new Map(s.echoes).set(from, echo) };
    }
    if (h.round === R.confirm) {
      if (!receivers.includes(from))
        throw misbehaved(`${from} is not a new member`, [blame(from, 'malformed-message', h.round)]);
      const c: ConfirmBody = {
        transcriptHash: readBytes(env.body, 'transcriptHash'),
        groupElement: readBytes(env.body, 'groupElement'),
        R: readBytes(env.body, 'R'),
        z: readBytes(env.body, 'z'),
      };
      const prev = s.confirmations.get(from);
      if (prev) {
        const same = (['transcriptHash', 'groupElement', 'R', 'z'] as const).every((k) =>
          equalBytes(prev[k], c[k]),
        );
        if (same) return s;
        throw misbehaved(`${from} sent two different confirmations`, [blame(from, 'equivocation', h.round)]);
      }
      return { ...s, confirmations: new Map(s.confirmations).set(from, c) };
    }
    throw misbehaved(`unknown round ${h.round}`, [blame(from, 'malformed-message', h.round)]);
  };

  return {
    self,
    start() {
      let st: KeyEventState = {
        phase: 'deal',
        commitments: new Map(),
        broadcasts: new Map(),
        subShares: new Map(),
        subShareCopies: new Map(),
        verified: false,
        echoes: new Map(),
        confirmations: new Map(),
      };
      const out: Envelope<KeyEventBody>[] = [];
      if (isDealer) {
        const { coefficients, commitments } = plan.deal!();
        const raw = commitments.map((p) => p.toBytes());
        const broadcast: Envelope<KeyEventBody> = { header: header(R.deal, '*'), body: { commitments: raw } };
        out.push(broadcast);
        for (const r of receivers) {
          const v = evaluatePolynomial(spec, coefficients, identifierScalar(spec, r));
          if (r === self) st = { ...st, subShares: new Map(st.subShares).set(self, v) };
          else out.push({ header: header(R.deal, r), body: { share: spec.Point.Fn.toBytes(v) } });
        }
        st = {
          ...st,
          commitments: new Map(st.commitments).set(self, commitments),
          broadcasts: new Map(st.broadcasts).set(self, copyOf(broadcast)),
        };
        coefficients.fill(0n);
      }
      return progress(st, out);
    },
    receive(state, env) {
      if (state.phase === 'done') return { state, out: [] };
      checkHeader(env.header);
      try {
        return progress(receiveBody(state, env), []);
      } catch (e) {
        if (!(e instanceof DecodeError)) throw asKmsError(e, 'Internal', `${protocol} failed`);
        // A body that does not decode, from an authenticated party, aborts the event with blame.
        throw misbehaved(`malformed ${env.header.round} message from ${env.header.from}`, [
          blame(env.header.from, 'malformed-message', env.header.round),
        ]);
      }
    },
  };
}

// ---------------------------------------------------------------------------------------------
// Reshare

export type ReshareConfig = {
  readonly spec: KeySpec;
  readonly keyId: KeyId;
  readonly sessionId: SessionId;
  readonly self: ParticipantId;
  readonly oldEpoch: Epoch;
  readonly newEpoch: Epoch;
  /** Threshold of the old epoch: an explicit input, checked against `oldPublic`, never inferred (S-06). */
  readonly oldThreshold: number;
  /** Public package of the old epoch, as the coordinator passed it. */
  readonly oldPublic: FrostPublic;
  /** Exactly `oldThreshold` members of the old committee who deal. */
  readonly dealers: readonly ParticipantId[];
  readonly newParticipants: readonly ParticipantId[];
  readonly newThreshold: number;
  /** Own share of the old epoch: required for a dealer, checked against `oldPublic` when given. */
  readonly oldKey?: Key;
  /** 'noble' runs the reference arithmetic (equality tests); default native where available. */
  readonly backend?: Backend;
  /** Randomness (tests inject a seeded one to compare backends); default CSPRNG. */
  readonly rng?: RNG;
  /** Checks forwarded node signatures (see DkgConfig.verify): set by the node, absent in-memory. */
  readonly verify?: SignatureCheck;
};

export function samePublic(a: FrostPublic, b: FrostPublic): boolean {
  if (a.signers.min !== b.signers.min || a.signers.max !== b.signers.max) return false;
  if (a.commitments.length !== b.commitments.length) return false;
  if (!a.commitments.every((c, i) => equalBytes(c, b.commitments[i]!))) return false;
  const ka = Object.keys(a.verifyingShares).sort();
  const kb = Object.keys(b.verifyingShares).sort();
  return (
    ka.length === kb.length &&
    ka.every((k, i) => k === kb[i] && equalBytes(a.verifyingShares[k]!, b.verifyingShares[k]!))
  );
}

/** Canonical bytes of a public package for transcript hashing. */
export function publicItems(pub: FrostPublic): Uint8Array[] {
  const ids = Object.keys(pub.verifyingShares).sort();
  return [
    frameNumber(pub.signers.min),
    frameNumber(pub.signers.max),
    frameNumber(pub.commitments.length),
    ...pub.commitments,
    ...ids.flatMap((id) => [utf8ToBytes(id), pub.verifyingShares[id]!]),
  ];
}

/** Verifying shares of `members` from the commitments of a polynomial. */
export function verifyingSharesFrom(
  spec: KeySpec,
  commitments: readonly Elem[],
  members: readonly string[],
  g: Group = groupOf(spec),
): Record<string, Uint8Array> {
  const out: Record<string, Uint8Array> = {};
  for (const m of members) {
    const Y = evaluateCommitments(spec, commitments, identifierScalar(spec, m), 0, g);
    if (Y.is0()) throw new ProtocolError('ProtocolAborted', `verifying share of ${m} would be the identity`);
    out[m] = Y.toBytes();
  }
  return out;
}

function validateIds(spec: KeySpec, ids: readonly string[], what: string): void {
  if (new Set(ids).size !== ids.length) throw new StateError('ValidationError', `${what} has duplicates`);
  for (const id of ids) {
    try {
      identifierScalar(spec, id);
      if (spec.Point.Fn.toBytes(identifierScalar(spec, id)).length !== spec.scalarLength) throw new Error();
    } catch {
      throw new StateError('ValidationError', `${what}: invalid identifier ${id}`);
    }
  }
}

/** Checks a reshare config before anything is sent (coordinator input, not peer messages). */
function validateReshare(cfg: ReshareConfig, g: Group): void {
  const { spec, oldPublic: op } = cfg;
  // S-06: the old threshold must be given and must agree with the old package everywhere.
  if (!Number.isSafeInteger(cfg.oldThreshold) || cfg.oldThreshold < 2) {
    throw new StateError('ValidationError', 'oldThreshold must be an integer >= 2');
  }
  if (op.signers.min !== cfg.oldThreshold || op.commitments.length !== cfg.oldThreshold) {
    throw new StateError('ValidationError', 'oldThreshold does not match the old public package');
  }
  if (cfg.dealers.length !== cfg.oldThreshold) {
    throw new StateError('ValidationError', `reshare needs exactly ${cfg.oldThreshold} dealers`);
  }
  if (
    !Number.isSafeInteger(cfg.newThreshold) ||
    cfg.newThreshold < 2 ||
    cfg.newThreshold > cfg.newParticipants.length
  ) {
    throw new StateError(
      'ValidationError',
      'newThreshold must be between 2 and the number of new participants',
    );
  }
  if (cfg.newEpoch <= cfg.oldEpoch) throw new StateError('EpochMismatch', 'newEpoch must follow oldEpoch');
  validateIds(spec, cfg.dealers, 'dealers');
  validateIds(spec, cfg.newParticipants, 'newParticipants');
  for (const d of cfg.dealers) {
    if (!op.verifyingShares[d])
      throw new StateError('ValidationError', `dealer ${d} is not in the old committee`);
  }
  // Members of the old committee hold the old package themselves: it must be the one passed in.
  if (cfg.oldKey) {
    if (!samePublic(cfg.oldKey.public, op)) {
      throw new StateError(
        'ContextMismatch',
        'oldPublic differs from the stored public package of the old epoch',
      );
    }
    if (cfg.oldKey.secret.identifier !== cfg.self)
      throw new StateError('ValidationError', 'oldKey belongs to another participant');
  }
  // The old package itself must interpolate to its group element at the dealer set.
  // Public data: one variable-time multiply per dealer.
  const Q = g.decode(op.commitments[0]!, 'group element');
  let acc = g.ZERO;
  for (const d of cfg.dealers) {
    const Y = g.decode(op.verifyingShares[d]!, 'old verifying share');
    acc = acc.add(Y.multiplyUnsafe(lagrangeCoefficient(spec, cfg.dealers, d)));
  }
  if (!acc.equals(Q))
    throw new StateError('ContextMismatch', 'old verifying shares do not interpolate to the group element');
}

export function reshareMachine(cfg: ReshareConfig): Machine<KeyEventState, KeyEventBody, KeyEventResult> {
  const g = groupOf(cfg.spec, cfg.backend);
  validateReshare(cfg, g);
  const { spec } = cfg;
  const Fn = spec.Point.Fn;
  const dealers = sortIds(cfg.dealers);
  const receivers = sortIds(cfg.newParticipants);
  const lambda = new Map(dealers.map((d) => [d, lagrangeCoefficient(spec, dealers, d)] as const));
  const groupElement = cfg.oldPublic.commitments[0]!;
  const Q = g.decode(groupElement, 'group element');
  const oldKey = cfg.oldKey;
  const context = [
    utf8ToBytes(`reshare/${spec.name}/${cfg.keyId}/${cfg.sessionId}`),
    frameNumber(cfg.oldEpoch),
    frameNumber(cfg.newEpoch),
    frameNumber(cfg.oldThreshold),
    frameNumber(cfg.newThreshold),
    ...publicItems(cfg.oldPublic),
    utf8ToBytes(dealers.join(',')),
    utf8ToBytes(receivers.join(',')),
  ];
  const plan: DealingPlan = {
    protocol: 'reshare',
    spec,
    group: g,
    ...(cfg.rng ? { rng: cfg.rng } : {}),
    ...(cfg.verify ? { verify: cfg.verify } : {}),
    keyId: cfg.keyId,
    sessionId: cfg.sessionId,
    self: cfg.self,
    newEpoch: cfg.newEpoch,
    dealers,
    receivers,
    commitmentLength: cfg.newThreshold,
    firstPower: 0,
    context,
    ...(oldKey && dealers.includes(cfg.self)
      ? {
          deal: () =>
            dealingPolynomial(spec, cfg.newThreshold, Fn.fromBytes(oldKey.secret.signingShare), g, cfg.rng),
        }
      : {}),
    checkDealer: (d, commitments) => {
      // The dealer shares exactly its old share: C_d[0] must be its old verifying share.
      // Decoded (and cached) by validateReshare: every dealer's old verifying share is valid.
      const Y = g.decode(cfg.oldPublic.verifyingShares[d]!, 'old verifying share');
      if (!commitments[0]!.equals(Y)) {
        return blame(d, 'wrong-group-key', 'reshare.deal', toHex(commitments[0]!.toBytes()));
      }
      return undefined;
    },
    combineShare: (sub) =>
      dealers.reduce((acc, d) => Fn.add(acc, Fn.mul(lambda.get(d)!, sub.get(d)!)), Fn.ZERO),
    combinePublic: (byDealer) => {
      const commitments: Elem[] = [];
      for (let k = 0; k < cfg.newThreshold; k++) {
        // Public inputs only: variable-time Σ λ_d·C_d,k.
        commitments.push(
          linearCombination(
            g,
            dealers.map((d) => byDealer.get(d)![k]!),
            dealers.map((d) => lambda.get(d)!),
          ),
        );
      }
      // The combined constant term is the group element, or the key would change (S-11 d).
      if (!commitments[0]!.equals(Q)) {
        throw new ProtocolError('ProtocolAborted', 'dealers’ commitments do not add up to the group element');
      }
      if (commitments.some((c) => c.is0()))
        throw new ProtocolError('ProtocolAborted', 'combined commitment is the identity');
      return {
        signers: { min: cfg.newThreshold, max: receivers.length },
        commitments: commitments.map((c) => c.toBytes()),
        verifyingShares: verifyingSharesFrom(spec, commitments, receivers, g),
      } as FrostPublic;
    },
  };
  if (dealers.includes(cfg.self) && !oldKey)
    throw new StateError('ValidationError', 'a dealer needs its old key');
  return dealingMachine(plan);
}
