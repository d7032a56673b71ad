/**
 * Two-phase epoch state of one key (invariant I5): the shares made by a key event stay PENDING
 * until a complete success certificate exists (a valid confirmation from every new member over
 * the same transcript hash and the same, unchanged group element); only then does the new epoch
 * become ACTIVE and the old one may be destroyed. An abort leaves the active epoch untouched
 * (S-11, the Kudelski/ING and tss-lib reshare failures). Pure: the node persists what this returns.
 */
import type { FrostPublic } from '@noble/curves/abstract/frost.js';
import { equalBytes, toHex } from './bytes.ts';
import { type Confirmation, confirmationContext, verifyConfirmation } from './confirm.ts';
import { ProtocolError, StateError } from './errors.ts';
import type { Epoch, KeyId, ParticipantId, SessionId } from './ids.ts';
import type { ProtocolKind } from './machine.ts';
import { packageGaps } from './package-proof.ts';
import { type KeySpecName, keySpec } from './suites.ts';

/** The success certificate of a key event: one confirmation per new member. */
export type Certificate = {
  readonly protocol: ProtocolKind;
  readonly keyId: KeyId;
  readonly sessionId: SessionId;
  readonly epoch: Epoch;
  readonly transcriptHash: Uint8Array;
  readonly groupElement: Uint8Array;
  readonly confirmations: Readonly<Record<ParticipantId, Confirmation>>;
};

export type EpochRecord = {
  readonly epoch: Epoch;
  /** Public package of the epoch (commitments[0] is the group element). */
  readonly public: FrostPublic;
  /** Transcript hash of the event that made it (absent for the DKG epoch if the caller has none). */
  readonly transcriptHash?: Uint8Array;
  readonly sessionId?: SessionId;
  readonly certificate?: Certificate;
};

export type KeyEpochState = {
  readonly keyId: KeyId;
  readonly keySpec: KeySpecName;
  readonly groupElement: Uint8Array;
  readonly active: EpochRecord;
  readonly pending?: EpochRecord;
};

export function initialEpochState(
  keyId: KeyId,
  spec: KeySpecName,
  pub: FrostPublic,
  epoch: Epoch,
  certificate?: Certificate,
): KeyEpochState {
  const groupElement = pub.commitments[0];
  if (!groupElement) throw new StateError('InvalidKeyState', 'public package has no group element');
  return {
    keyId,
    keySpec: spec,
    groupElement,
    active: certificate ? { epoch, public: pub, certificate } : { epoch, public: pub },
  };
}

/**
 * Records the outcome of a key event as PENDING. Refuses a group element different from the
 * key's (S-11 d: rotation never changes the key), an epoch that does not move forward, and a
 * second pending epoch.
 */
export function propose(
  state: KeyEpochState,
  pending: { epoch: Epoch; public: FrostPublic; transcriptHash: Uint8Array; sessionId: SessionId },
): KeyEpochState {
  if (state.pending) {
    throw new StateError('InvalidKeyState', `epoch ${state.pending.epoch} is already pending for this key`);
  }
  if (pending.epoch <= state.active.epoch) {
    throw new StateError(
      'EpochMismatch',
      `pending epoch ${pending.epoch} must follow active epoch ${state.active.epoch}`,
    );
  }
  const g = pending.public.commitments[0];
  if (!g || !equalBytes(g, state.groupElement)) {
    throw new StateError('InvalidKeyState', 'pending epoch has a different group element than the key');
  }
  return { ...state, pending: { ...pending } };
}

/**
 * Proves an epoch: `rec.public` is consistent with the group element the caller already trusts
 * (protocol/package-proof.ts: Feldman-consistent verifying shares, `min` commitments, constant
 * term equal to `groupElement`), and `cert` is a complete certificate for it: a valid confirmation
 * from every member of the package, all over the record's transcript hash and that group element.
 * The package check runs first and always, so no caller can accept a self-made certificate over a
 * package whose verifying shares the forger chose (security review C-2). Returns the named gaps
 * (`<...>`) and the members whose confirmation is missing or invalid; empty when proven.
 */
export function certificateGaps(
  spec: KeySpecName,
  rec: EpochRecord,
  groupElement: Uint8Array,
  cert: Certificate,
): string[] {
  const s = keySpec(spec);
  const inconsistent = packageGaps(spec, rec.public, groupElement);
  if (inconsistent.length > 0) return inconsistent;
  if (cert.epoch !== rec.epoch) return ['<epoch>'];
  if (rec.transcriptHash && !equalBytes(cert.transcriptHash, rec.transcriptHash)) return ['<transcript>'];
  if (rec.sessionId && cert.sessionId !== rec.sessionId) return ['<session>'];
  if (!equalBytes(cert.groupElement, groupElement)) return ['<group-element>'];
  const members = Object.keys(rec.public.verifyingShares);
  // An empty member list must never make the loop below pass vacuously (S-06).
  if (members.length < rec.public.signers.min) return ['<members>'];
  const gaps: string[] = [];
  for (const m of members) {
    const c = cert.confirmations[m as ParticipantId];
    const ctx = confirmationContext({
      sessionId: cert.sessionId,
      participant: m,
      transcriptHash: cert.transcriptHash,
      groupElement: cert.groupElement,
      epoch: cert.epoch,
    });
    if (!c || !verifyConfirmation(s, rec.public.verifyingShares[m]!, ctx, c)) gaps.push(m);
  }
  return gaps;
}

/**
 * Commits the pending epoch with its certificate. Returns the new state and the epoch whose
 * shares may now be destroyed (the previously active one). Refuses an incomplete certificate.
 */
export function activate(state: KeyEpochState, cert: Certificate): { state: KeyEpochState; destroy: Epoch } {
  const p = state.pending;
  if (!p) throw new StateError('InvalidKeyState', 'no pending epoch to activate');
  const gaps = certificateGaps(state.keySpec, p, state.groupElement, cert);
  if (gaps.length > 0) {
    throw new ProtocolError(
      'ProtocolAborted',
      'certificate is incomplete or invalid; the pending epoch stays pending',
      {
        details: { epoch: p.epoch, missing: gaps },
      },
    );
  }
  const { pending: _dropped, ...rest } = state;
  return { state: { ...rest, active: { ...p, certificate: cert } }, destroy: state.active.epoch };
}

/** Drops the pending epoch (if it is `epoch`, or any when omitted); the active epoch stays usable. */
export function abort(state: KeyEpochState, epoch?: Epoch): KeyEpochState {
  if (!state.pending || (epoch !== undefined && state.pending.epoch !== epoch)) return state;
  const { pending: _dropped, ...rest } = state;
  return rest;
}

/** The epoch a signing run must use: the active one, never a pending one. */
export function signingEpoch(state: KeyEpochState): EpochRecord {
  return state.active;
}

/**
 * Refuses a signing set whose members hold shares of different epochs, or of an epoch other than
 * `expected` (shares of different epochs never combine: issue 3, S-11 e).
 */
export function assertSingleEpoch(
  members: readonly { participant: string; epoch: number }[],
  expected?: number,
): Epoch {
  const first = members[0];
  if (!first) throw new StateError('ValidationError', 'empty signing set');
  const want = expected ?? first.epoch;
  const off = members.filter((m) => m.epoch !== want);
  if (off.length > 0) {
    throw new StateError('EpochMismatch', `signing set mixes epochs (expected ${want})`, {
      details: { offending: off.map((m) => ({ participant: m.participant, epoch: m.epoch })) },
    });
  }
  return want as Epoch;
}

/** Hex of the group element, for logs and audit records (public). */
export function groupElementHex(state: KeyEpochState): string {
  return toHex(state.groupElement);
}
