/**
 * `kms encrypt`, `kms decrypt` and `kms data-key` (issue 15): envelope encryption of files of any
 * size (client/envelope-file.ts; format: docs/envelope-format.md).
 *
 * - encrypt: the key's public key is fetched (GET /v1/keys/{id}: an ENCRYPT_DECRYPT key), then
 *   everything is local: a fresh data key, wrapped under the KMS key (TDH2, client/encrypt.ts),
 *   and the file sealed in AES-256-GCM chunks, streaming. No node is involved and the data key
 *   never leaves this process.
 * - decrypt: the header is read and its context checked (against `--context` when given) before
 *   any node is asked; the data key is unwrapped through POST /v1/decrypt with a fresh client key
 *   as recipient, so each node seals its share to this process and the coordinator never sees the
 *   data key (client/decrypt-api.ts: shares verified and combined here, bad senders named).
 * - data-key: a fresh AES-256 data key and its wrapped form, made locally (AWS GenerateDataKey's
 *   output shape), from the public key only.
 * A progress bar on stderr for files of 8 MiB or more (on a terminal, or with --progress).
 */
import { stat } from 'node:fs/promises';
import type { Command } from 'commander';
import { recipientUnwrap } from '../client/decrypt-api.ts';
import { generateDataKey } from '../client/encrypt.ts';
import { checkContext, type EncryptionContext } from '../client/encryption-context.ts';
import { DEFAULT_CHUNK_SIZE, decryptFile, encryptFile, type Progress } from '../client/envelope-file.ts';
import { type CliContext, type Client, type Io, UsageError } from './kms-client.ts';
import { resolveKeyId } from './kms-requests.ts';

const PROGRESS_MIN_BYTES = 8 * 1024 * 1024;

/** `--context k=v` (repeatable) as an encryption context; the first `=` splits. */
function parseContext(items: readonly string[] | undefined): EncryptionContext | undefined {
  if (items === undefined) return undefined;
  const ctx: Record<string, string> = {};
  for (const item of items) {
    const at = item.indexOf('=');
    if (at <= 0) throw new UsageError(`--context ${JSON.stringify(item)}: expected key=value`);
    const k = item.slice(0, at);
    if (Object.hasOwn(ctx, k)) throw new UsageError(`--context: key ${JSON.stringify(k)} given twice`);
    ctx[k] = item.slice(at + 1);
  }
  try {
    return checkContext(ctx);
  } catch (e) {
    throw new UsageError(`--context: ${(e as Error).message}`);
  }
}

const MiB = 1024 * 1024;
const size = (n: number) =>
  n >= 1024 * MiB ? `${(n / 1024 / MiB).toFixed(2)} GiB` : `${(n / MiB).toFixed(1)} MiB`;

/** A one-line bar on stderr, redrawn at most every 100 ms; lines at each 10% off a terminal. */
export function progressBar(io: Io, label: string, force: boolean): { onProgress: Progress; done(): void } {
  const started = Date.now();
  let last = 0;
  let lastTenth = -1;
  let shown = false;
  const onProgress: Progress = (doneBytes, total) => {
    if (!total || total < PROGRESS_MIN_BYTES) return;
    const now = Date.now();
    const frac = Math.min(1, doneBytes / total);
    const rate = doneBytes / Math.max(0.001, (now - started) / 1000);
    if (io.isTTY || force) {
      if (now - last < 100 && frac < 1) return;
      last = now;
      const width = 30;
      const full = Math.round(frac * width);
      io.err(
        `\r${label} [${'#'.repeat(full)}${' '.repeat(width - full)}] ${(frac * 100).toFixed(0).padStart(3)}% ${size(doneBytes)} / ${size(total)} ${size(rate)}/s`,
      );
      shown = true;
    } else {
      const tenth = Math.floor(frac * 10);
      if (tenth === lastTenth) return;
      lastTenth = tenth;
      io.err(`${label}: ${tenth * 10}% (${size(doneBytes)} of ${size(total)})\n`);
    }
  };
  return { onProgress, done: () => shown && io.err('\n') };
}

type KeyAnswer = {
  keyId: string;
  keyUsage?: string;
  keySpec: string;
  publicKey: string | null;
  state: string;
};

/** The public key of an ENCRYPT_DECRYPT key (by id or alias). */
async function encryptionKey(c: Client, key: string): Promise<{ keyId: string; publicKey: Uint8Array }> {
  const keyId = await resolveKeyId(c, key);
  const k = await c.call<KeyAnswer>('GET', `v1/keys/${encodeURIComponent(keyId)}`);
  if (k.keyUsage !== 'ENCRYPT_DECRYPT')
    throw new UsageError(
      `key ${keyId} is a ${k.keyUsage ?? 'SIGN_VERIFY'} key (${k.keySpec}), not ENCRYPT_DECRYPT`,
    );
  if (k.publicKey === null || k.state !== 'Enabled')
    throw new UsageError(`key ${keyId} is ${k.state}: it cannot encrypt`);
  return { keyId, publicKey: new Uint8Array(Buffer.from(k.publicKey, 'hex')) };
}

export function registerEncryption(program: Command, ctx: CliContext): void {
  const { io, client, print } = ctx;

  program
    .command('encrypt')
    .description('envelope-encrypt a file locally under an ENCRYPT_DECRYPT key (no node is involved)')
    .requiredOption('--key <key>', 'key id or alias')
    .requiredOption('--in <file>', 'file to encrypt')
    .requiredOption('--out <file>', 'encrypted file to write')
    .option('--context <k=v...>', 'encryption context entries (stored in the header, matched on decrypt)')
    .option('--chunk-size <bytes>', `plaintext bytes per chunk (default ${DEFAULT_CHUNK_SIZE})`, (v) =>
      Number.parseInt(v, 10),
    )
    .option('--force', 'replace an existing output file')
    .option('--progress', 'show the progress bar even when stderr is not a terminal')
    .action(async (o) => {
      const encryptionContext = parseContext(o.context) ?? {};
      const { keyId, publicKey } = await encryptionKey(client(), o.key);
      const bar = progressBar(io, 'encrypting', o.progress === true);
      try {
        await encryptFile({
          input: o.in,
          output: o.out,
          overwrite: o.force === true,
          keyId,
          publicKey,
          encryptionContext,
          ...(o.chunkSize === undefined ? {} : { chunkSize: o.chunkSize }),
          onProgress: bar.onProgress,
        });
      } finally {
        bar.done();
      }
      const { size: bytes } = await stat(o.out);
      print(
        { keyId, output: o.out, bytes, encryptionContext },
        () => `encrypted ${o.in} -> ${o.out} under ${keyId}\n`,
      );
    });

  program
    .command('decrypt')
    .description(
      'decrypt a file made by `kms encrypt` (its data key unwrapped by t nodes, sealed to this process)',
    )
    .requiredOption('--in <file>', 'encrypted file')
    .requiredOption('--out <file>', 'plaintext file to write (appears only if every chunk verifies)')
    .option('--context <k=v...>', "the expected encryption context: must equal the file's exactly")
    .option('--force', 'replace an existing output file')
    .option('--progress', 'show the progress bar even when stderr is not a terminal')
    .action(async (o) => {
      const expected = parseContext(o.context);
      const c = client();
      const post = (path: string, body: unknown) => c.call('POST', path, body, { signed: true });
      const unwrap = recipientUnwrap(post, (named) => {
        for (const b of named)
          io.err(`kms: ${b.participant} sent a bad decryption share (${b.reason}); left out\n`);
      });
      const bar = progressBar(io, 'decrypting', o.progress === true);
      let header: Awaited<ReturnType<typeof decryptFile>>;
      try {
        header = await decryptFile({
          input: o.in,
          output: o.out,
          overwrite: o.force === true,
          unwrap,
          ...(expected === undefined ? {} : { encryptionContext: expected }),
          onProgress: bar.onProgress,
        });
      } finally {
        bar.done();
      }
      print(
        { keyId: header.keyId, output: o.out, encryptionContext: header.encryptionContext },
        () => `decrypted ${o.in} -> ${o.out} (key ${header.keyId})\n`,
      );
    });

  program
    .command('data-key')
    .description('a fresh AES-256 data key and its ciphertext blob, made locally from the public key')
    .requiredOption('--key <key>', 'key id or alias')
    .option('--context <k=v...>', 'encryption context entries')
    .option('--without-plaintext', 'print only the ciphertext blob')
    .action(async (o) => {
      const encryptionContext = parseContext(o.context) ?? {};
      const { keyId, publicKey } = await encryptionKey(client(), o.key);
      const dk = generateDataKey({ keyId, publicKey, encryptionContext });
      try {
        const blob = Buffer.from(dk.ciphertextBlob).toString('base64');
        const plaintext = o.withoutPlaintext ? undefined : Buffer.from(dk.plaintext).toString('base64');
        print(
          { keyId, ciphertextBlob: blob, ...(plaintext === undefined ? {} : { plaintext }) },
          () =>
            `keyId: ${keyId}\nciphertextBlob: ${blob}\n${plaintext === undefined ? '' : `plaintext: ${plaintext}\n`}`,
        );
      } finally {
        dk.plaintext.fill(0);
      }
    });
}
