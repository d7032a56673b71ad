/**
 * Shared helpers for the key-event tests (refresh, reshare, repair, epochs): a real noble DKG to
 * start from, running events through protocol/simulate.ts, and signing with noble's
 * commit/signShare/aggregate.
 */
import type { DKG_Round1, DKG_Round2, FrostPublic, Key } from '@noble/curves/abstract/frost.js';
import {
  asEpoch,
  asKeyId,
  asParticipantId,
  asSessionId,
  type Epoch,
  type ParticipantId,
} from '../protocol/ids.ts';
import { lagrangeCoefficient } from '../protocol/polynomial.ts';
import { refreshMachine } from '../protocol/refresh.ts';
import { type KeyEventResult, reshareMachine } from '../protocol/reshare.ts';
import { simulate, type Tamper } from '../protocol/simulate.ts';
import {
  type KeySpec,
  KEY_SPEC_REGISTRY,
  publicKeyFromGroupElement,
  verifySignature,
} from '../protocol/suites.ts';

export const ALL_SPECS: readonly KeySpec[] = Object.values(KEY_SPEC_REGISTRY);
export const KEY_ID = asKeyId('3b241101-e2bb-4255-8caf-4136c566a962');
let sessionCounter = 0;
export const freshSession = () => asSessionId(`session-${++sessionCounter}`);

export const pid = (spec: KeySpec, k: number): ParticipantId =>
  asParticipantId(spec.frost.Identifier.fromNumber(k));
export const pids = (spec: KeySpec, ks: readonly number[]): ParticipantId[] => ks.map((k) => pid(spec, k));

/** A t-of-n key from noble's DKG (for secp256k1-tr: already taproot-tweaked, as in production). */
export function dkg(spec: KeySpec, t: number, ids: readonly ParticipantId[]): Map<ParticipantId, Key> {
  const signers = { min: t, max: ids.length };
  const r1 = ids.map((id) => ({ id, ...spec.frost.DKG.round1(id, signers) }));
  const pubs: DKG_Round1[] = r1.map((r) => r.public);
  const r2 = new Map<string, Record<string, DKG_Round2>>();
  for (const r of r1)
    r2.set(
      r.id,
      spec.frost.DKG.round2(
        r.secret,
        pubs.filter((p) => p.identifier !== r.id),
      ),
    );
  const keys = new Map<ParticipantId, Key>();
  for (const r of r1) {
    const mine = r1.filter((o) => o.id !== r.id).map((o) => r2.get(o.id)![r.id]!);
    keys.set(
      r.id,
      spec.frost.DKG.round3(
        r.secret,
        pubs.filter((p) => p.identifier !== r.id),
        mine,
      ),
    );
  }
  return keys;
}

/** Signs `msg` with the given keys (noble commit/signShare/aggregate); throws if aggregation fails. */
export function signWith(spec: KeySpec, keys: readonly Key[], msg: Uint8Array): Uint8Array {
  const pub = keys[0]!.public;
  const nonces = keys.map((k) => spec.frost.commit(k.secret));
  const commitments = nonces.map((n) => n.commitments);
  const shares: Record<string, Uint8Array> = {};
  keys.forEach((k, i) => {
    shares[k.secret.identifier] = spec.frost.signShare(
      k.secret,
      k.public,
      nonces[i]!.nonces,
      commitments,
      msg,
    );
  });
  return spec.frost.aggregate(pub, commitments, msg, shares);
}

/** True iff these keys produce a signature that the suite's standard verifier accepts under `group`. */
export function canSign(
  spec: KeySpec,
  keys: readonly Key[],
  group: Uint8Array,
  msg = new TextEncoder().encode('m'),
): boolean {
  let sig: Uint8Array;
  try {
    sig = signWith(spec, keys, msg);
  } catch {
    return false;
  }
  return verifySignature(spec, msg, sig, publicKeyFromGroupElement(spec, group));
}

export function pickRandom<T>(xs: readonly T[], k: number, rnd: () => number = Math.random): T[] {
  const a = [...xs];
  for (let i = a.length - 1; i > 0; i--) {
    const j = Math.floor(rnd() * (i + 1));
    [a[i], a[j]] = [a[j]!, a[i]!];
  }
  return a.slice(0, k);
}

export type EventOutcome = {
  results: Map<ParticipantId, KeyEventResult>;
  errors: Map<ParticipantId, unknown>;
};

export function runReshare(
  spec: KeySpec,
  old: Map<ParticipantId, Key>,
  opts: {
    oldEpoch: number;
    dealers: ParticipantId[];
    newParticipants: ParticipantId[];
    newThreshold: number;
    tamper?: Tamper;
  },
): EventOutcome {
  const oldPublic: FrostPublic = old.values().next().value!.public;
  const parties = [...new Set([...opts.dealers, ...opts.newParticipants])];
  const sessionId = freshSession();
  const machines = parties.map((self) => {
    const oldKey = old.get(self);
    return reshareMachine({
      spec,
      keyId: KEY_ID,
      sessionId,
      self,
      oldEpoch: asEpoch(opts.oldEpoch),
      newEpoch: asEpoch(opts.oldEpoch + 1),
      oldThreshold: oldPublic.signers.min,
      oldPublic,
      dealers: opts.dealers,
      newParticipants: opts.newParticipants,
      newThreshold: opts.newThreshold,
      ...(oldKey ? { oldKey } : {}),
    });
  });
  const r = simulate(machines, opts.tamper);
  return { results: new Map(r.results), errors: new Map(r.errors) };
}

export function runRefresh(
  spec: KeySpec,
  old: Map<ParticipantId, Key>,
  oldEpoch: number,
  tamper?: Tamper,
): EventOutcome {
  const sessionId = freshSession();
  const machines = [...old.entries()].map(([self, key]) =>
    refreshMachine({
      spec,
      keyId: KEY_ID,
      sessionId,
      self,
      oldEpoch: asEpoch(oldEpoch),
      newEpoch: asEpoch(oldEpoch + 1),
      threshold: key.public.signers.min,
      key,
    }),
  );
  const r = simulate(machines, tamper);
  return { results: new Map(r.results), errors: new Map(r.errors) };
}

/** New keys of a successful event (every new member has one). */
export function newKeys(out: EventOutcome): Map<ParticipantId, Key> {
  const m = new Map<ParticipantId, Key>();
  for (const [id, r] of out.results) if (r.key) m.set(id, r.key);
  return m;
}

export const epochOf = (n: number): Epoch => asEpoch(n);

/** (Σ λ_i·s_i)·G over exactly these shares: equals the group element iff they reconstruct the key. */
export function interpolatesToGroup(spec: KeySpec, keys: readonly Key[], group: Uint8Array): boolean {
  const Fn = spec.Point.Fn;
  const ids = keys.map((k) => k.secret.identifier);
  let s = Fn.ZERO;
  for (const k of keys)
    s = Fn.add(
      s,
      Fn.mul(Fn.fromBytes(k.secret.signingShare), lagrangeCoefficient(spec, ids, k.secret.identifier)),
    );
  if (Fn.is0(s)) return false;
  return spec.Point.BASE.multiply(s).equals(spec.Point.fromBytes(group));
}

/**
 * t-1 shares cannot sign: they do not interpolate to the key, and (where noble allows a package
 * with min = t-1 >= 2) a real signing attempt with the threshold lowered in the package fails.
 */
export function belowThresholdFails(spec: KeySpec, keys: readonly Key[], group: Uint8Array): boolean {
  if (interpolatesToGroup(spec, keys, group)) return false;
  if (keys.length < 2) return true;
  const lowered = keys.map((k) => ({
    public: { ...k.public, signers: { ...k.public.signers, min: keys.length } },
    secret: k.secret,
  }));
  return !canSign(spec, lowered, group);
}

/** A t-of-n key from noble's trusted dealer: cheaper than DKG for large n (untweaked for secp256k1-tr). */
export function dealt(spec: KeySpec, t: number, ids: readonly ParticipantId[]): Map<ParticipantId, Key> {
  const d = spec.frost.trustedDealer({ min: t, max: ids.length }, [...ids]);
  return new Map(ids.map((id) => [id, { public: d.public, secret: d.secretShares[id]! }]));
}
