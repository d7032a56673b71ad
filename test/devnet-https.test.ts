/**
 * The devnet over HTTPS as a user meets it (real processes, SoftHSM2 tokens): `npm run devnet`
 * writes its CA and API URL into the devnet dir, the CLI finds both there and trusts that CA for
 * that URL by itself, elsewhere it takes `--ca` and otherwise refuses with a hint; `kms nodes`
 * shows each node's readiness from its admin port, whose /metrics answer too.
 */
import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { NODE_BIN, ROOT, nodeAdminUrls } from '../scripts/devnet-lib.ts';
import { type Devnet, createDevnet } from './helpers/devnet-process.ts';

const run = promisify(execFile);

describe('devnet HTTPS and node readiness (real processes)', () => {
  let d: Devnet;
  let elsewhere: string;

  /** `kms` with exactly this environment (no KMS_URL/KMS_TOKEN unless given). */
  const kms = async (args: string[], env: Record<string, string>) => {
    try {
      const r = await run(NODE_BIN, ['scripts/kms.ts', ...args], {
        cwd: ROOT,
        env: { PATH: process.env.PATH ?? '', ...env },
        timeout: 60_000,
      });
      return { code: 0, stdout: r.stdout, stderr: r.stderr };
    } catch (e) {
      const err = e as { code?: number; stdout?: string; stderr?: string };
      return { code: err.code ?? -1, stdout: err.stdout ?? '', stderr: err.stderr ?? '' };
    }
  };

  beforeAll(async () => {
    d = await createDevnet(3);
    await d.start();
    elsewhere = mkdtempSync(join(tmpdir(), 'tkms-not-a-devnet-'));
  }, 180_000);
  afterAll(async () => {
    await d?.cleanup();
    if (elsewhere) rmSync(elsewhere, { recursive: true, force: true });
  });

  it('writes ca.pem and api-url; the CLI uses both (and the token) from the devnet dir alone', async () => {
    expect(readFileSync(join(d.dir, 'api-url'), 'utf8').trim()).toBe(d.url);
    expect(d.url).toMatch(/^https:\/\/127\.0\.0\.1:\d+$/);
    expect(readFileSync(join(d.dir, 'ca.pem'), 'utf8')).toContain('-----BEGIN CERTIFICATE-----');

    const r = await kms(['--json', 'nodes'], { KMS_DEVNET_DIR: d.dir });
    expect(r.code, r.stderr).toBe(0);
    const nodes = JSON.parse(r.stdout).nodes as { id: string; reachable: boolean; ready?: any }[];
    expect(nodes.map((n) => n.id)).toEqual(['node-1', 'node-2', 'node-3']);
    for (const n of nodes) {
      expect(n.reachable).toBe(true);
      expect(n.ready).toMatchObject({ status: 'pass', checks: { sealer: 'pass', store: 'pass' } });
    }
    const human = await kms(['nodes'], { KMS_DEVNET_DIR: d.dir });
    expect(human.stdout).toMatch(/NODE\s+REACHABLE\s+READY/);
    expect(human.stdout).toMatch(/node-1\s+yes\s+yes/);
  });

  it('outside the devnet dir the CA must be named: refused with a hint, accepted with --ca', async () => {
    const token = d.token;
    const bare = await kms(['nodes'], { KMS_DEVNET_DIR: elsewhere, KMS_URL: d.url, KMS_TOKEN: token });
    expect(bare.code).toBe(2);
    expect(bare.stderr).toMatch(/cannot verify the TLS certificate .* --ca FILE or KMS_CA/);
    const named = await kms(['--ca', join(d.dir, 'ca.pem'), 'nodes'], {
      KMS_DEVNET_DIR: elsewhere,
      KMS_URL: d.url,
      KMS_TOKEN: token,
    });
    expect(named.code, named.stderr).toBe(0);
    // Not a devnet here: reachability from the coordinator, no readiness column values.
    expect(named.stdout).toMatch(/node-1\s+yes\s+-/);
    const viaEnv = await kms(['nodes'], {
      KMS_DEVNET_DIR: elsewhere,
      KMS_URL: d.url,
      KMS_TOKEN: token,
      KMS_CA: join(d.dir, 'ca.pem'),
    });
    expect(viaEnv.code, viaEnv.stderr).toBe(0);
  });

  it("a stopped node shows as not ready; every node's admin port serves /metrics", async () => {
    const admins = nodeAdminUrls(d.dir);
    expect([...admins.keys()]).toEqual(['node-1', 'node-2', 'node-3']);
    for (const url of admins.values()) {
      const m = await fetch(`${url}/metrics`);
      expect(m.status).toBe(200);
      expect(await m.text()).toContain('# TYPE kms_node_sessions_total counter');
    }
    const stopped = await kms(['devnet', 'stop', 'node-3'], { KMS_DEVNET_DIR: d.dir });
    expect(stopped.code, stopped.stderr).toBe(0);
    const r = await kms(['nodes'], { KMS_DEVNET_DIR: d.dir });
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/node-3\s+NO\s+NO \(admin\)/);
    expect(r.stdout).toMatch(/node-1\s+yes\s+yes/);
  });
});
