/**
 * The load generator of the service benchmark: one in-process client over node:http (node:https
 * for an https URL: the devnet; the process trusts its CA, scripts/devnet-tls.ts) with a
 * keep-alive Agent (one socket per concurrent client, reused), so connection setup is not in the
 * measured latency; requests that use a key are signed by the client's principal (HttpTarget). Closed loop: each client sends its next request when the previous one answers.
 * The same generator drives the devnet and the single-key baseline.
 */
import { Agent, request as httpRequest } from 'node:http';
import { Agent as TlsAgent, request as httpsRequest } from 'node:https';
import { randomBytes } from 'node:crypto';
import { type PrincipalSigner, signedHeaders } from '../../client/sign-request.ts';
import { type Summary, summarize } from './stats.ts';

/**
 * Where to send requests and as whom: `token` (a bearer token) for reads; `signer`, a principal
 * that signs every other request (RFC 9421, client/sign-request.ts), as the API requires of every
 * request that uses or changes a key. The signing runs in the client, per request, inside the
 * measured latency, as a real client's would.
 */
export type HttpTarget = {
  readonly url: string;
  readonly token: string;
  readonly signer?: PrincipalSigner;
};

export type Answer = { readonly status: number; readonly body: unknown; readonly ms: number };

/** A client with its own keep-alive pool of `sockets` connections. */
export class LoadClient {
  readonly #agent: Agent;
  readonly #request: typeof httpRequest;
  readonly #host: string;
  readonly #port: number;
  readonly #token: string;
  readonly #signer: PrincipalSigner | undefined;
  readonly #origin: string;

  constructor(target: HttpTarget, sockets = 1) {
    const u = new URL(target.url);
    this.#host = u.hostname;
    this.#port = Number(u.port);
    this.#token = target.token;
    this.#signer = target.signer;
    this.#origin = u.origin;
    const pool = { keepAlive: true, maxSockets: sockets, maxFreeSockets: sockets };
    const tls = u.protocol === 'https:';
    this.#agent = tls ? new TlsAgent(pool) : new Agent(pool);
    this.#request = tls ? httpsRequest : httpRequest;
  }

  /**
   * One request; resolves with the status, the parsed JSON body (or the text) and its wall time,
   * which includes signing it. With a signer, every request but a GET is signed (no bearer token).
   */
  call(method: string, path: string, body?: unknown): Promise<Answer> {
    const t0 = performance.now();
    const payload = body === undefined ? undefined : JSON.stringify(body);
    const sign = this.#signer !== undefined && method !== 'GET';
    const headers: Record<string, string> = sign ? {} : { authorization: `Bearer ${this.#token}` };
    if (payload !== undefined) {
      headers['content-type'] = 'application/json';
      headers['content-length'] = String(Buffer.byteLength(payload));
    }
    if (sign) {
      Object.assign(
        headers,
        signedHeaders(
          { method, url: `${this.#origin}${path}`, ...(payload === undefined ? {} : { body: payload }) },
          this.#signer!,
        ),
      );
    }
    return new Promise((resolve, reject) => {
      const req = this.#request(
        { host: this.#host, port: this.#port, method, path, headers, agent: this.#agent },
        (res) => {
          const chunks: Buffer[] = [];
          res.on('data', (c: Buffer) => chunks.push(c));
          res.on('end', () => {
            const ms = performance.now() - t0;
            const text = Buffer.concat(chunks).toString('utf8');
            let parsed: unknown = text;
            try {
              parsed = JSON.parse(text);
            } catch {
              // not JSON: keep the text
            }
            resolve({ status: res.statusCode ?? 0, body: parsed, ms });
          });
          res.on('error', reject);
        },
      );
      req.on('error', reject);
      if (payload !== undefined) req.write(payload);
      req.end();
    });
  }

  close(): void {
    this.#agent.destroy();
  }
}

export type LoadResult = {
  readonly concurrency: number;
  /** Requests answered 2xx inside the measured window. */
  readonly ok: number;
  /** Answers that were not 2xx (or transport errors), with the first few codes seen. */
  readonly errors: number;
  readonly errorSamples: readonly string[];
  readonly windowS: number;
  /** ok / windowS. */
  readonly perSecond: number;
  /** Latency of the 2xx answers, ms. */
  readonly latencyMs: Summary;
  /** Every answer of the call, warm-up included (what CPU accounting over the whole call divides by). */
  readonly completed?: number;
};

/** What one request is: method, path and a fresh body per call. */
export type RequestSpec = { readonly method: string; readonly path: string; readonly body: () => unknown };

/** A sign request for `keyId` with a fresh random 32-byte message each time. */
export function signRequest(keyId: string): RequestSpec {
  return {
    method: 'POST',
    path: `/v1/keys/${keyId}/sign`,
    body: () => ({ message: randomBytes(32).toString('hex') }),
  };
}

const describeFailure = (a: Answer | Error): string =>
  a instanceof Error
    ? `transport: ${a.message}`
    : `${a.status} ${(a.body as { code?: string } | null)?.code ?? String(a.body).slice(0, 80)}`;

/**
 * Closed-loop load: `concurrency` clients for `warmupMs` (not counted), then `durationMs` measured.
 * A request counts in the window when it completes inside it.
 */
export async function closedLoop(
  target: HttpTarget,
  spec: RequestSpec,
  opts: { concurrency: number; durationMs: number; warmupMs?: number },
): Promise<LoadResult> {
  const client = new LoadClient(target, opts.concurrency);
  const warmupMs = opts.warmupMs ?? 0;
  const t0 = performance.now();
  const start = t0 + warmupMs;
  const end = start + opts.durationMs;
  const lat: number[] = [];
  let errors = 0;
  let completed = 0;
  const samples: string[] = [];
  const worker = async () => {
    while (performance.now() < end) {
      let a: Answer | Error;
      try {
        a = await client.call(spec.method, spec.path, spec.body());
      } catch (e) {
        a = e as Error;
      }
      completed++;
      const now = performance.now();
      if (now < start || now > end) continue;
      if (!(a instanceof Error) && a.status >= 200 && a.status < 300) lat.push(a.ms);
      else {
        errors++;
        if (samples.length < 5) samples.push(describeFailure(a));
      }
    }
  };
  try {
    await Promise.all(Array.from({ length: opts.concurrency }, worker));
  } finally {
    client.close();
  }
  const windowS = opts.durationMs / 1000;
  return {
    concurrency: opts.concurrency,
    ok: lat.length,
    errors,
    errorSamples: samples,
    windowS,
    perSecond: lat.length / windowS,
    latencyMs: summarize(lat),
    completed,
  };
}

/** `count` requests one after another on one kept-alive connection, after `warmup` untimed ones. */
export async function sequential(
  target: HttpTarget,
  spec: RequestSpec,
  opts: { count: number; warmup?: number },
): Promise<LoadResult> {
  const client = new LoadClient(target, 1);
  const lat: number[] = [];
  let errors = 0;
  let completed = 0;
  const samples: string[] = [];
  const t0 = performance.now();
  try {
    for (let i = 0; i < (opts.warmup ?? 0) + opts.count; i++, completed++) {
      let a: Answer | Error;
      try {
        a = await client.call(spec.method, spec.path, spec.body());
      } catch (e) {
        a = e as Error;
      }
      if (i < (opts.warmup ?? 0)) continue;
      if (!(a instanceof Error) && a.status >= 200 && a.status < 300) lat.push(a.ms);
      else {
        errors++;
        if (samples.length < 5) samples.push(describeFailure(a));
      }
    }
  } finally {
    client.close();
  }
  const windowS = (performance.now() - t0) / 1000;
  return {
    concurrency: 1,
    ok: lat.length,
    errors,
    errorSamples: samples,
    windowS,
    perSecond: lat.length / windowS,
    latencyMs: summarize(lat),
    completed,
  };
}
