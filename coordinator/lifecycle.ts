/**
 * Key lifecycle: which operation is allowed in which state, where each transition leads, and the
 * sweeper that destroys the shares when a deletion window ends. States and the deletion window
 * (7-30 days, default 30; cancel returns the key to Disabled) follow AWS KMS key states and
 * ScheduleKeyDeletion. The same table is documented in docs/api.md and enforced on the nodes
 * (the coordinator tells them each state via Cluster.setKeyState).
 */
import type { Logger } from 'pino';
import { StateError } from '../protocol/errors.ts';
import type { Cluster, KeyState } from './cluster.ts';
import type { KeyedQueue } from './key-queue.ts';
import type { KeyRecord, KeyStore } from './key-store.ts';

export const KEY_STATES: readonly KeyState[] = [
  'Creating',
  'Enabled',
  'Disabled',
  'PendingDeletion',
  'Destroyed',
];

export type KeyOperation =
  | 'describe'
  | 'getPublicKey'
  | 'sign'
  | 'verify'
  | 'refresh'
  | 'reshare'
  | 'repair'
  | 'disable'
  | 'enable'
  | 'scheduleDeletion'
  | 'cancelDeletion'
  | 'destroy';

/**
 * state x operation -> the state after the operation, or null when refused (InvalidKeyState).
 * Disable/enable on a key already in the target state succeed without change (as AWS does).
 */
export const LIFECYCLE: Readonly<Record<KeyState, Readonly<Record<KeyOperation, KeyState | null>>>> = {
  Creating: {
    describe: 'Creating',
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
  },
  Enabled: {
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
    cancelDeletion: null,
    destroy: null,
  },
  Disabled: {
    describe: 'Disabled',
    getPublicKey: 'Disabled',
    sign: null,
    verify: null,
    refresh: null,
    reshare: null,
    repair: null,
    disable: 'Disabled',
    enable: 'Enabled',
    scheduleDeletion: 'PendingDeletion',
    cancelDeletion: null,
    destroy: null,
  },
  PendingDeletion: {
    describe: 'PendingDeletion',
    getPublicKey: null,
    sign: null,
    verify: null,
    refresh: null,
    reshare: null,
    repair: null,
    disable: null,
    enable: null,
    scheduleDeletion: null,
    cancelDeletion: 'Disabled',
    destroy: 'Destroyed',
  },
  Destroyed: {
    describe: 'Destroyed',
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
  },
};

/** The state after `op`, or StateError('InvalidKeyState') naming the state and the operation. */
export function transition(state: KeyState, op: KeyOperation): KeyState {
  const next = LIFECYCLE[state][op];
  if (next === null)
    throw new StateError('InvalidKeyState', `${op} is not allowed while the key is ${state}`, {
      details: { state, op },
    });
  return next;
}

export const MIN_PENDING_WINDOW_DAYS = 7;
export const MAX_PENDING_WINDOW_DAYS = 30;
export const DEFAULT_PENDING_WINDOW_DAYS = 30;
export const DAY_MS = 24 * 3600 * 1000;

export type Clock = { now(): number };
export const systemClock: Clock = { now: () => Date.now() };

/**
 * Destroys the shares of keys whose deletion window has ended: cluster.destroyKey on every node,
 * then the record becomes Destroyed (public metadata kept for the audit trail, alias freed).
 * A failure (a node unreachable) leaves the key PendingDeletion and is retried on the next sweep.
 */
export class DeletionSweeper {
  readonly #store: KeyStore;
  readonly #cluster: Cluster;
  readonly #queue: KeyedQueue;
  readonly #clock: Clock;
  readonly #intervalMs: number;
  readonly #audit: (entry: Record<string, unknown>) => Promise<unknown>;
  readonly #log: Logger | undefined;
  #timer: NodeJS.Timeout | undefined;
  #running: Promise<string[]> | undefined;

  constructor(opts: {
    store: KeyStore;
    cluster: Cluster;
    queue: KeyedQueue;
    clock: Clock;
    intervalMs: number;
    audit: (entry: Record<string, unknown>) => Promise<unknown>;
    logger?: Logger;
  }) {
    this.#store = opts.store;
    this.#cluster = opts.cluster;
    this.#queue = opts.queue;
    this.#clock = opts.clock;
    this.#intervalMs = opts.intervalMs;
    this.#audit = opts.audit;
    this.#log = opts.logger;
  }

  start(): void {
    if (this.#timer) return;
    this.#timer = setInterval(() => {
      void this.sweep().catch((e) => this.#log?.warn({ err: e }, 'deletion sweep failed'));
    }, this.#intervalMs);
    this.#timer.unref();
  }

  async stop(): Promise<void> {
    if (this.#timer) clearInterval(this.#timer);
    this.#timer = undefined;
    await this.#running?.catch(() => undefined);
  }

  /** One pass; resolves with the key ids destroyed. Concurrent calls share the pass. */
  sweep(): Promise<string[]> {
    this.#running ??= this.#sweep().finally(() => {
      this.#running = undefined;
    });
    return this.#running;
  }

  async #sweep(): Promise<string[]> {
    const now = this.#clock.now();
    const due = (await this.#store.inState('PendingDeletion')).filter(
      (r) => r.deletionDate !== undefined && Date.parse(r.deletionDate) <= now,
    );
    const destroyed: string[] = [];
    for (const r of due) {
      const ok = await this.#queue.run(r.keyId, () => this.#destroy(r.keyId, now));
      if (ok) destroyed.push(r.keyId);
    }
    return destroyed;
  }

  async #destroy(keyId: string, now: number): Promise<boolean> {
    // Re-read under the key's queue: a cancel may have won the race.
    const rec = await this.#store.get(keyId);
    if (
      rec?.state !== 'PendingDeletion' ||
      rec.deletionDate === undefined ||
      Date.parse(rec.deletionDate) > now
    ) {
      return false;
    }
    await this.#audit({
      type: 'decision',
      action: 'destroy',
      keyId,
      decision: 'allow',
      caller: { tokenId: 'system', name: 'deletion-sweeper' },
    });
    try {
      await this.#cluster.destroyKey({ keyId });
    } catch (e) {
      await this.#audit({
        type: 'session',
        action: 'destroy',
        keyId,
        outcome: 'failed',
        code: (e as { code?: string }).code ?? 'Internal',
      });
      this.#log?.warn({ keyId, code: (e as { code?: string }).code }, 'destroying shares failed; will retry');
      return false;
    }
    const next: KeyRecord = { ...rec, state: transition(rec.state, 'destroy') };
    await this.#store.releaseAlias(rec, next);
    await this.#audit({
      type: 'session',
      action: 'destroy',
      keyId,
      outcome: 'ok',
      epoch: rec.epochInfo?.epoch ?? null,
    });
    return true;
  }
}
