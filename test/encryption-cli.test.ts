/**
 * Envelope encryption end to end on real processes (issue 15): the devnet (a coordinator and three
 * node processes on SoftHSM2 tokens) and the `kms` CLI as a child process. An ENCRYPT_DECRYPT key
 * made by `kms keys create`; `kms encrypt` (local: only the public key is fetched), `kms decrypt`
 * (the data key unwrapped by t nodes, sealed to the CLI process), `kms data-key`; a wrong context
 * refused before any node is asked; and a 1 GiB file encrypted and decrypted with the CLI process's
 * peak resident memory (VmHWM, read from /proc while it runs) growing by less than
 * CLI_RSS_GROWTH_BOUND (160 MiB) over the same command on a 1 MiB file: memory does not follow
 * file size.
 */
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { createReadStream, createWriteStream, existsSync, readFileSync } from 'node:fs';
import { rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { pipeline } from 'node:stream/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { NODE_BIN, ROOT } from '../scripts/devnet-lib.ts';
import { type Devnet, createDevnet } from './helpers/devnet-process.ts';

const GiB = 2 ** 30;
const MiB = 2 ** 20;
/**
 * Bound on the growth of the CLI's peak RSS from a 1 MiB file to a 1 GiB file (the file is 1,024
 * MiB). The live data is a few 64 KiB chunks and 1 MiB read pieces; the rest is V8 letting about
 * 64 MiB of ArrayBuffer garbage accumulate between collections, and the stream buffers
 * (docs/envelope-format.md, "Memory"). Measured on a loaded 2-core machine: 66-99 MiB.
 */
const CLI_RSS_GROWTH_BOUND = 160 * MiB;

type Run = { code: number; stdout: string; stderr: string; peakRss: number };

describe('kms encrypt / decrypt / data-key on the devnet (real processes)', () => {
  let d: Devnet;
  let keyId: string;
  const file = (name: string) => join(d.dir, name);

  /** Runs `kms` as a child, sampling its VmHWM (peak resident set) from /proc every 20 ms. */
  const kms = (args: string[]): Promise<Run> =>
    new Promise((resolve, reject) => {
      const child = spawn(NODE_BIN, ['scripts/kms.ts', ...args], {
        cwd: ROOT,
        env: { ...process.env, ...d.env, KMS_URL: d.url, KMS_TOKEN: d.token },
      });
      let stdout = '';
      let stderr = '';
      let peakRss = 0;
      child.stdout.on('data', (b) => (stdout += b));
      child.stderr.on('data', (b) => (stderr += b));
      const sample = () => {
        try {
          const m = /VmHWM:\s+(\d+) kB/.exec(readFileSync(`/proc/${child.pid}/status`, 'utf8'));
          if (m) peakRss = Math.max(peakRss, Number(m[1]) * 1024);
        } catch {
          /* exited */
        }
      };
      const timer = setInterval(sample, 20);
      child.on('error', reject);
      child.on('exit', (code) => {
        clearInterval(timer);
        resolve({ code: code ?? -1, stdout, stderr, peakRss });
      });
    });

  beforeAll(async () => {
    d = await createDevnet(3);
    await d.start();
    const r = await kms([
      'keys',
      'create',
      '--spec',
      'TDH2_RISTRETTO255',
      '--usage',
      'ENCRYPT_DECRYPT',
      '-t',
      '2',
      '--alias',
      'files',
      '--json',
    ]);
    expect(r.code, r.stderr).toBe(0);
    keyId = JSON.parse(r.stdout).keyId;
  }, 180_000);
  afterAll(async () => {
    await d?.cleanup();
  });

  const decryptRequests = async () =>
    (
      (await d.api('GET', '/v1/audit?limit=1000')).body.records as { entry: Record<string, unknown> }[]
    ).filter((r) => r.entry['action'] === 'Decrypt' && r.entry['type'] === 'request').length;

  it('round-trips a file with its context; a wrong context is refused before any node is asked', async () => {
    await writeFile(file('note.txt'), 'meeting at noon\n');
    const ctxArgs = ['--context', 'project=apollo', '--context', 'stage=prod'];
    const e = await kms([
      'encrypt',
      '--key',
      'files',
      '--in',
      file('note.txt'),
      '--out',
      file('note.enc'),
      ...ctxArgs,
    ]);
    expect(e.code, e.stderr).toBe(0);
    const before = await decryptRequests();
    const wrong = await kms([
      'decrypt',
      '--in',
      file('note.enc'),
      '--out',
      file('wrong.txt'),
      '--context',
      'project=apollo',
      '--context',
      'stage=dev',
    ]);
    expect(wrong.code).not.toBe(0);
    expect(wrong.stderr).toMatch(/InvalidCiphertext.*differs in: stage/);
    expect(existsSync(file('wrong.txt'))).toBe(false);
    expect(await decryptRequests()).toBe(before);
    const ok = await kms([
      'decrypt',
      '--in',
      file('note.enc'),
      '--out',
      file('note.out'),
      ...ctxArgs,
      '--json',
    ]);
    expect(ok.code, ok.stderr).toBe(0);
    expect(JSON.parse(ok.stdout)).toMatchObject({
      keyId,
      encryptionContext: { project: 'apollo', stage: 'prod' },
    });
    expect(readFileSync(file('note.out'), 'utf8')).toBe('meeting at noon\n');
    expect(await decryptRequests()).toBe(before + 1);
    // The coordinator answered sealed shares only: its audit names the key and label, not the data.
    const last = (await d.api('GET', `/v1/audit?keyId=${keyId}&limit=1000`)).body.records
      .map((r: { entry: Record<string, unknown> }) => r.entry)
      .filter((x: Record<string, unknown>) => x['action'] === 'Decrypt' && x['type'] === 'decision')
      .at(-1);
    expect(last).toMatchObject({ sealed: true, labelDigest: expect.stringMatching(/^[0-9a-f]{64}$/) });
  });

  it('data-key makes a data key locally whose blob the API decrypts to it', async () => {
    const r = await kms(['data-key', '--key', keyId, '--context', 'purpose=db', '--json']);
    expect(r.code, r.stderr).toBe(0);
    const dk = JSON.parse(r.stdout);
    expect(Buffer.from(dk.plaintext, 'base64')).toHaveLength(32);
    const d1 = await d.api('POST', '/v1/decrypt', {
      ciphertextBlob: dk.ciphertextBlob,
      encryptionContext: { purpose: 'db' },
    });
    expect(d1.status).toBe(200);
    expect(d1.body.plaintext).toBe(dk.plaintext);
  });

  it('a 1 GiB file is encrypted and decrypted with the CLI process memory bounded', {
    timeout: 300_000,
  }, async () => {
    // A 1 MiB run of the same commands: the baseline the 1 GiB run is compared with.
    await writeFile(file('small.bin'), new Uint8Array(MiB).fill(7));
    const smallEnc = await kms([
      'encrypt',
      '--key',
      keyId,
      '--in',
      file('small.bin'),
      '--out',
      file('small.enc'),
    ]);
    const smallDec = await kms(['decrypt', '--in', file('small.enc'), '--out', file('small.out')]);
    expect(smallEnc.code, smallEnc.stderr).toBe(0);
    expect(smallDec.code, smallDec.stderr).toBe(0);

    // Written by streaming 1 MiB blocks (a random block, each copy numbered), hashed on the way.
    const inHash = createHash('sha256');
    const block = new Uint8Array(MiB);
    crypto.getRandomValues(block.subarray(0, 65536));
    for (let o = 65536; o < MiB; o += 65536) block.copyWithin(o, 0, 65536);
    async function* generate(): AsyncGenerator<Uint8Array> {
      for (let i = 0; i < GiB / MiB; i++) {
        const b = Buffer.from(block);
        b.writeUInt32BE(i, 0);
        b.writeUInt32BE(i, MiB - 4);
        inHash.update(b);
        yield b;
      }
    }
    await pipeline(generate(), createWriteStream(file('big.bin')));
    const enc = await kms([
      'encrypt',
      '--key',
      keyId,
      '--in',
      file('big.bin'),
      '--out',
      file('big.enc'),
      '--context',
      'size=1GiB',
      '--progress',
    ]);
    expect(enc.code, enc.stderr).toBe(0);
    expect(enc.stderr).toMatch(/encrypting \[#+\] 100% 1\.00 GiB \/ 1\.00 GiB/);
    await rm(file('big.bin'));
    const dec = await kms(['decrypt', '--in', file('big.enc'), '--out', file('big.out'), '--progress']);
    expect(dec.code, dec.stderr).toBe(0);
    expect(dec.stderr).toMatch(/decrypting \[#+\] 100%/);
    const outHash = createHash('sha256');
    for await (const piece of createReadStream(file('big.out'))) outHash.update(piece);
    expect(outHash.digest('hex')).toBe(inHash.digest('hex'));
    await rm(file('big.enc'));
    await rm(file('big.out'));

    const growth = Math.max(enc.peakRss - smallEnc.peakRss, dec.peakRss - smallDec.peakRss);
    console.log(
      `kms 1 GiB: peak RSS encrypt ${(enc.peakRss / MiB).toFixed(0)} MiB (1 MiB file: ${(smallEnc.peakRss / MiB).toFixed(0)}), ` +
        `decrypt ${(dec.peakRss / MiB).toFixed(0)} MiB (1 MiB file: ${(smallDec.peakRss / MiB).toFixed(0)})`,
    );
    expect(smallEnc.peakRss).toBeGreaterThan(0);
    expect(growth).toBeLessThan(CLI_RSS_GROWTH_BOUND);
  });
});
