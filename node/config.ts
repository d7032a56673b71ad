/**
 * Node daemon configuration: a JSON file (`--config FILE`) with environment overrides. Validated
 * with a JSON schema at start; a bad config stops the node with a message naming the field.
 *
 * Secrets (HSM PIN, software passphrase) are never in the file: they come from an environment
 * variable or from a file readable only by the node's user (`pinFile` / `passphraseFile`).
 *
 * | field | env override | meaning |
 * | --- | --- | --- |
 * | nodeId | KMS_NODE_ID | this node's name in the cluster, `node-<k>` |
 * | listen | KMS_LISTEN (comma-separated) | libp2p multiaddrs to listen on |
 * | dataDir | KMS_DATA_DIR | LevelDB directory (one process per directory) |
 * | cluster | KMS_CLUSTER | path of the cluster file: every node's and coordinator's peer id and addresses (the allow-list) |
 * | sealer.kind | KMS_SEALER | `pkcs11` or `software` |
 * | sealer.library | KMS_PKCS11_LIBRARY | PKCS#11 module (default /usr/lib/softhsm/libsofthsm2.so) |
 * | sealer.tokenLabel | KMS_PKCS11_TOKEN | token label |
 * | sealer.pinFile | KMS_HSM_PIN_FILE | file holding the user PIN (or env KMS_HSM_PIN) |
 * | sealer.softhsmConf | SOFTHSM2_CONF | SoftHSM2 config file for this node's token directory |
 * | sealer.passphraseFile | KMS_PASSPHRASE_FILE | software sealer passphrase file (or env KMS_PASSPHRASE) |
 * | sessionTimeoutMs | KMS_SESSION_TIMEOUT_MS | deadline of one DKG / key-event session (default 30000) |
 * | adminListen | KMS_ADMIN_LISTEN | `host:port` of the admin HTTP server: `/healthz`, `/readyz`, Prometheus `/metrics` (node/health.ts). Off when absent; keep it on loopback (127.0.0.1:<port>, port 0 = any free port): it has no authentication |
 * | logLevel | KMS_LOG_LEVEL | pino level (default info) |
 * | genesisHash | KMS_GENESIS_HASH | SHA-256 (hex) of the governance genesis document (policy/governance.ts): the only version 1 this node installs (`governance-update`) |
 * | requireSignedRequests | — | default true: signing, key events and state changes need a client-signed request verified by this node against its governance (node/request-guard.ts). `false` only in test fixtures that do not sign yet |
 */
import { readFileSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { Ajv } from 'ajv';
import { KmsError } from '../protocol/errors.ts';
import { readJson, schemaError } from '../net/cluster-file.ts';

export type { ClusterFile, ClusterPeer } from '../net/cluster-file.ts';

export type SealerConfig =
  | {
      kind: 'pkcs11';
      library: string;
      tokenLabel: string;
      pinFile?: string;
      softhsmConf?: string;
    }
  | { kind: 'software'; passphraseFile?: string };

export type NodeConfig = {
  nodeId: string;
  listen: string[];
  dataDir: string;
  cluster: string;
  sealer: SealerConfig;
  sessionTimeoutMs: number;
  logLevel: string;
  /** `host:port` of the admin server (health and metrics); absent: none. */
  adminListen?: string;
  /** Hash of the governance genesis (version 1) this node accepts; absent: it installs none. */
  genesisHash?: string;
  /** Guarded operations need a verified signed request (absent: true). */
  requireSignedRequests?: boolean;
};

const nodeConfigSchema = {
  type: 'object',
  additionalProperties: false,
  required: ['nodeId', 'listen', 'dataDir', 'cluster', 'sealer'],
  properties: {
    nodeId: { type: 'string', pattern: '^node-[1-9][0-9]{0,3}$' },
    listen: { type: 'array', items: { type: 'string', minLength: 1 }, minItems: 1 },
    dataDir: { type: 'string', minLength: 1 },
    cluster: { type: 'string', minLength: 1 },
    sessionTimeoutMs: { type: 'integer', minimum: 100, maximum: 600000 },
    adminListen: { type: 'string', pattern: '^(?:\\[[0-9A-Fa-f:.]+\\]|[A-Za-z0-9.-]+):[0-9]{1,5}$' },
    logLevel: { enum: ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] },
    genesisHash: { type: 'string', pattern: '^[0-9a-f]{64}$' },
    requireSignedRequests: { type: 'boolean' },
    sealer: {
      oneOf: [
        {
          type: 'object',
          additionalProperties: false,
          required: ['kind', 'tokenLabel'],
          properties: {
            kind: { const: 'pkcs11' },
            library: { type: 'string' },
            tokenLabel: { type: 'string', minLength: 1, maxLength: 32 },
            pinFile: { type: 'string' },
            softhsmConf: { type: 'string' },
          },
        },
        {
          type: 'object',
          additionalProperties: false,
          required: ['kind'],
          properties: { kind: { const: 'software' }, passphraseFile: { type: 'string' } },
        },
      ],
    },
  },
} as const;

const ajv = new Ajv({ allErrors: true, strict: false });
const validateNode = ajv.compile(nodeConfigSchema);

/** Reads and validates the node config; relative paths resolve against the config file's folder. */
export function loadNodeConfig(path: string, env: NodeJS.ProcessEnv = process.env): NodeConfig {
  const raw = readJson(path, 'node config') as Record<string, any>;
  const base = dirname(resolve(path));
  const merged: Record<string, any> = {
    sessionTimeoutMs: 30000,
    logLevel: 'info',
    requireSignedRequests: true,
    ...raw,
  };
  if (env.KMS_NODE_ID) merged.nodeId = env.KMS_NODE_ID;
  if (env.KMS_LISTEN) merged.listen = env.KMS_LISTEN.split(',');
  if (env.KMS_DATA_DIR) merged.dataDir = env.KMS_DATA_DIR;
  if (env.KMS_CLUSTER) merged.cluster = env.KMS_CLUSTER;
  if (env.KMS_SESSION_TIMEOUT_MS) merged.sessionTimeoutMs = Number(env.KMS_SESSION_TIMEOUT_MS);
  if (env.KMS_LOG_LEVEL) merged.logLevel = env.KMS_LOG_LEVEL;
  if (env.KMS_ADMIN_LISTEN) merged.adminListen = env.KMS_ADMIN_LISTEN;
  if (env.KMS_GENESIS_HASH) merged.genesisHash = env.KMS_GENESIS_HASH;
  const sealer: Record<string, any> = { ...(merged.sealer ?? {}) };
  if (env.KMS_SEALER) sealer.kind = env.KMS_SEALER;
  if (sealer.kind === 'pkcs11') {
    sealer.library = env.KMS_PKCS11_LIBRARY ?? sealer.library ?? '/usr/lib/softhsm/libsofthsm2.so';
    if (env.KMS_PKCS11_TOKEN) sealer.tokenLabel = env.KMS_PKCS11_TOKEN;
    if (env.KMS_HSM_PIN_FILE) sealer.pinFile = env.KMS_HSM_PIN_FILE;
    if (env.SOFTHSM2_CONF) sealer.softhsmConf = env.SOFTHSM2_CONF;
  } else if (env.KMS_PASSPHRASE_FILE) {
    sealer.passphraseFile = env.KMS_PASSPHRASE_FILE;
  }
  merged.sealer = sealer;
  if (!validateNode(merged)) throw schemaError(`node config ${path}`, validateNode.errors);
  const cfg = merged as NodeConfig;
  const abs = (p: string) => resolve(base, p);
  cfg.dataDir = abs(cfg.dataDir);
  cfg.cluster = abs(cfg.cluster);
  if (cfg.sealer.kind === 'pkcs11') {
    if (cfg.sealer.pinFile) cfg.sealer.pinFile = abs(cfg.sealer.pinFile);
    if (cfg.sealer.softhsmConf) cfg.sealer.softhsmConf = abs(cfg.sealer.softhsmConf);
  } else if (cfg.sealer.passphraseFile) {
    cfg.sealer.passphraseFile = abs(cfg.sealer.passphraseFile);
  }
  return cfg;
}

/** A secret from a file (trailing newline trimmed) or an environment variable; never logged. */
export function readSecret(
  file: string | undefined,
  envName: string,
  env: NodeJS.ProcessEnv = process.env,
): string {
  if (file) {
    try {
      return readFileSync(file, 'utf8').replace(/\r?\n$/, '');
    } catch (e) {
      throw new KmsError(
        'SealerUnavailable',
        `cannot read secret file ${file}: ${(e as NodeJS.ErrnoException).code}`,
      );
    }
  }
  const v = env[envName];
  if (!v) throw new KmsError('SealerUnavailable', `no secret: set ${envName} or configure a secret file`);
  return v;
}
