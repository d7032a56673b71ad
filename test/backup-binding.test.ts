/**
 * What a node reads from a client-signed backup, restore or import request (node/backup.ts
 * bindBackupRequest, node/restore.ts readExternalRequest), pure: the operation and key come from
 * the signed path, every fact from the signed body (a restore's group key, officers and key spec
 * from the bundle, which the node verifies in full), and the policy sees a committee change, so the
 * admin quorum decides. Anything else is Unauthorized naming what does not fit.
 */
import { randomUUID } from 'node:crypto';
import { base64 } from '@scure/base';
import { describe, expect, it } from 'vitest';
import {
  createOfficerKey,
  type KdfCost,
  officerOfKeyFile,
  officerToJson,
  sealToOfficer,
} from '../client/officer-key.ts';
import { toHex, utf8ToBytes } from '../protocol/bytes.ts';
import { isKmsError } from '../protocol/errors.ts';
import { asEpoch } from '../protocol/ids.ts';
import {
  assembleBundle,
  type BackupPlan,
  dealToOfficers,
  encodeBundle,
  finishBundle,
  signBundle,
} from '../protocol/officer-backup.ts';
import { keySpec } from '../protocol/suites.ts';
import { bindBackupRequest } from '../node/backup.ts';
import { readExternalRequest } from '../node/restore.ts';
import { dkg, KEY_ID, pids } from './key-events-fixture.ts';

const COST: KdfCost = { opslimit: 1, memlimit: 8 * 1024 * 1024 };
const enc = (v: unknown) => new TextEncoder().encode(JSON.stringify(v));
const post = (path: string, body: unknown) => ({ method: 'POST', path, query: '', body: enc(body) });

function refusal(f: () => unknown): string {
  try {
    f();
  } catch (e) {
    if (isKmsError(e) && e.code === 'Unauthorized') return e.message;
    throw e;
  }
  throw new Error('expected Unauthorized');
}

const officers = ['officer-1', 'officer-2', 'officer-3'].map((n) =>
  officerToJson(officerOfKeyFile(createOfficerKey(n, utf8ToBytes(`pw ${n}`), COST).file)),
);

describe('backup request binding', () => {
  const path = `/v1/keys/${KEY_ID}/backups`;
  it('reads the officer set from the signed body and asks the policy for the admin quorum', () => {
    const b = bindBackupRequest(post(path, { officers, threshold: 2 }), { threshold: 3 });
    expect(b).toMatchObject({
      operation: 'CreateBackup',
      keyId: KEY_ID,
      keyEvent: { oldThreshold: 3, newThreshold: 2, committeeChanges: true },
    });
    expect(b.officerSet.officers.map((o) => o.name)).toEqual(['officer-1', 'officer-2', 'officer-3']);
  });
  it('refuses another path, a malformed officer set, and a key the node does not hold', () => {
    expect(
      refusal(() =>
        bindBackupRequest(post(`/v1/keys/${KEY_ID}/reshare`, { officers, threshold: 2 }), { threshold: 3 }),
      ),
    ).toContain('not a backup');
    expect(
      refusal(() =>
        bindBackupRequest(post(path, { officers: [{ name: 'x', publicKey: 'zz' }], threshold: 2 }), {
          threshold: 3,
        }),
      ),
    ).toContain('not an officer set');
    expect(refusal(() => bindBackupRequest(post(path, { officers, threshold: 2 }), undefined))).toContain(
      'does not hold',
    );
    expect(
      refusal(() =>
        bindBackupRequest({ ...post(path, { officers, threshold: 2 }), method: 'PUT' }, { threshold: 3 }),
      ),
    ).toContain('method');
  });
});

describe('restore and import request binding', () => {
  const spec = keySpec('FROST_ED25519');
  const keys = dkg(spec, 2, pids(spec, [1, 2, 3]));
  const dealers = pids(spec, [1, 3]);
  const plan: BackupPlan = {
    bundleId: randomUUID(),
    keyId: KEY_ID,
    keySpec: 'FROST_ED25519',
    epoch: asEpoch(4),
    metadata: { alias: 'treasury' },
    committee: keys.get(dealers[0]!)!.public,
    officerSet: {
      officers: officers.map((o) => ({ name: o.name, publicKey: Buffer.from(o.publicKey, 'hex') })),
      threshold: 2,
    },
    dealers,
  };
  const dealt = dealers.map((d) => dealToOfficers(plan, keys.get(d)!, sealToOfficer));
  const body = assembleBundle(plan, dealt);
  const bundle = base64.encode(
    encodeBundle(
      finishBundle(
        body,
        dealers.map((d, i) => signBundle(body, keys.get(d)!, dealt[i]!)),
      ),
    ),
  );
  // Placeholder dealings: binding reads facts, the dealings' arithmetic is receiveExternal's.
  const dealing = (dealer: string) => ({
    dealer,
    commitments: [toHex(body.groupElement), toHex(body.groupElement)],
    ciphertexts: { 'node-6': '00', 'node-7': '00' },
  });
  const officerIds = pids(spec, [1, 2]);
  const restore = (over: Record<string, unknown> = {}) => ({
    bundle,
    epoch: 5,
    sessionId: 's-1',
    threshold: 2,
    participants: ['node-6', 'node-7'],
    dealings: officerIds.map(dealing),
    ...over,
  });

  it('takes the group key, key spec and officers from the verified bundle', () => {
    const r = readExternalRequest('restore', post(`/v1/keys/${KEY_ID}/restore`, restore()));
    expect(r).toMatchObject({ operation: 'RestoreKey', keyId: KEY_ID, keyEvent: { committeeChanges: true } });
    expect(toHex(r.plan.groupElement)).toBe(toHex(body.groupElement));
    expect(Object.keys(r.plan.dealers).sort()).toEqual([...officerIds].sort());
    expect(r.metadata).toMatchObject({ alias: 'treasury' });
  });
  it('refuses a bundle of another key, an epoch not after the backup, too few dealings, a non-officer dealer', () => {
    const other = randomUUID();
    expect(
      refusal(() => readExternalRequest('restore', post(`/v1/keys/${other}/restore`, restore()))),
    ).toContain('keyId');
    expect(
      refusal(() =>
        readExternalRequest('restore', post(`/v1/keys/${KEY_ID}/restore`, restore({ epoch: 4 }))),
      ),
    ).toContain('must follow');
    expect(
      refusal(() =>
        readExternalRequest(
          'restore',
          post(`/v1/keys/${KEY_ID}/restore`, restore({ dealings: [dealing(officerIds[0]!)] })),
        ),
      ),
    ).toContain('exactly 2');
    const stranger = pids(spec, [9])[0]!;
    expect(
      refusal(() =>
        readExternalRequest(
          'restore',
          post(
            `/v1/keys/${KEY_ID}/restore`,
            restore({ dealings: [dealing(officerIds[0]!), dealing(stranger)] }),
          ),
        ),
      ),
    ).toContain('not an officer');
    // One bit of the bundle changed: the node's own verification of it fails.
    const raw = base64.decode(bundle);
    raw[raw.length - 3]! ^= 1;
    expect(
      refusal(() =>
        readExternalRequest(
          'restore',
          post(`/v1/keys/${KEY_ID}/restore`, restore({ bundle: base64.encode(raw) })),
        ),
      ),
    ).toMatch(/restore body/);
  });
  it('an import takes the claimed key from the body; a Taproot import must be an even-y internal key', () => {
    const imp = (over: Record<string, unknown>) => ({
      keyId: randomUUID(),
      keySpec: 'FROST_SECP256K1_TR',
      groupElement: `02${'11'.repeat(32)}`,
      sessionId: 's-2',
      threshold: 2,
      participants: ['node-6', 'node-7'],
      dealings: [dealing(pids(keySpec('FROST_SECP256K1_TR'), [1])[0]!)],
      ...over,
    });
    expect(refusal(() => readExternalRequest('import', post('/v1/keys/import', imp({}))))).toContain(
      'internal key',
    );
    expect(
      refusal(() =>
        readExternalRequest(
          'import',
          post('/v1/keys/import', imp({ taprootInternal: true, groupElement: `03${'11'.repeat(32)}` })),
        ),
      ),
    ).toContain('internal key');
    const ok = readExternalRequest('import', post('/v1/keys/import', imp({ taprootInternal: true })));
    expect(ok).toMatchObject({
      operation: 'ImportKey',
      kind: 'import',
      plan: { epoch: 0, keySpec: 'FROST_SECP256K1_TR' },
    });
    expect(
      refusal(() =>
        readExternalRequest('import', post(`/v1/keys/${KEY_ID}/restore`, imp({ taprootInternal: true }))),
      ),
    ).toContain('not an import');
  });
});
