/**
 * `kms keys sign-psbt KEY --in f.psbt --out f.signed.psbt` (issue 14, item 4): sends a PSBT to
 * `POST /v1/keys/{id}/sign-psbt` as a signed request and writes the PSBT with the key's
 * `tap_key_sig`s. The file may be binary BIP174 (`psbt\xff...`, as Bitcoin Core's GUI writes it) or
 * base64 text (as `bitcoin-cli` prints it); the output has the input's format. docs/howto-bitcoin.md.
 */
import { existsSync, writeFileSync } from 'node:fs';
import { type Command, Option } from 'commander';
import { readFileOr } from './kms-backup.ts';
import { type CliContext, UsageError } from './kms-client.ts';
import { isPending, printPending, resolveKeyId } from './kms-requests.ts';

/** BIP174 magic: "psbt" 0xff. */
const MAGIC = Buffer.from([0x70, 0x73, 0x62, 0x74, 0xff]);

type SignPsbtAnswer = {
  keyId: string;
  psbt: string;
  signedInputs: { index: number; path: string; sighash: string; signers: string[] }[];
  epoch: number;
  excluded: { participant: string; reason: string }[];
};

/** The PSBT of a file as base64, and whether the file was binary. */
export function readPsbtFile(file: string): { base64: string; binary: boolean } {
  const raw = readFileOr(file, '--in');
  if (raw.subarray(0, MAGIC.length).equals(MAGIC)) return { base64: raw.toString('base64'), binary: true };
  const text = raw.toString('utf8').trim();
  if (!/^[A-Za-z0-9+/]+={0,2}$/.test(text) || !Buffer.from(text, 'base64').subarray(0, 5).equals(MAGIC)) {
    throw new UsageError(`--in ${file}: not a PSBT (neither BIP174 binary nor its base64)`);
  }
  return { base64: text, binary: false };
}

export function registerPsbt(program: Command, ctx: CliContext): void {
  const keys =
    program.commands.find((c) => c.name() === 'keys') ??
    program.command('keys').description('create, use and manage keys').exitOverride();
  keys
    .command('sign-psbt <key>')
    .description(
      "sign a PSBT's inputs of a FROST_SECP256K1_TR key (key path, the key itself or a child named by " +
        'tap_bip32_derivation); every node computes the BIP341 hashes from the PSBT itself',
    )
    .requiredOption('--in <file>', 'the PSBT: BIP174 binary or base64 text')
    .requiredOption('--out <file>', 'where to write the signed PSBT (same format as --in)')
    .addOption(
      new Option('--network <network>', 'network of the output addresses in the audit record')
        .choices(['bitcoin', 'testnet', 'signet', 'regtest'])
        .default('bitcoin'),
    )
    .option('--force', 'overwrite --out if it exists')
    .action(async (key: string, o: { in: string; out: string; network: string; force?: boolean }) => {
      const input = readPsbtFile(o.in);
      if (existsSync(o.out) && !o.force) throw new UsageError(`--out ${o.out} exists (use --force)`);
      const c = ctx.client();
      const keyId = await resolveKeyId(c, key);
      const r = await c.request<SignPsbtAnswer>(
        'POST',
        `v1/keys/${encodeURIComponent(keyId)}/sign-psbt`,
        { psbt: input.base64, network: o.network },
        { signed: true },
      );
      if (isPending(r.status, r.body)) return printPending(ctx, r.body);
      const a = r.body;
      writeFileSync(o.out, input.binary ? Buffer.from(a.psbt, 'base64') : `${a.psbt}\n`);
      ctx.print({ ...a, out: o.out }, () => {
        const ins = a.signedInputs.map((s) => `${s.index} (${s.path})`).join(', ');
        const ex = a.excluded.map((b) => `${b.participant} (${b.reason})`).join(', ');
        return `signed input${a.signedInputs.length === 1 ? '' : 's'} ${ins} at epoch ${a.epoch}; wrote ${o.out}\n${ex ? `excluded: ${ex}\n` : ''}`;
      });
    });
}
