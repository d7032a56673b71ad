/**
 * PSBT signing of a FROST_SECP256K1_TR key (pure; @scure/btc-signer parses and serializes):
 * which inputs of a BIP174 / BIP371 PSBT spend an output of this key (at any non-hardened path),
 * their BIP341 signature hashes computed here from the PSBT (never a digest a client supplies), the
 * outputs (address, amount) a policy and the audit see, and the insertion of the `tap_key_sig`s.
 *
 * An input is this key's when its prevout (`witness_utxo`) is the P2TR output of the key (with its
 * merkle root), or of its child at a path named by a `tap_bip32_derivation` / `bip32_derivation`
 * entry with this key's fingerprint (key path only, BIP86; protocol/key-tweak.ts taprootKeys).
 * The prevout script decides, so a PSBT cannot make the key sign for an output it does not control;
 * a `tap_internal_key` or `tap_merkle_root` that contradicts the match is refused as inconsistent.
 * Outputs are matched the same way: one that pays back to the key is change (`toKey`), which a
 * policy on destinations lets through (policy/evaluate.ts).
 *
 * BIP341 commits every signature to the amounts and scripts of ALL inputs' prevouts, so every
 * input needs `witness_utxo` (a lying amount only makes the signature invalid). Only SIGHASH_DEFAULT
 * and SIGHASH_ALL are signed: the others let a third party change inputs or outputs after signing.
 */
import { ripemd160 } from '@noble/hashes/legacy.js';
import { sha256 } from '@noble/hashes/sha2.js';
import { schnorr } from '@noble/curves/secp256k1.js';
import { base64 } from '@scure/base';
import { Address, NETWORK, OutScript, TEST_NETWORK, Transaction } from '@scure/btc-signer';
import { BITCOIN_NETWORKS, type BitcoinNetwork, isBitcoinNetwork } from './bitcoin-output.ts';
import { equalBytes, toHex } from './bytes.ts';
import { type DerivationPath, HARDENED_OFFSET, MAX_PATH_DEPTH, formatPath } from './derivation.ts';
import { KmsError } from './errors.ts';
import { type SigningTweak, taprootKeys } from './key-tweak.ts';
import type { KeySpec } from './suites.ts';

/** Decoded PSBT bytes (a standard transaction is at most 100 kB; the rest is PSBT metadata). */
export const MAX_PSBT_BYTES = 100_000;
export const MAX_PSBT_INPUTS = 256;
export const MAX_PSBT_OUTPUTS = 256;
/** Inputs one request may sign: each is one threshold signature (and one share per signer). */
export const MAX_PSBT_SIGNED_INPUTS = 64;
/** Distinct derivation paths tried per PSBT, inputs and outputs (each up to MAX_PATH_DEPTH point additions). */
export const MAX_PSBT_PATHS = 128;
/** 21 million BTC in satoshis (consensus MAX_MONEY): any larger amount is not a transaction. */
const MAX_MONEY = 21_000_000n * 100_000_000n;

/** BIP341 hash types signed: 0x00 SIGHASH_DEFAULT (64-byte signature) and 0x01 SIGHASH_ALL (65). */
export type SighashType = 0 | 1;

/** The key a PSBT is signed with: the stored group element and what derivation and BIP341 need. */
export type PsbtKey = {
  readonly spec: KeySpec;
  /** The stored internal key P (SerializeElement, 33 bytes, even y). */
  readonly groupElement: Uint8Array;
  /** Absent: the key cannot derive (only the root's inputs are found). */
  readonly chainCode?: Uint8Array;
  /** The BIP341 merkle root of the key's own output (null: key path only); children have none. */
  readonly merkleRoot: Uint8Array | null;
};

/** One input this key signs. */
export type OwnedInput = {
  readonly index: number;
  /** [] for the key itself. */
  readonly path: DerivationPath;
  readonly sighashType: SighashType;
  /** The BIP341 signature hash (SigMsg under TapSighash), computed here from the PSBT. */
  readonly sighash: Uint8Array;
  /** x-only keys: the (derived) internal key and the output key the prevout pays to. */
  readonly internalKey: Uint8Array;
  readonly outputKey: Uint8Array;
  readonly amount: bigint;
};

/** An output as the audit and the policy see it. */
export type PsbtOutput = {
  readonly index: number;
  /** The address on the request's network; null for scripts without one (OP_RETURN, unknown). */
  readonly address: string | null;
  readonly script: string;
  /** Satoshis (≤ MAX_MONEY, so a safe integer). */
  readonly amount: number;
  /**
   * The path of this key's tree the output pays back to (change), found as inputs are: the key
   * itself, or a child named by the output's (tap_)bip32_derivation with this key's fingerprint
   * whose key-path output is the script. null: it pays someone else.
   */
  readonly toKey: DerivationPath | null;
};

export type PsbtAnalysis = {
  readonly inputCount: number;
  readonly owned: readonly OwnedInput[];
  /** Inputs left as they are: another key's, or already finalized. */
  readonly notOwned: readonly number[];
  readonly outputs: readonly PsbtOutput[];
  /** Satoshis: Σ prevout amounts − Σ output amounts. */
  readonly fee: number;
};

function invalid(message: string): KmsError {
  return new KmsError('ValidationError', `PSBT: ${message}`);
}

const SCURE_OPTS = {
  // Keep every field we do not interpret (the signed PSBT goes back to the client as it came).
  unknown: 'ignore',
  allowUnknownOutputs: true,
  allowUnknownInputs: true,
  allowUnknownVersion: true,
} as const;

/** Parses base64 (BIP174 §Encoding) within the bounds above. */
export function parsePsbt(psbtBase64: string): Transaction {
  if (typeof psbtBase64 !== 'string' || psbtBase64.length > Math.ceil(MAX_PSBT_BYTES / 3) * 4) {
    throw invalid(`expected base64 of at most ${MAX_PSBT_BYTES} bytes`);
  }
  let bytes: Uint8Array;
  try {
    bytes = base64.decode(psbtBase64);
  } catch {
    throw invalid('not base64');
  }
  let tx: Transaction;
  try {
    tx = Transaction.fromPSBT(bytes, SCURE_OPTS);
  } catch (e) {
    throw invalid(`does not parse (BIP174): ${e instanceof Error ? e.message.slice(0, 200) : 'invalid'}`);
  }
  if (tx.inputsLength === 0 || tx.inputsLength > MAX_PSBT_INPUTS) {
    throw invalid(`expected 1 to ${MAX_PSBT_INPUTS} inputs, got ${tx.inputsLength}`);
  }
  if (tx.outputsLength > MAX_PSBT_OUTPUTS) {
    throw invalid(`at most ${MAX_PSBT_OUTPUTS} outputs, got ${tx.outputsLength}`);
  }
  return tx;
}

const SCURE_NETWORKS: Readonly<Record<BitcoinNetwork, typeof NETWORK>> = {
  bitcoin: NETWORK,
  testnet: TEST_NETWORK,
  signet: TEST_NETWORK,
  regtest: { ...TEST_NETWORK, bech32: 'bcrt' },
};

function outputsOf(tx: Transaction, network: BitcoinNetwork): PsbtOutput[] {
  const net = SCURE_NETWORKS[network];
  const out: PsbtOutput[] = [];
  for (let i = 0; i < tx.outputsLength; i++) {
    const o = tx.getOutput(i);
    if (o.script === undefined || o.amount === undefined)
      throw invalid(`output ${i} has no script or amount`);
    if (o.amount > MAX_MONEY) throw invalid(`output ${i} pays more than 21 million bitcoin`);
    let address: string | null = null;
    try {
      const decoded = OutScript.decode(o.script);
      if (decoded.type !== 'unknown') address = Address(net).encode(decoded);
    } catch {
      address = null;
    }
    out.push({ index: i, address, script: toHex(o.script), amount: Number(o.amount), toKey: null });
  }
  return out;
}

/** BIP32 fingerprint: the first 4 bytes of HASH160 of the compressed key, big-endian. */
function fingerprintOf(key: Uint8Array): number {
  const h = ripemd160(sha256(key));
  return new DataView(h.buffer, h.byteOffset, 4).getUint32(0, false);
}

type Candidate = {
  path: DerivationPath;
  internalKey: Uint8Array;
  outputKey: Uint8Array;
  merkleRoot: Uint8Array | null;
};

/**
 * The merkle root of the output at `path`: the key's own (fixed at creation) for the key itself;
 * derived children are internal keys of key-path-only outputs (BIP86, `tr(xpub/0/*)`), as signing
 * resolves them (protocol/key-tweak.ts signingTweakFor).
 */
function merkleRootAt(key: PsbtKey, path: DerivationPath): Uint8Array | null {
  return path.length === 0 ? key.merkleRoot : null;
}

/**
 * Finds this key's inputs and computes their BIP341 signature hashes; reports every output.
 * Throws ValidationError for a PSBT out of bounds, without `witness_utxo`, with an unsupported
 * hash type on one of this key's inputs, or inconsistent with the prevout it spends.
 */
export function analyzePsbt(
  tx: Transaction,
  key: PsbtKey,
  network: BitcoinNetwork = 'bitcoin',
): PsbtAnalysis {
  if (key.spec.name !== 'FROST_SECP256K1_TR') {
    throw invalid(`${key.spec.name} keys do not sign Taproot inputs (FROST_SECP256K1_TR keys do)`);
  }
  if (!isBitcoinNetwork(network)) throw invalid(`unknown network ${JSON.stringify(network)}`);
  const n = tx.inputsLength;
  const scripts: Uint8Array[] = [];
  const amounts: bigint[] = [];
  for (let i = 0; i < n; i++) {
    const w = tx.getInput(i).witnessUtxo;
    if (!w) {
      throw invalid(
        `input ${i} has no witness_utxo: a BIP341 signature hash commits to every input's amount and script`,
      );
    }
    if (w.amount > MAX_MONEY) throw invalid(`input ${i} spends more than 21 million bitcoin`);
    scripts.push(w.script);
    amounts.push(w.amount);
  }
  const fingerprint = fingerprintOf(key.groupElement);
  const byPath = new Map<string, Candidate>();
  const candidate = (path: DerivationPath): Candidate => {
    const k = formatPath(path);
    const hit = byPath.get(k);
    if (hit) return hit;
    if (byPath.size >= MAX_PSBT_PATHS) throw invalid(`more than ${MAX_PSBT_PATHS} derivation paths`);
    const tk = taprootKeys(
      key.spec,
      key.groupElement,
      merkleRootAt(key, path),
      path.length > 0 ? { chainCode: key.chainCode!, path } : undefined,
    );
    const c = { path, internalKey: tk.internalKey, outputKey: tk.outputKey, merkleRoot: tk.merkleRoot };
    byPath.set(k, c);
    return c;
  };

  const owned: OwnedInput[] = [];
  const notOwned: number[] = [];
  for (let i = 0; i < n; i++) {
    const input = tx.getInput(i);
    const s = scripts[i]!;
    const isP2tr = s.length === 34 && s[0] === 0x51 && s[1] === 0x20;
    const finalized = input.finalScriptWitness !== undefined || input.finalScriptSig !== undefined;
    if (!isP2tr || finalized) {
      notOwned.push(i);
      continue;
    }
    const prevKey = s.subarray(2);
    const paths: DerivationPath[] = [[]];
    if (key.chainCode) {
      for (const r of derivationRows(input, fingerprint)) paths.push(r);
    }
    let match: Candidate | undefined;
    for (const p of paths) {
      const c = candidate(p);
      if (equalBytes(c.outputKey, prevKey)) {
        match = c;
        break;
      }
    }
    if (!match) {
      notOwned.push(i);
      continue;
    }
    if (input.tapInternalKey && !equalBytes(input.tapInternalKey, match.internalKey)) {
      throw invalid(`input ${i}: tap_internal_key is not the internal key of the output it spends`);
    }
    const root = input.tapMerkleRoot ?? null;
    if ((root === null) !== (match.merkleRoot === null) || (root && !equalBytes(root, match.merkleRoot!))) {
      throw invalid(`input ${i}: tap_merkle_root is not the merkle root of the key's output`);
    }
    const t = input.sighashType ?? 0;
    if (t !== 0 && t !== 1) {
      throw invalid(
        `input ${i}: sighash type 0x${t.toString(16)} is not signed (only SIGHASH_DEFAULT and SIGHASH_ALL: ` +
          'the others let anyone change the transaction after signing)',
      );
    }
    owned.push({
      index: i,
      path: match.path,
      sighashType: t,
      sighash: tx.preimageWitnessV1(i, scripts, t, amounts),
      internalKey: match.internalKey,
      outputKey: match.outputKey,
      amount: amounts[i]!,
    });
  }
  const outputs = outputsOf(tx, network).map((o) => {
    const out = tx.getOutput(o.index);
    const script = out.script!;
    if (!(script.length === 34 && script[0] === 0x51 && script[1] === 0x20)) return o;
    const paths: DerivationPath[] = [[]];
    if (key.chainCode) for (const r of derivationRows(out, fingerprint)) paths.push(r);
    const hit = paths.find((p) => equalBytes(candidate(p).outputKey, script.subarray(2)));
    return hit === undefined ? o : { ...o, toKey: hit };
  });
  const fee = amounts.reduce((a, b) => a + b, 0n) - outputs.reduce((a, o) => a + BigInt(o.amount), 0n);
  if (fee < 0n) throw invalid('outputs spend more than the inputs');
  if (owned.length > MAX_PSBT_SIGNED_INPUTS) {
    throw invalid(`${owned.length} inputs of this key: at most ${MAX_PSBT_SIGNED_INPUTS} per request`);
  }
  return { inputCount: n, owned, notOwned, outputs, fee: Number(fee) };
}

/** Non-hardened paths of this key's fingerprint named by an input's (or output's) derivation entries. */
function derivationRows(
  input: Pick<ReturnType<Transaction['getInput']>, 'tapBip32Derivation' | 'bip32Derivation'>,
  fingerprint: number,
): DerivationPath[] {
  const rows: DerivationPath[] = [];
  for (const [, v] of input.tapBip32Derivation ?? []) {
    // Leaf hashes name script-path uses of the key; key-path signing needs the internal key entry.
    if (v.der.fingerprint === fingerprint && v.hashes.length === 0) rows.push(v.der.path);
  }
  for (const [, v] of input.bip32Derivation ?? []) {
    if (v.fingerprint === fingerprint) rows.push(v.path);
  }
  return rows.filter((p) => p.length <= MAX_PATH_DEPTH && p.every((i) => i < HARDENED_OFFSET));
}

/** The tweak a threshold signature for `input` uses (protocol/key-tweak.ts SigningTweak). */
export function inputSigningTweak(key: PsbtKey, input: Pick<OwnedInput, 'path'>): SigningTweak {
  return {
    ...(input.path.length > 0 ? { derivation: { chainCode: key.chainCode!, path: input.path } } : {}),
    taproot: { kind: 'keyPath', merkleRoot: merkleRootAt(key, input.path) },
  };
}

/** What a sign request for `input` asks for (the API's derivationPath and taprootTweak). */
export function inputRequestedTweak(input: Pick<OwnedInput, 'path'>): {
  derivationPath: string;
  taprootTweak: 'keyPath';
} {
  return { derivationPath: formatPath(input.path), taprootTweak: 'keyPath' };
}

/**
 * Sets `tap_key_sig` of each signed input (64-byte BIP340 signature, plus the hash type byte for
 * SIGHASH_ALL: BIP341), after checking it verifies under the input's output key. Returns the PSBT.
 */
export function insertSignatures(
  tx: Transaction,
  signed: readonly { input: OwnedInput; signature: Uint8Array }[],
): string {
  for (const { input, signature } of signed) {
    if (signature.length !== 64 || !schnorr.verify(signature, input.sighash, input.outputKey)) {
      throw new KmsError('InvalidSignature', `PSBT input ${input.index}: the signature does not verify`);
    }
    const sig = input.sighashType === 0 ? signature : Uint8Array.from([...signature, input.sighashType]);
    tx.updateInput(input.index, { tapKeySig: sig }, true);
  }
  return base64.encode(tx.toPSBT());
}

/** The body of `POST /v1/keys/{id}/sign-psbt` (the coordinator's route and every node's binding). */
export const SIGN_PSBT_BODY_SCHEMA = {
  type: 'object',
  additionalProperties: false,
  required: ['psbt'],
  properties: {
    psbt: {
      type: 'string',
      pattern: '^[A-Za-z0-9+/]*={0,2}$',
      minLength: 4,
      maxLength: Math.ceil(MAX_PSBT_BYTES / 3) * 4,
      description: `the PSBT (BIP174, BIP371), base64, at most ${MAX_PSBT_BYTES} bytes`,
    },
    network: {
      type: 'string',
      enum: [...BITCOIN_NETWORKS],
      description: 'the network the output addresses are shown for (audit, policy); default bitcoin',
    },
  },
} as const;

export type SignPsbtBody = { readonly psbt: string; readonly network?: BitcoinNetwork };

/** An output as the audit and the policy see it: its address, or its script when it has none. */
export type PsbtOutputFact = {
  readonly address: string | null;
  readonly amount: number;
  readonly script?: string;
  /** Present when the output pays back to this key (change): the path, `m` for the key itself. */
  readonly toKey?: string;
};

/** What an audit record and a policy see of a PSBT (the coordinator's and every node's alike). */
export type PsbtFacts = {
  readonly network: BitcoinNetwork;
  /** This key's inputs: index and derivation path. */
  readonly inputs: readonly { readonly index: number; readonly path: string }[];
  readonly outputs: readonly PsbtOutputFact[];
  /** Satoshis. */
  readonly fee: number;
};

export function psbtFacts(a: PsbtAnalysis, network: BitcoinNetwork): PsbtFacts {
  return {
    network,
    inputs: a.owned.map((o) => ({ index: o.index, path: formatPath(o.path) })),
    outputs: a.outputs.map((o) => ({
      address: o.address,
      amount: o.amount,
      ...(o.address === null ? { script: o.script } : {}),
      ...(o.toKey === null ? {} : { toKey: formatPath(o.toKey) }),
    })),
    fee: a.fee,
  };
}
