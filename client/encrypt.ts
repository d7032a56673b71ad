/**
 * AWS KMS-shaped operations a client performs alone, from an ENCRYPT_DECRYPT key's public key
 * (TDH2 on ristretto255, protocol/tdh2.ts): `Encrypt` and `GenerateDataKey` are public-key
 * operations, so no node is involved. Decryption needs t nodes; the client sees it as an injected
 * `Unwrap` (the CLI backs it with `POST /v1/decrypt`, tests with an in-process cluster).
 */
import { randomFillSync } from 'node:crypto';
import { encodeBlob } from '../protocol/ciphertext-blob.ts';
import { KmsError } from '../protocol/errors.ts';
import { contextLabel, encrypt as tdh2Encrypt, MAX_PLAINTEXT } from '../protocol/tdh2.ts';
import { checkContext, type EncryptionContext } from './encryption-context.ts';

/** Data keys are AES_256 (the only `KeySpec` of `GenerateDataKey` we offer). */
export const DATA_KEY_BYTES = 32;

/**
 * Opens a ciphertext blob through the cluster: resolves to the wrapped plaintext, or rejects
 * (wrong context, invalid blob, quorum unavailable). The caller owns, and wipes, the result.
 */
export type Unwrap = (
  ciphertextBlob: Uint8Array,
  encryptionContext: EncryptionContext,
) => Promise<Uint8Array>;

export type EncryptRequest = {
  readonly keyId: string;
  /** The key's group element (32-byte ristretto255 encoding). */
  readonly publicKey: Uint8Array;
  /** At most 4 KiB, as AWS KMS Encrypt. */
  readonly plaintext: Uint8Array;
  readonly encryptionContext?: EncryptionContext;
};

export type EncryptResponse = { readonly keyId: string; readonly ciphertextBlob: Uint8Array };

export function encrypt(req: EncryptRequest): EncryptResponse {
  if (req.plaintext.length > MAX_PLAINTEXT)
    throw new KmsError('ValidationError', `plaintext is over ${MAX_PLAINTEXT} bytes`);
  const label = contextLabel(checkContext(req.encryptionContext ?? {}));
  const ct = tdh2Encrypt(req.publicKey, label, req.plaintext);
  return { keyId: req.keyId, ciphertextBlob: encodeBlob(req.keyId, label, ct) };
}

export type GenerateDataKeyRequest = Omit<EncryptRequest, 'plaintext'>;

export type GenerateDataKeyResponse = EncryptResponse & {
  /** The 32-byte data key: use it, then overwrite it (`fill(0)`). */
  readonly plaintext: Uint8Array;
};

/** A fresh AES-256 data key and the same key wrapped under the KMS key. */
export function generateDataKey(req: GenerateDataKeyRequest): GenerateDataKeyResponse {
  const plaintext = randomFillSync(new Uint8Array(DATA_KEY_BYTES));
  try {
    return { ...encrypt({ ...req, plaintext }), plaintext };
  } catch (e) {
    plaintext.fill(0);
    throw e;
  }
}
