/**
 * Signing: single-use nonces, commitment-list checks on the signer (threats S-03 c, S-07) and
 * identifiable abort on the aggregator (S-09, RFC 9591 §5.4).
 */
import { describe, expect, it } from 'vitest';
import { KmsError, ProtocolError } from '../protocol/errors.ts';
import { asEpoch, type ParticipantId } from '../protocol/ids.ts';
import {
  aggregate,
  aggregateSignature,
  type SignatureShare,
  type SigningCommitment,
  signerCommit,
  signerSign,
} from '../protocol/sign.ts';
import { KEY_SPECS, keySpec, verifySignature, publicKeyFromGroupElement } from '../protocol/suites.ts';

const msg = new TextEncoder().encode('sign me');
const E0 = asEpoch(0);

function setup(name: (typeof KEY_SPECS)[number] = 'FROST_RISTRETTO255', t = 3, n = 5) {
  const spec = keySpec(name);
  const dealt = spec.frost.trustedDealer({ min: t, max: n });
  const ids = Object.keys(dealt.secretShares).sort() as ParticipantId[];
  const keyOf = (id: string) => ({ public: dealt.public, secret: dealt.secretShares[id]! });
  const pk = publicKeyFromGroupElement(spec, dealt.public.commitments[0]!);
  return { spec, pub: dealt.public, ids, keyOf, pk };
}

function codeOf(f: () => unknown): string {
  try {
    f();
  } catch (e) {
    expect(e).toBeInstanceOf(KmsError);
    return (e as KmsError).code;
  }
  throw new Error('expected a typed error');
}

function round1(s: ReturnType<typeof setup>, signers: ParticipantId[]) {
  const cs = signers.map((id) => signerCommit({ spec: s.spec, key: s.keyOf(id), epoch: E0 }));
  return { states: cs.map((c) => c.state), commitments: cs.map((c) => c.commitment) };
}

describe('signer', () => {
  const s = setup();
  const signers = s.ids.slice(0, 3);

  it('signs once; a second use of the same nonce state is NonceReused', () => {
    const { states, commitments } = round1(s, signers);
    const share = signerSign(states[0]!, { message: msg, commitments });
    expect(share.share).toHaveLength(s.spec.scalarLength);
    expect(states[0]!.status).toBe('used');
    expect(codeOf(() => signerSign(states[0]!, { message: msg, commitments }))).toBe('NonceReused');
    // Nonce bytes are erased.
    expect(states[0]!.nonces.hiding.every((b) => b === 0)).toBe(true);
  });

  const refusals: [string, (c: SigningCommitment[]) => SigningCommitment[], string][] = [
    ['without self', (c) => [c[1]!, c[2]!, round1(s, [s.ids[3]!]).commitments[0]!], 'ValidationError'],
    ['fewer than t', (c) => c.slice(0, 2), 'ValidationError'],
    ['duplicate identifier', (c) => [c[0]!, c[1]!, c[1]!], 'InvalidIdentifier'],
    [
      'unknown identifier',
      (c) => [
        c[0]!,
        c[1]!,
        { ...c[2]!, identifier: s.spec.frost.Identifier.fromNumber(77) as ParticipantId },
      ],
      'InvalidIdentifier',
    ],
    [
      'zero identifier',
      (c) => [c[0]!, c[1]!, { ...c[2]!, identifier: '00'.repeat(32) as ParticipantId }],
      'InvalidIdentifier',
    ],
    ['another epoch', (c) => [c[0]!, c[1]!, { ...c[2]!, epoch: asEpoch(1) }], 'EpochMismatch'],
    ['unsorted', (c) => [c[1]!, c[0]!, c[2]!], 'DecodeError'],
    ['own commitment altered', (c) => [{ ...c[0]!, hiding: c[1]!.hiding }, c[1]!, c[2]!], 'ContextMismatch'],
    [
      'invalid element',
      (c) => [c[0]!, { ...c[1]!, binding: new Uint8Array(32).fill(0xff) }, c[2]!],
      'InvalidElement',
    ],
    ['identity element', (c) => [c[0]!, { ...c[1]!, binding: new Uint8Array(32) }, c[2]!], 'InvalidElement'],
  ];
  for (const [what, mutate, code] of refusals) {
    it(`refuses a commitment list ${what} (${code}) and consumes the nonce`, () => {
      const { states, commitments } = round1(s, signers);
      expect(codeOf(() => signerSign(states[0]!, { message: msg, commitments: mutate(commitments) }))).toBe(
        code,
      );
      expect(codeOf(() => signerSign(states[0]!, { message: msg, commitments }))).toBe('NonceReused');
    });
  }
});

describe.each(KEY_SPECS)('%s aggregator with identifiable abort', (name) => {
  const s = setup(name, 3, 4);
  const signers = s.ids.slice(0, 3);

  function sharesFor(message = msg) {
    const { states, commitments } = round1(s, signers);
    const shares = states.map((st) => signerSign(st, { message, commitments }));
    return { commitments, shares };
  }

  it('aggregates a valid signature', () => {
    const { commitments, shares } = sharesFor();
    const sig = aggregate({ spec: s.spec, public: s.pub, epoch: E0, commitments, shares, message: msg });
    expect(sig).toHaveLength(s.spec.signatureLength);
    expect(verifySignature(s.spec, msg, sig, s.pk)).toBe(true);
  });

  type Session = {
    commitments: SigningCommitment[];
    shares: SignatureShare[];
    otherMessageShare: Uint8Array;
  };
  const bad = 1;
  /** One signing session; the bad signer also computes, with the same nonce, a share over another message. */
  function session(): Session {
    const { states, commitments } = round1(s, signers);
    const st = states[bad]!;
    const nonceCopy = { hiding: st.nonces.hiding.slice(), binding: st.nonces.binding.slice() };
    const list = commitments.map(({ identifier, hiding, binding }) => ({ identifier, hiding, binding }));
    const otherMessageShare = s.spec.frost.signShare(
      st.key.secret,
      st.key.public,
      nonceCopy,
      list,
      new TextEncoder().encode('other'),
    );
    return {
      commitments,
      shares: states.map((x) => signerSign(x, { message: msg, commitments })),
      otherMessageShare,
    };
  }
  const Fn = keySpec(name).Point.Fn;
  const corruptions: [string, (x: Session) => Uint8Array][] = [
    ['z_i + 1', (x) => Fn.toBytes(Fn.add(Fn.fromBytes(x.shares[bad]!.share), 1n))],
    ['a random scalar', () => keySpec(name).frost.utils.randomScalar()],
    ["another signer's share", (x) => x.shares[(bad + 1) % x.shares.length]!.share],
    ['a share for another message', (x) => x.otherMessageShare],
  ];
  for (const [what, corrupt] of corruptions) {
    it(`names exactly the signer who sent ${what}; a retry without it succeeds`, () => {
      const x = session();
      const tampered = x.shares.map((sh, i) => (i === bad ? { ...sh, share: corrupt(x) } : sh));
      let err: unknown;
      try {
        aggregate({
          spec: s.spec,
          public: s.pub,
          epoch: E0,
          commitments: x.commitments,
          shares: tampered,
          message: msg,
        });
      } catch (e) {
        err = e;
      }
      expect(err).toBeInstanceOf(ProtocolError);
      expect((err as ProtocolError).code).toBe('ParticipantMisbehaved');
      expect((err as ProtocolError).culprits.map((c) => [c.participant, c.reason])).toEqual([
        [signers[bad], 'invalid-signature-share'],
      ]);
      // Retry: a fresh round one for everyone, without the culprit.
      const retrySigners = s.ids.filter((id) => id !== signers[bad]).slice(0, 3);
      const r = round1(s, retrySigners);
      const retryShares = r.states.map((st) => signerSign(st, { message: msg, commitments: r.commitments }));
      const sig = aggregate({
        spec: s.spec,
        public: s.pub,
        epoch: E0,
        commitments: r.commitments,
        shares: retryShares,
        message: msg,
      });
      expect(verifySignature(s.spec, msg, sig, s.pk)).toBe(true);
    });
  }

  it('refuses mixed epochs, malformed shares and missing shares with typed errors', () => {
    const { commitments, shares } = sharesFor();
    const mixed = shares.map((x, i) => (i === 0 ? { ...x, epoch: asEpoch(1) } : x));
    expect(
      codeOf(() =>
        aggregate({ spec: s.spec, public: s.pub, epoch: E0, commitments, shares: mixed, message: msg }),
      ),
    ).toBe('EpochMismatch');
    const mixedC = commitments.map((c, i) => (i === 2 ? { ...c, epoch: asEpoch(1) } : c));
    expect(
      codeOf(() =>
        aggregate({ spec: s.spec, public: s.pub, epoch: E0, commitments: mixedC, shares, message: msg }),
      ),
    ).toBe('EpochMismatch');
    const oversized = shares.map((x, i) =>
      i === 2 ? { ...x, share: new Uint8Array(s.spec.scalarLength).fill(0xff) } : x,
    );
    let err: unknown;
    try {
      aggregate({ spec: s.spec, public: s.pub, epoch: E0, commitments, shares: oversized, message: msg });
    } catch (e) {
      err = e;
    }
    expect((err as ProtocolError).culprits).toEqual([
      expect.objectContaining({ participant: signers[2], reason: 'invalid-signature-share' }),
    ]);
    expect(
      codeOf(() =>
        aggregate({
          spec: s.spec,
          public: s.pub,
          epoch: E0,
          commitments,
          shares: shares.slice(0, 2),
          message: msg,
        }),
      ),
    ).toBe('ProtocolAborted');
    expect(
      codeOf(() =>
        aggregate({
          spec: s.spec,
          public: s.pub,
          epoch: E0,
          commitments,
          shares: [...shares, shares[0]!],
          message: msg,
        }),
      ),
    ).toBe('InvalidIdentifier');
  });

  it('aggregateSignature accepts unsorted commitments and a share map', () => {
    const { commitments, shares } = sharesFor();
    const sig = aggregateSignature({
      spec: s.spec,
      public: s.pub,
      epoch: 0,
      message: msg,
      commitments: [...commitments]
        .reverse()
        .map(({ identifier, hiding, binding }) => ({ identifier, hiding, binding })),
      shares: Object.fromEntries(shares.map((x) => [x.identifier, x.share])),
    });
    expect(verifySignature(s.spec, msg, sig, s.pk)).toBe(true);
  });
});
