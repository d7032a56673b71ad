/**
 * Transferable evidence from signed broadcasts (protocol/signed-echo.ts, codec signed envelopes)
 * and the typed persist effect (protocol/machine.ts Effect), on the machines run in memory with
 * real Ed25519 node keys (helpers/signed-sim.ts: signed and checked as the node's session runner
 * does). Threats S-05 (a) and the review's "blame can be shifted by a lying echo" and I-1.
 */
import type { Key } from '@noble/curves/abstract/frost.js';
import { describe, expect, it } from 'vitest';
import { toHex } from '../protocol/bytes.ts';
import {
  encodeEnvelope,
  envelopeDigest,
  type SignedStatement,
  signedMessage,
  statementVerifies,
} from '../protocol/codec.ts';
import { dkgMachine } from '../protocol/dkg.ts';
import { fromHex } from '../protocol/bytes.ts';
import { KmsError } from '../protocol/errors.ts';
import { asEpoch, asSessionId, type ParticipantId } from '../protocol/ids.ts';
import type { Envelope, EnvelopeHeader } from '../protocol/machine.ts';
import { dealingPolynomial, evaluatePolynomial, identifierScalar } from '../protocol/polynomial.ts';
import { refreshMachine } from '../protocol/refresh.ts';
import { type RepairResult, repairMachine } from '../protocol/repair.ts';
import { type KeyEventResult, reshareMachine } from '../protocol/reshare.ts';
import { KEY_SPEC_REGISTRY } from '../protocol/suites.ts';
import { testNodeKeys } from './helpers/node-keys.ts';
import { signedSimulate } from './helpers/signed-sim.ts';
import { dkg, freshSession, KEY_ID, pids } from './key-events-fixture.ts';

const spec = KEY_SPEC_REGISTRY.FROST_ED25519;
const keys = testNodeKeys();
const P = pids(spec, [1, 2, 3, 4]);
const [P1, P2, P3, P4] = P as [ParticipantId, ParticipantId, ParticipantId, ParticipantId];
let run = 0;

const dkgMachines = (backend: 'native' | 'noble', sessionId = asSessionId(`signed-${++run}`)) =>
  P.map((self) =>
    dkgMachine({
      spec,
      keyId: KEY_ID,
      sessionId,
      self,
      participants: P,
      threshold: 3,
      backend,
      verify: keys.check,
    }),
  );

type Evidence = Record<string, any>;
const evidenceOf = (e: unknown): { participant: string; reason: string; evidence: Evidence } => {
  expect(e).toBeInstanceOf(KmsError);
  const k = e as KmsError;
  expect(k.code).toBe('ParticipantMisbehaved');
  expect(k.culprits).toHaveLength(1);
  const b = k.culprits[0]!;
  return { participant: b.participant, reason: b.reason, evidence: JSON.parse(b.evidence!) };
};

/** A statement from evidence JSON (hex) back to bytes. */
const statement = (j: Evidence): SignedStatement => ({
  header: j.header as EnvelopeHeader,
  digest: fromHex(j.digest),
  signature: fromHex(j.signature),
});
const signedBy = (who: string, j: Evidence) =>
  statementVerifies(statement(j), (m, s) => keys.verify(who, m, s));

/** Checks a forged-echo verdict as a third party would: the echoer signed the echo, the claim is not the sender's. */
function expectForgedEcho(ev: Evidence, echoer: string, sender: string) {
  expect(ev.kind).toBe('forged-echo');
  expect(ev.echoer).toBe(echoer);
  expect(ev.sender).toBe(sender);
  expect(signedBy(echoer, ev.echo)).toBe(true);
  expect(toHex(envelopeDigest(fromHex(ev.echo.bytes)))).toBe(ev.echo.digest);
  expect(signedBy(sender, ev.claimed)).toBe(false);
}

/** Checks a two-signed-messages verdict: both statements signed by `signer`, same header, different digests. */
function expectTwoSigned(ev: Evidence, signer: string) {
  expect(ev.kind).toBe('two-signed-messages');
  expect(ev.signer).toBe(signer);
  expect(ev.a.header).toEqual(ev.b.header);
  expect(ev.a.digest).not.toBe(ev.b.digest);
  expect(signedBy(signer, ev.a)).toBe(true);
  expect(signedBy(signer, ev.b)).toBe(true);
}

/**
 * The victim of an equivocation holds the other copy: to it, the equivocator's own echo contradicts
 * the message it signed (also two signatures of the equivocator). Everyone else: two signed messages.
 */
function expectSignedContradiction(ev: Evidence, signer: string) {
  if (ev.kind === 'two-signed-messages') return expectTwoSigned(ev, signer);
  expect(ev.kind).toBe('echo-contradicts-own-message');
  expect(ev.signer).toBe(signer);
  expect(signedBy(signer, ev.message)).toBe(true);
  expect(signedBy(signer, ev.echo)).toBe(true);
}

describe('DKG with signed broadcasts', () => {
  for (const backend of ['native', 'noble'] as const) {
    it(`${backend}: an honest run finishes, every echo forwarding the other senders' signatures`, () => {
      const r = signedSimulate(dkgMachines(backend), keys);
      expect(r.errors.size).toBe(0);
      expect(r.results.size).toBe(4);
      const echoes = r.sent.filter((e) => e.header.round === 'dkg.echo');
      expect(echoes).toHaveLength(4);
      for (const e of echoes) {
        const sigs = (e.body as { signatures: Record<string, Uint8Array> }).signatures;
        expect(Object.keys(sigs).sort()).toEqual(P.filter((p) => p !== e.header.from).sort());
      }
    });

    it(`${backend}: an echo lying about a third party names the echoer, not the honest party`, () => {
      const r = signedSimulate(dkgMachines(backend), keys, (env) => {
        if (env.header.round !== 'dkg.echo' || env.header.from !== P4) return env;
        const digests = { ...(env.body.digests as Record<string, Uint8Array>) };
        digests[P2] = new Uint8Array(32).fill(7); // P2's real signature stays: it cannot match
        return { ...env, body: { ...env.body, digests } };
      });
      expect(r.results.size).toBe(0);
      for (const honest of [P1, P2, P3]) {
        const b = evidenceOf(r.errors.get(honest));
        expect(b.participant).toBe(P4);
        expectForgedEcho(b.evidence, P4, P2);
      }
    });

    it(`${backend}: a real signature of the third party from another session does not help the liar`, () => {
      const earlier = signedSimulate(dkgMachines(backend), keys);
      const r1 = earlier.sent.find((e) => e.header.round === 'dkg.r1' && e.header.from === P2)!;
      const replayed = { digest: envelopeDigest(encodeEnvelope(r1)), signature: r1.signature! };
      const r = signedSimulate(dkgMachines(backend), keys, (env) => {
        if (env.header.round !== 'dkg.echo' || env.header.from !== P4) return env;
        const body = env.body as {
          digests: Record<string, Uint8Array>;
          signatures: Record<string, Uint8Array>;
        };
        return {
          ...env,
          body: {
            digests: { ...body.digests, [P2]: replayed.digest },
            signatures: { ...body.signatures, [P2]: replayed.signature },
          },
        };
      });
      for (const honest of [P1, P2, P3]) {
        const b = evidenceOf(r.errors.get(honest));
        expect(b.participant).toBe(P4);
        expectForgedEcho(b.evidence, P4, P2);
      }
    });

    it(`${backend}: an echo misreporting the echoer's own message names the echoer, with both its signatures`, () => {
      const r = signedSimulate(dkgMachines(backend), keys, (env) => {
        if (env.header.round !== 'dkg.echo' || env.header.from !== P4) return env;
        const digests = { ...(env.body.digests as Record<string, Uint8Array>), [P4]: new Uint8Array(32) };
        return { ...env, body: { ...env.body, digests } };
      });
      for (const honest of [P1, P2, P3]) {
        const b = evidenceOf(r.errors.get(honest));
        expect(b.participant).toBe(P4);
        expect(b.evidence.kind).toBe('echo-contradicts-own-message');
        expect(signedBy(P4, b.evidence.message)).toBe(true);
        expect(signedBy(P4, b.evidence.echo)).toBe(true);
      }
    });

    it(`${backend}: a dealer sending two signed round-1 packages is named with both signatures (S-05 a)`, () => {
      const sessionId = asSessionId(`signed-${++run}`);
      const alt = dkgMachine({
        spec,
        keyId: KEY_ID,
        sessionId,
        self: P1,
        participants: P,
        threshold: 3,
        backend,
      }).start().out[0]!;
      const r = signedSimulate(dkgMachines(backend, sessionId), keys, (env, to) =>
        env.header.round === 'dkg.r1' && env.header.from === P1 && to === P3 ? alt : env,
      );
      expect(r.results.size).toBe(0);
      for (const honest of [P2, P3, P4]) {
        const b = evidenceOf(r.errors.get(honest));
        expect(b.participant).toBe(P1);
        expect(b.reason).toBe('equivocation');
        if (honest === P3) expectSignedContradiction(b.evidence, P1);
        else expectTwoSigned(b.evidence, P1);
      }
    });
  }

  for (const signed of [true, false]) {
    it(`two different dkg.r2 sub-shares from one dealer: equivocation evidence holds no sub-share (review I-1, ${signed ? 'signed' : 'unsigned'})`, () => {
      const sessionId = asSessionId(`signed-${++run}`);
      const ms = P.map((self) =>
        dkgMachine({
          spec,
          keyId: KEY_ID,
          sessionId,
          self,
          participants: P,
          threshold: 3,
          ...(signed ? { verify: keys.check } : {}),
        }),
      );
      const sign = <E extends Envelope<any>>(e: E): E => (signed ? keys.signed(e.header.from, e) : e);
      const starts = ms.map((m) => m.start());
      const r1 = starts.map((s) => sign(s.out[0]!));
      // P1 gets every round-1 package and deals its sub-shares.
      let s1 = starts[0]!.state;
      let out1: Envelope<any>[] = [];
      for (const e of r1.slice(1)) {
        const st = ms[0]!.receive(s1, e);
        s1 = st.state;
        out1 = [...out1, ...st.out];
      }
      const toP2 = out1.find((e) => e.header.round === 'dkg.r2' && e.header.to === P2)!;
      const share = toP2.body.share as Uint8Array;
      const other = spec.Point.Fn.toBytes(spec.Point.Fn.add(spec.Point.Fn.fromBytes(share), 1n));
      // P2 gets the round-1 packages, then P1's sub-share twice, differently.
      let s2 = starts[1]!.state;
      for (const e of [r1[0]!, r1[2]!, r1[3]!]) s2 = ms[1]!.receive(s2, e).state;
      s2 = ms[1]!.receive(s2, sign(toP2)).state;
      let err: unknown;
      try {
        ms[1]!.receive(s2, sign({ ...toP2, body: { share: other } }));
      } catch (e) {
        err = e;
      }
      expect(err).toBeInstanceOf(KmsError);
      const k = err as KmsError;
      expect(k.culprits.map((b) => `${b.participant}/${b.reason}`)).toEqual([`${P1}/equivocation`]);
      const text = JSON.stringify(k.toJSON()) + k.message;
      for (const secret of [share, other]) expect(text).not.toContain(toHex(secret));
      if (signed) expectTwoSigned(JSON.parse(k.culprits[0]!.evidence!), P1);
      else expect(k.culprits[0]!.evidence).toMatch(/^[0-9a-f]{64} != [0-9a-f]{64}$/);
    });
  }
});

describe('key events with signed broadcasts', () => {
  const ids = pids(spec, [1, 2, 3, 4]);
  const old = dkg(spec, 2, ids);
  const oldPublic = old.get(ids[0]!)!.public;

  /** 2-of-4 -> 3-of-4 reshare with dealers 1 and 2 (member 1 leaves when `leave` is set). */
  const reshare = (opts: { leave?: boolean } = {}) => {
    const newParticipants = opts.leave ? pids(spec, [2, 3, 4, 5]) : ids;
    const dealers = pids(spec, [1, 2]);
    const sessionId = freshSession();
    const parties = [...new Set([...dealers, ...newParticipants])];
    return parties.map((self) => {
      const oldKey = old.get(self);
      return reshareMachine({
        spec,
        keyId: KEY_ID,
        sessionId,
        self,
        oldEpoch: asEpoch(0),
        newEpoch: asEpoch(1),
        oldThreshold: 2,
        oldPublic,
        dealers,
        newParticipants,
        newThreshold: 3,
        verify: keys.check,
        ...(oldKey && dealers.includes(self) ? { oldKey } : {}),
      });
    });
  };

  it('reshare: an echo lying about a dealer names the echoer', () => {
    const liar = ids[3]!;
    const dealer = ids[0]!;
    const r = signedSimulate<KeyEventResult>(reshare(), keys, (env) => {
      if (env.header.round !== 'reshare.echo' || env.header.from !== liar) return env;
      const digests = [...(env.body.digests as Uint8Array[])];
      digests[0] = new Uint8Array(32).fill(1);
      return { ...env, body: { ...env.body, digests } };
    });
    expect(r.results.size).toBe(0);
    for (const honest of ids.filter((p) => p !== liar)) {
      const b = evidenceOf(r.errors.get(honest));
      expect(b.participant).toBe(liar);
      expectForgedEcho(b.evidence, liar, dealer);
    }
  });

  it('reshare: a dealer sending two signed dealings is named with both signatures', () => {
    const dealer = ids[1]!;
    const victim = ids[2]!;
    // Another dealing of the same old share: consistent for the victim, so only the echo can tell.
    const alt = dealingPolynomial(spec, 3, spec.Point.Fn.fromBytes(old.get(dealer)!.secret.signingShare));
    const r = signedSimulate<KeyEventResult>(reshare(), keys, (env, to) => {
      if (env.header.round !== 'reshare.deal' || env.header.from !== dealer || to !== victim) return env;
      if (env.header.to === '*')
        return { ...env, body: { commitments: alt.commitments.map((c) => c.toBytes()) } };
      const x = identifierScalar(spec, victim);
      return {
        ...env,
        body: { share: spec.Point.Fn.toBytes(evaluatePolynomial(spec, alt.coefficients, x)) },
      };
    });
    for (const honest of ids.filter((p) => p !== dealer)) {
      const b = evidenceOf(r.errors.get(honest));
      expect(b.participant).toBe(dealer);
      if (honest === victim) expectSignedContradiction(b.evidence, dealer);
      else expectTwoSigned(b.evidence, dealer);
    }
  });

  it('repair: a helper lying about another helper in its sigma is named; the evidence holds no sigma', () => {
    const keys5 = dkg(spec, 3, pids(spec, [1, 2, 3, 4, 5]));
    const helpers = pids(spec, [1, 3, 4]);
    const target = pids(spec, [2])[0]!;
    const liar = helpers[2]!;
    const sessionId = freshSession();
    const machines = [...helpers, target].map((self) => {
      const key = helpers.includes(self) ? keys5.get(self) : undefined;
      return repairMachine({
        spec,
        keyId: KEY_ID,
        sessionId,
        self,
        epoch: asEpoch(0),
        public: keys5.get(helpers[0]!)!.public,
        helpers,
        target,
        verify: keys.check,
        ...(key ? { key } : {}),
      });
    });
    let sigma: Uint8Array = new Uint8Array(0);
    const r = signedSimulate<RepairResult>(machines, keys, (env) => {
      if (env.header.round !== 'repair.sigma' || env.header.from !== liar) return env;
      sigma = env.body.sigma as Uint8Array;
      const digests = [...(env.body.digests as Uint8Array[])];
      digests[0] = new Uint8Array(32).fill(9);
      return { ...env, body: { ...env.body, digests } };
    });
    const b = evidenceOf(r.errors.get(target));
    expect(b.participant).toBe(liar);
    expect(b.evidence.kind).toBe('forged-echo');
    expect(b.evidence.echo.bytes).toBeUndefined();
    expect(signedBy(liar, b.evidence.echo)).toBe(true);
    expect(sigma.length).toBeGreaterThan(0);
    expect(JSON.stringify(b.evidence)).not.toContain(toHex(sigma));
  });
});

describe('persist-pending effect (the daemon never reads machine state)', () => {
  const ids = pids(spec, [1, 2, 3, 4]);

  /** Each party: exactly one persist-pending effect, in the step that sends its confirmation. */
  function expectOneEffect(
    r: ReturnType<typeof signedSimulate<{ key?: Key }>>,
    round: string,
    receivers: readonly ParticipantId[],
  ) {
    expect(r.errors.size).toBe(0);
    for (const [id, trace] of r.steps) {
      const withEffect = trace.filter((s) => s.effects.length > 0);
      const confirming = trace.filter((s) => s.rounds.includes(round));
      if (!receivers.includes(id)) {
        expect(withEffect).toEqual([]);
        expect(confirming).toEqual([]);
        continue;
      }
      expect(withEffect).toHaveLength(1);
      expect(confirming).toEqual(withEffect);
      const [effect] = withEffect[0]!.effects;
      expect(effect!.kind).toBe('persist-pending');
      const share = effect!.key.secret.signingShare;
      expect(share.some((b) => b !== 0)).toBe(true);
      expect(effect!.key.secret.identifier).toBe(id);
      expect(share).toEqual(r.results.get(id)!.key!.secret.signingShare);
    }
  }

  it('DKG: one effect per member, with its new non-zero share, in the step with its dkg.confirm', () => {
    const r = signedSimulate(dkgMachines('native'), keys);
    expectOneEffect(r, 'dkg.confirm', P);
  });

  it('refresh: one effect per member, in the step with its refresh.confirm', () => {
    const old = dkg(spec, 3, ids);
    const sessionId = freshSession();
    const machines = ids.map((self) =>
      refreshMachine({
        spec,
        keyId: KEY_ID,
        sessionId,
        self,
        oldEpoch: asEpoch(0),
        newEpoch: asEpoch(1),
        threshold: 3,
        key: old.get(self)!,
        verify: keys.check,
      }),
    );
    expectOneEffect(signedSimulate<KeyEventResult>(machines, keys), 'refresh.confirm', ids);
  });

  it('reshare: one effect per new member; a dealer leaving the committee has none', () => {
    const old = dkg(spec, 2, ids);
    const dealers = pids(spec, [1, 2]);
    const newParticipants = pids(spec, [2, 3, 4, 5]);
    const sessionId = freshSession();
    const machines = [...new Set([...dealers, ...newParticipants])].map((self) => {
      const oldKey = old.get(self);
      return reshareMachine({
        spec,
        keyId: KEY_ID,
        sessionId,
        self,
        oldEpoch: asEpoch(0),
        newEpoch: asEpoch(1),
        oldThreshold: 2,
        oldPublic: old.get(ids[0]!)!.public,
        dealers,
        newParticipants,
        newThreshold: 3,
        verify: keys.check,
        ...(oldKey && dealers.includes(self) ? { oldKey } : {}),
      });
    });
    const r = signedSimulate<KeyEventResult>(machines, keys);
    expect(r.steps.has(ids[0]!)).toBe(true);
    expectOneEffect(r, 'reshare.confirm', newParticipants);
  });
});

it('signedMessage binds the header: the same digest under another session does not verify', () => {
  const m = dkgMachines('native')[0]!;
  const env = keys.signed(P1, m.start().out[0]!);
  const digest = envelopeDigest(encodeEnvelope(env));
  expect(keys.verify(P1, signedMessage(env.header, digest), env.signature!)).toBe(true);
  const moved = { ...env.header, sessionId: asSessionId('elsewhere') };
  expect(keys.verify(P1, signedMessage(moved, digest), env.signature!)).toBe(false);
});
