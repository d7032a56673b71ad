import { defineConfig } from 'vitest/config';

// The deeper property run (.ci/run: KMS_PROPERTY_RUNS=5) multiplies every property's runs, so a
// property test gets that many times the default per-test time (test/helpers/properties.ts).
const propertyRuns = Math.max(1, Number(process.env['KMS_PROPERTY_RUNS'] ?? 1) || 1);

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    testTimeout: 60_000 * propertyRuns,
    hookTimeout: 60_000,
    // Integration tests start real processes and bind loopback ports; files run in parallel
    // on the two cores, tests inside a file run in order.
    pool: 'forks',
    maxWorkers: 2,
  },
});
