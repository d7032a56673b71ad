/**
 * PSBT signing on real nodes (issue 14, item 4): the real coordinator over three node daemons that
 * require client-signed requests (test/helpers/coordinator.ts startClusterCoordinator).
 * - `POST /v1/keys/{id}/sign-psbt` signs the key's inputs (the key itself and a child named by
 *   tap_bip32_derivation with the fingerprint of the API's xpub) of a PSBT built by bitcoinjs-lib;
 *   another wallet's input stays unsigned; bitcoinjs (libsecp256k1) validates and finalizes, and
 *   @scure/btc-signer finalizes to the same transaction. The coordinator's decision record and each
 *   signer's own audit record carry the outputs (address, amount). The CLI signs binary and base64
 *   PSBT files as a principal whose only rule is SignPsbt (a plain Sign is refused); a rule with
 *   approvals answers 202, every committee member records it pending, and it executes when the
 *   checker approves.
 * - The coordinator as adversary (its own identity speaking the real RPC): with a valid signed
 *   sign-psbt request, every node refuses to sign a digest that is not one of the PSBT's hashes
 *   at the session's path (two rounds, and one round with pre-published commitments), and a path
 *   with no input of the key; the right hash gets its share, up to 3 shares per input of the key.
 */
import { randomUUID } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { base64 } from '@scure/base';
import { HDKey } from '@scure/bip32';
import * as btc from '@scure/btc-signer';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { generatePrincipal } from '../client/sign-request.ts';
import { isKmsError } from '../protocol/errors.ts';
import { buildProgram, runProgram } from '../scripts/kms.ts';
import {
  ADMIN_TOKEN,
  adminGenesis,
  type ClusterCoordinator,
  startClusterCoordinator,
} from './helpers/coordinator.ts';
import {
  bitcoin,
  bitcoinjsSighash,
  buildPsbt,
  keyPathSign,
  p2tr,
  regtestAddress,
  validateInput,
  wholeKey,
  xOnlyAt,
} from './helpers/psbt-wallet.ts';

const NODES = ['node-1', 'node-2', 'node-3'];
/** A principal whose only rule is SignPsbt (the CLI signs as it, with its PKCS#8 key file). */
const treasurer = generatePrincipal('treasurer');
/** A payer who may only pay the shop, at most 80 000 sat with the fee (a `bitcoin` rule). */
const payer = generatePrincipal('payer').signer;
const SHOP = regtestAddress();
/** A trader whose PSBTs need one checker's approval. */
const trader = generatePrincipal('trader').signer;
const checker = generatePrincipal('checker').signer;
let c: ClusterCoordinator;
let key: { keyId: string; epoch: number; internal: Uint8Array; hd: HDKey };
let dir: string;

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'kms-psbt-'));
  c = await startClusterCoordinator(3, {
    genesis: (admin, admin2) =>
      adminGenesis([admin, admin2], {
        principals: [treasurer.signer, trader, checker, payer],
        groups: { checkers: ['checker'] },
        policies: [
          {
            id: 'treasurer-psbt',
            effect: 'allow',
            operations: ['SignPsbt'],
            keys: ['*'],
            principals: ['treasurer'],
          },
          {
            id: 'payer-pays-the-shop',
            effect: 'allow',
            operations: ['SignPsbt', 'Sign'],
            keys: ['*'],
            principals: ['payer'],
            bitcoin: { destinations: [SHOP], maxSpendSats: 80_000 },
          },
          {
            id: 'trader-psbt-checked',
            effect: 'allow',
            operations: ['SignPsbt'],
            keys: ['*'],
            principals: ['trader'],
            approvals: { group: 'checkers', count: 1 },
          },
        ],
      }),
  });
  const created = await c.call('POST', '/v1/keys', { keySpec: 'FROST_SECP256K1_TR', threshold: 2 });
  expect(created.status, created.text).toBe(201);
  const xpub = await c.call('GET', `/v1/keys/${created.body.keyId}/public-key?format=xpub`);
  expect(xpub.status, xpub.text).toBe(200);
  const hd = HDKey.fromExtendedKey(xpub.body.xpub, { public: 0x0488b21e, private: 0x0488ade4 });
  key = {
    keyId: created.body.keyId,
    epoch: created.body.epoch,
    internal: Buffer.from(created.body.taproot.internalKey, 'hex'),
    hd,
  };
  expect(Buffer.from(hd.publicKey!.subarray(1)).equals(Buffer.from(key.internal))).toBe(true);
}, 120_000);
afterAll(async () => {
  await c?.stop();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

const other = wholeKey();
const childX = (path: string) => key.hd.derive(path).publicKey!.subarray(1);

/** Root input 0, another wallet's input 1, the child m/0/5 at input 2; change to m/1/0 (named by its derivation unless `unnamedChange`). */
function spend(dest = regtestAddress(), o: { unnamedChange?: boolean } = {}) {
  const psbt = buildPsbt(
    [
      { internalKey: key.internal, amount: 60_000n },
      { internalKey: xOnlyAt(other, 'm'), amount: 15_000n },
      {
        internalKey: childX('m/0/5'),
        amount: 25_000n,
        derivation: { fingerprint: key.hd.fingerprint, path: 'm/0/5' },
      },
    ],
    [
      { address: dest, value: 70_000n },
      {
        address: p2tr(childX('m/1/0')).address,
        value: 29_000n,
        ...(o.unnamedChange
          ? {}
          : { change: { internalKey: childX('m/1/0'), fingerprint: key.hd.fingerprint, path: 'm/1/0' } }),
      },
    ],
  );
  return { psbt, dest };
}

describe('POST /v1/keys/{id}/sign-psbt (real nodes)', () => {
  it("signs the key's root and derived inputs; bitcoinjs and scure finalize; the other input stays unsigned; audited with outputs", async () => {
    const { psbt, dest } = spend();
    const r = await c.call(
      'POST',
      `/v1/keys/${key.keyId}/sign-psbt`,
      { psbt: psbt.toBase64(), network: 'regtest' },
      { principal: c.admin },
    );
    expect(r.status, r.text).toBe(200);
    expect(r.body.signedInputs.map((s: { index: number; path: string }) => [s.index, s.path])).toEqual([
      [0, 'm'],
      [2, 'm/0/5'],
    ]);
    for (const s of r.body.signedInputs) {
      expect(s.sighash).toBe(Buffer.from(bitcoinjsSighash(psbt, s.index)).toString('hex'));
      expect(s.signers).toHaveLength(2);
    }

    const signed = bitcoin.Psbt.fromBase64(r.body.psbt, { network: bitcoin.networks.regtest });
    expect(signed.data.inputs[1]!.tapKeySig).toBeUndefined();
    for (const i of [0, 2]) {
      expect(validateInput(signed, i)).toBe(true);
      signed.finalizeInput(i);
    }
    const otherSig = keyPathSign(other, 'm', null, bitcoinjsSighash(psbt, 1));
    signed.updateInput(1, { tapKeySig: otherSig });
    signed.finalizeInput(1);
    const txHex = signed.extractTransaction().toHex();

    const s = btc.Transaction.fromPSBT(base64.decode(r.body.psbt));
    s.updateInput(1, { tapKeySig: otherSig }, true);
    s.finalize();
    expect(s.hex).toBe(txHex);

    // The coordinator's decision record and every signer's own record name the outputs.
    const outputs = [
      { address: dest, amount: 70_000 },
      { address: p2tr(childX('m/1/0')).address, amount: 29_000, toKey: 'm/1/0' },
    ];
    const audit = await c.call('GET', `/v1/audit?keyId=${key.keyId}&limit=50`);
    expect(audit.status, audit.text).toBe(200);
    const decision = audit.body.records
      .map((x: { entry: Record<string, unknown> }) => x.entry)
      .find((e: Record<string, unknown>) => e['type'] === 'decision' && e['psbt'] !== undefined);
    expect(decision.psbt).toEqual({
      network: 'regtest',
      inputs: [
        { index: 0, path: 'm' },
        { index: 2, path: 'm/0/5' },
      ],
      outputs,
      fee: 1_000,
    });
    let signersSeen = 0;
    for (const n of NODES) {
      const page = await c.rpc(n, { op: 'audit', limit: 200 });
      const allow = page.records
        .map((x: { entry: Record<string, unknown> }) => x.entry)
        .filter(
          (e: Record<string, unknown>) =>
            e['operation'] === 'SignPsbt' && e['decision'] === 'allow' && e['keyId'] === key.keyId,
        );
      if (allow.length === 0) continue;
      signersSeen++;
      expect(allow[0].psbt.outputs).toEqual(outputs);
    }
    expect(signersSeen).toBeGreaterThanOrEqual(2);
  });

  it('kms keys sign-psbt (binary and base64 files) as a principal allowed SignPsbt only', async () => {
    writeFileSync(join(dir, 'treasurer.key'), treasurer.privateKeyPem);
    const run = async (...args: string[]) => {
      const got = { out: '', err: '' };
      const io = {
        out: (t: string) => {
          got.out += t;
        },
        err: (t: string) => {
          got.err += t;
        },
        isTTY: false,
      };
      const code = await runProgram(
        buildProgram(io),
        [
          '--url',
          c.url,
          '--token',
          ADMIN_TOKEN,
          '--principal',
          'treasurer',
          '--principal-key',
          join(dir, 'treasurer.key'),
          ...args,
        ],
        io,
      );
      return { code, ...got };
    };
    const { psbt } = spend();
    writeFileSync(join(dir, 'spend.psbt'), psbt.toBuffer());
    writeFileSync(join(dir, 'spend.b64'), `${psbt.toBase64()}\n`);
    const bin = await run(
      'keys',
      'sign-psbt',
      key.keyId,
      '--in',
      join(dir, 'spend.psbt'),
      '--out',
      join(dir, 'signed.psbt'),
      '--network',
      'regtest',
    );
    expect(bin.code, bin.err).toBe(0);
    expect(bin.out).toMatch(/signed inputs 0 \(m\), 2 \(m\/0\/5\)/);
    const fromBin = bitcoin.Psbt.fromBuffer(readFileSync(join(dir, 'signed.psbt')));
    const txt = await run(
      '--json',
      'keys',
      'sign-psbt',
      key.keyId,
      '--in',
      join(dir, 'spend.b64'),
      '--out',
      join(dir, 'signed.b64'),
    );
    expect(txt.code, txt.err).toBe(0);
    expect(JSON.parse(txt.out).signedInputs).toHaveLength(2);
    const fromTxt = bitcoin.Psbt.fromBase64(readFileSync(join(dir, 'signed.b64'), 'utf8').trim());
    for (const p of [fromBin, fromTxt]) {
      expect(validateInput(p, 0)).toBe(true);
      expect(validateInput(p, 2)).toBe(true);
    }
    // The treasurer's rule names SignPsbt only: a plain Sign is refused by the nodes' policy.
    const plain = await run('keys', 'sign', key.keyId, '--message-hex', '00'.repeat(32));
    expect(plain.code).toBe(2);
    expect(plain.err).toMatch(/PolicyDenied|denied/i);
    const notPsbt = await run(
      'keys',
      'sign-psbt',
      key.keyId,
      '--in',
      join(dir, 'treasurer.key'),
      '--out',
      join(dir, 'x'),
    );
    expect(notPsbt.code).toBe(1);
    expect(notPsbt.err).toMatch(/not a PSBT/);
  });

  it('a rule with approvals: 202, every committee member keeps it pending, the checker approves, it executes', async () => {
    // Only a derived input (none at m): the members that only review it bind it all the same.
    const psbt = buildPsbt(
      [
        {
          internalKey: childX('m/3'),
          amount: 8_000n,
          derivation: { fingerprint: key.hd.fingerprint, path: 'm/3' },
        },
      ],
      [{ address: regtestAddress(), value: 7_000n }],
    );
    const r = await c.call(
      'POST',
      `/v1/keys/${key.keyId}/sign-psbt`,
      { psbt: psbt.toBase64(), network: 'regtest' },
      { principal: trader },
    );
    expect(r.status, r.text).toBe(202);
    expect(r.body).toMatchObject({ operation: 'SignPsbt', state: 'Pending', initiator: 'trader' });
    for (const n of NODES) {
      const page = await c.rpc(n, { op: 'audit', limit: 200 });
      const pending = page.records
        .map((x: { entry: Record<string, unknown> }) => x.entry)
        .filter(
          (e: Record<string, unknown>) => e['decision'] === 'pending' && e['requestDigest'] === r.body.digest,
        );
      expect(pending.length, n).toBeGreaterThan(0);
      expect(pending[0].psbt.inputs).toEqual([{ index: 0, path: 'm/3' }]);
    }
    const a = await c.call(
      'POST',
      `/v1/requests/${r.body.requestId}/approvals`,
      { requestDigest: r.body.digest },
      { principal: checker },
    );
    expect(a.status, a.text).toBe(200);
    expect(a.body.state).toBe('Executed');
    expect(a.body.result.body.signedInputs.map((x: { path: string }) => x.path)).toEqual(['m/3']);
    const signed = bitcoin.Psbt.fromBase64(a.body.result.body.psbt);
    expect(validateInput(signed, 0)).toBe(true);
  });

  it("a rule's bitcoin condition: only the shop, change proven by its derivation, within the amount; never a plain Sign", async () => {
    const as = (p: { psbt: { toBase64(): string } }) =>
      c.call(
        'POST',
        `/v1/keys/${key.keyId}/sign-psbt`,
        { psbt: p.psbt.toBase64(), network: 'regtest' },
        { principal: payer },
      );
    // 70 000 to the shop + 1 000 fee; the change pays back to the key.
    const ok = await as(spend(SHOP));
    expect(ok.status, ok.text).toBe(200);
    expect(ok.body.signedInputs).toHaveLength(2);
    const elsewhere = regtestAddress();
    const denied = await as(spend(elsewhere));
    expect(denied.status).toBe(403);
    expect(denied.body.code).toBe('PolicyDenied');
    expect(denied.body.detail).toContain(`${elsewhere} is not an allowed destination`);
    // Change the nodes cannot tie to the key (no derivation named) is a payment like any other.
    const unnamed = await as(spend(SHOP, { unnamedChange: true }));
    expect(unnamed.status).toBe(403);
    expect(unnamed.body.detail).toMatch(/is not an allowed destination/);
    const sign = await c.call(
      'POST',
      `/v1/keys/${key.keyId}/sign`,
      { message: '00'.repeat(32) },
      { principal: payer },
    );
    expect(sign.status).toBe(403);
    expect(sign.body.detail).toMatch(/never a plain Sign/);
  });

  it('a PSBT with no input of the key is refused, saying why', async () => {
    const psbt = buildPsbt(
      [{ internalKey: xOnlyAt(other, 'm'), amount: 1_000n }],
      [{ address: regtestAddress(), value: 500n }],
    );
    const r = await c.call(
      'POST',
      `/v1/keys/${key.keyId}/sign-psbt`,
      { psbt: psbt.toBase64() },
      { principal: c.admin },
    );
    expect(r.status).toBe(400);
    expect(r.body.detail).toMatch(/no input spends an output of this key/);
  });
});

describe('a malicious coordinator with a valid signed sign-psbt request', () => {
  it("gets no share for a digest that is not one of the PSBT's hashes at the session's path", async () => {
    const { psbt } = spend();
    const path = `/v1/keys/${key.keyId}/sign-psbt`;
    const auth = c.authFor('POST', path, { psbt: psbt.toBase64(), network: 'regtest' });
    const hex = (b: Uint8Array) => Buffer.from(b).toString('hex');
    const answer = async (n: string, req: Parameters<ClusterCoordinator['rpc']>[1]) =>
      c.rpc(n, req).then(
        (v) => ({ ok: v }),
        (e: unknown) => ({ code: isKmsError(e) ? e.code : String(e), message: String((e as Error).message) }),
      );
    const commit = async (sessionId: string, derivationPath: string) =>
      Promise.all(
        NODES.slice(0, 2).map((n) =>
          answer(n, {
            op: 'sign-commit',
            sessionId,
            keyId: key.keyId,
            epoch: key.epoch,
            auth,
            tweak: { derivationPath, taprootTweak: 'keyPath' },
          }),
        ),
      );
    const share = (sessionId: string, commitments: unknown[], message: Uint8Array) =>
      Promise.all(
        NODES.slice(0, 2).map((n) =>
          answer(n, {
            op: 'sign-share',
            sessionId,
            keyId: key.keyId,
            epoch: key.epoch,
            message: hex(message),
            commitments: commitments as never,
          }),
        ),
      );

    // A path with no input of the key: refused before any nonce.
    for (const a of await commit(randomUUID(), 'm/9')) {
      expect(a).toMatchObject({ code: 'Unauthorized' });
      expect((a as { message: string }).message).toMatch(/no input of this key at m\/9/);
    }

    // Digests that are not a hash of the PSBT's inputs at the session's path (m): an arbitrary
    // 32 bytes, the hash of the other wallet's input, the hash of the derived input (another path).
    for (const digest of [
      new Uint8Array(32).fill(0xab),
      bitcoinjsSighash(psbt, 1),
      bitcoinjsSighash(psbt, 2),
    ]) {
      const sid = randomUUID();
      const commits = await commit(sid, 'm');
      const commitments = commits.map((x) => (x as { ok: unknown }).ok);
      expect(commitments.every((x) => x !== undefined)).toBe(true);
      for (const a of await share(sid, commitments, digest)) {
        expect(a).toMatchObject({ code: 'Unauthorized' });
        expect((a as { message: string }).message).toMatch(/not a signature hash of the PSBT's inputs/);
      }
    }

    // The one-round path (sign-one, pre-published commitments): the same refusal.
    const pre = await Promise.all(
      NODES.slice(0, 2).map((n) =>
        c.rpc(n, { op: 'sign-precommit', keyId: key.keyId, epoch: key.epoch, count: 1 }),
      ),
    );
    const list = pre.map((p) => ({ identifier: p.identifier, ...p.commitments[0] }));
    const oneSid = randomUUID();
    for (const n of NODES.slice(0, 2)) {
      const a = await answer(n, {
        op: 'sign-one',
        sessionId: oneSid,
        keyId: key.keyId,
        epoch: key.epoch,
        message: hex(bitcoinjsSighash(psbt, 1)),
        commitments: list,
        auth,
      });
      expect(a).toMatchObject({ code: 'Unauthorized' });
      expect((a as { message: string }).message).toMatch(/not a signature hash of the PSBT's inputs/);
    }

    // The control: the root input's own hash gets its shares.
    const sid = randomUUID();
    const commitments = (await commit(sid, 'm')).map((x) => (x as { ok: unknown }).ok);
    for (const a of await share(sid, commitments, bitcoinjsSighash(psbt, 0))) {
      expect(a).toHaveProperty('ok.share');
    }

    // The bound (node/request-guard.ts sharesAllowed): one signed request with two inputs of the
    // key yields at most 3 × 2 shares per node, however the coordinator spreads its sessions.
    let refused: { code?: string; message?: string } | undefined;
    for (let i = 0; i < 8 && !refused; i++) {
      const id = randomUUID();
      const cs = await commit(id, 'm');
      refused = cs.find((x) => 'code' in x) as typeof refused;
      if (refused) break;
      for (const a of await share(
        id,
        cs.map((x) => (x as { ok: unknown }).ok),
        bitcoinjsSighash(psbt, 0),
      )) {
        expect(a).toHaveProperty('ok.share');
      }
    }
    expect(refused).toMatchObject({ code: 'Unauthorized' });
    expect(refused!.message).toMatch(/already yielded 6 signature shares/);
  });
});
