/**
 * Key state changes on one node: `set-state` and `destroy`. The node keeps its own copy of each key's
 * state, enforces it (a Disabled or PendingDeletion key does not sign, and runs no key event), and
 * checks every change against the same table the coordinator uses (protocol/key-states.ts): e.g. a
 * PendingDeletion key leaves that state only through cancel-deletion, and Destroyed is terminal.
 *
 * A change needs a client-signed request that this node verifies and its policy allows
 * (node/request-guard.ts). A signed schedule-deletion is recorded with this node's own time and the
 * window it asks for, and `destroy` (which carries no signature) is refused until that window has
 * passed on this node's clock: a coordinator cannot destroy a key early, nor one nobody scheduled.
 */
import { KmsError, StateError } from '../protocol/errors.ts';
import { stateChangeTo, tableStateOf, transition } from '../protocol/key-states.ts';
import type { DestroyAnswer, OkAnswer, RpcRequest } from '../net/rpc.ts';
import type { NodeContext } from './node-context.ts';
import { DEFAULT_PENDING_WINDOW_DAYS } from './request-binding.ts';
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
    // A change that changes nothing does nothing: answered without a signature (retries are harmless).
    if (k.state === req.state) return { ok: true, already: true } as const;
    const op = req.operation ?? stateChangeTo(req.state);
    const authorized = await this.#c.guard.authorize(
      { rpc: 'set-state', keyId: req.keyId, change: op },
      req.auth,
    );
    if (authorized && op === 'scheduleDeletion') {
      // Written first: a crash before the state change leaves a schedule no destroy can use
      // (destroy also needs PendingDeletion), never a PendingDeletion key without its window.
      await this.#c.store.putDeletionSchedule(req.keyId, {
        scheduledAt: new Date(this.#c.guard.nowMs()).toISOString(),
        windowDays: authorized.pendingWindowDays ?? DEFAULT_PENDING_WINDOW_DAYS,
      });
    }
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
    if (op === 'cancelDeletion') await this.#c.store.deleteDeletionSchedule(req.keyId);
    await this.#c.record({ event: 'key.state', keyId: req.keyId, from, state: req.state, operation: op });
    return { ok: true } as const;
  }

  /**
   * Deletes every epoch and sealed share of the key and destroys their sealer scopes (a scope that
   * cannot be destroyed now is retried: node/scope-cleanup.ts). Only a PendingDeletion key (or one
   * whose DKG never committed or was never confirmed) may be destroyed. Idempotent: a destroyed or unknown key answers
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
    await this.#deletionWindowPassed(k);
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
    await this.#c.store.deleteDeletionSchedule(req.keyId);
    return { ok: true, epochs, scopes: scopes.destroyed, pendingScopes: scopes.pending };
  }

  /**
   * A key that ever signed (it has an active epoch) is destroyed only after the window its signed
   * schedule-deletion asked for, counted from when THIS node processed it, on this node's clock.
   * A DKG that never committed, or whose key the coordinator never confirmed (it was reported to
   * no one: node/key-confirmation.ts), holds nothing usable and may be dropped at once (the table
   * sees it as Creating).
   */
  async #deletionWindowPassed(k: { keyId: string; state: string; activeEpoch?: number }): Promise<void> {
    if (k.activeEpoch === undefined || k.state !== 'PendingDeletion') return; // the table check refuses the rest
    const schedule = await this.#c.store.getDeletionSchedule(k.keyId);
    if (!schedule) {
      if (!this.#c.guard.required) return; // fixtures that do not sign yet
      const reason = 'no signed schedule-deletion was processed by this node';
      await this.#c.guard.refused({ rpc: 'destroy', operation: 'DestroyKey', keyId: k.keyId, reason });
      throw new KmsError('PolicyDenied', `destroy of ${k.keyId} refused: ${reason}`);
    }
    const deadline = Date.parse(schedule.scheduledAt) + schedule.windowDays * 86_400_000;
    if (this.#c.guard.nowMs() < deadline) {
      const reason = `the ${schedule.windowDays}-day deletion window ends at ${new Date(deadline).toISOString()} on this node`;
      await this.#c.guard.refused({ rpc: 'destroy', operation: 'DestroyKey', keyId: k.keyId, reason });
      throw new KmsError('PolicyDenied', `destroy of ${k.keyId} refused: ${reason}`);
    }
  }
}
