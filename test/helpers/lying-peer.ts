/**
 * Test double: a Byzantine node. It takes over a real node's place in a running test cluster
 * (helpers/cluster.ts): the real daemon is stopped, and this peer comes up on the same address with
 * the same sealed libp2p identity (unsealed with the software sealer and the fixture's
 * KMS_PASSPHRASE), so honest nodes and the coordinator authenticate it over Noise as that node and
 * its allow-list entry lets it in. From there it speaks the real wire protocols
 * (`/tkms/session/1.0.0` envelopes, `/tkms/rpc/1.0.0` answers), and lies as told:
 * - `signCommit` / `signShare`: its answers to the coordinator's signing round trips;
 * - `dkg`: it runs an honest DKG machine (or, as a new member that deals nothing, an honest reshare
 *   machine) through the real SessionRunner and rewrites each outgoing envelope per recipient
 *   (drop, alter, add spoofed or replayed copies) before it leaves;
 * - `sendRaw`: arbitrary bytes on the session protocol (garbage, oversized frames, replays);
 * - `public` / `session`: its answers to the coordinator's `public` and `session` requests (a forged
 *   epoch package and certificate, made with `forgeEpoch`: security review C-1, C-2, H-1).
 * Every frame it sends is kept in `sent`, so a later test can replay them.
 */
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import type { FrostPublic } from '@noble/curves/abstract/frost.js';
import { toHex } from '../../protocol/bytes.ts';
import { confirm, confirmationContext } from '../../protocol/confirm.ts';
import type { DkgResult } from '../../protocol/dkg.ts';
import { publicFromHex, publicToHex } from '../../protocol/packages.ts';
import { type KeyEventResult, reshareMachine } from '../../protocol/reshare.ts';
import { evaluatePolynomial, identifierScalar } from '../../protocol/polynomial.ts';
import { decodeEnvelope, signEnvelope } from '../../protocol/codec.ts';
import { dkgMachine } from '../../protocol/dkg.ts';
import { participantIdOf } from '../../protocol/elements.ts';
import { KmsError, StateError, isKmsError } from '../../protocol/errors.ts';
import { type Epoch, type KeyId, type ParticipantId, type SessionId, nodeIndex } from '../../protocol/ids.ts';
import type { Envelope } from '../../protocol/machine.ts';
import { type KeySpec, keySpec, publicKeyFromGroupElement } from '../../protocol/suites.ts';
import { loadClusterFile } from '../../net/cluster-file.ts';
import { identityKeyFromBytes, identitySigner, nodeSignatureVerifier } from '../../net/identity.ts';
import {
  type Confirmations,
  type PublicAnswer,
  type PublicPackageHex,
  type RpcRequest,
  type SessionAnswer,
  type SessionSpec,
  decodeRpcRequest,
  encodeRpc,
} from '../../net/rpc.ts';
import { SoftwareSealer, levelSealerKeyStore } from '../../node/sealer-software.ts';
import { SessionRunner } from '../../node/session-runner.ts';
import { NodeStore } from '../../node/store.ts';
import {
  RPC_PROTOCOL,
  SESSION_PROTOCOL,
  type Transport,
  createTransport,
  errorToWire,
} from '../../net/transport.ts';
import type { TestCluster } from './cluster.ts';

export type Env = Envelope<Record<string, unknown>>;

/** Rewrites one outgoing DKG envelope for one recipient: the envelopes (or raw frames) to send instead. */
export type DkgLie = (env: Env, to: string) => (Env | Uint8Array)[];

export type Lies = {
  keySpec: KeySpec['name'];
  /** Answer to sign-commit; default: well-formed but random commitments (no nonce behind them). */
  signCommit?: (req: Extract<RpcRequest, { op: 'sign-commit' }>) => unknown;
  /** Answer to sign-share; default: a random scalar (an invalid signature share). */
  signShare?: (req: Extract<RpcRequest, { op: 'sign-share' }>) => unknown;
  /**
   * Answer to sign-precommit (issue 17): `true` for `count` well-formed random commitments (no
   * nonce behind them); absent: refused, so the peer takes no part in one-round signing and every
   * signature it is picked for runs in two rounds (where `signCommit` / `signShare` answer).
   */
  signPrecommit?: true | ((req: Extract<RpcRequest, { op: 'sign-precommit' }>) => unknown);
  /** Answer to sign-one (issue 17); default: NonceReused, as a node that no longer holds the commitment. */
  signOne?: (req: Extract<RpcRequest, { op: 'sign-one' }>) => unknown;
  /** Outgoing DKG (or reshare) traffic; without it the peer accepts the session and then stays silent. */
  dkg?: DkgLie;
  /** Answer to `public` (may throw a KmsError); default: `{ ok: true }`, which fails the schema. */
  public?: (req: Extract<RpcRequest, { op: 'public' }>) => unknown;
  /**
   * Answer to `session` once its DKG run ended (`result` if it completed); default: an error.
   * `(s) => forgeEpoch(...)` with no `dkg` lie: silent in the DKG, then claims a result (C-1).
   */
  session?: (s: SessionSpec, result?: DkgResult | KeyEventResult) => unknown;
  /**
   * Answer to decrypt-share (issue 15); default: a well-formed TDH2 share under its own identifier
   * with a random element and random proof scalars (one that fails its Chaum–Pedersen proof).
   */
  decryptShare?: (req: Extract<RpcRequest, { op: 'decrypt-share' }>) => unknown;
};

export type LyingPeer = {
  readonly nodeId: string;
  readonly peerId: string;
  readonly participant: ParticipantId;
  lies: Lies;
  /** Every session frame sent, in order, with its recipient. */
  readonly sent: { to: string; frame: Uint8Array }[];
  /** Session ids the coordinator asked this peer to run. */
  readonly sessions: string[];
  /** Sends raw bytes on the session protocol; resolves 'ok' or the error code the node answered. */
  sendRaw(to: string, bytes: Uint8Array): Promise<string>;
  /** Sends raw bytes on the RPC protocol (only coordinators may use it). */
  rpcRaw(to: string, bytes: Uint8Array): Promise<string>;
  /** A session frame of its own making, signed with its real identity key (for `sendRaw`). */
  signFrame(env: Env): Uint8Array;
  stop(): Promise<void>;
};

const identityCtx = (nodeId: string) => ({ scope: 'identity', nodeId, purpose: 'identity' }) as const;

/** Stops `nodeId`'s daemon in `c` and brings up a lying peer in its place. */
export async function startLyingPeer(c: TestCluster, nodeId: string, lies: Lies): Promise<LyingPeer> {
  await c.stopNode(nodeId);
  const store = await NodeStore.open(join(c.dir, nodeId));
  let identity: ReturnType<typeof identityKeyFromBytes>;
  try {
    const sealer = await SoftwareSealer.open({
      passphrase: process.env.KMS_PASSPHRASE ?? '',
      keyStore: levelSealerKeyStore(store.sealerDb()),
    });
    const sealed = await store.getIdentity();
    if (!sealed) throw new Error(`${nodeId} has no identity`);
    identity = identityKeyFromBytes(await sealer.unseal(identityCtx(nodeId), sealed));
    await sealer.close();
  } finally {
    await store.close();
  }
  const cluster = loadClusterFile(join(c.dir, 'cluster.json'));
  const me = cluster.nodes.find((n) => n.id === nodeId);
  if (!me) throw new Error(`${nodeId} is not in the cluster file`);
  const listen = me.addresses.map((a) => a.replace(/\/p2p\/.*$/, ''));
  const nodeByPeer = new Map(cluster.nodes.map((n) => [n.peerId, n.id]));
  const peerByNode = new Map(cluster.nodes.map((n) => [n.id, n.peerId]));
  const transport: Transport = await createTransport({
    privateKey: identity,
    listen,
    // Larger than the honest nodes' limit, so oversized frames reach them and are refused there.
    maxMessageBytes: 4 * 1024 * 1024,
    allow: [...cluster.nodes, ...cluster.coordinators]
      .filter((p) => p.id !== nodeId)
      .map((p) => ({ peerId: p.peerId, addresses: p.addresses })),
  });
  const sent: { to: string; frame: Uint8Array }[] = [];
  const sessions: string[] = [];
  const rawSend = async (to: string, frame: Uint8Array) => {
    sent.push({ to, frame });
    await transport.request(peerByNode.get(to)!, SESSION_PROTOCOL, frame, { timeoutMs: 5_000 });
  };
  const silent = { warn: () => {}, debug: () => {} };
  let lying: { lies: Lies } = { lies };
  // It signs with its real identity key, lies included: a forged signature would only be dropped.
  const sign = identitySigner(identity);
  const runner = new SessionRunner({
    sign,
    verify: nodeSignatureVerifier(peerByNode),
    log: silent,
    send: async (to, frame) => {
      const lie = lying.lies.dkg;
      if (!lie) return;
      for (const out of lie(decodeEnvelope(frame), to)) {
        let bytes: Uint8Array;
        try {
          bytes = out instanceof Uint8Array ? out : signEnvelope(out, sign);
        } catch {
          continue; // a lie our own codec cannot even encode would not get past the honest one either
        }
        // A rejected lie is the honest node's business, not the liar's: keep going.
        await rawSend(to, bytes).catch(() => {});
      }
    },
  });
  await transport.handle(SESSION_PROTOCOL, async (from, frame) => {
    const n = nodeByPeer.get(from);
    if (n) runner.onFrame(n, frame);
    return new Uint8Array(0);
  });
  const spec = () => keySpec(lying.lies.keySpec);
  const self = () => participantIdOf(spec(), nodeIndex(nodeId)!) as ParticipantId;
  const randomScalar = () =>
    spec().Point.Fn.toBytes(spec().Point.Fn.create(BigInt(`0x${randomBytes(32).toString('hex')}`)) || 1n);
  const randomPoint = () =>
    spec()
      .Point.BASE.multiply(BigInt(`0x${randomBytes(16).toString('hex')}`) + 1n)
      .toBytes();
  await transport.handle(RPC_PROTOCOL, async (_from, bytes) => {
    const req = decodeRpcRequest(bytes);
    switch (req.op) {
      case 'status':
        return encodeRpc({ nodeId, keys: [] });
      case 'prepare':
        runner.announce(req.sessionId, req.members, 30_000);
        return encodeRpc({ ok: true });
      case 'public':
        return encodeRpc(lying.lies.public ? lying.lies.public(req) : { ok: true });
      case 'sign-commit':
        return encodeRpc(
          lying.lies.signCommit?.(req) ?? {
            identifier: self(),
            hiding: Buffer.from(randomPoint()).toString('hex'),
            binding: Buffer.from(randomPoint()).toString('hex'),
          },
        );
      case 'sign-share':
        return encodeRpc(
          lying.lies.signShare?.(req) ?? { share: Buffer.from(randomScalar()).toString('hex') },
        );
      case 'sign-precommit': {
        const lie = lying.lies.signPrecommit;
        if (lie === undefined) throw new KmsError('ValidationError', 'no one-round signing here');
        return encodeRpc(
          lie === true
            ? {
                identifier: self(),
                commitments: Array.from({ length: req.count }, () => ({
                  hiding: toHex(randomPoint()),
                  binding: toHex(randomPoint()),
                })),
              }
            : lie(req),
        );
      }
      case 'sign-one':
        // Default: a node without the commitment (like one restarted since it published it).
        if (!lying.lies.signOne) throw new StateError('NonceReused', 'no such pre-published commitment');
        return encodeRpc(lying.lies.signOne(req));
      case 'sign-batch': {
        // Concurrent sign-one requests in one frame (coordinator/node-rpc.ts): each answered as above.
        const signOne = lying.lies.signOne;
        return encodeRpc({
          results: req.items.map((item) => {
            try {
              if (!signOne) throw new StateError('NonceReused', 'no such pre-published commitment');
              return { ok: signOne({ op: 'sign-one', ...item }) };
            } catch (e) {
              return { error: errorToWire(isKmsError(e) ? e : new KmsError('Internal', 'lie failed')) };
            }
          }),
        });
      }
      case 'decrypt-share':
        return encodeRpc(
          lying.lies.decryptShare?.(req) ?? {
            identifier: self(),
            share: toHex(
              Buffer.concat([Buffer.from(self(), 'hex'), randomPoint(), randomScalar(), randomScalar()]),
            ),
          },
        );
      case 'session': {
        const s = req.session;
        sessions.push(s.sessionId);
        // A DKG, or a reshare it joins as a new member (it holds no old share to deal with).
        const joining = s.kind === 'reshare' && !(s.dealers ?? []).includes(nodeId);
        if (s.kind !== 'dkg' && !joining)
          throw new KmsError('Conflict', 'the lying peer runs DKG, and reshare as a new member only');
        const sp = keySpec(s.keySpec);
        const pidOf = (m: string) => participantIdOf(sp, nodeIndex(m)!) as ParticipantId;
        const members = [...new Set([...(s.dealers ?? []), ...s.participants])].map((m) => ({
          nodeId: m,
          participant: pidOf(m),
        }));
        const common = {
          spec: sp,
          keyId: s.keyId as KeyId,
          sessionId: s.sessionId as SessionId,
          self: pidOf(nodeId),
          verify: runner.signatureCheck(members),
        };
        const ctx = {
          sessionId: s.sessionId,
          keyId: s.keyId,
          keySpec: s.keySpec,
          protocol: s.kind,
          members,
          self: members.find((m) => m.nodeId === nodeId)!,
          // As short as the honest nodes' deadline: the coordinator waits for every member's answer.
          timeoutMs: 3_000,
          epoch: s.epoch,
        };
        let result: DkgResult | KeyEventResult | undefined;
        try {
          result =
            s.kind === 'dkg'
              ? await runner.run(
                  ctx,
                  dkgMachine({
                    ...common,
                    participants: members.map((m) => m.participant),
                    threshold: s.threshold,
                  }),
                )
              : await runner.run(
                  ctx,
                  reshareMachine({
                    ...common,
                    oldEpoch: s.oldEpoch as Epoch,
                    newEpoch: s.epoch as Epoch,
                    oldThreshold: s.oldThreshold!,
                    oldPublic: publicFromHex(sp, s.oldPublic!),
                    dealers: (s.dealers ?? []).map(pidOf),
                    newParticipants: s.participants.map(pidOf),
                    newThreshold: s.threshold,
                  }),
                );
        } catch (e) {
          if (!isKmsError(e)) throw e;
        }
        if (lying.lies.session) return encodeRpc(lying.lies.session(s, result));
        throw new KmsError('Internal', 'lying peer');
      }
      default:
        return encodeRpc({ ok: true });
    }
  });
  const code = async (p: Promise<unknown>) =>
    p.then(
      () => 'ok',
      (e: unknown) => (isKmsError(e) ? e.code : `raw:${String(e)}`),
    );
  return {
    nodeId,
    peerId: transport.peerId,
    get participant() {
      return self();
    },
    get lies() {
      return lying.lies;
    },
    set lies(l: Lies) {
      lying = { lies: l };
    },
    sent,
    sessions,
    sendRaw: (to, bytes) =>
      code(transport.request(peerByNode.get(to)!, SESSION_PROTOCOL, bytes, { timeoutMs: 5_000 })),
    rpcRaw: (to, bytes) =>
      code(transport.request(peerByNode.get(to)!, RPC_PROTOCOL, bytes, { timeoutMs: 5_000 })),
    signFrame: (env) => signEnvelope(env, sign),
    stop: async () => {
      await transport.stop();
    },
  };
}

/** A forged epoch as a lying node would report it: package, certificate and answer fields. */
export type ForgedEpoch = {
  epoch: number;
  groupElement: string;
  publicKey: string;
  transcriptHash: string;
  sessionId: string;
  public: PublicPackageHex;
  certificate: Confirmations;
};

/**
 * Forges an epoch whose every confirmation verifies on its own: the forger picks every member's
 * share itself. With `groupElement` (the real key, C-2 / H-1): commitments[0] is that element and
 * the verifying shares are chosen points y_i·G, so the package is NOT Feldman-consistent (the
 * forger cannot know the key's discrete log). Without it (C-1): a whole polynomial of the forger's
 * own, so the package IS consistent, but for a key only the forger holds.
 */
export function forgeEpoch(
  specName: KeySpec['name'],
  opts: {
    keyId: string;
    sessionId: string;
    epoch: number;
    min: number;
    members: readonly string[];
    groupElement?: Uint8Array;
  },
): ForgedEpoch {
  const spec = keySpec(specName);
  const Fn = spec.Point.Fn;
  const rnd = () => Fn.create(BigInt(`0x${randomBytes(48).toString('hex')}`)) || 1n;
  const ids = opts.members.map((m) => participantIdOf(spec, nodeIndex(m)!) as ParticipantId);
  const coefficients = Array.from({ length: opts.min }, rnd);
  const ys = new Map(
    ids.map((p) => [
      p,
      opts.groupElement ? rnd() : evaluatePolynomial(spec, coefficients, identifierScalar(spec, p)),
    ]),
  );
  const commitments = coefficients.map((a) => spec.Point.BASE.multiply(a).toBytes());
  if (opts.groupElement) commitments[0] = opts.groupElement;
  const group = commitments[0]!;
  const verifyingShares = Object.fromEntries(
    ids.map((p) => [p, spec.Point.BASE.multiply(ys.get(p)!).toBytes()]),
  );
  const pub = { signers: { min: opts.min, max: ids.length }, commitments, verifyingShares } as FrostPublic;
  const transcriptHash = randomBytes(32);
  const certificate: Confirmations = {};
  for (const p of ids) {
    const ctx = confirmationContext({
      sessionId: opts.sessionId,
      participant: p,
      transcriptHash,
      groupElement: group,
      epoch: opts.epoch,
    });
    const c = confirm(spec, ys.get(p)!, verifyingShares[p]!, ctx);
    certificate[p] = { R: toHex(c.R), z: toHex(c.z) };
  }
  return {
    epoch: opts.epoch,
    groupElement: toHex(group),
    publicKey: toHex(publicKeyFromGroupElement(spec, group)),
    transcriptHash: toHex(transcriptHash),
    sessionId: opts.sessionId,
    public: publicToHex(pub),
    certificate,
  };
}

/** A forged epoch as a `session` answer (net/rpc.ts SessionAnswer: exactly its fields). */
export function asSessionAnswer(f: ForgedEpoch): SessionAnswer {
  return {
    epoch: f.epoch,
    groupElement: f.groupElement,
    publicKey: f.publicKey,
    transcriptHash: f.transcriptHash,
    public: f.public,
    certificate: f.certificate,
  };
}

/** A forged epoch as a `public` answer (net/rpc.ts PublicAnswer: exactly its fields). */
export function asPublicAnswer(f: ForgedEpoch, participants: string[]): PublicAnswer {
  return {
    epoch: f.epoch,
    public: f.public,
    threshold: f.public.min,
    participants,
    transcriptHash: f.transcriptHash,
    certificate: f.certificate,
    sessionId: f.sessionId,
  };
}
