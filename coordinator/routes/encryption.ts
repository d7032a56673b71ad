/**
 * Envelope encryption routes (issue 15), with AWS KMS names and semantics (JSON, base64 fields):
 * Encrypt, Decrypt, GenerateDataKey, GenerateDataKeyWithoutPlaintext, ReEncrypt. Every one is a
 * principal's signed request (docs/api.md).
 *
 * Who sees what (docs/threat-model.md, "Envelope encryption"):
 * - Encrypt and GenerateDataKey* are public-key operations (protocol/tdh2.ts): the coordinator does
 *   them itself from the key's public key, after the signature and the policy (evaluated here
 *   against the governance the nodes hold; no node is needed, and none is asked). The caller sends
 *   Encrypt's plaintext to the coordinator, and GenerateDataKey's data key is made here and
 *   returned through it: these two necessarily show the coordinator plaintext. A client that must
 *   not do that encrypts locally (client/encrypt.ts, `kms encrypt`, `kms data-key`).
 * - Decrypt asks t nodes (coordinator/decryptor.ts), each of which checks the blob, the context and
 *   the signed request itself. Without `recipient` the coordinator combines the shares and returns
 *   the plaintext (plain HTTP clients). With `recipient` (a client's ephemeral ristretto255 key) the
 *   nodes seal their shares to it and the coordinator returns them unopened: it never sees the
 *   plaintext (client/decrypt-api.ts, `kms decrypt`).
 * - ReEncrypt decrypts under the source key (the nodes check ReEncrypt on it) and encrypts under the
 *   destination key here, so the coordinator sees the plaintext in between; the policy's ReEncrypt
 *   on the destination key is evaluated here (encrypting under it needs no secret).
 */
import { randomFillSync } from 'node:crypto';
import { equalBytes } from '../../protocol/bytes.ts';
import { decodeBlob, encodeBlob, labelDigest } from '../../protocol/ciphertext-blob.ts';
import { KmsError } from '../../protocol/errors.ts';
import { assertKeyUsage } from '../../protocol/suites.ts';
import { checkContext, type EncryptionContext } from '../../protocol/tdh2-context.ts';
import { contextLabel, MAX_PLAINTEXT, encrypt as tdh2Encrypt } from '../../protocol/tdh2.ts';
import type { Operation } from '../../policy/policy-rule.ts';
import { evaluate } from '../../policy/evaluate.ts';
import type { DecryptResult } from '../decryptor.ts';
import type { KeyRecord } from '../key-store.ts';
import { type AppContext, type KmsApp, type OpRequest, auditDecision, underKey } from './context.ts';
import { requireKeyId, runSigned } from './operations.ts';
import { blame, keyIdParam, responses, signed } from './schemas.ts';

/** Data keys are AES_256 (32 bytes), the one `KeySpec` of GenerateDataKey offered. */
const DATA_KEY_BYTES = 32;
/** Largest blob (a 4 KiB plaintext, a 128-byte key id: 4,412 bytes), with room. */
const MAX_BLOB_BYTES = 4608;

const b64 = (maxBytes: number, description: string) => ({
  type: 'string',
  pattern: '^[A-Za-z0-9+/]*={0,2}$',
  maxLength: Math.ceil(maxBytes / 3) * 4,
  description: `${description}, base64`,
});
const context = {
  type: 'object',
  additionalProperties: { type: 'string' },
  maxProperties: 1024,
  description: 'encryption context: non-secret strings, matched exactly on decryption (the label)',
};
const keyRef = { type: 'string', minLength: 1, maxLength: 256 };
const blobOut = { keyId: { type: 'string' }, ciphertextBlob: { type: 'string' } };
const obj = (properties: Record<string, unknown>, required: string[]) => ({
  type: 'object',
  additionalProperties: false,
  required,
  properties,
});

type EncryptBody = { plaintext: string; encryptionContext?: EncryptionContext };
type DataKeyBody = { keySpec?: 'AES_256'; numberOfBytes?: 32; encryptionContext?: EncryptionContext };
type DecryptBody = {
  ciphertextBlob: string;
  encryptionContext?: EncryptionContext;
  keyId?: string;
  recipient?: { publicKey: string };
  excludeNodes?: string[];
};
type ReEncryptBody = {
  ciphertextBlob: string;
  destinationKeyId: string;
  sourceEncryptionContext?: EncryptionContext;
  destinationEncryptionContext?: EncryptionContext;
  sourceKeyId?: string;
};

const fromB64 = (s: string) => new Uint8Array(Buffer.from(s, 'base64'));
const toB64 = (b: Uint8Array) => Buffer.from(b).toString('base64');

function contextOf(c: unknown): EncryptionContext {
  return checkContext(c ?? {});
}

export function encryptionRoutes(app: KmsApp, ctx: AppContext): void {
  /**
   * The policy for an operation only the coordinator performs (a public-key one): the same rules
   * the nodes run, on the governance they hold. Approvals are for operations the nodes run.
   */
  function allowHere(r: OpRequest, operation: Operation, keyId: string): void {
    const doc = ctx.governance.current()?.document;
    if (!doc) throw new KmsError('Unauthorized', 'no governance installed on the nodes yet');
    if (r.principal === null) throw new KmsError('Unauthorized', `${operation} needs a signed request`);
    const d = evaluate(doc, { operation, keyId, initiator: r.principal, approvers: [] });
    if (d.effect === 'deny') throw new KmsError('PolicyDenied', d.reason);
    if (d.effect === 'pending')
      throw new KmsError(
        'PolicyDenied',
        `${operation} of key ${keyId} needs approvals, which it cannot have`,
      );
  }

  /** Public-key encryption under an Enabled ENCRYPT_DECRYPT key (its group element). */
  async function encryptUnder(
    r: OpRequest,
    operation: Operation,
    keyId: string,
    plaintext: Uint8Array,
    encryptionContext: EncryptionContext,
  ): Promise<{ keyId: string; ciphertextBlob: string }> {
    return underKey(ctx, r, keyId, 'sign', async (rec: KeyRecord) => {
      assertKeyUsage(rec.keySpec, 'ENCRYPT_DECRYPT');
      allowHere(r, operation, rec.keyId);
      const label = contextLabel(encryptionContext);
      await auditDecision(ctx, r, { labelDigest: Buffer.from(labelDigest(label)).toString('hex') });
      const ct = tdh2Encrypt(Buffer.from(rec.epochInfo!.groupElement, 'hex'), label, plaintext);
      return { keyId: rec.keyId, ciphertextBlob: toB64(encodeBlob(rec.keyId, label, ct)) };
    });
  }

  ctx.operations.set('Encrypt', async (r, params, b: EncryptBody) => {
    const plaintext = fromB64(b.plaintext);
    try {
      if (plaintext.length > MAX_PLAINTEXT)
        throw new KmsError('ValidationError', `plaintext is over ${MAX_PLAINTEXT} bytes`);
      const out = await encryptUnder(r, 'Encrypt', params.keyId!, plaintext, contextOf(b.encryptionContext));
      return { status: 200, body: out };
    } finally {
      plaintext.fill(0);
    }
  });

  const dataKey = (operation: 'GenerateDataKey' | 'GenerateDataKeyWithoutPlaintext') =>
    ctx.operations.set(operation, async (r, params, b: DataKeyBody) => {
      // Made here: this data key exists on the coordinator (see the header comment).
      const key = randomFillSync(new Uint8Array(DATA_KEY_BYTES));
      try {
        const out = await encryptUnder(r, operation, params.keyId!, key, contextOf(b.encryptionContext));
        return {
          status: 200,
          body: operation === 'GenerateDataKey' ? { ...out, plaintext: toB64(key) } : out,
        };
      } finally {
        key.fill(0);
      }
    });
  dataKey('GenerateDataKey');
  dataKey('GenerateDataKeyWithoutPlaintext');

  /**
   * Decrypts under the key named inside the blob (t nodes). `expectKeyId`: the caller's assertion
   * (AWS `KeyId`), which must match. The context is checked against the blob before any node.
   */
  async function decryptBlob(
    r: OpRequest,
    operation: 'Decrypt' | 'ReEncrypt',
    blobBytes: Uint8Array,
    encryptionContext: EncryptionContext,
    opts: { expectKeyId?: string; recipient?: Uint8Array; exclude?: readonly string[] },
  ): Promise<DecryptResult & { keyId: string }> {
    if (blobBytes.length > MAX_BLOB_BYTES) throw new KmsError('ValidationError', 'ciphertext blob too large');
    const blob = decodeBlob(blobBytes);
    if (opts.expectKeyId !== undefined && opts.expectKeyId !== blob.keyId) {
      throw new KmsError(
        'ValidationError',
        `IncorrectKeyException: the ciphertext blob is for key ${blob.keyId}, not ${opts.expectKeyId}`,
      );
    }
    const keyId = await requireKeyId(ctx, blob.keyId);
    r.audit.keyId = keyId;
    const label = contextLabel(encryptionContext);
    const digest = Buffer.from(labelDigest(label)).toString('hex');
    if (!equalBytes(labelDigest(label), blob.labelDigest))
      throw new KmsError(
        'ContextMismatch',
        'InvalidCiphertext: the encryption context does not match the ciphertext blob',
      );
    return underKey(ctx, r, keyId, 'sign', async (rec) => {
      assertKeyUsage(rec.keySpec, 'ENCRYPT_DECRYPT');
      if (!ctx.cluster.decrypt) throw new KmsError('Internal', 'this cluster does not decrypt');
      await auditDecision(ctx, r, { labelDigest: digest, sealed: opts.recipient !== undefined });
      const out = await ctx.cluster.decrypt({
        key: rec.epochInfo!,
        operation,
        ciphertextBlob: blobBytes,
        encryptionContext,
        ...(opts.recipient ? { recipient: opts.recipient } : {}),
        ...(opts.exclude ? { exclude: opts.exclude } : {}),
        ...(r.auth ? { auth: r.auth } : {}),
      });
      r.audit.signers = out.decryptors;
      r.audit.culprits = out.excluded;
      for (const b of out.excluded) ctx.metrics.excludedParticipants.inc({ reason: b.reason });
      return { ...out, keyId };
    });
  }

  const excludedView = (out: DecryptResult) =>
    out.excluded.map((b) => ({
      participant: b.participant,
      reason: b.reason,
      ...(b.round === undefined ? {} : { round: b.round }),
    }));

  ctx.operations.set('Decrypt', async (r, _params, b: DecryptBody) => {
    const recipient = b.recipient ? fromB64(b.recipient.publicKey) : undefined;
    if (recipient && recipient.length !== 32)
      throw new KmsError('ValidationError', 'recipient.publicKey must be a 32-byte ristretto255 element');
    const out = await decryptBlob(r, 'Decrypt', fromB64(b.ciphertextBlob), contextOf(b.encryptionContext), {
      ...(b.keyId === undefined ? {} : { expectKeyId: b.keyId }),
      ...(recipient ? { recipient } : {}),
      ...(b.excludeNodes ? { exclude: b.excludeNodes } : {}),
    });
    if (out.sealedShares) {
      return {
        status: 200,
        body: {
          keyId: out.keyId,
          ciphertextForRecipient: {
            threshold: out.threshold,
            shares: out.sealedShares.map((s) => ({
              node: s.node,
              identifier: s.identifier,
              sealed: toB64(s.sealed),
            })),
            verifyingShares: out.verifyingShares,
          },
          decryptors: [...out.decryptors],
          excluded: excludedView(out),
        },
      };
    }
    const plaintext = out.plaintext!;
    try {
      return {
        status: 200,
        body: {
          keyId: out.keyId,
          plaintext: toB64(plaintext),
          decryptors: [...out.decryptors],
          excluded: excludedView(out),
        },
      };
    } finally {
      plaintext.fill(0);
    }
  });

  ctx.operations.set('ReEncrypt', async (r, _params, b: ReEncryptBody) => {
    const destination = await requireKeyId(ctx, b.destinationKeyId);
    const destinationContext = contextOf(b.destinationEncryptionContext);
    // The destination is checked first: a refusal there costs no decryption.
    const dest = await ctx.keys.resolve(destination);
    assertKeyUsage(dest.keySpec, 'ENCRYPT_DECRYPT');
    allowHere(r, 'ReEncrypt', dest.keyId);
    const out = await decryptBlob(
      r,
      'ReEncrypt',
      fromB64(b.ciphertextBlob),
      contextOf(b.sourceEncryptionContext),
      b.sourceKeyId === undefined ? {} : { expectKeyId: b.sourceKeyId },
    );
    const plaintext = out.plaintext!;
    try {
      const label = contextLabel(destinationContext);
      const info = dest.epochInfo;
      if (!info || dest.state !== 'Enabled')
        throw new KmsError('InvalidKeyState', `destination key ${dest.keyId} is ${dest.state}`);
      const ct = tdh2Encrypt(Buffer.from(info.groupElement, 'hex'), label, plaintext);
      return {
        status: 200,
        body: {
          keyId: dest.keyId,
          sourceKeyId: out.keyId,
          ciphertextBlob: toB64(encodeBlob(dest.keyId, label, ct)),
          decryptors: [...out.decryptors],
          excluded: excludedView(out),
        },
      };
    } finally {
      plaintext.fill(0);
    }
  });

  const dataKeyBody = obj(
    {
      keySpec: { type: 'string', enum: ['AES_256'] },
      numberOfBytes: { type: 'integer', enum: [DATA_KEY_BYTES] },
      encryptionContext: context,
    },
    [],
  );
  const decryptOut = {
    type: 'object',
    properties: {
      keyId: { type: 'string' },
      plaintext: { type: 'string' },
      ciphertextForRecipient: {
        type: 'object',
        properties: {
          threshold: { type: 'integer' },
          shares: {
            type: 'array',
            items: {
              type: 'object',
              properties: {
                node: { type: 'string' },
                identifier: { type: 'string' },
                sealed: { type: 'string' },
              },
            },
          },
          verifyingShares: { type: 'object', additionalProperties: { type: 'string' } },
        },
      },
      decryptors: { type: 'array', items: { type: 'string' } },
      excluded: { type: 'array', items: blame },
    },
  };
  const keyRoutes: [
    string,
    'Encrypt' | 'GenerateDataKey' | 'GenerateDataKeyWithoutPlaintext',
    string,
    Record<string, unknown>,
    Record<string, unknown>,
  ][] = [
    [
      'encrypt',
      'Encrypt',
      'Encrypt at most 4 KiB under the key (public-key operation, done by the coordinator)',
      obj({ plaintext: b64(MAX_PLAINTEXT, 'plaintext'), encryptionContext: context }, ['plaintext']),
      obj(blobOut, ['keyId', 'ciphertextBlob']),
    ],
    [
      'generate-data-key',
      'GenerateDataKey',
      'A fresh AES-256 data key, in plaintext and wrapped under the key (made by the coordinator)',
      dataKeyBody,
      obj({ ...blobOut, plaintext: { type: 'string' } }, ['keyId', 'ciphertextBlob', 'plaintext']),
    ],
    [
      'generate-data-key-without-plaintext',
      'GenerateDataKeyWithoutPlaintext',
      'A fresh AES-256 data key, wrapped under the key only',
      dataKeyBody,
      obj(blobOut, ['keyId', 'ciphertextBlob']),
    ],
  ];
  for (const [path, op, summary, body, out] of keyRoutes) {
    app.post<{ Params: { keyId: string }; Body: unknown }>(
      `/v1/keys/:keyId/${path}`,
      {
        config: { signed: op, action: op },
        schema: {
          summary,
          tags: ['encryption'],
          security: signed,
          params: keyIdParam,
          body,
          response: responses(200, out),
        },
      },
      async (req, reply) => runSigned(ctx, req, reply, op, req.params, req.body),
    );
  }

  app.post<{ Body: DecryptBody }>(
    '/v1/decrypt',
    {
      config: { signed: 'Decrypt', action: 'Decrypt' },
      schema: {
        summary: 'Decrypt a ciphertext blob with t nodes (the key id is read from the blob)',
        tags: ['encryption'],
        security: signed,
        body: obj(
          {
            ciphertextBlob: b64(MAX_BLOB_BYTES, 'ciphertext blob'),
            encryptionContext: context,
            keyId: keyRef,
            recipient: obj({ publicKey: b64(32, "the client's ephemeral ristretto255 key") }, ['publicKey']),
            excludeNodes: {
              type: 'array',
              items: { type: 'string', pattern: '^node-[1-9][0-9]{0,3}$' },
              maxItems: 1000,
              uniqueItems: true,
            },
          },
          ['ciphertextBlob'],
        ),
        response: responses(200, decryptOut),
      },
    },
    async (req, reply) => runSigned(ctx, req, reply, 'Decrypt', {}, req.body),
  );

  app.post<{ Body: ReEncryptBody }>(
    '/v1/re-encrypt',
    {
      config: { signed: 'ReEncrypt', action: 'ReEncrypt' },
      schema: {
        summary: 'Decrypt under the source key (t nodes) and encrypt under the destination key',
        tags: ['encryption'],
        security: signed,
        body: obj(
          {
            ciphertextBlob: b64(MAX_BLOB_BYTES, 'ciphertext blob'),
            destinationKeyId: keyRef,
            sourceEncryptionContext: context,
            destinationEncryptionContext: context,
            sourceKeyId: keyRef,
          },
          ['ciphertextBlob', 'destinationKeyId'],
        ),
        response: responses(200, {
          type: 'object',
          properties: {
            ...blobOut,
            sourceKeyId: { type: 'string' },
            decryptors: { type: 'array', items: { type: 'string' } },
            excluded: { type: 'array', items: blame },
          },
        }),
      },
    },
    async (req, reply) => runSigned(ctx, req, reply, 'ReEncrypt', {}, req.body),
  );
}
