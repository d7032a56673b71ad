/**
 * fast-check settings shared by every property test, so one environment variable sets how deep
 * they all go and a failure says how to replay it:
 *
 *   KMS_PROPERTY_RUNS=<k>   multiply every property's own run count by k (default 1: `npm test`;
 *                           `.ci/run` runs the property files again with a larger k)
 *   KMS_PROPERTY_SEED=<n>   replay: fast-check's seed of a failed run (printed on failure)
 *   KMS_PROPERTY_PATH=<p>   replay: its counterexample path, straight to the shrunk case
 *
 * Each property keeps its own base count because their costs differ by orders of magnitude (a
 * 15-party DKG versus one signature share).
 */
import fc from 'fast-check';

function positiveInt(name: string, raw: string | undefined, fallback: number): number {
  if (raw === undefined || raw === '') return fallback;
  const n = Number(raw);
  if (!Number.isSafeInteger(n) || n < 1) throw new Error(`${name} must be a positive integer, got ${raw}`);
  return n;
}

/** The run-count factor from KMS_PROPERTY_RUNS (1 when unset). */
export function propertyRunFactor(env: NodeJS.ProcessEnv = process.env): number {
  return positiveInt('KMS_PROPERTY_RUNS', env.KMS_PROPERTY_RUNS, 1);
}

/**
 * Parameters for `fc.assert`: `baseRuns` times KMS_PROPERTY_RUNS, the replay seed and path when
 * given, and a reporter that ends a failure's message with the command line that replays it.
 */
export function propertyOptions<Ts>(
  baseRuns: number,
  extra: Omit<fc.Parameters<Ts>, 'numRuns' | 'seed' | 'path' | 'reporter' | 'asyncReporter'> = {},
): fc.Parameters<Ts> {
  const env = process.env;
  const seedRaw = env.KMS_PROPERTY_SEED;
  const seed = seedRaw === undefined || seedRaw === '' ? undefined : Number(seedRaw);
  if (seed !== undefined && !Number.isSafeInteger(seed)) {
    throw new Error(`KMS_PROPERTY_SEED must be an integer, got ${seedRaw}`);
  }
  const path = env.KMS_PROPERTY_PATH === '' ? undefined : env.KMS_PROPERTY_PATH;
  return {
    ...extra,
    numRuns: baseRuns * propertyRunFactor(env),
    ...(seed === undefined ? {} : { seed }),
    ...(path === undefined ? {} : { path }),
    reporter: (details) => {
      if (!details.failed) return;
      const replay = [
        `KMS_PROPERTY_SEED=${details.seed}`,
        ...(details.counterexamplePath === null ? [] : [`KMS_PROPERTY_PATH=${details.counterexamplePath}`]),
      ].join(' ');
      throw new Error(
        `${fc.defaultReportMessage(details) ?? 'property failed'}\n\nReplay it: ${replay} npx vitest run <this file> -t '<this test>'`,
      );
    },
  };
}
