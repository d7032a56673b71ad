/**
 * Two-phase epoch state of one key (invariant I5): the shares made by a key event stay PENDING
 * until a complete success certificate exists (a valid confirmation from every new member over
 * the same transcript hash and the same, unchanged group element); only then does the new epoch
 * become ACTIVE and the old one may be destroyed. An abort leaves the active epoch untouched
 * (S-11, the Kudelski/ING and tss-lib reshare failures). Pure: the node persists what this returns
 * (node/store.ts runs every epoch transition through these functions, so each rule is written once:
 * the epoch moves forward, one pending epoch at a time, the group element never changes, and only a
 * complete certificate activates).
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

/**
 * A key whose first epoch (made by its DKG) is pending: nothing is active yet, and the group
 * element is the one that epoch's package names (the coordinator checked that every member agrees
 * on it before anyone commits: issue 11, C-1).
 */
export type NewKeyState = {
  readonly keyId: KeyId;
  readonly keySpec: KeySpecName;
  readonly groupElement: Uint8Array;
  readonly active?: undefined;
  readonly pending: EpochRecord;
};

/** What a key event proposes: its epoch and package, and (once known) its transcript and session. */
export type Proposal = {
  epoch: Epoch;
  public: FrostPublic;
  transcriptHash?: Uint8Array;
  sessionId?: SessionId;
};

function groupElementOf(pub: FrostPublic, what: string): Uint8Array {
  const g = pub.commitments[0];
  if (!g) throw new StateError('InvalidKeyState', `${what} has no group element`);
  return g;
}

/** S-11 d: no event changes the key. */
function assertSameGroupElement(state: { groupElement: Uint8Array }, pub: FrostPublic, what: string): void {
  const g = pub.commitments[0];
  if (!g || !equalBytes(g, state.groupElement)) {
    throw new StateError('InvalidKeyState', `${what} has a different group element than the key`);
  }
}

function recordOf(p: Proposal): EpochRecord {
  return {
    epoch: p.epoch,
    public: p.public,
    ...(p.transcriptHash && p.transcriptHash.length > 0 ? { transcriptHash: p.transcriptHash } : {}),
    ...(p.sessionId ? { sessionId: p.sessionId } : {}),
  };
}

export function initialEpochState(
  keyId: KeyId,
  spec: KeySpecName,
  pub: FrostPublic,
  epoch: Epoch,
  certificate?: Certificate,
): KeyEpochState {
  const groupElement = groupElementOf(pub, 'public package');
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
export function propose(state: KeyEpochState, pending: Proposal): KeyEpochState;
export function propose(state: KeyEpochState | NewKeyState, pending: Proposal): KeyEpochState | NewKeyState;
export function propose(state: KeyEpochState | NewKeyState, pending: Proposal): KeyEpochState | NewKeyState {
  if (state.pending) {
    throw new StateError('InvalidKeyState', `epoch ${state.pending.epoch} is already pending for this key`);
  }
  if (state.active && pending.epoch <= state.active.epoch) {
    throw new StateError(
      'EpochMismatch',
      `pending epoch ${pending.epoch} must follow active epoch ${state.active.epoch}`,
    );
  }
  assertSameGroupElement(state, pending.public, 'pending epoch');
  return { ...state, pending: recordOf(pending) };
}

/** A new key's first epoch (its DKG's), PENDING: its package names the group element. */
export function proposeFirst(keyId: KeyId, spec: KeySpecName, pending: Proposal): NewKeyState {
  return {
    keyId,
    keySpec: spec,
    groupElement: groupElementOf(pending.public, 'pending epoch'),
    pending: recordOf(pending),
  };
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
 * shares may now be destroyed (the previously active one; none for a new key's first epoch).
 * Refuses an incomplete certificate.
 */
export function activate(state: KeyEpochState, cert: Certificate): { state: KeyEpochState; destroy: Epoch };
export function activate(
  state: KeyEpochState | NewKeyState,
  cert: Certificate,
): { state: KeyEpochState; destroy?: Epoch };
export function activate(
  state: KeyEpochState | NewKeyState,
  cert: Certificate,
): { state: KeyEpochState; destroy?: Epoch } {
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
  const next: KeyEpochState = { ...rest, active: { ...p, certificate: cert } };
  return state.active ? { state: next, destroy: state.active.epoch } : { state: next };
}

/**
 * Drops the pending epoch (if it is `epoch`, or any when omitted); the active epoch stays usable.
 * A new key whose first epoch is dropped has no state left (undefined: the key never existed).
 */
export function abort(state: KeyEpochState, epoch?: Epoch): KeyEpochState;
export function abort(
  state: KeyEpochState | NewKeyState,
  epoch?: Epoch,
): KeyEpochState | NewKeyState | undefined;
export function abort(
  state: KeyEpochState | NewKeyState,
  epoch?: Epoch,
): KeyEpochState | NewKeyState | undefined {
  if (!state.pending || (epoch !== undefined && state.pending.epoch !== epoch)) return state;
  if (!state.active) return undefined;
  const { pending: _dropped, ...rest } = state;
  return rest;
}

/**
 * Adopts a repaired share's epoch as the active one (repair keeps the epoch, or brings a member
 * that missed events to the committee's): never an epoch older than the active one, never another
 * group element. A pending epoch survives only if it is newer than the repaired one. `state` is
 * undefined when the member holds nothing of the key (the package then names the group element);
 * the caller checked the package against the group element it trusts (package-proof.ts).
 */
export function repaired(
  state: KeyEpochState | NewKeyState | undefined,
  keyId: KeyId,
  spec: KeySpecName,
  rec: EpochRecord,
): KeyEpochState {
  if (!state) return initialEpochState(keyId, spec, rec.public, rec.epoch);
  if (state.active && rec.epoch < state.active.epoch) {
    throw new StateError(
      'EpochMismatch',
      `repaired epoch ${rec.epoch} is older than active epoch ${state.active.epoch}`,
    );
  }
  assertSameGroupElement(state, rec.public, 'repaired epoch');
  const { pending, active: _old, ...rest } = state;
  return {
    ...rest,
    active: rec,
    ...(pending && pending.epoch > rec.epoch ? { pending } : {}),
  };
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
