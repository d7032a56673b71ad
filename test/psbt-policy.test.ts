/**
 * A policy rule's `bitcoin` condition (policy/evaluate.ts, issue 14): what a SignPsbt may spend,
 * over the facts a node reads from the PSBT itself. Change (an output paying back to the key) is
 * free; every other output must pay an allowed destination, and those outputs plus the fee stay
 * within `maxSpendSats`; a rule with the condition never allows a plain Sign (a digest signature
 * could spend anywhere). The governance schema takes the condition and refuses a malformed one.
 */
import { describe, expect, it } from 'vitest';
import { evaluate, type RequestFacts } from '../policy/evaluate.ts';
import { type Governance, parseGovernance } from '../policy/governance.ts';

const PK = 'JrQLj5P_89iXES9-vFgrIy29clF9CC_oPPsw3c5D0bs';
const SHOP = 'bcrt1pghltqrgld78nxvtfxx2rhl94402psyenx9u6fqyvzjetgep4fysq3xa4c5';
const OTHER = 'bcrt1p32vac8cj3vge0eqkejdvjclhtap7vl2qhnrrz8ujpglus3kt5jeqqcr0dk';

const doc = (bitcoin: unknown): Governance =>
  parseGovernance({
    version: 1,
    previous: null,
    principals: ['admin', 'payer'].map((id) => ({ id, alg: 'ed25519', publicKey: PK })),
    groups: { admins: ['admin'] },
    admins: { group: 'admins', quorum: 1 },
    policies: [
      {
        id: 'pay-shop',
        effect: 'allow',
        operations: ['Sign', 'SignPsbt'],
        keys: ['*'],
        principals: ['payer'],
        bitcoin,
      },
    ],
  });

const psbt = (outputs: NonNullable<RequestFacts['bitcoin']>['outputs'], fee = 500): RequestFacts => ({
  operation: 'SignPsbt',
  keyId: 'k',
  initiator: 'payer',
  approvers: [],
  messageBytes: 32,
  bitcoin: { outputs, fee },
});

describe('policy bitcoin condition (SignPsbt)', () => {
  const gov = doc({ destinations: [SHOP], maxSpendSats: 10_000 });

  it('allows allowed destinations within the limit; change is free', () => {
    expect(evaluate(gov, psbt([{ address: SHOP, amount: 9_000 }])).effect).toBe('allow');
    expect(
      evaluate(
        gov,
        psbt([
          { address: SHOP, amount: 5_000 },
          { address: OTHER, amount: 90_000, toKey: 'm/1/0' },
        ]),
      ).effect,
    ).toBe('allow');
  });

  it('denies another destination, a script without address, and a spend over the limit (fee counted)', () => {
    expect(evaluate(gov, psbt([{ address: OTHER, amount: 1 }]))).toEqual({
      effect: 'deny',
      rule: 'pay-shop',
      reason: `policy pay-shop: ${OTHER} is not an allowed destination`,
    });
    expect(evaluate(gov, psbt([{ address: null, amount: 0, script: '6a0474657374' }]))).toMatchObject({
      effect: 'deny',
      reason: 'policy pay-shop: script 6a0474657374 is not an allowed destination',
    });
    expect(evaluate(gov, psbt([{ address: SHOP, amount: 9_600 }]))).toMatchObject({
      effect: 'deny',
      reason: 'policy pay-shop: spends 10100 sat (outputs to others and the fee), at most 10000',
    });
  });

  it('a rule with the condition never allows a plain Sign; other operations it names are untouched', () => {
    const sign: RequestFacts = {
      operation: 'Sign',
      keyId: 'k',
      initiator: 'payer',
      approvers: [],
      messageBytes: 32,
    };
    expect(evaluate(gov, sign)).toMatchObject({
      effect: 'deny',
      reason: expect.stringMatching(/never a plain Sign/),
    });
    // Without the condition the same rule signs.
    expect(evaluate(doc(undefined), sign).effect).toBe('allow');
    // Only a limit on the amount: any destination.
    expect(evaluate(doc({ maxSpendSats: 100_000 }), psbt([{ address: OTHER, amount: 99_000 }])).effect).toBe(
      'allow',
    );
  });

  it('the governance schema refuses a malformed condition', () => {
    expect(() => doc({ destinations: ['not an address!'] })).toThrow();
    expect(() => doc({ maxSpendSats: -1 })).toThrow();
    expect(() => doc({ somethingElse: 1 })).toThrow();
  });
});
