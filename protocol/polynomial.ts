/**
 * Shamir/Feldman arithmetic shared by the key events (refresh, reshare, repair): Lagrange
 * coefficients, polynomial evaluation, and checks of a share against Feldman commitments.
 * noble keeps its sampling, interpolation and VSS evaluation internal, so the few lines here restate
 * them (RFC 9591 §4.2 derive_interpolating_value, Appendix C.2 vss_verify) on protocol/group.ts:
 * native backends where the suite has one (commitments and checks were ~75% of a key event's CPU
 * in noble), noble otherwise. Coefficients are drawn as noble draws them (group.ts randomScalar).
 */
import type { RNG } from '@noble/curves/abstract/frost.js';
import { hexToBytes } from '@noble/hashes/utils.js';
import { ProtocolError } from './errors.ts';
import { type Elem, type Group, groupOf, randomScalar } from './group.ts';
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
 * The commitments are elements of `g` (decoded once by the caller).
 */
export function evaluateCommitments(
  spec: KeySpec,
  commitments: readonly Elem[],
  x: bigint,
  first = 0,
  g: Group = groupOf(spec),
): Elem {
  let acc = g.ZERO;
  for (let k = commitments.length - 1; k >= 0; k--) acc = acc.multiplyUnsafe(x).add(commitments[k]!);
  // Horner above treats commitments[0] as the x^0 term; shift when the vector starts at x^first.
  for (let k = 0; k < first; k++) acc = acc.multiplyUnsafe(x);
  return acc;
}

/**
 * Feldman check (RFC 9591 Appendix C.2 vss_verify): share·G == Σ x^k·C_k. The share is secret:
 * it only meets the constant-time fixed-base multiply.
 */
export function verifyFeldman(
  spec: KeySpec,
  x: bigint,
  share: bigint,
  commitments: readonly Elem[],
  first = 0,
  g: Group = groupOf(spec),
): boolean {
  return g.baseMul(share).equals(evaluateCommitments(spec, commitments, x, first, g));
}

/** Committed random polynomial [constant, a_1..a_{t-1}] (noble's generateSecretPolynomial draws). */
function committed(
  g: Group,
  coefficients: bigint[],
  threshold: number,
  rng: RNG | undefined,
): { coefficients: bigint[]; commitments: Elem[] } {
  for (let i = 0; i < threshold - 1; i++) coefficients.push(randomScalar(g.spec, rng));
  return { coefficients, commitments: coefficients.map((a) => g.baseMul(a)) };
}

/** A fresh random polynomial of degree `threshold - 1` with constant term `constant`, committed. */
export function dealingPolynomial(
  spec: KeySpec,
  threshold: number,
  constant: bigint,
  g: Group = groupOf(spec),
  rng?: RNG,
): { coefficients: bigint[]; commitments: Elem[] } {
  return committed(g, [constant], threshold, rng);
}

/**
 * A random polynomial with constant term 0 (proactive refresh, Herzberg et al. 1995). The
 * commitment to the constant is the identity, which RFC 9591 §3.1 forbids on the wire, so it is
 * left out: `commitments[k-1]` commits to coefficient k (k = 1 .. threshold-1).
 */
export function zeroPolynomial(
  spec: KeySpec,
  threshold: number,
  g: Group = groupOf(spec),
  rng?: RNG,
): { coefficients: bigint[]; commitments: Elem[] } {
  const coefficients: bigint[] = [spec.Point.Fn.ZERO];
  for (let i = 0; i < threshold - 1; i++) coefficients.push(randomScalar(spec, rng));
  return { coefficients, commitments: coefficients.slice(1).map((a) => g.baseMul(a)) };
}

/** Σ scalars mod the group order. */
export function sumScalars(spec: KeySpec, xs: readonly bigint[]): bigint {
  const Fn = spec.Point.Fn;
  return xs.reduce((a, b) => Fn.add(a, b), Fn.ZERO);
}
