/**
 * docker-compose.yml runs the same topology as the local devnet. This test generates a devnet in
 * the container layout (`scripts/devnet.ts --docker --init-only`, the command the compose `init`
 * service runs) and checks that the compose services, commands, environment, ports and volumes
 * agree with what the devnet generated, and the isolation of review H-5 on the generated files:
 * no node can read the admin token, the admin key or the coordinator's identity; neither the
 * coordinator nor a node can write the allow-list; every process finds the files its config names;
 * containers run as a non-root user. (No Docker engine here; CI runs the file for real under
 * podman: .ci/compose-smoke.sh.)
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, readdirSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { isAbsolute, join, resolve } from 'node:path';
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
      '/devnet/public/ca.pem',
    ]);
    // The container layout keeps the public files (allow-list, genesis, CA) in their own folder.
    const cluster = JSON.parse(readFileSync(join(dir, 'public', 'cluster.json'), 'utf8'));
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

  /** Every file init wrote, as its container path (/devnet/...). */
  const generatedFiles = (): string[] => {
    const walk = (d: string): string[] =>
      readdirSync(d).flatMap((f) => {
        const p = join(d, f);
        return statSync(p).isDirectory() ? walk(p) : [p];
      });
    return walk(dir).map(fromDevnet);
  };
  type Mount = { volume: string; target: string; readOnly: boolean };
  const mountsOf = (svc: string): Mount[] =>
    (compose.services[svc]!.volumes ?? []).map((v) => {
      const [volume, target, mode] = v.split(':');
      return { volume: volume!, target: target!, readOnly: mode === 'ro' };
    });
  /** The volume holding a container path: init's mount with the longest prefix (mounts nest). */
  const volumeOf = (path: string): Mount => {
    const m = mountsOf('init')
      .filter((x) => path === x.target || path.startsWith(`${x.target}/`))
      .sort((a, b) => b.target.length - a.target.length)[0];
    if (!m) throw new Error(`init wrote ${path} outside its volumes: it would be lost`);
    return m;
  };
  /** The mount through which `svc` sees `path` (the same volume at the same place), if any. */
  const seenBy = (svc: string, path: string): Mount | undefined => {
    const v = volumeOf(path);
    return mountsOf(svc).find((m) => m.volume === v.volume && m.target === v.target);
  };
  const nodeServices = () => Object.keys(compose.services).filter((s) => s.startsWith('node-'));

  it('no node can read the admin token, the admin key, the coordinator identity or another node', () => {
    const files = generatedFiles();
    const procs = JSON.parse(readFileSync(join(dir, 'processes.json'), 'utf8')) as {
      name: string;
      env: Record<string, string>;
    }[];
    const coordCfg = JSON.parse(readFileSync(join(dir, 'coordinator', 'coordinator.json'), 'utf8'));
    const tokenFile = fromDevnet(procs.find((p) => p.name === 'coordinator')!.env.KMS_ADMIN_TOKEN_FILE!);
    const secrets = [
      tokenFile,
      '/devnet/admin-key',
      fromDevnet(coordCfg.cluster.identityFile),
      fromDevnet(coordCfg.cluster.identityPassphraseFile),
      fromDevnet(coordCfg.tls.keyFile),
    ];
    for (const s of secrets) expect(files, s).toContain(s);
    for (const svc of nodeServices()) {
      for (const s of secrets) expect(seenBy(svc, s), `${svc} reads ${s}`).toBeUndefined();
      // Nothing of the coordinator's or another node's folder at all.
      for (const f of files.filter((f) => f.startsWith('/devnet/coordinator/'))) {
        expect(seenBy(svc, f), `${svc} reads ${f}`).toBeUndefined();
      }
      for (const f of files.filter(
        (f) => /^\/devnet\/node-\d+\//.test(f) && !f.startsWith(`/devnet/${svc}/`),
      )) {
        expect(seenBy(svc, f), `${svc} reads ${f}`).toBeUndefined();
      }
    }
    // The admin principal's key is init's alone: not even the coordinator holds it.
    expect(seenBy('coordinator', '/devnet/admin-key')).toBeUndefined();
    for (const s of secrets.filter((x) => x !== '/devnet/admin-key'))
      expect(seenBy('coordinator', s)).toBeDefined();
  });

  it('neither the coordinator nor a node can write the allow-list or the governance genesis', () => {
    const coordCfg = JSON.parse(readFileSync(join(dir, 'coordinator', 'coordinator.json'), 'utf8'));
    const cluster = fromDevnet(coordCfg.cluster.clusterFile);
    const genesis = fromDevnet(coordCfg.governance.genesisFile);
    for (const svc of ['coordinator', ...nodeServices()]) {
      for (const f of [cluster, genesis]) {
        const m = seenBy(svc, f);
        expect(m, `${svc} reads ${f}`).toBeDefined();
        expect(m!.readOnly, `${svc} can write ${f}`).toBe(true);
      }
    }
  });

  it('each process finds every file its config names in the volumes it mounts', () => {
    const resolveIn = (base: string, p: string) => (isAbsolute(p) ? p : resolve(base, p));
    for (const svc of nodeServices()) {
      const cfg = JSON.parse(readFileSync(join(dir, svc, 'node.json'), 'utf8'));
      const base = join(dir, svc);
      const needed = [join(base, 'node.json'), resolveIn(base, cfg.cluster)];
      if (cfg.sealer.pinFile) needed.push(resolveIn(base, cfg.sealer.pinFile));
      if (cfg.sealer.passphraseFile) needed.push(resolveIn(base, cfg.sealer.passphraseFile));
      for (const f of needed) expect(seenBy(svc, fromDevnet(f)), `${svc} needs ${f}`).toBeDefined();
      expect(cfg.genesisHash).toMatch(/^[0-9a-f]{64}$/);
    }
    const c = JSON.parse(readFileSync(join(dir, 'coordinator', 'coordinator.json'), 'utf8'));
    for (const f of [
      c.tls.certFile,
      c.tls.keyFile,
      c.cluster.clusterFile,
      c.cluster.identityFile,
      c.cluster.identityPassphraseFile,
      c.governance.genesisFile,
    ]) {
      const m = seenBy('coordinator', fromDevnet(f));
      expect(m, `coordinator needs ${f}`).toBeDefined();
    }
    // Its database and its sealed identity are written at run time: its own volume, writable.
    expect(seenBy('coordinator', fromDevnet(join(c.dataDir, 'x')))?.readOnly).toBe(false);
    const health = compose.services.coordinator!.healthcheck!.test!.at(-1)!;
    expect(generatedFiles()).toContain(health);
    expect(seenBy('coordinator', health)).toBeDefined();
  });

  it('runs every container as a non-root user that owns the volume mount points', () => {
    const dockerfile = readFileSync(join(ROOT, 'Dockerfile'), 'utf8');
    const lines = dockerfile.split('\n');
    const user = lines.filter((l) => /^USER\s/.test(l)).at(-1);
    expect(user, 'the Dockerfile sets USER').toBeDefined();
    const uid = user!.replace(/^USER\s+/, '').split(':')[0]!;
    expect(['0', 'root']).not.toContain(uid);
    // USER comes after the last RUN: nothing after it switches back.
    expect(lines.findLastIndex((l) => /^RUN\s/.test(l))).toBeLessThan(lines.indexOf(user!));
    const run = dockerfile.replaceAll('\\\n', ' ');
    const made = (/mkdir -p ([^&]*)&&/.exec(run)?.[1] ?? '').trim().split(/\s+/);
    expect(run).toMatch(new RegExp(`chown -R ${uid}(:\\d+)? /devnet(\\s|$)`));
    for (const [name, svc] of Object.entries(compose.services)) {
      expect((svc as { user?: string }).user, `${name} overrides the user`).toBeUndefined();
      for (const m of mountsOf(name)) {
        // A fresh named volume takes the owner of its mount point in the image.
        expect(m.target === '/devnet' || made.includes(m.target), `the image makes ${m.target}`).toBe(true);
      }
    }
  });
});
