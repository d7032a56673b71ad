/**
 * BENCH-ONLY bulk path for "sign latency with 10 000 keys stored": running 10 000 DKGs would take
 * hours, so while the devnet is STOPPED this clones one real key's stored records under fresh key
 * ids, in the coordinator's LevelDB (the key record with its EpochInfo, `keys` sublevel) and in
 * every node's LevelDB (key record, epoch record and the sealed share blob, `keys`/`epochs`/
 * `shares` sublevels, the layout of node/store.ts). The clones are exactly the size and shape of
 * real keys, so the stores' indexes grow as they would; they are never signed with (a clone's
 * sealed share is bound to the original key id and would not unseal). Nothing here is a product
 * path: it writes the stores directly, with no audit record.
 *
 * Each store is compacted after the write (LevelDB compactRange over everything): stores that grew
 * one key at a time are compacted as they grow, while a bulk write left as it is would make the
 * next start spend its first minutes compacting, which the measurements would then count.
 */
import { randomUUID } from 'node:crypto';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { Level } from 'level';

const BATCH = 500;

/** `level` is classic-level on Node; its compactRange is not in `level`'s types. */
async function compactAll(db: unknown): Promise<void> {
  await (db as { compactRange(start: string, end: string): Promise<void> }).compactRange('\u0000', '\uffff');
}

/** Adds `count` clones of `keyId` to the coordinator store in `devnetDir` and to nodes 1..nodes. */
export async function cloneKeys(
  devnetDir: string,
  nodes: number,
  keyId: string,
  count: number,
): Promise<void> {
  const ids = Array.from({ length: count }, () => randomUUID());
  await cloneInCoordinator(join(devnetDir, 'coordinator', 'data', 'coordinator-db'), keyId, ids);
  for (let k = 1; k <= nodes; k++) {
    const dir = join(devnetDir, `node-${k}`, 'data');
    if (existsSync(dir)) await cloneInNode(dir, keyId, ids);
  }
}

async function cloneInCoordinator(dbDir: string, keyId: string, ids: readonly string[]): Promise<void> {
  const db = new Level<string, any>(dbDir, { valueEncoding: 'json' });
  await db.open();
  try {
    const keys = db.sublevel<string, any>('keys', { valueEncoding: 'json' });
    const rec = await keys.get(keyId);
    if (!rec) throw new Error(`bulk-keys: key ${keyId} is not in the coordinator store`);
    for (let i = 0; i < ids.length; i += BATCH) {
      const ops = ids.slice(i, i + BATCH).map((id) => ({
        type: 'put' as const,
        key: id,
        value: {
          ...rec,
          keyId: id,
          alias: null,
          epochInfo: rec.epochInfo ? { ...rec.epochInfo, keyId: id } : null,
        },
      }));
      await keys.batch(ops);
    }
    await compactAll(db);
  } finally {
    await db.close();
  }
}

async function cloneInNode(dbDir: string, keyId: string, ids: readonly string[]): Promise<void> {
  const db = new Level<string, string>(dbDir, { createIfMissing: false });
  await db.open();
  try {
    const keys = db.sublevel<string, string>('keys', {});
    const epochs = db.sublevel<string, string>('epochs', {});
    const shares = db.sublevel<string, Uint8Array>('shares', { valueEncoding: 'view' });
    const rec = await keys.get(keyId);
    if (!rec) return; // this node is not in the key's committee
    const range = { gte: `${keyId}!`, lt: `${keyId}!~` };
    const epochRows = await epochs.iterator(range).all();
    const shareRows = await shares.iterator(range).all();
    for (let i = 0; i < ids.length; i += BATCH) {
      const ops: any[] = [];
      for (const id of ids.slice(i, i + BATCH)) {
        ops.push({
          type: 'put',
          sublevel: keys,
          key: id,
          value: JSON.stringify({ ...JSON.parse(rec), keyId: id }),
        });
        for (const [k, v] of epochRows) {
          const value = JSON.stringify({ ...JSON.parse(v), keyId: id });
          ops.push({ type: 'put', sublevel: epochs, key: `${id}${k.slice(keyId.length)}`, value });
        }
        for (const [k, v] of shareRows)
          ops.push({ type: 'put', sublevel: shares, key: `${id}${k.slice(keyId.length)}`, value: v });
      }
      await db.batch(ops);
    }
    await compactAll(db);
  } finally {
    await db.close();
  }
}
