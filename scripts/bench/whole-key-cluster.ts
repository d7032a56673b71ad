/**
 * !!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!
 * BENCH-ONLY MODE. NEVER A PRODUCT FEATURE. THIS HOLDS WHOLE PRIVATE KEYS IN ONE PROCESS.
 * !!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!
 *
 * A `Cluster` that keeps every key whole, in memory, in the coordinator process, and signs with the
 * suite's plain (single-party) signing: `frost.sign(msg, combineSecret(trustedDealer shares))`.
 * It exists for two reasons only:
 * - the single-key baseline in benchmarks, so the HTTP/API overhead can be measured without the
 *   cost of distribution;
 * - tests of the HTTP layer (routes, auth, audit, lifecycle) that do not need real nodes.
 * It defeats the whole point of the service (no machine ever holds a whole key). Nothing in the
 * product wires it in; `coordinator/main.ts` must never select it from configuration.
 *
 * Simulated nodes `node-1..node-n` can be marked unreachable to exercise QuorumUnavailable and the
 * `excluded` list; keys live only as long as the object (nothing is persisted).
 */
import { sha256 } from '@noble/hashes/sha2.js';
import { bytesToHex, utf8ToBytes } from '@noble/hashes/utils.js';
import { KmsError, StateError } from '../protocol/errors.ts';
import type { Blame } from '../protocol/errors.ts';
import { nodeIdOf, nodeIndex } from '../protocol/ids.ts';
import { KEY_SPEC_REGISTRY, type KeySpecName, publicKeyFromGroupElement } from '../protocol/suites.ts';
import type { Cluster, EpochInfo, KeyState, NodeStatus, ProgressFn, SignResult } from './cluster.ts';

type HeldKey = {
  secret: Uint8Array;
  info: EpochInfo;
  state: KeyState;
};

export class LocalCluster implements Cluster {
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

  constructor(opts: { nodes?: number } = {}) {
    const n = opts.nodes ?? 3;
    this.#nodes = Array.from({ length: n }, (_, i) => nodeIdOf(i + 1));
  }

  /** Test hook: a node that is down does not answer (sign excludes it, DKG needs it). */
  setReachable(nodeId: string, reachable: boolean): void {
    if (reachable) this.#down.delete(nodeId);
    else this.#down.add(nodeId);
  }

  /** Test hook: the state the nodes were last told for a key. */
  stateOf(keyId: string): KeyState | undefined {
    return this.#keys.get(keyId)?.state;
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
    const secret = spec.frost.combineSecret(shares, signers);
    for (const s of Object.values(dealt.secretShares)) s.signingShare.fill(0);
    const groupElement = dealt.public.commitments[0]!;
    const info = this.#info(req.keyId, req.keySpec, 0, req.threshold, req.participants, groupElement);
    this.#keys.set(req.keyId, { secret, info, state: 'Enabled' });
    return info;
  }

  async sign(req: { key: EpochInfo; message: Uint8Array }): Promise<SignResult> {
    this.calls.sign++;
    const held = this.#held(req.key);
    if (held.state !== 'Enabled')
      throw new StateError('InvalidKeyState', `key is ${held.state} on the nodes`);
    // Mimic the distributed retry: members tried in order, an unreachable one is excluded.
    const excluded: Blame[] = [];
    const signers: string[] = [];
    for (const p of held.info.participants) {
      if (signers.length === held.info.threshold) break;
      if (this.#down.has(p)) excluded.push({ participant: p, reason: 'unresponsive', round: 'commit' });
      else signers.push(p);
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
    req.progress?.({ phase: 'repair' });
    await this.#delay();
    return this.#bump(held, held.info.threshold, held.info.participants);
  }

  async setKeyState(req: { keyId: string; state: KeyState }): Promise<void> {
    this.calls.setKeyState++;
    const held = this.#keys.get(req.keyId);
    if (!held) throw new StateError('KeyNotFound', `key ${req.keyId} not found on the nodes`);
    held.state = req.state;
  }

  async destroyKey(req: { keyId: string }): Promise<void> {
    this.calls.destroyKey++;
    const held = this.#keys.get(req.keyId);
    if (held) held.secret.fill(0);
    this.#keys.delete(req.keyId);
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
      publicKey: bytesToHex(publicKeyFromGroupElement(spec, groupElement)),
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
