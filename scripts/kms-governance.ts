/**
 * `kms principals create` and `kms governance show|sign|submit`: changing who may do what.
 *
 * The governance document (policy/governance.ts) is held by the nodes: each accepts a new
 * version only with valid signatures of the admin quorum of the current version. So a change is
 * a proposal file, `{"document": <next version>, "signatures": [...]}`, that travels between
 * admins (each adds a signature with `governance sign`) and is then submitted. A principal's key
 * pair is made locally by `principals create`; its private key never leaves the machine.
 */
import { writeFileSync, readFileSync } from 'node:fs';
import { type Command, Option } from 'commander';
import { generatePrincipal, principalEntry, signGovernance } from '../client/sign-request.ts';
import {
  type Governance,
  type GovernanceSignature,
  governanceHash,
  parseGovernance,
} from '../policy/governance.ts';
import { PRINCIPAL_ALGS, type PrincipalAlg } from '../policy/principal-key.ts';
import { type CliContext, type Client, UsageError, table } from './kms-client.ts';

export type Proposal = { document: Governance; signatures: GovernanceSignature[] };

type GovernanceAnswer = { version: number; hash: string; document: Governance };

/** Reads a proposal file (or a bare document, which starts a proposal with no signatures). */
export function readProposal(file: string): Proposal {
  let raw: unknown;
  try {
    raw = JSON.parse(readFileSync(file, 'utf8'));
  } catch (e) {
    throw new UsageError(
      `${file}: ${(e as NodeJS.ErrnoException).code === 'ENOENT' ? 'no such file' : 'not JSON'}`,
    );
  }
  const o = raw as Partial<Proposal> & { version?: unknown };
  const isBare = o !== null && typeof o === 'object' && 'version' in o;
  const doc = isBare ? raw : o.document;
  let document: Governance;
  try {
    document = parseGovernance(doc);
  } catch (e) {
    throw new UsageError(`${file}: ${(e as Error).message}`);
  }
  const signatures = isBare ? [] : (o.signatures ?? []);
  if (!Array.isArray(signatures)) throw new UsageError(`${file}: signatures must be a list`);
  return { document, signatures };
}

function writeProposal(file: string, p: Proposal): void {
  writeFileSync(file, `${JSON.stringify(p, null, 2)}\n`);
}

/** The current version as the coordinator relays it, its hash checked here. */
async function currentGovernance(c: Client): Promise<GovernanceAnswer> {
  const g = await c.call<GovernanceAnswer>('GET', 'v1/governance');
  const doc = parseGovernance(g.document);
  const hash = governanceHash(doc);
  if (g.hash !== undefined && g.hash !== hash) {
    throw new UsageError(`the governance served has hash ${hash}, not the ${g.hash} it claims`);
  }
  return { version: doc.version, hash, document: doc };
}

/** The next version after `current`, unsigned. */
function nextVersion(current: Governance): Governance {
  return { ...current, version: current.version + 1, previous: governanceHash(current) };
}

function governanceLines(g: GovernanceAnswer): string {
  const d = g.document;
  const groups = Object.entries(d.groups).map(([name, members]) => `${name}: ${members.join(', ')}`);
  return [
    `version      ${d.version}`,
    `hash         ${g.hash}`,
    `previous     ${d.previous ?? '- (genesis)'}`,
    `admins       ${d.admins.quorum} of group ${d.admins.group}`,
    `groups       ${groups.join('; ') || '-'}`,
    '',
    table([['PRINCIPAL', 'ALG', 'PUBLIC KEY'], ...d.principals.map((p) => [p.id, p.alg, p.publicKey])]),
    table([
      ['POLICY', 'EFFECT', 'OPERATIONS', 'KEYS', 'WHO', 'APPROVALS'],
      ...d.policies.map((r) => [
        r.id,
        r.effect,
        r.operations.join(','),
        r.keys.join(','),
        [...(r.principals ?? []), ...(r.groups ?? []).map((x) => `group:${x}`)].join(','),
        r.approvals ? `${r.approvals.count} of ${r.approvals.group}` : '-',
      ]),
    ]),
  ].join('\n');
}

export function registerGovernance(program: Command, ctx: CliContext): void {
  const principals = program
    .command('principals')
    .description('principals: the public keys that sign requests and approvals')
    .exitOverride();
  principals
    .command('create <name>')
    .description('make a key pair here (the private key never leaves this machine) and propose the principal')
    .addOption(new Option('--alg <alg>', 'signature algorithm').choices(PRINCIPAL_ALGS).default('ed25519'))
    .option('--out <file>', 'where to write the private key, PKCS#8 PEM, mode 0600 (default: <name>.key)')
    .option(
      '--proposal <file>',
      'add the principal to this proposal file (made from the current governance when it does not exist); without it the proposal is printed',
    )
    .addHelpText(
      'after',
      '\nThe proposal is the next governance version with the principal added. Put it in groups or\n' +
        'policies by editing the proposal\'s "document", then admins sign it (`kms governance sign\n' +
        '--in FILE`) and one submits it (`kms governance submit --in FILE`): the nodes accept it with\n' +
        "the admin quorum's signatures.\n",
    )
    .action(async (name: string, o: { alg: PrincipalAlg; out?: string; proposal?: string }) => {
      let base: Governance;
      let existing = false;
      if (o.proposal !== undefined) {
        try {
          base = readProposal(o.proposal).document;
          existing = true;
        } catch (e) {
          if (!/no such file/.test((e as Error).message)) throw e;
          base = nextVersion((await currentGovernance(ctx.client())).document);
        }
      } else {
        base = nextVersion((await currentGovernance(ctx.client())).document);
      }
      if (base.principals.some((p) => p.id === name)) {
        throw new UsageError(`principal ${name} already exists in governance version ${base.version}`);
      }
      const made = generatePrincipal(name, o.alg);
      const entry = principalEntry(made.signer);
      let document: Governance;
      try {
        document = parseGovernance({ ...base, principals: [...base.principals, entry] });
      } catch (e) {
        throw new UsageError((e as Error).message);
      }
      const keyFile = o.out ?? `${name}.key`;
      try {
        // 'wx': never overwrite a key file (it may be someone's only copy).
        writeFileSync(keyFile, made.privateKeyPem, { mode: 0o600, flag: 'wx' });
      } catch (e) {
        throw new UsageError(
          (e as NodeJS.ErrnoException).code === 'EEXIST'
            ? `${keyFile} exists: choose another --out`
            : `cannot write ${keyFile}: ${(e as Error).message}`,
        );
      }
      // Signatures are over the document's hash: a changed document starts unsigned.
      const proposal: Proposal = { document, signatures: [] };
      if (o.proposal !== undefined) writeProposal(o.proposal, proposal);
      const hash = governanceHash(document);
      ctx.print({ principal: entry, keyFile, proposal, hash }, () =>
        o.proposal === undefined
          ? `${JSON.stringify(proposal, null, 2)}\n`
          : [
              `principal ${name} (${entry.alg}), private key in ${keyFile} (mode 0600; it never leaves this machine)`,
              `${existing ? 'added to' : 'proposed in'} ${o.proposal}: governance version ${document.version}, hash ${hash}`,
              `next: admins run \`kms governance sign --in ${o.proposal}\`, then \`kms governance submit --in ${o.proposal}\``,
              '',
            ].join('\n'),
      );
    });

  const governance = program
    .command('governance')
    .description('the governance document held by the nodes: show it, sign and submit a new version')
    .addHelpText(
      'after',
      '\nExamples:\n  $ npx kms governance show\n  $ npx kms governance sign --in proposal.json\n' +
        '  $ npx kms governance submit --in proposal.json\n',
    )
    .exitOverride();
  governance
    .command('show')
    .description('the current version: principals, groups, admin quorum, policies')
    .action(async () => {
      const g = await currentGovernance(ctx.client());
      ctx.print(g, () => governanceLines(g));
    });
  governance
    .command('sign')
    .description("add this principal's signature (an admin's approval) to a proposal")
    .requiredOption('--in <file>', 'the proposal (or a bare governance document)')
    .option('--out <file>', 'where to write the signed proposal (default: --in)')
    .action((o: { in: string; out?: string }) => {
      const p = readProposal(o.in);
      const signer = ctx.client().signer();
      const sig = signGovernance(p.document, signer);
      const signatures = [...p.signatures.filter((s) => s.principal !== signer.id), sig];
      const out = o.out ?? o.in;
      writeProposal(out, { document: p.document, signatures });
      const hash = governanceHash(p.document);
      ctx.print({ hash, version: p.document.version, signatures }, () =>
        [
          `signed governance version ${p.document.version} (hash ${hash}) as ${signer.id}`,
          `${signatures.length} signature(s): ${signatures.map((s) => s.principal).join(', ')} -> ${out}`,
          '',
        ].join('\n'),
      );
    });
  governance
    .command('submit')
    .description('send a signed proposal; every node checks the admin quorum before accepting it')
    .requiredOption('--in <file>', 'the signed proposal')
    .action(async (o: { in: string }) => {
      const p = readProposal(o.in);
      if (p.signatures.length === 0) {
        throw new UsageError(`${o.in} has no signatures: admins sign it first (\`kms governance sign\`)`);
      }
      const r = await ctx
        .client()
        .call('POST', 'v1/governance', { document: p.document, signatures: p.signatures }, { signed: true });
      const hash = governanceHash(p.document);
      ctx.print(r ?? { version: p.document.version, hash }, () => {
        return `governance version ${p.document.version} (hash ${hash}) accepted\n`;
      });
    });
}
