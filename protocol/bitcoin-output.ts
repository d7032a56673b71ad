/**
 * Output descriptors and addresses of threshold keys (pure): BIP380 descriptor checksums, BIP386
 * `tr(...)` / `rawtr(...)` descriptors, BIP350 bech32m P2TR addresses, Solana base58 addresses.
 * Keys come from protocol/key-tweak.ts (taprootKeys) and protocol/derivation.ts (xpubOf).
 *
 * What is stored for a Taproot output with script paths is its merkle root only, not the scripts;
 * a BIP386 `tr(KEY,TREE)` descriptor needs the scripts, so it is rendered only when the caller
 * gives the TREE expression; with just the root, `rawtr(OUTPUT_KEY)` describes the same output
 * (BIP386) but hides the internal key, so it cannot prove that the key path is ours.
 */
import { base58, bech32m } from '@scure/base';
import { toHex } from './bytes.ts';
import { KmsError } from './errors.ts';

export const BITCOIN_NETWORKS = ['bitcoin', 'testnet', 'signet', 'regtest'] as const;
export type BitcoinNetwork = (typeof BITCOIN_NETWORKS)[number];

/** BIP350 / BIP173 human-readable parts (testnet and signet share `tb`). */
const HRP: Readonly<Record<BitcoinNetwork, string>> = {
  bitcoin: 'bc',
  testnet: 'tb',
  signet: 'tb',
  regtest: 'bcrt',
};

function invalid(message: string): KmsError {
  return new KmsError('ValidationError', message);
}

export function isBitcoinNetwork(s: unknown): s is BitcoinNetwork {
  return typeof s === 'string' && (BITCOIN_NETWORKS as readonly string[]).includes(s);
}

function xOnly(key: Uint8Array, what: string): Uint8Array {
  if (!(key instanceof Uint8Array) || key.length !== 32)
    throw invalid(`${what}: expected a 32-byte x-only key`);
  return key;
}

/** BIP341 scriptPubKey of a P2TR output: OP_1 OP_PUSHBYTES_32 <output key>. */
export function p2trScriptPubKey(outputKey: Uint8Array): Uint8Array {
  const out = new Uint8Array(34);
  out[0] = 0x51;
  out[1] = 0x20;
  out.set(xOnly(outputKey, 'output key'), 2);
  return out;
}

/** BIP350 bech32m address of a segwit v1 (P2TR) output key. */
export function p2trAddress(outputKey: Uint8Array, network: BitcoinNetwork): string {
  if (!isBitcoinNetwork(network)) {
    throw invalid(`network ${JSON.stringify(network)}: one of ${BITCOIN_NETWORKS.join(', ')}`);
  }
  return bech32m.encode(HRP[network], [1, ...bech32m.toWords(xOnly(outputKey, 'output key'))]);
}

/** A Solana address: the base58 encoding of the 32-byte Ed25519 public key. */
export function solanaAddress(publicKey: Uint8Array): string {
  if (!(publicKey instanceof Uint8Array) || publicKey.length !== 32) {
    throw invalid('Solana address: expected a 32-byte Ed25519 public key');
  }
  return base58.encode(publicKey);
}

// ---- BIP380 descriptor checksum ----

const INPUT_CHARSET =
  '0123456789()[],\'/*abcdefgh@:$%{}IJKLMNOPQRSTUVWXYZ&+-.;<=>?!^_|~ijklmnopqrstuvwxyzABCDEFGH`#"\\ ';
const CHECKSUM_CHARSET = 'qpzry9x8gf2tvdw0s3jn54khce6mua7l';
const GENERATOR = [0xf5dee51989n, 0xa9fdca3312n, 0x1bab10e32dn, 0x3706b1677an, 0x644d626ffdn];

function polymod(symbols: readonly number[]): bigint {
  let chk = 1n;
  for (const value of symbols) {
    const top = chk >> 35n;
    chk = ((chk & 0x7ffffffffn) << 5n) ^ BigInt(value);
    for (let i = 0; i < 5; i++) if ((top >> BigInt(i)) & 1n) chk ^= GENERATOR[i]!;
  }
  return chk;
}

function expand(s: string): number[] {
  const symbols: number[] = [];
  const groups: number[] = [];
  for (const c of s) {
    const v = INPUT_CHARSET.indexOf(c);
    if (v < 0) throw invalid(`descriptor: character ${JSON.stringify(c)} is not allowed (BIP380)`);
    symbols.push(v & 31);
    groups.push(v >> 5);
    if (groups.length === 3) {
      symbols.push(groups[0]! * 9 + groups[1]! * 3 + groups[2]!);
      groups.length = 0;
    }
  }
  if (groups.length === 1) symbols.push(groups[0]!);
  else if (groups.length === 2) symbols.push(groups[0]! * 3 + groups[1]!);
  return symbols;
}

/** The 8-character BIP380 checksum of a descriptor (without `#`). */
export function descriptorChecksum(descriptor: string): string {
  const c = polymod([...expand(descriptor), 0, 0, 0, 0, 0, 0, 0, 0]) ^ 1n;
  let out = '';
  for (let i = 0; i < 8; i++) out += CHECKSUM_CHARSET[Number((c >> BigInt(5 * (7 - i))) & 31n)];
  return out;
}

/** `descriptor#checksum` (BIP380). */
export function withChecksum(descriptor: string): string {
  return `${descriptor}#${descriptorChecksum(descriptor)}`;
}

/** BIP380 descsum_check: `SCRIPT#CHECKSUM` with a valid 8-character checksum. Never throws. */
export function checkDescriptorChecksum(s: string): boolean {
  if (typeof s !== 'string' || s.length < 9 || s[s.length - 9] !== '#') return false;
  const sum = s.slice(-8);
  if (![...sum].every((c) => CHECKSUM_CHARSET.includes(c))) return false;
  try {
    return polymod([...expand(s.slice(0, -9)), ...[...sum].map((c) => CHECKSUM_CHARSET.indexOf(c))]) === 1n;
  } catch {
    return false;
  }
}

// ---- BIP386 Taproot descriptors ----

/**
 * `tr(INTERNAL_KEY)` (key path only: BIP86's output) or `tr(INTERNAL_KEY,TREE)` with the caller's
 * BIP386 TREE expression (e.g. `{pk(...),pk(...)}`), with its checksum.
 */
export function trDescriptor(internalKey: Uint8Array, tree?: string): string {
  const key = toHex(xOnly(internalKey, 'internal key'));
  if (tree === undefined) return withChecksum(`tr(${key})`);
  if (typeof tree !== 'string' || tree.length === 0 || tree.length > 10_000 || /[#\s]/.test(tree)) {
    throw invalid('descriptor TREE: expected a BIP386 tree expression');
  }
  return withChecksum(`tr(${key},${tree})`);
}

/** `rawtr(OUTPUT_KEY)` (BIP386): an output known only by its output key (e.g. merkle root, no scripts). */
export function rawtrDescriptor(outputKey: Uint8Array): string {
  return withChecksum(`rawtr(${toHex(xOnly(outputKey, 'output key'))})`);
}

/**
 * `tr(XPUB/.../*)` for watch-only wallets: every child at the non-hardened suffix (e.g. `0/*`)
 * as the internal key of a key-path-only output (BIP86's derivation from an account xpub).
 */
export function trXpubDescriptor(xpub: string, suffix = '0/*'): string {
  if (!/^[1-9A-HJ-NP-Za-km-z]{100,120}$/.test(xpub)) throw invalid('descriptor: not an extended public key');
  if (!/^(\d{1,10}\/)*(\d{1,10}|\*)$/.test(suffix)) {
    throw invalid('descriptor: the derivation suffix takes non-hardened indices and a final * only');
  }
  for (const part of suffix.split('/')) {
    if (part !== '*' && Number(part) >= 0x80000000) throw invalid('descriptor: hardened indices are refused');
  }
  return withChecksum(`tr(${xpub}/${suffix})`);
}
