/**
 * Recovery officer key pairs (issue 16), made and used offline: an X25519 key pair (libsodium
 * `crypto_box_keypair`), whose private key is kept in a file encrypted under a passphrase
 * (Argon2id, RFC 9106, via `crypto_pwhash`, then XChaCha20-Poly1305, `crypto_aead_xchacha20poly1305_ietf`).
 * The public half `{name, publicKey}` goes into an officer set; backups seal each officer's
 * sub-shares to it with libsodium sealed boxes (`crypto_box_seal`), which protocol/officer-backup.ts
 * takes as the `seal`/`open` functions given here. File format: docs/backup-format.md.
 *
 * Secrets live in sodium_malloc'd (guarded, locked) memory and are zeroed with sodium_memzero once
 * used: the derived file key right after decryption, the private key on `wipe()` (or at the end of
 * `withOfficerKey`). The caller owns, and should wipe, the passphrase bytes it passes in.
 */
import sodium from 'sodium-native';
import { equalBytes, fromHex, toHex, utf8ToBytes } from '../protocol/bytes.ts';
import { DecodeError, KmsError, StateError } from '../protocol/errors.ts';
import {
  OFFICER_NAME_RE,
  OFFICER_PUBLIC_KEY_LENGTH,
  type Officer,
  type OfficerOpener,
  type OfficerSet,
  type Seal,
} from '../protocol/officer-backup.ts';

export const OFFICER_KEY_FORMAT = 'tkms-officer-key';
export const OFFICER_KEY_VERSION = 1;
const KDF_ALG = 'argon2id13';
const CIPHER_ALG = 'xchacha20poly1305-ietf';
/** Bounds on the stored Argon2id cost: a crafted file must not make us allocate without limit. */
export const MAX_OPSLIMIT = 16;
export const MAX_MEMLIMIT = 1024 * 1024 * 1024;
const MAX_FILE_CHARS = 4096;
const AAD_DOMAIN = utf8ToBytes('tkms-officer-key/v1\0');

/** Argon2id cost; the default is libsodium's MODERATE (3 passes, 256 MiB). */
export type KdfCost = { readonly opslimit: number; readonly memlimit: number };
export const DEFAULT_KDF_COST: KdfCost = {
  opslimit: sodium.crypto_pwhash_OPSLIMIT_MODERATE,
  memlimit: sodium.crypto_pwhash_MEMLIMIT_MODERATE,
};

/** The JSON document of an officer key file (docs/backup-format.md, "Officer key file"). */
export type OfficerKeyFile = {
  readonly format: typeof OFFICER_KEY_FORMAT;
  readonly version: typeof OFFICER_KEY_VERSION;
  readonly name: string;
  readonly publicKey: string;
  readonly kdf: {
    readonly alg: typeof KDF_ALG;
    readonly opslimit: number;
    readonly memlimit: number;
    readonly salt: string;
  };
  readonly cipher: { readonly alg: typeof CIPHER_ALG; readonly nonce: string; readonly ciphertext: string };
};

/** An unlocked officer key: opens sealed boxes addressed to it until wiped. */
export type UnlockedOfficerKey = OfficerOpener & {
  readonly name: string;
  /** Zeroes the private key; later `open` calls throw. */
  wipe(): void;
};

function checkName(name: string): void {
  if (typeof name !== 'string' || !OFFICER_NAME_RE.test(name))
    throw new StateError('ValidationError', 'officer name must be 1-64 characters of [A-Za-z0-9._-]');
}

function checkCost(c: KdfCost, where: string): void {
  const ok =
    Number.isSafeInteger(c.opslimit) &&
    Number.isSafeInteger(c.memlimit) &&
    c.opslimit >= sodium.crypto_pwhash_OPSLIMIT_MIN &&
    c.opslimit <= MAX_OPSLIMIT &&
    c.memlimit >= sodium.crypto_pwhash_MEMLIMIT_MIN &&
    c.memlimit <= MAX_MEMLIMIT;
  if (!ok)
    throw new DecodeError(
      'DecodeError',
      `${where}: Argon2id cost must be opslimit ${sodium.crypto_pwhash_OPSLIMIT_MIN}..${MAX_OPSLIMIT}, memlimit ${sodium.crypto_pwhash_MEMLIMIT_MIN}..${MAX_MEMLIMIT}`,
    );
}

const u32 = (n: number) => Uint8Array.of((n >>> 24) & 0xff, (n >>> 16) & 0xff, (n >>> 8) & 0xff, n & 0xff);
const u64 = (n: number) => {
  const b = new Uint8Array(8);
  new DataView(b.buffer).setBigUint64(0, BigInt(n));
  return b;
};

/** The AEAD's associated data: every clear field of the file, so none can be changed unnoticed. */
function associatedData(name: string, publicKey: Uint8Array, cost: KdfCost, salt: Uint8Array): Uint8Array {
  const n = utf8ToBytes(name);
  const parts = [
    AAD_DOMAIN,
    Uint8Array.of(n.length),
    n,
    publicKey,
    u32(cost.opslimit),
    u64(cost.memlimit),
    salt,
  ];
  const out = new Uint8Array(parts.reduce((a, p) => a + p.length, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

/** Argon2id(passphrase, salt) into guarded memory; the caller zeroes it. */
function fileKey(passphrase: Uint8Array, salt: Uint8Array, cost: KdfCost): Uint8Array {
  if (!(passphrase instanceof Uint8Array) || passphrase.length === 0)
    throw new StateError('ValidationError', 'the passphrase is empty');
  const key = sodium.sodium_malloc(sodium.crypto_aead_xchacha20poly1305_ietf_KEYBYTES);
  sodium.crypto_pwhash(
    key,
    passphrase,
    salt,
    cost.opslimit,
    cost.memlimit,
    sodium.crypto_pwhash_ALG_ARGON2ID13,
  );
  return key;
}

/**
 * A new officer key pair: the private key file (JSON text, encrypted under `passphrase`) and the
 * public `{name, publicKey}` to hand to whoever builds the officer set.
 */
export function createOfficerKey(
  name: string,
  passphrase: Uint8Array,
  cost: KdfCost = DEFAULT_KDF_COST,
): { file: string; officer: Officer } {
  checkName(name);
  checkCost(cost, 'createOfficerKey');
  const publicKey = new Uint8Array(sodium.crypto_box_PUBLICKEYBYTES);
  const secretKey = sodium.sodium_malloc(sodium.crypto_box_SECRETKEYBYTES);
  const salt = new Uint8Array(sodium.crypto_pwhash_SALTBYTES);
  const nonce = new Uint8Array(sodium.crypto_aead_xchacha20poly1305_ietf_NPUBBYTES);
  sodium.randombytes_buf(salt);
  sodium.randombytes_buf(nonce);
  let key: Uint8Array | undefined;
  try {
    sodium.crypto_box_keypair(publicKey, secretKey);
    key = fileKey(passphrase, salt, cost);
    const ciphertext = new Uint8Array(secretKey.length + sodium.crypto_aead_xchacha20poly1305_ietf_ABYTES);
    sodium.crypto_aead_xchacha20poly1305_ietf_encrypt(
      ciphertext,
      secretKey,
      associatedData(name, publicKey, cost, salt),
      null,
      nonce,
      key,
    );
    const doc: OfficerKeyFile = {
      format: OFFICER_KEY_FORMAT,
      version: OFFICER_KEY_VERSION,
      name,
      publicKey: toHex(publicKey),
      kdf: { alg: KDF_ALG, opslimit: cost.opslimit, memlimit: cost.memlimit, salt: toHex(salt) },
      cipher: { alg: CIPHER_ALG, nonce: toHex(nonce), ciphertext: toHex(ciphertext) },
    };
    return { file: `${JSON.stringify(doc, null, 2)}\n`, officer: { name, publicKey } };
  } finally {
    sodium.sodium_memzero(secretKey);
    if (key) sodium.sodium_memzero(key);
  }
}

type Parsed = {
  name: string;
  publicKey: Uint8Array;
  cost: KdfCost;
  salt: Uint8Array;
  nonce: Uint8Array;
  ciphertext: Uint8Array;
};

function parseKeyFile(text: string): Parsed {
  const bad = (what: string) => new DecodeError('DecodeError', `officer key file: ${what}`);
  if (typeof text !== 'string' || text.length > MAX_FILE_CHARS)
    throw bad(`must be JSON text of at most ${MAX_FILE_CHARS} characters`);
  let v: any;
  try {
    v = JSON.parse(text);
  } catch {
    throw bad('is not JSON');
  }
  if (v === null || typeof v !== 'object' || v.format !== OFFICER_KEY_FORMAT)
    throw bad(`format must be ${OFFICER_KEY_FORMAT}`);
  if (v.version !== OFFICER_KEY_VERSION)
    throw new DecodeError(
      'UnsupportedVersion',
      `officer key file: version ${String(v.version)} is not supported`,
    );
  if (typeof v.name !== 'string' || !OFFICER_NAME_RE.test(v.name))
    throw bad('name is not a valid officer name');
  if (v.kdf?.alg !== KDF_ALG) throw bad(`kdf.alg must be ${KDF_ALG}`);
  if (v.cipher?.alg !== CIPHER_ALG) throw bad(`cipher.alg must be ${CIPHER_ALG}`);
  const cost = { opslimit: v.kdf.opslimit, memlimit: v.kdf.memlimit };
  checkCost(cost, 'officer key file');
  const hex = (x: unknown, what: string, len: number) => {
    try {
      return fromHex(x as string, what, len);
    } catch {
      throw bad(`${what} must be ${len} bytes of lowercase hex`);
    }
  };
  return {
    name: v.name,
    publicKey: hex(v.publicKey, 'publicKey', OFFICER_PUBLIC_KEY_LENGTH),
    cost,
    salt: hex(v.kdf.salt, 'kdf.salt', sodium.crypto_pwhash_SALTBYTES),
    nonce: hex(v.cipher.nonce, 'cipher.nonce', sodium.crypto_aead_xchacha20poly1305_ietf_NPUBBYTES),
    ciphertext: hex(
      v.cipher.ciphertext,
      'cipher.ciphertext',
      sodium.crypto_box_SECRETKEYBYTES + sodium.crypto_aead_xchacha20poly1305_ietf_ABYTES,
    ),
  };
}

/** The public half of a key file, without the passphrase. */
export function officerOfKeyFile(text: string): Officer {
  const p = parseKeyFile(text);
  return { name: p.name, publicKey: p.publicKey };
}

/**
 * Decrypts a key file. A wrong passphrase (or an altered file) is `Unauthorized`, saying so; the
 * derived file key is zeroed at once, the private key when the result is wiped.
 */
export function unlockOfficerKey(text: string, passphrase: Uint8Array): UnlockedOfficerKey {
  const p = parseKeyFile(text);
  const secretKey = sodium.sodium_malloc(sodium.crypto_box_SECRETKEYBYTES);
  const key = fileKey(passphrase, p.salt, p.cost);
  try {
    sodium.crypto_aead_xchacha20poly1305_ietf_decrypt(
      secretKey,
      null,
      p.ciphertext,
      associatedData(p.name, p.publicKey, p.cost, p.salt),
      p.nonce,
      key,
    );
  } catch {
    sodium.sodium_memzero(secretKey);
    throw new KmsError(
      'Unauthorized',
      `wrong passphrase for officer key ${p.name} (or the key file was altered)`,
    );
  } finally {
    sodium.sodium_memzero(key);
  }
  const derived = new Uint8Array(sodium.crypto_box_PUBLICKEYBYTES);
  sodium.crypto_scalarmult_base(derived, secretKey);
  if (!equalBytes(derived, p.publicKey)) {
    sodium.sodium_memzero(secretKey);
    throw new DecodeError(
      'DecodeError',
      `officer key file ${p.name}: the private key does not match the public key`,
    );
  }
  let wiped = false;
  return {
    name: p.name,
    publicKey: p.publicKey,
    open(ciphertext: Uint8Array): Uint8Array {
      if (wiped) throw new StateError('ValidationError', `officer key ${p.name} was wiped`);
      if (!(ciphertext instanceof Uint8Array) || ciphertext.length < sodium.crypto_box_SEALBYTES)
        throw new DecodeError('DecodeError', 'sealed box is too short');
      const m = new Uint8Array(ciphertext.length - sodium.crypto_box_SEALBYTES);
      if (!sodium.crypto_box_seal_open(m, ciphertext, p.publicKey, secretKey))
        throw new DecodeError('DecodeError', `sealed box does not open with officer key ${p.name}`);
      return m;
    },
    wipe(): void {
      wiped = true;
      sodium.sodium_memzero(secretKey);
    },
  };
}

/** Runs `use` with the unlocked key and wipes the private key afterwards, whatever happens. */
export function withOfficerKey<T>(
  text: string,
  passphrase: Uint8Array,
  use: (key: UnlockedOfficerKey) => T,
): T {
  const key = unlockOfficerKey(text, passphrase);
  try {
    return use(key);
  } finally {
    key.wipe();
  }
}

/** The sealing function of protocol/officer-backup.ts: a libsodium sealed box to `publicKey`. */
export const sealToOfficer: Seal = (publicKey, plaintext) => {
  if (!(publicKey instanceof Uint8Array) || publicKey.length !== OFFICER_PUBLIC_KEY_LENGTH)
    throw new StateError('ValidationError', 'officer public keys are 32-byte X25519 keys');
  const c = new Uint8Array(plaintext.length + sodium.crypto_box_SEALBYTES);
  sodium.crypto_box_seal(c, plaintext, publicKey);
  return c;
};

/** `{name, publicKey}` as JSON (public key in lowercase hex), as `kms recovery keygen --json` prints it. */
export function officerToJson(o: Officer): { name: string; publicKey: string } {
  return { name: o.name, publicKey: toHex(o.publicKey) };
}

/** An officer set from its JSON form `{officers: [{name, publicKey}], threshold}`. */
export function officerSetFromJson(v: unknown): OfficerSet {
  const bad = (what: string) => new StateError('ValidationError', `officer set: ${what}`);
  if (v === null || typeof v !== 'object' || !Array.isArray((v as any).officers))
    throw bad('officers must be an array');
  const raw = v as { officers: unknown[]; threshold: unknown };
  if (typeof raw.threshold !== 'number' || !Number.isSafeInteger(raw.threshold))
    throw bad('threshold must be an integer');
  const officers = raw.officers.map((o: any, i) => {
    if (o === null || typeof o !== 'object') throw bad(`officers[${i + 1}] must be {name, publicKey}`);
    checkName(o.name);
    let publicKey: Uint8Array;
    try {
      publicKey = fromHex(o.publicKey, 'publicKey', OFFICER_PUBLIC_KEY_LENGTH);
    } catch {
      throw bad(`officers[${i + 1}].publicKey must be 32 bytes of lowercase hex`);
    }
    return { name: o.name as string, publicKey };
  });
  return { officers, threshold: raw.threshold };
}
