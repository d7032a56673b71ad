/**
 * The governance document: who the principals are, their groups, the admin quorum and the key
 * policies. Versioned as a hash chain (each version names the SHA-256 of the previous one); the
 * genesis hash is configured on every node at init, and a node accepts a new version only with
 * valid signatures of k distinct admins *of the current version* (k-of-m, Vault-style control).
 * Pure: nodes persist the chain; this module decides what may join it.
 */
import { sha256 } from '@noble/hashes/sha2.js';
import { Ajv } from 'ajv';
import { bytesToHex, concatBytes, utf8ToBytes } from '../protocol/bytes.ts';
import { KmsError } from '../protocol/errors.ts';
import { type PolicyRule, policyRuleSchema } from './policy-rule.ts';
import {
  PRINCIPAL_ALGS,
  type PrincipalAlg,
  type PrincipalKey,
  checkPrincipalKey,
  verifyPrincipalSignature,
} from './principal-key.ts';

export type Principal = {
  readonly id: string;
  readonly alg: PrincipalAlg;
  /** Raw public key, base64url (Ed25519 32 bytes; P-256 SEC1). */
  readonly publicKey: string;
};

export type Governance = {
  readonly version: number;
  /** SHA-256 (hex) of the previous version's canonical form; null for genesis (version 1). */
  readonly previous: string | null;
  readonly principals: readonly Principal[];
  /** Named groups of principal ids (approvers, admins, ...). */
  readonly groups: Readonly<Record<string, readonly string[]>>;
  /** Changing this document, and guarded key events, need `quorum` distinct admins of `group`. */
  readonly admins: { readonly group: string; readonly quorum: number };
  /** Key policies, evaluated in order, first match (policy/evaluate.ts). */
  readonly policies: readonly PolicyRule[];
};

/** One admin's approval of a governance version: a signature over its hash. */
export type GovernanceSignature = { readonly principal: string; readonly signature: string };

const id = { type: 'string', pattern: '^[A-Za-z0-9._:@-]{1,128}$' } as const;
const schema = {
  type: 'object',
  additionalProperties: false,
  required: ['version', 'previous', 'principals', 'groups', 'admins', 'policies'],
  properties: {
    version: { type: 'integer', minimum: 1, maximum: 2 ** 31 },
    previous: { anyOf: [{ type: 'null' }, { type: 'string', pattern: '^[0-9a-f]{64}$' }] },
    principals: {
      type: 'array',
      maxItems: 10_000,
      items: {
        type: 'object',
        additionalProperties: false,
        required: ['id', 'alg', 'publicKey'],
        properties: {
          id,
          alg: { enum: PRINCIPAL_ALGS },
          publicKey: { type: 'string', pattern: '^[A-Za-z0-9_-]{43,88}$' },
        },
      },
    },
    groups: {
      type: 'object',
      maxProperties: 1000,
      propertyNames: id,
      additionalProperties: { type: 'array', items: id, maxItems: 10_000, uniqueItems: true },
    },
    admins: {
      type: 'object',
      additionalProperties: false,
      required: ['group', 'quorum'],
      properties: { group: id, quorum: { type: 'integer', minimum: 1, maximum: 1000 } },
    },
    policies: { type: 'array', maxItems: 10_000, items: policyRuleSchema },
  },
} as const;
/** Admins' signatures of a governance version, as the API and the node RPC carry them. */
export const governanceSignaturesSchema = {
  type: 'array',
  maxItems: 1000,
  items: {
    type: 'object',
    additionalProperties: false,
    required: ['principal', 'signature'],
    properties: {
      principal: { type: 'string', pattern: '^[A-Za-z0-9._:@-]{1,128}$' },
      signature: {
        type: 'string',
        pattern: '^[A-Za-z0-9+/]*={0,2}$',
        maxLength: 200,
        description: 'base64 signature over "tkms/governance/v1\\n" ‖ hash(document)',
      },
    },
  },
} as const;

const validate = new Ajv({ allErrors: false, strict: false }).compile(schema);

/** Canonical JSON (keys sorted at every level): the bytes a version's hash covers. */
export function canonicalJson(v: unknown): string {
  if (Array.isArray(v)) return `[${v.map(canonicalJson).join(',')}]`;
  if (v !== null && typeof v === 'object') {
    const o = v as Record<string, unknown>;
    return `{${Object.keys(o)
      .filter((k) => o[k] !== undefined)
      .sort()
      .map((k) => `${JSON.stringify(k)}:${canonicalJson(o[k])}`)
      .join(',')}}`;
  }
  return JSON.stringify(v);
}

export function governanceHash(doc: Governance): string {
  return bytesToHex(sha256(utf8ToBytes(canonicalJson(doc))));
}

/** What an admin signs to approve a version (domain-separated). */
export function governanceSigningBytes(hash: string): Uint8Array {
  return concatBytes(utf8ToBytes('tkms/governance/v1\n'), utf8ToBytes(hash));
}

/** Checks a document's shape and internal references; returns it typed. Throws ValidationError. */
export function parseGovernance(v: unknown): Governance {
  if (!validate(v)) {
    const e = validate.errors?.[0];
    throw new KmsError(
      'ValidationError',
      `governance: ${e ? `${e.instancePath || '/'} ${e.message}` : 'invalid'}`,
    );
  }
  const doc = v as Governance;
  const ids = new Set<string>();
  for (const p of doc.principals) {
    if (ids.has(p.id)) throw new KmsError('ValidationError', `governance: principal ${p.id} is listed twice`);
    ids.add(p.id);
    checkPrincipalKey(principalKey(p));
  }
  for (const [g, members] of Object.entries(doc.groups)) {
    for (const m of members)
      if (!ids.has(m))
        throw new KmsError('ValidationError', `governance: group ${g} names unknown principal ${m}`);
  }
  const admins = doc.groups[doc.admins.group];
  if (!admins)
    throw new KmsError('ValidationError', `governance: admin group ${doc.admins.group} is not defined`);
  if (doc.admins.quorum > admins.length) {
    throw new KmsError(
      'ValidationError',
      `governance: admin quorum ${doc.admins.quorum} exceeds the ${admins.length} admins`,
    );
  }
  for (const r of doc.policies) {
    for (const g of [...(r.groups ?? []), ...(r.approvals ? [r.approvals.group] : [])]) {
      if (!doc.groups[g])
        throw new KmsError('ValidationError', `governance: policy ${r.id} names unknown group ${g}`);
    }
    for (const p of r.principals ?? []) {
      if (!ids.has(p))
        throw new KmsError('ValidationError', `governance: policy ${r.id} names unknown principal ${p}`);
    }
  }
  if ((doc.version === 1) !== (doc.previous === null)) {
    throw new KmsError('ValidationError', 'governance: version 1 (genesis) and only it has no previous hash');
  }
  return doc;
}

export function principalKey(p: Principal): PrincipalKey {
  return { alg: p.alg, publicKey: new Uint8Array(Buffer.from(p.publicKey, 'base64url')) };
}

export function findPrincipal(doc: Governance, principalId: string): Principal | undefined {
  return doc.principals.find((p) => p.id === principalId);
}

type KeyCacheEntry = { readonly alg: string; readonly source: string; readonly key: PrincipalKey };
type KeyCache = {
  readonly version: number;
  readonly principals: readonly Principal[];
  readonly byId: Map<string, Principal>;
  readonly keys: Map<string, KeyCacheEntry>;
};
const keyCaches = new WeakMap<Governance, KeyCache>();

/**
 * `principalKey(findPrincipal(doc, id))`, memoized per governance document (every signed request a
 * node checks looks its principal up): the principals by id, and each decoded public key. A pure
 * function of the public document; an entry is used only while the document has the same version
 * and principal list and the principal still has the same alg and encoded key it was decoded from,
 * so a new version or a rotated key is decoded afresh. Bounded by the document's principals, and
 * dropped with the document (a WeakMap).
 */
export function lookupPrincipalKey(doc: Governance, principalId: string): PrincipalKey | undefined {
  let c = keyCaches.get(doc);
  if (!c || c.version !== doc.version || c.principals !== doc.principals) {
    const byId = new Map<string, Principal>();
    // The first of an id, as findPrincipal (parseGovernance refuses duplicates anyway).
    for (const p of doc.principals) if (!byId.has(p.id)) byId.set(p.id, p);
    c = { version: doc.version, principals: doc.principals, byId, keys: new Map() };
    keyCaches.set(doc, c);
  }
  const p = c.byId.get(principalId);
  if (!p || p.id !== principalId) return undefined;
  const e = c.keys.get(principalId);
  if (e && e.alg === p.alg && e.source === p.publicKey) return e.key;
  const key = principalKey(p);
  c.keys.set(principalId, { alg: p.alg, source: p.publicKey, key });
  return key;
}

/** The distinct admins of `doc` whose signatures over `hash` verify. */
export function validAdminSignatures(
  doc: Governance,
  hash: string,
  sigs: readonly GovernanceSignature[],
): string[] {
  const admins = new Set(doc.groups[doc.admins.group] ?? []);
  const ok = new Set<string>();
  const bytes = governanceSigningBytes(hash);
  for (const s of sigs) {
    if (!admins.has(s.principal) || ok.has(s.principal)) continue;
    const p = findPrincipal(doc, s.principal);
    if (
      p &&
      verifyPrincipalSignature(principalKey(p), bytes, new Uint8Array(Buffer.from(s.signature, 'base64')))
    ) {
      ok.add(s.principal);
    }
  }
  return [...ok];
}

/**
 * Whether `next` may follow `current` (or, with no current, be the genesis whose hash is
 * configured). A successor must be version + 1, name the current hash, and carry valid signatures
 * of `current.admins.quorum` distinct admins of the CURRENT version. Throws with the reason.
 */
export function acceptGovernance(
  current: Governance | undefined,
  nextRaw: unknown,
  signatures: readonly GovernanceSignature[],
  genesisHash: string,
): Governance {
  const next = parseGovernance(nextRaw);
  const hash = governanceHash(next);
  if (!current) {
    if (hash !== genesisHash)
      throw new KmsError('PolicyDenied', 'governance: not the configured genesis document');
    return next;
  }
  if (next.version !== current.version + 1) {
    throw new KmsError('Conflict', `governance: version ${next.version} does not follow ${current.version}`);
  }
  if (next.previous !== governanceHash(current)) {
    throw new KmsError('Conflict', 'governance: previous hash does not name the current version');
  }
  const signed = validAdminSignatures(current, hash, signatures);
  if (signed.length < current.admins.quorum) {
    throw new KmsError(
      'PolicyDenied',
      `governance: ${signed.length} valid admin signature(s), the admin quorum is ${current.admins.quorum}`,
    );
  }
  return next;
}
