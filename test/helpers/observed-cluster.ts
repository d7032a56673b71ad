/**
 * The real cluster as a test sees it: every call is forwarded to the wrapped Cluster (the
 * Libp2pCluster over real node daemons); the session methods are counted, with the number of
 * sessions running at once. It never answers in the cluster's place.
 *
 * `delayMs` holds each session open that much longer before it reaches the nodes, so that tests of
 * the coordinator's per-key lock can make operations overlap whatever the speed of real sessions.
 */
import type { Cluster } from '../../coordinator/cluster.ts';

const SESSION_METHODS = [
  'createKey',
  'sign',
  'refresh',
  'reshare',
  'repair',
  'setKeyState',
  'destroyKey',
] as const;
export type ObservedMethod = (typeof SESSION_METHODS)[number];

export type ObservedCluster = Cluster & {
  readonly inner: Cluster;
  /** Calls per session method, so tests can prove a refused or replayed request ran no session. */
  readonly calls: Record<ObservedMethod, number>;
  /** Extra latency per session, before it reaches the nodes (default 0). */
  delayMs: number;
  /** Highest number of sessions that were running at once (reset it to measure a stretch). */
  peakConcurrent: number;
};

export function observeCluster(inner: Cluster): ObservedCluster {
  const calls = Object.fromEntries(SESSION_METHODS.map((m) => [m, 0])) as Record<ObservedMethod, number>;
  let inflight = 0;
  const state = { delayMs: 0, peakConcurrent: 0 };
  const counted = (method: ObservedMethod, call: (...args: unknown[]) => Promise<unknown>) => {
    return async (...args: unknown[]) => {
      calls[method]++;
      inflight++;
      state.peakConcurrent = Math.max(state.peakConcurrent, inflight);
      try {
        if (state.delayMs > 0) await new Promise((r) => setTimeout(r, state.delayMs));
        return await call(...args);
      } finally {
        inflight--;
      }
    };
  };
  // A Proxy, so that methods the interface gains are forwarded without being listed here.
  return new Proxy(inner, {
    get(target, prop) {
      if (prop === 'inner') return inner;
      if (prop === 'calls') return calls;
      if (prop === 'delayMs' || prop === 'peakConcurrent') return state[prop];
      const v = Reflect.get(target, prop, target);
      if (typeof v !== 'function') return v;
      const bound = v.bind(target) as (...args: unknown[]) => Promise<unknown>;
      return (SESSION_METHODS as readonly (string | symbol)[]).includes(prop)
        ? counted(prop as ObservedMethod, bound)
        : bound;
    },
    set(_target, prop, value) {
      if (prop !== 'delayMs' && prop !== 'peakConcurrent') return false;
      state[prop] = value as number;
      return true;
    },
  }) as ObservedCluster;
}
