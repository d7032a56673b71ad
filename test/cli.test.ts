/**
 * The `kms` CLI as users run it: a separate Node 24 process (`node scripts/kms.ts ...`) against a
 * live coordinator over three real node daemons (libp2p, SoftHSM2 tokens), checking output and
 * exit codes 0 / 1 / 2.
 */
import { spawn } from 'node:child_process';
import { createPublicKey, verify as cryptoVerify } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { schnorr } from '@noble/curves/secp256k1.js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ADMIN_TOKEN, startTestCoordinator, type TestCoordinator } from './helpers/coordinator.ts';

const ROOT = resolve(import.meta.dirname, '..');
const NODE = join(ROOT, 'node_modules/.bin/node');
let c: TestCoordinator;
let cwd: string;

beforeAll(async () => {
  c = await startTestCoordinator();
  cwd = mkdtempSync(join(tmpdir(), 'kms-cli-')); // no .devnet here: the token comes from env/flags
});
afterAll(async () => {
  await c.stop();
  rmSync(cwd, { recursive: true, force: true });
});

function kms(
  args: string[],
  env: Record<string, string> = {},
): Promise<{ code: number; out: string; err: string }> {
  return new Promise((res, rej) => {
    const p = spawn(NODE, [join(ROOT, 'scripts/kms.ts'), ...args], {
      cwd,
      env: { PATH: process.env.PATH ?? '', KMS_URL: c.url, KMS_TOKEN: ADMIN_TOKEN, ...env },
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
    const forbidden = await kms([
      '--token',
      tok.token,
      'keys',
      'create',
      '--spec',
      'FROST_ED25519',
      '-t',
      '2',
    ]);
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

  it('reads the token from .devnet/admin-token when KMS_TOKEN is unset', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'kms-cli-devnet-'));
    try {
      writeFileSync(join(dir, 'admin-token'), `${ADMIN_TOKEN}\n`);
      const r = await kms(['nodes'], { KMS_TOKEN: '', KMS_DEVNET_DIR: dir });
      expect(r.code, r.err).toBe(0);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
