/**
 * Test coordinators: the real coordinator (coordinator/app.ts: fastify on 127.0.0.1:0, LevelDB in a
 * temp dir) over real node daemons (test/helpers/cluster.ts, in this process) and the real
 * Libp2pCluster. `startTestCoordinator` is the default for API, CLI, auth and lifecycle tests:
 * nodes on SoftHSM2 tokens, short session deadlines and a clock the test moves.
 *
 * The nodes decide (issue 12): each fixture makes an `admin` principal (Ed25519) and a governance
 * genesis (by default: admin may do everything, no approvals), configures its hash on every node,
 * and the coordinator installs it at start. `call()` signs the requests that use or change a key
 * (RFC 9421, client/sign-request.ts) as `admin` and sends bearer tokens for everything else.
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pino from 'pino';
import {
  generatePrincipal,
  type PrincipalSigner,
  principalEntry,
  type SignOptions,
  signedInit,
} from '../../client/sign-request.ts';
import { type Governance, governanceHash } from '../../policy/governance.ts';
import { type AuthorizationWire, requestDigest, type SignedRequestWire } from '../../net/signed-request.ts';
import { OPERATIONS } from '../../policy/policy-rule.ts';
import { type RunningCoordinator, startCoordinator } from '../../coordinator/app.ts';
import { Libp2pCluster } from '../../coordinator/cluster-libp2p.ts';
import { parseConfig } from '../../coordinator/config.ts';
import type { Clock } from '../../coordinator/lifecycle.ts';
import type { ClusterPeer } from '../../net/cluster-file.ts';
import { loadNodeConfig } from '../../node/config.ts';
import { type StartNodeOptions, startNode } from '../../node/daemon.ts';
import { generateIdentityKey, peerIdOf } from '../../net/identity.ts';
import { decodeJsonFrame, encodeRpc, MAX_STATUS_PAGE, type RpcRequest } from '../../net/rpc.ts';
import { createTransport, RPC_PROTOCOL, type Transport } from '../../net/transport.ts';
import { startTestCluster, type TestCluster } from './cluster.ts';
import { type ObservedCluster, observeCluster } from './observed-cluster.ts';

export const ADMIN_TOKEN = `test-admin-${'x'.repeat(32)}`;

/**
 * The devnet-style genesis: the admins (group `admins`, quorum 1) and the other principals given,
 * and one policy letting the admins perform every operation on every key with no approvals (a
 * committee change or a lower threshold needs the admin quorum, here 1: the initiating admin).
 * `more` adds groups and policies (placed before the admins' rule, so they match first).
 */
export function adminGenesis(
  admins: readonly PrincipalSigner[],
  more: {
    principals?: PrincipalSigner[];
    groups?: Record<string, string[]>;
    policies?: Governance['policies'];
  } = {},
): Governance {
  return {
    version: 1,
    previous: null,
    principals: [...admins, ...(more.principals ?? [])].map(principalEntry),
    groups: { admins: admins.map((a) => a.id), ...(more.groups ?? {}) },
    admins: { group: 'admins', quorum: 1 },
    policies: [
      ...(more.policies ?? []),
      { id: 'admins-all', effect: 'allow', operations: [...OPERATIONS], keys: ['*'], groups: ['admins'] },
    ],
  };
}

/** Routes that use or change a key, a policy or a request: they need a principal's signature. */
const SIGNED_ROUTE =
  /^\/v1\/(keys|keys\/[^/?]+\/(sign|refresh|reshare|repair|disable|enable|schedule-deletion|cancel-deletion|encrypt|generate-data-key|generate-data-key-without-plaintext)|decrypt|re-encrypt|governance|requests\/[^/?]+\/approvals)(\?.*)?$/;

export function isSignedRoute(method: string, path: string): boolean {
  return method.toUpperCase() === 'POST' && SIGNED_ROUTE.test(path);
}

/** A coordinator over real nodes, with a clock the test moves (`clock.t`, ms since the epoch). */
export type TestCoordinator = ClusterCoordinator & { clock: { t: number; now(): number } };

/**
 * The default test coordinator: `startClusterCoordinator` over `nodes` (default 3) real node
 * daemons, each on its own SoftHSM2 token unless `sealer: 'software'`, with 5 s session deadlines
 * and a manual clock (starts at 2030-01-01) for the deletion window. The background sweeper waits
 * a day between passes, so it never runs during a test: tests call `sweeper.sweep()` themselves.
 * Start one per test file.
 */
export async function startTestCoordinator(
  opts: {
    nodes?: number;
    config?: Record<string, unknown>;
    sealer?: 'software' | 'pkcs11';
    genesis?: (admin: PrincipalSigner, admin2: PrincipalSigner) => Governance;
  } = {},
): Promise<TestCoordinator> {
  const clock = { t: Date.parse('2030-01-01T00:00:00Z'), now: () => clock.t };
  const cc = await startClusterCoordinator(opts.nodes ?? 3, {
    sessionTimeoutMs: 5_000,
    sealer: opts.sealer ?? 'pkcs11',
    clock,
    ...(opts.genesis ? { genesis: opts.genesis } : {}),
    config: { deletionSweepIntervalMs: 24 * 3600 * 1000, ...opts.config },
  });
  return Object.assign(cc, { clock });
}

// ---- the real coordinator over real node daemons -------------------------------------------

export type HttpAnswer = { status: number; headers: Headers; body: any; text: string };

export type CallOptions = {
  /** Bearer token (admin by default when not signing; `null`: none). */
  token?: string | null;
  headers?: Record<string, string>;
  raw?: string;
  /** Sign the request as this principal (RFC 9421); `null`: do not sign. */
  principal?: PrincipalSigner | null;
  /** Signature time, lifetime, nonce. */
  sign?: SignOptions;
  /** Signed key routes: leave an alias in the path as it is (default: resolved to the key id). */
  keepAlias?: boolean;
};

/**
 * fetch against a coordinator URL: signed by `o.principal` when given (then no bearer token unless
 * `o.token` names one), else with a bearer token (admin by default; `null`: none).
 */
export async function httpCall(
  base: string,
  method: string,
  path: string,
  body?: unknown,
  o: CallOptions = {},
): Promise<HttpAnswer> {
  const headers: Record<string, string> = { ...(o.headers ?? {}) };
  const signer = o.principal ?? null;
  const token = o.token === undefined ? (signer ? null : ADMIN_TOKEN) : o.token;
  if (token !== null) headers.authorization = `Bearer ${token}`;
  let payload: string | undefined = o.raw;
  if (body !== undefined) payload = JSON.stringify(body);
  if (payload !== undefined && headers['content-type'] === undefined)
    headers['content-type'] = 'application/json';
  const init = signer
    ? signedInit(method, `${base}${path}`, signer, {
        ...(o.sign ?? {}),
        headers,
        ...(payload === undefined ? {} : { raw: payload }),
      })
    : { method, headers, ...(payload === undefined ? {} : { body: payload }) };
  const res = await fetch(`${base}${path}`, init);
  const text = await res.text();
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    parsed = undefined;
  }
  return { status: res.status, headers: res.headers, body: parsed, text };
}

/** One coordinator -> node RPC seen by the tapping transport (decoded request and answer). */
export type TappedRpc = {
  node: string;
  req: any;
  res?: any;
  err?: unknown;
  /** performance.now() when the request was handed to the transport and when it settled. */
  sentAt: number;
  doneAt: number;
};

export type ClusterCoordinator = RunningCoordinator & {
  tc: TestCluster;
  /** The `admin` principal of the genesis (every operation, no approvals, by default). */
  admin: PrincipalSigner;
  /** A second admin (`admin-2`): approves what the admin-quorum guard asks of another admin. */
  admin2: PrincipalSigner;
  /** The genesis the nodes accept by hash (installed by the coordinator at start). */
  genesis: Governance;
  /** The Libp2pCluster the coordinator drives (over the tapping transport). */
  cluster: Libp2pCluster;
  /** What the coordinator calls: `cluster`, counted (calls per method, sessions at once). */
  observed: ObservedCluster;
  /** The coordinator's data directory (its LevelDB stores). */
  dir: string;
  /** The coordinator's own libp2p identity's transport (a peer on every node's allow-list). */
  transport: Transport;
  peers: ClusterPeer[];
  /** Every RPC the coordinator's cluster sends, while `tap.on` (off by default). */
  tap: { on: boolean; records: TappedRpc[] };
  /**
   * A request to the coordinator: signed as `admin` on the routes that need a signature (unless
   * `opts.principal` or `opts.token` says otherwise; an alias in a signed key path is resolved to
   * the key id first, as the CLI does), with the admin bearer token on the others. Signatures are
   * made on the fixture's clock.
   */
  call(method: string, path: string, body?: unknown, opts?: CallOptions): Promise<HttpAnswer>;
  /**
   * The `auth` a client-signed `method path` with `body` carries to the nodes, exactly as the
   * coordinator forwards it (signed as `principal`, default admin, on the fixture's clock), with
   * signed approvals of it by `approvers`: for driving the nodes directly (c.rpc, c.cluster).
   */
  authFor(
    method: string,
    path: string,
    body?: unknown,
    o?: { principal?: PrincipalSigner; approvers?: PrincipalSigner[]; sign?: SignOptions },
  ): AuthorizationWire;
  /** Sends one RPC straight to a node with the coordinator identity (untapped); decoded answer. */
  rpc(nodeId: string, req: RpcRequest, timeoutMs?: number): Promise<any>;
  /** Restarts a node daemon in this process, optionally with test-only nonce-table bounds. */
  restartNode(nodeId: string, opts?: StartNodeOptions): Promise<void>;
  /** The key's state as each running node reports it (status RPC); undefined where it holds none. */
  keyStates(keyId: string): Promise<Record<string, string | undefined>>;
  stop(): Promise<void>;
};

/**
 * The real coordinator (coordinator/app.ts startCoordinator: fastify on 127.0.0.1:0, LevelDB in a
 * temp dir, bootstrap admin token ADMIN_TOKEN) over startTestCluster's real node daemons. The
 * nodes allow a second coordinator identity, owned by this fixture, so that its transport can be
 * tapped (to see commitments and epochs on the wire) and used for raw RPCs; the Libp2pCluster
 * itself is the unmodified product class (the coordinator reaches it through `observed`, which
 * only counts). `sealer` as in startTestCluster (default: the software sealer).
 */
export async function startClusterCoordinator(
  n: number,
  opts: {
    config?: Record<string, unknown>;
    sessionTimeoutMs?: number;
    sealer?: 'software' | 'pkcs11';
    clock?: Clock;
    /** The genesis (default adminGenesis([admin, admin2])); call() signs as `admin` by default. */
    genesis?: (admin: PrincipalSigner, admin2: PrincipalSigner) => Governance;
  } = {},
): Promise<ClusterCoordinator> {
  const key = await generateIdentityKey();
  const admin = generatePrincipal('admin').signer;
  const admin2 = generatePrincipal('admin-2').signer;
  const genesis = opts.genesis ? opts.genesis(admin, admin2) : adminGenesis([admin, admin2]);
  const nodeClock = opts.clock ? { clock: () => opts.clock!.now() } : {};
  const tc = await startTestCluster(n, {
    coordinators: [{ id: 'coordinator-test', peerId: peerIdOf(key), addresses: [] }],
    genesisHash: governanceHash(genesis),
    ...nodeClock,
    ...(opts.sessionTimeoutMs === undefined ? {} : { sessionTimeoutMs: opts.sessionTimeoutMs }),
    ...(opts.sealer === undefined ? {} : { sealer: opts.sealer }),
  });
  const file = JSON.parse(readFileSync(join(tc.dir, 'cluster.json'), 'utf8')) as {
    nodes: ClusterPeer[];
    coordinators: ClusterPeer[];
  };
  const logger = pino({ level: 'silent' });
  const restartNode = async (id: string, o: StartNodeOptions = {}) => {
    await tc.stopNode(id);
    tc.nodes.set(id, await startNode(loadNodeConfig(tc.configPath(id)), logger, { ...nodeClock, ...o }));
  };
  // The fixture's cluster replaces startTestCluster's (whose identity stays allowed but unused).
  await tc.cluster.close();
  const transport = await createTransport({
    privateKey: key,
    listen: [],
    allow: file.nodes.map((p) => ({ peerId: p.peerId, addresses: p.addresses })),
  });
  const nodeOf = new Map(file.nodes.map((p) => [p.peerId, p.id]));
  const tap: ClusterCoordinator['tap'] = { on: false, records: [] };
  const dec = new TextDecoder();
  const tapped: Transport = {
    ...transport,
    peerId: transport.peerId,
    addresses: () => transport.addresses(),
    setAllowList: (a) => transport.setAllowList(a),
    handle: (p, h) => transport.handle(p, h),
    isReachable: (p, t) => transport.isReachable(p, t),
    stop: () => transport.stop(),
    request: async (peerId, protocol, body, ro) => {
      if (!tap.on || protocol !== RPC_PROTOCOL) return transport.request(peerId, protocol, body, ro);
      const req = JSON.parse(dec.decode(body));
      const node = nodeOf.get(peerId) ?? peerId;
      const sentAt = performance.now();
      // A sign-batch (concurrent sign-one requests to one node, coordinator/node-rpc.ts) is
      // recorded as the sign-one requests it carries, each with its own answer or error.
      const batch: any[] | undefined = req.op === 'sign-batch' ? req.items : undefined;
      const recs: TappedRpc[] = (batch ?? [req]).map((r) => ({
        node,
        req: batch ? { op: 'sign-one', ...r } : r,
        sentAt,
        doneAt: 0,
      }));
      tap.records.push(...recs);
      try {
        const out = await transport.request(peerId, protocol, body, ro);
        const res = JSON.parse(dec.decode(out));
        if (batch) {
          recs.forEach((rec, i) => {
            const r = res.results?.[i];
            if (r && 'ok' in r) rec.res = r.ok;
            else rec.err = r?.error;
          });
        } else recs[0]!.res = res;
        return out;
      } catch (e) {
        for (const rec of recs) rec.err = e;
        throw e;
      } finally {
        for (const rec of recs) rec.doneAt = performance.now();
      }
    },
  };
  const cluster = new Libp2pCluster({
    transport: tapped,
    nodes: file.nodes,
    signTimeoutMs: 5_000,
    statusTimeoutMs: 2_000,
  });
  const dir = mkdtempSync(join(tmpdir(), 'kms-coord-'));
  const genesisFile = join(dir, 'genesis.json');
  writeFileSync(genesisFile, JSON.stringify(genesis));
  const config = parseConfig({
    host: '127.0.0.1',
    port: 0,
    dataDir: dir,
    adminToken: ADMIN_TOKEN,
    logLevel: 'silent',
    governance: { genesisFile },
    ...opts.config,
  });
  const observed = observeCluster(cluster);
  const c = await startCoordinator({
    config,
    cluster: observed,
    ...(opts.clock === undefined ? {} : { clock: opts.clock }),
  });
  const peerOf = new Map(file.nodes.map((p) => [p.id, p.peerId]));
  const rpc = async (nodeId: string, req: RpcRequest, timeoutMs = 5_000) =>
    decodeJsonFrame(
      await transport.request(peerOf.get(nodeId)!, RPC_PROTOCOL, encodeRpc(req), { timeoutMs }),
    ) as any;
  const keyPath = /^\/v1\/keys\/([^/?]+)(\/[a-z-]+(?:\?.*)?)$/;
  const call: ClusterCoordinator['call'] = async (method, path, body, o = {}) => {
    const principal =
      o.principal !== undefined
        ? o.principal
        : o.token === undefined && isSignedRoute(method, path)
          ? admin
          : null;
    if (!principal) return httpCall(c.url, method, path, body, o);
    let p = path;
    const m = keyPath.exec(path);
    if (m && !o.keepAlias && !/^[0-9a-f]{8}-[0-9a-f]{4}-/.test(m[1]!)) {
      // As the CLI does: signed requests name keys by key id.
      const k = await httpCall(c.url, 'GET', `/v1/keys/${m[1]}`);
      if (k.status === 200) p = `/v1/keys/${k.body.keyId}${m[2]}`;
    }
    const sign = opts.clock ? { nowS: Math.floor(opts.clock.now() / 1000), ...(o.sign ?? {}) } : o.sign;
    return httpCall(c.url, method, p, body, { ...o, principal, ...(sign ? { sign } : {}) });
  };
  const nowS = () => Math.floor((opts.clock ?? { now: Date.now }).now() / 1000);
  const wire = (method: string, path: string, body: unknown, s: PrincipalSigner, o: SignOptions = {}) => {
    const u = new URL(`http://coordinator.test${path}`);
    const init = signedInit(method, u, s, {
      nowS: nowS(),
      ...o,
      ...(body === undefined ? {} : { body }),
    });
    const w: SignedRequestWire = {
      method: method.toUpperCase() as SignedRequestWire['method'],
      path: u.pathname,
      query: u.search,
      headers: {
        'content-digest': init.headers['content-digest']!,
        'signature-input': init.headers['signature-input']!,
        signature: init.headers.signature!,
      },
      body: Buffer.from(init.body ?? '').toString('base64'),
    };
    return w;
  };
  const authFor: ClusterCoordinator['authFor'] = (method, path, body, o = {}) => {
    const request = wire(method, path, body, o.principal ?? admin, o.sign);
    const digest = requestDigest(request);
    const approvals = (o.approvers ?? []).map((a) =>
      wire('POST', '/v1/requests/direct/approvals', { requestDigest: digest }, a),
    );
    return { request, ...(approvals.length > 0 ? { approvals } : {}) };
  };
  return {
    ...c,
    tc,
    admin,
    authFor,
    admin2,
    genesis,
    cluster,
    observed,
    dir,
    transport,
    peers: file.nodes,
    tap,
    call,
    rpc,
    restartNode,
    keyStates: async (keyId) => {
      const out: Record<string, string | undefined> = {};
      for (const id of [...tc.nodes.keys()].sort()) {
        let after: string | undefined;
        for (;;) {
          const page = await rpc(id, {
            op: 'status',
            limit: MAX_STATUS_PAGE,
            ...(after === undefined ? {} : { after }),
          });
          const hit = (page.keys as { keyId: string; state: string }[]).find((k) => k.keyId === keyId);
          out[id] = hit?.state;
          if (hit || page.next === undefined) break;
          after = page.next;
        }
      }
      return out;
    },
    stop: async () => {
      await c.close();
      await cluster.close();
      await tc.close();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
