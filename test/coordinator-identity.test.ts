/**
 * The coordinator's libp2p identity is kept only sealed (review H-4, coordinator/identity-sealer.ts):
 * `init` writes a sealed file, a wrong passphrase or an altered file is refused, no passphrase is
 * refused with what to configure, and an identity key file of an older version (plaintext) is
 * sealed in place at start under the same peer id, saying so. Through the real entry point.
 */
import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, describe, expect, it } from 'vitest';
import {
  SEALED_IDENTITY_FORMAT,
  loadCoordinatorIdentity,
  sealIdentity,
  unsealIdentity,
} from '../coordinator/identity-sealer.ts';
import { generateIdentityKey, identityKeyToBytes, peerIdOf } from '../net/identity.ts';
import { NODE_BIN, ROOT } from '../scripts/devnet-lib.ts';

const run = promisify(execFile);
const dir = mkdtempSync(join(tmpdir(), 'tkms-coord-identity-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('coordinator identity sealing', () => {
  it('init writes a sealed identity (0600) whose peer id the next start finds again', async () => {
    writeFileSync(join(dir, 'pass'), 'correct horse battery staple\n', { mode: 0o600 });
    const cfg = join(dir, 'coordinator.json');
    writeFileSync(
      cfg,
      JSON.stringify({
        dataDir: join(dir, 'data'),
        cluster: {
          clusterFile: join(dir, 'cluster.json'),
          identityFile: join(dir, 'identity.sealed'),
          identityPassphraseFile: join(dir, 'pass'),
        },
      }),
    );
    const first = JSON.parse(
      (await run(NODE_BIN, ['coordinator/main.ts', 'init', '--config', cfg], { cwd: ROOT })).stdout,
    );
    const again = JSON.parse(
      (await run(NODE_BIN, ['coordinator/main.ts', 'init', '--config', cfg], { cwd: ROOT })).stdout,
    );
    expect(again.peerId).toBe(first.peerId);
    const file = join(dir, 'identity.sealed');
    expect(statSync(file).mode & 0o777).toBe(0o600);
    const text = readFileSync(file, 'utf8');
    expect(JSON.parse(text).format).toBe(SEALED_IDENTITY_FORMAT);
    const key = await unsealIdentity(text, 'correct horse battery staple');
    expect(peerIdOf(key)).toBe(first.peerId);
    // The private key's bytes are nowhere in the file.
    const raw = Buffer.from(identityKeyToBytes(key));
    expect(Buffer.from(text).includes(raw.subarray(raw.length - 32))).toBe(false);
    expect(text.includes(raw.subarray(raw.length - 32).toString('base64'))).toBe(false);
  });

  it('refuses a wrong passphrase and an altered file; never falls back', async () => {
    const key = await generateIdentityKey();
    const text = await sealIdentity(key, 'right', 10);
    await expect(unsealIdentity(text, 'wrong')).rejects.toMatchObject({ code: 'SealError' });
    const f = JSON.parse(text);
    const ct = Buffer.from(f.ciphertext, 'base64');
    ct[3] = ct[3]! ^ 1;
    await expect(
      unsealIdentity(JSON.stringify({ ...f, ciphertext: ct.toString('base64') }), 'right'),
    ).rejects.toThrow(/does not open/);
    await expect(unsealIdentity(JSON.stringify({ ...f, logN: 30 }), 'right')).rejects.toThrow(/malformed/);
    expect(peerIdOf(await unsealIdentity(text, 'right'))).toBe(peerIdOf(key));
  });

  it('without a passphrase it refuses to start and says what to configure', async () => {
    await expect(
      loadCoordinatorIdentity({ file: join(dir, 'none.sealed'), passphrase: undefined, create: true }),
    ).rejects.toThrow(/identityPassphraseFile/);
  });

  it('seals a plaintext identity file of an older version in place, same peer id, and says so', async () => {
    const key = await generateIdentityKey();
    const file = join(dir, 'identity.key');
    writeFileSync(file, identityKeyToBytes(key), { mode: 0o600 });
    const said: string[] = [];
    const loaded = await loadCoordinatorIdentity({
      file,
      passphrase: 'p',
      onMigrated: (f) => said.push(f),
    });
    expect(peerIdOf(loaded)).toBe(peerIdOf(key));
    expect(said).toEqual([file]);
    const text = readFileSync(file, 'utf8');
    expect(JSON.parse(text).format).toBe(SEALED_IDENTITY_FORMAT);
    expect(Buffer.from(text).includes(Buffer.from(identityKeyToBytes(key)))).toBe(false);
    // The next start opens it sealed, with nothing more to migrate.
    const again = await loadCoordinatorIdentity({ file, passphrase: 'p', onMigrated: (f) => said.push(f) });
    expect(peerIdOf(again)).toBe(peerIdOf(key));
    expect(said).toHaveLength(1);
  });
});
