/**
 * Signing on one node (RFC 9591 §5.1 and §5.2): round one makes a nonce pair held in memory only
 * (node/nonces.ts), round two uses it once. A key signs only in state Enabled, only with its
 * active epoch, and only once the coordinator confirmed its DKG (node/key-confirmation.ts).
 *
 * Only for a client-signed request this node verified and its policy allows (node/request-guard.ts),
 * checked BEFORE the nonce is made: the session remembers the authorized key, the SHA-256 of the
 * signed message and the request, and round two signs only that message, and only once per signed
 * request on this node (a coordinator cannot sign another message, nor get two shares from one
 * request by running two sessions).
 */
import { sha256 } from '@noble/hashes/sha2.js';
import { bytesToHex, fromHex, toHex } from '../protocol/bytes.ts';
import { KmsError, StateError, isKmsError } from '../protocol/errors.ts';
import { crashPoint } from '../common/crash-points.ts';
import type { CommitAnswer, RpcRequest, ShareAnswer } from '../net/rpc.ts';
import type { AuthorizationWire } from '../net/signed-request.ts';
import type { ActiveKey } from './active-keys.ts';
import { assertConfirmed } from './key-confirmation.ts';
import { assertKeyUsage } from '../protocol/suites.ts';
import type { NodeContext } from './node-context.ts';
import type { NonceTable } from './nonces.ts';
import type { Authorized } from './request-guard.ts';
import type { RequestedTweak, SigningTweak } from '../protocol/key-tweak.ts';
import { resolveSigningTweak } from './sign-tweak.ts';
import { psbtAllows } from './psbt-binding.ts';

/**
 * What a committed session may sign: the request the guard authorized at `sign-commit`, without
 * the message itself (its SHA-256 binds it), so an entry stays small.
 */
type Binding = {
  readonly keyId: string;
  readonly authorized: Omit<Authorized, 'message'>;
  readonly until: number;
};

/** Bound on remembered sessions (the nonce table refuses long before: node/nonces.ts). */
const MAX_BINDINGS = 100_000;
/** How long an unsigned session (test fixtures without signed requests) keeps its tweak: the nonce TTL's order. */
const TWEAK_TTL_MS = 120_000;
/** Expired entries (sessions whose round two never came) are swept every this many commits. */
const SWEEP_EVERY = 256;

export class Signing {
  readonly #c: NodeContext;
  readonly #nonces: NonceTable;
  /** sessionId -> the authorized request, kept with the session's nonce entry (until used or expired). */
  readonly #bindings = new Map<string, Binding>();
  /**
   * sessionId -> the key the session signs for (issue 14: derivation and Taproot tweak, resolved
   * at sign-commit by node/sign-tweak.ts from this node's custody data and the signed body).
   */
  readonly #tweaks = new Map<string, { tweak: SigningTweak | undefined; until: number }>();
  #commits = 0;

  constructor(ctx: NodeContext, nonces: NonceTable) {
    this.#c = ctx;
    this.#nonces = nonces;
  }

  #sweep(nowMs: number): void {
    for (const [sid, b] of this.#bindings) if (b.until <= nowMs) this.#bindings.delete(sid);
    for (const [sid, t] of this.#tweaks) if (t.until <= nowMs) this.#tweaks.delete(sid);
  }

  /** The key's active entry if it may sign with `epoch` now (also for one-round signing: node/sign-one.ts). */
  signable(keyId: string, epoch: number): Promise<ActiveKey> {
    return this.#signable(keyId, epoch);
  }

  async #signable(keyId: string, epoch: number): Promise<ActiveKey> {
    if (!this.#c.keys.has(keyId)) {
      const k = await this.#c.store.getKey(keyId);
      if (!k) throw new KmsError('KeyNotFound', `no share of ${keyId} on ${this.#c.cfg.nodeId}`);
      // Checked before unsealing: a node restored from an old backup refuses without touching a
      // share whose HSM key may be gone (F-34).
      if (k.state === 'Enabled' && k.activeEpoch !== undefined && k.activeEpoch !== epoch) {
        throw new StateError(
          'EpochMismatch',
          `signing asked for epoch ${epoch}, active epoch is ${k.activeEpoch}`,
        );
      }
      if (k.state !== 'Enabled') throw new StateError('InvalidKeyState', `key ${keyId} is ${k.state}`);
      assertConfirmed(k);
    }
    const a = await this.#c.keys.active(keyId);
    // An encryption key (TDH2_RISTRETTO255) never makes a nonce nor a signature share (issue 15).
    assertKeyUsage(a.spec.name, 'SIGN_VERIFY');
    if (a.state !== 'Enabled') throw new StateError('InvalidKeyState', `key ${keyId} is ${a.state}`);
    assertConfirmed({ keyId, unconfirmed: a.unconfirmed });
    if (a.record.epoch !== epoch) {
      throw new StateError(
        'EpochMismatch',
        `signing asked for epoch ${epoch}, active epoch is ${a.record.epoch}`,
      );
    }
    return a;
  }

  async commit(
    sessionId: string,
    keyId: string,
    epoch: number,
    auth?: AuthorizationWire,
    tweak?: RequestedTweak,
  ): Promise<CommitAnswer> {
    if (this.#bindings.has(sessionId)) {
      throw new KmsError('Conflict', `signing session ${sessionId} already committed on this node`);
    }
    // The tweak goes to the guard too: a SignPsbt session may sign the inputs at its path only.
    const authorized = await this.#c.guard.authorize(
      { rpc: 'sign-commit', keyId, ...(tweak ? { tweak } : {}) },
      auth,
    );
    const { key, spec } = await this.#signable(keyId, epoch);
    // Issue 14: which key of the tree signs, from this node's custody data and the SIGNED path and
    // tweak (the coordinator's must equal them), refused before any nonce is made.
    const signingTweak = await resolveSigningTweak(
      this.#c.store,
      spec,
      keyId,
      tweak,
      authorized
        ? {
            tweak: authorized.tweak ?? {},
            refuse: (reason) =>
              this.#c.guard.refused({
                rpc: 'sign-commit',
                operation: authorized.operation,
                keyId,
                sessionId,
                messageSha256: authorized.messageSha256,
                initiator: authorized.initiator,
                requestDigest: authorized.requestDigest,
                reason,
              }),
          }
        : undefined,
    );
    const nowMs = this.#c.guard.nowMs();
    if (authorized) {
      if (++this.#commits % SWEEP_EVERY === 0 || this.#bindings.size >= MAX_BINDINGS) this.#sweep(nowMs);
      if (this.#bindings.size >= MAX_BINDINGS)
        throw new KmsError('Overloaded', 'too many open signing sessions');
    }
    if (this.#tweaks.size >= MAX_BINDINGS) this.#sweep(nowMs);
    if (this.#tweaks.size >= MAX_BINDINGS) throw new KmsError('Overloaded', 'too many open signing sessions');
    const commitments = this.#nonces.commit(spec, sessionId, keyId, epoch, key);
    this.#tweaks.set(sessionId, {
      tweak: signingTweak,
      until: authorized ? authorized.expires * 1000 : nowMs + TWEAK_TTL_MS,
    });
    if (authorized) {
      // Kept no longer than the signed request is valid: its share is refused after that anyway.
      const { message: _message, ...kept } = authorized;
      this.#bindings.set(sessionId, { keyId, authorized: kept, until: authorized.expires * 1000 });
    }
    crashPoint('sign.commit.sent');
    return {
      identifier: commitments.identifier,
      hiding: toHex(commitments.hiding),
      binding: toHex(commitments.binding),
    };
  }

  async share(req: Extract<RpcRequest, { op: 'sign-share' }>): Promise<ShareAnswer> {
    const binding = this.#bindings.get(req.sessionId);
    this.#bindings.delete(req.sessionId);
    const tweak = this.#tweaks.get(req.sessionId);
    this.#tweaks.delete(req.sessionId);
    if (binding) await this.#checkBinding(binding, req);
    else if (this.#c.guard.required) {
      await this.#c.guard.refused({
        rpc: 'sign-share',
        operation: 'Sign',
        keyId: req.keyId,
        sessionId: req.sessionId,
        messageSha256: bytesToHex(sha256(fromHex(req.message, 'message'))),
        reason: 'no signing session authorized at sign-commit',
      });
      throw new StateError(
        'NonceReused',
        `no authorized signing session ${req.sessionId} on this node (expired, used or unknown)`,
      );
    }
    const { key, spec } = await this.#signable(req.keyId, req.epoch);
    const share = this.#nonces.sign(spec, req.sessionId, req.keyId, req.epoch, key, {
      message: fromHex(req.message, 'message'),
      commitments: req.commitments.map((c) => ({
        identifier: c.identifier,
        hiding: fromHex(c.hiding, 'hiding commitment'),
        binding: fromHex(c.binding, 'binding commitment'),
      })),
      ...(tweak ? { tweak: tweak.tweak } : {}),
    });
    crashPoint('sign.share.sent');
    return { share: toHex(share) };
  }

  /**
   * `sign-review`: a signing request waiting for approvals is verified now and its time kept, so
   * the approvals may come later than the initiator's signature lives (node/request-guard.ts).
   * Nothing is signed and no nonce is made; a request that needs no approvals is left unused.
   */
  async review(req: Extract<RpcRequest, { op: 'sign-review' }>): Promise<{ ok: true }> {
    try {
      await this.#c.guard.authorize({ rpc: 'sign-commit', keyId: req.keyId }, req.auth, { review: true });
    } catch (e) {
      if (!(isKmsError(e) && e.code === 'PolicyDenied' && e.details?.['pending'] === true)) throw e;
    }
    return { ok: true };
  }

  /** `sign-abort`: the attempt is abandoned; its nonce is discarded unused (node/nonces.ts). */
  abort(sessionId: string): { ok: true; already?: true } {
    this.#bindings.delete(sessionId);
    this.#tweaks.delete(sessionId);
    return this.#nonces.release(sessionId) ? { ok: true } : { ok: true, already: true };
  }

  /** Round two signs exactly the authorized message of the authorized key, once per request. */
  async #checkBinding(b: Binding, req: Extract<RpcRequest, { op: 'sign-share' }>): Promise<void> {
    const a = b.authorized;
    const messageSha256 = bytesToHex(sha256(fromHex(req.message, 'message')));
    const refuse = async (reason: string): Promise<never> => {
      await this.#c.guard.refused({
        rpc: 'sign-share',
        operation: 'Sign',
        keyId: req.keyId,
        sessionId: req.sessionId,
        messageSha256,
        initiator: a.initiator,
        requestDigest: a.requestDigest,
        reason,
      });
      throw new KmsError('Unauthorized', reason);
    };
    if (req.keyId !== b.keyId) await refuse(`the session was authorized for key ${b.keyId}`);
    // SignPsbt (issue 14): a signature hash of one of the PSBT's inputs at the session's path,
    // as this node computed it from the PSBT (node/psbt-binding.ts).
    if (messageSha256 !== a.messageSha256 && !psbtAllows(a.psbt, messageSha256)) {
      await refuse(
        a.psbt
          ? "the message is not a signature hash of the PSBT's inputs at this path"
          : 'the message differs from the signed one',
      );
    }
    await this.#c.guard.shareOnce(a, req.sessionId, messageSha256);
  }
}
