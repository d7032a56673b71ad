/**
 * Key states and the one table of which operation moves which state where, shared by the
 * coordinator (coordinator/lifecycle.ts, the HTTP routes) and the nodes (node/key-lifecycle.ts,
 * node/key-events.ts), so the two can never disagree about a transition. States and the deletion
 * window follow AWS KMS key states and ScheduleKeyDeletion (cancel returns the key to Disabled);
 * docs/api.md prints the same table.
 *
 * `Creating` is the coordinator's state while the DKG runs; a node holds a key in that state from
 * its pending DKG share until the coordinator confirms that every member agreed on epoch 0
 * (`tableStateOf`: not before, even once epoch 0 is active here), and may only drop it until then.
 */
import { StateError } from './errors.ts';

export const KEY_STATES = ['Creating', 'Enabled', 'Disabled', 'PendingDeletion', 'Destroyed'] as const;
export type KeyState = (typeof KEY_STATES)[number];

/** The states a node stores (Creating is derived: a key without an active epoch). */
export const NODE_KEY_STATES = ['Enabled', 'Disabled', 'PendingDeletion', 'Destroyed'] as const;
export type NodeKeyState = (typeof NODE_KEY_STATES)[number];

/** The states a `set-state` request may set (Destroyed only through `destroy`). */
export const SETTABLE_KEY_STATES = ['Enabled', 'Disabled', 'PendingDeletion'] as const;
export type SettableKeyState = (typeof SETTABLE_KEY_STATES)[number];

/** The operations that change a key's state on request (the lifecycle routes, `set-state`). */
export const STATE_CHANGES = ['disable', 'enable', 'scheduleDeletion', 'cancelDeletion'] as const;
export type StateChange = (typeof STATE_CHANGES)[number];

export type KeyOperation =
  | 'describe'
  | 'getPublicKey'
  | 'sign'
  | 'verify'
  | 'refresh'
  | 'reshare'
  | 'repair'
  | StateChange
  | 'destroy';

const NONE = {
  describe: null,
  getPublicKey: null,
  sign: null,
  verify: null,
  refresh: null,
  reshare: null,
  repair: null,
  disable: null,
  enable: null,
  scheduleDeletion: null,
  cancelDeletion: null,
  destroy: null,
} as const;

/**
 * state x operation -> the state after the operation, or null when refused (InvalidKeyState).
 * Disable/enable on a key already in the target state succeed without change (as AWS does).
 * No key event (refresh, reshare, repair) runs on a Disabled or PendingDeletion key; a
 * PendingDeletion key leaves that state only through cancel-deletion (to Disabled) or destroy;
 * Destroyed is terminal.
 */
export const LIFECYCLE: Readonly<Record<KeyState, Readonly<Record<KeyOperation, KeyState | null>>>> = {
  // Destroy here is the abandonment of a DKG that never committed (nothing was ever usable).
  Creating: { ...NONE, describe: 'Creating', destroy: 'Destroyed' },
  Enabled: {
    ...NONE,
    describe: 'Enabled',
    getPublicKey: 'Enabled',
    sign: 'Enabled',
    verify: 'Enabled',
    refresh: 'Enabled',
    reshare: 'Enabled',
    repair: 'Enabled',
    disable: 'Disabled',
    enable: 'Enabled',
    scheduleDeletion: 'PendingDeletion',
  },
  Disabled: {
    ...NONE,
    describe: 'Disabled',
    getPublicKey: 'Disabled',
    disable: 'Disabled',
    enable: 'Enabled',
    scheduleDeletion: 'PendingDeletion',
  },
  PendingDeletion: {
    ...NONE,
    describe: 'PendingDeletion',
    cancelDeletion: 'Disabled',
    destroy: 'Destroyed',
  },
  Destroyed: { ...NONE, describe: 'Destroyed' },
};

/** Whether `op` is allowed in `state`. */
export function allows(state: KeyState, op: KeyOperation): boolean {
  return LIFECYCLE[state][op] !== null;
}

/** The state after `op`, or StateError('InvalidKeyState') naming the state, the operation and the key. */
export function transition(state: KeyState, op: KeyOperation, keyId?: string): KeyState {
  const next = LIFECYCLE[state][op];
  if (next === null) {
    const which = keyId === undefined ? 'the key' : `key ${keyId}`;
    throw new StateError('InvalidKeyState', `${op} is not allowed while ${which} is ${state}`, {
      details: { state, op },
    });
  }
  return next;
}

/** The state change a bare `set-state` to `to` stands for (a request that names no operation). */
export function stateChangeTo(to: SettableKeyState): StateChange {
  return to === 'Enabled' ? 'enable' : to === 'Disabled' ? 'disable' : 'scheduleDeletion';
}

/**
 * The state a node's key record stands for in the table: a key whose first epoch is not active yet
 * (its DKG has not committed), or active but not yet confirmed by the coordinator (security review
 * C-1: a DKG commits only on every member's agreement), is still `Creating`.
 */
export function tableStateOf(k: {
  state: NodeKeyState;
  activeEpoch?: number;
  unconfirmed?: boolean;
}): KeyState {
  if (k.state === 'Destroyed') return k.state;
  return k.activeEpoch === undefined || k.unconfirmed === true ? 'Creating' : k.state;
}

/**
 * The shortest list of state changes that leads from `from` to `to` through the table (e.g.
 * PendingDeletion -> Enabled is cancelDeletion, enable), [] when equal, null when none does (to or
 * from Destroyed or Creating). Used to bring a node that missed changes back to the coordinator's
 * record, one legal step at a time.
 */
export function pathBetween(from: KeyState, to: KeyState): StateChange[] | null {
  if (from === to) return [];
  const seen = new Set<KeyState>([from]);
  let frontier: { state: KeyState; path: StateChange[] }[] = [{ state: from, path: [] }];
  while (frontier.length > 0) {
    const next: typeof frontier = [];
    for (const { state, path } of frontier) {
      for (const op of STATE_CHANGES) {
        const s = LIFECYCLE[state][op];
        if (s === null || seen.has(s)) continue;
        if (s === to) return [...path, op];
        seen.add(s);
        next.push({ state: s, path: [...path, op] });
      }
    }
    frontier = next;
  }
  return null;
}
