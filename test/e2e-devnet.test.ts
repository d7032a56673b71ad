import { existsSync, readFileSync, readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { schnorr } from '@noble/curves/secp256k1.js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Pkcs11Sealer } from '../node/sealer-pkcs11.ts';
import { NodeStore } from '../node/store.ts';
import { SEALED_IDENTITY_FORMAT } from '../coordinator/identity-sealer.ts';
import { governanceHash, parseGovernance } from '../policy/governance.ts';
import { type Devnet, createDevnet } from './helpers/devnet-process.ts';
import { opensslVerify as opensslVerifyBytes } from './helpers/independent-verifiers.ts';

const hex = (s: string) => Buffer.from(s, 'utf8').toString('hex');

/** Verifies an Ed25519 signature with OpenSSL, as the README shows. */
const opensslVerify = (pem: string, message: Buffer, signatureHex: string): boolean =>
  opensslVerifyBytes(pem, message, Buffer.from(signatureHex, 'hex'));

describe('devnet end to end (real processes, SoftHSM2)', () => {
  let d: Devnet;
  beforeAll(async () => {
    d = await createDevnet(5);
    await d.start();
  }, 180_000);
  afterAll(async () => {
    await d?.cleanup();
  });

  it('bootstraps the admin principal and the genesis, seals the coordinator identity, prints no token', () => {
    const keyFile = join(d.dir, 'admin-key');
    expect(statSync(keyFile).mode & 0o777).toBe(0o600);
    expect(readFileSync(keyFile, 'utf8')).toContain('-----BEGIN PRIVATE KEY-----');
    const genesis = parseGovernance(JSON.parse(readFileSync(join(d.dir, 'governance-genesis.json'), 'utf8')));
    expect(genesis).toMatchObject({ version: 1, admins: { group: 'admins', quorum: 1 } });
    expect(genesis.principals.map((p) => p.id)).toEqual(['admin']);
    for (let k = 1; k <= 5; k++) {
      const cfg = JSON.parse(readFileSync(join(d.dir, `node-${k}`, 'node.json'), 'utf8'));
      expect(cfg.genesisHash).toBe(governanceHash(genesis));
    }
    const coord = JSON.parse(readFileSync(join(d.dir, 'coordinator', 'coordinator.json'), 'utf8'));
    expect(coord.governance.genesisFile).toBe(join(d.dir, 'governance-genesis.json'));
    expect(JSON.parse(readFileSync(coord.cluster.identityFile, 'utf8')).format).toBe(SEALED_IDENTITY_FORMAT);
    expect(existsSync(join(d.dir, 'coordinator', 'identity.key'))).toBe(false);
    // Review I-1: the ready message says where the token is, never what it is.
    expect(d.token.length).toBeGreaterThan(20);
    expect(d.output).not.toContain(d.token);
    expect(d.output).toContain(join(d.dir, 'admin-token'));
    expect(d.output).toContain(keyFile);
    expect(d.output).toMatch(/genesis policy lets `admin` perform every operation/);
  });

  it('runs the README walkthrough through the API and the CLI', async () => {
    // Ed25519 key through the API.
    const created = await d.api('POST', '/v1/keys', {
      keySpec: 'FROST_ED25519',
      threshold: 3,
      alias: 'e2e-ed',
    });
    expect(created.status).toBe(201);
    const ed = created.body;
    expect(ed).toMatchObject({ keySpec: 'FROST_ED25519', threshold: 3, epoch: 0, state: 'Enabled' });
    expect(ed.participants).toHaveLength(5);

    // BIP340 key through the CLI.
    const btcOut = await d.kms([
      '--json',
      'keys',
      'create',
      '--spec',
      'FROST_SECP256K1_TR',
      '--threshold',
      '2',
      '--alias',
      'e2e-btc',
    ]);
    expect(btcOut.code, btcOut.stderr).toBe(0);
    const btc = JSON.parse(btcOut.stdout);
    expect(btc.publicKey).toHaveLength(64);

    // Sign with both; verify Ed25519 with OpenSSL and BIP340 with noble's schnorr.
    const msg = 'pay 1 BTC to bob';
    const s1 = await d.api('POST', `/v1/keys/${ed.keyId}/sign`, { message: hex(msg) });
    expect(s1.status).toBe(200);
    expect(s1.body.signers).toHaveLength(3);
    const pem = await fetch(`${d.url}/v1/keys/${ed.keyId}/public-key`, {
      headers: { authorization: `Bearer ${d.token}`, accept: 'application/x-pem-file' },
    }).then((r) => r.text());
    expect(pem).toContain('BEGIN PUBLIC KEY');
    expect(opensslVerify(pem, Buffer.from(msg), s1.body.signature)).toBe(true);
    expect(opensslVerify(pem, Buffer.from(`${msg}!`), s1.body.signature)).toBe(false);

    const s2 = await d.kms(['--json', 'keys', 'sign', 'e2e-btc', '--message-hex', hex(msg)]);
    expect(s2.code, s2.stderr).toBe(0);
    const sig2 = JSON.parse(s2.stdout).signature as string;
    expect(
      schnorr.verify(Buffer.from(sig2, 'hex'), Buffer.from(msg), Buffer.from(btc.publicKey, 'hex')),
    ).toBe(true);

    // Reshare the Ed25519 key to threshold 4 with the CLI; same public key, next epoch.
    const rs = await d.kms(['--json', 'keys', 'reshare', 'e2e-ed', '--threshold', '4']);
    expect(rs.code, rs.stderr).toBe(0);
    const reshared = JSON.parse(rs.stdout);
    expect(reshared).toMatchObject({ publicKey: ed.publicKey, threshold: 4, epoch: 1 });
    const s3 = await d.api('POST', `/v1/keys/${ed.keyId}/sign`, { message: hex('after reshare') });
    expect(s3.status).toBe(200);
    expect(s3.body).toMatchObject({ epoch: 1 });
    expect(s3.body.signers).toHaveLength(4);
    expect(opensslVerify(pem, Buffer.from('after reshare'), s3.body.signature)).toBe(true);

    // Stop a node: 4 of 5 still sign; it rejoins with its old state.
    const stop = await d.kms(['devnet', 'stop', 'node-3']);
    expect(stop.code, stop.stderr).toBe(0);
    const s4 = await d.api('POST', `/v1/keys/${ed.keyId}/sign`, { message: hex('node-3 is down') });
    expect(s4.status).toBe(200);
    expect(s4.body.signers).not.toContain('node-3');
    expect(opensslVerify(pem, Buffer.from('node-3 is down'), s4.body.signature)).toBe(true);
    const start = await d.kms(['devnet', 'start', 'node-3']);
    expect(start.code, start.stderr).toBe(0);
    await d.waitReachable(5);
    const status = await d.kms(['--json', 'devnet', 'status']);
    expect(JSON.parse(status.stdout).every((p: { running: boolean }) => p.running)).toBe(true);
    const audit = await d.kms(['audit', 'verify', '--nodes']);
    expect(audit.code, audit.stderr + audit.stdout).toBe(0);
    expect(audit.stdout).toMatch(/^audit ok/m);

    // Restart the whole devnet: the keys created before still sign.
    await d.stopAll();
    await d.start();
    const s5 = await d.api('POST', `/v1/keys/${ed.keyId}/sign`, { message: hex('after restart') });
    expect(s5.status).toBe(200);
    expect(opensslVerify(pem, Buffer.from('after restart'), s5.body.signature)).toBe(true);
    const s6 = await d.kms(['--json', 'keys', 'sign', 'e2e-btc', '--message-hex', hex('after restart')]);
    expect(s6.code, s6.stderr).toBe(0);
    expect(
      schnorr.verify(
        Buffer.from(JSON.parse(s6.stdout).signature, 'hex'),
        Buffer.from('after restart'),
        Buffer.from(btc.publicKey, 'hex'),
      ),
    ).toBe(true);

    // Finally, with every process stopped: no share appears in any node's LevelDB files or in any
    // process log. Unseal node-1's shares through its own SoftHSM2 token to know what to look for.
    await d.stopAll();
    const nodeDir = join(d.dir, 'node-1');
    const cfg = JSON.parse(readFileSync(join(nodeDir, 'node.json'), 'utf8'));
    const store = await NodeStore.open(join(nodeDir, cfg.dataDir));
    const sealer = await Pkcs11Sealer.open({
      library: cfg.sealer.library,
      tokenLabel: cfg.sealer.tokenLabel,
      pin: readFileSync(join(nodeDir, cfg.sealer.pinFile), 'utf8').trim(),
      softhsmConf: cfg.sealer.softhsmConf,
    });
    const shares: Buffer[] = [];
    try {
      for (const k of await store.listKeys()) {
        if (k.activeEpoch === undefined) continue;
        const sealed = await store.getSealedShare(k.keyId, k.activeEpoch);
        const ctx = { scope: `${k.keyId}/${k.activeEpoch}`, nodeId: 'node-1', purpose: 'share' };
        shares.push(Buffer.from(await sealer.unseal(ctx, sealed!)));
      }
    } finally {
      await sealer.close();
      await store.close();
    }
    expect(shares).toHaveLength(2);
    const files = [...filesUnder(join(d.dir, 'logs')), ...filesUnder(join(nodeDir, cfg.dataDir))];
    expect(files.length).toBeGreaterThan(3);
    for (const f of files) {
      const raw = readFileSync(f);
      for (const share of shares) {
        expect(raw.includes(share), `${f} holds a share`).toBe(false);
        expect(raw.includes(Buffer.from(share.toString('hex'))), `${f} holds a share in hex`).toBe(false);
      }
    }
  }, 240_000);
});

function filesUnder(dir: string): string[] {
  return readdirSync(dir).flatMap((f) => {
    const p = join(dir, f);
    return statSync(p).isDirectory() ? filesUnder(p) : [p];
  });
}
