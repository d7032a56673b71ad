/** Confirmation proofs and transcript hashes (protocol/confirm.ts), every suite. */
import { describe, expect, it } from 'vitest';
import { confirm, confirmationContext, hashTranscript, verifyConfirmation } from '../protocol/confirm.ts';
import { KEY_SPECS, keySpec } from '../protocol/suites.ts';

const te = (s: string) => new TextEncoder().encode(s);

describe('hashTranscript', () => {
  it('frames items so that different splits hash differently', () => {
    expect(hashTranscript('x', [te('ab'), te('c')])).not.toEqual(hashTranscript('x', [te('a'), te('bc')]));
    expect(hashTranscript('x', [te('a')])).not.toEqual(hashTranscript('y', [te('a')]));
    expect(hashTranscript('x', [te('a')])).toEqual(hashTranscript('x', [te('a')]));
  });
});

describe.each(KEY_SPECS.map((n) => keySpec(n)))('$name confirmation', (spec) => {
  const Fn = spec.Point.Fn;
  const share = Fn.create(123456789n);
  const Y = spec.Point.BASE.multiply(share).toBytes();
  const ctx = (over: Partial<Parameters<typeof confirmationContext>[0]> = {}) =>
    confirmationContext({
      sessionId: 's1',
      participant: 'p1',
      transcriptHash: hashTranscript('t', [te('m')]),
      groupElement: Y,
      epoch: 0,
      ...over,
    });

  it('verifies with the right share and context only', () => {
    const c = confirm(spec, share, Y, ctx());
    expect(verifyConfirmation(spec, Y, ctx(), c)).toBe(true);
    for (const other of [
      { sessionId: 's2' },
      { participant: 'p2' },
      { epoch: 1 },
      { transcriptHash: new Uint8Array(32) },
    ]) {
      expect(verifyConfirmation(spec, Y, ctx(other), c)).toBe(false);
    }
    const wrong = confirm(spec, Fn.add(share, 1n), Y, ctx());
    expect(verifyConfirmation(spec, Y, ctx(), wrong)).toBe(false);
  });

  it('never throws on malformed proofs or keys', () => {
    const c = confirm(spec, share, Y, ctx());
    expect(verifyConfirmation(spec, Y, ctx(), { R: new Uint8Array(3), z: c.z })).toBe(false);
    expect(
      verifyConfirmation(spec, Y, ctx(), { R: c.R, z: new Uint8Array(spec.scalarLength).fill(0xff) }),
    ).toBe(false);
    expect(verifyConfirmation(spec, new Uint8Array(spec.elementLength), ctx(), c)).toBe(false);
    expect(verifyConfirmation(spec, Y, ctx(), { R: 'x', z: 1 } as never)).toBe(false);
  });
});
