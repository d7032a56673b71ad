/**
 * protocol/simulate.ts with node signatures, as the node's session runner does it: every envelope
 * leaves signed by its sender's key (test/helpers/node-keys.ts), and one is delivered only if its
 * signature checks against the key of its `from`. A `tamper` that rewrites an envelope models the
 * sender lying: the rewritten envelope is signed by that sender (an honest party's message cannot
 * be altered without its signature failing: a rewrite that carries a signature of its own is
 * delivered with it, and dropped if it does not check). Every step is traced, with its effects, for the persist-effect tests.
 */
import { checkEnvelopeSignature } from '../../protocol/codec.ts';
import type { ParticipantId } from '../../protocol/ids.ts';
import type { Effect, Envelope, Machine } from '../../protocol/machine.ts';
import { simulate } from '../../protocol/simulate.ts';
import type { TestNodeKeys } from './node-keys.ts';

export type SignedTamper = (env: Envelope<any>, recipient: ParticipantId) => Envelope<any> | null;

export type StepTrace = {
  readonly effects: readonly Effect[];
  readonly rounds: readonly string[];
  readonly done: boolean;
};

export type SignedSimulation<Result> = {
  readonly results: ReadonlyMap<ParticipantId, Result>;
  readonly errors: ReadonlyMap<ParticipantId, unknown>;
  /** Every signed envelope sent, in order. */
  readonly sent: readonly Envelope<any>[];
  /** Per participant, every step its machine took. */
  readonly steps: ReadonlyMap<ParticipantId, readonly StepTrace[]>;
  /** Deliveries dropped because their signature did not check. */
  readonly dropped: number;
};

export function signedSimulate<Result>(
  machines: readonly Machine<any, any, Result>[],
  keys: TestNodeKeys,
  tamper?: SignedTamper,
): SignedSimulation<Result> {
  const steps = new Map<ParticipantId, StepTrace[]>();
  let dropped = 0;
  const run = simulate(machines, tamper, {
    step: (id, step) => {
      if (!steps.has(id)) steps.set(id, []);
      steps.get(id)!.push({
        effects: step.effects ?? [],
        rounds: step.out.map((e) => e.header.round),
        done: step.done !== undefined,
      });
    },
    send: (from, env) => keys.signed(from, env),
    deliver: (tampered, env) => {
      let delivered = tampered;
      // A rewrite is the sender's own lie: it signs it (unless the tamper set another signature).
      if (delivered !== env && (delivered.signature === undefined || delivered.signature === env.signature))
        delivered = keys.signed(delivered.header.from, delivered);
      try {
        checkEnvelopeSignature(delivered, (msg, sig) => keys.verify(delivered.header.from, msg, sig));
      } catch {
        dropped++;
        return null;
      }
      return delivered;
    },
  });
  return { results: run.results, errors: run.errors, sent: run.sent, steps, dropped };
}
