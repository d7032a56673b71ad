/**
 * DKG machine: honest runs agree, out-of-order delivery is buffered, and every misbehaviour
 * aborts with the right culprit, reason and code (threats S-04, S-05, S-06, S-07, S-08, S-10).
 */
import { describe, expect, it } from 'vitest';
import { type DkgConfig, dkgMachine } from '../protocol/dkg.ts';
import { KmsError, ProtocolError } from '../protocol/errors.ts';
import { asKeyId, asSessionId, type ParticipantId } from '../protocol/ids.ts';
import type { Envelope } from '../protocol/machine.ts';
import { type SimulationResult, simulate, type Tamper } from '../protocol/simulate.ts';
import { type KeySpec, keySpec } from '../protocol/suites.ts';
import type { DkgResult } from '../protocol/dkg.ts';

const spec = keySpec('FROST_SECP256K1');
const ids = (s: KeySpec, n: number) =>
  Array.from({ length: n }, (_, i) => s.frost.Identifier.fromNumber(i + 1) as ParticipantId);
const P = ids(spec, 4);
const [P1, P2, P3] = [P[0]!, P[1]!, P[2]!];

function config(self: ParticipantId, over: Partial<DkgConfig> = {}): DkgConfig {
  return {
    spec,
    keyId: asKeyId('key-1'),
    sessionId: asSessionId('sess-1'),
    self,
    participants: P,
    threshold: 3,
    ...over,
  };
}
const machines = (over: Partial<DkgConfig> = {}) => P.map((p) => dkgMachine(config(p, over)));
const run = (tamper?: Tamper, over: Partial<DkgConfig> = {}) => simulate(machines(over), tamper);

/** Envelopes another run of P1 would send: a second, valid but different, polynomial. */
function otherRunOf(self: ParticipantId, over: Partial<DkgConfig> = {}) {
  return dkgMachine(config(self, over)).start().out[0]!;
}

function blames(r: SimulationResult<DkgResult>, culprit: ParticipantId, reason: string): ProtocolError {
  const errs = [...r.errors.values()];
  expect(errs.length).toBeGreaterThan(0);
  const hit = errs.find(
    (e) =>
      e instanceof ProtocolError && e.culprits.some((c) => c.participant === culprit && c.reason === reason),
  ) as ProtocolError | undefined;
  if (!hit) throw new Error(`no abort blamed ${culprit} for ${reason}: ${errs.map(String).join('; ')}`);
  expect(hit.code).toBe('ParticipantMisbehaved');
  // No honest party blamed another honest party (the culprit's own machine is the adversary's).
  for (const [who, e] of r.errors) {
    if (who === culprit) continue;
    for (const c of (e as KmsError).culprits) expect(c.participant).toBe(culprit);
  }
  // No two parties ended with different keys.
  expect(
    new Set([...r.results.values()].map((x) => Buffer.from(x.groupElement).toString('hex'))).size,
  ).toBeLessThanOrEqual(1);
  return hit;
}

const only =
  (
    round: string,
    from: ParticipantId,
    to: ParticipantId | undefined,
    f: (e: Envelope<any>) => Envelope<any>,
  ): Tamper =>
  (env, recipient) =>
    env.header.round === round && env.header.from === from && (to === undefined || recipient === to)
      ? f(env)
      : env;

describe('DKG machine', () => {
  it('honest run: every party ends with the same key, transcript and full confirmations', () => {
    const r = run();
    expect(r.errors.size).toBe(0);
    expect(r.results.size).toBe(4);
    const res = [...r.results.values()];
    for (const x of res) {
      expect(x.groupElement).toEqual(res[0]!.groupElement);
      expect(x.transcriptHash).toEqual(res[0]!.transcriptHash);
      expect(Object.keys(x.confirmations).sort()).toEqual([...P].sort());
      expect(x.publicKey).toEqual(res[0]!.publicKey);
    }
    // Shares are distinct and consistent with the verifying shares.
    expect(new Set(res.map((x) => Buffer.from(x.key.secret.signingShare).toString('hex'))).size).toBe(4);
  });

  it('buffers messages that arrive for a later round (shuffled delivery)', () => {
    const ms = machines();
    const states = new Map<ParticipantId, any>();
    const queue: { to: ParticipantId; env: Envelope<any> }[] = [];
    const results = new Map<ParticipantId, DkgResult>();
    const push = (from: ParticipantId, out: readonly Envelope<any>[]) => {
      for (const env of out)
        for (const to of env.header.to === '*' ? P.filter((p) => p !== from) : [env.header.to])
          queue.push({ to, env });
    };
    for (const m of ms) {
      const s = m.start();
      states.set(m.self, s.state);
      push(m.self, s.out);
    }
    let seed = 7;
    while (queue.length > 0) {
      seed = (seed * 1103515245 + 12345) % 2 ** 31;
      // Deliver the newest message first half of the time: later rounds overtake earlier ones.
      const i = seed % 2 === 0 ? queue.length - 1 : seed % queue.length;
      const { to, env } = queue.splice(i, 1)[0]!;
      const m = ms.find((x) => x.self === to)!;
      const step = m.receive(states.get(to), env);
      states.set(to, step.state);
      if (step.done) results.set(to, step.done);
      push(to, step.out);
    }
    expect(results.size).toBe(4);
  });

  it('ignores an identical retransmission', () => {
    const r = simulate(machines(), (env) => env);
    expect(r.errors.size).toBe(0);
    const m = machines()[0]!;
    const s = m.start();
    const other = dkgMachine(config(P2)).start().out[0]!;
    const s1 = m.receive(s.state, other);
    const s2 = m.receive(s1.state, other);
    expect(s2.out).toHaveLength(0);
  });

  it("bad proof of knowledge (noble's PoK from another sender): blames the sender", () => {
    const stolen = otherRunOf(P2).body as Record<string, unknown>;
    const r = run(only('dkg.r1', P1, undefined, (e) => ({ ...e, body: { ...e.body, pok: stolen.pok } })));
    blames(r, P1, 'bad-proof-of-knowledge');
  });

  it('copying another participant’s round-1 package under one’s own id is rejected (S-04 b)', () => {
    const copied = otherRunOf(P2).body;
    const r = run(only('dkg.r1', P1, undefined, (e) => ({ ...e, body: copied })));
    blames(r, P1, 'bad-proof-of-knowledge');
  });

  it('a round-1 package replayed from another session is rejected (S-04 c)', () => {
    const old = otherRunOf(P1, { sessionId: asSessionId('sess-old') }).body;
    const r = run(only('dkg.r1', P1, undefined, (e) => ({ ...e, body: old })));
    blames(r, P1, 'bad-proof-of-knowledge');
  });

  it('a message from another session is a ContextMismatch, not accepted', () => {
    const m = dkgMachine(config(P1));
    const s = m.start();
    const foreign = otherRunOf(P2, { sessionId: asSessionId('sess-2') });
    expect(() => m.receive(s.state, foreign)).toThrowError(
      expect.objectContaining({ code: 'ContextMismatch' }),
    );
  });

  it('bad share to one recipient: that recipient blames the dealer (S-05 b)', () => {
    const r = run(
      only('dkg.r2', P1, P2, (e) => ({ ...e, body: { share: spec.frost.utils.randomScalar() } })),
    );
    const err = blames(r, P1, 'bad-share');
    expect(r.errors.has(P2)).toBe(true);
    expect(err.culprits[0]!.round).toBe('dkg.r2');
  });

  it('equivocation: a dealer sending a different valid round-1 package to one party is caught by the echo (S-05 a)', () => {
    const alt = otherRunOf(P1);
    const r = run(only('dkg.r1', P1, P3, () => alt));
    const err = blames(r, P1, 'equivocation');
    expect(err.culprits[0]!.evidence).toMatch(/^[0-9a-f]{64} != [0-9a-f]{64}/);
    expect(r.results.size).toBe(0);
  });

  it('two different messages for one round from one sender: equivocation', () => {
    const m = dkgMachine(config(P1));
    const s = m.start();
    const a = dkgMachine(config(P2)).start().out[0]!;
    const b = dkgMachine(config(P2)).start().out[0]!;
    const s1 = m.receive(s.state, a);
    expect(() => m.receive(s1.state, b)).toThrowError(
      expect.objectContaining({
        code: 'ParticipantMisbehaved',
        culprits: [expect.objectContaining({ participant: P2, reason: 'equivocation' })],
      }),
    );
  });

  for (const len of [2, 4, 0]) {
    it(`commitment vector of length ${len} (t = 3): wrong-vector-length (S-06)`, () => {
      const r = run(
        only('dkg.r1', P1, undefined, (e) => {
          const c = e.body.commitment as Uint8Array[];
          const v = len <= c.length ? c.slice(0, len) : [...c, spec.Point.BASE.toBytes()];
          return { ...e, body: { ...e.body, commitment: v } };
        }),
      );
      blames(r, P1, 'wrong-vector-length');
    });
  }

  it('invalid element in the commitment vector: invalid-element', () => {
    const r = run(
      only('dkg.r1', P1, undefined, (e) => {
        const c = [...(e.body.commitment as Uint8Array[])];
        c[1] = new Uint8Array(33).fill(0xff);
        return { ...e, body: { ...e.body, commitment: c } };
      }),
    );
    const err = blames(r, P1, 'invalid-element');
    expect(err.details).toEqual({ decodeCode: 'InvalidElement' });
  });

  it('out-of-range share scalar: invalid-scalar', () => {
    const r = run(only('dkg.r2', P1, P2, (e) => ({ ...e, body: { share: new Uint8Array(32).fill(0xff) } })));
    blames(r, P1, 'invalid-scalar');
  });

  it('missing or mistyped fields: malformed-message', () => {
    const r = run(only('dkg.echo', P1, P2, (e) => ({ ...e, body: { digests: 'nope' } })));
    blames(r, P1, 'malformed-message');
  });

  it('sender outside the committee: spoofed-sender', () => {
    const m = dkgMachine(config(P1));
    const s = m.start();
    const stranger = spec.frost.Identifier.fromNumber(9) as ParticipantId;
    const env = otherRunOf(P2);
    expect(() => m.receive(s.state, { ...env, header: { ...env.header, from: stranger } })).toThrowError(
      expect.objectContaining({
        code: 'ParticipantMisbehaved',
        culprits: [expect.objectContaining({ participant: stranger, reason: 'spoofed-sender' })],
      }),
    );
  });

  it('bad confirmation: blames the confirmer', () => {
    const R = spec.Point.BASE.multiply(5n).toBytes();
    const z = spec.frost.utils.randomScalar();
    const r = run(only('dkg.confirm', P1, undefined, (e) => ({ ...e, body: { R, z } })));
    blames(r, P1, 'bad-confirmation');
    expect(r.results.size).toBe(1); // only P1 itself saw all-valid confirmations
  });

  it('an echo misreporting our own message blames the reporter', () => {
    const r = run(
      only('dkg.echo', P1, P2, (e) => {
        const d = { ...(e.body.digests as Record<string, Uint8Array>) };
        d[P2] = new Uint8Array(32);
        return { ...e, body: { digests: d } };
      }),
    );
    blames(r, P1, 'equivocation');
  });

  it('rejects bad configurations with typed errors', () => {
    expect(() => dkgMachine(config(P1, { threshold: 1 }))).toThrowError(
      expect.objectContaining({ code: 'ValidationError' }),
    );
    expect(() => dkgMachine(config(P1, { threshold: 5 }))).toThrowError(
      expect.objectContaining({ code: 'ValidationError' }),
    );
    expect(() => dkgMachine(config(P1, { participants: [P1, P2, P2] }))).toThrowError(
      expect.objectContaining({ code: 'InvalidIdentifier' }),
    );
    const zero = '00'.repeat(32) as ParticipantId;
    expect(() => dkgMachine(config(P1, { participants: [P1, P2, zero] }))).toThrowError(
      expect.objectContaining({ code: 'InvalidIdentifier' }),
    );
    expect(() => dkgMachine(config(zero))).toThrowError(KmsError);
  });
});
