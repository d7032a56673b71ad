/**
 * Key-creating sessions on one node: DKG, refresh, reshare and repair, and the commit, abort and
 * retire requests that end them. A new share is sealed and written (synced) as PENDING before this
 * node sends its confirmation, and becomes active only with a complete certificate; a session id is
 * recorded before the session starts, so a node that restarts refuses to resume it.
 */
import { TL } from '../common/timeline.ts';
import type { FrostPublic, Key } from '@noble/curves/abstract/frost.js';
import { fromHex, toHex } from '../protocol/bytes.ts';
import { dkgMachine } from '../protocol/dkg.ts';
import { type Certificate, certificateGaps } from '../protocol/epoch.ts';
import { KmsError, StateError, isKmsError } from '../protocol/errors.ts';
import { transition } from '../protocol/key-states.ts';
import type { Epoch, KeyId, ParticipantId, SessionId } from '../protocol/ids.ts';
import type { Effect, Step } from '../protocol/machine.ts';
import { packageDigest, packageGaps } from '../protocol/package-proof.ts';
import { type PublicPackageHex, publicFromHex, publicToHex } from '../protocol/packages.ts';
import { refreshMachine } from '../protocol/refresh.ts';
import { repairMachine } from '../protocol/repair.ts';
import { reshareMachine } from '../protocol/reshare.ts';
import { outputPublicKey } from '../protocol/key-tweak.ts';
import { type KeySpec, keySpec } from '../protocol/suites.ts';
import { crashPoint } from '../common/crash-points.ts';
import { certFromHex, certToHex } from '../net/certificate.ts';
import type { Confirmations, OkAnswer, RpcRequest, SessionAnswer, SessionSpec } from '../net/rpc.ts';
import type { AuthorizationWire } from '../net/signed-request.ts';
import { assertConfirmed } from './key-confirmation.ts';
import { dkgCustody } from './sign-tweak.ts';
import { type NodeContext, participantOf, shareCtx } from './node-context.ts';
import { destroyEpochScopes } from './scope-cleanup.ts';
import type { SessionMember, SessionRunner } from './session-runner.ts';

export class KeyEvents {
  readonly #c: NodeContext;

  constructor(ctx: NodeContext) {
    this.#c = ctx;
  }

  /** `abort-epoch`: the pending record and its sealed share go; the active epoch stays. */
  async abortEpoch(keyId: string, epoch: number): Promise<OkAnswer> {
    // The epoch's sealer scope stays, because the next attempt at this key event seals its share
    // for the same epoch number (a destroyed scope can never be used again).
    await this.#c.store.discardPendingEpoch(keyId, epoch);
    await this.#c.record({ event: 'epoch.aborted', keyId, epoch });
    return { ok: true } as const;
  }

  /** `auth`: the client-signed request the guard checks before anything is dealt or stored. */
  async session(s: SessionSpec, auth?: AuthorizationWire): Promise<SessionAnswer> {
    TL?.(`node ${s.kind} session rpc`);
    const spec = keySpec(s.keySpec);
    const self = this.#c.cfg.nodeId;
    const members = [...new Set([...(s.dealers ?? []), ...s.participants])];
    if (!members.includes(self))
      throw new KmsError('ValidationError', `${self} is not a member of this session`);
    for (const m of members) {
      if (!this.#c.peerByNode.has(m) && m !== self)
        throw new KmsError('ValidationError', `unknown member ${m}`);
    }
    if (s.threshold > s.participants.length)
      throw new KmsError('ValidationError', 'threshold exceeds the committee');
    if (await this.#c.store.wasSessionSeen(s.sessionId)) {
      // A node that restarted mid-session (or a replayed start) never resumes it.
      throw new KmsError('Conflict', `session ${s.sessionId} was already started on ${self}`);
    }
    const sessionMembers: SessionMember[] = members.map((m) => ({
      nodeId: m,
      participant: participantOf(spec, m),
    }));
    const ctx = {
      sessionId: s.sessionId,
      keyId: s.keyId,
      keySpec: s.keySpec,
      protocol: s.kind,
      members: sessionMembers,
      self: { nodeId: self, participant: participantOf(spec, self) },
      timeoutMs: this.#c.cfg.sessionTimeoutMs,
      epoch: s.epoch,
    } as const;
    try {
      return await this.#started(spec, s, ctx, auth);
    } catch (e) {
      // This member will not finish the session: the others are told now with a signed abort, not
      // left to wait for their deadline (a session that failed inside its run has told them already).
      this.#c.runner().abandon(ctx, e);
      throw e;
    }
  }

  /** The session is this call's to run (never seen before): checks, records, runs it. */
  async #started(
    spec: KeySpec,
    s: SessionSpec,
    ctx: Parameters<SessionRunner['run']>[0],
    auth?: AuthorizationWire,
  ): Promise<SessionAnswer> {
    // Who asked, and whether policy allows it, before anything is dealt or stored (node/request-guard.ts).
    await this.#c.guard.authorizeSession(s, auth);
    TL?.(`node ${s.kind} authorized`);
    const existing = await this.#c.store.getKey(s.keyId);
    if (s.kind === 'dkg' && existing)
      throw new KmsError('Conflict', `key ${s.keyId} already exists on ${this.#c.cfg.nodeId}`);
    if (s.kind !== 'dkg' && s.kind !== 'repair') {
      if (!existing && (s.dealers ?? []).includes(ctx.self.nodeId))
        throw new KmsError('KeyNotFound', `no share of ${s.keyId}`);
    }
    if (existing && s.kind !== 'dkg') {
      transition(existing.state, s.kind, s.keyId); // protocol/key-states.ts
      assertConfirmed(existing);
    }
    if (s.oldPublic && s.kind !== 'repair') await this.#checkOldPublic(spec, s.keyId, s.oldPublic);
    TL?.(`node ${s.kind} checks done`);
    // Both durable before the session starts (its id refused ever after, its start audited); two
    // stores, so the two syncs run side by side.
    await Promise.all([
      this.#c.store.markSessionSeen(s.sessionId),
      this.#c.record({
        event: 'session.start',
        kind: s.kind,
        keyId: s.keyId,
        sessionId: s.sessionId,
        epoch: s.epoch,
      }),
    ]);
    TL?.(`node ${s.kind} marked seen`);
    try {
      TL?.(`node ${s.kind} recorded start`);
      const audit: Record<string, unknown>[] = [];
      const result = await this.#runSession(spec, s, ctx, audit);
      TL?.(`node ${s.kind} runSession done`);
      // Appended in one tick, so one synced batch carries them all (common/audit-log.ts).
      await Promise.all(
        [
          ...audit,
          { event: 'session.done', kind: s.kind, keyId: s.keyId, sessionId: s.sessionId, epoch: s.epoch },
        ].map((e) => this.#c.record(e)),
      );
      return result;
    } catch (e) {
      const err = isKmsError(e) ? e : new KmsError('Internal', 'session failed', { cause: e });
      // An aborted run leaves the active epoch untouched. A pending share stays until the
      // coordinator says `abort-epoch` (nobody holds a certificate) or `commit-epoch` (someone
      // does: e.g. only this node saw a tampered confirmation); a later event overwrites it.
      await this.#c
        .record({
          event: 'session.failed',
          kind: s.kind,
          keyId: s.keyId,
          sessionId: s.sessionId,
          code: err.code,
          culprits: err.culprits as unknown as Record<string, unknown>[],
        })
        .catch(() => {});
      this.#c.log.warn(
        { sessionId: s.sessionId, kind: s.kind, code: err.code, culprits: err.culprits },
        'session failed',
      );
      throw err;
    }
  }

  /** `audit`: records the caller appends with `session.done` (one synced batch). */
  async #runSession(
    spec: KeySpec,
    s: SessionSpec,
    ctx: Parameters<SessionRunner['run']>[0],
    audit: Record<string, unknown>[],
  ): Promise<SessionAnswer> {
    const self = ctx.self.participant;
    const runner = this.#c.runner();
    // `verify`: machines check the node signatures that echoes forward (protocol/signed-echo.ts).
    const common = {
      spec,
      keyId: s.keyId as KeyId,
      sessionId: s.sessionId as SessionId,
      self,
      verify: runner.signatureCheck(ctx.members),
    };
    // Issue 14's custody data, stored in the same synced batch as the pending share (a DKG's is
    // derived from the outcome its confirmation binds; a joining member's is carried by the
    // reshare): on disk before the epoch can activate, by this session or by a later commit-epoch.
    type Custody = { chainCode: string; merkleRoot: string | null };
    let custody: Custody | undefined;
    let custodyFor: (e: Effect) => Custody | undefined = () => undefined;
    // The machine says in which step its new share is known and its confirmation leaves (effect
    // `persist-pending`): the share is sealed and stored as pending before that step is sent.
    const persistBeforeConfirm = async (step: Step<unknown, unknown, unknown>) => {
      const pending = pendingShares(step);
      if (pending.length === 0) {
        for (const r of new Set(step.out.map((e) => e.header.round))) crashPoint(`${r}.sending`);
        return;
      }
      for (const e of pending) {
        const c = custodyFor(e);
        await this.#persistPending(s, e.key, c);
        custody = c;
      }
      crashPoint(`${s.kind}.confirm.sending`);
    };
    switch (s.kind) {
      case 'dkg': {
        const machine = dkgMachine({
          ...common,
          participants: ctx.members.map((m) => m.participant),
          threshold: s.threshold,
        });
        if ((s.merkleRoot ?? null) !== null && spec.name !== 'FROST_SECP256K1_TR') {
          throw new KmsError(
            'ValidationError',
            `merkleRoot applies to FROST_SECP256K1_TR keys only, not ${spec.name}`,
          );
        }
        custodyFor = (e) =>
          e.transcriptHash === undefined
            ? undefined
            : dkgCustody(spec, e.key.public.commitments[0]!, e.transcriptHash, s.merkleRoot ?? null);
        this.#prepareScope(s);
        const res = await runner.run(ctx, machine, persistBeforeConfirm);
        TL?.(`node dkg run done`);
        // Issue 14: the chain code (over the agreed outcome) and the signed merkle root, stored
        // before the epoch activates, so the key never signs without them: with the pending share
        // (above), or here if that did not carry exactly these.
        const outcome = dkgCustody(spec, res.groupElement, res.transcriptHash, s.merkleRoot ?? null);
        if (custody?.chainCode !== outcome.chainCode || custody.merkleRoot !== outcome.merkleRoot)
          await this.#c.store.putCustody(s.keyId, outcome);
        const cert = toCertificate(spec, 'dkg', s, res.transcriptHash, res.groupElement, res.confirmations);
        return this.#activate(spec, s, cert, res.key.public, audit);
      }
      case 'refresh': {
        const { key, record } = await this.#c.keys.active(s.keyId);
        this.#checkOldEpoch(s, record.epoch);
        const machine = refreshMachine({
          ...common,
          oldEpoch: record.epoch as Epoch,
          newEpoch: s.epoch as Epoch,
          threshold: s.threshold,
          key,
        });
        this.#prepareScope(s);
        const res = await runner.run(ctx, machine, persistBeforeConfirm);
        return this.#activate(spec, s, res.certificate, res.public, audit);
      }
      case 'reshare': {
        const dealer = (s.dealers ?? []).includes(this.#c.cfg.nodeId);
        const old = dealer ? await this.#c.keys.active(s.keyId) : undefined;
        if (old) this.#checkOldEpoch(s, old.record.epoch);
        const joinCustody = await this.#reshareCustody(s);
        if (!s.oldPublic || s.oldThreshold === undefined || s.oldEpoch === undefined || !s.dealers) {
          throw new KmsError(
            'ValidationError',
            'reshare needs oldPublic, oldThreshold, oldEpoch and dealers',
          );
        }
        const machine = reshareMachine({
          ...common,
          oldEpoch: s.oldEpoch as Epoch,
          newEpoch: s.epoch as Epoch,
          oldThreshold: s.oldThreshold,
          oldPublic: publicFromHex(spec, s.oldPublic),
          dealers: s.dealers.map((d) => participantOf(spec, d)),
          newParticipants: s.participants.map((p) => participantOf(spec, p)),
          newThreshold: s.threshold,
          ...(old ? { oldKey: old.key } : {}),
        });
        if (s.participants.includes(this.#c.cfg.nodeId)) this.#prepareScope(s);
        custodyFor = () => joinCustody;
        const res = await runner.run(ctx, machine, persistBeforeConfirm);
        if (!s.participants.includes(this.#c.cfg.nodeId)) {
          // A dealer leaving the committee: its old share is retired when the coordinator says the
          // event is committed everywhere (`retire`), and only for the event it saw itself.
          await this.#c.store.putDealt(s.keyId, {
            epoch: s.epoch,
            sessionId: s.sessionId,
            transcriptHash: toHex(res.transcriptHash),
            publicDigest: packageDigest(res.public),
          });
          crashPoint('reshare.dealt');
          return { dealt: true } as const;
        }
        if (joinCustody && custody !== joinCustody) await this.#c.store.putCustody(s.keyId, joinCustody);
        return this.#activate(spec, s, res.certificate, res.public, audit);
      }
      case 'repair':
        return this.#repair(spec, s, ctx, common);
    }
  }

  /**
   * Issue 14: a reshare carries the key's custody data (chain code, merkle root). A member that
   * holds it refuses another; a joining member keeps it (returned, stored before activation).
   */
  async #reshareCustody(
    s: SessionSpec,
  ): Promise<{ chainCode: string; merkleRoot: string | null } | undefined> {
    if (s.chainCode === undefined) return undefined;
    const carried = { chainCode: s.chainCode, merkleRoot: s.merkleRoot ?? null };
    const mine = await this.#c.store.getCustody(s.keyId);
    if (mine === undefined) return carried;
    if (mine.chainCode !== carried.chainCode || mine.merkleRoot !== carried.merkleRoot) {
      throw new KmsError(
        'ValidationError',
        `reshare of ${s.keyId} carries other custody data than this member holds`,
      );
    }
    return undefined;
  }

  async #repair(
    spec: KeySpec,
    s: SessionSpec,
    ctx: Parameters<SessionRunner['run']>[0],
    common: { spec: KeySpec; keyId: KeyId; sessionId: SessionId; self: ParticipantId },
  ): Promise<SessionAnswer> {
    if (!s.target || !s.dealers || !s.oldPublic)
      throw new KmsError('ValidationError', 'repair needs target, dealers and oldPublic');
    const isTarget = s.target === this.#c.cfg.nodeId;
    const pub = publicFromHex(spec, s.oldPublic);
    // Checked before any share is used or stored (security review L-2).
    const helperKey = isTarget ? undefined : await this.#repairHelperKey(spec, s, pub);
    if (isTarget) await this.#checkRepairTarget(spec, s, pub);
    const machine = repairMachine({
      ...common,
      epoch: s.epoch as Epoch,
      helpers: s.dealers.map((d) => participantOf(spec, d)),
      target: participantOf(spec, s.target),
      public: pub,
      ...(helperKey ? { key: helperKey } : {}),
    });
    const res: any = await this.#c.runner().run(ctx, machine);
    if (!isTarget) return { helped: true } as const;
    const key: Key = res.key;
    // The rebuilt share is checked against this member's verifying share by the machine; store it
    // as the active share of the same epoch (repair does not change the epoch).
    const sealed = await this.#c.sealer.seal(
      shareCtx(this.#c.cfg.nodeId, s.keyId, s.epoch),
      key.secret.signingShare,
    );
    await this.#c.store.putRepairedEpoch(
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
    this.#c.keys.drop(s.keyId);
    await this.#c.record({ event: 'share.repaired', keyId: s.keyId, epoch: s.epoch });
    return { repaired: true } as const;
  }

  /**
   * A helper lends its share only to repair the epoch it holds active, of a key whose state allows
   * it, with the very package of that epoch.
   */
  async #repairHelperKey(spec: KeySpec, s: SessionSpec, pub: FrostPublic): Promise<Key> {
    const k = await this.#c.store.getKey(s.keyId);
    if (!k || k.activeEpoch === undefined) throw new KmsError('KeyNotFound', `no share of ${s.keyId}`);
    if (k.state !== 'Enabled' && k.state !== 'Disabled') {
      throw new StateError('InvalidKeyState', `key ${s.keyId} is ${k.state}: no repair`);
    }
    assertConfirmed(k);
    const { key, record } = await this.#c.keys.active(s.keyId);
    this.#checkOldEpoch({ ...s, oldEpoch: s.epoch }, record.epoch);
    if (packageDigest(pub) !== packageDigest(publicFromHex(spec, record.public))) {
      throw new KmsError(
        'ValidationError',
        `repair package is not this helper's package of epoch ${s.epoch}`,
      );
    }
    return key;
  }

  /**
   * The target stores only an epoch it can check: not older than one it holds, threshold and
   * committee those of the package, and the package consistent with the group element it already
   * knows (its newest record of the key), or with itself if it has none.
   */
  async #checkRepairTarget(spec: KeySpec, s: SessionSpec, pub: FrostPublic): Promise<void> {
    const k = await this.#c.store.getKey(s.keyId);
    if (k && k.state !== 'Enabled' && k.state !== 'Disabled') {
      throw new StateError('InvalidKeyState', `key ${s.keyId} is ${k.state}: no repair`);
    }
    const held = await this.#c.store.listEpochs(s.keyId);
    const newest = held.at(-1);
    if (newest !== undefined && newest > s.epoch) {
      throw new StateError('EpochMismatch', `repair of epoch ${s.epoch}, this node holds epoch ${newest}`);
    }
    const members = s.participants.map((p) => participantOf(spec, p) as string).sort();
    const listed = Object.keys(pub.verifyingShares).sort();
    if (s.threshold !== pub.signers.min || members.join() !== listed.join()) {
      throw new KmsError('ValidationError', 'repair threshold or committee differs from its package');
    }
    let trusted = pub.commitments[0]!;
    for (const e of [...held].reverse()) {
      const rec = await this.#c.store.getEpoch(s.keyId, e).catch(() => undefined);
      if (rec) {
        trusted = publicFromHex(spec, rec.public).commitments[0]!;
        break;
      }
    }
    const gaps = packageGaps(spec.name, pub, trusted);
    if (gaps.length > 0) {
      throw new KmsError('ValidationError', `repair package is not proven: ${gaps.join(', ')}`, {
        details: { gaps },
      });
    }
  }

  /** A key event's old package must be consistent with the group element this node holds. */
  async #checkOldPublic(spec: KeySpec, keyId: string, oldPublic: PublicPackageHex): Promise<void> {
    const k = await this.#c.store.getKey(keyId);
    if (k?.activeEpoch === undefined) return;
    const rec = await this.#c.store.getEpoch(keyId, k.activeEpoch);
    if (!rec) return;
    const mine = publicFromHex(spec, rec.public).commitments[0]!;
    const gaps = packageGaps(spec.name, publicFromHex(spec, oldPublic), mine);
    if (gaps.length > 0) {
      throw new KmsError('ValidationError', `old package is not proven: ${gaps.join(', ')}`, {
        details: { gaps },
      });
    }
  }

  #checkOldEpoch(s: SessionSpec, active: number): void {
    if (s.oldEpoch !== undefined && s.oldEpoch !== active) {
      throw new StateError('EpochMismatch', `session is for epoch ${s.oldEpoch}, active epoch is ${active}`);
    }
  }

  /**
   * Starts making the new epoch's sealer key (node/sealer.ts prepareScope) while the rounds run:
   * on an HSM it is the slowest step of sealing, and it needs nothing the rounds produce. Not
   * awaited; a failure here is the later `seal`'s to report. A session that fails before its
   * share is stored leaves that key empty, like one that failed after sealing (scope-cleanup.ts).
   */
  #prepareScope(s: SessionSpec): void {
    this.#c.sealer.prepareScope?.(shareCtx(this.#c.cfg.nodeId, s.keyId, s.epoch)).catch(() => {});
  }

  async #persistPending(
    s: SessionSpec,
    key: Key,
    custody?: { chainCode: string; merkleRoot: string | null },
  ): Promise<void> {
    TL?.(`node ${s.kind} seal`);
    const sealed = await this.#c.sealer.seal(
      shareCtx(this.#c.cfg.nodeId, s.keyId, s.epoch),
      key.secret.signingShare,
    );
    TL?.(`node ${s.kind} sealed`);
    await this.#c.store.putPendingEpoch(
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
      custody,
    );
    crashPoint(`${s.kind}.pending.stored`);
    TL?.(`node ${s.kind} pending stored`);
  }

  /**
   * Complete certificate in hand: make the pending epoch active and destroy the old one. A DKG's
   * epoch 0 is stored unconfirmed: only the coordinator knows whether every member agreed (C-1),
   * and it says so with `confirm-key` (node/key-confirmation.ts).
   */
  async #activate(
    spec: KeySpec,
    s: SessionSpec,
    cert: Certificate,
    pub: FrostPublic,
    audit: Record<string, unknown>[],
  ): Promise<SessionAnswer> {
    const certificate = certToHex(cert);
    crashPoint(`${s.kind}.cert.complete`);
    TL?.(`node ${s.kind} activate`);
    const destroyed = await this.#c.store.activateEpoch(
      s.keyId,
      s.epoch,
      { transcriptHash: toHex(cert.transcriptHash), certificate },
      { unconfirmed: s.kind === 'dkg' },
    );
    crashPoint(`${s.kind}.activated`);
    TL?.(`node ${s.kind} activated`);
    await destroyEpochScopes(this.#c, s.keyId, destroyed);
    crashPoint(`${s.kind}.old.deleted`);
    TL?.(`node ${s.kind} old scopes destroyed (${destroyed.length})`);
    this.#c.keys.drop(s.keyId);
    // Recorded by the caller with `session.done`, in one synced batch (see #started).
    audit.push({ event: 'epoch.active', keyId: s.keyId, epoch: s.epoch, destroyed });
    const groupElement = pub.commitments[0]!;
    return {
      epoch: s.epoch,
      groupElement: toHex(groupElement),
      // FROST_SECP256K1_TR: the BIP341 output key of the key path (protocol/key-tweak.ts).
      publicKey: toHex(outputPublicKey(spec, groupElement)),
      transcriptHash: toHex(cert.transcriptHash),
      public: publicToHex(pub),
      certificate,
    };
  }

  async commitEpoch(
    keyId: string,
    epoch: number,
    transcriptHash: string,
    confirmations: Confirmations,
  ): Promise<OkAnswer> {
    const k = await this.#c.store.getKey(keyId);
    if (k?.activeEpoch === epoch) return { ok: true, already: true } as const;
    const rec = await this.#c.store.getEpoch(keyId, epoch);
    if (rec?.status !== 'pending')
      throw new StateError('InvalidKeyState', `no pending epoch ${epoch} of ${keyId}`);
    const spec = keySpec(rec.keySpec);
    const pub = publicFromHex(spec, rec.public);
    // Proven against the group element this node already holds (its active epoch's), or, for a
    // DKG's first epoch, its own pending package's: the one proof of protocol/epoch.ts.
    const active =
      k?.activeEpoch === undefined ? undefined : await this.#c.store.getEpoch(keyId, k.activeEpoch);
    const trusted = active ? publicFromHex(spec, active.public).commitments[0]! : pub.commitments[0]!;
    const cert = certFromHex(keyId, epoch, transcriptHash, trusted, confirmations, rec.sessionId ?? '');
    const gaps = certificateGaps(rec.keySpec, { epoch: epoch as Epoch, public: pub }, trusted, cert);
    if (gaps.length > 0)
      throw new StateError('ProtocolAborted', `certificate incomplete: ${gaps.join(', ')}`);
    // A key's first epoch stays unconfirmed until the coordinator's confirm-key, like a DKG's.
    const destroyed = await this.#c.store.activateEpoch(
      keyId,
      epoch,
      { transcriptHash, certificate: confirmations },
      { unconfirmed: true },
    );
    await destroyEpochScopes(this.#c, keyId, destroyed);
    this.#c.keys.drop(keyId);
    await this.#c.record({ event: 'epoch.active', keyId, epoch, destroyed, via: 'commit-epoch' });
    return { ok: true } as const;
  }

  /**
   * `retire`: this member's share goes only for a proven certificate (protocol/epoch.ts
   * certificateGaps: consistent package + every member's confirmation) of a NEWER epoch of the SAME
   * group key, whose committee does not include this node; a node that dealt in that reshare
   * accepts only the event it saw itself (security review C-2, L-1).
   */
  async retire(req: Extract<RpcRequest, { op: 'retire' }>): Promise<OkAnswer> {
    const k = await this.#c.store.getKey(req.keyId);
    if (!k) return { ok: true, already: true } as const;
    const rec =
      k.activeEpoch === undefined ? undefined : await this.#c.store.getEpoch(req.keyId, k.activeEpoch);
    if (!rec) return { ok: true, already: true } as const;
    if (req.epoch <= rec.epoch) {
      throw new StateError(
        'EpochMismatch',
        `retire for epoch ${req.epoch}, this node holds epoch ${rec.epoch}: refusing to retire`,
      );
    }
    const spec = keySpec(rec.keySpec);
    const pub = publicFromHex(spec, req.public);
    if (rec.participant in pub.verifyingShares) {
      throw new StateError('InvalidKeyState', 'this node is in the new committee: refusing to retire');
    }
    const mine = publicFromHex(spec, rec.public).commitments[0]!;
    const cert = certFromHex(req.keyId, req.epoch, req.transcriptHash, mine, req.certificate, req.sessionId);
    const gaps = certificateGaps(
      rec.keySpec,
      {
        epoch: req.epoch as Epoch,
        public: pub,
        transcriptHash: fromHex(req.transcriptHash),
        sessionId: req.sessionId as SessionId,
      },
      mine,
      cert,
    );
    if (gaps.length > 0)
      throw new StateError('ProtocolAborted', `certificate not proven: ${gaps.join(', ')}`, {
        details: { gaps },
      });
    const dealt = await this.#c.store.getDealt(req.keyId);
    if (
      dealt?.epoch === req.epoch &&
      (dealt.sessionId !== req.sessionId ||
        dealt.transcriptHash !== req.transcriptHash ||
        dealt.publicDigest !== packageDigest(pub))
    ) {
      throw new StateError(
        'ProtocolAborted',
        `retire names session ${req.sessionId}, this node dealt in ${dealt.sessionId}: refusing to retire`,
      );
    }
    // The new committee holds a complete, verified certificate: this member's share is no longer needed.
    // No tombstone: a later reshare may bring this node back into the committee.
    const epochs = await this.#c.store.destroyKey(req.keyId, { keepTombstone: false });
    await destroyEpochScopes(this.#c, req.keyId, epochs);
    if (dealt) await this.#c.store.deleteDealt(req.keyId);
    this.#c.keys.drop(req.keyId);
    await this.#c.record({ event: 'share.retired', keyId: req.keyId, epoch: rec.epoch, newEpoch: req.epoch });
    return { ok: true } as const;
  }

  /** The pending epoch this node holds for a key, with its package digest (for the `public` answer). */
  async pendingOf(keyId: string): Promise<{ epoch: number; publicDigest: string } | undefined> {
    const k = await this.#c.store.getKey(keyId);
    if (k?.pendingEpoch === undefined) return undefined;
    const rec = await this.#c.store.getEpoch(keyId, k.pendingEpoch).catch(() => undefined);
    if (rec?.status !== 'pending') return undefined;
    return { epoch: rec.epoch, publicDigest: packageDigest(publicFromHex(keySpec(rec.keySpec), rec.public)) };
  }
}

/**
 * The new shares a step asks to persist before its messages leave (its `persist-pending` effects).
 * A confirmation never leaves without one, and a zero share is never a real one (RFC 9591 §3.1).
 */
function pendingShares(step: Step<unknown, unknown, unknown>): Effect[] {
  const effects = (step.effects ?? []).filter((e) => e.kind === 'persist-pending');
  if (effects.length === 0 && step.out.some((e) => e.header.round.endsWith('.confirm')))
    throw new KmsError('Internal', 'a confirmation without a share to persist');
  for (const e of effects) {
    if (e.key.secret.signingShare.every((b) => b === 0))
      throw new KmsError('Internal', 'refusing to persist a zero share');
  }
  return effects;
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
