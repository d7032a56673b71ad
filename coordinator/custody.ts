/**
 * Custody on the coordinator (issue 14): what a key's record says about its Taproot keys and its
 * derivation tree, and threshold signing for a key of that tree. The coordinator holds public data
 * only (the chain code and merkle root are public to it, as the group key is); it never supplies a
 * tweak to the nodes: each signer resolves the client-signed path and tweak itself
 * (node/sign-tweak.ts), and this side only aggregates for the key it resolved the same way.
 */
import { fromHex, toHex } from '../protocol/bytes.ts';
import { chainCodeFor } from '../protocol/derivation.ts';
import { KmsError, ProtocolError } from '../protocol/errors.ts';
import {
  type CustodyData,
  type RequestedTweak,
  type SigningTweak,
  signingPublicKey,
  signingTweakFor,
  taprootKeys,
} from '../protocol/key-tweak.ts';
import { KEY_SPEC_REGISTRY, type KeySpec, verifySignature } from '../protocol/suites.ts';
import type { EpochInfo, SignResult } from './cluster.ts';
import type { KeyRecord } from './key-store.ts';
import type { AppContext, OpRequest } from './routes/context.ts';

/** The API's `taproot` field of a FROST_SECP256K1_TR key: x-only hex, merkleRoot null = key path only. */
export type TaprootView = { internalKey: string; outputKey: string; merkleRoot: string | null };

/** The record's custody data; undefined for keys created before it existed (and while Creating). */
export function recordCustody(rec: Pick<KeyRecord, 'chainCode' | 'merkleRoot'>): CustodyData | undefined {
  if (rec.chainCode === undefined) return undefined;
  return {
    chainCode: fromHex(rec.chainCode, 'chain code', 32),
    merkleRoot: rec.merkleRoot ? fromHex(rec.merkleRoot, 'merkle root', 32) : null,
  };
}

/** The custody fields a new key's record keeps, from the DKG's outcome (same as every member's). */
export function custodyFields(
  keySpec: KeySpec,
  info: Pick<EpochInfo, 'groupElement' | 'transcriptHash'>,
  merkleRoot: string | null,
): { chainCode: string; merkleRoot: string | null } {
  const chainCode = chainCodeFor(keySpec, fromHex(info.groupElement), fromHex(info.transcriptHash));
  return { chainCode: toHex(chainCode), merkleRoot: merkleRoot === null ? null : merkleRoot.toLowerCase() };
}

/** `taproot` of a key view: FROST_SECP256K1_TR keys with custody data only. */
export function taprootView(rec: KeyRecord): TaprootView | undefined {
  const custody = recordCustody(rec);
  if (rec.keySpec !== 'FROST_SECP256K1_TR' || !custody || !rec.epochInfo) return undefined;
  const t = taprootKeys(
    KEY_SPEC_REGISTRY[rec.keySpec],
    fromHex(rec.epochInfo.groupElement),
    custody.merkleRoot,
  );
  return {
    internalKey: toHex(t.internalKey),
    outputKey: toHex(t.outputKey),
    merkleRoot: t.merkleRoot === null ? null : toHex(t.merkleRoot),
  };
}

/**
 * The API `publicKey`: what a sign request with no path and no tweak verifies under (for
 * FROST_SECP256K1_TR the BIP341 output key, with the key's merkle root if it has one).
 */
export function apiPublicKey(rec: KeyRecord): string | null {
  const info = rec.epochInfo;
  if (!info) return null;
  return rec.keySpec === 'FROST_SECP256K1_TR' && rec.merkleRoot
    ? taprootView(rec)!.outputKey
    : info.publicKey;
}

/** What a request signs with, resolved from the record: the tweak and the key it verifies under. */
export function resolveForRecord(
  rec: KeyRecord,
  requested: RequestedTweak,
): { signing: SigningTweak | undefined; publicKey: Uint8Array } {
  const spec = KEY_SPEC_REGISTRY[rec.keySpec];
  const signing = signingTweakFor(spec, recordCustody(rec), requested);
  return { signing, publicKey: signingPublicKey(spec, fromHex(rec.epochInfo!.groupElement), signing) };
}

/** No derivation, no Taproot tweak asked, no merkle root: what every signer does by default. */
function plainRequest(rec: KeyRecord, requested: RequestedTweak): boolean {
  const path = requested.derivationPath;
  return (
    (path === undefined || path === 'm') &&
    (requested.taprootTweak === undefined || requested.taprootTweak === 'keyPath') &&
    !rec.merkleRoot
  );
}

export type KeySignature = SignResult & {
  /** The key the signature verifies under, in the suite's API encoding (TR: x-only output or leaf key). */
  readonly publicKey: Uint8Array;
};

/**
 * Threshold signing of `message` for key `rec` at `requested` (path and Taproot tweak) under the
 * signed request `req.auth`: run inside `underKey(..., 'sign', ...)` after the decision is audited.
 * Each node checks the message, path and tweak against the signed body itself (for a PSBT route:
 * its own binding). The signature is returned only once it verifies under the resolved key. For a
 * BIP341 sighash (32 bytes) of FROST_SECP256K1_TR: `taprootTweak: "keyPath"` for a key-path spend,
 * `"none"` for the key as a tapscript leaf key.
 */
export async function signForKey(
  ctx: AppContext,
  req: OpRequest,
  rec: KeyRecord,
  message: Uint8Array,
  requested: RequestedTweak,
): Promise<KeySignature> {
  const spec = KEY_SPEC_REGISTRY[rec.keySpec];
  const info = rec.epochInfo!;
  const { signing, publicKey } = resolveForRecord(rec, requested);
  const started = performance.now();
  let result: SignResult;
  try {
    result = await ctx.cluster.sign({
      key: info,
      message,
      ...(req.auth ? { auth: req.auth } : {}),
      // A plain request (no path, no tweak, no merkle root) is the suite's default on every side, and
      // may then use the one-round path (issue 17), which carries no tweak.
      ...(plainRequest(rec, requested) ? {} : { tweak: { requested, signing } }),
    });
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
  // The real cluster's aggregate is verified under the resolved key (RFC 9591 §5.3, key-tweak.ts);
  // any other Cluster is checked here.
  if (result.verified !== true && !verifySignature(spec, message, result.signature, publicKey)) {
    ctx.metrics.sessions.inc({ operation: 'sign', outcome: 'InvalidSignature' });
    throw new ProtocolError(
      'ProtocolAborted',
      'the cluster produced a signature that does not verify; not returned',
    );
  }
  ctx.metrics.sessions.inc({ operation: 'sign', outcome: 'ok' });
  return { ...result, publicKey };
}
