/**
 * Dealing from outside the committee (protocol/import-deal.ts), in pure form, with real libsodium
 * sealed boxes to X25519 keys derived from real Ed25519 node identities (as the node daemons hold):
 * - import: an Ed25519 seed (RFC 8032 scalar) and a secp256k1 key dealt 3-of-5 by one dealer; the
 *   shares sign under the public key derived from the secret by the curve library;
 * - restore: a real 3-of-5 DKG key backed up to 3 officers (2 of 3), 2 officers deal to 5 fresh
 *   nodes; the new shares sign under the original group key at the new epoch;
 * - every node refuses a dealing that would change the key, a sub-share off its commitments, or a
 *   sub-share sealed to another node, naming the dealer; a plan whose dealers do not open to the
 *   group key is refused before anything is dealt.
 */
import { randomBytes, randomUUID } from 'node:crypto';
import type { Key } from '@noble/curves/abstract/frost.js';
import { ed25519 } from '@noble/curves/ed25519.js';
import { schnorr } from '@noble/curves/secp256k1.js';
import sodium from 'sodium-native';
import { describe, expect, it } from 'vitest';
import {
  createOfficerKey,
  type KdfCost,
  officerOfKeyFile,
  sealToOfficer,
  withOfficerKey,
} from '../client/officer-key.ts';
import { utf8ToBytes } from '../protocol/bytes.ts';
import { isKmsError, type KmsError } from '../protocol/errors.ts';
import { asEpoch, type ParticipantId } from '../protocol/ids.ts';
import {
  dealExternal,
  type ExternalDealing,
  type ExternalDealPlan,
  importDealer,
  importKeyOf,
  nodeEncryptionKey,
  nodeEncryptionSecret,
  receiveExternal,
} from '../protocol/import-deal.ts';
import {
  assembleBundle,
  type BackupPlan,
  dealToOfficers,
  finishBundle,
  restoreInputs,
  signBundle,
} from '../protocol/officer-backup.ts';
import { keySpec } from '../protocol/suites.ts';
import { canSign, dkg, KEY_ID, pids } from './key-events-fixture.ts';

const NODES = ['node-6', 'node-7', 'node-8', 'node-9', 'node-10'];
const TEST_COST: KdfCost = { opslimit: 1, memlimit: 8 * 1024 * 1024 };

/** Each node's Ed25519 identity (as libp2p's raw key: seed ‖ public) and derived X25519 keys. */
function identities() {
  return new Map(
    NODES.map((n) => {
      const seed = new Uint8Array(randomBytes(32));
      const pub = ed25519.getPublicKey(seed);
      return [n, { encryptionKey: nodeEncryptionKey(pub), secret: nodeEncryptionSecret(seed) }] as const;
    }),
  );
}

const opener = (pk: Uint8Array, sk: Uint8Array) => (c: Uint8Array) => {
  const m = new Uint8Array(c.length - sodium.crypto_box_SEALBYTES);
  if (!sodium.crypto_box_seal_open(m, c, pk, sk)) throw new Error('does not open');
  return m;
};

function receiveAll(
  plan: ExternalDealPlan,
  dealings: readonly ExternalDealing[],
  ids: ReturnType<typeof identities>,
): Key[] {
  return NODES.map((n) => {
    const id = ids.get(n)!;
    return receiveExternal(plan, dealings, n, id.encryptionKey, opener(id.encryptionKey, id.secret)).key;
  });
}

function thrown(f: () => unknown): KmsError {
  try {
    f();
  } catch (e) {
    if (isKmsError(e)) return e;
    throw e;
  }
  throw new Error('expected an error');
}

const keysOf = (ids: ReturnType<typeof identities>) =>
  Object.fromEntries(NODES.map((n) => [n, ids.get(n)!.encryptionKey]));

describe('import: one dealer holding the whole secret', () => {
  it.each([
    ['FROST_ED25519', (s: Uint8Array) => ed25519.getPublicKey(s)],
    ['FROST_SECP256K1_TR', (s: Uint8Array) => Uint8Array.of(2, ...schnorr.getPublicKey(s))],
  ] as const)('%s: the shares sign under the public key of the secret', (name, publicOf) => {
    const spec = keySpec(name);
    const secret = new Uint8Array(randomBytes(32));
    const Q = publicOf(secret);
    const ids = identities();
    const dealer = importDealer(spec);
    const plan: ExternalDealPlan = {
      kind: 'import',
      keyId: randomUUID(),
      keySpec: name,
      sessionId: randomUUID(),
      epoch: 0,
      threshold: 3,
      participants: NODES,
      groupElement: Q,
      dealers: { [dealer]: Q },
    };
    const dealing = dealExternal(plan, dealer, importKeyOf(spec, secret).scalar, keysOf(ids), sealToOfficer);
    const keys = receiveAll(plan, [dealing], ids);
    expect(canSign(spec, keys.slice(0, 3), Q)).toBe(true);
    expect(canSign(spec, keys.slice(2, 5), Q)).toBe(true);
    expect(canSign(spec, keys.slice(0, 2), Q)).toBe(false);

    // A dealer claiming another public key is refused before it deals anything.
    const otherSecret = new Uint8Array(randomBytes(32));
    const other = publicOf(otherSecret);
    expect(
      thrown(() =>
        dealExternal(
          { ...plan, groupElement: other, dealers: { [dealer]: other } },
          dealer,
          importKeyOf(spec, secret).scalar,
          keysOf(ids),
          sealToOfficer,
        ),
      ).code,
    ).toBe('ContextMismatch');
    // A dealing whose commitments open to another key: every node names the dealer.
    const forged = dealExternal(
      { ...plan, groupElement: other, dealers: { [dealer]: other } },
      dealer,
      importKeyOf(spec, otherSecret).scalar,
      keysOf(ids),
      sealToOfficer,
    );
    const e = thrown(() => receiveAll(plan, [forged], ids));
    expect(e.code).toBe('ParticipantMisbehaved');
    expect(e.culprits[0]).toMatchObject({ participant: dealer, reason: 'wrong-group-key' });
  });
});

describe('restore: two of three officers deal to five fresh nodes', () => {
  it.each(['FROST_ED25519', 'FROST_SECP256K1_TR'] as const)('%s', (name) => {
    const spec = keySpec(name);
    const keys = dkg(spec, 3, pids(spec, [1, 2, 3, 4, 5]));
    const dealers = pids(spec, [1, 3, 5]);
    const group = keys.get(dealers[0]!)!.public.commitments[0]!;
    const files = ['officer-1', 'officer-2', 'officer-3'].map(
      (n) => createOfficerKey(n, utf8ToBytes(`pw ${n}`), TEST_COST).file,
    );
    const plan: BackupPlan = {
      bundleId: randomUUID(),
      keyId: KEY_ID,
      keySpec: name,
      epoch: asEpoch(0),
      metadata: {},
      committee: keys.get(dealers[0]!)!.public,
      officerSet: { officers: files.map(officerOfKeyFile), threshold: 2 },
      dealers,
    };
    const dealt = dealers.map((d) => dealToOfficers(plan, keys.get(d)!, sealToOfficer));
    const body = assembleBundle(plan, dealt);
    const bundle = finishBundle(
      body,
      dealers.map((d, i) => signBundle(body, keys.get(d)!, dealt[i]!)),
    );

    const ids = identities();
    withOfficerKey(files[0]!, utf8ToBytes('pw officer-1'), (a) =>
      withOfficerKey(files[2]!, utf8ToBytes('pw officer-3'), (c) => {
        const inputs = restoreInputs(bundle, [a, c]);
        try {
          const restore: ExternalDealPlan = {
            kind: 'restore',
            keyId: KEY_ID,
            keySpec: name,
            sessionId: randomUUID(),
            epoch: 1,
            threshold: 3,
            participants: NODES,
            groupElement: group,
            dealers: Object.fromEntries(inputs.dealers.map((d) => [d, inputs.oldPublic.verifyingShares[d]!])),
          };
          const Fn = spec.Point.Fn;
          const dealings = inputs.dealers.map((d: ParticipantId) =>
            dealExternal(
              restore,
              d,
              Fn.fromBytes(inputs.keys.get(d)!.secret.signingShare),
              keysOf(ids),
              sealToOfficer,
            ),
          );
          const restored = receiveAll(restore, dealings, ids);
          expect(canSign(spec, restored.slice(1, 4), group)).toBe(true);

          // A sub-share sealed to another node's key: that node names the dealer.
          const swapped = {
            ...dealings[0]!,
            ciphertexts: { ...dealings[0]!.ciphertexts, 'node-7': dealings[0]!.ciphertexts['node-6']! },
          };
          const id7 = ids.get('node-7')!;
          const e = thrown(() =>
            receiveExternal(
              restore,
              [swapped, dealings[1]!],
              'node-7',
              id7.encryptionKey,
              opener(id7.encryptionKey, id7.secret),
            ),
          );
          expect(e.culprits[0]).toMatchObject({ participant: swapped.dealer, reason: 'malformed-message' });
          // A dealer missing: refused.
          expect(
            thrown(() =>
              receiveExternal(
                restore,
                [dealings[0]!],
                'node-7',
                id7.encryptionKey,
                opener(id7.encryptionKey, id7.secret),
              ),
            ).code,
          ).toBe('ValidationError');
        } finally {
          inputs.wipe();
        }
        for (const k of inputs.keys.values()) expect(k.secret.signingShare.every((b) => b === 0)).toBe(true);
      }),
    );
  });
});
