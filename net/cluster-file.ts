/**
 * The cluster file: the allow-list shared by every process of a deployment (each node's and
 * coordinator's libp2p peer id and addresses). Read by nodes and the coordinator alike; validated
 * by JSON schema, so a malformed file stops the process naming the field.
 */
import { readFileSync } from 'node:fs';
import { Ajv } from 'ajv';
import { KmsError } from '../protocol/errors.ts';

export type ClusterPeer = { id: string; peerId: string; addresses: string[] };

/** The cluster file: the allow-list shared by every process of a deployment. */
export type ClusterFile = {
  nodes: ClusterPeer[];
  coordinators: ClusterPeer[];
};

const peerSchema = {
  type: 'object',
  additionalProperties: false,
  required: ['id', 'peerId', 'addresses'],
  properties: {
    id: { type: 'string', pattern: '^(node-[1-9][0-9]{0,3}|coordinator(-[a-z0-9]+)?)$' },
    peerId: { type: 'string', minLength: 10, maxLength: 128 },
    addresses: { type: 'array', items: { type: 'string', minLength: 1, maxLength: 256 }, maxItems: 16 },
  },
} as const;

export const clusterFileSchema = {
  type: 'object',
  additionalProperties: false,
  required: ['nodes', 'coordinators'],
  properties: {
    nodes: { type: 'array', items: peerSchema, minItems: 1, maxItems: 1000 },
    coordinators: { type: 'array', items: peerSchema, maxItems: 16 },
  },
} as const;

const ajv = new Ajv({ allErrors: true, strict: false });
const validateCluster = ajv.compile(clusterFileSchema);

/** A ValidationError naming the first schema violation. */
export function schemaError(what: string, errors: typeof validateCluster.errors): KmsError {
  const first = errors?.[0];
  const where = first ? `${first.instancePath || '/'} ${first.message}` : 'invalid';
  return new KmsError('ValidationError', `${what}: ${where}`);
}

export function readJson(path: string, what: string): unknown {
  try {
    return JSON.parse(readFileSync(path, 'utf8'));
  } catch (e) {
    throw new KmsError('ValidationError', `${what} ${path}: ${(e as Error).message}`);
  }
}

export function loadClusterFile(path: string): ClusterFile {
  const raw = readJson(path, 'cluster file');
  if (!validateCluster(raw)) throw schemaError(`cluster file ${path}`, validateCluster.errors);
  return raw as ClusterFile;
}
