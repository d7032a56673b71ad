/**
 * The Cluster interface's documented behaviour (coordinator/cluster.ts), asserted by one suite
 * against every implementation there is: the real Libp2pCluster over three node daemons (libp2p on
 * 127.0.0.1, each node on its own SoftHSM2 token), and the benchmark's whole-key baseline
 * (scripts/bench/whole-key-cluster.ts), which must not drift from it. A member is made unreachable
 * by stopping its daemon (the baseline: by marking it down). Signatures are checked with verifiers
 * independent of the service (test/helpers/independent-verifiers.ts).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Cluster, EpochInfo } from '../coordinator/cluster.ts';
import { type KmsError, isKmsError } from '../protocol/errors.ts';
import { taprootKeys } from '../protocol/key-tweak.ts';
import { KEY_SPEC_REGISTRY, type KeySpecName, publicKeyFromGroupElement } from '../protocol/suites.ts';
import { WholeKeyCluster } from '../scripts/bench/whole-key-cluster.ts';
import { startTestCluster } from './helpers/cluster.ts';
import { verifyIndependently } from './helpers/independent-verifiers.ts';

type Harness = {
  cluster: Cluster;
  /** Stops (false) or starts again (true) a node. */
  setReachable(nodeId: string, reachable: boolean): Promise<void>;
  /** Moves the nodes' clocks past a signed schedule-deletion's window (real nodes check it). */
  passDeletionWindow(): void;
  close(): Promise<void>;
};

const IMPLEMENTATIONS: [string, () => Promise<Harness>][] = [
  [
    'Libp2pCluster over three real node daemons',
    async () => {
      // The fixture's cluster signs each operation as a client would (issue 12); the nodes' clock is
      // the test's, so that a deletion window can pass.
      const clock = { t: Date.now() };
      const tc = await startTestCluster(3, {
        sealer: 'pkcs11',
        sessionTimeoutMs: 5_000,
        clock: () => clock.t,
      });
      return {
        cluster: tc.cluster,
        setReachable: (id, up) => (up ? tc.startNode(id) : tc.stopNode(id)),
        passDeletionWindow: () => {
          clock.t += 31 * 24 * 3600 * 1000;
        },
        close: () => tc.close(),
      };
    },
  ],
  [
    'WholeKeyCluster (the benchmark baseline)',
    async () => {
      const cluster = new WholeKeyCluster({ nodes: 3 });
      return {
        cluster,
        setReachable: async (id, up) => cluster.setReachable(id, up),
        passDeletionWindow: () => {},
        close: () => cluster.close(),
      };
    },
  ],
];

const ALL = ['node-1', 'node-2', 'node-3'];
let seq = 0;
const newKeyId = () => `contract-${process.pid}-${++seq}`;

/** The rejection of `p`, which must be a KmsError. */
async function kmsErrorOf(p: Promise<unknown>): Promise<KmsError> {
  const e = await p.then(
    () => {
      throw new Error('expected a rejection');
    },
    (e: unknown) => e,
  );
  expect(isKmsError(e), String(e)).toBe(true);
  return e as KmsError;
}

describe.each(IMPLEMENTATIONS)('Cluster contract: %s', (_name, make) => {
  let h: Harness;
  let c: Cluster;
  beforeAll(async () => {
    h = await make();
    c = h.cluster;
  });
  afterAll(async () => {
    await h?.close();
  });

  /** Signs and checks the signature under the key's public key; returns the signers. */
  async function signs(key: EpochInfo, text: string): Promise<readonly string[]> {
    const message = Buffer.from(text);
    const r = await c.sign({ key, message });
    expect(r.signers).toHaveLength(key.threshold);
    for (const s of r.signers) expect(key.participants).toContain(s);
    const ok = verifyIndependently(key.keySpec, Buffer.from(key.publicKey, 'hex'), message, r.signature);
    expect(ok, `${key.keySpec} signature on ${text}`).toBe(true);
    return r.signers;
  }

  it.each<KeySpecName>(['FROST_ED25519', 'FROST_SECP256K1_TR'])(
    'createKey (%s): epoch 0 of the sorted committee, the public key of its group element (Taproot: the BIP341 key-path output key of the internal key); sign verifies under it',
    async (keySpec) => {
      const keyId = newKeyId();
      const k = await c.createKey({ keyId, keySpec, threshold: 2, participants: ['node-3', 'node-1'] });
      expect(k).toMatchObject({ keyId, keySpec, epoch: 0, threshold: 2, participants: ['node-1', 'node-3'] });
      const spec = KEY_SPEC_REGISTRY[keySpec];
      const element = Buffer.from(k.groupElement, 'hex');
      if (keySpec === 'FROST_SECP256K1_TR') {
        // The group element is the internal key P (even y); publicKey is Q = P + int(hash_TapTweak(x(P)))·G.
        expect(k.groupElement.slice(0, 2)).toBe('02');
        const tr = taprootKeys(spec, element, null);
        expect(Buffer.from(tr.internalKey).toString('hex')).toBe(k.groupElement.slice(2));
        expect(k.publicKey).toBe(Buffer.from(tr.outputKey).toString('hex'));
        expect(k.publicKey).not.toBe(k.groupElement.slice(2));
      } else {
        expect(k.publicKey).toBe(Buffer.from(publicKeyFromGroupElement(spec, element)).toString('hex'));
      }
      expect(k.transcriptHash).toMatch(/^[0-9a-f]{64}$/);
      expect((await c.sign({ key: k, message: Buffer.from('x') })).excluded).toEqual([]);
      await signs(k, 'contract: created');
      const nodes = await c.nodes();
      expect(nodes.map((n) => [n.id, n.reachable])).toEqual(ALL.map((id) => [id, true]));
      for (const n of nodes) expect(n.keys.includes(keyId)).toBe(k.participants.includes(n.id));
      expect([...c.nodeIds()]).toEqual(ALL);
    },
  );

  it('refresh and reshare move to the next epoch with the same public key; repair keeps the epoch', async () => {
    const k0 = await c.createKey({
      keyId: newKeyId(),
      keySpec: 'FROST_ED25519',
      threshold: 2,
      participants: ['node-1', 'node-2'],
    });
    const same = {
      keyId: k0.keyId,
      keySpec: k0.keySpec,
      publicKey: k0.publicKey,
      groupElement: k0.groupElement,
    };
    const k1 = await c.refresh({ key: k0 });
    expect(k1).toMatchObject({ ...same, epoch: 1, threshold: 2, participants: ['node-1', 'node-2'] });
    await signs(k1, 'contract: refreshed');
    const k2 = await c.reshare({ key: k1, threshold: 2, participants: ALL });
    expect(k2).toMatchObject({ ...same, epoch: 2, threshold: 2, participants: ALL });
    await signs(k2, 'contract: reshared');
    const k3 = await c.repair({ key: k2, participant: 'node-3' });
    expect(k3).toMatchObject({ ...same, epoch: 2, threshold: 2, participants: ALL });
    await signs(k3, 'contract: repaired');
    const k4 = await c.reshare({ key: k3, threshold: 3, participants: ALL });
    expect(k4).toMatchObject({ ...same, epoch: 3, threshold: 3, participants: ALL });
    await signs(k4, 'contract: new threshold');
  });

  it('unknown nodes and non-members are ValidationError', async () => {
    const create = c.createKey({
      keyId: newKeyId(),
      keySpec: 'FROST_ED25519',
      threshold: 2,
      participants: ['node-1', 'node-9'],
    });
    expect((await kmsErrorOf(create)).code).toBe('ValidationError');
    const k = await c.createKey({
      keyId: newKeyId(),
      keySpec: 'FROST_ED25519',
      threshold: 2,
      participants: ALL,
    });
    expect((await kmsErrorOf(c.repair({ key: k, participant: 'node-9' }))).code).toBe('ValidationError');
    const reshare = c.reshare({ key: k, threshold: 2, participants: ['node-1', 'node-9'] });
    expect((await kmsErrorOf(reshare)).code).toBe('ValidationError');
  });

  it('too few reachable members: sign leaves one out and names it, below t every session is QuorumUnavailable', async () => {
    const k = await c.createKey({
      keyId: newKeyId(),
      keySpec: 'FROST_ED25519',
      threshold: 2,
      participants: ALL,
    });
    await h.setReachable('node-3', false);
    try {
      // Whichever members are asked first, node-3 never signs, and is named when it was asked.
      for (let i = 0; i < 3; i++) {
        const r = await c.sign({ key: k, message: Buffer.from(`one down ${i}`) });
        expect([...r.signers].sort()).toEqual(['node-1', 'node-2']);
        for (const b of r.excluded)
          expect(b).toMatchObject({ participant: 'node-3', reason: 'unresponsive' });
      }
      const dkg = c.createKey({
        keyId: newKeyId(),
        keySpec: 'FROST_ED25519',
        threshold: 2,
        participants: ALL,
      });
      expect((await kmsErrorOf(dkg)).code).toBe('QuorumUnavailable');
      await h.setReachable('node-2', false);
      const sign = await kmsErrorOf(c.sign({ key: k, message: Buffer.from('two down') }));
      expect(sign.code).toBe('QuorumUnavailable');
      expect(sign.culprits.map((b) => b.participant)).toContain('node-2');
      const reshare = c.reshare({ key: k, threshold: 2, participants: ['node-1', 'node-2'] });
      expect((await kmsErrorOf(reshare)).code).toBe('QuorumUnavailable');
      expect((await kmsErrorOf(c.repair({ key: k, participant: 'node-1' }))).code).toBe('QuorumUnavailable');
      const nodes = await c.nodes();
      expect(nodes.map((n) => [n.id, n.reachable])).toEqual([
        ['node-1', true],
        ['node-2', false],
        ['node-3', false],
      ]);
      for (const n of nodes.filter((x) => !x.reachable)) expect(n.keys).toEqual([]);
    } finally {
      await h.setReachable('node-2', true);
      await h.setReachable('node-3', true);
    }
    // Nothing was lost: back at full strength the key signs at its epoch.
    await signs(k, 'contract: all back');
  });

  it('setKeyState: one outcome per member, nodes hold and enforce the state; destroyKey removes every share', async () => {
    const k = await c.createKey({
      keyId: newKeyId(),
      keySpec: 'FROST_ED25519',
      threshold: 2,
      participants: ALL,
    });
    const disabled = await c.setKeyState({ keyId: k.keyId, state: 'Disabled', members: ALL });
    expect(disabled.map((o) => [o.node, o.ok])).toEqual(ALL.map((n) => [n, true]));
    for (const n of ALL) {
      const page = await c.nodeKeyStates(n, { limit: 1000 });
      expect(page.keys.find((x) => x.keyId === k.keyId)?.state).toBe('Disabled');
    }
    // Every member refuses to sign a Disabled key: the answer says so (InvalidKeyState), not that
    // too few members were reachable.
    const refused = await kmsErrorOf(c.sign({ key: k, message: Buffer.from('disabled') }));
    expect(refused.code, refused.message).toBe('InvalidKeyState');
    const enabled = await c.setKeyState({ keyId: k.keyId, state: 'Enabled', members: ALL });
    expect(enabled.every((o) => o.ok)).toBe(true);
    await signs(k, 'contract: enabled again');

    await c.setKeyState({ keyId: k.keyId, state: 'PendingDeletion', members: ALL });
    h.passDeletionWindow();
    const destroyed = await c.destroyKey({ keyId: k.keyId });
    expect(destroyed.map((o) => [o.node, o.ok])).toEqual(ALL.map((n) => [n, true]));
    for (const n of await c.nodes()) expect(n.keys).not.toContain(k.keyId);
    await kmsErrorOf(c.sign({ key: k, message: Buffer.from('destroyed') }));
  });

  it('a key no member holds is KeyNotFound; a threshold above the committee is ValidationError before any node is asked', async () => {
    const k = await c.createKey({
      keyId: newKeyId(),
      keySpec: 'FROST_ED25519',
      threshold: 2,
      participants: ALL,
    });
    const unknown: EpochInfo = { ...k, keyId: newKeyId() };
    const missing = await kmsErrorOf(c.sign({ key: unknown, message: Buffer.from('unknown') }));
    expect(missing.code, missing.message).toBe('KeyNotFound');
    const keyId = newKeyId();
    const tooHigh = await kmsErrorOf(
      c.createKey({ keyId, keySpec: 'FROST_ED25519', threshold: 3, participants: ['node-1', 'node-2'] }),
    );
    expect(tooHigh.code, tooHigh.message).toBe('ValidationError');
    // Nothing was started anywhere: no node holds or lists that key.
    for (const n of await c.nodes()) expect(n.keys).not.toContain(keyId);
  });
});
