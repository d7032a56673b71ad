/**
 * Hex forms of noble's FROST packages, for the RPC, the API and storage. Decoding validates every
 * element strictly (elements.ts) and the shape (counts, identifiers), so a stored or received
 * package is checked before any secret is used with it.
 */
import type { FrostPublic } from '@noble/curves/abstract/frost.js';
import { fromHex, toHex } from './bytes.ts';
import { decodeElement, decodeIdentifier } from './elements.ts';
import { DecodeError } from './errors.ts';
import type { KeySpec } from './suites.ts';

export type PublicPackageHex = {
  min: number;
  max: number;
  commitments: string[];
  verifyingShares: Record<string, string>;
};

export function publicToHex(pub: FrostPublic): PublicPackageHex {
  return {
    min: pub.signers.min,
    max: pub.signers.max,
    commitments: pub.commitments.map((c) => toHex(c)),
    verifyingShares: Object.fromEntries(Object.entries(pub.verifyingShares).map(([id, v]) => [id, toHex(v)])),
  };
}

export function publicFromHex(spec: KeySpec, p: PublicPackageHex): FrostPublic {
  if (!Number.isInteger(p.min) || !Number.isInteger(p.max) || p.min < 1 || p.min > p.max) {
    throw new DecodeError('DecodeError', 'public package: invalid threshold');
  }
  if (!Array.isArray(p.commitments) || p.commitments.length !== p.min) {
    throw new DecodeError('DecodeError', `public package: expected ${p.min} commitments`);
  }
  const commitments = p.commitments.map((c, i) => {
    const b = fromHex(c, `commitment ${i}`);
    decodeElement(spec, b, `commitment ${i}`);
    return b;
  });
  const entries = Object.entries(p.verifyingShares ?? {});
  if (entries.length < p.min)
    throw new DecodeError('DecodeError', 'public package: too few verifying shares');
  const verifyingShares: Record<string, Uint8Array> = {};
  for (const [id, v] of entries) {
    const pid = decodeIdentifier(spec, id, 'verifying share identifier');
    const b = fromHex(v, `verifying share ${pid}`);
    decodeElement(spec, b, `verifying share ${pid}`);
    verifyingShares[pid] = b;
  }
  return { signers: { min: p.min, max: p.max }, commitments, verifyingShares } as FrostPublic;
}
