/**
 * The coordinator's HTTP layer: fastify with JSON-schema validation on every route, bearer-token
 * auth, RFC 9457 problems, Idempotency-Key on POST, Prometheus metrics, and an audit record for
 * every request written before the answer leaves (a request whose record cannot be written is
 * answered 503 AuditWriteFailed instead). It talks to the nodes only through `Cluster`.
 *
 * Hook order per request: onRequest (authenticate, authorize by route permission) -> parse and
 * validate -> preHandler (Idempotency-Key: replay or claim) -> handler (decision audit before any
 * change, per-key queue) -> onSend (request audit record, idempotency store) -> onResponse (metrics).
 */
import { randomUUID } from 'node:crypto';
import { STATUS_CODES } from 'node:http';
import { mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import swagger from '@fastify/swagger';
import Fastify, { LogController } from 'fastify';
import { Level } from 'level';
import pino, { type Logger } from 'pino';
import { type AuditDb, AuditLog } from '../common/audit-log.ts';
import { InfraError, KmsError } from '../protocol/errors.ts';
import { requestDigest } from '../net/signed-request.ts';
import { ApprovalStore } from './approval-requests.ts';
import { AuthFailureLog } from './auth-failures.ts';
import { can, idempotencyScope, TokenStore } from './auth.ts';
import type { Cluster } from './cluster.ts';
import { GovernanceView, loadGenesis } from './governance.ts';
import { type CoordinatorConfig, checkListenSecurity } from './config.ts';
import { fingerprint, IDEMPOTENCY_HEADER, IDEMPOTENCY_KEY_RE, IdempotencyStore } from './idempotency.ts';
import { KeyedQueue } from './key-queue.ts';
import { KEY_ID_RE, KeyStore } from './key-store.ts';
import { type Clock, DeletionSweeper, systemClock } from './lifecycle.ts';
import { CoordinatorMetrics } from './metrics.ts';
import { fromFastifyError, PROBLEM_CONTENT_TYPE, problemOf, RETRY_AFTER_SECONDS } from './problems.ts';
import { auditRoutes } from './routes/audit.ts';
import { type AppContext, callerEntry, type KmsApp, plain, type RouteConfig } from './routes/context.ts';
import { governanceRoutes } from './routes/governance.ts';
import { healthRoutes } from './routes/health.ts';
import { backupRoutes } from './routes/backups.ts';
import { keyEventRoutes } from './routes/key-events.ts';
import { keyRoutes } from './routes/keys.ts';
import { lifecycleRoutes } from './routes/lifecycle.ts';
import { nodeRoutes } from './routes/nodes.ts';
import { requestRoutes } from './routes/requests.ts';
import { signRoutes } from './routes/sign.ts';
import { encryptionRoutes } from './routes/encryption.ts';
import { psbtRoutes } from './routes/psbt.ts';
import { custodyRoutes } from './routes/custody.ts';
import { tokenRoutes } from './routes/tokens.ts';
import { missingSignatureHeaders, verifySigned, wireOf } from './signed-api.ts';

export type BuildAppOptions = {
  config: CoordinatorConfig;
  cluster: Cluster;
  logger?: Logger;
  /** Wall clock: key timestamps, deletion windows, request-signature times, approval expiry (tests move it with the nodes'). */
  clock?: Clock;
  /** The audit log's database; default: the `audit` sublevel of the coordinator's store. */
  auditDb?: AuditDb;
};

export type CoordinatorApp = {
  app: KmsApp;
  context: AppContext;
  sweeper: DeletionSweeper;
  /** Stops the HTTP server (in-flight requests finish), the sweeper, and closes the store. Not the cluster. */
  close(): Promise<void>;
};

export type RunningCoordinator = CoordinatorApp & { url: string };

/** Secrets never reach the logs (conventions: redact authorization and token fields). */
export const LOG_REDACT = [
  'req.headers.authorization',
  'headers.authorization',
  '*.token',
  '*.adminToken',
  'token',
  'adminToken',
];

export function defaultLogger(config: CoordinatorConfig): Logger {
  return pino({ level: config.logLevel, base: { service: 'coordinator' }, redact: LOG_REDACT });
}

/**
 * Node server options: HTTPS (TLS 1.3 only, optional client certificates) when `config.tls` is
 * set, else plain HTTP. Fastify hands `https` to https.createServer and ignores `http` then, so the
 * slow-sender bounds go into both.
 */
function serverOptions(config: CoordinatorConfig): { http: object } | { https: object } {
  const timeouts = {
    headersTimeout: config.requestTimeoutMs,
    requestTimeout: config.requestTimeoutMs,
    connectionsCheckingInterval: Math.min(1_000, config.requestTimeoutMs),
  };
  const tls = config.tls;
  if (tls === undefined) return { http: timeouts };
  const read = (field: string, file: string) => {
    try {
      return readFileSync(file);
    } catch (e) {
      throw new KmsError('ValidationError', `config: cannot read ${field} ${file}`, { cause: e });
    }
  };
  return {
    https: {
      ...timeouts,
      cert: read('tls.certFile', tls.certFile),
      key: read('tls.keyFile', tls.keyFile),
      ...(tls.caFile === undefined ? {} : { ca: read('tls.caFile', tls.caFile) }),
      // RFC 8446; TLS 1.2 and older are refused in the handshake.
      minVersion: 'TLSv1.3',
      requestCert: tls.requestCert,
      rejectUnauthorized: tls.requestCert && tls.rejectUnauthorized,
    },
  };
}

/** Builds the app (not listening): for `app.inject` tests and for `startCoordinator`. */
export async function buildApp(opts: BuildAppOptions): Promise<CoordinatorApp> {
  const { config, cluster } = opts;
  const logger = opts.logger ?? defaultLogger(config);
  const clock = opts.clock ?? systemClock;
  // Certificate files are read before the store opens: a bad path fails without holding its lock.
  const server = serverOptions(config);
  const genesis = config.governance === undefined ? undefined : loadGenesis(config.governance.genesisFile);
  mkdirSync(config.dataDir, { recursive: true });
  const db = new Level<string, any>(join(config.dataDir, 'coordinator-db'), { valueEncoding: 'json' });
  try {
    await db.open();
  } catch (e) {
    const locked = String(
      (e as { cause?: { code?: string } }).cause?.code ?? (e as { code?: string }).code,
    ).includes('LOCK');
    throw new InfraError(
      locked ? 'StoreLocked' : 'StorageError',
      `cannot open the store in ${config.dataDir}`,
      { cause: e },
    );
  }
  const audit = await AuditLog.open(opts.auditDb ?? (db.sublevel('audit') as unknown as AuditDb));
  const tokens = new TokenStore(db);
  if (config.adminToken !== undefined) await tokens.ensureBootstrap(config.adminToken);
  const ctx: AppContext = {
    config,
    cluster,
    keys: new KeyStore(db),
    tokens,
    idempotency: new IdempotencyStore(db),
    audit,
    queue: new KeyedQueue(),
    metrics: new CoordinatorMetrics(),
    clock,
    log: logger,
    governance: new GovernanceView(cluster, genesis),
    approvals: new ApprovalStore(db, config.approvals, () => clock.now()),
    operations: new Map(),
    authFailures: new AuthFailureLog((entry) => audit.append(entry)),
    storeOpen: () => db.status === 'open',
  };

  const app = Fastify({
    loggerInstance: logger,
    bodyLimit: config.limits.bodyLimitBytes,
    // Wrong types are errors, not coerced; unknown fields are errors, not silently dropped.
    ajv: {
      customOptions: { removeAdditional: false, coerceTypes: false, useDefaults: false, allErrors: false },
    },
    onProtoPoisoning: 'error',
    onConstructorPoisoning: 'error',
    return503OnClosing: true,
    // Fastify's two access lines per request (incoming, completed) only at debug: every request is
    // in the audit log already, and writing both cost about 0.2 ms per signature (issue 17).
    // Refusals and internal errors are still logged by the error handler below.
    logController: new LogController({ disableRequestLogging: () => !logger.isLevelEnabled('debug') }),
    requestIdHeader: false,
    genReqId: () => randomUUID(),
    // Slow senders (slowloris) are cut off: the whole request, headers included, within the limit;
    // Node checks open connections against it every second (default: every 30 s).
    requestTimeout: config.requestTimeoutMs,
    ...server,
    // Requests Node refuses before fastify sees them (timeouts, oversized headers, garbage) get a
    // problem document too, not fastify's default JSON.
    clientErrorHandler: (err, socket) => {
      if (err.code === 'ECONNRESET' || socket.destroyed) return;
      const [status, e] =
        err.code === 'ERR_HTTP_REQUEST_TIMEOUT'
          ? [408, new KmsError('Timeout', 'the request was not received in time')]
          : err.code === 'HPE_HEADER_OVERFLOW'
            ? [431, new KmsError('MessageTooLarge', 'request headers are larger than the limit')]
            : [400, new KmsError('ValidationError', 'malformed HTTP request')];
      const body = JSON.stringify({ ...problemOf(e), status });
      if (socket.writable) {
        socket.write(
          `HTTP/1.1 ${status} ${STATUS_CODES[status]}\r\ncontent-type: ${PROBLEM_CONTENT_TYPE}\r\ncontent-length: ${Buffer.byteLength(body)}\r\nconnection: close\r\n\r\n${body}`,
        );
      }
      socket.destroy();
    },
    // Errors raised before routing (e.g. a malformed percent-encoding) are problems too. No hook
    // runs for them, so the caller is authenticated and the request audited here.
    frameworkErrors: (err, req, reply) => {
      const p = problemOf(fromFastifyError(err));
      req.log.info({ code: p.code }, 'request refused before routing');
      const r = reply as unknown as { code(n: number): { type(t: string): { send(b: string): void } } };
      void (async () => {
        const caller = await ctx.tokens.authenticate(req.headers.authorization).catch(() => null);
        let out = p;
        if (caller === null) {
          ctx.authFailures.note({ source: req.ip, code: p.code, route: `${req.method} unrouted` });
          r.code(out.status).type(PROBLEM_CONTENT_TYPE).send(JSON.stringify(out));
          return;
        }
        try {
          await ctx.audit.append(
            plain({
              type: 'request',
              requestId: req.id,
              method: req.method,
              route: null,
              status: p.status,
              code: p.code,
              caller: callerEntry(caller),
            }),
          );
        } catch {
          ctx.metrics.auditFailures.inc();
          out = problemOf(
            new InfraError('AuditWriteFailed', 'the audit record of this request could not be written'),
          );
        }
        r.code(out.status).type(PROBLEM_CONTENT_TYPE).send(JSON.stringify(out));
      })();
    },
  });
  // JSON only: fastify's default text/plain parser would turn a text body into a string.
  app.removeContentTypeParser('text/plain');
  // RFC 8259 §8.1: JSON text is UTF-8. Invalid bytes are refused, not replaced with U+FFFD.
  const jsonParser = app.getDefaultJsonParser('error', 'error');
  const utf8 = new TextDecoder('utf-8', { fatal: true });
  app.removeContentTypeParser('application/json');
  app.addContentTypeParser('application/json', { parseAs: 'buffer' }, (req, body, done) => {
    // Kept as received: a signed request's Content-Digest covers these bytes, and the nodes get them.
    req.rawBody = body as Buffer;
    let text: string;
    try {
      text = utf8.decode(body as Buffer);
    } catch {
      done(new KmsError('ValidationError', 'body is not valid UTF-8'), undefined);
      return;
    }
    jsonParser(req, text, done);
  });

  app.decorateRequest('caller', null);
  app.decorateRequest('principal', null);
  app.decorateRequest('auth', null);
  app.decorateRequest('rawBody', null);
  app.decorateRequest('audit', null as never);
  app.decorateRequest('problem', null);
  app.decorateRequest('idempotency', null);
  app.decorateRequest('idempotencyOverride', null);
  app.decorateRequest('replayed', false);

  await app.register(swagger, {
    openapi: {
      openapi: '3.1.0',
      info: {
        title: 'threshold-kms coordinator',
        version: '0.1.0',
        description:
          'Threshold key management: FROST keys whose shares live on separate nodes. Errors are RFC 9457 application/problem+json with a stable `code`.',
      },
      components: {
        securitySchemes: {
          bearerAuth: { type: 'http', scheme: 'bearer' },
          httpSignature: {
            type: 'apiKey',
            in: 'header',
            name: 'Signature',
            description:
              'RFC 9421 HTTP Message Signature by a principal (label sig1; components "@method" "@path" ["@query"] "content-digest"; created, expires, nonce, keyid, alg) with Signature-Input and an RFC 9530 Content-Digest: forwarded to every node, which verifies it itself (docs/api.md)',
          },
        },
      },
    },
  });

  const routeConfig = (req: { routeOptions: { config: unknown } }): RouteConfig =>
    (req.routeOptions.config ?? {}) as RouteConfig;

  app.setErrorHandler((err, req, reply) => {
    const kms = fromFastifyError(err);
    const p = problemOf(kms);
    if (p.code === 'Internal') req.log.error({ err }, 'internal error');
    else req.log.info({ code: p.code, status: p.status }, 'request refused');
    req.problem = p;
    if (p.code === 'Unauthorized' && routeConfig(req).signed === undefined) {
      reply.header('www-authenticate', 'Bearer');
    }
    if (p.status === 503) reply.header('retry-after', String(RETRY_AFTER_SECONDS));
    return reply.code(p.status).type(PROBLEM_CONTENT_TYPE).send(JSON.stringify(p));
  });

  app.setNotFoundHandler((req, reply) => {
    const p = problemOf(
      new KmsError('NotFound', `no route ${req.method} ${req.url.split('?')[0]!.slice(0, 200)}`),
    );
    req.problem = p;
    return reply.code(404).type(PROBLEM_CONTENT_TYPE).send(JSON.stringify(p));
  });

  app.addHook('onRequest', async (req) => {
    req.audit = {};
    const cfg = routeConfig(req);
    if (cfg.action !== undefined) req.audit.action = cfg.action;
    const keyParam = (req.params as { keyId?: unknown } | undefined)?.keyId;
    if (typeof keyParam === 'string' && KEY_ID_RE.test(keyParam)) req.audit.keyId = keyParam;
    if (cfg.signed !== undefined) {
      // Using or changing a key needs a principal's signature: no bearer token can (issue 12).
      const missing = missingSignatureHeaders(req.headers);
      if (missing.length > 0) {
        // A valid token is named on the record (someone holding it tried), never accepted.
        req.caller = await ctx.tokens.authenticate(req.headers.authorization).catch(() => null);
        throw new KmsError(
          'Unauthorized',
          `${cfg.signed} needs a principal's signed request: ${missing.join(', ')} missing ` +
            '(RFC 9421 signature, RFC 9530 Content-Digest; see docs/api.md). Bearer tokens are read-only for keys',
        );
      }
      return;
    }
    if (cfg.permission === undefined) return;
    const caller = await ctx.tokens.authenticate(req.headers.authorization);
    req.caller = caller;
    if (!can(caller, cfg.permission)) {
      throw new KmsError('Forbidden', `role ${caller.role} may not ${cfg.action ?? cfg.permission}`);
    }
  });

  // A POST without a body means "no options" (curl -X POST ...): validate it as {}. A JSON `null`
  // body is a wrong type, not an absent body.
  app.addHook('preValidation', async (req) => {
    if (req.method === 'POST' && req.body === undefined) req.body = {};
  });

  app.addHook('preHandler', async (req, reply) => {
    const cfg = routeConfig(req);
    if (cfg.signed !== undefined) {
      // Checked here too, for a useful error; every node checks it again itself.
      const wire = wireOf(req);
      req.principal = await verifySigned(ctx.governance, wire, ctx.clock.now());
      req.auth = { request: wire };
      req.audit.requestDigest = requestDigest(wire);
    }
    if (req.method !== 'POST' || (cfg.permission === undefined && cfg.signed === undefined)) return;
    const key = req.headers[IDEMPOTENCY_HEADER];
    if (key === undefined) return;
    if (typeof key !== 'string' || !IDEMPOTENCY_KEY_RE.test(key)) {
      throw new KmsError('ValidationError', 'Idempotency-Key must be 1-255 printable ASCII characters');
    }
    const begun = await ctx.idempotency.begin(
      req.principal !== null ? `principal:${req.principal}` : idempotencyScope(req.caller!),
      key,
      fingerprint(req.method, req.url, req.body),
    );
    if (begun.kind === 'replay') {
      req.replayed = true;
      return reply
        .code(begun.response.status)
        .header('content-type', begun.response.contentType)
        .header('idempotent-replayed', 'true')
        .send(begun.response.body);
    }
    req.idempotency = begun;
  });

  app.addHook('onSend', async (req, reply, payload) => {
    const cfg = routeConfig(req);
    if (cfg.public) return payload;
    let out = payload;
    const a = req.audit ?? {};
    if (reply.statusCode >= 400 && req.caller === null && req.principal === null) {
      // Unauthenticated failures: aggregated per source and minute, not one synced write each (M-3).
      ctx.authFailures.note({
        source: req.ip,
        code: req.problem?.code ?? String(reply.statusCode),
        route: `${req.method} ${req.routeOptions.url ?? 'unmatched'}`,
        ...(a.keyId === undefined ? {} : { keyId: a.keyId }),
      });
      return payload;
    }
    const culprits = a.culprits && a.culprits.length > 0 ? a.culprits : req.problem?.culprits;
    try {
      await ctx.audit.append(
        plain({
          type: 'request',
          requestId: req.id,
          method: req.method,
          route: req.routeOptions.url ?? null,
          status: reply.statusCode,
          code: req.problem?.code,
          caller: callerEntry(req.caller, req.principal),
          action: a.action,
          keyId: a.keyId,
          epoch: a.epoch,
          participants: a.participants ? [...a.participants] : undefined,
          signers: a.signers ? [...a.signers] : undefined,
          culprits: culprits?.map((b) =>
            plain({ participant: b.participant, reason: b.reason, round: b.round }),
          ),
          messageSha256: a.messageSha256,
          requestDigest: a.requestDigest,
          approvers: a.approvers ? [...a.approvers] : undefined,
          approvalRequestId: a.approvalRequestId,
          refusedBy: a.refusedBy ? [...a.refusedBy] : undefined,
          replayed: req.replayed ? true : undefined,
        }),
      );
    } catch (e) {
      ctx.metrics.auditFailures.inc();
      req.log.error({ code: (e as KmsError).code }, 'audit write failed; refusing the request');
      const p = problemOf(
        e instanceof KmsError && e.code === 'AuditWriteFailed'
          ? e
          : new InfraError('AuditWriteFailed', 'the audit record of this request could not be written'),
      );
      req.problem = p;
      reply
        .code(503)
        .header('content-type', PROBLEM_CONTENT_TYPE)
        .header('retry-after', String(RETRY_AFTER_SECONDS));
      reply.removeHeader('idempotent-replayed');
      out = JSON.stringify(p);
    }
    const idem = req.idempotency;
    if (idem) {
      req.idempotency = null;
      const status = reply.statusCode;
      const override = status < 300 ? req.idempotencyOverride : null;
      await idem
        .finish(
          status >= 500
            ? null
            : (override ?? {
                status,
                contentType: String(reply.getHeader('content-type') ?? 'application/json'),
                body: typeof out === 'string' ? out : String(out),
              }),
        )
        .catch((e: unknown) => req.log.warn({ err: e }, 'idempotency record not stored'));
    }
    return out;
  });

  app.addHook('onResponse', async (req, reply) => {
    const labels = {
      method: req.method,
      route: req.routeOptions.url ?? 'unmatched',
      status: String(reply.statusCode),
    };
    ctx.metrics.httpRequests.inc(labels);
    ctx.metrics.httpDuration.observe(labels, reply.elapsedTime / 1000);
    // A request that never reached onSend (aborted) must not hold its Idempotency-Key forever.
    const idem = req.idempotency;
    if (idem) {
      req.idempotency = null;
      await idem.finish(null).catch(() => undefined);
    }
  });

  healthRoutes(app, ctx);
  keyRoutes(app, ctx);
  signRoutes(app, ctx);
  encryptionRoutes(app, ctx);
  psbtRoutes(app, ctx);
  custodyRoutes(app, ctx);
  keyEventRoutes(app, ctx);
  backupRoutes(app, ctx);
  lifecycleRoutes(app, ctx);
  tokenRoutes(app, ctx);
  nodeRoutes(app, ctx);
  auditRoutes(app, ctx);
  governanceRoutes(app, ctx);
  requestRoutes(app, ctx);

  const sweeper = new DeletionSweeper({
    store: ctx.keys,
    cluster,
    queue: ctx.queue,
    clock,
    intervalMs: config.deletionSweepIntervalMs,
    audit: (entry) => audit.append(entry),
    logger,
  });

  await app.ready();
  let closed: Promise<void> | undefined;
  const close = () =>
    (closed ??= (async () => {
      await sweeper.stop();
      await app.close();
      await ctx.queue.idle();
      await ctx.authFailures.flush();
      await db.close();
    })());
  return { app, context: ctx, sweeper, close };
}

/** Builds the app, starts the deletion sweeper and listens on `config.host:config.port` (0 = any free port). */
export async function startCoordinator(opts: {
  config: CoordinatorConfig;
  cluster: Cluster;
  logger?: Logger;
  clock?: Clock;
}): Promise<RunningCoordinator> {
  checkListenSecurity(opts.config);
  const built = await buildApp(opts);
  try {
    await built.app.listen({ host: opts.config.host, port: opts.config.port });
  } catch (e) {
    await built.close();
    throw new InfraError('StorageError', `cannot listen on ${opts.config.host}:${opts.config.port}`, {
      cause: e,
    });
  }
  built.sweeper.start();
  await installGovernance(built.context, built.app.log);
  await recoverInterruptedCreates(built.context, built.app.log);
  const addr = built.app.server.address();
  const port = typeof addr === 'object' && addr !== null ? addr.port : opts.config.port;
  const host = opts.config.host.includes(':') ? `[${opts.config.host}]` : opts.config.host;
  const scheme = opts.config.tls === undefined ? 'http' : 'https';
  return { ...built, url: `${scheme}://${host}:${port}` };
}

/**
 * Installs the configured genesis on every node (each accepts it only by the hash in its own
 * configuration; a node already past it keeps its chain) and reads the current version back. A
 * node that is down is offered the genesis again when the governance is next read. Never fails the
 * start: the nodes refuse every signed operation until they hold a governance, and say so.
 */
export async function installGovernance(
  ctx: AppContext,
  log: { warn: (o: object, m: string) => void; info: (o: object, m: string) => void },
): Promise<void> {
  if (!ctx.governance.genesis) return;
  const outcomes = await ctx.governance.installGenesis().catch(() => []);
  const missed = outcomes.filter((o) => !o.ok);
  if (missed.length > 0) {
    log.warn(
      { nodes: missed.map((o) => ({ node: o.node, code: o.error?.code })) },
      'governance genesis not installed on every node',
    );
  }
  await ctx.governance.read().then(
    (g) => log.info({ version: g.version, disagreeing: g.disagreeing }, 'governance read from the nodes'),
    (e: unknown) => log.warn({ code: (e as KmsError).code }, 'governance not readable from the nodes'),
  );
}

/**
 * A key still `Creating` at start-up belongs to a DKG this coordinator never finished answering
 * (it crashed mid-DKG, threats F-04). Its creator never got the key, so it is not adopted: the
 * nodes are told to destroy whatever they hold of it (best effort: an unreachable node keeps an
 * orphaned share that no key record points to), the alias is freed, and the outcome is audited.
 */
export async function recoverInterruptedCreates(
  ctx: AppContext,
  log: { warn: (o: object, m: string) => void },
): Promise<number> {
  const stuck = await ctx.keys.inState('Creating');
  for (const rec of stuck) {
    await ctx.cluster.destroyKey({ keyId: rec.keyId }).catch(() => undefined);
    await ctx.keys.releaseAlias(rec, null);
    await ctx.audit.append({
      kind: 'recovery',
      event: 'key.create.interrupted',
      keyId: rec.keyId,
      outcome: 'discarded',
    });
    log.warn({ keyId: rec.keyId }, 'discarded a key left Creating by an interrupted DKG');
  }
  return stuck.length;
}
