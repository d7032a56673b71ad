/**
 * Lifecycle changes are reliable (security review M-2, L-3), on real node daemons with SoftHSM2
 * tokens behind the real coordinator:
 * - a node down while the shares are destroyed keeps the key PendingDeletion (never reported
 *   Destroyed while a member still holds its share: the review's PoC G); when it is back the sweeper
 *   destroys it there too, and only then is the key Destroyed;
 * - a disable that a member missed is an error naming it, and the key keeps its state; the reconcile
 *   pass cannot undo it on the members that applied it (nodes change a state only on a principal's
 *   signature: issue 12), it reports them; the client's retried signed change completes it;
 * - the nodes check the state table themselves (no PendingDeletion -> Enabled without a cancel, no
 *   key event on a Disabled key, destroy only after schedule-deletion, destroy idempotent);
 * - an HSM scope whose destruction failed (the token gone while the node ran) is retried once it is
 *   back, and the start-up sweep removes a leftover one.
 */
import { readFileSync, readdirSync, renameSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import type * as P from 'pkcs11js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { isKmsError } from '../protocol/errors.ts';
import { type StateChange, stateChangeTo } from '../protocol/key-states.ts';
import { type TestCoordinator, startTestCoordinator } from './helpers/coordinator.ts';
import type { TestToken } from './helpers/softhsm.ts';

const pkcs11js = createRequire(import.meta.url)('pkcs11js') as typeof P;
const DAY = 24 * 3600 * 1000;
const MEMBERS = ['node-1', 'node-2', 'node-3'];

let c: TestCoordinator;
beforeAll(async () => {
  c = await startTestCoordinator({ nodes: 3 });
}, 120_000);
afterAll(async () => {
  await c?.stop();
});

async function createKey(): Promise<{ keyId: string; publicKey: string }> {
  const r = await c.call('POST', '/v1/keys', {
    keySpec: 'FROST_ED25519',
    threshold: 2,
    participants: MEMBERS,
  });
  expect(r.status, r.text).toBe(201);
  return r.body;
}

/** The node's own record of a key (status RPC), or undefined when it holds none. */
async function onNode(
  node: string,
  keyId: string,
): Promise<{ state: string; activeEpoch?: number } | undefined> {
  const page = await c.rpc(node, { op: 'status', after: keyId.slice(0, -1), limit: 10 });
  return (page.keys as { keyId: string; state: string; activeEpoch?: number }[]).find(
    (k) => k.keyId === keyId,
  );
}

async function auditOf(keyId: string): Promise<Record<string, any>[]> {
  const r = await c.call('GET', `/v1/audit?keyId=${keyId}&limit=1000`);
  return r.body.records.map((x: { entry: Record<string, any> }) => x.entry);
}

/** The code a node answers to one RPC (undefined when it accepts it). */
async function refusal(
  node: string,
  req: Parameters<TestCoordinator['rpc']>[1],
): Promise<string | undefined> {
  return c.rpc(node, req).then(
    () => undefined,
    (e: unknown) => (isKmsError(e) ? e.code : String(e)),
  );
}

/**
 * A raw PKCS#11 session on a node's token, from this process (where the node's sealer has the
 * module loaded already), to look at and act on the HSM as an operator or a fault would.
 */
function withToken<T>(t: TestToken, fn: (p: P.PKCS11, s: P.Handle, slot: P.Handle) => T): T {
  const p = new pkcs11js.PKCS11();
  p.load(t.library);
  try {
    p.C_Initialize();
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
  try {
    return fn(p, s, slot);
  } finally {
    try {
      p.C_CloseSession(s);
    } catch {
      // closed by fn (C_CloseAllSessions)
    }
  }
}

/** The token's own directory inside the fixture's shared SoftHSM2 token directory. */
function tokenDirOf(t: TestToken): string {
  const mine = readdirSync(t.tokenDir).filter((d) =>
    readFileSync(join(t.tokenDir, d, 'token.object')).includes(Buffer.from(t.label)),
  );
  expect(mine).toHaveLength(1);
  return join(t.tokenDir, mine[0]!);
}

function scopeKeys(t: TestToken, scope: string): number {
  return withToken(t, (p, s) => {
    p.C_FindObjectsInit(s, [
      { type: pkcs11js.CKA_CLASS, value: pkcs11js.CKO_SECRET_KEY },
      { type: pkcs11js.CKA_LABEL, value: scope },
    ]);
    const found = p.C_FindObjects(s, 10);
    p.C_FindObjectsFinal(s);
    return found.length;
  });
}

describe('deletion with a member down (M-2, PoC G)', () => {
  it('the key stays PendingDeletion and the node keeps its share until it is back; then Destroyed everywhere', async () => {
    const k = await createKey();
    const s = await c.call('POST', `/v1/keys/${k.keyId}/schedule-deletion`, { pendingWindowDays: 7 });
    expect(s.status, s.text).toBe(200);
    await c.tc.stopNode('node-3');
    c.clock.t += 8 * DAY;
    expect(await c.sweeper.sweep()).not.toContain(k.keyId);
    expect((await c.call('GET', `/v1/keys/${k.keyId}`)).body.state).toBe('PendingDeletion');
    expect(await onNode('node-1', k.keyId)).toMatchObject({ state: 'Destroyed' });
    const failed = (await auditOf(k.keyId)).find((e) => e.action === 'destroy' && e.outcome === 'failed');
    expect(failed).toMatchObject({ missed: ['node-3'] });

    await c.tc.startNode('node-3');
    // node-3 still holds its share: the key was not reported Destroyed while it did.
    expect(await onNode('node-3', k.keyId)).toEqual({
      keyId: k.keyId,
      state: 'PendingDeletion',
      activeEpoch: 0,
    });
    expect(await c.sweeper.sweep()).toContain(k.keyId);
    expect((await c.call('GET', `/v1/keys/${k.keyId}`)).body.state).toBe('Destroyed');
    expect(await c.keyStates(k.keyId)).toEqual({
      'node-1': 'Destroyed',
      'node-2': 'Destroyed',
      'node-3': 'Destroyed',
    });
    expect(scopeKeys(c.tc.tokens.get('node-3')!, `${k.keyId}/0`)).toBe(0);
    const ok = (await auditOf(k.keyId)).find((e) => e.action === 'destroy' && e.outcome === 'ok');
    expect(ok?.nodes.find((n: { node: string }) => n.node === 'node-3')).toMatchObject({
      ok: true,
      epochs: [0],
    });
  }, 60_000);
});

describe('a state change a member missed (M-2)', () => {
  it('disable with node-2 down: error naming node-2, key not Disabled; node back: reconciled', async () => {
    const k = await createKey();
    await c.tc.stopNode('node-2');
    const r = await c.call('POST', `/v1/keys/${k.keyId}/disable`);
    expect(r.status).toBe(503);
    expect(r.body.code).toBe('QuorumUnavailable');
    expect(r.body.detail).toContain('node-2');
    expect(r.body.culprits).toEqual([{ participant: 'node-2', reason: 'unresponsive' }]);
    expect((await c.call('GET', `/v1/keys/${k.keyId}`)).body.state).toBe('Enabled');

    await c.tc.startNode('node-2');
    // node-1 and node-3 applied the disable; the record says Enabled. The reconcile pass has no
    // principal's signature to re-enable them with: the nodes refuse it, and it reports them.
    expect(await c.keyStates(k.keyId)).toEqual({
      'node-1': 'Disabled',
      'node-2': 'Enabled',
      'node-3': 'Disabled',
    });
    const pass = await c.sweeper.reconcile();
    expect(pass.unreachable).toEqual([]);
    expect(pass.fixed.filter((f) => f.keyId === k.keyId).sort((a, b) => (a.node < b.node ? -1 : 1))).toEqual([
      { node: 'node-1', keyId: k.keyId, from: 'Disabled', to: 'Enabled', ok: false },
      { node: 'node-3', keyId: k.keyId, from: 'Disabled', to: 'Enabled', ok: false },
    ]);
    expect(await c.keyStates(k.keyId)).toEqual({
      'node-1': 'Disabled',
      'node-2': 'Enabled',
      'node-3': 'Disabled',
    });
    const failed = (await auditOf(k.keyId)).filter((e) => e.action === 'reconcile' && e.outcome === 'failed');
    expect(failed.map((e) => [e.node, e.code]).sort()).toEqual([
      ['node-1', 'Unauthorized'],
      ['node-3', 'Unauthorized'],
    ]);

    // With every member up the client's retried (signed) disable goes through, on every member.
    expect((await c.call('POST', `/v1/keys/${k.keyId}/disable`)).body.state).toBe('Disabled');
    expect(await c.keyStates(k.keyId)).toEqual({
      'node-1': 'Disabled',
      'node-2': 'Disabled',
      'node-3': 'Disabled',
    });
  }, 60_000);
});

describe('the nodes enforce the state table themselves', () => {
  it('no PendingDeletion -> Enabled without cancel, no refresh on a Disabled key, destroy only after scheduling, idempotent', async () => {
    // A key the coordinator has no record of, so only the nodes decide (the cluster is driven
    // directly, each request signed by the admin as a client would: the nodes check the table
    // only for a request they may act on).
    const key = await c.cluster.createKey({
      keyId: 'table-check',
      keySpec: 'FROST_ED25519',
      threshold: 2,
      participants: MEMBERS,
      auth: c.authFor('POST', '/v1/keys', { keySpec: 'FROST_ED25519', threshold: 2, participants: MEMBERS }),
    });
    const PATHS: Record<StateChange, string> = {
      disable: 'disable',
      enable: 'enable',
      scheduleDeletion: 'schedule-deletion',
      cancelDeletion: 'cancel-deletion',
    };
    const set = (state: 'Enabled' | 'Disabled' | 'PendingDeletion', operation?: StateChange) => {
      const op = operation ?? stateChangeTo(state);
      return {
        op: 'set-state',
        keyId: key.keyId,
        state,
        ...(operation ? { operation } : {}),
        auth: c.authFor('POST', `/v1/keys/${key.keyId}/${PATHS[op]}`),
      } as const;
    };
    expect(await refusal('node-1', { op: 'destroy', keyId: key.keyId })).toBe('InvalidKeyState');
    expect(await refusal('node-1', set('PendingDeletion', 'cancelDeletion'))).toBe('InvalidKeyState');
    expect(await refusal('node-1', set('PendingDeletion'))).toBeUndefined();
    expect(await refusal('node-1', set('PendingDeletion'))).toBeUndefined(); // already there: harmless
    expect(await refusal('node-1', set('Enabled'))).toBe('InvalidKeyState');
    expect(await refusal('node-1', set('Enabled', 'cancelDeletion'))).toBe('InvalidKeyState');
    expect(await refusal('node-1', set('Disabled'))).toBe('InvalidKeyState');
    expect(await refusal('node-1', set('Disabled', 'cancelDeletion'))).toBeUndefined();
    expect(await onNode('node-1', key.keyId)).toMatchObject({ state: 'Disabled' });

    // Every member Disabled: the nodes refuse the refresh itself; the epoch stays.
    for (const n of ['node-2', 'node-3']) expect(await refusal(n, set('Disabled'))).toBeUndefined();
    const err = await c.cluster
      .refresh({ key, auth: c.authFor('POST', `/v1/keys/${key.keyId}/refresh`) })
      .catch((e: unknown) => e);
    expect(isKmsError(err)).toBe(true);
    expect((err as Error).message).toContain('refresh is not allowed while key table-check is Disabled');
    for (const n of MEMBERS)
      expect(await onNode(n, key.keyId)).toMatchObject({ state: 'Disabled', activeEpoch: 0 });

    // Destroy only after the signed schedule-deletion's window, on the node's own clock; then it
    // reports what it destroyed; a second destroy is a harmless no-op.
    const schedule = set('PendingDeletion', 'scheduleDeletion');
    for (const n of MEMBERS) expect(await refusal(n, schedule)).toBeUndefined();
    expect(await refusal('node-1', { op: 'destroy', keyId: key.keyId })).toBe('PolicyDenied');
    c.clock.t += 31 * DAY;
    expect(await c.rpc('node-1', { op: 'destroy', keyId: key.keyId })).toEqual({
      ok: true,
      epochs: [0],
      scopes: [`${key.keyId}/0`],
      pendingScopes: [],
    });
    expect(await c.rpc('node-1', { op: 'destroy', keyId: key.keyId })).toEqual({
      ok: true,
      already: true,
      epochs: [],
      scopes: [],
      pendingScopes: [],
    });
    expect(await refusal('node-1', set('Disabled', 'cancelDeletion'))).toBe('InvalidKeyState');
    const outcomes = await c.cluster.destroyKey({ keyId: key.keyId });
    expect(outcomes.every((o) => o.ok)).toBe(true);
    expect(await c.keyStates(key.keyId)).toEqual({
      'node-1': 'Destroyed',
      'node-2': 'Destroyed',
      'node-3': 'Destroyed',
    });
  }, 60_000);
});

describe('HSM scopes are destroyed for sure (L-3)', () => {
  it('the start-up sweep removes a leftover scope; a destroyScope that failed is retried', async () => {
    const k = await createKey();
    expect((await c.call('POST', `/v1/keys/${k.keyId}/refresh`)).status).toBe(200);
    const t1 = c.tc.tokens.get('node-1')!;
    expect(scopeKeys(t1, `${k.keyId}/0`)).toBe(0);
    expect(scopeKeys(t1, `${k.keyId}/1`)).toBe(1);

    // A key of the old epoch left on the token (what a crash between the epoch switch and the HSM
    // destroy leaves behind): a compliant AES key labelled with the scope.
    withToken(t1, (p, s) =>
      p.C_GenerateKey(s, { mechanism: pkcs11js.CKM_AES_KEY_GEN }, [
        { type: pkcs11js.CKA_CLASS, value: pkcs11js.CKO_SECRET_KEY },
        { type: pkcs11js.CKA_KEY_TYPE, value: pkcs11js.CKK_AES },
        { type: pkcs11js.CKA_VALUE_LEN, value: 32 },
        { type: pkcs11js.CKA_LABEL, value: `${k.keyId}/0` },
        { type: pkcs11js.CKA_TOKEN, value: true },
        { type: pkcs11js.CKA_PRIVATE, value: true },
        { type: pkcs11js.CKA_SENSITIVE, value: true },
        { type: pkcs11js.CKA_EXTRACTABLE, value: false },
      ]),
    );
    expect(scopeKeys(t1, `${k.keyId}/0`)).toBe(1);
    await c.restartNode('node-1');
    expect(scopeKeys(t1, `${k.keyId}/0`)).toBe(0);
    expect(scopeKeys(t1, `${k.keyId}/1`)).toBe(1);

    // node-1's HSM token goes away while it runs (its SoftHSM2 directory taken away: F-18). A lost
    // session alone no longer does it (the sealer re-opens one: node/sealer-pkcs11.ts), but with no
    // token to re-open, its destroy of the HSM key fails; the share record goes, the scope is owed.
    expect(
      (await c.call('POST', `/v1/keys/${k.keyId}/schedule-deletion`, { pendingWindowDays: 7 })).status,
    ).toBe(200);
    const token = tokenDirOf(t1);
    const away = join(t1.dir, 'node-1-token-away');
    renameSync(token, away);
    c.clock.t += 8 * DAY;
    try {
      expect(await c.sweeper.sweep()).toContain(k.keyId);
    } finally {
      renameSync(away, token);
    }
    const ok = (await auditOf(k.keyId)).find((e) => e.action === 'destroy' && e.outcome === 'ok');
    expect(ok?.nodes.find((n: { node: string }) => n.node === 'node-1')).toMatchObject({
      ok: true,
      epochs: [1],
      pendingScopes: [`${k.keyId}/1`],
    });
    // With the token back, the running node-1 re-opens its HSM session by itself (its reconnect
    // re-initializes the module, so SoftHSM2 reads the token again): a new key commits on it.
    let created = 0;
    for (let i = 0; i < 20 && created !== 201; i++) {
      if (i > 0) await new Promise((r) => setTimeout(r, 500));
      created = (
        await c.call('POST', '/v1/keys', { keySpec: 'FROST_ED25519', threshold: 2, participants: MEMBERS })
      ).status;
    }
    expect(created).toBe(201);
    // The HSM key is still owed (nothing destroyed it meanwhile); the node retries it at restart.
    expect(scopeKeys(t1, `${k.keyId}/1`)).toBe(1);
    await c.restartNode('node-1');
    expect(scopeKeys(t1, `${k.keyId}/1`)).toBe(0);
    // Nothing is owed any more: a repeated destroy reports no pending scope.
    expect(await c.rpc('node-1', { op: 'destroy', keyId: k.keyId })).toMatchObject({
      already: true,
      pendingScopes: [],
    });
  }, 60_000);
});
