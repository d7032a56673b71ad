/**
 * Slow and unreliable links between nodes (threats F-10, F-11): a fault-injecting hook on every
 * node-to-node session message (StartNodeOptions.linkFault) delays, duplicates and reorders
 * traffic, or holds one node's messages past the session deadline. Real node daemons over real
 * libp2p in one process. Sessions finish or abort everywhere the same way, name the slow node,
 * and work again once the link heals.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { EpochInfo } from '../coordinator/cluster.ts';
import { fromHex } from '../protocol/bytes.ts';
import { isKmsError } from '../protocol/errors.ts';
import { keySpec, verifySignature } from '../protocol/suites.ts';
import { type TestCluster, startTestCluster } from './helpers/cluster.ts';
import { seeded } from './helpers/rng.ts';

type Mode = { kind: 'clean' } | { kind: 'chaos' } | { kind: 'slow'; node: string; delayMs: number };

const enc = (s: string) => new TextEncoder().encode(s);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe('unreliable node-to-node links (fault-injecting hook, real libp2p)', () => {
  let c: TestCluster;
  let mode: Mode = { kind: 'clean' };
  const rng = seeded(7);
  const roll = () => rng(1)[0]! / 256;
  const stats = { delayed: 0, duplicated: 0, reordered: 0, held: 0 };

  beforeAll(async () => {
    c = await startTestCluster(4, {
      sessionTimeoutMs: 3_000,
      linkFault: async (from, _to, frame, deliver) => {
        if (mode.kind === 'clean') return deliver(frame);
        if (mode.kind === 'slow') {
          if (from !== mode.node) return deliver(frame);
          stats.held++;
          // Past every deadline: the message arrives after the session is over (and is dropped).
          void sleep(mode.delayMs).then(() => deliver(frame).catch(() => {}));
          return;
        }
        // Chaos: every message is delayed up to 120 ms, a third are also sent twice, and the
        // sender does not wait, so later messages to the same peer can overtake earlier ones.
        const delay = Math.floor(roll() * 120);
        stats.delayed++;
        const twice = roll() < 0.33;
        if (twice) stats.duplicated++;
        if (delay > 60) stats.reordered++;
        void sleep(delay).then(async () => {
          await deliver(frame).catch(() => {});
          if (twice) await deliver(frame).catch(() => {});
        });
      },
    });
  });
  afterAll(async () => {
    await c?.close();
  });

  const signs = async (k: EpochInfo, text: string) => {
    const m = enc(text);
    const s = await c.cluster.sign({ key: k, message: m });
    expect(verifySignature(keySpec(k.keySpec), m, s.signature, fromHex(k.publicKey))).toBe(true);
    return s;
  };

  it('delayed, duplicated and reordered messages: DKG, refresh and reshare still succeed everywhere', async () => {
    mode = { kind: 'chaos' };
    for (const keySpecName of ['FROST_ED25519', 'FROST_SECP256K1_TR'] as const) {
      const k0 = await c.cluster.createKey({
        keyId: `chaos-${keySpecName}`,
        keySpec: keySpecName,
        threshold: 2,
        participants: ['node-1', 'node-2', 'node-3', 'node-4'],
      });
      await signs(k0, 'chaos 0');
      const k1 = await c.cluster.refresh({ key: k0 });
      await signs(k1, 'chaos 1');
      const k2 = await c.cluster.reshare({
        key: k1,
        threshold: 3,
        participants: ['node-1', 'node-2', 'node-3'],
      });
      expect(k2).toMatchObject({ epoch: 2, threshold: 3, publicKey: k0.publicKey });
      await signs(k2, 'chaos 2');
    }
    // The faults really happened (not a vacuous pass).
    expect(stats.duplicated).toBeGreaterThan(10);
    expect(stats.reordered).toBeGreaterThan(10);
    mode = { kind: 'clean' };
  }, 60_000);

  it('a node whose messages arrive after the deadline: the DKG and a reshare abort naming it; all heals', async () => {
    mode = { kind: 'clean' };
    const k = await c.cluster.createKey({
      keyId: 'slow-base',
      keySpec: 'FROST_ED25519',
      threshold: 2,
      participants: ['node-1', 'node-2', 'node-3'],
    });
    mode = { kind: 'slow', node: 'node-3', delayMs: 6_000 };
    const dkg = await c.cluster
      .createKey({
        keyId: 'slow-dkg',
        keySpec: 'FROST_ED25519',
        threshold: 2,
        participants: ['node-1', 'node-2', 'node-3'],
      })
      .catch((e: unknown) => e);
    expect(isKmsError(dkg)).toBe(true);
    const named = (e: unknown) => [
      ...new Set((e as { culprits: { participant: string }[] }).culprits.map((b) => b.participant)),
    ];
    expect(named(dkg)).toEqual(['node-3']);
    const rs = await c.cluster
      .reshare({ key: k, threshold: 2, participants: ['node-1', 'node-2', 'node-3'] })
      .catch((e: unknown) => e);
    expect(isKmsError(rs)).toBe(true);
    expect(named(rs)).toEqual(['node-3']);
    expect(stats.held).toBeGreaterThan(0);
    // Signing does not use node-to-node links: the key still signs at its epoch during the fault.
    await signs(k, 'during the slow link');
    // Heal: the late messages land on finished sessions and are dropped; a new reshare commits.
    mode = { kind: 'clean' };
    await sleep(6_500);
    const healed = await c.cluster.reshare({
      key: k,
      threshold: 2,
      participants: ['node-1', 'node-2', 'node-3'],
    });
    expect(healed).toMatchObject({ epoch: 1, publicKey: k.publicKey });
    await signs(healed, 'after healing');
  }, 60_000);
});
