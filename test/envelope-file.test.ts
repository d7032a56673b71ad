/**
 * The client module (issue 15, "Files and CLI", client side): AWS KMS-shaped Encrypt and
 * GenerateDataKey from a TDH2 public key with no node involved (client/encrypt.ts), decryption
 * shares checked and combined by the client (client/decryption-shares.ts), and envelope encryption
 * of files in authenticated chunks (client/envelope-file.ts, docs/envelope-format.md).
 *
 * Decryption goes through an in-process cluster (test/helpers/tdh2-cluster.ts): members holding
 * ristretto255 packages from the real DKG check each blob and send real TDH2 shares with
 * Chaum–Pedersen proofs; the node wiring (`POST /v1/decrypt`) replaces it later.
 *
 * The large-file test runs 256 MiB by default and 1 GiB with KMS_ENVELOPE_1GIB=1, in a child
 * process whose resident-set growth it bounds (the size is in the test's title).
 */
import { execFile } from 'node:child_process';
import { createHash, randomFillSync } from 'node:crypto';
import { createReadStream, createWriteStream, existsSync } from 'node:fs';
import { mkdtemp, open, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { pipeline } from 'node:stream/promises';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { combineDecryptionShares } from '../client/decryption-shares.ts';
import { encrypt, generateDataKey, type Unwrap } from '../client/encrypt.ts';
import type { EncryptionContext } from '../client/encryption-context.ts';
import { DEFAULT_CHUNK_SIZE, decryptFile, decryptStream, encryptFile } from '../client/envelope-file.ts';
import { decodeBlob } from '../protocol/ciphertext-blob.ts';
import { KmsError, ProtocolError } from '../protocol/errors.ts';
import { inProcessCluster } from './helpers/tdh2-cluster.ts';

const KEY_ID = '0e7d6f52-9b1f-4c55-a9f4-2f0c35f4a5d1';
const CTX: EncryptionContext = { purpose: 'backup', tenant: 'acme' };
const TAG = 16;
const cluster = inProcessCluster({ keyId: KEY_ID, threshold: 3, size: 5 });

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'envelope-test-'));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

let fileCounter = 0;
const path = (name: string) => join(dir, `${++fileCounter}-${name}`);

/** Random test data (not a key). */
const bytes = (n: number) => randomFillSync(new Uint8Array(n));

/** Byte equality without vitest's element-wise diff (slow on large arrays). */
const sameBytes = (a: Uint8Array, b: Uint8Array) => Buffer.compare(a, b) === 0;

const headerLength = (enc: Uint8Array) => new DataView(enc.buffer, enc.byteOffset).getUint32(6);

/** Encrypts `data` to a file and returns the path and its bytes. */
async function sealed(
  data: Uint8Array,
  opts: { chunkSize?: number; encryptionContext?: EncryptionContext } = {},
): Promise<{ file: string; enc: Uint8Array }> {
  const input = path('plain');
  const file = path('plain.enc');
  await writeFile(input, data);
  await encryptFile({ input, output: file, keyId: KEY_ID, publicKey: cluster.publicKey, ...opts });
  return { file, enc: new Uint8Array(await readFile(file)) };
}

async function partialsLeft(): Promise<string[]> {
  return (await readdir(dir)).filter((f) => f.endsWith('.partial'));
}

/** Decrypting `enc` fails with `pattern`, and neither the output nor a temporary file is left. */
async function expectRefused(
  enc: Uint8Array,
  pattern: RegExp,
  opts: { encryptionContext?: EncryptionContext; unwrap?: Unwrap } = {},
): Promise<void> {
  const input = path('tampered.enc');
  const output = path('tampered.out');
  await writeFile(input, enc);
  await expect(decryptFile({ input, output, unwrap: cluster.unwrap, ...opts })).rejects.toThrow(pattern);
  expect(existsSync(output)).toBe(false);
  expect(await partialsLeft()).toEqual([]);
}

async function* once(b: Uint8Array): AsyncGenerator<Uint8Array> {
  yield b;
}

describe('client/encrypt.ts: Encrypt and GenerateDataKey from the public key, no node involved', () => {
  it('Encrypt round-trips through t members under the same context and refuses over 4 KiB', async () => {
    const plaintext = bytes(4096);
    const r = encrypt({ keyId: KEY_ID, publicKey: cluster.publicKey, plaintext, encryptionContext: CTX });
    expect(r.keyId).toBe(KEY_ID);
    expect(decodeBlob(r.ciphertextBlob).keyId).toBe(KEY_ID);
    expect(await cluster.unwrap(r.ciphertextBlob, { tenant: 'acme', purpose: 'backup' })).toEqual(plaintext);
    expect(() => encrypt({ keyId: KEY_ID, publicKey: cluster.publicKey, plaintext: bytes(4097) })).toThrow(
      /over 4096 bytes/,
    );
    expect(() =>
      encrypt({ keyId: KEY_ID, publicKey: new Uint8Array(32), plaintext: bytes(1), encryptionContext: CTX }),
    ).toThrow(/not a ristretto255 element/);
  });

  it('GenerateDataKey gives a fresh 32-byte key whose blob the cluster unwraps to the same key', async () => {
    const a = generateDataKey({ keyId: KEY_ID, publicKey: cluster.publicKey, encryptionContext: CTX });
    const b = generateDataKey({ keyId: KEY_ID, publicKey: cluster.publicKey, encryptionContext: CTX });
    expect(a.plaintext).toHaveLength(32);
    expect(a.plaintext).not.toEqual(b.plaintext);
    expect(await cluster.unwrap(a.ciphertextBlob, CTX)).toEqual(a.plaintext);
    // No context is the empty context, for encryption and decryption alike.
    const c = generateDataKey({ keyId: KEY_ID, publicKey: cluster.publicKey });
    expect(await cluster.unwrap(c.ciphertextBlob, {})).toEqual(c.plaintext);
  });

  it('a wrong encryption context is refused by the members before any share is computed', async () => {
    const { ciphertextBlob } = encrypt({
      keyId: KEY_ID,
      publicKey: cluster.publicKey,
      plaintext: bytes(32),
      encryptionContext: CTX,
    });
    for (const wrong of [{ ...CTX, tenant: 'evil' }, { purpose: 'backup' }, { ...CTX, extra: '' }, {}])
      await expect(cluster.unwrap(ciphertextBlob, wrong)).rejects.toThrow(/InvalidCiphertext/);
    expect(() => cluster.shareFrom(0, ciphertextBlob, { purpose: 'backup' })).toThrow(/InvalidCiphertext/);
    // The client's combiner checks the blob's label digest before it looks at any share.
    expect(() =>
      combineDecryptionShares({
        ciphertextBlob,
        encryptionContext: { purpose: 'backup' },
        shares: [],
        verifyingShares: cluster.verifyingShares,
        threshold: 3,
      }),
    ).toThrow(expect.objectContaining({ code: 'ContextMismatch' }));
  });

  it('a bad decryption share is named by its proof; with t good ones left the client still opens the blob', () => {
    const liarCluster = inProcessCluster({ keyId: KEY_ID, threshold: 3, size: 5, liars: [1] });
    const plaintext = bytes(32);
    const { ciphertextBlob } = encrypt({
      keyId: KEY_ID,
      publicKey: liarCluster.publicKey,
      plaintext,
      encryptionContext: CTX,
    });
    const share = (i: number) => liarCluster.shareFrom(i, ciphertextBlob, CTX);
    const input = { ciphertextBlob, encryptionContext: CTX, verifyingShares: liarCluster.verifyingShares };
    const liar = liarCluster.members[1]!;
    let refused: unknown;
    try {
      combineDecryptionShares({ ...input, shares: [share(0), share(1), share(2)], threshold: 3 });
    } catch (e) {
      refused = e;
    }
    expect(refused).toBeInstanceOf(ProtocolError);
    expect((refused as ProtocolError).code).toBe('ParticipantMisbehaved');
    expect((refused as ProtocolError).culprits).toEqual([
      expect.objectContaining({ participant: liar, reason: 'bad-share' }),
    ]);
    const r = combineDecryptionShares({
      ...input,
      shares: [share(0), share(1), share(2), share(3)],
      threshold: 3,
    });
    expect(r.plaintext).toEqual(plaintext);
    expect(r.culprits.map((c) => c.participant)).toEqual([liar]);
    // A share presented under another member's identifier fails its proof too.
    const moved = { ...share(2), id: liarCluster.members[0]! };
    expect(() =>
      combineDecryptionShares({ ...input, shares: [moved, share(3), share(4)], threshold: 3 }),
    ).toThrow(
      expect.objectContaining({
        culprits: [expect.objectContaining({ participant: liarCluster.members[0] })],
      }),
    );
  });

  it('through the cluster: the liar is named, left out, and the next member is asked', async () => {
    const liarCluster = inProcessCluster({ keyId: KEY_ID, threshold: 3, size: 5, liars: [1] });
    const dk = generateDataKey({ keyId: KEY_ID, publicKey: liarCluster.publicKey, encryptionContext: CTX });
    expect(await liarCluster.unwrap(dk.ciphertextBlob, CTX)).toEqual(dk.plaintext);
    expect(liarCluster.named).toEqual([
      expect.objectContaining({ participant: liarCluster.members[1], reason: 'bad-share' }),
    ]);
    // With three liars in a 3-of-4 cluster no quorum of good shares remains: all three are named.
    const mostlyLiars = inProcessCluster({ keyId: KEY_ID, threshold: 3, size: 4, liars: [0, 1, 2] });
    const dk2 = generateDataKey({ keyId: KEY_ID, publicKey: mostlyLiars.publicKey });
    await expect(mostlyLiars.unwrap(dk2.ciphertextBlob, {})).rejects.toThrow(
      expect.objectContaining({ code: 'QuorumUnavailable' }),
    );
    expect(mostlyLiars.named.map((b) => b.participant)).toEqual(mostlyLiars.members.slice(0, 3));
  });
});

describe('client/envelope-file.ts: envelope encryption of files in authenticated chunks', () => {
  const C = 1024;
  const cases = [
    { what: 'an empty file', size: 0, chunkSize: C },
    { what: 'a 1-byte file', size: 1, chunkSize: C },
    { what: 'exactly one chunk', size: C, chunkSize: C },
    { what: 'one chunk and one byte', size: C + 1, chunkSize: C },
    { what: 'many chunks (10 full and a partial)', size: 10 * C + 37, chunkSize: C },
    {
      what: 'many chunks at the default 64 KiB chunk size',
      size: 5 * DEFAULT_CHUNK_SIZE + 11,
      chunkSize: undefined,
    },
  ];
  for (const c of cases) {
    it(`round-trips ${c.what}, with progress reported up to the file's size`, async () => {
      const data = bytes(c.size);
      const input = path('plain');
      const encrypted = path('plain.enc');
      const output = path('plain.out');
      await writeFile(input, data);
      const encProgress: [number, number | undefined][] = [];
      await encryptFile({
        input,
        output: encrypted,
        keyId: KEY_ID,
        publicKey: cluster.publicKey,
        encryptionContext: CTX,
        ...(c.chunkSize ? { chunkSize: c.chunkSize } : {}),
        onProgress: (done, total) => encProgress.push([done, total]),
      });
      const enc = new Uint8Array(await readFile(encrypted));
      const chunk = c.chunkSize ?? DEFAULT_CHUNK_SIZE;
      const chunks = Math.max(1, Math.ceil(c.size / chunk));
      expect(enc.length).toBe(headerLength(enc) + c.size + TAG * chunks);
      expect(encProgress).toHaveLength(chunks);
      expect(encProgress.at(-1)).toEqual([c.size, c.size]);

      const decProgress: number[] = [];
      const calls = cluster.calls.length;
      const header = await decryptFile({
        input: encrypted,
        output,
        unwrap: cluster.unwrap,
        onProgress: (done, total) => {
          expect(total).toBe(enc.length);
          decProgress.push(done);
        },
      });
      expect(cluster.calls.length).toBe(calls + 1);
      expect(header).toMatchObject({ keyId: KEY_ID, encryptionContext: CTX, chunkSize: chunk });
      expect(sameBytes(await readFile(output), data)).toBe(true);
      expect(decProgress).toEqual([...decProgress].sort((a, b) => a - b));
      expect(decProgress.at(-1)).toBe(enc.length);
      // The same with the caller's context given (it matches the header's).
      const again = path('plain.out');
      await decryptFile({ input: encrypted, output: again, unwrap: cluster.unwrap, encryptionContext: CTX });
      expect(sameBytes(await readFile(again), data)).toBe(true);
    });
  }

  it('refuses a changed byte anywhere in the header, each with an error of its kind', async () => {
    const { enc } = await sealed(bytes(3 * C + 5), { chunkSize: C, encryptionContext: CTX });
    const h = headerLength(enc);
    const messages = new Set<string>();
    for (let i = 0; i < h; i++) {
      const t = enc.slice();
      t[i] = t[i]! ^ 0x01;
      let caught: unknown;
      try {
        for await (const _ of decryptStream(once(t), { unwrap: cluster.unwrap })) {
          // Nothing may come out: the first chunk authenticates the whole header.
          throw new Error(`header byte ${i} changed, yet plaintext came out`);
        }
      } catch (e) {
        caught = e;
      }
      expect(caught, `header byte ${i}`).toBeInstanceOf(KmsError);
      messages.add((caught as KmsError).message.replace(/\d+/g, 'N'));
    }
    // Structure, version, blob, key id, context and the first chunk's authentication all catch some.
    expect([...messages].join('\n')).toMatch(/not an envelope-encrypted file/);
    expect([...messages].join('\n')).toMatch(/format version N is not supported/);
    expect([...messages].join('\n')).toMatch(/encryption context does not match the ciphertext blob/);
    expect([...messages].join('\n')).toMatch(
      /chunk N: failed authentication \(the chunk or the header was changed\)/,
    );
    expect([...messages].join('\n')).toMatch(/the ciphertext or its encryption context is not valid/);
    // At file level: a changed file nonce leaves no output.
    const t = enc.slice();
    t[20] = t[20]! ^ 0x80;
    await expectRefused(t, /chunk 0: failed authentication/);
  });

  it('a header whose encryption context was changed is refused before unwrap is called', async () => {
    const { enc } = await sealed(bytes(100), { chunkSize: C, encryptionContext: { tenant: 'acme' } });
    const at = Buffer.from(enc).indexOf('acme');
    expect(at).toBeGreaterThan(0);
    const t = enc.slice();
    t.set(new TextEncoder().encode('evil'), at);
    const calls = cluster.calls.length;
    await expectRefused(t, /encryption context does not match the ciphertext blob/, {
      encryptionContext: { tenant: 'evil' },
    });
    await expectRefused(t, /encryption context does not match the ciphertext blob/);
    expect(cluster.calls.length).toBe(calls);
  });

  it('refuses a changed chunk byte, naming the chunk, and leaves no output', async () => {
    const { enc } = await sealed(bytes(5 * C), { chunkSize: C });
    const h = headerLength(enc);
    for (const [chunk, offset] of [
      [0, 0],
      [2, 100],
      [2, C + TAG - 1], // the tag
      [4, C - 1], // the final chunk
    ] as const) {
      const t = enc.slice();
      const at = h + chunk * (C + TAG) + offset;
      t[at] = t[at]! ^ 0x40;
      await expectRefused(t, new RegExp(`chunk ${chunk}: failed authentication`));
    }
  });

  it('refuses truncation: inside the header, to the header alone, at a chunk boundary, inside a chunk', async () => {
    const { enc } = await sealed(bytes(4 * C + 300), { chunkSize: C });
    const h = headerLength(enc);
    await expectRefused(enc.subarray(0, 3), /not an envelope-encrypted file/);
    await expectRefused(enc.subarray(0, h - 1), /envelope header: truncated/);
    await expectRefused(enc.subarray(0, h), /no chunks \(file truncated\)/);
    await expectRefused(
      enc.subarray(0, h + 2 * (C + TAG)),
      /chunk 1: the file is truncated: this chunk is not the last one/,
    );
    await expectRefused(enc.subarray(0, h + 4 * (C + TAG)), /chunk 3: the file is truncated/);
    await expectRefused(enc.subarray(0, h + 2 * (C + TAG) + 500), /chunk 2: failed authentication/);
    await expectRefused(enc.subarray(0, h + 4 * (C + TAG) + 10), /chunk 4: shorter than its tag/);
    await expectRefused(enc.subarray(0, enc.length - 1), /chunk 4: failed authentication/);
  });

  it('refuses reordered, dropped and duplicated chunks', async () => {
    const { enc } = await sealed(bytes(4 * C), { chunkSize: C });
    const h = headerLength(enc);
    const chunk = (i: number) => enc.subarray(h + i * (C + TAG), h + (i + 1) * (C + TAG));
    const rebuild = (order: number[]) => Buffer.concat([enc.subarray(0, h), ...order.map(chunk)]);
    await expectRefused(rebuild([0, 2, 1, 3]), /chunk 1: failed authentication/);
    await expectRefused(rebuild([0, 1, 3]), /chunk 2: failed authentication/);
    await expectRefused(rebuild([0, 0, 1, 2, 3]), /chunk 1: failed authentication/);
    await expectRefused(rebuild([0, 1, 2, 3, 3]), /chunk 3: bytes follow the final chunk/);
  });

  it('refuses bytes appended after the final chunk', async () => {
    const full = await sealed(bytes(3 * C), { chunkSize: C });
    await expectRefused(Buffer.concat([full.enc, bytes(100)]), /chunk 2: bytes follow the final chunk/);
    await expectRefused(Buffer.concat([full.enc, bytes(C + TAG)]), /chunk 2: bytes follow the final chunk/);
    const partial = await sealed(bytes(3 * C + 7), { chunkSize: C });
    await expectRefused(Buffer.concat([partial.enc, bytes(5)]), /chunk 3: failed authentication/);
  });

  it('refuses a chunk swapped in from another file under the same key and context', async () => {
    const a = await sealed(bytes(3 * C), { chunkSize: C, encryptionContext: CTX });
    const b = await sealed(bytes(3 * C), { chunkSize: C, encryptionContext: CTX });
    const h = headerLength(a.enc);
    expect(headerLength(b.enc)).toBe(h);
    const t = a.enc.slice();
    t.set(b.enc.subarray(h + C + TAG, h + 2 * (C + TAG)), h + C + TAG);
    await expectRefused(t, /chunk 1: failed authentication \(changed, reordered, or from another file\)/);
    // B's header on A's chunks: B's data key opens nothing of A's.
    await expectRefused(
      Buffer.concat([b.enc.subarray(0, h), a.enc.subarray(h)]),
      /chunk 0: failed authentication/,
    );
  });

  it('a wrong or missing encryption context is refused before unwrap is called, naming the keys that differ', async () => {
    const { enc } = await sealed(bytes(2 * C), { chunkSize: C, encryptionContext: CTX });
    let unwrapped = 0;
    const counting: Unwrap = (blob, ctx) => {
      unwrapped++;
      return cluster.unwrap(blob, ctx);
    };
    const cases: [EncryptionContext, string][] = [
      [{ ...CTX, tenant: 'evil' }, 'tenant'],
      [{ purpose: 'backup' }, 'tenant'],
      [{ ...CTX, extra: 'x' }, 'extra'],
      [{}, 'purpose, tenant'],
    ];
    for (const [wrong, keys] of cases)
      await expectRefused(enc, new RegExp(`does not match the file's \\(differs in: ${keys}\\)`), {
        encryptionContext: wrong,
        unwrap: counting,
      });
    expect(unwrapped).toBe(0);
    // A file encrypted without a context: giving one is a mismatch too.
    const bare = await sealed(bytes(10), { chunkSize: C });
    await expectRefused(bare.enc, /differs in: tenant/, {
      encryptionContext: { tenant: 'acme' },
      unwrap: counting,
    });
    expect(unwrapped).toBe(0);
    // Unwrap errors from the cluster surface as they are, and also leave no output.
    const failing: Unwrap = async () => {
      throw new KmsError('QuorumUnavailable', 'no quorum');
    };
    await expectRefused(enc, /no quorum/, { unwrap: failing });
  });

  it('overwrites the unwrapped data key after use, on success and on failure', async () => {
    const { file, enc } = await sealed(bytes(3 * C), { chunkSize: C, encryptionContext: CTX });
    const seen: Uint8Array[] = [];
    const keeping: Unwrap = async (blob, ctx) => {
      const k = await cluster.unwrap(blob, ctx);
      seen.push(k);
      return k;
    };
    await decryptFile({ input: file, output: path('out'), unwrap: keeping });
    const t = enc.slice();
    t[t.length - 1] = t[t.length - 1]! ^ 1;
    await expectRefused(t, /chunk 2: failed authentication/, { unwrap: keeping });
    expect(seen).toHaveLength(2);
    for (const k of seen) {
      expect(k).toHaveLength(32);
      expect(k.every((b) => b === 0)).toBe(true);
    }
  });

  it('does not replace an existing output unless asked, and refuses input = output', async () => {
    const { file } = await sealed(bytes(100), { chunkSize: C });
    const output = path('existing');
    await writeFile(output, 'keep me');
    await expect(decryptFile({ input: file, output, unwrap: cluster.unwrap })).rejects.toThrow(/exists/);
    expect(await readFile(output, 'utf8')).toBe('keep me');
    await decryptFile({ input: file, output, unwrap: cluster.unwrap, overwrite: true });
    expect((await readFile(output)).length).toBe(100);
    await expect(decryptFile({ input: file, output: file, unwrap: cluster.unwrap })).rejects.toThrow(
      /must be different files/,
    );
    expect(await partialsLeft()).toEqual([]);
  });
});

const ONE_GIB = process.env['KMS_ENVELOPE_1GIB'] === '1';
const LARGE = ONE_GIB ? 1024 * 2 ** 20 : 256 * 2 ** 20;
const LARGE_LABEL = ONE_GIB ? '1 GiB' : '256 MiB';
/**
 * The bound on the child's resident-set growth. The live data is a few chunks (two 64 KiB chunks
 * and their sealed forms, plus 1 MiB read pieces when decrypting); the rest is V8's collection
 * policy: it frees ArrayBuffer memory once about 64 MiB of it was allocated since the last
 * collection, so growth settles near 64 MiB whatever the file's size (measured: 61-64 MiB for
 * 256 MiB and for 1 GiB). A client that held the file would grow by at least its size.
 */
const RSS_GROWTH_BOUND = 96 * 2 ** 20;

describe('client/envelope-file.ts on a large file, streamed', () => {
  it(`a ${LARGE_LABEL} file round-trips with the process's resident memory growing less than 96 MiB`, {
    timeout: ONE_GIB ? 300_000 : 60_000,
  }, async () => {
    const input = path('large');
    const encrypted = path('large.enc');
    const output = path('large.out');
    // Generated and hashed on the fly, 1 MiB at a time.
    const inHash = createHash('sha256');
    async function* generate(): AsyncGenerator<Uint8Array> {
      const block = new Uint8Array(2 ** 20);
      for (let done = 0; done < LARGE; done += block.length) {
        randomFillSync(block);
        inHash.update(block);
        yield Buffer.from(block);
      }
    }
    await pipeline(generate(), createWriteStream(input));
    const child = fileURLToPath(new URL('./helpers/envelope-memory-child.ts', import.meta.url));
    const { stdout } = await promisify(execFile)(process.execPath, [child, input, encrypted, output], {
      timeout: ONE_GIB ? 280_000 : 50_000,
    });
    const m = JSON.parse(stdout.trim()) as { baselineRss: number; peakRss: number; sampledPeakRss: number };
    const growth = Math.max(m.peakRss, m.sampledPeakRss) - m.baselineRss;
    console.log(
      `envelope ${LARGE_LABEL}: baseline RSS ${(m.baselineRss / 2 ** 20).toFixed(1)} MiB, ` +
        `peak ${(m.peakRss / 2 ** 20).toFixed(1)} MiB, growth ${(growth / 2 ** 20).toFixed(1)} MiB`,
    );
    expect(growth).toBeLessThan(RSS_GROWTH_BOUND);
    expect(existsSync(input)).toBe(false); // the child removed it after encrypting
    const head = new Uint8Array(10);
    const fh = await open(encrypted);
    await fh.read(head, 0, 10, 0);
    const encSize = (await fh.stat()).size;
    await fh.close();
    expect(encSize).toBe(headerLength(head) + LARGE + TAG * (LARGE / DEFAULT_CHUNK_SIZE));
    const outHash = createHash('sha256');
    for await (const piece of createReadStream(output)) outHash.update(piece);
    expect(outHash.digest('hex')).toBe(inHash.digest('hex'));
    await rm(encrypted);
    await rm(output);
  });
});
