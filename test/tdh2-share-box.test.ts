/**
 * Decryption shares sealed to a client's ephemeral key (protocol/tdh2-share-box.ts), on key packages
 * from the real ristretto255 DKG: a sealed share opens only for its recipient, key, member and
 * ciphertext; any changed byte is refused; the opened share still passes its Chaum–Pedersen proof
 * and combines; the share codec refuses non-canonical scalars; libsodium and noble agree byte for
 * byte under the same randomness. Also `validateCiphertext` / `decryptionShareOf` (one validity
 * check per node) against `decryptionShare`.
 */
import { bytesToNumberLE } from '@noble/curves/utils.js';
import { describe, expect, it } from 'vitest';
import { lagrangeCoefficient } from '../protocol/polynomial.ts';
import { Fq, libsodiumOps, nobleOps } from '../protocol/ristretto-ops.ts';
import { KEY_SPEC_REGISTRY } from '../protocol/suites.ts';
import {
  decodeShare,
  encodeShare,
  openShare,
  recipientKeyPair,
  SEALED_SHARE_BYTES,
  sealShare,
} from '../protocol/tdh2-share-box.ts';
import {
  combine,
  contextLabel,
  decryptionShare,
  decryptionShareOf,
  encrypt,
  validateCiphertext,
  verifyDecryptionShare,
} from '../protocol/tdh2.ts';
import { dkg, pids } from './key-events-fixture.ts';
import { seeded } from './helpers/rng.ts';

const spec = KEY_SPEC_REGISTRY.TDH2_RISTRETTO255;
const ids = pids(spec, [1, 2, 3]);
const keys = dkg(spec, 2, ids);
const all = ids.map((id) => keys.get(id)!);
const H = all[0]!.public.commitments[0]!;
const label = contextLabel({ app: 'share-box' });
const ct = encrypt(H, label, new TextEncoder().encode('sealed shares'));
const memberShare = (i: number) => {
  const k = all[i]!;
  const id = k.secret.identifier;
  return {
    id,
    secret: bytesToNumberLE(k.secret.signingShare),
    verifyingShare: k.public.verifyingShares[id]!,
  };
};

describe('TDH2 decryption shares sealed to the client', () => {
  it('open only for their recipient, key, member and ciphertext; the opened shares verify and combine', () => {
    const eph = recipientKeyPair();
    const shares = [0, 2].map((i) => decryptionShare(ct, label, memberShare(i)));
    const sealed = shares.map((s) => sealShare(s, eph.publicKey, { keyId: 'k1', u: ct.u }));
    for (const b of sealed) expect(b).toHaveLength(SEALED_SHARE_BYTES);
    const opened = sealed.map((b, j) =>
      openShare(b, eph.secret, { keyId: 'k1', shareId: shares[j]!.id, u: ct.u }),
    );
    expect(opened).toEqual(shares);
    opened.forEach((s, j) => {
      expect(verifyDecryptionShare(ct, memberShare([0, 2][j]!).verifyingShare, s)).toBe(true);
    });
    const lag = (id: string, set: readonly string[]) => lagrangeCoefficient(spec, set, id);
    expect(new TextDecoder().decode(combine(ct, label, opened, lag))).toBe('sealed shares');

    const other = recipientKeyPair();
    const bind = { keyId: 'k1', shareId: shares[0]!.id, u: ct.u };
    expect(() => openShare(sealed[0]!, other.secret, bind)).toThrow(/does not open/);
    expect(() => openShare(sealed[0]!, eph.secret, { ...bind, keyId: 'k2' })).toThrow(/does not open/);
    expect(() => openShare(sealed[0]!, eph.secret, { ...bind, shareId: shares[1]!.id })).toThrow(
      /does not open/,
    );
    const ct2 = encrypt(H, label, new Uint8Array(1));
    expect(() => openShare(sealed[0]!, eph.secret, { ...bind, u: ct2.u })).toThrow(/does not open/);
    for (const at of [0, 31, 32, 100, SEALED_SHARE_BYTES - 1]) {
      const b = sealed[0]!.slice();
      b[at]! ^= 0x40;
      expect(() => openShare(b, eph.secret, bind), `byte ${at}`).toThrow();
    }
    expect(() => openShare(sealed[0]!.subarray(1), eph.secret, bind)).toThrow(/length/);
    expect(() => sealShare(shares[0]!, new Uint8Array(32), { keyId: 'k1', u: ct.u })).toThrow(/recipient/);
  });

  it('the share codec round-trips and refuses non-canonical scalars and wrong lengths', () => {
    const s = decryptionShare(ct, label, memberShare(1));
    expect(decodeShare(encodeShare(s))).toEqual(s);
    const b = encodeShare(s);
    b.set(Fq.toBytes(Fq.ORDER - 1n), 64);
    b[95] = 0xff; // e_i ≥ L
    expect(() => decodeShare(b)).toThrow(/non-canonical/);
    expect(() => decodeShare(encodeShare(s).subarray(1))).toThrow(/128 bytes/);
  });

  it('libsodium and noble seal byte for byte alike under the same randomness', () => {
    const s = decryptionShare(ct, label, memberShare(0), { rng: seeded(1) });
    const a = recipientKeyPair(libsodiumOps, seeded(2));
    const b = recipientKeyPair(nobleOps, seeded(2));
    expect(b.publicKey).toEqual(a.publicKey);
    const x = sealShare(s, a.publicKey, { keyId: 'k', u: ct.u }, libsodiumOps, seeded(3));
    const y = sealShare(s, a.publicKey, { keyId: 'k', u: ct.u }, nobleOps, seeded(3));
    expect(y).toEqual(x);
    expect(openShare(x, a.secret, { keyId: 'k', shareId: s.id, u: ct.u }, nobleOps)).toEqual(s);
  });

  it('a node validates once: decryptionShareOf on a validated ciphertext equals decryptionShare', () => {
    const valid = validateCiphertext(ct, label)!;
    expect(valid).toBeDefined();
    expect(decryptionShareOf(valid, memberShare(0), { rng: seeded(9) })).toEqual(
      decryptionShare(ct, label, memberShare(0), { rng: seeded(9) }),
    );
    expect(validateCiphertext(ct, contextLabel({ app: 'other' }))).toBeUndefined();
    expect(validateCiphertext({ ...ct, f: Fq.add(ct.f, 1n) }, label)).toBeUndefined();
  });
});
