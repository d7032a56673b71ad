/**
 * One-round signing across a node crash, on real processes (the devnet's coordinator and three
 * node daemons, test/helpers/crash.ts; issue 17, RFC 9591 §5.1). A node killed (SIGKILL) after it
 * took a pre-published nonce out of its pool and computed the share, before answering
 * (`sign.one.sent`), has no pool after its restart: the same commitment list is refused
 * (NonceReused), so no nonce can be used twice across the crash. The real coordinator, whose cache
 * still holds the dead node's commitments, keeps signing (falling back to two rounds where a
 * commitment is refused); every signature verifies and no R repeats.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { isKmsError } from '../protocol/errors.ts';
import { keySpec, verifySignature } from '../protocol/suites.ts';
import { type CrashNet, createCrashNet, crashEnv } from './helpers/crash.ts';

const spec = keySpec('FROST_ED25519');
const hex = (b: Uint8Array) => Buffer.from(b).toString('hex');

describe('one-round signing across a node crash (real processes)', () => {
  let net: CrashNet;
  beforeAll(async () => {
    net = await createCrashNet(3, { sessionTimeoutMs: 5_000, signTimeoutMs: 4_000 });
  }, 120_000);
  afterAll(async () => {
    await net?.close();
  }, 60_000);

  it('a node killed after taking a pre-published nonce refuses that commitment after its restart; the coordinator keeps signing', async () => {
    const created = await net.devnet.api('POST', '/v1/keys', { keySpec: spec.name, threshold: 2 });
    expect(created.status, JSON.stringify(created.body)).toBe(201);
    const { keyId, publicKey } = created.body as { keyId: string; publicKey: string };
    const rs = new Set<string>();
    const signThroughApi = async (n: number, tag: string) => {
      for (let i = 0; i < n; i++) {
        const msg = Buffer.from(`${tag} ${i}`);
        const r = await net.devnet.api('POST', `/v1/keys/${keyId}/sign`, { message: hex(msg) });
        expect(r.status, JSON.stringify(r.body)).toBe(200);
        const sig = Buffer.from((r.body as { signature: string }).signature, 'hex');
        expect(verifySignature(spec, msg, sig, Buffer.from(publicKey, 'hex'))).toBe(true);
        const R = hex(sig.subarray(0, 32));
        expect(rs.has(R), `R of "${msg}" repeats`).toBe(false);
        rs.add(R);
      }
    };
    // The coordinator warms its cache (first signature in two rounds) and signs in one round.
    await signThroughApi(4, 'before');

    await net.restart('node-2', crashEnv('sign.one.sent'));
    const list = [];
    for (const n of ['node-1', 'node-2']) {
      const a = await net.rpc(n, { op: 'sign-precommit', keyId, epoch: 0, count: 1 });
      list.push({ identifier: a.identifier, ...a.commitments[0] });
    }
    const message = hex(Buffer.from('probe'));
    const req = {
      op: 'sign-one' as const,
      sessionId: `probe-${Date.now()}`,
      keyId,
      epoch: 0,
      message,
      commitments: list,
      auth: net.signAuth(keyId, message),
    };
    await expect(net.rpc('node-2', req)).rejects.toThrow();
    await net.waitDead('node-2', 10_000);
    expect(net.log('node-2')).toContain('crash point sign.one.sent: killing the process');
    await net.restart('node-2');
    const refused = await net.rpc('node-2', { ...req, auth: net.signAuth(keyId, message) }).then(
      () => undefined,
      (e: unknown) => (isKmsError(e) ? e.code : String(e)),
    );
    expect(refused).toBe('NonceReused');

    // The real coordinator's cached commitments of node-2 died with it: it still signs.
    await signThroughApi(6, 'after');
  }, 120_000);
});
