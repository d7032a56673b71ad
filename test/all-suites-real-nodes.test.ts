/**
 * Every key spec through the real API on real nodes: the coordinator over three node daemons
 * (libp2p on 127.0.0.1, each node on its own SoftHSM2 token). Per key spec: DKG, sign, refresh,
 * reshare to a new committee, repair a member, reshare to a new threshold, with signatures after
 * every event; each checked by a verifier independent of the service (OpenSSL for Ed25519 and
 * Ed448 with the API's PEM, libsecp256k1 for BIP340, noble's RFC 9591 verifier for the others;
 * test/helpers/independent-verifiers.ts). The public key never changes.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { KEY_SPEC_REGISTRY, KEY_SPECS, type SigningKeySpecName as KeySpecName } from '../protocol/suites.ts';
import { startTestCoordinator, type TestCoordinator } from './helpers/coordinator.ts';
import { VERIFIER_OF, verifyIndependently } from './helpers/independent-verifiers.ts';

let c: TestCoordinator;
beforeAll(async () => {
  c = await startTestCoordinator({ nodes: 3 });
});
afterAll(async () => {
  await c?.stop();
});

const hex = (b: Uint8Array | string) => Buffer.from(b).toString('hex');

describe.each(KEY_SPECS)('%s on three real nodes', (keySpec: KeySpecName) => {
  it(`DKG, sign, refresh, reshare, repair, reshare; every signature checked by ${VERIFIER_OF[keySpec]}`, async () => {
    const spec = KEY_SPEC_REGISTRY[keySpec];
    const created = await c.call('POST', '/v1/keys', {
      keySpec,
      threshold: 2,
      participants: ['node-1', 'node-2'],
    });
    expect(created.status, created.text).toBe(201);
    const k = created.body;
    expect(k).toMatchObject({ keySpec, epoch: 0, threshold: 2, participants: ['node-1', 'node-2'] });
    expect(k.publicKey).toHaveLength(2 * spec.publicKeyLength);
    const publicKey = Buffer.from(k.publicKey, 'hex');
    const edwards = keySpec === 'FROST_ED25519' || keySpec === 'FROST_ED448';
    const pem = edwards
      ? (
          await c.call('GET', `/v1/keys/${k.keyId}/public-key`, undefined, {
            headers: { accept: 'application/x-pem-file' },
          })
        ).text
      : undefined;

    /** Signs `text` through the API and checks the signature independently; returns the signers. */
    const signAndCheck = async (text: string, epoch: number): Promise<string[]> => {
      const message = Buffer.from(text);
      const s = await c.call('POST', `/v1/keys/${k.keyId}/sign`, { message: hex(message) });
      expect(s.status, s.text).toBe(200);
      expect(s.body).toMatchObject({ keyId: k.keyId, epoch, excluded: [] });
      const signature = Buffer.from(s.body.signature, 'hex');
      expect(signature).toHaveLength(spec.signatureLength);
      expect(verifyIndependently(keySpec, publicKey, message, signature, pem), text).toBe(true);
      return s.body.signers;
    };
    /** A key event answers with the next state of the key: same public key, as the record says. */
    const event = async (path: string, body: unknown, expected: Record<string, unknown>) => {
      const r = await c.call('POST', `/v1/keys/${k.keyId}/${path}`, body);
      expect(r.status, `${path}: ${r.text}`).toBe(200);
      expect(r.body).toMatchObject({ ...expected, publicKey: k.publicKey });
      expect((await c.call('GET', `/v1/keys/${k.keyId}/public-key`)).body.publicKey).toBe(k.publicKey);
    };

    expect(await signAndCheck('after the DKG', 0)).toEqual(['node-1', 'node-2']);
    // The verifier is not vacuous: the same signature fails for another message.
    const s0 = await c.call('POST', `/v1/keys/${k.keyId}/sign`, { message: hex('one message') });
    const sig0 = Buffer.from(s0.body.signature, 'hex');
    expect(verifyIndependently(keySpec, publicKey, Buffer.from('one message'), sig0, pem)).toBe(true);
    expect(verifyIndependently(keySpec, publicKey, Buffer.from('another message'), sig0, pem)).toBe(false);

    await event('refresh', undefined, { epoch: 1, threshold: 2, participants: ['node-1', 'node-2'] });
    await signAndCheck('after the refresh', 1);

    // A new committee: node-3 joins.
    const all = ['node-1', 'node-2', 'node-3'];
    await event(
      'reshare',
      { threshold: 2, participants: all },
      { epoch: 2, threshold: 2, participants: all },
    );
    await signAndCheck('after the reshare', 2);

    // node-3's share rebuilt by node-1 and node-2: the same epoch (docs/api.md).
    await event('repair', { participant: 'node-3' }, { epoch: 2, threshold: 2, participants: all });
    // The coordinator rotates which two members sign: within three signatures node-3 signs too.
    const signers = new Set<string>();
    for (let i = 0; i < 3; i++)
      for (const s of await signAndCheck(`after the repair ${i}`, 2)) signers.add(s);
    expect([...signers].sort()).toEqual(all);

    // A new threshold: all three must sign.
    await event(
      'reshare',
      { threshold: 3, participants: all },
      { epoch: 3, threshold: 3, participants: all },
    );
    expect(await signAndCheck('after the second reshare', 3)).toEqual(all);
  });
});
