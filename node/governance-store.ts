/**
 * The chain of governance versions this node accepted (policy/governance.ts), persisted in its
 * LevelDB (node/store.ts, sublevel `governance`). Version 1 is accepted only if its hash equals the
 * configured `genesisHash` (node/config.ts); each later version only with the admin quorum of the
 * current one (`acceptGovernance`). The chain is re-checked when the node starts, so a store edited
 * on disk, or a config naming another genesis, stops the node instead of running another policy.
 */
import { KmsError } from '../protocol/errors.ts';
import {
  acceptGovernance,
  type Governance,
  type GovernanceSignature,
  governanceHash,
  parseGovernance,
  validAdminSignatures,
} from '../policy/governance.ts';
import type { NodeStore } from './store.ts';

export type InstalledGovernance = { readonly document: Governance; readonly hash: string };

type StoredVersion = { document: Governance; signatures: GovernanceSignature[]; installedAt: string };

export class GovernanceStore {
  readonly #store: NodeStore;
  readonly #genesisHash: string | undefined;
  #current: InstalledGovernance | undefined;
  /** Updates run one at a time: each is checked against the version before it. */
  #tail: Promise<unknown> = Promise.resolve();

  private constructor(store: NodeStore, genesisHash: string | undefined, current?: InstalledGovernance) {
    this.#store = store;
    this.#genesisHash = genesisHash;
    this.#current = current;
  }

  /** Loads and re-checks the stored chain. Throws ValidationError naming the first bad version. */
  static async open(store: NodeStore, genesisHash: string | undefined): Promise<GovernanceStore> {
    let current: InstalledGovernance | undefined;
    for (const { version, json } of await store.listGovernanceVersions()) {
      const bad = (why: string) =>
        new KmsError('ValidationError', `stored governance version ${version}: ${why}; refusing to start`);
      let v: StoredVersion;
      let doc: Governance;
      try {
        v = JSON.parse(json) as StoredVersion;
        doc = parseGovernance(v.document);
      } catch {
        throw bad('malformed');
      }
      const hash = governanceHash(doc);
      if (doc.version !== version) throw bad('version differs from its slot');
      if (!current) {
        if (version !== 1) throw bad('the chain does not start at version 1');
        if (hash !== genesisHash) throw bad('it is not the configured genesis (genesisHash)');
      } else {
        if (doc.previous !== current.hash || version !== current.document.version + 1)
          throw bad('it does not follow the previous version');
        const signers = validAdminSignatures(current.document, hash, v.signatures ?? []);
        if (signers.length < current.document.admins.quorum) throw bad('its admin quorum does not verify');
      }
      current = { document: doc, hash };
    }
    return new GovernanceStore(store, genesisHash, current);
  }

  /** The current version, or undefined while no genesis is installed. */
  current(): InstalledGovernance | undefined {
    return this.#current;
  }

  /**
   * Installs `document` (`governance-update`): genesis by the configured hash, a successor with the
   * admin quorum of the current version. Re-installing the current version answers `already`.
   * Throws PolicyDenied (genesis not configured or not this one, quorum missing), Conflict (not
   * the next version), ValidationError (malformed).
   */
  update(
    document: unknown,
    signatures: readonly GovernanceSignature[],
  ): Promise<{ already: boolean; version: number; hash: string; signers: string[] }> {
    const run = this.#tail.then(() => this.#update(document, signatures));
    this.#tail = run.catch(() => undefined);
    return run;
  }

  async #update(
    document: unknown,
    signatures: readonly GovernanceSignature[],
  ): Promise<{ already: boolean; version: number; hash: string; signers: string[] }> {
    if (!this.#genesisHash) {
      throw new KmsError(
        'PolicyDenied',
        'this node has no genesisHash configured: it installs no governance',
      );
    }
    const cur = this.#current;
    const doc = parseGovernance(document);
    const hash = governanceHash(doc);
    if (cur && doc.version <= cur.document.version) {
      if (doc.version === cur.document.version && hash === cur.hash) {
        return { already: true, version: doc.version, hash, signers: [] };
      }
      throw new KmsError(
        'Conflict',
        `governance: version ${doc.version} is not newer than the installed ${cur.document.version}`,
      );
    }
    const next = acceptGovernance(cur?.document, doc, signatures, this.#genesisHash);
    const signers = cur ? validAdminSignatures(cur.document, hash, signatures) : [];
    const stored: StoredVersion = {
      document: next,
      // Only the signatures that count are kept: the chain re-checks them at every start.
      signatures: signatures.filter((s) => signers.includes(s.principal)),
      installedAt: new Date().toISOString(),
    };
    await this.#store.putGovernanceVersion(next.version, JSON.stringify(stored));
    this.#current = { document: next, hash };
    return { already: false, version: next.version, hash, signers };
  }
}
