/**
 * Share repair: t helpers rebuild the share of a committee member who lost it, without revealing
 * their own shares or the key (repairable threshold scheme, Laing–Stinson, ePrint 2017/1155, in the
 * form ZF FROST's `keys/repairable.rs` implements):
 *   1. helper i splits λ_i·s_i, with λ_i the Lagrange coefficient of i over the helper set evaluated
 *      at the target's identifier, into random deltas δ_i,j (one per helper j) and sends δ_i,j to j;
 *   2. helper j sends σ_j = Σ_i δ_i,j to the target;
 *   3. the target takes s_r = Σ_j σ_j = Σ_i λ_i·s_i = f(r), and checks s_r·G against its verifying
 *      share in the public package.
 * Added for blame (not in the paper or ZF): helper i also broadcasts D_i,j = δ_i,j·G. Everyone checks
 * Σ_j D_i,j = λ_i·Y_i (the deltas add up to i's weighted share), helper j checks δ_i,j against D_i,j,
 * the target checks σ_j·G = Σ_i D_i,j, and σ carries the digests of the broadcasts its sender saw
 * with their senders' node signatures, so a helper who equivocates is named, and a helper who lies
 * about another is named instead of it (protocol/signed-echo.ts). The points reveal nothing beyond
 * the public Y_i under DL.
 *
 * The share is the one of the current epoch: envelopes carry that epoch, and no epoch change follows
 * (the other members' shares are unchanged). Rounds: `repair.delta`, `repair.sigma`.
 */
import type { FrostPublic, Key, RNG } from '@noble/curves/abstract/frost.js';
import { equalBytes, toHex } from './bytes.ts';
import {
  assertBinding,
  encodeEnvelope,
  envelopeDigest,
  readBytes,
  readBytesArray,
  SIGNATURE_LENGTH,
} from './codec.ts';
import { decodeScalar } from './elements.ts';
import {
  asKmsError,
  type Blame,
  type BlameReason,
  DecodeError,
  misbehaved,
  ProtocolError,
  StateError,
} from './errors.ts';
import { type Backend, type Elem, groupOf, randomScalar } from './group.ts';
import type { Epoch, KeyId, ParticipantId, SessionId } from './ids.ts';
import type { Envelope, EnvelopeHeader, Machine, SignatureCheck, Step } from './machine.ts';
import { identifierScalar, lagrangeCoefficient, sumScalars } from './polynomial.ts';
import { samePublic } from './reshare.ts';
import { duplicateConflict, echoMismatch, type ReceivedCopy } from './signed-echo.ts';
import type { KeySpec } from './suites.ts';

export type RepairConfig = {
  readonly spec: KeySpec;
  readonly keyId: KeyId;
  readonly sessionId: SessionId;
  readonly self: ParticipantId;
  /** Epoch of the share being repaired (the key's active epoch). */
  readonly epoch: Epoch;
  /** Public package of that epoch (the target keeps it; it is public). */
  readonly public: FrostPublic;
  /** Exactly `public.signers.min` members, not including the target. */
  readonly helpers: readonly ParticipantId[];
  readonly target: ParticipantId;
  /** Own share: required for a helper. */
  readonly key?: Key;
  /** 'noble' runs the reference arithmetic (equality tests); default native where available. */
  readonly backend?: Backend;
  /** Randomness of the deltas (tests inject a seeded one to compare backends); default CSPRNG. */
  readonly rng?: RNG;
  /** Checks forwarded node signatures (see DkgConfig.verify): set by the node, absent in-memory. */
  readonly verify?: SignatureCheck;
};

export type RepairDeltaBroadcast = { readonly commitments: readonly Uint8Array[] };
export type RepairDeltaShare = { readonly delta: Uint8Array };
export type RepairSigma = {
  readonly sigma: Uint8Array;
  /** Per helper (sorted): envelope digest of its delta broadcast, as the sender of σ received it. */
  readonly digests: readonly Uint8Array[];
  /** Per helper, between nodes: its signature of that broadcast (empty for the sender's own). */
  readonly signatures?: readonly Uint8Array[];
};
export type RepairBody = RepairDeltaBroadcast | RepairDeltaShare | RepairSigma;

/** A helper finishes once its σ is sent; the target finishes with its recovered key. */
export type RepairResult = { readonly role: 'helper' } | { readonly role: 'target'; readonly key: Key };

type SigmaRecord = {
  readonly sigma: bigint;
  readonly digests: readonly Uint8Array[];
  readonly signatures?: readonly Uint8Array[];
  readonly copy: ReceivedCopy;
};

export type RepairState = {
  readonly phase: 'collect' | 'done';
  readonly ownDeltas?: ReadonlyMap<ParticipantId, bigint>;
  readonly commitments: ReadonlyMap<ParticipantId, readonly Elem[]>;
  /** Our signed copy of each helper's delta broadcast (digest: what σ messages are compared with). */
  readonly broadcasts: ReadonlyMap<ParticipantId, ReceivedCopy>;
  readonly deltas: ReadonlyMap<ParticipantId, bigint>;
  /** Digest and signature of each helper's delta message: evidence, never the delta (review I-1). */
  readonly deltaCopies: ReadonlyMap<ParticipantId, ReceivedCopy>;
  readonly sigmas: ReadonlyMap<ParticipantId, SigmaRecord>;
};

/** Our copy of a received envelope: header, envelope digest and (between nodes) signature. */
function copyOf(env: Envelope<unknown>): ReceivedCopy {
  const digest = envelopeDigest(encodeEnvelope(env as Envelope<Record<string, unknown>>));
  return env.signature
    ? { header: env.header, digest, signature: env.signature }
    : { header: env.header, digest };
}

/**
 * Step 1 (ZF `repair_share_step_1`): split λ_i·s_i into one random delta per helper. The last
 * delta makes them add up; the others come from noble's scalar sampler (protocol/group.ts).
 */
export function repairDeltas(
  spec: KeySpec,
  helpers: readonly string[],
  self: string,
  target: string,
  share: bigint,
  rng?: RNG,
): Map<string, bigint> {
  const Fn = spec.Point.Fn;
  const lambda = lagrangeCoefficient(spec, helpers, self, identifierScalar(spec, target));
  const out = new Map<string, bigint>();
  let rest = Fn.mul(lambda, share);
  const sorted = [...helpers].sort();
  sorted.forEach((h, i) => {
    if (i === sorted.length - 1) {
      out.set(h, rest);
    } else {
      const r = randomScalar(spec, rng);
      out.set(h, r);
      rest = Fn.sub(rest, r);
    }
  });
  return out;
}

/** Step 2 (ZF `repair_share_step_2`, "sum of random values"): σ_j = Σ_i δ_i,j. */
export function repairSigma(spec: KeySpec, deltas: readonly bigint[]): bigint {
  return sumScalars(spec, deltas);
}

/** Step 3 (ZF `repair_share_step_3`): the recovered share s_r = Σ_j σ_j. */
export function recoverShare(spec: KeySpec, sigmas: readonly bigint[]): bigint {
  return sumScalars(spec, sigmas);
}

function blame(participant: string, reason: BlameReason, round: string, evidence?: string): Blame {
  return evidence === undefined ? { participant, reason, round } : { participant, reason, round, evidence };
}

export function repairMachine(cfg: RepairConfig): Machine<RepairState, RepairBody, RepairResult> {
  const { spec, self, target } = cfg;
  const pub = cfg.public;
  const Fn = spec.Point.Fn;
  // Deltas, sigmas and shares (secret) only meet the constant-time baseMul; the rest is public.
  const g = groupOf(spec, cfg.backend);
  const helpers = [...cfg.helpers].sort() as ParticipantId[];
  if (new Set(helpers).size !== helpers.length || helpers.length !== pub.signers.min) {
    throw new StateError('ValidationError', `repair needs exactly ${pub.signers.min} distinct helpers`);
  }
  if (helpers.includes(target))
    throw new StateError('ValidationError', 'the target cannot help repair its own share');
  for (const id of [...helpers, target]) {
    if (!pub.verifyingShares[id])
      throw new StateError('ValidationError', `${id} is not a member of this epoch`);
  }
  const isHelper = helpers.includes(self);
  if (!isHelper && self !== target)
    throw new StateError('ValidationError', `${self} takes no part in this repair`);
  if (isHelper) {
    if (!cfg.key || cfg.key.secret.identifier !== self)
      throw new StateError('ValidationError', 'a helper needs its own key');
    if (!samePublic(cfg.key.public, pub)) {
      throw new StateError('ContextMismatch', 'public package differs from the stored one of this epoch');
    }
  }
  const xr = identifierScalar(spec, target);
  const lambda = new Map(helpers.map((h) => [h, lagrangeCoefficient(spec, helpers, h, xr)] as const));
  const ROUND_DELTA = 'repair.delta';
  const ROUND_SIGMA = 'repair.sigma';
  const parties = [...helpers, target];

  const header = (round: string, to: ParticipantId | '*'): EnvelopeHeader => ({
    version: 1,
    protocol: 'repair',
    keySpec: spec.name,
    keyId: cfg.keyId,
    sessionId: cfg.sessionId,
    epoch: cfg.epoch,
    round,
    from: self,
    to,
  });
  const readBroadcast = (from: ParticipantId, body: unknown): Elem[] => {
    const raw = readBytesArray(body, 'commitments');
    if (raw.length !== helpers.length) {
      throw misbehaved(`helper ${from} sent ${raw.length} delta commitments`, [
        blame(from, 'wrong-vector-length', ROUND_DELTA, String(raw.length)),
      ]);
    }
    let points: Elem[];
    try {
      points = raw.map((c) => g.decode(c, 'delta commitment'));
    } catch {
      throw misbehaved(`helper ${from} sent an invalid delta commitment`, [
        blame(from, 'invalid-element', ROUND_DELTA),
      ]);
    }
    const sum = points.reduce((a, p) => a.add(p), g.ZERO);
    const want = g.trusted(pub.verifyingShares[from]!).multiplyUnsafe(lambda.get(from)!);
    if (!sum.equals(want)) {
      throw misbehaved(`helper ${from}'s deltas do not add up to its weighted verifying share`, [
        blame(from, 'wrong-group-key', ROUND_DELTA, toHex(sum.toBytes())),
      ]);
    }
    return points;
  };

  const progress = (
    s: RepairState,
    out: Envelope<RepairBody>[],
  ): Step<RepairState, RepairBody, RepairResult> => {
    const allBroadcasts = helpers.every((h) => s.commitments.has(h));
    if (!allBroadcasts) return { state: s, out };
    const idx = new Map(helpers.map((h, i) => [h, i] as const));
    if (isHelper) {
      if (!helpers.every((h) => s.deltas.has(h))) return { state: s, out };
      const j = idx.get(self)!;
      for (const h of helpers) {
        if (!g.baseMul(s.deltas.get(h)!).equals(s.commitments.get(h)![j]!)) {
          throw misbehaved(`helper ${h} sent ${self} a delta that does not match its commitment`, [
            blame(h, 'bad-share', ROUND_DELTA, toHex(s.broadcasts.get(h)!.digest)),
          ]);
        }
      }
      const sigma = repairSigma(
        spec,
        helpers.map((h) => s.deltas.get(h)!),
      );
      const body: RepairSigma = {
        sigma: Fn.toBytes(sigma),
        digests: helpers.map((h) => s.broadcasts.get(h)!.digest),
      };
      if (cfg.verify) {
        // Forward every helper's signature, so that a lie about a helper is provable.
        const signatures = helpers.map((h) => {
          if (h === self) return new Uint8Array(0);
          const sig = s.broadcasts.get(h)!.signature;
          if (!sig) throw new ProtocolError('ProtocolAborted', `${ROUND_DELTA} of ${h} arrived unsigned`);
          return sig;
        });
        out.push({ header: header(ROUND_SIGMA, target), body: { ...body, signatures } });
      } else {
        out.push({ header: header(ROUND_SIGMA, target), body });
      }
      return {
        state: { ...s, phase: 'done', deltas: new Map(), ownDeltas: new Map() },
        out,
        done: { role: 'helper' },
      };
    }
    // Target.
    for (const [from, got] of s.sigmas) {
      helpers.forEach((h, i) => {
        const ours = s.broadcasts.get(h)!;
        const digest = got.digests[i]!;
        if (equalBytes(digest, ours.digest)) return;
        const signature = got.signatures?.[i];
        // σ is secret: the evidence shows the σ message's signed digest, never its bytes.
        throw echoMismatch({
          self,
          reporter: from,
          sender: h,
          ours,
          theirs: signature && signature.length > 0 ? { digest, signature } : { digest },
          echo: got.copy,
          round: ROUND_DELTA,
          ...(cfg.verify ? { verify: cfg.verify } : {}),
        });
      });
      const j = idx.get(from)!;
      const want = helpers.reduce((a, h) => a.add(s.commitments.get(h)![j]!), g.ZERO);
      if (!g.baseMul(got.sigma).equals(want)) {
        throw misbehaved(`helper ${from} sent a sigma that does not match the delta commitments`, [
          blame(from, 'bad-share', ROUND_SIGMA),
        ]);
      }
    }
    if (!helpers.every((h) => s.sigmas.has(h))) return { state: s, out };
    const share = recoverShare(
      spec,
      helpers.map((h) => s.sigmas.get(h)!.sigma),
    );
    if (!g.baseMul(share).equals(g.trusted(pub.verifyingShares[target]!))) {
      throw new ProtocolError('ProtocolAborted', 'recovered share does not match the verifying share');
    }
    const key = { public: pub, secret: { identifier: target, signingShare: Fn.toBytes(share) } } as Key;
    return { state: { ...s, phase: 'done', sigmas: new Map() }, out, done: { role: 'target', key } };
  };

  const receiveBody = (s: RepairState, env: Envelope<RepairBody>): RepairState => {
    const h = env.header;
    const from = h.from;
    if (!helpers.includes(from))
      throw misbehaved(`${from} is not a helper`, [blame(from, 'spoofed-sender', h.round)]);
    if (h.round === ROUND_DELTA && h.to === '*') {
      const points = readBroadcast(from, env.body);
      const copy = copyOf(env);
      const prev = s.broadcasts.get(from);
      if (prev) {
        if (equalBytes(prev.digest, copy.digest)) return s;
        throw duplicateConflict(h, prev, copy);
      }
      return {
        ...s,
        commitments: new Map(s.commitments).set(from, points),
        broadcasts: new Map(s.broadcasts).set(from, copy),
      };
    }
    if (h.round === ROUND_DELTA && isHelper) {
      let delta: bigint;
      try {
        delta = decodeScalar(spec, readBytes(env.body, 'delta'), 'delta', false);
      } catch {
        throw misbehaved(`helper ${from} sent a malformed delta`, [blame(from, 'invalid-scalar', h.round)]);
      }
      const prev = s.deltas.get(from);
      const copy = copyOf(env);
      if (prev !== undefined) {
        if (prev === delta) return s;
        // Evidence: digests and signatures of the two messages, never the deltas (review I-1).
        throw duplicateConflict(h, s.deltaCopies.get(from)!, copy);
      }
      return {
        ...s,
        deltas: new Map(s.deltas).set(from, delta),
        deltaCopies: new Map(s.deltaCopies).set(from, copy),
      };
    }
    if (h.round === ROUND_SIGMA && self === target) {
      let sigma: bigint;
      try {
        sigma = decodeScalar(spec, readBytes(env.body, 'sigma'), 'sigma', false);
      } catch {
        throw misbehaved(`helper ${from} sent a malformed sigma`, [blame(from, 'invalid-scalar', h.round)]);
      }
      const digests = readBytesArray(env.body, 'digests');
      if (digests.length !== helpers.length) {
        throw misbehaved(`sigma from ${from} lists ${digests.length} digests`, [
          blame(from, 'wrong-vector-length', h.round),
        ]);
      }
      const signatures = cfg.verify ? readBytesArray(env.body, 'signatures', helpers.length) : undefined;
      signatures?.forEach((sig, i) => {
        const want = helpers[i] === from ? 0 : SIGNATURE_LENGTH;
        if (sig.length !== want)
          throw new DecodeError('DecodeError', `body.signatures[${i}]: must be ${want} bytes`);
      });
      const copy = copyOf(env);
      const prev = s.sigmas.get(from);
      if (prev) {
        if (equalBytes(prev.copy.digest, copy.digest)) return s;
        throw duplicateConflict(h, prev.copy, copy);
      }
      const record: SigmaRecord = { sigma, digests, copy, ...(signatures ? { signatures } : {}) };
      return { ...s, sigmas: new Map(s.sigmas).set(from, record) };
    }
    throw misbehaved(`unexpected ${h.round} message from ${from}`, [
      blame(from, 'malformed-message', h.round),
    ]);
  };

  return {
    self,
    start() {
      let st: RepairState = {
        phase: 'collect',
        commitments: new Map(),
        broadcasts: new Map(),
        deltas: new Map(),
        deltaCopies: new Map(),
        sigmas: new Map(),
      };
      const out: Envelope<RepairBody>[] = [];
      if (isHelper) {
        const share = Fn.fromBytes(cfg.key!.secret.signingShare);
        const deltas = repairDeltas(spec, helpers, self, target, share, cfg.rng);
        const raw = helpers.map((h) => g.baseMul(deltas.get(h)!).toBytes());
        const broadcast: Envelope<RepairBody> = {
          header: header(ROUND_DELTA, '*'),
          body: { commitments: raw },
        };
        out.push(broadcast);
        for (const h of helpers) {
          if (h !== self)
            out.push({ header: header(ROUND_DELTA, h), body: { delta: Fn.toBytes(deltas.get(h)!) } });
        }
        st = {
          ...st,
          commitments: new Map([[self, raw.map((r) => g.trusted(r))]]),
          broadcasts: new Map([[self, copyOf(broadcast)]]),
          deltas: new Map([[self, deltas.get(self)!]]),
        };
      }
      return progress(st, out);
    },
    receive(state, env) {
      if (state.phase === 'done') return { state, out: [] };
      assertBinding(env, {
        version: 1,
        protocol: 'repair',
        keySpec: spec.name,
        keyId: cfg.keyId,
        sessionId: cfg.sessionId,
        epoch: cfg.epoch,
      });
      if (env.header.to !== '*' && env.header.to !== self) {
        throw new DecodeError('ContextMismatch', 'message addressed to someone else');
      }
      if (!parties.includes(env.header.from) || env.header.from === self) {
        throw misbehaved(`message from ${env.header.from}, who is not a party`, [
          blame(env.header.from, 'spoofed-sender', env.header.round),
        ]);
      }
      try {
        return progress(receiveBody(state, env), []);
      } catch (e) {
        if (!(e instanceof DecodeError)) throw asKmsError(e, 'Internal', 'repair failed');
        throw misbehaved(`malformed ${env.header.round} message from ${env.header.from}`, [
          blame(env.header.from, 'malformed-message', env.header.round),
        ]);
      }
    },
  };
}
