/**
 * RFC 9421 request signatures and RFC 9530 Content-Digest (policy/request-signature.ts,
 * policy/content-digest.ts): the RFC's own vectors (Appendix B.2.6, Ed25519; RFC 9530 §B.1 body
 * digests), then our profile's checks, each with a real signature made by a real key.
 */
import { randomBytes } from 'node:crypto';
import { ed25519 } from '@noble/curves/ed25519.js';
import { p256 } from '@noble/curves/nist.js';
import { parseDictionary } from 'structured-headers';
import { describe, expect, it } from 'vitest';
import { contentDigest, contentDigestMatches } from '../policy/content-digest.ts';
import { fromWire, requestDigest, toWire } from '../net/signed-request.ts';
import { verifyApprovals } from '../policy/approvals.ts';
import {
  type PrincipalKey,
  verifyPrincipalSignature,
  verifyPrincipalSignatureNoble,
} from '../policy/principal-key.ts';
import {
  type SignedRequest,
  signatureBase,
  signRequest,
  verifyRequest,
} from '../policy/request-signature.ts';

const enc = new TextEncoder();
const dec = new TextDecoder();

describe('RFC vectors', () => {
  it('RFC 9530: sha-256 Content-Digest of the example bodies', () => {
    const lf = enc.encode('{"hello": "world"}\n');
    expect(contentDigest(lf)).toBe('sha-256=:RK/0qy18MlBSVnWgjwz6lZEWjP/lF5HF9bvEF8FabDg=:');
    expect(contentDigest(enc.encode('{"hello": "world"}'))).toBe(
      'sha-256=:X48E9qOokqqrvdts8nOJRJN3OWDUoyWxBf7kbu9DBPE=:',
    );
    expect(contentDigestMatches('sha-256=:RK/0qy18MlBSVnWgjwz6lZEWjP/lF5HF9bvEF8FabDg=:', lf)).toBe(true);
    expect(contentDigestMatches('sha-256=:X48E9qOokqqrvdts8nOJRJN3OWDUoyWxBf7kbu9DBPE=:', lf)).toBe(false);
    expect(() => contentDigestMatches('md5=:AAAA:', lf)).toThrow(/sha-256/);
  });

  it('RFC 9421 B.2.6: the signature base and the Ed25519 signature of test-key-ed25519', () => {
    const req: SignedRequest = {
      method: 'POST',
      path: '/foo',
      query: '?param=Value&Pet=dog',
      headers: {
        host: 'example.com',
        date: 'Tue, 20 Apr 2021 02:07:55 GMT',
        'content-type': 'application/json',
        'content-length': '18',
      },
      body: enc.encode('{"hello": "world"}'),
    };
    const input = parseDictionary(
      'sig-b26=("date" "@method" "@path" "@authority" "content-type" "content-length");created=1618884473;keyid="test-key-ed25519"',
    ).get('sig-b26') as any;
    const base = signatureBase(req, input);
    expect(dec.decode(base)).toBe(
      [
        '"date": Tue, 20 Apr 2021 02:07:55 GMT',
        '"@method": POST',
        '"@path": /foo',
        '"@authority": example.com',
        '"content-type": application/json',
        '"content-length": 18',
        '"@signature-params": ("date" "@method" "@path" "@authority" "content-type" "content-length");created=1618884473;keyid="test-key-ed25519"',
      ].join('\n'),
    );
    const pub = Buffer.from('JrQLj5P_89iXES9-vFgrIy29clF9CC_oPPsw3c5D0bs', 'base64url');
    const sig = Buffer.from(
      'wqcAqbmYJ2ji2glfAMaRy4gruYYnx2nEFN2HN6jrnDnQCK1u02Gb04v9EDgwUPiu4A0w6vuQv5lIp5WPpBKRCw==',
      'base64',
    );
    expect(ed25519.verify(sig, base, pub)).toBe(true);
  });
});

type Signer = { id: string; key: PrincipalKey; sign: (b: Uint8Array) => Uint8Array };

function edSigner(id: string): Signer {
  const sk = ed25519.utils.randomSecretKey();
  return {
    id,
    key: { alg: 'ed25519', publicKey: ed25519.getPublicKey(sk) },
    sign: (b) => ed25519.sign(b, sk),
  };
}
function p256Signer(id: string): Signer {
  const sk = p256.utils.randomSecretKey();
  return {
    id,
    key: { alg: 'ecdsa-p256-sha256', publicKey: p256.getPublicKey(sk) },
    sign: (b) => p256.sign(b, sk, { prehash: true, lowS: false, format: 'compact' }),
  };
}

const NOW = 1_900_000_000;

function signed(
  s: Signer,
  over: Partial<SignedRequest> = {},
  params: { created?: number; expires?: number } = {},
) {
  const base = {
    method: 'POST',
    path: '/v1/keys/k1/sign',
    query: '',
    body: enc.encode('{"message":"00ff"}'),
    ...over,
  };
  const headers = signRequest(
    base,
    {
      created: params.created ?? NOW - 1,
      expires: params.expires ?? NOW + 60,
      nonce: randomBytes(16).toString('base64url'),
      keyid: s.id,
      alg: s.key.alg,
    },
    s.sign,
  );
  return { ...base, headers: { ...headers } } as SignedRequest;
}

describe('our profile (label sig1, @method @path [@query] content-digest; created expires nonce keyid alg)', () => {
  const alice = edSigner('alice');
  const bob = p256Signer('bob');
  const lookup = (id: string) => (id === 'alice' ? alice.key : id === 'bob' ? bob.key : undefined);

  it('verifies Ed25519 and ECDSA P-256 principals, with and without a query', () => {
    expect(verifyRequest(signed(alice), lookup, NOW).principal).toBe('alice');
    expect(verifyRequest(signed(bob), lookup, NOW).principal).toBe('bob');
    const q = signed(alice, {
      method: 'GET',
      path: '/v1/requests',
      query: '?state=Pending',
      body: new Uint8Array(),
    });
    expect(q.headers['signature-input']).toContain('"@query"');
    expect(verifyRequest(q, lookup, NOW).alg).toBe('ed25519');
  });

  it('refuses every change to what was signed', () => {
    const r = signed(alice);
    const cases: [string, SignedRequest][] = [
      ['body', { ...r, body: enc.encode('{"message":"00fe"}') }],
      ['method', { ...r, method: 'PUT' }],
      ['path', { ...r, path: '/v1/keys/k2/sign' }],
      ['query', { ...r, query: '?x=1' }],
      ['digest', { ...r, headers: { ...r.headers, 'content-digest': contentDigest(enc.encode('x')) } }],
      [
        'signature',
        { ...r, headers: { ...r.headers, signature: `sig1=:${Buffer.alloc(64).toString('base64')}:` } },
      ],
      [
        'keyid',
        {
          ...r,
          headers: {
            ...r.headers,
            'signature-input': r.headers['signature-input']!.replace('"alice"', '"bob"'),
          },
        },
      ],
    ];
    for (const [what, bad] of cases) {
      expect(() => verifyRequest(bad, lookup, NOW), what).toThrow(/request signature/);
    }
  });

  it('refuses expired, future, too long-lived, unknown principal, missing headers, wrong label', () => {
    expect(() =>
      verifyRequest(signed(alice, {}, { created: NOW - 100, expires: NOW - 1 }), lookup, NOW),
    ).toThrow(/expired/);
    expect(() =>
      verifyRequest(signed(alice, {}, { created: NOW + 120, expires: NOW + 180 }), lookup, NOW),
    ).toThrow(/future/);
    expect(() =>
      verifyRequest(signed(alice, {}, { created: NOW, expires: NOW + 3600 }), lookup, NOW),
    ).toThrow(/at most/);
    expect(() => verifyRequest(signed(edSigner('mallory')), lookup, NOW)).toThrow(/unknown principal/);
    const r = signed(alice);
    const { signature: _s, ...noSig } = r.headers;
    expect(() => verifyRequest({ ...r, headers: noSig }, lookup, NOW)).toThrow(/Signature header/);
    const relabeled = {
      ...r,
      headers: {
        ...r.headers,
        'signature-input': r.headers['signature-input']!.replace(/^sig1=/, 'sig2='),
        signature: r.headers.signature!.replace(/^sig1=/, 'sig2='),
      },
    };
    expect(() => verifyRequest(relabeled, lookup, NOW)).toThrow(/no sig1/);
  });

  it('refuses a signature that covers other components than the profile', () => {
    const r = signed(alice);
    const input = r.headers['signature-input']!.replace('"content-digest"', '"content-type"');
    expect(() =>
      verifyRequest({ ...r, headers: { ...r.headers, 'signature-input': input } }, lookup, NOW),
    ).toThrow(/covered components/);
  });

  it('an algorithm claimed for a principal must be that principal key type', () => {
    const r = signed(alice);
    const input = r.headers['signature-input']!.replace('alg="ed25519"', 'alg="ecdsa-p256-sha256"');
    expect(() =>
      verifyRequest({ ...r, headers: { ...r.headers, 'signature-input': input } }, lookup, NOW),
    ).toThrow(/signs with ed25519/);
  });
});

describe('principal signatures: libsodium Ed25519 (what nodes run) answers exactly as noble (the reference)', () => {
  const L = ed25519.Point.Fn.ORDER;
  const N = p256.Point.Fn.ORDER;
  const le = (x: bigint) => {
    const out = new Uint8Array(32);
    for (let i = 0; i < 32; i++) out[i] = Number((x >> BigInt(8 * i)) & 0xffn);
    return out;
  };
  const be = (x: bigint) => Uint8Array.from(Buffer.from(x.toString(16).padStart(64, '0'), 'hex'));
  const num = (b: Uint8Array, little: boolean) =>
    BigInt(`0x${Buffer.from(little ? [...b].reverse() : b).toString('hex') || '0'}`);

  /** Valid, tampered, malleated and malformed signatures for one key; both verifiers must agree on each. */
  function cases(
    k: PrincipalKey,
    sign: (m: Uint8Array) => Uint8Array,
    malleate: (sig: Uint8Array) => Uint8Array[],
  ) {
    const out: { what: string; data: Uint8Array; sig: Uint8Array; valid?: boolean }[] = [];
    for (let i = 0; i < 8; i++) {
      const data = new Uint8Array(randomBytes(1 + i * 37));
      const sig = sign(data);
      out.push({ what: `valid ${i}`, data, sig, valid: true });
      const flipped = sig.slice();
      flipped[i * 7]! ^= 1;
      out.push({ what: `signature bit ${i}`, data, sig: flipped, valid: false });
      const other = data.slice();
      other[0]! ^= 0x80;
      out.push({ what: `data bit ${i}`, data: other, sig, valid: false });
      for (const [j, m] of malleate(sig).entries()) out.push({ what: `malleated ${i}.${j}`, data, sig: m });
    }
    const data = new Uint8Array(randomBytes(10));
    out.push({ what: 'empty', data, sig: new Uint8Array(0), valid: false });
    out.push({ what: 'short', data, sig: sign(data).subarray(0, 63), valid: false });
    out.push({ what: 'long', data, sig: Uint8Array.from([...sign(data), 0]), valid: false });
    out.push({ what: 'zeros', data, sig: new Uint8Array(64), valid: false });
    out.push({ what: 'ones', data, sig: new Uint8Array(64).fill(0xff), valid: false });
    return out.map((c) => ({ ...c, k }));
  }

  it('Ed25519: valid, tampered, non-canonical S (S + L), wrong lengths, another key', () => {
    const sk = ed25519.utils.randomSecretKey();
    const k: PrincipalKey = { alg: 'ed25519', publicKey: ed25519.getPublicKey(sk) };
    const all = cases(
      k,
      (m) => ed25519.sign(m, sk),
      (sig) => {
        // RFC 8032 §5.1.7: S must be below L; S + L is the same scalar, non-canonical.
        const s = num(sig.subarray(32), true);
        return s + L < 2n ** 256n ? [Uint8Array.from([...sig.subarray(0, 32), ...le(s + L)])] : [];
      },
    );
    const otherKey: PrincipalKey = { alg: 'ed25519', publicKey: ed25519.getPublicKey(randomBytes(32)) };
    const d = randomBytes(20);
    all.push({ what: 'another key', data: d, sig: ed25519.sign(d, sk), valid: false, k: otherKey });
    for (const c of all) {
      const noble = verifyPrincipalSignatureNoble(c.k, c.data, c.sig);
      expect(verifyPrincipalSignature(c.k, c.data, c.sig), c.what).toBe(noble);
      if (c.valid !== undefined) expect(noble, c.what).toBe(c.valid);
    }
    expect(all.filter((c) => c.what.startsWith('malleated')).length).toBeGreaterThan(0);
  });

  it('ECDSA P-256: valid, high-S accepted by both, r or s out of range, compressed key', () => {
    const sk = p256.utils.randomSecretKey();
    for (const publicKey of [p256.getPublicKey(sk, false), p256.getPublicKey(sk, true)]) {
      const k: PrincipalKey = { alg: 'ecdsa-p256-sha256', publicKey };
      const all = cases(
        k,
        (m) => p256.sign(m, sk, { prehash: true, format: 'compact' }),
        (sig) => {
          const r = num(sig.subarray(0, 32), false);
          const s = num(sig.subarray(32), false);
          return [
            Uint8Array.from([...be(r), ...be(N - s)]), // high-S twin: valid for both (see principal-key.ts)
            Uint8Array.from([...be(r + N < 2n ** 256n ? r + N : 0n), ...be(s)]),
            Uint8Array.from([...be(r), ...be(0n)]),
          ];
        },
      );
      for (const c of all) {
        const noble = verifyPrincipalSignatureNoble(c.k, c.data, c.sig);
        expect(verifyPrincipalSignature(c.k, c.data, c.sig), c.what).toBe(noble);
        if (c.valid !== undefined) expect(noble, c.what).toBe(c.valid);
      }
      const highS = all.find((c) => c.what === 'malleated 0.0')!;
      expect(verifyPrincipalSignature(k, highS.data, highS.sig)).toBe(true);
    }
  });
});

describe('approvals (policy/approvals.ts): signed approvals of one request digest', () => {
  const alice = edSigner('alice');
  const bob = p256Signer('bob');
  const carol = edSigner('carol');
  const lookup = (id: string) => [alice, bob, carol].find((s) => s.id === id)?.key;
  const approval = (s: Signer, digest: string, path = '/v1/requests/r1/approvals') =>
    signed(s, { path, body: enc.encode(JSON.stringify({ requestDigest: digest })) });

  it('counts each valid approval of this digest once; ignores others with a reason', () => {
    const d = 'ab'.repeat(32);
    const res = verifyApprovals(
      [
        approval(bob, d),
        approval(carol, d),
        approval(carol, d),
        approval(alice, 'cd'.repeat(32)),
        approval(alice, d, '/v1/keys/k1/sign'),
        { ...approval(alice, d), body: enc.encode(JSON.stringify({ requestDigest: 'ef'.repeat(32) })) },
      ],
      d,
      lookup,
      NOW,
    );
    expect(res.approvers).toEqual(['bob', 'carol']);
    expect(res.rejected.map((r) => r.index)).toEqual([3, 4, 5]);
    expect(res.rejected[0]!.reason).toMatch(/another request/);
    expect(res.rejected[1]!.reason).toMatch(/not an approval/);
    expect(res.rejected[2]!.reason).toMatch(/another request|does not match/);
  });
});

describe('the wire form the coordinator forwards (net/signed-request.ts)', () => {
  const alice = edSigner('alice');
  const lookup = (id: string) => (id === 'alice' ? alice.key : undefined);

  it('round-trips exactly what was signed; the digest names the request and changes with it', () => {
    const r = signed(alice);
    const w = toWire(r);
    expect(verifyRequest(fromWire(w), lookup, NOW).principal).toBe('alice');
    expect(requestDigest(w)).toMatch(/^[0-9a-f]{64}$/);
    expect(requestDigest(toWire(signed(alice)))).not.toBe(requestDigest(w));
    const tampered = { ...w, body: Buffer.from('{"message":"ffff"}').toString('base64') };
    expect(() => verifyRequest(fromWire(tampered), lookup, NOW)).toThrow(/does not match the body/);
  });
});
