/**
 * Loads the RFC 9591 / ZF FROST vectors from the repository's own copy, `test/vectors/frost/<suite>/`
 * (upstream commit and licence in test/vectors/README.md), and offers the suite hashes H1/H4/H5
 * (RFC 9591 §4.4, §6) so tests can recompute binding factors, which noble does not expose.
 */
import { existsSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { ed448 } from '@noble/curves/ed448.js';
import { p256_hasher } from '@noble/curves/nist.js';
import { secp256k1_hasher } from '@noble/curves/secp256k1.js';
import { bytesToNumberLE } from '@noble/curves/utils.js';
import { sha256, sha512 } from '@noble/hashes/sha2.js';
import { shake256 } from '@noble/hashes/sha3.js';
import { concatBytes, utf8ToBytes } from '@noble/hashes/utils.js';
import type { KeySpec } from '../../protocol/suites.ts';

export const VECTORS_DIR = fileURLToPath(new URL('../vectors/frost/', import.meta.url));

export type Vector = {
  config: { MAX_PARTICIPANTS: string; NUM_PARTICIPANTS: string; MIN_PARTICIPANTS: string; name: string };
  inputs: {
    participant_list: number[];
    group_secret_key: string;
    verifying_key_key: string;
    message: string;
    share_polynomial_coefficients: string[];
    participant_shares: { identifier: number; participant_share: string }[];
  };
  round_one_outputs: {
    outputs: {
      identifier: number;
      hiding_nonce_randomness: string;
      binding_nonce_randomness: string;
      hiding_nonce: string;
      binding_nonce: string;
      hiding_nonce_commitment: string;
      binding_nonce_commitment: string;
      binding_factor_input: string;
      binding_factor: string;
    }[];
  };
  round_two_outputs: { outputs: { identifier: number; sig_share: string }[] };
  final_output: { sig: string };
};

export type DkgParticipantVector = {
  identifier: number;
  signing_key: string;
  coefficient: string;
  vss_commitments: string[];
  proof_of_knowledge: string;
  signing_shares: Record<string, string>;
  verifying_share: string;
  signing_share: string;
};
export type DkgVector = {
  config: { MAX_PARTICIPANTS: number; MIN_PARTICIPANTS: number };
  inputs: { verifying_key: string } & Record<string, DkgParticipantVector | string>;
};

function load(path: string): unknown {
  if (!existsSync(path)) {
    throw new Error(
      `missing vector file ${path}: the vectors ship with the repository in test/vectors/frost`,
    );
  }
  return JSON.parse(readFileSync(path, 'utf8'));
}

export function loadVectors(spec: KeySpec): { name: string; vector: Vector }[] {
  return ['vectors.json', 'vectors-big-identifier.json'].map((f) => ({
    name: f,
    vector: load(`${VECTORS_DIR}${spec.vectorsDir}/${f}`) as Vector,
  }));
}

export function loadDkgVector(spec: KeySpec): DkgVector {
  return load(`${VECTORS_DIR}${spec.vectorsDir}/vectors_dkg.json`) as DkgVector;
}

/** ZF FROST's repairable-threshold-scheme run: the sums of its step 2 and step 3. */
export type RepairVector = {
  scalar_generation: Record<string, string>;
  sigma_generation: Record<string, string>;
};

export function loadRepairVector(spec: KeySpec): RepairVector {
  return load(`${VECTORS_DIR}${spec.vectorsDir}/repair-share.json`) as RepairVector;
}

export function loadInvalidElements(spec: KeySpec): string[] {
  const e = load(`${VECTORS_DIR}${spec.vectorsDir}/elements.json`) as { elements: Record<string, string> };
  return Object.values(e.elements);
}

/** RFC 9591 §6.x H1 (binding factor), H4 (message) and H5 (commitment list) for one suite. */
export function suiteHashes(spec: KeySpec): {
  H1: (m: Uint8Array) => bigint;
  H4: (m: Uint8Array) => Uint8Array;
  H5: (m: Uint8Array) => Uint8Array;
} {
  const ctx = spec.contextString;
  const dst = (s: string) => utf8ToBytes(ctx + s);
  const order = spec.Point.Fn.ORDER;
  switch (spec.name) {
    case 'FROST_ED25519':
    case 'FROST_RISTRETTO255':
    case 'TDH2_RISTRETTO255':
      return {
        H1: (m) => bytesToNumberLE(sha512(concatBytes(dst('rho'), m))) % order,
        H4: (m) => sha512(concatBytes(dst('msg'), m)),
        H5: (m) => sha512(concatBytes(dst('com'), m)),
      };
    case 'FROST_ED448': {
      const h = (m: Uint8Array) => shake256(m, { dkLen: 114 });
      return {
        H1: (m) => bytesToNumberLE(h(concatBytes(dst('rho'), m))) % ed448.Point.Fn.ORDER,
        H4: (m) => h(concatBytes(dst('msg'), m)),
        H5: (m) => h(concatBytes(dst('com'), m)),
      };
    }
    case 'FROST_SECP256K1':
    case 'FROST_SECP256K1_TR':
    case 'FROST_P256': {
      const hasher = spec.curve === 'p256' ? p256_hasher : secp256k1_hasher;
      return {
        // RFC 9591 §6.4/§6.5: hash_to_field with expand_message_xmd, DST = contextString || "rho".
        H1: (m) => hasher.hashToScalar(m, { DST: dst('rho') }),
        H4: (m) => sha256(concatBytes(dst('msg'), m)),
        H5: (m) => sha256(concatBytes(dst('com'), m)),
      };
    }
  }
}
