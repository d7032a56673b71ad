/**
 * What a node's check of one client-signed request costs (the issue "Nodes decide"), beside the
 * CPU of the threshold signature it authorizes. The check is node/request-guard.ts's pure part, on
 * the request a signing node receives with its `sign-commit`: the request digest, the governance
 * lookup of the principal, the RFC 9421 verification (policy/request-signature.ts `verifyRequest`:
 * structured headers, RFC 9530 Content-Digest, the principal's Ed25519 signature on libsodium)
 * and the policy (policy/evaluate.ts) of the devnet's genesis. The audit write and the replay
 * cache are I/O and bookkeeping, not in this number. The signature verification alone is also
 * timed with libsodium (what nodes run) and noble (the reference), so the check with noble's
 * verifier follows by substitution.
 */
import { generatePrincipal, principalEntry, signedHeaders } from '../../client/sign-request.ts';
import { fromWire, requestDigest, type SignedRequestWire } from '../../net/signed-request.ts';
import { evaluate } from '../../policy/evaluate.ts';
import { findPrincipal, parseGovernance, principalKey } from '../../policy/governance.ts';
import {
  type PrincipalKey,
  verifyPrincipalSignature,
  verifyPrincipalSignatureNoble,
} from '../../policy/principal-key.ts';
import { verifyRequest } from '../../policy/request-signature.ts';
import { genesisGovernance } from '../devnet-lib.ts';
import { microbench, type Summary } from './stats.ts';

export type RequestCheckCosts = {
  /** The whole check of one signed Sign request on one node (libsodium Ed25519), ms. */
  readonly checkCpuMs: Summary;
  /** The principal's Ed25519 signature alone: libsodium and noble, ms. */
  readonly verifyNativeCpuMs: Summary;
  readonly verifyNobleCpuMs: Summary;
  readonly iterations: number;
};

/** A 3-of-5 signature's CPU beside the checks made for it. */
export type RequestCheckRow = {
  readonly keySpec: string;
  readonly size: { readonly t: number; readonly n: number };
  /** Our signing machines, all parties summed (the protocol table's "ours summed"), ms p50. */
  readonly signSummedCpuMs: number;
  /** Nodes that check the request per signature: the t signers (each at its sign-commit). */
  readonly checksPerSignature: number;
  /** checksPerSignature x check / signSummedCpuMs (libsodium). */
  readonly ratio: number;
  /** The same with noble's Ed25519 verification in the check instead. */
  readonly ratioNoble: number;
};

export type RequestCheckResults = {
  readonly costs: RequestCheckCosts;
  readonly rows: readonly RequestCheckRow[];
  /** The target of the issue "Nodes decide": the checks cost under this share of signing. */
  readonly target: number;
};

/** Measures the check on a real signed `POST /v1/keys/{keyId}/sign` of a 32-byte message. */
export function measureRequestCheck(iterations: number): RequestCheckCosts {
  const { signer } = generatePrincipal('admin');
  const doc = parseGovernance(genesisGovernance(principalEntry(signer)));
  const keyId = '00000000-0000-4000-8000-00000000bench';
  const body = JSON.stringify({ message: 'ab'.repeat(32) });
  const url = `https://127.0.0.1/v1/keys/${keyId}/sign`;
  const nowS = Math.floor(Date.now() / 1000);
  const headers = signedHeaders({ method: 'POST', url, body }, signer, { nowS });
  const wire: SignedRequestWire = {
    method: 'POST',
    path: `/v1/keys/${keyId}/sign`,
    query: '',
    headers,
    body: Buffer.from(body).toString('base64'),
  };
  const check = () => {
    const digest = requestDigest(wire);
    const signed = fromWire(wire);
    const lookup = (id: string): PrincipalKey | undefined => {
      const p = findPrincipal(doc, id);
      return p ? principalKey(p) : undefined;
    };
    const v = verifyRequest(signed, lookup, nowS);
    const d = evaluate(doc, {
      operation: 'Sign',
      keyId,
      initiator: v.principal,
      approvers: [],
      messageBytes: 32,
      recentCount: () => 0,
    });
    if (d.effect !== 'allow' || digest.length !== 64) throw new Error('request check: not allowed');
  };
  const key = principalKey(findPrincipal(doc, 'admin')!);
  const base = new TextEncoder().encode('x'.repeat(200));
  const sig = signer.sign(base);
  const native = () => {
    if (!verifyPrincipalSignature(key, base, sig)) throw new Error('libsodium: does not verify');
  };
  const noble = () => {
    if (!verifyPrincipalSignatureNoble(key, base, sig)) throw new Error('noble: does not verify');
  };
  const opts = { iterations, warmup: Math.min(50, iterations) };
  return {
    checkCpuMs: microbench(check, opts).cpuMsPerOp,
    verifyNativeCpuMs: microbench(native, opts).cpuMsPerOp,
    verifyNobleCpuMs: microbench(noble, opts).cpuMsPerOp,
    iterations,
  };
}

/** The rows for the given signatures (t checks per signature, one per signing node). */
export function requestCheckRows(
  costs: RequestCheckCosts,
  signs: readonly { keySpec: string; size: { t: number; n: number }; summedCpuMs: number }[],
): RequestCheckResults {
  const check = costs.checkCpuMs.p50;
  const checkNoble = check - costs.verifyNativeCpuMs.p50 + costs.verifyNobleCpuMs.p50;
  return {
    costs,
    target: 0.1,
    rows: signs.map((s) => ({
      keySpec: s.keySpec,
      size: s.size,
      signSummedCpuMs: s.summedCpuMs,
      checksPerSignature: s.size.t,
      ratio: (s.size.t * check) / s.summedCpuMs,
      ratioNoble: (s.size.t * checkNoble) / s.summedCpuMs,
    })),
  };
}
