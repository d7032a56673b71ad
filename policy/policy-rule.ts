/**
 * One key policy rule of the governance document. Rules are evaluated in order and the first rule
 * that matches the request (operation, key, initiator) decides (ordered first-match, as Fireblocks'
 * TAP and Coinbase CDP; default deny when none matches: docs/policies.md).
 */

/** Operations a signed request can ask for (AWS KMS names where one exists). */
export type Operation =
  | 'Sign'
  // Custody (issue 14): sign a PSBT's inputs of the key (node/psbt-binding.ts).
  | 'SignPsbt'
  | 'CreateKey'
  | 'RefreshKey'
  | 'ReshareKey'
  | 'RepairKey'
  | 'DisableKey'
  | 'EnableKey'
  | 'ScheduleKeyDeletion'
  | 'CancelKeyDeletion'
  | 'DestroyKey'
  // Envelope encryption (issue 15), AWS KMS names.
  | 'Encrypt'
  | 'Decrypt'
  | 'GenerateDataKey'
  | 'GenerateDataKeyWithoutPlaintext'
  | 'ReEncrypt'
  // Backup, restore and import (issue 16): each needs the admin quorum (node/request-binding.ts).
  | 'CreateBackup'
  | 'RestoreKey'
  | 'ImportKey';

export const OPERATIONS: readonly Operation[] = [
  'Sign',
  'SignPsbt',
  'CreateKey',
  'RefreshKey',
  'ReshareKey',
  'RepairKey',
  'DisableKey',
  'EnableKey',
  'ScheduleKeyDeletion',
  'CancelKeyDeletion',
  'DestroyKey',
  'Encrypt',
  'Decrypt',
  'GenerateDataKey',
  'GenerateDataKeyWithoutPlaintext',
  'ReEncrypt',
  'CreateBackup',
  'RestoreKey',
  'ImportKey',
];

export type PolicyRule = {
  readonly id: string;
  /** `allow` (subject to approvals and guards) or `deny`. */
  readonly effect: 'allow' | 'deny';
  readonly operations: readonly Operation[];
  /** Key ids the rule covers; `*` for every key. */
  readonly keys: readonly string[];
  /** Initiators: principal ids and/or groups (at least one of the two). */
  readonly principals?: readonly string[];
  readonly groups?: readonly string[];
  /** M approvals from this group, never counting the initiator. */
  readonly approvals?: { readonly group: string; readonly count: number };
  /** Sign only: message rules. */
  readonly message?: { readonly maxBytes?: number; readonly digestOnly?: boolean };
  /** Per initiator and key: at most `count` allowed requests in any `windowS` seconds. */
  readonly rateLimit?: { readonly count: number; readonly windowS: number };
  /** Key events: the new threshold may never go below this floor. */
  readonly minThreshold?: number;
  /**
   * Issue 14, SignPsbt: where a PSBT may send. Outputs that pay back to the key (change, as the
   * node finds it: protocol/psbt.ts) are free; every other output must pay one of `destinations`
   * (addresses as written for the request's network), and those outputs plus the fee may total
   * at most `maxSpendSats`. A rule with this condition never allows a plain `Sign` (a digest
   * signature could spend anywhere).
   */
  readonly bitcoin?: { readonly destinations?: readonly string[]; readonly maxSpendSats?: number };
};

const id = { type: 'string', pattern: '^[A-Za-z0-9._:@*-]{1,128}$' } as const;
export const policyRuleSchema = {
  type: 'object',
  additionalProperties: false,
  required: ['id', 'effect', 'operations', 'keys'],
  anyOf: [{ required: ['principals'] }, { required: ['groups'] }],
  properties: {
    id,
    effect: { enum: ['allow', 'deny'] },
    operations: { type: 'array', minItems: 1, items: { enum: OPERATIONS }, uniqueItems: true },
    keys: { type: 'array', minItems: 1, maxItems: 10_000, items: id, uniqueItems: true },
    principals: { type: 'array', maxItems: 10_000, items: id, uniqueItems: true },
    groups: { type: 'array', maxItems: 1000, items: id, uniqueItems: true },
    approvals: {
      type: 'object',
      additionalProperties: false,
      required: ['group', 'count'],
      properties: { group: id, count: { type: 'integer', minimum: 1, maximum: 1000 } },
    },
    message: {
      type: 'object',
      additionalProperties: false,
      properties: {
        maxBytes: { type: 'integer', minimum: 1, maximum: 65536 },
        digestOnly: { type: 'boolean' },
      },
    },
    rateLimit: {
      type: 'object',
      additionalProperties: false,
      required: ['count', 'windowS'],
      properties: {
        count: { type: 'integer', minimum: 1, maximum: 1_000_000 },
        windowS: { type: 'integer', minimum: 1, maximum: 86_400 },
      },
    },
    minThreshold: { type: 'integer', minimum: 1, maximum: 1000 },
    bitcoin: {
      type: 'object',
      additionalProperties: false,
      properties: {
        destinations: {
          type: 'array',
          maxItems: 10_000,
          uniqueItems: true,
          items: { type: 'string', pattern: '^[A-Za-z0-9]{14,90}$' },
        },
        maxSpendSats: { type: 'integer', minimum: 0, maximum: 2_100_000_000_000_000 },
      },
    },
  },
} as const;
