/**
 * A signed `POST /v1/keys/{id}/sign-psbt {psbt, network?}` as this node binds it (issue 14, item 4;
 * the coordinator is an untrusted courier): the node parses the PSBT itself, finds this key's
 * inputs from ITS OWN stored key (group element, chain code, merkle root), computes their BIP341
 * signature hashes itself (protocol/psbt.ts), and authorizes a signing session to sign only one
 * of those hashes, with the derivation path the coordinator names for the session (which must be
 * the path of such an input, on the key path; no path: the key itself). The outputs (address, amount) and the fee go to
 * the node's audit record and to its policy evaluation. Pure but for `psbtKeyOf`, which reads the
 * key from the node's store for node/request-guard.ts.
 */
import { sha256 } from '@noble/hashes/sha2.js';
import { bytesToHex, fromHex } from '../protocol/bytes.ts';
import { formatPath, parsePath } from '../protocol/derivation.ts';
import { KmsError, isKmsError } from '../protocol/errors.ts';
import type { RequestedTweak } from '../protocol/key-tweak.ts';
import {
  type PsbtFacts,
  type PsbtKey,
  type SignPsbtBody,
  analyzePsbt,
  parsePsbt,
  psbtFacts,
} from '../protocol/psbt.ts';
import { KEY_SPEC_REGISTRY } from '../protocol/suites.ts';
import { custodyOf } from './sign-tweak.ts';
import type { NodeStore } from './store.ts';

export const SIGN_PSBT_ACTION = 'sign-psbt';

export { SIGN_PSBT_BODY_SCHEMA } from '../protocol/psbt.ts';
export type { PsbtFacts } from '../protocol/psbt.ts';

/** What a signing session of a SignPsbt request may sign on this node. */
export type PsbtAuthorization = {
  /** How many inputs of this key the PSBT has (bounds the shares of this one request). */
  readonly ownedInputs: number;
  /** SHA-256 (hex) of the signature hashes of this key's inputs at the session's path. */
  readonly allowedSha256: readonly string[];
};

const mismatch = (what: string): never => {
  throw new KmsError('Unauthorized', `the signed request does not match: ${what}`);
};

/**
 * Binds a parsed sign-psbt body: this key's inputs and their hashes, the ones `requested` (the
 * coordinator's path for this session; absent = the key itself) may sign, and the facts.
 * Throws Unauthorized naming what is wrong (a PSBT the node will not sign, a path with no input).
 */
export function bindPsbt(
  key: PsbtKey,
  body: SignPsbtBody,
  requested: RequestedTweak | undefined,
): { psbt: PsbtAuthorization; facts: PsbtFacts } {
  let a: ReturnType<typeof analyzePsbt>;
  try {
    a = analyzePsbt(parsePsbt(body.psbt), key, body.network ?? 'bitcoin');
  } catch (e) {
    return mismatch(isKmsError(e) ? e.message : 'the PSBT cannot be signed');
  }
  if (a.owned.length === 0) mismatch('the PSBT has no input of this key');
  if ((requested?.taprootTweak ?? 'keyPath') !== 'keyPath') {
    mismatch('PSBT inputs are signed on the Taproot key path only');
  }
  let path: string;
  try {
    path = formatPath(parsePath(requested?.derivationPath ?? 'm'));
  } catch (e) {
    return mismatch(isKmsError(e) ? e.message : 'derivation path');
  }
  const at = a.owned.filter((o) => formatPath(o.path) === path);
  // A path the coordinator names must have an input. Without one (a `sign-review` of a pending
  // request, a one-round session: the key itself), the request is bound and may sign only the
  // inputs at `m`, which may be none: such a session then gets no share.
  if (at.length === 0 && requested?.derivationPath !== undefined) {
    mismatch(`the PSBT has no input of this key at ${path}`);
  }
  return {
    psbt: {
      ownedInputs: a.owned.length,
      allowedSha256: at.map((o) => bytesToHex(sha256(o.sighash))),
    },
    facts: psbtFacts(a, body.network ?? 'bitcoin'),
  };
}

/** Whether a session authorized for `p` may sign the message with this SHA-256 (hex). */
export function psbtAllows(p: PsbtAuthorization | undefined, messageSha256: string): boolean {
  return p?.allowedSha256.includes(messageSha256) === true;
}

/**
 * The key a PSBT binds against, as this node stores it: the active epoch's group element and the
 * custody data fixed at creation (node/sign-tweak.ts); undefined when the node holds no such key.
 */
export async function psbtKeyOf(store: NodeStore, keyId: string): Promise<PsbtKey | undefined> {
  const ep = await store.getActiveEpoch(keyId);
  const element = ep?.public.commitments[0];
  if (!ep || element === undefined) return undefined;
  const custody = await custodyOf(store, keyId);
  return {
    spec: KEY_SPEC_REGISTRY[ep.keySpec],
    groupElement: fromHex(element, 'group element'),
    ...(custody ? { chainCode: custody.chainCode } : {}),
    merkleRoot: custody?.merkleRoot ?? null,
  };
}
