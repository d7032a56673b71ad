/**
 * Signed abort (issue 13 item 8, node/session-abort.ts): a member whose own session fails tells the
 * other members at once with a signed `<protocol>.abort` envelope, so they end the session naming
 * it `aborted` long before their deadline, instead of naming it `unresponsive` when the deadline
 * passes. Real node daemons over libp2p (test/helpers/cluster.ts).
 *
 * The fault is real, with no test hook: node-3's SoftHSM2 token directory is taken away while the
 * node runs, so node-3's HSM refuses. In the DKG the first HSM operation is the seal of node-3's
 * new share, after rounds 1, 2 and the echo: the session fails in the middle of its run (the
 * runner announces it). In the refresh node-3 cannot even unseal its current share: the session
 * fails before its machine starts (key events `abandon` it). A test coordinator identity on the
 * allow-list sends the `session` requests itself, to see each member's own answer.
 *
 * Forgery: a lying node (test/helpers/lying-peer.ts, a real identity) sends aborts in another
 * member's name, for another epoch or key, and for a session it is not a member of: all dropped,
 * the DKGs complete.
 */
import { randomUUID } from 'node:crypto';
import { readFileSync, readdirSync, renameSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { EpochInfo } from '../coordinator/cluster.ts';
import { NodeRpc } from '../coordinator/node-rpc.ts';
import { fromHex } from '../protocol/bytes.ts';
import { participantIdOf } from '../protocol/elements.ts';
import { type KmsError, isKmsError } from '../protocol/errors.ts';
import type { ParticipantId } from '../protocol/ids.ts';
import { keySpec, verifySignature } from '../protocol/suites.ts';
import { loadClusterFile } from '../net/cluster-file.ts';
import { generateIdentityKey, peerIdOf } from '../net/identity.ts';
import type { SessionSpec } from '../net/rpc.ts';
import { type Transport, createTransport } from '../net/transport.ts';
import { type TestCluster, startTestCluster } from './helpers/cluster.ts';
import { type Env, type LyingPeer, startLyingPeer } from './helpers/lying-peer.ts';
import { authorizer, sessionRequest } from './helpers/signing-cluster.ts';

/** The nodes' session deadline: every abort below must end the session well before it. */
const DEADLINE_MS = 20_000;
const SPEC = 'FROST_ED25519' as const;
const enc = (s: string) => new TextEncoder().encode(s);

type Outcome = { node: string; ms: number; answer?: unknown; err?: KmsError };

/** A coordinator identity of the test's own, to send node RPCs and see each member's answer. */
async function testCoordinator() {
  const key = await generateIdentityKey();
  return {
    key,
    peer: { id: 'coordinator-test', peerId: peerIdOf(key), addresses: [] as string[] },
  };
}

async function connect(c: TestCluster, key: Awaited<ReturnType<typeof generateIdentityKey>>) {
  const nodes = loadClusterFile(join(c.dir, 'cluster.json')).nodes;
  const transport = await createTransport({
    privateKey: key,
    listen: [],
    allow: nodes.map((n) => ({ peerId: n.peerId, addresses: n.addresses })),
  });
  const rpc = new NodeRpc({
    transport,
    nodes,
    sessionTimeoutMs: DEADLINE_MS,
    signTimeoutMs: 3_000,
    statusTimeoutMs: 2_000,
    log: { warn: () => {}, info: () => {} },
  });
  return { transport, rpc };
}

/** The admin's signed request for `session` (the nodes require one: issue 12), from the fixture's governance. */
function authOf(c: TestCluster, session: SessionSpec) {
  const g = c.governance!;
  const r = sessionRequest(session);
  return authorizer(g.admin, g.admin2)(r.method, r.path, r.body);
}

/** Announces `session`, starts it on every member and collects each member's own answer. */
async function runOnEach(c: TestCluster, rpc: NodeRpc, session: SessionSpec): Promise<Map<string, Outcome>> {
  const auth = authOf(c, session);
  const members = [...new Set([...(session.dealers ?? []), ...session.participants])];
  await rpc.prepare(session, members);
  const t0 = performance.now();
  const out = await Promise.all(
    members.map(async (node): Promise<Outcome> => {
      try {
        const answer = await rpc.rpc(node, { op: 'session', session, auth }, DEADLINE_MS + 10_000);
        return { node, ms: performance.now() - t0, answer };
      } catch (e) {
        if (!isKmsError(e)) throw e;
        return { node, ms: performance.now() - t0, err: e };
      }
    }),
  );
  return new Map(out.map((o) => [o.node, o]));
}

const named = (e: KmsError | undefined) => (e?.culprits ?? []).map((b) => `${b.participant}/${b.reason}`);

describe('signed abort: a member whose HSM refuses tells the others at once (real nodes, SoftHSM2)', () => {
  let c: TestCluster;
  let transport: Transport;
  let rpc: NodeRpc;
  let key: EpochInfo;
  let tokenDir: string;
  let tokenAway: string;

  beforeAll(async () => {
    const coord = await testCoordinator();
    c = await startTestCluster(3, {
      sealer: 'pkcs11',
      sessionTimeoutMs: DEADLINE_MS,
      coordinators: [coord.peer],
    });
    ({ transport, rpc } = await connect(c, coord.key));
    key = await c.cluster.createKey({
      keyId: 'k-abort',
      keySpec: SPEC,
      threshold: 2,
      participants: ['node-1', 'node-2', 'node-3'],
    });
    // node-3's token: one directory of the fixture's shared SoftHSM2 token directory.
    const t = c.tokens.get('node-3')!;
    const tokens = join(t.dir, 'tokens');
    const mine = readdirSync(tokens).filter((d) =>
      readFileSync(join(tokens, d, 'token.object')).includes(Buffer.from(t.label)),
    );
    expect(mine).toHaveLength(1);
    tokenDir = join(tokens, mine[0]!);
    tokenAway = join(t.dir, 'node-3-token-away');
  }, 120_000);
  afterAll(async () => {
    await transport?.stop();
    await c?.close();
  });

  const signs = async (k: EpochInfo, text: string) => {
    const s = await c.cluster.sign({ key: k, message: enc(text) });
    expect(verifySignature(keySpec(k.keySpec), enc(text), s.signature, fromHex(k.publicKey))).toBe(true);
    return s;
  };

  it('mid-DKG: node-3 cannot seal its new share; node-1 and node-2 abort at once naming node-3 aborted, not unresponsive', async () => {
    renameSync(tokenDir, tokenAway);
    const session: SessionSpec = {
      kind: 'dkg',
      sessionId: randomUUID(),
      keyId: 'k-dkg-abort',
      keySpec: SPEC,
      epoch: 0,
      threshold: 2,
      participants: ['node-1', 'node-2', 'node-3'],
    };
    const out = await runOnEach(c, rpc, session);
    const own = out.get('node-3')!;
    expect(own.err?.code).toBe('SealerUnavailable');
    for (const n of ['node-1', 'node-2']) {
      const o = out.get(n)!;
      expect(o.err, `${n} answered ${JSON.stringify(o.answer)}`).toBeDefined();
      expect(o.err!.code).toBe('ProtocolAborted');
      expect(named(o.err)).toEqual(['node-3/aborted']);
      const blame = o.err!.culprits[0]!;
      expect(blame.round).toBe('dkg.abort');
      // The evidence is node-3's signed abort: its code, the envelope digest and the signature.
      const evidence = JSON.parse(blame.evidence!);
      expect(evidence).toMatchObject({ sessionId: session.sessionId, code: 'SealerUnavailable' });
      expect(evidence.signature).toMatch(/^[0-9a-f]{128}$/);
      expect(o.err!.message).toContain('aborted by node-3 (SealerUnavailable)');
      // Ended by the abort, not by the deadline.
      expect(o.ms).toBeLessThan(DEADLINE_MS);
    }
    // Nobody activated the key.
    for (const n of ['node-1', 'node-2', 'node-3']) {
      const st = (await rpc.rpc(n, { op: 'status' }, 5_000)) as {
        keys: { keyId: string; activeEpoch?: number }[];
      };
      expect(st.keys.find((k) => k.keyId === session.keyId)?.activeEpoch).toBeUndefined();
    }
  }, 60_000);

  it('refresh: node-3 cannot unseal its share, fails before its run, and still tells the others; epoch 0 stays and signs', async () => {
    const t0 = performance.now();
    const err = await c.cluster.refresh({ key }).then(
      () => undefined,
      (e: unknown) => e as KmsError,
    );
    expect(performance.now() - t0).toBeLessThan(DEADLINE_MS);
    expect(err?.code).toBe('ProtocolAborted');
    expect(named(err)).toEqual(['node-3/aborted']);
    for (const n of ['node-1', 'node-2', 'node-3']) {
      const st = (await rpc.rpc(n, { op: 'status' }, 5_000)) as {
        keys: { keyId: string; activeEpoch?: number; pendingEpoch?: number }[];
      };
      expect(st.keys.find((k) => k.keyId === key.keyId)).toMatchObject({ activeEpoch: 0 });
      expect(st.keys.find((k) => k.keyId === key.keyId)?.pendingEpoch).toBeUndefined();
    }
    const s = await signs(key, 'epoch 0 after the abort');
    expect(s.signers).not.toContain('node-3');
  }, 60_000);

  it('with the token back, the running node-3 re-opens its HSM session: the next refresh commits and node-3 signs', async () => {
    renameSync(tokenAway, tokenDir);
    // The sealer waits a moment between reconnect rounds: retry the event until node-3 is back.
    let next: EpochInfo | undefined;
    for (let i = 0; i < 20 && !next; i++) {
      next = await c.cluster.refresh({ key }).catch(async () => {
        await new Promise((r) => setTimeout(r, 500));
        return undefined;
      });
    }
    expect(next).toMatchObject({ epoch: 1, publicKey: key.publicKey });
    const signers = new Set<string>();
    for (const text of ['after 1', 'after 2', 'after 3', 'after 4'])
      for (const n of (await signs(next!, text)).signers) signers.add(n);
    expect(signers.has('node-3')).toBe(true);
  }, 60_000);
});

describe('signed abort: forged aborts are dropped (real nodes, a lying peer)', () => {
  let c: TestCluster;
  let transport: Transport;
  let rpc: NodeRpc;
  let liar: LyingPeer;
  const pid = (n: number) => participantIdOf(keySpec(SPEC), n) as ParticipantId;

  beforeAll(async () => {
    const coord = await testCoordinator();
    c = await startTestCluster(4, { sessionTimeoutMs: DEADLINE_MS, coordinators: [coord.peer] });
    ({ transport, rpc } = await connect(c, coord.key));
    liar = await startLyingPeer(c, 'node-4', { keySpec: SPEC });
  }, 120_000);
  afterAll(async () => {
    await liar?.stop();
    await transport?.stop();
    await c?.close();
  });

  it("aborts in another member's name, for another epoch or another key are dropped: the DKG completes", async () => {
    const forged = (env: Env): Env[] => {
      const h = env.header;
      const abort = (over: Partial<Env['header']>): Env => ({
        header: { ...h, round: 'dkg.abort', to: '*', ...over },
        body: { code: 'StorageError', culprits: [] },
      });
      return [
        abort({ from: pid(2) }), // node-2's name, over node-4's authenticated channel
        abort({ epoch: 7 as Env['header']['epoch'] }), // its own, for another epoch
        abort({ keyId: 'another-key' as Env['header']['keyId'] }), // its own, for another key
      ];
    };
    const once = new Set<string>();
    liar.lies = {
      keySpec: SPEC,
      dkg: (env, to) => {
        if (env.header.round !== 'dkg.r1' || once.has(to)) return [env];
        once.add(to);
        return [...forged(env), env];
      },
      session: (_s, result) => (result ? { forged: false } : undefined),
    };
    const session: SessionSpec = {
      kind: 'dkg',
      sessionId: randomUUID(),
      keyId: 'k-forged-aborts',
      keySpec: SPEC,
      epoch: 0,
      threshold: 3,
      participants: ['node-1', 'node-2', 'node-3', 'node-4'],
    };
    const out = await runOnEach(c, rpc, session);
    expect(once.size).toBe(3);
    for (const n of ['node-1', 'node-2', 'node-3']) {
      const o = out.get(n)!;
      expect(o.err, `${n}: ${o.err?.message}`).toBeUndefined();
      expect(o.answer).toMatchObject({ epoch: 0 });
    }
  }, 60_000);

  it("a non-member's abort is refused before its session starts and dropped while it runs: the DKG completes", async () => {
    const session: SessionSpec = {
      kind: 'dkg',
      sessionId: randomUUID(),
      keyId: 'k-non-member-abort',
      keySpec: SPEC,
      epoch: 0,
      threshold: 2,
      participants: ['node-1', 'node-2', 'node-3'],
    };
    const frame = liar.signFrame({
      header: {
        version: 1,
        protocol: 'dkg',
        keySpec: SPEC,
        keyId: session.keyId as Env['header']['keyId'],
        sessionId: session.sessionId as Env['header']['sessionId'],
        epoch: 0 as Env['header']['epoch'],
        round: 'dkg.abort',
        from: pid(4),
        to: '*',
      },
      body: { code: 'StorageError', culprits: [] },
    });
    const members = session.participants;
    const auth = authOf(c, session);
    await rpc.prepare(session, members);
    // Announced, not started: held only from the members the announcement names.
    for (const n of members) expect(await liar.sendRaw(n, frame)).toBe('ContextMismatch');
    const running = Promise.all(
      members.map((n) =>
        rpc.rpc(n, { op: 'session', session, auth }, DEADLINE_MS + 10_000).then(
          (a) => ({ n, a }),
          (e: unknown) => ({ n, e }),
        ),
      ),
    );
    // While it runs: accepted by the transport, dropped by the session (a non-member).
    const during = await Promise.all(members.map((n) => liar.sendRaw(n, frame)));
    for (const r of during) expect(['ok', 'ContextMismatch']).toContain(r);
    for (const r of await running) {
      expect('e' in r ? String((r as { e: unknown }).e) : '', r.n).toBe('');
      expect((r as { a: unknown }).a).toMatchObject({ epoch: 0 });
    }
  }, 60_000);
});
