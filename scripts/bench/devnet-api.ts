/**
 * The few API calls the service benchmarks make besides signing: create a key (DKG), reshare it,
 * check that a key signs (readiness after a restart). Each through a fresh client, as a real
 * client's single request would go (connect + TLS + signing the request inside the measured time).
 */
import type { KeySpecName } from '../../protocol/suites.ts';
import type { BenchDevnet } from './devnet-run.ts';
import { type HttpTarget, LoadClient, signRequest } from './load.ts';
import type { Size } from './service-plan.ts';

export const nodesOf = (n: number) => Array.from({ length: n }, (_, i) => `node-${i + 1}`);

export async function mustOk(c: LoadClient, method: string, path: string, body?: unknown): Promise<any> {
  const a = await c.call(method, path, body);
  if (a.status < 200 || a.status >= 300) {
    throw new Error(`${method} ${path}: ${a.status} ${JSON.stringify(a.body).slice(0, 300)}`);
  }
  return a.body;
}

export async function createKey(
  target: HttpTarget,
  keySpec: KeySpecName,
  size: Size,
): Promise<{ keyId: string; ms: number }> {
  const c = new LoadClient(target);
  try {
    const t0 = performance.now();
    const body = await mustOk(c, 'POST', '/v1/keys', {
      keySpec,
      threshold: size.t,
      participants: nodesOf(size.n),
    });
    return { keyId: body.keyId as string, ms: performance.now() - t0 };
  } finally {
    c.close();
  }
}

export async function reshare(target: HttpTarget, keyId: string, to: Size): Promise<number> {
  const c = new LoadClient(target);
  try {
    const t0 = performance.now();
    await mustOk(c, 'POST', `/v1/keys/${keyId}/reshare`, { threshold: to.t, participants: nodesOf(to.n) });
    return performance.now() - t0;
  } finally {
    c.close();
  }
}

export const target = (d: BenchDevnet): HttpTarget => ({ url: d.url, token: d.token, signer: d.signer });

/** Readiness for the restarts: one signature with `keyId` answers 200. */
export async function signsOk(t: HttpTarget, keyId: string): Promise<boolean> {
  const c = new LoadClient(t);
  try {
    const spec = signRequest(keyId);
    return (await c.call(spec.method, spec.path, spec.body())).status === 200;
  } finally {
    c.close();
  }
}
