/**
 * The client side of threshold decryption: given decryption shares from the nodes (each with a
 * Chaum–Pedersen proof, protocol/tdh2.ts), check every proof against the sender's verifying share,
 * name the senders of bad ones, and combine t good ones. This is how a client that does not trust
 * the coordinator with plaintext opens a ciphertext blob (issue 15, "the coordinator need not see
 * plaintext"); the in-process cluster of the tests uses it the same way.
 */
import { decodeBlob, labelDigest } from '../protocol/ciphertext-blob.ts';
import { type Blame, KmsError, misbehaved } from '../protocol/errors.ts';
import { equalBytes, toHex } from '../protocol/bytes.ts';
import { lagrangeCoefficient } from '../protocol/polynomial.ts';
import { KEY_SPEC_REGISTRY } from '../protocol/suites.ts';
import {
  combine,
  contextLabel,
  type DecryptionShare,
  isValidCiphertext,
  verifyDecryptionShare,
} from '../protocol/tdh2.ts';
import type { EncryptionContext } from './encryption-context.ts';

/** TDH2 keys are shared exactly like FROST ristretto255 keys: same identifiers, same Lagrange basis. */
const SPEC = KEY_SPEC_REGISTRY.FROST_RISTRETTO255;

export type CombineInput = {
  readonly ciphertextBlob: Uint8Array;
  readonly encryptionContext: EncryptionContext;
  readonly shares: readonly DecryptionShare[];
  /** The key's verifying shares h_i by identifier (its public key package). */
  readonly verifyingShares: Readonly<Record<string, Uint8Array>>;
  readonly threshold: number;
};

export type CombineResult = {
  readonly keyId: string;
  readonly plaintext: Uint8Array;
  /** Senders of shares that failed their proof (left out); the caller reports them. */
  readonly culprits: readonly Blame[];
};

/**
 * Checks the blob against the context before looking at any share, verifies each share's proof,
 * and combines the first `threshold` good ones. Throws ParticipantMisbehaved naming every bad sender
 * when fewer than `threshold` good shares remain (the caller asks other nodes and tries again).
 */
export function combineDecryptionShares(input: CombineInput): CombineResult {
  const blob = decodeBlob(input.ciphertextBlob);
  const label = contextLabel(input.encryptionContext);
  if (!equalBytes(blob.labelDigest, labelDigest(label)))
    throw new KmsError(
      'ContextMismatch',
      'InvalidCiphertext: the encryption context does not match the ciphertext blob',
    );
  if (!isValidCiphertext(blob.ct, label))
    throw new KmsError('ValidationError', 'InvalidCiphertext: the ciphertext blob is not valid');
  const good: DecryptionShare[] = [];
  const culprits: Blame[] = [];
  const seen = new Map<string, Uint8Array>();
  for (const s of input.shares) {
    const before = seen.get(s.id);
    if (before !== undefined) {
      // The same share twice is harmless; two different ones from one member is equivocation.
      if (!equalBytes(before, s.ui))
        culprits.push({ participant: s.id, reason: 'equivocation', evidence: toHex(s.ui) });
      continue;
    }
    seen.set(s.id, s.ui);
    const vs = input.verifyingShares[s.id];
    if (vs === undefined) {
      culprits.push({ participant: s.id, reason: 'malformed-message', evidence: 'not a member of the key' });
      continue;
    }
    if (!verifyDecryptionShare(blob.ct, vs, s)) {
      culprits.push({ participant: s.id, reason: 'bad-share', evidence: toHex(s.ui) });
      continue;
    }
    good.push(s);
  }
  if (good.length < input.threshold) {
    if (culprits.length > 0)
      throw misbehaved(
        `${culprits.length} decryption share(s) failed their proof; ${good.length} of ${input.threshold} good`,
        culprits,
      );
    throw new KmsError('QuorumUnavailable', `${good.length} decryption share(s), ${input.threshold} needed`);
  }
  const use = good.slice(0, input.threshold);
  const plaintext = combine(blob.ct, label, use, (id, ids) => lagrangeCoefficient(SPEC, ids, id));
  return { keyId: blob.keyId, plaintext, culprits };
}
