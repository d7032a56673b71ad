/**
 * Test fixture: the real devnet, as `npm run devnet` starts it: a coordinator and N node processes
 * on 127.0.0.1, each node with its own SoftHSM2 token (tests fail with the install hint when
 * SoftHSM2 is missing; `.ci/run` installs it). Ports are picked free; state lives in a temp dir.
 * `api` signs what must be signed (a request that uses or changes a key, a principal or a policy)
 * as the devnet's `admin` principal, as the CLI does by default.
 */
import { execFile } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { promisify } from 'node:util';
import { type PrincipalSigner, principalFromPem, signedInit } from '../../client/sign-request.ts';
import { NODE_BIN, ROOT, createTempDevnet } from '../../scripts/devnet-lib.ts';

const run = promisify(execFile);

/** Routes whose requests a principal signs (the rest take the bearer token alone). */
export const SIGNED_ROUTE =
  /^\/v1\/(?:keys(?:\/[^/]+\/(?!verify$)[a-z-]+)?|decrypt|re-encrypt|governance|requests\/[^/]+\/approvals)$/;

export type Devnet = {
  dir: string;
  url: string;
  token: string;
  env: Record<string, string>;
  /** What the devnet printed when it last started (its ready message). */
  readonly output: string;
  /** Runs `kms` (scripts/kms.ts) against this devnet; resolves with stdout, exit code, stderr. */
  kms(args: string[]): Promise<{ code: number; stdout: string; stderr: string }>;
  /** An API call with the bearer token; signed as `admin` (or `as`) where requests must be. */
  api(
    method: string,
    path: string,
    body?: unknown,
    as?: PrincipalSigner,
  ): Promise<{ status: number; body: any }>;
  /** The devnet's admin principal (its key in `<dir>/admin-key`), once started. */
  admin(): PrincipalSigner;
  /** Starts (or restarts) the whole devnet with its existing state. */
  start(): Promise<void>;
  /** Waits (up to 20 s) until the coordinator sees at least `count` nodes reachable. */
  waitReachable(count: number): Promise<void>;
  stopAll(): Promise<void>;
  cleanup(): Promise<void>;
};

export async function createDevnet(nodes = 5): Promise<Devnet> {
  const t = await createTempDevnet(nodes, 'end-to-end tests');
  const { dir, url, env } = t;
  const d: Devnet = {
    dir,
    url,
    get token() {
      return t.token;
    },
    set token(v: string) {
      t.token = v;
    },
    get output() {
      return t.output;
    },
    env,
    kms: async (args) => {
      try {
        const r = await run(NODE_BIN, ['scripts/kms.ts', ...args], {
          cwd: ROOT,
          env: { ...process.env, ...env, KMS_URL: url, KMS_TOKEN: d.token },
          timeout: 120_000,
        });
        return { code: 0, stdout: r.stdout, stderr: r.stderr };
      } catch (e) {
        const err = e as { code?: number; stdout?: string; stderr?: string };
        return {
          code: typeof err.code === 'number' ? err.code : -1,
          stdout: err.stdout ?? '',
          stderr: err.stderr ?? '',
        };
      }
    },
    admin: () => principalFromPem('admin', readFileSync(t.adminKeyFile)),
    api: async (method, path, body, as) => {
      const headers = { authorization: `Bearer ${d.token}` };
      const init =
        method === 'POST' && SIGNED_ROUTE.test(path)
          ? signedInit(method, `${url}${path}`, as ?? d.admin(), { headers, body: body ?? {} })
          : {
              method,
              headers: body === undefined ? headers : { ...headers, 'content-type': 'application/json' },
              ...(body === undefined ? {} : { body: JSON.stringify(body) }),
            };
      const r = await fetch(`${url}${path}`, init);
      const text = await r.text();
      let parsed: unknown = text;
      try {
        parsed = JSON.parse(text);
      } catch {
        /* not JSON (PEM) */
      }
      return { status: r.status, body: parsed };
    },
    start: () => t.start(),
    waitReachable: async (count) => {
      for (let i = 0; i < 100; i++) {
        const r = await d.api('GET', '/v1/nodes');
        const list = r.body?.nodes as { reachable: boolean }[] | undefined;
        if (list && list.filter((n) => n.reachable).length >= count) return;
        await new Promise((res) => setTimeout(res, 200));
      }
      throw new Error(`fewer than ${count} nodes reachable`);
    },
    stopAll: () => t.stopAll(),
    cleanup: () => t.dispose(),
  };
  return d;
}
