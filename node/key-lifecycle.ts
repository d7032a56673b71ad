/**
 * Key state changes on one node: `set-state` and `destroy`. The node keeps its own copy of each key's
 * state, enforces it (a Disabled or PendingDeletion key does not sign, and runs no key event), and
 * checks every change against the same table the coordinator uses (protocol/key-states.ts): e.g. a
 * PendingDeletion key leaves that state only through cancel-deletion, and Destroyed is terminal.
 */
import { KmsError, StateError } from '../protocol/errors.ts';
import { stateChangeTo, tableStateOf, transition } from '../protocol/key-states.ts';
import type { DestroyAnswer, OkAnswer, RpcRequest } from '../net/rpc.ts';
import type { NodeContext } from './node-context.ts';
import { destroyEpochScopes, destroyScopes } from './scope-cleanup.ts';

export class KeyLifecycle {
  readonly #c: NodeContext;

  constructor(ctx: NodeContext) {
    this.#c = ctx;
  }

  /**
   * Applies a state change after checking it against the table (an already applied change answers
   * `already`, so a retried request is harmless). Refused: InvalidKeyState, nothing changes.
   */
  async setState(req: Extract<RpcRequest, { op: 'set-state' }>): Promise<OkAnswer> {
    const k = await this.#c.store.getKey(req.keyId);
    if (!k) throw new KmsError('KeyNotFound', `no key ${req.keyId} on ${this.#c.cfg.nodeId}`);
    if (k.state === req.state) return { ok: true, already: true } as const;
    const op = req.operation ?? stateChangeTo(req.state);
    let from = k.state;
    this.#c.keys.drop(req.keyId);
    await this.#c.store.setKeyState(req.keyId, req.state, {
      // Checked inside the store's serial section, on the record as it is there.
      check: (current) => {
        from = current.state;
        const next = transition(tableStateOf(current), op, req.keyId);
        if (next !== req.state) {
          throw new StateError(
            'InvalidKeyState',
            `${op} leads key ${req.keyId} to ${next}, not ${req.state}`,
          );
        }
      },
    });
    this.#c.keys.drop(req.keyId);
    await this.#c.record({ event: 'key.state', keyId: req.keyId, from, state: req.state, operation: op });
    return { ok: true } as const;
  }

  /**
   * Deletes every epoch and sealed share of the key and destroys their sealer scopes (a scope that
   * cannot be destroyed now is retried: node/scope-cleanup.ts). Only a PendingDeletion key (or one
   * whose DKG never committed) may be destroyed. Idempotent: a destroyed or unknown key answers
   * `already`, after retrying any scope of it still owed.
   */
  async destroy(req: Extract<RpcRequest, { op: 'destroy' }>): Promise<DestroyAnswer> {
    const k = await this.#c.store.getKey(req.keyId);
    if (!k || k.state === 'Destroyed') {
      const owed = await this.#c.store.pendingScopes({ keyId: req.keyId });
      const retried = owed.length > 0 ? await destroyScopes(this.#c, owed) : { destroyed: [], pending: [] };
      return {
        ok: true,
        already: true,
        ...(k ? {} : { absent: true }),
        epochs: [],
        scopes: retried.destroyed,
        pendingScopes: retried.pending,
      };
    }
    const epochs = await this.#c.store.destroyKey(req.keyId, {
      check: (current) => {
        transition(tableStateOf(current), 'destroy', req.keyId);
      },
    });
    this.#c.keys.drop(req.keyId);
    const scopes = await destroyEpochScopes(this.#c, req.keyId, epochs);
    await this.#c.record({
      event: 'key.destroyed',
      keyId: req.keyId,
      epochs,
      scopes: scopes.destroyed,
      pendingScopes: scopes.pending,
    });
    return { ok: true, epochs, scopes: scopes.destroyed, pendingScopes: scopes.pending };
  }
}
