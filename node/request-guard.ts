/**
 * Every node decides for itself (the issue "Nodes decide"; review H-3, H-4): before it creates a
 * signing nonce, deals a share or changes a key's state, it
 * 1. verifies the client-signed request the coordinator forwards (`auth`, net/signed-request.ts)
 *    against the principals of its own installed governance (node/governance-store.ts), on its own
 *    clock (policy/request-signature.ts, RFC 9421);
 * 2. checks that the request asks for exactly this operation (node/request-binding.ts);
 * 3. refuses a nonce it has already used (replay cache until `expires`, rebuilt from its audit log
 *    at start so a restart does not reopen the window); a signing request may be presented to the
 *    `sign-commit`s of retried attempts, but yields at most one signature share on this node;
 * 4. verifies the approvals against the request digest (policy/approvals.ts) and runs the policy
 *    (policy/evaluate.ts) with its own per-(principal, key) rate counters;
 * 5. writes its decision, allowed or refused, to its own audit chain (node/node-audit.ts).
 * Refusals: Unauthorized (no, a bad, an expired or a replayed signature, or a request for another
 * operation), PolicyDenied (policy; with details `{pending: true, needs}` while approvals are missing).
 */
import { hash } from 'node:crypto';
import { KmsError, isKmsError } from '../protocol/errors.ts';
import { PENDING_APPROVAL_TTL_S, verifyApprovals } from '../policy/approvals.ts';
import { type Decision, evaluate } from '../policy/evaluate.ts';
import { type Governance, lookupPrincipalKey } from '../policy/governance.ts';
import type { Operation } from '../policy/policy-rule.ts';
import type { PrincipalKey } from '../policy/principal-key.ts';
import {
  MAX_CLOCK_SKEW_S,
  MAX_SIGNATURE_LIFETIME_S,
  type VerifiedRequest,
  verifyRequest,
} from '../policy/request-signature.ts';
import type { StateChange } from '../protocol/key-states.ts';
import type { SessionKind, SessionSpec } from '../net/rpc.ts';
import { type AuthorizationWire, fromWire, requestDigest } from '../net/signed-request.ts';
import type { GovernanceStore } from './governance-store.ts';
import type { NodeAudit } from './node-audit.ts';
import { MAX_PSBT_SIGNED_INPUTS } from '../protocol/psbt.ts';
import { SIGN_PSBT_ACTION, psbtKeyOf } from './psbt-binding.ts';
import { type BoundRequest, type GuardedRequest, bindRequest } from './request-binding.ts';
import type { NodeStore } from './store.ts';

export type { GuardedRequest } from './request-binding.ts';

/** A request this node verified and the policy allows. */
export type Authorized = BoundRequest & {
  readonly initiator: string;
  readonly approvers: readonly string[];
  readonly requestDigest: string;
  readonly nonce: string;
  readonly expires: number;
  readonly messageSha256?: string;
};

export const NO_GOVERNANCE = 'no governance installed: the coordinator installs the genesis at start';

/** Bounds: replay entries (each lives at most MAX_SIGNATURE_LIFETIME_S), rate pairs, scan at start. */
const MAX_REPLAY_ENTRIES = 100_000;
const MAX_RATE_PAIRS = 10_000;
const MAX_RESTART_SCAN = 200_000;

type ReplayEntry = { digest: string; expires: number; shares: number };

/**
 * How many signature shares one signed Sign request may yield on one node: one per attempt of the
 * coordinator's bounded retry (an attempt fails when another signer times out or misbehaves, and
 * the retry needs this node's share again, with fresh nonces). Every share is over the same
 * authorized message, so a coordinator gains nothing it was not authorized to get (at most this
 * many signatures of one authorized message); a replay beyond it is refused and audited.
 */
export const MAX_SHARES_PER_SIGN_REQUEST = 3;

/**
 * A signed SignPsbt request (issue 14) yields one threshold signature per input of the key, each
 * with its own sessions and retries: MAX_SHARES_PER_SIGN_REQUEST per input of the key the node
 * itself found in the PSBT, every share over one of those inputs' signature hashes
 * (node/psbt-binding.ts); overall at most MAX_SHARES_PER_SIGN_REQUEST × MAX_PSBT_SIGNED_INPUTS.
 */
export const MAX_SHARES_PER_PSBT_REQUEST = MAX_SHARES_PER_SIGN_REQUEST * MAX_PSBT_SIGNED_INPUTS;

/** The shares one signed request may yield on this node (Sign: retries; SignPsbt: per input too). */
export function sharesAllowed(b: Pick<BoundRequest, 'psbt'>): number {
  if (b.psbt === undefined) return MAX_SHARES_PER_SIGN_REQUEST;
  return Math.min(MAX_SHARES_PER_SIGN_REQUEST * b.psbt.ownedInputs, MAX_SHARES_PER_PSBT_REQUEST);
}

/** Operations one signed request may be presented for more than once (each sign-commit of its sessions). */
const MULTI_SESSION: ReadonlySet<Operation> = new Set(['Sign', 'SignPsbt']);

/**
 * A request waiting for approvals stays approvable on this node for PENDING_APPROVAL_TTL_S
 * (policy/approvals.ts) after it first saw it pending. The initiator's signature lives at most 300 s; when the
 * approvals come later, the node verifies that same signature again at the time it first saw the
 * request (it keeps only that time, by request digest, never the request's facts), and each
 * approval at its own time. Memory only: a node restarted meanwhile has forgotten the request,
 * so it refuses its expired signature (the others may still make up the threshold).
 */
const MAX_PENDING_REQUESTS = 10_000;

/** Used nonces by (principal, nonce), each kept until its request's `expires` (seconds). */
class ReplayCache {
  readonly #entries = new Map<string, ReplayEntry>();
  #adds = 0;

  static key(principal: string, nonce: string): string {
    return `${principal}\n${nonce}`;
  }

  get(k: string, nowS: number): ReplayEntry | undefined {
    const e = this.#entries.get(k);
    if (e && e.expires <= nowS) {
      this.#entries.delete(k);
      return undefined;
    }
    return e;
  }

  add(k: string, e: ReplayEntry, nowS: number): void {
    if (++this.#adds % 1024 === 0 || this.#entries.size >= MAX_REPLAY_ENTRIES) this.sweep(nowS);
    // Never evict a live nonce (that would reopen a replay): refuse new requests instead.
    if (this.#entries.size >= MAX_REPLAY_ENTRIES) {
      throw new KmsError('Overloaded', 'too many signed requests inside their validity window');
    }
    this.#entries.set(k, e);
  }

  delete(k: string): void {
    this.#entries.delete(k);
  }

  sweep(nowS: number): void {
    for (const [k, e] of this.#entries) if (e.expires <= nowS) this.#entries.delete(k);
  }

  get size(): number {
    return this.#entries.size;
  }
}

/**
 * Allowed requests per (principal, key), as timestamps (seconds) within the longest rate-limit
 * window of the current governance, at most its largest count per pair; pairs beyond
 * MAX_RATE_PAIRS drop the least recently used. Memory only: a restart forgets the counts.
 */
class RateCounters {
  readonly #pairs = new Map<string, number[]>();

  #limits(doc: Governance): { windowS: number; count: number } {
    let windowS = 0;
    let count = 0;
    for (const r of doc.policies) {
      if (!r.rateLimit) continue;
      windowS = Math.max(windowS, r.rateLimit.windowS);
      count = Math.max(count, r.rateLimit.count);
    }
    return { windowS, count };
  }

  recentCount(principal: string, keyId: string, windowS: number, nowS: number): number {
    const ts = this.#pairs.get(`${principal}\n${keyId}`);
    if (!ts) return 0;
    let n = 0;
    for (let i = ts.length - 1; i >= 0 && ts[i]! > nowS - windowS; i--) n++;
    return n;
  }

  record(doc: Governance, principal: string, keyId: string, nowS: number): void {
    const { windowS, count } = this.#limits(doc);
    if (count === 0) return;
    const k = `${principal}\n${keyId}`;
    const ts = this.#pairs.get(k) ?? [];
    this.#pairs.delete(k); // re-inserted last: least recently used first
    ts.push(nowS);
    let drop = 0;
    while (drop < ts.length && ts[drop]! <= nowS - windowS) drop++;
    if (ts.length - drop > count) drop = ts.length - count;
    ts.splice(0, drop);
    this.#pairs.set(k, ts);
    if (this.#pairs.size > MAX_RATE_PAIRS) this.#pairs.delete(this.#pairs.keys().next().value!);
  }
}

export type RequestGuardDeps = {
  readonly nodeId: string;
  readonly store: NodeStore;
  readonly governance: GovernanceStore;
  readonly audit: NodeAudit;
  /** False only in test fixtures that do not sign yet: requests without `auth` pass unchecked. */
  readonly required: boolean;
  /** Milliseconds since the epoch (the node's own clock). */
  readonly now?: () => number;
};

/** SHA-256, hex (one-shot OpenSSL hash: a message is up to 64 KiB, hashed for every signing request). */
const sha256Hex = (b: Uint8Array) => hash('sha256', b, 'hex');

const STATE_OPERATIONS = {
  disable: 'DisableKey',
  enable: 'EnableKey',
  scheduleDeletion: 'ScheduleKeyDeletion',
  cancelDeletion: 'CancelKeyDeletion',
} as const satisfies Record<StateChange, Operation>;
const SESSION_OPERATIONS = {
  dkg: 'CreateKey',
  refresh: 'RefreshKey',
  reshare: 'ReshareKey',
  repair: 'RepairKey',
} as const satisfies Record<SessionKind, Operation>;

/** The operation the coordinator asks for (what a refusal record names before anything verified). */
function operationOf(g: GuardedRequest): Operation {
  if (g.rpc === 'sign-commit') return 'Sign';
  if (g.rpc === 'set-state') return STATE_OPERATIONS[g.change];
  if (g.rpc === 'bound') return g.operation;
  return SESSION_OPERATIONS[g.session.kind];
}

const keyOf = (g: GuardedRequest) => (g.rpc === 'session' ? g.session.keyId : g.keyId);

export class RequestGuard {
  readonly #d: RequestGuardDeps;
  readonly #replay = new ReplayCache();
  readonly #rates = new RateCounters();
  /** Requests this node refused as pending: digest -> when it first verified them. */
  readonly #pending = new Map<string, { seenS: number; until: number }>();
  readonly #now: () => number;

  constructor(deps: RequestGuardDeps) {
    this.#d = deps;
    this.#now = deps.now ?? Date.now;
  }

  get required(): boolean {
    return this.#d.required;
  }

  nowMs(): number {
    return this.#now();
  }

  #nowS(): number {
    return Math.floor(this.#now() / 1000);
  }

  /**
   * Rebuilds the replay cache from this node's audit log: the allowed requests and signature
   * shares of the last MAX_SIGNATURE_LIFETIME_S (+ skew), newest first, so a restarted node still
   * refuses a nonce it used before it stopped.
   */
  async rebuild(): Promise<number> {
    const nowS = this.#nowS();
    const horizonMs = (nowS - MAX_SIGNATURE_LIFETIME_S - 2 * MAX_CLOCK_SKEW_S) * 1000;
    const shares = new Map<string, number>();
    let before: number | undefined;
    let scanned = 0;
    while (scanned < MAX_RESTART_SCAN) {
      const page = await this.#d.audit.recent(before, 1000);
      if (page.length === 0) break;
      let old = false;
      for (const r of page) {
        scanned++;
        const e = r.entry as Record<string, unknown>;
        if (Date.parse(r.time) < horizonMs) old = true;
        const { initiator, nonce, expires, requestDigest: digest } = e;
        if (typeof initiator !== 'string' || typeof nonce !== 'string' || typeof expires !== 'number')
          continue;
        if (typeof digest !== 'string' || expires <= nowS) continue;
        const k = ReplayCache.key(initiator, nonce);
        // A share: its own record (two rounds), or counted in the allow record (one round).
        const share = e['event'] === 'request.share' || (e['event'] === 'request' && e['share'] === true);
        if (share) {
          const held = this.#replay.get(k, nowS);
          if (held) held.shares++;
          else shares.set(k, (shares.get(k) ?? 0) + 1);
        }
        if (e['event'] === 'request' && e['decision'] === 'allow' && !this.#replay.get(k, nowS)) {
          this.#replay.add(k, { digest, expires, shares: shares.get(k) ?? 0 }, nowS);
        }
      }
      if (old) break;
      before = page.at(-1)!.seq;
    }
    return this.#replay.size;
  }

  /**
   * Verifies `auth` for `g` and runs the policy; returns what was authorized, or undefined when the
   * node does not require signed requests (test fixtures) and none came. Writes the decision to the
   * audit log either way. Throws Unauthorized or PolicyDenied.
   */
  async authorize(
    g: GuardedRequest,
    auth: AuthorizationWire | undefined,
    opts: { review?: boolean; share?: { sessionId: string } } = {},
  ): Promise<Authorized | undefined> {
    if (!auth && !this.#d.required) return undefined;
    const base = { event: 'request', rpc: g.rpc, operation: operationOf(g), keyId: keyOf(g) };
    const installed = this.#d.governance.current();
    if (!installed) {
      await this.#d.audit.appendRefusal({ ...base, decision: 'unauthorized', reason: NO_GOVERNANCE });
      throw new KmsError('Unauthorized', NO_GOVERNANCE);
    }
    if (!auth) {
      const reason = 'a client-signed request is required';
      await this.#d.audit.appendRefusal({ ...base, decision: 'unauthorized', reason });
      throw new KmsError('Unauthorized', reason);
    }
    const doc = installed.document;
    const nowS = this.#nowS();
    const digest = requestDigest(auth.request);
    const signed = fromWire(auth.request);
    // Decoded public keys are memoized per governance document (policy/governance.ts).
    const lookup = (id: string): PrincipalKey | undefined => lookupPrincipalKey(doc, id);
    let verified: VerifiedRequest;
    let bound: BoundRequest;
    const pend = this.#pendingEntry(digest, nowS);
    // A request this node saw waiting for approvals is verified at the time it first saw it.
    const atS = pend ? pend.seenS : nowS;
    try {
      verified = verifyRequest(signed, lookup, atS);
      // Issue 14: a sign-psbt binds against this node's own stored key (node/psbt-binding.ts).
      let bindTo = g;
      if (g.rpc === 'sign-commit' && signed.path.endsWith(`/${SIGN_PSBT_ACTION}`)) {
        const psbtKey = await psbtKeyOf(this.#d.store, g.keyId);
        if (psbtKey) bindTo = { ...g, psbtKey };
      }
      bound = bindRequest(bindTo, signed);
    } catch (e) {
      const reason = isKmsError(e) ? e.message : 'invalid signed request';
      await this.#d.audit.appendRefusal({ ...base, requestDigest: digest, decision: 'unauthorized', reason });
      throw isKmsError(e) && e.code === 'Unauthorized' ? e : new KmsError('Unauthorized', reason);
    }
    const messageSha256 = bound.message ? sha256Hex(bound.message) : undefined;
    const record = {
      ...base,
      operation: bound.operation,
      keyId: bound.keyId,
      ...(messageSha256 ? { messageSha256 } : {}),
      ...(bound.labelDigest ? { labelDigest: bound.labelDigest } : {}),
      ...(bound.psbtFacts ? { psbt: bound.psbtFacts } : {}),
      initiator: verified.principal,
      requestDigest: digest,
      governance: doc.version,
    };
    const rk = ReplayCache.key(verified.principal, verified.nonce);
    const used = this.#replay.get(rk, nowS);
    const exhausted = (used?.shares ?? 0) >= sharesAllowed(bound);
    if (used && (used.digest !== digest || !MULTI_SESSION.has(bound.operation) || exhausted)) {
      const reason = exhausted
        ? `replayed: this signing request already yielded ${sharesAllowed(bound)} signature shares on this node`
        : 'replayed: this request nonce was already used on this node';
      await this.#d.audit.appendRefusal({ ...record, approvers: [], decision: 'unauthorized', reason });
      throw new KmsError('Unauthorized', reason);
    }
    const approvals = verifyApprovals((auth.approvals ?? []).map(fromWire), digest, lookup, nowS);
    const decision: Decision = evaluate(doc, {
      operation: bound.operation,
      keyId: bound.keyId,
      initiator: verified.principal,
      approvers: approvals.approvers,
      ...(bound.message ? { messageBytes: bound.message.length } : {}),
      ...(bound.psbtFacts
        ? { messageBytes: 32, bitcoin: { outputs: bound.psbtFacts.outputs, fee: bound.psbtFacts.fee } }
        : {}),
      ...(bound.keyEvent ? { keyEvent: bound.keyEvent } : {}),
      recentCount: (windowS) => this.#rates.recentCount(verified.principal, bound.keyId, windowS, nowS),
    });
    const withApprovers = {
      ...record,
      approvers: approvals.approvers,
      ...(approvals.rejected.length > 0 ? { rejectedApprovals: approvals.rejected.length } : {}),
    };
    // An allowed request keeps its pending entry (until its TTL): the coordinator's retry of a
    // failed signing attempt presents it again, and its initiator's signature may have expired by
    // then (the replay entry still bounds its shares). A denied one is done.
    if (decision.effect === 'deny') this.#pending.delete(digest);
    if (decision.effect === 'deny') {
      await this.#d.audit.append({ ...withApprovers, decision: 'deny', reason: decision.reason });
      throw new KmsError('PolicyDenied', decision.reason);
    }
    if (decision.effect === 'pending') {
      const needs = decision.needs.map((n) => ({ group: n.group, needed: n.needed, have: [...n.have] }));
      const reason = `approvals missing: ${needs.map((n) => `${n.needed - n.have.length} of ${n.group}`).join(', ')}`;
      this.#rememberPending(digest, atS, nowS);
      await this.#d.audit.append({ ...withApprovers, decision: 'pending', reason, needs });
      throw new KmsError('PolicyDenied', reason, { details: { pending: true, needs } });
    }
    // A review (sign-review) only records a pending request; an allowed one stays unused.
    if (opts.review) return undefined;
    // Taken before the audit write (no second request with this nonce slips in meanwhile), given
    // back if the write fails (fail closed: nothing was done).
    const fresh = !used;
    const validUntil = pend ? Math.max(verified.expires, pend.until) : verified.expires;
    // One-round signing (node/sign-one.ts): the share this request yields is counted here, in the
    // same synchronous step as the replay check above, and recorded in the same audit record.
    const share = opts.share !== undefined && MULTI_SESSION.has(bound.operation);
    const entry = used ?? { digest, expires: validUntil, shares: 0 };
    if (fresh) this.#replay.add(rk, entry, nowS);
    if (share) entry.shares++;
    try {
      await this.#d.audit.append({
        ...withApprovers,
        decision: 'allow',
        rule: decision.rule,
        nonce: verified.nonce,
        expires: validUntil,
        ...(share ? { share: true, sessionId: opts.share!.sessionId } : {}),
      });
    } catch (e) {
      if (share) entry.shares--;
      if (fresh) this.#replay.delete(rk);
      throw e;
    }
    if (fresh) this.#rates.record(doc, verified.principal, bound.keyId, nowS);
    // The PSBT's facts are in the audit record; the session keeps only what it may sign.
    const { psbtFacts: _facts, ...kept } = bound;
    return {
      ...kept,
      initiator: verified.principal,
      approvers: approvals.approvers,
      requestDigest: digest,
      nonce: verified.nonce,
      expires: validUntil,
      ...(messageSha256 ? { messageSha256 } : {}),
    };
  }

  #pendingEntry(digest: string, nowS: number): { seenS: number; until: number } | undefined {
    const p = this.#pending.get(digest);
    if (p && p.until <= nowS) {
      this.#pending.delete(digest);
      return undefined;
    }
    return p;
  }

  /** Keeps the first time this node verified a pending request (bounded: the oldest go first). */
  #rememberPending(digest: string, seenS: number, nowS: number): void {
    if (this.#pending.has(digest)) return;
    if (this.#pending.size >= MAX_PENDING_REQUESTS) {
      for (const [d, p] of this.#pending) if (p.until <= nowS) this.#pending.delete(d);
      while (this.#pending.size >= MAX_PENDING_REQUESTS) {
        const oldest = this.#pending.keys().next().value;
        if (oldest === undefined) break;
        this.#pending.delete(oldest);
      }
    }
    this.#pending.set(digest, { seenS, until: seenS + PENDING_APPROVAL_TTL_S });
  }

  /**
   * A key-creating session: bound to the key's active epoch as this node stores it (its own
   * threshold and committee, never the coordinator's word for them).
   */
  async authorizeSession(
    s: SessionSpec,
    auth: AuthorizationWire | undefined,
  ): Promise<Authorized | undefined> {
    if (!auth && !this.#d.required) return undefined;
    const held =
      s.kind === 'dkg' ? undefined : await this.#d.store.getActiveEpoch(s.keyId).catch(() => undefined);
    return this.authorize(
      {
        rpc: 'session',
        session: s,
        ...(held ? { held: { threshold: held.threshold, participants: held.participants } } : {}),
      },
      auth,
    );
  }

  /**
   * A signature share for `a` (sign-share): at most one per signing request on this node. Marks it
   * and writes the record before the share is made. Throws Unauthorized for a second one.
   */
  async shareOnce(a: Omit<Authorized, 'message'>, sessionId: string, messageSha256?: string): Promise<void> {
    const nowS = this.#nowS();
    const rk = ReplayCache.key(a.initiator, a.nonce);
    const e = this.#replay.get(rk, nowS);
    const base = {
      rpc: 'sign-share',
      operation: a.operation,
      keyId: a.keyId,
      messageSha256: messageSha256 ?? a.messageSha256,
      initiator: a.initiator,
      approvers: [...a.approvers],
      requestDigest: a.requestDigest,
      sessionId,
    };
    const exhausted = (e?.shares ?? 0) >= sharesAllowed(a);
    if (exhausted || a.expires <= nowS) {
      const reason = exhausted
        ? `replayed: this signing request already yielded ${sharesAllowed(a)} signature shares on this node`
        : 'the signed request expired before its signature share';
      await this.#d.audit.append({ event: 'request', ...base, decision: 'unauthorized', reason });
      throw new KmsError('Unauthorized', reason);
    }
    const entry = e ?? { digest: a.requestDigest, expires: a.expires, shares: 0 };
    entry.shares++;
    if (!e) this.#replay.add(rk, entry, nowS);
    try {
      await this.#d.audit.append({
        event: 'request.share',
        ...base,
        decision: 'allow',
        nonce: a.nonce,
        expires: a.expires,
      });
    } catch (err) {
      entry.shares--;
      throw err;
    }
  }

  /** Writes a refusal the guard did not make itself (sign-share binding, destroy before its time). */
  async refused(entry: Record<string, unknown>): Promise<void> {
    await this.#d.audit.append({ event: 'request', decision: 'refused', ...entry });
  }
}
