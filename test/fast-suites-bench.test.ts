/**
 * The suite comparison of the protocol benchmark (`npm run bench -- protocol --only suites`):
 * every suite's signature beside noble's FROST in one run, each implementation's signature checked
 * by the harness, and the markdown that bench/results/protocol-suites.md is made of. No timing is
 * asserted (the numbers are the benchmark's output, not a test's).
 */
import { describe, expect, it } from 'vitest';
import { measureSuiteComparison, suiteComparisonMarkdown } from '../scripts/bench/protocol.ts';

describe('protocol benchmark: every suite beside noble FROST', () => {
  it('measures ours and noble for each asked suite, with rounds and a ratio, and renders the table', async () => {
    const c = await measureSuiteComparison({
      iterations: 1,
      dkgIterations: 1,
      size: { t: 2, n: 3 },
      keySpecs: ['FROST_SECP256K1', 'FROST_RISTRETTO255'],
    });
    expect(c.rows.map((r) => r.keySpec)).toEqual(['FROST_SECP256K1', 'FROST_RISTRETTO255']);
    for (const r of c.rows) {
      expect(r.noble.rounds.map((x) => x.round)).toEqual(['sign.commit', 'sign.share', 'sign.aggregate']);
      expect(r.ours.rounds.map((x) => x.round)).toEqual(['sign.commit', 'sign.share', 'sign.aggregate']);
      expect(r.ratio).toBeCloseTo(r.ours.summedCpuMs.p50 / r.noble.summedCpuMs.p50, 10);
      expect(r.ourBackend).toMatch(/libsecp256k1|libsodium/);
    }
    expect(c.dkg?.rows.map((r) => r.keySpec)).toEqual(['FROST_SECP256K1', 'FROST_RISTRETTO255']);
    const md = suiteComparisonMarkdown(c, c);
    expect(md).toContain("## Every suite's threshold signature vs noble's FROST (2-of-3)");
    expect(md).toMatch(/\| FROST_SECP256K1 \| libsecp256k1[^\n]*\| (yes|no) \|/);
    expect(md).toContain('before: ours / noble');
    expect(md).toContain('### DKG (2-of-3');
  });
});
