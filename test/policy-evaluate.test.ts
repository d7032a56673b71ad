/**
 * The policy evaluator (policy/evaluate.ts) as tables: request × policy → decision. Every honest
 * node runs the same function on the same inputs, so these tables are what the nodes enforce.
 */
import { describe, expect, it } from 'vitest';
import { type Decision, evaluate, type RequestFacts } from '../policy/evaluate.ts';
import { type Governance, parseGovernance } from '../policy/governance.ts';

// Principals' keys are irrelevant to evaluation; any valid Ed25519 point will do.
const PK = 'JrQLj5P_89iXES9-vFgrIy29clF9CC_oPPsw3c5D0bs';
const principals = ['admin1', 'admin2', 'admin3', 'alice', 'bob', 'carol', 'svc', 'eve'].map((id) => ({
  id,
  alg: 'ed25519' as const,
  publicKey: PK,
}));

const gov: Governance = parseGovernance({
  version: 1,
  previous: null,
  principals,
  groups: {
    admins: ['admin1', 'admin2', 'admin3'],
    treasury: ['alice', 'bob', 'carol'],
    services: ['svc'],
  },
  admins: { group: 'admins', quorum: 2 },
  policies: [
    { id: 'no-eve', effect: 'deny', operations: ['Sign'], keys: ['*'], principals: ['eve'] },
    {
      id: 'treasury-sign',
      effect: 'allow',
      operations: ['Sign'],
      keys: ['cold'],
      groups: ['treasury'],
      approvals: { group: 'treasury', count: 2 },
      message: { digestOnly: true },
    },
    {
      id: 'svc-sign',
      effect: 'allow',
      operations: ['Sign'],
      keys: ['hot'],
      groups: ['services'],
      message: { maxBytes: 1024 },
      rateLimit: { count: 10, windowS: 60 },
    },
    {
      id: 'admin-keys',
      effect: 'allow',
      operations: ['CreateKey', 'RefreshKey', 'ReshareKey', 'RepairKey', 'DisableKey', 'EnableKey'],
      keys: ['*'],
      groups: ['admins'],
      minThreshold: 2,
    },
    {
      id: 'deletion',
      effect: 'allow',
      operations: ['ScheduleKeyDeletion', 'CancelKeyDeletion', 'DestroyKey'],
      keys: ['*'],
      groups: ['admins'],
      approvals: { group: 'admins', count: 1 },
    },
  ],
});

const facts = (
  f: Partial<RequestFacts> & Pick<RequestFacts, 'operation' | 'keyId' | 'initiator'>,
): RequestFacts => ({
  approvers: [],
  ...f,
});

const table: [string, RequestFacts, Decision['effect'], RegExp | string][] = [
  [
    'no rule matches: default deny',
    facts({ operation: 'Sign', keyId: 'hot', initiator: 'alice' }),
    'deny',
    /no policy allows/,
  ],
  [
    'an explicit deny rule first',
    facts({ operation: 'Sign', keyId: 'hot', initiator: 'eve' }),
    'deny',
    'no-eve',
  ],
  [
    'svc signs a short message on hot',
    facts({ operation: 'Sign', keyId: 'hot', initiator: 'svc', messageBytes: 100 }),
    'allow',
    'svc-sign',
  ],
  [
    'svc over the size limit',
    facts({ operation: 'Sign', keyId: 'hot', initiator: 'svc', messageBytes: 2000 }),
    'deny',
    /at most 1024/,
  ],
  [
    'svc over its rate limit',
    facts({ operation: 'Sign', keyId: 'hot', initiator: 'svc', messageBytes: 1, recentCount: () => 10 }),
    'deny',
    /rate limit/,
  ],
  [
    'svc under its rate limit',
    facts({ operation: 'Sign', keyId: 'hot', initiator: 'svc', messageBytes: 1, recentCount: () => 9 }),
    'allow',
    'svc-sign',
  ],
  [
    'svc may not sign with cold',
    facts({ operation: 'Sign', keyId: 'cold', initiator: 'svc', messageBytes: 32 }),
    'deny',
    /no policy allows/,
  ],
  [
    'treasury: not a digest',
    facts({
      operation: 'Sign',
      keyId: 'cold',
      initiator: 'alice',
      messageBytes: 33,
      approvers: ['bob', 'carol'],
    }),
    'deny',
    /32-byte/,
  ],
  [
    'treasury: no approvals yet',
    facts({ operation: 'Sign', keyId: 'cold', initiator: 'alice', messageBytes: 32 }),
    'pending',
    'treasury-sign',
  ],
  [
    'treasury: the initiator approving itself does not count',
    facts({
      operation: 'Sign',
      keyId: 'cold',
      initiator: 'alice',
      messageBytes: 32,
      approvers: ['alice', 'bob'],
    }),
    'pending',
    'treasury-sign',
  ],
  [
    'treasury: an outsider approving does not count',
    facts({
      operation: 'Sign',
      keyId: 'cold',
      initiator: 'alice',
      messageBytes: 32,
      approvers: ['bob', 'svc'],
    }),
    'pending',
    'treasury-sign',
  ],
  [
    'treasury: a duplicated approver counts once',
    facts({
      operation: 'Sign',
      keyId: 'cold',
      initiator: 'alice',
      messageBytes: 32,
      approvers: ['bob', 'bob'],
    }),
    'pending',
    'treasury-sign',
  ],
  [
    'treasury: two other members approved',
    facts({
      operation: 'Sign',
      keyId: 'cold',
      initiator: 'alice',
      messageBytes: 32,
      approvers: ['bob', 'carol'],
    }),
    'allow',
    'treasury-sign',
  ],
  [
    'refresh by an admin',
    facts({
      operation: 'RefreshKey',
      keyId: 'hot',
      initiator: 'admin1',
      keyEvent: { oldThreshold: 3, newThreshold: 3, committeeChanges: false },
    }),
    'allow',
    'admin-keys',
  ],
  [
    'reshare raising the threshold, same committee',
    facts({
      operation: 'ReshareKey',
      keyId: 'hot',
      initiator: 'admin1',
      keyEvent: { oldThreshold: 3, newThreshold: 4, committeeChanges: false },
    }),
    'allow',
    'admin-keys',
  ],
  [
    'reshare lowering the threshold needs the admin quorum (H-3)',
    facts({
      operation: 'ReshareKey',
      keyId: 'hot',
      initiator: 'admin1',
      keyEvent: { oldThreshold: 3, newThreshold: 2, committeeChanges: false },
    }),
    'pending',
    'admin-keys',
  ],
  [
    'reshare to another committee: the initiating admin is one of the admin quorum, one more admin is needed',
    facts({
      operation: 'ReshareKey',
      keyId: 'hot',
      initiator: 'admin1',
      keyEvent: { oldThreshold: 3, newThreshold: 3, committeeChanges: true },
    }),
    'pending',
    'admin-keys',
  ],
  [
    'reshare to another committee: the initiating admin and one other admin make the quorum of 2',
    facts({
      operation: 'ReshareKey',
      keyId: 'hot',
      initiator: 'admin1',
      approvers: ['admin2'],
      keyEvent: { oldThreshold: 3, newThreshold: 3, committeeChanges: true },
    }),
    'allow',
    'admin-keys',
  ],
  [
    'never below the floor, whatever the approvals',
    facts({
      operation: 'ReshareKey',
      keyId: 'hot',
      initiator: 'admin1',
      approvers: ['admin2', 'admin3'],
      keyEvent: { oldThreshold: 3, newThreshold: 1, committeeChanges: true },
    }),
    'deny',
    /below 2/,
  ],
  [
    'an operator-like principal cannot reshare',
    facts({
      operation: 'ReshareKey',
      keyId: 'hot',
      initiator: 'svc',
      keyEvent: { oldThreshold: 3, newThreshold: 2, committeeChanges: true },
    }),
    'deny',
    /no policy allows/,
  ],
  [
    'destroy needs one other admin',
    facts({ operation: 'DestroyKey', keyId: 'hot', initiator: 'admin1' }),
    'pending',
    'deletion',
  ],
  [
    'destroy with one other admin',
    facts({ operation: 'DestroyKey', keyId: 'hot', initiator: 'admin1', approvers: ['admin3'] }),
    'allow',
    'deletion',
  ],
];

describe('policy evaluation: request × policy → decision', () => {
  it.each(table)('%s', (_name, f, effect, detail) => {
    const d = evaluate(gov, f);
    expect(d.effect).toBe(effect);
    const text = d.effect === 'deny' ? `${d.rule ?? ''} ${d.reason}` : d.rule;
    if (typeof detail === 'string') expect(text).toContain(detail);
    else expect(text).toMatch(detail);
  });

  it('pending decisions say which approvals are missing', () => {
    const d = evaluate(
      gov,
      facts({
        operation: 'ReshareKey',
        keyId: 'k',
        initiator: 'admin1',
        keyEvent: { oldThreshold: 3, newThreshold: 2, committeeChanges: true },
      }),
    );
    expect(d).toEqual({
      effect: 'pending',
      rule: 'admin-keys',
      needs: [{ group: 'admins', needed: 2, have: ['admin1'] }],
    });
  });

  it('is deterministic: the same inputs give the same decision on every call', () => {
    for (const [, f] of table) expect(evaluate(gov, f)).toEqual(evaluate(gov, f));
  });
});
