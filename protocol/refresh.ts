/**
 * Proactive refresh: same committee, same threshold, fresh shares, same group key
 * (Herzberg–Jarecki–Krawczyk–Yung, "Proactive Secret Sharing", CRYPTO 1995). Every member deals
 * a random polynomial g_i with g_i(0) = 0 and Feldman commitments; member j's new share is
 * s_j + Σ_i g_i(j). Old shares are useless once the new epoch is active: mixing them with new
 * ones interpolates to a different secret.
 *
 * The commitment to g_i(0) = 0 would be the identity, which RFC 9591 §3.1 forbids on the wire, so
 * dealers send the t-1 commitments to coefficients 1..t-1 only; the constant is fixed to zero by
 * construction, so no dealer can move the key. The vector must have exactly t-1 entries and the
 * threshold is an explicit input that must equal the stored package's (S-06; ZF FROST 2.2.0 fix:
 * a refresh never changes min_signers). Rounds and messages are reshare.ts's dealing engine.
 */
import type { FrostPublic, Key, RNG } from '@noble/curves/abstract/frost.js';
import { numberToBytesBE } from '@noble/curves/utils.js';
import { utf8ToBytes } from './bytes.ts';
import { ProtocolError, StateError } from './errors.ts';
import { type Backend, groupOf } from './group.ts';
import type { Epoch, KeyId, ParticipantId, SessionId } from './ids.ts';
import type { Machine, SignatureCheck } from './machine.ts';
import { zeroPolynomial } from './polynomial.ts';
import {
  type DealingPlan,
  dealingMachine,
  type KeyEventBody,
  type KeyEventResult,
  type KeyEventState,
  publicItems,
  verifyingSharesFrom,
} from './reshare.ts';
import type { KeySpec } from './suites.ts';

export type RefreshConfig = {
  readonly spec: KeySpec;
  readonly keyId: KeyId;
  readonly sessionId: SessionId;
  readonly self: ParticipantId;
  readonly oldEpoch: Epoch;
  readonly newEpoch: Epoch;
  /** The key's threshold: explicit, and must equal the stored package's (a refresh never changes it). */
  readonly threshold: number;
  /** Own share of the old epoch; its public package defines the committee (every member takes part). */
  readonly key: Key;
  /** 'noble' runs the reference arithmetic (equality tests); default native where available. */
  readonly backend?: Backend;
  /** Randomness (tests inject a seeded one to compare backends); default CSPRNG. */
  readonly rng?: RNG;
  /** Checks forwarded node signatures (see DkgConfig.verify): set by the node, absent in-memory. */
  readonly verify?: SignatureCheck;
};

export function refreshMachine(cfg: RefreshConfig): Machine<KeyEventState, KeyEventBody, KeyEventResult> {
  const { spec, key } = cfg;
  const Fn = spec.Point.Fn;
  const pub = key.public;
  if (
    !Number.isSafeInteger(cfg.threshold) ||
    cfg.threshold !== pub.signers.min ||
    pub.commitments.length !== cfg.threshold
  ) {
    throw new StateError('ValidationError', 'a refresh must keep the threshold of the stored key package');
  }
  if (cfg.newEpoch <= cfg.oldEpoch) throw new StateError('EpochMismatch', 'newEpoch must follow oldEpoch');
  if (key.secret.identifier !== cfg.self)
    throw new StateError('ValidationError', 'key belongs to another participant');
  const committee = Object.keys(pub.verifyingShares).sort() as ParticipantId[];
  if (committee.length !== pub.signers.max || !committee.includes(cfg.self)) {
    throw new StateError('ValidationError', 'stored public package does not list this committee');
  }
  const g = groupOf(spec, cfg.backend);
  const oldCommitments = pub.commitments.map((c, k) => g.decode(c, `commitment ${k}`));
  const t = cfg.threshold;
  const plan: DealingPlan = {
    protocol: 'refresh',
    spec,
    group: g,
    ...(cfg.rng ? { rng: cfg.rng } : {}),
    ...(cfg.verify ? { verify: cfg.verify } : {}),
    keyId: cfg.keyId,
    sessionId: cfg.sessionId,
    self: cfg.self,
    newEpoch: cfg.newEpoch,
    dealers: committee,
    receivers: committee,
    commitmentLength: t - 1,
    firstPower: 1,
    context: [
      utf8ToBytes(`refresh/${spec.name}/${cfg.keyId}/${cfg.sessionId}`),
      numberToBytesBE(cfg.oldEpoch, 4),
      numberToBytesBE(cfg.newEpoch, 4),
      numberToBytesBE(t, 4),
      ...publicItems(pub),
    ],
    deal: () => zeroPolynomial(spec, t, g, cfg.rng),
    checkDealer: () => undefined,
    combineShare: (sub) => {
      let s = Fn.fromBytes(key.secret.signingShare);
      for (const d of committee) s = Fn.add(s, sub.get(d)!);
      return s;
    },
    combinePublic: (byDealer) => {
      // C'_0 = C_0 (the group element, untouched); C'_k = C_k + Σ_i G_i,k for k >= 1.
      const commitments = oldCommitments.map((c, k) => {
        if (k === 0) return c;
        let acc = c;
        for (const d of committee) acc = acc.add(byDealer.get(d)![k - 1]!);
        return acc;
      });
      if (commitments.some((c) => c.is0()))
        throw new ProtocolError('ProtocolAborted', 'combined commitment is the identity');
      return {
        signers: { min: t, max: committee.length },
        commitments: commitments.map((c) => c.toBytes()),
        verifyingShares: verifyingSharesFrom(spec, commitments, committee, g),
      } as FrostPublic;
    },
  };
  return dealingMachine(plan);
}
