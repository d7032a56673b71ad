/**
 * Sign and verify. Signing runs under the key's queue (never against an epoch a reshare is
 * replacing); the cluster retries around unresponsive or lying members, and the answer and the
 * audit log name the excluded ones. Every signature is verified before it is returned, so a faulty
 * aggregation can never reach a client: by the cluster's aggregation (RFC 9591 §5.3, `verified`)
 * or else here with the suite's standard verifier.
 */
import { sha256 } from '@noble/hashes/sha2.js';
import { requestDigest } from '../../net/signed-request.ts';
import { bytesToHex } from '../../protocol/bytes.ts';
import { KmsError, ProtocolError } from '../../protocol/errors.ts';
import { assertKeyUsage, KEY_SPEC_REGISTRY, verifySignature } from '../../protocol/suites.ts';
import { transition } from '../lifecycle.ts';
import {
  type AppContext,
  type KmsApp,
  type OpRequest,
  auditDecision,
  underKey,
  visibleKey,
} from './context.ts';
import { runSigned } from './operations.ts';
import { bearer, blame, hex, keyIdParam, responses, signed } from './schemas.ts';

export function signRoutes(app: KmsApp, ctx: AppContext): void {
  const maxMsg = ctx.config.limits.maxMessageBytes;

  // The signed request goes to every signer as it was signed (`auth`): each node checks that the
  // message it signs is the one in the signed body, and records its SHA-256.
  ctx.operations.set('Sign', async (r: OpRequest, params, body: { message: string }) => {
    const message = Buffer.from(body.message, 'hex');
    r.audit.messageSha256 = bytesToHex(sha256(message));
    if (r.auth) r.audit.requestDigest = requestDigest(r.auth.request);
    return { status: 200, body: await signWith(r, params.keyId!, message) };
  });

  app.post<{ Params: { keyId: string }; Body: { message: string } }>(
    '/v1/keys/:keyId/sign',
    {
      config: { signed: 'Sign', action: 'Sign' },
      schema: {
        summary: "Sign a message with t of the key's participants (signed request; key id, not alias)",
        tags: ['sign'],
        security: signed,
        params: keyIdParam,
        body: {
          type: 'object',
          additionalProperties: false,
          required: ['message'],
          properties: { message: hex(maxMsg, `message, hex (may be empty, at most ${maxMsg} bytes)`) },
        },
        response: responses(200, {
          type: 'object',
          additionalProperties: false,
          required: ['keyId', 'signature', 'signers', 'epoch', 'excluded'],
          properties: {
            keyId: { type: 'string' },
            signature: { type: 'string', description: "the suite's standard encoding, hex" },
            signers: { type: 'array', items: { type: 'string' } },
            epoch: { type: 'integer' },
            excluded: {
              type: 'array',
              items: blame,
              description: 'participants left out after a timeout or a bad share',
            },
          },
        }),
      },
    },
    async (req, reply) => runSigned(ctx, req, reply, 'Sign', req.params, req.body),
  );

  async function signWith(req: OpRequest, keyId: string, message: Uint8Array) {
    return underKey(ctx, req, keyId, 'sign', async (rec) => {
      const info = rec.epochInfo!;
      // An encryption key never signs (issue 15); each node refuses it too (node/signing.ts).
      assertKeyUsage(rec.keySpec, 'SIGN_VERIFY');
      await auditDecision(ctx, req);
      const spec = KEY_SPEC_REGISTRY[rec.keySpec];
      const started = performance.now();
      let result: Awaited<ReturnType<typeof ctx.cluster.sign>>;
      try {
        result = await ctx.cluster.sign({ key: info, message, ...(req.auth ? { auth: req.auth } : {}) });
      } catch (e) {
        const code = e instanceof KmsError ? e.code : 'Internal';
        ctx.metrics.signDuration.observe(
          { key_spec: rec.keySpec, result: code },
          (performance.now() - started) / 1000,
        );
        ctx.metrics.sessions.inc({ operation: 'sign', outcome: code });
        throw e;
      }
      ctx.metrics.signDuration.observe(
        { key_spec: rec.keySpec, result: 'ok' },
        (performance.now() - started) / 1000,
      );
      req.audit.signers = result.signers;
      req.audit.culprits = result.excluded;
      for (const b of result.excluded) ctx.metrics.excludedParticipants.inc({ reason: b.reason });
      // Verified once: the real cluster's aggregation already checked it under the group key
      // (RFC 9591 §5.3, natively for Ed25519 and secp256k1-TR); any other Cluster is checked here.
      if (
        result.verified !== true &&
        !verifySignature(spec, message, result.signature, Buffer.from(info.publicKey, 'hex'))
      ) {
        ctx.metrics.sessions.inc({ operation: 'sign', outcome: 'InvalidSignature' });
        throw new ProtocolError(
          'ProtocolAborted',
          'the cluster produced a signature that does not verify; not returned',
        );
      }
      ctx.metrics.sessions.inc({ operation: 'sign', outcome: 'ok' });
      return {
        keyId: rec.keyId,
        signature: Buffer.from(result.signature).toString('hex'),
        signers: [...result.signers],
        epoch: info.epoch,
        excluded: result.excluded.map((b) => ({
          participant: b.participant,
          reason: b.reason,
          ...(b.round === undefined ? {} : { round: b.round }),
        })),
      };
    });
  }

  app.post<{ Params: { keyId: string }; Body: { message: string; signature: string } }>(
    '/v1/keys/:keyId/verify',
    {
      config: { permission: 'keys:verify', action: 'Verify' },
      schema: {
        summary: "Verify a signature under the key's public key (no quorum needed)",
        tags: ['sign'],
        security: bearer,
        params: keyIdParam,
        body: {
          type: 'object',
          additionalProperties: false,
          required: ['message', 'signature'],
          properties: {
            message: hex(maxMsg, 'message, hex'),
            signature: hex(1024, 'signature, hex'),
          },
        },
        response: responses(200, {
          type: 'object',
          additionalProperties: false,
          required: ['valid'],
          properties: { valid: { type: 'boolean' } },
        }),
      },
    },
    async (req) => {
      const rec = await visibleKey(ctx, req, req.params.keyId);
      transition(rec.state, 'verify');
      assertKeyUsage(rec.keySpec, 'SIGN_VERIFY');
      const info = rec.epochInfo!;
      req.audit.epoch = info.epoch;
      const valid = verifySignature(
        KEY_SPEC_REGISTRY[rec.keySpec],
        Buffer.from(req.body.message, 'hex'),
        Buffer.from(req.body.signature, 'hex'),
        Buffer.from(info.publicKey, 'hex'),
      );
      return { valid };
    },
  );
}
