/**
 * The one check of a public package (FROST's PublicKeyPackage plus the Feldman commitments of the
 * epoch's polynomial) that every verifier runs before it believes a package someone else reported
 * (security review, root cause of C-1, C-2, H-1): a package is internally consistent only if
 *   - it has exactly `min` commitments (one per coefficient of a degree min-1 polynomial),
 *   - every verifying share is that polynomial's value at the member's identifier:
 *     Y_id == Σ_k x_id^k · C_k (Feldman, RFC 9591 Appendix C.2 vss_verify on public points),
 *   - its constant term commitments[0] is the group element the verifier ALREADY trusts,
 *   - it lists at least `min` members.
 * A complete certificate (a valid confirmation from every listed member) over such a package
 * proves knowledge of at least `min` shares of the trusted key, which fewer than `min` colluders
 * cannot forge; without consistency, a forger picks Y_i = y_i·G and signs its own confirmations.
 * Pure: public inputs only, so the variable-time multiply of protocol/group.ts is safe here.
 */
import type { FrostPublic } from '@noble/curves/abstract/frost.js';
import { bytesToHex, equalBytes, toHex } from './bytes.ts';
import { hashTranscript, remembered } from './confirm.ts';
import { groupOf } from './group.ts';
import { evaluateCommitments, identifierScalar } from './polynomial.ts';
import { publicItems } from './reshare.ts';
import { type KeySpecName, keySpec } from './suites.ts';

/**
 * A named reason a package is not consistent: `<commitments>` (count is not `min`),
 * `<constant-term>` (commitments[0] is not the trusted group element), `<members>` (fewer than
 * `min` verifying shares), `<element>` (an undecodable commitment), or `<verifying-share:ID>` for a
 * member whose verifying share is not on the committed polynomial.
 */
export type PackageGap = string;

/**
 * Verdicts by complete input (suite, trusted element, `min`, every commitment, every verifying
 * share by identifier): the same package is proven again and again within one process (by each
 * member's report to the coordinator, at every sync, at a node's activation and its next key
 * event), and the proof is a pure function of those bytes, so a repeated proof returns the gaps of
 * the first (issue 17, key-event latency). Bounded; the oldest go first.
 */
const verdicts = new Map<string, readonly PackageGap[]>();
const MAX_VERDICTS = 2048;

/** Returns the gaps of `pub` against the group element the caller trusts (empty: consistent). */
export function packageGaps(
  spec: KeySpecName,
  pub: FrostPublic,
  trustedGroupElement: Uint8Array,
): PackageGap[] {
  let key: string;
  try {
    const ids = Object.keys(pub.verifyingShares).sort();
    // JSON: an unambiguous encoding of every input the proof reads (identifiers come off the wire).
    key = JSON.stringify([
      spec,
      bytesToHex(trustedGroupElement),
      `${typeof pub.signers.min}:${String(pub.signers.min)}`,
      pub.commitments.map((c) => bytesToHex(c)),
      ids.map((id) => [id, bytesToHex(pub.verifyingShares[id]!)]),
    ]);
  } catch {
    // Not even encodable (a malformed package from a caller): checked afresh, never remembered.
    return proveGaps(spec, pub, trustedGroupElement);
  }
  return [...remembered(verdicts, MAX_VERDICTS, key, () => proveGaps(spec, pub, trustedGroupElement))];
}

function proveGaps(spec: KeySpecName, pub: FrostPublic, trustedGroupElement: Uint8Array): PackageGap[] {
  const s = keySpec(spec);
  const g = groupOf(s);
  const min = pub.signers.min;
  const gaps: PackageGap[] = [];
  if (!Number.isInteger(min) || min < 1 || pub.commitments.length !== min) gaps.push('<commitments>');
  const c0 = pub.commitments[0];
  if (!c0 || !equalBytes(c0, trustedGroupElement)) gaps.push('<constant-term>');
  const members = Object.keys(pub.verifyingShares);
  // An empty member list must never make the loop below pass vacuously (S-06).
  if (members.length < min) gaps.push('<members>');
  if (gaps.length > 0) return gaps;
  let commitments: ReturnType<typeof g.decode>[];
  try {
    commitments = pub.commitments.map((c, k) => g.decode(c, `commitment ${k}`));
  } catch {
    return ['<element>'];
  }
  for (const m of members.sort()) {
    try {
      const Y = g.decode(pub.verifyingShares[m]!, `verifying share ${m}`);
      if (!Y.equals(evaluateCommitments(s, commitments, identifierScalar(s, m), 0, g))) {
        gaps.push(`<verifying-share:${m}>`);
      }
    } catch {
      gaps.push(`<verifying-share:${m}>`);
    }
  }
  return gaps;
}

/**
 * SHA-256 of the canonical encoding of a package (threshold, commitments, verifying shares by
 * identifier): what members compare to agree they hold the same package.
 */
export function packageDigest(pub: FrostPublic): string {
  return toHex(hashTranscript('public-package', publicItems(pub)));
}
