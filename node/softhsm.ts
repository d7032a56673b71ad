/**
 * SoftHSM2 helpers: create a token for a node in a directory of its own, find the library.
 *
 * SoftHSM2 reads its configuration file from the SOFTHSM2_CONF environment variable once, at
 * C_Initialize, and a process loads a PKCS#11 library once. So one process uses ONE SoftHSM2
 * configuration (one token directory) at a time: give each node process its own directory, or,
 * when several nodes share one process (tests), create all their tokens (distinct labels) in the
 * same directory. `Pkcs11Sealer` sets SOFTHSM2_CONF from its `softhsmConf` option before it
 * initializes the library and refuses a second, different configuration in the same process.
 *
 * Token creation runs `softhsm2-util --init-token`, which takes the PINs on its command line (visible
 * to other local users through `ps` for a moment): use it for development and test tokens; provision
 * production tokens with the vendor's tools.
 */
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { promisify } from 'node:util';
import { InfraError } from '../protocol/errors.ts';

const run = promisify(execFile);

export const SOFTHSM_INSTALL_HINT =
  'SoftHSM2 is not installed: install it with `apt-get install -y softhsm2` (Debian/Ubuntu; .ci/run does this), ' +
  'or set SOFTHSM2_LIB to the path of libsofthsm2.so';

/** Where distributions put the library; SOFTHSM2_LIB overrides. */
export const SOFTHSM_LIBRARY_PATHS: readonly string[] = [
  '/usr/lib/softhsm/libsofthsm2.so',
  '/usr/lib/x86_64-linux-gnu/softhsm/libsofthsm2.so',
  '/usr/lib/aarch64-linux-gnu/softhsm/libsofthsm2.so',
  '/usr/lib64/pkcs11/libsofthsm2.so',
  '/usr/local/lib/softhsm/libsofthsm2.so',
  '/opt/homebrew/lib/softhsm/libsofthsm2.so',
];

export type SoftHsmToken = {
  /** Path of libsofthsm2.so, for `Pkcs11Sealer.open({ library })`. */
  readonly library: string;
  /** The softhsm2.conf to use as SOFTHSM2_CONF (`Pkcs11Sealer.open({ softhsmConf })`). */
  readonly confPath: string;
  readonly tokenDir: string;
  readonly label: string;
};

/** The SoftHSM2 library path, or a SealerUnavailable error saying how to install it. */
export function findSoftHsmLibrary(): string {
  const env = process.env['SOFTHSM2_LIB'];
  const candidates = env ? [env] : SOFTHSM_LIBRARY_PATHS;
  for (const p of candidates) if (existsSync(p)) return p;
  throw new InfraError(
    'SealerUnavailable',
    `SoftHSM2 library not found (looked in ${candidates.join(', ')}). ${SOFTHSM_INSTALL_HINT}`,
  );
}

async function softhsmUtil(args: string[], conf: string): Promise<string> {
  try {
    const { stdout } = await run('softhsm2-util', args, {
      env: { ...process.env, SOFTHSM2_CONF: conf },
      timeout: 30_000,
    });
    return stdout;
  } catch (e) {
    const err = e as NodeJS.ErrnoException & { stderr?: string };
    if (err.code === 'ENOENT') {
      throw new InfraError('SealerUnavailable', `softhsm2-util not found. ${SOFTHSM_INSTALL_HINT}`);
    }
    // stderr from softhsm2-util names the problem (e.g. a duplicate label); it never echoes PINs.
    const why = (err.stderr ?? '').trim().split('\n')[0] ?? '';
    throw new InfraError('SealerUnavailable', `softhsm2-util ${args[0]} failed: ${why || 'unknown error'}`);
  }
}

/**
 * Writes `<dir>/softhsm2.conf` pointing at `<dir>/tokens` (kept if it already exists, so several
 * tokens can share one directory) and returns its path.
 */
export async function ensureSoftHsmConf(dir: string): Promise<{ confPath: string; tokenDir: string }> {
  const abs = resolve(dir);
  const tokenDir = join(abs, 'tokens');
  const confPath = join(abs, 'softhsm2.conf');
  await mkdir(tokenDir, { recursive: true, mode: 0o700 });
  const conf = `# Written by threshold-kms node/softhsm.ts\ndirectories.tokendir = ${tokenDir}\nobjectstore.backend = file\nlog.level = ERROR\nslots.removable = false\n`;
  let existing: string | undefined;
  try {
    existing = await readFile(confPath, 'utf8');
  } catch {
    existing = undefined;
  }
  if (existing === undefined) await writeFile(confPath, conf, { mode: 0o600 });
  return { confPath, tokenDir };
}

/**
 * Creates and initializes a SoftHSM2 token labelled `label` under `dir` (see ensureSoftHsmConf).
 * Labels are at most 32 bytes (PKCS#11 CK_TOKEN_INFO.label) and must be unique in the directory.
 */
export async function createSoftHsmToken(opts: {
  dir: string;
  label: string;
  pin: string;
  soPin: string;
}): Promise<SoftHsmToken> {
  if (Buffer.byteLength(opts.label) === 0 || Buffer.byteLength(opts.label) > 32) {
    throw new InfraError('ValidationError', 'token label must be 1 to 32 bytes');
  }
  for (const [what, pin] of [
    ['PIN', opts.pin],
    ['SO PIN', opts.soPin],
  ] as const) {
    // SoftHSM2 accepts PINs of 4 to 255 bytes.
    if (pin.length < 4 || pin.length > 255)
      throw new InfraError('ValidationError', `${what} must be 4 to 255 characters`);
  }
  const library = findSoftHsmLibrary();
  const { confPath, tokenDir } = await ensureSoftHsmConf(opts.dir);
  await softhsmUtil(
    ['--init-token', '--free', '--label', opts.label, '--so-pin', opts.soPin, '--pin', opts.pin],
    confPath,
  );
  return { library, confPath, tokenDir, label: opts.label };
}
