/**
 * `kms requests list|show|approve`: operations waiting for approvals. An operation whose policy
 * needs approvals answers 202 with a request object (`{requestId, operation, keyId, digest, state,
 * approvals, needed, expiresAt}`); approvers read it and approve with a signed
 * `POST /v1/requests/{id}/approvals` whose body is `{"requestDigest": "<digest>"}`
 * (policy/approvals.ts). Every node checks every approver's signature itself; when the quorum is
 * met the operation runs and the request object carries its result.
 */
import { createHash } from 'node:crypto';
import type { Command } from 'commander';
import { approvalBody } from '../client/sign-request.ts';
import { requestDigest, type SignedRequestWire } from '../net/signed-request.ts';
import { type CliContext, type Client, ServerError, table } from './kms-client.ts';

/** The request object of the API (fields the CLI reads; others are shown in --json). */
export type ApprovalRequest = {
  requestId: string;
  operation?: string;
  keyId?: string;
  initiator?: string;
  digest?: string;
  state?: string;
  approvals?: (string | { principal?: string; approvedAt?: string })[];
  /** Approvals still missing: a count, or per group (policy/evaluate.ts `needs`). */
  needed?: number | { group: string; needed: number; have?: string[] }[];
  expiresAt?: string;
  /** The initiator's signed request as the nodes verify it. */
  signedRequest?: SignedRequestWire;
  /** Executed: the operation's answer. */
  result?: { status?: number; body?: Record<string, unknown> };
  /** Failed: the operation's problem document. */
  error?: Record<string, unknown>;
};

/** A 202 answer carrying a request object: the operation waits for approvals. */
export function isPending(status: number, body: unknown): body is ApprovalRequest {
  return status === 202 && typeof (body as ApprovalRequest | undefined)?.requestId === 'string';
}

/** An alias or key id → the key id (signed requests name keys by id: the nodes check the path). */
export async function resolveKeyId(c: Client, key: string): Promise<string> {
  const k = await c.call<{ keyId: string }>('GET', `v1/keys/${encodeURIComponent(key)}`);
  return k.keyId;
}

function approvers(r: ApprovalRequest): string[] {
  return (r.approvals ?? []).map((a) => (typeof a === 'string' ? a : String(a.principal ?? '?')));
}

function orList(names: readonly string[]): string {
  if (names.length <= 1) return names.join('');
  return `${names.slice(0, -1).join(', ')} or ${names.at(-1)}`;
}

/** Each group's missing approvals, with who could still give them (from the current governance). */
function missing(
  r: ApprovalRequest,
  groups: Readonly<Record<string, readonly string[]>> | undefined,
): { text: string; who: string[] }[] {
  const have = new Set(approvers(r));
  if (typeof r.needed === 'number') {
    return [{ text: `${r.needed} more approval${r.needed === 1 ? '' : 's'}`, who: [] }];
  }
  return (r.needed ?? []).map((n) => {
    const got = new Set([...(n.have ?? []), ...have]);
    const who = (groups?.[n.group] ?? []).filter((m) => m !== r.initiator && !got.has(m));
    const count = n.have ? `${n.have.length} of ${n.needed}` : `${n.needed} needed`;
    return { text: `${n.needed} approval${n.needed === 1 ? '' : 's'} from ${n.group} (${count})`, who };
  });
}

async function governanceGroups(c: Client): Promise<Record<string, string[]> | undefined> {
  try {
    const g = await c.call<{ document?: { groups?: Record<string, string[]> } }>('GET', 'v1/governance');
    return g.document?.groups;
  } catch {
    return undefined; // the names are a convenience; the request id is what matters
  }
}

/** What the initiator signed, for the approver to read: method, path, and the message's digest. */
function signedSummary(w: SignedRequestWire): string {
  const body = Buffer.from(w.body, 'base64');
  let message: string | undefined;
  try {
    const m = (JSON.parse(body.toString('utf8')) as { message?: unknown }).message;
    if (typeof m === 'string' && /^(?:[0-9a-fA-F]{2})*$/.test(m)) {
      const bytes = Buffer.from(m, 'hex');
      message = `message sha256 ${createHash('sha256').update(bytes).digest('hex')} (${bytes.length} bytes)`;
    }
  } catch {
    message = undefined;
  }
  return `${w.method} ${w.path}${w.query}${message ? `, ${message}` : `, body ${body.length} bytes`}`;
}

/** Human lines for a request object. */
export function describeRequest(
  r: ApprovalRequest,
  groups?: Readonly<Record<string, readonly string[]>>,
): string {
  const lines = [
    `request      ${r.requestId}`,
    `operation    ${r.operation ?? '-'} on key ${r.keyId ?? '-'}`,
    `initiator    ${r.initiator ?? '-'}`,
    `state        ${r.state ?? '-'}`,
    `approvals    ${approvers(r).join(', ') || 'none yet'}`,
  ];
  if (r.signedRequest) lines.push(`signed       ${signedSummary(r.signedRequest)}`);
  if (r.digest) lines.push(`digest       ${r.digest}`);
  if (r.expiresAt) lines.push(`expires      ${r.expiresAt}`);
  if (r.state === 'Pending') {
    for (const m of missing(r, groups)) {
      lines.push(
        `needs        ${m.text}${m.who.length > 0 ? `: ask ${orList(m.who)} to run \`kms requests approve ${r.requestId}\`` : ''}`,
      );
    }
  }
  if (r.result) {
    const sig = r.result.body?.['signature'];
    lines.push(
      typeof sig === 'string' ? `signature    ${sig}` : `result       ${JSON.stringify(r.result.body)}`,
    );
  }
  if (r.error)
    lines.push(`error        ${String(r.error['code'] ?? '')}: ${String(r.error['detail'] ?? '')}`);
  return `${lines.join('\n')}\n`;
}

/** Prints a 202 answer: what waits, and whom to ask ("ask bob or carol to run ..."). */
export async function printPending(ctx: CliContext, r: ApprovalRequest): Promise<void> {
  if (ctx.json()) {
    ctx.print(r, () => '');
    return;
  }
  const groups = await governanceGroups(ctx.client());
  const needs = missing(r, groups);
  const head = needs
    .map(
      (m) =>
        `the policy needs ${m.text}${m.who.length > 0 ? `: ask ${orList(m.who)} to run \`kms requests approve ${r.requestId}\`` : ''}`,
    )
    .join('; ');
  ctx.io.out(
    `pending: ${r.operation ?? 'the operation'} on key ${r.keyId ?? '-'} waits for approvals (request ${r.requestId})\n` +
      `  ${head || `approve it with \`kms requests approve ${r.requestId}\``}\n` +
      (r.expiresAt ? `  expires ${r.expiresAt}\n` : ''),
  );
}

export function registerRequests(program: Command, ctx: CliContext): void {
  const requests = program
    .command('requests')
    .description('operations waiting for approvals: list, show, approve')
    .addHelpText(
      'after',
      '\nExamples:\n  $ npx kms requests list\n  $ npx kms requests show <requestId>\n' +
        '  $ npx kms --principal bob --principal-key bob.key requests approve <requestId>\n',
    )
    .exitOverride();

  requests
    .command('list')
    .description('list approval requests (default: the pending ones)')
    .option('--state <state>', 'Pending | Executed | Failed | Expired', 'Pending')
    .action(async (o: { state: string }) => {
      const r = await ctx
        .client()
        .call<{ requests: ApprovalRequest[] }>(
          'GET',
          `v1/requests?${new URLSearchParams({ state: o.state })}`,
        );
      const list = r.requests ?? [];
      ctx.print(r, () =>
        list.length === 0
          ? `no ${o.state} requests\n`
          : table([
              ['REQUEST ID', 'OPERATION', 'KEY', 'INITIATOR', 'STATE', 'APPROVALS', 'EXPIRES'],
              ...list.map((q) => [
                q.requestId,
                q.operation ?? '-',
                q.keyId ?? '-',
                q.initiator ?? '-',
                q.state ?? '-',
                approvers(q).join(',') || '-',
                q.expiresAt ?? '-',
              ]),
            ]),
      );
    });

  requests
    .command('show <requestId>')
    .description('show one request: what it asks, who approved, what is missing, its result')
    .action(async (id: string) => {
      const c = ctx.client();
      const r = await c.call<ApprovalRequest>('GET', `v1/requests/${encodeURIComponent(id)}`);
      const groups = ctx.json() ? undefined : await governanceGroups(c);
      ctx.print(r, () => describeRequest(r, groups));
    });

  requests
    .command('approve <requestId>')
    .description(
      'approve a request as the principal (--principal, --principal-key): a signed POST of its digest',
    )
    .addHelpText(
      'after',
      '\nThe approval names the request by its digest, so it approves exactly that request: every\n' +
        'node checks the approval signature itself. When the quorum is met the operation runs and\n' +
        'the answer carries its result (e.g. the signature).\n',
    )
    .action(async (id: string) => {
      const c = ctx.client();
      const r = await c.call<ApprovalRequest>('GET', `v1/requests/${encodeURIComponent(id)}`);
      if (r.state !== undefined && r.state !== 'Pending') {
        throw new ServerError(`request ${id} is ${r.state}, not Pending: nothing to approve`);
      }
      if (typeof r.digest !== 'string' || !/^[0-9a-f]{64}$/.test(r.digest)) {
        throw new ServerError(`request ${id} has no request digest to approve`);
      }
      // Approve only what the initiator really signed: the digest is recomputed here.
      if (r.signedRequest && requestDigest(r.signedRequest) !== r.digest) {
        throw new ServerError(
          `request ${id}: its digest does not match the signed request shown: not approving`,
        );
      }
      const after = await c.call<ApprovalRequest>(
        'POST',
        `v1/requests/${encodeURIComponent(id)}/approvals`,
        approvalBody(r.digest),
        { signed: true },
      );
      const groups = ctx.json() || after.state !== 'Pending' ? undefined : await governanceGroups(c);
      ctx.print(after, () => describeRequest(after, groups));
    });
}
