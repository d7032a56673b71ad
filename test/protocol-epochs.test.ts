import { verify as nodeVerify, createPublicKey } from 'node:crypto';
import type { Key } from '@noble/curves/abstract/frost.js';
import { schnorr } from '@noble/curves/secp256k1.js';
import { describe, expect, it } from 'vitest';
import {
  abort,
  activate,
  assertSingleEpoch,
  certificateGaps,
  initialEpochState,
  propose,
  signingEpoch,
} from '../protocol/epoch.ts';
import type { KmsError } from '../protocol/errors.ts';
import { asEpoch, asSessionId, type ParticipantId } from '../protocol/ids.ts';
import { KEY_SPEC_REGISTRY, type KeySpec } from '../protocol/suites.ts';
import {
  canSign,
  dkg,
  KEY_ID,
  newKeys,
  pickRandom,
  pids,
  runRefresh,
  runReshare,
  signWith,
} from './key-events-fixture.ts';

const TR = KEY_SPEC_REGISTRY.FROST_SECP256K1_TR;
const ED = KEY_SPEC_REGISTRY.FROST_ED25519;

function codeOf(f: () => unknown): string {
  try {
    f();
  } catch (e) {
    return (e as KmsError).code;
  }
  return 'no error';
}

describe('two-phase epoch state (I5)', () => {
  const spec = KEY_SPEC_REGISTRY.FROST_SECP256K1;
  const ids = pids(spec, [1, 2, 3]);
  const old = dkg(spec, 2, ids);
  const oldPub = old.get(ids[0]!)!.public;
  const out = runReshare(spec, old, {
    oldEpoch: 0,
    dealers: ids.slice(0, 2),
    newParticipants: pids(spec, [2, 3, 4]),
    newThreshold: 2,
  });
  const r = out.results.get(ids[1]!)!;

  it('pending until a complete certificate; activate returns the epoch to destroy', () => {
    let st = initialEpochState(KEY_ID, spec.name, oldPub, asEpoch(0));
    st = propose(st, {
      epoch: r.epoch,
      public: r.public,
      transcriptHash: r.transcriptHash,
      sessionId: r.certificate.sessionId,
    });
    expect(st.pending?.epoch).toBe(1);
    expect(signingEpoch(st).epoch).toBe(0); // a pending epoch never signs
    // Missing one confirmation: refused, still pending.
    const partial = { ...r.certificate, confirmations: { ...r.certificate.confirmations } };
    const missing = Object.keys(partial.confirmations)[0] as ParticipantId;
    delete (partial.confirmations as Record<string, unknown>)[missing];
    expect(certificateGaps(spec.name, st.pending!, st.groupElement, partial)).toEqual([missing]);
    expect(codeOf(() => activate(st, partial))).toBe('ProtocolAborted');
    // A confirmation over another transcript hash: refused.
    expect(codeOf(() => activate(st, { ...r.certificate, transcriptHash: new Uint8Array(32) }))).toBe(
      'ProtocolAborted',
    );
    const { state, destroy } = activate(st, r.certificate);
    expect(destroy).toBe(0);
    expect(state.active.epoch).toBe(1);
    expect(state.pending).toBeUndefined();
  });

  it('abort leaves the active epoch untouched and usable', () => {
    let st = initialEpochState(KEY_ID, spec.name, oldPub, asEpoch(0));
    st = propose(st, {
      epoch: r.epoch,
      public: r.public,
      transcriptHash: r.transcriptHash,
      sessionId: r.certificate.sessionId,
    });
    const back = abort(st, asEpoch(1));
    expect(back.pending).toBeUndefined();
    expect(back.active).toBe(st.active);
    expect(canSign(spec, [...old.values()].slice(0, 2), back.groupElement)).toBe(true);
    expect(codeOf(() => activate(back, r.certificate))).toBe('InvalidKeyState');
  });

  it('refuses a pending epoch whose group element differs, a non-increasing epoch, and a second pending one', () => {
    const st = initialEpochState(KEY_ID, spec.name, oldPub, asEpoch(0));
    const other = dkg(spec, 2, ids).get(ids[0]!)!.public;
    const sid = asSessionId('s');
    expect(
      codeOf(() =>
        propose(st, { epoch: asEpoch(1), public: other, transcriptHash: r.transcriptHash, sessionId: sid }),
      ),
    ).toBe('InvalidKeyState');
    expect(
      codeOf(() =>
        propose(st, {
          epoch: asEpoch(0),
          public: r.public,
          transcriptHash: r.transcriptHash,
          sessionId: sid,
        }),
      ),
    ).toBe('EpochMismatch');
    const p = propose(st, {
      epoch: asEpoch(1),
      public: r.public,
      transcriptHash: r.transcriptHash,
      sessionId: sid,
    });
    expect(
      codeOf(() =>
        propose(p, { epoch: asEpoch(2), public: r.public, transcriptHash: r.transcriptHash, sessionId: sid }),
      ),
    ).toBe('InvalidKeyState');
  });

  it('a signing set that mixes epochs is refused', () => {
    expect(
      assertSingleEpoch([
        { participant: 'a', epoch: 3 },
        { participant: 'b', epoch: 3 },
      ]),
    ).toBe(3);
    expect(
      codeOf(() =>
        assertSingleEpoch([
          { participant: 'a', epoch: 3 },
          { participant: 'b', epoch: 2 },
        ]),
      ),
    ).toBe('EpochMismatch');
    expect(codeOf(() => assertSingleEpoch([{ participant: 'a', epoch: 2 }], 3))).toBe('EpochMismatch');
    expect(codeOf(() => assertSingleEpoch([]))).toBe('ValidationError');
  });
});

/** Runs `events` alternating refresh and random reshares; every epoch goes through propose/activate. */
function chain(spec: KeySpec, events: number, maxN: number) {
  let ids = pids(spec, [1, 2, 3]);
  let keys = dkg(spec, 2, ids);
  const g = keys.get(ids[0]!)!.public.commitments[0]!;
  let st = initialEpochState(KEY_ID, spec.name, keys.get(ids[0]!)!.public, asEpoch(0));
  let nextId = 4;
  for (let e = 0; e < events; e++) {
    const pub = keys.values().next().value!.public;
    const t = pub.signers.min;
    let out: ReturnType<typeof runRefresh>;
    if (e % 2 === 0) {
      out = runRefresh(spec, keys, e);
    } else {
      // Keep some members, add fresh ones: a moving committee with a changing threshold.
      const keep = pickRandom(ids, Math.max(1, Math.floor(ids.length / 2)));
      const n = 2 + Math.floor(Math.random() * (maxN - 1));
      const fresh: ParticipantId[] = [];
      while (keep.length + fresh.length < n) fresh.push(pids(spec, [nextId++])[0]!);
      const newParticipants = [...keep, ...fresh].slice(0, n);
      const newThreshold = 2 + Math.floor(Math.random() * (newParticipants.length - 1));
      out = runReshare(spec, keys, {
        oldEpoch: e,
        dealers: pickRandom(ids, t),
        newParticipants,
        newThreshold,
      });
    }
    expect(out.errors.size).toBe(0);
    const r = [...out.results.values()][0]!;
    st = propose(st, {
      epoch: r.epoch,
      public: r.public,
      transcriptHash: r.transcriptHash,
      sessionId: r.certificate.sessionId,
    });
    st = activate(st, r.certificate).state;
    keys = newKeys(out);
    ids = [...keys.keys()];
  }
  expect(st.active.epoch).toBe(events);
  const v = [...keys.values()];
  return { g, signers: pickRandom(v, v[0]!.public.signers.min) as Key[] };
}

describe('long chains', () => {
  it('FROST_SECP256K1_TR: 50 refresh/reshare events, then a BIP340 signature noble schnorr accepts', () => {
    const { g, signers } = chain(TR, 50, 6);
    const msg = new TextEncoder().encode('after 50 key events');
    const sig = signWith(TR, signers, msg);
    expect(schnorr.verify(sig, msg, g.slice(1))).toBe(true);
  });

  it('FROST_ED25519: 50 refresh/reshare events (committees up to 4), then node:crypto verifies', () => {
    const { g, signers } = chain(ED, 50, 4);
    const msg = new TextEncoder().encode('after 50 key events');
    const sig = signWith(ED, signers, msg);
    // RFC 8410 SubjectPublicKeyInfo for a raw Ed25519 key.
    const spki = Buffer.concat([Buffer.from('302a300506032b6570032100', 'hex'), Buffer.from(g)]);
    const pk = createPublicKey({ key: spki, format: 'der', type: 'spki' });
    expect(nodeVerify(null, msg, pk, sig)).toBe(true);
  });
});
