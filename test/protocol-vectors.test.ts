/**
 * RFC 9591 Appendix E (and ZF FROST) vectors for all six suites, run through noble and our
 * protocol layer: dealer shares, round-one nonces and commitments, binding factors (recomputed
 * per §4.4, noble does not expose them), signature shares, final signature; every elements.json
 * entry is rejected; ZF's DKG vector replayed through noble's DKG rounds; independent verifiers.
 */
import { createPublicKey, verify as cryptoVerify } from 'node:crypto';
import type { FrostPublic, FrostSecret } from '@noble/curves/abstract/frost.js';
import { schnorr } from '@noble/curves/secp256k1.js';
import { bytesToHex, concatBytes, hexToBytes } from '@noble/hashes/utils.js';
import { describe, expect, it } from 'vitest';
import { decodeEnvelope, encodeEnvelope } from '../protocol/codec.ts';
import { decodeElement } from '../protocol/elements.ts';
import { DecodeError } from '../protocol/errors.ts';
import { asEpoch, asKeyId, asSessionId, type ParticipantId } from '../protocol/ids.ts';
import {
  aggregate,
  commitmentBody,
  parseCommitmentBody,
  type SigningCommitment,
  signerCommit,
  signerSign,
} from '../protocol/sign.ts';
import { dkgMachine } from '../protocol/dkg.ts';
import { simulate } from '../protocol/simulate.ts';
import {
  KEY_SPECS,
  type KeySpec,
  keySpec,
  publicKeyFromGroupElement,
  verifySignature,
} from '../protocol/suites.ts';
import {
  loadDkgVector,
  loadInvalidElements,
  loadVectors,
  suiteHashes,
  type DkgParticipantVector,
} from './helpers/vectors.ts';
import { replay } from './helpers/rng.ts';

const scalar = (spec: KeySpec, hex: string) => spec.frost.utils.Fn.fromBytes(hexToBytes(hex));
const sbytes = (spec: KeySpec, n: bigint) => spec.frost.utils.Fn.toBytes(n);

function evalPoly(spec: KeySpec, coeffs: bigint[], x: bigint): bigint {
  const Fn = spec.frost.utils.Fn;
  let acc = 0n;
  for (let i = coeffs.length - 1; i >= 0; i--) acc = Fn.add(Fn.mul(acc, x), coeffs[i]!);
  return acc;
}

function ed25519VerifiesWithOpenSSL(publicKey: Uint8Array, message: Uint8Array, sig: Uint8Array): boolean {
  const key = createPublicKey({
    key: { kty: 'OKP', crv: 'Ed25519', x: Buffer.from(publicKey).toString('base64url') },
    format: 'jwk',
  });
  return cryptoVerify(null, message, key, sig);
}

describe.each(KEY_SPECS.map((n) => keySpec(n)))('$name vectors', (spec) => {
  for (const { name, vector: v } of loadVectors(spec)) {
    it(`${name}: dealer shares, nonces, commitments, binding factors, shares, signature`, () => {
      const Fn = spec.frost.utils.Fn;
      const min = Number(v.config.MIN_PARTICIPANTS);
      const max = Number(v.config.MAX_PARTICIPANTS);
      const signers = { min, max };
      const idOf = (k: number) => spec.frost.Identifier.fromNumber(k) as ParticipantId;
      const msg = hexToBytes(v.inputs.message);

      // Dealer (RFC 9591 App. C): f(x) = s + a1 x + ..., shares f(i), public commitments.
      const coeffs = v.inputs.share_polynomial_coefficients.map((h) => scalar(spec, h));
      const poly = spec.frost.utils.generateSecretPolynomial(
        signers,
        hexToBytes(v.inputs.group_secret_key),
        coeffs,
      );
      expect(bytesToHex(poly.commitment[0]!)).toBe(v.inputs.verifying_key_key);
      const allCoeffs = [scalar(spec, v.inputs.group_secret_key), ...coeffs];
      const secrets: Record<string, FrostSecret> = {};
      const verifyingShares: Record<string, Uint8Array> = {};
      for (const s of v.inputs.participant_shares) {
        const share = sbytes(spec, evalPoly(spec, allCoeffs, BigInt(s.identifier)));
        expect(bytesToHex(share)).toBe(s.participant_share);
        secrets[idOf(s.identifier)] = { identifier: idOf(s.identifier), signingShare: share } as FrostSecret;
        verifyingShares[idOf(s.identifier)] = spec.Point.BASE.multiply(Fn.fromBytes(share)).toBytes();
      }
      const pub = { signers, commitments: poly.commitment, verifyingShares } as FrostPublic;
      for (const s of Object.values(secrets)) spec.frost.validateSecret(s, pub);
      const chosen = v.inputs.participant_list.map(idOf);
      expect(
        bytesToHex(
          spec.frost.combineSecret(
            chosen.map((id) => secrets[id]!),
            signers,
          ),
        ),
      ).toBe(v.inputs.group_secret_key);

      // Round one with the vector's randomness (RFC 9591 §4.1 nonce_generate, §5.1 commit).
      const states = new Map<string, ReturnType<typeof signerCommit>['state']>();
      const commitments: SigningCommitment[] = [];
      for (const o of v.round_one_outputs.outputs) {
        const id = idOf(o.identifier);
        const rng = replay([hexToBytes(o.hiding_nonce_randomness), hexToBytes(o.binding_nonce_randomness)]);
        const { commitment, state } = signerCommit({
          spec,
          key: { public: pub, secret: secrets[id]! },
          epoch: asEpoch(0),
          rng,
        });
        expect(bytesToHex(state.nonces.hiding)).toBe(o.hiding_nonce);
        expect(bytesToHex(state.nonces.binding)).toBe(o.binding_nonce);
        expect(bytesToHex(commitment.hiding)).toBe(o.hiding_nonce_commitment);
        expect(bytesToHex(commitment.binding)).toBe(o.binding_nonce_commitment);
        states.set(id, state);
        commitments.push(commitment);
      }

      // Binding factors (RFC 9591 §4.4): rho_i = H1(PK || H4(msg) || H5(encode(list)) || i).
      const { H1, H4, H5 } = suiteHashes(spec);
      const encodedList = concatBytes(
        ...commitments.flatMap((c) => [hexToBytes(c.identifier), c.hiding, c.binding]),
      );
      for (const o of v.round_one_outputs.outputs) {
        const input = concatBytes(
          hexToBytes(v.inputs.verifying_key_key),
          H4(msg),
          H5(encodedList),
          hexToBytes(idOf(o.identifier)),
        );
        expect(bytesToHex(input)).toBe(o.binding_factor_input);
        expect(bytesToHex(sbytes(spec, H1(input)))).toBe(o.binding_factor);
      }

      // Round two (§5.2) and aggregation (§5.3).
      const shares = v.round_two_outputs.outputs.map((o) => {
        const id = idOf(o.identifier);
        const share = signerSign(states.get(id)!, { message: msg, commitments });
        expect(bytesToHex(share.share)).toBe(o.sig_share);
        expect(spec.frost.verifyShare(pub, commitments, msg, id, share.share)).toBe(true);
        return share;
      });
      const sig = aggregate({ spec, public: pub, epoch: asEpoch(0), commitments, shares, message: msg });
      expect(bytesToHex(sig)).toBe(v.final_output.sig);
      const pk = publicKeyFromGroupElement(spec, hexToBytes(v.inputs.verifying_key_key));
      expect(verifySignature(spec, msg, sig, pk)).toBe(true);
      if (spec.name === 'FROST_ED25519') expect(ed25519VerifiesWithOpenSSL(pk, msg, sig)).toBe(true);
      if (spec.name === 'FROST_SECP256K1_TR') {
        expect(sig.length).toBe(64);
        expect(schnorr.verify(sig, msg, pk)).toBe(true);
      }
    });
  }

  it('rejects every elements.json entry, alone and inside a decoded message', () => {
    const invalid = loadInvalidElements(spec);
    expect(invalid.length).toBeGreaterThan(0);
    const good = spec.Point.BASE.toBytes();
    for (const hex of invalid) {
      const bytes = hexToBytes(hex);
      expect(() => decodeElement(spec, bytes)).toThrowError(
        expect.objectContaining({ code: 'InvalidElement' }),
      );
      for (const field of ['hiding', 'binding'] as const) {
        const c = { identifier: spec.frost.Identifier.fromNumber(1), hiding: good, binding: good, epoch: 0 };
        const body = commitmentBody({ ...c, [field]: bytes } as SigningCommitment);
        const wire = encodeEnvelope({
          header: {
            version: 1,
            protocol: 'sign',
            keySpec: spec.name,
            keyId: asKeyId('k'),
            sessionId: asSessionId('s'),
            epoch: asEpoch(0),
            round: 'sign.commit',
            from: spec.frost.Identifier.fromNumber(1) as ParticipantId,
            to: spec.frost.Identifier.fromNumber(2) as ParticipantId,
          },
          body,
        });
        const env = decodeEnvelope(wire);
        let err: unknown;
        try {
          parseCommitmentBody(spec, env.body);
        } catch (e) {
          err = e;
        }
        expect(err).toBeInstanceOf(DecodeError);
        expect((err as DecodeError).code).toBe('InvalidElement');
      }
    }
  });

  it("ZF's DKG vector replays through noble's DKG rounds (same context strings and PoK format)", () => {
    // noble's DKG follows frost-rs (HDKG = contextString || "dkg", challenge over id || A_0 || R),
    // so ZF's run is checked end to end: each sender's round-1 package (commitments + PoK) is
    // accepted, its round-2 shares reproduce, and round 3 yields ZF's signing and verifying shares.
    // The vector uses participant secrets directly as noble's round-1 secret state.
    const v = loadDkgVector(spec);
    const signers = { min: v.config.MIN_PARTICIPANTS, max: v.config.MAX_PARTICIPANTS };
    const parts = Object.entries(v.inputs)
      .filter(([k]) => /^\d+$/.test(k))
      .map(([, p]) => p as DkgParticipantVector);
    expect(parts.length).toBe(signers.max);
    const idOf = (k: number | string) => spec.frost.Identifier.fromNumber(Number(k));
    const r1 = parts.map((p) => ({
      identifier: idOf(p.identifier),
      commitment: p.vss_commitments.map((c) => hexToBytes(c)),
      proofOfKnowledge: hexToBytes(p.proof_of_knowledge),
    }));
    const states = parts.map((p) => ({
      identifier: BigInt(p.identifier),
      coefficients: [scalar(spec, p.signing_key), scalar(spec, p.coefficient)],
      commitment: p.vss_commitments.map((c) => hexToBytes(c)),
      signers,
      step: 1 as const,
    }));
    const othersOf = (p: DkgParticipantVector) => r1.filter((x) => x.identifier !== idOf(p.identifier));
    // round2 validates every other sender's proof of knowledge (noble throws on a bad one).
    const sent = parts.map((p, i) => spec.frost.DKG.round2(states[i]!, othersOf(p)));
    const keys = parts.map((p, i) => {
      // ZF's `signing_shares[q]` of participant p is what p received from q.
      const received = parts
        .map((q, j) => [q, j] as const)
        .filter(([q]) => q.identifier !== p.identifier)
        .map(([q, j]) => {
          const share = sent[j]![idOf(p.identifier)]!.signingShare;
          expect(bytesToHex(share)).toBe(p.signing_shares[String(q.identifier)]);
          return { identifier: idOf(q.identifier), signingShare: share };
        });
      const key = spec.frost.DKG.round3(states[i]!, othersOf(p), received);
      expect(bytesToHex(key.secret.signingShare)).toBe(p.signing_share);
      expect(bytesToHex(key.public.verifyingShares[idOf(p.identifier)]!)).toBe(p.verifying_share);
      return key;
    });
    expect(bytesToHex(keys[0]!.public.commitments[0]!)).toBe(v.inputs.verifying_key);
  });

  it('a DKG-generated key signs and the signature verifies independently', () => {
    const ids = [1, 2, 3].map((k) => spec.frost.Identifier.fromNumber(k) as ParticipantId);
    const run = simulate(
      ids.map((self) =>
        dkgMachine({
          spec,
          keyId: asKeyId('key-v'),
          sessionId: asSessionId('sess-v'),
          self,
          participants: ids,
          threshold: 2,
        }),
      ),
    );
    expect(run.errors.size).toBe(0);
    const [a, b] = [run.results.get(ids[0]!)!, run.results.get(ids[2]!)!];
    const msg = new TextEncoder().encode('independent verification');
    const ca = signerCommit({ spec, key: a.key, epoch: asEpoch(0) });
    const cb = signerCommit({ spec, key: b.key, epoch: asEpoch(0) });
    const commitments = [ca.commitment, cb.commitment];
    const shares = [
      signerSign(ca.state, { message: msg, commitments }),
      signerSign(cb.state, { message: msg, commitments }),
    ];
    const sig = aggregate({
      spec,
      public: a.key.public,
      epoch: asEpoch(0),
      commitments,
      shares,
      message: msg,
    });
    expect(sig.length).toBe(spec.signatureLength);
    expect(verifySignature(spec, msg, sig, a.publicKey)).toBe(true);
    if (spec.name === 'FROST_ED25519') expect(ed25519VerifiesWithOpenSSL(a.publicKey, msg, sig)).toBe(true);
    if (spec.name === 'FROST_SECP256K1_TR') {
      expect(a.publicKey.length).toBe(32);
      expect(schnorr.verify(sig, msg, a.publicKey)).toBe(true);
      // x-only R || s: R's x coordinate is the first 32 bytes.
      expect(schnorr.verify(sig, concatBytes(msg, Uint8Array.of(0)), a.publicKey)).toBe(false);
    }
  });
});
