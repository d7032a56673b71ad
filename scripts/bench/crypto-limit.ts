/**
 * The crypto-bound limit of the service, measured in the benchmark's own process in the same run:
 * the protocol's CPU per threshold signature, all parties summed (protocol/sign.ts as the protocol
 * benchmark runs it: each of the t signers commits, checks the list and signs, the coordinator
 * aggregates and verifies, each party charged its own element checks), and what the machine's
 * cores could sign per second if the service spent nothing else: cores x 1000 / that CPU.
 */
import { availableParallelism, loadavg } from 'node:os';
import { KEY_SPEC_REGISTRY, type SigningKeySpecName } from '../../protocol/suites.ts';
import { OUR_OPERATIONS, type Size } from './protocol.ts';
import { type Summary, summarize } from './stats.ts';

export type CryptoLimit = {
  readonly keySpec: SigningKeySpecName;
  readonly size: Size;
  readonly iterations: number;
  /** CPU ms per signature, all parties summed (median: p50). */
  readonly protocolCpuMs: Summary;
  readonly cores: number;
  /** cores x 1000 / protocolCpuMs.p50: signatures/s with every core on the protocol alone. */
  readonly limitPerSecond: number;
  readonly loadAverage: number;
};

/** Measures the protocol's CPU per `size` signature of each key spec (after untimed warm-up). */
export async function measureCryptoLimit(
  keySpecs: readonly SigningKeySpecName[],
  opts: { iterations: number; size?: Size; cores?: number },
): Promise<CryptoLimit[]> {
  const size = opts.size ?? { t: 3, n: 5 };
  const op = OUR_OPERATIONS.find((o) => o.operation === 'sign');
  const run = op ? await op.load() : null;
  if (!run) throw new Error('protocol/sign.ts is not in the tree (no signing runner)');
  const cores = opts.cores ?? availableParallelism();
  // Untimed warm-up of every suite first (JIT, lazy tables: 20 runs were not enough for the first
  // suite measured), then the suites interleaved so that each sees the same machine load.
  for (const name of keySpecs) for (let i = 0; i < 60; i++) run(KEY_SPEC_REGISTRY[name], size, size);
  const ms = new Map<SigningKeySpecName, number[]>(keySpecs.map((k) => [k, []]));
  for (let i = 0; i < opts.iterations; i++)
    for (const name of keySpecs) ms.get(name)!.push(run(KEY_SPEC_REGISTRY[name], size, size).summedCpuMs);
  const out: CryptoLimit[] = [];
  for (const name of keySpecs) {
    const protocolCpuMs = summarize(ms.get(name)!);
    out.push({
      keySpec: name,
      size,
      iterations: opts.iterations,
      protocolCpuMs,
      cores,
      limitPerSecond: (cores * 1000) / protocolCpuMs.p50,
      loadAverage: loadavg()[0] ?? 0,
    });
  }
  return out;
}
