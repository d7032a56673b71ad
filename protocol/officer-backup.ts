/**
 * Backup of a key to recovery officers (issue 16): the key's committee deals the key itself to an
 * offline officer set, k of m, with the reshare arithmetic of protocol/reshare.ts, while the online
 * epoch stays active. No party ever holds the whole key:
 *
 *   - each dealer d (exactly t members of the committee, the set D) draws a fresh polynomial f_d of
 *     degree k-1 with constant term λ_d·x_d (x_d its share, λ_d its Lagrange coefficient over D at 0),
 *     publishes the Feldman commitments C_d = [f_d's coefficients]·G, and seals f_d(j) to officer j
 *     (officer j has the suite's FROST identifier j, as node-j has in the cluster);
 *   - officer j's share is s_j = Σ_d f_d(j); the officers' polynomial Σ_d f_d has constant term
 *     Σ_d λ_d·x_d = the key, so any k officers hold a k-of-m sharing of the SAME key and can act as
 *     the "old committee" of a normal reshare to fresh nodes (the restore path).
 * (Verifiable secret redistribution, Desmedt–Jajodia 1997; Wong–Wang–Wing 2002.)
 *
 * The bundle is versioned, deterministic CBOR (RFC 8949 §4.2.1 core deterministic encoding, cborg);
 * the byte layout is in docs/backup-format.md. Every dealer proves its own dealing (plan,
 * commitments, ciphertexts) and, once it has checked the assembled bundle, signs the digest of the
 * whole bundle body, both with Schnorr proofs made with its share (protocol/confirm.ts), checkable
 * against its verifying share in the committee package the bundle carries. The dealing proof says
 * which dealing was altered after the fact, or, when it holds over a faulty part, that the dealer
 * itself misbehaved (blame); the bundle signature says every dealer accepted this exact bundle.
 *
 * Flow: the initiator proposes a `BackupPlan`; each dealer runs `dealToOfficers`; the collector
 * `assembleBundle`s; each dealer `signBundle`s (checking everything public and its own dealing);
 * `finishBundle`, `encodeBundle`. Offline: `verifyBundle` (anyone), `officerShare` (each officer),
 * `restoreInputs` (k officers, feeding protocol/reshare.ts as the old committee).
 *
 * What anyone can check (`verifyBundle`): the structure; the committee package is consistent and
 * has the group key as its constant term (protocol/package-proof.ts); every dealer's commitments
 * have exactly k entries and open to λ_d·Y_d, so they add up to the group key; every dealer signed
 * this exact bundle. What only officer j can check (`officerShare`): that the ciphertexts sealed to
 * j open, are bound to their slot, and carry sub-shares on their dealer's commitments. A dealer can
 * seal garbage to one officer without anyone else noticing; that officer's own check catches it and
 * names the dealer. Publicly verifiable encryption (so that anyone could check every ciphertext) is
 * not done.
 *
 * Pure: sealing and opening come in as functions (client/officer-key.ts gives the libsodium ones).
 */
import type { FrostPublic, Key, RNG } from '@noble/curves/abstract/frost.js';
import { numberToBytesBE } from '@noble/curves/utils.js';
import { decode, encode, rfc8949EncodeOptions } from 'cborg';
import { equalBytes, toHex, utf8ToBytes } from './bytes.ts';
import {
  type Confirmation,
  confirm,
  confirmationContext,
  hashTranscript,
  verifyConfirmation,
} from './confirm.ts';
import { decodeIdentifier, decodeScalar, encodeScalar } from './elements.ts';
import { type Blame, DecodeError, KmsError, misbehaved, ProtocolError, StateError } from './errors.ts';
import { type Elem, type Group, groupOf } from './group.ts';
import type { Epoch, KeyId, ParticipantId } from './ids.ts';
import { packageGaps } from './package-proof.ts';
import {
  dealingPolynomial,
  evaluateCommitments,
  evaluatePolynomial,
  identifierScalar,
  lagrangeCoefficient,
  verifyFeldman,
} from './polynomial.ts';
import { CBOR_DECODE_OPTS as CODEC_CBOR_DECODE_OPTS } from './codec.ts';
import { samePublic } from './reshare.ts';
import {
  isKeySpecName,
  type KeySpec,
  type KeySpecName,
  keySpec,
  publicKeyFromGroupElement,
} from './suites.ts';

export const BACKUP_FORMAT = 'tkms-officer-backup';
export const BACKUP_FORMAT_VERSION = 1;
/** The only encryption of format version 1: libsodium `crypto_box_seal` to an X25519 key. */
export const BACKUP_ENCRYPTION = 'libsodium-sealedbox-x25519';
/** crypto_box_SEALBYTES: ephemeral public key (32) and Poly1305 tag (16). */
export const SEALED_BOX_OVERHEAD = 48;
export const OFFICER_PUBLIC_KEY_LENGTH = 32;
/** Length of the slot binding at the start of every sealed plaintext (SHA-256). */
export const BINDING_LENGTH = 32;
export const MAX_OFFICERS = 32;
export const MAX_BUNDLE_BYTES = 1 << 20;
const MAX_DEALERS = 64;
const MAX_COMMITTEE = 256;
const MAX_METADATA_ENTRIES = 32;
const MAX_METADATA_VALUE = 1024;
/** Officer names and metadata keys: 1-64 characters of [A-Za-z0-9._-], starting alphanumeric. */
export const OFFICER_NAME_RE = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/;
const NAME_RE = OFFICER_NAME_RE;
const BUNDLE_ID_RE = /^[A-Za-z0-9][A-Za-z0-9-]{0,63}$/;
const KEY_ID_RE = /^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$/;

// ---------------------------------------------------------------------------------------------
// Types

/** A recovery officer: a name and an X25519 public key (made offline, client/officer-key.ts). */
export type Officer = { readonly name: string; readonly publicKey: Uint8Array };
/** k of m officers: officer at position j-1 has FROST identifier j. */
export type OfficerSet = { readonly officers: readonly Officer[]; readonly threshold: number };

/** Seals `plaintext` to an officer's public key (libsodium sealed box). Must not keep `plaintext`. */
export type Seal = (officerPublicKey: Uint8Array, plaintext: Uint8Array) => Uint8Array;
/** One officer's private key in use: opens what was sealed to `publicKey`; throws otherwise. */
export type OfficerOpener = {
  readonly publicKey: Uint8Array;
  open(ciphertext: Uint8Array): Uint8Array;
};

/** What the initiator proposes and every dealer checks before it deals (coordinator input). */
export type BackupPlan = {
  /** Fresh per backup run (e.g. a UUID): binds every ciphertext and signature to this bundle. */
  readonly bundleId: string;
  readonly keyId: KeyId;
  readonly keySpec: KeySpecName;
  /** The committee's epoch whose shares deal (the officers' sharing outlives later epochs). */
  readonly epoch: Epoch;
  /** Key metadata to carry along (alias, description, origin, ...): public, signed. */
  readonly metadata: Readonly<Record<string, string>>;
  /** The committee's public package of `epoch`. */
  readonly committee: FrostPublic;
  readonly officerSet: OfficerSet;
  /** Exactly `committee.signers.min` members of the committee. */
  readonly dealers: readonly ParticipantId[];
};

/**
 * One dealer's public output: its commitments, one ciphertext per officer (officer order), and its
 * proof (Schnorr, with its share) over the dealing digest: the plan and exactly these bytes. The
 * proof pins each dealing on its dealer, so an altered dealing is named as such, apart from the
 * bundle signatures that any change breaks for everyone.
 */
export type OfficerDealing = {
  readonly dealer: ParticipantId;
  readonly commitments: readonly Uint8Array[];
  readonly ciphertexts: readonly Uint8Array[];
  readonly proof: Confirmation;
};

/** The signed part of a bundle. */
export type BackupBody = Omit<BackupPlan, 'dealers'> & {
  readonly groupElement: Uint8Array;
  /** Sorted by dealer identifier. */
  readonly dealings: readonly OfficerDealing[];
};

/** A dealer's Schnorr proof with its share over the bundle digest (protocol/confirm.ts). */
export type DealerSignature = { readonly dealer: ParticipantId } & Confirmation;

export type BackupBundle = { readonly body: BackupBody; readonly signatures: readonly DealerSignature[] };

/** A named failure of a bundle: which part, and the dealer or officer it concerns. */
export type BundleProblem = {
  /** Path of the failing part, e.g. `dealings[<id>].commitments[0]`, `threshold`, `committee<constant-term>`. */
  readonly part: string;
  readonly reason: string;
  readonly dealer?: ParticipantId;
  /** Officer index (1-based). */
  readonly officer?: number;
  /**
   * Set when the dealer provably made the faulty part (its own dealing proof covers it): the
   * bundle was not altered after the fact, the dealer misbehaved.
   */
  readonly blame?: Blame['reason'];
};

/** An officer's verified share (secret) and its public confirmation. */
export type OfficerShare = {
  readonly officer: number;
  readonly name: string;
  /** The share with the officer package: the old key of a restore reshare. Secret. */
  readonly key: Key;
  readonly confirmation: OfficerConfirmation;
};

/** Proof that officer `officer` holds the share matching its verifying share, bound to the bundle. */
export type OfficerConfirmation = {
  readonly bundleId: string;
  readonly officer: number;
  readonly name: string;
  readonly verifyingShare: Uint8Array;
} & Confirmation;

// ---------------------------------------------------------------------------------------------
// Helpers

const frameNumber = (n: number): Uint8Array => numberToBytesBE(n, 4);
const specOf = (name: KeySpecName): KeySpec => keySpec(name);
const invalid = (message: string, details?: Record<string, unknown>) =>
  new StateError('ValidationError', message, details ? { details } : {});

/** FROST identifier of officer j (1-based), as node-j's. */
export function officerIdentifier(spec: KeySpec, j: number): ParticipantId {
  return spec.frost.Identifier.fromNumber(j) as ParticipantId;
}

/** The SHA-256 every sealed plaintext starts with: the (bundle, key, epoch, dealer, officer) slot. */
export function slotBinding(
  body: Pick<BackupBody, 'bundleId' | 'keyId' | 'keySpec' | 'epoch' | 'officerSet'>,
  dealer: ParticipantId,
  officer: number,
): Uint8Array {
  const spec = specOf(body.keySpec);
  const o = body.officerSet.officers[officer - 1];
  if (!o) throw invalid(`no officer ${officer}`);
  return hashTranscript('officer-backup.slot', [
    utf8ToBytes(body.bundleId),
    utf8ToBytes(body.keyId),
    utf8ToBytes(body.keySpec),
    frameNumber(body.epoch),
    utf8ToBytes(dealer),
    utf8ToBytes(officerIdentifier(spec, officer)),
    o.publicKey,
  ]);
}

function ciphertextLength(spec: KeySpec): number {
  return SEALED_BOX_OVERHEAD + BINDING_LENGTH + spec.scalarLength;
}

function dealerContext(
  body: Pick<BackupBody, 'bundleId' | 'groupElement' | 'epoch'>,
  digest: Uint8Array,
  dealer: ParticipantId,
  role: 'dealing' | 'bundle' = 'bundle',
): Uint8Array {
  return confirmationContext({
    sessionId: `officer-backup/${body.bundleId}/${role === 'bundle' ? 'dealer' : 'dealing'}`,
    participant: dealer,
    transcriptHash: digest,
    groupElement: body.groupElement,
    epoch: body.epoch,
  });
}

function officerContext(body: BackupBody, digest: Uint8Array, officer: number): Uint8Array {
  return confirmationContext({
    sessionId: `officer-backup/${body.bundleId}/officer`,
    participant: officerIdentifier(specOf(body.keySpec), officer),
    transcriptHash: digest,
    groupElement: body.groupElement,
    epoch: body.epoch,
  });
}

/** Problems of an officer set (shared by the plan check and the bundle check). */
function officerSetProblems(set: OfficerSet): BundleProblem[] {
  const out: BundleProblem[] = [];
  const m = set.officers.length;
  if (m < 2 || m > MAX_OFFICERS)
    out.push({ part: 'officers', reason: `needs 2 to ${MAX_OFFICERS} officers, has ${m}` });
  const names = new Set<string>();
  const keys = new Set<string>();
  set.officers.forEach((o, i) => {
    const j = i + 1;
    if (typeof o.name !== 'string' || !NAME_RE.test(o.name))
      out.push({
        part: `officers[${j}].name`,
        officer: j,
        reason: 'must be 1-64 characters of [A-Za-z0-9._-]',
      });
    else if (names.has(o.name))
      out.push({ part: `officers[${j}].name`, officer: j, reason: 'duplicate name' });
    names.add(o.name);
    if (!(o.publicKey instanceof Uint8Array) || o.publicKey.length !== OFFICER_PUBLIC_KEY_LENGTH) {
      out.push({ part: `officers[${j}].publicKey`, officer: j, reason: 'must be a 32-byte X25519 key' });
    } else {
      const hex = toHex(o.publicKey);
      if (keys.has(hex)) out.push({ part: `officers[${j}].publicKey`, officer: j, reason: 'duplicate key' });
      keys.add(hex);
    }
  });
  // k >= 2: no single officer may hold the key; the restore reshare needs an old threshold >= 2.
  if (!Number.isSafeInteger(set.threshold) || set.threshold < 2 || set.threshold > m)
    out.push({ part: 'threshold', reason: `must be an integer between 2 and the number of officers (${m})` });
  return out;
}

function headerProblems(b: Omit<BackupPlan, 'dealers' | 'committee' | 'officerSet'>): BundleProblem[] {
  const out: BundleProblem[] = [];
  if (typeof b.bundleId !== 'string' || !BUNDLE_ID_RE.test(b.bundleId))
    out.push({ part: 'bundleId', reason: 'must be 1-64 characters of [A-Za-z0-9-]' });
  if (typeof b.keyId !== 'string' || !KEY_ID_RE.test(b.keyId))
    out.push({ part: 'keyId', reason: 'must be 1-128 characters of [A-Za-z0-9._:-]' });
  if (!Number.isSafeInteger(b.epoch) || b.epoch < 0)
    out.push({ part: 'epoch', reason: 'must be a non-negative integer' });
  const entries = Object.entries(b.metadata ?? {});
  if (entries.length > MAX_METADATA_ENTRIES)
    out.push({ part: 'metadata', reason: `at most ${MAX_METADATA_ENTRIES} entries` });
  for (const [k, v] of entries) {
    if (!NAME_RE.test(k) || typeof v !== 'string' || v.length > MAX_METADATA_VALUE)
      out.push({
        part: `metadata.${k}`,
        reason: `name of [A-Za-z0-9._-], string value of at most ${MAX_METADATA_VALUE}`,
      });
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// Custody data (issue 14) in the metadata

/**
 * The key's custody data as the bundle's metadata carries it (`chainCode`, `merkleRoot`: lowercase
 * hex, as node/store.ts keeps it): the chain code of its non-hardened derivation and, for a
 * FROST_SECP256K1_TR key with script paths, its BIP341 merkle root. Inside the body, so every
 * dealer's signature covers it; each dealer deals only with its own stored values (node/backup.ts).
 */
export type BundleCustody = { readonly chainCode: string; readonly merkleRoot: string | null };

const HEX32 = /^[0-9a-f]{64}$/;

function custodyProblems(keySpec: string, metadata: Readonly<Record<string, string>>): BundleProblem[] {
  const out: BundleProblem[] = [];
  const cc = metadata['chainCode'];
  const mr = metadata['merkleRoot'];
  if (cc !== undefined && !HEX32.test(cc))
    out.push({ part: 'metadata.chainCode', reason: 'must be 32 bytes, lowercase hex' });
  if (mr !== undefined) {
    if (!HEX32.test(mr)) out.push({ part: 'metadata.merkleRoot', reason: 'must be 32 bytes, lowercase hex' });
    else if (keySpec !== 'FROST_SECP256K1_TR')
      out.push({
        part: 'metadata.merkleRoot',
        reason: `applies to FROST_SECP256K1_TR keys only, not ${keySpec}`,
      });
    else if (cc === undefined)
      out.push({ part: 'metadata.merkleRoot', reason: 'comes with a chainCode (custody data is whole)' });
  }
  return out;
}

/** The custody data a (verified) body carries, or undefined; throws DecodeError naming a malformed part. */
export function bundleCustody(body: {
  readonly keySpec: string;
  readonly metadata: Readonly<Record<string, string>>;
}): BundleCustody | undefined {
  const problems = custodyProblems(body.keySpec, body.metadata);
  if (problems.length > 0) throw new DecodeError('DecodeError', describe(problems));
  const cc = body.metadata['chainCode'];
  return cc === undefined ? undefined : { chainCode: cc, merkleRoot: body.metadata['merkleRoot'] ?? null };
}

/** `metadata` with exactly `custody` as its custody entries (none when undefined). */
export function withCustody(
  metadata: Readonly<Record<string, string>>,
  custody: BundleCustody | undefined,
): Record<string, string> {
  const { chainCode: _c, merkleRoot: _m, ...rest } = metadata;
  if (custody === undefined) return rest;
  return {
    ...rest,
    chainCode: custody.chainCode,
    ...(custody.merkleRoot === null ? {} : { merkleRoot: custody.merkleRoot }),
  };
}

const describe = (ps: readonly BundleProblem[]) => ps.map((p) => `${p.part}: ${p.reason}`).join('; ');

// ---------------------------------------------------------------------------------------------
// Dealing (each dealer, on its node)

/** Checks a plan before anything is dealt or sent; throws StateError('ValidationError') naming the part. */
export function validatePlan(plan: BackupPlan): void {
  if (!isKeySpecName(plan.keySpec)) throw invalid('keySpec: not a registered key spec');
  const problems = [
    ...headerProblems(plan),
    ...custodyProblems(plan.keySpec, plan.metadata),
    ...officerSetProblems(plan.officerSet),
  ];
  const t = plan.committee.signers.min;
  const gaps = packageGaps(plan.keySpec, plan.committee, plan.committee.commitments[0] ?? new Uint8Array(0));
  for (const gap of gaps)
    problems.push({ part: `committee${gap}`, reason: 'public package is not consistent' });
  const dealers = plan.dealers;
  if (dealers.length !== t)
    problems.push({ part: 'dealers', reason: `needs exactly ${t} dealers, has ${dealers.length}` });
  if (new Set(dealers).size !== dealers.length) problems.push({ part: 'dealers', reason: 'duplicates' });
  for (const d of dealers) {
    if (!plan.committee.verifyingShares[d])
      problems.push({ part: 'dealers', dealer: d, reason: `${d} is not in the committee` });
  }
  if (problems.length > 0) throw invalid(`backup plan: ${describe(problems)}`, { problems });
}

/**
 * Dealer `key`'s part of the backup: commitments to f_d and f_d(j) sealed to each officer j, each
 * plaintext = slot binding ‖ SerializeScalar(f_d(j)). The coefficients and plaintexts are zeroed
 * once sealed (bigints are immutable: the zeroing is best effort, as in reshare.ts).
 */
export function dealToOfficers(plan: BackupPlan, key: Key, seal: Seal, rng?: RNG): OfficerDealing {
  validatePlan(plan);
  const spec = specOf(plan.keySpec);
  const g = groupOf(spec);
  const Fn = spec.Point.Fn;
  const self = key.secret.identifier as ParticipantId;
  if (!plan.dealers.includes(self)) throw invalid(`${self} is not a dealer of this backup`);
  if (!samePublic(key.public, plan.committee))
    throw new StateError('ContextMismatch', 'the plan carries another public package than this share’s');
  const x = decodeScalar(spec, key.secret.signingShare, 'share');
  if (!g.baseMul(x).equals(g.decode(plan.committee.verifyingShares[self]!, 'verifying share')))
    throw new StateError('ContextMismatch', 'share does not match its verifying share');
  const dealers = [...plan.dealers].sort();
  const lambda = lagrangeCoefficient(spec, dealers, self);
  const { coefficients, commitments } = dealingPolynomial(
    spec,
    plan.officerSet.threshold,
    Fn.mul(lambda, x),
    g,
    rng,
  );
  const body = { ...plan, groupElement: plan.committee.commitments[0]! };
  const ciphertexts = plan.officerSet.officers.map((o, i) => {
    const j = i + 1;
    const sub = evaluatePolynomial(spec, coefficients, identifierScalar(spec, officerIdentifier(spec, j)));
    const plaintext = new Uint8Array(BINDING_LENGTH + spec.scalarLength);
    plaintext.set(slotBinding(body, self, j), 0);
    const scalar = encodeScalar(spec, sub);
    plaintext.set(scalar, BINDING_LENGTH);
    scalar.fill(0);
    try {
      return seal(o.publicKey, plaintext);
    } finally {
      plaintext.fill(0);
    }
  });
  coefficients.fill(0n);
  return proveDealing(plan, key, {
    dealer: self,
    commitments: commitments.map((c) => c.toBytes()),
    ciphertexts,
  });
}

/** The dealer's proof over its dealing (dealToOfficers calls it; exported for adversarial tests). */
export function proveDealing(
  plan: BackupPlan,
  key: Key,
  dealing: Pick<OfficerDealing, 'dealer' | 'commitments' | 'ciphertexts'>,
): OfficerDealing {
  const spec = specOf(plan.keySpec);
  const self = key.secret.identifier as ParticipantId;
  if (dealing.dealer !== self) throw invalid('that dealing is not this dealer’s');
  const body = { ...plan, groupElement: plan.committee.commitments[0]! };
  const digest = dealingDigest(body, [...plan.dealers].sort(), dealing);
  const x = decodeScalar(spec, key.secret.signingShare, 'share');
  const proof = confirm(
    spec,
    x,
    plan.committee.verifyingShares[self]!,
    dealerContext(body, digest, self, 'dealing'),
  );
  return {
    dealer: dealing.dealer,
    commitments: [...dealing.commitments],
    ciphertexts: [...dealing.ciphertexts],
    proof: { R: proof.R, z: proof.z },
  };
}

/** The unsigned bundle from every dealer's output (whoever collects them: the coordinator). */
export function assembleBundle(plan: BackupPlan, dealings: readonly OfficerDealing[]): BackupBody {
  validatePlan(plan);
  const dealers = [...plan.dealers].sort();
  const byDealer = new Map(dealings.map((d) => [d.dealer, d] as const));
  if (byDealer.size !== dealings.length) throw invalid('two dealings from one dealer');
  for (const d of dealings)
    if (!dealers.includes(d.dealer)) throw invalid(`dealing from ${d.dealer}, who is not a dealer`);
  const missing = dealers.filter((d) => !byDealer.has(d));
  if (missing.length > 0) throw invalid(`no dealing from ${missing.join(', ')}`, { missing });
  const { dealers: _d, ...rest } = plan;
  return {
    ...rest,
    groupElement: plan.committee.commitments[0]!,
    dealings: dealers.map((d) => byDealer.get(d)!),
  };
}

/**
 * Dealer `key` signs the assembled body, after checking everything public in it and that its own
 * dealing is in it unchanged (so the collector cannot swap it).
 */
export function signBundle(body: BackupBody, key: Key, mine: OfficerDealing): DealerSignature {
  const problems = bodyProblems(body);
  if (problems.length > 0) throw invalid(`refusing to sign the bundle: ${describe(problems)}`, { problems });
  const self = key.secret.identifier as ParticipantId;
  if (mine.dealer !== self) throw invalid('that dealing is not this dealer’s');
  if (!samePublic(key.public, body.committee))
    throw new StateError('ContextMismatch', 'the bundle carries another public package than this share’s');
  const theirs = body.dealings.find((d) => d.dealer === self);
  const same = (a: readonly Uint8Array[], b: readonly Uint8Array[]) =>
    a.length === b.length && a.every((x, i) => equalBytes(x, b[i]!));
  if (
    !theirs ||
    !same(theirs.commitments, mine.commitments) ||
    !same(theirs.ciphertexts, mine.ciphertexts) ||
    !same([theirs.proof.R, theirs.proof.z], [mine.proof.R, mine.proof.z])
  )
    throw new StateError('ContextMismatch', `the bundle does not carry ${self}'s dealing as dealt`);
  const spec = specOf(body.keySpec);
  const x = decodeScalar(spec, key.secret.signingShare, 'share');
  const c = confirm(
    spec,
    x,
    body.committee.verifyingShares[self]!,
    dealerContext(body, bundleDigest(body), self),
  );
  return { dealer: self, R: c.R, z: c.z };
}

/** The signed bundle; signatures sorted by dealer. Checks nothing: `verifyBundle` does. */
export function finishBundle(body: BackupBody, signatures: readonly DealerSignature[]): BackupBundle {
  return {
    body,
    signatures: [...signatures].sort((a, b) => (a.dealer < b.dealer ? -1 : a.dealer > b.dealer ? 1 : 0)),
  };
}

// ---------------------------------------------------------------------------------------------
// Encoding (docs/backup-format.md)

/** The plan part of the body: everything but the dealings (the dealers are listed in the dealings). */
function planToWire(body: Omit<BackupBody, 'dealings'>): Record<string, unknown> {
  return {
    bundleId: body.bundleId,
    keyId: body.keyId,
    keySpec: body.keySpec,
    epoch: body.epoch,
    groupElement: body.groupElement,
    metadata: { ...body.metadata },
    committee: {
      min: body.committee.signers.min,
      max: body.committee.signers.max,
      commitments: [...body.committee.commitments],
      verifyingShares: { ...body.committee.verifyingShares },
    },
    encryption: BACKUP_ENCRYPTION,
    officers: body.officerSet.officers.map((o) => ({ name: o.name, publicKey: o.publicKey })),
    threshold: body.officerSet.threshold,
  };
}

function dealingToWire(d: OfficerDealing): Record<string, unknown> {
  return {
    dealer: d.dealer,
    commitments: [...d.commitments],
    ciphertexts: [...d.ciphertexts],
    proof: { R: d.proof.R, z: d.proof.z },
  };
}

function bodyToWire(body: BackupBody): Record<string, unknown> {
  return { ...planToWire(body), dealings: body.dealings.map(dealingToWire) };
}

const cbor = (v: unknown): Uint8Array => encode(v, rfc8949EncodeOptions);

/**
 * What a dealer's dealing proof covers: the plan (with the sorted dealer list) and its own
 * commitments and ciphertexts.
 */
export function dealingDigest(
  body: Omit<BackupBody, 'dealings'>,
  dealers: readonly ParticipantId[],
  d: Pick<OfficerDealing, 'dealer' | 'commitments' | 'ciphertexts'>,
): Uint8Array {
  return hashTranscript(`officer-backup.dealing/v${BACKUP_FORMAT_VERSION}`, [
    cbor({ ...planToWire(body), dealers: [...dealers] }),
    cbor({ dealer: d.dealer, commitments: [...d.commitments], ciphertexts: [...d.ciphertexts] }),
  ]);
}

/** SHA-256 over the canonical CBOR of the body: what every dealer and officer signs. */
export function bundleDigest(body: BackupBody): Uint8Array {
  return hashTranscript(`officer-backup.bundle/v${BACKUP_FORMAT_VERSION}`, [cbor(bodyToWire(body))]);
}

export function encodeBundle(bundle: BackupBundle): Uint8Array {
  return cbor({
    format: BACKUP_FORMAT,
    version: BACKUP_FORMAT_VERSION,
    body: bodyToWire(bundle.body),
    signatures: bundle.signatures.map((s) => ({ dealer: s.dealer, R: s.R, z: s.z })),
  });
}

const CBOR_DECODE_OPTS = { ...CODEC_CBOR_DECODE_OPTS, allowUndefinedAsMapKey: false } as const;

const bad = (path: string, what: string) => new DecodeError('DecodeError', `backup bundle: ${path} ${what}`);

function map(v: unknown, path: string, keys: readonly string[] | 'any'): Map<string, unknown> {
  if (!(v instanceof Map)) throw bad(path, 'must be a map');
  for (const k of v.keys()) {
    if (typeof k !== 'string') throw bad(path, 'must have string keys');
    if (keys !== 'any' && !keys.includes(k)) throw bad(path, `has an unknown field ${JSON.stringify(k)}`);
  }
  if (keys !== 'any') for (const k of keys) if (!v.has(k)) throw bad(`${path}.${k}`, 'is missing');
  return v as Map<string, unknown>;
}
function str(v: unknown, path: string, max = 1024): string {
  if (typeof v !== 'string' || v.length > max)
    throw bad(path, `must be a string of at most ${max} characters`);
  return v;
}
function uint(v: unknown, path: string): number {
  if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < 0)
    throw bad(path, 'must be a non-negative integer');
  return v;
}
function bytes(v: unknown, path: string, max = 256): Uint8Array {
  if (!(v instanceof Uint8Array) || v.length > max)
    throw bad(path, `must be a byte string of at most ${max} bytes`);
  return v;
}
function list(v: unknown, path: string, max: number): unknown[] {
  if (!Array.isArray(v) || v.length > max) throw bad(path, `must be an array of at most ${max} items`);
  return v;
}

/**
 * Parses a bundle file: size-bounded, canonical (re-encoding must give the same bytes), every
 * field typed. Semantic checks are `verifyBundle`'s. Throws DecodeError naming the field.
 */
export function decodeBundle(file: Uint8Array): BackupBundle {
  if (!(file instanceof Uint8Array)) throw bad('file', 'must be bytes');
  if (file.length > MAX_BUNDLE_BYTES)
    throw new DecodeError(
      'MessageTooLarge',
      `backup bundle: ${file.length} bytes exceeds ${MAX_BUNDLE_BYTES}`,
    );
  let raw: unknown;
  try {
    raw = decode(file, CBOR_DECODE_OPTS);
  } catch {
    throw bad('file', 'is not well-formed deterministic CBOR');
  }
  if (!(raw instanceof Map)) throw bad('file', 'must be a map');
  if (raw.get('format') !== BACKUP_FORMAT) throw bad('format', `must be ${JSON.stringify(BACKUP_FORMAT)}`);
  if (raw.get('version') !== BACKUP_FORMAT_VERSION)
    throw new DecodeError(
      'UnsupportedVersion',
      `backup bundle: version ${String(raw.get('version'))} is not supported`,
    );
  const top = map(raw, 'file', ['format', 'version', 'body', 'signatures']);
  const b = map(top.get('body'), 'body', [
    'bundleId',
    'keyId',
    'keySpec',
    'epoch',
    'groupElement',
    'metadata',
    'committee',
    'encryption',
    'officers',
    'threshold',
    'dealings',
  ]);
  const specName = str(b.get('keySpec'), 'body.keySpec', 64);
  if (!isKeySpecName(specName)) throw bad('body.keySpec', 'is not a registered key spec');
  const spec = specOf(specName);
  if (b.get('encryption') !== BACKUP_ENCRYPTION) throw bad('body.encryption', `must be ${BACKUP_ENCRYPTION}`);
  const id = (v: unknown, path: string) => {
    try {
      return decodeIdentifier(spec, v, path) as ParticipantId;
    } catch {
      throw bad(path, 'must be a participant identifier');
    }
  };
  const meta = map(b.get('metadata'), 'body.metadata', 'any');
  if (meta.size > MAX_METADATA_ENTRIES)
    throw bad('body.metadata', `has more than ${MAX_METADATA_ENTRIES} entries`);
  const metadata: Record<string, string> = {};
  for (const [k, v] of meta) {
    if (k === '__proto__') throw bad('body.metadata', 'has a forbidden key');
    metadata[k] = str(v, `body.metadata.${k}`, MAX_METADATA_VALUE);
  }
  const c = map(b.get('committee'), 'body.committee', ['min', 'max', 'commitments', 'verifyingShares']);
  const vsMap = map(c.get('verifyingShares'), 'body.committee.verifyingShares', 'any');
  if (vsMap.size > MAX_COMMITTEE)
    throw bad('body.committee.verifyingShares', `has more than ${MAX_COMMITTEE} members`);
  const verifyingShares: Record<string, Uint8Array> = {};
  for (const [k, v] of vsMap)
    verifyingShares[id(k, 'body.committee.verifyingShares key')] = bytes(
      v,
      `body.committee.verifyingShares.${k}`,
    );
  const committee = {
    signers: { min: uint(c.get('min'), 'body.committee.min'), max: uint(c.get('max'), 'body.committee.max') },
    commitments: list(c.get('commitments'), 'body.committee.commitments', MAX_COMMITTEE).map((x, i) =>
      bytes(x, `body.committee.commitments[${i}]`),
    ),
    verifyingShares,
  } as FrostPublic;
  const officers = list(b.get('officers'), 'body.officers', MAX_OFFICERS).map((o, i) => {
    const m = map(o, `body.officers[${i + 1}]`, ['name', 'publicKey']);
    return {
      name: str(m.get('name'), `body.officers[${i + 1}].name`, 64),
      publicKey: bytes(m.get('publicKey'), `body.officers[${i + 1}].publicKey`),
    };
  });
  const dealings = list(b.get('dealings'), 'body.dealings', MAX_DEALERS).map((d, i) => {
    const m = map(d, `body.dealings[${i}]`, ['dealer', 'commitments', 'ciphertexts', 'proof']);
    const dealer = id(m.get('dealer'), `body.dealings[${i}].dealer`);
    const proof = map(m.get('proof'), `body.dealings[${dealer}].proof`, ['R', 'z']);
    return {
      dealer,
      commitments: list(m.get('commitments'), `body.dealings[${dealer}].commitments`, MAX_OFFICERS).map(
        (x, k) => bytes(x, `body.dealings[${dealer}].commitments[${k}]`),
      ),
      ciphertexts: list(m.get('ciphertexts'), `body.dealings[${dealer}].ciphertexts`, MAX_OFFICERS).map(
        (x, j) => bytes(x, `body.dealings[${dealer}].ciphertexts[${j + 1}]`),
      ),
      proof: {
        R: bytes(proof.get('R'), `body.dealings[${dealer}].proof.R`),
        z: bytes(proof.get('z'), `body.dealings[${dealer}].proof.z`),
      },
    };
  });
  const signatures = list(top.get('signatures'), 'signatures', MAX_DEALERS).map((s, i) => {
    const m = map(s, `signatures[${i}]`, ['dealer', 'R', 'z']);
    return {
      dealer: id(m.get('dealer'), `signatures[${i}].dealer`),
      R: bytes(m.get('R'), `signatures[${i}].R`),
      z: bytes(m.get('z'), `signatures[${i}].z`),
    };
  });
  const bundle: BackupBundle = {
    body: {
      bundleId: str(b.get('bundleId'), 'body.bundleId', 64),
      keyId: str(b.get('keyId'), 'body.keyId', 128) as KeyId,
      keySpec: specName,
      epoch: uint(b.get('epoch'), 'body.epoch') as Epoch,
      groupElement: bytes(b.get('groupElement'), 'body.groupElement'),
      metadata,
      committee,
      officerSet: { officers, threshold: uint(b.get('threshold'), 'body.threshold') },
      dealings,
    },
    signatures,
  };
  // One bundle, one encoding: otherwise the same bundle could have two digests.
  if (!equalBytes(encodeBundle(bundle), file)) throw bad('file', 'is not canonically encoded');
  return bundle;
}

// ---------------------------------------------------------------------------------------------
// Public verification (anyone)

/** Everything public about the body (all but the signatures). */
function bodyProblems(body: BackupBody, expect: VerifyExpectations = {}): BundleProblem[] {
  if (!isKeySpecName(body.keySpec)) return [{ part: 'keySpec', reason: 'not a registered key spec' }];
  const spec = specOf(body.keySpec);
  const g = groupOf(spec);
  const out: BundleProblem[] = [
    ...headerProblems(body),
    ...custodyProblems(body.keySpec, body.metadata),
    ...officerSetProblems(body.officerSet),
  ];
  if (expect.keyId !== undefined && body.keyId !== expect.keyId)
    out.push({ part: 'keyId', reason: `is ${body.keyId}, expected ${expect.keyId}` });
  const m = body.officerSet.officers.length;
  const k = body.officerSet.threshold;
  const setOk = out.every((p) => !p.part.startsWith('officers') && p.part !== 'threshold');

  // The group key, and the committee package against it (protocol/package-proof.ts).
  let groupOk = true;
  let Q: Elem | undefined;
  try {
    Q = g.decode(body.groupElement, 'group element');
  } catch {
    groupOk = false;
    out.push({ part: 'groupElement', reason: `not a valid ${spec.curve} element` });
  }
  if (groupOk && expect.publicKey !== undefined) {
    if (!equalBytes(publicKeyFromGroupElement(spec, body.groupElement), expect.publicKey)) {
      groupOk = false;
      out.push({ part: 'groupElement', reason: 'is not the expected public key' });
    }
  }
  const gaps = packageGaps(body.keySpec, body.committee, body.groupElement);
  for (const gap of gaps)
    out.push({ part: `committee${gap}`, reason: 'committee package is not consistent with the group key' });
  const committeeOk = groupOk && gaps.length === 0;

  // Dealers: exactly t distinct members of the committee, sorted.
  const t = body.committee.signers.min;
  const dealers = body.dealings.map((d) => d.dealer);
  let dealersOk = true;
  if (dealers.length !== t) {
    dealersOk = false;
    out.push({
      part: 'dealings',
      reason: `needs exactly ${t} dealers (the committee threshold), has ${dealers.length}`,
    });
  }
  if (new Set(dealers).size !== dealers.length || dealers.some((d, i) => i > 0 && dealers[i - 1]! >= d)) {
    dealersOk = false;
    out.push({ part: 'dealings', reason: 'dealers must be distinct and sorted' });
  }
  for (const d of dealers) {
    if (!body.committee.verifyingShares[d]) {
      dealersOk = false;
      out.push({ part: `dealings[${d}].dealer`, dealer: d, reason: 'not a member of the committee' });
    }
  }

  const commitments = new Map<ParticipantId, Elem[]>();
  let allConstantsOk = committeeOk && dealersOk;
  for (const d of body.dealings) {
    const at = `dealings[${d.dealer}]`;
    // The dealer's proof over its own dealing: if it holds, whatever is wrong below is the
    // dealer's doing (blame); if not, the dealing was altered after the dealer made it.
    const Yd = body.committee.verifyingShares[d.dealer];
    const proven =
      Yd !== undefined &&
      verifyConfirmation(
        spec,
        Yd,
        dealerContext(body, dealingDigest(body, dealers, d), d.dealer, 'dealing'),
        d.proof,
      );
    if (!proven)
      out.push({
        part: `${at}.proof`,
        dealer: d.dealer,
        reason: 'the commitments or ciphertexts are not the ones the dealer proved (altered after dealing)',
      });
    const fault = (p: Omit<BundleProblem, 'dealer' | 'blame'>, blame: Blame['reason']) =>
      out.push(proven ? { ...p, dealer: d.dealer, blame } : { ...p, dealer: d.dealer });
    let points: Elem[] | undefined;
    if (setOk && d.commitments.length !== k) {
      fault(
        {
          part: `${at}.commitments`,
          reason: `has ${d.commitments.length} entries, the officer threshold needs ${k}`,
        },
        'wrong-vector-length',
      );
    } else {
      try {
        points = d.commitments.map((c, i) => g.decode(c, `${at}.commitments[${i}]`));
      } catch {
        fault({ part: `${at}.commitments`, reason: 'holds an invalid group element' }, 'invalid-element');
      }
    }
    if (points && committeeOk && dealersOk) {
      // C_d[0] must be λ_d·Y_d: the dealer shares exactly its Lagrange-weighted share (public data).
      const Y = g.decode(body.committee.verifyingShares[d.dealer]!, 'verifying share');
      const want = Y.multiplyUnsafe(lagrangeCoefficient(spec, dealers, d.dealer));
      if (!points[0]!.equals(want)) {
        allConstantsOk = false;
        fault(
          {
            part: `${at}.commitments[0]`,
            reason: 'does not open to λ·Y of the dealer (the key would change)',
          },
          'wrong-group-key',
        );
      }
    } else allConstantsOk = false;
    if (points) commitments.set(d.dealer, points);
    if (setOk && d.ciphertexts.length !== m)
      fault(
        {
          part: `${at}.ciphertexts`,
          reason: `has ${d.ciphertexts.length} entries, expected one per officer (${m})`,
        },
        'malformed-message',
      );
    d.ciphertexts.forEach((c, i) => {
      if (c.length !== ciphertextLength(spec))
        fault(
          {
            part: `${at}.ciphertexts[${i + 1}]`,
            officer: i + 1,
            reason: `must be ${ciphertextLength(spec)} bytes`,
          },
          'malformed-message',
        );
    });
  }
  if (allConstantsOk && Q && commitments.size === dealers.length) {
    // Implied by the checks above (the package interpolates to Q at the dealer set); kept explicit.
    const sum = dealers.reduce((acc, d) => acc.add(commitments.get(d)![0]!), g.ZERO);
    if (!sum.equals(Q))
      out.push({ part: 'dealings', reason: 'constant terms do not add up to the group key' });
  }
  if (out.length === 0) {
    // No officer verifying share may be the identity (it would be unusable in a restore).
    for (let j = 1; j <= m; j++) {
      const Y = officerVerifyingShare(spec, g, [...commitments.values()], j);
      if (Y.is0())
        out.push({ part: `officers[${j}]`, officer: j, reason: 'verifying share is the identity' });
    }
  }
  return out;
}

function officerVerifyingShare(spec: KeySpec, g: Group, all: readonly (readonly Elem[])[], j: number): Elem {
  const x = identifierScalar(spec, officerIdentifier(spec, j));
  return all.reduce((acc, c) => acc.add(evaluateCommitments(spec, c, x, 0, g)), g.ZERO);
}

/** What the verifier already trusts (e.g. the key's public key as the cluster reports it). */
export type VerifyExpectations = { readonly keyId?: string; readonly publicKey?: Uint8Array };

/**
 * Anyone's check of a bundle: structure, the committee package against the group key, every
 * dealer's commitments (k entries, constant term λ_d·Y_d, adding up to the group key), and every
 * dealer's signature over this bundle. Empty: valid. Each problem names its part (and dealer).
 */
export function verifyBundle(bundle: BackupBundle, expect: VerifyExpectations = {}): BundleProblem[] {
  const out = bodyProblems(bundle.body, expect);
  if (!isKeySpecName(bundle.body.keySpec)) return out;
  const spec = specOf(bundle.body.keySpec);
  const digest = bundleDigest(bundle.body);
  const seen = new Set<string>();
  for (const s of bundle.signatures) {
    if (seen.has(s.dealer) || !bundle.body.dealings.some((d) => d.dealer === s.dealer))
      out.push({ part: `signatures[${s.dealer}]`, dealer: s.dealer, reason: 'not one per dealer' });
    seen.add(s.dealer);
  }
  for (const d of bundle.body.dealings) {
    const at = `dealings[${d.dealer}].signature`;
    const sig = bundle.signatures.find((s) => s.dealer === d.dealer);
    const Y = bundle.body.committee.verifyingShares[d.dealer];
    if (!sig) out.push({ part: at, dealer: d.dealer, reason: 'missing' });
    else if (!Y || !verifyConfirmation(spec, Y, dealerContext(bundle.body, digest, d.dealer), sig))
      out.push({
        part: at,
        dealer: d.dealer,
        reason: 'does not verify against the dealer’s verifying share over this bundle',
      });
  }
  return out;
}

/**
 * Throws when `verifyBundle` finds anything, with the problems in `details.problems`:
 * ParticipantMisbehaved naming the dealers that provably made a faulty part; else InvalidSignature
 * when proofs or signatures fail (the bundle was altered or is not this key's); else ValidationError.
 */
export function assertValidBundle(bundle: BackupBundle, expect: VerifyExpectations = {}): void {
  const problems = verifyBundle(bundle, expect);
  if (problems.length === 0) return;
  const culprits: Blame[] = problems.flatMap((p) =>
    p.dealer && p.blame
      ? [{ participant: p.dealer, reason: p.blame, round: 'officer-backup', evidence: p.part }]
      : [],
  );
  const message = `backup bundle does not verify: ${describe(problems)}`;
  if (culprits.length > 0) throw misbehaved(message, culprits, { problems });
  if (problems.some((p) => p.part.endsWith('.signature') || p.part.endsWith('.proof')))
    throw new KmsError('InvalidSignature', message, { details: { problems } });
  throw invalid(message, { problems });
}

/**
 * The officers' public package (min = k, commitments Σ_d C_d, verifying shares Σ_d eval(C_d, j)):
 * the "old committee" a restore reshares from. Throws when the bundle does not verify.
 */
export function officerPackage(bundle: BackupBundle): FrostPublic {
  assertValidBundle(bundle);
  return officerPackageOf(bundle.body);
}

function officerPackageOf(body: BackupBody): FrostPublic {
  const spec = specOf(body.keySpec);
  const g = groupOf(spec);
  const all = body.dealings.map((d) => d.commitments.map((c) => g.decode(c, 'commitment')));
  const k = body.officerSet.threshold;
  const commitments: Uint8Array[] = [];
  for (let i = 0; i < k; i++) commitments.push(all.reduce((acc, c) => acc.add(c[i]!), g.ZERO).toBytes());
  const verifyingShares: Record<string, Uint8Array> = {};
  body.officerSet.officers.forEach((_, i) => {
    verifyingShares[officerIdentifier(spec, i + 1)] = officerVerifyingShare(spec, g, all, i + 1).toBytes();
  });
  return {
    signers: { min: k, max: body.officerSet.officers.length },
    commitments,
    verifyingShares,
  } as FrostPublic;
}

// ---------------------------------------------------------------------------------------------
// Officer side (offline, with the officer's private key)

/** Index (1-based) of the officer with this public key, or a clear error. */
export function officerIndexOf(bundle: BackupBundle, publicKey: Uint8Array): number {
  const i = bundle.body.officerSet.officers.findIndex((o) => equalBytes(o.publicKey, publicKey));
  if (i < 0)
    throw invalid(`officer key ${toHex(publicKey)} is not one of this backup's officers`, {
      officers: bundle.body.officerSet.officers.map((o) => o.name),
    });
  return i + 1;
}

/**
 * Officer j's check and share: verifies the bundle, opens the sub-share of every dealer, checks
 * its slot binding and its dealer's commitments (Feldman, RFC 9591 Appendix C.2), sums them, checks
 * the sum against the officer verifying share, and confirms possession with a Schnorr proof over
 * the bundle digest that reveals nothing. A dealer whose ciphertext fails is named.
 */
export function officerShare(
  bundle: BackupBundle,
  officerIndex: number,
  opener: OfficerOpener,
): OfficerShare {
  assertValidBundle(bundle);
  const body = bundle.body;
  const officer = body.officerSet.officers[officerIndex - 1];
  if (!Number.isSafeInteger(officerIndex) || !officer)
    throw invalid(`no officer ${officerIndex} in this backup`);
  if (!equalBytes(opener.publicKey, officer.publicKey))
    throw invalid(
      `this officer key is not ${officer.name}'s (officer ${officerIndex}): wrong officer key file`,
      {
        officer: officer.name,
      },
    );
  const spec = specOf(body.keySpec);
  const g = groupOf(spec);
  const Fn = spec.Point.Fn;
  const x = identifierScalar(spec, officerIdentifier(spec, officerIndex));
  let share = Fn.ZERO;
  for (const d of body.dealings) {
    const part = `dealings[${d.dealer}].ciphertexts[${officerIndex}]`;
    const blame = (reason: string, b: Blame['reason']) =>
      misbehaved(
        `dealer ${d.dealer} sealed a bad sub-share to ${officer.name}: ${reason}`,
        [{ participant: d.dealer, reason: b, round: 'officer-backup', evidence: part }],
        { part, dealer: d.dealer, officer: officerIndex },
      );
    let plaintext: Uint8Array;
    try {
      plaintext = opener.open(d.ciphertexts[officerIndex - 1]!);
    } catch {
      // The key is the officer's (checked above), so the dealer sealed this to someone else.
      throw blame('the ciphertext does not open with the officer key', 'malformed-message');
    }
    try {
      if (plaintext.length !== BINDING_LENGTH + spec.scalarLength)
        throw blame('wrong plaintext length', 'malformed-message');
      if (!equalBytes(plaintext.subarray(0, BINDING_LENGTH), slotBinding(body, d.dealer, officerIndex)))
        throw blame(
          'the sub-share is bound to another bundle, key, epoch, dealer or officer',
          'malformed-message',
        );
      let sub: bigint;
      try {
        sub = decodeScalar(spec, plaintext.subarray(BINDING_LENGTH), 'sub-share', false);
      } catch {
        throw blame('the sub-share is not a scalar', 'invalid-scalar');
      }
      const C = d.commitments.map((c) => g.decode(c, 'commitment'));
      if (!verifyFeldman(spec, x, sub, C, 0, g))
        throw blame('the sub-share is not on the dealer’s commitments', 'bad-share');
      share = Fn.add(share, sub);
    } finally {
      plaintext.fill(0);
    }
  }
  const pub = officerPackageOf(body);
  const id = officerIdentifier(spec, officerIndex);
  const vs = pub.verifyingShares[id]!;
  // Implied by the per-dealer Feldman checks; a last guard before the share is used.
  if (!g.baseMul(share).equals(g.decode(vs, 'officer verifying share')))
    throw new ProtocolError('ProtocolAborted', 'officer share does not match its verifying share');
  const c = confirm(spec, share, vs, officerContext(body, bundleDigest(body), officerIndex));
  const key = { public: pub, secret: { identifier: id, signingShare: spec.Point.Fn.toBytes(share) } } as Key;
  return {
    officer: officerIndex,
    name: officer.name,
    key,
    confirmation: {
      bundleId: body.bundleId,
      officer: officerIndex,
      name: officer.name,
      verifyingShare: vs,
      R: c.R,
      z: c.z,
    },
  };
}

/** Anyone's check of an officer's confirmation against the (verified) bundle. */
export function verifyOfficerConfirmation(bundle: BackupBundle, c: OfficerConfirmation): boolean {
  const body = bundle.body;
  if (c.bundleId !== body.bundleId || verifyBundle(bundle).length > 0) return false;
  const officer = body.officerSet.officers[c.officer - 1];
  if (!officer || officer.name !== c.name) return false;
  const spec = specOf(body.keySpec);
  const vs = officerPackageOf(body).verifyingShares[officerIdentifier(spec, c.officer)]!;
  if (!equalBytes(vs, c.verifyingShare)) return false;
  return verifyConfirmation(spec, vs, officerContext(body, bundleDigest(body), c.officer), c);
}

// ---------------------------------------------------------------------------------------------
// Restore (the officers as the old committee of a reshare)

/** What a reshare from the officer set takes (protocol/reshare.ts ReshareConfig's old side). */
export type RestoreInputs = {
  readonly oldPublic: FrostPublic;
  readonly oldThreshold: number;
  /** Exactly k officer identifiers (the dealers of the reshare). */
  readonly dealers: readonly ParticipantId[];
  /** Each dealing officer's key (secret): identifier -> key. */
  readonly keys: ReadonlyMap<ParticipantId, Key>;
  readonly confirmations: readonly OfficerConfirmation[];
  /** Zeroes the officers' share bytes: call once the reshare is over (its dealers read them). */
  wipe(): void;
};

/**
 * Opens the shares of the given officers for a restore. Refuses fewer than k distinct officers of
 * the bundle before any key is used or anything is computed; uses the first k.
 */
export function restoreInputs(bundle: BackupBundle, openers: readonly OfficerOpener[]): RestoreInputs {
  const k = bundle.body.officerSet.threshold;
  const distinct = new Set(openers.map((o) => toHex(o.publicKey)));
  if (distinct.size !== openers.length) throw invalid('the same officer key was given twice');
  if (openers.length < k)
    throw invalid(`a restore needs ${k} officers of this backup, got ${openers.length}`, {
      needed: k,
      given: openers.length,
    });
  const indexes = openers.map((o) => officerIndexOf(bundle, o.publicKey));
  const shares = openers.slice(0, k).map((o, i) => officerShare(bundle, indexes[i]!, o));
  const keys = new Map(shares.map((s) => [s.key.secret.identifier as ParticipantId, s.key] as const));
  return {
    oldPublic: shares[0]!.key.public,
    oldThreshold: k,
    dealers: [...keys.keys()],
    keys,
    confirmations: shares.map((s) => s.confirmation),
    wipe: () => {
      for (const key of keys.values()) key.secret.signingShare.fill(0);
    },
  };
}
