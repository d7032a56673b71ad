/**
 * Custody commands of `kms` (issue 14; docs/custody.md, docs/howto-solana.md):
 *   kms keys address KEY --network bitcoin|testnet|signet|regtest|solana [--path m/0/5]
 *   kms keys descriptor KEY [--path m/0/5 | --path m/0/*] [--network regtest]
 * (`kms keys public-key KEY --path m/0/5 --format xpub` and `kms keys sign KEY --derivation-path
 * m/0/5 --taproot-tweak none` are options of the commands in scripts/kms.ts.)
 */
import { type Command, Option } from 'commander';
import type { CliContext } from './kms-client.ts';

const BITCOIN = ['bitcoin', 'testnet', 'signet', 'regtest'] as const;

/** `?a=b&...` of the options given (none: empty). */
function query(params: Record<string, string | undefined>): string {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) if (v !== undefined) q.set(k, v);
  return q.size > 0 ? `?${q}` : '';
}

export function registerCustody(program: Command, ctx: CliContext): void {
  const keys =
    program.commands.find((c) => c.name() === 'keys') ??
    program.command('keys').description('create, use and manage keys').exitOverride();
  keys
    .command('address <key>')
    .description(
      'print the address of a key: P2TR bech32m (FROST_SECP256K1_TR) or Solana base58 (FROST_ED25519), ' +
        'of the key or of its non-hardened child at --path',
    )
    .addOption(
      new Option('--network <network>', 'bitcoin | testnet | signet | regtest | solana')
        .choices([...BITCOIN, 'solana'])
        .makeOptionMandatory(),
    )
    .option('--path <path>', 'non-hardened derivation path, e.g. m/0/5')
    .action(async (key: string, o: { network: string; path?: string }) => {
      const r = await ctx
        .client()
        .call(
          'GET',
          `v1/keys/${encodeURIComponent(key)}/address${query({ network: o.network, path: o.path })}`,
        );
      ctx.print(r, () => `${r.address}\n`);
    });
  keys
    .command('descriptor <key>')
    .description(
      'print the output descriptor of a FROST_SECP256K1_TR key with its BIP380 checksum: tr(INTERNAL_KEY), ' +
        'rawtr(OUTPUT_KEY) for a key with a merkle root, tr(XPUB/0/*) with --path m/0/*',
    )
    .option('--path <path>', 'non-hardened derivation path (m/0/5), or ending in /* for watch-only wallets')
    .addOption(new Option('--network <network>', 'xpub (bitcoin) or tpub (the others)').choices([...BITCOIN]))
    .action(async (key: string, o: { path?: string; network?: string }) => {
      const r = await ctx
        .client()
        .call(
          'GET',
          `v1/keys/${encodeURIComponent(key)}/descriptor${query({ path: o.path, network: o.network })}`,
        );
      ctx.print(r, () => `${r.descriptor}\n`);
    });
}
