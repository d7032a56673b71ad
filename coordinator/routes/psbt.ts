/**
 * `POST /v1/keys/{keyId}/sign-psbt` (issue 14, item 4): signs a PSBT's inputs of a
 * FROST_SECP256K1_TR key. The coordinator parses the PSBT and computes each input's BIP341
 * signature hash (protocol/psbt.ts) only to drive the signing: the signed request goes to every
 * signer as it was signed, and each node finds the key's inputs and computes their hashes ITSELF
 * (node/psbt-binding.ts), signing only those, at the path of the input. One threshold signature
 * per input (coordinator/custody.ts signForKey: derivation path, key-path tweak); every signature
 * is verified under the input's output key before it goes into `tap_key_sig`. The decision record
 * carries the outputs (address, amount) and the fee, as every node's does.
 */
import { bytesToHex, fromHex } from '../../protocol/bytes.ts';
import { KmsError } from '../../protocol/errors.ts';
import {
  MAX_PSBT_SIGNED_INPUTS,
  type OwnedInput,
  type PsbtKey,
  SIGN_PSBT_BODY_SCHEMA,
  type SignPsbtBody,
  analyzePsbt,
  inputRequestedTweak,
  insertSignatures,
  parsePsbt,
  psbtFacts,
} from '../../protocol/psbt.ts';
import { formatPath } from '../../protocol/derivation.ts';
import { KEY_SPEC_REGISTRY } from '../../protocol/suites.ts';
import { recordCustody, signForKey } from '../custody.ts';
import type { KeyRecord } from '../key-store.ts';
import { type AppContext, type KmsApp, type OpRequest, auditDecision, underKey } from './context.ts';
import { runSigned } from './operations.ts';
import { blame, keyIdParam, responses, signed } from './schemas.ts';

/** The PSBT key of a record: its group element (the internal key) and custody data. */
function psbtKeyOf(rec: KeyRecord): PsbtKey {
  if (rec.keySpec !== 'FROST_SECP256K1_TR') {
    throw new KmsError(
      'ValidationError',
      `PSBT inputs are signed by FROST_SECP256K1_TR keys (BIP340/BIP341), not ${rec.keySpec}`,
    );
  }
  const custody = recordCustody(rec);
  return {
    spec: KEY_SPEC_REGISTRY[rec.keySpec],
    groupElement: fromHex(rec.epochInfo!.groupElement, 'group element'),
    ...(custody ? { chainCode: custody.chainCode } : {}),
    merkleRoot: custody?.merkleRoot ?? null,
  };
}

export function psbtRoutes(app: KmsApp, ctx: AppContext): void {
  ctx.operations.set('SignPsbt', async (r: OpRequest, params, body: SignPsbtBody) => ({
    status: 200,
    body: await signPsbt(r, params.keyId!, body),
  }));

  app.post<{ Params: { keyId: string }; Body: SignPsbtBody }>(
    '/v1/keys/:keyId/sign-psbt',
    {
      config: { signed: 'SignPsbt', action: 'SignPsbt' },
      schema: {
        summary:
          "Sign a PSBT's inputs of a Taproot key (key path, at any non-hardened path): every node computes the BIP341 hashes itself",
        tags: ['sign'],
        security: signed,
        params: keyIdParam,
        body: SIGN_PSBT_BODY_SCHEMA,
        response: responses(200, {
          type: 'object',
          additionalProperties: false,
          required: ['keyId', 'psbt', 'signedInputs', 'epoch', 'excluded'],
          properties: {
            keyId: { type: 'string' },
            psbt: {
              type: 'string',
              description: 'the PSBT with tap_key_sig set on the signed inputs, base64',
            },
            signedInputs: {
              type: 'array',
              description: 'the inputs of this key, each signed by one threshold signature',
              items: {
                type: 'object',
                additionalProperties: false,
                required: ['index', 'path', 'sighash', 'signers'],
                properties: {
                  index: { type: 'integer' },
                  path: {
                    type: 'string',
                    description: 'derivation path of the input key (m: the key itself)',
                  },
                  sighash: { type: 'string', description: 'the BIP341 signature hash signed, hex' },
                  signers: { type: 'array', items: { type: 'string' } },
                },
              },
            },
            epoch: { type: 'integer' },
            excluded: {
              type: 'array',
              items: blame,
              description: 'participants left out after a timeout or a bad share (any input)',
            },
          },
        }),
      },
    },
    async (req, reply) => runSigned(ctx, req, reply, 'SignPsbt', req.params, req.body),
  );

  async function signPsbt(r: OpRequest, keyId: string, body: SignPsbtBody) {
    return underKey(ctx, r, keyId, 'sign', async (rec) => {
      const tx = parsePsbt(body.psbt);
      const network = body.network ?? 'bitcoin';
      const analysis = analyzePsbt(tx, psbtKeyOf(rec), network);
      if (analysis.owned.length === 0) {
        throw new KmsError(
          'ValidationError',
          'PSBT: no input spends an output of this key (its witness_utxo is not the P2TR output of the ' +
            "key or of a child named by a tap_bip32_derivation with this key's fingerprint)",
        );
      }
      await auditDecision(ctx, r, { psbt: psbtFacts(analysis, network) });
      const sigs: { input: OwnedInput; signature: Uint8Array; signers: readonly string[] }[] = [];
      const excluded = new Map<string, { participant: string; reason: string; round?: string }>();
      // One after the other: each takes its own sessions (and retries) on the nodes, which bound the
      // shares of one signed request by its inputs (node/request-guard.ts sharesAllowed).
      for (const o of analysis.owned.slice(0, MAX_PSBT_SIGNED_INPUTS)) {
        const s = await signForKey(ctx, r, rec, o.sighash, inputRequestedTweak(o));
        sigs.push({ input: o, signature: s.signature, signers: s.signers });
        for (const b of s.excluded) {
          excluded.set(`${b.participant}/${b.reason}`, {
            participant: b.participant,
            reason: b.reason,
            ...(b.round === undefined ? {} : { round: b.round }),
          });
        }
      }
      const psbt = insertSignatures(tx, sigs);
      r.audit.signers = [...new Set(sigs.flatMap((s) => s.signers))];
      return {
        keyId: rec.keyId,
        psbt,
        signedInputs: sigs.map((s) => ({
          index: s.input.index,
          path: formatPath(s.input.path),
          sighash: bytesToHex(s.input.sighash),
          signers: [...s.signers],
        })),
        epoch: rec.epochInfo!.epoch,
        excluded: [...excluded.values()],
      };
    });
  }
}
