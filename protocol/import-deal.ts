/**
 * Dealing a key to a node committee from outside it (issue 16): a restore (k recovery officers, in
 * the CLI process, deal their shares of protocol/officer-backup.ts) and an import (the CLI deals a
 * whole secret as a one-member old committee). Both are the dealing round of a reshare
 * (protocol/reshare.ts; verifiable secret redistribution, Desmedt–Jajodia 1997): each dealer d of
 * the set D, whose old verifying share V_d is public, draws f_d of degree t-1 with f_d(0) its share,
 * publishes the Feldman commitments C_d and seals f_d(j) to node j. Node j takes
 * s'_j = Σ_d λ_d·f_d(j) (λ_d over D at 0) and checks, before it stores anything:
 *   - every C_d has exactly t entries and C_d[0] = V_d (the dealer shares what it holds);
 *   - Σ_d λ_d·V_d = Q, the group element the request names (the old package opens to the key);
 *   - its own sub-shares open, are bound to their slot, and lie on their dealer's commitments
 *     (Feldman, RFC 9591 Appendix C.2);
 *   - s'_j·G equals its verifying share in the new package Σ_d λ_d·C_d, whose constant term is Q.
 * So a node never stores a share of another key than the one named, whoever dealt. An import has
 * D = {1}, λ = 1 and V_1 = Q: the claimed public key.
 *
 * Unlike a node-to-node reshare there is no echo round: every node receives the same dealings inside
 * the client-signed request (the coordinator cannot change a byte), and each new member's
 * confirmation is over the digest of all of them (`transcriptHash`), so the certificate that
 * activates the epoch exists only if every member saw the same dealings.
 *
 * Sealing: libsodium sealed boxes to each node's X25519 key, which is its Ed25519 identity key (the
 * peer id in the cluster file) mapped to Montgomery form (RFC 7748 §4.1 birational map, as
 * libsodium's crypto_sign_ed25519_pk_to_curve25519; `nodeEncryptionKey`). Pure: sealing and opening
 * come in as functions.
 */
import type { FrostPublic, Key, RNG } from '@noble/curves/abstract/frost.js';
import { ed25519 } from '@noble/curves/ed25519.js';
import { numberToBytesBE } from '@noble/curves/utils.js';
import { equalBytes, utf8ToBytes } from './bytes.ts';
import { type Confirmation, confirm, confirmationContext, hashTranscript } from './confirm.ts';
import { decodeScalar, encodeScalar, participantIdOf } from './elements.ts';
import { type Blame, misbehaved, ProtocolError, StateError } from './errors.ts';
import { type Elem, groupOf, linearCombination } from './group.ts';
import { type ParticipantId, nodeIndex } from './ids.ts';
import {
  dealingPolynomial,
  evaluatePolynomial,
  identifierScalar,
  lagrangeCoefficient,
  verifyFeldman,
} from './polynomial.ts';
import { verifyingSharesFrom } from './reshare.ts';
import { type KeySpec, keySpec, type KeySpecName } from './suites.ts';

export const SEAL_OVERHEAD = 48;
const BINDING_LENGTH = 32;
export const MAX_EXTERNAL_DEALERS = 32;
export const MAX_RECIPIENTS = 256;

export type ExternalDealKind = 'restore' | 'import';

/** What a restore or import deals: public, carried in the signed request. */
export type ExternalDealPlan = {
  readonly kind: ExternalDealKind;
  readonly keyId: string;
  readonly keySpec: KeySpecName;
  readonly sessionId: string;
  /** The epoch the new committee will hold. */
  readonly epoch: number;
  readonly threshold: number;
  /** Node ids of the new committee (`node-k` has identifier k). */
  readonly participants: readonly string[];
  /** Q: the key's group element (RFC 9591 SerializeElement). */
  readonly groupElement: Uint8Array;
  /** Each dealer's identifier and its old verifying share V_d (import: {1: Q}). */
  readonly dealers: Readonly<Record<string, Uint8Array>>;
};

/** One dealer's output: commitments (t) and one sealed sub-share per new member. */
export type ExternalDealing = {
  readonly dealer: ParticipantId;
  readonly commitments: readonly Uint8Array[];
  readonly ciphertexts: Readonly<Record<string, Uint8Array>>;
};

/** Seals to a node's X25519 key; opens what was sealed to this node. */
export type NodeSeal = (x25519PublicKey: Uint8Array, plaintext: Uint8Array) => Uint8Array;
export type NodeOpen = (ciphertext: Uint8Array) => Uint8Array;

/** A node's X25519 encryption key from its Ed25519 identity public key (the peer id's key). */
export function nodeEncryptionKey(identityPublicKey: Uint8Array): Uint8Array {
  return ed25519.utils.toMontgomery(identityPublicKey);
}

/** The X25519 secret matching `nodeEncryptionKey`, from the Ed25519 seed (first 32 bytes). Secret. */
export function nodeEncryptionSecret(identitySeed: Uint8Array): Uint8Array {
  return ed25519.utils.toMontgomerySecret(identitySeed);
}

const invalid = (m: string, details?: Record<string, unknown>) =>
  new StateError('ValidationError', m, details ? { details } : {});

function participantOfNode(spec: KeySpec, nodeId: string): ParticipantId {
  const k = nodeIndex(nodeId);
  if (k === undefined) throw invalid(`bad node id ${nodeId}`);
  return participantIdOf(spec, k) as ParticipantId;
}

/** Structural checks of a plan (anyone, before anything is dealt or stored). */
export function validateExternalPlan(plan: ExternalDealPlan): KeySpec {
  const spec = keySpec(plan.keySpec);
  const n = plan.participants.length;
  if (n < 2 || n > MAX_RECIPIENTS || new Set(plan.participants).size !== n)
    throw invalid(`participants: 2 to ${MAX_RECIPIENTS} distinct node ids`);
  for (const p of plan.participants) participantOfNode(spec, p);
  if (!Number.isSafeInteger(plan.threshold) || plan.threshold < 2 || plan.threshold > n)
    throw invalid('threshold must be between 2 and the number of participants');
  if (!Number.isSafeInteger(plan.epoch) || plan.epoch < 0)
    throw invalid('epoch must be a non-negative integer');
  const ids = Object.keys(plan.dealers);
  if (ids.length < 1 || ids.length > MAX_EXTERNAL_DEALERS) throw invalid('dealers: 1 to 32');
  if (plan.kind === 'import' && ids.length !== 1) throw invalid('an import has exactly one dealer');
  if (plan.kind === 'restore' && ids.length < 2) throw invalid('a restore needs at least 2 officers');
  const g = groupOf(spec);
  g.decode(plan.groupElement, 'group element');
  // The old package must open to Q at the dealer set (public data).
  const acc = linearCombination(
    g,
    ids.map((d) => g.decode(plan.dealers[d]!, `dealer ${d} verifying share`)),
    ids.map((d) => lagrangeCoefficient(spec, ids, d)),
  );
  if (!equalBytes(acc.toBytes(), plan.groupElement))
    throw invalid('the dealers’ verifying shares do not open to the group element');
  return spec;
}

/** What every sealed plaintext starts with: the (kind, key, session, epoch, dealer, node) slot. */
export function externalSlot(
  plan: ExternalDealPlan,
  dealer: string,
  nodeId: string,
  nodeKey: Uint8Array,
): Uint8Array {
  return hashTranscript('external-deal.slot', [
    utf8ToBytes(plan.kind),
    utf8ToBytes(plan.keyId),
    utf8ToBytes(plan.keySpec),
    utf8ToBytes(plan.sessionId),
    numberToBytesBE(plan.epoch, 4),
    plan.groupElement,
    utf8ToBytes(dealer),
    utf8ToBytes(nodeId),
    nodeKey,
  ]);
}

/**
 * Dealer `dealer` (holding `share`, its secret old share) deals to the plan's participants,
 * sealing each sub-share to `nodeKeys[nodeId]`. The coefficients are zeroed before returning.
 */
export function dealExternal(
  plan: ExternalDealPlan,
  dealer: ParticipantId,
  share: bigint,
  nodeKeys: Readonly<Record<string, Uint8Array>>,
  seal: NodeSeal,
  rng?: RNG,
): ExternalDealing {
  const spec = validateExternalPlan(plan);
  const g = groupOf(spec);
  const V = plan.dealers[dealer];
  if (!V) throw invalid(`${dealer} is not a dealer of this plan`);
  if (!g.baseMul(share).equals(g.decode(V, 'verifying share')))
    throw new StateError('ContextMismatch', `the share of ${dealer} does not match its verifying share`);
  const { coefficients, commitments } = dealingPolynomial(spec, plan.threshold, share, g, rng);
  try {
    const ciphertexts: Record<string, Uint8Array> = {};
    for (const nodeId of plan.participants) {
      const key = nodeKeys[nodeId];
      if (key?.length !== 32) throw invalid(`no X25519 key for ${nodeId}`);
      const x = identifierScalar(spec, participantOfNode(spec, nodeId));
      const scalar = encodeScalar(spec, evaluatePolynomial(spec, coefficients, x));
      const plaintext = new Uint8Array(BINDING_LENGTH + spec.scalarLength);
      plaintext.set(externalSlot(plan, dealer, nodeId, key), 0);
      plaintext.set(scalar, BINDING_LENGTH);
      scalar.fill(0);
      try {
        ciphertexts[nodeId] = seal(key, plaintext);
      } finally {
        plaintext.fill(0);
      }
    }
    return { dealer, commitments: commitments.map((c) => c.toBytes()), ciphertexts };
  } finally {
    coefficients.fill(0n);
  }
}

/**
 * The digest every new member confirms: the plan and every dealing, commitments and ciphertexts,
 * in dealer order. Equal digests mean equal dealings.
 */
export function externalTranscript(plan: ExternalDealPlan, dealings: readonly ExternalDealing[]): Uint8Array {
  const sorted = [...dealings].sort((a, b) => (a.dealer < b.dealer ? -1 : a.dealer > b.dealer ? 1 : 0));
  const ids = Object.keys(plan.dealers).sort();
  return hashTranscript(`external-deal.${plan.kind}`, [
    utf8ToBytes(plan.keyId),
    utf8ToBytes(plan.keySpec),
    utf8ToBytes(plan.sessionId),
    numberToBytesBE(plan.epoch, 4),
    numberToBytesBE(plan.threshold, 4),
    utf8ToBytes(plan.participants.join(',')),
    plan.groupElement,
    ...ids.flatMap((d) => [utf8ToBytes(d), plan.dealers[d]!]),
    ...sorted.flatMap((d) => [
      utf8ToBytes(d.dealer),
      numberToBytesBE(d.commitments.length, 4),
      ...d.commitments,
      ...plan.participants.flatMap((p) => [utf8ToBytes(p), d.ciphertexts[p] ?? new Uint8Array(0)]),
    ]),
  ]);
}

export type ExternalResult = {
  /** The new share of this node (secret) with the new public package. */
  readonly key: Key;
  readonly public: FrostPublic;
  readonly transcriptHash: Uint8Array;
  /** This node's confirmation (protocol/confirm.ts) for the certificate that activates the epoch. */
  readonly confirmation: Confirmation;
};

/**
 * Node `nodeId`'s side: checks every dealing against the plan (and so against the group key),
 * opens its sub-shares with `open`, and returns its new share, the new package and its
 * confirmation. A dealer whose dealing is wrong is named (ParticipantMisbehaved).
 */
export function receiveExternal(
  plan: ExternalDealPlan,
  dealings: readonly ExternalDealing[],
  nodeId: string,
  nodeKey: Uint8Array,
  open: NodeOpen,
): ExternalResult {
  const spec = validateExternalPlan(plan);
  const g = groupOf(spec);
  const Fn = spec.Point.Fn;
  if (!plan.participants.includes(nodeId)) throw invalid(`${nodeId} is not in the new committee`);
  const ids = Object.keys(plan.dealers).sort();
  const got = dealings.map((d) => d.dealer).sort();
  if (got.length !== ids.length || got.some((d, i) => d !== ids[i]))
    throw invalid('the dealings are not exactly one per dealer of the plan', { dealers: ids, got });
  const self = participantOfNode(spec, nodeId);
  const x = identifierScalar(spec, self);
  const blame = (d: string, reason: Blame['reason'], what: string) =>
    misbehaved(`${plan.kind} dealer ${d}: ${what}`, [
      { participant: d, reason, round: `${plan.kind}.deal`, evidence: what },
    ]);
  const commitments = new Map<string, Elem[]>();
  let share = Fn.ZERO;
  for (const d of dealings) {
    if (d.commitments.length !== plan.threshold)
      throw blame(
        d.dealer,
        'wrong-vector-length',
        `${d.commitments.length} commitments, expected ${plan.threshold}`,
      );
    let C: Elem[];
    try {
      C = d.commitments.map((c, i) => g.decode(c, `commitment ${i}`));
    } catch {
      throw blame(d.dealer, 'invalid-element', 'an invalid commitment');
    }
    if (!equalBytes(C[0]!.toBytes(), plan.dealers[d.dealer]!))
      throw blame(
        d.dealer,
        'wrong-group-key',
        'commitments[0] is not its verifying share (the key would change)',
      );
    commitments.set(d.dealer, C);
    const ct = d.ciphertexts[nodeId];
    if (!ct) throw blame(d.dealer, 'malformed-message', `no sub-share for ${nodeId}`);
    let plaintext: Uint8Array;
    try {
      plaintext = open(ct);
    } catch {
      throw blame(d.dealer, 'malformed-message', `the sub-share for ${nodeId} does not open with its key`);
    }
    try {
      if (
        plaintext.length !== BINDING_LENGTH + spec.scalarLength ||
        !equalBytes(plaintext.subarray(0, BINDING_LENGTH), externalSlot(plan, d.dealer, nodeId, nodeKey))
      )
        throw blame(d.dealer, 'malformed-message', `the sub-share for ${nodeId} is bound to another slot`);
      let sub: bigint;
      try {
        sub = decodeScalar(spec, plaintext.subarray(BINDING_LENGTH), 'sub-share', false);
      } catch {
        throw blame(d.dealer, 'invalid-scalar', 'the sub-share is not a scalar');
      }
      if (!verifyFeldman(spec, x, sub, C, 0, g))
        throw blame(d.dealer, 'bad-share', `the sub-share for ${nodeId} is not on its commitments`);
      share = Fn.add(share, Fn.mul(lagrangeCoefficient(spec, ids, d.dealer), sub));
    } finally {
      plaintext.fill(0);
    }
  }
  const combined: Elem[] = [];
  for (let k = 0; k < plan.threshold; k++)
    combined.push(
      linearCombination(
        g,
        ids.map((d) => commitments.get(d)![k]!),
        ids.map((d) => lagrangeCoefficient(spec, ids, d)),
      ),
    );
  if (!equalBytes(combined[0]!.toBytes(), plan.groupElement))
    throw new ProtocolError('ProtocolAborted', 'the dealings do not add up to the group element');
  const members = plan.participants.map((p) => participantOfNode(spec, p));
  const pub = {
    signers: { min: plan.threshold, max: members.length },
    commitments: combined.map((c) => c.toBytes()),
    verifyingShares: verifyingSharesFrom(spec, combined, members, g),
  } as FrostPublic;
  const vs = pub.verifyingShares[self]!;
  if (!g.baseMul(share).equals(g.decode(vs, 'verifying share')))
    throw new ProtocolError('ProtocolAborted', 'the new share does not match its verifying share');
  if (share === Fn.ZERO) throw new ProtocolError('ProtocolAborted', 'the new share is zero');
  const transcriptHash = externalTranscript(plan, dealings);
  const ctx = confirmationContext({
    sessionId: plan.sessionId,
    participant: self,
    transcriptHash,
    groupElement: plan.groupElement,
    epoch: plan.epoch,
  });
  const confirmation = confirm(spec, share, vs, ctx, undefined, g);
  return {
    key: { public: pub, secret: { identifier: self, signingShare: Fn.toBytes(share) } } as Key,
    public: pub,
    transcriptHash,
    confirmation,
  };
}

// ---------------------------------------------------------------------------------------------
// Import: the secret as a one-member old committee

/**
 * The scalar and group element of an imported secret: RFC 8032 §5.1.5 for an Ed25519 seed (the
 * clamped SHA-512 half, reduced mod L: the same point as the seed's public key); a secp256k1
 * private key as is, except that for FROST_SECP256K1_TR, where the file must hold the BIP341
 * INTERNAL key, the scalar is negated when its point has odd y, so the stored group element is the
 * even-y internal key (BIP340 `lift_x`) as the DKG's is (docs/custody.md). The caller wipes `secret`.
 */
export function importKeyOf(spec: KeySpec, secret: Uint8Array): { scalar: bigint; groupElement: Uint8Array } {
  if (secret.length !== 32) throw invalid(`${spec.name}: the secret must be 32 bytes`);
  const g = groupOf(spec);
  const Fn = spec.Point.Fn;
  let scalar: bigint;
  if (spec.name === 'FROST_ED25519') {
    scalar = Fn.create(ed25519.utils.getExtendedPublicKey(secret).scalar);
  } else if (spec.name === 'FROST_SECP256K1_TR') {
    scalar = decodeScalar(spec, secret, 'private key');
    const P = spec.Point.BASE.multiply(scalar);
    if (!P.hasEvenY()) scalar = Fn.neg(scalar);
  } else {
    throw invalid(`import of ${spec.name} keys is not supported (FROST_ED25519, FROST_SECP256K1_TR)`);
  }
  if (scalar === 0n) throw invalid('the secret is zero');
  return { scalar, groupElement: g.baseMul(scalar).toBytes() };
}

/** The one-dealer plan of an import: identifier 1 holds the whole secret, V_1 = Q. */
export function importDealer(spec: KeySpec): ParticipantId {
  return participantIdOf(spec, 1) as ParticipantId;
}
