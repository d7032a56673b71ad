/**
 * The node daemon: one custodian. It holds one sealed share per key epoch and runs DKG, signing
 * and key events with its peers. This file wires the pure protocol machines (protocol/) to the
 * transport (libp2p), the store (LevelDB) and the sealer (HSM), and enforces who may ask what:
 * - RPCs (`/tkms/rpc/1.0.0`) are accepted only from the coordinators on the allow-list;
 * - session messages (`/tkms/session/1.0.0`) only from nodes, and only as the participant the
 *   Noise-authenticated peer is (session-runner.ts);
 * - a key signs only in state Enabled, only with its active epoch; nonces never leave memory.
 *
 * Crash safety: a new share is sealed and written (synced) as PENDING before this node sends its
 * confirmation, and becomes active only with a complete certificate; a session id is recorded
 * before the session starts, so a node that restarts refuses to resume it.
 */
import type { FrostPublic, Key } from '@noble/curves/abstract/frost.js';
import pino from 'pino';
import { fromHex, toHex } from '../protocol/bytes.ts';
import { dkgMachine } from '../protocol/dkg.ts';
import { participantIdOf } from '../protocol/elements.ts';
import { certificateGaps, type Certificate } from '../protocol/epoch.ts';
import { type Blame, DecodeError, KmsError, StateError, isKmsError } from '../protocol/errors.ts';
import {
  type Epoch,
  type KeyId,
  type ParticipantId,
  type SessionId,
  nodeIndex,
} from '../protocol/ids.ts';
import type { Machine, Step } from '../protocol/machine.ts';
import { publicFromHex, publicToHex } from '../protocol/packages.ts';
import { refreshMachine } from '../protocol/refresh.ts';
import { repairMachine } from '../protocol/repair.ts';
import { reshareMachine } from '../protocol/reshare.ts';
import { type KeySpec, keySpec, publicKeyFromGroupElement } from '../protocol/suites.ts';
import { AuditLog } from '../common/audit-log.ts';
import { type ClusterFile, loadClusterFile } from '../net/cluster-file.ts';
import type { NodeConfig } from './config.ts';
import { crashPoint } from '../common/crash-points.ts';
import { generateIdentityKey, identityKeyFromBytes, identityKeyToBytes, peerIdOf } from '../net/identity.ts';
import {
  type Confirmations,
  type RpcRequest,
  type SessionSpec,
  STATUS_PAGE,
  type StatusAnswer,
  decodeRpcRequest,
  encodeRpc,
} from '../net/rpc.ts';
import type { Sealer, SealContext } from './sealer.ts';
import { openSealer } from './sealer-open.ts';
import { SessionRunner, type SessionMember } from './session-runner.ts';
import { NonceTable } from './nonces.ts';
import { type EpochRecordStored, NodeStore } from './store.ts';
import { RPC_PROTOCOL, SESSION_PROTOCOL, type Transport, createTransport } from '../net/transport.ts';

export type NodeHandle = {
  readonly nodeId: string;
  readonly peerId: string;
  addresses(): string[];
  stop(): Promise<void>;
};

type Logger = pino.Logger;

/** An active key epoch as signing needs it (see NodeDaemon.#keys). */
type ActiveKey = { record: EpochRecordStored; key: Key; spec: KeySpec; state: string };

const shareCtx = (nodeId: string, keyId: string, epoch: number): SealContext => ({
  scope: `${keyId}/${epoch}`,
  nodeId,
  purpose: 'share',
});
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
      if (!create) throw new StateError('InvalidKeyState', `node ${cfg.nodeId} has no identity: run \`node node/main.ts init\``);
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
};

export async function startNode(cfg: NodeConfig, logger?: Logger, opts: StartNodeOptions = {}): Promise<NodeHandle> {
  const log = (logger ?? pino({ level: cfg.logLevel })).child({ node: cfg.nodeId });
  const { store, sealer, identity } = await openLocal(cfg, log, false);
  const cluster = loadClusterFile(cfg.cluster);
  const audit = await AuditLog.open(store.auditDb());
  const node = new NodeDaemon(cfg, cluster, store, sealer, audit, log, opts.nonces);
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
    await sealer.close();
    await store.close();
    throw e;
  }
  node.attach(transport, opts.linkFault);
  await transport.handle(RPC_PROTOCOL, (from, req) => node.onRpc(from, req));
  await transport.handle(SESSION_PROTOCOL, async (from, frame) => {
    node.onSessionFrame(from, frame);
    return new Uint8Array(0);
  });
  log.info({ peerId: transport.peerId, addresses: transport.addresses(), sealer: sealer.kind }, 'node ready');
  return {
    nodeId: cfg.nodeId,
    peerId: transport.peerId,
    addresses: () => transport.addresses(),
    stop: async () => {
      await transport.stop();
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
  readonly #sealer: Sealer;
  readonly #audit: AuditLog;
  readonly #log: Logger;
  readonly #nodeByPeer: Map<string, string>;
  readonly #peerByNode: Map<string, string>;
  readonly #coordinators: Set<string>;
  readonly #nonces: NonceTable;
  /** Unsealed active key packages by keyId (memory only; dropped on epoch change). */
  /**
   * Active key material by keyId: the unsealed package, its epoch record and the key's state, so
   * signing reads neither LevelDB nor the HSM (bench/results: two store reads per sign were ~28%
   * of a node's busy time). This daemon is its store's only writer: every write that changes a
   * key's state or active epoch drops the entry (set-state, destroy, activate, commit, retire, repair).
   */
  readonly #keys = new Map<string, ActiveKey>();
  #runner: SessionRunner | undefined;

  constructor(
    cfg: NodeConfig,
    cluster: ClusterFile,
    store: NodeStore,
    sealer: Sealer,
    audit: AuditLog,
    log: Logger,
    nonces: StartNodeOptions['nonces'] = {},
  ) {
    this.#cfg = cfg;
    this.#nonces = new NonceTable(nonces);
    this.#store = store;
    this.#sealer = sealer;
    this.#audit = audit;
    this.#log = log;
    this.#nodeByPeer = new Map(cluster.nodes.map((n) => [n.peerId, n.id]));
    this.#peerByNode = new Map(cluster.nodes.map((n) => [n.id, n.peerId]));
    this.#coordinators = new Set(cluster.coordinators.map((c) => c.peerId));
  }

  attach(t: Transport, linkFault?: StartNodeOptions['linkFault']): void {
    const send = async (nodeId: string, frame: Uint8Array) => {
      const peer = this.#peerByNode.get(nodeId);
      if (!peer) throw new KmsError('ValidationError', `unknown node ${nodeId}`);
      await t.request(peer, SESSION_PROTOCOL, frame, { timeoutMs: 10_000 });
    };
    this.#runner = new SessionRunner({
      send: linkFault ? (nodeId, frame) => linkFault(nodeId, frame, (f) => send(nodeId, f)) : send,
      log: this.#log,
    });
  }

  close(): void {
    this.#nonces.clear();
    this.#keys.clear();
  }

  onSessionFrame(fromPeer: string, frame: Uint8Array): void {
    const from = this.#nodeByPeer.get(fromPeer);
    if (!from) throw new KmsError('PeerNotAllowed', 'session messages are accepted from nodes only');
    this.#runner!.onFrame(from, frame);
  }

  async onRpc(fromPeer: string, bytes: Uint8Array): Promise<Uint8Array> {
    if (!this.#coordinators.has(fromPeer)) {
      throw new KmsError('PeerNotAllowed', 'requests are accepted from coordinators only');
    }
    const req = decodeRpcRequest(bytes);
    return encodeRpc(await this.#dispatch(req));
  }

  async #dispatch(req: RpcRequest): Promise<unknown> {
    switch (req.op) {
      case 'status': {
        // One bounded page of key states (rpc.ts STATUS_PAGE), never the whole store in one frame.
        // signingSessions: open (committed, not yet signed) nonce entries, to watch their bound.
        const page = await this.#store.keyPage({ ...(req.after === undefined ? {} : { after: req.after }), limit: req.limit ?? STATUS_PAGE });
        const answer: StatusAnswer = {
          nodeId: this.#cfg.nodeId,
          keyCount: await this.#store.countKeys(),
          keys: page.records.map((k) => ({
            keyId: k.keyId,
            state: k.state,
            ...(k.activeEpoch === undefined ? {} : { activeEpoch: k.activeEpoch }),
            ...(k.pendingEpoch === undefined ? {} : { pendingEpoch: k.pendingEpoch }),
          })),
          signingSessions: this.#nonces.size,
        };
        const last = page.records.at(-1);
        if (page.more && last) answer.next = last.keyId;
        return answer;
      }
      case 'public': {
        const { record } = await this.#active(req.keyId);
        // The certificate lets the coordinator prove this epoch to itself and to lagging members.
        return {
          epoch: record.epoch,
          public: record.public,
          threshold: record.threshold,
          participants: record.participants,
          transcriptHash: record.transcriptHash,
          certificate: record.certificate ?? {},
          sessionId: record.sessionId ?? '',
        };
      }
      case 'session':
        return this.#session(req.session);
      case 'commit-epoch':
        return this.#commitEpoch(req.keyId, req.epoch, req.transcriptHash, req.certificate);
      case 'abort-epoch':
        // The pending record and its sealed share go; the epoch's sealer scope stays, because the
        // next attempt at this key event seals its share for the same epoch number (a destroyed
        // scope can never be used again).
        await this.#store.discardPendingEpoch(req.keyId, req.epoch);
        await this.#record({ event: 'epoch.aborted', keyId: req.keyId, epoch: req.epoch });
        return { ok: true };
      case 'retire':
        return this.#retire(req);
      case 'sign-commit':
        return this.#signCommit(req.sessionId, req.keyId, req.epoch);
      case 'sign-share':
        return this.#signShare(req);
      case 'set-state': {
        const k = await this.#store.getKey(req.keyId);
        if (!k) throw new KmsError('KeyNotFound', `no key ${req.keyId} on ${this.#cfg.nodeId}`);
        if (k.state === 'Destroyed') throw new StateError('InvalidKeyState', 'key is destroyed');
        this.#keys.delete(req.keyId);
        await this.#store.setKeyState(req.keyId, req.state);
        this.#keys.delete(req.keyId);
        await this.#record({ event: 'key.state', keyId: req.keyId, state: req.state });
        return { ok: true };
      }
      case 'destroy': {
        const epochs = await this.#store.destroyKey(req.keyId);
        for (const e of epochs) await this.#sealer.destroyScope(`${req.keyId}/${e}`).catch(() => {});
        this.#keys.delete(req.keyId);
        await this.#record({ event: 'key.destroyed', keyId: req.keyId });
        return { ok: true };
      }
    }
  }

  async #record(entry: Record<string, unknown>): Promise<void> {
    await this.#audit.append({ node: this.#cfg.nodeId, ...entry });
  }

  #pid(spec: KeySpec, nodeId: string): ParticipantId {
    const k = nodeIndex(nodeId);
    if (k === undefined) throw new KmsError('ValidationError', `bad node id ${nodeId}`);
    return participantIdOf(spec, k) as ParticipantId;
  }

  /** The active epoch's record and unsealed key package (cached in memory). */
  async #active(keyId: string): Promise<ActiveKey> {
    const hit = this.#keys.get(keyId);
    if (hit) return hit;
    const k = await this.#store.getKey(keyId);
    if (!k || k.state === 'Destroyed' || k.activeEpoch === undefined) {
      throw new KmsError('KeyNotFound', `no active share of ${keyId} on ${this.#cfg.nodeId}`);
    }
    const record = await this.#store.getEpoch(keyId, k.activeEpoch);
    if (!record) throw new KmsError('KeyNotFound', `no record of ${keyId} epoch ${k.activeEpoch}`);
    const spec = keySpec(record.keySpec);
    const entry: ActiveKey = { record, key: await this.#loadKey(spec, record), spec, state: k.state };
    this.#keys.set(keyId, entry);
    return entry;
  }

  async #loadKey(spec: KeySpec, record: EpochRecordStored): Promise<Key> {
    const sealed = await this.#store.getSealedShare(record.keyId, record.epoch);
    if (!sealed) throw new KmsError('KeyNotFound', `share of ${record.keyId} epoch ${record.epoch} is missing`);
    const signingShare = await this.#sealer.unseal(shareCtx(this.#cfg.nodeId, record.keyId, record.epoch), sealed);
    return {
      public: publicFromHex(spec, record.public),
      secret: { identifier: record.participant, signingShare },
    } as Key;
  }

  // ---- key-creating sessions -------------------------------------------------------------

  async #session(s: SessionSpec): Promise<unknown> {
    const spec = keySpec(s.keySpec);
    const self = this.#cfg.nodeId;
    const members = [...new Set([...(s.dealers ?? []), ...s.participants])];
    if (!members.includes(self)) throw new KmsError('ValidationError', `${self} is not a member of this session`);
    for (const m of members) {
      if (!this.#peerByNode.has(m) && m !== self) throw new KmsError('ValidationError', `unknown member ${m}`);
    }
    if (s.threshold > s.participants.length) throw new KmsError('ValidationError', 'threshold exceeds the committee');
    if (await this.#store.wasSessionSeen(s.sessionId)) {
      // A node that restarted mid-session (or a replayed start) never resumes it.
      throw new KmsError('Conflict', `session ${s.sessionId} was already started on ${self}`);
    }
    const existing = await this.#store.getKey(s.keyId);
    if (s.kind === 'dkg' && existing) throw new KmsError('Conflict', `key ${s.keyId} already exists on ${self}`);
    if (s.kind !== 'dkg' && s.kind !== 'repair') {
      if (!existing && (s.dealers ?? []).includes(self)) throw new KmsError('KeyNotFound', `no share of ${s.keyId}`);
      if (existing && (existing.state === 'PendingDeletion' || existing.state === 'Destroyed')) {
        throw new StateError('InvalidKeyState', `key ${s.keyId} is ${existing.state}`);
      }
    }
    await this.#store.markSessionSeen(s.sessionId);
    await this.#record({ event: 'session.start', kind: s.kind, keyId: s.keyId, sessionId: s.sessionId, epoch: s.epoch });
    const sessionMembers: SessionMember[] = members.map((m) => ({ nodeId: m, participant: this.#pid(spec, m) }));
    const ctx = {
      sessionId: s.sessionId,
      keyId: s.keyId,
      keySpec: s.keySpec,
      protocol: s.kind,
      members: sessionMembers,
      self: { nodeId: self, participant: this.#pid(spec, self) },
      timeoutMs: this.#cfg.sessionTimeoutMs,
    } as const;
    try {
      const result = await this.#runSession(spec, s, ctx);
      await this.#record({ event: 'session.done', kind: s.kind, keyId: s.keyId, sessionId: s.sessionId, epoch: s.epoch });
      return result;
    } catch (e) {
      const err = isKmsError(e) ? e : new KmsError('Internal', 'session failed', { cause: e });
      // An aborted run leaves the active epoch untouched. A pending share stays until the
      // coordinator says `abort-epoch` (nobody holds a certificate) or `commit-epoch` (someone
      // does: e.g. only this node saw a tampered confirmation); a later event overwrites it.
      await this.#record({
        event: 'session.failed',
        kind: s.kind,
        keyId: s.keyId,
        sessionId: s.sessionId,
        code: err.code,
        culprits: err.culprits as unknown as Record<string, unknown>[],
      }).catch(() => {});
      this.#log.warn({ sessionId: s.sessionId, kind: s.kind, code: err.code, culprits: err.culprits }, 'session failed');
      throw err;
    }
  }

  async #runSession(spec: KeySpec, s: SessionSpec, ctx: Parameters<SessionRunner['run']>[0]): Promise<unknown> {
    const self = ctx.self.participant;
    const common = { spec, keyId: s.keyId as KeyId, sessionId: s.sessionId as SessionId, self };
    const runner = this.#runner!;
    const persistBeforeConfirm = (pending: () => { key: Key } | undefined) => async (step: Step<any, any, any>) => {
      if (!step.out.some((e) => e.header.round.endsWith('.confirm'))) {
        for (const r of new Set(step.out.map((e) => e.header.round))) crashPoint(`${r}.sending`);
        return;
      }
      // When the last confirmation arrives in the same step as our own (reordered delivery), the
      // machine finishes in that step and erases the share from its state: take it from the result.
      const done = step.done as { key?: Key } | undefined;
      const p = done?.key ? { key: done.key } : pending();
      if (p) await this.#persistPending(s, p.key);
      crashPoint(`${s.kind}.confirm.sending`);
    };
    switch (s.kind) {
      case 'dkg': {
        const machine = dkgMachine({
          ...common,
          participants: ctx.members.map((m) => m.participant),
          threshold: s.threshold,
        });
        let last: any;
        const res = await runner.run(ctx, tap(machine, (st) => (last = st)), persistBeforeConfirm(() => (last?.key ? { key: last.key } : undefined)));
        const cert = toCertificate(spec, 'dkg', s, res.transcriptHash, res.groupElement, res.confirmations);
        return this.#activate(spec, s, cert, res.key.public);
      }
      case 'refresh': {
        const { key, record } = await this.#active(s.keyId);
        this.#checkOldEpoch(s, record.epoch);
        const machine = refreshMachine({
          ...common,
          oldEpoch: record.epoch as Epoch,
          newEpoch: s.epoch as Epoch,
          threshold: s.threshold,
          key,
        });
        let last: any;
        const res = await runner.run(
          ctx,
          tap(machine, (st) => (last = st)),
          persistBeforeConfirm(() => pendingFromKeyEvent(spec, self, last)),
        );
        return this.#activate(spec, s, res.certificate, res.public);
      }
      case 'reshare': {
        const dealer = (s.dealers ?? []).includes(this.#cfg.nodeId);
        const old = dealer ? await this.#active(s.keyId) : undefined;
        if (old) this.#checkOldEpoch(s, old.record.epoch);
        if (!s.oldPublic || s.oldThreshold === undefined || s.oldEpoch === undefined || !s.dealers) {
          throw new KmsError('ValidationError', 'reshare needs oldPublic, oldThreshold, oldEpoch and dealers');
        }
        const machine = reshareMachine({
          ...common,
          oldEpoch: s.oldEpoch as Epoch,
          newEpoch: s.epoch as Epoch,
          oldThreshold: s.oldThreshold,
          oldPublic: publicFromHex(spec, s.oldPublic),
          dealers: s.dealers.map((d) => this.#pid(spec, d)),
          newParticipants: s.participants.map((p) => this.#pid(spec, p)),
          newThreshold: s.threshold,
          ...(old ? { oldKey: old.key } : {}),
        });
        let last: any;
        const res = await runner.run(
          ctx,
          tap(machine, (st) => (last = st)),
          persistBeforeConfirm(() => pendingFromKeyEvent(spec, self, last)),
        );
        if (!s.participants.includes(this.#cfg.nodeId)) {
          // A dealer leaving the committee: its old share is retired when the coordinator says the
          // event is committed everywhere (`retire`).
          crashPoint('reshare.dealt');
          return { dealt: true };
        }
        return this.#activate(spec, s, res.certificate, res.public);
      }
      case 'repair':
        return this.#repair(spec, s, ctx, common);
    }
  }

  async #repair(
    spec: KeySpec,
    s: SessionSpec,
    ctx: Parameters<SessionRunner['run']>[0],
    common: { spec: KeySpec; keyId: KeyId; sessionId: SessionId; self: ParticipantId },
  ): Promise<unknown> {
    if (!s.target || !s.dealers || !s.oldPublic) throw new KmsError('ValidationError', 'repair needs target, dealers and oldPublic');
    const isTarget = s.target === this.#cfg.nodeId;
    const pub = publicFromHex(spec, s.oldPublic);
    const helperKey = isTarget ? undefined : (await this.#active(s.keyId)).key;
    const machine = repairMachine({
      ...common,
      epoch: s.epoch as Epoch,
      helpers: s.dealers.map((d) => this.#pid(spec, d)),
      target: this.#pid(spec, s.target),
      public: pub,
      ...(helperKey ? { key: helperKey } : {}),
    });
    const res: any = await this.#runner!.run(ctx, machine);
    if (!isTarget) return { helped: true };
    const key: Key = res.key;
    // The rebuilt share is checked against this member's verifying share by the machine; store it
    // as the active share of the same epoch (repair does not change the epoch).
    const sealed = await this.#sealer.seal(shareCtx(this.#cfg.nodeId, s.keyId, s.epoch), key.secret.signingShare);
    await this.#store.putRepairedEpoch(
      {
        keyId: s.keyId,
        keySpec: s.keySpec,
        epoch: s.epoch,
        threshold: s.threshold,
        participants: s.participants,
        participant: key.secret.identifier,
        public: s.oldPublic,
        transcriptHash: '',
        status: 'active',
      },
      sealed,
    );
    this.#keys.delete(s.keyId);
    await this.#record({ event: 'share.repaired', keyId: s.keyId, epoch: s.epoch });
    return { repaired: true };
  }

  #checkOldEpoch(s: SessionSpec, active: number): void {
    if (s.oldEpoch !== undefined && s.oldEpoch !== active) {
      throw new StateError('EpochMismatch', `session is for epoch ${s.oldEpoch}, active epoch is ${active}`);
    }
  }

  async #persistPending(s: SessionSpec, key: Key): Promise<void> {
    const sealed = await this.#sealer.seal(shareCtx(this.#cfg.nodeId, s.keyId, s.epoch), key.secret.signingShare);
    await this.#store.putPendingEpoch(
      {
        keyId: s.keyId,
        keySpec: s.keySpec,
        epoch: s.epoch,
        threshold: s.threshold,
        participants: s.participants,
        participant: key.secret.identifier,
        public: publicToHex(key.public),
        sessionId: s.sessionId,
        transcriptHash: '',
        status: 'pending',
      },
      sealed,
    );
    crashPoint(`${s.kind}.pending.stored`);
  }

  /** Complete certificate in hand: make the pending epoch active and destroy the old one. */
  async #activate(spec: KeySpec, s: SessionSpec, cert: Certificate, pub: FrostPublic): Promise<unknown> {
    const certificate = certToHex(cert);
    crashPoint(`${s.kind}.cert.complete`);
    const destroyed = await this.#store.activateEpoch(s.keyId, s.epoch, {
      transcriptHash: toHex(cert.transcriptHash),
      certificate,
    });
    crashPoint(`${s.kind}.activated`);
    for (const e of destroyed) await this.#sealer.destroyScope(`${s.keyId}/${e}`).catch(() => {});
    crashPoint(`${s.kind}.old.deleted`);
    this.#keys.delete(s.keyId);
    await this.#record({ event: 'epoch.active', keyId: s.keyId, epoch: s.epoch, destroyed });
    const groupElement = pub.commitments[0]!;
    return {
      epoch: s.epoch,
      groupElement: toHex(groupElement),
      publicKey: toHex(publicKeyFromGroupElement(spec, groupElement)),
      transcriptHash: toHex(cert.transcriptHash),
      public: publicToHex(pub),
      certificate,
    };
  }

  async #commitEpoch(keyId: string, epoch: number, transcriptHash: string, confirmations: Confirmations): Promise<unknown> {
    const k = await this.#store.getKey(keyId);
    if (k?.activeEpoch === epoch) return { ok: true, already: true };
    const rec = await this.#store.getEpoch(keyId, epoch);
    if (rec?.status !== 'pending') throw new StateError('InvalidKeyState', `no pending epoch ${epoch} of ${keyId}`);
    const spec = keySpec(rec.keySpec);
    const pub = publicFromHex(spec, rec.public);
    const cert = certFromHex(keyId, epoch, transcriptHash, pub.commitments[0]!, confirmations, rec.sessionId ?? '');
    const gaps = certificateGaps(rec.keySpec, { epoch: epoch as Epoch, public: pub }, pub.commitments[0]!, cert);
    if (gaps.length > 0) throw new StateError('ProtocolAborted', `certificate incomplete: ${gaps.join(', ')}`);
    const destroyed = await this.#store.activateEpoch(keyId, epoch, { transcriptHash, certificate: confirmations });
    for (const e of destroyed) await this.#sealer.destroyScope(`${keyId}/${e}`).catch(() => {});
    this.#keys.delete(keyId);
    await this.#record({ event: 'epoch.active', keyId, epoch, destroyed, via: 'commit-epoch' });
    return { ok: true };
  }

  async #retire(req: Extract<RpcRequest, { op: 'retire' }>): Promise<unknown> {
    const k = await this.#store.getKey(req.keyId);
    if (!k) return { ok: true, already: true };
    const rec = k.activeEpoch === undefined ? undefined : await this.#store.getEpoch(req.keyId, k.activeEpoch);
    if (!rec) return { ok: true, already: true };
    const spec = keySpec(rec.keySpec);
    const pub = publicFromHex(spec, req.public);
    const mine = publicFromHex(spec, rec.public);
    if (toHex(pub.commitments[0]!) !== toHex(mine.commitments[0]!)) {
      throw new StateError('InvalidKeyState', 'the new epoch has a different group key: refusing to retire');
    }
    const cert = certFromHex(req.keyId, req.epoch, req.transcriptHash, pub.commitments[0]!, req.certificate, req.sessionId);
    const gaps = certificateGaps(rec.keySpec, { epoch: req.epoch as Epoch, public: pub }, pub.commitments[0]!, cert);
    if (gaps.length > 0) throw new StateError('ProtocolAborted', `certificate incomplete: ${gaps.join(', ')}`);
    // The new committee holds a complete, verified certificate: this member's share is no longer needed.
    // No tombstone: a later reshare may bring this node back into the committee.
    const epochs = await this.#store.destroyKey(req.keyId, { keepTombstone: false });
    for (const e of epochs) await this.#sealer.destroyScope(`${req.keyId}/${e}`).catch(() => {});
    this.#keys.delete(req.keyId);
    await this.#record({ event: 'share.retired', keyId: req.keyId, epoch: rec.epoch, newEpoch: req.epoch });
    return { ok: true };
  }

  // ---- signing ---------------------------------------------------------------------------

  async #signable(keyId: string, epoch: number): Promise<ActiveKey> {
    if (!this.#keys.has(keyId)) {
      const k = await this.#store.getKey(keyId);
      if (!k) throw new KmsError('KeyNotFound', `no share of ${keyId} on ${this.#cfg.nodeId}`);
      // Checked before unsealing: a node restored from an old backup refuses without touching a
      // share whose HSM key may be gone (F-34).
      if (k.state === 'Enabled' && k.activeEpoch !== undefined && k.activeEpoch !== epoch) {
        throw new StateError('EpochMismatch', `signing asked for epoch ${epoch}, active epoch is ${k.activeEpoch}`);
      }
      if (k.state !== 'Enabled') throw new StateError('InvalidKeyState', `key ${keyId} is ${k.state}`);
    }
    const a = await this.#active(keyId);
    if (a.state !== 'Enabled') throw new StateError('InvalidKeyState', `key ${keyId} is ${a.state}`);
    if (a.record.epoch !== epoch) {
      throw new StateError('EpochMismatch', `signing asked for epoch ${epoch}, active epoch is ${a.record.epoch}`);
    }
    return a;
  }

  async #signCommit(sessionId: string, keyId: string, epoch: number): Promise<unknown> {
    const { key, spec } = await this.#signable(keyId, epoch);
    const commitments = this.#nonces.commit(spec, sessionId, keyId, epoch, key);
    crashPoint('sign.commit.sent');
    return {
      identifier: commitments.identifier,
      hiding: toHex(commitments.hiding),
      binding: toHex(commitments.binding),
    };
  }

  async #signShare(req: Extract<RpcRequest, { op: 'sign-share' }>): Promise<unknown> {
    const { key, spec } = await this.#signable(req.keyId, req.epoch);
    const share = this.#nonces.sign(spec, req.sessionId, req.keyId, req.epoch, key, {
      message: fromHex(req.message, 'message'),
      commitments: req.commitments.map((c) => ({
        identifier: c.identifier,
        hiding: fromHex(c.hiding, 'hiding commitment'),
        binding: fromHex(c.binding, 'binding commitment'),
      })),
    });
    crashPoint('sign.share.sent');
    return { share: toHex(share) };
  }
}

/** Wraps a machine so the caller sees each new state (to persist the pending share before confirming). */
function tap<S, B, R>(m: Machine<S, B, R>, see: (s: S) => void): Machine<S, B, R> {
  return {
    self: m.self,
    start: () => {
      const st = m.start();
      see(st.state);
      return st;
    },
    receive: (state, env) => {
      const st = m.receive(state, env);
      see(st.state);
      return st;
    },
  };
}

function pendingFromKeyEvent(spec: KeySpec, self: ParticipantId, st: any): { key: Key } | undefined {
  if (!st || st.newShare === undefined || !st.newPublic) return undefined;
  // A zero share is the machine's erased state, never a real share (RFC 9591 §3.1: non-zero).
  if (st.newShare === 0n) throw new KmsError('Internal', 'key event state holds no share to persist');
  return {
    key: {
      public: st.newPublic,
      secret: { identifier: self, signingShare: spec.Point.Fn.toBytes(st.newShare) },
    } as Key,
  };
}

function toCertificate(
  _spec: KeySpec,
  protocol: 'dkg',
  s: SessionSpec,
  transcriptHash: Uint8Array,
  groupElement: Uint8Array,
  confirmations: Record<string, { R: Uint8Array; z: Uint8Array }>,
): Certificate {
  return {
    protocol,
    keyId: s.keyId as KeyId,
    sessionId: s.sessionId as SessionId,
    epoch: s.epoch as Epoch,
    transcriptHash,
    groupElement,
    confirmations,
  } as Certificate;
}

function certToHex(c: Certificate): Confirmations {
  return Object.fromEntries(Object.entries(c.confirmations).map(([p, v]) => [p, { R: toHex(v.R), z: toHex(v.z) }]));
}

function certFromHex(
  keyId: string,
  epoch: number,
  transcriptHash: string,
  groupElement: Uint8Array,
  confirmations: Confirmations,
  sessionId: string,
): Certificate {
  return {
    protocol: 'reshare',
    keyId: keyId as KeyId,
    sessionId: sessionId as SessionId,
    epoch: epoch as Epoch,
    transcriptHash: fromHex(transcriptHash),
    groupElement,
    confirmations: Object.fromEntries(
      Object.entries(confirmations).map(([p, v]) => [p, { R: fromHex(v.R), z: fromHex(v.z) }]),
    ),
  } as Certificate;
}

export { DecodeError, type Blame };
