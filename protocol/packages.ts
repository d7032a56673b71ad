/**
 * Hex forms of noble's FROST packages, for the RPC, the API and storage. Decoding validates every
 * element strictly (elements.ts) and the shape (counts, identifiers), so a stored or received
 * package is checked before any secret is used with it.
 */
import type { FrostPublic } from '@noble/curves/abstract/frost.js';
import { fromHex, toHex } from './bytes.ts';
import { ed25519Sodium } from './backend-ed25519-sodium.ts';
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

/**
 * Element encodings (suite + hex) this process has already validated: a key's package is decoded
 * again at every read of its epoch record, every report and every sync (issue 17, key-event
 * latency), and validity is a pure function of the bytes. Bounded; the oldest go first.
 */
const validElements = new Map<string, true>();
const MAX_VALID_ELEMENTS = 16_384;

/**
 * decodeElement's check (elements.ts), without keeping the point: for Ed25519 libsodium's check
 * alone, which accepts exactly the encodings decodeElement accepts (it decodes with noble only
 * after it); anything else (and any failure, for its precise error) through decodeElement.
 */
function checkElement(spec: KeySpec, hex: string, b: Uint8Array, what: string): void {
  const key = `${spec.name}:${hex}`;
  if (validElements.has(key)) return;
  if (!(spec.name === 'FROST_ED25519' && ed25519Sodium.isValidElement(b))) decodeElement(spec, b, what);
  validElements.set(key, true);
  if (validElements.size > MAX_VALID_ELEMENTS)
    validElements.delete(validElements.keys().next().value as string);
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
    checkElement(spec, c, b, `commitment ${i}`);
    return b;
  });
  const entries = Object.entries(p.verifyingShares ?? {});
  if (entries.length < p.min)
    throw new DecodeError('DecodeError', 'public package: too few verifying shares');
  const verifyingShares: Record<string, Uint8Array> = {};
  for (const [id, v] of entries) {
    const pid = decodeIdentifier(spec, id, 'verifying share identifier');
    const b = fromHex(v, `verifying share ${pid}`);
    checkElement(spec, v, b, `verifying share ${pid}`);
    verifyingShares[pid] = b;
  }
  return { signers: { min: p.min, max: p.max }, commitments, verifyingShares } as FrostPublic;
}
