/**
 * The `kms` CLI's HTTP client and its errors: one invocation talks to one coordinator, with a
 * bearer token when it has one and, on every request that uses or changes a key, a principal or a
 * policy, an RFC 9421 signature by the principal's key (client/sign-request.ts): the coordinator
 * forwards exactly those bytes and each node checks the signature itself.
 */
import { randomUUID } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { type PrincipalSigner, principalFromPem, signedInit } from '../client/sign-request.ts';
import { devnetAdminKeyFile, devnetApi, devnetDir } from './devnet-lib.ts';
import { trustCa } from './devnet-tls.ts';

export const EXIT_OK = 0;
export const EXIT_USAGE = 1;
export const EXIT_SERVER = 2;

/** A usage or local error (exit 1). */
export class UsageError extends Error {}

/** The server answered with a problem, or could not be reached (exit 2). */
export class ServerError extends Error {
  readonly problem: Record<string, unknown> | undefined;
  constructor(message: string, problem?: Record<string, unknown>) {
    super(message);
    this.problem = problem;
  }
}

export type Io = { out: (s: string) => void; err: (s: string) => void; isTTY: boolean };

export type GlobalOpts = {
  url: string;
  token?: string;
  ca?: string;
  json?: boolean;
  principal: string;
  principalKey?: string;
};

/** TLS failures the user fixes by naming the CA (`--ca`), not by retrying. */
const CERT_ERRORS = new Set([
  'UNABLE_TO_VERIFY_LEAF_SIGNATURE',
  'SELF_SIGNED_CERT_IN_CHAIN',
  'DEPTH_ZERO_SELF_SIGNED_CERT',
  'UNABLE_TO_GET_ISSUER_CERT_LOCALLY',
  'CERT_HAS_EXPIRED',
  'ERR_TLS_CERT_ALTNAME_INVALID',
]);

/**
 * Trusts the CA the user named, or else the devnet's own CA when the URL is the devnet's: a devnet
 * CA is never trusted for any other server.
 */
export function trustFor(url: string, ca: string | undefined): void {
  if (ca) {
    trustCa(ca);
    return;
  }
  const devnet = devnetApi(devnetDir());
  if (!devnet || !url.startsWith('https:')) return;
  let same = false;
  try {
    same = new URL(url).origin === new URL(devnet.url).origin;
  } catch {
    same = false;
  }
  if (same) trustCa(devnet.caFile);
}

export function defaultToken(): string | undefined {
  if (process.env.KMS_TOKEN) return process.env.KMS_TOKEN;
  const file = `${devnetDir()}/admin-token`;
  return existsSync(file) ? readFileSync(file, 'utf8').trim() : undefined;
}

/** The principal key file: `--principal-key`/KMS_PRINCIPAL_KEY, else the devnet's admin key. */
export function principalKeyFile(o: Pick<GlobalOpts, 'principalKey'>): string | undefined {
  if (o.principalKey) return o.principalKey;
  const devnet = devnetAdminKeyFile(devnetDir());
  return existsSync(devnet) ? devnet : undefined;
}

/** Loads the principal's signer, with errors that say what to do. */
export function loadSigner(o: Pick<GlobalOpts, 'principal' | 'principalKey'>): PrincipalSigner {
  const file = principalKeyFile(o);
  if (file === undefined) {
    throw new UsageError(
      'this request must be signed by a principal: give --principal-key FILE (KMS_PRINCIPAL_KEY) and ' +
        '--principal ID (KMS_PRINCIPAL); in a devnet the admin key is <devnet dir>/admin-key',
    );
  }
  let pem: Buffer;
  try {
    pem = readFileSync(file);
  } catch {
    throw new UsageError(`cannot read the principal key file ${file}`);
  }
  try {
    return principalFromPem(o.principal, pem);
  } catch (e) {
    throw new UsageError(`${file}: ${(e as Error).message}`);
  } finally {
    pem.fill(0);
  }
}

export type CallOptions = {
  /** Accept header (default JSON). */
  accept?: string;
  /** Sign the request as the principal (requests that use or change a key, principal or policy). */
  signed?: boolean;
};

/** HTTP client for one invocation: bearer token, signatures, JSON, problems turned into ServerError. */
export class Client {
  readonly #o: GlobalOpts;
  #signer: PrincipalSigner | undefined;
  constructor(o: GlobalOpts) {
    this.#o = o;
  }

  /** The principal this client signs as (its key loaded on first use). */
  signer(): PrincipalSigner {
    this.#signer ??= loadSigner(this.#o);
    return this.#signer;
  }

  url(path: string): URL {
    return new URL(path, this.#o.url.endsWith('/') ? this.#o.url : `${this.#o.url}/`);
  }

  async call<T = any>(method: string, path: string, body?: unknown, o: CallOptions = {}): Promise<T> {
    return (await this.request<T>(method, path, body, o)).body;
  }

  /** Like `call`, with the HTTP status (202: the operation waits for approvals). */
  async request<T = any>(
    method: string,
    path: string,
    body?: unknown,
    o: CallOptions = {},
  ): Promise<{ status: number; body: T }> {
    const accept = o.accept ?? 'application/json';
    const headers: Record<string, string> = { accept };
    if (this.#o.token) headers.authorization = `Bearer ${this.#o.token}`;
    // One key per invocation: a retry after a dropped connection cannot start a second session.
    if (method === 'POST') headers['idempotency-key'] = randomUUID();
    const url = this.url(path);
    // Signed once: a retry resends the same bytes, signature and nonce (a node uses a nonce once).
    const init: { method: string; headers: Record<string, string>; body?: string | Uint8Array } = o.signed
      ? signedInit(method, url, this.signer(), { headers, ...(body === undefined ? {} : { body }) })
      : {
          method,
          headers: body === undefined ? headers : { ...headers, 'content-type': 'application/json' },
          ...(body === undefined ? {} : { body: JSON.stringify(body) }),
        };
    let res: Response | undefined;
    for (let attempt = 0; attempt < 2 && !res; attempt++) {
      try {
        res = await fetch(url, init);
      } catch (e) {
        const cause = (e as Error).cause as { code?: string } | undefined;
        if (cause?.code !== undefined && CERT_ERRORS.has(cause.code)) {
          throw new ServerError(
            `cannot verify the TLS certificate of ${this.#o.url} (${cause.code}): name its CA with --ca FILE or KMS_CA`,
          );
        }
        if (attempt === 1)
          throw new ServerError(`cannot reach ${this.#o.url}: ${(e as Error).cause ?? (e as Error).message}`);
      }
    }
    const text = await res!.text();
    if (!res!.ok) {
      let problem: Record<string, unknown> | undefined;
      try {
        problem = JSON.parse(text);
      } catch {
        problem = undefined;
      }
      const code = problem?.code ?? `HTTP ${res!.status}`;
      const detail = problem?.detail ?? text.slice(0, 200);
      throw new ServerError(`${String(code)}: ${String(detail)}`, problem);
    }
    if (!accept.includes('json')) return { status: res!.status, body: text as T };
    return { status: res!.status, body: (text === '' ? undefined : JSON.parse(text)) as T };
  }
}

/** What command modules get from the program: the client, and output in the chosen format. */
export type CliContext = {
  readonly io: Io;
  readonly client: () => Client;
  readonly json: () => boolean;
  /** JSON with --json, else the human text. */
  readonly print: (value: unknown, human: () => string) => void;
};

/** A text table: columns padded to their widest cell. */
export function table(rows: string[][]): string {
  if (rows.length === 0) return '';
  const widths = rows[0]!.map((_, c) => Math.max(...rows.map((r) => (r[c] ?? '').length)));
  return `${rows
    .map((r) =>
      r
        .map((cell, c) => cell.padEnd(widths[c]!))
        .join('  ')
        .trimEnd(),
    )
    .join('\n')}\n`;
}
