/**
 * Custody read routes (issue 14): a key's addresses and output descriptors, at the key itself or at
 * a non-hardened derivation path (docs/custody.md). Public data only, computed on the coordinator
 * from the key's record (group element, chain code, merkle root); nothing is asked of the nodes.
 * The public key at a path and its xpub are served by `GET /v1/keys/{id}/public-key`
 * (coordinator/routes/keys.ts), with the same functions (coordinator/custody.ts).
 */
import { ADDRESS_NETWORKS, type AddressNetwork, addressOf, descriptorOf } from '../custody.ts';
import { transition } from '../lifecycle.ts';
import { type AppContext, type KmsApp, visibleKey } from './context.ts';
import { bearer, keyIdParam, responses } from './schemas.ts';

/** `?path=`: checked by protocol/derivation.ts parsePath (hardened steps refused with the reason). */
export const pathQuery = {
  type: 'string',
  maxLength: 512,
  description:
    'non-hardened derivation path, e.g. m/0/5 (default: the key itself); hardened steps are refused: ' +
    'they need the whole private key, which exists nowhere',
};

export function custodyRoutes(app: KmsApp, ctx: AppContext): void {
  app.get<{ Params: { keyId: string }; Querystring: { network: AddressNetwork; path?: string } }>(
    '/v1/keys/:keyId/address',
    {
      config: { permission: 'keys:read', action: 'GetAddress' },
      schema: {
        summary: "The key's address: P2TR bech32m (FROST_SECP256K1_TR) or Solana base58 (FROST_ED25519)",
        description:
          'Bitcoin: the segwit v1 address of the BIP341 output key at the path (with the key merkle root ' +
          'at m; children are key-path only). Solana: the base58 Ed25519 public key at the path.',
        tags: ['custody'],
        security: bearer,
        params: keyIdParam,
        querystring: {
          type: 'object',
          additionalProperties: false,
          required: ['network'],
          properties: { network: { type: 'string', enum: [...ADDRESS_NETWORKS] }, path: pathQuery },
        },
        response: responses(200, {
          type: 'object',
          additionalProperties: false,
          required: ['address', 'network'],
          properties: {
            address: { type: 'string' },
            network: { type: 'string' },
            path: { type: 'string' },
          },
        }),
      },
    },
    async (req) => {
      const rec = await visibleKey(ctx, req, req.params.keyId);
      transition(rec.state, 'getPublicKey');
      return addressOf(rec, req.query.network, req.query.path);
    },
  );

  app.get<{
    Params: { keyId: string };
    Querystring: { path?: string; network?: string };
  }>(
    '/v1/keys/:keyId/descriptor',
    {
      config: { permission: 'keys:read', action: 'GetDescriptor' },
      schema: {
        summary: 'Output descriptor of a FROST_SECP256K1_TR key, with its BIP380 checksum',
        description:
          'tr(INTERNAL_KEY) for a key-path-only output (the key, or its child at path); rawtr(OUTPUT_KEY) ' +
          'for the key created with a merkleRoot (the service keeps the root, not the scripts); with a path ' +
          'ending in /* (e.g. m/0/*), tr(XPUB/0/*) for watch-only wallets. network picks xpub or tpub.',
        tags: ['custody'],
        security: bearer,
        params: keyIdParam,
        querystring: {
          type: 'object',
          additionalProperties: false,
          properties: {
            path: { ...pathQuery, description: `${pathQuery.description}; may end in /*` },
            network: { type: 'string', enum: ['bitcoin', 'testnet', 'signet', 'regtest'] },
          },
        },
        response: responses(200, {
          type: 'object',
          additionalProperties: false,
          required: ['keyId', 'descriptor'],
          properties: {
            keyId: { type: 'string' },
            descriptor: { type: 'string', description: 'BIP386 descriptor#checksum (BIP380)' },
            path: { type: 'string' },
            internalKey: { type: 'string', description: 'BIP341 internal key at the path, x-only hex' },
            outputKey: { type: 'string', description: 'BIP341 output key at the path, x-only hex' },
            xpub: { type: 'string', description: 'the root extended public key (tr(XPUB/.../*))' },
          },
        }),
      },
    },
    async (req) => {
      const rec = await visibleKey(ctx, req, req.params.keyId);
      transition(rec.state, 'getPublicKey');
      return { keyId: rec.keyId, ...descriptorOf(rec, req.query.path, req.query.network) };
    },
  );
}
