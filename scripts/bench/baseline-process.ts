/**
 * The single-key reference server (baseline-server.ts) as a child process of the benchmark:
 * HTTPS with a devnet-like certificate and a principal of its own, as the devnet serves.
 */
import { fork } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { generatePrincipal } from '../../client/sign-request.ts';
import { ensureDevnetTls, trustCa } from '../devnet-tls.ts';
import type { HttpTarget } from './load.ts';

/** Starts the baseline server as a child process; resolves with its target and a stop function. */
export async function startBaseline(): Promise<{
  target: HttpTarget;
  stop: () => Promise<void>;
  dir: string;
  pid: number;
}> {
  const dir = mkdtempSync(join(tmpdir(), 'tkms-baseline-'));
  const token = randomBytes(24).toString('hex');
  // Like for like with the devnet: HTTPS with the same kind of certificate (scripts/devnet-tls.ts),
  // and a principal of its own whose every request the server verifies (RFC 9421).
  const tls = ensureDevnetTls(dir, { docker: false });
  trustCa(tls.caFile);
  const { signer } = generatePrincipal('bench-client');
  const child = fork(join(import.meta.dirname, 'baseline-server.ts'), [], {
    env: {
      ...process.env,
      BENCH_BASELINE_DIR: join(dir, 'data'),
      BENCH_BASELINE_PRINCIPAL: `${signer.id}:${signer.alg}:${Buffer.from(signer.publicKey).toString('base64url')}`,
      BENCH_BASELINE_TLS_CERT: tls.server.certFile,
      BENCH_BASELINE_TLS_KEY: tls.server.keyFile,
    },
    stdio: ['ignore', 'ignore', 'inherit', 'ipc'],
  });
  const url = await new Promise<string>((resolve, reject) => {
    child.once('message', (m) => resolve((m as { url: string }).url));
    child.once('exit', (code) => reject(new Error(`baseline server exited (${code})`)));
  });
  const stop = async () => {
    if (child.exitCode === null) {
      const exited = new Promise((r) => child.once('exit', r));
      child.kill('SIGTERM');
      await Promise.race([exited, new Promise((r) => setTimeout(r, 5_000))]);
      if (child.exitCode === null) child.kill('SIGKILL');
    }
    rmSync(dir, { recursive: true, force: true });
  };
  return { target: { url, token, signer }, stop, dir, pid: child.pid! };
}
