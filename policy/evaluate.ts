/**
 * The policy evaluator every node runs on every signed request: one pure, deterministic function
 * of (governance document, facts about the request) → decision, so all honest nodes decide alike.
 * Semantics (docs/policies.md): rules in order, first match decides, default deny. A matching
 * `allow` rule still denies on its message rules and rate limit, and answers `pending` until its
 * approvals (distinct members of the group, never the initiator) are in. Key-event guards come from
 * the admin quorum: lowering a key's threshold or changing its committee needs `admins.quorum`
 * distinct admins whatever the rule says — an admin who initiates is one of them, as with
 * governance changes (k admin signatures) — and no rule lets a threshold go below its floor.
 */
import type { Governance } from './governance.ts';
import type { Operation, PolicyRule } from './policy-rule.ts';

export type RequestFacts = {
  readonly operation: Operation;
  readonly keyId: string;
  /** The verified initiator (policy/request-signature.ts). */
  readonly initiator: string;
  /** Principals whose approval signatures over this request verified. */
  readonly approvers: readonly string[];
  /** Sign: the message length in bytes. */
  readonly messageBytes?: number;
  /**
   * SignPsbt (issue 14): the transaction as the node read it from the PSBT itself
   * (node/psbt-binding.ts): each output's address on the request's network (null for scripts
   * without one, with the script hex), amount in satoshis, and `toKey` (the path) when it pays back
   * to this key; the fee. Rules limit them with `bitcoin` (policy-rule.ts).
   */
  readonly bitcoin?: {
    readonly outputs: readonly {
      readonly address: string | null;
      readonly amount: number;
      readonly script?: string;
      readonly toKey?: string;
    }[];
    readonly fee: number;
  };
  /** Allowed requests of this initiator on this key inside the rule's window, before this one. */
  readonly recentCount?: (windowS: number) => number;
  /** Key events: the key's current and requested threshold and whether the committee changes. */
  readonly keyEvent?: {
    readonly oldThreshold: number;
    readonly newThreshold: number;
    readonly committeeChanges: boolean;
  };
};

export type Decision =
  | { readonly effect: 'allow'; readonly rule: string }
  | { readonly effect: 'deny'; readonly rule?: string; readonly reason: string }
  | {
      readonly effect: 'pending';
      readonly rule: string;
      /** Approvals still missing, per group. */
      readonly needs: readonly {
        readonly group: string;
        readonly needed: number;
        readonly have: readonly string[];
      }[];
    };

function matches(doc: Governance, r: PolicyRule, f: RequestFacts): boolean {
  if (!r.operations.includes(f.operation)) return false;
  if (!r.keys.includes('*') && !r.keys.includes(f.keyId)) return false;
  if (r.principals?.includes(f.initiator)) return true;
  return (r.groups ?? []).some((g) => doc.groups[g]?.includes(f.initiator));
}

/** Distinct admins among the initiator and the approvers (the admin quorum of key-event guards). */
function adminVotes(doc: Governance, f: RequestFacts): string[] {
  const admins = new Set(doc.groups[doc.admins.group] ?? []);
  return [...new Set([f.initiator, ...f.approvers])].filter((a) => admins.has(a)).sort();
}

/** Distinct members of `group` among the approvers, never the initiator. */
function approvalsIn(doc: Governance, group: string, f: RequestFacts): string[] {
  const members = new Set(doc.groups[group] ?? []);
  return [...new Set(f.approvers)].filter((a) => a !== f.initiator && members.has(a)).sort();
}

/** Why a rule's `bitcoin` condition refuses the request, or undefined (issue 14). */
function bitcoinDenial(rule: PolicyRule, f: RequestFacts): string | undefined {
  const b = rule.bitcoin!;
  if (f.operation === 'Sign') {
    return `policy ${rule.id} limits Bitcoin destinations: it allows PSBT signing (SignPsbt), never a plain Sign`;
  }
  if (f.operation !== 'SignPsbt') return undefined;
  if (!f.bitcoin) return `policy ${rule.id} limits Bitcoin destinations, and the request has no PSBT facts`;
  const external = f.bitcoin.outputs.filter((o) => o.toKey === undefined);
  if (b.destinations) {
    const bad = external.find((o) => o.address === null || !b.destinations!.includes(o.address));
    if (bad) {
      return `policy ${rule.id}: ${bad.address ?? `script ${bad.script ?? '?'}`} is not an allowed destination`;
    }
  }
  if (b.maxSpendSats !== undefined) {
    const spend = external.reduce((a, o) => a + o.amount, 0) + f.bitcoin.fee;
    if (spend > b.maxSpendSats) {
      return `policy ${rule.id}: spends ${spend} sat (outputs to others and the fee), at most ${b.maxSpendSats}`;
    }
  }
  return undefined;
}

export function evaluate(doc: Governance, f: RequestFacts): Decision {
  const rule = doc.policies.find((r) => matches(doc, r, f));
  if (!rule)
    return { effect: 'deny', reason: `no policy allows ${f.initiator} to ${f.operation} key ${f.keyId}` };
  if (rule.effect === 'deny') return { effect: 'deny', rule: rule.id, reason: `policy ${rule.id} denies it` };
  if (f.operation === 'Sign' && rule.message) {
    const n = f.messageBytes ?? 0;
    if (rule.message.digestOnly && n !== 32) {
      return { effect: 'deny', rule: rule.id, reason: `policy ${rule.id} signs 32-byte digests only` };
    }
    if (rule.message.maxBytes !== undefined && n > rule.message.maxBytes) {
      return {
        effect: 'deny',
        rule: rule.id,
        reason: `policy ${rule.id} signs at most ${rule.message.maxBytes} bytes`,
      };
    }
  }
  if (rule.bitcoin) {
    const denied = bitcoinDenial(rule, f);
    if (denied) return { effect: 'deny', rule: rule.id, reason: denied };
  }
  if (rule.rateLimit && f.recentCount && f.recentCount(rule.rateLimit.windowS) >= rule.rateLimit.count) {
    return {
      effect: 'deny',
      rule: rule.id,
      reason: `rate limit: ${rule.rateLimit.count} per ${rule.rateLimit.windowS} s for ${f.initiator} on ${f.keyId}`,
    };
  }
  const needs: { group: string; needed: number; have: string[] }[] = [];
  if (f.keyEvent) {
    const floor = rule.minThreshold ?? 1;
    if (f.keyEvent.newThreshold < floor) {
      return {
        effect: 'deny',
        rule: rule.id,
        reason: `policy ${rule.id}: the threshold may not go below ${floor}`,
      };
    }
    if (f.keyEvent.newThreshold < f.keyEvent.oldThreshold || f.keyEvent.committeeChanges) {
      // Guard of the admin quorum (review H-3): never decided by a key rule alone.
      needs.push({
        group: doc.admins.group,
        needed: doc.admins.quorum,
        have: adminVotes(doc, f),
      });
    }
  }
  if (rule.approvals) {
    needs.push({
      group: rule.approvals.group,
      needed: rule.approvals.count,
      have: approvalsIn(doc, rule.approvals.group, f),
    });
  }
  const missing = needs.filter((n) => n.have.length < n.needed);
  if (missing.length > 0) return { effect: 'pending', rule: rule.id, needs: missing };
  return { effect: 'allow', rule: rule.id };
}
