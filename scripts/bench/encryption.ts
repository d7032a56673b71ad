/**
 * `npm run bench -- encryption` (issue 15): threshold decryption and data-key generation beside
 * threshold signing, on the same devnet in the same run (a coordinator and 5 nodes on SoftHSM2
 * tokens, 3-of-5 keys), through the HTTP API with every request signed by the client inside the
 * measured latency (scripts/bench/load.ts). Rows:
 * - sign FROST_ED25519 and FROST_RISTRETTO255 (32-byte messages): the reference;
 * - decrypt: `POST /v1/decrypt` of a wrapped 32-byte data key, the coordinator combining;
 * - decrypt, sealed: the same with a client recipient key, the client opening, verifying and
 *   combining the sealed shares (client/decrypt-api.ts), all inside the latency;
 * - generate-data-key: `POST /v1/keys/{id}/generate-data-key` (public-key work on the coordinator);
 * - encrypt: `POST /v1/keys/{id}/encrypt` of 4 KiB.
 * Each row: sequential latency on one connection, then a closed loop at a fixed concurrency.
 * Target (issue 15): decrypt p50 within 1.2x of sign p50. Writes bench/results/encryption.{json,md}.
 */
import os from 'node:os';
import { randomBytes } from 'node:crypto';
import { decryptForRecipient } from '../../client/decrypt-api.ts';
import { encrypt } from '../../client/encrypt.ts';
import { createBenchDevnet } from './devnet-run.ts';
import {
  type HttpTarget,
  type LoadResult,
  LoadClient,
  closedLoop,
  type RequestSpec,
  sequential,
} from './load.ts';
import { type BenchFile, machineInfo, writeResults } from './report.ts';
import { fmtMs, summarize } from './stats.ts';

export type EncryptionRow = {
  readonly operation: string;
  readonly keySpec: string;
  readonly sequential: LoadResult;
  readonly load?: LoadResult;
};

export type EncryptionResults = {
  readonly nodes: number;
  readonly size: { t: number; n: number };
  readonly plan: { sequential: number; concurrency: number; durationMs: number };
  readonly rows: readonly EncryptionRow[];
  /** decrypt p50 / sign p50 (FROST_ED25519 and FROST_RISTRETTO255), sequential. */
  readonly decryptToSign: { ed25519: number; ristretto255: number };
};

type Plan = {
  nodes: number;
  t: number;
  sequential: number;
  warmup: number;
  concurrency: number;
  durationMs: number;
};
const FULL: Plan = { nodes: 5, t: 3, sequential: 200, warmup: 20, concurrency: 8, durationMs: 10_000 };
const QUICK: Plan = { nodes: 3, t: 2, sequential: 5, warmup: 1, concurrency: 2, durationMs: 1_000 };

async function mustOk(c: LoadClient, method: string, path: string, body?: unknown): Promise<any> {
  const a = await c.call(method, path, body);
  if (a.status < 200 || a.status >= 300)
    throw new Error(`${method} ${path}: ${a.status} ${JSON.stringify(a.body)}`);
  return a.body;
}

/** The sealed path's latency: request, open, verify and combine, one after another. */
async function sealedSequential(
  target: HttpTarget,
  blob: Uint8Array,
  ctx: Record<string, string>,
  count: number,
  warmup: number,
): Promise<LoadResult> {
  const c = new LoadClient(target, 1);
  const post = async (path: string, body: unknown) => mustOk(c, 'POST', `/${path}`, body);
  const lat: number[] = [];
  const t0 = performance.now();
  try {
    for (let i = 0; i < warmup + count; i++) {
      const s = performance.now();
      await decryptForRecipient(post, blob, ctx);
      if (i >= warmup) lat.push(performance.now() - s);
    }
  } finally {
    c.close();
  }
  const windowS = (performance.now() - t0) / 1000;
  return {
    concurrency: 1,
    ok: lat.length,
    errors: 0,
    errorSamples: [],
    windowS,
    perSecond: lat.length / windowS,
    latencyMs: summarize(lat),
    completed: warmup + count,
  };
}

export async function runEncryptionBench(
  quick: boolean,
  log: (line: string) => void,
): Promise<EncryptionResults> {
  const plan = quick ? QUICK : FULL;
  const d = await createBenchDevnet(plan.nodes);
  try {
    await d.start();
    const target: HttpTarget = { url: d.url, token: d.token, signer: d.signer };
    const admin = new LoadClient(target, 1);
    const create = (keySpec: string, extra: Record<string, unknown> = {}) =>
      mustOk(admin, 'POST', '/v1/keys', { keySpec, threshold: plan.t, ...extra });
    const ed = await create('FROST_ED25519');
    const ris = await create('FROST_RISTRETTO255');
    const enc = await create('TDH2_RISTRETTO255', { keyUsage: 'ENCRYPT_DECRYPT' });
    const ctx = { purpose: 'bench' };
    const blob = encrypt({
      keyId: enc.keyId,
      publicKey: Buffer.from(enc.publicKey, 'hex'),
      plaintext: randomBytes(32),
      encryptionContext: ctx,
    }).ciphertextBlob;
    admin.close();
    const sign = (keyId: string): RequestSpec => ({
      method: 'POST',
      path: `/v1/keys/${keyId}/sign`,
      body: () => ({ message: randomBytes(32).toString('hex') }),
    });
    const decrypt: RequestSpec = {
      method: 'POST',
      path: '/v1/decrypt',
      body: () => ({ ciphertextBlob: Buffer.from(blob).toString('base64'), encryptionContext: ctx }),
    };
    const dataKey: RequestSpec = {
      method: 'POST',
      path: `/v1/keys/${enc.keyId}/generate-data-key`,
      body: () => ({ keySpec: 'AES_256', encryptionContext: ctx }),
    };
    const encrypt4k: RequestSpec = {
      method: 'POST',
      path: `/v1/keys/${enc.keyId}/encrypt`,
      body: () => ({ plaintext: randomBytes(4096).toString('base64'), encryptionContext: ctx }),
    };
    const rows: EncryptionRow[] = [];
    const measure = async (operation: string, keySpec: string, spec: RequestSpec, load: boolean) => {
      const seq = await sequential(target, spec, { count: plan.sequential, warmup: plan.warmup });
      const l = load
        ? await closedLoop(target, spec, {
            concurrency: plan.concurrency,
            durationMs: plan.durationMs,
            warmupMs: Math.min(2_000, plan.durationMs / 2),
          })
        : undefined;
      rows.push({ operation, keySpec, sequential: seq, ...(l ? { load: l } : {}) });
      log(
        `${operation.padEnd(20)} ${keySpec.padEnd(19)} p50 ${fmtMs(seq.latencyMs.p50)} p99 ${fmtMs(seq.latencyMs.p99)}` +
          (l ? `  ${l.perSecond.toFixed(0)}/s at ${l.concurrency} (p50 ${fmtMs(l.latencyMs.p50)})` : '') +
          (seq.errors + (l?.errors ?? 0) > 0
            ? `  errors: ${[...seq.errorSamples, ...(l?.errorSamples ?? [])].join('; ')}`
            : ''),
      );
    };
    // Sign and decrypt back to back, so a drift in machine load hits both alike.
    await measure('sign', 'FROST_ED25519', sign(ed.keyId), true);
    await measure('decrypt', 'TDH2_RISTRETTO255', decrypt, true);
    await measure('sign', 'FROST_RISTRETTO255', sign(ris.keyId), false);
    const sealed = await sealedSequential(target, blob, ctx, plan.sequential, plan.warmup);
    rows.push({
      operation: 'decrypt (sealed, client combines)',
      keySpec: 'TDH2_RISTRETTO255',
      sequential: sealed,
    });
    log(
      `${'decrypt (sealed)'.padEnd(20)} ${'TDH2_RISTRETTO255'.padEnd(19)} p50 ${fmtMs(sealed.latencyMs.p50)}`,
    );
    await measure('generate-data-key', 'TDH2_RISTRETTO255', dataKey, true);
    await measure('encrypt (4 KiB)', 'TDH2_RISTRETTO255', encrypt4k, false);
    const p50 = (op: string, spec: string) =>
      rows.find((r) => r.operation === op && r.keySpec === spec)!.sequential.latencyMs.p50;
    const dec = p50('decrypt', 'TDH2_RISTRETTO255');
    return {
      nodes: plan.nodes,
      size: { t: plan.t, n: plan.nodes },
      plan: { sequential: plan.sequential, concurrency: plan.concurrency, durationMs: plan.durationMs },
      rows,
      decryptToSign: {
        ed25519: dec / p50('sign', 'FROST_ED25519'),
        ristretto255: dec / p50('sign', 'FROST_RISTRETTO255'),
      },
    };
  } finally {
    await d.dispose();
  }
}

export function encryptionMarkdown(
  r: EncryptionResults,
  durationS: number,
  load?: { start: number; end: number; cores: number },
): string {
  const lines = [
    '## Envelope encryption: decrypt and generate-data-key beside sign (issue 15)',
    '',
    `One devnet, one run: a coordinator and ${r.nodes} nodes (SoftHSM2), ${r.size.t}-of-${r.size.n} keys, every request signed by the client inside the latency (scripts/bench/encryption.ts). Sequential: ${r.plan.sequential} requests on one connection; load: closed loop, ${r.plan.concurrency} clients for ${r.plan.durationMs / 1000} s. Run took ${durationS.toFixed(0)} s.`,
    ...(load
      ? [
          '',
          `Load average ${load.start.toFixed(1)} at the start and ${load.end.toFixed(1)} at the end on ${load.cores} cores: other work shared the machine, so absolute latencies are inflated; sign and decrypt were measured one right after the other in the same run, and the ratio below is what this section is for.`,
        ]
      : []),
    '',
    '| operation | key spec | p50 | p95 | p99 | sequential /s | load /s (p50) |',
    '| --- | --- | ---: | ---: | ---: | ---: | ---: |',
  ];
  for (const row of r.rows) {
    const s = row.sequential;
    const l = row.load;
    lines.push(
      `| ${row.operation} | ${row.keySpec} | ${fmtMs(s.latencyMs.p50)} | ${fmtMs(s.latencyMs.p95)} | ${fmtMs(s.latencyMs.p99)} | ${s.perSecond.toFixed(0)} | ${l ? `${l.perSecond.toFixed(0)} (${fmtMs(l.latencyMs.p50)})` : '-'} |`,
    );
  }
  const ok = (x: number) => (x <= 1.2 ? 'met' : 'NOT met');
  lines.push(
    '',
    `Decrypt p50 / sign p50: ${r.decryptToSign.ed25519.toFixed(2)}x against FROST_ED25519, ${r.decryptToSign.ristretto255.toFixed(2)}x against FROST_RISTRETTO255 (target 1.2x: ${ok(r.decryptToSign.ed25519)} / ${ok(r.decryptToSign.ristretto255)}). Decryption is one round trip to t nodes; signing is two (or one with pre-committed nonces).`,
    '',
  );
  return `${lines.join('\n')}\n`;
}

/** Runs the benchmark and writes bench/results/encryption.{json,md} (and SUMMARY.md). */
export async function benchEncryption(
  opts: { quick: boolean; out: string },
  log: (line: string) => void = console.log,
): Promise<EncryptionResults> {
  const machine = machineInfo();
  const t0 = performance.now();
  const c0 = process.cpuUsage();
  log(`encryption benchmark${opts.quick ? ' (--quick)' : ''}...`);
  const data = await runEncryptionBench(opts.quick, (l) => log(`  ${l}`));
  const c1 = process.cpuUsage(c0);
  const durationS = (performance.now() - t0) / 1000;
  const file: BenchFile<EncryptionResults> = {
    name: 'encryption',
    machine,
    loadAverageAtEnd: os.loadavg()[0] ?? 0,
    durationS,
    cpuShare: (c1.user + c1.system) / 1e6 / durationS,
    data,
  };
  const load = { start: machine.loadAverageAtStart, end: file.loadAverageAtEnd, cores: machine.cores };
  for (const w of writeResults(file, encryptionMarkdown(data, durationS, load), {}, opts.out))
    log(`wrote ${w}`);
  return data;
}
