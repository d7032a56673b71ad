/**
 * `kms audit verify --nodes`: the audit the coordinator cannot rewrite (review M-3, H-4). Each node
 * keeps its own hash chain of the signed requests it acted on or refused and signs its head with
 * its node identity key (net/node-audit-head.ts). The coordinator only relays the pages
 * (`GET /v1/nodes/{id}/audit`); this client checks every page and head against the node's peer id
 * from the cluster file, then cross-checks the coordinator's own log: every request a node acted
 * on (`decision: allow`) must be in the coordinator's log under the same request digest, with the
 * same key and message digest. A record the coordinator dropped or rewrote is reported by name.
 */
import { readFileSync } from 'node:fs';
import type { AuditRecord } from '../common/audit-log.ts';
import { type SignedAuditHead, verifyNodeAuditPage } from '../net/node-audit-head.ts';
import { devnetClusterFile, devnetDir } from './devnet-lib.ts';
import { type Client, ServerError, UsageError } from './kms-client.ts';

const PAGE = 500;

type NodeResult = {
  node: string;
  ok: boolean;
  records: number;
  checkpoints: number;
  head?: { seq: number; hash: string; time: string };
  /** Why the chain does not verify, with the first bad sequence number. */
  broken?: { seq: number; reason: string };
  /** The node could not be read (down, or the coordinator did not relay it). */
  unreachable?: string;
};

type Finding = {
  kind: 'dropped' | 'rewritten';
  node: string;
  nodeSeq: number;
  requestDigest: string;
  operation?: string;
  keyId?: string;
  initiator?: string;
  detail: string;
};

export type NodeAuditReport = {
  ok: boolean;
  summary: string;
  coordinator: { ok: boolean; count: number; brokenAt?: number };
  nodes: NodeResult[];
  findings: Finding[];
  lines: string[];
};

type ClusterPeer = { id: string; peerId: string };

function readCluster(file: string): ClusterPeer[] {
  let raw: { nodes?: ClusterPeer[] };
  try {
    raw = JSON.parse(readFileSync(file, 'utf8'));
  } catch {
    throw new UsageError(
      `cannot read the cluster file ${file}: name it with --cluster FILE (the allow-list with every node's peer id)`,
    );
  }
  const nodes = raw.nodes ?? [];
  if (!Array.isArray(nodes) || nodes.length === 0 || nodes.some((n) => !n.id || !n.peerId)) {
    throw new UsageError(`${file} lists no nodes with peer ids`);
  }
  return nodes;
}

/** Fetches and checks one node's whole chain, page by page, each against its signed head. */
async function checkNode(
  c: Client,
  peer: ClusterPeer,
): Promise<{ result: NodeResult; records: AuditRecord[] }> {
  const all: AuditRecord[] = [];
  let from: { seq: number; hash: string } | undefined;
  let checkpoints = 0;
  let head: SignedAuditHead | undefined;
  for (;;) {
    const q = new URLSearchParams({ limit: String(PAGE), ...(from ? { after: String(from.seq) } : {}) });
    let page: { records: AuditRecord[]; head: SignedAuditHead };
    try {
      page = await c.call('GET', `v1/nodes/${encodeURIComponent(peer.id)}/audit?${q}`);
    } catch (e) {
      if (all.length === 0 && e instanceof ServerError) {
        return {
          result: { node: peer.id, ok: false, records: 0, checkpoints: 0, unreachable: e.message },
          records: [],
        };
      }
      throw e;
    }
    head = page.head;
    const check = verifyNodeAuditPage({
      nodeId: peer.id,
      peerId: peer.peerId,
      records: page.records,
      head: page.head,
      ...(from ? { from } : {}),
    });
    if (!check.ok) {
      return {
        result: {
          node: peer.id,
          ok: false,
          records: all.length + page.records.length,
          checkpoints,
          broken: { seq: check.brokenAt, reason: check.reason },
        },
        records: all,
      };
    }
    all.push(...page.records);
    checkpoints += check.checkpoints;
    from = check.last;
    // Done at the signed head; a short page that stops below it is a cut tail.
    if (check.last.seq >= page.head.seq) break;
    if (page.records.length === 0) {
      return {
        result: {
          node: peer.id,
          ok: false,
          records: all.length,
          checkpoints,
          broken: {
            seq: check.last.seq + 1,
            reason: `records up to the signed head ${page.head.seq} are missing`,
          },
        },
        records: all,
      };
    }
  }
  return {
    result: {
      node: peer.id,
      ok: true,
      records: all.length,
      checkpoints,
      ...(head ? { head: { seq: head.seq, hash: head.hash, time: head.time } } : {}),
    },
    records: all,
  };
}

const str = (v: unknown): string | undefined => (typeof v === 'string' ? v : undefined);

/**
 * What the coordinator's log must show for each request a node acted on: a record with the same
 * request digest; where both name them, the same key and the same message digest.
 */
export function crossCheck(
  coordinator: readonly AuditRecord[],
  nodes: ReadonlyMap<string, readonly AuditRecord[]>,
): Finding[] {
  const byDigest = new Map<string, Record<string, unknown>[]>();
  for (const r of coordinator) {
    const d = str(r.entry['requestDigest']);
    if (d) byDigest.set(d, [...(byDigest.get(d) ?? []), r.entry]);
  }
  const findings: Finding[] = [];
  for (const [node, records] of nodes) {
    for (const r of records) {
      const e = r.entry;
      const digest = str(e['requestDigest']);
      if (!digest || e['decision'] !== 'allow') continue;
      const about = {
        node,
        nodeSeq: r.seq,
        requestDigest: digest,
        ...(str(e['operation']) ? { operation: str(e['operation'])! } : {}),
        ...(str(e['keyId']) ? { keyId: str(e['keyId'])! } : {}),
        ...(str(e['initiator']) ? { initiator: str(e['initiator'])! } : {}),
      };
      const theirs = byDigest.get(digest);
      if (!theirs) {
        findings.push({
          kind: 'dropped',
          ...about,
          detail: "no record of this request in the coordinator's log",
        });
        continue;
      }
      const sameKey = theirs.some((t) => !str(t['keyId']) || !about.keyId || t['keyId'] === about.keyId);
      const msg = str(e['messageSha256']);
      const sameMsg = theirs.some((t) => !msg || !str(t['messageSha256']) || t['messageSha256'] === msg);
      if (!sameKey || !sameMsg) {
        findings.push({
          kind: 'rewritten',
          ...about,
          detail: `the coordinator's record names ${sameKey ? 'another message digest' : 'another key'} (${String(theirs[0]?.['keyId'])}, ${String(theirs[0]?.['messageSha256'] ?? '-')})`,
        });
      }
    }
  }
  return findings;
}

export async function verifyNodeAudits(
  c: Client,
  coordinatorRecords: readonly AuditRecord[],
  coordinatorChain: { ok: boolean; count: number; brokenAt?: number },
  clusterFile?: string,
): Promise<NodeAuditReport> {
  const peers = readCluster(clusterFile ?? devnetClusterFile(devnetDir()));
  const checked = await Promise.all(peers.map((p) => checkNode(c, p)));
  const nodes = checked.map((x) => x.result);
  const nodeRecords = new Map(checked.filter((x) => x.result.ok).map((x) => [x.result.node, x.records]));
  const findings = crossCheck(coordinatorRecords, nodeRecords);
  const brokenNodes = nodes.filter((n) => !n.ok);
  const lines = [
    coordinatorChain.ok
      ? `coordinator: chain ok, ${coordinatorChain.count} records`
      : `coordinator: chain BROKEN at seq ${coordinatorChain.brokenAt} (${coordinatorChain.count} records verified before it)`,
    ...nodes.map((n) =>
      n.ok
        ? `${n.node}: chain ok, ${n.records} records, head seq ${n.head?.seq} signed by the node at ${n.head?.time} (${n.checkpoints} signed checkpoints)`
        : n.unreachable
          ? `${n.node}: NOT CHECKED (${n.unreachable})`
          : `${n.node}: chain BROKEN at seq ${n.broken?.seq}: ${n.broken?.reason}`,
    ),
    ...findings.map(
      (f) =>
        `${f.kind === 'dropped' ? 'DROPPED' : 'REWRITTEN'}: ${f.node} record ${f.nodeSeq}: ${f.operation ?? '?'} on key ${f.keyId ?? '-'} by ${f.initiator ?? '?'} (request digest ${f.requestDigest}): ${f.detail}`,
    ),
  ];
  const unreachable = brokenNodes.filter((n) => n.unreachable).length;
  const broken = brokenNodes.length - unreachable;
  const ok = coordinatorChain.ok && broken === 0 && unreachable === 0 && findings.length === 0;
  const summary = ok
    ? `audit ok: the coordinator's log and ${nodes.length} node chains verify, and every request a node acted on is in the coordinator's log`
    : [
        coordinatorChain.ok ? '' : `the coordinator's chain is broken at seq ${coordinatorChain.brokenAt}`,
        broken > 0 ? `${broken} node chain(s) do not verify` : '',
        unreachable > 0 ? `${unreachable} node(s) could not be checked` : '',
        findings.length > 0
          ? `${findings.length} request(s) the nodes acted on are missing from or differ in the coordinator's log`
          : '',
      ]
        .filter(Boolean)
        .join('; ');
  lines.push(ok ? summary : `audit FAILED: ${summary}`);
  return {
    ok,
    summary,
    coordinator: coordinatorChain,
    nodes,
    findings,
    lines,
  };
}
