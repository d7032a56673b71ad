/**
 * Child process for test/envelope-file.test.ts's large-file test: envelope-encrypts one file and
 * decrypts it again through client/envelope-file.ts (data key unwrapped by the in-process TDH2
 * cluster), and reports its memory on stdout as one JSON line, so the parent can bound the growth
 * of this process's resident set (the peak, ru_maxrss, against the resident set after warm-up).
 *
 * Usage: node test/helpers/envelope-memory-child.ts <input> <encrypted> <output>
 * The input is removed after encryption (only the encrypted and decrypted copies are kept on disk).
 */
import { rm, writeFile } from 'node:fs/promises';
import { decryptFile, encryptFile } from '../../client/envelope-file.ts';
import { inProcessCluster } from './tdh2-cluster.ts';

const [input, encrypted, output] = process.argv.slice(2);
if (!input || !encrypted || !output)
  throw new Error('usage: envelope-memory-child.ts <input> <encrypted> <output>');

const cluster = inProcessCluster({ keyId: 'memory-test-key', threshold: 2, size: 3 });
const encryptionContext = { purpose: 'memory-bound' };

// Warm-up: the same code paths on a small file, so that code loading is not counted as growth.
const warm = `${output}.warm`;
await writeFile(warm, new Uint8Array(1 << 20));
await encryptFile({ input: warm, output: `${warm}.enc`, keyId: cluster.keyId, publicKey: cluster.publicKey });
await decryptFile({ input: `${warm}.enc`, output: `${warm}.out`, unwrap: cluster.unwrap });
await Promise.all([warm, `${warm}.enc`, `${warm}.out`].map((p) => rm(p)));

const baselineRss = process.memoryUsage().rss;
let sampledPeakRss = baselineRss;
const sampler = setInterval(() => {
  sampledPeakRss = Math.max(sampledPeakRss, process.memoryUsage().rss);
}, 20);

await encryptFile({
  input,
  output: encrypted,
  keyId: cluster.keyId,
  publicKey: cluster.publicKey,
  encryptionContext,
});
await rm(input);
await decryptFile({ input: encrypted, output, unwrap: cluster.unwrap, encryptionContext });
clearInterval(sampler);

// ru_maxrss (KiB) is the peak over the whole life of the process: it bounds the peak of the run.
const peakRss = process.resourceUsage().maxRSS * 1024;
process.stdout.write(
  `${JSON.stringify({ baselineRss, peakRss, sampledPeakRss: Math.max(sampledPeakRss, process.memoryUsage().rss) })}\n`,
);
