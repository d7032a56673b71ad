/**
 * Transcript hashes and share-possession confirmations, shared by DKG and the key events.
 *
 * The final round of every run that creates shares (DKG, refresh, reshare, repair) has each new
 * member confirm the transcript hash and the resulting group key with a Schnorr proof made with its
 * *new* share, verifiable against its public verifying share. A full set of valid confirmations is
 * the success certificate of invariant I5: only with it does a pending epoch become active.
 * (Schnorr proof of knowledge as in RFC 8235, made non-interactive with Fiat–Shamir; the challenge
 * binds suite, session, signer, transcript hash and group key.)
 */
import { sha256, sha512 } from '@noble/hashes/sha2.js';
import { bytesToNumberBE, numberToBytesBE } from '@noble/curves/utils.js';
import { bytesToHex, concatBytes, utf8ToBytes } from './bytes.ts';
import { decodeScalar, encodeScalar } from './elements.ts';
import { type Group, groupOf, randomScalar as drawScalar } from './group.ts';
import type { KeySpec } from './suites.ts';

/** Length-prefixed concatenation so that no two different item lists hash alike. */
function frame(items: readonly Uint8Array[]): Uint8Array {
  return concatBytes(...items.flatMap((it) => [numberToBytesBE(it.length, 4), it]));
}

/** SHA-256 transcript hash of a labelled, ordered list of byte strings (e.g. encoded messages). */
export function hashTranscript(label: string, items: readonly Uint8Array[]): Uint8Array {
  return sha256(frame([utf8ToBytes(`tkms/transcript/v1/${label}`), ...items]));
}

function challenge(spec: KeySpec, context: Uint8Array, R: Uint8Array, Y: Uint8Array): bigint {
  const h = sha512(frame([utf8ToBytes(`tkms/confirm/v1/${spec.contextString}`), context, R, Y]));
  return spec.Point.Fn.create(bytesToNumberBE(h));
}

export type Confirmation = {
  /** Serialized commitment R = kG. */
  readonly R: Uint8Array;
  /** Serialized response z = k + c·s. */
  readonly z: Uint8Array;
};

/**
 * Proves knowledge of `share` (whose public point is `verifyingShare`) bound to `context`
 * (callers pass session id, participant id, transcript hash and group element, framed).
 * `randomScalar` is noble's sampler (protocol/group.ts) unless a test injects one. The nonce only
 * meets a constant-time fixed-base multiply (protocol/group.ts).
 */
export function confirm(
  spec: KeySpec,
  share: bigint,
  verifyingShare: Uint8Array,
  context: Uint8Array,
  randomScalar: () => Uint8Array = () => spec.Point.Fn.toBytes(drawScalar(spec)),
  g: Group = groupOf(spec),
): Confirmation {
  const Fn = spec.Point.Fn;
  const k = decodeScalar(spec, randomScalar(), 'nonce');
  const R = g.baseMul(k).toBytes();
  const c = challenge(spec, context, R, verifyingShare);
  const z = Fn.add(k, Fn.mul(c, share));
  return { R, z: encodeScalar(spec, z) };
}

/**
 * Verdicts of verifyConfirmation by their complete input (suite, verifying share, context, R, z):
 * the same certificate is checked again and again within one process (a node's machine, then its
 * store's activation; the coordinator, once per member that reports it, and again at its next
 * sync), and the check is a pure function of those bytes, so a repeated check returns the verdict
 * of the first (issue 17, key-event latency). Bounded; the oldest verdicts go first.
 */
const verdicts = new Map<string, boolean>();
const MAX_VERDICTS = 4096;

/**
 * The verdict of a pure check of public inputs, remembered by `key`, which must encode every
 * input the check reads. Shared by the certificate checks (package-proof.ts too).
 */
export function remembered<T>(cache: Map<string, T>, max: number, key: string, check: () => T): T {
  const known = cache.get(key);
  if (known !== undefined) return known;
  const v = check();
  cache.set(key, v);
  if (cache.size > max) cache.delete(cache.keys().next().value as string);
  return v;
}

/**
 * Checks a confirmation: zG == R + c·Y. Never throws; false on any malformed input. Public inputs
 * only; a repeated check of the very same bytes is answered from `verdicts` (see there).
 */
export function verifyConfirmation(
  spec: KeySpec,
  verifyingShare: Uint8Array,
  context: Uint8Array,
  c: Confirmation,
  g: Group = groupOf(spec),
): boolean {
  let key: string;
  try {
    key = `${spec.name}|${bytesToHex(verifyingShare)}|${bytesToHex(context)}|${bytesToHex(c.R)}|${bytesToHex(c.z)}`;
  } catch {
    return false; // not even bytes
  }
  return remembered(verdicts, MAX_VERDICTS, key, () =>
    checkConfirmation(spec, verifyingShare, context, c, g),
  );
}

function checkConfirmation(
  spec: KeySpec,
  verifyingShare: Uint8Array,
  context: Uint8Array,
  c: Confirmation,
  g: Group,
): boolean {
  try {
    const Y = g.decode(verifyingShare, 'verifying share');
    const R = g.decode(c.R, 'confirmation R');
    const z = decodeScalar(spec, c.z, 'confirmation z', false);
    const ch = challenge(spec, context, c.R, verifyingShare);
    // Public inputs only: the variable-time multiply is safe here and several times faster.
    return g.baseMul(z).equals(R.add(Y.multiplyUnsafe(ch)));
  } catch {
    return false;
  }
}

/** Frames the context a confirmation binds. */
export function confirmationContext(parts: {
  sessionId: string;
  participant: string;
  transcriptHash: Uint8Array;
  groupElement: Uint8Array;
  epoch: number;
}): Uint8Array {
  return frame([
    utf8ToBytes(parts.sessionId),
    utf8ToBytes(parts.participant),
    parts.transcriptHash,
    parts.groupElement,
    numberToBytesBE(parts.epoch, 4),
  ]);
}
