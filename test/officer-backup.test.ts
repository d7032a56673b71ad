/**
 * Backup of a key to recovery officers (issue 16), in pure form: real 3-of-5 keys from the real DKG
 * (Ed25519 and BIP340), dealt by 3 of their members to 3 officers, 2 of 3, with real libsodium
 * sealed boxes and passphrase-encrypted officer key files (client/officer-key.ts). Any 2 officers
 * hold a signing capability for the SAME group key, 1 does not, and a real reshare from 2 officers
 * to 5 fresh members (the restore path) gives shares that sign under the original public key.
 * Tampering with the bundle fails `verifyBundle` (anyone) or `officerShare` (the officer), naming
 * the part and the dealer; a dealer sealing a bad sub-share to one officer passes every public check
 * and is caught and named by that officer alone (what is not publicly verifiable).
 */
import { randomUUID } from 'node:crypto';
import type { Key } from '@noble/curves/abstract/frost.js';
import { beforeAll, describe, expect, it } from 'vitest';
import {
  createOfficerKey,
  type KdfCost,
  officerOfKeyFile,
  officerSetFromJson,
  officerToJson,
  sealToOfficer,
  unlockOfficerKey,
  withOfficerKey,
} from '../client/officer-key.ts';
import { utf8ToBytes } from '../protocol/bytes.ts';
import { isKmsError, type KmsError } from '../protocol/errors.ts';
import { asEpoch, type ParticipantId } from '../protocol/ids.ts';
import {
  assembleBundle,
  type BackupBundle,
  type BackupPlan,
  BINDING_LENGTH,
  decodeBundle,
  dealToOfficers,
  encodeBundle,
  finishBundle,
  type OfficerOpener,
  type OfficerSet,
  officerIndexOf,
  officerPackage,
  officerShare,
  proveDealing,
  restoreInputs,
  type Seal,
  signBundle,
  validatePlan,
  verifyBundle,
  verifyOfficerConfirmation,
} from '../protocol/officer-backup.ts';
import { type KeySpec, keySpec, publicKeyFromGroupElement } from '../protocol/suites.ts';
import {
  belowThresholdFails,
  canSign,
  dkg,
  interpolatesToGroup,
  KEY_ID,
  newKeys,
  pids,
  runReshare,
} from './key-events-fixture.ts';

/** Cheap Argon2id for tests (the default is libsodium's MODERATE: 256 MiB). */
const TEST_COST: KdfCost = { opslimit: 1, memlimit: 8 * 1024 * 1024 };
const NAMES = ['officer-1', 'officer-2', 'officer-3'] as const;
const passphrase = (name: string) => utf8ToBytes(`correct horse battery staple of ${name}`);

type OfficerFixture = { name: string; file: string };

function makeOfficers(): { files: OfficerFixture[]; set: OfficerSet } {
  const files = NAMES.map((name) => ({
    name,
    file: createOfficerKey(name, passphrase(name), TEST_COST).file,
  }));
  // Through the JSON the CLI prints and reads, as an operator would assemble officers.json.
  const set = officerSetFromJson({
    officers: files.map((f) => officerToJson(officerOfKeyFile(f.file))),
    threshold: 2,
  });
  return { files, set };
}

function planFor(spec: KeySpec, keys: Map<ParticipantId, Key>, dealers: ParticipantId[], set: OfficerSet) {
  const plan: BackupPlan = {
    bundleId: randomUUID(),
    keyId: KEY_ID,
    keySpec: spec.name,
    epoch: asEpoch(0),
    metadata: { alias: 'treasury', origin: 'AWS_KMS' },
    committee: keys.get(dealers[0]!)!.public,
    officerSet: set,
    dealers,
  };
  return plan;
}

/** The whole backup run in memory: every dealer deals, the collector assembles, every dealer signs. */
function backup(
  plan: BackupPlan,
  keys: Map<ParticipantId, Key>,
  sealOf: (dealer: ParticipantId) => Seal = () => sealToOfficer,
): BackupBundle {
  const dealings = plan.dealers.map((d) => dealToOfficers(plan, keys.get(d)!, sealOf(d)));
  const body = assembleBundle(plan, dealings);
  return finishBundle(
    body,
    plan.dealers.map((d, i) => signBundle(body, keys.get(d)!, dealings[i]!)),
  );
}

/** Officer j's verified share, with its key file unlocked only for the call. */
function shareOf(bundle: BackupBundle, files: OfficerFixture[], j: number) {
  const f = files[j - 1]!;
  return withOfficerKey(f.file, passphrase(f.name), (k) => officerShare(bundle, j, k));
}

/** A deep copy to tamper with (through the codec: also proves the round trip). */
const copy = (b: BackupBundle): any => decodeBundle(encodeBundle(b));

function thrown(f: () => unknown): KmsError {
  try {
    f();
  } catch (e) {
    if (isKmsError(e)) return e;
    throw e;
  }
  throw new Error('expected an error');
}

const parts = (b: BackupBundle) => verifyBundle(b).map((p) => p.part);

describe.each(['FROST_ED25519', 'FROST_SECP256K1_TR'] as const)(
  'officer backup of a 3-of-5 %s key',
  (name) => {
    const spec = keySpec(name);
    const members = pids(spec, [1, 2, 3, 4, 5]);
    const dealers = pids(spec, [2, 4, 5]);
    let keys: Map<ParticipantId, Key>;
    let group: Uint8Array;
    let officers: { files: OfficerFixture[]; set: OfficerSet };
    let bundle: BackupBundle;

    beforeAll(() => {
      keys = dkg(spec, 3, members);
      group = keys.get(members[0]!)!.public.commitments[0]!;
      officers = makeOfficers();
      bundle = backup(planFor(spec, keys, dealers, officers.set), keys);
    });

    it('verifyBundle passes (also against the key id and public key), and the file round-trips byte for byte', () => {
      expect(verifyBundle(bundle)).toEqual([]);
      expect(
        verifyBundle(bundle, { keyId: KEY_ID, publicKey: publicKeyFromGroupElement(spec, group) }),
      ).toEqual([]);
      const file = encodeBundle(bundle);
      expect(encodeBundle(decodeBundle(file))).toEqual(file);
      expect(decodeBundle(file).body.metadata).toEqual({ alias: 'treasury', origin: 'AWS_KMS' });
      // The officers' package opens to the key's group element.
      expect(officerPackage(bundle).commitments[0]).toEqual(group);
    });

    it('any 2 officers hold a signing capability for the same group key; 1 officer does not', () => {
      const shares = [1, 2, 3].map((j) => shareOf(bundle, officers.files, j));
      for (const [a, b] of [
        [0, 1],
        [0, 2],
        [1, 2],
      ] as const) {
        const pair = [shares[a]!.key, shares[b]!.key];
        expect(interpolatesToGroup(spec, pair, group)).toBe(true);
        // The officers' keys are a real 2-of-3 FROST key: they sign under the original public key.
        expect(canSign(spec, pair, group)).toBe(true);
      }
      for (const s of shares) expect(belowThresholdFails(spec, [s.key], group)).toBe(true);
    });

    it("each officer's confirmation verifies publicly and is bound to its officer and bundle", () => {
      const s1 = shareOf(bundle, officers.files, 1);
      expect(verifyOfficerConfirmation(bundle, s1.confirmation)).toBe(true);
      expect(verifyOfficerConfirmation(bundle, { ...s1.confirmation, officer: 2, name: 'officer-2' })).toBe(
        false,
      );
      const other = backup(planFor(spec, keys, dealers, officers.set), keys);
      expect(verifyOfficerConfirmation(other, { ...s1.confirmation, bundleId: other.body.bundleId })).toBe(
        false,
      );
      // It carries public data only: no share.
      expect(Object.keys(s1.confirmation).sort()).toEqual([
        'R',
        'bundleId',
        'name',
        'officer',
        'verifyingShare',
        'z',
      ]);
    });

    it('restore: 2 officers reshare to 5 fresh members, whose shares of the same key sign', () => {
      const openers = [1, 3].map((j) =>
        unlockOfficerKey(officers.files[j - 1]!.file, passphrase(NAMES[j - 1]!)),
      );
      const inputs = restoreInputs(bundle, openers);
      for (const o of openers) o.wipe();
      expect(inputs.dealers.length).toBe(2);
      const fresh = pids(spec, [6, 7, 8, 9, 10]);
      const out = runReshare(spec, new Map(inputs.keys), {
        oldEpoch: bundle.body.epoch,
        dealers: [...inputs.dealers],
        newParticipants: fresh,
        newThreshold: 3,
      });
      // The officers' decrypted shares are wiped once the reshare is over.
      inputs.wipe();
      for (const k of inputs.keys.values()) expect(k.secret.signingShare.every((b) => b === 0)).toBe(true);
      expect([...out.errors]).toEqual([]);
      const restored = newKeys(out);
      expect([...restored.keys()].sort()).toEqual(fresh);
      for (const k of restored.values()) expect(k.public.commitments[0]).toEqual(group);
      expect(
        canSign(
          spec,
          fresh.slice(0, 3).map((id) => restored.get(id)!),
          group,
        ),
      ).toBe(true);
      expect(
        canSign(
          spec,
          fresh.slice(2, 5).map((id) => restored.get(id)!),
          group,
        ),
      ).toBe(true);
      expect(
        belowThresholdFails(
          spec,
          fresh.slice(0, 2).map((id) => restored.get(id)!),
          group,
        ),
      ).toBe(true);
    });
  },
);

describe('tampering, misbehaving dealers and officer key errors (Ed25519)', () => {
  const spec = keySpec('FROST_ED25519');
  const members = pids(spec, [1, 2, 3, 4, 5]);
  const dealers = pids(spec, [1, 3, 4]);
  const [d1, d3] = [dealers[0]!, dealers[1]!];
  let keys: Map<ParticipantId, Key>;
  let officers: { files: OfficerFixture[]; set: OfficerSet };
  let plan: BackupPlan;
  let bundle: BackupBundle;

  beforeAll(() => {
    keys = dkg(spec, 3, members);
    officers = makeOfficers();
    plan = planFor(spec, keys, dealers, officers.set);
    bundle = backup(plan, keys);
  });

  /** Every dealer's bundle signature fails on any change to the body. */
  const allSignatures = () => dealers.map((d) => `dealings[${d}].signature`);

  it('a changed commitment fails verifyBundle and officerShare naming the dealing it was changed in', () => {
    const b = copy(bundle);
    b.body.dealings[1].commitments[1] = b.body.dealings[0].commitments[1];
    expect(parts(b).sort()).toEqual([`dealings[${d3}].proof`, ...allSignatures()].sort());
    expect(verifyBundle(b).find((p) => p.part.endsWith('.proof'))).toEqual(
      expect.objectContaining({ dealer: d3, reason: expect.stringMatching(/altered after dealing/) }),
    );
    const c = copy(bundle);
    c.body.dealings[0].commitments[0] = c.body.dealings[1].commitments[0];
    expect(parts(c)).toEqual(
      expect.arrayContaining([`dealings[${d1}].commitments[0]`, `dealings[${d1}].proof`]),
    );
    // Altered after the fact: nobody is blamed, the bundle is refused.
    const e = thrown(() => shareOf(c, officers.files, 1));
    expect(e.code).toBe('InvalidSignature');
    expect(e.culprits).toEqual([]);
    expect(e.message).toContain(`dealings[${d1}].commitments[0]`);
  });

  it('a dealer whose own proven commitments move the key is named; honest dealers refuse to sign', () => {
    // Dealer d1 (a real share, the real proof) commits to another constant term than λ·Y.
    const honest = dealers.map((d) => dealToOfficers(plan, keys.get(d)!, sealToOfficer));
    const h0 = honest[0]!;
    const lying = proveDealing(plan, keys.get(d1)!, {
      dealer: d1,
      commitments: [h0.commitments[1]!, h0.commitments[0]!],
      ciphertexts: h0.ciphertexts,
    });
    const body = assembleBundle(plan, [lying, honest[1]!, honest[2]!]);
    const refusal = thrown(() => signBundle(body, keys.get(d3)!, honest[1]!));
    expect(refusal.message).toContain(`dealings[${d1}].commitments[0]`);
    const problems = verifyBundle(finishBundle(body, []));
    expect(problems).toContainEqual(
      expect.objectContaining({
        part: `dealings[${d1}].commitments[0]`,
        dealer: d1,
        blame: 'wrong-group-key',
      }),
    );
    const e = thrown(() => officerPackage(finishBundle(body, [])));
    expect(e.code).toBe('ParticipantMisbehaved');
    expect(e.culprits).toEqual([
      expect.objectContaining({
        participant: d1,
        reason: 'wrong-group-key',
        evidence: `dealings[${d1}].commitments[0]`,
      }),
    ]);
  });

  it('a changed ciphertext fails verifyBundle and officerShare naming the dealing', () => {
    const b = copy(bundle);
    b.body.dealings[1].ciphertexts[0][60] ^= 1;
    expect(parts(b).sort()).toEqual([`dealings[${d3}].proof`, ...allSignatures()].sort());
    const e = thrown(() => shareOf(b, officers.files, 1));
    expect(e.code).toBe('InvalidSignature');
    expect(e.message).toContain(`dealings[${d3}].proof`);
  });

  it('a changed dealer signature fails naming that dealer; a missing one too', () => {
    const b = copy(bundle);
    b.signatures[2].z[0] ^= 1;
    expect(verifyBundle(b)).toEqual([
      expect.objectContaining({ part: `dealings[${dealers[2]}].signature`, dealer: dealers[2] }),
    ]);
    const c = copy(bundle);
    c.signatures.splice(0, 1);
    expect(verifyBundle(c)).toEqual([
      expect.objectContaining({ part: `dealings[${d1}].signature`, reason: 'missing' }),
    ]);
  });

  it('a changed officer set fails every dealer signature; a changed threshold also fails the commitment count', () => {
    const other = createOfficerKey('mallory', passphrase('mallory'), TEST_COST).officer;
    const b = copy(bundle);
    b.body.officerSet.officers[1] = { name: 'officer-2', publicKey: other.publicKey };
    expect(parts(b).sort()).toEqual(
      [...dealers.map((d) => `dealings[${d}].proof`), ...allSignatures()].sort(),
    );
    const c = copy(bundle);
    c.body.officerSet.threshold = 3;
    expect(parts(c)).toEqual(
      expect.arrayContaining([
        ...dealers.map((d) => `dealings[${d}].commitments`),
        ...dealers.map((d) => `dealings[${d}].proof`),
        ...allSignatures(),
      ]),
    );
    expect(verifyBundle(c).find((p) => p.part.endsWith('.commitments'))?.reason).toMatch(
      /has 2 entries.*needs 3/,
    );
  });

  it('a bundle for another key, or with a broken file, is refused naming the field', () => {
    expect(verifyBundle(bundle, { publicKey: new Uint8Array(32).fill(7) })).toEqual([
      expect.objectContaining({ part: 'groupElement' }),
    ]);
    expect(verifyBundle(bundle, { keyId: 'another-key' })).toEqual([
      expect.objectContaining({ part: 'keyId' }),
    ]);
    const file = encodeBundle(bundle);
    const e1 = thrown(() => decodeBundle(file.subarray(0, file.length - 3)));
    expect(e1.code).toBe('DecodeError');
    const e2 = thrown(() => decodeBundle(new Uint8Array(2 << 20)));
    expect(e2.code).toBe('MessageTooLarge');
  });

  it('a dealer sealing a bad sub-share to one officer passes every public check; that officer names it', () => {
    // Dealer d3 lies to officer-2 only: the sub-share inside the sealed box is off by one.
    const lying: Seal = (pk, plaintext) => {
      if (pk === officers.set.officers[1]!.publicKey) {
        const p = plaintext.slice();
        p[BINDING_LENGTH] = (p[BINDING_LENGTH]! + 1) & 0xff;
        return sealToOfficer(pk, p);
      }
      return sealToOfficer(pk, plaintext);
    };
    const b = backup({ ...plan, bundleId: randomUUID() }, keys, (d) => (d === d3 ? lying : sealToOfficer));
    expect(verifyBundle(b)).toEqual([]);
    expect(() => shareOf(b, officers.files, 1)).not.toThrow();
    expect(() => shareOf(b, officers.files, 3)).not.toThrow();
    const e = thrown(() => shareOf(b, officers.files, 2));
    expect(e.code).toBe('ParticipantMisbehaved');
    expect(e.culprits).toEqual([expect.objectContaining({ participant: d3, reason: 'bad-share' })]);
    expect(e.details).toEqual(
      expect.objectContaining({ part: `dealings[${d3}].ciphertexts[2]`, officer: 2 }),
    );
  });

  it("a sub-share moved to another officer's slot is refused by its binding, naming the dealer", () => {
    // Dealer d1 seals officer-1's plaintext (bound to officer 1) to officer-2 as well.
    let first: Uint8Array | undefined;
    const moving: Seal = (pk, plaintext) => {
      if (pk === officers.set.officers[0]!.publicKey) first = plaintext.slice();
      if (pk === officers.set.officers[1]!.publicKey) return sealToOfficer(pk, first!);
      return sealToOfficer(pk, plaintext);
    };
    const b = backup({ ...plan, bundleId: randomUUID() }, keys, (d) => (d === d1 ? moving : sealToOfficer));
    expect(verifyBundle(b)).toEqual([]);
    const e = thrown(() => shareOf(b, officers.files, 2));
    expect(e.culprits).toEqual([expect.objectContaining({ participant: d1 })]);
    expect(e.message).toMatch(/bound to another bundle, key, epoch, dealer or officer/);
  });

  it('a dealer refuses to sign a bundle that carries its dealing changed or replaced', () => {
    const dealings = dealers.map((d) => dealToOfficers(plan, keys.get(d)!, sealToOfficer));
    const body = assembleBundle(plan, dealings);
    const swapped = {
      ...body,
      dealings: body.dealings.map((d, i) =>
        i === 0 ? { ...d, ciphertexts: [d.ciphertexts[1]!, d.ciphertexts[0]!, d.ciphertexts[2]!] } : d,
      ),
    };
    const e1 = thrown(() => signBundle(swapped, keys.get(d1)!, dealings[0]!));
    expect(e1.code).toBe('ValidationError');
    expect(e1.message).toContain(`dealings[${d1}].proof`);
    // Another genuine dealing of d1 (say, from a retried run) in place of the one d1 is signing for.
    const again = dealToOfficers(plan, keys.get(d1)!, sealToOfficer);
    const replaced = assembleBundle(plan, [again, dealings[1]!, dealings[2]!]);
    expect(thrown(() => signBundle(replaced, keys.get(d1)!, dealings[0]!)).code).toBe('ContextMismatch');
    expect(() => signBundle(replaced, keys.get(d1)!, again)).not.toThrow();
  });

  it('a wrong officer key, a wrong passphrase or an altered key file gives a clear error', () => {
    const [f1, f2] = [officers.files[0]!, officers.files[1]!];
    const e1 = thrown(() => withOfficerKey(f2.file, passphrase(f2.name), (k) => officerShare(bundle, 1, k)));
    expect(e1.code).toBe('ValidationError');
    expect(e1.message).toMatch(/not officer-1's.*wrong officer key file/);
    const stranger = createOfficerKey('stranger', passphrase('stranger'), TEST_COST);
    expect(thrown(() => officerIndexOf(bundle, stranger.officer.publicKey)).message).toMatch(
      /is not one of this backup's officers/,
    );
    const e2 = thrown(() => unlockOfficerKey(f1.file, utf8ToBytes('wrong passphrase')));
    expect(e2.code).toBe('Unauthorized');
    expect(e2.message).toMatch(/wrong passphrase for officer key officer-1/);
    const altered = f1.file.replace('"officer-1"', '"officer-9"');
    expect(thrown(() => unlockOfficerKey(altered, passphrase(f1.name))).code).toBe('Unauthorized');
    expect(thrown(() => unlockOfficerKey('{"format":"something-else"}', passphrase(f1.name))).code).toBe(
      'DecodeError',
    );
    // A wiped key opens nothing.
    const k = unlockOfficerKey(f1.file, passphrase(f1.name));
    k.wipe();
    expect(() => k.open(bundle.body.dealings[0]!.ciphertexts[0]!)).toThrow(/wiped/);
  });

  it('too few officers for a restore is refused before any key is used', () => {
    let opened = 0;
    const k1 = unlockOfficerKey(officers.files[0]!.file, passphrase(NAMES[0]));
    const counting: OfficerOpener = {
      publicKey: k1.publicKey,
      open: (c) => {
        opened++;
        return k1.open(c);
      },
    };
    const e = thrown(() => restoreInputs(bundle, [counting]));
    expect(e.code).toBe('ValidationError');
    expect(e.message).toMatch(/needs 2 officers of this backup, got 1/);
    expect(opened).toBe(0);
    expect(thrown(() => restoreInputs(bundle, [counting, counting])).message).toMatch(/twice/);
    expect(opened).toBe(0);
    k1.wipe();
  });

  it('a plan with too few dealers, a threshold of 1 or duplicate officers is refused before dealing', () => {
    const set = officers.set;
    expect(thrown(() => validatePlan({ ...plan, dealers: dealers.slice(0, 2) })).message).toMatch(
      /needs exactly 3 dealers/,
    );
    expect(thrown(() => validatePlan({ ...plan, officerSet: { ...set, threshold: 1 } })).message).toMatch(
      /threshold/,
    );
    const dup = { officers: [set.officers[0]!, set.officers[0]!, set.officers[2]!], threshold: 2 };
    expect(thrown(() => validatePlan({ ...plan, officerSet: dup })).message).toMatch(/duplicate/);
  });
});
