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
import { assertKeyUsage, KEY_SPEC_REGISTRY, verifySignature } from '../../protocol/suites.ts';
import { type RequestedTweak, TAPROOT_TWEAK_MODES, type TaprootTweakMode } from '../../protocol/key-tweak.ts';
import { apiPublicKey, resolveForRecord, signForKey } from '../custody.ts';
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

type SignBody = { message: string; derivationPath?: string; taprootTweak?: TaprootTweakMode };

/** The audited facts of a sign request's tweak (absent fields at their defaults are left out). */
function requestedAudit(t: RequestedTweak): Record<string, unknown> {
  return {
    ...(t.derivationPath === undefined ? {} : { derivationPath: t.derivationPath }),
    ...(t.taprootTweak === undefined ? {} : { taprootTweak: t.taprootTweak }),
  };
}

export function signRoutes(app: KmsApp, ctx: AppContext): void {
  const maxMsg = ctx.config.limits.maxMessageBytes;

  // The signed request goes to every signer as it was signed (`auth`): each node checks that the
  // message it signs is the one in the signed body, and records its SHA-256.
  ctx.operations.set('Sign', async (r: OpRequest, params, body: SignBody) => {
    const message = Buffer.from(body.message, 'hex');
    r.audit.messageSha256 = bytesToHex(sha256(message));
    // Usually set already (the route's preHandler, an approved request's record).
    if (r.auth) r.audit.requestDigest ??= requestDigest(r.auth.request);
    // Issue 14: which key of the tree signs (each node resolves the signed path and tweak itself).
    const requested: RequestedTweak = {
      ...(body.derivationPath === undefined ? {} : { derivationPath: body.derivationPath }),
      ...(body.taprootTweak === undefined ? {} : { taprootTweak: body.taprootTweak }),
    };
    return { status: 200, body: await signWith(r, params.keyId!, message, requested) };
  });

  app.post<{ Params: { keyId: string }; Body: SignBody }>(
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
          properties: {
            message: hex(maxMsg, `message, hex (may be empty, at most ${maxMsg} bytes)`),
            derivationPath: {
              type: 'string',
              maxLength: 512,
              description:
                'sign with the non-hardened child key at this BIP32-style path, e.g. m/0/5 (secp256k1 and ' +
                'Ed25519 keys; hardened indices are refused: docs/custody.md); default m (the key itself)',
            },
            taprootTweak: {
              type: 'string',
              enum: [...TAPROOT_TWEAK_MODES],
              description:
                'FROST_SECP256K1_TR: keyPath (default) signs for the BIP341 output key (key-path spend; with ' +
                "the key's merkle root at m); none signs for the untweaked key (a tapscript leaf key, script-path spend)",
            },
          },
        },
        response: responses(200, {
          type: 'object',
          additionalProperties: false,
          required: ['keyId', 'signature', 'signers', 'epoch', 'excluded'],
          properties: {
            keyId: { type: 'string' },
            publicKey: {
              type: 'string',
              description:
                'the key the signature verifies under, hex (the child key at derivationPath; TR: x-only)',
            },
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

  async function signWith(req: OpRequest, keyId: string, message: Uint8Array, requested: RequestedTweak) {
    return underKey(ctx, req, keyId, 'sign', async (rec) => {
      const info = rec.epochInfo!;
      // An encryption key never signs (issue 15); each node refuses it too (node/signing.ts).
      assertKeyUsage(rec.keySpec, 'SIGN_VERIFY');
      // Refused (ValidationError) before the decision is audited: a hardened or malformed path, a
      // Taproot tweak on another suite, derivation on a key without custody data.
      const resolved = resolveForRecord(rec, requested);
      // Issue 17: the decision record takes its place in the chain now, before any node is asked,
      // and is written in one synced batch with the request's own record (app.ts onSend; for an
      // approved request operations.ts auditExecution), which the answer waits for: no signature
      // leaves before its decision is on disk, with one sync on its path instead of two, and one
      // whose decision cannot be written is not returned (that batch fails: 503 AuditWriteFailed).
      // Each signer audits the signed request itself before it releases its share.
      let unwritten: unknown;
      const decided = auditDecision(ctx, req, requestedAudit(requested), { defer: true });
      decided.catch((e: unknown) => {
        unwritten = e;
      });
      // A log that already failed a write refuses the record at once: no node is asked.
      if (!ctx.audit.writable) await decided;
      // Metrics, and the signature verified under the resolved key: coordinator/custody.ts.
      const result = await signForKey(ctx, req, rec, message, requested, resolved);
      // A decision that was not chained or failed its write meanwhile: no signature without it.
      if (unwritten !== undefined) throw unwritten;
      return {
        keyId: rec.keyId,
        publicKey: Buffer.from(result.publicKey).toString('hex'),
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
        // The API publicKey (TR: the output key, with the key's merkle root: coordinator/custody.ts).
        Buffer.from(apiPublicKey(rec)!, 'hex'),
      );
      return { valid };
    },
  );
}
