/**
 * Shamir/Feldman arithmetic shared by the key events (refresh, reshare, repair): Lagrange
 * coefficients, polynomial evaluation, and checks of a share against Feldman commitments.
 * Sampling and commitment of polynomials is noble's (`frost.utils.generateSecretPolynomial`);
 * noble keeps its interpolation and VSS evaluation internal, so the few lines here restate them
 * (RFC 9591 §4.2 derive_interpolating_value, Appendix C.2 vss_verify).
 */
import { hexToBytes } from '@noble/hashes/utils.js';
import { ProtocolError } from './errors.ts';
import type { KeySpec } from './suites.ts';

/** A participant identifier (noble's canonical hex) as a field element. */
export function identifierScalar(spec: KeySpec, id: string): bigint {
  const Fn = spec.Point.Fn;
  const x = Fn.fromBytes(hexToBytes(id));
  if (Fn.is0(x)) throw new ProtocolError('ProtocolAborted', 'identifier zero is not allowed (RFC 9591 §3.1)');
  return x;
}

/**
 * Lagrange coefficient of `id` over the set `ids`, evaluated at `at` (0 for the secret itself;
 * a participant's identifier for share repair). RFC 9591 §4.2 generalised to any evaluation point.
 * Refuses duplicates and a missing `id` (S-07: duplicates would divide by zero).
 */
export function lagrangeCoefficient(spec: KeySpec, ids: readonly string[], id: string, at = 0n): bigint {
  const Fn = spec.Point.Fn;
  const xs = ids.map((i) => identifierScalar(spec, i));
  if (new Set(xs).size !== xs.length)
    throw new ProtocolError('ProtocolAborted', 'duplicate identifiers in Lagrange set');
  const xi = identifierScalar(spec, id);
  if (!xs.includes(xi)) throw new ProtocolError('ProtocolAborted', 'identifier not in Lagrange set');
  let num = Fn.ONE;
  let den = Fn.ONE;
  for (const xj of xs) {
    if (xj === xi) continue;
    num = Fn.mul(num, Fn.sub(xj, at));
    den = Fn.mul(den, Fn.sub(xj, xi));
  }
  return Fn.div(num, den);
}

/** f(x) for coefficients [a0, a1, ...] (Horner). */
export function evaluatePolynomial(spec: KeySpec, coefficients: readonly bigint[], x: bigint): bigint {
  const Fn = spec.Point.Fn;
  let acc = Fn.ZERO;
  for (let k = coefficients.length - 1; k >= 0; k--) acc = Fn.add(Fn.mul(acc, x), coefficients[k]!);
  return acc;
}

/**
 * Σ_k x^k·C_k for public commitments (variable-time is fine: all inputs are public).
 * `first` is the power of x of commitments[0]: 1 for zero-sharings that omit the identity C_0.
 */
export function evaluateCommitments(spec: KeySpec, commitments: readonly any[], x: bigint, first = 0): any {
  let acc = spec.Point.ZERO;
  for (let k = commitments.length - 1; k >= 0; k--) acc = acc.multiplyUnsafe(x).add(commitments[k]);
  // Horner above treats commitments[0] as the x^0 term; shift when the vector starts at x^first.
  for (let k = 0; k < first; k++) acc = acc.multiplyUnsafe(x);
  return acc;
}

/** Feldman check (RFC 9591 Appendix C.2 vss_verify): share·G == Σ x^k·C_k. */
export function verifyFeldman(
  spec: KeySpec,
  x: bigint,
  share: bigint,
  commitments: readonly any[],
  first = 0,
): boolean {
  return spec.Point.BASE.multiply(share).equals(evaluateCommitments(spec, commitments, x, first));
}

/** A fresh random polynomial of degree `threshold - 1` with constant term `constant`, committed (noble). */
export function dealingPolynomial(
  spec: KeySpec,
  threshold: number,
  constant: bigint,
): { coefficients: bigint[]; commitments: any[] } {
  const { coefficients, commitment } = spec.frost.utils.generateSecretPolynomial(
    { min: threshold, max: threshold },
    spec.Point.Fn.toBytes(constant),
  );
  return { coefficients, commitments: commitment.map((c) => spec.Point.fromBytes(c)) };
}

/**
 * A random polynomial with constant term 0 (proactive refresh, Herzberg et al. 1995). The
 * commitment to the constant is the identity, which RFC 9591 §3.1 forbids on the wire, so it is
 * left out: `commitments[k-1]` commits to coefficient k (k = 1 .. threshold-1).
 */
export function zeroPolynomial(
  spec: KeySpec,
  threshold: number,
): { coefficients: bigint[]; commitments: any[] } {
  const { coefficients, commitment } = spec.frost.utils.generateSecretPolynomial({
    min: threshold,
    max: threshold,
  });
  return {
    coefficients: [spec.Point.Fn.ZERO, ...coefficients.slice(1)],
    commitments: commitment.slice(1).map((c) => spec.Point.fromBytes(c)),
  };
}

/** Σ scalars mod the group order. */
export function sumScalars(spec: KeySpec, xs: readonly bigint[]): bigint {
  const Fn = spec.Point.Fn;
  return xs.reduce((a, b) => Fn.add(a, b), Fn.ZERO);
}
