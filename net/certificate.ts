/**
 * The one wire codec of success certificates: confirmations as hex on the RPC (net/rpc.ts
 * `Confirmations`), the protocol's Certificate (protocol/epoch.ts) in memory.
 */
import { fromHex, toHex } from '../protocol/bytes.ts';
import type { Certificate } from '../protocol/epoch.ts';
import type { Epoch, KeyId, SessionId } from '../protocol/ids.ts';
import type { Confirmations } from './rpc.ts';

export function certToHex(c: Certificate): Confirmations {
  return Object.fromEntries(
    Object.entries(c.confirmations).map(([p, v]) => [p, { R: toHex(v.R), z: toHex(v.z) }]),
  );
}

export function certFromHex(
  keyId: string,
  epoch: number,
  transcriptHash: string,
  groupElement: Uint8Array,
  confirmations: Confirmations,
  sessionId: string,
): Certificate {
  return {
    protocol: 'reshare',
    keyId: keyId as KeyId,
    sessionId: sessionId as SessionId,
    epoch: epoch as Epoch,
    transcriptHash: fromHex(transcriptHash),
    groupElement,
    confirmations: Object.fromEntries(
      Object.entries(confirmations).map(([p, v]) => [p, { R: fromHex(v.R), z: fromHex(v.z) }]),
    ),
  } as Certificate;
}
