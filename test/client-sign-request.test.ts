/**
 * client/sign-request.ts against the verifier every node runs (policy/request-signature.ts): both
 * principal algorithms, the exact body bytes, the query, a PEM round trip, and governance signatures.
 */
import { describe, expect, it } from 'vitest';
import {
  generatePrincipal,
  principalEntry,
  principalFromPem,
  signedInit,
  signGovernance,
} from '../client/sign-request.ts';
import { type Governance, governanceHash, principalKey, validAdminSignatures } from '../policy/governance.ts';
import { verifyRequest } from '../policy/request-signature.ts';

const asRequest = (url: string, init: ReturnType<typeof signedInit>) => {
  const u = new URL(url);
  return {
    method: init.method,
    path: u.pathname,
    query: u.search,
    headers: init.headers,
    body: new Uint8Array(Buffer.from(init.body ?? '')),
  };
};

describe('signed requests from a principal key', () => {
  for (const alg of ['ed25519', 'ecdsa-p256-sha256'] as const) {
    it(`${alg}: verifies as the nodes verify; a changed byte does not`, () => {
      const { signer, privateKeyPem } = generatePrincipal('alice', alg);
      const loaded = principalFromPem('alice', privateKeyPem);
      expect(Buffer.from(loaded.publicKey)).toEqual(Buffer.from(signer.publicKey));
      const key = principalKey(principalEntry(loaded));
      const url = 'https://kms.example/v1/keys/0b1c/sign?x=1';
      const init = signedInit('POST', url, loaded, { body: { message: 'abcd' } });
      expect(init.headers['content-type']).toBe('application/json');
      const req = asRequest(url, init);
      const now = Math.floor(Date.now() / 1000);
      expect(verifyRequest(req, (id) => (id === 'alice' ? key : undefined), now).principal).toBe('alice');
      const tampered = { ...req, body: new Uint8Array(Buffer.from('{"message":"abce"}')) };
      expect(() => verifyRequest(tampered, () => key, now)).toThrow(/Content-Digest/);
      expect(() => verifyRequest({ ...req, path: '/v1/keys/0b1d/sign' }, () => key, now)).toThrow(
        /does not verify/,
      );
    });
  }

  it('a request without a body signs the empty body', () => {
    const { signer } = generatePrincipal('bob');
    const url = 'http://127.0.0.1:1/v1/keys/k/disable';
    const init = signedInit('POST', url, signer);
    expect(init.body).toBeUndefined();
    const key = principalKey(principalEntry(signer));
    expect(verifyRequest(asRequest(url, init), () => key, Math.floor(Date.now() / 1000)).principal).toBe(
      'bob',
    );
  });

  it('refuses a key that is not a private key', () => {
    expect(() => principalFromPem('x', 'not a pem')).toThrow(/PKCS#8/);
  });

  it('governance signatures count for the admins of the document', () => {
    const a = generatePrincipal('admin').signer;
    const doc: Governance = {
      version: 1,
      previous: null,
      principals: [principalEntry(a)],
      groups: { admins: ['admin'] },
      admins: { group: 'admins', quorum: 1 },
      policies: [],
    };
    const sig = signGovernance(doc, a);
    expect(validAdminSignatures(doc, governanceHash(doc), [sig])).toEqual(['admin']);
  });
});
