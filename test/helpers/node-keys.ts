/**
 * Node identity keys for tests that run SessionRunners or machines without daemons: one real
 * Ed25519 key per node id (node:crypto, RFC 8032), with the sign and verify functions the session
 * runner takes (node/session-runner.ts) and the participant-level check machines take
 * (protocol/machine.ts SignatureCheck). Keys are made on first use and live as long as the object.
 */
import { generateKeyPairSync, type KeyObject, sign, verify } from 'node:crypto';
import { encodeEnvelope, envelopeDigest, signedMessage } from '../../protocol/codec.ts';
import type { Envelope, SignatureCheck } from '../../protocol/machine.ts';

export type TestNodeKeys = {
  /** The `sign` and `verify` options of a SessionRunner running as `nodeId`. */
  runner(nodeId: string): {
    sign: (message: Uint8Array) => Uint8Array;
    verify: (nodeId: string, message: Uint8Array, signature: Uint8Array) => boolean;
  };
  /** Signs `message` as `id`. */
  sign(id: string, message: Uint8Array): Uint8Array;
  /** Checks a signature by `id`. */
  verify(id: string, message: Uint8Array, signature: Uint8Array): boolean;
  /** The machines' check, ids being participant ids. */
  readonly check: SignatureCheck;
  /** `env` as received from `id`: with `id`'s signature over it (codec signedMessage). */
  signed<E extends Envelope<any>>(id: string, env: E): E;
};

export function testNodeKeys(): TestNodeKeys {
  const keys = new Map<string, { privateKey: KeyObject; publicKey: KeyObject }>();
  const keyOf = (id: string) => {
    let k = keys.get(id);
    if (!k) {
      k = generateKeyPairSync('ed25519');
      keys.set(id, k);
    }
    return k;
  };
  const signAs = (id: string, message: Uint8Array) =>
    new Uint8Array(sign(null, message, keyOf(id).privateKey));
  const verifyAs = (id: string, message: Uint8Array, signature: Uint8Array) => {
    try {
      return verify(null, message, keyOf(id).publicKey, signature);
    } catch {
      return false;
    }
  };
  return {
    runner: (nodeId) => ({ sign: (m) => signAs(nodeId, m), verify: verifyAs }),
    sign: signAs,
    verify: verifyAs,
    check: (p, m, s) => verifyAs(p, m, s),
    signed: (id, env) => {
      const digest = envelopeDigest(encodeEnvelope(env as Envelope<Record<string, unknown>>));
      return { ...env, signature: signAs(id, signedMessage(env.header, digest)) };
    },
  };
}
