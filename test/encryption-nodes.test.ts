/**
 * Threshold decryption on real node daemons (issue 15): three nodes over real libp2p, each
 * verifying the client-signed Decrypt request itself (test/helpers/signing-cluster.ts), a key of
 * spec TDH2_RISTRETTO255 made by the real DKG, and the coordinator's decryptor
 * (coordinator/decryptor.ts). Ciphertexts are made locally from the public key (client/encrypt.ts).
 * Covers: every node refusing a changed blob or context before computing a share; one usage per
 * key on each node; decryption after refresh, reshare and repair; a lying node (real identity,
 * test/helpers/lying-peer.ts) named for its bad share and replaced, on the plain path and, by the
 * client, on the sealed path.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { combineDecryptionShares } from '../client/decryption-shares.ts';
import { encrypt, generateDataKey } from '../client/encrypt.ts';
import type { EpochInfo } from '../coordinator/cluster.ts';
import { fromHex, toHex } from '../protocol/bytes.ts';
import { type KmsError, isKmsError, ProtocolError } from '../protocol/errors.ts';
import { openShare, recipientKeyPair, sealShare } from '../protocol/tdh2-share-box.ts';
import { libsodiumOps } from '../protocol/ristretto-ops.ts';
import { decodeBlob } from '../protocol/ciphertext-blob.ts';
import { encodeRpc, decodeJsonFrame } from '../net/rpc.ts';
import { RPC_PROTOCOL } from '../net/transport.ts';
import { type TestCluster, startTestCluster } from './helpers/cluster.ts';
import { type LyingPeer, startLyingPeer } from './helpers/lying-peer.ts';
import { authorizer } from './helpers/signing-cluster.ts';

const ALL = ['node-1', 'node-2', 'node-3'];
const SPEC = 'TDH2_RISTRETTO255' as const;
const enc = (s: string) => new TextEncoder().encode(s);
const ctx = { purpose: 'test', tenant: 'acme' };

async function failure(p: Promise<unknown>): Promise<KmsError> {
  const e = await p.then(
    () => undefined,
    (err: unknown) => err,
  );
  if (!isKmsError(e))
    throw new Error(`expected a typed KmsError, got ${e === undefined ? 'success' : String(e)}`);
  return e;
}

describe('TDH2 decryption on real nodes', () => {
  let c: TestCluster;
  let key: EpochInfo;
  let liar: LyingPeer | undefined;
  const encryptTo = (k: EpochInfo, plaintext: Uint8Array, encryptionContext = ctx) =>
    encrypt({ keyId: k.keyId, publicKey: Buffer.from(k.groupElement, 'hex'), plaintext, encryptionContext })
      .ciphertextBlob;
  const decrypt = (k: EpochInfo, blob: Uint8Array, encryptionContext = ctx, extra = {}) =>
    c.cluster.decrypt!({ key: k, operation: 'Decrypt', ciphertextBlob: blob, encryptionContext, ...extra });
  /** A decrypt-share straight to one node, signed as the fixture's admin for exactly `blob`/`context`. */
  const askNode = async (node: string, k: EpochInfo, blob: Uint8Array, context: Record<string, string>) => {
    const gov = c.governance!;
    const auth = authorizer(gov.admin, gov.admin2)('POST', '/v1/decrypt', {
      ciphertextBlob: Buffer.from(blob).toString('base64'),
      encryptionContext: context,
    });
    const peer = [...c.nodes.values()].find((n) => n.nodeId === node)!.peerId;
    try {
      const bytes = await c.coordinatorTransport.request(
        peer,
        RPC_PROTOCOL,
        encodeRpc({
          op: 'decrypt-share',
          operation: 'Decrypt',
          keyId: k.keyId,
          epoch: k.epoch,
          ciphertextBlob: toHex(blob),
          encryptionContext: context,
          auth,
        }),
        { timeoutMs: 5_000 },
      );
      return { answer: decodeJsonFrame(bytes) as Record<string, unknown> };
    } catch (e) {
      return { code: (e as KmsError).code, message: (e as Error).message };
    }
  };

  beforeAll(async () => {
    c = await startTestCluster(3, { sessionTimeoutMs: 5_000 });
    key = await c.cluster.createKey({ keyId: 'enc-1', keySpec: SPEC, threshold: 2, participants: ALL });
  }, 60_000);
  afterAll(async () => {
    await liar?.stop().catch(() => {});
    await c?.close();
  });

  it('decrypts what was encrypted from the public key alone, with any 2 of 3', async () => {
    const blob = encryptTo(key, enc('hello, threshold world'));
    const seen = new Set<string>();
    for (let i = 0; i < 3; i++) {
      const r = await decrypt(key, blob);
      expect(Buffer.from(r.plaintext!).toString()).toBe('hello, threshold world');
      expect(r.excluded).toEqual([]);
      expect(r.decryptors).toHaveLength(2);
      seen.add(r.decryptors.join(','));
    }
    // The rotation spreads the work: three different pairs.
    expect(seen.size).toBe(3);
  });

  it('a changed context or any changed byte is refused by every node before it computes a share', async () => {
    const dk = generateDataKey({
      keyId: key.keyId,
      publicKey: Buffer.from(key.groupElement, 'hex'),
      encryptionContext: ctx,
    });
    const blob = dk.ciphertextBlob;
    // The honest request works on each node alone (the control).
    for (const n of ALL)
      expect((await askNode(n, key, blob, ctx)).answer?.['share']).toMatch(/^[0-9a-f]{256}$/);
    const wrongContext = { ...ctx, tenant: 'evil' };
    const flipped = [blob.length - 5, blob.length - 60, blob.length - 100, blob.length - 140].map((at) => {
      const b = blob.slice();
      b[at]! ^= 1;
      return b;
    });
    for (const n of ALL) {
      // The signed request names the same wrong context or changed blob: only the ciphertext check stops it.
      const r = await askNode(n, key, blob, wrongContext);
      expect(r.code, n).toBe('ContextMismatch');
      for (const b of flipped) {
        const f = await askNode(n, key, b, ctx);
        expect(['ValidationError', 'DecodeError'], `${n}: ${f.message}`).toContain(f.code);
        expect(f.message).toMatch(/InvalidCiphertext/);
      }
    }
    // The decryptor refuses them too, before any node is asked.
    expect((await failure(decrypt(key, blob, wrongContext))).code).toBe('ContextMismatch');
    expect((await failure(decrypt(key, flipped[0]!))).message).toMatch(/InvalidCiphertext/);
    dk.plaintext.fill(0);
  });

  it('a key has one usage: each node refuses to sign with an encryption key and to decrypt with a signing key', async () => {
    const signing = await c.cluster.createKey({
      keyId: 'sig-1',
      keySpec: 'FROST_RISTRETTO255',
      threshold: 2,
      participants: ALL,
    });
    const e = await failure(c.cluster.sign({ key, message: enc('no') }));
    expect(e.message).toMatch(/InvalidKeyUsage|usable members/);
    const gov = c.governance!;
    const auth = authorizer(gov.admin, gov.admin2)('POST', `/v1/keys/${key.keyId}/sign`, { message: '00' });
    for (const n of ALL) {
      const peer = [...c.nodes.values()].find((x) => x.nodeId === n)!.peerId;
      const err = await c.coordinatorTransport
        .request(
          peer,
          RPC_PROTOCOL,
          encodeRpc({ op: 'sign-commit', sessionId: `s-${n}`, keyId: key.keyId, epoch: key.epoch, auth }),
          {
            timeoutMs: 5_000,
          },
        )
        .then(
          () => undefined,
          (x: KmsError) => x,
        );
      expect(err?.message, n).toMatch(/InvalidKeyUsage/);
    }
    // A blob under the signing key's group element: the decryptor and every node refuse it.
    const blob = encryptTo(signing, enc('x'));
    expect((await failure(decrypt(signing, blob))).message).toMatch(/InvalidKeyUsage/);
    for (const n of ALL) expect((await askNode(n, signing, blob, ctx)).message, n).toMatch(/InvalidKeyUsage/);
  });

  it('refresh, reshare and repair keep every existing ciphertext decryptable', async () => {
    const blob = encryptTo(key, enc('kept across key events'));
    const check = async (k: EpochInfo) =>
      expect(Buffer.from((await decrypt(k, blob)).plaintext!).toString()).toBe('kept across key events');
    let k = await c.cluster.refresh({ key });
    expect(k.groupElement).toBe(key.groupElement);
    await check(k);
    k = await c.cluster.reshare({ key: k, threshold: 3, participants: ALL });
    expect(k.threshold).toBe(3);
    await check(k);
    k = await c.cluster.reshare({ key: k, threshold: 2, participants: ALL });
    k = await c.cluster.repair({ key: k, participant: 'node-3' });
    await check(k);
    // node-3's repaired share is used: leave the others out one at a time.
    for (const out of ['node-1', 'node-2']) {
      const r = await decrypt(k, blob, ctx, { exclude: [out] });
      expect(r.decryptors).toContain('node-3');
    }
    key = k;
  }, 60_000);

  it('a lying node (real identity) is named for its bad share, left out, and another node asked', async () => {
    liar = await startLyingPeer(c, 'node-3', { keySpec: SPEC });
    const blob = encryptTo(key, enc('despite the liar'));
    const named: string[] = [];
    for (let i = 0; i < 3; i++) {
      const r = await decrypt(key, blob);
      expect(Buffer.from(r.plaintext!).toString()).toBe('despite the liar');
      expect(r.decryptors).not.toContain('node-3');
      for (const b of r.excluded) named.push(`${b.participant}/${b.reason}`);
    }
    expect(named).toContain('node-3/bad-share');
    expect(named.every((n) => n === 'node-3/bad-share')).toBe(true);

    // Sealed to a client key: the coordinator cannot check the shares; the client names the liar,
    // which seals a well-formed share with a wrong u_i and random proof scalars to the client.
    const eph = recipientKeyPair();
    const { ct } = decodeBlob(blob);
    liar.lies = {
      keySpec: SPEC,
      decryptShare: (req) => {
        const bogus = { id: liar!.participant, ui: libsodiumOps.baseMul(7n), ei: 5n, fi: 9n };
        const sealed = sealShare(bogus, fromHex(req.recipient!), { keyId: req.keyId, u: ct.u });
        return { identifier: liar!.participant, sealed: toHex(sealed) };
      },
    };
    let clientNamed: string[] = [];
    for (let i = 0; i < 3 && clientNamed.length === 0; i++) {
      const r = await decrypt(key, blob, ctx, { recipient: eph.publicKey });
      expect(r.plaintext).toBeUndefined();
      expect(r.excluded).toEqual([]);
      const shares = r.sealedShares!.map((s) =>
        openShare(s.sealed, eph.secret, { keyId: key.keyId, shareId: s.identifier, u: ct.u }),
      );
      try {
        const out = combineDecryptionShares({
          ciphertextBlob: blob,
          encryptionContext: ctx,
          shares,
          verifyingShares: Object.fromEntries(
            Object.entries(r.verifyingShares).map(([id, v]) => [id, Buffer.from(v, 'hex')]),
          ),
          threshold: r.threshold,
        });
        expect(Buffer.from(out.plaintext).toString()).toBe('despite the liar');
      } catch (e) {
        expect(e).toBeInstanceOf(ProtocolError);
        const byId = new Map(r.sealedShares!.map((s) => [s.identifier, s.node]));
        clientNamed = (e as ProtocolError).culprits.map((b) => byId.get(b.participant)!);
      }
    }
    expect(clientNamed).toEqual(['node-3']);
    const r = await decrypt(key, blob, ctx, { recipient: eph.publicKey, exclude: clientNamed });
    expect(r.decryptors).toEqual(['node-1', 'node-2']);
  }, 60_000);
});
