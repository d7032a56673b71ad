/**
 * Runs a key-creating session (DKG, refresh, reshare) on every member, then commits or aborts it
 * everywhere. Key events follow the two-phase rule (threats I5): every member runs the session and
 * persists its new share as pending before confirming; a member that ends with a complete
 * certificate (every new member's confirmation) activates the new epoch.
 */
import { fromHex, toHex } from '../protocol/bytes.ts';
import { type Blame, type KmsError, ProtocolError, isKmsError } from '../protocol/errors.ts';
import { publicFromHex } from '../protocol/packages.ts';
import { keySpec, publicKeyFromGroupElement } from '../protocol/suites.ts';
import { crashPoint } from '../common/crash-points.ts';
import type { SessionAnswer, SessionSpec } from '../net/rpc.ts';
import type { EpochInfo, ProgressFn } from './cluster.ts';
import type { EpochSync } from './epoch-sync.ts';
import { type NodeRpc, byNodeIndex } from './node-rpc.ts';

/** A new member's answer when its session ended with a certificate. */
export type SessionResult = Extract<SessionAnswer, { certificate: unknown }>;

export class KeyEventRunner {
  readonly #n: NodeRpc;
  readonly #sync: EpochSync;

  constructor(n: NodeRpc, sync: EpochSync) {
    this.#n = n;
    this.#sync = sync;
  }

  /** Runs a key-creating session on every member, then commits or aborts it everywhere. */
  async run(session: SessionSpec, retiring: readonly string[], progress?: ProgressFn): Promise<EpochInfo> {
    const members = [...new Set([...(session.dealers ?? []), ...session.participants])].sort(byNodeIndex);
    progress?.({ phase: session.kind, detail: `session ${session.sessionId} on ${members.join(', ')}` });
    await this.#n.prepare(session, members);
    const settled = await Promise.allSettled(
      members.map((m) => this.#n.rpc(m, { op: 'session', session }, this.#n.sessionTimeoutMs + 5_000)),
    );
    const ok = new Map<string, SessionResult>();
    const failed: { node: string; err: unknown }[] = [];
    settled.forEach((r, i) => {
      const node = members[i]!;
      if (r.status === 'fulfilled') {
        if ('certificate' in r.value) ok.set(node, r.value);
      } else failed.push({ node, err: r.reason });
    });
    // A complete certificate exists iff some new member finished; results of dealers that are not
    // new members carry no epoch (they only dealt).
    const finished = session.participants.filter((p) => ok.has(p) && ok.get(p)?.certificate);
    const first = finished.length > 0 ? ok.get(finished[0]!) : undefined;
    if (!first) {
      await Promise.allSettled(
        members.map((m) =>
          this.#n.rpc(m, { op: 'abort-epoch', keyId: session.keyId, epoch: session.epoch }, 5_000),
        ),
      );
      throw this.eventError(session.kind, failed);
    }
    for (const p of finished) {
      const r = ok.get(p)!;
      if (r.groupElement !== first.groupElement || r.transcriptHash !== first.transcriptHash) {
        // Cannot happen with honest members (the confirmation round checks agreement); refuse loudly.
        throw new ProtocolError(
          'ProtocolAborted',
          `members disagree on the result of session ${session.sessionId}`,
          {
            culprits: [{ participant: p, reason: 'equivocation' }],
          },
        );
      }
    }
    crashPoint('coordinator.event.before-commit');
    progress?.({ phase: 'commit', detail: `epoch ${session.epoch}` });
    const lagging = session.participants.filter((p) => !finished.includes(p));
    let undelivered = false;
    await Promise.allSettled(
      lagging.map((m) =>
        this.#n
          .rpc(
            m,
            {
              op: 'commit-epoch',
              keyId: session.keyId,
              epoch: session.epoch,
              certificate: first.certificate,
              transcriptHash: first.transcriptHash,
            },
            5_000,
          )
          .catch((e: unknown) => {
            undelivered = true;
            this.#n.log.warn({ node: m, keyId: session.keyId, err: String(e) }, 'commit lagging');
          }),
      ),
    );
    await Promise.allSettled(
      retiring.map((m) =>
        this.#n
          .rpc(
            m,
            {
              op: 'retire',
              keyId: session.keyId,
              epoch: session.epoch,
              public: first.public,
              certificate: first.certificate,
              transcriptHash: first.transcriptHash,
              sessionId: session.sessionId,
            },
            5_000,
          )
          .catch((e: unknown) => {
            undelivered = true;
            this.#n.log.warn({ node: m, keyId: session.keyId, err: String(e) }, 'retire failed');
          }),
      ),
    );
    crashPoint('coordinator.event.after-commit');
    const spec = keySpec(session.keySpec);
    // Not cached while a member missed its commit-epoch or retire: the next operation syncs (#sync).
    if (!undelivered) this.#sync.remember(session.keyId, session.epoch, publicFromHex(spec, first.public));
    return {
      keyId: session.keyId,
      keySpec: session.keySpec,
      epoch: session.epoch,
      threshold: session.threshold,
      participants: session.participants,
      publicKey: toHex(publicKeyFromGroupElement(spec, fromHex(first.groupElement))),
      groupElement: first.groupElement,
      transcriptHash: first.transcriptHash,
    };
  }

  eventError(kind: string, failed: { node: string; err: unknown }[]): KmsError {
    const culprits: Blame[] = [];
    for (const f of failed) {
      if (isKmsError(f.err) && f.err.culprits.length > 0) culprits.push(...f.err.culprits);
    }
    // A member that aborted on proof of misbehaviour stops answering the others, who then name it
    // unresponsive: that blame is a consequence, not a fault of its own.
    const aborted = new Set(
      failed
        .filter((f) => isKmsError(f.err) && f.err.culprits.some((c) => c.reason !== 'unresponsive'))
        .map((f) => f.node),
    );
    // Several honest members name the same culprit; report each (participant, reason) once.
    const unique = [
      ...new Map(
        culprits
          .filter((c) => !(c.reason === 'unresponsive' && aborted.has(c.participant)))
          .map((c) => [`${c.participant}/${c.reason}`, c]),
      ).values(),
    ];
    const misbehaved = unique.some((c) => c.reason !== 'unresponsive');
    const unreachable = failed.filter(
      (f) => isKmsError(f.err) && ['Timeout', 'QuorumUnavailable'].includes(f.err.code),
    );
    const code = misbehaved
      ? 'ParticipantMisbehaved'
      : unreachable.length > 0
        ? 'QuorumUnavailable'
        : 'ProtocolAborted';
    const first = failed[0];
    const why = first && isKmsError(first.err) ? `: ${first.node}: ${first.err.message}` : '';
    return new ProtocolError(code, `${kind} aborted${why}; the previous epoch stays active`, {
      culprits: unique,
      details: { failed: failed.map((f) => f.node) },
    });
  }
}
