/**
 * Scale (issue 17 item 4): the coordinator's key store finds the keys the deletion sweeper and the
 * start-up reconcile look for (`Creating`, `PendingDeletion`) through its `by-state` index, kept in
 * the same batch as every record write, instead of reading every key each sweep; a store written
 * before the index gets it built once, at first use.
 */
import { randomUUID } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Level } from 'level';
import { afterEach, describe, expect, it } from 'vitest';
import { type KeyRecord, KeyStore } from '../coordinator/key-store.ts';
import type { KeyState } from '../protocol/key-states.ts';

const dirs: string[] = [];
const dbs: Level[] = [];

afterEach(async () => {
  for (const db of dbs.splice(0)) await db.close();
  for (const d of dirs.splice(0)) await rm(d, { recursive: true, force: true });
});

async function freshDb(): Promise<Level<string, any>> {
  const dir = await mkdtemp(join(tmpdir(), 'keystore-'));
  dirs.push(dir);
  const db = new Level<string, any>(dir);
  await db.open();
  dbs.push(db);
  return db;
}

const record = (state: KeyState, alias: string | null = null): KeyRecord => ({
  keyId: randomUUID(),
  alias,
  keySpec: 'FROST_ED25519',
  state,
  createdAt: '2026-12-07T00:00:00.000Z',
  threshold: 2,
  participants: ['node-1', 'node-2', 'node-3'],
  epochInfo: null,
  ...(state === 'PendingDeletion' ? { deletionDate: '2026-12-14T00:00:00.000Z' } : {}),
});

const ids = (recs: readonly KeyRecord[]) => recs.map((r) => r.keyId).sort();

async function indexEntries(db: Level<string, any>): Promise<string[]> {
  return db.sublevel<string, string>('by-state', { valueEncoding: 'utf8' }).keys().all();
}

describe('key store state index', () => {
  it('finds Creating and PendingDeletion keys among many Enabled ones, through every kind of write', async () => {
    const db = await freshDb();
    const store = new KeyStore(db);
    const enabled = Array.from({ length: 300 }, () => record('Enabled'));
    for (const r of enabled) await store.create(r);
    const creating = [record('Creating', 'alias-a'), record('Creating')];
    for (const r of creating) await store.create(r);
    const pending = {
      ...enabled[7]!,
      state: 'PendingDeletion' as const,
      deletionDate: '2026-12-14T00:00:00.000Z',
    };
    await store.put(pending);

    expect(ids(await store.inState('Creating'))).toEqual(ids(creating));
    expect(ids(await store.inState('PendingDeletion'))).toEqual([pending.keyId]);
    // The index holds exactly those keys (and its marker): nothing for the 299 Enabled keys.
    expect(await indexEntries(db)).toHaveLength(4);

    // Creating -> Enabled (DKG done), PendingDeletion -> Enabled (cancelled), a failed key deleted.
    await store.put({ ...creating[1]!, state: 'Enabled' });
    await store.put({ ...pending, state: 'Enabled' });
    await store.releaseAlias(creating[0]!, null);
    expect(await store.inState('Creating')).toEqual([]);
    expect(await store.inState('PendingDeletion')).toEqual([]);
    expect(await indexEntries(db)).toEqual(['~built']);

    // Disabled is not indexed: still found, by a scan.
    await store.put({ ...enabled[3]!, state: 'Disabled' });
    expect(ids(await store.inState('Disabled'))).toEqual([enabled[3]!.keyId]);
  });

  it('indexes a store written before the index existed, once, at first use', async () => {
    const db = await freshDb();
    // Records as an older coordinator wrote them: the `keys` sublevel only.
    const keys = db.sublevel<string, KeyRecord>('keys', { valueEncoding: 'json' });
    const old = [record('Enabled'), record('PendingDeletion'), record('Creating'), record('PendingDeletion')];
    for (const r of old) await keys.put(r.keyId, r);
    const store = new KeyStore(db);
    expect(ids(await store.inState('PendingDeletion'))).toEqual(ids([old[1]!, old[3]!]));
    expect(ids(await store.inState('Creating'))).toEqual([old[2]!.keyId]);
    expect(await indexEntries(db)).toHaveLength(4);

    // A second store on the same db (a restart) trusts the built index: a record written behind
    // its back (not through a KeyStore) is not found, which shows it no longer scans.
    const sneaked = record('PendingDeletion');
    await keys.put(sneaked.keyId, sneaked);
    const restarted = new KeyStore(db);
    expect(ids(await restarted.inState('PendingDeletion'))).toEqual(ids([old[1]!, old[3]!]));
  });
});
