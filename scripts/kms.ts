#!/usr/bin/env node
/**
 * `kms`: the command-line client of the coordinator's HTTP API.
 *
 * Needs Node 24 (type stripping): `npm run kms -- <command>`, `npx kms <command>`, or
 * `./node_modules/.bin/node scripts/kms.ts <command>`. The system node (20) cannot run it.
 *
 * The API is HTTPS. In a devnet (`npm run devnet`) the CLI finds the URL, the CA, the admin
 * token and the admin principal's key in the devnet dir (KMS_DEVNET_DIR, default .devnet:
 * `api-url`, `ca.pem`, `admin-token`, `admin-key`); elsewhere `--url`/KMS_URL, `--ca`/KMS_CA (a
 * PEM CA bundle trusted beside the system's), `--token`/KMS_TOKEN, `--principal`/KMS_PRINCIPAL and
 * `--principal-key`/KMS_PRINCIPAL_KEY say where and as whom. Every request that uses or changes a
 * key, a principal or a policy is signed by the principal (RFC 9421; scripts/kms-client.ts), and
 * keys are named by id in those requests: the CLI resolves an alias first.
 *
 * Output is human-readable by default and JSON with `--json`. Exit codes (as Vault's CLI):
 * 0 success, 1 usage or local error, 2 the server refused or could not be reached.
 * Another module can add command groups (the devnet): `buildProgram()` returns the commander
 * program without running it.
 */
import { readFileSync, realpathSync, writeFileSync } from 'node:fs';
import { pathToFileURL } from 'node:url';
import { Command, CommanderError, Option } from 'commander';
import { auditHash, GENESIS_HASH } from '../common/audit-log.ts';
import { devnetApi, devnetDir, nodeAdminUrls } from './devnet-lib.ts';
import {
  Client,
  EXIT_OK,
  EXIT_SERVER,
  EXIT_USAGE,
  type GlobalOpts,
  type Io,
  ServerError,
  UsageError,
  defaultToken,
  table,
  trustFor,
} from './kms-client.ts';
import { registerBackup } from './kms-backup.ts';
import { registerEncryption } from './kms-encryption.ts';
import { registerPsbt } from './kms-psbt.ts';
import { registerCustody } from './kms-custody.ts';
import { registerGovernance } from './kms-governance.ts';
import { verifyNodeAudits } from './kms-node-audit.ts';
import { isPending, printPending, registerRequests, resolveKeyId } from './kms-requests.ts';

export { EXIT_OK, EXIT_SERVER, EXIT_USAGE, type Io, ServerError, UsageError };

/** Where the CLI goes when neither --url nor KMS_URL says: the devnet's API, else the default port. */
const FALLBACK_URL = 'https://127.0.0.1:8080';

const stdio: Io = {
  out: (s) => process.stdout.write(s),
  err: (s) => process.stderr.write(s),
  isTTY: Boolean(process.stderr.isTTY),
};

/** Spinner on a terminal, plain start/end lines otherwise; always on stderr. */
async function withProgress<T>(io: Io, label: string, fn: () => Promise<T>): Promise<T> {
  const started = Date.now();
  const frames = ['|', '/', '-', '\\'];
  let i = 0;
  let timer: NodeJS.Timeout | undefined;
  if (io.isTTY)
    timer = setInterval(
      () => io.err(`\r${frames[i++ % 4]} ${label} ${((Date.now() - started) / 1000).toFixed(1)}s`),
      100,
    );
  else io.err(`${label}...\n`);
  try {
    const r = await fn();
    if (timer) clearInterval(timer);
    io.err(`${io.isTTY ? '\r' : ''}${label}: done in ${((Date.now() - started) / 1000).toFixed(1)}s\n`);
    return r;
  } catch (e) {
    if (timer) clearInterval(timer);
    if (io.isTTY) io.err('\n');
    throw e;
  }
}

function parseParticipants(v: string | undefined): number | string[] | undefined {
  if (v === undefined) return undefined;
  if (/^[0-9]+$/.test(v)) return Number(v);
  const ids = v
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean);
  if (ids.length === 0) throw new UsageError('--participants: a count or a comma-separated list of node ids');
  return ids;
}

function parseIntOpt(name: string) {
  return (v: string): number => {
    if (!/^[0-9]+$/.test(v)) throw new UsageError(`${name} must be a non-negative integer`);
    return Number(v);
  };
}

function messageHex(o: { message?: string; messageHex?: string; file?: string }): string {
  const given = [o.message, o.messageHex, o.file].filter((x) => x !== undefined).length;
  if (given !== 1) throw new UsageError('give exactly one of --message, --message-hex, --file');
  if (o.messageHex !== undefined) {
    if (!/^(?:[0-9a-fA-F]{2})*$/.test(o.messageHex))
      throw new UsageError('--message-hex must be even-length hex');
    return o.messageHex.toLowerCase();
  }
  if (o.file !== undefined) {
    try {
      return readFileSync(o.file).toString('hex');
    } catch {
      throw new UsageError(`cannot read ${o.file}`);
    }
  }
  return Buffer.from(o.message!, 'utf8').toString('hex');
}

function keyLines(k: Record<string, any>): string {
  const rows: [string, unknown][] = [
    ['keyId', k.keyId],
    ['alias', k.alias ?? '-'],
    ['keySpec', k.keySpec],
    ['state', k.state],
    ['threshold', `${k.threshold} of ${k.participants?.length} (${(k.participants ?? []).join(', ')})`],
    ['epoch', k.epoch ?? '-'],
    ['publicKey', k.publicKey ?? '-'],
    ['createdAt', k.createdAt],
  ];
  // Issue 14: a Taproot key's internal key (what wallets and descriptors take) beside its output key.
  if (k.taproot !== undefined) {
    rows.push(['internalKey', k.taproot.internalKey], ['merkleRoot', k.taproot.merkleRoot ?? '-']);
  }
  if (k.description !== undefined) rows.push(['description', k.description]);
  if (k.deletionDate !== undefined) rows.push(['deletionDate', k.deletionDate]);
  return `${rows.map(([a, b]) => `${a.padEnd(13)}${String(b)}`).join('\n')}\n`;
}

type NodeReadiness = { status: 'pass' | 'fail'; checks?: Record<string, unknown> };

/**
 * Each node's own `/readyz`, read from its admin port. Admin ports are local to each node's
 * machine and the coordinator does not relay them (it knows reachability over libp2p, not a
 * node's HSM or store), so this works where the CLI runs beside the nodes: a devnet whose URL is
 * the one in use. Elsewhere: empty (the READY column shows `-`).
 */
async function devnetReadiness(url: string): Promise<Map<string, NodeReadiness>> {
  const out = new Map<string, NodeReadiness>();
  const dir = devnetDir();
  const devnet = devnetApi(dir);
  if (!devnet || new URL(devnet.url).origin !== new URL(url).origin) return out;
  await Promise.all(
    [...nodeAdminUrls(dir)].map(async ([id, admin]) => {
      try {
        const res = await fetch(`${admin}/readyz`, { signal: AbortSignal.timeout(3_000) });
        out.set(id, (await res.json()) as NodeReadiness);
      } catch {
        out.set(id, { status: 'fail', checks: { admin: 'unreachable' } });
      }
    }),
  );
  return out;
}

function failedChecks(r: NodeReadiness): string {
  const short = (v: unknown) =>
    v === 'fail' ||
    v === 'unreachable' ||
    (typeof v === 'object' &&
      v !== null &&
      (v as { reachable: number; needed: number }).reachable < (v as { needed: number }).needed);
  const failed = Object.entries(r.checks ?? {})
    .filter(([, v]) => short(v))
    .map(([k]) => k);
  return failed.length > 0 ? failed.join(', ') : 'not ready';
}

/** Checks a run of audit records: contiguous seqs, each prevHash the previous hash, each hash recomputed. */
export function verifyAuditChain(
  records: readonly {
    seq: number;
    time: string;
    prevHash: string;
    hash: string;
    entry: Record<string, unknown>;
  }[],
): {
  ok: boolean;
  count: number;
  brokenAt?: number;
} {
  let prev = GENESIS_HASH;
  let expect = 1;
  for (const r of records) {
    if (r.seq !== expect || r.prevHash !== prev || auditHash(r.prevHash, r.seq, r.time, r.entry) !== r.hash) {
      return { ok: false, count: expect - 1, brokenAt: expect };
    }
    prev = r.hash;
    expect++;
  }
  return { ok: true, count: expect - 1 };
}

const EXAMPLES = `
Examples:
  $ npx kms keys create --spec FROST_ED25519 --threshold 2 --alias payments
  $ npx kms keys sign payments --message 'hello'
  $ npx kms keys verify payments --message 'hello' --signature <hex>
  $ npx kms keys sign-psbt treasury --in spend.psbt --out spend.signed.psbt --network regtest
  $ npx kms keys reshare payments --threshold 3 --participants node-1,node-2,node-3,node-4
  $ npx kms tokens create --role signer --name ci --keys <keyId>
  $ npx kms principals create alice --out alice.key --proposal proposal.json
  $ npx kms governance sign --in proposal.json && npx kms governance submit --in proposal.json
  $ npx kms --principal alice --principal-key alice.key keys sign payments --message 'hello'
  $ npx kms --principal bob --principal-key bob.key requests approve <requestId>
  $ npx kms audit verify --nodes
  $ npx kms --json keys list | jq .

Environment: KMS_URL (default: the devnet's api-url, else https://127.0.0.1:8080), KMS_CA (PEM CA
file; the devnet's ca.pem is trusted for the devnet's URL by itself), KMS_TOKEN (default:
.devnet/admin-token), KMS_PRINCIPAL (default admin) and KMS_PRINCIPAL_KEY (default:
.devnet/admin-key): who signs requests that use or change keys, principals and policies,
KMS_DEVNET_DIR (default .devnet).
Exit codes: 0 ok (also: an operation waiting for approvals, with its request id), 1 usage error,
2 server error or unreachable.
`;

/** The `kms` program, not yet parsed: other modules may add command groups before running it. */
export function buildProgram(io: Io = stdio): Command {
  const program = new Command('kms')
    .description('Command-line client of the threshold KMS coordinator')
    .addOption(
      new Option('--url <url>', 'coordinator URL')
        .env('KMS_URL')
        .default(devnetApi(devnetDir())?.url ?? FALLBACK_URL),
    )
    .addOption(new Option('--ca <file>', 'PEM CA certificate(s) to trust for the coordinator').env('KMS_CA'))
    .addOption(new Option('--token <token>', 'bearer token (default: .devnet/admin-token)').env('KMS_TOKEN'))
    .addOption(
      new Option('--principal <id>', 'principal that signs requests using or changing keys and policies')
        .env('KMS_PRINCIPAL')
        .default('admin'),
    )
    .addOption(
      new Option(
        '--principal-key <file>',
        "the principal's private key, PKCS#8 PEM (default: the devnet's admin-key)",
      ).env('KMS_PRINCIPAL_KEY'),
    )
    .option('--json', 'machine-readable JSON output')
    .showHelpAfterError()
    .addHelpText('after', EXAMPLES)
    .configureOutput({ writeOut: io.out, writeErr: io.err });
  program.exitOverride();

  const client = () => {
    const o = program.opts<GlobalOpts>();
    try {
      trustFor(o.url, o.ca);
    } catch (e) {
      throw new UsageError(`--ca: ${(e as Error).message}`);
    }
    const token = o.token || defaultToken();
    return new Client({ ...o, json: o.json === true, ...(token === undefined ? {} : { token }) });
  };
  const json = () => program.opts<GlobalOpts>().json === true;
  const print = (value: unknown, human: () => string) =>
    io.out(json() ? `${JSON.stringify(value, null, 2)}\n` : human());
  const ctx = { io, client, json, print };

  /**
   * A signed operation on a key (the path names the key by id: an alias is resolved first).
   * Resolves with the answer, or undefined when it waits for approvals (the request is printed).
   */
  const keyOp = async (key: string, op: string, body: unknown, label?: string): Promise<any> => {
    const c = client();
    const keyId = await resolveKeyId(c, key);
    const send = () =>
      c.request('POST', `v1/keys/${encodeURIComponent(keyId)}/${op}`, body, { signed: true });
    const r = label ? await withProgress(io, label, send) : await send();
    if (isPending(r.status, r.body)) {
      await printPending(ctx, r.body);
      return undefined;
    }
    return r.body;
  };

  const keys = program.command('keys').description('create, use and manage keys').exitOverride();
  keys
    .command('create')
    .description('create a key (runs a DKG among the nodes)')
    .requiredOption(
      '--spec <keySpec>',
      'FROST_ED25519 | FROST_SECP256K1_TR | FROST_SECP256K1 | FROST_P256 | FROST_RISTRETTO255 | FROST_ED448 | TDH2_RISTRETTO255',
    )
    .requiredOption('-t, --threshold <t>', 'signers needed', parseIntOpt('--threshold'))
    .option('-p, --participants <n|ids>', 'a node count or node-1,node-2,... (default: every node)')
    .option('--usage <keyUsage>', 'SIGN_VERIFY (default) | ENCRYPT_DECRYPT (with TDH2_RISTRETTO255)')
    .option('--alias <alias>', 'friendly name')
    .option('--description <text>', 'free text')
    .option('--merkle-root <hex>', 'FROST_SECP256K1_TR: the script tree merkle root (docs/custody.md)')
    .action(async (o) => {
      const body: Record<string, unknown> = { keySpec: o.spec, threshold: o.threshold };
      if (o.merkleRoot !== undefined) body.merkleRoot = o.merkleRoot;
      if (o.usage !== undefined) body.keyUsage = o.usage;
      const participants = parseParticipants(o.participants);
      if (participants !== undefined) body.participants = participants;
      if (o.alias !== undefined) body.alias = o.alias;
      if (o.description !== undefined) body.description = o.description;
      const c = client();
      const r = await withProgress(io, 'creating key (DKG)', () =>
        c.request('POST', 'v1/keys', body, { signed: true }),
      );
      if (isPending(r.status, r.body)) return printPending(ctx, r.body);
      print(r.body, () => keyLines(r.body));
    });
  keys
    .command('list')
    .description('list keys')
    .option('--limit <n>', 'page size', parseIntOpt('--limit'))
    .action(async (o) => {
      const all: any[] = [];
      let next: string | undefined;
      do {
        const q = new URLSearchParams();
        if (o.limit) q.set('limit', String(o.limit));
        if (next) q.set('nextToken', next);
        const page = await client().call('GET', `v1/keys${q.size ? `?${q}` : ''}`);
        all.push(...page.keys);
        next = page.nextToken;
      } while (next);
      print({ keys: all }, () =>
        table([
          ['KEY ID', 'ALIAS', 'SPEC', 'STATE', 'T/N', 'EPOCH'],
          ...all.map((k) => [
            k.keyId,
            k.alias ?? '-',
            k.keySpec,
            k.state,
            `${k.threshold}/${k.participants.length}`,
            String(k.epoch ?? '-'),
          ]),
        ]),
      );
    });
  keys
    .command('get <key>')
    .description('describe a key (id or alias)')
    .action(async (key: string) => {
      const k = await client().call('GET', `v1/keys/${encodeURIComponent(key)}`);
      print(k, () => keyLines(k));
    });
  keys
    .command('public-key <key>')
    .description('print the public key (hex, or PEM with --pem), of the key or its child at --path')
    .option('--pem', 'PEM SubjectPublicKeyInfo')
    .option('--path <path>', 'non-hardened derivation path, e.g. m/0/5 (docs/custody.md)')
    .addOption(new Option('--format <format>', 'xpub: print the BIP32 xpub').choices(['hex', 'xpub']))
    .addOption(
      new Option('--network <network>', 'with --format xpub: xpub (bitcoin) or tpub').choices([
        'bitcoin',
        'testnet',
        'signet',
        'regtest',
      ]),
    )
    .action(async (key: string, o) => {
      const q = new URLSearchParams();
      if (o.path !== undefined) q.set('path', o.path);
      if (o.format === 'xpub') q.set('format', 'xpub');
      if (o.network !== undefined) q.set('network', o.network);
      const url = `v1/keys/${encodeURIComponent(key)}/public-key${q.size > 0 ? `?${q}` : ''}`;
      if (o.pem) {
        io.out(await client().call('GET', url, undefined, { accept: 'application/x-pem-file' }));
        return;
      }
      const r = await client().call('GET', url);
      print(r, () => `${o.format === 'xpub' ? r.xpub : r.publicKey}\n`);
    });
  const msgOpts = (c: Command) =>
    c
      .option('-m, --message <text>', 'message as UTF-8 text')
      .option('--message-hex <hex>', 'message as hex')
      .option('-f, --file <path>', 'message from a file');
  msgOpts(keys.command('sign <key>').description('sign a message'))
    .option('-o, --out <file>', 'also write the raw signature bytes to a file (e.g. for openssl)')
    .option('--derivation-path <path>', 'sign with the non-hardened child key at this path, e.g. m/0/5')
    .addOption(
      new Option(
        '--taproot-tweak <mode>',
        'FROST_SECP256K1_TR: keyPath (default) or none (leaf key)',
      ).choices(['keyPath', 'none']),
    )
    .action(async (key: string, o) => {
      const message = messageHex(o);
      const r = await keyOp(key, 'sign', {
        message,
        ...(o.derivationPath === undefined ? {} : { derivationPath: o.derivationPath }),
        ...(o.taprootTweak === undefined ? {} : { taprootTweak: o.taprootTweak }),
      });
      if (r === undefined) return;
      if (o.out) writeFileSync(o.out, Buffer.from(r.signature, 'hex'));
      print(r, () => {
        const ex = (r.excluded ?? []).map((b: any) => `${b.participant} (${b.reason})`).join(', ');
        return `${r.signature}\n` + (json() ? '' : '') + (ex ? `excluded: ${ex}\n` : '');
      });
      if (!json() && (r.excluded ?? []).length > 0)
        io.err(`note: signed by ${r.signers.join(', ')} at epoch ${r.epoch}\n`);
    });
  msgOpts(keys.command('verify <key>').description('verify a signature'))
    .requiredOption('-s, --signature <hex>', 'signature, hex')
    .action(async (key: string, o) => {
      const message = messageHex(o);
      const r = await client().call('POST', `v1/keys/${encodeURIComponent(key)}/verify`, {
        message,
        signature: o.signature,
      });
      print(r, () => (r.valid ? 'valid\n' : 'INVALID\n'));
      if (!r.valid) process.exitCode = EXIT_SERVER;
    });
  keys
    .command('refresh <key>')
    .description('fresh shares, same committee (next epoch, same public key)')
    .action(async (key: string) => {
      const k = await keyOp(key, 'refresh', {}, 'refreshing shares');
      if (k !== undefined) print(k, () => keyLines(k));
    });
  keys
    .command('reshare <key>')
    .description('new committee and/or threshold (next epoch, same public key)')
    .option('-t, --threshold <t>', 'new threshold', parseIntOpt('--threshold'))
    .option('-p, --participants <n|ids>', 'a node count or node-1,node-2,...')
    .action(async (key: string, o) => {
      const body: Record<string, unknown> = {};
      if (o.threshold !== undefined) body.threshold = o.threshold;
      const participants = parseParticipants(o.participants);
      if (participants !== undefined) body.participants = participants;
      const k = await keyOp(key, 'reshare', body, 'resharing');
      if (k !== undefined) print(k, () => keyLines(k));
    });
  keys
    .command('repair <key>')
    .description("rebuild a member's lost share")
    .requiredOption('--participant <node>', 'the node whose share is rebuilt, e.g. node-2')
    .action(async (key: string, o) => {
      const k = await keyOp(key, 'repair', { participant: o.participant }, `repairing ${o.participant}`);
      if (k !== undefined) print(k, () => keyLines(k));
    });
  for (const [name, path, desc] of [
    ['disable', 'disable', 'disable a key (no signing)'],
    ['enable', 'enable', 'enable a disabled key'],
    ['cancel-deletion', 'cancel-deletion', 'cancel a scheduled deletion (the key becomes Disabled)'],
  ] as const) {
    keys
      .command(`${name} <key>`)
      .description(desc)
      .action(async (key: string) => {
        const k = await keyOp(key, path, {});
        if (k !== undefined) print(k, () => keyLines(k));
      });
  }
  keys
    .command('delete <key>')
    .description('schedule destruction of every share after a pending window')
    .option('--days <n>', 'pending window, 7-30 days (default 30)', parseIntOpt('--days'))
    .action(async (key: string, o) => {
      const body = o.days === undefined ? {} : { pendingWindowDays: o.days };
      const k = await keyOp(key, 'schedule-deletion', body);
      if (k !== undefined) print(k, () => keyLines(k));
    });

  const tokens = program.command('tokens').description('API tokens (admin)').exitOverride();
  tokens
    .command('create')
    .description('create a token (printed once)')
    .requiredOption('--role <role>', 'admin | operator | signer | auditor')
    .requiredOption('--name <name>', 'who or what uses it')
    .option('--keys <ids>', 'signer tokens: comma-separated key ids it may use')
    .action(async (o) => {
      const body: Record<string, unknown> = { role: o.role, name: o.name };
      if (o.keys !== undefined)
        body.keyIds = String(o.keys)
          .split(',')
          .map((s: string) => s.trim());
      const r = await client().call('POST', 'v1/tokens', body);
      print(r, () => `tokenId ${r.tokenId}\ntoken   ${r.token}\n(store it now: it is not shown again)\n`);
    });
  tokens
    .command('list')
    .description('list tokens')
    .action(async () => {
      const r = await client().call('GET', 'v1/tokens');
      print(r, () =>
        table([
          ['TOKEN ID', 'ROLE', 'NAME', 'KEYS', 'CREATED'],
          ...r.tokens.map((t: any) => [
            t.tokenId,
            t.role,
            t.name,
            t.keyIds ? t.keyIds.join(',') : '*',
            t.createdAt,
          ]),
        ]),
      );
    });
  tokens
    .command('revoke <tokenId>')
    .description('revoke a token')
    .action(async (id: string) => {
      const r = await client().call('DELETE', `v1/tokens/${encodeURIComponent(id)}`);
      print(r, () => `revoked ${r.tokenId} (${r.name})\n`);
    });

  program
    .command('nodes')
    .description(
      "list nodes, their reachability from the coordinator and, in a devnet, each node's readiness (its /readyz)",
    )
    .action(async () => {
      const r = await client().call('GET', 'v1/nodes');
      const ready = await devnetReadiness(program.opts<GlobalOpts>().url);
      const nodes = r.nodes.map((n: any) => (ready.has(n.id) ? { ...n, ready: ready.get(n.id) } : n));
      print({ ...r, nodes }, () =>
        table([
          ['NODE', 'REACHABLE', 'READY', 'KEYS', 'PEER ID', 'ADDRESS'],
          ...nodes.map((n: any) => [
            n.id,
            n.reachable ? 'yes' : 'NO',
            n.ready === undefined ? '-' : n.ready.status === 'pass' ? 'yes' : `NO (${failedChecks(n.ready)})`,
            String(n.keys.length),
            n.peerId,
            n.address,
          ]),
        ]),
      );
    });

  const fetchAudit = async (keyId?: string, after?: number, limit?: number) => {
    const out: any[] = [];
    let cursor = after ?? 0;
    for (;;) {
      const q = new URLSearchParams({ after: String(cursor), limit: String(Math.min(limit ?? 1000, 1000)) });
      if (keyId) q.set('keyId', keyId);
      const page = await client().call('GET', `v1/audit?${q}`);
      out.push(...page.records);
      if (page.nextAfter === undefined || (limit !== undefined && out.length >= limit)) break;
      cursor = page.nextAfter;
    }
    return limit === undefined ? out : out.slice(0, limit);
  };
  const audit = program
    .command('audit')
    .description('read the audit log')
    .option('--key <keyId>', 'only records about this key')
    .option('--after <seq>', 'records after this sequence number', parseIntOpt('--after'))
    .option('--limit <n>', 'at most n records', parseIntOpt('--limit'))
    .exitOverride()
    .action(async (o) => {
      const records = await fetchAudit(o.key, o.after, o.limit);
      print({ records }, () =>
        table([
          ['SEQ', 'TIME', 'TYPE', 'ACTION', 'STATUS', 'CALLER', 'KEY'],
          ...records.map((r: any) => [
            String(r.seq),
            r.time,
            String(r.entry.type ?? ''),
            String(r.entry.action ?? r.entry.route ?? ''),
            String(r.entry.status ?? r.entry.decision ?? r.entry.outcome ?? ''),
            String(r.entry.caller?.name ?? '-'),
            String(r.entry.keyId ?? '-'),
          ]),
        ]),
      );
    });
  audit
    .command('verify')
    .description(
      "fetch the whole log and check its hash chain here, not on the server; with --nodes also every node's own log",
    )
    .option(
      '--nodes',
      "also fetch each node's audit chain and signed head (GET /v1/nodes/{id}/audit), check them against the node's peer id from the cluster file, and report what the coordinator's log dropped or rewrote",
    )
    .option('--cluster <file>', "the cluster file with the nodes' peer ids (default: the devnet's)")
    .addHelpText(
      'after',
      '\nA node signs the head of its hash chain with its identity key: the coordinator relays the\n' +
        'pages but cannot drop, edit or reorder a record without the check failing. Exit 2 when any\n' +
        'chain is broken or a node acted on a request the coordinator did not record faithfully.\n',
    )
    .action(async (o: { nodes?: boolean; cluster?: string }) => {
      const records = await fetchAudit();
      const r = verifyAuditChain(records);
      if (!o.nodes) {
        print(r, () =>
          r.ok
            ? `audit chain ok: ${r.count} records, head ${records.at(-1)?.hash ?? GENESIS_HASH}\n`
            : `audit chain BROKEN at seq ${r.brokenAt} (${r.count} records verified before it)\n`,
        );
        if (!r.ok) throw new ServerError(`audit chain broken at seq ${r.brokenAt}`);
        return;
      }
      const report = await verifyNodeAudits(client(), records, r, o.cluster);
      print(report, () => report.lines.join('\n') + '\n');
      if (!report.ok) throw new ServerError(report.summary);
    });

  registerGovernance(program, ctx);
  registerRequests(program, ctx);
  registerBackup(program, ctx);
  registerEncryption(program, ctx);
  registerPsbt(program, ctx);
  registerCustody(program, ctx);

  // ---- extension point --------------------------------------------------------------------
  // The `devnet` command group is registered here by scripts/devnet.ts (the lead's module):
  //   const program = buildProgram(); registerDevnet(program); await runProgram(program, argv);
  // ------------------------------------------------------------------------------------------
  return program;
}

/** Parses and runs; resolves with the exit code (0 ok, 1 usage, 2 server). Never throws. */
export async function runProgram(program: Command, argv: readonly string[], io: Io = stdio): Promise<number> {
  try {
    await program.parseAsync([...argv], { from: 'user' });
    return typeof process.exitCode === 'number' ? process.exitCode : EXIT_OK;
  } catch (e) {
    if (e instanceof CommanderError) {
      return e.code === 'commander.helpDisplayed' ||
        e.code === 'commander.version' ||
        e.code === 'commander.help'
        ? EXIT_OK
        : EXIT_USAGE;
    }
    if (e instanceof UsageError) {
      io.err(`kms: ${e.message}\n`);
      return EXIT_USAGE;
    }
    if (e instanceof ServerError) {
      const json = program.opts<GlobalOpts>().json === true;
      if (json && e.problem) io.err(`${JSON.stringify(e.problem)}\n`);
      else io.err(`kms: error: ${e.message}\n`);
      const culprits = e.problem?.culprits;
      if (!json && Array.isArray(culprits)) {
        for (const c of culprits)
          io.err(`  culprit: ${c.participant} (${c.reason}${c.round ? `, round ${c.round}` : ''})\n`);
      }
      return EXIT_SERVER;
    }
    io.err(`kms: ${(e as Error).message}\n`);
    return EXIT_USAGE;
  }
}

/** Run when executed directly, also through a symlinked bin (npx kms) whose argv[1] is the link. */
function isMain(): boolean {
  const arg = process.argv[1];
  if (arg === undefined) return false;
  try {
    return import.meta.url === pathToFileURL(realpathSync(arg)).href;
  } catch {
    return false;
  }
}

if (isMain()) {
  const { registerDevnet } = await import('./devnet-commands.ts');
  const program = buildProgram();
  registerDevnet(program, stdio);
  const code = await runProgram(program, process.argv.slice(2));
  process.exit(code);
}
