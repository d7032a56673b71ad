/**
 * The node `status` RPC with many keys stored: its answer is a bounded page (node/rpc.ts
 * STATUS_PAGE) plus the key count, so /v1/nodes keeps working past ~10 000 keys (one answer with
 * every key record outgrew the transport's 1 MiB message limit there, and the nodes showed as
 * unreachable). Real coordinator API over real node daemons (libp2p on 127.0.0.1, LevelDB); the
 * extra key records are written straight into a stopped node's LevelDB, as the benchmark's bulk
 * path (scripts/bench/bulk-keys.ts) does: 12 000 DKGs would take far too long.
 */
import { Level } from 'level';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadNodeConfig } from '../node/config.ts';
import { MAX_STATUS_PAGE, STATUS_PAGE } from '../net/rpc.ts';
import { type ClusterCoordinator, startClusterCoordinator } from './helpers/coordinator.ts';

const EXTRA = 12_000;
const DESTROYED = 25;
let cc: ClusterCoordinator;
let realKey: string;

/** Adds key records (as node/store.ts stores them) to the stopped node's LevelDB. */
async function addKeyRecords(dataDir: string, ids: readonly string[], state: (i: number) => string) {
  const db = new Level<string, string>(dataDir, { createIfMissing: false });
  await db.open();
  try {
    const keys = db.sublevel<string, string>('keys', {});
    for (let i = 0; i < ids.length; i += 1000) {
      await keys.batch(
        ids.slice(i, i + 1000).map((keyId, j) => ({
          type: 'put' as const,
          key: keyId,
          value: JSON.stringify({ keyId, keySpec: 'FROST_ED25519', state: state(i + j), activeEpoch: 0 }),
        })),
      );
    }
  } finally {
    await db.close();
  }
}

beforeAll(async () => {
  cc = await startClusterCoordinator(3);
  const created = await cc.call('POST', '/v1/keys', { keySpec: 'FROST_ED25519', threshold: 2 });
  expect(created.status).toBe(201);
  realKey = (created.body as { keyId: string }).keyId;
  await cc.tc.stopNode('node-1');
  const ids = Array.from({ length: EXTRA }, (_, i) => `bulk-${String(i).padStart(6, '0')}`);
  await addKeyRecords(loadNodeConfig(cc.tc.configPath('node-1')).dataDir, ids, (i) =>
    i < DESTROYED ? 'Destroyed' : 'Enabled',
  );
  await cc.restartNode('node-1');
}, 60_000);

afterAll(async () => {
  await cc?.stop();
});

describe('node status with many keys', () => {
  it('answers a bounded page with the key count and a cursor', async () => {
    const first = await cc.rpc('node-1', { op: 'status' });
    expect(first.keyCount).toBe(EXTRA + 1);
    expect(first.keys).toHaveLength(STATUS_PAGE);
    expect(Object.keys(first.keys[0]).sort()).toEqual(['activeEpoch', 'keyId', 'state']);
    expect(first.next).toBe(first.keys.at(-1).keyId);
    const second = await cc.rpc('node-1', { op: 'status', after: first.next, limit: 10 });
    expect(second.keys).toHaveLength(10);
    expect(second.keys[0].keyId > first.next).toBe(true);
    // A count-only probe, and the schema's bound on the page size.
    const probe = await cc.rpc('node-1', { op: 'status', limit: 0 });
    expect(probe.keys).toEqual([]);
    expect(probe.keyCount).toBe(EXTRA + 1);
    await expect(cc.rpc('node-1', { op: 'status', limit: MAX_STATUS_PAGE + 1 })).rejects.toMatchObject({
      code: 'ValidationError',
    });
    // Walking the pages visits every record once.
    const seen: string[] = [];
    let after: string | undefined;
    for (;;) {
      const page = await cc.rpc('node-1', {
        op: 'status',
        limit: MAX_STATUS_PAGE,
        ...(after ? { after } : {}),
      });
      seen.push(...page.keys.map((k: { keyId: string }) => k.keyId));
      if (page.next === undefined) break;
      after = page.next;
    }
    expect(seen).toHaveLength(EXTRA + 1);
    expect(new Set(seen).size).toBe(EXTRA + 1);
  });

  it('/v1/nodes lists every node reachable with all its keys, Destroyed ones left out', async () => {
    const res = await cc.call('GET', '/v1/nodes');
    expect(res.status).toBe(200);
    const nodes = (res.body as { nodes: { id: string; reachable: boolean; keys: string[] }[] }).nodes;
    expect(nodes.map((n) => [n.id, n.reachable])).toEqual([
      ['node-1', true],
      ['node-2', true],
      ['node-3', true],
    ]);
    const node1 = nodes.find((n) => n.id === 'node-1')!;
    expect(node1.keys).toHaveLength(EXTRA - DESTROYED + 1);
    expect(node1.keys).toContain(realKey);
    expect(node1.keys).not.toContain('bulk-000000');
    expect(node1.keys).toContain(`bulk-${String(EXTRA - 1).padStart(6, '0')}`);
    for (const id of ['node-2', 'node-3']) expect(nodes.find((n) => n.id === id)!.keys).toEqual([realKey]);
  });

  it('still signs with the real key and picks reachable members for a key event', async () => {
    const signed = await cc.call('POST', `/v1/keys/${realKey}/sign`, { message: 'abcd' });
    expect(signed.status).toBe(200);
    // A reshare picks its dealers with the status probe (no key listing).
    const reshared = await cc.call('POST', `/v1/keys/${realKey}/reshare`, {
      threshold: 2,
      participants: ['node-1', 'node-2', 'node-3'],
    });
    expect(reshared.status).toBe(200);
  });
});
