/**
 * Partitions and slow links on the real devnet processes (coordinator + 4 nodes, SoftHSM2 tokens),
 * threats T-06 (SIGSTOP pause nemesis), I4, I5, I7: a node is frozen with SIGSTOP past the session
 * deadline (KMS_SESSION_TIMEOUT_MS=3000 on the nodes, 3 s on the coordinator) during signing, a DKG
 * and a reshare. Signing goes on without it and names it in `excluded`; the DKG and the reshare
 * abort everywhere, naming it `unresponsive`, and leave the previous epoch signing. After SIGCONT
 * the same reshare succeeds and the new epoch signs with every node.
 */
import { execFile } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { NODE_BIN, ROOT, readPid } from '../scripts/devnet-lib.ts';
import { type Devnet, createDevnet } from './helpers/devnet-process.ts';

const run = promisify(execFile);
const hex = (s: string) => Buffer.from(s, 'utf8').toString('hex');
const DEADLINE_MS = 5_000;

describe('partitions: a node paused with SIGSTOP past the deadline (real processes)', () => {
  let d: Devnet;
  let frozen: number | undefined;
  const freeze = (name: string) => {
    const pid = readPid(d.dir, name);
    if (pid === undefined) throw new Error(`${name} is not running`);
    process.kill(pid, 'SIGSTOP');
    frozen = pid;
  };
  const thaw = () => {
    if (frozen !== undefined) process.kill(frozen, 'SIGCONT');
    frozen = undefined;
  };

  beforeAll(async () => {
    d = await createDevnet(4);
    d.env.KMS_SESSION_TIMEOUT_MS = String(DEADLINE_MS);
    await run(NODE_BIN, ['scripts/devnet.ts', '--init-only'], {
      cwd: ROOT,
      env: { ...process.env, ...d.env },
    });
    // The coordinator's deadlines come from its config file (coordinator/main.ts).
    const file = join(d.dir, 'coordinator', 'coordinator.json');
    const cfg = JSON.parse(readFileSync(file, 'utf8'));
    cfg.cluster.sessionTimeoutMs = DEADLINE_MS;
    cfg.cluster.signTimeoutMs = 2_000;
    writeFileSync(file, JSON.stringify(cfg));
    await d.start();
  }, 180_000);
  afterAll(async () => {
    thaw();
    await d?.cleanup();
  });

  it('signing, DKG and reshare around a frozen node; all works again after SIGCONT', async () => {
    const created = await d.api('POST', '/v1/keys', { keySpec: 'FROST_ED25519', threshold: 2, alias: 'net' });
    expect(created.status, JSON.stringify(created.body)).toBe(201);
    const key = created.body;
    expect(key.participants).toEqual(['node-1', 'node-2', 'node-3', 'node-4']);

    freeze('node-3');
    try {
      // Signing: rotation puts node-3 in a signer set within one pass; it is skipped and named.
      const named: string[] = [];
      for (let i = 0; i < 4; i++) {
        const t0 = performance.now();
        const s = await d.api('POST', `/v1/keys/${key.keyId}/sign`, { message: hex(`frozen ${i}`) });
        expect(s.status, JSON.stringify(s.body)).toBe(200);
        expect(s.body.signers).not.toContain('node-3');
        expect(performance.now() - t0).toBeLessThan(30_000);
        for (const b of s.body.excluded) named.push(`${b.participant}/${b.reason}`);
      }
      expect(named).toContain('node-3/unresponsive');
      expect(named.every((n) => n === 'node-3/unresponsive')).toBe(true);

      // DKG with the frozen node: aborts everywhere, names it, no key is left behind.
      const t1 = performance.now();
      const dkg = await d.api('POST', '/v1/keys', {
        keySpec: 'FROST_ED25519',
        threshold: 2,
        alias: 'net-dkg',
      });
      expect(performance.now() - t1).toBeLessThan(40_000);
      expect(dkg.status).toBeGreaterThanOrEqual(500);
      expect(
        dkg.body.culprits?.map(
          (b: { participant: string; reason: string }) => `${b.participant}/${b.reason}`,
        ),
      ).toEqual(['node-3/unresponsive']);

      // Reshare with the frozen node in the new committee: aborts, names it, epoch 0 still signs.
      const rs = await d.api('POST', `/v1/keys/${key.keyId}/reshare`, { threshold: 3 });
      expect(rs.status).toBeGreaterThanOrEqual(500);
      expect(JSON.stringify(rs.body.culprits)).toContain('node-3');
      expect(rs.body.culprits.every((b: { participant: string }) => b.participant === 'node-3')).toBe(true);
      const still = await d.api('GET', `/v1/keys/${key.keyId}`);
      expect(still.body.epoch).toBe(0);
      const s0 = await d.api('POST', `/v1/keys/${key.keyId}/sign`, {
        message: hex('epoch 0 during the partition'),
      });
      expect(s0.status).toBe(200);
      expect(s0.body.epoch).toBe(0);
    } finally {
      thaw();
    }

    // Healed: the same reshare succeeds and the new epoch signs with node-3 among the signers.
    await d.waitReachable(4);
    const rs = await d.api('POST', `/v1/keys/${key.keyId}/reshare`, { threshold: 3 });
    expect(rs.status, JSON.stringify(rs.body)).toBe(200);
    expect(rs.body.epoch).toBe(1);
    expect(rs.body.publicKey).toBe(key.publicKey);
    const signers = new Set<string>();
    for (let i = 0; i < 4; i++) {
      const s = await d.api('POST', `/v1/keys/${key.keyId}/sign`, { message: hex(`healed ${i}`) });
      expect(s.status, JSON.stringify(s.body)).toBe(200);
      expect(s.body.epoch).toBe(1);
      expect(s.body.excluded).toEqual([]);
      for (const n of s.body.signers) signers.add(n);
    }
    expect(signers.has('node-3')).toBe(true);
    const again = await d.api('POST', '/v1/keys', {
      keySpec: 'FROST_ED25519',
      threshold: 2,
      alias: 'net-dkg',
    });
    expect(again.status, JSON.stringify(again.body)).toBe(201);
  }, 120_000);
});
