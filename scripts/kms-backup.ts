/**
 * Backup, restore and import (issue 16): `kms recovery keygen`, `kms backup create|verify`,
 * `kms restore`, `kms keys import`.
 *
 * Officer keys are made and used here, in the CLI process, never on a server: `recovery keygen`
 * writes an encrypted X25519 key file (client/officer-key.ts); `backup verify --officer` opens that
 * officer's sub-shares locally; `restore` opens k officers' shares locally and deals them to the
 * new nodes, each dealing sealed to that node's identity-derived X25519 key (protocol/import-deal.ts),
 * so the coordinator only carries ciphertexts. Formats: docs/backup-format.md; the drill:
 * docs/howto-backup.md.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { createInterface } from 'node:readline';
import { type Command, Option } from 'commander';
import { createOfficerKey, DEFAULT_KDF_COST, type KdfCost, officerToJson } from '../client/officer-key.ts';
import { type CliContext, UsageError } from './kms-client.ts';

/**
 * Argon2id costs by name: libsodium's presets (crypto_pwhash_{OPS,MEM}LIMIT_{INTERACTIVE,MODERATE,
 * SENSITIVE}); `moderate` unless told. `interactive` is for tests and drills only.
 */
const KDF_COSTS: Record<string, KdfCost> = {
  interactive: { opslimit: 2, memlimit: 64 * 1024 * 1024 },
  moderate: DEFAULT_KDF_COST,
  sensitive: { opslimit: 4, memlimit: 1024 * 1024 * 1024 },
};

/** Reads a file, or a clear usage error naming it. */
export function readFileOr(file: string, what: string): Buffer {
  try {
    return readFileSync(file);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    throw new UsageError(`${what} ${file}: ${code === 'ENOENT' ? 'no such file' : 'cannot be read'}`);
  }
}

/**
 * The passphrase of an officer key file: `--passphrase-file` (one line; a trailing newline is not
 * part of it), else KMS_RECOVERY_PASSPHRASE, else asked on the terminal without echo. The caller
 * zeroes the bytes after use.
 */
export async function readPassphrase(file: string | undefined, prompt: string): Promise<Uint8Array> {
  if (file !== undefined) {
    const raw = readFileOr(file, '--passphrase-file');
    let end = raw.length;
    while (end > 0 && (raw[end - 1] === 0x0a || raw[end - 1] === 0x0d)) end--;
    const out = new Uint8Array(raw.subarray(0, end));
    raw.fill(0);
    if (out.length === 0) throw new UsageError(`--passphrase-file ${file} is empty`);
    return out;
  }
  const env = process.env.KMS_RECOVERY_PASSPHRASE;
  if (env !== undefined && env !== '') return new TextEncoder().encode(env);
  if (!process.stdin.isTTY)
    throw new UsageError(
      'no passphrase: give --passphrase-file FILE or KMS_RECOVERY_PASSPHRASE (no terminal to ask on)',
    );
  return new TextEncoder().encode(await askHidden(prompt));
}

async function askHidden(prompt: string): Promise<string> {
  const rl = createInterface({ input: process.stdin, output: process.stderr, terminal: true });
  const out = rl as unknown as { _writeToOutput: (s: string) => void; output: NodeJS.WritableStream };
  let asked = false;
  // Echo the prompt once, nothing of what is typed.
  out._writeToOutput = (s: string) => {
    if (!asked) {
      asked = true;
      out.output.write(s);
    }
  };
  try {
    return await new Promise<string>((resolve) => rl.question(prompt, resolve));
  } finally {
    process.stderr.write('\n');
    rl.close();
  }
}

export function registerBackup(program: Command, ctx: CliContext): void {
  const recovery = program
    .command('recovery')
    .description('recovery officers: offline key pairs that hold backups')
    .exitOverride();
  recovery
    .command('keygen')
    .description(
      "make an officer key pair: writes the private key file (encrypted under a passphrase) and prints the officer's {name, publicKey}",
    )
    .requiredOption('--name <name>', 'officer name, 1-64 characters of [A-Za-z0-9._-]')
    .requiredOption('--out <file>', 'where to write the private key file (refuses to overwrite)')
    .option('--passphrase-file <file>', 'passphrase (else KMS_RECOVERY_PASSPHRASE, else asked)')
    .addOption(
      new Option('--kdf <cost>', 'Argon2id cost (libsodium presets)')
        .choices(Object.keys(KDF_COSTS))
        .default('moderate'),
    )
    .action(async (o: { name: string; out: string; passphraseFile?: string; kdf: string }) => {
      const passphrase = await readPassphrase(o.passphraseFile, `passphrase for ${o.name}: `);
      let made: ReturnType<typeof createOfficerKey>;
      try {
        made = createOfficerKey(o.name, passphrase, KDF_COSTS[o.kdf]!);
      } catch (e) {
        throw new UsageError((e as Error).message);
      } finally {
        passphrase.fill(0);
      }
      try {
        writeFileSync(o.out, made.file, { flag: 'wx', mode: 0o600 });
      } catch (e) {
        const code = (e as NodeJS.ErrnoException).code;
        throw new UsageError(
          `--out ${o.out}: ${code === 'EEXIST' ? 'exists (not overwritten)' : 'cannot write'}`,
        );
      }
      const officer = officerToJson(made.officer);
      ctx.print(officer, () => `${JSON.stringify(officer)}\nprivate key file: ${o.out}\n`);
    });
}
