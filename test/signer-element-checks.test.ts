/**
 * The signer's RFC 9591 §3.1 element checks on the fast Ed25519 path (issue 17): its own fresh
 * commitment is not checked again (fast-sign.ts commit records it valid), and another signer's
 * binding element is checked by libsodium's multiplication itself (backend mulChecked) instead of
 * a separate check before it. Both must refuse exactly what the plain check refuses: every element
 * of another signer that is not canonical, off the curve, of small order, or outside the
 * prime-order subgroup (a torsion component) is refused with InvalidElement, the nonce consumed,
 * and no share made; and mulChecked accepts exactly the encodings isValidElement accepts.
 */
import { ed25519 } from '@noble/curves/ed25519.js';
import { describe, expect, it } from 'vitest';
import { ed25519Sodium } from '../protocol/backend-ed25519-sodium.ts';
import { KmsError } from '../protocol/errors.ts';
import { forgetValidatedElements } from '../protocol/fast-sign.ts';
import { asEpoch, type ParticipantId } from '../protocol/ids.ts';
import { aggregateSignature, type SigningCommitment, signerCommit, signerSign } from '../protocol/sign.ts';
import { keySpec, publicKeyFromGroupElement, verifySignature } from '../protocol/suites.ts';

const { Point } = ed25519;
const spec = keySpec('FROST_ED25519');
const msg = new TextEncoder().encode('element checks');
const E0 = asEpoch(0);
const dealt = spec.frost.trustedDealer({ min: 3, max: 5 });
const ids = Object.keys(dealt.secretShares).sort() as ParticipantId[];
const keyOf = (id: string) => ({ public: dealt.public, secret: dealt.secretShares[id]! });

/** A point of order 8 (the Ed25519 torsion), from noble (not our code). */
function torsion8(): InstanceType<typeof Point> {
  for (let i = 1; ; i++) {
    const y = new Uint8Array(32);
    y[0] = i;
    let P: InstanceType<typeof Point>;
    try {
      P = Point.fromBytes(y);
    } catch {
      continue;
    }
    const T = P.multiplyUnsafe(Point.Fn.ORDER - 1n).add(P); // [L]P: P's torsion part
    if (!T.is0() && T.multiplyUnsafe(4n).is0() === false) return T;
  }
}
const T8 = torsion8();

/** Elements another signer might send that §3.1 refuses (noble builds them; none is valid). */
function invalidElements(valid: Uint8Array): [string, Uint8Array][] {
  const P = Point.fromBytes(valid);
  const nonCanonical = valid.slice();
  nonCanonical[31]! ^= 0x80; // the other x sign for the same y: a different point, or invalid
  const out: [string, Uint8Array][] = [
    ['with a torsion component', P.add(T8).toBytes()],
    ['with an order-2 component', P.add(T8.multiplyUnsafe(4n)).toBytes()],
    ['of small order', T8.toBytes()],
    ['the identity', Point.ZERO.toBytes()],
    ['off the curve', new Uint8Array(32).fill(0xff)],
  ];
  // y >= p (non-canonical encodings of y - p)
  const big = new Uint8Array(32).fill(0xff);
  big[0] = 0xed;
  big[31] = 0x7f;
  out.push(['with y = p (non-canonical zero)', big]);
  return out.filter(([, b]) => !ed25519Sodium.isValidElement(b));
}

function codeOf(f: () => unknown): string {
  try {
    f();
  } catch (e) {
    expect(e).toBeInstanceOf(KmsError);
    return (e as KmsError).code;
  }
  return 'ok';
}

describe('FROST_ED25519 signer element checks', () => {
  it('mulChecked accepts exactly the encodings isValidElement accepts', () => {
    const cases: Uint8Array[] = [];
    for (let i = 1n; i <= 40n; i++) {
      const P = Point.BASE.multiply(i * 7919n);
      cases.push(P.toBytes());
      for (let j = 1n; j < 8n; j++) cases.push(P.add(T8.multiplyUnsafe(j)).toBytes());
    }
    for (let j = 0n; j < 8n; j++) cases.push(T8.multiplyUnsafe(j + 1n).toBytes());
    for (let i = 0; i < 300; i++) cases.push(ed25519.utils.randomSecretKey()); // random bytes
    let valid = 0;
    for (const b of cases) {
      const ok = ed25519Sodium.isValidElement(b);
      if (ok) valid++;
      expect(ed25519Sodium.mulChecked!(b, 123456789n) !== undefined, Buffer.from(b).toString('hex')).toBe(ok);
    }
    expect(valid).toBeGreaterThanOrEqual(40);
    expect(valid).toBeLessThan(cases.length);
  });

  for (const field of ['binding', 'hiding'] as const) {
    it(`refuses another signer's invalid ${field} element (InvalidElement) and consumes the nonce`, () => {
      for (const fresh of [true, false]) {
        const probe = signerCommit({ spec, key: keyOf(ids[1]!), epoch: E0 }).commitment;
        expect(invalidElements(probe[field]).length).toBeGreaterThanOrEqual(5);
        for (const [what, bad] of invalidElements(probe[field])) {
          // `fresh`: no element cached in this process (as on a node that never saw the key signing).
          if (fresh) forgetValidatedElements();
          const cs = ids.slice(0, 3).map((id) => signerCommit({ spec, key: keyOf(id), epoch: E0 }));
          const list: SigningCommitment[] = cs.map((c) => c.commitment);
          list[1] = { ...list[1]!, [field]: bad };
          expect(
            codeOf(() => signerSign(cs[0]!.state, { message: msg, commitments: list })),
            what,
          ).toBe('InvalidElement');
          expect(cs[0]!.state.status).toBe('used');
          expect(cs[0]!.state.nonces.hiding.every((b) => b === 0)).toBe(true);
        }
      }
    });
  }

  it('signs with its own commitment unchecked again; the shares aggregate to a valid signature', () => {
    forgetValidatedElements();
    const cs = ids.slice(1, 4).map((id) => signerCommit({ spec, key: keyOf(id), epoch: E0 }));
    const commitments = cs.map((c) => c.commitment);
    const shares = cs.map((c) => signerSign(c.state, { message: msg, commitments }));
    const sig = aggregateSignature({
      spec,
      public: dealt.public,
      epoch: E0,
      message: msg,
      commitments,
      shares: Object.fromEntries(shares.map((s) => [s.identifier, s.share])),
    });
    const pk = publicKeyFromGroupElement(spec, dealt.public.commitments[0]!);
    expect(verifySignature(spec, msg, sig, pk)).toBe(true);
  });
});
