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
import type { PrincipalKey } from '../policy/principal-key.ts';
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
