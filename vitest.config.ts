import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    testTimeout: 60_000,
    hookTimeout: 60_000,
    // Integration tests start real processes and bind loopback ports; files run in parallel
    // on the two cores, tests inside a file run in order.
    pool: 'forks',
    maxWorkers: 2,
  },
});
