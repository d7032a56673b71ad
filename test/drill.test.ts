/**
 * The backup drill of issue 16 on real processes (two devnets: coordinator + 5 node processes each,
 * SoftHSM2 tokens, libp2p), driven through the `kms` CLI as an operator would (docs/howto-backup.md):
 * - a 3-of-5 Ed25519 key and a 3-of-5 BIP340 (FROST_SECP256K1_TR) key on devnet A;
 * - three officers made offline (`kms recovery keygen`), each key backed up to them, 2 of 3;
 *   `backup verify` (anyone) and `backup verify --officer` (the officer's own check);
 * - the data of 3 nodes destroyed (stopped, data dir and HSM token deleted): A cannot sign;
 * - restore with 2 officers into devnet B, five fresh nodes with new identities; both keys sign on
 *   B and the signatures verify with OpenSSL and libsecp256k1 against the ORIGINAL public keys;
 * - a tampered bundle fails `verify` naming the part; a wrong or missing officer key, a wrong
 *   passphrase and too few officers are refused with a clear error before anything is sent;
 * - an imported Ed25519 seed and an imported secp256k1 internal key sign on B under the public
 *   keys derived from the secrets by independent libraries.
 */
import { randomBytes } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ed25519 } from '@noble/curves/ed25519.js';
import { schnorr } from '@noble/curves/secp256k1.js';
import { p2tr } from '@scure/btc-signer';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { decodeBundle, encodeBundle } from '../protocol/officer-backup.ts';
import { type Devnet, createDevnet } from './helpers/devnet-process.ts';
import { bip340VerifyLibsecp256k1, edwardsPem, opensslVerify } from './helpers/independent-verifiers.ts';

const hex = (s: string) => Buffer.from(s, 'utf8').toString('hex');

/** Runs `kms` and parses its --json output, failing with its stderr. */
async function json(d: Devnet, args: string[]): Promise<any> {
  const r = await d.kms(['--json', ...args]);
  expect(r.code, `kms ${args.join(' ')}: ${r.stderr}`).toBe(0);
  return JSON.parse(r.stdout);
}

describe('backup drill: 3-of-5 keys to 2-of-3 officers, restored into a new cluster (real processes)', () => {
  const work = mkdtempSync(join(tmpdir(), 'tkms-drill-'));
  const f = (name: string) => join(work, name);
  let a: Devnet;
  let b: Devnet | undefined;
  const keys: Record<'ed' | 'tr', { keyId: string; publicKey: string }> = {} as any;

  beforeAll(async () => {
    a = await createDevnet(5);
    await a.start();
  }, 240_000);
  afterAll(async () => {
    await a?.cleanup();
    await b?.cleanup();
    rmSync(work, { recursive: true, force: true });
  });

  it('backs up, loses three nodes, restores with two officers into five fresh nodes, and signs', async () => {
    // Officers, offline: key pairs with passphrase-encrypted private key files.
    const officers = [];
    for (const k of [1, 2, 3, 4]) {
      writeFileSync(f(`pass-${k}`), `passphrase of officer ${k}\n`);
      const o = await json(a, [
        'recovery',
        'keygen',
        '--name',
        `officer-${k}`,
        '--out',
        f(`officer-${k}.key`),
        '--passphrase-file',
        f(`pass-${k}`),
        '--kdf',
        'interactive',
      ]);
      expect(o).toMatchObject({ name: `officer-${k}`, publicKey: expect.stringMatching(/^[0-9a-f]{64}$/) });
      officers.push(o);
    }
    // officer-4 is made but left out of the set: the wrong officer below.
    writeFileSync(f('officers.json'), JSON.stringify(officers.slice(0, 3)));

    for (const [name, spec] of [
      ['ed', 'FROST_ED25519'],
      ['tr', 'FROST_SECP256K1_TR'],
    ] as const) {
      const k = await json(a, [
        'keys',
        'create',
        '--spec',
        spec,
        '--threshold',
        '3',
        '--alias',
        `drill-${name}`,
      ]);
      keys[name] = { keyId: k.keyId, publicKey: k.publicKey };
      const backup = await json(a, [
        'backup',
        'create',
        k.keyId,
        '--officers',
        f('officers.json'),
        '--threshold',
        '2',
        '--out',
        f(`${name}.backup`),
      ]);
      expect(backup).toMatchObject({
        keyId: k.keyId,
        epoch: 0,
        threshold: 2,
        officers: ['officer-1', 'officer-2', 'officer-3'],
      });
      // Anyone: structure, dealer signatures, commitments open to the public key the API serves.
      const v = await json(a, ['backup', 'verify', f(`${name}.backup`), '--public-key', k.publicKey]);
      expect(v).toMatchObject({ ok: true, keyId: k.keyId, keySpec: spec, threshold: 2 });
      expect(v.dealers).toHaveLength(3);
      // Each officer: its own sealed share opens and lies on the commitments; a signed confirmation.
      const mine = await json(a, [
        'backup',
        'verify',
        f(`${name}.backup`),
        '--officer',
        f('officer-2.key'),
        '--passphrase-file',
        f('pass-2'),
      ]);
      expect(mine.confirmation).toMatchObject({
        officer: 2,
        name: 'officer-2',
        R: expect.any(String),
        z: expect.any(String),
      });
      // Anyone checks the officer's published confirmation against the backup; a forged one fails.
      writeFileSync(f(`${name}-officer-2.json`), JSON.stringify(mine.confirmation));
      const checked = await json(a, [
        'backup',
        'verify',
        f(`${name}.backup`),
        '--confirmation',
        f(`${name}-officer-2.json`),
      ]);
      expect(checked.confirmed).toEqual(['officer-2']);
      const z = mine.confirmation.z as string;
      const forged = { ...mine.confirmation, z: `${z.slice(0, -2)}${z.endsWith('00') ? '01' : '00'}` };
      writeFileSync(f(`${name}-forged.json`), JSON.stringify(forged));
      const bad = await a.kms([
        'backup',
        'verify',
        f(`${name}.backup`),
        '--confirmation',
        f(`${name}-forged.json`),
      ]);
      expect(bad.code).toBe(1);
      expect(bad.stderr).toContain('not a valid confirmation');
    }

    // The data of three nodes is destroyed: below the threshold, the cluster cannot sign.
    for (const n of ['node-1', 'node-2', 'node-3']) {
      const stop = await a.kms(['devnet', 'stop', n]);
      expect(stop.code, stop.stderr).toBe(0);
      rmSync(join(a.dir, n, 'data'), { recursive: true, force: true });
      rmSync(join(a.dir, n, 'softhsm'), { recursive: true, force: true });
    }
    const lost = await a.kms(['keys', 'sign', keys.ed.keyId, '--message-hex', hex('no quorum')]);
    expect(lost.code).toBe(2);
    await a.stopAll();

    // A new cluster: five fresh nodes with new identities (its own cluster file, CA and admin).
    b = await createDevnet(5);
    await b.start();
    const oldCluster = readFileSync(join(a.dir, 'cluster.json'), 'utf8');
    const newCluster = JSON.parse(readFileSync(join(b.dir, 'cluster.json'), 'utf8'));
    for (const n of newCluster.nodes) expect(oldCluster).not.toContain(n.peerId);

    const to = 'node-1,node-2,node-3,node-4,node-5';
    for (const name of ['ed', 'tr'] as const) {
      const r = await json(b, [
        'restore',
        f(`${name}.backup`),
        '--officer',
        f('officer-1.key'),
        f('officer-3.key'),
        '--passphrase-file',
        f('pass-1'),
        f('pass-3'),
        '--to',
        to,
      ]);
      expect(r).toMatchObject({
        keyId: keys[name].keyId,
        publicKey: keys[name].publicKey,
        epoch: 1,
        threshold: 3,
        state: 'Enabled',
        // The key's metadata comes back with it from the bundle.
        alias: `drill-${name}`,
        origin: 'THRESHOLD_DKG',
      });
    }

    // Both keys sign on the new cluster, verified against the ORIGINAL public keys.
    const msg = 'signed after the restore';
    const sEd = await json(b, ['keys', 'sign', keys.ed.keyId, '--message-hex', hex(msg)]);
    const pem = edwardsPem('FROST_ED25519', Buffer.from(keys.ed.publicKey, 'hex'));
    expect(opensslVerify(pem, Buffer.from(msg), Buffer.from(sEd.signature, 'hex'))).toBe(true);
    expect(opensslVerify(pem, Buffer.from(`${msg}!`), Buffer.from(sEd.signature, 'hex'))).toBe(false);
    const sTr = await json(b, ['keys', 'sign', keys.tr.keyId, '--message-hex', hex(msg)]);
    expect(
      bip340VerifyLibsecp256k1(
        Buffer.from(keys.tr.publicKey, 'hex'),
        Buffer.from(msg),
        Buffer.from(sTr.signature, 'hex'),
      ),
    ).toBe(true);
  }, 600_000);

  it('refuses a tampered bundle naming the part, and wrong, missing or too few officers before sending anything', async () => {
    expect(b, 'needs the drill above').toBeDefined();
    const bundle = readFileSync(f('ed.backup'));
    // A commitment changed: its dealer's proof and every signature fail, named.
    const t = decodeBundle(new Uint8Array(bundle));
    const d0 = t.body.dealings[0]!;
    const swapped = {
      ...t,
      body: {
        ...t.body,
        dealings: [
          { ...d0, commitments: [d0.commitments[1]!, d0.commitments[0]!] },
          ...t.body.dealings.slice(1),
        ],
      },
    };
    writeFileSync(f('tampered.backup'), encodeBundle(swapped));
    const v = await b!.kms(['backup', 'verify', f('tampered.backup')]);
    expect(v.code).toBe(1);
    expect(v.stderr).toContain(`dealings[${d0.dealer}].commitments[0]`);
    expect(v.stderr).toContain(`dealings[${d0.dealer}].proof`);
    // A byte flipped in the file: a clear decode error or a named part, never a crash.
    const flipped = Buffer.from(bundle);
    flipped[flipped.length - 5]! ^= 0x01;
    writeFileSync(f('flipped.backup'), flipped);
    const vf = await b!.kms(['backup', 'verify', f('flipped.backup')]);
    expect(vf.code).toBe(1);
    expect(vf.stderr).toMatch(/signature|proof|canonical|does not verify/);

    // Nothing may reach a server in these: the URL points nowhere, so a send would exit 2.
    const offline = ['--url', 'https://127.0.0.1:9'];
    const restore = (extra: string[]) =>
      b!.kms([...offline, 'restore', f('ed.backup'), ...extra, '--to', 'node-1,node-2,node-3']);
    const few = await restore(['--officer', f('officer-1.key'), '--passphrase-file', f('pass-1')]);
    expect(few.code).toBe(1);
    expect(few.stderr).toContain('this backup needs 2 officers, 1 given: nothing was sent');
    const wrong = await restore([
      '--officer',
      f('officer-1.key'),
      f('officer-4.key'),
      '--passphrase-file',
      f('pass-1'),
      f('pass-4'),
    ]);
    expect(wrong.code).toBe(1);
    expect(wrong.stderr).toContain("officer officer-4's key is not one of this backup's officers");
    const missing = await restore([
      '--officer',
      f('officer-1.key'),
      f('nope.key'),
      '--passphrase-file',
      f('pass-1'),
      f('pass-2'),
    ]);
    expect(missing.code).toBe(1);
    expect(missing.stderr).toContain('nope.key: no such file');
    const badPass = await restore([
      '--officer',
      f('officer-1.key'),
      f('officer-2.key'),
      '--passphrase-file',
      f('pass-1'),
      f('pass-3'),
    ]);
    expect(badPass.code).toBe(1);
    expect(badPass.stderr).toContain('wrong passphrase for officer key officer-2');
  }, 120_000);

  it('imports an Ed25519 seed and a secp256k1 internal key: each signs under the key derived from its secret', async () => {
    expect(b, 'needs the drill above').toBeDefined();
    const seed = new Uint8Array(randomBytes(32));
    writeFileSync(f('ed.seed'), seed);
    const ed = await json(b!, [
      'keys',
      'import',
      '--spec',
      'FROST_ED25519',
      '--secret-file',
      f('ed.seed'),
      '-t',
      '3',
      '--alias',
      'imported-ed',
    ]);
    expect(ed).toMatchObject({
      origin: 'IMPORTED',
      epoch: 0,
      threshold: 3,
      publicKey: Buffer.from(ed25519.getPublicKey(seed)).toString('hex'),
    });
    const s = await json(b!, ['keys', 'sign', ed.keyId, '--message-hex', hex('imported')]);
    expect(
      opensslVerify(
        edwardsPem('FROST_ED25519', ed25519.getPublicKey(seed)),
        Buffer.from('imported'),
        Buffer.from(s.signature, 'hex'),
      ),
    ).toBe(true);

    const d = new Uint8Array(randomBytes(32));
    writeFileSync(f('tr.key'), Buffer.from(d).toString('hex'));
    const noFlag = await b!.kms([
      'keys',
      'import',
      '--spec',
      'FROST_SECP256K1_TR',
      '--secret-file',
      f('tr.key'),
      '-t',
      '3',
    ]);
    expect(noFlag.code).toBe(1);
    expect(noFlag.stderr).toContain('--taproot-internal');
    const tr = await json(b!, [
      'keys',
      'import',
      '--spec',
      'FROST_SECP256K1_TR',
      '--secret-file',
      f('tr.key'),
      '-t',
      '3',
      '--taproot-internal',
    ]);
    // The BIP341 key-path output key of the internal key, as a Bitcoin library derives it.
    const output = p2tr(schnorr.getPublicKey(d)).tweakedPubkey;
    expect(tr).toMatchObject({ origin: 'IMPORTED', publicKey: Buffer.from(output).toString('hex') });
    const st = await json(b!, ['keys', 'sign', tr.keyId, '--message-hex', hex('imported tr')]);
    expect(
      bip340VerifyLibsecp256k1(output, Buffer.from('imported tr'), Buffer.from(st.signature, 'hex')),
    ).toBe(true);
    expect(existsSync(f('tr.key'))).toBe(true);
  }, 120_000);
});
