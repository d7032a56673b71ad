/**
 * The node's binding of a client-signed request to the operation it is asked to perform
 * (node/request-binding.ts, used by node/request-guard.ts): a table of RPC × signed request, each
 * mismatching body field, path, method or query refused (Unauthorized), the matching ones bound with
 * the facts the policy needs. Then the node audit page checker (net/node-audit-head.ts) against
 * edited, dropped, reordered and foreign-signed records.
 */
import { describe, expect, it } from 'vitest';
import { auditHash, GENESIS_HASH, type AuditRecord } from '../common/audit-log.ts';
import { generateIdentityKey, identitySigner, peerIdOf } from '../net/identity.ts';
import { AUDIT_HEAD_EVENT, signAuditHead, verifyNodeAuditPage } from '../net/node-audit-head.ts';
import type { SessionSpec } from '../net/rpc.ts';
import { bindRequest, type GuardedRequest } from '../node/request-binding.ts';

const K = '0b4f6a5e-1f8e-4b59-9a53-2f6f0c0d4e11';
const OTHER = '7d0c3c55-5b8d-4a70-8f84-4a4e43a3f3b2';
const NODES = ['node-1', 'node-2', 'node-3'];
const post = (path: string, body?: unknown, o: { method?: string; query?: string; raw?: string } = {}) => ({
  method: o.method ?? 'POST',
  path,
  query: o.query ?? '',
  body: new TextEncoder().encode(o.raw ?? (body === undefined ? '' : JSON.stringify(body))),
});
const session = (over: Partial<SessionSpec>): SessionSpec => ({
  kind: 'dkg',
  sessionId: 's1',
  keyId: K,
  keySpec: 'FROST_ED25519',
  epoch: 0,
  threshold: 2,
  participants: NODES,
  ...over,
});
const held = { threshold: 2, participants: NODES };
const reshare = (over: Partial<SessionSpec> = {}): GuardedRequest => ({
  rpc: 'session',
  session: session({
    kind: 'reshare',
    epoch: 1,
    oldEpoch: 0,
    oldThreshold: 2,
    oldParticipants: NODES,
    dealers: NODES,
    ...over,
  }),
  held,
});

type Row = [name: string, g: GuardedRequest, req: ReturnType<typeof post>, why: RegExp];

const sign: GuardedRequest = { rpc: 'sign-commit', keyId: K };
const dkg: GuardedRequest = { rpc: 'session', session: session({}) };
const refresh: GuardedRequest = { rpc: 'session', session: session({ kind: 'refresh', epoch: 1 }), held };
const repair: GuardedRequest = {
  rpc: 'session',
  session: session({ kind: 'repair', target: 'node-2' }),
  held,
};
const disable: GuardedRequest = { rpc: 'set-state', keyId: K, change: 'disable' };
const schedule: GuardedRequest = { rpc: 'set-state', keyId: K, change: 'scheduleDeletion' };

const refused: Row[] = [
  // sign-commit
  ['sign: another key in the path', sign, post(`/v1/keys/${OTHER}/sign`, { message: '00' }), /key/],
  ['sign: another operation', sign, post(`/v1/keys/${K}/refresh`, { message: '00' }), /operation/],
  ['sign: GET', sign, post(`/v1/keys/${K}/sign`, { message: '00' }, { method: 'GET' }), /method/],
  ['sign: a query', sign, post(`/v1/keys/${K}/sign`, { message: '00' }, { query: '?x=1' }), /query/],
  ['sign: message not hex', sign, post(`/v1/keys/${K}/sign`, { message: 'zz' }), /API accepts/],
  ['sign: odd-length hex', sign, post(`/v1/keys/${K}/sign`, { message: 'abc' }), /API accepts/],
  ['sign: no message', sign, post(`/v1/keys/${K}/sign`, {}), /API accepts/],
  ['sign: unknown field', sign, post(`/v1/keys/${K}/sign`, { message: '00', to: 'x' }), /API accepts/],
  ['sign: body not JSON', sign, post(`/v1/keys/${K}/sign`, undefined, { raw: '{"message":' }), /not JSON/],
  ['sign: alias path', sign, post('/v1/keys/my-alias/sign', { message: '00' }), /key/],
  // session dkg
  ['dkg: another path', dkg, post(`/v1/keys/${K}/refresh`, {}), /POST \/v1\/keys/],
  [
    'dkg: another key spec',
    dkg,
    post('/v1/keys', { keySpec: 'FROST_SECP256K1_TR', threshold: 2 }),
    /key spec/,
  ],
  ['dkg: another threshold', dkg, post('/v1/keys', { keySpec: 'FROST_ED25519', threshold: 3 }), /threshold/],
  [
    'dkg: another committee',
    dkg,
    post('/v1/keys', {
      keySpec: 'FROST_ED25519',
      threshold: 2,
      participants: ['node-1', 'node-2', 'node-4'],
    }),
    /committee/,
  ],
  [
    'dkg: another committee size',
    dkg,
    post('/v1/keys', { keySpec: 'FROST_ED25519', threshold: 2, participants: 4 }),
    /committee of 4/,
  ],
  [
    'dkg: threshold below the API minimum',
    dkg,
    post('/v1/keys', { keySpec: 'FROST_ED25519', threshold: 1 }),
    /API accepts/,
  ],
  [
    'dkg: unknown field',
    dkg,
    post('/v1/keys', { keySpec: 'FROST_ED25519', threshold: 2, owner: 'x' }),
    /API accepts/,
  ],
  // session refresh
  ['refresh: another key', refresh, post(`/v1/keys/${OTHER}/refresh`, {}), /key/],
  ['refresh: a body', refresh, post(`/v1/keys/${K}/refresh`, { threshold: 2 }), /API accepts/],
  ['refresh: signed as reshare', refresh, post(`/v1/keys/${K}/reshare`, {}), /operation/],
  [
    'refresh: changes the threshold',
    { ...refresh, held: { threshold: 3, participants: NODES } } as GuardedRequest,
    post(`/v1/keys/${K}/refresh`),
    /changes neither/,
  ],
  [
    'refresh: changes the committee',
    { ...refresh, held: { threshold: 2, participants: ['node-1', 'node-2', 'node-4'] } } as GuardedRequest,
    post(`/v1/keys/${K}/refresh`),
    /changes neither/,
  ],
  [
    'refresh: a key this node does not hold',
    { rpc: 'session', session: session({ kind: 'refresh', epoch: 1 }) },
    post(`/v1/keys/${K}/refresh`),
    /does not hold/,
  ],
  // session reshare
  ['reshare: another key', reshare(), post(`/v1/keys/${OTHER}/reshare`, {}), /key/],
  [
    'reshare: another threshold',
    reshare({ threshold: 2 }),
    post(`/v1/keys/${K}/reshare`, { threshold: 3 }),
    /threshold 3/,
  ],
  [
    'reshare: default threshold is the held one',
    reshare({ threshold: 3 }),
    post(`/v1/keys/${K}/reshare`, {}),
    /threshold 2, not 3/,
  ],
  [
    'reshare: another committee',
    reshare({ participants: ['node-1', 'node-2'] }),
    post(`/v1/keys/${K}/reshare`, { participants: ['node-1', 'node-3'] }),
    /committee/,
  ],
  [
    'reshare: a committee of another size',
    reshare({ participants: ['node-1', 'node-2'] }),
    post(`/v1/keys/${K}/reshare`, { participants: 3 }),
    /committee of 3/,
  ],
  [
    'reshare: no participants means the current committee',
    reshare({ participants: ['node-1', 'node-2'] }),
    post(`/v1/keys/${K}/reshare`, {}),
    /current one/,
  ],
  [
    'reshare: old threshold other than the held one',
    reshare({ oldThreshold: 3 }),
    post(`/v1/keys/${K}/reshare`, {}),
    /old threshold/,
  ],
  [
    'reshare: unknown field',
    reshare(),
    post(`/v1/keys/${K}/reshare`, { threshold: 2, floor: 1 }),
    /API accepts/,
  ],
  // session repair
  [
    'repair: another target',
    repair,
    post(`/v1/keys/${K}/repair`, { participant: 'node-3' }),
    /repair of node-3/,
  ],
  ['repair: no participant', repair, post(`/v1/keys/${K}/repair`, {}), /API accepts/],
  ['repair: another key', repair, post(`/v1/keys/${OTHER}/repair`, { participant: 'node-2' }), /key/],
  // set-state
  ['set-state: another change', disable, post(`/v1/keys/${K}/enable`), /state change enable/],
  ['set-state: another key', disable, post(`/v1/keys/${OTHER}/disable`), /key/],
  [
    'set-state: not a state change',
    disable,
    post(`/v1/keys/${K}/sign`, { message: '00' }),
    /not a state change/,
  ],
  [
    'set-state: a body on disable',
    disable,
    post(`/v1/keys/${K}/disable`, { pendingWindowDays: 7 }),
    /API accepts/,
  ],
  [
    'set-state: a window below 7 days',
    schedule,
    post(`/v1/keys/${K}/schedule-deletion`, { pendingWindowDays: 1 }),
    /API accepts/,
  ],
  [
    'set-state: a window above 30 days',
    schedule,
    post(`/v1/keys/${K}/schedule-deletion`, { pendingWindowDays: 31 }),
    /API accepts/,
  ],
];

describe('binding a signed request to the operation (node/request-binding.ts)', () => {
  it.each(refused)('refuses %s', (_name, g, req, why) => {
    let err: unknown;
    try {
      bindRequest(g, req);
    } catch (e) {
      err = e;
    }
    expect(err).toMatchObject({ code: 'Unauthorized', message: expect.stringMatching(/does not match/) });
    expect((err as Error).message).toMatch(why);
  });

  it('binds the matching requests with the facts the policy needs', () => {
    expect(bindRequest(sign, post(`/v1/keys/${K}/sign`, { message: '00FF' }))).toEqual({
      operation: 'Sign',
      keyId: K,
      message: new Uint8Array([0, 255]),
    });
    expect(bindRequest(sign, post(`/v1/keys/${K}/sign`, { message: '' })).message).toEqual(new Uint8Array());
    expect(bindRequest(dkg, post('/v1/keys', { keySpec: 'FROST_ED25519', threshold: 2 }))).toEqual({
      operation: 'CreateKey',
      keyId: K,
    });
    expect(
      bindRequest(
        dkg,
        post('/v1/keys', {
          keySpec: 'FROST_ED25519',
          threshold: 2,
          participants: ['node-3', 'node-1', 'node-2'],
          alias: 'a1',
        }),
      ).operation,
    ).toBe('CreateKey');
    expect(
      bindRequest(dkg, post('/v1/keys', { keySpec: 'FROST_ED25519', threshold: 2, participants: 3 }))
        .operation,
    ).toBe('CreateKey');
    expect(bindRequest(refresh, post(`/v1/keys/${K}/refresh`))).toEqual({
      operation: 'RefreshKey',
      keyId: K,
    });
    expect(bindRequest(refresh, post(`/v1/keys/${K}/refresh`, {}))).toEqual({
      operation: 'RefreshKey',
      keyId: K,
    });
    expect(bindRequest(repair, post(`/v1/keys/${K}/repair`, { participant: 'node-2' }))).toEqual({
      operation: 'RepairKey',
      keyId: K,
    });
    // Reshare facts: the old threshold and committee are the node's own.
    expect(bindRequest(reshare(), post(`/v1/keys/${K}/reshare`, {})).keyEvent).toEqual({
      oldThreshold: 2,
      newThreshold: 2,
      committeeChanges: false,
    });
    expect(
      bindRequest(reshare({ threshold: 3 }), post(`/v1/keys/${K}/reshare`, { threshold: 3 })).keyEvent,
    ).toEqual({ oldThreshold: 2, newThreshold: 3, committeeChanges: false });
    expect(
      bindRequest(
        reshare({ participants: ['node-1', 'node-2'] }),
        post(`/v1/keys/${K}/reshare`, { participants: ['node-2', 'node-1'] }),
      ).keyEvent,
    ).toEqual({ oldThreshold: 2, newThreshold: 2, committeeChanges: true });
    // A new member that holds nothing takes the old facts from the session.
    const newcomer: GuardedRequest = {
      rpc: 'session',
      session: session({
        kind: 'reshare',
        epoch: 1,
        threshold: 2,
        participants: ['node-1', 'node-4'],
        oldThreshold: 3,
        oldParticipants: NODES,
      }),
    };
    expect(
      bindRequest(
        newcomer,
        post(`/v1/keys/${K}/reshare`, { threshold: 2, participants: ['node-1', 'node-4'] }),
      ).keyEvent,
    ).toEqual({ oldThreshold: 3, newThreshold: 2, committeeChanges: true });
    expect(bindRequest(disable, post(`/v1/keys/${K}/disable`))).toEqual({
      operation: 'DisableKey',
      keyId: K,
    });
    expect(bindRequest(schedule, post(`/v1/keys/${K}/schedule-deletion`, {}))).toEqual({
      operation: 'ScheduleKeyDeletion',
      keyId: K,
      pendingWindowDays: 30,
    });
    expect(
      bindRequest(schedule, post(`/v1/keys/${K}/schedule-deletion`, { pendingWindowDays: 7 }))
        .pendingWindowDays,
    ).toBe(7);
    expect(
      bindRequest(
        { rpc: 'set-state', keyId: K, change: 'cancelDeletion' },
        post(`/v1/keys/${K}/cancel-deletion`),
      ).operation,
    ).toBe('CancelKeyDeletion');
    expect(
      bindRequest({ rpc: 'set-state', keyId: K, change: 'enable' }, post(`/v1/keys/${K}/enable`)).operation,
    ).toBe('EnableKey');
  });
});

describe('node audit pages and signed heads (net/node-audit-head.ts)', async () => {
  const key = await generateIdentityKey();
  const other = await generateIdentityKey();
  const peerId = peerIdOf(key);
  const sign = identitySigner(key);
  const chain = (entries: Record<string, unknown>[]): AuditRecord[] => {
    const out: AuditRecord[] = [];
    let prev = GENESIS_HASH;
    entries.forEach((entry, i) => {
      const seq = i + 1;
      const time = new Date(1_700_000_000_000 + seq).toISOString();
      const hash = auditHash(prev, seq, time, entry);
      out.push({ seq, time, prevHash: prev, hash, entry });
      prev = hash;
    });
    return out;
  };
  const base = chain([
    { node: 'node-1', event: 'request', decision: 'allow', operation: 'Sign' },
    { node: 'node-1', event: 'request', decision: 'unauthorized', operation: 'Sign' },
    { node: 'node-1', event: 'key.state', state: 'Disabled' },
  ]);
  const headOf = (records: AuditRecord[], by = sign) =>
    signAuditHead(
      {
        nodeId: 'node-1',
        seq: records.at(-1)!.seq,
        hash: records.at(-1)!.hash,
        time: new Date().toISOString(),
      },
      by,
    );
  const check = (records: AuditRecord[], head = headOf(records), from?: { seq: number; hash: string }) =>
    verifyNodeAuditPage({ nodeId: 'node-1', peerId, records, head, ...(from ? { from } : {}) });

  it('accepts the chain, page by page, with a head signed by the node', () => {
    expect(check(base)).toMatchObject({ ok: true, last: { seq: 3 } });
    const first = check(base.slice(0, 2), headOf(base));
    expect(first.ok).toBe(true);
    expect(check(base.slice(2), headOf(base), first.ok ? first.last : undefined)).toMatchObject({ ok: true });
  });

  it('names the first record edited, dropped or reordered', () => {
    const edited = base.map((r) => (r.seq === 2 ? { ...r, entry: { ...r.entry, decision: 'allow' } } : r));
    expect(check(edited, headOf(base))).toMatchObject({ ok: false, brokenAt: 2 });
    expect(check([base[0]!, base[2]!], headOf(base))).toMatchObject({
      ok: false,
      brokenAt: 2,
      reason: 'sequence gap',
    });
    expect(check([base[1]!, base[0]!, base[2]!], headOf(base))).toMatchObject({ ok: false, brokenAt: 1 });
    // The tail cut below a signed head: the head names a record the page's last one is not.
    const cut = base.slice(0, 2);
    expect(check(cut, { ...headOf(base), seq: 2 })).toMatchObject({
      ok: false,
      reason: 'head signature does not verify',
    });
    expect(
      check(cut, signAuditHead({ nodeId: 'node-1', seq: 2, hash: base[2]!.hash, time: 'x' }, sign)),
    ).toMatchObject({ ok: false, reason: 'head names another hash' });
  });

  it('refuses a head or checkpoint signed by another key, or for another node', () => {
    expect(check(base, headOf(base, identitySigner(other)))).toMatchObject({
      ok: false,
      reason: 'head signature does not verify',
    });
    expect(
      verifyNodeAuditPage({ nodeId: 'node-2', peerId, records: base, head: headOf(base) }),
    ).toMatchObject({ ok: false });
    const good = signAuditHead({ nodeId: 'node-1', seq: 3, hash: base[2]!.hash, time: 't' }, sign);
    const withCheckpoint = chain([
      ...base.map((r) => r.entry),
      { node: 'node-1', event: AUDIT_HEAD_EVENT, ...good },
    ]);
    expect(check(withCheckpoint)).toMatchObject({ ok: true, checkpoints: 1 });
    const forged = signAuditHead(
      { nodeId: 'node-1', seq: 3, hash: base[2]!.hash, time: 't' },
      identitySigner(other),
    );
    const withForged = chain([
      ...base.map((r) => r.entry),
      { node: 'node-1', event: AUDIT_HEAD_EVENT, ...forged },
    ]);
    expect(check(withForged)).toMatchObject({
      ok: false,
      brokenAt: 4,
      reason: 'checkpoint signature does not verify',
    });
    const lying = signAuditHead({ nodeId: 'node-1', seq: 2, hash: base[2]!.hash, time: 't' }, sign);
    const withLying = chain([
      ...base.map((r) => r.entry),
      { node: 'node-1', event: AUDIT_HEAD_EVENT, ...lying },
    ]);
    expect(check(withLying)).toMatchObject({
      ok: false,
      brokenAt: 2,
      reason: 'checkpoint names another hash',
    });
  });
});

describe('the request guard on a real node store (node/request-guard.ts)', async () => {
  const { mkdtempSync, rmSync } = await import('node:fs');
  const { tmpdir } = await import('node:os');
  const { join } = await import('node:path');
  const { randomUUID } = await import('node:crypto');
  const { ed25519 } = await import('@noble/curves/ed25519.js');
  const { AuditLog } = await import('../common/audit-log.ts');
  const { NodeStore } = await import('../node/store.ts');
  const { NodeAudit } = await import('../node/node-audit.ts');
  const { GovernanceStore } = await import('../node/governance-store.ts');
  const { RequestGuard, MAX_SHARES_PER_SIGN_REQUEST } = await import('../node/request-guard.ts');
  const { governanceHash, parseGovernance } = await import('../policy/governance.ts');
  const { signRequest } = await import('../policy/request-signature.ts');
  const { requestDigest, toWire } = await import('../net/signed-request.ts');

  const mk = (id: string) => {
    const sk = ed25519.utils.randomSecretKey();
    return {
      id,
      publicKey: Buffer.from(ed25519.getPublicKey(sk)).toString('base64url'),
      sign: (b: Uint8Array) => ed25519.sign(b, sk),
    };
  };
  const alice = mk('alice');
  const carol = mk('carol');
  const ap1 = mk('ap1');
  const doc = parseGovernance({
    version: 1,
    previous: null,
    principals: [alice, carol, ap1].map((p) => ({ id: p.id, alg: 'ed25519', publicKey: p.publicKey })),
    groups: { admins: ['ap1'], approvers: ['ap1'] },
    admins: { group: 'admins', quorum: 1 },
    policies: [
      {
        id: 'alice-limited',
        effect: 'allow',
        operations: ['Sign'],
        keys: ['*'],
        principals: ['alice'],
        rateLimit: { count: 2, windowS: 60 },
      },
      {
        id: 'carol-approved',
        effect: 'allow',
        operations: ['Sign'],
        keys: ['*'],
        principals: ['carol'],
        approvals: { group: 'approvers', count: 1 },
      },
    ],
  });
  const signedBy = (p: typeof alice, path: string, body: unknown) => {
    const now = Math.floor(Date.now() / 1000);
    const req = { method: 'POST', path, query: '', body: new TextEncoder().encode(JSON.stringify(body)) };
    const headers = signRequest(
      req,
      { created: now, expires: now + 60, nonce: randomUUID(), keyid: p.id, alg: 'ed25519' },
      p.sign,
    );
    return toWire({ ...req, headers });
  };
  const signFor = (p: typeof alice, keyId = K) => signedBy(p, `/v1/keys/${keyId}/sign`, { message: '0011' });

  const dir = mkdtempSync(join(tmpdir(), 'tkms-guard-'));
  const node = await generateIdentityKey();
  const open = async () => {
    const store = await NodeStore.open(dir);
    const audit = new NodeAudit(await AuditLog.open(store.auditDb()), 'node-1', identitySigner(node));
    const governance = await GovernanceStore.open(store, governanceHash(doc));
    const guard = new RequestGuard({ nodeId: 'node-1', store, governance, audit, required: true });
    await guard.rebuild(); // as the daemon does at start
    return { store, audit, governance, guard };
  };
  const refusedWith = async (p: Promise<unknown>) => {
    try {
      await p;
    } catch (e) {
      return e as { code: string; message: string; details?: Record<string, unknown> };
    }
    throw new Error('allowed');
  };

  it('rate limit per principal and key; retried sign-commits of one request, a bounded number of shares; pending keeps the nonce; a restart keeps the replay cache', async () => {
    let n = await open();
    try {
      await n.governance.update(doc, []);
      const g = { rpc: 'sign-commit', keyId: K } as const;
      const r1 = signFor(alice);
      expect((await n.guard.authorize(g, { request: r1 }))?.initiator).toBe('alice');
      // The same signing request again (a retried attempt): allowed, not counted twice.
      const again = await n.guard.authorize(g, { request: r1 });
      expect(again?.messageSha256).toMatch(/^[0-9a-f]{64}$/);
      await n.guard.authorize(g, { request: signFor(alice) });
      const limited = await refusedWith(n.guard.authorize(g, { request: signFor(alice) }));
      expect(limited).toMatchObject({
        code: 'PolicyDenied',
        message: expect.stringMatching(/rate limit: 2 per 60 s/),
      });
      // Another key has its own counter.
      expect(
        await n.guard.authorize({ rpc: 'sign-commit', keyId: OTHER }, { request: signFor(alice, OTHER) }),
      ).toBeDefined();
      // At most MAX_SHARES_PER_SIGN_REQUEST shares per signed request on this node (one per
      // retried attempt of the coordinator), then the request is used up.
      for (let i = 0; i < MAX_SHARES_PER_SIGN_REQUEST; i++) await n.guard.shareOnce(again!, `session-${i}`);
      expect(await refusedWith(n.guard.shareOnce(again!, 'session-x'))).toMatchObject({
        code: 'Unauthorized',
        message: expect.stringMatching(/already yielded 3 signature shares/),
      });
      expect(await refusedWith(n.guard.authorize(g, { request: r1 }))).toMatchObject({
        code: 'Unauthorized',
        message: expect.stringMatching(/replayed/),
      });
      // Pending does not use up the nonce: the same request with its approval is then allowed.
      const rc = signFor(carol);
      const pending = await refusedWith(n.guard.authorize(g, { request: rc }));
      expect(pending).toMatchObject({
        code: 'PolicyDenied',
        details: { pending: true, needs: [{ group: 'approvers', needed: 1, have: [] }] },
      });
      const approval = signedBy(ap1, `/v1/requests/${randomUUID()}/approvals`, {
        requestDigest: requestDigest(rc),
      });
      expect((await n.guard.authorize(g, { request: rc, approvals: [approval] }))?.approvers).toEqual([
        'ap1',
      ]);
      // A set-state request is used once.
      const dis = { rpc: 'set-state', keyId: K, change: 'disable' } as const;
      const d = signedBy(alice, `/v1/keys/${K}/disable`, {});
      expect(await refusedWith(n.guard.authorize(dis, { request: d }))).toMatchObject({
        code: 'PolicyDenied',
      }); // alice may only sign
      // A restart: the replay cache is rebuilt from the audit log.
      n.audit.stop();
      await n.store.close();
      n = await open();
      expect(n.governance.current()?.hash).toBe(governanceHash(doc));
      expect(await refusedWith(n.guard.authorize(g, { request: r1 }))).toMatchObject({
        message: expect.stringMatching(/already yielded/),
      });
      // A signing request that has yielded no share yet may still serve a retried attempt.
      expect((await n.guard.authorize(g, { request: rc, approvals: [approval] }))?.initiator).toBe('carol');
      // Every decision is in the node's chain; the chain verifies against the node's peer id.
      const page = await n.audit.page(0, 500);
      expect(
        verifyNodeAuditPage({
          nodeId: 'node-1',
          peerId: peerIdOf(node),
          records: page.records,
          head: page.head,
        }),
      ).toMatchObject({ ok: true });
      const decisions = page.records
        .filter((r) => r.entry['event'] === 'request')
        .map((r) => r.entry['decision']);
      expect(decisions).toEqual([
        'allow',
        'allow',
        'allow',
        'deny',
        'allow',
        'unauthorized',
        'unauthorized',
        'pending',
        'allow',
        'deny',
        'unauthorized',
        'allow',
      ]);
    } finally {
      n.audit.stop();
      await n.store.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
