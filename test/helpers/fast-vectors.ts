/**
 * One RFC 9591 signing vector through a fast FROST path (protocol/fast-sign.ts), checked step by step:
 * the vector's nonces and commitments from its randomness, each share equal to the vector's and
 * accepted by the fast path and by noble, the aggregate equal to the vector's signature. Shared by
 * the fast-path tests of every suite (fast-sign, fast-sign-tr, fast-suites); each adds its own
 * independent verifiers of the returned signature.
 */
import type { FrostPublic, FrostSecret, NonceCommitments } from '@noble/curves/abstract/frost.js';
import { bytesToHex, hexToBytes } from '@noble/hashes/utils.js';
import { expect } from 'vitest';
import type { FrostSigning } from '../../protocol/fast-sign.ts';
import type { KeySpec } from '../../protocol/suites.ts';
import { replay } from './rng.ts';
import type { Vector } from './vectors.ts';

export type VectorRun = {
  readonly sig: Uint8Array;
  readonly pub: FrostPublic;
  readonly msg: Uint8Array;
  readonly list: NonceCommitments[];
  readonly shares: Record<string, Uint8Array>;
};

export function runSigningVector(spec: KeySpec, fast: FrostSigning, v: Vector): VectorRun {
  const noble = spec.frost;
  const idOf = (k: number) => noble.Identifier.fromNumber(k);
  const signers = { min: Number(v.config.MIN_PARTICIPANTS), max: Number(v.config.MAX_PARTICIPANTS) };
  const secrets: Record<string, FrostSecret> = {};
  const verifyingShares: Record<string, Uint8Array> = {};
  for (const s of v.inputs.participant_shares) {
    const share = hexToBytes(s.participant_share);
    secrets[idOf(s.identifier)] = { identifier: idOf(s.identifier), signingShare: share } as FrostSecret;
    verifyingShares[idOf(s.identifier)] = (spec.Point as any).BASE.multiply(
      noble.utils.Fn.fromBytes(share),
    ).toBytes();
  }
  const pub = {
    signers,
    commitments: [hexToBytes(v.inputs.verifying_key_key)],
    verifyingShares,
  } as unknown as FrostPublic;
  const msg = hexToBytes(v.inputs.message);
  const nonces = new Map<string, ReturnType<FrostSigning['commit']>['nonces']>();
  const list: NonceCommitments[] = [];
  for (const o of v.round_one_outputs.outputs) {
    const id = idOf(o.identifier);
    const rng = replay([hexToBytes(o.hiding_nonce_randomness), hexToBytes(o.binding_nonce_randomness)]);
    const g = fast.commit(secrets[id]!, rng);
    expect(bytesToHex(g.nonces.hiding)).toBe(o.hiding_nonce);
    expect(bytesToHex(g.nonces.binding)).toBe(o.binding_nonce);
    expect(bytesToHex(g.commitments.hiding)).toBe(o.hiding_nonce_commitment);
    expect(bytesToHex(g.commitments.binding)).toBe(o.binding_nonce_commitment);
    nonces.set(id, g.nonces);
    list.push(g.commitments);
  }
  const shares: Record<string, Uint8Array> = {};
  for (const o of v.round_two_outputs.outputs) {
    const id = idOf(o.identifier);
    const share = fast.signShare(secrets[id]!, pub, nonces.get(id)!, list, msg);
    expect(bytesToHex(share)).toBe(o.sig_share);
    expect(fast.verifyShare(pub, list, msg, id, share)).toBe(true);
    expect(noble.verifyShare(pub, list, msg, id, share)).toBe(true);
    shares[id] = share;
  }
  const sig = fast.aggregate(pub, list, msg, shares);
  expect(bytesToHex(sig)).toBe(v.final_output.sig);
  return { sig, pub, msg, list, shares };
}

/**
 * Corrupts the shares at `bad` (indices into `ids`, each shifted by a different scalar) and checks
 * that the fast path names exactly the signers noble names (RFC 9591 §5.4, identifiable abort) and
 * judges every share as noble does.
 */
export function expectSameCheaters(
  spec: KeySpec,
  fast: FrostSigning,
  a: {
    pub: FrostPublic;
    list: NonceCommitments[];
    msg: Uint8Array;
    ids: readonly string[];
    shares: Record<string, Uint8Array>;
    bad: readonly number[];
  },
): void {
  const noble = spec.frost;
  const Fn = noble.utils.Fn;
  const shares = { ...a.shares };
  for (const b of a.bad) {
    const id = a.ids[b % a.ids.length]!;
    shares[id] = Fn.toBytes(Fn.add(Fn.fromBytes(shares[id]!), BigInt(b) + 1n));
  }
  const cheatersOf = (impl: FrostSigning): unknown => {
    try {
      impl.aggregate(a.pub, a.list, a.msg, shares);
      return 'no error';
    } catch (e) {
      return (e as { cheaters?: unknown }).cheaters;
    }
  };
  const expected = cheatersOf(noble);
  expect(Array.isArray(expected) && expected.length > 0).toBe(true);
  expect(cheatersOf(fast)).toEqual(expected);
  for (const id of a.ids) {
    expect(fast.verifyShare(a.pub, a.list, a.msg, id, shares[id]!)).toBe(
      noble.verifyShare(a.pub, a.list, a.msg, id, shares[id]!),
    );
  }
}
