/**
 * Decrypt through the API without the coordinator seeing the plaintext (issue 15): the client makes
 * an ephemeral ristretto255 key pair per request, signs `POST /v1/decrypt` with its public key as
 * `recipient`, and gets back t decryption shares sealed to it (protocol/tdh2-share-box.ts). It opens
 * them, checks each one's Chaum–Pedersen proof against the sender's verifying share and combines
 * (client/decryption-shares.ts). A share that does not open or fails its proof names its sender:
 * the client asks again with a fresh signed request that leaves the named members out
 * (`excludeNodes`), as the coordinator does for plain decryption (identifiable abort).
 *
 * What the coordinator could still do: withhold or garble shares (the client then fails, naming
 * whom it saw misbehave), never learn the plaintext nor make the client accept a wrong one (the
 * AEAD under the TDH2 key fails: protocol/tdh2.ts combine).
 */
import type { Blame } from '../protocol/errors.ts';
import { KmsError, ProtocolError } from '../protocol/errors.ts';
import { decodeBlob } from '../protocol/ciphertext-blob.ts';
import { openShare, recipientKeyPair } from '../protocol/tdh2-share-box.ts';
import type { DecryptionShare } from '../protocol/tdh2.ts';
import { combineDecryptionShares } from './decryption-shares.ts';
import type { Unwrap } from './encrypt.ts';
import { checkContext, type EncryptionContext } from './encryption-context.ts';

/** Sends a signed POST to the coordinator and resolves with the JSON answer (throws on a problem). */
export type SignedPost = (path: string, body: unknown) => Promise<any>;

export type RecipientAnswer = {
  keyId: string;
  ciphertextForRecipient: {
    threshold: number;
    shares: { node: string; identifier: string; sealed: string }[];
    verifyingShares: Record<string, string>;
  };
};

export type ClientDecryptResult = {
  readonly keyId: string;
  readonly plaintext: Uint8Array;
  /** Members whose sealed shares did not open or failed their proof (left out). */
  readonly named: readonly Blame[];
};

/** Most requests one decryption may take (each leaves out at least one more member). */
const MAX_ROUNDS = 4;

export async function decryptForRecipient(
  post: SignedPost,
  ciphertextBlob: Uint8Array,
  encryptionContext: EncryptionContext = {},
): Promise<ClientDecryptResult> {
  const ctx = checkContext(encryptionContext);
  const blob = decodeBlob(ciphertextBlob);
  const named: Blame[] = [];
  for (let round = 0; round < MAX_ROUNDS; round++) {
    const eph = recipientKeyPair();
    const exclude = [...new Set(named.map((b) => b.participant))];
    const ans: RecipientAnswer = await post('v1/decrypt', {
      ciphertextBlob: Buffer.from(ciphertextBlob).toString('base64'),
      encryptionContext: ctx,
      recipient: { publicKey: Buffer.from(eph.publicKey).toString('base64') },
      ...(exclude.length > 0 ? { excludeNodes: exclude } : {}),
    });
    const r = ans.ciphertextForRecipient;
    if (!r || ans.keyId !== blob.keyId)
      throw new KmsError('DecodeError', 'the coordinator did not answer with sealed shares for this key');
    const nodeOf = new Map(r.shares.map((s) => [s.identifier, s.node]));
    const shares: DecryptionShare[] = [];
    const badNow: Blame[] = [];
    for (const s of r.shares) {
      try {
        shares.push(
          openShare(new Uint8Array(Buffer.from(s.sealed, 'base64')), eph.secret, {
            keyId: blob.keyId,
            shareId: s.identifier,
            u: blob.ct.u,
          }),
        );
      } catch {
        badNow.push({
          participant: s.node,
          reason: 'malformed-message',
          evidence: 'sealed share does not open',
        });
      }
    }
    const verifyingShares = Object.fromEntries(
      Object.entries(r.verifyingShares).map(([id, v]) => [id, new Uint8Array(Buffer.from(v, 'hex'))]),
    );
    try {
      if (badNow.length > 0)
        throw new ProtocolError('ParticipantMisbehaved', 'sealed shares', { culprits: [] });
      const out = combineDecryptionShares({
        ciphertextBlob,
        encryptionContext: ctx,
        shares,
        verifyingShares,
        threshold: r.threshold,
      });
      return {
        keyId: out.keyId,
        plaintext: out.plaintext,
        named: [...named, ...byNode(out.culprits, nodeOf)],
      };
    } catch (e) {
      if (!(e instanceof ProtocolError)) throw e;
      const culprits = [...badNow, ...byNode(e.culprits, nodeOf)];
      if (culprits.length === 0) throw e;
      named.push(...culprits);
    }
  }
  throw new KmsError('QuorumUnavailable', `no ${MAX_ROUNDS} rounds gave t good shares`, { culprits: named });
}

function byNode(culprits: readonly Blame[], nodeOf: ReadonlyMap<string, string>): Blame[] {
  return culprits.map((c) => ({ ...c, participant: nodeOf.get(c.participant) ?? c.participant }));
}

/** The `Unwrap` of client/envelope-file.ts over the API, with the shares sealed to this client. */
export function recipientUnwrap(post: SignedPost, onNamed?: (b: readonly Blame[]) => void): Unwrap {
  return async (ciphertextBlob, encryptionContext) => {
    const r = await decryptForRecipient(post, ciphertextBlob, encryptionContext);
    if (r.named.length > 0) onNamed?.(r.named);
    return r.plaintext;
  };
}
