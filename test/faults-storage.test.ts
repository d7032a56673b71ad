/**
 * Storage and HSM faults at the daemon level: `node node/main.ts` of a real devnet (coordinator + 3
 * nodes, SoftHSM2 tokens) started against a broken store or HSM (threats I6, F-13/F-14, F-16,
 * F-17, F-18 at start, F-19/T-04). Each start must exit 1 with `node: <Code>: <message>` on stderr
 * (typed, no secret), and the broken variants run on COPIES of node-3's data dir, so afterwards the
 * untouched node-3 comes back and the key signs with every node: nothing was half-written.
 *
 * Last, the disk fills under a running node (issue 13 item 8): node-3's data dir on a small tmpfs,
 * filled while it runs; its next write in a key event fails (its audit record of the signed request,
 * or its store's), it aborts the session and tells the others (signed abort,
 * node/session-abort.ts), so every node aborts at once naming it with that code; no node
 * activates the new epoch, every node keeps its share of the old one, which signs. With space freed
 * and node-3 restarted (its store refuses writes after a failed one until reopened), the next key
 * event commits.
 */
import { execFile, execFileSync } from 'node:child_process';
import {
  cpSync,
  existsSync,
  mkdirSync,
  readFileSync,
  readdirSync,
  renameSync,
  rmSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { Level } from 'level';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { NODE_BIN, ROOT, readProcesses, startProcess, stopProcess } from '../scripts/devnet-lib.ts';
import { type Devnet, createDevnet } from './helpers/devnet-process.ts';

const run = promisify(execFile);
const hex = (s: string) => Buffer.from(s, 'utf8').toString('hex');

describe('storage and HSM faults of a node process (real devnet, SoftHSM2)', () => {
  let d: Devnet;
  let keyId: string;
  let tmpfs: string | undefined;
  /** node-3's data dir while it lives on a tmpfs (the mid-session full-disk test). */
  let dataTmpfs: string | undefined;
  const nodeDir = (n: string) => join(d.dir, n);
  const spec = (n: string) => readProcesses(d.dir).find((p) => p.name === n)!;

  /** Runs node-<n>'s daemon with extra env; resolves with exit code and stderr (kills it after `ms`). */
  const startNode = async (n: string, env: Record<string, string>, ms = 20_000) => {
    const p = spec(n);
    try {
      await run(NODE_BIN, p.args, { cwd: ROOT, env: { ...process.env, ...p.env, ...env }, timeout: ms });
      return { code: 0, stderr: '' };
    } catch (e) {
      const err = e as { code?: number | string; stderr?: string; killed?: boolean };
      return { code: err.killed ? 'killed' : err.code, stderr: err.stderr ?? '' };
    }
  };
  /** A copy of node-3's data dir (node-3 stopped), for a destructive variant. */
  const copyData = (name: string) => {
    const dst = join(d.dir, `copy-${name}`);
    cpSync(join(nodeDir('node-3'), 'data'), dst, { recursive: true });
    return dst;
  };
  const sign = (msg: string) => d.api('POST', `/v1/keys/${keyId}/sign`, { message: hex(msg) });

  beforeAll(async () => {
    d = await createDevnet(3);
    await d.start();
    const k = await d.api('POST', '/v1/keys', { keySpec: 'FROST_ED25519', threshold: 2, alias: 'store' });
    expect(k.status, JSON.stringify(k.body)).toBe(201);
    keyId = k.body.keyId;
    await stopProcess(d.dir, 'node-3');
  }, 180_000);
  afterAll(async () => {
    if (tmpfs && existsSync(tmpfs)) execFileSync('umount', [tmpfs], { stdio: 'ignore' });
    if (dataTmpfs) {
      await stopProcess(d.dir, 'node-3');
      execFileSync('umount', [dataTmpfs], { stdio: 'ignore' });
    }
    await d?.cleanup();
  });

  it('wrong PIN: exit 1, SealerUnavailable, the PIN never printed (F-17)', async () => {
    const pinFile = join(d.dir, 'wrong-pin');
    writeFileSync(pinFile, 'wrong-pin-7319\n', { mode: 0o600 });
    const r = await startNode('node-3', { KMS_HSM_PIN_FILE: pinFile, KMS_DATA_DIR: copyData('pin') });
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/^node: SealerUnavailable: wrong PIN/m);
    expect(r.stderr).not.toContain('wrong-pin-7319');
    expect(r.stderr).not.toContain(readFileSync(join(nodeDir('node-3'), 'pin'), 'utf8').trim());
  });

  it('missing token and missing PKCS#11 library: exit 1, SealerUnavailable, no fallback (F-18)', async () => {
    const token = await startNode('node-3', {
      KMS_PKCS11_TOKEN: 'no-such-token',
      KMS_DATA_DIR: copyData('token'),
    });
    expect(token.code).toBe(1);
    expect(token.stderr).toMatch(/^node: SealerUnavailable: .*no-such-token/m);
    const lib = await startNode('node-3', {
      KMS_PKCS11_LIBRARY: '/nonexistent/libpkcs11.so',
      KMS_DATA_DIR: copyData('lib'),
    });
    expect(lib.code).toBe(1);
    expect(lib.stderr).toMatch(
      /^node: SealerUnavailable: PKCS#11 library not found: \/nonexistent\/libpkcs11.so/m,
    );
  });

  it('a second process on a running node’s data dir: exit 1, StoreLocked (F-16)', async () => {
    const r = await startNode('node-2', {});
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/^node: StoreLocked: /m);
    const s = await sign('node-2 still serves');
    expect(s.status, JSON.stringify(s.body)).toBe(200);
  });

  it('corrupt LevelDB files: exit 1, StorageError, never repaired silently (F-14)', async () => {
    const dir = copyData('corrupt');
    const manifest = readdirSync(dir).find((f) => f.startsWith('MANIFEST-'))!;
    const bytes = readFileSync(join(dir, manifest));
    for (let i = 0; i < bytes.length; i += 7) bytes[i] = bytes[i]! ^ 0xff;
    writeFileSync(join(dir, manifest), bytes);
    const r = await startNode('node-3', { KMS_DATA_DIR: dir });
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/^node: StorageError: /m);
    // Not repaired behind our back: the manifest is still the damaged one.
    expect(readFileSync(join(dir, manifest)).equals(bytes)).toBe(true);
  });

  it('full disk (tmpfs with a size limit): the node refuses to start or its writes fail, typed (I6, F-13)', async () => {
    tmpfs = join(d.dir, 'tmpfs');
    mkdirSync(tmpfs);
    try {
      execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=2m', 'tmpfs', tmpfs], { stdio: 'pipe' });
    } catch (e) {
      throw new Error(
        `full-disk test needs root to mount a tmpfs (mount -t tmpfs -o size=2m tmpfs DIR): ${String(e)}`,
      );
    }
    cpSync(join(nodeDir('node-3'), 'data'), join(tmpfs, 'data'), { recursive: true });
    try {
      execFileSync('dd', ['if=/dev/zero', `of=${join(tmpfs, 'fill')}`, 'bs=64k'], { stdio: 'ignore' });
    } catch {
      /* ENOSPC: the disk is full, as wanted */
    }
    const r = await startNode('node-3', { KMS_DATA_DIR: join(tmpfs, 'data') }, 15_000);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/^node: (StorageError|StoreLocked|AuditWriteFailed): /m);
    execFileSync('umount', [tmpfs]);
    tmpfs = undefined;
  });

  it('a sealed share copied into another node’s store does not open; signing excludes that node; restoring its own share heals it (F-19, T-04)', async () => {
    const shareKey = (epoch: number) => `${keyId}!${String(epoch).padStart(12, '0')}`;
    const readShare = async (dataDir: string) => {
      const db = new Level<string, Uint8Array>(dataDir, { keyEncoding: 'utf8', valueEncoding: 'view' });
      try {
        return await db
          .sublevel<string, Uint8Array>('shares', { keyEncoding: 'utf8', valueEncoding: 'view' })
          .get(shareKey(0));
      } finally {
        await db.close();
      }
    };
    const writeShare = async (dataDir: string, v: Uint8Array) => {
      const db = new Level<string, Uint8Array>(dataDir, { keyEncoding: 'utf8', valueEncoding: 'view' });
      try {
        await db
          .sublevel<string, Uint8Array>('shares', { keyEncoding: 'utf8', valueEncoding: 'view' })
          .put(shareKey(0), v);
      } finally {
        await db.close();
      }
    };
    // node-1's blob, read from a copy of its (running) store.
    const n1copy = join(d.dir, 'copy-node-1');
    cpSync(join(nodeDir('node-1'), 'data'), n1copy, { recursive: true });
    rmSync(join(n1copy, 'LOCK'), { force: true });
    const foreign = await readShare(n1copy);
    const own = await readShare(join(nodeDir('node-3'), 'data'));
    expect(foreign).toBeDefined();
    expect(own).toBeDefined();
    await writeShare(join(nodeDir('node-3'), 'data'), foreign!);
    startProcess(d.dir, spec('node-3'));
    try {
      await d.waitReachable(3);
      const named: string[] = [];
      for (let i = 0; i < 3; i++) {
        const s = await sign(`foreign blob ${i}`);
        expect(s.status, JSON.stringify(s.body)).toBe(200);
        expect(s.body.signers).not.toContain('node-3');
        for (const b of s.body.excluded) named.push(b.participant);
      }
      expect(named).toContain('node-3');
    } finally {
      await stopProcess(d.dir, 'node-3');
    }
    await writeShare(join(nodeDir('node-3'), 'data'), own!);
  });

  it('the untouched node-3 comes back and the key signs with every node', async () => {
    startProcess(d.dir, spec('node-3'));
    await d.waitReachable(3);
    const signers = new Set<string>();
    for (let i = 0; i < 3; i++) {
      const s = await sign(`healed ${i}`);
      expect(s.status, JSON.stringify(s.body)).toBe(200);
      expect(s.body.excluded).toEqual([]);
      for (const n of s.body.signers) signers.add(n);
    }
    expect(signers.has('node-3')).toBe(true);
  });

  it('the disk fills under a running node mid key event: every node aborts at once naming node-3, no new epoch, the old one signs; freed and restarted, the next event commits (I6, F-13)', async () => {
    // node-3's data dir moves onto a 16 MiB tmpfs (node-3 stopped meanwhile, then started on it).
    await stopProcess(d.dir, 'node-3');
    const data = join(nodeDir('node-3'), 'data');
    renameSync(data, `${data}.disk`);
    mkdirSync(data);
    try {
      execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=16m', 'tmpfs', data], { stdio: 'pipe' });
    } catch (e) {
      throw new Error(
        `this test needs root to mount a tmpfs (mount -t tmpfs -o size=16m tmpfs DIR): ${String(e)}`,
      );
    }
    dataTmpfs = data;
    cpSync(`${data}.disk`, data, { recursive: true });
    startProcess(d.dir, spec('node-3'));
    await d.waitReachable(3);
    const pad = await d.api('POST', '/v1/keys', { keySpec: 'FROST_ED25519', threshold: 2, alias: 'pad' });
    expect(pad.status, JSON.stringify(pad.body)).toBe(201);

    // Fill it.
    try {
      execFileSync('dd', ['if=/dev/zero', `of=${join(data, 'fill')}`, 'bs=64k'], { stdio: 'ignore' });
    } catch {
      /* ENOSPC: full, as wanted */
    }
    // A full tmpfs still takes writes into the last page of LevelDB's open log file. Spend that
    // room with small writes (a key's state on every member) until less than 1 KiB is left, so the
    // key event's first writes (session id, audit record, pending share) cannot all fit: node-3
    // fails before it could ever confirm the new epoch.
    const slack = () => {
      const logs = readdirSync(data)
        .filter((f) => /^\d+\.log$/.test(f))
        .sort();
      const size = statSync(join(data, logs.at(-1)!)).size;
      return (4096 - (size % 4096)) % 4096;
    };
    for (let i = 0; i < 24 && slack() >= 1024; i++) {
      const r = await d.api('POST', `/v1/keys/${pad.body.keyId}/${i % 2 === 0 ? 'disable' : 'enable'}`, {});
      if (r.status !== 200) break; // node-3's write failed already: its store refuses from here on
    }

    const t0 = performance.now();
    const failed = await d.api('POST', `/v1/keys/${keyId}/refresh`, {});
    // Ended by node-3's abort, long before the nodes' 30 s session deadline.
    expect(performance.now() - t0).toBeLessThan(30_000);
    expect(failed.status, JSON.stringify(failed.body)).toBeGreaterThanOrEqual(500);
    expect(
      failed.body.culprits.map(
        (b: { participant: string; reason: string }) => `${b.participant}/${b.reason}`,
      ),
    ).toEqual(['node-3/aborted']);
    // node-3's first write of the key event fails, and its signed abort carries the code to the API
    // answer. Nodes now audit each signed request before acting on it (issue 12), so that write is
    // its audit record of the refresh (AuditWriteFailed), or its store's (StorageError) when the
    // record still fit in the last page: both are this full disk, nothing else.
    const abortCode = (JSON.parse(failed.body.culprits[0].evidence) as { code: string }).code;
    expect(['AuditWriteFailed', 'StorageError']).toContain(abortCode);
    expect(failed.body.detail).toContain(`aborted by node-3 (${abortCode})`);
    expect((await d.api('GET', `/v1/keys/${keyId}`)).body.epoch).toBe(0);

    // Every node's store, read from a copy: epoch 0 active with its share, nothing of epoch 1.
    const held = async (n: string) => {
      const copy = join(d.dir, `held-${n}-${Date.now()}`);
      cpSync(join(nodeDir(n), 'data'), copy, { recursive: true, filter: (src) => !src.endsWith('/fill') });
      rmSync(join(copy, 'LOCK'), { force: true });
      const db = new Level<string, string>(copy, { keyEncoding: 'utf8', valueEncoding: 'utf8' });
      try {
        const raw = await db
          .sublevel<string, string>('keys', { keyEncoding: 'utf8', valueEncoding: 'utf8' })
          .get(keyId);
        const rec = JSON.parse(raw ?? '{}') as { activeEpoch?: number; pendingEpoch?: number };
        const shares: string[] = [];
        for await (const k of db
          .sublevel<string, Uint8Array>('shares', { keyEncoding: 'utf8', valueEncoding: 'view' })
          .keys({ gte: `${keyId}!`, lt: `${keyId}!~` }))
          shares.push(k);
        return { activeEpoch: rec.activeEpoch, pendingEpoch: rec.pendingEpoch, shares };
      } finally {
        await db.close();
        rmSync(copy, { recursive: true, force: true });
      }
    };
    for (const n of ['node-1', 'node-2', 'node-3']) {
      expect(await held(n), n).toEqual({
        activeEpoch: 0,
        pendingEpoch: undefined,
        shares: [`${keyId}!${'0'.padStart(12, '0')}`],
      });
    }
    for (let i = 0; i < 3; i++) {
      const s = await sign(`disk full ${i}`);
      expect(s.status, JSON.stringify(s.body)).toBe(200);
    }

    // Space freed; node-3 restarted (its store asks for it after a failed write): the event commits.
    rmSync(join(data, 'fill'));
    await stopProcess(d.dir, 'node-3');
    startProcess(d.dir, spec('node-3'));
    await d.waitReachable(3);
    const healed = await d.api('POST', `/v1/keys/${keyId}/refresh`, {});
    expect(healed.status, JSON.stringify(healed.body)).toBe(200);
    expect(healed.body.epoch).toBe(1);
    const signers = new Set<string>();
    for (let i = 0; i < 6 && !signers.has('node-3'); i++) {
      const s = await sign(`disk freed ${i}`);
      expect(s.status, JSON.stringify(s.body)).toBe(200);
      for (const n of s.body.signers) signers.add(n);
    }
    expect(signers.has('node-3')).toBe(true);
  }, 180_000);
});
