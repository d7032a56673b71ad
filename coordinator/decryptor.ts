/**
 * Threshold decryption driven by the coordinator (issue 15): one round on t members of the key's
 * active epoch, each returning its TDH2 decryption share (node/decryption.ts). Verification is
 * optimistic, as RFC 9591 §5.3 aggregates before it checks shares: the t shares are combined and
 * the AEAD opened; only when it fails is each share checked against its member's verifying share
 * (Chaum–Pedersen, protocol/tdh2.ts). A wrong share makes a wrong AEAD key, so the tag fails
 * (unless colluding members' errors cancel, and then the plaintext is the right one). A member
 * that sends a bad share, a malformed answer or none is named, left out, and the next member is
 * asked for the share missing (identifiable abort, as coordinator/threshold-signer.ts). Decryption
 * shares need no nonces, so the good shares already in hand are kept.
 *
 * With a recipient key the nodes seal their shares to the client (protocol/tdh2-share-box.ts): the
 * coordinator cannot open them, so it cannot check them either; it returns them with the key's
 * verifying shares, and the client verifies, names a bad sender and asks again without it
 * (client/decrypt-api.ts).
 */
import type { FrostPublic } from '@noble/curves/abstract/frost.js';
import { equalBytes, fromHex, toHex } from '../protocol/bytes.ts';
import { decodeBlob, labelDigest } from '../protocol/ciphertext-blob.ts';
import { participantIdOf } from '../protocol/elements.ts';
import { type Blame, KmsError, StateError, isKmsError } from '../protocol/errors.ts';
import { nodeIndex } from '../protocol/ids.ts';
import { lagrangeCoefficient } from '../protocol/polynomial.ts';
import { assertKeyUsage, type KeySpec, keySpec } from '../protocol/suites.ts';
import type { EncryptionContext } from '../protocol/tdh2-context.ts';
import { libsodiumOps } from '../protocol/ristretto-ops.ts';
import { decodeShare, encodeShare } from '../protocol/tdh2-share-box.ts';
import {
  combine,
  contextLabel,
  type DecryptionShare,
  isValidCiphertext,
  type Tdh2Ciphertext,
  verifyDecryptionShare,
} from '../protocol/tdh2.ts';
import type { AuthorizationWire } from '../net/signed-request.ts';
import type { EpochInfo } from './cluster.ts';
import type { EpochSync } from './epoch-sync.ts';
import { type NodeRpc, byNodeIndex } from './node-rpc.ts';
import { isRefusal, refusalError } from './node-refusal.ts';

export type DecryptRequest = {
  readonly key: EpochInfo;
  /** The signed operation the nodes check: a Decrypt, or the source half of a ReEncrypt. */
  readonly operation: 'Decrypt' | 'ReEncrypt';
  readonly ciphertextBlob: Uint8Array;
  readonly encryptionContext: EncryptionContext;
  /** The client's ephemeral ristretto255 key: shares come back sealed to it. */
  readonly recipient?: Uint8Array;
  /** Members the client named for bad sealed shares: not asked. */
  readonly exclude?: readonly string[];
  readonly auth?: AuthorizationWire;
};

export type SealedShare = { readonly node: string; readonly identifier: string; readonly sealed: Uint8Array };

export type DecryptResult = {
  /** Without a recipient: the plaintext (the caller wipes it). */
  readonly plaintext?: Uint8Array;
  /** With a recipient: t sealed shares, unverified (the client verifies). */
  readonly sealedShares?: readonly SealedShare[];
  /** The key's verifying shares by identifier, hex (proven by the epoch sync). */
  readonly verifyingShares: Readonly<Record<string, string>>;
  readonly threshold: number;
  /** Members whose shares were used (or returned sealed). */
  readonly decryptors: readonly string[];
  /** Members named and left out: bad share, malformed answer, no answer. */
  readonly excluded: readonly Blame[];
};

/** Node answers that say something about the key or the request, not about the node's honesty. */
const NOT_A_FAULT = ['InvalidKeyState', 'KeyNotFound', 'EpochMismatch', 'ValidationError', 'ContextMismatch'];

export class ThresholdDecryptor {
  readonly #n: NodeRpc;
  readonly #sync: EpochSync;
  #rotation = 0;

  constructor(n: NodeRpc, sync: EpochSync) {
    this.#n = n;
    this.#sync = sync;
  }

  async decrypt(req: DecryptRequest): Promise<DecryptResult> {
    const { k, pub } = await this.#sync.sync(req.key);
    assertKeyUsage(k.keySpec, 'ENCRYPT_DECRYPT');
    const spec = keySpec(k.keySpec);
    const blob = decodeBlob(req.ciphertextBlob);
    const label = contextLabel(req.encryptionContext);
    // Refused here before any node is asked; every node checks the same again itself.
    if (!equalBytes(labelDigest(label), blob.labelDigest))
      throw new KmsError(
        'ContextMismatch',
        'InvalidCiphertext: the encryption context does not match the ciphertext blob',
      );
    if (!isValidCiphertext(blob.ct, label))
      throw new KmsError('ValidationError', 'InvalidCiphertext: the ciphertext fails its validity proof');
    const skip = new Set(req.exclude ?? []);
    const start = this.#rotation++ % k.participants.length;
    const order = [...k.participants.slice(start), ...k.participants.slice(0, start)].filter(
      (n) => !skip.has(n),
    );
    const pidOf = (n: string) => participantIdOf(spec, nodeIndex(n)!);
    const good = new Map<string, { share?: DecryptionShare; sealed?: Uint8Array }>();
    const excluded: Blame[] = [];
    const refusals: { node: string; err: KmsError }[] = [];
    const leftOut: { node: string; err: KmsError }[] = [];
    let next = 0;
    while (good.size < k.threshold) {
      const ask = order.slice(next, next + (k.threshold - good.size));
      next += ask.length;
      if (good.size + ask.length < k.threshold) {
        if (refusals.length > 0) throw refusalError(`decrypting with key ${k.keyId}`, refusals);
        const state = stateOf(k.keyId, leftOut);
        if (state) throw state;
        throw new KmsError(
          'QuorumUnavailable',
          `key ${k.keyId}: ${good.size} good decryption shares and ${order.length - next} members left, threshold is ${k.threshold}`,
          { culprits: excluded },
        );
      }
      const answers = await Promise.allSettled(
        ask.map((node) =>
          this.#n.rpc(
            node,
            {
              op: 'decrypt-share',
              operation: req.operation,
              keyId: k.keyId,
              epoch: k.epoch,
              ciphertextBlob: toHex(req.ciphertextBlob),
              encryptionContext: { ...req.encryptionContext },
              ...(req.recipient ? { recipient: toHex(req.recipient) } : {}),
              ...(req.auth ? { auth: req.auth } : {}),
            },
            this.#n.signTimeoutMs,
          ),
        ),
      );
      answers.forEach((a, i) => {
        const node = ask[i]!;
        if (a.status === 'rejected') {
          const e = a.reason;
          if (isRefusal(e)) refusals.push({ node, err: e });
          else if (isKmsError(e) && NOT_A_FAULT.includes(e.code)) {
            this.#n.log.warn({ keyId: k.keyId, node, code: e.code }, 'member refused a decrypt-share');
            leftOut.push({ node, err: e });
          } else {
            const malformed =
              isKmsError(e) && (e.code === 'DecodeError' || e.code === 'ParticipantMisbehaved');
            excluded.push({
              participant: node,
              reason: malformed ? 'malformed-message' : 'unresponsive',
              round: 'decrypt.share',
              evidence: isKmsError(e) ? e.code : 'error',
            });
          }
          return;
        }
        const v = a.value;
        if (v.identifier !== pidOf(node)) {
          excluded.push({ participant: node, reason: 'malformed-message', round: 'decrypt.share' });
          return;
        }
        if (req.recipient) {
          if (v.sealed === undefined) {
            excluded.push({ participant: node, reason: 'malformed-message', round: 'decrypt.share' });
            return;
          }
          good.set(node, { sealed: fromHex(v.sealed) });
          return;
        }
        const share = parseShare(v.share);
        if (!share || share.id !== v.identifier || !libsodiumOps.isValid(share.ui)) {
          excluded.push({
            participant: node,
            reason: 'bad-share',
            round: 'decrypt.share',
            evidence: (v.share ?? '').slice(0, 256),
          });
          return;
        }
        good.set(node, { share });
      });
      if (req.recipient || good.size < k.threshold) continue;
      const ids = [...good.keys()].sort(byNodeIndex);
      const opened = tryCombine(
        blob.ct,
        label,
        ids.map((n) => good.get(n)!.share!),
        spec,
      );
      if (opened) return { plaintext: opened, ...this.#done(k, pub, good, excluded) };
      // The AEAD failed: now each share's proof says whose it was.
      const bad = ids.filter((n) => {
        const s = good.get(n)!.share!;
        const vs = pub.verifyingShares[s.id];
        return !vs || !verifyDecryptionShare(blob.ct, vs, s);
      });
      if (bad.length === 0)
        throw new KmsError('Internal', 'decryption shares that all verify did not open a valid ciphertext');
      for (const n of bad) {
        excluded.push({
          participant: n,
          reason: 'bad-share',
          round: 'decrypt.share',
          evidence: toHex(encodeShare(good.get(n)!.share!)).slice(0, 256),
        });
        good.delete(n);
      }
    }
    // The recipient path: the client verifies and combines.
    const done = this.#done(k, pub, good, excluded);
    return {
      ...done,
      sealedShares: done.decryptors.map((node) => ({
        node,
        identifier: pidOf(node),
        sealed: good.get(node)!.sealed!,
      })),
    };
  }

  #done(
    k: EpochInfo,
    pub: FrostPublic,
    good: ReadonlyMap<string, unknown>,
    excluded: readonly Blame[],
  ): Omit<DecryptResult, 'plaintext' | 'sealedShares'> {
    return {
      verifyingShares: hexShares(pub),
      threshold: k.threshold,
      decryptors: [...good.keys()].sort(byNodeIndex),
      excluded,
    };
  }
}

/** The plaintext if these shares open the AEAD, else undefined. */
function tryCombine(
  ct: Tdh2Ciphertext,
  label: Uint8Array,
  shares: readonly DecryptionShare[],
  spec: KeySpec,
): Uint8Array | undefined {
  try {
    return combine(ct, label, shares, (id, ids) => lagrangeCoefficient(spec, ids, id));
  } catch {
    return undefined;
  }
}

function parseShare(hex: string | undefined): DecryptionShare | undefined {
  if (hex === undefined) return undefined;
  try {
    return decodeShare(fromHex(hex));
  } catch {
    return undefined;
  }
}

function hexShares(pub: FrostPublic): Record<string, string> {
  return Object.fromEntries(Object.entries(pub.verifyingShares).map(([id, v]) => [id, toHex(v)]));
}

/** Every member left out answered the same key-state error: that is the answer (as signing does). */
function stateOf(keyId: string, leftOut: readonly { node: string; err: KmsError }[]): KmsError | undefined {
  const first = leftOut[0]?.err;
  if (!first || !leftOut.every((l) => l.err.code === first.code)) return undefined;
  if (first.code !== 'InvalidKeyState' && first.code !== 'KeyNotFound') return first;
  const nodes = leftOut.map((l) => l.node).sort(byNodeIndex);
  return new StateError(first.code, `key ${keyId}: ${nodes.join(', ')}: ${first.message}`, {
    details: { refusedBy: nodes },
  });
}
