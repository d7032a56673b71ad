/** Byte helpers shared by the codec, the node and the coordinator (no `node:*` imports: protocol/ is pure). */
import { bytesToHex, concatBytes, hexToBytes, utf8ToBytes } from '@noble/hashes/utils.js';
import { DecodeError } from './errors.ts';

export { bytesToHex, concatBytes, utf8ToBytes };

const HEX_RE = /^(?:[0-9a-f]{2})*$/;

/** Strict lowercase hex decoding: the API and wire formats accept nothing else. */
export function fromHex(hex: string, what = 'value', expectedLength?: number): Uint8Array {
  if (typeof hex !== 'string' || !HEX_RE.test(hex)) {
    throw new DecodeError('DecodeError', `${what} must be lowercase hex with an even number of digits`);
  }
  const b = hexToBytes(hex);
  if (expectedLength !== undefined && b.length !== expectedLength) {
    throw new DecodeError('DecodeError', `${what} must be ${expectedLength} bytes, got ${b.length}`);
  }
  return b;
}

export function toHex(b: Uint8Array): string {
  return bytesToHex(b);
}

export function equalBytes(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  let d = 0;
  for (let i = 0; i < a.length; i++) d |= a[i]! ^ b[i]!;
  return d === 0;
}
