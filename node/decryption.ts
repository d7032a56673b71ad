/**
 * Threshold decryption on one node (issue 15): this node's TDH2 decryption share of a ciphertext
 * blob (protocol/tdh2.ts, Shoup–Gennaro), with its Chaum–Pedersen proof against the node's
 * verifying share. In this order, and nothing secret is touched before the last step:
 * 1. the blob decodes, names this key, its label digest is the encryption context's, and its TDH2
 *    validity proof holds for that label (a changed byte or context is refused here, audited);
 * 2. the client-signed request (Decrypt, or the source half of a ReEncrypt) is verified by the
 *    guard and must name exactly this blob, context and recipient (`bindDecrypt`); the policy runs;
 *    one share per signed request on this node (the guard's replay cache);
 * 3. the key is an ENCRYPT_DECRYPT key, Enabled, confirmed, at the epoch asked;
 * 4. the share is computed and sealed to the client's ephemeral key when the signed request names
 *    one (protocol/tdh2-share-box.ts: the coordinator then carries what it cannot read). The audit
 *    is the guard's allow record, written before the share: key, label digest, requester, request
 *    digest; never plaintext, which this node never sees.
 */
import { bytesToNumberLE } from '@noble/curves/utils.js';
import { Ajv } from 'ajv';
import { bytesToHex, equalBytes, fromHex, toHex } from '../protocol/bytes.ts';
import { type CiphertextBlob, decodeBlob, labelDigest } from '../protocol/ciphertext-blob.ts';
import { KmsError, StateError, isKmsError } from '../protocol/errors.ts';
import { assertKeyUsage } from '../protocol/suites.ts';
import { checkContext, type EncryptionContext } from '../protocol/tdh2-context.ts';
import {
  contextLabel,
  decryptionShareOf,
  type ValidCiphertext,
  validateCiphertext,
} from '../protocol/tdh2.ts';
import { encodeShare, sealShare } from '../protocol/tdh2-share-box.ts';
import type { DecryptShareAnswer, RequestOf } from '../net/rpc.ts';
import { assertConfirmed } from './key-confirmation.ts';
import type { NodeContext } from './node-context.ts';
import type { BoundRequest } from './request-binding.ts';

type DecryptRpc = RequestOf<'decrypt-share'>;

/** What the coordinator asks, checked: the decoded blob, its label, and the recipient if any. */
export type CheckedCiphertext = {
  readonly blob: CiphertextBlob;
  /** The ciphertext as TDH2's validity check passed it (checked once, here). */
  readonly valid: ValidCiphertext;
  readonly bytes: Uint8Array;
  readonly label: Uint8Array;
  readonly labelDigestHex: string;
  readonly recipient?: Uint8Array;
};

const ajv = new Ajv({ allErrors: false, strict: false });
const b64 = (maxBytes: number) =>
  ({ type: 'string', pattern: '^[A-Za-z0-9+/]*={0,2}$', maxLength: Math.ceil(maxBytes / 3) * 4 }) as const;
const context = { type: 'object', additionalProperties: { type: 'string' } } as const;
const nodeId = { type: 'string', pattern: '^node-[1-9][0-9]{0,3}$' } as const;
const keyRef = { type: 'string', minLength: 1, maxLength: 256 } as const;
/** The HTTP bodies of docs/api.md (coordinator/routes/encryption.ts), as each node reads them. */
const bodies = {
  decrypt: ajv.compile({
    type: 'object',
    additionalProperties: false,
    required: ['ciphertextBlob'],
    properties: {
      ciphertextBlob: b64(8192),
      encryptionContext: context,
      keyId: keyRef,
      recipient: {
        type: 'object',
        additionalProperties: false,
        required: ['publicKey'],
        properties: { publicKey: b64(32) },
      },
      excludeNodes: { type: 'array', items: nodeId, maxItems: 1000, uniqueItems: true },
    },
  }),
  reEncrypt: ajv.compile({
    type: 'object',
    additionalProperties: false,
    required: ['ciphertextBlob', 'destinationKeyId'],
    properties: {
      ciphertextBlob: b64(8192),
      sourceEncryptionContext: context,
      sourceKeyId: keyRef,
      destinationKeyId: keyRef,
      destinationEncryptionContext: context,
    },
  }),
};

const mismatch = (what: string): never => {
  throw new KmsError('Unauthorized', `the signed request does not match: ${what}`);
};

function jsonBody(bytes: Uint8Array): unknown {
  try {
    return JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(bytes));
  } catch {
    return mismatch('the body is not JSON');
  }
}

const sameLabel = (ctx: unknown, label: Uint8Array) => {
  try {
    return equalBytes(contextLabel(checkContext(ctx ?? {})), label);
  } catch {
    return false;
  }
};

/**
 * Binds a client-signed request to this decrypt-share: `POST /v1/decrypt` (Decrypt) or
 * `POST /v1/re-encrypt` (ReEncrypt, this node's part is the source key's share) naming exactly the
 * blob, the context and the recipient the coordinator forwards. Pure; throws Unauthorized.
 */
export function bindDecrypt(
  operation: DecryptRpc['operation'],
  c: CheckedCiphertext,
  req: { method: string; path: string; query: string; body: Uint8Array },
): BoundRequest {
  if (req.method.toUpperCase() !== 'POST') mismatch(`method ${req.method}`);
  if (req.query !== '') mismatch('a query on an operation that takes none');
  const path = operation === 'Decrypt' ? '/v1/decrypt' : '/v1/re-encrypt';
  if (req.path !== path) mismatch(`path ${req.path.slice(0, 200)}, not ${path}`);
  const b = jsonBody(req.body) as Record<string, any>;
  const valid: (v: unknown) => boolean = operation === 'Decrypt' ? bodies.decrypt : bodies.reEncrypt;
  if (!valid(b)) mismatch(`the ${operation} body is not one the API accepts`);
  if (!equalBytes(new Uint8Array(Buffer.from(b['ciphertextBlob'], 'base64')), c.bytes))
    mismatch('another ciphertext blob');
  const ctx = operation === 'Decrypt' ? b['encryptionContext'] : b['sourceEncryptionContext'];
  if (!sameLabel(ctx, c.label)) mismatch('another encryption context');
  const named = operation === 'Decrypt' ? b['keyId'] : b['sourceKeyId'];
  if (named !== undefined && named !== c.blob.keyId) mismatch(`key ${named}, not ${c.blob.keyId}`);
  const recipient = b['recipient']?.['publicKey'];
  const signed = recipient === undefined ? undefined : new Uint8Array(Buffer.from(recipient, 'base64'));
  if ((signed === undefined) !== (c.recipient === undefined) || (signed && !equalBytes(signed, c.recipient!)))
    mismatch('another recipient');
  return { operation, keyId: c.blob.keyId, labelDigest: c.labelDigestHex };
}

export class Decryption {
  readonly #c: NodeContext;

  constructor(ctx: NodeContext) {
    this.#c = ctx;
  }

  async share(req: DecryptRpc): Promise<DecryptShareAnswer> {
    const checked = await this.#checkCiphertext(req);
    const authorized = await this.#c.guard.authorize(
      {
        rpc: 'bound',
        operation: req.operation,
        keyId: req.keyId,
        bind: (signed) => bindDecrypt(req.operation, checked, signed),
      },
      req.auth,
    );
    const a = await this.#c.keys.active(req.keyId);
    assertKeyUsage(a.spec.name, 'ENCRYPT_DECRYPT');
    if (a.state !== 'Enabled') throw new StateError('InvalidKeyState', `key ${req.keyId} is ${a.state}`);
    assertConfirmed({ keyId: req.keyId, unconfirmed: a.unconfirmed });
    if (a.record.epoch !== req.epoch) {
      throw new StateError(
        'EpochMismatch',
        `decryption asked for epoch ${req.epoch}, active epoch is ${a.record.epoch}`,
      );
    }
    const id = a.key.secret.identifier;
    const share = decryptionShareOf(checked.valid, {
      id,
      secret: bytesToNumberLE(a.key.secret.signingShare),
      verifyingShare: a.key.public.verifyingShares[id]!,
    });
    // A signed request's allow record (the guard's, written before this share: key, label digest,
    // requester, request digest) is this share's audit; an unsigned one (test fixtures) gets its own.
    if (!authorized) {
      await this.#c.record({
        event: 'decrypt.share',
        operation: req.operation,
        keyId: req.keyId,
        epoch: req.epoch,
        labelDigest: checked.labelDigestHex,
        sealed: checked.recipient !== undefined,
      });
    }
    if (checked.recipient) {
      const sealed = sealShare(share, checked.recipient, { keyId: req.keyId, u: checked.blob.ct.u });
      return { identifier: id, sealed: toHex(sealed) };
    }
    return { identifier: id, share: toHex(encodeShare(share)) };
  }

  /** Step 1: structure, key id, label digest and TDH2 validity, before anything else; refusals audited. */
  async #checkCiphertext(req: DecryptRpc): Promise<CheckedCiphertext> {
    const bytes = fromHex(req.ciphertextBlob, 'ciphertext blob');
    let digest: string | undefined;
    try {
      const blob = decodeBlob(bytes);
      if (blob.keyId !== req.keyId)
        throw new KmsError('ValidationError', `InvalidCiphertext: the blob is for key ${blob.keyId}`);
      let ctx: EncryptionContext;
      try {
        ctx = checkContext(req.encryptionContext);
      } catch (e) {
        throw new KmsError('ValidationError', `InvalidCiphertext: ${(e as Error).message}`);
      }
      const label = contextLabel(ctx);
      digest = bytesToHex(labelDigest(label));
      if (!equalBytes(labelDigest(label), blob.labelDigest))
        throw new KmsError(
          'ContextMismatch',
          'InvalidCiphertext: the encryption context does not match the ciphertext blob',
        );
      const valid = validateCiphertext(blob.ct, label);
      if (!valid)
        throw new KmsError('ValidationError', 'InvalidCiphertext: the ciphertext fails its validity proof');
      const recipient = req.recipient === undefined ? undefined : fromHex(req.recipient, 'recipient', 32);
      return { blob, valid, bytes, label, labelDigestHex: digest, ...(recipient ? { recipient } : {}) };
    } catch (e) {
      const reason = isKmsError(e) ? e.message : 'invalid ciphertext';
      await this.#c.guard.refused({
        rpc: 'decrypt-share',
        operation: req.operation,
        keyId: req.keyId,
        ...(digest ? { labelDigest: digest } : {}),
        reason: reason.slice(0, 300),
      });
      throw e;
    }
  }
}
