/**
 * Bytes of memory one active key costs a node (issue 17 item 4): node/active-keys.ts keeps, per key
 * it signs with, the epoch record as read from LevelDB, the decoded public package and the unsealed
 * share. Measured in this process on objects of exactly that shape, built from a real 3-of-5 DKG
 * (protocol/dkg.ts machines, protocol/simulate.ts) with a real certificate: heap and array-buffer
 * bytes after a full garbage collection, before and after holding `count` of them, divided by
 * `count`. Bench-only; the devnet's resident sizes are too noisy for this (scale.md).
 */
import { randomBytes } from 'node:crypto';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { toHex } from '../../protocol/bytes.ts';
import { dkgMachine } from '../../protocol/dkg.ts';
import { asKeyId, asParticipantId, asSessionId, type ParticipantId } from '../../protocol/ids.ts';
import { publicFromHex, publicToHex } from '../../protocol/packages.ts';
import { simulate } from '../../protocol/simulate.ts';
import { KEY_SPEC_REGISTRY } from '../../protocol/suites.ts';
import type { EpochRecordStored } from '../../node/store.ts';

/** A full garbage collection, whether or not the process was started with --expose-gc. */
function gcNow(): () => void {
  setFlagsFromString('--expose-gc');
  return runInNewContext('gc') as () => void;
}

function usedBytes(): number {
  const m = process.memoryUsage();
  return m.heapUsed + m.arrayBuffers;
}

/** One real FROST_ED25519 3-of-5 epoch record of node-1, as node/store.ts stores it (JSON). */
function realRecordJson(): string {
  const spec = KEY_SPEC_REGISTRY.FROST_ED25519;
  const ids: ParticipantId[] = [1, 2, 3, 4, 5].map((k) =>
    asParticipantId(spec.frost.Identifier.fromNumber(k)),
  );
  const keyId = asKeyId('3b241101-e2bb-4255-8caf-4136c566a962');
  const sessionId = asSessionId(`bench-${randomBytes(4).toString('hex')}`);
  const d = simulate(
    ids.map((self) => dkgMachine({ spec, keyId, sessionId, self, participants: ids, threshold: 3 })),
  );
  const r = d.results.get(ids[0]!);
  if (!r) throw new Error('active-key-memory: the DKG did not complete');
  const record: EpochRecordStored = {
    keyId,
    keySpec: 'FROST_ED25519',
    epoch: 0,
    threshold: 3,
    participants: ['node-1', 'node-2', 'node-3', 'node-4', 'node-5'],
    participant: ids[0]!,
    public: publicToHex(r.key.public),
    transcriptHash: toHex(r.transcriptHash),
    status: 'active',
    sessionId,
    certificate: Object.fromEntries(
      Object.entries(r.confirmations).map(([p, v]) => [p, { R: toHex(v.R), z: toHex(v.z) }]),
    ),
  };
  return JSON.stringify(record);
}

/** Bytes per active key (FROST_ED25519 3-of-5), averaged over `count` entries. */
export function activeKeyBytes(count = 2000): { bytesPerKey: number; recordJsonBytes: number } {
  const gc = gcNow();
  const json = realRecordJson();
  const spec = KEY_SPEC_REGISTRY.FROST_ED25519;
  const held = new Map<string, unknown>();
  gc();
  const before = usedBytes();
  for (let i = 0; i < count; i++) {
    // As node/active-keys.ts builds an entry: the record parsed from the stored JSON, its package
    // decoded, the unsealed share (32 bytes), keyed by key id.
    const record = JSON.parse(json) as EpochRecordStored;
    held.set(`${i.toString(16).padStart(8, '0')}-0000-4000-8000-000000000000`, {
      record,
      key: {
        public: publicFromHex(spec, record.public),
        secret: { identifier: record.participant, signingShare: new Uint8Array(randomBytes(32)) },
      },
      spec,
      state: 'Enabled',
    });
  }
  gc();
  const after = usedBytes();
  if (held.size !== count) throw new Error('active-key-memory: entries lost');
  return { bytesPerKey: (after - before) / count, recordJsonBytes: json.length };
}
