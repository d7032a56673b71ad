/**
 * Named crash points for fault-injection tests (threats-and-faults F-nn, issue 7's crash matrix).
 * A process started with `KMS_CRASH_AT=<name>` (comma-separated for several) and
 * `KMS_ENABLE_CRASH_POINTS=1` kills itself with SIGKILL the first time it reaches that point,
 * exactly like `kill -9` at that instant. Without the explicit enable flag the hooks do nothing,
 * so a stray environment variable in production cannot crash a node.
 *
 * Names: `<kind>.confirm.sending` (pending share stored, confirmation not sent yet),
 * `<kind>.pending.stored`, `<kind>.activated`, `<kind>.old.deleted` for kind in dkg, refresh,
 * reshare; `sign.commit.sent`, `sign.share.sent`.
 */
const enabled = process.env.KMS_ENABLE_CRASH_POINTS === '1';
const points = new Set((process.env.KMS_CRASH_AT ?? '').split(',').filter((s) => s.length > 0));

export function crashPoint(name: string): void {
  if (!enabled || !points.has(name)) return;
  process.stderr.write(`crash point ${name}: killing the process\n`);
  process.kill(process.pid, 'SIGKILL');
}
