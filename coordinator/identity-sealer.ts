/**
 * The coordinator's libp2p identity key, sealed at rest (review H-4): whoever reads the
 * coordinator's disk or a backup of it must not become "the coordinator" to every node. The
 * scheme is the software sealer's (node/sealer-software.ts; the coordinator may not import node/):
 *
 * - master key = scrypt(passphrase, salt, N = 2^logN, r = 8, p = 1), 32 bytes (RFC 7914);
 * - sealing key = HKDF-SHA256(master, salt, "threshold-kms/coordinator-identity/v1") (RFC 5869);
 * - AES-256-GCM over libp2p's protobuf encoding of the key, associated data = that domain string,
 *   so a blob of another purpose never opens here.
 *
 * The file is JSON: `{format, v, kdf, logN, r, p, salt, iv, ciphertext}` (hex / base64). A wrong
 * passphrase and a tampered file both fail the tag check and are refused; nothing falls back to a
 * plaintext key. An identity file from before sealing (the raw protobuf bytes) is sealed in place
 * when a passphrase is configured (written to a temporary file, synced, renamed over the old one).
 */
import { createCipheriv, createDecipheriv, hkdfSync, randomBytes, scrypt } from 'node:crypto';
import { closeSync, fsyncSync, openSync, readFileSync, renameSync, writeSync } from 'node:fs';
import { KmsError } from '../protocol/errors.ts';
import {
  type IdentityKey,
  generateIdentityKey,
  identityKeyFromBytes,
  identityKeyToBytes,
} from '../net/identity.ts';

export const SEALED_IDENTITY_FORMAT = 'tkms-sealed-identity';
const DOMAIN = 'threshold-kms/coordinator-identity/v1';
const DEFAULT_LOG_N = 15;
/** Bounds accepted from a file: fast enough to open in seconds, slow enough to matter. */
const MIN_LOG_N = 10;
const MAX_LOG_N = 20;
const IV_BYTES = 12;
const TAG_BYTES = 16;

type SealedIdentityFile = {
  format: typeof SEALED_IDENTITY_FORMAT;
  v: 1;
  kdf: 'scrypt';
  logN: number;
  r: 8;
  p: 1;
  /** 32 bytes, hex. */
  salt: string;
  /** 12 bytes, hex. */
  iv: string;
  /** AES-256-GCM ciphertext ‖ tag, base64. */
  ciphertext: string;
};

const fail = (msg: string): never => {
  throw new KmsError('SealError', `coordinator identity: ${msg}`);
};

async function sealingKey(passphrase: string, salt: Buffer, logN: number): Promise<Buffer> {
  const master = await new Promise<Buffer>((ok, ko) =>
    scrypt(
      passphrase.normalize('NFKC'),
      salt,
      32,
      { N: 2 ** logN, r: 8, p: 1, maxmem: 256 * 2 ** logN * 8 + 1024 * 1024 },
      (e, k) => (e ? ko(e) : ok(k)),
    ),
  );
  const key = Buffer.from(hkdfSync('sha256', master, salt, DOMAIN, 32));
  master.fill(0);
  return key;
}

/** Seals the key's bytes under the passphrase: the JSON text of the sealed identity file. */
export async function sealIdentity(
  key: IdentityKey,
  passphrase: string,
  logN = DEFAULT_LOG_N,
): Promise<string> {
  if (passphrase.length === 0) fail('the passphrase is empty');
  const salt = randomBytes(32);
  const iv = randomBytes(IV_BYTES);
  const k = await sealingKey(passphrase, salt, logN);
  const plain = identityKeyToBytes(key);
  const c = createCipheriv('aes-256-gcm', k, iv, { authTagLength: TAG_BYTES });
  c.setAAD(Buffer.from(DOMAIN));
  const ct = Buffer.concat([c.update(plain), c.final(), c.getAuthTag()]);
  plain.fill(0);
  k.fill(0);
  const file: SealedIdentityFile = {
    format: SEALED_IDENTITY_FORMAT,
    v: 1,
    kdf: 'scrypt',
    logN,
    r: 8,
    p: 1,
    salt: salt.toString('hex'),
    iv: iv.toString('hex'),
    ciphertext: ct.toString('base64'),
  };
  return `${JSON.stringify(file, null, 2)}\n`;
}

function parseSealed(text: string): SealedIdentityFile | undefined {
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch {
    return undefined;
  }
  const f = v as Partial<SealedIdentityFile> | null;
  if (f?.format !== SEALED_IDENTITY_FORMAT) return undefined;
  if (
    f.v !== 1 ||
    f.kdf !== 'scrypt' ||
    f.r !== 8 ||
    f.p !== 1 ||
    !Number.isInteger(f.logN) ||
    f.logN! < MIN_LOG_N ||
    f.logN! > MAX_LOG_N ||
    !/^[0-9a-f]{64}$/.test(f.salt ?? '') ||
    !/^[0-9a-f]{24}$/.test(f.iv ?? '') ||
    typeof f.ciphertext !== 'string' ||
    !/^[A-Za-z0-9+/]{20,400}={0,2}$/.test(f.ciphertext)
  ) {
    return fail('the sealed identity file is malformed');
  }
  return f as SealedIdentityFile;
}

/** Opens a sealed identity file's text. Wrong passphrase or tampered file: SealError. */
export async function unsealIdentity(text: string, passphrase: string): Promise<IdentityKey> {
  const f = parseSealed(text) ?? fail('not a sealed identity file');
  const k = await sealingKey(passphrase, Buffer.from(f.salt, 'hex'), f.logN);
  const ct = Buffer.from(f.ciphertext, 'base64');
  if (ct.length <= TAG_BYTES) fail('the sealed identity file is truncated');
  const d = createDecipheriv('aes-256-gcm', k, Buffer.from(f.iv, 'hex'), { authTagLength: TAG_BYTES });
  d.setAAD(Buffer.from(DOMAIN));
  d.setAuthTag(ct.subarray(ct.length - TAG_BYTES));
  const head = d.update(ct.subarray(0, ct.length - TAG_BYTES));
  let plain: Buffer;
  try {
    plain = Buffer.concat([head, d.final()]);
  } catch {
    head.fill(0);
    return fail('the sealed identity does not open: wrong passphrase, or the file was altered');
  } finally {
    k.fill(0);
  }
  try {
    return identityKeyFromBytes(new Uint8Array(plain));
  } finally {
    plain.fill(0);
    head.fill(0);
  }
}

/** Where the passphrase comes from: a file (config or KMS_IDENTITY_PASSPHRASE_FILE) or the env. */
export type PassphraseSource = { file?: string; env?: NodeJS.ProcessEnv };

/** The configured passphrase, or undefined when none is configured. Never echoes it. */
export function readIdentityPassphrase(src: PassphraseSource): string | undefined {
  const env = src.env ?? process.env;
  const file = src.file ?? env.KMS_IDENTITY_PASSPHRASE_FILE;
  if (file) {
    let v: string;
    try {
      v = readFileSync(file, 'utf8').trim();
    } catch (e) {
      throw new KmsError('ValidationError', `config: cannot read the identity passphrase file ${file}`, {
        cause: e,
      });
    }
    if (v.length === 0) throw new KmsError('ValidationError', `config: ${file} holds no passphrase`);
    return v;
  }
  const v = env.KMS_IDENTITY_PASSPHRASE;
  return v ? v : undefined;
}

const NO_PASSPHRASE =
  'no passphrase configured: set cluster.identityPassphraseFile in the config (or KMS_IDENTITY_PASSPHRASE_FILE, KMS_IDENTITY_PASSPHRASE); the identity key is kept only sealed';

/** Writes `text` to a temporary file next to `file`, syncs it, and renames it over `file` (0600). */
function replaceFile(file: string, text: string): void {
  const tmp = `${file}.tmp-${process.pid}`;
  const fd = openSync(tmp, 'w', 0o600);
  try {
    writeSync(fd, text);
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
  renameSync(tmp, file);
}

/**
 * The coordinator's identity from `file`: unsealed; a plaintext file of an older version is
 * sealed in place first (`onMigrated` says so); a missing file is created (when `create`).
 */
export async function loadCoordinatorIdentity(opts: {
  file: string;
  passphrase: string | undefined;
  create?: boolean;
  onMigrated?: (file: string) => void;
}): Promise<IdentityKey> {
  let raw: Buffer | undefined;
  try {
    raw = readFileSync(opts.file);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e;
    raw = undefined;
  }
  const passphrase = opts.passphrase ?? fail(NO_PASSPHRASE);
  if (raw === undefined) {
    if (!opts.create) return fail(`${opts.file} does not exist: run \`node coordinator/main.ts init\``);
    const key = await generateIdentityKey();
    replaceFile(opts.file, await sealIdentity(key, passphrase));
    return key;
  }
  if (parseSealed(raw.toString('utf8')) !== undefined)
    return unsealIdentity(raw.toString('utf8'), passphrase);
  // Not a sealed file: the plaintext key file of a version before sealing, or garbage.
  let key: IdentityKey;
  try {
    key = identityKeyFromBytes(new Uint8Array(raw));
  } catch {
    return fail(`${opts.file} is neither a sealed identity nor an identity key`);
  } finally {
    raw.fill(0);
  }
  replaceFile(opts.file, await sealIdentity(key, passphrase));
  opts.onMigrated?.(opts.file);
  return key;
}
