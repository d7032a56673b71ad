/**
 * The per-key reader/writer lock (coordinator/key-queue.ts): signatures on one key overlap, a key
 * event waits for the running signs and holds back the signs that arrive after it, and different
 * keys never wait for each other. First on the lock itself, then through the real HTTP app
 * (fastify + LevelDB) over three real node daemons, each session held open 150 ms longer on its
 * way to the nodes so that the operations overlap whatever the speed of real sessions.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { KeyedQueue } from '../coordinator/key-queue.ts';
import { startTestCoordinator, type TestCoordinator } from './helpers/coordinator.ts';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Records start/end events of named operations, and the peak number running at once. */
function tracer() {
  const events: string[] = [];
  let running = 0;
  let peak = 0;
  const op = (name: string, ms: number) => async (): Promise<string> => {
    events.push(`start ${name}`);
    running++;
    peak = Math.max(peak, running);
    await sleep(ms);
    running--;
    events.push(`end ${name}`);
    return name;
  };
  return { events, op, peak: () => peak };
}

describe('KeyedQueue', () => {
  it('runs shared operations on one key concurrently', async () => {
    const q = new KeyedQueue();
    const t = tracer();
    await Promise.all([1, 2, 3, 4].map((i) => q.run('k', t.op(`s${i}`, 30), 'shared')));
    expect(t.peak()).toBe(4);
  });

  it('serializes exclusive operations on one key, and not across keys', async () => {
    const q = new KeyedQueue();
    const t = tracer();
    await Promise.all([q.run('k', t.op('a', 20)), q.run('k', t.op('b', 20))]);
    expect(t.events).toEqual(['start a', 'end a', 'start b', 'end b']);
    const u = tracer();
    await Promise.all([q.run('k1', u.op('x', 30)), q.run('k2', u.op('y', 30))]);
    expect(u.peak()).toBe(2);
  });

  it('makes an exclusive operation wait for running shared ones and hold back later shared ones', async () => {
    const q = new KeyedQueue();
    const t = tracer();
    const early = [1, 2].map((i) => q.run('k', t.op(`sign${i}`, 40), 'shared'));
    await sleep(5);
    const event = q.run('k', t.op('reshare', 30));
    await sleep(5);
    const late = [3, 4].map((i) => q.run('k', t.op(`sign${i}`, 10), 'shared'));
    await Promise.all([...early, event, ...late]);
    const at = (e: string) => t.events.indexOf(e);
    expect(at('start reshare')).toBeGreaterThan(at('end sign1'));
    expect(at('start reshare')).toBeGreaterThan(at('end sign2'));
    expect(at('start sign3')).toBeGreaterThan(at('end reshare'));
    expect(at('start sign4')).toBeGreaterThan(at('end reshare'));
    // The late signs still overlap each other once the key event is done.
    expect(at('start sign4')).toBeLessThan(at('end sign3'));
  });

  it('releases the lock when an operation fails, and idle() waits for everything', async () => {
    const q = new KeyedQueue();
    const failed = q.run('k', async () => {
      throw new Error('boom');
    });
    await expect(failed).rejects.toThrow('boom');
    let done = false;
    void q.run('k', async () => {
      await sleep(20);
      done = true;
    });
    await q.idle();
    expect(done).toBe(true);
  });
});

describe('signing and key events on one key, through the HTTP API', () => {
  let c: TestCoordinator | undefined;
  afterEach(async () => {
    await c?.stop();
    c = undefined;
  });

  it('overlaps signs; a reshare waits for running signs, and signs sent after it use the new epoch', async () => {
    c = await startTestCoordinator({ nodes: 3 });
    const created = await c.call('POST', '/v1/keys', { keySpec: 'FROST_ED25519', threshold: 2 });
    expect(created.status).toBe(201);
    const keyId = created.body.keyId as string;
    c.observed.delayMs = 150;
    c.observed.peakConcurrent = 0;
    const done: Record<string, number> = {};
    const sign = (name: string) =>
      c!.call('POST', `/v1/keys/${keyId}/sign`, { message: '00' }).then((r) => {
        done[name] = performance.now();
        return r;
      });
    const early = [1, 2, 3, 4].map((i) => sign(`early${i}`));
    await sleep(40);
    const reshare = c.call('POST', `/v1/keys/${keyId}/reshare`, { threshold: 3 }).then((r) => {
      done.reshare = performance.now();
      return r;
    });
    await sleep(40);
    const late = [1, 2].map((i) => sign(`late${i}`));
    const [e, rs, l] = await Promise.all([Promise.all(early), reshare, Promise.all(late)]);
    for (const r of [...e, ...l]) expect(r.status, JSON.stringify(r.body)).toBe(200);
    expect(rs.status, JSON.stringify(rs.body)).toBe(200);
    expect(rs.body.epoch).toBe(1);
    // The four early signs ran together (one lock holder at a time would give a peak of 1).
    expect(c.observed.peakConcurrent).toBeGreaterThanOrEqual(4);
    expect(e.map((r) => r.body.epoch)).toEqual([0, 0, 0, 0]);
    for (let i = 1; i <= 4; i++) expect(done.reshare).toBeGreaterThan(done[`early${i}`] as number);
    // Sent while the reshare waited: held back until it committed, then signed with epoch 1.
    expect(l.map((r) => r.body.epoch)).toEqual([1, 1]);
    expect(l.map((r) => r.body.signers.length)).toEqual([3, 3]);
  });
});
