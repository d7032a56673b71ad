/**
 * Test fixture: a real cluster in one process — N node daemons and a coordinator-side
 * Libp2pCluster, over real TCP on 127.0.0.1 with Noise and yamux, each node with its own LevelDB
 * data directory and the software sealer (one process can only use one SoftHSM2 config, so the
 * HSM-backed topology runs as separate processes in the end-to-end tests).
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pino from 'pino';
import { Libp2pCluster } from '../../coordinator/cluster-libp2p.ts';
import { loadClusterFile, loadNodeConfig } from '../../node/config.ts';
import { type NodeHandle, initNode, startNode } from '../../node/daemon.ts';
import { generateIdentityKey, peerIdOf } from '../../node/identity.ts';
import { createTransport } from '../../node/transport.ts';

export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.listen(0, '127.0.0.1', () => {
      const a = s.address();
      s.close(() => (a && typeof a === 'object' ? resolve(a.port) : reject(new Error('no port'))));
    });
  });
}

export type TestCluster = {
  dir: string;
  cluster: Libp2pCluster;
  nodes: Map<string, NodeHandle>;
  configPath: (nodeId: string) => string;
  stopNode(id: string): Promise<void>;
  startNode(id: string): Promise<void>;
  close(): Promise<void>;
};

export async function startTestCluster(n: number, opts: { sessionTimeoutMs?: number } = {}): Promise<TestCluster> {
  const dir = mkdtempSync(join(tmpdir(), 'tkms-cluster-'));
  process.env.KMS_PASSPHRASE = 'test passphrase for the software sealer';
  const coordKey = await generateIdentityKey();
  const peers: { id: string; peerId: string; addresses: string[] }[] = [];
  const configs = new Map<string, string>();
  for (let k = 1; k <= n; k++) {
    const id = `node-${k}`;
    const port = await freePort();
    const cfgPath = join(dir, `${id}.json`);
    writeFileSync(
      cfgPath,
      JSON.stringify({
        nodeId: id,
        listen: [`/ip4/127.0.0.1/tcp/${port}`],
        dataDir: join(dir, id),
        cluster: join(dir, 'cluster.json'),
        sealer: { kind: 'software' },
        sessionTimeoutMs: opts.sessionTimeoutMs ?? 20_000,
        logLevel: 'silent',
      }),
    );
    configs.set(id, cfgPath);
    const peerId = await initNode(loadNodeConfig(cfgPath));
    peers.push({ id, peerId, addresses: [`/ip4/127.0.0.1/tcp/${port}/p2p/${peerId}`] });
  }
  writeFileSync(
    join(dir, 'cluster.json'),
    JSON.stringify({ nodes: peers, coordinators: [{ id: 'coordinator', peerId: peerIdOf(coordKey), addresses: [] }] }),
  );
  const nodes = new Map<string, NodeHandle>();
  const logger = pino({ level: 'silent' });
  const start = async (id: string) => {
    nodes.set(id, await startNode(loadNodeConfig(configs.get(id)!), logger));
  };
  for (const p of peers) await start(p.id);
  const transport = await createTransport({
    privateKey: coordKey,
    listen: [],
    allow: loadClusterFile(join(dir, 'cluster.json')).nodes.map((p) => ({ peerId: p.peerId, addresses: p.addresses })),
  });
  const cluster = new Libp2pCluster({ transport, nodes: peers, signTimeoutMs: 3_000, statusTimeoutMs: 1_000 });
  return {
    dir,
    cluster,
    nodes,
    configPath: (id) => configs.get(id)!,
    stopNode: async (id) => {
      await nodes.get(id)?.stop();
      nodes.delete(id);
    },
    startNode: start,
    close: async () => {
      await cluster.close();
      for (const h of nodes.values()) await h.stop();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
