/**
 * The governance document as the nodes hold it (issue "Nodes decide"). The coordinator keeps no
 * authority of its own: it installs the configured genesis on every node at start (each node takes
 * version 1 only by the hash in its own configuration), relays later versions signed by the admin
 * quorum, and reads the current version back from the nodes, trusting it only when a majority of
 * the configured nodes report the same hash. Its copy serves only to check request signatures early
 * (a useful error before any node is asked): every node verifies them again itself.
 */
import { readFileSync } from 'node:fs';
import { KmsError } from '../protocol/errors.ts';
import {
  findPrincipal,
  type Governance,
  type GovernanceSignature,
  governanceHash,
  parseGovernance,
  principalKey,
} from '../policy/governance.ts';
import type { PrincipalKey } from '../policy/principal-key.ts';
import type { Cluster, NodeOutcome } from './cluster.ts';

/** What GET /v1/governance answers: the majority's version and each node's report. */
export type GovernanceReport = {
  readonly version: number;
  readonly hash: string;
  readonly document: Governance;
  readonly nodes: readonly {
    readonly node: string;
    readonly version?: number;
    readonly hash?: string;
    readonly error?: { readonly code: string; readonly message: string };
  }[];
  /** Nodes that answered another version, or did not answer. */
  readonly disagreeing: readonly string[];
};

/** Reads and checks the genesis file (`governance.genesisFile`); the nodes accept it by its hash. */
export function loadGenesis(file: string): Governance {
  let raw: unknown;
  try {
    raw = JSON.parse(readFileSync(file, 'utf8'));
  } catch (e) {
    throw new KmsError('ValidationError', `config: governance.genesisFile ${file} is not readable JSON`, {
      cause: e,
    });
  }
  const doc = parseGovernance(raw);
  if (doc.version !== 1)
    throw new KmsError('ValidationError', 'config: the genesis document must be version 1');
  return doc;
}

/** Refetch at most this often when a principal is unknown (a new version may name it). */
const REFRESH_MIN_INTERVAL_MS = 2_000;

export class GovernanceView {
  readonly #cluster: Cluster;
  readonly #genesis: Governance | undefined;
  #current: { document: Governance; hash: string } | undefined;
  #lastFetch = 0;
  #fetching: Promise<GovernanceReport> | undefined;

  constructor(cluster: Cluster, genesis: Governance | undefined) {
    this.#cluster = cluster;
    this.#genesis = genesis;
  }

  get genesis(): Governance | undefined {
    return this.#genesis;
  }

  /** The last version a majority of the nodes agreed on (undefined before the first read). */
  current(): { document: Governance; hash: string } | undefined {
    return this.#current;
  }

  /**
   * Offers the genesis to `nodes` (default every node). A node that already has a chain answers
   * `Conflict` (it is past version 1) or `already`: both are fine. One outcome per node.
   */
  async installGenesis(nodes?: readonly string[]): Promise<NodeOutcome[]> {
    if (!this.#genesis || !this.#cluster.updateGovernance) return [];
    const outcomes = await this.#cluster.updateGovernance({
      document: this.#genesis,
      signatures: [],
      ...(nodes === undefined ? {} : { nodes }),
    });
    return outcomes.map((o) => (o.error?.code === 'Conflict' ? { node: o.node, ok: true } : o));
  }

  /**
   * Asks every node for its version; the answer is the version a strict majority of the configured
   * nodes report (same hash), naming the others. Nodes that report none are offered the genesis
   * again (they started after the coordinator). Throws QuorumUnavailable without a majority.
   */
  read(): Promise<GovernanceReport> {
    this.#fetching ??= this.#read().finally(() => {
      this.#fetching = undefined;
    });
    return this.#fetching;
  }

  async #read(): Promise<GovernanceReport> {
    if (!this.#cluster.governance) {
      throw new KmsError('NotFound', 'this cluster keeps no governance document');
    }
    this.#lastFetch = Date.now();
    const answers = await this.#cluster.governance();
    const missing = answers.filter((a) => !a.ok && a.error.code === 'NotFound').map((a) => a.node);
    if (missing.length > 0 && this.#genesis) {
      await this.installGenesis(missing).catch(() => []);
    }
    const byHash = new Map<string, { document: Governance; nodes: string[]; version: number }>();
    for (const a of answers) {
      if (!a.ok) continue;
      // A node's answer is checked before it counts: its hash must be the document's.
      let doc: Governance;
      try {
        doc = parseGovernance(a.governance.document);
      } catch {
        continue;
      }
      const hash = governanceHash(doc);
      if (hash !== a.governance.hash || doc.version !== a.governance.version) continue;
      const g = byHash.get(hash) ?? { document: doc, nodes: [], version: doc.version };
      g.nodes.push(a.node);
      byHash.set(hash, g);
    }
    const nodes = answers.map((a) =>
      a.ok
        ? { node: a.node, version: a.governance.version, hash: a.governance.hash }
        : { node: a.node, error: { code: a.error.code, message: a.error.message } },
    );
    const ranked = [...byHash.entries()].sort((x, y) => y[1].nodes.length - x[1].nodes.length);
    const top = ranked[0];
    if (!top || top[1].nodes.length * 2 <= answers.length) {
      throw new KmsError(
        'QuorumUnavailable',
        `no governance version is held by a majority of the ${answers.length} nodes: ${nodes
          .map((n) => `${n.node} ${n.version === undefined ? `(${n.error?.code})` : `v${n.version}`}`)
          .join(', ')}`,
        { details: { nodes } },
      );
    }
    const [hash, g] = top;
    this.#current = { document: g.document, hash };
    return {
      version: g.version,
      hash,
      document: g.document,
      nodes,
      disagreeing: answers.map((a) => a.node).filter((n) => !g.nodes.includes(n)),
    };
  }

  /** Relays a new version to every node; one outcome per node. */
  async update(document: unknown, signatures: readonly GovernanceSignature[]): Promise<NodeOutcome[]> {
    if (!this.#cluster.updateGovernance) {
      throw new KmsError('NotFound', 'this cluster keeps no governance document');
    }
    const outcomes = await this.#cluster.updateGovernance({ document, signatures });
    if (outcomes.some((o) => o.ok)) this.#current = undefined;
    return outcomes;
  }

  /**
   * The public key of principal `id` for the early signature check: from the majority's version,
   * read again (at most every 2 s) when it is not known yet or names no such principal.
   */
  async principal(id: string): Promise<PrincipalKey | undefined> {
    const known = () => {
      const p = this.#current && findPrincipal(this.#current.document, id);
      return p ? principalKey(p) : undefined;
    };
    const hit = known();
    if (hit) return hit;
    if (this.#current && Date.now() - this.#lastFetch < REFRESH_MIN_INTERVAL_MS) return undefined;
    await this.read();
    return known();
  }
}
