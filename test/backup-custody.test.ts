/**
 * Custody data (issue 14: chain code, Taproot merkle root) across backup, restore, import and
 * destroy (issue 16), on real node daemons behind the real coordinator:
 * - a FROST_SECP256K1_TR key with a merkle root and an Ed25519 key are backed up (the bundle's
 *   metadata carries each dealer's own custody data), destroyed on their committee (the nodes'
 *   custody records go with the shares, read back through the store API), forgotten by the
 *   coordinator (as a new coordinator would not know them) and restored into three other nodes:
 *   the key object's taproot, the address and public key at m/0/5, the descriptors and the xpub
 *   are the same as before, and signatures at m (with the merkle root) and at m/0/5 made by the new
 *   nodes verify with libsecp256k1 and node:crypto;
 * - a coordinator naming other custody data than a dealer's own gets no dealing, nor a dealer's
 *   signature on a bundle assembled with other custody data;
 * - an imported Taproot internal key has a taproot object, its addresses at m and m/0/5 are the
 *   ones @scure/btc-signer gives from the internal key and the xpub, and a node's stored chain
 *   code is the xpub's;
 * - a bundle whose custody metadata was altered does not verify.
 */
import { randomBytes, randomUUID, verify as nodeVerify } from 'node:crypto';
import { HDKey } from '@scure/bip32';
import { base64 } from '@scure/base';
import * as scure from '@scure/btc-signer';
import * as ecc from 'tiny-secp256k1';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  createOfficerKey,
  type KdfCost,
  officerOfKeyFile,
  officerToJson,
  sealToOfficer,
  withOfficerKey,
} from '../client/officer-key.ts';
import { loadNodeConfig } from '../node/config.ts';
import { NodeStore } from '../node/store.ts';
import { toHex, utf8ToBytes } from '../protocol/bytes.ts';
import {
  dealExternal,
  type ExternalDealing,
  type ExternalDealPlan,
  importDealer,
  importKeyOf,
  nodeEncryptionKey,
} from '../protocol/import-deal.ts';
import {
  type BackupBundle,
  decodeBundle,
  encodeBundle,
  restoreInputs,
  verifyBundle,
} from '../protocol/officer-backup.ts';
import { keySpec, type KeySpecName } from '../protocol/suites.ts';
import { publicKeyOfPeer } from '../net/identity.ts';
import { startTestCoordinator, type TestCoordinator } from './helpers/coordinator.ts';
import { edwardsPem } from './helpers/independent-verifiers.ts';

const COST: KdfCost = { opslimit: 1, memlimit: 8 * 1024 * 1024 };
const DAY = 24 * 3600 * 1000;
const FROM = ['node-1', 'node-2', 'node-3'];
const TO = ['node-4', 'node-5', 'node-6'];
const hex = (b: Uint8Array) => Buffer.from(b).toString('hex');
const buf = (h: string) => Buffer.from(h, 'hex');

let c: TestCoordinator;
beforeAll(async () => {
  c = await startTestCoordinator({ nodes: 6 });
}, 180_000);
afterAll(async () => {
  await c?.stop();
});

async function get(path: string) {
  const r = await c.call('GET', path);
  expect(r.status, `${path}: ${r.text}`).toBe(200);
  return r.body;
}

async function post(path: string, body: unknown, status = 200) {
  const r = await c.call('POST', path, body, { principal: c.admin });
  expect(r.status, `${path}: ${r.text}`).toBe(status);
  return r.body;
}

/** Everything the API says about where a key's funds are, for comparing before and after. */
async function outputsOf(keyId: string, spec: KeySpecName) {
  const k = await get(`/v1/keys/${keyId}`);
  const child = await get(`/v1/keys/${keyId}/public-key?path=m/0/5`);
  if (spec === 'FROST_ED25519')
    return {
      publicKey: k.publicKey,
      child,
      address: await get(`/v1/keys/${keyId}/address?network=solana&path=m/0/5`),
    };
  return {
    publicKey: k.publicKey,
    taproot: k.taproot,
    child,
    address: await get(`/v1/keys/${keyId}/address?network=regtest&path=m/0/5`),
    descriptor: await get(`/v1/keys/${keyId}/descriptor`),
    watchOnly: await get(`/v1/keys/${keyId}/descriptor?path=m/0/*`),
    xpub: await get(`/v1/keys/${keyId}/public-key?format=xpub`),
  };
}

/** What a node's own store holds of a key, read through the store API while the node is stopped. */
async function onStore(node: string, keyIds: readonly string[]) {
  await c.tc.stopNode(node);
  const store = await NodeStore.open(loadNodeConfig(c.tc.configPath(node)).dataDir);
  try {
    const out: Record<string, { state: string | undefined; custody: unknown }> = {};
    for (const id of keyIds)
      out[id] = { state: (await store.getKey(id))?.state, custody: await store.getCustody(id) };
    return out;
  } finally {
    await store.close();
    await c.restartNode(node);
  }
}

function externalBody(plan: ExternalDealPlan, dealings: readonly ExternalDealing[]) {
  return {
    sessionId: plan.sessionId,
    threshold: plan.threshold,
    participants: [...plan.participants],
    dealings: dealings.map((d) => ({
      dealer: d.dealer,
      commitments: d.commitments.map(toHex),
      ciphertexts: Object.fromEntries(Object.entries(d.ciphertexts).map(([n, x]) => [n, toHex(x)])),
    })),
  };
}

const nodeKeys = (ids: readonly string[]) =>
  Object.fromEntries(
    ids.map((id) => [id, nodeEncryptionKey(publicKeyOfPeer(c.peers.find((p) => p.id === id)!.peerId))]),
  );

describe('custody data across backup, restore, import and destroy (real nodes)', () => {
  const officers = ['officer-1', 'officer-2', 'officer-3'].map((name) => ({
    name,
    file: createOfficerKey(name, utf8ToBytes(`pw ${name}`), COST).file,
  }));
  const officerSet = { officers: officers.map((o) => officerToJson(officerOfKeyFile(o.file))), threshold: 2 };
  const merkleRoot = hex(randomBytes(32));
  const keys: Record<'tr' | 'ed', { keyId: string; spec: KeySpecName; before?: any; bundle?: BackupBundle }> =
    {
      tr: { keyId: '', spec: 'FROST_SECP256K1_TR' },
      ed: { keyId: '', spec: 'FROST_ED25519' },
    };
  let imported: { keyId: string; xpub: string };

  it('backs up a Taproot key with a merkle root and an Ed25519 key: the bundles carry the custody data', async () => {
    for (const k of Object.values(keys)) {
      const created = await post(
        '/v1/keys',
        {
          keySpec: k.spec,
          threshold: 2,
          participants: FROM,
          ...(k.spec === 'FROST_SECP256K1_TR' ? { merkleRoot } : {}),
        },
        201,
      );
      k.keyId = created.keyId;
      k.before = await outputsOf(k.keyId, k.spec);
      const out = await post(`/v1/keys/${k.keyId}/backups`, officerSet, 201);
      k.bundle = decodeBundle(base64.decode(out.bundle));
      expect(verifyBundle(k.bundle, { keyId: k.keyId })).toEqual([]);
    }
    const tr = keys.tr.bundle!.body.metadata;
    expect(tr.merkleRoot).toBe(merkleRoot);
    // The chain code is the xpub's: what wallets derive from is what the restored nodes will use.
    expect(tr.chainCode).toBe(hex(HDKey.fromExtendedKey(keys.tr.before.xpub.xpub).chainCode!));
    expect(keys.tr.before.taproot).toMatchObject({ merkleRoot });
    const ed = keys.ed.bundle!.body.metadata;
    expect(ed.chainCode).toMatch(/^[0-9a-f]{64}$/);
    expect(ed.merkleRoot).toBeUndefined();
  }, 120_000);

  it('a dealer refuses custody data that is not its own; an altered bundle does not verify', async () => {
    const path = `/v1/keys/${keys.tr.keyId}/backups`;
    const deal = (metadata: Record<string, string>) =>
      c.rpc('node-1', {
        op: 'backup-deal',
        keyId: keys.tr.keyId,
        epoch: 0,
        dealers: FROM.slice(0, 2),
        metadata,
        auth: c.authFor('POST', path, officerSet),
      });
    // Its own custody data, named or not, it deals with (and says so in its answer).
    const { chainCode } = keys.tr.bundle!.body.metadata;
    let bundleId = '';
    for (const metadata of [{ chainCode: chainCode!, merkleRoot }, {}]) {
      const dealt = await deal(metadata);
      expect(dealt.custody).toEqual({ chainCode, merkleRoot });
      bundleId = dealt.bundleId;
    }
    // Nor does it sign a bundle assembled with other custody data than it dealt with.
    const good = keys.tr.bundle!.body;
    const other = encodeBundle({
      body: { ...good, bundleId, metadata: { ...good.metadata, chainCode: hex(randomBytes(32)) } },
      signatures: [],
    });
    await expect(
      c.rpc('node-1', { op: 'backup-sign', keyId: keys.tr.keyId, bundleId, bundle: base64.encode(other) }),
    ).rejects.toThrow(/custody metadata/);
    await expect(deal({ chainCode: hex(randomBytes(32)), merkleRoot })).rejects.toThrow(/custody data/);
    await expect(
      deal({ chainCode: keys.tr.bundle!.body.metadata.chainCode!, merkleRoot: hex(randomBytes(32)) }),
    ).rejects.toThrow(/custody data/);

    const b = keys.tr.bundle!;
    const altered = (metadata: Record<string, string>) =>
      verifyBundle({ ...b, body: { ...b.body, metadata } }, { keyId: keys.tr.keyId }).map((p) => p.part);
    const { merkleRoot: _m, ...withoutRoot } = b.body.metadata;
    expect(altered({ ...b.body.metadata, chainCode: 'zz' })).toContain('metadata.chainCode');
    expect(altered({ ...b.body.metadata, merkleRoot: merkleRoot.toUpperCase() })).toContain(
      'metadata.merkleRoot',
    );
    const ed = keys.ed.bundle!;
    expect(
      verifyBundle({ ...ed, body: { ...ed.body, metadata: { ...ed.body.metadata, merkleRoot } } }).map(
        (p) => p.part,
      ),
    ).toContain('metadata.merkleRoot');
    // Well formed but not what the dealers signed: every dealer's proof and signature fail.
    for (const metadata of [{ ...b.body.metadata, chainCode: hex(randomBytes(32)) }, withoutRoot]) {
      const parts = altered(metadata);
      for (const d of b.body.dealings) {
        expect(parts).toContain(`dealings[${d.dealer}].proof`);
        expect(parts).toContain(`dealings[${d.dealer}].signature`);
      }
    }
  }, 60_000);

  it('an imported Taproot internal key: taproot object, addresses and chain code agree with scure and the nodes', async () => {
    const spec = keySpec('FROST_SECP256K1_TR');
    const secret = new Uint8Array(randomBytes(32));
    const { scalar, groupElement: Q } = importKeyOf(spec, secret);
    secret.fill(0);
    const dealer = importDealer(spec);
    const plan: ExternalDealPlan = {
      kind: 'import',
      keyId: randomUUID(),
      keySpec: spec.name,
      sessionId: randomUUID(),
      epoch: 0,
      threshold: 2,
      participants: FROM,
      groupElement: Q,
      dealers: { [dealer]: Q },
    };
    const dealing = dealExternal(plan, dealer, scalar, nodeKeys(FROM), sealToOfficer);
    const key = await post(
      '/v1/keys/import',
      {
        keyId: plan.keyId,
        keySpec: spec.name,
        groupElement: toHex(Q),
        taprootInternal: true,
        ...externalBody(plan, [dealing]),
      },
      201,
    );
    const internal = Q.subarray(1);
    const atM = scure.p2tr(internal, undefined, scure.TEST_NETWORK);
    expect(key.taproot).toEqual({
      internalKey: hex(internal),
      outputKey: hex(atM.tweakedPubkey),
      merkleRoot: null,
    });
    expect(key.publicKey).toBe(hex(atM.tweakedPubkey));
    expect((await get(`/v1/keys/${plan.keyId}/address?network=testnet`)).address).toBe(atM.address);
    const { xpub } = await get(`/v1/keys/${plan.keyId}/public-key?format=xpub`);
    const root = HDKey.fromExtendedKey(xpub);
    expect(hex(root.publicKey!.subarray(1))).toBe(hex(internal));
    const child = root.derive('m/0/5');
    const childOut = scure.p2tr(child.publicKey!.subarray(1), undefined, scure.TEST_NETWORK);
    expect((await get(`/v1/keys/${plan.keyId}/address?network=testnet&path=m/0/5`)).address).toBe(
      childOut.address,
    );
    // The nodes sign at m/0/5 with their own chain code: the signature verifies under scure's key.
    const message = randomBytes(32);
    const s = await post(`/v1/keys/${plan.keyId}/sign`, { message: hex(message), derivationPath: 'm/0/5' });
    expect(ecc.verifySchnorr(message, childOut.tweakedPubkey, buf(s.signature))).toBe(true);
    imported = { keyId: plan.keyId, xpub };
  }, 60_000);

  it('destroyed on its committee, a key leaves no custody record; a key kept keeps its own', async () => {
    for (const k of Object.values(keys))
      await post(`/v1/keys/${k.keyId}/schedule-deletion`, { pendingWindowDays: 7 });
    c.clock.t += 8 * DAY;
    const swept = await c.sweeper.sweep();
    expect(swept).toEqual(expect.arrayContaining([keys.tr.keyId, keys.ed.keyId]));
    const held = await onStore('node-1', [keys.tr.keyId, keys.ed.keyId, imported.keyId]);
    expect(held[keys.tr.keyId]).toEqual({ state: 'Destroyed', custody: undefined });
    expect(held[keys.ed.keyId]).toEqual({ state: 'Destroyed', custody: undefined });
    expect(held[imported.keyId]).toEqual({
      state: 'Enabled',
      custody: { chainCode: hex(HDKey.fromExtendedKey(imported.xpub).chainCode!), merkleRoot: null },
    });
  }, 90_000);

  it('restored into three other nodes, each key keeps its taproot object, addresses, descriptors and xpub, and signs at a path', async () => {
    for (const k of Object.values(keys)) {
      const spec = keySpec(k.spec);
      const bundle = k.bundle!;
      // The coordinator forgets the key, as a new coordinator would never have known it.
      const rec = await c.context.keys.get(k.keyId);
      await c.context.keys.releaseAlias(rec!, null);
      const { plan, dealings } = withOfficerKey(officers[0]!.file, utf8ToBytes('pw officer-1'), (a) =>
        withOfficerKey(officers[2]!.file, utf8ToBytes('pw officer-3'), (b) => {
          const inputs = restoreInputs(bundle, [a, b]);
          try {
            const plan: ExternalDealPlan = {
              kind: 'restore',
              keyId: k.keyId,
              keySpec: k.spec,
              sessionId: randomUUID(),
              epoch: 1,
              threshold: 2,
              participants: TO,
              groupElement: bundle.body.groupElement,
              dealers: Object.fromEntries(
                inputs.dealers.map((d) => [d, inputs.oldPublic.verifyingShares[d]!]),
              ),
            };
            const keysTo = nodeKeys(TO);
            const dealings = inputs.dealers.map((d) =>
              dealExternal(
                plan,
                d,
                spec.Point.Fn.fromBytes(inputs.keys.get(d)!.secret.signingShare),
                keysTo,
                sealToOfficer,
              ),
            );
            return { plan, dealings };
          } finally {
            inputs.wipe();
          }
        }),
      );
      const view = await post(
        `/v1/keys/${k.keyId}/restore`,
        { bundle: base64.encode(encodeBundle(bundle)), epoch: 1, ...externalBody(plan, dealings) },
        201,
      );
      expect(view).toMatchObject({ keyId: k.keyId, epoch: 1, participants: TO });
      expect(await outputsOf(k.keyId, k.spec)).toEqual(k.before);

      const message = randomBytes(32);
      const child = buf(k.before.child.publicKey);
      const atPath = await post(`/v1/keys/${k.keyId}/sign`, {
        message: hex(message),
        derivationPath: 'm/0/5',
      });
      if (k.spec === 'FROST_SECP256K1_TR') {
        expect(ecc.verifySchnorr(message, child, buf(atPath.signature))).toBe(true);
        // Key path at m: the output key with the merkle root, as before the restore.
        const atM = await post(`/v1/keys/${k.keyId}/sign`, { message: hex(message) });
        expect(ecc.verifySchnorr(message, buf(k.before.taproot.outputKey), buf(atM.signature))).toBe(true);
      } else {
        expect(nodeVerify(null, message, edwardsPem('FROST_ED25519', child), buf(atPath.signature))).toBe(
          true,
        );
      }
    }
  }, 120_000);
});
