/**
 * Runs a set of protocol machines in memory, delivering every outgoing envelope to its recipients
 * in order. Used by tests and benchmarks to run whole sessions without a network; the node's
 * session runner does the same over libp2p. Pure: no clocks, no I/O.
 */
import type { ParticipantId } from './ids.ts';
import type { Envelope, Machine, Step } from './machine.ts';

export type Tamper = (env: Envelope<any>, recipient: ParticipantId) => Envelope<any> | null;

export type SimulationResult<Result> = {
  readonly results: ReadonlyMap<ParticipantId, Result>;
  /** Participants whose machine threw, with what it threw. */
  readonly errors: ReadonlyMap<ParticipantId, unknown>;
  /** Every envelope sent, in order (for transcripts and evidence in tests). */
  readonly sent: readonly Envelope<any>[];
};

/** What a caller may add around each step and delivery (tests: node signatures, step traces). */
export type SimulationHooks<Result> = {
  /** Sees every step a participant's machine takes. */
  readonly step?: (id: ParticipantId, step: Step<any, any, Result>) => void;
  /** Rewrites an outgoing envelope as it leaves its sender (e.g. signs it). */
  readonly send?: (from: ParticipantId, env: Envelope<any>) => Envelope<any>;
  /** After `tamper`: the envelope actually delivered (`original` as sent), or null to drop it. */
  readonly deliver?: (env: Envelope<any>, original: Envelope<any>) => Envelope<any> | null;
};

/**
 * `tamper` may rewrite or drop (return null) each delivery, to simulate a lying or silent peer.
 * A machine that throws stops receiving; the others go on until nothing is left to deliver.
 */
export function simulate<Result>(
  machines: readonly Machine<any, any, Result>[],
  tamper?: Tamper,
  hooks: SimulationHooks<Result> = {},
): SimulationResult<Result> {
  const byId = new Map<ParticipantId, Machine<any, any, Result>>(machines.map((m) => [m.self, m]));
  const states = new Map<ParticipantId, unknown>();
  const results = new Map<ParticipantId, Result>();
  const errors = new Map<ParticipantId, unknown>();
  const queue: { to: ParticipantId; env: Envelope<any> }[] = [];
  const sent: Envelope<any>[] = [];

  const absorb = (id: ParticipantId, step: Step<any, any, Result>) => {
    states.set(id, step.state);
    hooks.step?.(id, step);
    if (step.done !== undefined) results.set(id, step.done);
    for (const out of step.out) {
      const env = hooks.send ? hooks.send(id, out) : out;
      sent.push(env);
      const targets = env.header.to === '*' ? [...byId.keys()].filter((p) => p !== id) : [env.header.to];
      for (const to of targets) queue.push({ to, env });
    }
  };

  for (const m of machines) {
    try {
      absorb(m.self, m.start());
    } catch (e) {
      errors.set(m.self, e);
    }
  }
  while (queue.length > 0) {
    const { to, env } = queue.shift()!;
    const m = byId.get(to);
    if (!m || errors.has(to)) continue;
    const tampered = tamper ? tamper(env, to) : env;
    const delivered = tampered !== null && hooks.deliver ? hooks.deliver(tampered, env) : tampered;
    if (delivered === null) continue;
    try {
      absorb(to, m.receive(states.get(to), delivered));
    } catch (e) {
      errors.set(to, e);
    }
  }
  return { results, errors, sent };
}
