/**
 * One-round online signing on one node (issue 17; RFC 9591 §5.1 round one ahead of time, §5.2
 * round two). `sign-precommit` fills this node's pool for a key (node/nonce-pool.ts) and answers
 * the commitments; `sign-one` carries the client-signed request, the message and the commitment
 * list, and answers this node's share (and new commitments, so the coordinator's cache refills
 * without another round trip).
 *
 * The order is the point: the nonce behind this node's entry of the list is taken out of the pool
 * first, synchronously, before anything is awaited; only then is the request verified (the same
 * node-side check as two-round signing, node/request-guard.ts: signature, replay, policy, at most
 * MAX_SHARES_PER_SIGN_REQUEST shares per signed request, one audit record for the decision and
 * the share) and the share computed. A commitment is thus used at most once, whoever presents
 * it and however often; one that is unknown (never published, used, discarded, or published before
 * a restart) is refused with NonceReused, and the coordinator signs in two rounds instead.
 */
import { sha256 } from '@noble/hashes/sha2.js';
import { bytesToHex, fromHex, toHex } from '../protocol/bytes.ts';
import { KmsError, StateError } from '../protocol/errors.ts';
import { crashPoint } from '../common/crash-points.ts';
import type { Epoch, ParticipantId } from '../protocol/ids.ts';
import { resolveSigningTweak } from './sign-tweak.ts';
import { signerSign } from '../protocol/sign.ts';
import type { RpcRequest, PrecommitAnswer, SignOneAnswer } from '../net/rpc.ts';
import type { ActiveKey } from './active-keys.ts';
import type { NodeContext } from './node-context.ts';
import type { NoncePool } from './nonce-pool.ts';
import { psbtAllows } from './psbt-binding.ts';

type SignOne = Extract<RpcRequest, { op: 'sign-one' }>;

export class OneRoundSigning {
  readonly #c: NodeContext;
  readonly #pool: NoncePool;
  readonly #signable: (keyId: string, epoch: number) => Promise<ActiveKey>;

  constructor(
    ctx: NodeContext,
    pool: NoncePool,
    signable: (keyId: string, epoch: number) => Promise<ActiveKey>,
  ) {
    this.#c = ctx;
    this.#pool = pool;
    this.#signable = signable;
  }

  /** `sign-precommit`: `count` new commitments for the key's active epoch (only a key that may sign). */
  async precommit(req: Extract<RpcRequest, { op: 'sign-precommit' }>): Promise<PrecommitAnswer> {
    const a = await this.#signable(req.keyId, req.epoch);
    const made = this.#pool.generate(req.keyId, a, req.count);
    return {
      identifier: this.#pool.identifierOf(req.keyId) ?? '',
      commitments: made.map((c) => ({ hiding: toHex(c.hiding), binding: toHex(c.binding) })),
    };
  }

  /** `sign-one`: takes the nonce out, then verifies, then signs (see the file comment). */
  async signOne(req: SignOne): Promise<SignOneAnswer> {
    // Synchronous up to the take: no other request can reach this nonce meanwhile.
    const me = this.#pool.identifierOf(req.keyId);
    const own = me === undefined ? undefined : req.commitments.find((c) => c.identifier === me);
    const taken =
      own === undefined
        ? undefined
        : this.#pool.take(
            req.keyId,
            req.epoch,
            fromHex(own.hiding, 'hiding'),
            fromHex(own.binding, 'binding'),
          );
    const message = fromHex(req.message, 'message');
    if (taken === undefined) {
      await this.#c.guard.refused({
        rpc: 'sign-one',
        operation: 'Sign',
        keyId: req.keyId,
        sessionId: req.sessionId,
        messageSha256: bytesToHex(sha256(message)),
        reason:
          'commitment not in this node’s pool (never published, used, discarded or from before a restart)',
      });
      throw new StateError(
        'NonceReused',
        `no unused pre-published commitment of this node for ${req.keyId} epoch ${req.epoch}`,
      );
    }
    crashPoint('sign.one.taken');
    try {
      const authorized = await this.#c.guard.authorize({ rpc: 'sign-commit', keyId: req.keyId }, req.auth, {
        share: { sessionId: req.sessionId },
      });
      if (authorized === undefined && this.#c.guard.required) {
        throw new KmsError('Unauthorized', 'a client-signed request is required');
      }
      // SignPsbt (issue 14): one of the hashes this node computed for the PSBT's inputs at `m` (a
      // one-round request carries no tweak: the key itself, key path; node/psbt-binding.ts).
      const sha = bytesToHex(sha256(message));
      if (authorized && sha !== authorized.messageSha256 && !psbtAllows(authorized.psbt, sha)) {
        const reason = authorized.psbt
          ? "the message is not a signature hash of the PSBT's inputs at this path"
          : 'the message differs from the signed one';
        await this.#c.guard.refused({
          rpc: 'sign-one',
          operation: 'Sign',
          keyId: req.keyId,
          sessionId: req.sessionId,
          initiator: authorized.initiator,
          requestDigest: authorized.requestDigest,
          reason,
        });
        throw new KmsError('Unauthorized', reason);
      }
      const a = await this.#signable(req.keyId, req.epoch);
      // The pool's entry of the key must still be the active one (a state or epoch change drops
      // it: node/active-keys.ts), so a nonce never outlives the key state it was made under.
      if (a !== taken.owner) {
        this.#pool.drop(req.keyId);
        throw new StateError('NonceReused', `the key ${req.keyId} changed since this commitment was made`);
      }
      // Issue 14: a one-round request names no tweak, so the signed body must ask for none (no
      // derivation path, key path; else Unauthorized): the key itself, with its own stored merkle
      // root for a Taproot key created with one (node/sign-tweak.ts), never another key.
      const tweak = await resolveSigningTweak(
        this.#c.store,
        a.spec,
        req.keyId,
        undefined,
        authorized
          ? {
              tweak: authorized.tweak ?? {},
              refuse: (reason) =>
                this.#c.guard.refused({
                  rpc: 'sign-one',
                  operation: authorized.operation,
                  keyId: req.keyId,
                  sessionId: req.sessionId,
                  messageSha256: authorized.messageSha256,
                  initiator: authorized.initiator,
                  requestDigest: authorized.requestDigest,
                  reason,
                }),
            }
          : undefined,
      );
      const { share, groupCommitment } = signerSign(taken.state, {
        message,
        tweak,
        commitments: req.commitments.map((c) => ({
          identifier: c.identifier as ParticipantId,
          hiding: fromHex(c.hiding, 'hiding commitment'),
          binding: fromHex(c.binding, 'binding commitment'),
          epoch: req.epoch as Epoch,
        })),
      });
      const refill = req.refill ? this.#pool.generate(req.keyId, a, req.refill) : [];
      crashPoint('sign.one.sent');
      return {
        share: toHex(share),
        // R as this signer computed it for its share (fast paths): the coordinator may form the
        // signature from it, verified under the key before it leaves (threshold-signer.ts).
        ...(groupCommitment ? { groupCommitment: toHex(groupCommitment) } : {}),
        ...(refill.length > 0
          ? { commitments: refill.map((c) => ({ hiding: toHex(c.hiding), binding: toHex(c.binding) })) }
          : {}),
      };
    } finally {
      // Used or not, this nonce is gone (signerSign zeroes it too).
      taken.state.nonces.hiding.fill(0);
      taken.state.nonces.binding.fill(0);
    }
  }
}
