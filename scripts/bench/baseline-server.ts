/**
 * BENCH-ONLY. The single-key reference of the service benchmark (issue 17): the least a durable
 * KMS can do on this machine. A minimal Node HTTPS server (node:https, no framework) holding each
 * key WHOLE in this one process, signing natively (OpenSSL Ed25519 through node:crypto; BIP340
 * through libsecp256k1, the `tiny-secp256k1` build) and appending one fdatasync'ed audit record
 * per request before it answers. It is never part of the product.
 *
 * Like for like with the devnet on the client's side: the same load generator (load.ts) signs
 * every request as a principal (RFC 9421), and this server verifies that signature once
 * (policy/request-signature.ts verifyRequest, with a nonce replay check), over HTTPS with the same
 * kind of certificate. The devnet's request is verified by the coordinator and again, with the
 * policy, by each signing node.
 *
 * Routes: `POST /v1/keys` {keySpec} -> {keyId} (FROST_ED25519 or FROST_SECP256K1_TR: an Ed25519
 * or a BIP340 key), `POST /v1/keys/{keyId}/sign` {message} -> {signature}. Run as a child process
 * of the benchmark (its own event loop, like the devnet's coordinator): reports its URL over IPC,
 * stops on SIGTERM.
 *
 * Env: BENCH_BASELINE_DIR (audit file dir), BENCH_BASELINE_PRINCIPAL (`id:alg:publicKeyBase64url`),
 * BENCH_BASELINE_TLS_CERT/KEY (PEM files).
 */
import {
  createPrivateKey,
  generateKeyPairSync,
  randomBytes,
  randomUUID,
  sign as cryptoSign,
} from 'node:crypto';
import { mkdirSync, readFileSync } from 'node:fs';
import { open } from 'node:fs/promises';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { createServer } from 'node:https';
import { join } from 'node:path';
import * as ecc from 'tiny-secp256k1';
import type { PrincipalAlg, PrincipalKey } from '../../policy/principal-key.ts';
import { verifyRequest } from '../../policy/request-signature.ts';

const dataDir = process.env.BENCH_BASELINE_DIR;
const principal = process.env.BENCH_BASELINE_PRINCIPAL;
const certFile = process.env.BENCH_BASELINE_TLS_CERT;
const keyFile = process.env.BENCH_BASELINE_TLS_KEY;
if (!dataDir || !principal || !certFile || !keyFile || !process.send) {
  process.stderr.write(
    'baseline-server: run by scripts/bench/service.ts (needs its env and an IPC channel)\n',
  );
  process.exit(2);
}
const [principalId, alg, pub] = principal.split(':') as [string, PrincipalAlg, string];
const principalKey: PrincipalKey = { alg, publicKey: new Uint8Array(Buffer.from(pub, 'base64url')) };
const lookup = (id: string) => (id === principalId ? principalKey : undefined);

type WholeKey = { sign: (message: Uint8Array) => Uint8Array };
const keys = new Map<string, WholeKey>();

function newKey(keySpec: unknown): WholeKey {
  if (keySpec === 'FROST_ED25519') {
    const { privateKey } = generateKeyPairSync('ed25519');
    const pem = privateKey.export({ format: 'pem', type: 'pkcs8' });
    const key = createPrivateKey(pem);
    return { sign: (m) => new Uint8Array(cryptoSign(null, m, key)) };
  }
  if (keySpec === 'FROST_SECP256K1_TR') {
    let sk: Uint8Array;
    do sk = new Uint8Array(randomBytes(32));
    while (!ecc.isPrivate(sk));
    // BIP340 signs any message length with libsecp256k1; aux randomness per BIP340's default.
    return { sign: (m) => ecc.signSchnorr(m, sk, new Uint8Array(randomBytes(32))) };
  }
  throw new Error(`unsupported key spec ${String(keySpec)}`);
}

mkdirSync(dataDir, { recursive: true });
const audit = await open(join(dataDir, 'audit.log'), 'a');
let seq = 0;
/** One record per request, written and fdatasync'ed before the answer. */
async function appendAudit(entry: Record<string, unknown>): Promise<void> {
  const line = `${JSON.stringify({ seq: ++seq, time: new Date().toISOString(), ...entry })}\n`;
  await audit.write(line);
  await audit.datasync();
}

/** Used request nonces until their `expires` (the replay check every verifier of RFC 9421 needs). */
const nonces = new Map<string, number>();
let adds = 0;
function replayed(nonce: string, expires: number, nowS: number): boolean {
  if (++adds % 1024 === 0) for (const [n, e] of nonces) if (e <= nowS) nonces.delete(n);
  const e = nonces.get(nonce);
  if (e !== undefined && e > nowS) return true;
  nonces.set(nonce, expires);
  return false;
}

const send = (res: ServerResponse, status: number, body: unknown) => {
  const text = JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) });
  res.end(text);
};

async function handle(req: IncomingMessage, body: Buffer, res: ServerResponse): Promise<void> {
  const url = req.url ?? '/';
  const q = url.indexOf('?');
  const path = q < 0 ? url : url.slice(0, q);
  const headers: Record<string, string> = {};
  for (const [k, v] of Object.entries(req.headers)) if (typeof v === 'string') headers[k] = v;
  const nowS = Math.floor(Date.now() / 1000);
  let verified: ReturnType<typeof verifyRequest>;
  try {
    verified = verifyRequest(
      {
        method: req.method ?? 'GET',
        path,
        query: q < 0 ? '' : url.slice(q),
        headers,
        body: new Uint8Array(body),
      },
      lookup,
      nowS,
    );
  } catch (e) {
    return send(res, 401, { code: 'Unauthorized', message: (e as Error).message });
  }
  if (replayed(verified.nonce, verified.expires, nowS)) return send(res, 401, { code: 'Unauthorized' });
  const parsed = JSON.parse(body.toString('utf8') || '{}') as { keySpec?: string; message?: string };
  if (req.method === 'POST' && path === '/v1/keys') {
    const keyId = randomUUID();
    keys.set(keyId, newKey(parsed.keySpec));
    await appendAudit({ op: 'CreateKey', keyId, principal: verified.principal });
    return send(res, 201, { keyId });
  }
  const m = /^\/v1\/keys\/([^/]+)\/sign$/.exec(path);
  const key = m ? keys.get(m[1]!) : undefined;
  if (req.method !== 'POST' || !key || typeof parsed.message !== 'string') {
    return send(res, 404, { code: 'NotFound' });
  }
  const message = new Uint8Array(Buffer.from(parsed.message, 'hex'));
  const signature = key.sign(message);
  await appendAudit({ op: 'Sign', keyId: m![1], principal: verified.principal, nonce: verified.nonce });
  send(res, 200, { signature: Buffer.from(signature).toString('hex') });
}

const server = createServer({ cert: readFileSync(certFile), key: readFileSync(keyFile) }, (req, res) => {
  const chunks: Buffer[] = [];
  req.on('data', (c: Buffer) => chunks.push(c));
  req.on('end', () => {
    handle(req, Buffer.concat(chunks), res).catch((e) =>
      send(res, 500, { code: 'Internal', message: String(e) }),
    );
  });
});
server.keepAliveTimeout = 60_000;
server.listen(0, '127.0.0.1', () => {
  const a = server.address();
  if (a === null || typeof a === 'string') throw new Error('no address');
  process.send!({ url: `https://127.0.0.1:${a.port}` });
});
const stop = async () => {
  server.close();
  server.closeAllConnections();
  await audit.close();
  process.exit(0);
};
process.on('SIGTERM', () => void stop());
process.on('disconnect', () => void stop());
