/**
 * SoftHSM2 tokens for tests: each call makes a fresh temp directory (or reuses `dir`, so several
 * nodes in one process can share one SOFTHSM2_CONF) with an initialized token and random PINs.
 * Fails with an install hint when SoftHSM2 is missing: tests never skip silently.
 *
 * One process uses one SoftHSM2 configuration at a time (see node/softhsm.ts): close every
 * Pkcs11Sealer of a directory before a test in the same file uses another directory.
 */
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  createSoftHsmToken,
  findSoftHsmLibrary,
  SOFTHSM_INSTALL_HINT,
  type SoftHsmToken,
} from '../../node/softhsm.ts';

export type TestToken = SoftHsmToken & { readonly pin: string; readonly soPin: string; readonly dir: string };

/** Throws a plain Error with the install hint if the library or softhsm2-util is missing. */
export function requireSoftHsm(): string {
  let lib: string;
  try {
    lib = findSoftHsmLibrary();
  } catch (e) {
    throw new Error(`These tests need SoftHSM2. ${(e as Error).message}`);
  }
  try {
    execFileSync('softhsm2-util', ['--version'], { stdio: 'ignore' });
  } catch {
    throw new Error(`These tests need softhsm2-util. ${SOFTHSM_INSTALL_HINT}`);
  }
  return lib;
}

export async function makeTokenDir(): Promise<string> {
  return mkdtemp(join(tmpdir(), 'softhsm-'));
}

export async function createTestToken(opts: { label?: string; dir?: string } = {}): Promise<TestToken> {
  requireSoftHsm();
  const dir = opts.dir ?? (await makeTokenDir());
  const pin = randomBytes(8).toString('hex');
  const soPin = randomBytes(8).toString('hex');
  const token = await createSoftHsmToken({ dir, label: opts.label ?? 'test-node', pin, soPin });
  return { ...token, pin, soPin, dir };
}

/** Several tokens (one per label) in one directory: one SOFTHSM2_CONF for a multi-node process. */
export async function createTestTokens(labels: readonly string[]): Promise<TestToken[]> {
  const dir = await makeTokenDir();
  const out: TestToken[] = [];
  for (const label of labels) out.push(await createTestToken({ label, dir }));
  return out;
}

export async function removeTokenDir(dir: string): Promise<void> {
  await rm(dir, { recursive: true, force: true });
}
