/**
 * This node's own audit chain (common/audit-log.ts) with heads signed by its node identity key
 * (net/node-audit-head.ts), so the coordinator can serve it but not rewrite it (review M-3, H-4):
 * - every record carries `node`; every signed request the node acted on or refused is one record
 *   (node/request-guard.ts);
 * - a checkpoint record (`event: 'audit.head'`, the signed head of the record before it) is
 *   appended every `checkpointEvery` records and, when records were added, every `checkpointMs`;
 *   it is chained right behind the record that triggers it, so both share one synced batch (the
 *   log group-commits: concurrent requests' records share one fdatasync, each durable before the
 *   request it audits is answered);
 * - the `audit` RPC answers a page and a freshly signed head of the current tail;
 * - refusals of requests that carry no valid signature are written one by one up to a budget per
 *   minute, then counted and written as one aggregate record, so a flood of junk cannot fill the
 *   disk one synced record at a time.
 */
import type { AuditLog, AuditRecord } from '../common/audit-log.ts';
import { AUDIT_HEAD_EVENT, type SignedAuditHead, signAuditHead } from '../net/node-audit-head.ts';

/** A page's records stay under this many bytes of JSON (the transport frame is 1 MiB). */
const PAGE_BYTES = 512 * 1024;

export type NodeAuditOptions = {
  checkpointEvery?: number;
  checkpointMs?: number;
  /** Unauthenticated refusals written one by one per minute before aggregating. */
  refusalBudgetPerMinute?: number;
  now?: () => number;
};

export class NodeAudit {
  readonly #log: AuditLog;
  readonly #nodeId: string;
  readonly #sign: (m: Uint8Array) => Uint8Array;
  readonly #every: number;
  readonly #budget: number;
  readonly #now: () => number;
  #lastCheckpoint: number;
  #timer: ReturnType<typeof setInterval> | undefined;
  #windowStart = 0;
  #windowCount = 0;
  #suppressed = 0;
  #suppressedSince = 0;

  constructor(
    log: AuditLog,
    nodeId: string,
    sign: (m: Uint8Array) => Uint8Array,
    opts: NodeAuditOptions = {},
  ) {
    this.#log = log;
    this.#nodeId = nodeId;
    this.#sign = sign;
    this.#every = opts.checkpointEvery ?? 256;
    this.#budget = opts.refusalBudgetPerMinute ?? 120;
    this.#now = opts.now ?? Date.now;
    this.#lastCheckpoint = log.head().seq;
    const ms = opts.checkpointMs ?? 60_000;
    this.#timer = setInterval(() => {
      void this.#tick().catch(() => {});
    }, ms);
    this.#timer.unref?.();
  }

  stop(): void {
    if (this.#timer) clearInterval(this.#timer);
    this.#timer = undefined;
  }

  /** Appends one record (synced); throws AuditWriteFailed so the caller fails what it audits. */
  async append(entry: Record<string, unknown>): Promise<AuditRecord> {
    const appended = this.#log.append({ node: this.#nodeId, ...entry });
    // Chained now, behind this record, so it joins the same synced batch instead of a second one.
    const checkpoint =
      this.#log.tail().seq - this.#lastCheckpoint >= this.#every ? this.checkpoint() : undefined;
    const [r] = await Promise.all([appended, checkpoint]);
    return r;
  }

  /**
   * A refusal of a request without a valid signature: written if this minute's budget allows,
   * otherwise counted into the next aggregate record.
   */
  async appendRefusal(entry: Record<string, unknown>): Promise<void> {
    const now = this.#now();
    if (now - this.#windowStart >= 60_000) {
      await this.#flushSuppressed();
      this.#windowStart = now;
      this.#windowCount = 0;
    }
    if (this.#windowCount < this.#budget) {
      this.#windowCount++;
      await this.append(entry);
      return;
    }
    if (this.#suppressed === 0) this.#suppressedSince = now;
    this.#suppressed++;
  }

  async #flushSuppressed(): Promise<void> {
    if (this.#suppressed === 0) return;
    const count = this.#suppressed;
    this.#suppressed = 0;
    await this.append({
      event: 'request.refusals-aggregated',
      count,
      from: new Date(this.#suppressedSince).toISOString(),
      to: new Date(this.#now()).toISOString(),
      reason: 'unauthenticated refusals over the per-minute budget',
    });
  }

  async #tick(): Promise<void> {
    if (this.#now() - this.#windowStart >= 60_000) await this.#flushSuppressed();
    if (this.#log.tail().seq > this.#lastCheckpoint) await this.checkpoint();
  }

  /** The current head (the last synced record), signed now with the node identity key. */
  signedHead(): SignedAuditHead {
    return this.#signed(this.#log.head());
  }

  #signed({ seq, hash }: { seq: number; hash: string }): SignedAuditHead {
    return signAuditHead(
      { nodeId: this.#nodeId, seq, hash, time: new Date(this.#now()).toISOString() },
      this.#sign,
    );
  }

  /**
   * Appends a checkpoint: the signed head of the record right before it. That record may still be
   * waiting for its sync; the checkpoint is in the same or a later batch, so it never reaches disk
   * (nor resolves) without it.
   */
  async checkpoint(): Promise<void> {
    await this.#log.append((prev) => {
      this.#lastCheckpoint = prev.seq + 1;
      return { node: this.#nodeId, event: AUDIT_HEAD_EVENT, ...this.#signed(prev) };
    });
  }

  /** The `audit` RPC: a page of records after `after` and the signed head of the tail. */
  async page(
    after: number | undefined,
    limit: number,
  ): Promise<{ records: AuditRecord[]; head: SignedAuditHead }> {
    // Cut at PAGE_BYTES so the answer fits one transport frame whatever the records hold.
    const all = await this.#log.list({ ...(after === undefined ? {} : { after }), limit });
    // Signed after the read, and the page cut at it: a record LevelDB shows before its batch's sync
    // is reported back is left for the next page, so the head is never behind the page.
    const head = this.signedHead();
    const records: AuditRecord[] = [];
    let bytes = 0;
    for (const r of all) {
      if (r.seq > head.seq) break;
      bytes += JSON.stringify(r).length;
      if (records.length > 0 && bytes > PAGE_BYTES) break;
      records.push(r);
    }
    return { records, head };
  }

  /** Newest-first records before `before` (for rebuilding the replay cache at start). */
  recent(before: number | undefined, limit: number): Promise<AuditRecord[]> {
    return this.#log.recent({ ...(before === undefined ? {} : { before }), limit });
  }
}
