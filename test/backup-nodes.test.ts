/**
 * Backup, restore and import against real node daemons (in-process, real libp2p, LevelDB, the real
 * coordinator), with a genesis whose admin quorum is 2: each node decides for itself.
 * - a backup signed by one admin is pending on every dealer until a second admin approves; then the
 *   bundle verifies against the key's public key and the key keeps its epoch;
 * - a coordinator (raw RPCs with the real coordinator identity) cannot reuse a signed backup request
 *   for another key, nor get a dealer to sign a bundle assembled with another officer set;
 * - a restore into three members that do not hold the key: a dealing sealed to the wrong node is
 *   refused by that node naming the officer, nothing is committed, and a retry with good dealings
 *   brings the key back with the same group element at a new epoch;
 * - an import needs the admin quorum too; the key's origin is IMPORTED and every node's audit says
 *   so.
 */
import { randomBytes, randomUUID } from 'node:crypto';
import { ed25519 } from '@noble/curves/ed25519.js';
import { base64 } from '@scure/base';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  createOfficerKey,
  type KdfCost,
  officerOfKeyFile,
  officerToJson,
  sealToOfficer,
  withOfficerKey,
} from '../client/officer-key.ts';
import { toHex, utf8ToBytes } from '../protocol/bytes.ts';
import {
  dealExternal,
  type ExternalDealing,
  type ExternalDealPlan,
  importDealer,
  importKeyOf,
  nodeEncryptionKey,
} from '../protocol/import-deal.ts';
import { decodeBundle, encodeBundle, restoreInputs, verifyBundle } from '../protocol/officer-backup.ts';
import { keySpec } from '../protocol/suites.ts';
import { publicKeyOfPeer } from '../net/identity.ts';
import { type ClusterCoordinator, adminGenesis, startClusterCoordinator } from './helpers/coordinator.ts';

const COST: KdfCost = { opslimit: 1, memlimit: 8 * 1024 * 1024 };
const spec = keySpec('FROST_ED25519');

function externalBody(plan: ExternalDealPlan, dealings: readonly ExternalDealing[]) {
  return {
    sessionId: plan.sessionId,
    threshold: plan.threshold,
    participants: [...plan.participants],
    dealings: dealings.map((d) => ({
      dealer: d.dealer,
      commitments: d.commitments.map(toHex),
      ciphertexts: Object.fromEntries(Object.entries(d.ciphertexts).map(([n, c]) => [n, toHex(c)])),
    })),
  };
}

describe('backup, restore and import on real nodes, admin quorum 2', () => {
  let c: ClusterCoordinator;
  let keyId: string;
  let groupElement: string;
  const officers = ['officer-1', 'officer-2', 'officer-3'].map((name) => ({
    name,
    file: createOfficerKey(name, utf8ToBytes(`pw ${name}`), COST).file,
  }));
  const officerSet = { officers: officers.map((o) => officerToJson(officerOfKeyFile(o.file))), threshold: 2 };
  let bundleBytes: Uint8Array;

  const nodeKeys = (ids: readonly string[]) =>
    Object.fromEntries(
      ids.map((id) => [id, nodeEncryptionKey(publicKeyOfPeer(c.peers.find((p) => p.id === id)!.peerId))]),
    );

  /** A signed request that waits for the second admin, approved by it: the executed request. */
  async function withQuorum(path: string, body: unknown): Promise<any> {
    const r = await c.call('POST', path, body, { principal: c.admin });
    expect(r.status, r.text).toBe(202);
    expect(r.body.needed).toEqual([{ group: 'admins', needed: 2, have: ['admin'] }]);
    const a = await c.call(
      'POST',
      `/v1/requests/${r.body.requestId}/approvals`,
      { requestDigest: r.body.digest },
      { principal: c.admin2 },
    );
    expect(a.status, a.text).toBe(200);
    const done = (await c.call('GET', `/v1/requests/${r.body.requestId}`)).body;
    expect(done.state, JSON.stringify(done.error ?? done)).toBe('Executed');
    return done.result.body;
  }

  beforeAll(async () => {
    c = await startClusterCoordinator(6, {
      genesis: (admin, admin2) => ({
        ...adminGenesis([admin, admin2]),
        admins: { group: 'admins', quorum: 2 },
      }),
    });
    const k = await c.call('POST', '/v1/keys', {
      keySpec: 'FROST_ED25519',
      threshold: 2,
      participants: ['node-1', 'node-2', 'node-3'],
    });
    expect(k.status, k.text).toBe(201);
    keyId = k.body.keyId;
    groupElement = k.body.publicKey;
  }, 120_000);
  afterAll(async () => {
    await c?.stop();
  });

  it('a backup waits for the second admin; the bundle then verifies and the key keeps its epoch', async () => {
    const out = await withQuorum(`/v1/keys/${keyId}/backups`, officerSet);
    expect(out).toMatchObject({
      keyId,
      epoch: 0,
      threshold: 2,
      officers: ['officer-1', 'officer-2', 'officer-3'],
    });
    bundleBytes = base64.decode(out.bundle);
    const bundle = decodeBundle(bundleBytes);
    expect(verifyBundle(bundle, { keyId, publicKey: Buffer.from(groupElement, 'hex') })).toEqual([]);
    expect(bundle.body.metadata.origin).toBe('THRESHOLD_DKG');
    const key = (await c.call('GET', `/v1/keys/${keyId}`)).body;
    expect(key).toMatchObject({ epoch: 0, state: 'Enabled', origin: 'THRESHOLD_DKG' });
  }, 60_000);

  it('the online epoch keeps signing while a backup runs', async () => {
    const k = (await c.call('GET', `/v1/keys/${keyId}`)).body;
    const path = `/v1/keys/${keyId}/backups`;
    const [backup, ...signed] = await Promise.all([
      c.cluster.backups!.backup({
        key: {
          keyId,
          keySpec: 'FROST_ED25519',
          epoch: 0,
          threshold: 2,
          participants: k.participants,
          publicKey: k.publicKey,
          groupElement: k.publicKey,
          transcriptHash: '',
        },
        officerSet,
        metadata: {},
        auth: c.authFor('POST', path, officerSet, { approvers: [c.admin2] }),
      }),
      ...['01', '02', '03'].map((m) => c.call('POST', `/v1/keys/${keyId}/sign`, { message: m })),
    ]);
    expect(
      verifyBundle(decodeBundle(backup.bundle), { keyId, publicKey: Buffer.from(groupElement, 'hex') }),
    ).toEqual([]);
    for (const [i, s] of signed.entries()) {
      expect(s.status, s.text).toBe(200);
      expect(s.body.epoch).toBe(0);
      expect(
        ed25519.verify(
          Buffer.from(s.body.signature, 'hex'),
          Uint8Array.of(i + 1),
          Buffer.from(groupElement, 'hex'),
        ),
      ).toBe(true);
    }
  }, 60_000);

  it('the coordinator cannot reuse a backup request for another key, or get another officer set signed', async () => {
    const path = `/v1/keys/${keyId}/backups`;
    const auth = c.authFor('POST', path, officerSet, { approvers: [c.admin2] });
    const other = randomUUID();
    await expect(
      c.rpc('node-1', {
        op: 'backup-deal',
        keyId: other,
        epoch: 0,
        dealers: ['node-1', 'node-2'],
        metadata: {},
        auth,
      }),
    ).rejects.toThrow(/does not match|Unauthorized|no share/);
    // A genuine dealing of node-1 and node-2, then a bundle assembled with another officer set.
    const dealt = await Promise.all(
      ['node-1', 'node-2'].map((n) =>
        c.rpc(
          n,
          { op: 'backup-deal', keyId, epoch: 0, dealers: ['node-1', 'node-2'], metadata: {}, auth },
          20_000,
        ),
      ),
    );
    const good = decodeBundle(bundleBytes).body;
    const dealings = dealt.map((a) => ({
      dealer: a.dealing.dealer,
      commitments: a.dealing.commitments.map((x: string) => Buffer.from(x, 'hex')),
      ciphertexts: a.dealing.ciphertexts.map((x: string) => Buffer.from(x, 'hex')),
      proof: { R: Buffer.from(a.dealing.proof.R, 'hex'), z: Buffer.from(a.dealing.proof.z, 'hex') },
    }));
    const swappedSet = {
      ...good.officerSet,
      officers: [good.officerSet.officers[1]!, good.officerSet.officers[0]!, good.officerSet.officers[2]!],
    };
    const forged = encodeBundle({
      body: {
        ...good,
        bundleId: dealt[0].bundleId,
        officerSet: swappedSet,
        dealings: dealings.map((d) => ({
          ...d,
          commitments: d.commitments.map((x: Buffer) => new Uint8Array(x)),
          ciphertexts: d.ciphertexts.map((x: Buffer) => new Uint8Array(x)),
          proof: { R: new Uint8Array(d.proof.R), z: new Uint8Array(d.proof.z) },
        })),
      },
      signatures: [],
    });
    await expect(
      c.rpc('node-1', {
        op: 'backup-sign',
        keyId,
        bundleId: dealt[0].bundleId,
        bundle: base64.encode(forged),
      }),
    ).rejects.toThrow(/refusing to sign|proof/);
  }, 60_000);

  it('a restore into members without the key: a misdirected sub-share is refused naming its officer; a good retry restores', async () => {
    const bundle = decodeBundle(bundleBytes);
    const to = ['node-4', 'node-5', 'node-6'];
    const keys = nodeKeys(to);
    const deal = (misdirect: boolean) =>
      withOfficerKey(officers[0]!.file, utf8ToBytes('pw officer-1'), (a) =>
        withOfficerKey(officers[2]!.file, utf8ToBytes('pw officer-3'), (b) => {
          const inputs = restoreInputs(bundle, [a, b]);
          try {
            const plan: ExternalDealPlan = {
              kind: 'restore',
              keyId,
              keySpec: 'FROST_ED25519',
              sessionId: randomUUID(),
              epoch: 1,
              threshold: 2,
              participants: to,
              groupElement: bundle.body.groupElement,
              dealers: Object.fromEntries(
                inputs.dealers.map((d) => [d, inputs.oldPublic.verifyingShares[d]!]),
              ),
            };
            const dealings = inputs.dealers.map((d) =>
              dealExternal(
                plan,
                d,
                spec.Point.Fn.fromBytes(inputs.keys.get(d)!.secret.signingShare),
                keys,
                sealToOfficer,
              ),
            );
            if (misdirect) {
              const d0 = dealings[0]!;
              dealings[0] = {
                ...d0,
                ciphertexts: { ...d0.ciphertexts, 'node-5': d0.ciphertexts['node-4']! },
              };
            }
            return { plan, dealings };
          } finally {
            inputs.wipe();
          }
        }),
      );
    const run = (p: { plan: ExternalDealPlan; dealings: ExternalDealing[] }) => {
      const body = {
        bundle: base64.encode(bundleBytes),
        epoch: p.plan.epoch,
        ...externalBody(p.plan, p.dealings),
      };
      return c.cluster.backups!.external({
        kind: 'restore',
        keyId,
        keySpec: 'FROST_ED25519',
        groupElement,
        epoch: 1,
        threshold: 2,
        participants: to,
        sessionId: p.plan.sessionId,
        auth: c.authFor('POST', `/v1/keys/${keyId}/restore`, body, { approvers: [c.admin2] }),
      });
    };
    const bad = deal(true);
    const e = await run(bad).catch((x) => x);
    expect(e.code).toBe('ParticipantMisbehaved');
    expect(e.culprits).toEqual(
      expect.arrayContaining([
        expect.objectContaining({ participant: bad.dealings[0]!.dealer, reason: 'malformed-message' }),
      ]),
    );
    // Nothing committed: no member holds an epoch of the key.
    for (const n of to) await expect(c.rpc(n, { op: 'public', keyId })).rejects.toThrow();

    const info = await run(deal(false));
    expect(info).toMatchObject({ keyId, epoch: 1, groupElement, publicKey: groupElement, participants: to });
    for (const n of to) {
      const p = await c.rpc(n, { op: 'public', keyId });
      expect(p).toMatchObject({ epoch: 1, threshold: 2, participants: to });
      expect(p.public.commitments[0]).toBe(groupElement);
      expect(p.unconfirmed).toBeUndefined();
    }
  }, 90_000);

  it('an import needs the admin quorum; its origin is IMPORTED, in the key and in every node audit', async () => {
    const seed = new Uint8Array(randomBytes(32));
    const { scalar, groupElement: Q } = importKeyOf(spec, seed);
    const to = ['node-1', 'node-2', 'node-3'];
    const dealer = importDealer(spec);
    const plan: ExternalDealPlan = {
      kind: 'import',
      keyId: randomUUID(),
      keySpec: 'FROST_ED25519',
      sessionId: randomUUID(),
      epoch: 0,
      threshold: 2,
      participants: to,
      groupElement: Q,
      dealers: { [dealer]: Q },
    };
    const dealing = dealExternal(plan, dealer, scalar, nodeKeys(to), sealToOfficer);
    // The key the seed's RFC 8032 public key is, by the curve library.
    expect(toHex(Q)).toBe(toHex(ed25519.getPublicKey(seed)));
    seed.fill(0);
    const key = await withQuorum('/v1/keys/import', {
      keyId: plan.keyId,
      keySpec: 'FROST_ED25519',
      groupElement: toHex(Q),
      alias: 'imported',
      ...externalBody(plan, [dealing]),
    });
    expect(key).toMatchObject({
      keyId: plan.keyId,
      origin: 'IMPORTED',
      epoch: 0,
      state: 'Enabled',
      publicKey: toHex(Q),
    });
    const s = await c.call('POST', `/v1/keys/${plan.keyId}/sign`, { message: '6869' });
    expect(s.status, s.text).toBe(200);
    expect(ed25519.verify(Buffer.from(s.body.signature, 'hex'), Buffer.from('hi'), Q)).toBe(true);
    for (const n of to) {
      const page = await c.rpc(n, { op: 'audit', limit: 500 });
      const rec = page.records.find(
        (r: any) => r.entry.event === 'key.imported' && r.entry.keyId === plan.keyId,
      );
      expect(rec?.entry).toMatchObject({ origin: 'IMPORTED', initiator: 'admin', epoch: 0 });
    }
  }, 60_000);
});
