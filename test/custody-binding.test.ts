/**
 * Issue 14, what each node reads from the client-signed body itself (node/request-binding.ts) and
 * how it resolves the key it signs for (protocol/key-tweak.ts signingTweakFor): the merkle root of
 * a CreateKey must be the one the DKG session carries, the sign body's path and Taproot tweak are
 * bound, and a request the key cannot take is refused with the reason.
 */
import { describe, expect, it } from 'vitest';
import type { SessionSpec } from '../net/rpc.ts';
import { bindRequest } from '../node/request-binding.ts';
import { chainCodeFor } from '../protocol/derivation.ts';
import { KEY_PATH, sameRequestedTweak, signingTweakFor } from '../protocol/key-tweak.ts';
import { KEY_SPEC_REGISTRY } from '../protocol/suites.ts';

const K = '0b4f6a5e-1f8e-4b59-9a53-2f6f0c0d4e11';
const ROOT = 'ab'.repeat(32);
const post = (path: string, body: unknown) => ({
  method: 'POST',
  path,
  query: '',
  body: new TextEncoder().encode(JSON.stringify(body)),
});
const dkg = (merkleRoot?: string): SessionSpec => ({
  kind: 'dkg',
  sessionId: 's1',
  keyId: K,
  keySpec: 'FROST_SECP256K1_TR',
  epoch: 0,
  threshold: 2,
  participants: ['node-1', 'node-2', 'node-3'],
  ...(merkleRoot === undefined ? {} : { merkleRoot }),
});
const create = (extra: Record<string, unknown> = {}) =>
  post('/v1/keys', { keySpec: 'FROST_SECP256K1_TR', threshold: 2, ...extra });

describe('custody in the signed body (node/request-binding.ts)', () => {
  it('a DKG stores the merkle root the principal signed, and only that one', () => {
    expect(bindRequest({ rpc: 'session', session: dkg(ROOT) }, create({ merkleRoot: ROOT })).operation).toBe(
      'CreateKey',
    );
    expect(bindRequest({ rpc: 'session', session: dkg() }, create()).operation).toBe('CreateKey');
    // Upper-case hex in the body is the same root.
    expect(
      bindRequest({ rpc: 'session', session: dkg(ROOT) }, create({ merkleRoot: ROOT.toUpperCase() }))
        .operation,
    ).toBe('CreateKey');
    for (const [session, body] of [
      [dkg('cd'.repeat(32)), create({ merkleRoot: ROOT })],
      [dkg(ROOT), create()],
      [dkg(), create({ merkleRoot: ROOT })],
    ] as const) {
      expect(() => bindRequest({ rpc: 'session', session }, body)).toThrow(/does not match: merkle root/);
    }
  });

  it("a sign body's derivation path and Taproot tweak are bound; nothing else is accepted", () => {
    const g = { rpc: 'sign-commit', keyId: K } as const;
    expect(
      bindRequest(
        g,
        post(`/v1/keys/${K}/sign`, { message: '00', derivationPath: 'm/0/5', taprootTweak: 'none' }),
      ).tweak,
    ).toEqual({ derivationPath: 'm/0/5', taprootTweak: 'none' });
    expect(bindRequest(g, post(`/v1/keys/${K}/sign`, { message: '00' })).tweak).toBeUndefined();
    expect(() =>
      bindRequest(g, post(`/v1/keys/${K}/sign`, { message: '00', taprootTweak: 'scriptPath' })),
    ).toThrow(/not one the API accepts/);
    expect(sameRequestedTweak(undefined, { derivationPath: 'm', taprootTweak: 'keyPath' })).toBe(true);
    expect(sameRequestedTweak({ derivationPath: 'm/0/5' }, { derivationPath: 'm/0/6' })).toBe(false);
  });
});

describe('signingTweakFor: the key a request signs for', () => {
  const tr = KEY_SPEC_REGISTRY.FROST_SECP256K1_TR;
  const ed = KEY_SPEC_REGISTRY.FROST_ED25519;
  const chainCode = chainCodeFor(tr, new Uint8Array(33).fill(2), new Uint8Array(32));
  const root = new Uint8Array(32).fill(0xab);

  it('Taproot: the merkle root at m only, children key path only, none untweaked', () => {
    expect(signingTweakFor(tr, { chainCode, merkleRoot: root }, {})).toEqual({
      taproot: { kind: 'keyPath', merkleRoot: root },
    });
    expect(signingTweakFor(tr, { chainCode, merkleRoot: root }, { derivationPath: 'm/0/5' })).toEqual({
      derivation: { chainCode, path: [0, 5] },
      taproot: { kind: 'keyPath', merkleRoot: null },
    });
    expect(signingTweakFor(tr, { chainCode, merkleRoot: null }, { taprootTweak: 'none' })).toEqual({
      taproot: { kind: 'none' },
    });
  });

  it('refuses what a key cannot do, saying why', () => {
    expect(() => signingTweakFor(tr, { chainCode, merkleRoot: null }, { derivationPath: "m/0'" })).toThrow(
      /hardened derivation needs the parent private key/,
    );
    expect(() => signingTweakFor(ed, { chainCode, merkleRoot: null }, { taprootTweak: 'keyPath' })).toThrow(
      /FROST_SECP256K1_TR keys only/,
    );
    // Keys created before custody data: the key itself only, as before.
    expect(signingTweakFor(tr, undefined, {})).toBe(KEY_PATH);
    expect(() => signingTweakFor(tr, undefined, { derivationPath: 'm/1' })).toThrow(/create a new key/);
    expect(() => signingTweakFor(tr, undefined, { taprootTweak: 'none' })).toThrow(/create a new key/);
    expect(() =>
      signingTweakFor(
        KEY_SPEC_REGISTRY.FROST_P256,
        { chainCode, merkleRoot: null },
        { derivationPath: 'm/1' },
      ),
    ).toThrow(/do not support derivation/);
  });
});
