/**
 * Scale (issue 17 item 4): a node answers the key count of its `status` RPC (asked by every
 * coordinator probe and reconcile page) from memory between writes to key records, instead of
 * scanning every key record each time; every write that touches a key record drops the kept count.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Level } from 'level';
import { afterEach, describe, expect, it } from 'vitest';
import { NodeStore } from '../node/store.ts';

const cleanups: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

/** Key records as node/store.ts stores them, written into a closed store's LevelDB. */
async function writeRecords(dir: string, ids: readonly string[]): Promise<void> {
  const db = new Level<string, string>(dir);
  await db.open();
  try {
    await db.sublevel<string, string>('keys', {}).batch(
      ids.map((keyId) => ({
        type: 'put' as const,
        key: keyId,
        value: JSON.stringify({ keyId, keySpec: 'FROST_ED25519', state: 'Enabled', activeEpoch: 0 }),
      })),
    );
  } finally {
    await db.close();
  }
}

describe('node key count', () => {
  it('is kept between key writes and follows every write that touches a key record', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'node-count-'));
    cleanups.push(() => rm(dir, { recursive: true, force: true }));
    await (await NodeStore.open(dir)).close();
    const ids = Array.from({ length: 500 }, (_, i) => `k-${String(i).padStart(4, '0')}`);
    await writeRecords(dir, ids);
    const store = await NodeStore.open(dir);
    cleanups.push(async () => {
      if (store.healthy()) await store.close();
    });
    expect(await store.countKeys()).toBe(500);
    // A record written behind the store's back (never done by the daemon, which is its store's
    // only writer) is not seen: the count is kept, not scanned again.
    await writeRecordsOpen(store, 'behind-the-back');
    expect(await store.countKeys()).toBe(500);
    // The store's own writes to key records drop the kept count.
    await store.setKeyState('k-0001', 'Disabled');
    expect(await store.countKeys()).toBe(501);
    await store.destroyKey('k-0002', { keepTombstone: false });
    await store.destroyKey('k-0003');
    expect(await store.countKeys()).toBe(500);
  });
});

/** Writes one key record into the open store's LevelDB directly (see the test's comment). */
async function writeRecordsOpen(store: NodeStore, keyId: string): Promise<void> {
  // The root of the store's LevelDB, reached through its audit sublevel.
  const root = (store.auditDb() as unknown as { db: Level<string, string> }).db;
  const sub = root.sublevel<string, string>('keys', {});
  await sub.put(keyId, JSON.stringify({ keyId, keySpec: 'FROST_ED25519', state: 'Enabled', activeEpoch: 0 }));
}
