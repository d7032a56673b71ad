/**
 * The `kms` CLI as users run it: a separate Node 24 process (`node scripts/kms.ts ...`) against a
 * real devnet (`scripts/devnet.ts`: a coordinator and three node processes, each node on its own
 * SoftHSM2 token), checking output and exit codes 0 / 1 / 2. The CLI finds the URL, the CA, the
 * bearer token and the admin principal's key in the devnet dir (KMS_DEVNET_DIR) by itself, and
 * signs every request that uses or changes a key, a principal or a policy.
 *
 * Also: an approval flow with three principals made by `kms principals create` and added by a
 * governance change the admin signs (alice signs with a key whose policy needs 2 approvals: pending,
 * bob approves, still pending, carol approves, executed, verified with OpenSSL), and
 * `kms audit verify --nodes`, honest and after a coordinator audit record is deleted.
 */
import { spawn } from 'node:child_process';
import { createPublicKey, verify as cryptoVerify } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { schnorr } from '@noble/curves/secp256k1.js';
import { Level } from 'level';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type TempDevnet, createTempDevnet } from '../scripts/devnet-lib.ts';
import { opensslVerify } from './helpers/independent-verifiers.ts';

const ROOT = resolve(import.meta.dirname, '..');
const NODE = join(ROOT, 'node_modules/.bin/node');
let dn: TempDevnet;
let cwd: string;

beforeAll(async () => {
  dn = await createTempDevnet(3, 'the CLI tests');
  await dn.start();
  cwd = mkdtempSync(join(tmpdir(), 'kms-cli-'));
}, 180_000);
afterAll(async () => {
  await dn?.dispose();
  if (cwd) rmSync(cwd, { recursive: true, force: true });
});

function kms(
  args: string[],
  env: Record<string, string> = {},
): Promise<{ code: number; out: string; err: string }> {
  return new Promise((res, rej) => {
    const p = spawn(NODE, [join(ROOT, 'scripts/kms.ts'), ...args], {
      cwd,
      env: { PATH: process.env.PATH ?? '', ...dn.env, ...env },
    });
    let out = '';
    let err = '';
    p.stdout.on('data', (d) => (out += d));
    p.stderr.on('data', (d) => (err += d));
    p.on('error', rej);
    p.on('close', (code) => res({ code: code ?? -1, out, err }));
  });
}

describe('kms CLI', () => {
  it('--help shows commands and examples (exit 0); unknown command or missing option is exit 1', async () => {
    const h = await kms(['--help']);
    expect(h.code).toBe(0);
    expect(h.out).toContain('keys');
    expect(h.out).toContain('Examples:');
    expect(h.out).toContain('Exit codes');
    const keysHelp = await kms(['keys', '--help']);
    expect(keysHelp.code).toBe(0);
    for (const cmd of [
      'create',
      'list',
      'get',
      'sign',
      'verify',
      'refresh',
      'reshare',
      'repair',
      'disable',
      'enable',
      'delete',
      'cancel-deletion',
    ]) {
      expect(keysHelp.out).toContain(cmd);
    }
    for (const [group, cmds] of [
      ['principals', ['create']],
      ['governance', ['show', 'sign', 'submit']],
      ['requests', ['list', 'show', 'approve']],
    ] as const) {
      const g = await kms([group, '--help']);
      expect(g.code).toBe(0);
      for (const cmd of cmds) expect(g.out).toContain(cmd);
    }
    const pc = await kms(['principals', 'create', '--help']);
    expect(pc.out).toContain('--alg');
    expect(pc.out).toContain('never leaves this machine');
    const av = await kms(['audit', 'verify', '--help']);
    expect(av.out).toContain('--nodes');
    expect(h.out).toContain('--principal-key');
    expect((await kms(['frobnicate'])).code).toBe(1);
    const missing = await kms(['keys', 'create', '--threshold', '2']);
    expect(missing.code).toBe(1);
    expect(missing.err).toContain('--spec');
    const badMsg = await kms(['keys', 'sign', 'x', '--message', 'a', '--message-hex', '00']);
    expect(badMsg.code).toBe(1);
    expect(badMsg.err).toContain('exactly one');
  });

  it('keys create/get/list/sign/verify, human and --json', async () => {
    const created = await kms([
      '--json',
      'keys',
      'create',
      '--spec',
      'FROST_ED25519',
      '--threshold',
      '2',
      '--alias',
      'cli-key',
      '--description',
      'from the cli',
    ]);
    expect(created.code, created.err).toBe(0);
    const k = JSON.parse(created.out);
    expect(k).toMatchObject({ alias: 'cli-key', state: 'Enabled', threshold: 2, keySpec: 'FROST_ED25519' });
    expect(created.err).toMatch(/creating key \(DKG\)/);

    const human = await kms(['keys', 'get', 'cli-key']);
    expect(human.code).toBe(0);
    expect(human.out).toMatch(new RegExp(`keyId\\s+${k.keyId}`));
    expect(human.out).toMatch(/threshold\s+2 of 3/);

    const list = await kms(['keys', 'list']);
    expect(list.out).toMatch(/KEY ID\s+ALIAS/);
    expect(list.out).toContain(k.keyId);

    const sig = await kms(['keys', 'sign', 'cli-key', '--message', 'hello cli']);
    expect(sig.code, sig.err).toBe(0);
    const signature = sig.out.trim();
    expect(signature).toMatch(/^[0-9a-f]{128}$/);
    const pem = await kms(['keys', 'public-key', 'cli-key', '--pem']);
    expect(
      cryptoVerify(null, Buffer.from('hello cli'), createPublicKey(pem.out), Buffer.from(signature, 'hex')),
    ).toBe(true);

    const file = join(cwd, 'msg.bin');
    writeFileSync(file, 'hello cli');
    const v = await kms(['keys', 'verify', 'cli-key', '--file', file, '--signature', signature]);
    expect(v.code).toBe(0);
    expect(v.out.trim()).toBe('valid');
    const bad = await kms([
      '--json',
      'keys',
      'verify',
      'cli-key',
      '--message',
      'other',
      '--signature',
      signature,
    ]);
    expect(JSON.parse(bad.out)).toEqual({ valid: false });
    expect(bad.code).toBe(2);

    const sj = JSON.parse((await kms(['--json', 'keys', 'sign', k.keyId, '--message-hex', ''])).out);
    expect(sj).toMatchObject({ keyId: k.keyId, epoch: 0, excluded: [] });
  });

  it('key events and lifecycle', async () => {
    const k = JSON.parse(
      (
        await kms([
          '--json',
          'keys',
          'create',
          '--spec',
          'FROST_SECP256K1_TR',
          '-t',
          '2',
          '-p',
          'node-1,node-2,node-3',
        ])
      ).out,
    );
    const r = JSON.parse((await kms(['--json', 'keys', 'refresh', k.keyId])).out);
    expect(r).toMatchObject({ epoch: 1, publicKey: k.publicKey });
    // Repair rebuilds node-2's share of the same epoch from t = 2 helpers (docs/api.md).
    const rp = JSON.parse((await kms(['--json', 'keys', 'repair', k.keyId, '--participant', 'node-2'])).out);
    expect(rp).toMatchObject({ epoch: 1, threshold: 2, publicKey: k.publicKey });
    const rs = JSON.parse((await kms(['--json', 'keys', 'reshare', k.keyId, '--threshold', '3'])).out);
    expect(rs).toMatchObject({ epoch: 2, threshold: 3, publicKey: k.publicKey });
    const signed = JSON.parse((await kms(['--json', 'keys', 'sign', k.keyId, '--message', 'all three'])).out);
    expect(signed).toMatchObject({ epoch: 2, signers: ['node-1', 'node-2', 'node-3'] });
    expect(
      schnorr.verify(
        Buffer.from(signed.signature, 'hex'),
        Buffer.from('all three'),
        Buffer.from(k.publicKey, 'hex'),
      ),
    ).toBe(true);
    expect(JSON.parse((await kms(['--json', 'keys', 'disable', k.keyId])).out).state).toBe('Disabled');
    const refused = await kms(['keys', 'sign', k.keyId, '--message', 'x']);
    expect(refused.code).toBe(2);
    expect(refused.err).toContain('InvalidKeyState');
    expect(JSON.parse((await kms(['--json', 'keys', 'enable', k.keyId])).out).state).toBe('Enabled');
    const del = JSON.parse((await kms(['--json', 'keys', 'delete', k.keyId, '--days', '7'])).out);
    expect(del.state).toBe('PendingDeletion');
    expect(del.deletionDate).toBeTruthy();
    expect((await kms(['keys', 'delete', k.keyId, '--days', '3'])).code).toBe(2);
    expect(JSON.parse((await kms(['--json', 'keys', 'cancel-deletion', k.keyId])).out).state).toBe(
      'Disabled',
    );
  });

  it('server errors are exit 2 with the problem code; --json prints the problem', async () => {
    const nf = await kms(['keys', 'get', 'no-such-key']);
    expect(nf.code).toBe(2);
    expect(nf.err).toContain('KeyNotFound');
    const nj = await kms(['--json', 'keys', 'get', 'no-such-key']);
    expect(JSON.parse(nj.err).code).toBe('KeyNotFound');
    // A request signed with a key that is not admin's is refused by the nodes' check of it.
    const other = join(cwd, 'not-admin.key');
    const made = await kms(['--json', 'principals', 'create', 'mallory', '--out', other]);
    expect(made.code, made.err).toBe(0);
    const forged = await kms(['keys', 'create', '--spec', 'FROST_ED25519', '-t', '2'], {
      KMS_PRINCIPAL_KEY: other,
    });
    expect(forged.code).toBe(2);
    expect(forged.err).toMatch(/Unauthorized|signature/);
    const unauth = await kms(['nodes'], { KMS_TOKEN: 'wrong' });
    expect(unauth.code).toBe(2);
    expect(unauth.err).toContain('Unauthorized');
    const down = await kms(['nodes'], { KMS_URL: 'http://127.0.0.1:9' });
    expect(down.code).toBe(2);
    expect(down.err).toContain('cannot reach');
  });

  it('tokens create/list/revoke, nodes, and --token overrides the env', async () => {
    const t = await kms(['--json', 'tokens', 'create', '--role', 'auditor', '--name', 'cli-auditor']);
    expect(t.code).toBe(0);
    const tok = JSON.parse(t.out);
    expect(tok.token).toMatch(/^kms_/);
    const nodes = await kms(['--token', tok.token, 'nodes']);
    expect(nodes.code).toBe(0);
    expect(nodes.out).toMatch(/node-1\s+yes/);
    // Bearer roles still govern the bearer-token routes (keys are the principals' business).
    const forbidden = await kms(['--token', tok.token, 'tokens', 'create', '--role', 'admin', '--name', 'x']);
    expect(forbidden.code).toBe(2);
    expect(forbidden.err).toContain('Forbidden');
    const list = await kms(['tokens', 'list']);
    expect(list.out).toContain(tok.tokenId);
    expect(list.out).not.toContain(tok.token);
    expect((await kms(['tokens', 'revoke', tok.tokenId])).code).toBe(0);
    expect((await kms(['--token', tok.token, 'nodes'])).code).toBe(2);
  });

  it('audit lists records and verifies the chain client-side', async () => {
    const a = await kms(['audit', '--limit', '5']);
    expect(a.code).toBe(0);
    expect(a.out).toMatch(/SEQ\s+TIME\s+TYPE/);
    const j = JSON.parse((await kms(['--json', 'audit', '--limit', '3'])).out);
    expect(j.records.map((r: any) => r.seq)).toEqual([1, 2, 3]);
    const v = await kms(['audit', 'verify']);
    expect(v.code, v.err).toBe(0);
    expect(v.out).toMatch(/audit chain ok: \d+ records/);
    const vj = JSON.parse((await kms(['--json', 'audit', 'verify'])).out);
    expect(vj.ok).toBe(true);
    expect(vj.count).toBeGreaterThan(10);
  });

  it('outside the devnet dir it needs --token, --ca and a principal key, and says so', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'kms-cli-elsewhere-'));
    try {
      const env = { KMS_DEVNET_DIR: dir, KMS_URL: dn.url, KMS_CA: dn.caFile, KMS_TOKEN: dn.token };
      expect((await kms(['nodes'], env)).code).toBe(0);
      const unsigned = await kms(['keys', 'create', '--spec', 'FROST_ED25519', '-t', '2'], env);
      expect(unsigned.code).toBe(1);
      expect(unsigned.err).toContain('--principal-key');
      const signed = await kms(['--json', 'keys', 'create', '--spec', 'FROST_ED25519', '-t', '2'], {
        ...env,
        KMS_PRINCIPAL_KEY: dn.adminKeyFile,
      });
      expect(signed.code, signed.err).toBe(0);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  let approved: { requestId: string; digest: string; keyId: string };

  it('approval flow: alice signs, the policy needs 2 approvals, bob and carol approve', async () => {
    // The key, created by admin (the genesis policy lets it).
    const k = JSON.parse(
      (await kms(['--json', 'keys', 'create', '--spec', 'FROST_ED25519', '-t', '2', '--alias', 'vault'])).out,
    );
    // Three principals, each key pair made here, gathered in one proposal.
    const proposal = join(cwd, 'proposal.json');
    for (const name of ['alice', 'bob', 'carol']) {
      const r = await kms([
        'principals',
        'create',
        name,
        '--out',
        join(cwd, `${name}.key`),
        '--proposal',
        proposal,
      ]);
      expect(r.code, r.err).toBe(0);
      expect(r.out).toContain(`principal ${name}`);
      expect(statSync(join(cwd, `${name}.key`)).mode & 0o777).toBe(0o600);
    }
    // The admins' change on top: an approvers group, and alice's signatures with `vault` need two
    // of them (never alice herself). Edited as a user edits the proposal's document.
    const p = JSON.parse(readFileSync(proposal, 'utf8'));
    expect(p.document.version).toBe(2);
    expect(p.document.principals.map((x: { id: string }) => x.id)).toEqual([
      'admin',
      'alice',
      'bob',
      'carol',
    ]);
    p.document.groups.approvers = ['alice', 'bob', 'carol'];
    p.document.policies.unshift({
      id: 'vault-two-approvals',
      effect: 'allow',
      operations: ['Sign'],
      keys: [k.keyId],
      principals: ['alice'],
      approvals: { group: 'approvers', count: 2 },
    });
    writeFileSync(proposal, JSON.stringify(p, null, 2));
    const unsignedSubmit = await kms(['governance', 'submit', '--in', proposal]);
    expect(unsignedSubmit.code).toBe(1);
    expect(unsignedSubmit.err).toContain('no signatures');
    const signed = await kms(['governance', 'sign', '--in', proposal]);
    expect(signed.code, signed.err).toBe(0);
    expect(signed.out).toContain('as admin');
    const submitted = await kms(['governance', 'submit', '--in', proposal]);
    expect(submitted.code, submitted.err).toBe(0);
    const shown = JSON.parse((await kms(['--json', 'governance', 'show'])).out);
    expect(shown.document.version).toBe(2);
    expect(shown.document.groups.approvers).toEqual(['alice', 'bob', 'carol']);

    const as = (name: string) => ({ KMS_PRINCIPAL: name, KMS_PRINCIPAL_KEY: join(cwd, `${name}.key`) });
    // alice asks: pending, with whom to ask.
    const human = await kms(['keys', 'sign', 'vault', '--message', 'release 100'], as('alice'));
    expect(human.code, human.err).toBe(0);
    expect(human.out).toMatch(/^pending: Sign on key /);
    expect(human.out).toMatch(
      /the policy needs 2 approvals from approvers .*ask bob or carol to run `kms requests approve [^`]+`/,
    );
    const pend = await kms(['--json', 'keys', 'sign', 'vault', '--message', 'release 200'], as('alice'));
    const req = JSON.parse(pend.out);
    expect(req).toMatchObject({ state: 'Pending', operation: 'Sign', keyId: k.keyId, initiator: 'alice' });
    expect(req.requestId).toBeTruthy();
    const list = await kms(['requests', 'list']);
    expect(list.out).toContain(req.requestId);
    const show = await kms(['requests', 'show', req.requestId]);
    expect(show.out).toMatch(/message sha256 [0-9a-f]{64} \(11 bytes\)/);

    const bob = await kms(['--json', 'requests', 'approve', req.requestId], as('bob'));
    expect(bob.code, bob.err).toBe(0);
    expect(JSON.parse(bob.out)).toMatchObject({ state: 'Pending' });
    const bobHuman = await kms(['requests', 'show', req.requestId]);
    expect(bobHuman.out).toMatch(/approvals\s+bob/);
    expect(bobHuman.out).toMatch(/ask carol to run/);

    const carol = await kms(['--json', 'requests', 'approve', req.requestId], as('carol'));
    expect(carol.code, carol.err).toBe(0);
    const done = JSON.parse(carol.out);
    expect(done.state).toBe('Executed');
    const signature = done.result.body.signature as string;
    const pem = (await kms(['keys', 'public-key', 'vault', '--pem'])).out;
    const sig = Buffer.from(signature, 'hex');
    expect(opensslVerify(pem, Buffer.from('release 200'), sig)).toBe(true);
    expect(opensslVerify(pem, Buffer.from('release 201'), sig)).toBe(false);
    // An executed request cannot be approved again.
    const again = await kms(['requests', 'approve', req.requestId], as('bob'));
    expect(again.code).toBe(2);
    expect(again.err).toContain('not Pending');
    approved = { requestId: req.requestId, digest: done.digest, keyId: k.keyId };
  }, 120_000);

  it("audit verify --nodes: every node's signed chain verifies and matches the coordinator's log", async () => {
    const r = await kms(['audit', 'verify', '--nodes']);
    expect(r.code, r.err + r.out).toBe(0);
    for (const n of ['node-1', 'node-2', 'node-3']) expect(r.out).toMatch(new RegExp(`^${n}: chain ok`, 'm'));
    expect(r.out).toMatch(/^audit ok/m);
    const j = JSON.parse((await kms(['--json', 'audit', 'verify', '--nodes'])).out);
    expect(j.ok).toBe(true);
    expect(j.nodes).toHaveLength(3);
    expect(j.findings).toEqual([]);
  });

  it('audit verify --nodes reports the requests whose records the coordinator dropped', async () => {
    expect(approved, 'the approval flow ran first').toBeDefined();
    // With the coordinator stopped, delete its records of alice's approved signing request.
    expect((await kms(['devnet', 'stop', 'coordinator'])).code).toBe(0);
    const db = new Level<string, string>(join(dn.dir, 'coordinator', 'data', 'coordinator-db'));
    const audit = db.sublevel<string, string>('audit', { keyEncoding: 'utf8', valueEncoding: 'utf8' });
    const dropped: string[] = [];
    for await (const [key, value] of audit.iterator()) {
      if (JSON.parse(value).entry.requestDigest === approved.digest) dropped.push(key);
    }
    expect(dropped.length).toBeGreaterThan(0);
    for (const key of dropped) await audit.del(key);
    await db.close();
    expect((await kms(['devnet', 'start', 'coordinator'])).code).toBe(0);
    for (let i = 0; i < 100; i++) {
      const n = await kms(['--json', 'nodes']);
      if (n.code === 0 && JSON.parse(n.out).nodes.every((x: { reachable: boolean }) => x.reachable)) break;
      await new Promise((res) => setTimeout(res, 300));
    }
    const r = await kms(['audit', 'verify', '--nodes']);
    expect(r.code).toBe(2);
    expect(r.out).toMatch(
      new RegExp(
        `^DROPPED: node-\\d record \\d+: Sign on key ${approved.keyId} by alice \\(request digest ${approved.digest}\\)`,
        'm',
      ),
    );
    expect(r.out).toMatch(/^audit FAILED: /m);
    expect(r.err).toContain('missing from or differ in');
    const j = JSON.parse((await kms(['--json', 'audit', 'verify', '--nodes'])).out);
    expect(j.ok).toBe(false);
    expect(
      j.findings.every(
        (f: { kind: string; requestDigest: string }) =>
          f.kind === 'dropped' && f.requestDigest === approved.digest,
      ),
    ).toBe(true);
  }, 120_000);
});
