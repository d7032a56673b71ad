/**
 * Distributed key generation as an explicit state machine of typed rounds, on top of noble's
 * Pedersen/FROST DKG (`frost.DKG.round1/2/3`, Komlo–Goldberg KeyGen, ePrint 2020/852 §5.1).
 *
 *   dkg.r1      broadcast  VSS commitment vector (t points), noble's proof of knowledge of the
 *                          constant term, and a second Schnorr proof for the same secret bound to
 *                          session, key, suite, committee and sender (noble's PoK binds only the
 *                          identifier, so a round-1 package could be replayed: threats S-04 (c)).
 *   dkg.r2      p2p        the sender's polynomial evaluated at the recipient (secret: encrypted channel).
 *   dkg.echo    broadcast  per sender, the digest of the dkg.r1 message received from it and that
 *                          sender's node signature of it: a dealer who sent different commitments to
 *                          different parties is caught (S-05, invariant I4), and an echoer who lies
 *                          about a third party is named instead of it (protocol/signed-echo.ts).
 *   dkg.confirm broadcast  a proof with the NEW share over the transcript hash and group element
 *                          (protocol/confirm.ts). The result exists only when every participant's
 *                          confirmation verifies, so either all honest parties end with the same group
 *                          key or all abort (invariant I5).
 *
 * The rounds run on protocol/fast-dkg.ts (noble's DKG restated on libsodium / libsecp256k1 for
 * FROST_ED25519 and FROST_SECP256K1_TR, byte for byte equal: test/fast-dkg.test.ts) and noble's own
 * `frost.DKG` for the other suites or with `backend: 'noble'`; blame on failure is found with noble.
 * 3-of-5 summed CPU: ~400 -> ~25 ms (Ed25519), ~115 -> ~17 ms (secp256k1-TR).
 *
 * Failures are ProtocolError('ParticipantMisbehaved') naming the culprit with public evidence
 * (digests and signatures; never a dkg.r2 body, which is a secret sub-share: review I-1).
 * The step that carries this member's confirmation also carries a `persist-pending` effect with
 * its new key, so the shell stores the share before the confirmation leaves.
 * Messages that arrive for a later round are buffered. The state object is owned by the machine:
 * `receive` updates it in place and returns it (noble's DKG secret package is mutable anyway).
 */
import type { DKG_Round1, DKG_Secret, Key, RNG } from '@noble/curves/abstract/frost.js';
import { numberToBytesBE } from '@noble/curves/utils.js';
import { concatBytes, equalBytes, fromHex, toHex, utf8ToBytes } from './bytes.ts';
import {
  assertBinding,
  encodeEnvelope,
  envelopeDigest,
  readBytes,
  readBytesArray,
  readMap,
  SIGNATURE_LENGTH,
} from './codec.ts';
import {
  type Confirmation,
  confirm,
  confirmationContext,
  hashTranscript,
  verifyConfirmation,
} from './confirm.ts';
import { decodeElement, decodeIdentifier, decodeScalar } from './elements.ts';
import { type Blame, type BlameReason, DecodeError, KmsError, ProtocolError, misbehaved } from './errors.ts';
import { dkgRounds } from './fast-dkg.ts';
import { type Backend, groupOf, randomScalar } from './group.ts';
import { asEpoch, type KeyId, type ParticipantId, type SessionId } from './ids.ts';
import type { Effect, Envelope, EnvelopeHeader, Machine, SignatureCheck, Step } from './machine.ts';
import { duplicateConflict, echoMismatch } from './signed-echo.ts';
import { type KeySpec, publicKeyFromGroupElement } from './suites.ts';

export const DKG_ROUNDS = ['dkg.r1', 'dkg.r2', 'dkg.echo', 'dkg.confirm'] as const;
export type DkgRound = (typeof DKG_ROUNDS)[number];
export type DkgBody = Record<string, unknown>;

export type DkgConfig = {
  readonly spec: KeySpec;
  readonly keyId: KeyId;
  readonly sessionId: SessionId;
  readonly self: ParticipantId;
  /** The whole committee, including `self`. */
  readonly participants: readonly ParticipantId[];
  readonly threshold: number;
  /**
   * Group arithmetic: 'native' (default; protocol/fast-dkg.ts where the suite has a fast backend)
   * or 'noble' (noble's own DKG, the reference the equality tests run beside it).
   */
  readonly backend?: Backend;
  /** Randomness source (tests inject a seeded one to compare backends); default CSPRNG. */
  readonly rng?: RNG;
  /**
   * Checks the node signatures that echoes forward. The node always sets it: every echo must then
   * carry the senders' signatures, and a mismatch is decided with proof. Without it (in-memory
   * runs) echoes carry digests only, and a mismatch about a third party blames that party.
   */
  readonly verify?: SignatureCheck;
};

export type DkgResult = {
  /** noble's key package: public (commitments, verifying shares) and this participant's secret share. */
  readonly key: Key;
  /** Serialized group element (`key.public.commitments[0]`). */
  readonly groupElement: Uint8Array;
  /** The API encoding of the group key (publicKeyFromGroupElement). */
  readonly publicKey: Uint8Array;
  readonly transcriptHash: Uint8Array;
  /** Every participant's confirmation proof (including our own), all verified. */
  readonly confirmations: Readonly<Record<ParticipantId, Confirmation>>;
};

type R1 = {
  readonly pkg: DKG_Round1;
  readonly proof: Confirmation;
  readonly header: EnvelopeHeader;
  /** SHA-256 of the encoded dkg.r1 envelope (codec envelopeDigest): what the echo round compares. */
  readonly digest: Uint8Array;
  /** The sender's node signature of it, as the shell checked it (none for our own). */
  readonly signature?: Uint8Array;
  readonly encoded: Uint8Array;
};

type Echo = {
  readonly digests: ReadonlyMap<ParticipantId, Uint8Array>;
  /** Per sender other than the echoer: the sender's signature the echoer forwards (signed mode). */
  readonly signatures: ReadonlyMap<ParticipantId, Uint8Array>;
  readonly header: EnvelopeHeader;
  readonly digest: Uint8Array;
  readonly signature?: Uint8Array;
  readonly bytes: Uint8Array;
};

/** First copy of a message: digest and signature, to tell a retransmission from a conflicting one. */
type Seen = { readonly digest: Uint8Array; readonly signature?: Uint8Array | undefined };

export type DkgState = {
  phase: 'r1' | 'r2' | 'confirm' | 'done';
  secret: DKG_Secret;
  readonly r1: Map<ParticipantId, R1>;
  readonly r2: Map<ParticipantId, Uint8Array>;
  readonly echo: Map<ParticipantId, Echo>;
  readonly confirm: Map<ParticipantId, Confirmation>;
  /** The first copy of every message received, to tell a retransmission from a conflicting duplicate. */
  readonly seen: Map<string, Seen>;
  key?: Key;
  transcriptHash?: Uint8Array;
};

const DIGEST_LENGTH = 32;

/** Context of the session-bound round-1 proof: everything the run is for, plus the sender. */
function r1ProofContext(cfg: DkgConfig, sender: ParticipantId, constantTerm: Uint8Array): Uint8Array {
  const setup = hashTranscript('dkg.r1.proof', [
    utf8ToBytes(cfg.spec.name),
    utf8ToBytes(cfg.keyId),
    numberToBytesBE(cfg.threshold, 4),
    ...sortIds(cfg.spec, cfg.participants).map((p) => utf8ToBytes(p)),
  ]);
  return confirmationContext({
    sessionId: cfg.sessionId,
    participant: sender,
    transcriptHash: setup,
    groupElement: constantTerm,
    epoch: 0,
  });
}

/** Participants in identifier order (numeric order of the scalar, as noble sorts them). */
export function sortIds<T extends string>(spec: KeySpec, ids: readonly T[]): T[] {
  const Fn = spec.Point.Fn;
  const num = (id: string) => Fn.fromBytes(fromHex(id, 'identifier'));
  return [...ids].sort((a, b) => {
    const x = num(a);
    const y = num(b);
    return x < y ? -1 : x > y ? 1 : 0;
  });
}

function blameFor(e: DecodeError): BlameReason {
  if (e.code === 'InvalidElement') return 'invalid-element';
  if (e.code === 'InvalidScalar') return 'invalid-scalar';
  return 'malformed-message';
}

function validateConfig(cfg: DkgConfig): void {
  const { spec, participants, threshold, self } = cfg;
  const n = participants.length;
  if (!Number.isSafeInteger(threshold) || threshold < 2 || threshold > n) {
    throw new KmsError('ValidationError', `threshold must be in [2, ${n}]`);
  }
  const seen = new Set<string>();
  for (const p of participants) {
    decodeIdentifier(spec, p, 'participant');
    if (seen.has(p)) throw new DecodeError('InvalidIdentifier', 'participants: duplicate identifier');
    seen.add(p);
  }
  if (!seen.has(self)) throw new KmsError('ValidationError', 'self must be one of the participants');
}

/** The DKG machine of one participant. */
export function dkgMachine(cfg: DkgConfig): Machine<DkgState, DkgBody, DkgResult> {
  validateConfig(cfg);
  const { spec, self, threshold } = cfg;
  const frost = spec.frost;
  const g = groupOf(spec, cfg.backend);
  const DKG = dkgRounds(spec, cfg.backend);
  const nonce = () => spec.Point.Fn.toBytes(randomScalar(spec, cfg.rng));
  const n = cfg.participants.length;
  const others = cfg.participants.filter((p) => p !== self);
  const members = new Set<string>(cfg.participants);
  const signers = { min: threshold, max: n };

  const header = (round: DkgRound, to: ParticipantId | '*'): EnvelopeHeader => ({
    version: 1,
    protocol: 'dkg',
    keySpec: spec.name,
    keyId: cfg.keyId,
    sessionId: cfg.sessionId,
    epoch: asEpoch(0),
    round,
    from: self,
    to,
  });

  const digestOf = (env: Envelope<DkgBody>) => {
    const encoded = encodeEnvelope(env);
    return { encoded, digest: envelopeDigest(encoded) };
  };

  // ---- parsing: checks that need nothing but the message itself ----

  const parseR1 = (env: Envelope<DkgBody>): R1 => {
    const from = env.header.from;
    const commitment = readBytesArray(env.body, 'commitment');
    if (commitment.length !== threshold) {
      throw misbehaved('dkg.r1: commitment vector has the wrong length', [
        {
          participant: from,
          reason: 'wrong-vector-length',
          round: 'dkg.r1',
          evidence: `${commitment.length} != ${threshold}`,
        },
      ]);
    }
    // Only the constant term is decoded here (the proof below needs it); round2 validates the
    // others (each encoding once: group.ts caches), and on failure `round2` decodes them one by one
    // to name the sender.
    for (const [i, c] of commitment.entries()) {
      if (!(c instanceof Uint8Array) || c.length !== spec.elementLength)
        decodeElement(spec, c, `body.commitment[${i}]`);
    }
    g.decode(commitment[0]!, 'body.commitment[0]');
    // noble's PoK is a signature in the suite's encoding (BIP340: x-only R, even Y implied).
    const pok = readBytes(env.body, 'pok', spec.signatureLength);
    const pokR = pok.subarray(0, spec.signatureLength - spec.scalarLength);
    g.decode(spec.signatureEncoding === 'bip340' ? concatBytes(Uint8Array.of(2), pokR) : pokR, 'body.pok.R');
    decodeScalar(spec, pok.subarray(spec.signatureLength - spec.scalarLength), 'body.pok.z', false);
    const proofMap = readMap(env.body, 'proof');
    const proof = {
      R: readBytes(proofMap, 'R', spec.elementLength),
      z: readBytes(proofMap, 'z', spec.scalarLength),
    };
    g.decode(proof.R, 'body.proof.R');
    decodeScalar(spec, proof.z, 'body.proof.z', false);
    const { encoded, digest } = digestOf(env);
    if (!verifyConfirmation(spec, commitment[0]!, r1ProofContext(cfg, from, commitment[0]!), proof, g)) {
      throw misbehaved('dkg.r1: session-bound proof of knowledge does not verify', [
        { participant: from, reason: 'bad-proof-of-knowledge', round: 'dkg.r1', evidence: toHex(encoded) },
      ]);
    }
    const pkg = { identifier: from, commitment, proofOfKnowledge: pok } as DKG_Round1;
    return {
      pkg,
      proof,
      header: env.header,
      digest,
      encoded,
      ...(env.signature ? { signature: env.signature } : {}),
    };
  };

  const parseEcho = (env: Envelope<DkgBody>): Echo => {
    const m = readMap(env.body, 'digests');
    const keys = Object.keys(m);
    if (keys.length !== n || !cfg.participants.every((p) => Object.hasOwn(m, p))) {
      throw new DecodeError('DecodeError', 'body.digests: must have one entry per participant');
    }
    const digests = new Map(cfg.participants.map((p) => [p, readBytes(m, p, DIGEST_LENGTH)]));
    const signatures = new Map<ParticipantId, Uint8Array>();
    if (cfg.verify) {
      // One signature per sender but the echoer itself (its own echo is signed as a whole).
      const from = env.header.from;
      const sigs = readMap(env.body, 'signatures');
      const senders = cfg.participants.filter((p) => p !== from);
      if (Object.keys(sigs).length !== senders.length || !senders.every((p) => Object.hasOwn(sigs, p))) {
        throw new DecodeError('DecodeError', 'body.signatures: must have one entry per other participant');
      }
      for (const p of senders) signatures.set(p, readBytes(sigs, p, SIGNATURE_LENGTH));
    }
    const bytes = encodeEnvelope(env);
    return {
      digests,
      signatures,
      header: env.header,
      digest: envelopeDigest(bytes),
      bytes,
      ...(env.signature ? { signature: env.signature } : {}),
    };
  };

  // ---- round processing, in order, once a round's messages are all in ----

  /** noble validates all proofs of knowledge at once; on failure find the culprit one by one. */
  const round2 = (state: DkgState) => {
    const pkgs = others.map((p) => state.r1.get(p)!.pkg);
    try {
      return DKG.round2(state.secret, pkgs);
    } catch (e) {
      for (const p of others) {
        for (const [i, c] of state.r1.get(p)!.pkg.commitment.entries()) {
          try {
            decodeElement(spec, c, `body.commitment[${i}]`);
          } catch (d) {
            throw misbehaved(
              `dkg.r1: malformed message (${(d as Error).message})`,
              [{ participant: p, reason: 'invalid-element', round: 'dkg.r1' }],
              { decodeCode: 'InvalidElement' },
            );
          }
        }
      }
      const culprits = others.filter((p) => !nobleR1Valid(state.r1.get(p)!.pkg));
      if (culprits.length === 0)
        throw new ProtocolError('ProtocolAborted', 'dkg.r2: noble round2 failed', { cause: e });
      throw misbehaved(
        'dkg.r1: proof of knowledge does not verify',
        culprits.map((p) => ({
          participant: p,
          reason: 'bad-proof-of-knowledge' as const,
          round: 'dkg.r1',
          evidence: toHex(state.r1.get(p)!.encoded),
        })),
      );
    }
  };

  /**
   * Checks one round-1 package with noble alone: a throwaway participant's round2 over that package
   * plus t-2 fresh valid fillers (noble needs exactly max-1 packages). Only runs on the failure path.
   */
  let fillers: DKG_Round1[] | undefined;
  const isolationSigners = { min: threshold, max: threshold };
  const nobleR1Valid = (pkg: DKG_Round1): boolean => {
    fillers ??= Array.from(
      { length: threshold - 2 },
      (_, i) => frost.DKG.round1(frost.Identifier.derive(`tkms/dkg/isolation/${i}`), isolationSigners).public,
    );
    const probe = frost.DKG.round1(
      frost.Identifier.derive('tkms/dkg/isolation/probe'),
      isolationSigners,
    ).secret;
    try {
      frost.DKG.round2(probe, [pkg, ...fillers]);
      return true;
    } catch {
      return false;
    } finally {
      frost.DKG.clean(probe);
    }
  };

  const checkEchoes = (state: DkgState) => {
    for (const reporter of others) {
      const echo = state.echo.get(reporter)!;
      for (const sender of cfg.participants) {
        const ours = state.r1.get(sender)!;
        const digest = echo.digests.get(sender)!;
        if (equalBytes(digest, ours.digest)) continue;
        const signature = echo.signatures.get(sender);
        throw echoMismatch({
          self,
          reporter,
          sender,
          ours,
          theirs: signature ? { digest, signature } : { digest },
          echo,
          round: 'dkg.r1',
          unsignedOwnBlamesReporter: true,
          ...(cfg.verify ? { verify: cfg.verify } : {}),
        });
      }
    }
  };

  const checkShares = (state: DkgState) => {
    const bad: Blame[] = [];
    for (const p of others) {
      const share = state.r2.get(p)!;
      const r1 = state.r1.get(p)!;
      try {
        // RFC 9591 App. C.2 vss_verify of this one sender's share against its own commitments.
        frost.validateSecret(
          { identifier: self, signingShare: share },
          { signers, commitments: r1.pkg.commitment, verifyingShares: {} },
        );
      } catch {
        // Evidence is the public commitment the share fails against, never the share itself.
        bad.push({ participant: p, reason: 'bad-share', round: 'dkg.r2', evidence: toHex(r1.digest) });
      }
    }
    if (bad.length > 0) throw misbehaved('dkg.r2: secret share does not match the sender commitments', bad);
  };

  const finish = (state: DkgState): { out: Envelope<DkgBody>[]; effect: Effect } => {
    checkEchoes(state);
    const round1 = others.map((p) => state.r1.get(p)!.pkg);
    const round2 = others.map((p) => ({ identifier: p, signingShare: state.r2.get(p)! }));
    let key: Key;
    try {
      key = DKG.round3(state.secret, round1, round2);
    } catch (e) {
      // noble checks every share but its error does not say whose: find the culprit share by share.
      checkShares(state);
      throw new ProtocolError('ProtocolAborted', 'dkg: noble round3 failed', { cause: e });
    }
    const groupElement = key.public.commitments[0]!;
    try {
      g.decode(groupElement, 'group key'); // S-04 (d): never accept the identity
    } catch (e) {
      throw new ProtocolError('ProtocolAborted', 'dkg: the group key is not a valid element', { cause: e });
    }
    const transcriptHash = hashTranscript('dkg', [
      utf8ToBytes(spec.name),
      utf8ToBytes(cfg.keyId),
      utf8ToBytes(cfg.sessionId),
      numberToBytesBE(threshold, 4),
      ...sortIds(spec, cfg.participants).flatMap((p) => [utf8ToBytes(p), state.r1.get(p)!.encoded]),
    ]);
    state.key = key;
    state.transcriptHash = transcriptHash;
    const share = decodeScalar(spec, key.secret.signingShare, 'own share', false);
    const proof = confirm(
      spec,
      share,
      key.public.verifyingShares[self]!,
      confirmationContext({
        sessionId: cfg.sessionId,
        participant: self,
        transcriptHash,
        groupElement,
        epoch: 0,
      }),
      nonce,
      g,
    );
    state.confirm.set(self, proof);
    state.phase = 'confirm';
    return {
      out: [{ header: header('dkg.confirm', '*'), body: { R: proof.R, z: proof.z } }],
      effect: { kind: 'persist-pending', key, transcriptHash },
    };
  };

  const checkConfirmations = (state: DkgState): DkgResult => {
    const key = state.key!;
    const groupElement = key.public.commitments[0]!;
    const transcriptHash = state.transcriptHash!;
    const bad: Blame[] = [];
    for (const p of others) {
      const c = state.confirm.get(p)!;
      const ctx = confirmationContext({
        sessionId: cfg.sessionId,
        participant: p,
        transcriptHash,
        groupElement,
        epoch: 0,
      });
      if (!verifyConfirmation(spec, key.public.verifyingShares[p]!, ctx, c, g)) {
        bad.push({
          participant: p,
          reason: 'bad-confirmation',
          round: 'dkg.confirm',
          evidence: toHex(c.R) + toHex(c.z),
        });
      }
    }
    if (bad.length > 0) throw misbehaved('dkg.confirm: confirmation does not verify', bad);
    state.phase = 'done';
    const confirmations: Record<ParticipantId, Confirmation> = {};
    for (const p of cfg.participants) confirmations[p] = state.confirm.get(p)!;
    return {
      key,
      groupElement,
      publicKey: publicKeyFromGroupElement(spec, groupElement),
      transcriptHash,
      confirmations,
    };
  };

  /** Runs every round whose messages are complete. */
  const advance = (state: DkgState): Step<DkgState, DkgBody, DkgResult> => {
    const out: Envelope<DkgBody>[] = [];
    const effects: Effect[] = [];
    if (state.phase === 'r1' && state.r1.size === n) {
      const shares = round2(state);
      for (const p of others) {
        out.push({ header: header('dkg.r2', p), body: { share: shares[p]!.signingShare } });
      }
      const digests: Record<string, Uint8Array> = {};
      for (const p of cfg.participants) digests[p] = state.r1.get(p)!.digest;
      const body: DkgBody = { digests };
      if (cfg.verify) {
        // Forward every sender's signature, so that a lie about a third party is provable.
        const signatures: Record<string, Uint8Array> = {};
        for (const p of others) {
          const sig = state.r1.get(p)!.signature;
          if (!sig) throw new ProtocolError('ProtocolAborted', `dkg.r1 of ${p} arrived unsigned`);
          signatures[p] = sig;
        }
        body.signatures = signatures;
      }
      out.push({ header: header('dkg.echo', '*'), body });
      state.phase = 'r2';
    }
    if (state.phase === 'r2' && state.r2.size === n - 1 && state.echo.size === n - 1) {
      const f = finish(state);
      out.push(...f.out);
      effects.push(f.effect);
    }
    const fx = effects.length > 0 ? { effects } : {};
    if (state.phase === 'confirm' && state.confirm.size === n) {
      return { state, out, done: checkConfirmations(state), ...fx };
    }
    return { state, out, ...fx };
  };

  const accept = (state: DkgState, env: Envelope<DkgBody>): Step<DkgState, DkgBody, DkgResult> => {
    const from = env.header.from;
    if (!members.has(from) || from === self) {
      throw misbehaved('dkg: message from a sender outside the committee', [
        { participant: from, reason: 'spoofed-sender', round: env.header.round },
      ]);
    }
    assertBinding(env, {
      version: 1,
      protocol: 'dkg',
      keySpec: spec.name,
      keyId: cfg.keyId,
      sessionId: cfg.sessionId,
      epoch: asEpoch(0),
    });
    const round = env.header.round as DkgRound;
    if (!(DKG_ROUNDS as readonly string[]).includes(round)) {
      throw new DecodeError('ContextMismatch', `dkg: unknown round ${JSON.stringify(env.header.round)}`);
    }
    assertBinding(env, { to: round === 'dkg.r2' ? self : '*' });
    // A retransmission is harmless; a different message for the same round is equivocation. Only
    // digests (and signatures) are kept and shown: a dkg.r2 body is a secret sub-share (review I-1).
    const copy: Seen = { digest: envelopeDigest(encodeEnvelope(env)), signature: env.signature };
    const seenKey = `${round}/${from}`;
    const prior = state.seen.get(seenKey);
    if (prior !== undefined) {
      if (equalBytes(prior.digest, copy.digest)) return { state, out: [] };
      throw duplicateConflict(env.header, prior, copy);
    }
    if (state.phase === 'done') throw new DecodeError('ContextMismatch', 'dkg: session already finished');
    state.seen.set(seenKey, copy);
    switch (round) {
      case 'dkg.r1':
        state.r1.set(from, parseR1(env));
        break;
      case 'dkg.r2': {
        const share = readBytes(env.body, 'share', spec.scalarLength);
        decodeScalar(spec, share, 'body.share', false);
        state.r2.set(from, share);
        break;
      }
      case 'dkg.echo':
        state.echo.set(from, parseEcho(env));
        break;
      case 'dkg.confirm': {
        const c = {
          R: readBytes(env.body, 'R', spec.elementLength),
          z: readBytes(env.body, 'z', spec.scalarLength),
        };
        g.decode(c.R, 'body.R');
        decodeScalar(spec, c.z, 'body.z', false);
        state.confirm.set(from, c);
        break;
      }
    }
    return advance(state);
  };

  return {
    self,
    start() {
      const { public: pub, secret } = DKG.round1(self, signers, undefined, cfg.rng);
      const c0 = pub.commitment[0]!;
      const proof = confirm(spec, secret.coefficients![0]!, c0, r1ProofContext(cfg, self, c0), nonce, g);
      const env: Envelope<DkgBody> = {
        header: header('dkg.r1', '*'),
        body: { commitment: pub.commitment, pok: pub.proofOfKnowledge, proof: { R: proof.R, z: proof.z } },
      };
      const { encoded, digest } = digestOf(env);
      const state: DkgState = {
        phase: 'r1',
        secret,
        r1: new Map([[self, { pkg: pub, proof, header: env.header, digest, encoded }]]),
        r2: new Map(),
        echo: new Map(),
        confirm: new Map(),
        seen: new Map(),
      };
      return { state, out: [env] };
    },
    receive(state, env) {
      try {
        return accept(state, env);
      } catch (e) {
        // Any malformed content aborts DKG (nobody can finish without every member), blaming its sender.
        const err =
          e instanceof DecodeError && e.code !== 'ContextMismatch'
            ? misbehaved(
                `${env.header.round}: malformed message (${e.message})`,
                [{ participant: env.header.from, reason: blameFor(e), round: env.header.round }],
                { decodeCode: e.code },
              )
            : e instanceof KmsError
              ? e
              : new ProtocolError('ProtocolAborted', 'dkg: unexpected failure', { cause: e });
        if (err instanceof ProtocolError && state.phase !== 'done') {
          state.phase = 'done';
          DKG.clean(state.secret);
        }
        throw err;
      }
    },
  };
}
