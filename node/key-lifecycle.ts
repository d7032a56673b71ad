/**
 * Key state changes on one node: `set-state` and `destroy`. The node keeps its own copy of each key's
 * state and enforces it (a Disabled or PendingDeletion key does not sign).
 */
import { KmsError, StateError } from '../protocol/errors.ts';
import type { OkAnswer, RpcRequest } from '../net/rpc.ts';
import type { NodeContext } from './node-context.ts';

export class KeyLifecycle {
  readonly #c: NodeContext;

  constructor(ctx: NodeContext) {
    this.#c = ctx;
  }

  async setState(req: Extract<RpcRequest, { op: 'set-state' }>): Promise<OkAnswer> {
    const k = await this.#c.store.getKey(req.keyId);
    if (!k) throw new KmsError('KeyNotFound', `no key ${req.keyId} on ${this.#c.cfg.nodeId}`);
    if (k.state === 'Destroyed') throw new StateError('InvalidKeyState', 'key is destroyed');
    this.#c.keys.drop(req.keyId);
    await this.#c.store.setKeyState(req.keyId, req.state);
    this.#c.keys.drop(req.keyId);
    await this.#c.record({ event: 'key.state', keyId: req.keyId, state: req.state });
    return { ok: true } as const;
  }

  async destroy(req: Extract<RpcRequest, { op: 'destroy' }>): Promise<OkAnswer> {
    const epochs = await this.#c.store.destroyKey(req.keyId);
    for (const e of epochs) await this.#c.sealer.destroyScope(`${req.keyId}/${e}`).catch(() => {});
    this.#c.keys.drop(req.keyId);
    await this.#c.record({ event: 'key.destroyed', keyId: req.keyId });
    return { ok: true } as const;
  }
}
