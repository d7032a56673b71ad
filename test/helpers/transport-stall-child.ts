/**
 * Child process for test/transport-recovery.test.ts: runs inside a fresh network namespace of its
 * own (`unshare --user --map-root-user --net`, no real root needed where unprivileged user
 * namespaces are allowed), so it may drop packets on its loopback with nftables without touching
 * the machine's network.
 *
 * Two transports talk over 127.0.0.1; then every packet to and from the server's port is dropped
 * (silently, no RST or ICMP, as on a broken link) for `cutMs` while the client keeps `concurrency`
 * requests outstanding, so TCP retransmits with a growing backoff on the warm connection; then the
 * drop rules are removed and one request with a `healedMs` deadline is made at once. Reports on
 * stdout, as one JSON line: the error codes seen during the cut, the SYNs sent to the server during
 * the cut (dials), and the outcome of the request after the heal.
 *
 * Usage: node test/helpers/transport-stall-child.ts <cutMs> <concurrency> <healedMs>
 */
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { isKmsError } from '../../protocol/errors.ts';
import { generateIdentityKey } from '../../net/identity.ts';
import { createTransport, PROTOCOL_RPC, type Transport } from '../../net/transport.ts';

const exec = promisify(execFile);
const [cutMs, concurrency, healedMs] = process.argv.slice(2).map(Number);
if (!cutMs || !concurrency || !healedMs)
  throw new Error('usage: transport-stall-child.ts <cutMs> <concurrency> <healedMs>');

const TABLE = 'stall';
const nft = (...args: string[]) => exec('nft', args);

await exec('ip', ['link', 'set', 'lo', 'up']);
await nft('add', 'table', 'inet', TABLE);
await nft('add', 'chain', 'inet', TABLE, 'input', '{ type filter hook input priority 0 ; policy accept ; }');

const listen = ['/ip4/127.0.0.1/tcp/0'];
const client = await createTransport({ privateKey: await generateIdentityKey(), listen: [], allow: [] });
const server = await createTransport({
  privateKey: await generateIdentityKey(),
  listen,
  allow: [{ peerId: client.peerId, addresses: [] }],
});
await client.setAllowList([{ peerId: server.peerId, addresses: server.addresses() }]);
await server.handle(PROTOCOL_RPC, async (_from, req) => req);
const port = /\/tcp\/(\d+)\//.exec(server.addresses()[0] ?? '')?.[1];
if (port === undefined) throw new Error(`no tcp port in ${server.addresses().join(', ')}`);

const codeOf = async (p: Promise<unknown>): Promise<string> => {
  try {
    await p;
    return 'ok';
  } catch (e) {
    return isKmsError(e) ? e.code : `untyped:${String(e)}`;
  }
};
const ask = (t: Transport, timeoutMs: number) =>
  codeOf(client.request(t.peerId, PROTOCOL_RPC, new Uint8Array([1, 2, 3]), { timeoutMs }));

const warm = await ask(server, 3_000);

// The cut: SYNs (counted on their own), then everything else to or from the server's port.
await nft(
  'add',
  'rule',
  'inet',
  TABLE,
  'input',
  'tcp',
  'dport',
  port,
  'tcp',
  'flags',
  '&',
  '(syn|ack)',
  '==',
  'syn',
  'counter',
  'drop',
);
await nft('add', 'rule', 'inet', TABLE, 'input', 'tcp', 'dport', port, 'counter', 'drop');
await nft('add', 'rule', 'inet', TABLE, 'input', 'tcp', 'sport', port, 'counter', 'drop');
const cutEnds = Date.now() + cutMs;
const during: Record<string, number> = {};
await Promise.all(
  Array.from({ length: concurrency }, async () => {
    while (Date.now() < cutEnds) {
      const code = await ask(server, Math.min(1_500, Math.max(1, cutEnds - Date.now())));
      during[code] = (during[code] ?? 0) + 1;
    }
  }),
);
const rules = JSON.parse((await nft('-j', 'list', 'chain', 'inet', TABLE, 'input')).stdout) as {
  nftables: { rule?: { expr: { counter?: { packets: number } }[] } }[];
};
const counters = rules.nftables.flatMap((i) =>
  i.rule ? [i.rule.expr.find((e) => e.counter)?.counter?.packets ?? 0] : [],
);
const tcpState = (await exec('ss', ['-tin'])).stdout;

await nft('flush', 'chain', 'inet', TABLE, 'input');
const t0 = performance.now();
const afterHeal = await ask(server, healedMs);
const afterHealMs = Math.round(performance.now() - t0);
// A second one: the link carries traffic again for good.
const next = await ask(server, healedMs);

await Promise.all([client.stop(), server.stop()]);
process.stdout.write(
  `${JSON.stringify({ warm, during, syns: counters[0], dropped: counters, afterHeal, afterHealMs, next, tcpState })}\n`,
);
