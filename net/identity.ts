/**
 * The node's libp2p identity: an Ed25519 key whose public half is the peer id other nodes put on
 * their allow-lists. This module only creates and (de)serializes the key; the caller seals the
 * bytes (node/sealer.ts, scope `identity`) so the peer id survives restarts without the key ever
 * touching disk in the clear.
 */

import { generateKeyPair, privateKeyFromProtobuf, privateKeyToProtobuf } from '@libp2p/crypto/keys';
import type { PrivateKey } from '@libp2p/interface';
import { peerIdFromPrivateKey, peerIdFromString } from '@libp2p/peer-id';
import { DecodeError } from '../protocol/errors.ts';

export type IdentityKey = PrivateKey;

/** A fresh Ed25519 identity key. */
export async function generateIdentityKey(): Promise<IdentityKey> {
  return generateKeyPair('Ed25519');
}

/** libp2p's protobuf encoding of the private key: the plaintext handed to the sealer. */
export function identityKeyToBytes(key: IdentityKey): Uint8Array {
  return privateKeyToProtobuf(key);
}

/** Parses sealed-then-opened bytes back into a key; anything but an Ed25519 key is refused. */
export function identityKeyFromBytes(bytes: Uint8Array): IdentityKey {
  let key: PrivateKey;
  try {
    key = privateKeyFromProtobuf(bytes);
  } catch (e) {
    // The message must not echo the input: these bytes are a private key.
    throw new DecodeError('DecodeError', 'identity key bytes do not decode', { cause: e });
  }
  if (key.type !== 'Ed25519') {
    throw new DecodeError('DecodeError', `identity key must be Ed25519, got ${key.type}`);
  }
  return key;
}

/** The peer id (base58btc string form) of an identity key. */
export function peerIdOf(key: IdentityKey): string {
  return peerIdFromPrivateKey(key).toString();
}

/** Checks that a configured peer id string parses; returns its canonical string form. */
export function parsePeerId(peerId: string): string {
  try {
    return peerIdFromString(peerId).toString();
  } catch (e) {
    throw new DecodeError('DecodeError', `invalid peer id: ${JSON.stringify(peerId.slice(0, 80))}`, {
      cause: e,
    });
  }
}
