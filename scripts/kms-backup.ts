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
import { randomUUID } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import { createInterface } from 'node:readline';
import { base64 } from '@scure/base';
import { type Command, Option } from 'commander';
import {
  createOfficerKey,
  DEFAULT_KDF_COST,
  type KdfCost,
  officerOfKeyFile,
  officerToJson,
  sealToOfficer,
  type UnlockedOfficerKey,
  unlockOfficerKey,
} from '../client/officer-key.ts';
import { fromHex, toHex } from '../protocol/bytes.ts';
import { isKmsError } from '../protocol/errors.ts';
import type { ParticipantId } from '../protocol/ids.ts';
import {
  dealExternal,
  type ExternalDealing,
  type ExternalDealPlan,
  importDealer,
  importKeyOf,
  nodeEncryptionKey,
} from '../protocol/import-deal.ts';
import { outputPublicKey, taprootKeys } from '../protocol/key-tweak.ts';
import {
  type BackupBundle,
  decodeBundle,
  officerIndexOf,
  type OfficerConfirmation,
  officerShare,
  restoreInputs,
  verifyBundle,
  verifyOfficerConfirmation,
} from '../protocol/officer-backup.ts';
import { isKeySpecName, keySpec, publicKeyFromGroupElement } from '../protocol/suites.ts';
import { loadClusterFile } from '../net/cluster-file.ts';
import { publicKeyOfPeer } from '../net/identity.ts';
import { devnetClusterFile, devnetDir } from './devnet-lib.ts';
import { type CliContext, UsageError } from './kms-client.ts';
import { isPending, printPending, resolveKeyId } from './kms-requests.ts';

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

  const backup = program
    .command('backup')
    .description('backups of a key to recovery officers (docs/backup-format.md)')
    .exitOverride();
  backup
    .command('create <key>')
    .description("the key's committee deals the key to k-of-m officers; writes the backup file")
    .requiredOption('--officers <file>', 'JSON: [{name, publicKey}, ...] or {officers: [...], threshold}')
    .option('-t, --threshold <k>', "officers needed to restore (default: the file's threshold)")
    .requiredOption('--out <file>', 'where to write the backup (refuses to overwrite)')
    .action(async (key: string, o: { officers: string; threshold?: string; out: string }) => {
      const set = officerSetFile(o.officers, o.threshold);
      const c = ctx.client();
      const keyId = await resolveKeyId(c, key);
      const r = await c.request('POST', `v1/keys/${encodeURIComponent(keyId)}/backups`, set, {
        signed: true,
      });
      if (isPending(r.status, r.body)) return printPending(ctx, r.body);
      const bytes = base64.decode(r.body.bundle);
      // The coordinator only carried it: check it here as anyone would, against the key it serves.
      const bundle = decodeBundle(bytes);
      const k = await c.call('GET', `v1/keys/${encodeURIComponent(keyId)}`);
      const problems = verifyBundle(bundle, { keyId, publicKey: expectedPublicKey(bundle, k.publicKey) });
      if (problems.length > 0)
        throw new UsageError(`the backup received does not verify: ${describe(problems)}`);
      writeNew(o.out, bytes);
      const out = { ...r.body, bundle: undefined, file: o.out, bytes: bytes.length };
      ctx.print(
        out,
        () =>
          `backup ${r.body.bundleId} of ${keyId} (epoch ${r.body.epoch}) to ${r.body.officers.join(', ')}, ${r.body.threshold} needed: ${o.out}\n`,
      );
    });
  backup
    .command('verify <file>')
    .description(
      "check a backup: structure, dealer signatures, commitments open to the public key (anyone); with --officer also that officer's sealed share (prints a signed confirmation)",
    )
    .option('--officer <file>', "an officer's key file: open and check that officer's share locally")
    .option(
      '--passphrase-file <file>',
      "the officer key's passphrase (else KMS_RECOVERY_PASSPHRASE, else asked)",
    )
    .option('--public-key <hex>', "the key's public key to compare with (group element or API public key)")
    .option(
      '--confirmation <file...>',
      "officers' confirmations (the JSON `backup verify --officer` prints): check each against this backup",
    )
    .action(
      async (
        file: string,
        o: { officer?: string; passphraseFile?: string; publicKey?: string; confirmation?: string[] },
      ) => {
        const bundle = readBundle(file);
        const expect = o.publicKey === undefined ? {} : { publicKey: expectedPublicKey(bundle, o.publicKey) };
        const problems = verifyBundle(bundle, expect);
        if (problems.length > 0) throw new UsageError(`${file} does not verify: ${describe(problems)}`);
        const b = bundle.body;
        const summary = {
          ok: true,
          bundleId: b.bundleId,
          keyId: b.keyId,
          keySpec: b.keySpec,
          epoch: b.epoch,
          groupElement: toHex(b.groupElement),
          officers: b.officerSet.officers.map((x) => x.name),
          threshold: b.officerSet.threshold,
          dealers: b.dealings.map((d) => d.dealer),
          metadata: b.metadata,
        };
        // Anyone can check an officer's proof that its share opens and lies on the commitments.
        const confirmed: string[] = [];
        for (const cf of o.confirmation ?? []) {
          const c = readConfirmation(cf);
          if (!verifyOfficerConfirmation(bundle, c))
            throw new UsageError(`${cf}: not a valid confirmation of an officer of this backup`);
          confirmed.push(c.name);
        }
        if (confirmed.length > 0) {
          const k = b.officerSet.threshold;
          ctx.print(
            { ...summary, confirmed },
            () =>
              `${file}: valid; confirmed by ${confirmed.join(', ')} (${confirmed.length} of ${summary.officers.length}, ${k} needed to restore)\n`,
          );
          return;
        }
        if (o.officer === undefined) {
          ctx.print(
            summary,
            () =>
              `${file}: valid backup of ${b.keyId} (${b.keySpec}, epoch ${b.epoch}), ${b.officerSet.threshold} of ${summary.officers.join(', ')}; the ciphertexts are checked only by each officer (--officer)\n`,
          );
          return;
        }
        const confirmation = await withOfficers(
          [o.officer],
          o.passphraseFile ? [o.passphraseFile] : [],
          bundle,
          ([k]) => {
            const share = officerShare(bundle, officerIndexOf(bundle, k!.publicKey), k!);
            share.key.secret.signingShare.fill(0);
            return share.confirmation;
          },
        );
        const c = {
          bundleId: confirmation.bundleId,
          officer: confirmation.officer,
          name: confirmation.name,
          verifyingShare: toHex(confirmation.verifyingShare),
          R: toHex(confirmation.R),
          z: toHex(confirmation.z),
        };
        ctx.print(
          { ...summary, confirmation: c },
          () =>
            `${file}: valid; ${c.name}'s share opens and lies on the commitments\nconfirmation: ${JSON.stringify(c)}\n`,
        );
      },
    );

  program
    .command('restore <file>')
    .description(
      'k officers (here, in this process) deal the backed-up key to new nodes: same public key, new epoch',
    )
    .requiredOption('--officer <file...>', "officer key files (at least the backup's threshold)")
    .option(
      '--passphrase-file <file...>',
      'one passphrase file per --officer, in order (else KMS_RECOVERY_PASSPHRASE, else asked)',
    )
    .requiredOption('--to <ids>', 'the new committee: node-6,node-7,...')
    .option('-t, --threshold <t>', 'signers needed in the new committee (default: the backed-up threshold)')
    .option('--cluster <file>', "the cluster file with the new nodes' peer ids (default: the devnet's)")
    .action(
      async (
        file: string,
        o: { officer: string[]; passphraseFile?: string[]; to: string; threshold?: string; cluster?: string },
      ) => {
        const bundle = readBundle(file);
        const problems = verifyBundle(bundle);
        if (problems.length > 0) throw new UsageError(`${file} does not verify: ${describe(problems)}`);
        const b = bundle.body;
        const k = b.officerSet.threshold;
        // Refused before any key is unlocked or anything is sent.
        const files = [...new Set(o.officer)];
        if (files.length < k)
          throw new UsageError(`this backup needs ${k} officers, ${files.length} given: nothing was sent`);
        const participants = nodeList(o.to);
        const threshold =
          o.threshold === undefined ? b.committee.signers.min : intOf(o.threshold, '--threshold');
        const nodeKeys = clusterKeys(o.cluster, participants);
        const plan = await withOfficers(files.slice(0, k), o.passphraseFile ?? [], bundle, (keys) => {
          let inputs: ReturnType<typeof restoreInputs>;
          try {
            inputs = restoreInputs(bundle, keys);
          } catch (e) {
            throw new UsageError((e as Error).message);
          }
          try {
            const spec = keySpec(b.keySpec);
            const p: ExternalDealPlan = {
              kind: 'restore',
              keyId: b.keyId,
              keySpec: b.keySpec,
              sessionId: randomUUID(),
              epoch: b.epoch + 1,
              threshold,
              participants,
              groupElement: b.groupElement,
              dealers: Object.fromEntries(
                inputs.dealers.map((d) => [d, inputs.oldPublic.verifyingShares[d]!]),
              ),
            };
            const dealings = inputs.dealers.map((d: ParticipantId) =>
              dealExternal(
                p,
                d,
                spec.Point.Fn.fromBytes(inputs.keys.get(d)!.secret.signingShare),
                nodeKeys,
                sealToOfficer,
              ),
            );
            return { p, dealings };
          } finally {
            // The officers' decrypted shares go as soon as they have dealt.
            inputs.wipe();
          }
        });
        const body = {
          bundle: base64.encode(readFileOr(file, 'backup')),
          epoch: plan.p.epoch,
          ...externalBody(plan.p, plan.dealings),
        };
        const c = ctx.client();
        const r = await c.request('POST', `v1/keys/${encodeURIComponent(b.keyId)}/restore`, body, {
          signed: true,
        });
        if (isPending(r.status, r.body)) return printPending(ctx, r.body);
        const want = toHex(outputPublicKey(keySpec(b.keySpec), b.groupElement));
        if (r.body.publicKey !== want)
          throw new UsageError(`the service reports public key ${r.body.publicKey}, the backup's is ${want}`);
        ctx.print(
          r.body,
          () =>
            `restored ${r.body.keyId} at epoch ${r.body.epoch} on ${r.body.participants.join(', ')}: public key ${r.body.publicKey}\n`,
        );
      },
    );

  const keys = program.commands.find((x) => x.name() === 'keys');
  if (!keys) throw new Error('kms: the keys command group must be registered first');
  keys
    .command('import')
    .description(
      'import a key: split here, dealt to the nodes, each checks its dealing against the public key',
    )
    .requiredOption('--spec <keySpec>', 'FROST_ED25519 | FROST_SECP256K1_TR')
    .requiredOption(
      '--secret-file <file>',
      'Ed25519: the 32-byte seed; secp256k1: the 32-byte private key (raw or 64 hex)',
    )
    .requiredOption('-t, --threshold <t>', 'signers needed')
    .option('-p, --participants <ids>', 'node-1,node-2,... (default: every node of the cluster file)')
    .option('--alias <alias>', 'friendly name')
    .option('--description <text>', 'free text')
    .option(
      '--taproot-internal',
      'FROST_SECP256K1_TR: the file holds the BIP341 internal private key (required: the service tweaks it)',
    )
    .option('--cluster <file>', "the cluster file with the nodes' peer ids (default: the devnet's)")
    .action(
      async (o: {
        spec: string;
        secretFile: string;
        threshold: string;
        participants?: string;
        alias?: string;
        description?: string;
        taprootInternal?: boolean;
        cluster?: string;
      }) => {
        if (!isKeySpecName(o.spec) || (o.spec !== 'FROST_ED25519' && o.spec !== 'FROST_SECP256K1_TR'))
          throw new UsageError('--spec: FROST_ED25519 or FROST_SECP256K1_TR');
        if (o.spec === 'FROST_SECP256K1_TR' && !o.taprootInternal)
          throw new UsageError(
            'FROST_SECP256K1_TR: say --taproot-internal (the file must hold the BIP341 internal private key; the service signs with its key-path output key, so an already tweaked output key cannot be imported)',
          );
        const spec = keySpec(o.spec);
        const threshold = intOf(o.threshold, '--threshold');
        const cluster = o.cluster ?? devnetClusterFile(devnetDir());
        const participants = o.participants === undefined ? allNodes(cluster) : nodeList(o.participants);
        const nodeKeys = clusterKeys(cluster, participants);
        const raw = readFileOr(o.secretFile, '--secret-file');
        const secret = secretBytes(raw);
        raw.fill(0);
        let plan: ExternalDealPlan;
        let dealing: ExternalDealing;
        try {
          const { scalar, groupElement } = importKeyOf(spec, secret);
          const dealer = importDealer(spec);
          plan = {
            kind: 'import',
            keyId: randomUUID(),
            keySpec: spec.name,
            sessionId: randomUUID(),
            epoch: 0,
            threshold,
            participants,
            groupElement,
            dealers: { [dealer]: groupElement },
          };
          dealing = dealExternal(plan, dealer, scalar, nodeKeys, sealToOfficer);
        } catch (e) {
          throw new UsageError(isKmsError(e) ? e.message : (e as Error).message);
        } finally {
          // The secret goes once dealt (the scalar is a JS bigint: it cannot be zeroed, only dropped).
          secret.fill(0);
        }
        const body = {
          keyId: plan.keyId,
          keySpec: plan.keySpec,
          groupElement: toHex(plan.groupElement),
          ...(o.alias === undefined ? {} : { alias: o.alias }),
          ...(o.description === undefined ? {} : { description: o.description }),
          ...(o.taprootInternal ? { taprootInternal: true } : {}),
          ...externalBody(plan, [dealing]),
        };
        const c = ctx.client();
        const r = await c.request('POST', 'v1/keys/import', body, { signed: true });
        if (isPending(r.status, r.body)) return printPending(ctx, r.body);
        const want = toHex(outputPublicKey(spec, plan.groupElement));
        if (r.body.publicKey !== want)
          throw new UsageError(`the service reports public key ${r.body.publicKey}, the secret's is ${want}`);
        ctx.print(
          r.body,
          () =>
            `imported ${r.body.keyId} (${r.body.keySpec}, origin ${r.body.origin}): public key ${r.body.publicKey}\n`,
        );
      },
    );
}

// ---------------------------------------------------------------------------------------------

const describe = (ps: readonly { part: string; reason: string }[]) =>
  ps.map((p) => `${p.part}: ${p.reason}`).join('; ');

function writeNew(file: string, bytes: Uint8Array | string): void {
  try {
    writeFileSync(file, bytes, { flag: 'wx', mode: 0o600 });
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    throw new UsageError(`--out ${file}: ${code === 'EEXIST' ? 'exists (not overwritten)' : 'cannot write'}`);
  }
}

function intOf(v: string, name: string): number {
  if (!/^[0-9]{1,4}$/.test(v)) throw new UsageError(`${name} must be an integer`);
  return Number(v);
}

function nodeList(v: string): string[] {
  const ids = v
    .split(',')
    .map((x) => x.trim())
    .filter(Boolean);
  if (ids.length < 2 || ids.some((x) => !/^node-[1-9][0-9]{0,3}$/.test(x)))
    throw new UsageError('node ids: node-6,node-7,... (at least two)');
  return ids;
}

/** The officer set of `--officers` (a list or a set), with `--threshold` if given. */
function officerSetFile(file: string, threshold: string | undefined): unknown {
  let raw: any;
  try {
    raw = JSON.parse(readFileOr(file, '--officers').toString('utf8'));
  } catch (e) {
    if (e instanceof UsageError) throw e;
    throw new UsageError(`--officers ${file}: not JSON`);
  }
  const officers = Array.isArray(raw) ? raw : raw?.officers;
  const k = threshold === undefined ? raw?.threshold : intOf(threshold, '--threshold');
  if (!Array.isArray(officers) || typeof k !== 'number')
    throw new UsageError('--officers: [{name, publicKey}, ...] with --threshold, or {officers, threshold}');
  return { officers: officers.map((x: any) => ({ name: x?.name, publicKey: x?.publicKey })), threshold: k };
}

function readBundle(file: string): BackupBundle {
  try {
    return decodeBundle(new Uint8Array(readFileOr(file, 'backup')));
  } catch (e) {
    if (e instanceof UsageError) throw e;
    throw new UsageError(`${file}: ${(e as Error).message}`);
  }
}

/** The group element's public key from a hex given as group element, internal key or API (output) public key. */
export function expectedPublicKey(bundle: BackupBundle, hex: string): Uint8Array {
  const spec = keySpec(bundle.body.keySpec);
  const own = bundle.body.groupElement;
  const given = hex.toLowerCase();
  // An API public key of a Taproot key is the output key of the group element (tweaked with the
  // key's merkle root when it has one, docs/custody.md): accept it, the internal key or the element.
  const root = bundle.body.metadata['merkleRoot'];
  const forms = [toHex(own), toHex(outputPublicKey(spec, own))];
  if (spec.name === 'FROST_SECP256K1_TR') {
    const merkleRoot = typeof root === 'string' && /^[0-9a-f]{64}$/.test(root) ? fromHex(root) : null;
    const t = taprootKeys(spec, own, merkleRoot);
    forms.push(toHex(t.internalKey), toHex(t.outputKey));
  }
  if (forms.includes(given)) return publicKeyFromGroupElement(spec, own);
  return Uint8Array.from(Buffer.from(given, 'hex'));
}

/** An officer confirmation as `backup verify --officer --json` prints it (hex fields). */
function readConfirmation(file: string): OfficerConfirmation {
  let v: any;
  try {
    v = JSON.parse(readFileOr(file, '--confirmation').toString('utf8'));
  } catch (e) {
    if (e instanceof UsageError) throw e;
    throw new UsageError(`${file}: not JSON`);
  }
  const c = v?.confirmation ?? v;
  const hexOf = (x: unknown, what: string) => {
    if (typeof x !== 'string' || !/^(?:[0-9a-f]{2}){1,64}$/.test(x))
      throw new UsageError(`${file}: ${what} must be hex`);
    return Uint8Array.from(Buffer.from(x, 'hex'));
  };
  if (typeof c?.bundleId !== 'string' || typeof c?.name !== 'string' || !Number.isSafeInteger(c?.officer))
    throw new UsageError(`${file}: {bundleId, officer, name, verifyingShare, R, z} expected`);
  return {
    bundleId: c.bundleId,
    officer: c.officer,
    name: c.name,
    verifyingShare: hexOf(c.verifyingShare, 'verifyingShare'),
    R: hexOf(c.R, 'R'),
    z: hexOf(c.z, 'z'),
  };
}

function secretBytes(raw: Buffer): Uint8Array {
  const text = raw.toString('utf8').trim();
  if (raw.length === 32) return new Uint8Array(raw);
  if (/^[0-9a-fA-F]{64}$/.test(text)) return new Uint8Array(Buffer.from(text, 'hex'));
  throw new UsageError('--secret-file: 32 raw bytes or 64 hex characters');
}

function allNodes(clusterFile: string): string[] {
  return loadCluster(clusterFile).nodes.map((n) => n.id);
}

function loadCluster(file: string) {
  try {
    return loadClusterFile(file);
  } catch (e) {
    throw new UsageError(
      `cannot read the cluster file ${file}: name it with --cluster FILE (${(e as Error).message})`,
    );
  }
}

/** Each node's X25519 key, from its peer id in the cluster file (protocol/import-deal.ts). */
function clusterKeys(file: string | undefined, participants: readonly string[]): Record<string, Uint8Array> {
  const cluster = loadCluster(file ?? devnetClusterFile(devnetDir()));
  const out: Record<string, Uint8Array> = {};
  for (const p of participants) {
    const n = cluster.nodes.find((x) => x.id === p);
    if (!n) throw new UsageError(`${p} is not in the cluster file`);
    out[p] = nodeEncryptionKey(publicKeyOfPeer(n.peerId));
  }
  return out;
}

function externalBody(plan: ExternalDealPlan, dealings: readonly ExternalDealing[]) {
  return {
    sessionId: plan.sessionId,
    threshold: plan.threshold,
    participants: [...plan.participants],
    dealings: dealings.map((d) => ({
      dealer: d.dealer,
      commitments: d.commitments.map(toHex),
      ciphertexts: Object.fromEntries(Object.entries(d.ciphertexts).map(([n, c]) => [n, toHex(c)])),
    })),
  };
}

/**
 * Unlocks officer key files (each must be an officer of `bundle`: checked before any passphrase is
 * asked), runs `use`, and wipes every private key whatever happens.
 */
async function withOfficers<T>(
  files: readonly string[],
  passphraseFiles: readonly string[],
  bundle: BackupBundle,
  use: (keys: UnlockedOfficerKey[]) => T,
): Promise<T> {
  const texts = files.map((f) => readFileOr(f, 'officer key file').toString('utf8'));
  texts.forEach((t, i) => {
    let officer: ReturnType<typeof officerOfKeyFile>;
    try {
      officer = officerOfKeyFile(t);
    } catch (e) {
      throw new UsageError(`${files[i]}: ${(e as Error).message}`);
    }
    try {
      officerIndexOf(bundle, officer.publicKey);
    } catch {
      throw new UsageError(
        `${files[i]}: officer ${officer.name}'s key is not one of this backup's officers (${bundle.body.officerSet.officers.map((o) => o.name).join(', ')})`,
      );
    }
  });
  const unlocked: UnlockedOfficerKey[] = [];
  try {
    for (const [i, t] of texts.entries()) {
      const name = officerOfKeyFile(t).name;
      const pass = await readPassphrase(passphraseFiles[i], `passphrase for ${name}: `);
      try {
        unlocked.push(unlockOfficerKey(t, pass));
      } catch (e) {
        throw new UsageError(`${files[i]}: ${(e as Error).message}`);
      } finally {
        pass.fill(0);
      }
    }
    try {
      return use(unlocked);
    } catch (e) {
      if (e instanceof UsageError) throw e;
      throw new UsageError((e as Error).message);
    }
  } finally {
    for (const k of unlocked) k.wipe();
  }
}
