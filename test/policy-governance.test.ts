/**
 * The governance chain (policy/governance.ts): genesis fixed by its configured hash; every later
 * version names its predecessor's hash and carries k valid signatures of distinct admins of the
 * current version. Real Ed25519 and ECDSA P-256 admin keys sign.
 */
import { ed25519 } from '@noble/curves/ed25519.js';
import { p256 } from '@noble/curves/nist.js';
import { describe, expect, it } from 'vitest';
import {
  acceptGovernance,
  type Governance,
  type GovernanceSignature,
  governanceHash,
  governanceSigningBytes,
  parseGovernance,
} from '../policy/governance.ts';

type Admin = {
  id: string;
  alg: 'ed25519' | 'ecdsa-p256-sha256';
  publicKey: string;
  sign: (b: Uint8Array) => Uint8Array;
};
const b64u = (b: Uint8Array) => Buffer.from(b).toString('base64url');
function edAdmin(id: string): Admin {
  const sk = ed25519.utils.randomSecretKey();
  return { id, alg: 'ed25519', publicKey: b64u(ed25519.getPublicKey(sk)), sign: (b) => ed25519.sign(b, sk) };
}
function p256Admin(id: string): Admin {
  const sk = p256.utils.randomSecretKey();
  return {
    id,
    alg: 'ecdsa-p256-sha256',
    publicKey: b64u(p256.getPublicKey(sk)),
    sign: (b) => p256.sign(b, sk, { prehash: true, format: 'compact' }),
  };
}

const a1 = edAdmin('admin1');
const a2 = p256Admin('admin2');
const a3 = edAdmin('admin3');
const outsider = edAdmin('mallory');
const pub = ({ id, alg, publicKey }: Admin) => ({ id, alg, publicKey });

const genesis: Governance = parseGovernance({
  version: 1,
  previous: null,
  principals: [a1, a2, a3, outsider].map(pub),
  groups: { admins: ['admin1', 'admin2', 'admin3'] },
  admins: { group: 'admins', quorum: 2 },
  policies: [],
});
const GENESIS = governanceHash(genesis);

function next(prev: Governance, change: Partial<Governance> = {}): Governance {
  return { ...prev, ...change, version: prev.version + 1, previous: governanceHash(prev) };
}
function sigs(doc: Governance, ...by: Admin[]): GovernanceSignature[] {
  const bytes = governanceSigningBytes(governanceHash(doc));
  return by.map((a) => ({ principal: a.id, signature: Buffer.from(a.sign(bytes)).toString('base64') }));
}

describe('governance chain', () => {
  it('accepts the configured genesis only', () => {
    expect(acceptGovernance(undefined, genesis, [], GENESIS)).toEqual(genesis);
    const other = { ...genesis, admins: { group: 'admins', quorum: 1 } };
    expect(() => acceptGovernance(undefined, other, [], GENESIS)).toThrow(/genesis/);
  });

  it('accepts a successor with the admin quorum (Ed25519 + P-256 admins)', () => {
    const v2 = next(genesis, { groups: { admins: ['admin1', 'admin2', 'admin3'], ops: ['mallory'] } });
    expect(acceptGovernance(genesis, v2, sigs(v2, a1, a2), GENESIS).version).toBe(2);
  });

  it('refuses fewer than k distinct admins, outsiders, duplicates and signatures over another version', () => {
    const v2 = next(genesis, { admins: { group: 'admins', quorum: 1 } });
    expect(() => acceptGovernance(genesis, v2, sigs(v2, a1), GENESIS)).toThrow(/1 valid admin signature/);
    expect(() => acceptGovernance(genesis, v2, sigs(v2, a1, a1), GENESIS)).toThrow(/1 valid admin signature/);
    expect(() => acceptGovernance(genesis, v2, sigs(v2, a1, outsider), GENESIS)).toThrow(/admin quorum/);
    const v2b = next(genesis, { admins: { group: 'admins', quorum: 3 } });
    expect(() => acceptGovernance(genesis, v2, sigs(v2b, a1, a2), GENESIS)).toThrow(/admin quorum/);
  });

  it("the quorum is the current version's: a version cannot vouch for itself", () => {
    // v2 makes mallory the only admin with quorum 1; only admins of v1 can approve it.
    const v2 = next(genesis, { groups: { admins: ['mallory'] }, admins: { group: 'admins', quorum: 1 } });
    expect(() => acceptGovernance(genesis, v2, sigs(v2, outsider), GENESIS)).toThrow(/admin quorum/);
    const accepted = acceptGovernance(genesis, v2, sigs(v2, a1, a3), GENESIS);
    // From v2 on, mallory alone governs (as the admins of v1 agreed).
    const v3 = next(accepted, { policies: [] });
    expect(acceptGovernance(accepted, v3, sigs(v3, outsider), GENESIS).version).toBe(3);
  });

  it('refuses a broken chain: skipped version, wrong previous hash', () => {
    const skip = { ...next(genesis), version: 3 };
    expect(() => acceptGovernance(genesis, skip, sigs(skip, a1, a2), GENESIS)).toThrow(/does not follow/);
    const wrongPrev = { ...next(genesis), previous: '0'.repeat(64) };
    expect(() => acceptGovernance(genesis, wrongPrev, sigs(wrongPrev, a1, a2), GENESIS)).toThrow(
      /previous hash/,
    );
  });

  it('validates documents: unknown group members, quorum above the admins, duplicate principals', () => {
    expect(() => parseGovernance({ ...genesis, groups: { admins: ['admin1', 'nobody'] } })).toThrow(
      /unknown principal/,
    );
    expect(() => parseGovernance({ ...genesis, admins: { group: 'admins', quorum: 4 } })).toThrow(/exceeds/);
    expect(() =>
      parseGovernance({ ...genesis, principals: [...genesis.principals, genesis.principals[0]] }),
    ).toThrow(/twice/);
    expect(() => parseGovernance({ ...genesis, extra: 1 })).toThrow(/governance/);
  });
});
