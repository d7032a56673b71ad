/**
 * The HSM goes away in the middle of operation and comes back (threats F-18, second half): node-2's
 * SoftHSM2 token directory disappears while the devnet runs. A key event that needs node-2's HSM
 * aborts at once everywhere, naming node-2 `aborted` (its signed abort, node/session-abort.ts), and
 * the previous epoch stays active; signing goes on (the other members, and node-2 from its
 * in-memory active key). node-2's sealer answers SealerUnavailable meanwhile (its /readyz fails).
 * When the token is back, the same node-2 process re-opens its PKCS#11 session by itself
 * (node/sealer-pkcs11.ts: re-initialize, find the token by label, log in under the PIN guard):
 * /readyz passes again, and the next key event commits and node-2 signs, without a restart.
 */
import { readFileSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { fromHex } from '../protocol/bytes.ts';
import { keySpec, verifySignature } from '../protocol/suites.ts';
import { isAlive, nodeAdminUrls, readPid } from '../scripts/devnet-lib.ts';
import { type Devnet, createDevnet } from './helpers/devnet-process.ts';

const hex = (s: string) => Buffer.from(s, 'utf8').toString('hex');
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
/** The nodes' session deadline here: a key event must abort well before it. */
const DEADLINE_MS = 8_000;

describe('HSM lost and back while the node runs (real processes, SoftHSM2)', () => {
  let d: Devnet;
  beforeAll(async () => {
    d = await createDevnet(3);
    await d.start();
    // Short session deadlines on the nodes, so even a deadline would end a key event quickly.
    await d.stopAll();
    const file = join(d.dir, 'processes.json');
    const procs = JSON.parse(readFileSync(file, 'utf8')) as { name: string; env: Record<string, string> }[];
    for (const p of procs) if (p.name !== 'coordinator') p.env.KMS_SESSION_TIMEOUT_MS = String(DEADLINE_MS);
    writeFileSync(file, JSON.stringify(procs));
    await d.start();
  }, 240_000);
  afterAll(async () => {
    await d?.cleanup();
  });

  /** node-2's /readyz: its sealer check seals and unseals through the HSM. */
  const readiness = async () => {
    const url = nodeAdminUrls(d.dir).get('node-2');
    if (!url) throw new Error('node-2 has no admin URL');
    const r = await fetch(`${url}/readyz`);
    return { status: r.status, body: (await r.json()) as { checks: { sealer: string } } };
  };

  it('a key event aborts at once naming node-2; with the token back the running node re-opens its session and the next event commits', async () => {
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
    const pid = readPid(d.dir, 'node-2');
    expect(pid).toBeDefined();

    const tokens = join(d.dir, 'node-2', 'softhsm', 'tokens');
    renameSync(tokens, `${tokens}.gone`);
    const t0 = performance.now();
    const failed = await d.api('POST', `/v1/keys/${k.keyId}/refresh`, {});
    expect(performance.now() - t0).toBeLessThan(DEADLINE_MS);
    expect(failed.status).toBeGreaterThanOrEqual(500);
    expect(
      failed.body.culprits.map(
        (b: { participant: string; reason: string }) => `${b.participant}/${b.reason}`,
      ),
    ).toEqual(['node-2/aborted']);
    expect((await d.api('GET', `/v1/keys/${k.keyId}`)).body.epoch).toBe(0);
    for (const text of ['during 1', 'during 2', 'during 3']) await sign(text);
    const down = await readiness();
    expect(down.status).toBe(503);
    expect(down.body.checks.sealer).toBe('fail');

    renameSync(`${tokens}.gone`, tokens);
    // Recovery is the node's own: poll its readiness (each probe may start a reconnect round).
    let up = down;
    for (let i = 0; i < 60 && up.status !== 200; i++) {
      await sleep(500);
      up = await readiness();
    }
    expect(up.status, JSON.stringify(up.body)).toBe(200);
    expect(up.body.checks.sealer).toBe('pass');
    const healed = await d.api('POST', `/v1/keys/${k.keyId}/refresh`, {});
    expect(healed.status, JSON.stringify(healed.body)).toBe(200);
    expect(healed.body).toMatchObject({ epoch: 1, publicKey: k.publicKey });
    const signers = new Set<string>();
    for (const text of ['after 1', 'after 2', 'after 3', 'after 4'])
      for (const s of (await sign(text)).signers) signers.add(s);
    expect(signers.has('node-2')).toBe(true);
    // The same process all along: no restart.
    expect(readPid(d.dir, 'node-2')).toBe(pid);
    expect(isAlive(pid!)).toBe(true);
    // The PIN never reached the node's log.
    const pin = readFileSync(join(d.dir, 'node-2', 'pin'), 'utf8').trim();
    expect(readFileSync(join(d.dir, 'logs', 'node-2.log'), 'utf8')).not.toContain(pin);
  }, 180_000);
});
