/**
 * !!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!
 * BENCHMARK BASELINE, NOT THE PRODUCT. THIS HOLDS WHOLE PRIVATE KEYS IN ONE PROCESS.
 * !!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!
 *
 * A `Cluster` that keeps every key whole, in memory, in the coordinator process, and signs with the
 * suite's plain (single-party) signing: `frost.sign(msg, combineSecret(trustedDealer shares))`.
 * It exists for one reason: the single-key baseline of the service benchmark
 * (scripts/bench/baseline-server.ts), so the HTTP/API overhead can be measured without the cost of
 * distribution. It defeats the whole point of the service (no machine ever holds a whole key).
 * Nothing in the product wires it in, and no test takes its behaviour for the API's: the API, CLI,
 * auth and lifecycle tests run on real node daemons (test/helpers/coordinator.ts). It follows the
 * Cluster interface's documented behaviour (repair keeps the epoch, ...), which
 * test/cluster-contract.test.ts checks against it and against the real Libp2pCluster alike.
 *
 * Simulated nodes `node-1..node-n` can be marked unreachable (QuorumUnavailable, the `excluded`
 * list); each keeps its own copy of a key's state and checks changes against the table
 * (protocol/key-states.ts) as real nodes do. Keys live only as long as the object (nothing is
 * persisted).
 */
import { sha256 } from '@noble/hashes/sha2.js';
import { bytesToHex, utf8ToBytes } from '@noble/hashes/utils.js';
import { KmsError, StateError } from '../../protocol/errors.ts';
import { LIFECYCLE, type NodeKeyState, stateChangeTo } from '../../protocol/key-states.ts';
import type { Blame } from '../../protocol/errors.ts';
import { nodeIdOf, nodeIndex } from '../../protocol/ids.ts';
import { KEY_PATH, outputPublicKey, resolveTweak } from '../../protocol/key-tweak.ts';
import { KEY_SPEC_REGISTRY, type KeySpecName } from '../../protocol/suites.ts';
import {
  acceptGovernance,
  type Governance,
  type GovernanceSignature,
  governanceHash,
} from '../../policy/governance.ts';
import type {
  Cluster,
  DestroyOutcome,
  EpochInfo,
  NodeGovernance,
  NodeKeyStatesPage,
  NodeOutcome,
  NodeStatus,
  ProgressFn,
  SignResult,
} from '../../coordinator/cluster.ts';

type HeldKey = {
  /**
   * The whole signing key: the group secret, and for FROST_SECP256K1_TR the secret of the BIP341
   * output key (key path, no merkle root), as a single-key Taproot signer would keep it.
   */
  secret: Uint8Array;
  info: EpochInfo;
  /** Each member's own copy of the key state (a member that was down keeps the old one). */
  states: Map<string, NodeKeyState>;
};

const unreachable = (node: string): NodeOutcome => ({
  node,
  ok: false,
  error: { code: 'TransportError', message: `${node} is unreachable` },
});

export class WholeKeyCluster implements Cluster {
  readonly #nodes: string[];
  readonly #down = new Set<string>();
  readonly #keys = new Map<string, HeldKey>();
  /** Calls per method, so tests can prove a replayed request did not run a second session. */
  readonly calls: Record<
    'createKey' | 'sign' | 'refresh' | 'reshare' | 'repair' | 'setKeyState' | 'destroyKey',
    number
  > = {
    createKey: 0,
    sign: 0,
    refresh: 0,
    reshare: 0,
    repair: 0,
    setKeyState: 0,
    destroyKey: 0,
  };
  /** Simulated latency per session, to measure queueing (default 0). */
  delayMs = 0;
  /** Highest number of sessions that were running at once (tests of the per-key queue). */
  peakConcurrent = 0;
  #inflight = 0;

  readonly #genesisHash: string | undefined;
  /** The governance the simulated nodes keep (one copy: they never disagree). Nothing checks requests by it. */
  #governance: { document: Governance; hash: string } | undefined;

  /** `genesisHash`: the governance version 1 the nodes accept (as real nodes' configured genesisHash). */
  constructor(opts: { nodes?: number; genesisHash?: string } = {}) {
    const n = opts.nodes ?? 3;
    this.#nodes = Array.from({ length: n }, (_, i) => nodeIdOf(i + 1));
    this.#genesisHash = opts.genesisHash;
  }

  async governance(): Promise<NodeGovernance[]> {
    const g = this.#governance;
    return this.#nodes.map((node): NodeGovernance => {
      if (this.#down.has(node)) return { node, ok: false, error: unreachable(node).error! };
      if (!g) return { node, ok: false, error: { code: 'NotFound', message: 'no governance installed' } };
      return {
        node,
        ok: true,
        governance: { version: g.document.version, hash: g.hash, document: g.document },
      };
    });
  }

  async updateGovernance(req: {
    document: unknown;
    signatures: readonly GovernanceSignature[];
    nodes?: readonly string[];
  }): Promise<NodeOutcome[]> {
    let next: Governance | undefined;
    let error: NodeOutcome['error'];
    try {
      next = acceptGovernance(
        this.#governance?.document,
        req.document,
        req.signatures,
        this.#genesisHash ?? '',
      );
    } catch (e) {
      const err = e as KmsError;
      error = { code: err.code ?? 'ValidationError', message: err.message };
    }
    if (next) this.#governance = { document: next, hash: governanceHash(next) };
    return (req.nodes ?? this.#nodes).map((node): NodeOutcome => {
      if (this.#down.has(node)) return unreachable(node);
      return error ? { node, ok: false, error } : { node, ok: true };
    });
  }

  /** Test hook: a node that is down does not answer (sign excludes it, DKG needs it). */
  setReachable(nodeId: string, reachable: boolean): void {
    if (reachable) this.#down.delete(nodeId);
    else this.#down.add(nodeId);
  }

  /**
   * Test hook: the state a node holds for a key; without `node`, the state every member holds
   * (undefined when they differ or the key is gone).
   */
  stateOf(keyId: string, node?: string): NodeKeyState | undefined {
    const held = this.#keys.get(keyId);
    if (!held) return undefined;
    if (node !== undefined) return held.states.get(node);
    const all = new Set(held.states.values());
    return all.size === 1 ? [...all][0] : undefined;
  }

  nodeIds(): readonly string[] {
    return this.#nodes;
  }

  async nodes(): Promise<NodeStatus[]> {
    return this.#nodes.map((id) => {
      const reachable = !this.#down.has(id);
      const keys = reachable
        ? [...this.#keys.values()].filter((k) => k.info.participants.includes(id)).map((k) => k.info.keyId)
        : [];
      return { id, peerId: `local-${id}`, address: `/ip4/127.0.0.1/tcp/0/p2p/local-${id}`, reachable, keys };
    });
  }

  async createKey(req: {
    keyId: string;
    keySpec: KeySpecName;
    threshold: number;
    participants: readonly string[];
    progress?: ProgressFn;
  }): Promise<EpochInfo> {
    this.calls.createKey++;
    if (this.#keys.has(req.keyId)) throw new KmsError('Conflict', `key ${req.keyId} exists`);
    this.#checkCommittee(req.participants, req.threshold, true);
    req.progress?.({ phase: 'dkg', detail: 'local dealer' });
    await this.#delay();
    const spec = KEY_SPEC_REGISTRY[req.keySpec];
    const ids = req.participants.map((p) => spec.frost.Identifier.fromNumber(nodeIndex(p)!));
    const signers = { min: req.threshold, max: req.participants.length };
    const dealt = spec.frost.trustedDealer(signers, ids);
    const shares = Object.values(dealt.secretShares).slice(0, req.threshold);
    let secret: Uint8Array = spec.frost.combineSecret(shares, signers);
    for (const s of Object.values(dealt.secretShares)) s.signingShare.fill(0);
    let groupElement: Uint8Array = dealt.public.commitments[0]!;
    if (req.keySpec === 'FROST_SECP256K1_TR') {
      // As the DKG stores it (docs/custody.md): the BIP341 internal key P with even y, and the
      // key-path output key Q = P + t·G is what signs (x' = a·x + b, protocol/key-tweak.ts).
      const Fn = spec.Point.Fn;
      let x = Fn.fromBytes(secret);
      const P = spec.Point.BASE.multiply(x);
      const even = P.toAffine().y % 2n === 0n;
      if (!even) x = Fn.neg(x);
      groupElement = (even ? P : P.negate()).toBytes(true);
      const tw = resolveTweak(spec, groupElement, KEY_PATH);
      secret.fill(0);
      secret = Fn.toBytes(Fn.add(tw.negate ? Fn.neg(x) : x, tw.add));
    }
    const info = this.#info(req.keyId, req.keySpec, 0, req.threshold, req.participants, groupElement);
    const states = new Map<string, NodeKeyState>(info.participants.map((p) => [p, 'Enabled']));
    this.#keys.set(req.keyId, { secret, info, states });
    return info;
  }

  async sign(req: { key: EpochInfo; message: Uint8Array }): Promise<SignResult> {
    this.calls.sign++;
    const held = this.#held(req.key);
    // Mimic the distributed retry: members tried in order, an unreachable one is excluded and one
    // whose own copy of the state is not Enabled refuses (nodes enforce the state themselves).
    const excluded: Blame[] = [];
    const signers: string[] = [];
    const refused: string[] = [];
    for (const p of held.info.participants) {
      if (signers.length === held.info.threshold) break;
      if (this.#down.has(p)) excluded.push({ participant: p, reason: 'unresponsive', round: 'commit' });
      else if (held.states.get(p) !== 'Enabled') refused.push(p);
      else signers.push(p);
    }
    if (signers.length < held.info.threshold && refused.length > 0) {
      throw new StateError('InvalidKeyState', `key is not Enabled on ${refused.join(', ')}`);
    }
    if (signers.length < held.info.threshold) {
      throw new KmsError(
        'QuorumUnavailable',
        `only ${signers.length} of ${held.info.threshold} signers reachable`,
        {
          culprits: excluded,
        },
      );
    }
    await this.#delay();
    const spec = KEY_SPEC_REGISTRY[held.info.keySpec];
    return { signature: spec.frost.sign(req.message, held.secret), signers, excluded };
  }

  async refresh(req: { key: EpochInfo; progress?: ProgressFn }): Promise<EpochInfo> {
    this.calls.refresh++;
    const held = this.#held(req.key);
    this.#checkCommittee(held.info.participants, held.info.threshold, true);
    req.progress?.({ phase: 'refresh' });
    await this.#delay();
    return this.#bump(held, held.info.threshold, held.info.participants);
  }

  async reshare(req: {
    key: EpochInfo;
    threshold: number;
    participants: readonly string[];
    progress?: ProgressFn;
  }): Promise<EpochInfo> {
    this.calls.reshare++;
    const held = this.#held(req.key);
    this.#checkCommittee(req.participants, req.threshold, true);
    req.progress?.({ phase: 'reshare' });
    await this.#delay();
    return this.#bump(held, req.threshold, req.participants);
  }

  async repair(req: { key: EpochInfo; participant: string; progress?: ProgressFn }): Promise<EpochInfo> {
    this.calls.repair++;
    const held = this.#held(req.key);
    if (!held.info.participants.includes(req.participant)) {
      throw new KmsError('ValidationError', `${req.participant} is not in the committee`);
    }
    if (this.#down.has(req.participant))
      throw new KmsError('QuorumUnavailable', `${req.participant} is unreachable`);
    // As on real nodes: t other members of the committee help rebuild the share.
    const helpers = held.info.participants.filter((p) => p !== req.participant && !this.#down.has(p));
    if (helpers.length < held.info.threshold) {
      throw new KmsError(
        'QuorumUnavailable',
        `need ${held.info.threshold} reachable helpers, have ${helpers.length}`,
      );
    }
    req.progress?.({ phase: 'repair' });
    await this.#delay();
    // The member's share of the same epoch is rebuilt: the epoch does not change.
    return held.info;
  }

  async setKeyState(req: Parameters<Cluster['setKeyState']>[0]): Promise<NodeOutcome[]> {
    this.calls.setKeyState++;
    const op = req.operation ?? stateChangeTo(req.state);
    const held = this.#keys.get(req.keyId);
    return (req.members ?? this.#nodes).map((node): NodeOutcome => {
      if (this.#down.has(node)) return unreachable(node);
      const current = held?.states.get(node);
      if (current === undefined) return { node, ok: true, absent: true };
      if (current === req.state) return { node, ok: true };
      if (current === 'Destroyed' || LIFECYCLE[current][op] !== req.state) {
        const message = `${op} to ${req.state} is not allowed while the key is ${current} on ${node}`;
        return { node, ok: false, error: { code: 'InvalidKeyState', message } };
      }
      held!.states.set(node, req.state);
      return { node, ok: true };
    });
  }

  async destroyKey(req: { keyId: string; nodes?: readonly string[] }): Promise<DestroyOutcome[]> {
    this.calls.destroyKey++;
    const held = this.#keys.get(req.keyId);
    const outcomes = (req.nodes ?? this.#nodes).map((node): DestroyOutcome => {
      if (this.#down.has(node)) return unreachable(node);
      if (!held?.states.has(node)) return { node, ok: true, absent: true, epochs: [] };
      // Like the real cluster: a member that missed the schedule-deletion is moved there first.
      held.states.set(node, 'Destroyed');
      return { node, ok: true, epochs: [held.info.epoch], scopes: [`${req.keyId}/${held.info.epoch}`] };
    });
    if (held && [...held.states.values()].every((s) => s === 'Destroyed')) {
      held.secret.fill(0);
      this.#keys.delete(req.keyId);
    }
    return outcomes;
  }

  async nodeKeyStates(node: string, page: { after?: string; limit: number }): Promise<NodeKeyStatesPage> {
    if (this.#down.has(node)) throw new KmsError('TransportError', `${node} is unreachable`);
    const all = [...this.#keys.entries()]
      .filter(([id, h]) => h.states.has(node) && (page.after === undefined || id > page.after))
      .sort(([a], [b]) => (a < b ? -1 : 1));
    const keys = all.slice(0, page.limit).map(([keyId, h]) => ({ keyId, state: h.states.get(node)! }));
    const last = keys.at(-1);
    return all.length > page.limit && last ? { keys, next: last.keyId } : { keys };
  }

  async close(): Promise<void> {
    for (const k of this.#keys.values()) k.secret.fill(0);
    this.#keys.clear();
  }

  #held(key: EpochInfo): HeldKey {
    const held = this.#keys.get(key.keyId);
    if (!held) throw new StateError('KeyNotFound', `key ${key.keyId} not found on the nodes`);
    if (held.info.epoch !== key.epoch) {
      throw new StateError(
        'EpochMismatch',
        `key ${key.keyId} is at epoch ${held.info.epoch}, not ${key.epoch}`,
      );
    }
    return held;
  }

  #checkCommittee(participants: readonly string[], threshold: number, allReachable: boolean): void {
    for (const p of participants) {
      if (!this.#nodes.includes(p))
        throw new KmsError('ValidationError', `unknown node ${JSON.stringify(p)}`);
    }
    if (threshold < 2 || threshold > participants.length) {
      throw new KmsError('ValidationError', `threshold must be in [2, ${participants.length}]`);
    }
    const down = participants.filter((p) => this.#down.has(p));
    if (allReachable && down.length > 0) {
      throw new KmsError('QuorumUnavailable', `unreachable: ${down.join(', ')}`, {
        culprits: down.map((participant) => ({ participant, reason: 'unresponsive' as const })),
      });
    }
  }

  #bump(held: HeldKey, threshold: number, participants: readonly string[]): EpochInfo {
    const i = held.info;
    // Key events run only on Enabled keys: new members join Enabled, leaving members retire.
    for (const p of [...held.states.keys()]) if (!participants.includes(p)) held.states.delete(p);
    for (const p of participants) if (!held.states.has(p)) held.states.set(p, 'Enabled');
    held.info = this.#info(
      i.keyId,
      i.keySpec,
      i.epoch + 1,
      threshold,
      participants,
      hexToBytes(i.groupElement),
    );
    return held.info;
  }

  #info(
    keyId: string,
    keySpec: KeySpecName,
    epoch: number,
    threshold: number,
    participants: readonly string[],
    groupElement: Uint8Array,
  ): EpochInfo {
    const spec = KEY_SPEC_REGISTRY[keySpec];
    const sorted = [...participants].sort((a, b) => nodeIndex(a)! - nodeIndex(b)!);
    const ge = bytesToHex(groupElement);
    // No transcript exists without a protocol run; hash the public description instead.
    const transcriptHash = bytesToHex(
      sha256(utf8ToBytes(`local|${keyId}|${epoch}|${threshold}|${sorted.join(',')}|${ge}`)),
    );
    return {
      keyId,
      keySpec,
      epoch,
      threshold,
      participants: sorted,
      publicKey: bytesToHex(outputPublicKey(spec, groupElement)),
      groupElement: ge,
      transcriptHash,
    };
  }

  async #delay(): Promise<void> {
    this.#inflight++;
    this.peakConcurrent = Math.max(this.peakConcurrent, this.#inflight);
    try {
      if (this.delayMs > 0) await new Promise((r) => setTimeout(r, this.delayMs));
    } finally {
      this.#inflight--;
    }
  }
}

function hexToBytes(hex: string): Uint8Array {
  return Uint8Array.from(Buffer.from(hex, 'hex'));
}
