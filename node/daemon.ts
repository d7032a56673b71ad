/**
 * The node daemon: one custodian. It holds one sealed share per key epoch and runs DKG, signing
 * and key events with its peers. This file wires the pure protocol machines (protocol/) to the
 * transport (libp2p), the store (LevelDB) and the sealer (HSM), and enforces who may ask what:
 * - RPCs (`/tkms/rpc/1.0.0`) are accepted only from the coordinators on the allow-list;
 * - session messages (`/tkms/session/1.0.0`) only from nodes, and only as the participant the
 *   Noise-authenticated peer is (session-runner.ts);
 * - a key signs only in state Enabled, only with its active epoch; nonces never leave memory.
 *
 * The parts live in their own files: key events (node/key-events.ts), signing (node/signing.ts),
 * state changes (node/key-lifecycle.ts), the active-key cache (node/active-keys.ts); they share one
 * NodeContext (node/node-context.ts).
 */
import pino from 'pino';
import { KmsError, StateError, isKmsError } from '../protocol/errors.ts';
import { AuditLog } from '../common/audit-log.ts';
import { type ClusterFile, loadClusterFile } from '../net/cluster-file.ts';
import {
  generateIdentityKey,
  type IdentityKey,
  identityKeyFromBytes,
  identityKeyToBytes,
  identitySigner,
  nodeSignatureVerifier,
  peerIdOf,
} from '../net/identity.ts';
import {
  type OkAnswer,
  type RpcHandlers,
  type RpcRequest,
  STATUS_PAGE,
  type SignBatchAnswer,
  type SignOneAnswer,
  type StatusAnswer,
  decodeRpcRequest,
  encodeRpc,
} from '../net/rpc.ts';
import {
  RPC_PROTOCOL,
  SESSION_PROTOCOL,
  type Transport,
  createTransport,
  errorToWire,
} from '../net/transport.ts';
import { ActiveKeys } from './active-keys.ts';
import type { NodeConfig } from './config.ts';
import { readinessProbe, startHealthServer } from './health.ts';
import { GovernanceStore } from './governance-store.ts';
import { confirmKey } from './key-confirmation.ts';
import { KeyEvents } from './key-events.ts';
import { KeyLifecycle } from './key-lifecycle.ts';
import { NodeMetrics } from './metrics.ts';
import type { NodeContext } from './node-context.ts';
import { NodeAudit } from './node-audit.ts';
import { NonceTable } from './nonces.ts';
import { NoncePool } from './nonce-pool.ts';
import { OneRoundSigning } from './sign-one.ts';
import { NO_GOVERNANCE, RequestGuard } from './request-guard.ts';
import type { SealContext, Sealer } from './sealer.ts';
import { openSealer } from './sealer-open.ts';
import { SCOPE_RETRY_MS, startScopeRetry, sweepOrphanScopes } from './scope-cleanup.ts';
import { SessionRunner } from './session-runner.ts';
import { Signing } from './signing.ts';
import { Decryption } from './decryption.ts';
import { Backups } from './backup.ts';
import { Restores } from './restore.ts';
import { NodeStore } from './store.ts';

export type NodeHandle = {
  readonly nodeId: string;
  readonly peerId: string;
  addresses(): string[];
  /** The admin server (/healthz, /readyz, /metrics: node/health.ts), when cfg.adminListen is set. */
  readonly adminUrl?: string;
  stop(): Promise<void>;
};

type Logger = pino.Logger;

const identityCtx = (nodeId: string): SealContext => ({ scope: 'identity', nodeId, purpose: 'identity' });

/** Opens store and sealer and loads (or, with `create`, makes) the sealed libp2p identity. */
async function openLocal(cfg: NodeConfig, log: Logger, create: boolean) {
  const store = await NodeStore.open(cfg.dataDir);
  let sealer: Sealer;
  try {
    sealer = await openSealer(cfg, store, log);
  } catch (e) {
    await store.close();
    throw e;
  }
  try {
    let sealed = await store.getIdentity();
    if (!sealed) {
      if (!create)
        throw new StateError(
          'InvalidKeyState',
          `node ${cfg.nodeId} has no identity: run \`node node/main.ts init\``,
        );
      const key = await generateIdentityKey();
      sealed = await sealer.seal(identityCtx(cfg.nodeId), identityKeyToBytes(key));
      await store.putIdentity(sealed);
    }
    const identity = identityKeyFromBytes(await sealer.unseal(identityCtx(cfg.nodeId), sealed));
    return { store, sealer, identity };
  } catch (e) {
    await sealer.close();
    await store.close();
    throw e;
  }
}

/** `node node/main.ts init`: creates the data dir and the sealed identity; returns the peer id. */
export async function initNode(cfg: NodeConfig): Promise<string> {
  const log = pino({ level: 'silent' });
  const { store, sealer, identity } = await openLocal(cfg, log, true);
  await sealer.close();
  await store.close();
  return peerIdOf(identity);
}

/** Test-only knobs: bounds of the in-memory signing nonce table (defaults in node/nonces.ts). */
export type StartNodeOptions = {
  nonces?: { max?: number; ttlMs?: number };
  /**
   * Test-only fault injection on node-to-node session messages (delay, duplicate, reorder, drop):
   * called instead of delivering `frame` to `to`; `deliver` sends it for real. Never set by main.ts.
   */
  linkFault?: (to: string, frame: Uint8Array, deliver: (frame: Uint8Array) => Promise<void>) => Promise<void>;
  /**
   * Test-only: the node's wall clock (ms since the epoch) for signed-request expiry and deletion
   * windows, so a test can start a node days later. Never set by main.ts.
   */
  clock?: () => number;
};

export async function startNode(
  cfg: NodeConfig,
  logger?: Logger,
  opts: StartNodeOptions = {},
): Promise<NodeHandle> {
  const log = (logger ?? pino({ level: cfg.logLevel })).child({ node: cfg.nodeId });
  const { store, sealer, identity } = await openLocal(cfg, log, false);
  const metrics = new NodeMetrics();
  const cluster = loadClusterFile(cfg.cluster);
  const audit = new NodeAudit(await AuditLog.open(store.auditDb()), cfg.nodeId, identitySigner(identity), {
    ...(opts.clock ? { now: opts.clock } : {}),
  });
  let guard: RequestGuard;
  let governance: GovernanceStore;
  try {
    governance = await GovernanceStore.open(store, cfg.genesisHash);
    guard = new RequestGuard({
      nodeId: cfg.nodeId,
      store,
      governance,
      audit,
      required: cfg.requireSignedRequests !== false,
      ...(opts.clock ? { now: opts.clock } : {}),
    });
    // A restart must not reopen the replay window of requests this node already acted on.
    await guard.rebuild();
  } catch (e) {
    audit.stop();
    await sealer.close();
    await store.close();
    throw e;
  }
  // L-3: destroy the sealer scopes still owed and those no live epoch accounts for, then keep
  // retrying any that fail (audited on this node).
  const record = async (e: Record<string, unknown>) => {
    await audit.append(e);
  };
  const scopeDeps = { store, sealer, log, record };
  await sweepOrphanScopes(scopeDeps);
  const scopeRetry = startScopeRetry(scopeDeps, SCOPE_RETRY_MS);
  const counted = metrics.instrument(sealer); // seal/unseal counts and latency
  const decide = { audit, guard, governance };
  const node = new NodeDaemon(cfg, cluster, store, counted, decide, log, opts.nonces, metrics);
  let transport: Transport;
  try {
    transport = await createTransport({
      privateKey: identity,
      listen: cfg.listen,
      allow: [...cluster.nodes, ...cluster.coordinators]
        .filter((p) => p.id !== cfg.nodeId)
        .map((p) => ({ peerId: p.peerId, addresses: p.addresses })),
      logger: log,
    });
  } catch (e) {
    await scopeRetry.stop();
    node.close();
    await sealer.close();
    await store.close();
    throw e;
  }
  node.attach(transport, identity, opts.linkFault);
  await transport.handle(RPC_PROTOCOL, (from, req) => node.onRpc(from, req));
  await transport.handle(SESSION_PROTOCOL, async (from, frame) => {
    metrics.refusing(() => node.onSessionFrame(from, frame));
    return new Uint8Array(0);
  });
  let admin: Awaited<ReturnType<typeof startHealthServer>> | undefined;
  if (cfg.adminListen !== undefined) {
    // The probe uses the bare sealer: readiness probes are not counted as seal operations.
    const ready = readinessProbe({ nodeId: cfg.nodeId, sealer, store, transport, cluster });
    try {
      admin = await startHealthServer({ listen: cfg.adminListen, metrics, ready, log });
    } catch (e) {
      await transport.stop();
      await scopeRetry.stop();
      node.close();
      await sealer.close();
      await store.close();
      throw e;
    }
    log.info({ url: admin.url }, 'admin server (/healthz, /readyz, /metrics) listening');
  }
  log.info({ peerId: transport.peerId, addresses: transport.addresses(), sealer: sealer.kind }, 'node ready');
  return {
    nodeId: cfg.nodeId,
    peerId: transport.peerId,
    addresses: () => transport.addresses(),
    ...(admin ? { adminUrl: admin.url } : {}),
    stop: async () => {
      await admin?.close();
      await transport.stop();
      await scopeRetry.stop();
      node.close();
      await sealer.close();
      await store.close();
      log.info({}, 'node stopped');
    },
  };
}

class NodeDaemon {
  readonly #cfg: NodeConfig;
  readonly #store: NodeStore;
  readonly #nodeByPeer: Map<string, string>;
  readonly #peerByNode: Map<string, string>;
  readonly #coordinators: Set<string>;
  readonly #nonces: NonceTable;
  readonly #keys: ActiveKeys;
  readonly #events: KeyEvents;
  readonly #signing: Signing;
  /** Threshold decryption shares (issue 15, node/decryption.ts). */
  readonly #decryption: Decryption;
  /** One-round signing (issue 17): pre-generated nonces, memory only (node/nonce-pool.ts). */
  readonly #pool = new NoncePool();
  readonly #oneRound: OneRoundSigning;
  readonly #lifecycle: KeyLifecycle;
  /** Backup to officers, restore and import (issue 16: node/backup.ts, node/restore.ts). */
  readonly #backups: Backups;
  readonly #restores: Restores;
  readonly #ctx: NodeContext;
  readonly #audit: NodeAudit;
  readonly #governance: GovernanceStore;
  #runner: SessionRunner | undefined;
  readonly #log: Logger;
  readonly #metrics: NodeMetrics;

  constructor(
    cfg: NodeConfig,
    cluster: ClusterFile,
    store: NodeStore,
    sealer: Sealer,
    decide: { audit: NodeAudit; guard: RequestGuard; governance: GovernanceStore },
    log: Logger,
    nonces: StartNodeOptions['nonces'] = {},
    metrics: NodeMetrics = new NodeMetrics(),
  ) {
    this.#cfg = cfg;
    this.#store = store;
    this.#log = log;
    this.#metrics = metrics;
    this.#audit = decide.audit;
    this.#governance = decide.governance;
    this.#nonces = new NonceTable(nonces);
    metrics.watchNonces(() => this.#nonces.size);
    this.#nodeByPeer = new Map(cluster.nodes.map((n) => [n.peerId, n.id]));
    this.#peerByNode = new Map(cluster.nodes.map((n) => [n.id, n.peerId]));
    this.#coordinators = new Set(cluster.coordinators.map((c) => c.peerId));
    this.#keys = new ActiveKeys(cfg.nodeId, store, sealer);
    const ctx: NodeContext = {
      cfg,
      store,
      sealer,
      log,
      keys: this.#keys,
      metrics,
      peerByNode: this.#peerByNode,
      record: async (entry) => {
        await decide.audit.append(entry);
      },
      guard: decide.guard,
      runner: () => {
        if (!this.#runner) throw new KmsError('Internal', 'the node has no transport attached');
        return this.#runner;
      },
    };
    this.#ctx = ctx;
    this.#events = new KeyEvents(ctx);
    this.#signing = new Signing(ctx, this.#nonces);
    this.#decryption = new Decryption(ctx);
    this.#oneRound = new OneRoundSigning(ctx, this.#pool, (k, e) => this.#signing.signable(k, e));
    this.#lifecycle = new KeyLifecycle(ctx);
    this.#backups = new Backups(ctx);
    this.#restores = new Restores(ctx);
  }

  /** Session messages leave signed by `identity` and are accepted only signed by their sender node's key. */
  attach(t: Transport, identity: IdentityKey, linkFault?: StartNodeOptions['linkFault']): void {
    const send = async (nodeId: string, frame: Uint8Array) => {
      const peer = this.#peerByNode.get(nodeId);
      if (!peer) throw new KmsError('ValidationError', `unknown node ${nodeId}`);
      await t.request(peer, SESSION_PROTOCOL, frame, { timeoutMs: 10_000 });
    };
    this.#runner = new SessionRunner({
      send: linkFault ? (nodeId, frame) => linkFault(nodeId, frame, (f) => send(nodeId, f)) : send,
      sign: identitySigner(identity),
      verify: nodeSignatureVerifier(this.#peerByNode),
      log: this.#log,
      refusals: this.#metrics,
    });
    this.#restores.attachIdentity(identity);
  }

  close(): void {
    this.#audit.stop();
    this.#runner?.close();
    this.#nonces.clear();
    this.#pool.clear();
    this.#keys.clear();
    this.#restores.close();
  }

  onSessionFrame(fromPeer: string, frame: Uint8Array): void {
    const from = this.#nodeByPeer.get(fromPeer);
    if (!from) throw new KmsError('PeerNotAllowed', 'session messages are accepted from nodes only');
    this.#runner!.onFrame(from, frame);
  }

  async onRpc(fromPeer: string, bytes: Uint8Array): Promise<Uint8Array> {
    if (!this.#coordinators.has(fromPeer)) {
      this.#metrics.refuse('not-allowed');
      throw new KmsError('PeerNotAllowed', 'requests are accepted from coordinators only');
    }
    const req = this.#metrics.refusing(() => decodeRpcRequest(bytes));
    return encodeRpc(await this.#dispatch(req));
  }

  /** The node's side of the RPC table (net/rpc.ts): one typed handler per operation. */
  readonly #handlers: RpcHandlers = {
    status: (req) => this.#status(req),
    public: async (req) => {
      const { record, unconfirmed } = await this.#keys.active(req.keyId);
      const pending = await this.#events.pendingOf(req.keyId);
      // The certificate lets the coordinator prove this epoch to itself and to lagging members.
      return {
        epoch: record.epoch,
        public: record.public,
        threshold: record.threshold,
        participants: record.participants,
        transcriptHash: record.transcriptHash,
        certificate: record.certificate ?? {},
        sessionId: record.sessionId ?? '',
        // A pending epoch's digest lets the coordinator count who agrees on a newer epoch (C-2).
        ...(pending ? { pending } : {}),
        // A member that missed its confirm-key is confirmed by the coordinator's next sync.
        ...(unconfirmed ? { unconfirmed } : {}),
      };
    },
    session: (req) =>
      this.#metrics.observeSession(req.session.kind, this.#events.session(req.session, req.auth)),
    // Early messages of an announced session are held until it starts, for one session timeout.
    prepare: async (req) => {
      this.#runner!.announce(req.sessionId, req.members, this.#cfg.sessionTimeoutMs);
      return { ok: true } as const;
    },
    'commit-epoch': (req) =>
      this.#events.commitEpoch(req.keyId, req.epoch, req.transcriptHash, req.certificate),
    'abort-epoch': (req) => this.#events.abortEpoch(req.keyId, req.epoch),
    'confirm-key': (req) => confirmKey(this.#ctx, req),
    retire: (req) => this.#events.retire(req),
    'sign-commit': (req) => this.#signing.commit(req.sessionId, req.keyId, req.epoch, req.auth, req.tweak),
    'sign-abort': async (req) => this.#signing.abort(req.sessionId),
    'sign-review': (req) => this.#signing.review(req),
    'sign-share': (req) => this.#metrics.observeSession('sign', this.#signing.share(req)),
    'sign-precommit': (req) => this.#oneRound.precommit(req),
    'sign-one': (req) => this.#metrics.observeSession('sign', this.#oneRound.signOne(req)),
    'sign-batch': (req) => this.#signBatch(req),
    'set-state': (req) => this.#lifecycle.setState(req),
    destroy: (req) => this.#lifecycle.destroy(req),
    governance: async () => {
      const g = this.#governance.current();
      if (!g) throw new KmsError('NotFound', NO_GOVERNANCE);
      return { version: g.document.version, hash: g.hash, document: g.document };
    },
    'governance-update': (req) => this.#governanceUpdate(req),
    // Signed before answering: the page and a head the coordinator cannot forge (net/node-audit-head.ts).
    audit: (req) => this.#audit.page(req.after, req.limit),
    'decrypt-share': (req) => this.#decryption.share(req),
    'backup-deal': (req) => this.#backups.deal(req),
    'backup-sign': (req) => this.#backups.sign(req),
    'external-deal': (req) => this.#restores.deal(req),
  };

  /** Genesis by the configured hash, later versions with the admin quorum; audited either way. */
  async #governanceUpdate(req: Extract<RpcRequest, { op: 'governance-update' }>): Promise<OkAnswer> {
    try {
      const r = await this.#governance.update(req.document, req.signatures);
      if (!r.already) {
        await this.#audit.append({
          event: 'governance',
          version: r.version,
          hash: r.hash,
          signers: r.signers,
          decision: 'allow',
        });
      }
      return r.already ? { ok: true, already: true } : { ok: true };
    } catch (e) {
      const version = (req.document as { version?: unknown })?.version;
      await this.#audit.appendRefusal({
        event: 'governance',
        ...(typeof version === 'number' ? { version } : {}),
        signers: req.signatures.map((s) => s.principal).slice(0, 100),
        decision: 'refused',
        reason: e instanceof Error ? e.message.slice(0, 500) : 'refused',
      });
      throw e;
    }
  }

  /**
   * `sign-batch`: each item runs as the `sign-one` it carries, started in order within this one
   * synchronous loop, so each takes its nonce out before anything is awaited (node/sign-one.ts), and
   * is verified, audited and signed on its own; one item's failure is that item's answer only.
   */
  async #signBatch(req: Extract<RpcRequest, { op: 'sign-batch' }>): Promise<SignBatchAnswer> {
    const results = await Promise.all(
      req.items.map((item) => {
        let run: Promise<SignOneAnswer>;
        try {
          run = this.#oneRound.signOne({ op: 'sign-one', ...item });
        } catch (e) {
          run = Promise.reject(e);
        }
        return this.#metrics.observeSession('sign', run).then(
          (ok) => ({ ok }),
          (e: unknown) => ({ error: errorToWire(this.#typed(e)) }),
        );
      }),
    );
    return { results };
  }

  /** As the transport answers a handler's error: a KmsError as it is, anything else only named. */
  #typed(e: unknown): KmsError {
    if (isKmsError(e)) return e;
    this.#log.warn({ error: e instanceof Error ? e.name : typeof e }, 'sign-batch item failed');
    return new KmsError('Internal', 'internal error in request handler');
  }

  #dispatch(req: RpcRequest): Promise<unknown> {
    return (this.#handlers[req.op] as (r: RpcRequest) => Promise<unknown>)(req);
  }

  /** One bounded page of key states (rpc.ts STATUS_PAGE), never the whole store in one frame. */
  async #status(req: Extract<RpcRequest, { op: 'status' }>): Promise<StatusAnswer> {
    const page = await this.#store.keyPage({
      ...(req.after === undefined ? {} : { after: req.after }),
      limit: req.limit ?? STATUS_PAGE,
    });
    const answer: StatusAnswer = {
      nodeId: this.#cfg.nodeId,
      keyCount: await this.#store.countKeys(),
      keys: page.records.map((k) => ({
        keyId: k.keyId,
        state: k.state,
        ...(k.activeEpoch === undefined ? {} : { activeEpoch: k.activeEpoch }),
        ...(k.pendingEpoch === undefined ? {} : { pendingEpoch: k.pendingEpoch }),
      })),
      // Open (committed, not yet signed) nonce entries, to watch their bound.
      signingSessions: this.#nonces.size,
    };
    const last = page.records.at(-1);
    if (page.more && last) answer.next = last.keyId;
    return answer;
  }
}
