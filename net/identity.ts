/**
 * The node's libp2p identity: an Ed25519 key whose public half is the peer id other nodes put on
 * their allow-lists. This module creates and (de)serializes the key (the caller seals the bytes,
 * node/sealer.ts, scope `identity`, so the peer id survives restarts without the key ever touching
 * disk in the clear), and signs and verifies with it: session envelopes are signed with the node
 * key (protocol/codec.ts `signedMessage`), and anyone holding the cluster file can check such a
 * signature, because an Ed25519 peer id embeds its public key.
 */

import { createPrivateKey, createPublicKey, type KeyObject, sign, verify } from 'node:crypto';
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

/** Ed25519 signature length (RFC 8032 §5.1.6). */
export const IDENTITY_SIGNATURE_LENGTH = 64;

const b64url = (b: Uint8Array) => Buffer.from(b).toString('base64url');

/**
 * A signing function for the identity key (Ed25519, RFC 8032, deterministic). The caller passes
 * the complete message, domain prefix included (protocol/codec.ts `signedMessage`).
 */
export function identitySigner(key: IdentityKey): (message: Uint8Array) => Uint8Array {
  if (key.type !== 'Ed25519') throw new DecodeError('DecodeError', 'identity key must be Ed25519');
  // libp2p's raw Ed25519 private key is seed (32) || public key (32).
  const raw = key.raw;
  const jwk = { kty: 'OKP', crv: 'Ed25519', d: b64url(raw.subarray(0, 32)), x: b64url(key.publicKey.raw) };
  const pk = createPrivateKey({ key: jwk, format: 'jwk' });
  return (message) => new Uint8Array(sign(null, message, pk));
}

/** The Ed25519 public key (32 bytes) a peer id embeds; refuses peer ids of other key types. */
export function publicKeyOfPeer(peerId: string): Uint8Array {
  let id: ReturnType<typeof peerIdFromString>;
  try {
    id = peerIdFromString(peerId);
  } catch (e) {
    throw new DecodeError('DecodeError', `invalid peer id: ${JSON.stringify(peerId.slice(0, 80))}`, {
      cause: e,
    });
  }
  if (id.type !== 'Ed25519' || !id.publicKey) {
    throw new DecodeError('DecodeError', `peer id ${peerId.slice(0, 80)} does not embed an Ed25519 key`);
  }
  return id.publicKey.raw;
}

/** Checks an Ed25519 signature against a raw 32-byte public key. Never throws: false on any bad input. */
export function verifyIdentitySignature(
  publicKey: Uint8Array,
  message: Uint8Array,
  signature: Uint8Array,
): boolean {
  if (signature.length !== IDENTITY_SIGNATURE_LENGTH || publicKey.length !== 32) return false;
  try {
    return verify(null, message, publicKeyObject(publicKey), signature);
  } catch {
    return false;
  }
}

/**
 * A verifier by node id from the cluster file's node -> peer id map: the signature must be by the
 * identity key of that node's peer id. Unknown nodes verify nothing.
 */
export function nodeSignatureVerifier(
  peerByNode: ReadonlyMap<string, string>,
): (nodeId: string, message: Uint8Array, signature: Uint8Array) => boolean {
  const keys = new Map<string, Uint8Array>();
  return (nodeId, message, signature) => {
    let pk = keys.get(nodeId);
    if (!pk) {
      const peer = peerByNode.get(nodeId);
      if (!peer) return false;
      pk = publicKeyOfPeer(peer);
      keys.set(nodeId, pk);
    }
    return verifyIdentitySignature(pk, message, signature);
  };
}

// KeyObjects are costly to build (ASN.1/JWK import); a cluster has a handful of node keys.
const publicKeyObjects = new Map<string, KeyObject>();
function publicKeyObject(raw: Uint8Array): KeyObject {
  const x = b64url(raw);
  let k = publicKeyObjects.get(x);
  if (!k) {
    k = createPublicKey({ key: { kty: 'OKP', crv: 'Ed25519', x }, format: 'jwk' });
    if (publicKeyObjects.size >= 1024) publicKeyObjects.clear();
    publicKeyObjects.set(x, k);
  }
  return k;
}
