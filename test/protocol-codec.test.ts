/**
 * Codec and strict element decoding: every malformed input is a typed error with a stable code,
 * never a raw TypeError/RangeError (threats S-07, S-08, S-10).
 */
import { encode } from 'cborg';
import { describe, expect, it } from 'vitest';
import {
  assertBinding,
  checkEnvelopeSignature,
  DEFAULT_MAX_MESSAGE_BYTES,
  decodeEnvelope,
  encodeEnvelope,
  encodeSignedFrame,
  envelopeDigest,
  signedMessage,
  signEnvelope,
  readBytes,
  readBytesArray,
  readInt,
  readMap,
  readString,
} from '../protocol/codec.ts';
import { decodeElement, decodeIdentifier, decodeScalar } from '../protocol/elements.ts';
import { type DecodeError, KmsError } from '../protocol/errors.ts';
import { asEpoch, asKeyId, asSessionId, type ParticipantId } from '../protocol/ids.ts';
import type { Envelope, EnvelopeHeader } from '../protocol/machine.ts';
import { KEY_SPECS, keySpec } from '../protocol/suites.ts';
import {
  generateIdentityKey,
  identitySigner,
  nodeSignatureVerifier,
  peerIdOf,
  publicKeyOfPeer,
  verifyIdentitySignature,
} from '../net/identity.ts';

function codeOf(f: () => unknown): string {
  try {
    f();
  } catch (e) {
    expect(e).toBeInstanceOf(KmsError);
    return (e as KmsError).code;
  }
  throw new Error('expected a typed error, nothing was thrown');
}

const spec = keySpec('FROST_ED25519');
const id = (k: number) => spec.frost.Identifier.fromNumber(k) as ParticipantId;
const header: EnvelopeHeader = {
  version: 1,
  protocol: 'dkg',
  keySpec: 'FROST_ED25519',
  keyId: asKeyId('key-1'),
  sessionId: asSessionId('session-1'),
  epoch: asEpoch(0),
  round: 'dkg.r1',
  from: id(1),
  to: '*',
};
const env: Envelope<Record<string, unknown>> = {
  header,
  body: { a: new Uint8Array([1, 2]), n: 7, s: 'x', l: [new Uint8Array(3)] },
};

describe('envelope codec', () => {
  it('round-trips deterministically', () => {
    const a = encodeEnvelope(env);
    const b = encodeEnvelope({
      header,
      body: { s: 'x', l: [new Uint8Array(3)], n: 7, a: new Uint8Array([1, 2]) },
    });
    expect(a).toEqual(b);
    expect(decodeEnvelope(a)).toEqual(env);
  });

  it('rejects unknown versions with UnsupportedVersion', () => {
    const { version: _v, ...h } = header;
    const raw = encode({ v: 3, h, b: {} });
    expect(codeOf(() => decodeEnvelope(raw))).toBe('UnsupportedVersion');
    // Version 2 is the signed frame: an envelope-shaped v2 is malformed, not unsupported.
    expect(codeOf(() => decodeEnvelope(encode({ v: 2, h, b: {} })))).toBe('DecodeError');
    expect(codeOf(() => decodeEnvelope(encode({ h: {}, b: {} })))).toBe('UnsupportedVersion');
  });

  it('rejects oversize messages with MessageTooLarge', () => {
    const big = encodeEnvelope({ header, body: { a: new Uint8Array(DEFAULT_MAX_MESSAGE_BYTES) } });
    expect(codeOf(() => decodeEnvelope(big))).toBe('MessageTooLarge');
    expect(codeOf(() => decodeEnvelope(encodeEnvelope(env), { maxBytes: 10 }))).toBe('MessageTooLarge');
  });

  it('rejects garbage, truncation and trailing bytes as DecodeError', () => {
    const good = encodeEnvelope(env);
    expect(codeOf(() => decodeEnvelope(new Uint8Array([0xff, 0x00])))).toBe('DecodeError');
    expect(codeOf(() => decodeEnvelope(good.subarray(0, good.length - 1)))).toBe('DecodeError');
    const trailing = new Uint8Array([...good, 0]);
    expect(codeOf(() => decodeEnvelope(trailing))).toBe('DecodeError');
    expect(codeOf(() => decodeEnvelope(new Uint8Array(0)))).toBe('DecodeError');
    expect(codeOf(() => decodeEnvelope('x' as unknown as Uint8Array))).toBe('DecodeError');
  });

  it('validates every header field', () => {
    const { version: _v, ...h } = header;
    const cases: Record<string, unknown>[] = [
      { ...h, protocol: 'other' },
      { ...h, keySpec: 'FROST_RSA' },
      { ...h, keyId: '' },
      { ...h, keyId: 'x'.repeat(200) },
      { ...h, sessionId: 'a b' },
      { ...h, epoch: -1 },
      { ...h, epoch: 1.5 },
      { ...h, round: 'DKG R1' },
      { ...h, from: '00'.repeat(32) },
      { ...h, to: 'everyone' },
      { ...h, to: h.from },
      { ...h, extra: 1 },
    ];
    for (const c of cases) {
      const code = codeOf(() => decodeEnvelope(encode({ v: 1, h: c, b: {} })));
      expect(['DecodeError', 'InvalidIdentifier']).toContain(code);
    }
    expect(codeOf(() => decodeEnvelope(encode({ v: 1, h: { ...h, from: '00'.repeat(32) }, b: {} })))).toBe(
      'InvalidIdentifier',
    );
  });

  it('rejects body values outside the wire types', () => {
    const { version: _v, ...h } = header;
    for (const b of [{ f: 1.5 }, { f: null }, { f: true }, [1], new Uint8Array(1)]) {
      expect(codeOf(() => decodeEnvelope(encode({ v: 1, h, b })))).toBe('DecodeError');
    }
    // __proto__ as a key on the wire would otherwise re-parent the decoded object.
    const proto = encode({ v: 1, h, b: new Map([['__proto__', 1]]) });
    expect(codeOf(() => decodeEnvelope(proto))).toBe('DecodeError');
    expect(codeOf(() => encodeEnvelope({ header, body: { f: undefined } }))).toBe('DecodeError');
    expect(codeOf(() => encodeEnvelope({ header, body: { f: 2n } }))).toBe('DecodeError');
    expect(codeOf(() => encodeEnvelope({ header, body: { f: 0.5 } }))).toBe('DecodeError');
  });

  it('rejects non-canonical CBOR (unsorted map keys)', () => {
    const good = encodeEnvelope({ header, body: { a: 1, b: 2 } });
    const { version: _v, ...h } = header;
    // Same content with the body keys in reverse order: valid CBOR, not the deterministic form.
    const unsorted = encode(
      {
        v: 1,
        h,
        b: new Map([
          ['b', 2],
          ['a', 1],
        ]),
      },
      { mapSorter: () => 0 },
    );
    expect(unsorted).not.toEqual(good);
    expect(codeOf(() => decodeEnvelope(unsorted))).toBe('DecodeError');
  });

  it('assertBinding rejects other sessions, keys, epochs, rounds and recipients', () => {
    const ok = decodeEnvelope(encodeEnvelope(env));
    assertBinding(ok, {
      sessionId: header.sessionId,
      keyId: header.keyId,
      epoch: header.epoch,
      round: 'dkg.r1',
    });
    const fields: Partial<EnvelopeHeader>[] = [
      { sessionId: asSessionId('other') },
      { keyId: asKeyId('other') },
      { epoch: asEpoch(1) },
      { round: 'dkg.r2' },
      { to: id(2) },
      { protocol: 'sign' },
      { keySpec: 'FROST_P256' },
    ];
    for (const f of fields) expect(codeOf(() => assertBinding(ok, f))).toBe('ContextMismatch');
  });

  it('body readers name the field and throw DecodeError', () => {
    const body = { b: new Uint8Array(4), l: [new Uint8Array(2), 'x'], s: 'str', n: 3, m: { k: 1 } };
    expect(readBytes(body, 'b', 4)).toHaveLength(4);
    expect(codeOf(() => readBytes(body, 'b', 5))).toBe('DecodeError');
    expect(codeOf(() => readBytes(body, 's'))).toBe('DecodeError');
    expect(codeOf(() => readBytes(body, 'missing'))).toBe('DecodeError');
    expect(codeOf(() => readBytes(null, 'b'))).toBe('DecodeError');
    expect(codeOf(() => readBytesArray(body, 'l'))).toBe('DecodeError');
    expect(codeOf(() => readBytesArray({ l: [new Uint8Array(1)] }, 'l', 2))).toBe('DecodeError');
    expect(readString(body, 's')).toBe('str');
    expect(codeOf(() => readString(body, 'n'))).toBe('DecodeError');
    expect(readInt(body, 'n')).toBe(3);
    expect(codeOf(() => readInt({ n: 1.5 }, 'n'))).toBe('DecodeError');
    expect(codeOf(() => readInt({ n: -1 }, 'n'))).toBe('DecodeError');
    expect(readMap(body, 'm')).toEqual({ k: 1 });
    expect(codeOf(() => readMap(body, 'l'))).toBe('DecodeError');
    try {
      readBytes(body, 's');
    } catch (e) {
      expect((e as DecodeError).message).toContain('body.s');
    }
  });
});

describe.each(KEY_SPECS.map((n) => keySpec(n)))('$name element, scalar and identifier decoding', (s) => {
  const Fn = s.Point.Fn;
  const good = s.Point.BASE.multiply(7n).toBytes();
  const enc = (n: bigint) => (Fn.isLE ? numberToLE(n, s.scalarLength) : numberToBE(n, s.scalarLength));

  it('rejects wrong lengths, identity, off-curve and non-canonical points', () => {
    expect(codeOf(() => decodeElement(s, good.subarray(1)))).toBe('InvalidElement');
    expect(codeOf(() => decodeElement(s, new Uint8Array([...good, 0])))).toBe('InvalidElement');
    expect(codeOf(() => decodeElement(s, 'ab' as unknown as Uint8Array))).toBe('InvalidElement');
    expect(codeOf(() => decodeElement(s, new Uint8Array(s.elementLength)))).toBe('InvalidElement');
    // Identity in the suite's own encoding (when it has one).
    try {
      const id0 = s.Point.ZERO.toBytes();
      if (id0.length === s.elementLength) expect(codeOf(() => decodeElement(s, id0))).toBe('InvalidElement');
    } catch {
      // SEC1 has no fixed-length identity encoding: the all-zero case above covers it.
    }
    const ff = new Uint8Array(s.elementLength).fill(0xff);
    expect(codeOf(() => decodeElement(s, ff))).toBe('InvalidElement');
    if (s.curve === 'secp256k1' || s.curve === 'p256') {
      for (const prefix of [0x00, 0x04, 0x05]) {
        const p = good.slice();
        p[0] = prefix;
        expect(codeOf(() => decodeElement(s, p))).toBe('InvalidElement');
      }
      expect(codeOf(() => decodeElement(s, s.Point.BASE.toBytes(false)))).toBe('InvalidElement');
    }
    if (s.curve === 'ed25519') {
      // y = p + 1 (non-canonical encoding of y = 1, the identity) and a small-order point (order 4).
      const nonCanon = numberToLE(2n ** 255n - 19n + 1n, 32);
      expect(codeOf(() => decodeElement(s, nonCanon))).toBe('InvalidElement');
      const order4 = numberToLE(0n, 32);
      expect(codeOf(() => decodeElement(s, order4))).toBe('InvalidElement');
      // Mixed order: P + T where T has order 2 (y = -1).
      const T = s.Point.fromBytes(numberToLE(2n ** 255n - 19n - 1n, 32));
      const mixed = s.Point.BASE.add(T).toBytes();
      expect(codeOf(() => decodeElement(s, mixed))).toBe('InvalidElement');
    }
    expect(decodeElement(s, good).equals(s.Point.BASE.multiply(7n))).toBe(true);
  });

  it('rejects zero, out-of-range and wrong-length scalars', () => {
    expect(codeOf(() => decodeScalar(s, enc(0n)))).toBe('InvalidScalar');
    expect(decodeScalar(s, enc(0n), 'z', false)).toBe(0n);
    expect(codeOf(() => decodeScalar(s, enc(Fn.ORDER)))).toBe('InvalidScalar');
    expect(codeOf(() => decodeScalar(s, new Uint8Array(s.scalarLength).fill(0xff)))).toBe('InvalidScalar');
    expect(codeOf(() => decodeScalar(s, enc(1n).subarray(1)))).toBe('InvalidScalar');
    expect(decodeScalar(s, enc(Fn.ORDER - 1n))).toBe(Fn.ORDER - 1n);
  });

  it('rejects zero, q, q+1 and malformed identifiers', () => {
    const hex = (n: bigint) => Buffer.from(enc(n)).toString('hex');
    expect(codeOf(() => decodeIdentifier(s, hex(0n)))).toBe('InvalidIdentifier');
    expect(codeOf(() => decodeIdentifier(s, hex(Fn.ORDER)))).toBe('InvalidIdentifier');
    if (Fn.ORDER + 1n < 2n ** BigInt(8 * s.scalarLength)) {
      expect(codeOf(() => decodeIdentifier(s, hex(Fn.ORDER + 1n)))).toBe('InvalidIdentifier');
    }
    expect(codeOf(() => decodeIdentifier(s, hex(0xabn).toUpperCase()))).toBe('InvalidIdentifier');
    expect(codeOf(() => decodeIdentifier(s, 7))).toBe('InvalidIdentifier');
    expect(decodeIdentifier(s, hex(1n))).toBe(s.frost.Identifier.fromNumber(1));
  });
});

describe('signed envelopes (node identity key, Ed25519)', () => {
  const setup = async () => {
    const a = await generateIdentityKey();
    const b = await generateIdentityKey();
    const peers = new Map([
      ['node-1', peerIdOf(a)],
      ['node-2', peerIdOf(b)],
    ]);
    const verify = nodeSignatureVerifier(peers);
    return { signA: identitySigner(a), signB: identitySigner(b), verify, peerA: peerIdOf(a) };
  };
  const signatureCode = (f: () => unknown) => {
    try {
      f();
    } catch (e) {
      expect(e).toBeInstanceOf(KmsError);
      return `${(e as KmsError).code}/${(e as KmsError).details?.signature ?? ''}`;
    }
    return 'ok';
  };

  it('round trip: the frame decodes to the envelope with its signature, which checks against the peer id', async () => {
    const { signA, verify, peerA } = await setup();
    const frame = signEnvelope(env, signA);
    const got = decodeEnvelope(frame);
    expect({ header: got.header, body: got.body }).toEqual(env);
    expect(got.signature).toHaveLength(64);
    expect(signatureCode(() => checkEnvelopeSignature(got, (m, s) => verify('node-1', m, s)))).toBe('ok');
    // What is signed: the domain, the header and the digest; the public key comes from the peer id.
    const msg = signedMessage(header, envelopeDigest(encodeEnvelope(env)));
    expect(verifyIdentitySignature(publicKeyOfPeer(peerA), msg, got.signature!)).toBe(true);
    // Deterministic (RFC 8032): the same envelope always gives the same frame.
    expect(signEnvelope(env, signA)).toEqual(frame);
  });

  it('a tampered byte, another signer or no signature: InvalidSignature', async () => {
    const { signA, signB, verify } = await setup();
    const asNode1 = (e: Envelope<unknown>) => () =>
      checkEnvelopeSignature(e, (m, s) => verify('node-1', m, s));
    const frame = signEnvelope(env, signA);
    // One byte of the body's byte string flipped: still a valid envelope, no longer what node-1 signed.
    const encoded = encodeEnvelope(env);
    const at = encoded.indexOf(2, encoded.indexOf(1)); // body.a = [1, 2]
    const tampered = encoded.slice();
    tampered[at] = 3;
    const sig = decodeEnvelope(frame).signature!;
    expect(signatureCode(asNode1(decodeEnvelope(encodeSignedFrame(tampered, sig))))).toBe(
      'InvalidSignature/invalid',
    );
    // A flipped signature bit.
    const badSig = sig.slice();
    badSig[10] = badSig[10]! ^ 1;
    expect(signatureCode(asNode1(decodeEnvelope(encodeSignedFrame(encoded, badSig))))).toBe(
      'InvalidSignature/invalid',
    );
    // Signed by node-2's key but claimed for node-1.
    expect(signatureCode(asNode1(decodeEnvelope(signEnvelope(env, signB))))).toBe('InvalidSignature/invalid');
    // A bare (v1) envelope carries none.
    expect(signatureCode(asNode1(decodeEnvelope(encoded)))).toBe('InvalidSignature/missing');
    // An unknown node verifies nothing.
    expect(
      signatureCode(() => checkEnvelopeSignature(decodeEnvelope(frame), (m, s) => verify('node-9', m, s))),
    ).toBe('InvalidSignature/invalid');
  });

  it('malformed or oversized signed frames: typed DecodeErrors', async () => {
    const { signA } = await setup();
    const encoded = encodeEnvelope(env);
    const sig = decodeEnvelope(signEnvelope(env, signA)).signature!;
    expect(codeOf(() => encodeSignedFrame(encoded, sig.subarray(0, 63)))).toBe('DecodeError');
    expect(codeOf(() => decodeEnvelope(encode({ v: 2, e: encoded, s: sig.subarray(0, 63) })))).toBe(
      'DecodeError',
    );
    expect(codeOf(() => decodeEnvelope(encode({ v: 2, e: encoded })))).toBe('DecodeError');
    expect(codeOf(() => decodeEnvelope(encode({ v: 2, e: encoded, s: sig, x: 1 })))).toBe('DecodeError');
    // No nesting: the inner envelope must be a bare v1 one.
    const nested = encodeSignedFrame(encodeSignedFrame(encoded, sig), sig);
    expect(codeOf(() => decodeEnvelope(nested))).toBe('DecodeError');
    // A garbage inner envelope.
    expect(codeOf(() => decodeEnvelope(encodeSignedFrame(new Uint8Array([0xff]), sig)))).toBe('DecodeError');
    // Over the size limit, signature included.
    const big = signEnvelope({ header, body: { a: new Uint8Array(DEFAULT_MAX_MESSAGE_BYTES - 200) } }, signA);
    expect(big.length).toBeGreaterThan(DEFAULT_MAX_MESSAGE_BYTES);
    expect(codeOf(() => decodeEnvelope(big))).toBe('MessageTooLarge');
  });
});

function numberToLE(n: bigint, len: number): Uint8Array {
  const out = new Uint8Array(len);
  for (let i = 0; i < len; i++) {
    out[i] = Number(n & 0xffn);
    n >>= 8n;
  }
  return out;
}
function numberToBE(n: bigint, len: number): Uint8Array {
  return numberToLE(n, len).reverse();
}
