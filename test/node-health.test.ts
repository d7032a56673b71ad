/**
 * A node's admin server (node/health.ts, config `adminListen`): /healthz, /readyz and Prometheus
 * /metrics on real node daemons over real libp2p. The metrics count a real DKG and a real
 * signature, seal operations, and messages a real (Byzantine) peer sends that the node refuses;
 * a node whose peers and coordinator are gone reports not ready and says why.
 */
import { ed25519 } from '@noble/curves/ed25519.js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestCluster, type TestCluster } from './helpers/cluster.ts';
import { startLyingPeer } from './helpers/lying-peer.ts';

/** The value of one sample line `name{labels} value` in Prometheus text; undefined when absent. */
function sample(text: string, series: string): number | undefined {
  const line = text.split('\n').find((l) => l.startsWith(`${series} `));
  return line === undefined ? undefined : Number(line.slice(series.length + 1));
}

async function get(url: string): Promise<{ status: number; text: string }> {
  const r = await fetch(url);
  return { status: r.status, text: await r.text() };
}

describe('node health and metrics (admin port)', () => {
  let tc: TestCluster;
  const admin = (id: string) => {
    const url = tc.nodes.get(id)?.adminUrl;
    if (url === undefined) throw new Error(`${id} has no admin server`);
    return url;
  };

  beforeAll(async () => {
    const before = process.env.KMS_ADMIN_LISTEN;
    process.env.KMS_ADMIN_LISTEN = '127.0.0.1:0'; // every node: its own free loopback port
    try {
      tc = await startTestCluster(4, { sealer: 'software' });
    } finally {
      if (before === undefined) delete process.env.KMS_ADMIN_LISTEN;
      else process.env.KMS_ADMIN_LISTEN = before;
    }
  }, 60_000);
  afterAll(async () => {
    await tc?.close();
  });

  it('a running node is live and ready: sealer round trip, store, peers', async () => {
    const url = admin('node-1');
    expect(url).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/);
    const live = await get(`${url}/healthz`);
    expect(live.status).toBe(200);
    expect(JSON.parse(live.text)).toEqual({ status: 'pass' });
    const ready = await get(`${url}/readyz`);
    expect(ready.status).toBe(200);
    expect(JSON.parse(ready.text)).toMatchObject({
      status: 'pass',
      checks: { sealer: 'pass', store: 'pass', peers: { reachable: 3, of: 3, needed: 2 } },
    });
    expect((await get(`${url}/nope`)).status).toBe(404);
  });

  it('metrics name every series and count a DKG, a signature and seal operations', async () => {
    const key = await tc.cluster.createKey({
      keyId: 'health-key',
      keySpec: 'FROST_ED25519',
      threshold: 2,
      participants: ['node-1', 'node-2', 'node-3'],
    });
    const message = new TextEncoder().encode('watched');
    const signed = await tc.cluster.sign({ key, message });
    expect(ed25519.verify(signed.signature, message, Buffer.from(key.publicKey, 'hex'))).toBe(true);

    const texts = new Map<string, string>();
    for (const id of ['node-1', 'node-2', 'node-3']) {
      const m = await get(`${admin(id)}/metrics`);
      expect(m.status).toBe(200);
      texts.set(id, m.text);
    }
    const one = texts.get('node-1')!;
    for (const name of [
      'kms_node_sessions_total',
      'kms_node_session_duration_seconds',
      'kms_node_nonces_outstanding',
      'kms_node_seal_operations_total',
      'kms_node_seal_duration_seconds',
      'kms_node_messages_refused_total',
    ]) {
      expect(one).toContain(`# TYPE ${name} `);
    }
    for (const text of texts.values()) {
      expect(sample(text, 'kms_node_sessions_total{protocol="dkg",outcome="ok"}')).toBe(1);
      // The new share was sealed before it was confirmed.
      expect(sample(text, 'kms_node_seal_operations_total{operation="seal",outcome="ok"}')).toBeGreaterThan(
        0,
      );
      expect(sample(text, 'kms_node_seal_duration_seconds_count{operation="seal"}')).toBeGreaterThan(0);
      // Round two used every nonce pair round one made.
      expect(sample(text, 'kms_node_nonces_outstanding')).toBe(0);
    }
    const signs = [...texts.values()].map(
      (t) => sample(t, 'kms_node_sessions_total{protocol="sign",outcome="ok"}') ?? 0,
    );
    expect(signs.reduce((a, b) => a + b, 0)).toBe(signed.signers.length);
    for (const id of signed.signers)
      expect(sample(texts.get(id)!, 'kms_node_sessions_total{protocol="sign",outcome="ok"}')).toBe(1);
  });

  it('counts messages it refuses, by reason, from a real peer that misbehaves', async () => {
    const liar = await startLyingPeer(tc, 'node-4', { keySpec: 'FROST_ED25519' });
    try {
      // Nodes do not take requests from nodes, and garbage does not decode.
      expect(await liar.rpcRaw('node-1', new Uint8Array([1, 2, 3]))).toBe('PeerNotAllowed');
      expect(await liar.sendRaw('node-1', new Uint8Array([0xff, 0x00, 0x13]))).toBe('DecodeError');
    } finally {
      await liar.stop();
    }
    const text = (await get(`${admin('node-1')}/metrics`)).text;
    expect(sample(text, 'kms_node_messages_refused_total{reason="not-allowed"}')).toBe(1);
    expect(sample(text, 'kms_node_messages_refused_total{reason="malformed"}')).toBe(1);
  });

  it('a node whose peers and coordinator are gone is live but not ready, and says why', async () => {
    await tc.stopNode('node-2');
    await tc.stopNode('node-3');
    await tc.cluster.close();
    expect((await get(`${admin('node-1')}/healthz`)).status).toBe(200);
    const r = await get(`${admin('node-1')}/readyz`);
    expect(r.status).toBe(503);
    expect(JSON.parse(r.text)).toMatchObject({
      status: 'fail',
      checks: {
        sealer: 'pass',
        store: 'pass',
        coordinator: 'fail',
        peers: { reachable: 0, of: 3, needed: 2 },
      },
    });
  });
});
