/**
 * A DKG's key is confirmed by the coordinator before it is used (security review C-1: a DKG
 * commits only when every member agreed). A member activates epoch 0 as soon as its own certificate
 * is complete, but only the coordinator sees every member's result; until it sends `confirm-key`
 * the key is stored unconfirmed (node/store.ts): it refuses signing and key events, and `destroy`
 * drops it at once (the table sees it as Creating: protocol/key-states.ts tableStateOf), so a DKG
 * the coordinator aborts leaves nothing behind. A coordinator can only confirm the very values
 * this node completed itself, or discard a key no client was ever told about.
 */
import { TL } from '../common/timeline.ts';
import { toHex } from '../protocol/bytes.ts';
import { KmsError, StateError } from '../protocol/errors.ts';
import { publicFromHex } from '../protocol/packages.ts';
import { keySpec } from '../protocol/suites.ts';
import type { OkAnswer, RpcRequest } from '../net/rpc.ts';
import type { NodeContext } from './node-context.ts';

/** Refuses (InvalidKeyState) to use a key whose DKG the coordinator has not confirmed yet. */
export function assertConfirmed(k: { keyId: string; unconfirmed?: boolean | undefined }): void {
  if (k.unconfirmed === true) {
    throw new StateError(
      'InvalidKeyState',
      `key ${k.keyId} is not yet confirmed by the coordinator (its DKG has not committed)`,
      { details: { state: 'Creating' } },
    );
  }
}

/**
 * `confirm-key`: clears the mark when the epoch, group element and transcript hash are this
 * node's own (Conflict or EpochMismatch otherwise, nothing changes). Idempotent.
 */
export async function confirmKey(
  c: NodeContext,
  req: Extract<RpcRequest, { op: 'confirm-key' }>,
): Promise<OkAnswer> {
  TL?.('node confirm-key');
  const changed = await c.store.confirmKey(req.keyId, (k, active) => {
    if (active.epoch !== req.epoch) {
      throw new StateError(
        'EpochMismatch',
        `confirm-key for epoch ${req.epoch}, active epoch of ${req.keyId} is ${active.epoch}`,
      );
    }
    const mine = toHex(publicFromHex(keySpec(k.keySpec), active.public).commitments[0]!);
    if (mine !== req.groupElement || active.transcriptHash !== req.transcriptHash) {
      throw new KmsError(
        'Conflict',
        `confirm-key for ${req.keyId} names another group element or transcript than this node completed`,
        { details: { groupElement: mine, transcriptHash: active.transcriptHash } },
      );
    }
  });
  c.keys.drop(req.keyId);
  if (!changed) return { ok: true, already: true } as const;
  await c.record({ event: 'key.confirmed', keyId: req.keyId, epoch: req.epoch });
  TL?.('node confirm-key done');
  return { ok: true } as const;
}
