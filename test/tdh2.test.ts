/**
 * TDH2 threshold decryption (protocol/tdh2.ts) and the ciphertext blob (protocol/ciphertext-blob.ts)
 * on key packages made by the real ristretto255 DKG, refresh and reshare machines: round trips with
 * any t of n, refusal of changed ciphertexts and labels before any share is computed, bad shares
 * caught by their Chaum–Pedersen proofs, decryption across key events, and the libsodium backend
 * equal to noble's byte for byte under the same randomness.
 */
import type { Key } from '@noble/curves/abstract/frost.js';
import { bytesToNumberLE } from '@noble/curves/utils.js';
import { describe, expect, it } from 'vitest';
import { decodeBlob, encodeBlob, labelDigest } from '../protocol/ciphertext-blob.ts';
import type { ParticipantId } from '../protocol/ids.ts';
import { lagrangeCoefficient } from '../protocol/polynomial.ts';
import { libsodiumOps, nobleOps, type RistrettoOps } from '../protocol/ristretto-ops.ts';
import { KEY_SPEC_REGISTRY } from '../protocol/suites.ts';
import {
  combine,
  contextLabel,
  type DecryptionShare,
  decryptionShare,
  encrypt,
  isValidCiphertext,
  type Tdh2Ciphertext,
  verifyDecryptionShare,
} from '../protocol/tdh2.ts';
import { dkg, newKeys, pids, runRefresh, runReshare } from './key-events-fixture.ts';
import { seeded } from './helpers/rng.ts';

const spec = KEY_SPEC_REGISTRY.FROST_RISTRETTO255;
const enc = new TextEncoder();
const lag = (id: string, ids: readonly string[]) => lagrangeCoefficient(spec, ids, id);
const groupKey = (keys: Map<ParticipantId, Key>) => keys.values().next().value!.public.commitments[0]!;
const secretOf = (k: Key) => bytesToNumberLE(k.secret.signingShare);

function sharesFrom(
  keys: readonly Key[],
  ct: Tdh2Ciphertext,
  label: Uint8Array,
  ops?: RistrettoOps,
): DecryptionShare[] {
  return keys.map((k) =>
    decryptionShare(
      ct,
      label,
      {
        id: k.secret.identifier,
        secret: secretOf(k),
        verifyingShare: k.public.verifyingShares[k.secret.identifier]!,
      },
      ops ? { ops } : {},
    ),
  );
}

const ids5 = pids(spec, [1, 2, 3, 4, 5]);
const keys = dkg(spec, 3, ids5);
const all = ids5.map((id) => keys.get(id)!);
const H = groupKey(keys);

describe('TDH2 on ristretto255 key packages from the real DKG', () => {
  const label = contextLabel({ purpose: 'backup', tenant: 'acme' });
  const msg = enc.encode('a 32-byte data key, or up to 4 KiB');

  it('any 3 of 5 decrypt; every share verifies against its verifying share', () => {
    const ct = encrypt(H, label, msg);
    expect(isValidCiphertext(ct, label)).toBe(true);
    for (const subset of [
      [0, 1, 2],
      [0, 3, 4],
      [2, 3, 4],
      [1, 2, 4],
    ]) {
      const ks = subset.map((i) => all[i]!);
      const shares = sharesFrom(ks, ct, label);
      ks.forEach((k, i) => {
        expect(verifyDecryptionShare(ct, k.public.verifyingShares[k.secret.identifier]!, shares[i]!)).toBe(
          true,
        );
      });
      expect(combine(ct, label, shares, lag)).toEqual(msg);
    }
  });

  it('a changed label (encryption context) or any changed byte is refused before a share is computed', () => {
    const ct = encrypt(H, label, msg);
    const other = contextLabel({ purpose: 'backup', tenant: 'evil' });
    expect(isValidCiphertext(ct, other)).toBe(false);
    expect(() => sharesFrom([all[0]!], ct, other)).toThrow(/InvalidCiphertext/);
    const flipC = ct.c.slice();
    flipC[3] = flipC[3]! ^ 1;
    const variants: Tdh2Ciphertext[] = [
      { ...ct, c: flipC },
      { ...ct, u: ct.uBar },
      { ...ct, uBar: ct.u },
      { ...ct, e: (ct.e + 1n) % spec.Point.Fn.ORDER },
      { ...ct, f: (ct.f + 1n) % spec.Point.Fn.ORDER },
    ];
    for (const v of variants) {
      expect(isValidCiphertext(v, label)).toBe(false);
      expect(() => sharesFrom([all[0]!], v, label)).toThrow(/InvalidCiphertext/);
    }
  });

  it('a bad decryption share is caught by its proof and names its holder; combining without it works', () => {
    const ct = encrypt(H, label, msg);
    const shares = sharesFrom(all.slice(0, 4), ct, label);
    const liar = shares[1]!;
    const forged: DecryptionShare = { ...liar, ui: libsodiumOps.add(liar.ui, libsodiumOps.baseMul(7n)) };
    const vs = (s: DecryptionShare) => keys.get(s.id as ParticipantId)!.public.verifyingShares[s.id]!;
    expect(verifyDecryptionShare(ct, vs(forged), forged)).toBe(false);
    // A valid share presented for another member's verifying share fails too.
    expect(verifyDecryptionShare(ct, vs(shares[0]!), { ...shares[2]!, id: shares[0]!.id })).toBe(false);
    const bad = [shares[0]!, forged, shares[2]!].filter((s) => !verifyDecryptionShare(ct, vs(s), s));
    expect(bad.map((s) => s.id)).toEqual([liar.id]);
    // Unverified, the forged share makes the AEAD fail rather than yield a wrong plaintext.
    expect(() => combine(ct, label, [shares[0]!, forged, shares[2]!], lag)).toThrow(/InvalidCiphertext/);
    expect(combine(ct, label, [shares[0]!, shares[2]!, shares[3]!], lag)).toEqual(msg);
  });

  it('fewer than t shares do not decrypt', () => {
    const ct = encrypt(H, label, msg);
    expect(() => combine(ct, label, sharesFrom(all.slice(0, 2), ct, label), lag)).toThrow(
      /InvalidCiphertext/,
    );
  });

  it('refresh and reshare keep every existing ciphertext decryptable (the group key is constant)', () => {
    const ct = encrypt(H, label, msg);
    const refreshed = newKeys(runRefresh(spec, keys, 0));
    expect(groupKey(refreshed)).toEqual(H);
    const r = ids5.map((id) => refreshed.get(id)!);
    expect(combine(ct, label, sharesFrom([r[0]!, r[2]!, r[4]!], ct, label), lag)).toEqual(msg);
    const newIds = pids(spec, [2, 3, 6, 7]);
    const reshared = newKeys(
      runReshare(spec, refreshed, {
        oldEpoch: 1,
        dealers: pids(spec, [1, 2, 3]),
        newParticipants: newIds,
        newThreshold: 2,
      }),
    );
    expect(groupKey(reshared)).toEqual(H);
    const n = newIds.map((id) => reshared.get(id)!);
    expect(combine(ct, label, sharesFrom([n[2]!, n[3]!], ct, label), lag)).toEqual(msg);
  });

  it('libsodium and noble agree byte for byte under the same randomness', () => {
    const a = encrypt(H, label, msg, { ops: libsodiumOps, rng: seeded(7) });
    const b = encrypt(H, label, msg, { ops: nobleOps, rng: seeded(7) });
    expect(a).toEqual(b);
    expect(isValidCiphertext(a, label, nobleOps)).toBe(true);
    const k = all[0]!;
    const share = {
      id: k.secret.identifier,
      secret: secretOf(k),
      verifyingShare: k.public.verifyingShares[k.secret.identifier]!,
    };
    const sa = decryptionShare(a, label, share, { ops: libsodiumOps, rng: seeded(9) });
    const sb = decryptionShare(a, label, share, { ops: nobleOps, rng: seeded(9) });
    expect(sa).toEqual(sb);
    expect(verifyDecryptionShare(a, share.verifyingShare, sa, nobleOps)).toBe(true);
    const shares = sharesFrom(all.slice(1, 4), a, label, nobleOps);
    expect(combine(a, label, shares, lag, nobleOps)).toEqual(combine(a, label, shares, lag, libsodiumOps));
  });

  it('the ciphertext blob round-trips and refuses truncation, trailing bytes, other versions', () => {
    const ct = encrypt(H, label, msg);
    const blob = encodeBlob('key-1', label, ct);
    const d = decodeBlob(blob);
    expect(d.keyId).toBe('key-1');
    expect(d.labelDigest).toEqual(labelDigest(label));
    expect(d.ct).toEqual(ct);
    expect(() => decodeBlob(blob.subarray(0, blob.length - 1))).toThrow(/truncated/);
    expect(() => decodeBlob(Uint8Array.from([...blob, 0]))).toThrow(/trailing/);
    const v2 = blob.slice();
    v2[4] = 2;
    expect(() => decodeBlob(v2)).toThrow(/version/);
    const notOurs = blob.slice();
    notOurs[0] = 0x58;
    expect(() => decodeBlob(notOurs)).toThrow(/not a ciphertext blob/);
  });
});
