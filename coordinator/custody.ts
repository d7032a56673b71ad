/**
 * Custody on the coordinator (issue 14): what a key's record says about its Taproot keys and its
 * derivation tree, and threshold signing for a key of that tree. The coordinator holds public data
 * only (the chain code and merkle root are public to it, as the group key is); it never supplies a
 * tweak to the nodes: each signer resolves the client-signed path and tweak itself
 * (node/sign-tweak.ts), and this side only aggregates for the key it resolved the same way.
 */
import { fromHex, toHex } from '../protocol/bytes.ts';
import {
  type DerivationPath,
  type XpubNetwork,
  chainCodeFor,
  derivable,
  derive,
  formatPath,
  parsePath,
  xpubOf,
} from '../protocol/derivation.ts';
import {
  BITCOIN_NETWORKS,
  isBitcoinNetwork,
  p2trAddress,
  rawtrDescriptor,
  solanaAddress,
  trDescriptor,
  trXpubDescriptor,
} from '../protocol/bitcoin-output.ts';
import { KmsError, ProtocolError } from '../protocol/errors.ts';
import {
  type CustodyData,
  type RequestedTweak,
  type SigningTweak,
  signingPublicKey,
  type TaprootKeys,
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
 * signed request `req.auth`: run inside `underKey(..., 'sign', ...)` once the request's decision
 * record is chained (its caller answers only when that record is synced too). Each node checks
 * the message, path and tweak against the signed body itself (for a PSBT route: its own binding).
 * The signature is returned only once it verifies under the resolved key. For a BIP341 sighash
 * (32 bytes) of FROST_SECP256K1_TR: `taprootTweak: "keyPath"` for a key-path spend,
 * `"none"` for the key as a tapscript leaf key.
 */
export async function signForKey(
  ctx: AppContext,
  req: OpRequest,
  rec: KeyRecord,
  message: Uint8Array,
  requested: RequestedTweak,
  /** `resolveForRecord(rec, requested)`, when the caller already has it. */
  resolved: { signing: SigningTweak | undefined; publicKey: Uint8Array } = resolveForRecord(rec, requested),
): Promise<KeySignature> {
  const spec = KEY_SPEC_REGISTRY[rec.keySpec];
  const info = rec.epochInfo!;
  const { signing, publicKey } = resolved;
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

// ---- addresses, descriptors and public keys at a path (GET routes: coordinator/routes/custody.ts) ----

/** `?network=` of the address route: the Bitcoin networks (P2TR) and Solana (Ed25519). */
export const ADDRESS_NETWORKS = [...BITCOIN_NETWORKS, 'solana'] as const;
export type AddressNetwork = (typeof ADDRESS_NETWORKS)[number];

function invalid(message: string): KmsError {
  return new KmsError('ValidationError', message);
}

/** The path of a query (`m/0/5`; absent = the key itself), refusing hardened steps with the reason. */
function pathOf(path: string | undefined): DerivationPath {
  return path === undefined ? [] : parsePath(path);
}

/** Custody data needed below the root; the key itself needs none. */
function derivationOf(rec: KeyRecord, path: DerivationPath) {
  if (path.length === 0) return undefined;
  const spec = KEY_SPEC_REGISTRY[rec.keySpec];
  if (!derivable(spec))
    throw invalid(`${rec.keySpec} keys do not support derivation (secp256k1 and Ed25519 keys do)`);
  const custody = recordCustody(rec);
  if (!custody) {
    throw invalid(
      'this key was created before keys kept a chain code: it has no derived keys; create a new key',
    );
  }
  return { chainCode: custody.chainCode, path };
}

/**
 * The BIP341 keys at `path` of a FROST_SECP256K1_TR key: the key's merkle root applies at m only,
 * children are internal keys of key-path-only outputs (the same rule as signing, key-tweak.ts
 * signingTweakFor). undefined for a key created before custody data (its internal key is unknown).
 */
export function taprootAt(rec: KeyRecord, path: DerivationPath): TaprootKeys | undefined {
  if (rec.keySpec !== 'FROST_SECP256K1_TR')
    throw invalid(`${rec.keySpec} is not a Taproot key (FROST_SECP256K1_TR)`);
  const custody = recordCustody(rec);
  if (!custody) {
    derivationOf(rec, path);
    return undefined;
  }
  const spec = KEY_SPEC_REGISTRY[rec.keySpec];
  const root = path.length === 0 ? custody.merkleRoot : null;
  return taprootKeys(spec, fromHex(rec.epochInfo!.groupElement), root, derivationOf(rec, path));
}

/** `GET /v1/keys/{id}/address`: bech32m P2TR (FROST_SECP256K1_TR) or base58 (FROST_ED25519, solana). */
export function addressOf(
  rec: KeyRecord,
  network: AddressNetwork,
  pathText: string | undefined,
): { address: string; network: AddressNetwork; path?: string } {
  const path = pathOf(pathText);
  const at = pathText === undefined ? {} : { path: formatPath(path) };
  if (network === 'solana') {
    if (rec.keySpec !== 'FROST_ED25519') {
      throw invalid(`Solana addresses are Ed25519 keys (FROST_ED25519), not ${rec.keySpec}`);
    }
    const spec = KEY_SPEC_REGISTRY[rec.keySpec];
    const d = derivationOf(rec, path);
    const key = d
      ? derive(spec, fromHex(rec.epochInfo!.groupElement), d.chainCode, d.path).key
      : fromHex(rec.epochInfo!.publicKey);
    return { address: solanaAddress(key), network, ...at };
  }
  if (!isBitcoinNetwork(network)) throw invalid(`network: one of ${ADDRESS_NETWORKS.join(', ')}`);
  if (rec.keySpec !== 'FROST_SECP256K1_TR') {
    throw invalid(`Bitcoin addresses (P2TR) are FROST_SECP256K1_TR keys (BIP340), not ${rec.keySpec}`);
  }
  const t = taprootAt(rec, path);
  // A key without custody data: its API publicKey is the output key it signs key-path spends for.
  const output = t ? t.outputKey : fromHex(rec.epochInfo!.publicKey);
  return { address: p2trAddress(output, network), network, ...at };
}

/** xpub (bitcoin) or tpub (the test networks). */
function xpubNetwork(network: string | undefined): XpubNetwork {
  if (network === undefined || network === 'bitcoin') return 'bitcoin';
  if (isBitcoinNetwork(network)) return 'test';
  throw invalid(`network: one of ${BITCOIN_NETWORKS.join(', ')}`);
}

/** The root xpub of a secp256k1 key with custody data. */
function rootXpub(rec: KeyRecord, network: XpubNetwork, path: DerivationPath = []): string {
  const spec = KEY_SPEC_REGISTRY[rec.keySpec];
  const custody = recordCustody(rec);
  if (spec.curve !== 'secp256k1') {
    throw invalid(`extended public keys (BIP32) exist for secp256k1 keys only, not ${rec.keySpec}`);
  }
  if (!custody)
    throw invalid('this key was created before keys kept a chain code: it has no xpub; create a new key');
  return xpubOf(spec, fromHex(rec.epochInfo!.groupElement), custody.chainCode, path, network);
}

/**
 * `GET /v1/keys/{id}/descriptor` (BIP380 checksum, BIP386): `tr(INTERNAL)` for a key-path-only
 * output (at the key or a child path), `rawtr(OUTPUT)` for the key's output with script paths (only
 * the merkle root is stored, not the scripts a `tr(KEY,TREE)` needs), and `tr(XPUB/.../*)` for a
 * path ending in `/*` (watch-only wallets derive every child themselves).
 */
export function descriptorOf(
  rec: KeyRecord,
  pathText: string | undefined,
  network: string | undefined,
): { descriptor: string; path?: string; internalKey?: string; outputKey?: string; xpub?: string } {
  if (rec.keySpec !== 'FROST_SECP256K1_TR') {
    throw invalid(`output descriptors are for Taproot keys (FROST_SECP256K1_TR), not ${rec.keySpec}`);
  }
  if (pathText !== undefined && /\/\*$/.test(pathText)) {
    const prefix = pathOf(pathText.slice(0, -2));
    const xpub = rootXpub(rec, xpubNetwork(network));
    const suffix = [...prefix.map(String), '*'].join('/');
    return { descriptor: trXpubDescriptor(xpub, suffix), path: pathText, xpub };
  }
  const path = pathOf(pathText);
  const at = pathText === undefined ? {} : { path: formatPath(path) };
  const t = taprootAt(rec, path);
  if (!t)
    return {
      descriptor: rawtrDescriptor(fromHex(rec.epochInfo!.publicKey)),
      ...at,
      outputKey: rec.epochInfo!.publicKey,
    };
  const keys = { internalKey: toHex(t.internalKey), outputKey: toHex(t.outputKey) };
  if (t.merkleRoot !== null) return { descriptor: rawtrDescriptor(t.outputKey), ...at, ...keys };
  return { descriptor: trDescriptor(t.internalKey), ...at, ...keys };
}

/**
 * `GET /v1/keys/{id}/public-key?path=&format=xpub`: the key at `path` as a default sign request at
 * that path verifies under (TR: the BIP341 output key; its internal key beside it), and with
 * `format=xpub` its BIP32 serialization (secp256k1 keys).
 */
export function publicKeyAt(
  rec: KeyRecord,
  pathText: string | undefined,
  format: 'json' | 'xpub' | undefined,
  network: string | undefined,
): { publicKey: string; path?: string; xpub?: string; taproot?: TaprootView } {
  const path = pathOf(pathText);
  const at = pathText === undefined ? {} : { path: formatPath(path) };
  const xpub = format === 'xpub' ? { xpub: rootXpub(rec, xpubNetwork(network), path) } : {};
  if (rec.keySpec === 'FROST_SECP256K1_TR') {
    const t = taprootAt(rec, path);
    if (!t) return { publicKey: rec.epochInfo!.publicKey, ...at, ...xpub };
    const taproot = {
      internalKey: toHex(t.internalKey),
      outputKey: toHex(t.outputKey),
      merkleRoot: t.merkleRoot === null ? null : toHex(t.merkleRoot),
    };
    return { publicKey: taproot.outputKey, ...at, ...xpub, taproot };
  }
  const { publicKey } = resolveForRecord(rec, pathText === undefined ? {} : { derivationPath: pathText });
  return { publicKey: toHex(publicKey), ...at, ...xpub };
}
