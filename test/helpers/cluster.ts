/**
 * Test fixture: a real cluster in one process — N node daemons and a coordinator-side
 * Libp2pCluster, over real TCP on 127.0.0.1 with Noise and yamux, each node with its own LevelDB
 * data directory and either the software sealer or its own SoftHSM2 token (`sealer: 'pkcs11'`:
 * one token per node, all in one token directory, since one process uses one SoftHSM2 config).
 *
 * The nodes decide (issue 12): they require client-signed requests. Unless the caller brings its
 * own governance (`genesisHash`), the fixture makes two admin principals and a genesis letting
 * them do everything, installs it on every node, and `cluster` signs each operation as `admin`
 * with `admin-2`'s approval (test/helpers/signing-cluster.ts); `unsigned` is the bare cluster.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pino from 'pino';
import { Libp2pCluster } from '../../coordinator/cluster-libp2p.ts';
import { type ClusterPeer, loadClusterFile } from '../../net/cluster-file.ts';
import { loadNodeConfig } from '../../node/config.ts';
import { type NodeHandle, initNode, startNode } from '../../node/daemon.ts';
import { generateIdentityKey, peerIdOf } from '../../net/identity.ts';
import { type Transport, createTransport } from '../../net/transport.ts';
import { freeRange } from '../../scripts/devnet-lib.ts';
import { generatePrincipal, type PrincipalSigner } from '../../client/sign-request.ts';
import { type Governance, governanceHash } from '../../policy/governance.ts';
import { allowAllGenesis, signingCluster } from './signing-cluster.ts';
import { type TestToken, createTestTokens } from './softhsm.ts';

/** A free port outside the ephemeral range (see scripts/devnet-lib.ts freeRange). */
export async function freePort(): Promise<number> {
  return freeRange(1);
}

export type TestCluster = {
  dir: string;
  /** Signs every operation as `admin` with `admin-2`'s approval (the fixture's own governance). */
  cluster: Libp2pCluster;
  /** The same cluster, sending only the `auth` it is given. */
  unsigned: Libp2pCluster;
  /** The fixture's governance (absent when the caller brought its `genesisHash`). */
  governance?: { admin: PrincipalSigner; admin2: PrincipalSigner; genesis: Governance };
  nodes: Map<string, NodeHandle>;
  /** SoftHSM2 tokens by node id (pkcs11 sealer only). */
  tokens: Map<string, TestToken>;
  /** The transport of the fixture's coordinator identity (`coordinator` in cluster.json). */
  coordinatorTransport: Transport;
  configPath: (nodeId: string) => string;
  stopNode(id: string): Promise<void>;
  startNode(id: string): Promise<void>;
  close(): Promise<void>;
};

export async function startTestCluster(
  n: number,
  opts: {
    sessionTimeoutMs?: number;
    sealer?: 'software' | 'pkcs11';
    /** More coordinator identities on every node's allow-list (beside this fixture's own). */
    coordinators?: readonly ClusterPeer[];
    /**
     * The governance genesis hash every node accepts (node config `genesisHash`), for a caller that
     * installs its own genesis. Without it the fixture makes and installs one (above).
     */
    genesisHash?: string;
    /** Test-only wall clock of every node (signed-request expiry, deletion windows): StartNodeOptions.clock. */
    clock?: () => number;
    /** Fault injection on node-to-node session messages (see StartNodeOptions.linkFault). */
    linkFault?: (
      from: string,
      to: string,
      frame: Uint8Array,
      deliver: (frame: Uint8Array) => Promise<void>,
    ) => Promise<void>;
  } = {},
): Promise<TestCluster> {
  const dir = mkdtempSync(join(tmpdir(), 'tkms-cluster-'));
  process.env.KMS_PASSPHRASE = 'test passphrase for the software sealer';
  const tokens = new Map<string, TestToken>();
  if (opts.sealer === 'pkcs11') {
    const ids = Array.from({ length: n }, (_, i) => `node-${i + 1}`);
    const made = await createTestTokens(ids);
    for (const [i, id] of ids.entries()) tokens.set(id, made[i]!);
  }
  const coordKey = await generateIdentityKey();
  let own: TestCluster['governance'];
  if (!opts.genesisHash) {
    const admin = generatePrincipal('admin').signer;
    const admin2 = generatePrincipal('admin-2').signer;
    own = { admin, admin2, genesis: allowAllGenesis([admin, admin2]) };
  }
  const peers: { id: string; peerId: string; addresses: string[] }[] = [];
  const configs = new Map<string, string>();
  for (let k = 1; k <= n; k++) {
    const id = `node-${k}`;
    const port = await freePort();
    const cfgPath = join(dir, `${id}.json`);
    const token = tokens.get(id);
    if (token) writeFileSync(join(dir, `${id}.pin`), token.pin, { mode: 0o600 });
    const sealer = token
      ? {
          kind: 'pkcs11',
          library: token.library,
          tokenLabel: token.label,
          pinFile: join(dir, `${id}.pin`),
          softhsmConf: token.confPath,
        }
      : { kind: 'software' };
    writeFileSync(
      cfgPath,
      JSON.stringify({
        nodeId: id,
        listen: [`/ip4/127.0.0.1/tcp/${port}`],
        dataDir: join(dir, id),
        cluster: join(dir, 'cluster.json'),
        sealer,
        sessionTimeoutMs: opts.sessionTimeoutMs ?? 20_000,
        logLevel: 'silent',
        genesisHash: opts.genesisHash ?? governanceHash(own!.genesis),
      }),
    );
    configs.set(id, cfgPath);
    const peerId = await initNode(loadNodeConfig(cfgPath));
    peers.push({ id, peerId, addresses: [`/ip4/127.0.0.1/tcp/${port}/p2p/${peerId}`] });
  }
  writeFileSync(
    join(dir, 'cluster.json'),
    JSON.stringify({
      nodes: peers,
      coordinators: [
        { id: 'coordinator', peerId: peerIdOf(coordKey), addresses: [] },
        ...(opts.coordinators ?? []),
      ],
    }),
  );
  const nodes = new Map<string, NodeHandle>();
  const logger = pino({ level: 'silent' });
  const start = async (id: string) => {
    const fault = opts.linkFault;
    nodes.set(
      id,
      await startNode(loadNodeConfig(configs.get(id)!), logger, {
        ...(fault ? { linkFault: (to, frame, deliver) => fault(id, to, frame, deliver) } : {}),
        ...(opts.clock ? { clock: opts.clock } : {}),
      }),
    );
  };
  for (const p of peers) await start(p.id);
  const transport = await createTransport({
    privateKey: coordKey,
    listen: [],
    allow: loadClusterFile(join(dir, 'cluster.json')).nodes.map((p) => ({
      peerId: p.peerId,
      addresses: p.addresses,
    })),
  });
  const unsigned = new Libp2pCluster({
    transport,
    nodes: peers,
    signTimeoutMs: 3_000,
    statusTimeoutMs: 1_000,
  });
  let cluster = unsigned;
  if (own) {
    const installed = await unsigned.updateGovernance({ document: own.genesis, signatures: [] });
    const missed = installed.filter((o) => !o.ok);
    if (missed.length > 0)
      throw new Error(`genesis not installed on ${missed.map((o) => o.node).join(', ')}`);
    cluster = signingCluster(unsigned, own.admin, own.admin2, opts.clock ?? Date.now);
  }
  return {
    dir,
    cluster,
    unsigned,
    ...(own ? { governance: own } : {}),
    nodes,
    tokens,
    coordinatorTransport: transport,
    configPath: (id) => configs.get(id)!,
    stopNode: async (id) => {
      await nodes.get(id)?.stop();
      nodes.delete(id);
    },
    startNode: start,
    close: async () => {
      await unsigned.close();
      for (const h of nodes.values()) await h.stop();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
