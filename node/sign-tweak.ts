/**
 * Which key this node signs for (issue 14): the tweak a signing request asks for (derivation path,
 * Taproot key path or none), resolved by this node from its OWN stored custody data (chain code and
 * merkle root, fixed at the key's creation) and the path in the client-signed body it verified
 * itself (node/request-binding.ts). The coordinator only carries the request: a tweak it names
 * that differs from the signed one is refused, and it never supplies a tweak value.
 */
import { fromHex } from '../protocol/bytes.ts';
import { chainCodeFor } from '../protocol/derivation.ts';
import { KmsError } from '../protocol/errors.ts';
import {
  type CustodyData,
  type RequestedTweak,
  type SigningTweak,
  sameRequestedTweak,
  signingTweakFor,
} from '../protocol/key-tweak.ts';
import type { KeySpec } from '../protocol/suites.ts';
import type { NodeStore } from './store.ts';

/**
 * Custody data read from the store, by store and key id. Written once per key and never changed
 * (node/key-events.ts), so a hit stays true; only what exists is kept (a member that joins by
 * reshare writes it later). Bounded: the oldest entry goes first.
 */
const known = new WeakMap<NodeStore, Map<string, CustodyData>>();
const KNOWN_MAX = 10_000;

/** The key's custody data as this node stores it; undefined for keys created before it existed. */
export async function custodyOf(store: NodeStore, keyId: string): Promise<CustodyData | undefined> {
  let m = known.get(store);
  const hit = m?.get(keyId);
  if (hit !== undefined) return hit;
  const c = await store.getCustody(keyId);
  if (c === undefined) return undefined;
  const data: CustodyData = {
    chainCode: fromHex(c.chainCode),
    merkleRoot: c.merkleRoot === null ? null : fromHex(c.merkleRoot),
  };
  if (m === undefined) {
    m = new Map();
    known.set(store, m);
  }
  if (m.size >= KNOWN_MAX) m.delete(m.keys().next().value!);
  m.set(keyId, data);
  return data;
}

/**
 * The SigningTweak for `requested` on key `keyId`. `signed`: the tweak of the client-signed body
 * (undefined when this node runs without signed requests: test fixtures only); the coordinator's
 * `requested` must then be the same request, else Unauthorized.
 */
export async function resolveSigningTweak(
  store: NodeStore,
  spec: KeySpec,
  keyId: string,
  requested: RequestedTweak | undefined,
  signed:
    | {
        readonly tweak: RequestedTweak;
        /** Records the refusal in the node's audit chain (node/request-guard.ts `refused`). */
        readonly refuse?: (reason: string) => Promise<void>;
      }
    | undefined,
): Promise<SigningTweak | undefined> {
  if (signed !== undefined && !sameRequestedTweak(requested, signed.tweak)) {
    const reason =
      'the signed request does not match: the coordinator asks for another derivation path or taproot tweak';
    await signed.refuse?.(reason);
    throw new KmsError('Unauthorized', reason);
  }
  return signingTweakFor(spec, await custodyOf(store, keyId), signed?.tweak ?? requested);
}

/** The custody data a DKG's members store: chain code over the DKG's outcome, the signed merkle root. */
export function dkgCustody(
  spec: KeySpec,
  groupElement: Uint8Array,
  transcriptHash: Uint8Array,
  merkleRoot: string | null,
): { chainCode: string; merkleRoot: string | null } {
  if (merkleRoot !== null && spec.name !== 'FROST_SECP256K1_TR') {
    throw new KmsError(
      'ValidationError',
      `merkleRoot applies to FROST_SECP256K1_TR keys only, not ${spec.name}`,
    );
  }
  return {
    chainCode: Buffer.from(chainCodeFor(spec, groupElement, transcriptHash)).toString('hex'),
    merkleRoot: merkleRoot === null ? null : merkleRoot.toLowerCase(),
  };
}
