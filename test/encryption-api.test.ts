/**
 * Envelope encryption through the HTTP API on real nodes (issue 15): the real coordinator over
 * three node daemons on SoftHSM2 tokens (the lying-node case: software-sealed nodes), every operation a principal's signed request (the nodes
 * verify Decrypt and ReEncrypt themselves). AWS KMS names and semantics: Encrypt, Decrypt,
 * GenerateDataKey(WithoutPlaintext), ReEncrypt; a wrong context refused before any node is asked;
 * one usage per key; the recipient path, on which neither the coordinator's answers nor anything
 * it carries hold the plaintext; audits with key and label digest, never plaintext.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { decryptForRecipient } from '../client/decrypt-api.ts';
import { fromHex, toHex } from '../protocol/bytes.ts';
import { decodeBlob, labelDigest } from '../protocol/ciphertext-blob.ts';
import { libsodiumOps } from '../protocol/ristretto-ops.ts';
import { sealShare } from '../protocol/tdh2-share-box.ts';
import { startLyingPeer } from './helpers/lying-peer.ts';
import { encrypt } from '../client/encrypt.ts';
import { contextLabel } from '../protocol/tdh2.ts';
import { type TestCoordinator, startTestCoordinator } from './helpers/coordinator.ts';

const b64 = (b: Uint8Array | string) => Buffer.from(b).toString('base64');
const unb64 = (s: string) => new Uint8Array(Buffer.from(s, 'base64'));
const ctx = { bucket: 'invoices', object: '2026/12/07.pdf' };

let c: TestCoordinator;
let keyId: string;
let key2: string;
let signingKey: string;
beforeAll(async () => {
  c = await startTestCoordinator({ nodes: 3 });
  const create = async (body: Record<string, unknown>) => {
    const r = await c.call('POST', '/v1/keys', { threshold: 2, ...body });
    expect(r.status, r.text).toBe(201);
    return r.body;
  };
  const k = await create({ keySpec: 'TDH2_RISTRETTO255', keyUsage: 'ENCRYPT_DECRYPT' });
  expect(k).toMatchObject({ keySpec: 'TDH2_RISTRETTO255', keyUsage: 'ENCRYPT_DECRYPT', epoch: 0 });
  keyId = k.keyId;
  key2 = (await create({ keySpec: 'TDH2_RISTRETTO255', keyUsage: 'ENCRYPT_DECRYPT' })).keyId;
  const s = await create({ keySpec: 'FROST_RISTRETTO255' });
  expect(s.keyUsage).toBe('SIGN_VERIFY');
  signingKey = s.keyId;
}, 120_000);
afterAll(async () => {
  await c?.stop();
});

/** The decrypt-share RPCs the coordinator sent while `run` ran. */
async function sharesAsked<T>(run: () => Promise<T>): Promise<{ out: T; asked: any[] }> {
  c.tap.records.length = 0;
  c.tap.on = true;
  try {
    const out = await run();
    return { out, asked: c.tap.records.filter((t) => t.req.op === 'decrypt-share') };
  } finally {
    c.tap.on = false;
  }
}

describe('envelope encryption API (AWS KMS semantics) on real nodes', () => {
  it('a key has one usage, fixed by its spec, on create and on use', async () => {
    const mismatch = await c.call('POST', '/v1/keys', {
      keySpec: 'FROST_ED25519',
      keyUsage: 'ENCRYPT_DECRYPT',
      threshold: 2,
    });
    expect(mismatch.status).toBe(400);
    const noUsage = await c.call('POST', '/v1/keys', { keySpec: 'TDH2_RISTRETTO255', threshold: 2 });
    expect(noUsage.status).toBe(400);
    const sign = await c.call('POST', `/v1/keys/${keyId}/sign`, { message: '00' });
    expect(sign.status).toBe(400);
    expect(sign.body.detail).toMatch(/InvalidKeyUsage/);
    const enc = await c.call('POST', `/v1/keys/${signingKey}/encrypt`, { plaintext: b64('x') });
    expect(enc.status).toBe(400);
    expect(enc.body.detail).toMatch(/InvalidKeyUsage/);
    // A blob made from the signing key's public key: refused before any node computes anything.
    const pub = Buffer.from((await c.call('GET', `/v1/keys/${signingKey}`)).body.publicKey, 'hex');
    const blob = encrypt({ keyId: signingKey, publicKey: pub, plaintext: new Uint8Array(4) }).ciphertextBlob;
    const { out, asked } = await sharesAsked(() =>
      c.call('POST', '/v1/decrypt', { ciphertextBlob: b64(blob) }),
    );
    expect(out.status).toBe(400);
    expect(out.body.detail).toMatch(/InvalidKeyUsage/);
    expect(asked).toEqual([]);
  });

  it('Encrypt then Decrypt (key id read from the blob); at most 4 KiB', async () => {
    const plaintext = 'card number 4111 1111 1111 1111';
    const e = await c.call('POST', `/v1/keys/${keyId}/encrypt`, {
      plaintext: b64(plaintext),
      encryptionContext: ctx,
    });
    expect(e.status, e.text).toBe(200);
    expect(e.body.keyId).toBe(keyId);
    const { out: d, asked } = await sharesAsked(() =>
      c.call('POST', '/v1/decrypt', { ciphertextBlob: e.body.ciphertextBlob, encryptionContext: ctx }),
    );
    expect(d.status, d.text).toBe(200);
    expect(d.body).toMatchObject({ keyId, excluded: [] });
    expect(Buffer.from(d.body.plaintext, 'base64').toString()).toBe(plaintext);
    expect(asked).toHaveLength(2);
    // Nodes answered shares, not plaintext; the shares alone are not the plaintext.
    expect(JSON.stringify(asked.map((a) => a.res))).not.toContain(b64(plaintext));
    const big = await c.call('POST', `/v1/keys/${keyId}/encrypt`, { plaintext: b64(new Uint8Array(4097)) });
    expect(big.status).toBe(400);
    const max = await c.call('POST', `/v1/keys/${keyId}/encrypt`, { plaintext: b64(new Uint8Array(4096)) });
    expect(max.status, max.text).toBe(200);
  });

  it('a wrong or missing context is an InvalidCiphertext-class error and no node is asked', async () => {
    const e = await c.call('POST', `/v1/keys/${keyId}/encrypt`, {
      plaintext: b64('secret'),
      encryptionContext: ctx,
    });
    for (const wrong of [{}, { ...ctx, object: 'other' }, { ...ctx, extra: 'x' }]) {
      const { out, asked } = await sharesAsked(() =>
        c.call('POST', '/v1/decrypt', { ciphertextBlob: e.body.ciphertextBlob, encryptionContext: wrong }),
      );
      expect(out.status).toBe(400);
      expect(out.body.code).toBe('ContextMismatch');
      expect(out.body.detail).toMatch(/InvalidCiphertext/);
      expect(asked).toEqual([]);
    }
    // A changed byte of the ciphertext: refused by the coordinator's validity check, no node asked.
    const blob = unb64(e.body.ciphertextBlob);
    blob[blob.length - 20]! ^= 1;
    const { out, asked } = await sharesAsked(() =>
      c.call('POST', '/v1/decrypt', { ciphertextBlob: b64(blob), encryptionContext: ctx }),
    );
    expect(out.status).toBe(400);
    expect(out.body.detail).toMatch(/InvalidCiphertext/);
    expect(asked).toEqual([]);
  });

  it('GenerateDataKey and GenerateDataKeyWithoutPlaintext: the blob decrypts to a fresh 32-byte key', async () => {
    const g = await c.call('POST', `/v1/keys/${keyId}/generate-data-key`, {
      keySpec: 'AES_256',
      encryptionContext: ctx,
    });
    expect(g.status, g.text).toBe(200);
    const dk = unb64(g.body.plaintext);
    expect(dk).toHaveLength(32);
    const d = await c.call('POST', '/v1/decrypt', {
      ciphertextBlob: g.body.ciphertextBlob,
      encryptionContext: ctx,
    });
    expect(unb64(d.body.plaintext)).toEqual(dk);
    const w = await c.call('POST', `/v1/keys/${keyId}/generate-data-key-without-plaintext`, {});
    expect(w.status, w.text).toBe(200);
    expect(w.body.plaintext).toBeUndefined();
    const d2 = await c.call('POST', '/v1/decrypt', { ciphertextBlob: w.body.ciphertextBlob });
    expect(unb64(d2.body.plaintext)).toHaveLength(32);
    expect(unb64(d2.body.plaintext)).not.toEqual(dk);
  });

  it('ReEncrypt moves a blob to another key and context; the old context is still checked', async () => {
    const e = await c.call('POST', `/v1/keys/${keyId}/encrypt`, {
      plaintext: b64('moving'),
      encryptionContext: ctx,
    });
    const bad = await c.call('POST', '/v1/re-encrypt', {
      ciphertextBlob: e.body.ciphertextBlob,
      destinationKeyId: key2,
      sourceEncryptionContext: { wrong: 'yes' },
    });
    expect(bad.body.code).toBe('ContextMismatch');
    const toSigning = await c.call('POST', '/v1/re-encrypt', {
      ciphertextBlob: e.body.ciphertextBlob,
      destinationKeyId: signingKey,
      sourceEncryptionContext: ctx,
    });
    expect(toSigning.body.detail).toMatch(/InvalidKeyUsage/);
    const r = await c.call('POST', '/v1/re-encrypt', {
      ciphertextBlob: e.body.ciphertextBlob,
      destinationKeyId: key2,
      sourceEncryptionContext: ctx,
      destinationEncryptionContext: { moved: 'true' },
    });
    expect(r.status, r.text).toBe(200);
    expect(r.body).toMatchObject({ keyId: key2, sourceKeyId: keyId });
    const d = await c.call('POST', '/v1/decrypt', {
      ciphertextBlob: r.body.ciphertextBlob,
      encryptionContext: { moved: 'true' },
    });
    expect(d.body.keyId).toBe(key2);
    expect(Buffer.from(d.body.plaintext, 'base64').toString()).toBe('moving');
  });

  it('with a recipient key the coordinator carries sealed shares only: the client verifies and combines', async () => {
    const secret = 'nobody in the middle reads this';
    const pub = Buffer.from((await c.call('GET', `/v1/keys/${keyId}`)).body.publicKey, 'hex');
    const blob = encrypt({
      keyId,
      publicKey: pub,
      plaintext: Buffer.from(secret),
      encryptionContext: ctx,
    }).ciphertextBlob;
    const answers: any[] = [];
    const post = async (path: string, body: unknown) => {
      const r = await c.call('POST', `/${path}`, body);
      expect(r.status, r.text).toBe(200);
      answers.push(r.body);
      return r.body;
    };
    const { out, asked } = await sharesAsked(() => decryptForRecipient(post, blob, ctx));
    expect(Buffer.from(out.plaintext).toString()).toBe(secret);
    expect(out.named).toEqual([]);
    expect(answers).toHaveLength(1);
    expect(answers[0].plaintext).toBeUndefined();
    expect(answers[0].ciphertextForRecipient.shares).toHaveLength(2);
    // Every share crossed the coordinator sealed: no share in the clear, no plaintext.
    expect(asked.map((a) => Object.keys(a.res).sort())).toEqual([
      ['identifier', 'sealed'],
      ['identifier', 'sealed'],
    ]);
  });

  it('refresh and reshare through the API keep old ciphertexts decryptable (same public key)', async () => {
    const e = await c.call('POST', `/v1/keys/${key2}/encrypt`, { plaintext: b64('older than the event') });
    const before = (await c.call('GET', `/v1/keys/${key2}`)).body;
    const r = await c.call('POST', `/v1/keys/${key2}/refresh`);
    expect(r.status, r.text).toBe(200);
    const s = await c.call('POST', `/v1/keys/${key2}/reshare`, { threshold: 3 });
    expect(s.status, s.text).toBe(200);
    expect(s.body).toMatchObject({ publicKey: before.publicKey, threshold: 3, epoch: before.epoch + 2 });
    const d = await c.call('POST', '/v1/decrypt', { ciphertextBlob: e.body.ciphertextBlob });
    expect(d.status, d.text).toBe(200);
    expect(d.body.decryptors).toHaveLength(3);
    expect(Buffer.from(d.body.plaintext, 'base64').toString()).toBe('older than the event');
  });

  it('the coordinator and the nodes audit key and label digest, never plaintext', async () => {
    const marker = 'audit-marker-plaintext';
    const e = await c.call('POST', `/v1/keys/${keyId}/encrypt`, {
      plaintext: b64(marker),
      encryptionContext: ctx,
    });
    await c.call('POST', '/v1/decrypt', { ciphertextBlob: e.body.ciphertextBlob, encryptionContext: ctx });
    const digest = Buffer.from(labelDigest(contextLabel(ctx))).toString('hex');
    const coord = JSON.stringify((await c.call('GET', `/v1/audit?keyId=${keyId}&limit=1000`)).body);
    expect(coord).toContain(digest);
    expect(coord).not.toContain(marker);
    expect(coord).not.toContain(b64(marker));
    let nodeRecords: any[] = [];
    for (const n of ['node-1', 'node-2', 'node-3']) {
      const page = await c.rpc(n, { op: 'audit', limit: 500 });
      nodeRecords = nodeRecords.concat(page.records.map((r: any) => r.entry));
    }
    // Each node's allow record of the signed Decrypt, written before its share, is its audit of it.
    const shares = nodeRecords.filter(
      (r) =>
        r.event === 'request' && r.operation === 'Decrypt' && r.decision === 'allow' && r.keyId === keyId,
    );
    expect(shares.length).toBeGreaterThan(0);
    for (const s of shares)
      expect(s).toMatchObject({
        labelDigest: expect.stringMatching(/^[0-9a-f]{64}$/),
        initiator: 'admin',
        requestDigest: expect.any(String),
      });
    expect(shares.map((s) => s.labelDigest)).toContain(digest);
    expect(JSON.stringify(nodeRecords)).not.toContain(b64(marker));
  });
});

describe('a lying node behind the API (real identity, test/helpers/lying-peer.ts)', () => {
  // Its own coordinator on software-sealed nodes: the lying peer unseals node-3's identity with the
  // software sealer to speak as node-3.
  let c: TestCoordinator;
  let keyId: string;
  beforeAll(async () => {
    c = await startTestCoordinator({ nodes: 3, sealer: 'software' });
    const k = await c.call('POST', '/v1/keys', {
      keySpec: 'TDH2_RISTRETTO255',
      keyUsage: 'ENCRYPT_DECRYPT',
      threshold: 2,
    });
    expect(k.status, k.text).toBe(201);
    keyId = k.body.keyId;
  }, 120_000);
  afterAll(async () => {
    await c?.stop();
  });

  it('a bad share is named in the answer and the audit and replaced; on the sealed path the client names it', async () => {
    const liar = await startLyingPeer(c.tc, 'node-3', { keySpec: 'TDH2_RISTRETTO255' });
    try {
      const e = await c.call('POST', `/v1/keys/${keyId}/encrypt`, {
        plaintext: b64('liar-proof'),
        encryptionContext: ctx,
      });
      // Plain path: the coordinator's combination fails, the proofs name node-3, node-3 is replaced.
      const named: string[] = [];
      for (let i = 0; i < 3; i++) {
        const d = await c.call('POST', '/v1/decrypt', {
          ciphertextBlob: e.body.ciphertextBlob,
          encryptionContext: ctx,
        });
        expect(d.status, d.text).toBe(200);
        expect(Buffer.from(d.body.plaintext, 'base64').toString()).toBe('liar-proof');
        expect(d.body.decryptors).not.toContain('node-3');
        for (const b of d.body.excluded) named.push(`${b.participant}/${b.reason}`);
      }
      expect(named).toContain('node-3/bad-share');
      expect(new Set(named)).toEqual(new Set(['node-3/bad-share']));
      const audit = (await c.call('GET', `/v1/audit?keyId=${keyId}&limit=1000`)).body.records.map(
        (r: { entry: Record<string, any> }) => r.entry,
      );
      expect(
        audit.some(
          (x: Record<string, any>) =>
            x['action'] === 'Decrypt' &&
            x['culprits']?.some((b: { participant: string }) => b.participant === 'node-3'),
        ),
      ).toBe(true);

      // Sealed path: the liar seals a share with a wrong u_i to the client; the client's proof check
      // names it and asks again without it (excludeNodes).
      const blob = unb64(e.body.ciphertextBlob);
      const { ct } = decodeBlob(blob);
      liar.lies = {
        keySpec: 'TDH2_RISTRETTO255',
        decryptShare: (req) => {
          const bogus = { id: liar.participant, ui: libsodiumOps.baseMul(11n), ei: 3n, fi: 5n };
          return {
            identifier: liar.participant,
            sealed: toHex(sealShare(bogus, fromHex(req.recipient!), { keyId: req.keyId, u: ct.u })),
          };
        },
      };
      const bodies: any[] = [];
      const post = async (path: string, body: unknown) => {
        bodies.push(body);
        const r = await c.call('POST', `/${path}`, body);
        expect(r.status, r.text).toBe(200);
        return r.body;
      };
      let clientNamed: string[] = [];
      for (let i = 0; i < 3 && clientNamed.length === 0; i++) {
        const r = await decryptForRecipient(post, blob, ctx);
        expect(Buffer.from(r.plaintext).toString()).toBe('liar-proof');
        clientNamed = r.named.map((b) => `${b.participant}/${b.reason}`);
      }
      expect(clientNamed).toEqual(['node-3/bad-share']);
      expect(bodies.at(-1).excludeNodes).toEqual(['node-3']);
    } finally {
      await liar.stop();
    }
  }, 60_000);
});
