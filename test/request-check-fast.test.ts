/**
 * The node's per-request check, made cheaper without changing what it accepts (issue 17, H6):
 * - the plain Signature-Input / Signature / Content-Digest forms read as text equal what
 *   `structured-headers` parses and serializes, and every other form still takes the full parse;
 * - decoded principal keys memoized per governance document are never served for another version,
 *   a rotated key or an unknown principal;
 * - the request and message digests on OpenSSL equal noble's; the audit record's lazily parsed
 *   entry is the canonical copy that was hashed; the shared strict UTF-8 decoder stays strict.
 */
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ed25519 } from '@noble/curves/ed25519.js';
import { sha256 } from '@noble/hashes/sha2.js';
import { Level } from 'level';
import { parseDictionary, serializeInnerList, type InnerList } from 'structured-headers';
import { describe, expect, it } from 'vitest';
import { AuditLog, auditHash, canonicalJson, canonicalJsonByParts } from '../common/audit-log.ts';
import { requestDigest, toWire, fromWire } from '../net/signed-request.ts';
import { bindRequest } from '../node/request-binding.ts';
import { contentDigest, contentDigestMatches } from '../policy/content-digest.ts';
import { type Governance, lookupPrincipalKey, parseGovernance } from '../policy/governance.ts';
import {
  plainSignatureInput,
  type SignedRequest,
  signRequest,
  verifyRequest,
} from '../policy/request-signature.ts';
import { bytesToHex } from '../protocol/bytes.ts';

const enc = new TextEncoder();

/** What structured-headers makes of the `sig1` member: names, params, inner list serialized. */
function slow(header: string) {
  const list = parseDictionary(header).get('sig1') as InnerList;
  return {
    names: list[0].map(([n]) => n),
    params: [...list[1]],
    serialized: serializeInnerList(list),
  };
}

describe('plain Signature-Input read as text (policy/request-signature.ts)', () => {
  const P = ';created=1700000000;expires=1700000100;nonce="abcdefabcdefabcd";keyid="alice";alg="ed25519"';
  it('equals the structured-headers parse for every plain form', () => {
    const plain = [
      `sig1=("@method" "@path" "content-digest")${P}`,
      `sig1=("@method" "@path" "@query" "content-digest")${P}`,
      'sig1=("@method");a=0;b=-5;c=999999999999999;d="";e="x;y,z=(1) !#[]~"',
      'sig1=("content-digest" "@path");*k.-_9=7',
      'sig1=("@path")',
    ];
    for (const h of plain) {
      const fast = plainSignatureInput(h);
      expect(fast, h).toBeDefined();
      expect({ names: fast!.names, params: [...fast!.params], serialized: fast!.serialized }).toEqual(
        slow(h),
      );
    }
  });

  it('any other form is left to the full parse', () => {
    const other = [
      `sig1=("@method"  "@path" "content-digest")${P}`, // two spaces
      `sig1=( "@method" "@path")${P}`,
      ` sig1=("@method")${P}`,
      `sig1=("@method")${P} `,
      `sig1=("@method")${P}, sig2=("@path")`,
      `sig2=("@method")${P}`,
      'sig1=("@method");created=01', // leading zero
      'sig1=("@method");created=-0',
      'sig1=("@method");created=1234567890123456', // 16 digits
      'sig1=("@method");created=1.5',
      'sig1=("@method");flag',
      'sig1=("@method");flag=?1',
      'sig1=("@method");alg=ed25519', // a token
      'sig1=("@method");nonce="a\\"b"', // an escape
      'sig1=("@method");keyid="a";keyid="b"', // repeated: RFC 8941 keeps the last
      'sig1=("@method";req "@path")',
      'sig1=("@authority")',
      'sig1=("date")',
      'sig1=()',
      'sig1=:AAAA:',
    ];
    for (const h of other) expect(plainSignatureInput(h), h).toBeUndefined();
  });

  it('randomized plain forms equal the full parse', () => {
    const comps = ['@method', '@path', '@query', 'content-digest'];
    for (let i = 0; i < 300; i++) {
      const r = randomBytes(16);
      const names = Array.from({ length: 1 + (r[0]! % 4) }, (_, j) => comps[(r[1 + j]! + j) % 4]!);
      const keys = ['created', 'expires', 'nonce', 'keyid', 'alg', 'tag'].slice(0, r[5]! % 7);
      const params = keys
        .map((k, j) =>
          r[6 + j]! % 2 === 0
            ? `;${k}=${r.readUInt32BE(j % 12) - (r[13]! % 2 === 0 ? 0 : 2 ** 31)}`
            : `;${k}="${Buffer.from(r.subarray(j, j + 6)).toString('base64url')} ;,()"`,
        )
        .join('');
      const h = `sig1=(${names.map((n) => `"${n}"`).join(' ')})${params}`;
      const fast = plainSignatureInput(h);
      const s = slow(h);
      if (!fast) {
        // Every form generated here is plain (no leading zeros, escapes or repeated keys).
        throw new Error(`not plain: ${h}`);
      }
      expect({ names: fast.names, params: [...fast.params], serialized: fast.serialized }).toEqual(s);
    }
  });
});

describe('verifyRequest: plain and other forms verify alike', () => {
  const sk = ed25519.utils.randomSecretKey();
  const key = { alg: 'ed25519' as const, publicKey: ed25519.getPublicKey(sk) };
  const now = 1_700_000_000;
  const req = { method: 'POST', path: '/v1/keys/k1/sign', query: '', body: enc.encode('{"message":"00"}') };
  const headers = signRequest(
    req,
    { created: now, expires: now + 60, nonce: 'n'.repeat(20), keyid: 'alice', alg: 'ed25519' },
    (b) => ed25519.sign(b, sk),
  );
  const lookup = (id: string) => (id === 'alice' ? key : undefined);
  const at = (h: Record<string, string>): SignedRequest => ({ ...req, headers: h });

  it('the plain form a client sends verifies; a changed byte anywhere does not', () => {
    expect(plainSignatureInput(headers['signature-input'])).toBeDefined();
    expect(verifyRequest(at(headers), lookup, now).principal).toBe('alice');
    // A tampered parameter in the plain form: the signature base changes.
    const tampered = headers['signature-input'].replace(`expires=${now + 60}`, `expires=${now + 61}`);
    expect(plainSignatureInput(tampered)).toBeDefined();
    expect(() => verifyRequest(at({ ...headers, 'signature-input': tampered }), lookup, now)).toThrow(
      /does not verify/,
    );
    expect(() =>
      verifyRequest({ ...at(headers), body: enc.encode('{"message":"01"}') }, lookup, now),
    ).toThrow(/Content-Digest does not match/);
    const sig = Buffer.from(headers.signature.slice(6, -1), 'base64');
    sig[0]! ^= 1;
    const bad = `sig1=:${sig.toString('base64')}:`;
    expect(() => verifyRequest(at({ ...headers, signature: bad }), lookup, now)).toThrow(/does not verify/);
  });

  it('equivalent non-plain forms take the full parse and verify the same', () => {
    // OWS around the member, a second signature member: RFC 8941 reads the same values (the
    // signature base is the canonical serialization either way).
    const spaced = {
      ...headers,
      'signature-input': ` ${headers['signature-input']} `,
      signature: `${headers.signature}, other=:AAAA:`,
    };
    expect(plainSignatureInput(spaced['signature-input'])).toBeUndefined();
    expect(verifyRequest(at(spaced), lookup, now).principal).toBe('alice');
    // The signature's last character with pad bits set: not the plain form, the same 64 bytes.
    const sigText = headers.signature.slice(6, -3);
    const b64 = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/';
    const padded = `sig1=:${sigText.slice(0, -1)}${b64[b64.indexOf(sigText.at(-1)!) + 1]}==:`;
    expect(Buffer.from(padded.slice(6, -1), 'base64')).toEqual(Buffer.from(sigText, 'base64'));
    expect(verifyRequest(at({ ...headers, signature: padded }), lookup, now).principal).toBe('alice');
    // Non-canonical base64 of the digest (pad bits set): the full parse decodes it to the same bytes.
    const d = headers['content-digest'];
    const last = d.at(-3)!;
    const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/';
    const odd = `${d.slice(0, -3)}${alphabet[alphabet.indexOf(last) + 1]}=:`;
    expect(contentDigestMatches(odd, req.body)).toBe(true);
    expect(contentDigestMatches(`md5=:AAAA:, ${d}`, req.body)).toBe(true);
    expect(contentDigestMatches(contentDigest(req.body), req.body)).toBe(true);
    expect(contentDigestMatches(contentDigest(enc.encode('x')), req.body)).toBe(false);
    expect(() => contentDigestMatches('sha-256=:AAAA', req.body)).toThrow(/structured dictionary/);
  });

  it('request digest and content digest on OpenSSL equal the noble SHA-256 of the same bytes', () => {
    const w = toWire(at(headers));
    const parts = [w.method, w.path, w.query, w.headers['content-digest'], w.headers['signature-input']];
    const text = parts.map((p) => `${p.length}:${p}`).join('\n');
    expect(requestDigest(w)).toBe(bytesToHex(sha256(enc.encode(text))));
    // Non-ASCII and a lone surrogate are encoded as TextEncoder does (U+FFFD).
    const odd = { ...w, headers: { ...w.headers, 'signature-input': 'é\ud800x' } };
    const oddText = [w.method, w.path, w.query, w.headers['content-digest'], 'é\ud800x']
      .map((p) => `${p.length}:${p}`)
      .join('\n');
    expect(requestDigest(odd)).toBe(bytesToHex(sha256(enc.encode(oddText))));
    const body = randomBytes(70_000);
    expect(contentDigest(body)).toBe(`sha-256=:${Buffer.from(sha256(body)).toString('base64')}:`);
    const back = fromWire(w);
    expect(back.body).toEqual(req.body);
    expect(back.body.constructor).toBe(Uint8Array);
    // Its memory holds the body alone, small (Buffer's pool) or large.
    expect(back.body.buffer.byteLength).toBe(back.body.byteLength);
    const large = fromWire({ ...w, body: body.toString('base64') }).body;
    expect(large).toEqual(new Uint8Array(body));
    expect(large.buffer.byteLength).toBe(body.length);
  });
});

describe('lookupPrincipalKey: memoized per governance document (policy/governance.ts)', () => {
  const pub = () => Buffer.from(ed25519.getPublicKey(ed25519.utils.randomSecretKey())).toString('base64url');
  const docOf = (version: number, alice: string): Governance =>
    parseGovernance({
      version,
      previous: version === 1 ? null : 'a'.repeat(64),
      principals: [
        { id: 'alice', alg: 'ed25519', publicKey: alice },
        { id: 'admin', alg: 'ed25519', publicKey: pub() },
      ],
      groups: { admins: ['admin'] },
      admins: { group: 'admins', quorum: 1 },
      policies: [],
    });
  const b64 = (k: { publicKey: Uint8Array } | undefined) => Buffer.from(k!.publicKey).toString('base64url');

  it('a new version with a rotated key, an in-place rotation, an unknown principal: never the cached key', () => {
    const k1 = pub();
    const v1 = docOf(1, k1);
    expect(b64(lookupPrincipalKey(v1, 'alice'))).toBe(k1);
    expect(lookupPrincipalKey(v1, 'alice')).toBe(lookupPrincipalKey(v1, 'alice')); // served from the cache
    const k2 = pub();
    const v2 = docOf(2, k2);
    expect(b64(lookupPrincipalKey(v2, 'alice'))).toBe(k2);
    expect(b64(lookupPrincipalKey(v1, 'alice'))).toBe(k1);
    // The same document object changed in place (never done, but never trusted either).
    const k3 = pub();
    (v2.principals[0] as { publicKey: string }).publicKey = k3;
    expect(b64(lookupPrincipalKey(v2, 'alice'))).toBe(k3);
    (v2 as { version: number }).version = 3;
    (v2 as { principals: unknown }).principals = [{ id: 'bob', alg: 'ed25519', publicKey: k1 }];
    expect(lookupPrincipalKey(v2, 'alice')).toBeUndefined();
    expect(b64(lookupPrincipalKey(v2, 'bob'))).toBe(k1);
    expect(lookupPrincipalKey(v1, 'nobody')).toBeUndefined();
    expect(lookupPrincipalKey(v1, '__proto__')).toBeUndefined();
  });
});

describe('audit append: the record resolved is the canonical copy that was hashed (common/audit-log.ts)', () => {
  it('entry parsed on access equals the stored record and the hash verifies', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'h6-audit-'));
    const db = new Level<string, string>(dir);
    try {
      const log = await AuditLog.open(db);
      const entry = { b: [1, 'x', { z: null, a: true }], a: 'é', n: -0.5 };
      const r = await log.append(entry);
      expect(r.entry).toEqual(JSON.parse(canonicalJson(entry)));
      expect(r.entry).not.toBe(entry);
      expect(r.entry).toBe(r.entry);
      expect(auditHash(r.prevHash, r.seq, r.time, r.entry)).toBe(r.hash);
      const [stored] = await log.list();
      expect(stored).toEqual(r);
      expect(JSON.parse(JSON.stringify(r))).toEqual(stored);
      expect((await log.verify()).ok).toBe(true);
    } finally {
      await db.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('canonicalJson equals its part-by-part reference (common/audit-log.ts)', () => {
  it('fixed and randomized values, integer-like and __proto__ keys; the same values refused', () => {
    const fixed: unknown[] = [
      { b: 1, a: [true, null, 'x'], c: { z: -0, y: 1.5e300, x: '\u2028é\ud800"\\' } },
      { 10: 'a', 9: 'b', x: 1, '01': 2 },
      JSON.parse('{"__proto__": {"a": 1}, "b": 2}'),
      Object.assign(Object.create(null), { z: 1, a: 2 }),
      [],
      {},
      'plain',
      42,
      null,
      [[[{ k: [1, { j: 2, i: 3 }] }]]],
    ];
    for (const v of fixed) expect(canonicalJson(v)).toBe(canonicalJsonByParts(v));
    const chars = 'ab"\\\n\u0000é😀\ud800019_-';
    const str = (r: () => number) =>
      Array.from({ length: r() % 6 }, () => chars[r() % chars.length]).join('');
    const gen = (r: () => number, d: number): unknown => {
      const t = r() % (d > 3 ? 4 : 7);
      if (t === 0) return str(r);
      if (t === 1) return (r() - 128) / (r() % 3 === 0 ? 7 : 1);
      if (t === 2) return r() % 2 === 0;
      if (t === 3) return null;
      if (t === 4) return Array.from({ length: r() % 4 }, () => gen(r, d + 1));
      const o: Record<string, unknown> = {};
      for (let i = r() % 5; i > 0; i--) o[r() % 4 === 0 ? String(r() % 20) : str(r)] = gen(r, d + 1);
      return o;
    };
    for (let i = 0; i < 500; i++) {
      const bytes = randomBytes(256);
      let at = 0;
      const r = () => bytes[at++ % bytes.length]!;
      const v = gen(r, 0);
      expect(canonicalJson(v)).toBe(canonicalJsonByParts(v));
    }
    for (const bad of [
      { a: undefined },
      [1, undefined],
      { a: Number.NaN },
      { a: () => 1 },
      { a: new Date(0) },
      { a: 1n },
      new Array(2).fill(1, 1), // a hole at 0
    ]) {
      expect(() => canonicalJson(bad)).toThrow(TypeError);
      expect(() => canonicalJsonByParts(bad)).toThrow(TypeError);
    }
  });
});

describe('request binding: the shared strict UTF-8 decoder (node/request-binding.ts)', () => {
  it('a malformed body is refused and the next well-formed one is read', () => {
    const g = { rpc: 'sign-commit', keyId: 'k1' } as const;
    const req = (body: Uint8Array) => ({ method: 'POST', path: '/v1/keys/k1/sign', query: '', body });
    const good = enc.encode(JSON.stringify({ message: '0011' }));
    const bad = new Uint8Array([...good.subarray(0, 5), 0xc3, ...good.subarray(5)]);
    const truncated = new Uint8Array([...good, 0xe2, 0x82]);
    expect(() => bindRequest(g, req(bad))).toThrow(/not JSON/);
    expect(() => bindRequest(g, req(truncated))).toThrow(/not JSON/);
    const b = bindRequest(g, req(good));
    expect(b.message).toEqual(new Uint8Array([0, 0x11]));
  });
});
