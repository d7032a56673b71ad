/**
 * FROST signing (RFC 9591 §5) with identifiable abort, on noble's commit / signShare / aggregate.
 *
 * Signer side: `signerCommit` (round one, §5.1) returns the public commitment and a nonce state that
 * is single-use by construction: `signerSign` (round two, §5.2) marks it used before anything else,
 * so a second call throws NonceReused, and noble's signShare zeroes the nonces in place as well.
 * Before signing, the signer checks the whole commitment list it is asked to sign over (threats
 * S-03 (c), S-07): sorted, no duplicate or unknown identifiers, at least t, its own commitment
 * present and unchanged, every element valid, all of its own key epoch.
 *
 * Aggregator side (the coordinator, §5.3): `aggregate` verifies the aggregate signature and, only
 * if that fails, every share (§5.4, noble's aggregate does exactly this), and throws
 * ParticipantMisbehaved naming the invalid-share senders so the caller can retry without them.
 *
 * Tweaks (protocol/key-tweak.ts): signer and aggregator may pass `tweak` (a derivation path, and
 * for FROST_SECP256K1_TR the BIP341 key-path tweak with an optional merkle root, or none); both
 * must pass the same one. Without it the package signs as it is (RFC 9591, noble's semantics).
 * `backend: 'noble'` runs noble's operations on the tweaked package (the reference) instead of the
 * fast path; both give the same bytes (test/taproot-tweak.test.ts).
 */
import type {
  FrostPublic,
  FrostSecret,
  Key,
  NonceCommitments,
  Nonces,
  RNG,
} from '@noble/curves/abstract/frost.js';
import { equalBytes, toHex } from './bytes.ts';
import { readBytes, readInt, readString } from './codec.ts';
import { sortIds } from './dkg.ts';
import { decodeIdentifier, decodeScalar } from './elements.ts';
import { type Blame, DecodeError, KmsError, ProtocolError, misbehaved } from './errors.ts';
// Fast backends where a suite has one (protocol/fast-sign.ts), noble's FROST otherwise.
import {
  checkElement,
  fastCombine,
  fastTweaked,
  groupCommitmentOf,
  sessionChecksBinding,
  signingFrost,
} from './fast-sign.ts';
import type { Backend } from './group.ts';
import type { Epoch, ParticipantId } from './ids.ts';
import { type AffineTweak, resolveTweak, type SigningTweak, tweakPackageNoble } from './key-tweak.ts';
import type { KeySpec } from './suites.ts';

/** One signer's round-one commitment, tagged with the key epoch of the share behind it. */
export type SigningCommitment = {
  readonly identifier: ParticipantId;
  readonly hiding: Uint8Array;
  readonly binding: Uint8Array;
  readonly epoch: Epoch;
};

/**
 * One signer's round-two output. `groupCommitment`: on a fast path (protocol/fast-sign.ts), the
 * group commitment R (§4.5, SerializeElement) the share was computed for, as the session computed
 * it (for BIP340 before the even-y adjustment); a claim, for the aggregator's shortcut only
 * (signatureFromGroupCommitment), never trusted without verifying the signature it gives.
 */
export type SignatureShare = {
  readonly identifier: ParticipantId;
  readonly share: Uint8Array;
  readonly epoch: Epoch;
  readonly groupCommitment?: Uint8Array;
};

/** The signer's secret round-one state. Never serialized, never logged; usable exactly once. */
export type NonceState = {
  status: 'fresh' | 'used';
  readonly spec: KeySpec;
  readonly key: Key;
  readonly epoch: Epoch;
  readonly commitment: SigningCommitment;
  readonly nonces: Nonces;
};

export function signerCommit(args: { spec: KeySpec; key: Key; epoch: Epoch; rng?: RNG }): {
  commitment: SigningCommitment;
  state: NonceState;
} {
  const { spec, key, epoch } = args;
  const { nonces, commitments } = args.rng
    ? signingFrost(spec).commit(key.secret, args.rng)
    : signingFrost(spec).commit(key.secret);
  const commitment: SigningCommitment = {
    identifier: commitments.identifier as ParticipantId,
    hiding: commitments.hiding,
    binding: commitments.binding,
    epoch,
  };
  return { commitment, state: { status: 'fresh', spec, key, epoch, commitment, nonces } };
}

/**
 * Validates a commitment list against a key: sorted by identifier, no duplicates, every identifier
 * a member of the key, between t and n entries, valid elements, all at `epoch`. Returns noble's form.
 */
export function checkCommitmentList(
  spec: KeySpec,
  pub: FrostPublic,
  epoch: Epoch,
  commitments: readonly SigningCommitment[],
  opts: { bindingChecked?: boolean } = {},
): NonceCommitments[] {
  if (!Array.isArray(commitments)) throw new DecodeError('DecodeError', 'commitments: must be an array');
  const { min, max } = pub.signers;
  if (commitments.length < min || commitments.length > max) {
    throw new KmsError(
      'ValidationError',
      `commitments: need between ${min} and ${max} signers, got ${commitments.length}`,
    );
  }
  const seen = new Set<string>();
  for (const c of commitments) {
    const id = decodeIdentifier(spec, c.identifier, 'commitment identifier');
    if (seen.has(id)) throw new DecodeError('InvalidIdentifier', `commitments: duplicate identifier ${id}`);
    seen.add(id);
    if (!Object.hasOwn(pub.verifyingShares, id)) {
      throw new DecodeError('InvalidIdentifier', `commitments: ${id} is not a participant of this key`);
    }
    if (c.epoch !== epoch) {
      throw new ProtocolError(
        'EpochMismatch',
        `commitments: ${id} committed for epoch ${c.epoch}, not ${epoch}`,
      );
    }
    checkElement(spec, c.hiding, `commitment ${id} hiding`);
    if (!opts.bindingChecked) checkElement(spec, c.binding, `commitment ${id} binding`);
  }
  const ids = commitments.map((c) => c.identifier);
  const sorted = sortIds(spec, ids);
  if (!ids.every((id, i) => id === sorted[i])) {
    throw new DecodeError('DecodeError', 'commitments: must be sorted by identifier (RFC 9591 §4.3)');
  }
  return commitments.map((c) => ({ identifier: c.identifier, hiding: c.hiding, binding: c.binding }));
}

/** Sorts commitments by identifier, as RFC 9591 §4.3 encodes them (for the coordinator). */
export function sortCommitments<C extends { identifier: ParticipantId }>(
  spec: KeySpec,
  list: readonly C[],
): C[] {
  const order = sortIds(
    spec,
    list.map((c) => c.identifier),
  );
  return order.map((id) => list.find((c) => c.identifier === id)!);
}

/**
 * Round two: this signer's share over `message` for the given commitment list. The nonce state is
 * consumed first, even when the list is then refused (fail closed: never sign twice with one nonce).
 */
export function signerSign(
  state: NonceState,
  req: {
    message: Uint8Array;
    commitments: readonly SigningCommitment[];
    tweak?: SigningTweak | undefined;
    backend?: Backend | undefined;
  },
): SignatureShare {
  if (state.status !== 'fresh') throw new ProtocolError('NonceReused', 'signing nonce already used');
  state.status = 'used';
  const { spec, key, epoch } = state;
  try {
    if (!(req.message instanceof Uint8Array)) throw new DecodeError('DecodeError', 'message: must be bytes');
    // On the fast path the session checks each binding element as it multiplies it (fast-sign.ts
    // bindingTerm), before any share exists; everything else is checked here first.
    const list = checkCommitmentList(spec, key.public, epoch, req.commitments, {
      bindingChecked: req.backend !== 'noble' && sessionChecksBinding(spec),
    });
    const own = req.commitments.find((c) => c.identifier === state.commitment.identifier);
    if (own === undefined) {
      throw new KmsError('ValidationError', 'commitments: this signer is not in the list (RFC 9591 §5.2)');
    }
    if (
      !equalBytes(own.hiding, state.commitment.hiding) ||
      !equalBytes(own.binding, state.commitment.binding)
    ) {
      throw new DecodeError('ContextMismatch', 'commitments: this signer’s commitment was altered');
    }
    const signWith = signer(spec, key.public, req.tweak, req.backend);
    let share: Uint8Array;
    try {
      share = signWith(key.secret, state.nonces, list, req.message);
    } catch (e) {
      // An invalid element (a binding element checked in the session) is refused as such.
      if (e instanceof DecodeError && e.code === 'InvalidElement') throw e;
      throw new ProtocolError('ProtocolAborted', 'signShare failed', { cause: e });
    }
    const R = groupCommitmentOf(share);
    return { identifier: state.commitment.identifier, share, epoch, ...(R ? { groupCommitment: R } : {}) };
  } finally {
    // noble zeroes the nonces on success; zero them on every path.
    state.nonces.hiding.fill(0);
    state.nonces.binding.fill(0);
  }
}

/**
 * RFC 9591 §5.3 aggregation with §5.4 identifiable abort. Returns the signature in the suite's
 * encoding (noble's output: RFC 8032 for ed25519/ed448, BIP340 x(R)||s for secp256k1-tr,
 * SerializeElement(R)||SerializeScalar(z) otherwise).
 */
export function aggregate(args: {
  spec: KeySpec;
  public: FrostPublic;
  epoch: Epoch;
  commitments: readonly SigningCommitment[];
  shares: readonly SignatureShare[];
  message: Uint8Array;
  tweak?: SigningTweak | undefined;
  backend?: Backend | undefined;
}): Uint8Array {
  const { spec, epoch, commitments, shares, message } = args;
  const pub = args.public;
  for (const s of shares) {
    if (s.epoch !== epoch)
      throw new ProtocolError(
        'EpochMismatch',
        `share from ${s.identifier} is for epoch ${s.epoch}, not ${epoch}`,
      );
  }
  const list = checkCommitmentList(spec, pub, epoch, commitments);
  const byId: Record<string, Uint8Array> = {};
  const malformed: Blame[] = [];
  for (const s of shares) {
    if (Object.hasOwn(byId, s.identifier))
      throw new DecodeError('InvalidIdentifier', `shares: duplicate identifier ${s.identifier}`);
    if (!commitments.some((c) => c.identifier === s.identifier)) {
      throw new DecodeError('InvalidIdentifier', `shares: ${s.identifier} did not commit in round one`);
    }
    try {
      decodeScalar(spec, s.share, 'signature share', false);
      byId[s.identifier] = s.share;
    } catch {
      malformed.push({
        participant: s.identifier,
        reason: 'invalid-signature-share',
        round: 'sign.share',
        evidence: hexOf(s.share),
      });
    }
  }
  if (malformed.length > 0) throw misbehaved('malformed signature share', malformed);
  const missing = commitments.filter((c) => !Object.hasOwn(byId, c.identifier)).map((c) => c.identifier);
  if (missing.length > 0) {
    throw new ProtocolError('ProtocolAborted', `shares missing from ${missing.join(', ')}`, {
      culprits: missing.map((p) => ({ participant: p, reason: 'unresponsive', round: 'sign.share' })),
    });
  }
  const aggregateWith = aggregator(spec, pub, args.tweak, args.backend);
  let sig: Uint8Array;
  try {
    sig = aggregateWith(list, message, byId);
  } catch (e) {
    const cheaters = (e as { cheaters?: unknown }).cheaters;
    if (Array.isArray(cheaters) && cheaters.length > 0) {
      throw misbehaved(
        'invalid signature share',
        cheaters.map((p: string) => ({
          participant: p,
          reason: 'invalid-signature-share' as const,
          round: 'sign.share',
          evidence: toHex(byId[p]!),
        })),
      );
    }
    throw new ProtocolError('InvalidSignature', 'aggregation failed', { cause: e });
  }
  if (sig.length !== spec.signatureLength) {
    throw new ProtocolError(
      'InvalidSignature',
      `aggregate signature is ${sig.length} bytes, expected ${spec.signatureLength}`,
    );
  }
  return sig;
}

/**
 * The aggregator's shortcut (issue 17, one-round signing): the signature from a group commitment R
 * every signer reported with its share (SignatureShare.groupCommitment) and z = Σ z_i, in the
 * suite's encoding, returned only if it verifies under the (tweaked) group key as `aggregate`
 * verifies its own. R from the signers only saves the aggregator computing it (t variable-base
 * multiplications); the returned signature is verified under the key either way. Undefined when
 * it does not verify, R or a share is malformed, the tweak is refused, or the suite has no fast
 * path: the caller then runs `aggregate` (its own R, every share checked, §5.4 blame).
 */
export function signatureFromGroupCommitment(args: {
  spec: KeySpec;
  public: FrostPublic;
  message: Uint8Array;
  groupCommitment: Uint8Array;
  shares: readonly Uint8Array[];
  tweak?: SigningTweak | undefined;
}): Uint8Array | undefined {
  const { spec } = args;
  const combine = fastCombine(spec);
  if (combine === undefined || args.groupCommitment.length !== spec.elementLength) return undefined;
  try {
    const t = args.tweak === undefined ? undefined : resolved(spec, args.public, args.tweak, 'native');
    const sig = combine(args.public, args.groupCommitment, args.message, args.shares, t);
    return sig !== undefined && sig.length === spec.signatureLength ? sig : undefined;
  } catch {
    return undefined;
  }
}

/** A resolved tweak; KmsError('ValidationError') for a tweak the key cannot take (before any secret is used). */
function resolved(spec: KeySpec, pub: FrostPublic, tweak: SigningTweak, backend: Backend): AffineTweak {
  checkElement(spec, pub.commitments[0]!, 'group public key');
  return resolveTweak(spec, pub.commitments[0]!, tweak, backend);
}

type ShareSigner = (
  secret: FrostSecret,
  nonces: Nonces,
  list: NonceCommitments[],
  msg: Uint8Array,
) => Uint8Array;

/** §5.2 for the key `tweak` selects: the fast path where the suite has one, noble's otherwise. */
function signer(
  spec: KeySpec,
  pub: FrostPublic,
  tweak?: SigningTweak,
  backend: Backend = 'native',
): ShareSigner {
  const frost = backend === 'noble' ? spec.frost : signingFrost(spec);
  if (tweak === undefined)
    return (secret, nonces, list, msg) => frost.signShare(secret, pub, nonces, list, msg);
  const fast = backend === 'noble' ? undefined : fastTweaked(spec);
  if (fast !== undefined) {
    const t = resolved(spec, pub, tweak, backend);
    return (secret, nonces, list, msg) => fast.signShare(secret, pub, nonces, list, msg, t);
  }
  resolved(spec, pub, tweak, 'noble');
  return (secret, nonces, list, msg) => {
    const k = tweakPackageNoble(spec, pub, secret, tweak);
    return spec.frost.signShare(k.secret!, k.public, nonces, list, msg);
  };
}

type Aggregator = (
  list: NonceCommitments[],
  msg: Uint8Array,
  shares: Record<string, Uint8Array>,
) => Uint8Array;

/** §5.3 (with §5.4 on failure) for the key `tweak` selects. */
function aggregator(
  spec: KeySpec,
  pub: FrostPublic,
  tweak?: SigningTweak,
  backend: Backend = 'native',
): Aggregator {
  const frost = backend === 'noble' ? spec.frost : signingFrost(spec);
  if (tweak === undefined) return (list, msg, shares) => frost.aggregate(pub, list, msg, shares);
  const fast = backend === 'noble' ? undefined : fastTweaked(spec);
  if (fast !== undefined) {
    const t = resolved(spec, pub, tweak, backend);
    return (list, msg, shares) => fast.aggregate(pub, list, msg, shares, t);
  }
  resolved(spec, pub, tweak, 'noble');
  const k = tweakPackageNoble(spec, pub, undefined, tweak);
  return (list, msg, shares) => spec.frost.aggregate(k.public, list, msg, shares);
}

function hexOf(b: unknown): string {
  return b instanceof Uint8Array ? toHex(b) : typeof b;
}

// ---- message bodies for the sign.commit and sign.share rounds ----

export function commitmentBody(c: SigningCommitment): Record<string, unknown> {
  return { identifier: c.identifier, hiding: c.hiding, binding: c.binding, epoch: c.epoch };
}

/** Parses and validates a sign.commit body (elements checked: RFC 9591 §3.1). */
export function parseCommitmentBody(spec: KeySpec, body: unknown): SigningCommitment {
  const identifier = decodeIdentifier(
    spec,
    readString(body, 'identifier', 2 * spec.scalarLength),
    'body.identifier',
  );
  const hiding = readBytes(body, 'hiding', spec.elementLength);
  const binding = readBytes(body, 'binding', spec.elementLength);
  checkElement(spec, hiding, 'body.hiding');
  checkElement(spec, binding, 'body.binding');
  return { identifier: identifier as ParticipantId, hiding, binding, epoch: readInt(body, 'epoch') as Epoch };
}

export function shareBody(s: SignatureShare): Record<string, unknown> {
  return { identifier: s.identifier, share: s.share, epoch: s.epoch };
}

export function parseShareBody(spec: KeySpec, body: unknown): SignatureShare {
  const identifier = decodeIdentifier(
    spec,
    readString(body, 'identifier', 2 * spec.scalarLength),
    'body.identifier',
  );
  const share = readBytes(body, 'share', spec.scalarLength);
  decodeScalar(spec, share, 'body.share', false);
  return { identifier: identifier as ParticipantId, share, epoch: readInt(body, 'epoch') as Epoch };
}

/**
 * Coordinator convenience over `aggregate`: commitments in any order, each collected for `epoch`
 * (an explicit `epoch` on an entry must match), shares keyed by identifier.
 */
export function aggregateSignature(args: {
  spec: KeySpec;
  public: FrostPublic;
  epoch: Epoch | number;
  message: Uint8Array;
  commitments: readonly { identifier: string; hiding: Uint8Array; binding: Uint8Array; epoch?: number }[];
  shares: Readonly<Record<string, Uint8Array>>;
  tweak?: SigningTweak | undefined;
}): Uint8Array {
  const epoch = args.epoch as Epoch;
  const commitments = sortCommitments(
    args.spec,
    args.commitments.map((c) => ({
      identifier: c.identifier as ParticipantId,
      hiding: c.hiding,
      binding: c.binding,
      epoch: (c.epoch ?? epoch) as Epoch,
    })),
  );
  const shares = Object.entries(args.shares).map(([identifier, share]) => ({
    identifier: identifier as ParticipantId,
    share,
    epoch,
  }));
  return aggregate({
    spec: args.spec,
    public: args.public,
    epoch,
    commitments,
    shares,
    message: args.message,
    tweak: args.tweak,
  });
}
