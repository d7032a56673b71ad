/**
 * A node's audit chain as anyone holding the cluster file can check it (review M-3, H-4): the node
 * signs the head of its hash chain (common/audit-log.ts) with its node identity key, both in
 * checkpoint records inside the chain (`event: 'audit.head'`, every N records or T seconds) and in
 * every `audit` RPC answer. A coordinator that drops, edits or reorders a node's records, or cuts
 * its tail below a signed head, cannot produce a page that verifies against the node's peer id
 * (`kms audit verify --nodes`). Pure: no I/O.
 */
import { auditHash, canonicalJson, GENESIS_HASH, type AuditRecord } from '../common/audit-log.ts';
import { publicKeyOfPeer, verifyIdentitySignature } from './identity.ts';

/** A node's signed statement "my chain's record `seq` has hash `hash`" at `time` (ISO 8601). */
export type SignedAuditHead = {
  nodeId: string;
  seq: number;
  hash: string;
  time: string;
  /** Ed25519 by the node identity key over `auditHeadBytes`, base64. */
  signature: string;
};

export const signedAuditHeadSchema = {
  type: 'object',
  additionalProperties: false,
  required: ['nodeId', 'seq', 'hash', 'time', 'signature'],
  properties: {
    nodeId: { type: 'string', pattern: '^node-[1-9][0-9]{0,3}$' },
    seq: { type: 'integer', minimum: 0, maximum: Number.MAX_SAFE_INTEGER },
    hash: { type: 'string', pattern: '^[0-9a-f]{64}$' },
    time: { type: 'string', maxLength: 64 },
    signature: { type: 'string', pattern: '^[A-Za-z0-9+/]{86}==$' },
  },
} as const;

/** The event name of a checkpoint record inside the chain. */
export const AUDIT_HEAD_EVENT = 'audit.head';

/** What the node signs (domain-separated, canonical JSON of the unsigned head). */
export function auditHeadBytes(h: Omit<SignedAuditHead, 'signature'>): Uint8Array {
  const body = canonicalJson({ nodeId: h.nodeId, seq: h.seq, hash: h.hash, time: h.time });
  return new TextEncoder().encode(`tkms/node-audit-head/v1\n${body}`);
}

export function signAuditHead(
  head: Omit<SignedAuditHead, 'signature'>,
  sign: (message: Uint8Array) => Uint8Array,
): SignedAuditHead {
  return { ...head, signature: Buffer.from(sign(auditHeadBytes(head))).toString('base64') };
}

/** Whether `head` is signed by the identity key that `peerId` embeds. Never throws. */
export function verifyAuditHead(head: SignedAuditHead, peerId: string): boolean {
  try {
    return verifyIdentitySignature(
      publicKeyOfPeer(peerId),
      auditHeadBytes(head),
      new Uint8Array(Buffer.from(head.signature, 'base64')),
    );
  } catch {
    return false;
  }
}

export type NodeAuditCheck =
  | { ok: true; last: { seq: number; hash: string }; checkpoints: number }
  | { ok: false; brokenAt: number; reason: string };

/**
 * Checks one page of a node's audit chain and its signed head against the node's peer id (from
 * the cluster file): sequence numbers contiguous, each record linked to the previous one (to
 * `from`, the last record of the previous page, or to the genesis for record 1), each hash
 * recomputed; every checkpoint record inside the page signed by the node and naming a record of
 * the page by its true hash; the head signed by the node, for this node, and not behind the page
 * (equal to its last record's hash when the page ends at the head). Pages are checked in order,
 * each with the previous result's `last` as `from`.
 */
export function verifyNodeAuditPage(input: {
  nodeId: string;
  peerId: string;
  records: readonly AuditRecord[];
  head: SignedAuditHead;
  from?: { seq: number; hash: string };
}): NodeAuditCheck {
  const { nodeId, peerId, records, head } = input;
  if (head.nodeId !== nodeId) return { ok: false, brokenAt: head.seq, reason: `head is of ${head.nodeId}` };
  if (!verifyAuditHead(head, peerId)) {
    return { ok: false, brokenAt: head.seq, reason: 'head signature does not verify' };
  }
  let prev = input.from ?? { seq: 0, hash: GENESIS_HASH };
  const seen = new Map<number, string>();
  let checkpoints = 0;
  for (const r of records) {
    if (r.seq !== prev.seq + 1) return { ok: false, brokenAt: prev.seq + 1, reason: 'sequence gap' };
    if (r.prevHash !== prev.hash) return { ok: false, brokenAt: r.seq, reason: 'previous hash differs' };
    let h: string;
    try {
      h = auditHash(r.prevHash, r.seq, r.time, r.entry);
    } catch {
      return { ok: false, brokenAt: r.seq, reason: 'entry is not plain JSON' };
    }
    if (h !== r.hash) return { ok: false, brokenAt: r.seq, reason: 'hash does not match the record' };
    if (r.entry['event'] === AUDIT_HEAD_EVENT) {
      const c = r.entry as unknown as SignedAuditHead;
      const named = seen.get(c.seq);
      if (c.nodeId !== nodeId || !verifyAuditHead(c, peerId)) {
        return { ok: false, brokenAt: r.seq, reason: 'checkpoint signature does not verify' };
      }
      if (named !== undefined && named !== c.hash) {
        return { ok: false, brokenAt: c.seq, reason: 'checkpoint names another hash' };
      }
      checkpoints++;
    }
    seen.set(r.seq, r.hash);
    prev = { seq: r.seq, hash: r.hash };
  }
  if (head.seq < prev.seq) return { ok: false, brokenAt: head.seq, reason: 'head is behind the page' };
  if (head.seq === prev.seq && head.hash !== prev.hash) {
    return { ok: false, brokenAt: head.seq, reason: 'head names another hash' };
  }
  return { ok: true, last: prev, checkpoints };
}
