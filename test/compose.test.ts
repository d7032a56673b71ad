/**
 * docker-compose.yml runs the same topology as the local devnet. This test generates a devnet in
 * the container layout (`scripts/devnet.ts --docker --init-only`, the command the compose `init`
 * service runs) and checks that the compose services, commands, environment, ports and volumes
 * agree with what the devnet generated. (No Docker engine here; CI also runs `docker-compose config`.)
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parse } from 'yaml';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { NODE_BIN, ROOT } from '../scripts/devnet-lib.ts';

type Service = {
  command?: string[];
  healthcheck?: { test?: string[] };
  environment?: Record<string, string>;
  ports?: string[];
  expose?: string[];
  volumes?: string[];
  hostname?: string;
};

describe('docker-compose.yml agrees with the local devnet', () => {
  let dir: string;
  let compose: { services: Record<string, Service>; volumes: Record<string, unknown> };
  const fromDevnet = (p: string) => p.replaceAll(dir, '/devnet');

  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), 'tkms-compose-'));
    compose = parse(readFileSync(join(ROOT, 'docker-compose.yml'), 'utf8'), { merge: true });
    const init = compose.services.init!;
    const args = init.command!.slice(1).map((a) => (a === '/devnet' ? dir : a));
    // The software sealer keeps this quick; the sealer choice is checked separately below.
    execFileSync(NODE_BIN, [...args, '--software'], {
      cwd: ROOT,
      env: { ...process.env, KMS_DEVNET_DIR: dir },
      stdio: 'pipe',
    });
  }, 120_000);
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('has the init, coordinator and one service per devnet node, with the devnet defaults', () => {
    const procs = JSON.parse(readFileSync(join(dir, 'processes.json'), 'utf8')) as { name: string }[];
    const names = procs.map((p) => p.name).sort();
    expect(Object.keys(compose.services).sort()).toEqual(['init', ...names].sort());
    expect(names).toHaveLength(6); // KMS_NODES default 5 + coordinator
    expect(compose.services.init!.environment).toMatchObject({ KMS_NODES: '5', KMS_PORT: '8080' });
  });

  it('starts every process with the command the devnet would use', () => {
    const procs = JSON.parse(readFileSync(join(dir, 'processes.json'), 'utf8')) as {
      name: string;
      args: string[];
    }[];
    for (const p of procs) {
      const svc = compose.services[p.name]!;
      expect(svc.command, p.name).toEqual(['node', ...p.args.map(fromDevnet)]);
    }
  });

  it('publishes the coordinator HTTPS port on 127.0.0.1 only, and exposes the libp2p port the configs listen on', () => {
    const coord = JSON.parse(readFileSync(join(dir, 'coordinator', 'coordinator.json'), 'utf8'));
    expect(coord.port).toBe(8080);
    expect(coord.host).toBe('0.0.0.0');
    // Inside the container it binds every interface, so it must serve TLS (coordinator/config.ts).
    expect(fromDevnet(coord.tls.certFile)).toBe('/devnet/coordinator/tls/server.pem');
    expect(readFileSync(join(dir, 'api-url'), 'utf8').trim()).toBe(`https://127.0.0.1:${coord.port}`);
    // The host side defaults to loopback; KMS_PUBLISH_HOST widens it knowingly.
    expect(compose.services.coordinator!.ports).toContain(
      `\${KMS_PUBLISH_HOST:-127.0.0.1}:${coord.port}:${coord.port}`,
    );
    expect(compose.services.coordinator!.healthcheck?.test).toEqual([
      'CMD',
      'node',
      'scripts/devnet-health.ts',
      `https://127.0.0.1:${coord.port}/readyz`,
      '/devnet/ca.pem',
    ]);
    const cluster = JSON.parse(readFileSync(join(dir, 'cluster.json'), 'utf8'));
    for (const n of cluster.nodes as { id: string; addresses: string[] }[]) {
      const cfg = JSON.parse(readFileSync(join(dir, n.id, 'node.json'), 'utf8'));
      expect(cfg.listen).toEqual(['/ip4/0.0.0.0/tcp/7000']);
      expect(n.addresses[0]).toMatch(new RegExp(`^/dns4/${n.id}/tcp/7000/p2p/`));
      expect(compose.services[n.id]!.expose).toContain('7000');
      expect(compose.services[n.id]!.hostname ?? n.id).toBe(n.id);
      // The health check asks the admin port the node's config serves /readyz on.
      expect(compose.services[n.id]!.healthcheck?.test).toEqual([
        'CMD',
        'node',
        'scripts/devnet-health.ts',
        `http://${cfg.adminListen}/readyz`,
      ]);
    }
  });

  it('gives every node its own data volume and its own SoftHSM2 token config', () => {
    for (let k = 1; k <= 5; k++) {
      const svc = compose.services[`node-${k}`]!;
      expect(svc.volumes).toContain(`node-${k}:/devnet/node-${k}`);
      expect(svc.environment?.SOFTHSM2_CONF).toBe(`/devnet/node-${k}/softhsm/softhsm2.conf`);
      expect(compose.services.init!.volumes).toContain(`node-${k}:/devnet/node-${k}`);
      expect(Object.keys(compose.volumes)).toContain(`node-${k}`);
    }
    // The token config path is where node/softhsm.ts puts it for the devnet layout.
    const nodeDir = join(dir, 'node-1');
    expect(`${fromDevnet(nodeDir)}/softhsm/softhsm2.conf`).toBe(
      compose.services['node-1']!.environment?.SOFTHSM2_CONF,
    );
  });

  it('hands the coordinator the admin token the way the devnet does', () => {
    const procs = JSON.parse(readFileSync(join(dir, 'processes.json'), 'utf8')) as {
      name: string;
      env: Record<string, string>;
    }[];
    const coord = procs.find((p) => p.name === 'coordinator')!;
    expect(fromDevnet(coord.env.KMS_ADMIN_TOKEN_FILE!)).toBe(
      compose.services.coordinator!.environment?.KMS_ADMIN_TOKEN_FILE,
    );
  });
});
