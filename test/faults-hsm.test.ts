/**
 * The HSM goes away in the middle of operation (threats F-18, second half): node-2's SoftHSM2
 * token directory disappears while the devnet runs. A key event that needs node-2 to seal its new
 * share aborts everywhere, naming node-2, and the previous epoch stays active; signing goes on (the
 * other members, and node-2 from its in-memory active key). When the token is back, a restart of
 * node-2 brings it back and the next key event commits. (A running node does not re-open its
 * PKCS#11 session by itself: the restart is the documented recovery.)
 */
import { readFileSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { fromHex } from '../protocol/bytes.ts';
import { keySpec, verifySignature } from '../protocol/suites.ts';
import { type Devnet, createDevnet } from './helpers/devnet-process.ts';

const hex = (s: string) => Buffer.from(s, 'utf8').toString('hex');

describe('HSM lost while the node runs (real processes, SoftHSM2)', () => {
  let d: Devnet;
  beforeAll(async () => {
    d = await createDevnet(3);
    await d.start();
    // Short session deadlines on the nodes, so an aborted key event ends quickly.
    await d.stopAll();
    const file = join(d.dir, 'processes.json');
    const procs = JSON.parse(readFileSync(file, 'utf8')) as { name: string; env: Record<string, string> }[];
    for (const p of procs) if (p.name !== 'coordinator') p.env.KMS_SESSION_TIMEOUT_MS = '4000';
    writeFileSync(file, JSON.stringify(procs));
    await d.start();
  }, 240_000);
  afterAll(async () => {
    await d?.cleanup();
  });

  it('a key event aborts naming the node, signing goes on, and a restart with the token back heals it', async () => {
    const k = (await d.api('POST', '/v1/keys', { keySpec: 'FROST_ED25519', threshold: 2 })).body;
    const sign = async (text: string) => {
      const r = await d.api('POST', `/v1/keys/${k.keyId}/sign`, { message: hex(text) });
      expect(r.status, JSON.stringify(r.body)).toBe(200);
      const ok = verifySignature(
        keySpec('FROST_ED25519'),
        Buffer.from(text),
        fromHex(r.body.signature),
        fromHex(k.publicKey),
      );
      expect(ok).toBe(true);
      return r.body;
    };
    await sign('before');

    const tokens = join(d.dir, 'node-2', 'softhsm', 'tokens');
    renameSync(tokens, `${tokens}.gone`);
    const failed = await d.api('POST', `/v1/keys/${k.keyId}/refresh`, {});
    expect(failed.status).toBeGreaterThanOrEqual(500);
    expect(JSON.stringify(failed.body.culprits)).toContain('node-2');
    expect((await d.api('GET', `/v1/keys/${k.keyId}`)).body.epoch).toBe(0);
    for (const text of ['during 1', 'during 2', 'during 3']) await sign(text);

    renameSync(`${tokens}.gone`, tokens);
    expect((await d.kms(['devnet', 'stop', 'node-2'])).code).toBe(0);
    expect((await d.kms(['devnet', 'start', 'node-2'])).code).toBe(0);
    await d.waitReachable(3);
    const healed = await d.api('POST', `/v1/keys/${k.keyId}/refresh`, {});
    expect(healed.status, JSON.stringify(healed.body)).toBe(200);
    expect(healed.body).toMatchObject({ epoch: 1, publicKey: k.publicKey });
    const signers = new Set<string>();
    for (const text of ['after 1', 'after 2', 'after 3'])
      for (const s of (await sign(text)).signers) signers.add(s);
    expect(signers.has('node-2')).toBe(true);
  }, 180_000);
});
