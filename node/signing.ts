/**
 * Signing on one node (RFC 9591 §5.1 and §5.2): round one makes a nonce pair held in memory only
 * (node/nonces.ts), round two uses it once. A key signs only in state Enabled and only with its
 * active epoch.
 */
import { fromHex, toHex } from '../protocol/bytes.ts';
import { KmsError, StateError } from '../protocol/errors.ts';
import { crashPoint } from '../common/crash-points.ts';
import type { CommitAnswer, RpcRequest, ShareAnswer } from '../net/rpc.ts';
import type { ActiveKey } from './active-keys.ts';
import type { NodeContext } from './node-context.ts';
import type { NonceTable } from './nonces.ts';

export class Signing {
  readonly #c: NodeContext;
  readonly #nonces: NonceTable;

  constructor(ctx: NodeContext, nonces: NonceTable) {
    this.#c = ctx;
    this.#nonces = nonces;
  }

  async #signable(keyId: string, epoch: number): Promise<ActiveKey> {
    if (!this.#c.keys.has(keyId)) {
      const k = await this.#c.store.getKey(keyId);
      if (!k) throw new KmsError('KeyNotFound', `no share of ${keyId} on ${this.#c.cfg.nodeId}`);
      // Checked before unsealing: a node restored from an old backup refuses without touching a
      // share whose HSM key may be gone (F-34).
      if (k.state === 'Enabled' && k.activeEpoch !== undefined && k.activeEpoch !== epoch) {
        throw new StateError(
          'EpochMismatch',
          `signing asked for epoch ${epoch}, active epoch is ${k.activeEpoch}`,
        );
      }
      if (k.state !== 'Enabled') throw new StateError('InvalidKeyState', `key ${keyId} is ${k.state}`);
    }
    const a = await this.#c.keys.active(keyId);
    if (a.state !== 'Enabled') throw new StateError('InvalidKeyState', `key ${keyId} is ${a.state}`);
    if (a.record.epoch !== epoch) {
      throw new StateError(
        'EpochMismatch',
        `signing asked for epoch ${epoch}, active epoch is ${a.record.epoch}`,
      );
    }
    return a;
  }

  async commit(sessionId: string, keyId: string, epoch: number): Promise<CommitAnswer> {
    const { key, spec } = await this.#signable(keyId, epoch);
    const commitments = this.#nonces.commit(spec, sessionId, keyId, epoch, key);
    crashPoint('sign.commit.sent');
    return {
      identifier: commitments.identifier,
      hiding: toHex(commitments.hiding),
      binding: toHex(commitments.binding),
    };
  }

  async share(req: Extract<RpcRequest, { op: 'sign-share' }>): Promise<ShareAnswer> {
    const { key, spec } = await this.#signable(req.keyId, req.epoch);
    const share = this.#nonces.sign(spec, req.sessionId, req.keyId, req.epoch, key, {
      message: fromHex(req.message, 'message'),
      commitments: req.commitments.map((c) => ({
        identifier: c.identifier,
        hiding: fromHex(c.hiding, 'hiding commitment'),
        binding: fromHex(c.binding, 'binding commitment'),
      })),
    });
    crashPoint('sign.share.sent');
    return { share: toHex(share) };
  }
}
