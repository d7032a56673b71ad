/**
 * Coordinator configuration: defaults < JSON config file < `KMS_*` environment variables.
 *
 * File (JSON), every field optional:
 * ```json
 * {
 *   "host": "127.0.0.1", "port": 8080, "dataDir": "./data/coordinator",
 *   "adminToken": "<bootstrap admin bearer token, >= 32 chars>",
 *   "limits": { "bodyLimitBytes": 196608, "maxMessageBytes": 65536, "maxListLimit": 1000 },
 *   "deletionSweepIntervalMs": 60000, "readyMinNodes": 1, "logLevel": "info", "requestTimeoutMs": 30000,
 *   "tls": { "certFile": "server.pem", "keyFile": "server.key", "caFile": "clients-ca.pem",
 *            "requestCert": false, "rejectUnauthorized": true },
 *   "insecureHttp": false,
 *   "governance": { "genesisFile": "genesis.json" },
 *   "approvals": { "ttlMs": 86400000, "maxOpen": 1000, "retentionMs": 604800000 },
 *   "cluster": { ...passed through untouched to the Cluster implementation... }
 * }
 * ```
 *
 * | field | env override | default | meaning |
 * | --- | --- | --- | --- |
 * | host | KMS_HOST | 127.0.0.1 | HTTP(S) bind address |
 * | port | KMS_PORT | 8080 | HTTP(S) port (0: any free port) |
 * | dataDir | KMS_DATA_DIR | ./data/coordinator | LevelDB directory |
 * | adminToken | KMS_ADMIN_TOKEN (or KMS_ADMIN_TOKEN_FILE, main.ts) | none | bootstrap admin bearer token |
 * | limits.bodyLimitBytes, limits.maxMessageBytes, limits.maxListLimit | KMS_BODY_LIMIT_BYTES, KMS_MAX_MESSAGE_BYTES, KMS_MAX_LIST_LIMIT | 196608, 65536, 1000 | request bounds |
 * | deletionSweepIntervalMs | KMS_DELETION_SWEEP_INTERVAL_MS | 60000 | how often scheduled deletions are looked for |
 * | readyMinNodes | KMS_READY_MIN_NODES | 1 | `/readyz` needs this many reachable nodes |
 * | logLevel | KMS_LOG_LEVEL | info | pino level (per-request access lines at debug only: every request is in the audit log) |
 * | requestTimeoutMs | KMS_REQUEST_TIMEOUT_MS | 30000 | longest time to receive a whole request |
 * | tls.certFile, tls.keyFile | KMS_TLS_CERT_FILE, KMS_TLS_KEY_FILE | none | PEM certificate chain and private key: serve HTTPS (TLS 1.3 only) |
 * | tls.caFile | KMS_TLS_CA_FILE | none | PEM CA bundle client certificates must chain to |
 * | tls.requestCert | KMS_TLS_REQUEST_CERT | false | ask clients for a certificate (needs tls.caFile) |
 * | tls.rejectUnauthorized | KMS_TLS_REJECT_UNAUTHORIZED | true | with requestCert: refuse a client without a valid certificate |
 * | insecureHttp | KMS_INSECURE_HTTP, `--insecure-http` | false | allow plain HTTP on a non-loopback host |
 * | governance.genesisFile | KMS_GENESIS_FILE | none | the governance genesis document (JSON, version 1) installed on every node at start; each node accepts it only if its hash is the node's `genesisHash` |
 * | approvals.ttlMs | KMS_APPROVAL_TTL_MS | 86400000 (24 h) | longest wait of a request for its approvals (at most 24 h: nodes keep a pending request approvable that long, policy/approvals.ts) |
 * | approvals.maxOpen | KMS_APPROVAL_MAX_OPEN | 1000 | requests waiting for approvals at most (more: 503 Overloaded) |
 * | approvals.retentionMs | KMS_APPROVAL_RETENTION_MS | 604800000 (7 d) | how long finished and expired requests stay readable |
 *
 * Without `tls` the coordinator serves plain HTTP, which it does only on a loopback host
 * (127.0.0.0/8, ::1, localhost) unless `insecureHttp` says so explicitly: bearer tokens and
 * messages would otherwise cross the network in clear. KMS_CONFIG names the file. (KMS_URL,
 * KMS_TOKEN and KMS_CA belong to the CLI.) Relative TLS file paths resolve against the working
 * directory. Invalid values fail start-up with a ValidationError naming the field, never a secret.
 */
import { readFileSync } from 'node:fs';
import { KmsError } from '../protocol/errors.ts';

export type CoordinatorLimits = {
  /** Largest accepted HTTP body. Must exceed the hex of the largest message plus JSON framing. */
  readonly bodyLimitBytes: number;
  /** Largest message to sign or verify, in bytes (the hex on the wire is twice that). */
  readonly maxMessageBytes: number;
  /** Largest `limit` accepted by paginated listings. */
  readonly maxListLimit: number;
};

/** HTTPS settings (node:tls names): the server certificate, and optionally client certificates. */
export type CoordinatorTls = {
  /** PEM certificate chain the server presents. */
  readonly certFile: string;
  /** PEM private key of that certificate. */
  readonly keyFile: string;
  /** PEM CA bundle that client certificates must chain to. */
  readonly caFile?: string;
  /** Ask every client for a certificate. */
  readonly requestCert: boolean;
  /** With requestCert: a client without a certificate signed by caFile is refused in the handshake. */
  readonly rejectUnauthorized: boolean;
};

export type CoordinatorConfig = {
  readonly host: string;
  readonly port: number;
  readonly dataDir: string;
  /** Bootstrap admin token (registered at start as token id `bootstrap-admin`); optional. */
  readonly adminToken?: string;
  readonly limits: CoordinatorLimits;
  /** How often the deletion sweeper looks for keys whose pending window has ended. */
  readonly deletionSweepIntervalMs: number;
  /** `/readyz` needs at least this many reachable nodes. */
  readonly readyMinNodes: number;
  readonly logLevel: 'fatal' | 'error' | 'warn' | 'info' | 'debug' | 'trace' | 'silent';
  /** Longest time a client may take to send a whole request (headers and body): slow senders are cut off. */
  readonly requestTimeoutMs: number;
  /** Serve HTTPS with these files; absent: plain HTTP (loopback only, unless insecureHttp). */
  readonly tls?: CoordinatorTls;
  /** Allows plain HTTP on a non-loopback host: an explicit, named choice, never a default. */
  readonly insecureHttp: boolean;
  /** The governance genesis installed on every node at start (they accept it only by its hash). */
  readonly governance?: { readonly genesisFile: string };
  /** Requests waiting for approvals: time to live, how many at once, how long kept after. */
  readonly approvals: { readonly ttlMs: number; readonly maxOpen: number; readonly retentionMs: number };
  /** Opaque to the HTTP layer: the Cluster implementation's own settings (node list, peer ids...). */
  readonly cluster?: Record<string, unknown>;
};

export const DEFAULT_LIMITS: CoordinatorLimits = {
  bodyLimitBytes: 192 * 1024,
  maxMessageBytes: 64 * 1024,
  maxListLimit: 1000,
};

export const DEFAULT_CONFIG: CoordinatorConfig = {
  host: '127.0.0.1',
  port: 8080,
  dataDir: './data/coordinator',
  limits: DEFAULT_LIMITS,
  deletionSweepIntervalMs: 60_000,
  readyMinNodes: 1,
  logLevel: 'info',
  requestTimeoutMs: 30_000,
  insecureHttp: false,
  approvals: { ttlMs: 24 * 3600 * 1000, maxOpen: 1000, retentionMs: 7 * 24 * 3600 * 1000 },
};

const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const;
const TOP_KEYS = new Set([
  'host',
  'port',
  'dataDir',
  'adminToken',
  'limits',
  'deletionSweepIntervalMs',
  'readyMinNodes',
  'logLevel',
  'cluster',
  'requestTimeoutMs',
  'tls',
  'insecureHttp',
  'governance',
  'approvals',
]);
const GOVERNANCE_KEYS = new Set(['genesisFile']);
const APPROVAL_KEYS = new Set(['ttlMs', 'maxOpen', 'retentionMs']);
const LIMIT_KEYS = new Set(['bodyLimitBytes', 'maxMessageBytes', 'maxListLimit']);
const TLS_KEYS = new Set(['certFile', 'keyFile', 'caFile', 'requestCert', 'rejectUnauthorized']);

function bad(field: string, what: string): KmsError {
  return new KmsError('ValidationError', `config: ${field} ${what}`);
}

function int(field: string, v: unknown, min: number, max: number): number {
  const n = typeof v === 'string' && /^[0-9]+$/.test(v) ? Number(v) : v;
  if (typeof n !== 'number' || !Number.isSafeInteger(n) || n < min || n > max) {
    throw bad(field, `must be an integer in [${min}, ${max}]`);
  }
  return n;
}

function str(field: string, v: unknown): string {
  if (typeof v !== 'string' || v.length === 0) throw bad(field, 'must be a non-empty string');
  return v;
}

function bool(field: string, v: unknown): boolean {
  if (v === true || v === 'true' || v === '1') return true;
  if (v === false || v === 'false' || v === '0') return false;
  throw bad(field, 'must be true or false');
}

function parseTls(raw: unknown): CoordinatorTls | undefined {
  if (raw === undefined) return undefined;
  if (!isRecord(raw)) throw bad('tls', 'must be an object');
  for (const k of Object.keys(raw)) if (!TLS_KEYS.has(k)) throw bad(`tls.${k}`, 'is not a known field');
  const caFile = raw['caFile'] === undefined ? undefined : str('tls.caFile', raw['caFile']);
  const requestCert = bool('tls.requestCert', raw['requestCert'] ?? false);
  if (requestCert && caFile === undefined) {
    throw bad('tls.requestCert', 'needs tls.caFile (the CA client certificates must chain to)');
  }
  return {
    certFile: str('tls.certFile', raw['certFile']),
    keyFile: str('tls.keyFile', raw['keyFile']),
    ...(caFile === undefined ? {} : { caFile }),
    requestCert,
    rejectUnauthorized: bool('tls.rejectUnauthorized', raw['rejectUnauthorized'] ?? true),
  };
}

/** 127.0.0.0/8, ::1 and `localhost`: addresses no other machine can reach. */
export function isLoopbackHost(host: string): boolean {
  const h = host.replace(/^\[(.*)\]$/, '$1').toLowerCase();
  return h === 'localhost' || h === '::1' || /^127(?:\.\d{1,3}){3}$/.test(h) || h === '::ffff:127.0.0.1';
}

/**
 * The rule for plain HTTP: only on loopback unless `insecureHttp` is set. Throws a ValidationError
 * saying what to do; checked before the coordinator binds (coordinator/app.ts startCoordinator).
 */
export function checkListenSecurity(cfg: CoordinatorConfig): void {
  if (cfg.tls !== undefined || cfg.insecureHttp || isLoopbackHost(cfg.host)) return;
  throw new KmsError(
    'ValidationError',
    `config: refusing plain HTTP on non-loopback host ${cfg.host}: bearer tokens would cross the network in clear. ` +
      'Configure tls.certFile and tls.keyFile (KMS_TLS_CERT_FILE, KMS_TLS_KEY_FILE) to serve HTTPS, ' +
      'or pass --insecure-http (insecureHttp: true, KMS_INSECURE_HTTP=1) to serve plain HTTP knowingly',
  );
}

function parseGovernanceSection(raw: unknown): { genesisFile: string } | undefined {
  if (raw === undefined) return undefined;
  if (!isRecord(raw)) throw bad('governance', 'must be an object');
  for (const k of Object.keys(raw))
    if (!GOVERNANCE_KEYS.has(k)) throw bad(`governance.${k}`, 'is not a known field');
  return { genesisFile: str('governance.genesisFile', raw['genesisFile']) };
}

function parseApprovals(raw: unknown): CoordinatorConfig['approvals'] {
  const a = raw ?? {};
  if (!isRecord(a)) throw bad('approvals', 'must be an object');
  for (const k of Object.keys(a))
    if (!APPROVAL_KEYS.has(k)) throw bad(`approvals.${k}`, 'is not a known field');
  const d = DEFAULT_CONFIG.approvals;
  return {
    ttlMs: int('approvals.ttlMs', a['ttlMs'] ?? d.ttlMs, 1_000, 30 * 24 * 3600 * 1000),
    maxOpen: int('approvals.maxOpen', a['maxOpen'] ?? d.maxOpen, 1, 100_000),
    retentionMs: int('approvals.retentionMs', a['retentionMs'] ?? d.retentionMs, 0, 365 * 24 * 3600 * 1000),
  };
}

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** Validates a merged raw object into a config; unknown fields are an error (typos fail loudly). */
export function parseConfig(raw: unknown): CoordinatorConfig {
  if (!isRecord(raw)) throw bad('file', 'must be a JSON object');
  for (const k of Object.keys(raw))
    if (!TOP_KEYS.has(k)) throw bad(JSON.stringify(k), 'is not a known field');
  const limitsRaw = raw['limits'] ?? {};
  if (!isRecord(limitsRaw)) throw bad('limits', 'must be an object');
  for (const k of Object.keys(limitsRaw))
    if (!LIMIT_KEYS.has(k)) throw bad(`limits.${k}`, 'is not a known field');
  const limits: CoordinatorLimits = {
    bodyLimitBytes: int(
      'limits.bodyLimitBytes',
      limitsRaw['bodyLimitBytes'] ?? DEFAULT_LIMITS.bodyLimitBytes,
      1024,
      64 * 1024 * 1024,
    ),
    maxMessageBytes: int(
      'limits.maxMessageBytes',
      limitsRaw['maxMessageBytes'] ?? DEFAULT_LIMITS.maxMessageBytes,
      1,
      16 * 1024 * 1024,
    ),
    maxListLimit: int(
      'limits.maxListLimit',
      limitsRaw['maxListLimit'] ?? DEFAULT_LIMITS.maxListLimit,
      1,
      100_000,
    ),
  };
  if (limits.bodyLimitBytes < 2 * limits.maxMessageBytes + 1024) {
    throw bad('limits.bodyLimitBytes', 'must hold the hex of maxMessageBytes plus 1024 bytes of JSON');
  }
  const logLevel = raw['logLevel'] ?? DEFAULT_CONFIG.logLevel;
  if (!(LOG_LEVELS as readonly unknown[]).includes(logLevel))
    throw bad('logLevel', `must be one of ${LOG_LEVELS.join(', ')}`);
  const cfg: CoordinatorConfig = {
    host: str('host', raw['host'] ?? DEFAULT_CONFIG.host),
    port: int('port', raw['port'] ?? DEFAULT_CONFIG.port, 0, 65535),
    dataDir: str('dataDir', raw['dataDir'] ?? DEFAULT_CONFIG.dataDir),
    limits,
    deletionSweepIntervalMs: int(
      'deletionSweepIntervalMs',
      raw['deletionSweepIntervalMs'] ?? DEFAULT_CONFIG.deletionSweepIntervalMs,
      10,
      24 * 3600 * 1000,
    ),
    readyMinNodes: int('readyMinNodes', raw['readyMinNodes'] ?? DEFAULT_CONFIG.readyMinNodes, 0, 10_000),
    logLevel: logLevel as CoordinatorConfig['logLevel'],
    requestTimeoutMs: int(
      'requestTimeoutMs',
      raw['requestTimeoutMs'] ?? DEFAULT_CONFIG.requestTimeoutMs,
      100,
      600_000,
    ),
    insecureHttp: bool('insecureHttp', raw['insecureHttp'] ?? false),
    approvals: parseApprovals(raw['approvals']),
  };
  const governance = parseGovernanceSection(raw['governance']);
  const adminToken = raw['adminToken'];
  const cluster = raw['cluster'];
  if (cluster !== undefined && !isRecord(cluster)) throw bad('cluster', 'must be an object');
  const tls = parseTls(raw['tls']);
  return {
    ...cfg,
    ...(tls === undefined ? {} : { tls }),
    ...(governance === undefined ? {} : { governance }),
    ...(adminToken === undefined ? {} : { adminToken: checkAdminToken(adminToken) }),
    ...(cluster === undefined ? {} : { cluster }),
  };
}

function checkAdminToken(v: unknown): string {
  // Never echo the value: it is a credential.
  if (typeof v !== 'string' || v.length < 32 || v.length > 256 || !/^[\x21-\x7e]+$/.test(v)) {
    throw bad('adminToken', 'must be 32-256 printable ASCII characters without spaces');
  }
  return v;
}

const ENV: readonly [string, (o: Record<string, unknown>, v: string) => void][] = [
  ['KMS_HOST', (o, v) => (o['host'] = v)],
  ['KMS_PORT', (o, v) => (o['port'] = v)],
  ['KMS_DATA_DIR', (o, v) => (o['dataDir'] = v)],
  ['KMS_ADMIN_TOKEN', (o, v) => (o['adminToken'] = v)],
  ['KMS_DELETION_SWEEP_INTERVAL_MS', (o, v) => (o['deletionSweepIntervalMs'] = v)],
  ['KMS_READY_MIN_NODES', (o, v) => (o['readyMinNodes'] = v)],
  ['KMS_LOG_LEVEL', (o, v) => (o['logLevel'] = v)],
  ['KMS_REQUEST_TIMEOUT_MS', (o, v) => (o['requestTimeoutMs'] = v)],
  ['KMS_BODY_LIMIT_BYTES', (o, v) => (limitsOf(o)['bodyLimitBytes'] = v)],
  ['KMS_MAX_MESSAGE_BYTES', (o, v) => (limitsOf(o)['maxMessageBytes'] = v)],
  ['KMS_MAX_LIST_LIMIT', (o, v) => (limitsOf(o)['maxListLimit'] = v)],
  ['KMS_TLS_CERT_FILE', (o, v) => (tlsOf(o)['certFile'] = v)],
  ['KMS_TLS_KEY_FILE', (o, v) => (tlsOf(o)['keyFile'] = v)],
  ['KMS_TLS_CA_FILE', (o, v) => (tlsOf(o)['caFile'] = v)],
  ['KMS_TLS_REQUEST_CERT', (o, v) => (tlsOf(o)['requestCert'] = v)],
  ['KMS_TLS_REJECT_UNAUTHORIZED', (o, v) => (tlsOf(o)['rejectUnauthorized'] = v)],
  ['KMS_INSECURE_HTTP', (o, v) => (o['insecureHttp'] = v)],
  ['KMS_GENESIS_FILE', (o, v) => (sectionOf(o, 'governance')['genesisFile'] = v)],
  ['KMS_APPROVAL_TTL_MS', (o, v) => (sectionOf(o, 'approvals')['ttlMs'] = v)],
  ['KMS_APPROVAL_MAX_OPEN', (o, v) => (sectionOf(o, 'approvals')['maxOpen'] = v)],
  ['KMS_APPROVAL_RETENTION_MS', (o, v) => (sectionOf(o, 'approvals')['retentionMs'] = v)],
];

function sectionOf(o: Record<string, unknown>, name: string): Record<string, unknown> {
  const t = isRecord(o[name]) ? { ...(o[name] as Record<string, unknown>) } : {};
  o[name] = t;
  return t;
}

function tlsOf(o: Record<string, unknown>): Record<string, unknown> {
  const t = isRecord(o['tls']) ? { ...o['tls'] } : {};
  o['tls'] = t;
  return t;
}

function limitsOf(o: Record<string, unknown>): Record<string, unknown> {
  const l = isRecord(o['limits']) ? { ...o['limits'] } : {};
  o['limits'] = l;
  return l;
}

/**
 * Loads the config: the file (`opts.file`, else `$KMS_CONFIG`, else none), then env overrides,
 * then `opts.overrides` (e.g. command-line flags).
 */
export function loadConfig(
  opts: { file?: string; env?: Record<string, string | undefined>; overrides?: Record<string, unknown> } = {},
): CoordinatorConfig {
  const env = opts.env ?? process.env;
  const file = opts.file ?? env['KMS_CONFIG'];
  let raw: Record<string, unknown> = {};
  if (file !== undefined && file !== '') {
    let text: string;
    try {
      text = readFileSync(file, 'utf8');
    } catch (e) {
      throw new KmsError('ValidationError', `config: cannot read ${file}`, { cause: e });
    }
    let parsed: unknown;
    try {
      parsed = JSON.parse(text);
    } catch (e) {
      throw new KmsError('ValidationError', `config: ${file} is not valid JSON`, { cause: e });
    }
    if (!isRecord(parsed)) throw bad('file', 'must be a JSON object');
    raw = { ...parsed };
  }
  for (const [name, set] of ENV) {
    const v = env[name];
    if (v !== undefined && v !== '') set(raw, v);
  }
  return parseConfig({ ...raw, ...(opts.overrides ?? {}) });
}
