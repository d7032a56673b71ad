/**
 * Non-hardened derivation of threshold keys (protocol/derivation.ts) and the descriptors and
 * addresses built on it (protocol/bitcoin-output.ts): BIP32 public-derivation test vectors, BIP86
 * (account xpub -> child -> internal key -> output key -> address), xpubs whose children
 * @scure/bip32 derives equal to ours, hardened indices refused with the reason, the Ed25519
 * additive scheme restated independently and signed with through FROST (verified by OpenSSL via
 * node:crypto and by noble), Solana addresses, and BIP380 descriptor checksums.
 */
import { createPublicKey, verify as nodeVerify } from 'node:crypto';
import type { Key } from '@noble/curves/abstract/frost.js';
import { ed25519 } from '@noble/curves/ed25519.js';
import { bytesToNumberLE } from '@noble/curves/utils.js';
import { sha512 } from '@noble/hashes/sha2.js';
import { bytesToHex, hexToBytes } from '@noble/hashes/utils.js';
import { base58 } from '@scure/base';
import { HDKey } from '@scure/bip32';
import * as btc from '@scure/btc-signer';
import { describe, expect, it } from 'vitest';
import {
  checkDescriptorChecksum,
  descriptorChecksum,
  p2trAddress,
  p2trScriptPubKey,
  rawtrDescriptor,
  solanaAddress,
  trDescriptor,
  trXpubDescriptor,
} from '../protocol/bitcoin-output.ts';
import { concatBytes, utf8ToBytes } from '../protocol/bytes.ts';
import { chainCodeFor, derive, formatPath, parsePath, parseXpub, xpubOf } from '../protocol/derivation.ts';
import { dkgMachine, sortIds } from '../protocol/dkg.ts';
import { KmsError } from '../protocol/errors.ts';
import { asEpoch, type KeyId, type ParticipantId, type SessionId } from '../protocol/ids.ts';
import { type SigningTweak, signingPublicKey, taprootKeys } from '../protocol/key-tweak.ts';
import { aggregate, signerCommit, signerSign } from '../protocol/sign.ts';
import { simulate } from '../protocol/simulate.ts';
import { keySpec, verifySignature } from '../protocol/suites.ts';
import { seeded } from './helpers/rng.ts';

const tr = keySpec('FROST_SECP256K1_TR');
const plain = keySpec('FROST_SECP256K1');
const ed = keySpec('FROST_ED25519');
const json = async (f: string) =>
  (await import(`./vectors/bitcoin/${f}`, { with: { type: 'json' } })).default;
const bip32 = await json('bip32-public.json');
const bip86 = await json('bip86.json');

describe('BIP32 public derivation (secp256k1)', () => {
  it('BIP32 test vectors 1 and 2: every non-hardened parent -> child pair', () => {
    for (const c of bip32.cases as { parent: string; path: string; child: string }[]) {
      const parent = parseXpub(c.parent);
      const want = HDKey.fromExtendedKey(c.child);
      for (const backend of ['native', 'noble'] as const) {
        // FROST_SECP256K1 has no native backend: noble both times; TR runs on libsecp256k1.
        for (const spec of [tr, plain]) {
          const d = derive(spec, parent.key, parent.chainCode, parsePath(c.path), backend);
          expect(bytesToHex(d.key)).toBe(bytesToHex(want.publicKey!));
          expect(bytesToHex(d.chainCode)).toBe(bytesToHex(want.chainCode!));
          expect(d.index).toBe(want.index);
          if (d.depth === 1) expect(d.parentFingerprint).toBe(want.parentFingerprint);
        }
      }
    }
  });

  it('BIP86: account xpub -> m/0/0, m/0/1, m/1/0 -> internal key -> output key -> address', () => {
    const account = parseXpub(bip86.accountXpub);
    for (const c of bip86.children as Record<string, string>[]) {
      const path = parsePath(c.path!);
      const d = derive(tr, account.key, account.chainCode, path);
      const want = parseXpub(c.xpub!);
      expect(d.key).toEqual(want.key);
      expect(d.chainCode).toEqual(want.chainCode);
      const keys = taprootKeys(tr, account.key, null, { chainCode: account.chainCode, path });
      expect(bytesToHex(keys.internalKey)).toBe(c.internalKey);
      expect(bytesToHex(keys.outputKey)).toBe(c.outputKey);
      expect(bytesToHex(p2trScriptPubKey(keys.outputKey))).toBe(c.scriptPubKey);
      expect(p2trAddress(keys.outputKey, 'bitcoin')).toBe(c.address);
      // The key a signature at this path verifies under (key path, no merkle root).
      const tweak: SigningTweak = { derivation: { chainCode: account.chainCode, path } };
      expect(bytesToHex(signingPublicKey(tr, account.key, tweak))).toBe(c.outputKey);
    }
  });

  it('xpubs of threshold keys: @scure/bip32 derives the same children at several paths', () => {
    const keys = dkgKeys(tr, 2, 3, 5);
    const cc = chainCodeFor(tr, keys.group, keys.transcriptHash);
    const root = xpubOf(tr, keys.group, cc);
    expect(root.startsWith('xpub')).toBe(true);
    expect(xpubOf(tr, keys.group, cc, [], 'test').startsWith('tpub')).toBe(true);
    const scure = HDKey.fromExtendedKey(root);
    for (const path of ['m/0', 'm/0/5', 'm/1/0', 'm/7/3/2147483647']) {
      const p = parsePath(path);
      expect(formatPath(p)).toBe(path);
      const ours = derive(tr, keys.group, cc, p);
      const theirs = scure.derive(path);
      expect(bytesToHex(ours.key)).toBe(bytesToHex(theirs.publicKey!));
      // The child xpub serialization is byte for byte scure's (depth, fingerprint, index).
      expect(xpubOf(tr, keys.group, cc, p)).toBe(theirs.publicExtendedKey);
      // scure's p2tr of the child (BIP86-style internal key) gives our address.
      const tk = taprootKeys(tr, keys.group, null, { chainCode: cc, path: p });
      expect(btc.p2tr(theirs.publicKey!.subarray(1)).address).toBe(p2trAddress(tk.outputKey, 'bitcoin'));
      expect(btc.p2tr(theirs.publicKey!.subarray(1), undefined, btc.TEST_NETWORK).address).toBe(
        p2trAddress(tk.outputKey, 'testnet'),
      );
    }
  });

  it('the chain code is fixed by the DKG transcript, not computable from the key alone', () => {
    const keys = dkgKeys(tr, 2, 3, 6);
    const a = chainCodeFor(tr, keys.group, keys.transcriptHash);
    expect(a).toEqual(chainCodeFor(tr, keys.group, keys.transcriptHash));
    expect(a).not.toEqual(chainCodeFor(tr, keys.group, new Uint8Array(32)));
    expect(a).toHaveLength(32);
  });
});

describe('hardened indices are refused, with the reason', () => {
  const code = (f: () => unknown) => {
    try {
      f();
    } catch (e) {
      return e instanceof KmsError ? `${e.code}: ${e.message}` : 'other';
    }
    return 'ok';
  };
  it.each(["m/0'", 'm/0h/1', 'm/1/2H', 'm/2147483648'])('%s', (path) => {
    expect(code(() => parsePath(path))).toMatch(/^ValidationError: .*hardened.*private key/);
  });
  it('index lists too, and malformed paths', () => {
    expect(
      code(() => derive(tr, parseXpub(bip86.accountXpub).key, new Uint8Array(32), [0x80000000])),
    ).toMatch(/hardened/);
    for (const p of ['0/1', 'm/', 'm/01', 'm/-1', 'm/1.5', `m${'/1'.repeat(33)}`]) {
      expect(code(() => parsePath(p))).toMatch(/^ValidationError/);
    }
    expect(code(() => xpubOf(ed, new Uint8Array(32), new Uint8Array(32)))).toMatch(/secp256k1 keys only/);
  });
});

describe('Ed25519 additive derivation', () => {
  /** The documented scheme restated from docs/custody.md with noble, independently of derivation.ts. */
  function refChild(A: Uint8Array, c: Uint8Array, path: number[]): Uint8Array {
    let key = ed25519.Point.fromBytes(A);
    let cc = c;
    for (const i of path) {
      const idx = new Uint8Array(4);
      new DataView(idx.buffer).setUint32(0, i, false);
      const I = sha512(concatBytes(utf8ToBytes('TKMS/ed25519-derive/v1'), key.toBytes(), cc, idx));
      const t = bytesToNumberLE(I.subarray(0, 32)) % ed25519.Point.Fn.ORDER;
      key = key.add(ed25519.Point.BASE.multiply(t));
      cc = I.subarray(32);
    }
    return key.toBytes();
  }

  it('children equal the documented formula; FROST signs for them; OpenSSL and noble verify', () => {
    const keys = dkgKeys(ed, 2, 3, 7);
    const cc = chainCodeFor(ed, keys.group, keys.transcriptHash);
    for (const [k, path] of [[0], [0, 5], [3, 1, 4]].entries()) {
      const d = derive(ed, keys.group, cc, path);
      expect(d.key).toEqual(refChild(keys.group, cc, path));
      expect(derive(ed, keys.group, cc, path, 'noble')).toEqual(d);
      const tweak: SigningTweak = { derivation: { chainCode: cc, path } };
      expect(signingPublicKey(ed, keys.group, tweak)).toEqual(d.key);
      const msg = utf8ToBytes(`solana transfer ${k}`);
      const sig = signWith(keys.keys, ed, msg, tweak, 'native');
      expect(sig).toEqual(signWith(keys.keys, ed, msg, tweak, 'noble'));
      expect(verifySignature(ed, msg, sig, d.key)).toBe(true);
      expect(ed25519.verify(sig, msg, d.key, { zip215: false })).toBe(true);
      const spki = createPublicKey({
        format: 'jwk',
        key: { kty: 'OKP', crv: 'Ed25519', x: Buffer.from(d.key).toString('base64url') },
      });
      expect(nodeVerify(null, msg, spki, sig)).toBe(true);
      expect(verifySignature(ed, msg, sig, keys.group)).toBe(false);
      // Solana addresses are the base58 public keys.
      expect(solanaAddress(d.key)).toBe(base58.encode(d.key));
      expect(base58.decode(solanaAddress(d.key))).toEqual(d.key);
    }
  });
});

describe('BIP380 checksums and BIP386 descriptors', () => {
  it('BIP380 test vectors', () => {
    expect(descriptorChecksum('raw(deadbeef)')).toBe('89f8spxm');
    expect(checkDescriptorChecksum('raw(deadbeef)#89f8spxm')).toBe(true);
    for (const bad of [
      'raw(deadbeef)',
      'raw(deadbeef)#',
      'raw(deadbeef)#89f8spxmx',
      'raw(deadbeef)#89f8spx',
      'raw(deedbeef)#89f8spxm',
      'raw(deedbeef)##9f8spxm',
      'raw(Ü)#00000000',
    ]) {
      expect(checkDescriptorChecksum(bad)).toBe(false);
    }
  });

  it('tr(KEY), tr(KEY,TREE), rawtr(KEY) and tr(xpub/0/*) carry valid checksums', () => {
    const child = bip86.children[0] as Record<string, string>;
    const internal = hexToBytes(child.internalKey!);
    const d1 = trDescriptor(internal);
    expect(d1.startsWith(`tr(${child.internalKey})#`)).toBe(true);
    const d2 = trDescriptor(internal, `pk(${child.outputKey})`);
    const d3 = rawtrDescriptor(hexToBytes(child.outputKey!));
    const d4 = trXpubDescriptor(bip86.accountXpub, '0/*');
    for (const d of [d1, d2, d3, d4]) expect(checkDescriptorChecksum(d)).toBe(true);
    expect(d4.startsWith(`tr(${bip86.accountXpub}/0/*)#`)).toBe(true);
    expect(() => trXpubDescriptor(bip86.accountXpub, "0'/*")).toThrow(KmsError);
  });
});

// ---- helpers ----

const KEY_ID = '00000000-0000-4000-8000-0000000de71e' as KeyId;

function dkgKeys(spec: typeof tr, t: number, n: number, seed: number) {
  const participants = Array.from(
    { length: n },
    (_, i) => spec.frost.Identifier.fromNumber(i + 1) as ParticipantId,
  );
  const run = simulate(
    participants.map((self, i) =>
      dkgMachine({
        spec,
        keyId: KEY_ID,
        sessionId: `derive-${seed}` as SessionId,
        self,
        participants,
        threshold: t,
        rng: seeded(seed * 1000 + i),
      }),
    ),
  );
  expect([...run.errors.values()]).toEqual([]);
  const first = [...run.results.values()][0]!;
  return {
    keys: new Map([...run.results].map(([id, r]) => [id, r.key] as [ParticipantId, Key])),
    group: first.groupElement,
    transcriptHash: first.transcriptHash,
  };
}

function signWith(
  keys: Map<ParticipantId, Key>,
  spec: typeof tr,
  msg: Uint8Array,
  tweak: SigningTweak,
  backend: 'native' | 'noble',
): Uint8Array {
  const first = keys.values().next().value!;
  const signers = sortIds(spec, [...keys.keys()]).slice(0, first.public.signers.min);
  const cs = signers.map((id, i) =>
    signerCommit({ spec, key: keys.get(id)!, epoch: asEpoch(0), rng: seeded(i + 9) }),
  );
  const commitments = cs.map((c) => c.commitment);
  const shares = cs.map((c) => signerSign(c.state, { message: msg, commitments, tweak, backend }));
  return aggregate({
    spec,
    public: first.public,
    epoch: asEpoch(0),
    commitments,
    shares,
    message: msg,
    tweak,
    backend,
  });
}

// BIP340 signatures at derived Taproot paths are covered in test/taproot-tweak.test.ts; this one
// checks a plain FROST_SECP256K1 (RFC 9591, noble only) key signs for a derived child too.
describe('FROST_SECP256K1 (plain) derived keys', () => {
  it('sign for the BIP32 child of the group key', () => {
    const dealt = plain.frost.trustedDealer({ min: 2, max: 3 });
    const keys = new Map(
      Object.entries(dealt.secretShares).map(([id, s]) => [
        id as ParticipantId,
        { public: dealt.public, secret: s },
      ]),
    );
    const group = dealt.public.commitments[0]!;
    const cc = new Uint8Array(32).fill(7);
    const tweak: SigningTweak = { derivation: { chainCode: cc, path: [4, 2] } };
    const msg = utf8ToBytes('plain');
    const sig = signWith(keys, plain, msg, tweak, 'native');
    const child = HDKey.fromExtendedKey(xpubOf(plain, group, cc)).derive('m/4/2').publicKey!;
    expect(verifySignature(plain, msg, sig, child)).toBe(true);
    expect(verifySignature(plain, msg, sig, group)).toBe(false);
  });
});
