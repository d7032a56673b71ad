/**
 * HTTPS on the coordinator (coordinator/config.ts `tls`, coordinator/app.ts): TLS 1.3 only, a
 * plain-HTTP request to the TLS port gets nothing, plain HTTP on a non-loopback host is refused
 * unless `--insecure-http` says so, and client-certificate mode refuses a client without a
 * certificate. Certificates come from a CA made here with the devnet's own code
 * (scripts/devnet-tls.ts); the coordinators run over a real two-node cluster.
 */
import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { request as httpRequest } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connect } from 'node:tls';
import { promisify } from 'node:util';
import pino from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type RunningCoordinator, startCoordinator } from '../coordinator/app.ts';
import { parseConfig } from '../coordinator/config.ts';
import { NODE_BIN, ROOT } from '../scripts/devnet-lib.ts';
import { LoadClient } from '../scripts/bench/load.ts';
import { type CertFiles, issueCert, makeCa, trustCa } from '../scripts/devnet-tls.ts';
import { startTestCluster, type TestCluster } from './helpers/cluster.ts';

const run = promisify(execFile);

type Answer = { status: number; body: string };

/** One HTTPS GET with explicit trust and, optionally, a client certificate. */
function httpsGet(url: string, opts: { ca: string; client?: CertFiles }): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const req = httpsRequest(
      url,
      {
        ca: readFileSync(opts.ca),
        ...(opts.client
          ? { cert: readFileSync(opts.client.certFile), key: readFileSync(opts.client.keyFile) }
          : {}),
        agent: false,
      },
      (res) => {
        let body = '';
        res.on('data', (c) => (body += c));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
        res.on('error', reject);
      },
    );
    req.on('error', reject);
    req.end();
  });
}

function httpGet(url: string): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const req = httpRequest(url, { agent: false, timeout: 5_000 }, (res) => {
      let body = '';
      res.on('data', (c) => (body += c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
    });
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.on('error', reject);
    req.end();
  });
}

/** The TLS version a handshake with these limits settles on, or the handshake's error. */
function handshake(port: number, ca: string, maxVersion: 'TLSv1.2' | 'TLSv1.3'): Promise<string> {
  return new Promise((resolve, reject) => {
    const s = connect({ host: '127.0.0.1', port, servername: 'localhost', ca: readFileSync(ca), maxVersion });
    s.once('secureConnect', () => {
      const v = s.getProtocol() ?? 'none';
      s.end();
      resolve(v);
    });
    s.once('error', reject);
  });
}

describe('coordinator HTTPS', () => {
  let dir: string;
  let tc: TestCluster;
  let ca: CertFiles;
  let server: CertFiles;
  let clientCa: CertFiles;
  let client: CertFiles;
  const running: RunningCoordinator[] = [];
  const logger = pino({ level: 'silent' });

  const start = async (name: string, config: Record<string, unknown>) => {
    const c = await startCoordinator({
      config: parseConfig({ port: 0, dataDir: join(dir, name), logLevel: 'silent', ...config }),
      cluster: tc.cluster,
      logger,
    });
    running.push(c);
    return c;
  };

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'tkms-https-'));
    ca = makeCa(join(dir, 'ca'), 'test server CA');
    server = issueCert(ca, join(dir, 'server'), 'server', {
      commonName: 'coordinator',
      usage: 'server',
      dns: ['localhost'],
      ips: ['127.0.0.1'],
    });
    clientCa = makeCa(join(dir, 'client-ca'), 'test client CA');
    client = issueCert(clientCa, join(dir, 'client'), 'client', { commonName: 'ops', usage: 'client' });
    tc = await startTestCluster(2, { sealer: 'software' });
  }, 60_000);

  afterAll(async () => {
    for (const c of running) await c.close();
    await tc?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('serves HTTPS with TLS 1.3 only; a plain-HTTP request to the TLS port gets no answer', async () => {
    const c = await start('tls', { tls: { certFile: server.certFile, keyFile: server.keyFile } });
    expect(c.url).toMatch(/^https:\/\/127\.0\.0\.1:\d+$/);
    const port = Number(new URL(c.url).port);

    const ok = await httpsGet(`${c.url}/healthz`, { ca: ca.certFile });
    expect(ok.status).toBe(200);
    expect(JSON.parse(ok.body)).toEqual({ status: 'pass' });

    expect(await handshake(port, ca.certFile, 'TLSv1.3')).toBe('TLSv1.3');
    await expect(handshake(port, ca.certFile, 'TLSv1.2')).rejects.toThrow(/protocol|version/i);

    await expect(httpGet(`http://127.0.0.1:${port}/healthz`)).rejects.toThrow();
    // Nor is the server's certificate trusted without its CA.
    await expect(fetch(`${c.url}/healthz`)).rejects.toThrow();
  });

  it('trustCa makes fetch and the benchmark load client trust the CA (as the CLI and devnet tests do)', async () => {
    const c = await start('trust', { tls: { certFile: server.certFile, keyFile: server.keyFile } });
    trustCa(ca.certFile);
    const viaFetch = await fetch(`${c.url}/healthz`);
    expect(viaFetch.status).toBe(200);
    const client = new LoadClient({ url: c.url, token: 'unused' });
    const a = await client.call('GET', '/healthz');
    expect(a.status).toBe(200);
    expect(a.body).toEqual({ status: 'pass' });
    client.close();
  });

  it('refuses plain HTTP on a non-loopback host, naming the fix; --insecure-http allows it', async () => {
    await expect(start('open', { host: '0.0.0.0' })).rejects.toThrow(
      /refusing plain HTTP on non-loopback host 0\.0\.0\.0.*tls\.certFile.*--insecure-http/,
    );
    const c = await start('insecure', { host: '0.0.0.0', insecureHttp: true });
    expect(c.url).toMatch(/^http:\/\/0\.0\.0\.0:\d+$/);
    const r = await httpGet(`http://127.0.0.1:${new URL(c.url).port}/healthz`);
    expect(r.status).toBe(200);
    // With TLS, a non-loopback host is fine.
    const t = await start('tls-open', {
      host: '0.0.0.0',
      tls: { certFile: server.certFile, keyFile: server.keyFile },
    });
    const port = new URL(t.url).port;
    expect((await httpsGet(`https://127.0.0.1:${port}/healthz`, { ca: ca.certFile })).status).toBe(200);
  });

  it('coordinator/main.ts stops at start-up with the same message, and passes --insecure-http on', async () => {
    const cfg = join(dir, 'main.json');
    writeFileSync(
      cfg,
      JSON.stringify({
        host: '0.0.0.0',
        port: 0,
        dataDir: join(dir, 'main-data'),
        cluster: { clusterFile: join(dir, 'no-such-cluster.json'), identityFile: join(dir, 'no-key') },
      }),
    );
    const refused = await run(NODE_BIN, ['coordinator/main.ts', '--config', cfg], { cwd: ROOT }).catch(
      (e: { code: number; stderr: string }) => e,
    );
    expect(refused).toMatchObject({ code: 1 });
    expect((refused as { stderr: string }).stderr).toMatch(
      /ValidationError: config: refusing plain HTTP on non-loopback host 0\.0\.0\.0/,
    );
    // With the flag the check passes and start-up goes on to the (missing) cluster file.
    const flagged = await run(NODE_BIN, ['coordinator/main.ts', '--config', cfg, '--insecure-http'], {
      cwd: ROOT,
    }).catch((e: { code: number; stderr: string }) => e);
    expect(flagged).toMatchObject({ code: 1 });
    expect((flagged as { stderr: string }).stderr).not.toMatch(/refusing plain HTTP/);
    expect((flagged as { stderr: string }).stderr).toMatch(/no-such-cluster\.json/);
  });

  it('client-certificate mode refuses a client without a certificate and serves one with a valid one', async () => {
    const c = await start('mtls', {
      tls: {
        certFile: server.certFile,
        keyFile: server.keyFile,
        caFile: clientCa.certFile,
        requestCert: true,
        rejectUnauthorized: true,
      },
    });
    await expect(httpsGet(`${c.url}/healthz`, { ca: ca.certFile })).rejects.toThrow(
      /certificate|alert|socket hang up|ECONNRESET/i,
    );
    // A certificate from another CA (here: the server's) is refused as well.
    const stranger = issueCert(ca, join(dir, 'stranger'), 'stranger', { commonName: 'x', usage: 'client' });
    await expect(httpsGet(`${c.url}/healthz`, { ca: ca.certFile, client: stranger })).rejects.toThrow();
    const ok = await httpsGet(`${c.url}/healthz`, { ca: ca.certFile, client });
    expect(ok.status).toBe(200);
  });

  it('rejects a TLS config that asks for client certificates without a CA to check them', () => {
    expect(() =>
      parseConfig({ tls: { certFile: server.certFile, keyFile: server.keyFile, requestCert: true } }),
    ).toThrow(/tls\.requestCert needs tls\.caFile/);
    expect(() => parseConfig({ tls: { certFile: server.certFile } })).toThrow(/tls\.keyFile/);
  });
});
