/**
 * An in-process stand-in for the cluster's `POST /v1/decrypt`, for the client module's tests until
 * the node wiring exists: members hold ristretto255 key packages from the real DKG
 * (test/key-events-fixture.ts), each checks the ciphertext blob (key id, validity against the
 * encryption context's label) before computing its TDH2 decryption share, and the client verifies
 * every share's Chaum–Pedersen proof and combines (client/decryption-shares.ts). A bad share names
 * its member, who is left out, and the next member is asked (identifiable abort, as in signing).
 *
 * A "liar" is a member holding a real package that computes its share with a wrong secret: a real
 * party deviating from the protocol, not a mock.
 */
import type { Key } from '@noble/curves/abstract/frost.js';
import { bytesToNumberLE } from '@noble/curves/utils.js';
import { type CombineResult, combineDecryptionShares } from '../../client/decryption-shares.ts';
import type { Unwrap } from '../../client/encrypt.ts';
import type { EncryptionContext } from '../../client/encryption-context.ts';
import { decodeBlob } from '../../protocol/ciphertext-blob.ts';
import { type Blame, KmsError, ProtocolError } from '../../protocol/errors.ts';
import { Fq } from '../../protocol/ristretto-ops.ts';
import { KEY_SPEC_REGISTRY } from '../../protocol/suites.ts';
import { contextLabel, type DecryptionShare, decryptionShare } from '../../protocol/tdh2.ts';
import { dkg, pids } from '../key-events-fixture.ts';

export type UnwrapCall = {
  readonly ciphertextBlob: Uint8Array;
  readonly encryptionContext: EncryptionContext;
};

export type InProcessCluster = {
  readonly keyId: string;
  readonly publicKey: Uint8Array;
  readonly threshold: number;
  /** Member identifiers in the order they are asked. */
  readonly members: readonly string[];
  readonly unwrap: Unwrap;
  /** Every unwrap call, in order. */
  readonly calls: UnwrapCall[];
  /** Members named for bad shares, in order. */
  readonly named: Blame[];
  /** The key's verifying shares (its public package). */
  readonly verifyingShares: Readonly<Record<string, Uint8Array>>;
  /** Member `index`'s answer to a decrypt-share request (a liar's is bad). */
  shareFrom(index: number, ciphertextBlob: Uint8Array, encryptionContext: EncryptionContext): DecryptionShare;
};

export function inProcessCluster(opts: {
  keyId: string;
  threshold: number;
  size: number;
  /** Indices (into `members`) of members that send bad shares. */
  liars?: readonly number[];
}): InProcessCluster {
  const spec = KEY_SPEC_REGISTRY.FROST_RISTRETTO255;
  const ids = pids(
    spec,
    Array.from({ length: opts.size }, (_, i) => i + 1),
  );
  const keys = dkg(spec, opts.threshold, ids);
  const packages: Key[] = ids.map((id) => keys.get(id)!);
  const pub = packages[0]!.public;
  const members = packages.map((k) => k.secret.identifier);
  const liars = new Set((opts.liars ?? []).map((i) => members[i]!));
  const calls: UnwrapCall[] = [];
  const named: Blame[] = [];

  /** What one member's node does on a decrypt-share request. */
  const memberShare = (k: Key, blob: Uint8Array, ctx: EncryptionContext): DecryptionShare => {
    const decoded = decodeBlob(blob);
    if (decoded.keyId !== opts.keyId) throw new KmsError('KeyNotFound', `no key ${decoded.keyId}`);
    const id = k.secret.identifier;
    const secret = bytesToNumberLE(k.secret.signingShare);
    return decryptionShare(decoded.ct, contextLabel(ctx), {
      id,
      secret: liars.has(id) ? Fq.add(secret, 1n) : secret,
      verifyingShare: pub.verifyingShares[id]!,
    });
  };

  const unwrap: Unwrap = async (ciphertextBlob, encryptionContext) => {
    calls.push({ ciphertextBlob, encryptionContext });
    const excluded = new Set<string>();
    for (;;) {
      const asked = packages.filter((k) => !excluded.has(k.secret.identifier)).slice(0, opts.threshold);
      if (asked.length < opts.threshold)
        throw new KmsError('QuorumUnavailable', 'not enough members with good decryption shares');
      const shares = asked.map((k) => memberShare(k, ciphertextBlob, encryptionContext));
      let r: CombineResult;
      try {
        r = combineDecryptionShares({
          ciphertextBlob,
          encryptionContext,
          shares,
          verifyingShares: pub.verifyingShares,
          threshold: opts.threshold,
        });
      } catch (e) {
        if (!(e instanceof ProtocolError) || e.culprits.length === 0) throw e;
        for (const c of e.culprits) {
          named.push(c);
          excluded.add(c.participant);
        }
        continue;
      }
      named.push(...r.culprits);
      return r.plaintext;
    }
  };

  return {
    keyId: opts.keyId,
    publicKey: pub.commitments[0]!,
    threshold: opts.threshold,
    members,
    unwrap,
    calls,
    named,
    verifyingShares: pub.verifyingShares,
    shareFrom: (index, blob, ctx) => memberShare(packages[index]!, blob, ctx),
  };
}
