/**
 * Bearer-token access control. A token is `kms_<tokenId>_<secret>`; only its SHA-256 is stored,
 * so a copy of the database does not yield a usable token. Roles (issue 5):
 * - `admin`: everything, including token management;
 * - `operator`: create keys, key events (refresh/reshare/repair), lifecycle, read keys and nodes;
 * - `signer`: sign and verify (and read the keys it may use), optionally limited to listed key ids;
 * - `auditor`: read keys, nodes and the audit log.
 * No token or an unknown one: 401. Wrong role: 403. A key outside a signer's list: 404, so a
 * limited token cannot learn which keys exist.
 */
import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import type { AbstractLevel } from 'abstract-level';
import { KmsError } from '../protocol/errors.ts';

export const ROLES = ['admin', 'operator', 'signer', 'auditor'] as const;
export type Role = (typeof ROLES)[number];

export type Permission =
  | 'keys:create'
  | 'keys:read'
  | 'keys:sign'
  | 'keys:verify'
  | 'keys:events'
  | 'keys:lifecycle'
  | 'nodes:read'
  | 'audit:read'
  | 'tokens:manage';

export const PERMISSIONS: Readonly<Record<Role, readonly Permission[]>> = {
  admin: [
    'keys:create',
    'keys:read',
    'keys:sign',
    'keys:verify',
    'keys:events',
    'keys:lifecycle',
    'nodes:read',
    'audit:read',
    'tokens:manage',
  ],
  operator: ['keys:create', 'keys:read', 'keys:verify', 'keys:events', 'keys:lifecycle', 'nodes:read'],
  signer: ['keys:read', 'keys:sign', 'keys:verify'],
  auditor: ['keys:read', 'keys:verify', 'nodes:read', 'audit:read'],
};

export type TokenRecord = {
  readonly tokenId: string;
  readonly name: string;
  readonly role: Role;
  /** Signer tokens only: the key ids it may see and use. Absent: every key. */
  readonly keyIds?: readonly string[];
  readonly createdAt: string;
  /** SHA-256 of the full token, hex. */
  readonly hash: string;
};

/** Who is calling, as recorded in the audit log: never the token itself. */
export type Caller = {
  readonly tokenId: string;
  /**
   * Which credential of that token id: a prefix of the token's SHA-256. Idempotency records are
   * scoped by it, so a rotated bootstrap admin token (same id `bootstrap-admin`) never replays the
   * previous token's answers (review I-1).
   */
  readonly credential: string;
  readonly name: string;
  readonly role: Role;
  readonly keyIds?: readonly string[];
};

export const BOOTSTRAP_TOKEN_ID = 'bootstrap-admin';
const TOKEN_RE = /^kms_([0-9a-f]{16})_([A-Za-z0-9_-]{43})$/;

export function hashToken(token: string): string {
  return createHash('sha256').update(token, 'utf8').digest('hex');
}

export function can(caller: Caller, permission: Permission): boolean {
  return PERMISSIONS[caller.role].includes(permission);
}

/** The scope of a caller's idempotency records: token id and credential. */
export function idempotencyScope(c: Caller): string {
  return `${c.tokenId}#${c.credential}`;
}

/** Whether the caller may see a key at all (signer tokens can be limited to listed keys). */
export function canSeeKey(caller: Caller, keyId: string): boolean {
  return caller.keyIds === undefined || caller.keyIds.includes(keyId);
}

export function callerOf(r: TokenRecord): Caller {
  return {
    tokenId: r.tokenId,
    credential: r.hash.slice(0, 16),
    name: r.name,
    role: r.role,
    ...(r.keyIds === undefined ? {} : { keyIds: r.keyIds }),
  };
}

/** Public view of a token (for GET /v1/tokens): never the hash. */
export function tokenView(r: TokenRecord): Omit<TokenRecord, 'hash'> {
  const { hash: _hash, ...rest } = r;
  return rest;
}

type Db = AbstractLevel<any, string, any>;

export class TokenStore {
  readonly #tokens: AbstractLevel<any, string, TokenRecord>;

  constructor(db: Db) {
    this.#tokens = db.sublevel<string, TokenRecord>('tokens', { valueEncoding: 'json' }) as any;
  }

  /** Registers (or re-registers after a change) the configured bootstrap admin token. */
  async ensureBootstrap(adminToken: string): Promise<void> {
    const hash = hashToken(adminToken);
    const existing = await this.#tokens.get(BOOTSTRAP_TOKEN_ID);
    if (existing?.hash === hash) return;
    await this.#tokens.put(BOOTSTRAP_TOKEN_ID, {
      tokenId: BOOTSTRAP_TOKEN_ID,
      name: 'bootstrap admin (config)',
      role: 'admin',
      createdAt: new Date().toISOString(),
      hash,
    });
  }

  async create(req: {
    role: Role;
    name: string;
    keyIds?: readonly string[];
  }): Promise<{ token: string; record: TokenRecord }> {
    if (req.keyIds !== undefined && req.role !== 'signer') {
      throw new KmsError('ValidationError', 'keyIds can only limit signer tokens');
    }
    const tokenId = randomBytes(8).toString('hex');
    const token = `kms_${tokenId}_${randomBytes(32).toString('base64url')}`;
    const record: TokenRecord = {
      tokenId,
      name: req.name,
      role: req.role,
      ...(req.keyIds === undefined ? {} : { keyIds: [...new Set(req.keyIds)] }),
      createdAt: new Date().toISOString(),
      hash: hashToken(token),
    };
    await storage(() => this.#tokens.put(tokenId, record));
    return { token, record };
  }

  async list(): Promise<TokenRecord[]> {
    return storage(async () => {
      const out: TokenRecord[] = [];
      for await (const v of this.#tokens.values()) out.push(v);
      return out;
    });
  }

  /** Deletes a token; NotFound when there is none with that id. */
  async revoke(tokenId: string): Promise<TokenRecord> {
    const rec = await storage(() => this.#tokens.get(tokenId));
    if (!rec) throw new KmsError('NotFound', `token ${JSON.stringify(tokenId)} not found`);
    await storage(() => this.#tokens.del(tokenId));
    return rec;
  }

  /** The caller behind an `Authorization` header value; throws Unauthorized. */
  async authenticate(header: string | undefined): Promise<Caller> {
    if (header === undefined || header === '')
      throw new KmsError('Unauthorized', 'a bearer token is required');
    const m = /^Bearer ([\x21-\x7e]{1,512})$/.exec(header);
    if (!m) throw new KmsError('Unauthorized', 'Authorization must be "Bearer <token>"');
    const token = m[1]!;
    const hash = hashToken(token);
    const parsed = TOKEN_RE.exec(token);
    const rec = await storage(() => this.#tokens.get(parsed ? parsed[1]! : BOOTSTRAP_TOKEN_ID));
    // Constant-time compare of the hashes: the lookup key (token id) is not secret, the rest is.
    if (!rec || !timingSafeEqual(Buffer.from(rec.hash, 'hex'), Buffer.from(hash, 'hex'))) {
      throw new KmsError('Unauthorized', 'the token is not valid');
    }
    return callerOf(rec);
  }
}

async function storage<T>(fn: () => Promise<T>): Promise<T> {
  try {
    return await fn();
  } catch (e) {
    if (e instanceof KmsError) throw e;
    throw new KmsError('StorageError', 'token store: read or write failed', { cause: e });
  }
}
