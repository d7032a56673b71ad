/**
 * Backup, restore and import (issue 16; docs/api.md "Backup, restore and import"). Every route is a
 * client-signed request that each node checks itself, with the admin quorum (node/backup.ts,
 * node/restore.ts); the coordinator carries it (coordinator/backups.ts). There is no route that
 * exports a share or a key, and there never will be: a key leaves the nodes only as a backup
 * sealed to k-of-m recovery officers.
 */
import { base64 } from '@scure/base';
import { fromHex } from '../../protocol/bytes.ts';
import { KmsError, StateError } from '../../protocol/errors.ts';
import { bundleCustody, decodeBundle, verifyBundle } from '../../protocol/officer-backup.ts';
import { isKeySpecName, KEY_SPEC_REGISTRY, type KeySpecName, keySpec } from '../../protocol/suites.ts';
import { outputPublicKey } from '../../protocol/key-tweak.ts';
import type { BackupCourier } from '../backups.ts';
import { custodyFields } from '../custody.ts';
import { type KeyOrigin, type KeyRecord, KEY_ID_RE, keyView } from '../key-store.ts';
import { type AppContext, auditDecision, type KmsApp, type OpRequest, visibleKey } from './context.ts';
import { runSigned } from './operations.ts';
import { ALIAS, keyIdParam, keyObject, nodeId, responses, signed } from './schemas.ts';

type BackupBody = { officers: { name: string; publicKey: string }[]; threshold: number };
type DealingWire = { dealer: string; commitments: string[]; ciphertexts: Record<string, string> };
type ExternalBody = {
  sessionId: string;
  threshold: number;
  participants: string[];
  dealings: DealingWire[];
};
type RestoreBody = ExternalBody & { bundle: string; epoch: number };
type ImportBody = ExternalBody & {
  keyId: string;
  keySpec: KeySpecName;
  groupElement: string;
  alias?: string;
  description?: string;
  taprootInternal?: boolean;
};

const hexString = (max: number) => ({ type: 'string', pattern: '^(?:[0-9a-f]{2})*$', maxLength: max });
const dealings = {
  type: 'array',
  minItems: 1,
  maxItems: 32,
  items: {
    type: 'object',
    additionalProperties: false,
    required: ['dealer', 'commitments', 'ciphertexts'],
    properties: {
      dealer: hexString(114),
      commitments: { type: 'array', maxItems: 256, items: hexString(300) },
      ciphertexts: {
        type: 'object',
        maxProperties: 256,
        propertyNames: { pattern: '^node-[1-9][0-9]{0,3}$' },
        additionalProperties: hexString(1024),
      },
    },
  },
};
const external = {
  sessionId: { type: 'string', pattern: '^[A-Za-z0-9._:-]{1,128}$' },
  threshold: { type: 'integer', minimum: 2, maximum: 256 },
  participants: { type: 'array', minItems: 2, maxItems: 256, uniqueItems: true, items: nodeId },
  dealings,
};
const backupAnswer = {
  type: 'object',
  additionalProperties: false,
  required: ['keyId', 'bundleId', 'epoch', 'officers', 'threshold', 'bundle'],
  properties: {
    keyId: { type: 'string' },
    bundleId: { type: 'string' },
    epoch: { type: 'integer' },
    officers: { type: 'array', items: { type: 'string' } },
    threshold: { type: 'integer' },
    bundle: { type: 'string', description: 'the backup file (docs/backup-format.md), base64' },
  },
};

function courier(ctx: AppContext): BackupCourier {
  const c = ctx.cluster.backups;
  if (!c) throw new KmsError('ValidationError', 'this cluster does not support backups');
  return c;
}

export function backupRoutes(app: KmsApp, ctx: AppContext): void {
  ctx.operations.set('CreateBackup', async (req, params, body: BackupBody) => {
    const first = await visibleKey(ctx, req, params.keyId!);
    const out = await ctx.queue.run(
      first.keyId,
      async () => {
        const rec = await ctx.keys.get(first.keyId);
        if (!rec?.epochInfo) throw new StateError('KeyNotFound', `key ${first.keyId} has no epoch`);
        if (rec.state !== 'Enabled' && rec.state !== 'Disabled')
          throw new StateError('InvalidKeyState', `key ${rec.keyId} is ${rec.state}: no backup`);
        req.audit.epoch = rec.epochInfo.epoch;
        req.audit.participants = rec.epochInfo.participants;
        await auditDecision(ctx, req, {
          officers: body.officers.map((o) => o.name),
          officerThreshold: body.threshold,
        });
        const metadata: Record<string, string> = {
          origin: rec.origin ?? 'THRESHOLD_DKG',
          createdAt: rec.createdAt,
          ...(rec.alias === null ? {} : { alias: rec.alias }),
          ...(rec.description === undefined ? {} : { description: rec.description }),
          ...(rec.chainCode === undefined ? {} : { chainCode: rec.chainCode }),
          ...(rec.merkleRoot ? { merkleRoot: rec.merkleRoot } : {}),
        };
        return courier(ctx).backup({
          key: rec.epochInfo,
          officerSet: body,
          metadata,
          ...(req.auth ? { auth: req.auth } : {}),
        });
      },
      'shared',
    );
    return {
      status: 201,
      body: {
        keyId: first.keyId,
        bundleId: out.bundleId,
        epoch: out.epoch,
        officers: body.officers.map((o) => o.name),
        threshold: body.threshold,
        bundle: base64.encode(out.bundle),
      },
    };
  });

  /** A new key record for a restore or import, committed only if the nodes commit the key. */
  async function bringIn(
    req: OpRequest,
    rec: KeyRecord,
    facts: Parameters<BackupCourier['external']>[0],
  ): Promise<ReturnType<typeof keyView>> {
    if (await ctx.keys.get(rec.keyId))
      throw new StateError(
        'Conflict',
        `key ${rec.keyId} already exists here: restore into a cluster without it`,
      );
    req.audit.keyId = rec.keyId;
    req.audit.participants = facts.participants;
    await auditDecision(ctx, req, { origin: rec.origin, kind: facts.kind, keySpec: rec.keySpec });
    await ctx.keys.create(rec);
    const done = await ctx.queue.run(rec.keyId, async () => {
      try {
        const info = await courier(ctx).external(facts);
        const next: KeyRecord = {
          ...rec,
          state: 'Enabled',
          epochInfo: info,
          // Issue 14: an import's chain code is the one every member computed over the transcript
          // they all confirmed (node/restore.ts dkgCustody), as after a DKG; no merkle root.
          ...(facts.kind === 'import' ? custodyFields(keySpec(rec.keySpec), info, null) : {}),
        };
        await ctx.keys.put(next);
        req.audit.epoch = info.epoch;
        return next;
      } catch (e) {
        await ctx.keys.releaseAlias(rec, null).catch(() => undefined);
        throw e;
      }
    });
    return keyView(done);
  }

  ctx.operations.set('RestoreKey', async (req, params, body: RestoreBody) => {
    const keyId = params.keyId!;
    let bundle: ReturnType<typeof decodeBundle>;
    try {
      bundle = decodeBundle(base64.decode(body.bundle));
    } catch (e) {
      throw new KmsError('ValidationError', `bundle: ${(e as Error).message}`);
    }
    const problems = verifyBundle(bundle, { keyId });
    if (problems.length > 0)
      throw new KmsError(
        'ValidationError',
        `the backup does not verify: ${problems.map((p) => `${p.part}: ${p.reason}`).join('; ')}`,
      );
    const b = bundle.body;
    const meta = b.metadata;
    const custody = bundleCustody(b);
    const alias = meta['alias'] && new RegExp(ALIAS).test(meta['alias']) ? meta['alias'] : null;
    const origin: KeyOrigin = meta['origin'] === 'IMPORTED' ? 'IMPORTED' : 'THRESHOLD_DKG';
    const rec: KeyRecord = {
      keyId,
      alias: alias !== null && (await ctx.keys.resolve(alias).catch(() => undefined)) ? null : alias,
      keySpec: b.keySpec,
      keyUsage: KEY_SPEC_REGISTRY[b.keySpec].usage,
      state: 'Creating',
      createdAt: meta['createdAt'] ?? new Date(ctx.clock.now()).toISOString(),
      threshold: body.threshold,
      participants: body.participants,
      epochInfo: null,
      origin,
      ...(meta['description'] === undefined ? {} : { description: meta['description'] }),
      // Issue 14: the custody data the verified bundle carries (signed by every dealer, stored by
      // every new member too), so the key derives the same addresses, xpub and descriptor as before.
      ...(custody === undefined ? {} : { chainCode: custody.chainCode, merkleRoot: custody.merkleRoot }),
    };
    const view = await bringIn(req, rec, {
      kind: 'restore',
      keyId,
      keySpec: b.keySpec,
      groupElement: Buffer.from(b.groupElement).toString('hex'),
      epoch: body.epoch,
      threshold: body.threshold,
      participants: body.participants,
      sessionId: body.sessionId,
      ...(req.auth ? { auth: req.auth } : {}),
    });
    return { status: 201, body: view };
  });

  ctx.operations.set('ImportKey', async (req, _params, body: ImportBody) => {
    if (!KEY_ID_RE.test(body.keyId))
      throw new KmsError('ValidationError', 'keyId must be a UUID (lowercase)');
    if (!isKeySpecName(body.keySpec)) throw new KmsError('ValidationError', 'keySpec is not a key spec');
    const spec = keySpec(body.keySpec);
    if (spec.name !== 'FROST_ED25519' && spec.name !== 'FROST_SECP256K1_TR')
      throw new KmsError('ValidationError', 'import supports FROST_ED25519 and FROST_SECP256K1_TR keys');
    // Checked again by every node; here so that a bad request is refused before anything is sent.
    outputPublicKey(spec, fromHex(body.groupElement));
    const rec: KeyRecord = {
      keyId: body.keyId,
      alias: body.alias ?? null,
      keySpec: body.keySpec,
      keyUsage: KEY_SPEC_REGISTRY[body.keySpec].usage,
      state: 'Creating',
      createdAt: new Date(ctx.clock.now()).toISOString(),
      threshold: body.threshold,
      participants: body.participants,
      epochInfo: null,
      origin: 'IMPORTED',
      ...(body.description === undefined ? {} : { description: body.description }),
    };
    const view = await bringIn(req, rec, {
      kind: 'import',
      keyId: body.keyId,
      keySpec: body.keySpec,
      groupElement: body.groupElement,
      epoch: 0,
      threshold: body.threshold,
      participants: body.participants,
      sessionId: body.sessionId,
      ...(req.auth ? { auth: req.auth } : {}),
    });
    return { status: 201, body: view };
  });

  app.post<{ Params: { keyId: string }; Body: BackupBody }>(
    '/v1/keys/:keyId/backups',
    {
      config: { signed: 'CreateBackup', action: 'CreateBackup' },
      schema: {
        summary: 'Back the key up to k-of-m recovery officers (the committee deals; signed, admin quorum)',
        tags: ['backup'],
        security: signed,
        params: keyIdParam,
        body: {
          type: 'object',
          additionalProperties: false,
          required: ['officers', 'threshold'],
          properties: {
            officers: {
              type: 'array',
              minItems: 2,
              maxItems: 32,
              items: {
                type: 'object',
                additionalProperties: false,
                required: ['name', 'publicKey'],
                properties: {
                  name: { type: 'string', pattern: '^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$' },
                  publicKey: { type: 'string', pattern: '^[0-9a-f]{64}$' },
                },
              },
            },
            threshold: { type: 'integer', minimum: 2, maximum: 32 },
          },
        },
        response: responses(201, backupAnswer),
      },
    },
    async (req, reply) => runSigned(ctx, req, reply, 'CreateBackup', req.params, req.body),
  );

  app.post<{ Params: { keyId: string }; Body: RestoreBody }>(
    '/v1/keys/:keyId/restore',
    {
      config: { signed: 'RestoreKey', action: 'RestoreKey' },
      schema: {
        summary: 'Restore a key from k officers’ dealings to a new committee (signed, admin quorum)',
        tags: ['backup'],
        security: signed,
        params: keyIdParam,
        body: {
          type: 'object',
          additionalProperties: false,
          required: ['bundle', 'epoch', ...Object.keys(external)],
          properties: {
            bundle: { type: 'string', pattern: '^[A-Za-z0-9+/]*={0,2}$', maxLength: 1_400_000 },
            epoch: { type: 'integer', minimum: 1, maximum: 2 ** 31 },
            ...external,
          },
        },
        response: responses(201, keyObject),
      },
    },
    async (req, reply) => runSigned(ctx, req, reply, 'RestoreKey', req.params, req.body),
  );

  app.post<{ Body: ImportBody }>(
    '/v1/keys/import',
    {
      config: { signed: 'ImportKey', action: 'ImportKey' },
      schema: {
        summary: 'Import an external key, split by the client and dealt to the nodes (signed, admin quorum)',
        tags: ['backup'],
        security: signed,
        body: {
          type: 'object',
          additionalProperties: false,
          required: ['keyId', 'keySpec', 'groupElement', ...Object.keys(external)],
          properties: {
            keyId: {
              type: 'string',
              pattern: '^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$',
            },
            keySpec: { type: 'string', enum: ['FROST_ED25519', 'FROST_SECP256K1_TR'] },
            groupElement: hexString(66),
            alias: { type: 'string', pattern: ALIAS },
            description: { type: 'string', maxLength: 1024 },
            taprootInternal: { type: 'boolean' },
            ...external,
          },
        },
        response: responses(201, keyObject),
      },
    },
    async (req, reply) => runSigned(ctx, req, reply, 'ImportKey', {}, req.body),
  );
}
