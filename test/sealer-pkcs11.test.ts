import { readdirSync, renameSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import type * as P from 'pkcs11js';
import { afterEach, describe, expect, it } from 'vitest';
import { PinGuard } from '../node/pin-guard.ts';
import type { SealContext } from '../node/sealer.ts';
import { Pkcs11Sealer } from '../node/sealer-pkcs11.ts';
import { levelSealerKeyStore, SoftwareSealer } from '../node/sealer-software.ts';
import { InfraError } from '../protocol/errors.ts';
import {
  createTestToken,
  createTestTokens,
  removeTokenDir,
  requireSoftHsm,
  type TestToken,
} from './helpers/softhsm.ts';

const pkcs11js = createRequire(import.meta.url)('pkcs11js') as typeof P;

// Fails (never skips) with the install hint when SoftHSM2 is missing.
const LIB = requireSoftHsm();

const cleanups: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

async function token(label = 'node-1'): Promise<TestToken> {
  const t = await createTestToken({ label });
  cleanups.push(() => removeTokenDir(t.dir));
  return t;
}

async function open(t: TestToken, extra: { pin?: string; guard?: PinGuard } = {}): Promise<Pkcs11Sealer> {
  const s = await Pkcs11Sealer.open({
    library: t.library,
    tokenLabel: t.label,
    pin: extra.pin ?? t.pin,
    softhsmConf: t.confPath,
    guard: extra.guard ?? (await PinGuard.open()),
  });
  cleanups.push(() => s.close());
  return s;
}

/** A separate PKCS#11 session on the token, to inspect what the sealer created. */
function rawSession(t: TestToken): { p: P.PKCS11; s: P.Handle; done: () => void } {
  process.env['SOFTHSM2_CONF'] = t.confPath;
  const p = new pkcs11js.PKCS11();
  p.load(LIB);
  let initialized = false;
  try {
    p.C_Initialize();
    initialized = true;
  } catch (e) {
    if ((e as P.Pkcs11Error).code !== pkcs11js.CKR_CRYPTOKI_ALREADY_INITIALIZED) throw e;
  }
  const slot = p.C_GetSlotList(true).find((sl) => p.C_GetTokenInfo(sl).label.trimEnd() === t.label)!;
  const s = p.C_OpenSession(slot, pkcs11js.CKF_SERIAL_SESSION | pkcs11js.CKF_RW_SESSION);
  try {
    p.C_Login(s, pkcs11js.CKU_USER, t.pin);
  } catch (e) {
    if ((e as P.Pkcs11Error).code !== pkcs11js.CKR_USER_ALREADY_LOGGED_IN) throw e;
  }
  return {
    p,
    s,
    done: () => {
      p.C_CloseSession(s);
      if (initialized) p.C_Finalize();
    },
  };
}

function findByLabel(p: P.PKCS11, s: P.Handle, label: string): P.Handle[] {
  p.C_FindObjectsInit(s, [{ type: pkcs11js.CKA_LABEL, value: label }]);
  const h = p.C_FindObjects(s, 10);
  p.C_FindObjectsFinal(s);
  return h;
}

const ctx: SealContext = { scope: 'key-1/1', nodeId: 'node-1', purpose: 'share' };
const secret = new Uint8Array(32).map((_, i) => 200 - i);

async function errCode(p: Promise<unknown>): Promise<string> {
  const e = await p.then(
    () => undefined,
    (x: unknown) => x,
  );
  expect(e).toBeInstanceOf(InfraError);
  return (e as InfraError).code;
}

// Seal/unseal, AAD binding, tampering, destroyScope, listScopes, reopen: test/sealer-contract.test.ts.
describe('Pkcs11Sealer on SoftHSM2', () => {
  it('creates sensitive, never-extractable AES-256 keys whose value cannot be read', async () => {
    const t = await token();
    const s = await open(t);
    await s.seal(ctx, secret);
    const raw = rawSession(t);
    try {
      const [h, ...more] = findByLabel(raw.p, raw.s, ctx.scope);
      expect(more).toEqual([]);
      const types = [
        pkcs11js.CKA_SENSITIVE,
        pkcs11js.CKA_ALWAYS_SENSITIVE,
        pkcs11js.CKA_EXTRACTABLE,
        pkcs11js.CKA_NEVER_EXTRACTABLE,
        pkcs11js.CKA_TOKEN,
        pkcs11js.CKA_PRIVATE,
      ];
      const attrs = raw.p.C_GetAttributeValue(
        raw.s,
        h!,
        types.map((type) => ({ type })),
      );
      expect(attrs.map((a) => (a.value as Buffer)[0])).toEqual([1, 1, 0, 1, 1, 1]);
      const len = raw.p.C_GetAttributeValue(raw.s, h!, [{ type: pkcs11js.CKA_VALUE_LEN }]);
      expect((len[0]!.value as Buffer).readUInt32LE(0)).toBe(32);
      let code: number | undefined;
      try {
        raw.p.C_GetAttributeValue(raw.s, h!, [{ type: pkcs11js.CKA_VALUE }]);
      } catch (e) {
        code = (e as P.Pkcs11Error).code;
      }
      expect(code).toBe(pkcs11js.CKR_ATTRIBUTE_SENSITIVE);
    } finally {
      raw.done();
    }
  });

  it('refuses to run when the token holds an extractable key', async () => {
    const t = await token();
    const raw = rawSession(t);
    try {
      raw.p.C_GenerateKey(raw.s, { mechanism: pkcs11js.CKM_AES_KEY_GEN }, [
        { type: pkcs11js.CKA_CLASS, value: pkcs11js.CKO_SECRET_KEY },
        { type: pkcs11js.CKA_KEY_TYPE, value: pkcs11js.CKK_AES },
        { type: pkcs11js.CKA_VALUE_LEN, value: 32 },
        { type: pkcs11js.CKA_LABEL, value: 'key-9/1' },
        { type: pkcs11js.CKA_TOKEN, value: true },
        { type: pkcs11js.CKA_PRIVATE, value: true },
        { type: pkcs11js.CKA_SENSITIVE, value: false },
        { type: pkcs11js.CKA_EXTRACTABLE, value: true },
      ]);
    } finally {
      raw.done();
    }
    const e = await open(t).catch((x: unknown) => x);
    expect(e).toBeInstanceOf(InfraError);
    expect((e as InfraError).code).toBe('SealerUnavailable');
    expect((e as Error).message).toMatch(/key-9\/1.*not compliant.*CKA_SENSITIVE/);
    expect((e as Error).message).toMatch(/CKA_NEVER_EXTRACTABLE/);
    // The refused open released the library: a compliant token in another directory opens now.
    const t2 = await token('node-2');
    await open(t2);
  });

  it('a blob copied to another node (another token) does not open there', async () => {
    const [a, b] = await createTestTokens(['node-a', 'node-b']);
    cleanups.push(() => removeTokenDir(a!.dir));
    const sa = await open(a!);
    const sb = await open(b!);
    const blob = await sa.seal(ctx, secret);
    expect(await errCode(sb.unseal(ctx, blob))).toBe('SealError'); // no key for the scope there
    await sb.seal(ctx, secret); // now b has its own key for the same scope label
    expect(await errCode(sb.unseal(ctx, blob))).toBe('SealError');
    expect(await sa.unseal(ctx, blob)).toEqual(secret);
  });

  it('a software-sealed blob is refused as another backend', async () => {
    const { Level } = await import('level');
    const { mkdtemp, rm } = await import('node:fs/promises');
    const { tmpdir } = await import('node:os');
    const dir = await mkdtemp(`${tmpdir()}/sw-`);
    const db = new Level(dir);
    cleanups.push(async () => {
      await db.close();
      await rm(dir, { recursive: true, force: true });
    });
    const sw = await SoftwareSealer.open({
      passphrase: 'x',
      keyStore: levelSealerKeyStore(db),
      scryptLogN: 10,
    });
    const swBlob = await sw.seal(ctx, secret);
    await sw.close();
    const t = await token();
    const s = await open(t);
    await s.seal(ctx, secret);
    await expect(s.unseal(ctx, swBlob)).rejects.toThrow(/another sealer backend/);
  });

  it('wrong PIN -> SealerUnavailable without the PIN in the error; backoff after 3 failures', async () => {
    const t = await token();
    let now = 5_000_000;
    const guard = await PinGuard.open({ maxAttempts: 3, baseDelayMs: 60_000, now: () => now });
    const wrongPin = 'not-the-pin-1234';
    for (let i = 0; i < 3; i++) {
      const e = await open(t, { pin: wrongPin, guard }).catch((x: unknown) => x);
      expect(e).toBeInstanceOf(InfraError);
      expect((e as InfraError).code).toBe('SealerUnavailable');
      expect((e as Error).message).toMatch(/wrong PIN/);
      const dump = JSON.stringify({
        m: (e as Error).message,
        s: (e as Error).stack,
        d: (e as InfraError).details,
      });
      expect(dump).not.toContain(wrongPin);
      expect(dump).not.toContain(t.pin);
    }
    expect(guard.state().failures).toBe(3);
    // Locked out: even the right PIN is refused without reaching the token.
    await expect(open(t, { guard })).rejects.toThrow(/too many failed unlock attempts.*60 s/);
    now += 60_001;
    // Backoff doubles with every further failure.
    await expect(open(t, { pin: wrongPin, guard })).rejects.toThrow(/wrong PIN/);
    await expect(open(t, { guard })).rejects.toThrow(/try again in 120 s/);
    now += 120_001;
    const s = await open(t, { guard });
    expect(guard.state()).toEqual({ failures: 0, lockedUntil: 0 });
    expect(await s.unseal(ctx, await s.seal(ctx, secret))).toEqual(secret);
  });

  it('a missing token or library is SealerUnavailable with a clear message', async () => {
    const t = await token();
    await expect(
      Pkcs11Sealer.open({
        library: t.library,
        tokenLabel: 'no-such-token',
        pin: t.pin,
        softhsmConf: t.confPath,
      }),
    ).rejects.toThrow(/token 'no-such-token' not found/);
    const e = await Pkcs11Sealer.open({
      library: '/nonexistent/softhsm/libsofthsm2.so',
      tokenLabel: t.label,
      pin: t.pin,
    }).catch((x: unknown) => x);
    expect((e as InfraError).code).toBe('SealerUnavailable');
    expect((e as Error).message).toMatch(/apt-get install -y softhsm2/);
    // Neither failure left the library initialized with this configuration.
    const s = await open(t);
    expect(await s.unseal(ctx, await s.seal(ctx, secret))).toEqual(secret);
  });

  it('serializes concurrent calls on the one session', async () => {
    const t = await token();
    const s = await open(t);
    const ctxs = Array.from({ length: 6 }, (_, i) => ({ ...ctx, scope: `key-${i % 3}/1` }));
    const blobs = await Promise.all(
      ctxs.map((c, i) =>
        s.seal(
          c,
          secret.map((b) => b ^ i),
        ),
      ),
    );
    const opened = await Promise.all(blobs.map((b, i) => s.unseal(ctxs[i]!, b)));
    opened.forEach((pt, i) => {
      expect(pt).toEqual(secret.map((b) => b ^ i));
    });
    expect((await s.listScopes()).sort()).toEqual(['key-0/1', 'key-1/1', 'key-2/1']);
  });

  it('a destroyScope while the token is gone fails SealerUnavailable and the key stays; back, it is destroyed (L-3)', async () => {
    const t = await token();
    const s = await Pkcs11Sealer.open({
      library: t.library,
      tokenLabel: t.label,
      pin: t.pin,
      softhsmConf: t.confPath,
      guard: await PinGuard.open(),
      reconnect: { delayMs: 10, pauseMs: 10, maxPauseMs: 10 },
    });
    cleanups.push(() => s.close());
    await s.seal(ctx, secret);
    // The token's own directory taken away (SoftHSM2 then answers every search with nothing).
    const [dir] = readdirSync(t.tokenDir);
    renameSync(join(t.tokenDir, dir!), join(t.dir, 'away'));
    try {
      expect(await errCode(s.destroyScope(ctx.scope))).toBe('SealerUnavailable');
    } finally {
      renameSync(join(t.dir, 'away'), join(t.tokenDir, dir!));
    }
    // Back: the sealer re-opens its session (after its pause) and finds the key still there.
    let scopes: string[] = [];
    for (let i = 0; i < 50 && scopes.length === 0; i++) {
      await new Promise((r) => setTimeout(r, 20));
      scopes = await s.listScopes().catch(() => []);
    }
    expect(scopes).toEqual([ctx.scope]);
    await s.destroyScope(ctx.scope);
    expect(await s.listScopes()).toEqual([]);
  });
});
