/**
 * The pieces a coordinator double needs to sign in one round by hand over the real RPC
 * (test/one-round-signing.test.ts, test/sign-batch.test.ts): pre-published commitments, a
 * `sign-one` request carrying a client-signed Sign request, and the aggregate of the shares.
 */
import { randomUUID } from 'node:crypto';
import { expect } from 'vitest';
import type { EpochInfo } from '../../coordinator/cluster.ts';
import type { RequestOf, RpcAnswers, RpcOp } from '../../net/rpc.ts';
import type { AuthorizationWire } from '../../net/signed-request.ts';
import type { Transport } from '../../net/transport.ts';
import { fromHex, toHex } from '../../protocol/bytes.ts';
import { publicFromHex } from '../../protocol/packages.ts';
import { aggregateSignature } from '../../protocol/sign.ts';
import type { KeySpec } from '../../protocol/suites.ts';

/** One pre-published commitment as the wire lists it. */
export type Listed = { identifier: string; hiding: string; binding: string };

/** A raw RPC from a coordinator identity (`via`: another identity's transport). */
export type RawRpc = <O extends RpcOp>(
  node: string,
  req: RequestOf<O>,
  via?: Transport,
) => Promise<RpcAnswers[O]>;

type Authorizer = (method: string, path: string, body?: unknown) => AuthorizationWire;

export function oneRoundKit(spec: KeySpec, rpc: RawRpc, auth: () => Authorizer) {
  const signAuth = (keyId: string, message: Uint8Array) =>
    auth()('POST', `/v1/keys/${keyId}/sign`, { message: toHex(message) });

  /** One pre-published commitment of each of `signers` (sign-precommit), as a sorted list. */
  async function precommit(key: EpochInfo, signers: string[], via?: Transport): Promise<Listed[]> {
    const out: Listed[] = [];
    for (const n of signers) {
      const a = await rpc(n, { op: 'sign-precommit', keyId: key.keyId, epoch: key.epoch, count: 1 }, via);
      expect(a.commitments).toHaveLength(1);
      out.push({ identifier: a.identifier, ...a.commitments[0]! });
    }
    return out;
  }

  const signOneReq = (
    key: EpochInfo,
    message: Uint8Array,
    commitments: Listed[],
    a: AuthorizationWire,
  ): RequestOf<'sign-one'> => ({
    op: 'sign-one',
    sessionId: randomUUID(),
    keyId: key.keyId,
    epoch: key.epoch,
    message: toHex(message),
    commitments,
    auth: a,
  });

  /** The aggregate of the double's shares, over node-1's public package (checked by the caller). */
  async function aggregate(key: EpochInfo, message: Uint8Array, list: Listed[], shares: string[]) {
    const pkg = await rpc('node-1', { op: 'public', keyId: key.keyId });
    return aggregateSignature({
      spec,
      public: publicFromHex(spec, pkg.public),
      epoch: key.epoch,
      message,
      commitments: list.map((c) => ({
        identifier: c.identifier,
        hiding: fromHex(c.hiding),
        binding: fromHex(c.binding),
      })),
      shares: Object.fromEntries(list.map((c, i) => [c.identifier, fromHex(shares[i]!)])),
    });
  }

  return { signAuth, precommit, signOneReq, aggregate };
}
