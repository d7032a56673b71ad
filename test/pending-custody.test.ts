/**
 * A key event's custody data (issue 14) is stored in the same synced batch as its pending share
 * (node/key-events.ts, issue 17: one fsync less after the session), so it is on disk before the
 * epoch can activate by any path; and a pending epoch discarded with its key (an aborted DKG, a
 * joining member's first epoch) takes the custody data with it.
 */
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { type EpochRecordStored, NodeStore } from '../node/store.ts';
import { asSessionId } from '../protocol/ids.ts';
import { dkgMachine } from '../protocol/dkg.ts';
import { publicToHex } from '../protocol/packages.ts';
import { simulate } from '../protocol/simulate.ts';
import { KEY_SPEC_REGISTRY } from '../protocol/suites.ts';
import { KEY_ID, pids } from './key-events-fixture.ts';

const cleanups: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

const SPEC = KEY_SPEC_REGISTRY.FROST_ED25519;
const IDS = pids(SPEC, [1, 2, 3]);
const sessionId = asSessionId(`custody-dkg-${randomBytes(4).toString('hex')}`);
const dkg = simulate(
  IDS.map((self) =>
    dkgMachine({ spec: SPEC, keyId: KEY_ID, sessionId, self, participants: IDS, threshold: 2 }),
  ),
);
const r0 = dkg.results.get(IDS[0]!)!;
const CUSTODY = { chainCode: 'ab'.repeat(32), merkleRoot: null };

function pending(keyId: string): EpochRecordStored {
  return {
    keyId,
    keySpec: 'FROST_ED25519',
    epoch: 0,
    threshold: 2,
    participants: ['node-1', 'node-2', 'node-3'],
    participant: IDS[0]!,
    public: publicToHex(r0.key.public),
    transcriptHash: '',
    status: 'pending',
    sessionId,
  };
}

async function store(): Promise<{ s: NodeStore; dir: string }> {
  const dir = await mkdtemp(join(tmpdir(), 'pending-custody-'));
  const s = await NodeStore.open(dir);
  cleanups.push(async () => {
    if (s.healthy()) await s.close();
    await rm(dir, { recursive: true, force: true });
  });
  return { s, dir };
}

describe('custody data with the pending share', () => {
  it('is written in the pending epoch batch and read back after a reopen', async () => {
    const { s, dir } = await store();
    await s.putPendingEpoch(pending('k-1'), Uint8Array.of(1, 2, 3), CUSTODY);
    await s.close();
    const again = await NodeStore.open(dir);
    cleanups.push(async () => {
      if (again.healthy()) await again.close();
    });
    expect(await again.getCustody('k-1')).toEqual(CUSTODY);
    expect((await again.getEpoch('k-1', 0))?.status).toBe('pending');
    expect(await again.getSealedShare('k-1', 0)).toEqual(Uint8Array.of(1, 2, 3));
  });

  it('malformed custody data refuses the whole write: no pending epoch either', async () => {
    const { s } = await store();
    const e = await s
      .putPendingEpoch(pending('k-2'), Uint8Array.of(1), { chainCode: 'zz', merkleRoot: null })
      .catch((x: unknown) => x);
    expect((e as { code?: string }).code).toBe('ValidationError');
    expect(await s.getEpoch('k-2', 0)).toBeUndefined();
    expect(await s.getCustody('k-2')).toBeUndefined();
  });

  it('goes with a discarded first epoch (the key is forgotten), not with a key that stays', async () => {
    const { s } = await store();
    await s.putPendingEpoch(pending('k-3'), Uint8Array.of(1), CUSTODY);
    expect(await s.discardPendingEpoch('k-3', 0)).toBe(true);
    expect(await s.getKey('k-3')).toBeUndefined();
    expect(await s.getCustody('k-3')).toBeUndefined();
    // Stored on its own (a key that keeps a record): a discard of another key leaves it alone.
    await s.putCustody('k-4', CUSTODY);
    await s.putPendingEpoch(pending('k-5'), Uint8Array.of(2), CUSTODY);
    await s.discardPendingEpoch('k-5', 0);
    expect(await s.getCustody('k-4')).toEqual(CUSTODY);
  });
});
