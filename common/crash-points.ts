/**
 * Named crash points for fault-injection tests (threats-and-faults F-nn, issue 7's crash matrix).
 * A process started with `KMS_CRASH_AT=<name>` (comma-separated for several) and
 * `KMS_ENABLE_CRASH_POINTS=1` kills itself with SIGKILL the first time it reaches that point,
 * exactly like `kill -9` at that instant. Without the explicit enable flag the hooks do nothing,
 * so a stray environment variable in production cannot crash a node.
 *
 * Names (test/crash-matrix.test.ts runs them on real processes):
 * - node, key events (kind = dkg, refresh, reshare; rounds from protocol/dkg.ts and reshare.ts):
 *   `<round>.sending` before a round's messages leave: `dkg.r1.sending`, `dkg.r2.sending`,
 *   `dkg.echo.sending`, `reshare.deal.sending`, `reshare.echo.sending`, `refresh.deal.sending`,
 *   `refresh.echo.sending`;
 *   `<kind>.pending.stored` new share sealed and stored as PENDING;
 *   `<kind>.confirm.sending` pending share stored, confirmation not sent yet;
 *   `<kind>.cert.complete` every confirmation received, new epoch not yet active;
 *   `<kind>.activated` new epoch active, old epoch's sealed share not yet destroyed in the HSM;
 *   `<kind>.old.deleted` old epoch destroyed, answer not sent yet;
 *   `reshare.dealt` a dealer leaving the committee has dealt, answer not sent yet;
 * - node, signing: `sign.commit.sent` nonce made (memory only), commitment not answered yet;
 *   `sign.share.sent` nonce consumed and share computed, not answered yet; one round (issue 17,
 *   node/sign-one.ts): `sign.one.taken` pre-published nonce taken out of the pool, nothing checked
 *   yet; `sign.one.sent` share computed (and refill commitments made), not answered yet;
 * - coordinator (coordinator/cluster-libp2p.ts): `coordinator.event.before-commit` every member
 *   ran the session, no commit-epoch / retire sent; `coordinator.event.after-commit` members
 *   committed, the key store not yet written; `coordinator.sign.after-commit` commitments
 *   collected, no share asked; `coordinator.sign.after-share` shares collected, not aggregated.
 * - any process's audit log (common/audit-log.ts, group commit): `audit.commit.before` records
 *   chained and queued, their batch not written; `audit.commit.after` the batch synced, none of
 *   its appends answered yet (test/audit-log.test.ts).
 */
const enabled = process.env.KMS_ENABLE_CRASH_POINTS === '1';
const points = new Set((process.env.KMS_CRASH_AT ?? '').split(',').filter((s) => s.length > 0));

export function crashPoint(name: string): void {
  if (!enabled || !points.has(name)) return;
  process.stderr.write(`crash point ${name}: killing the process\n`);
  process.kill(process.pid, 'SIGKILL');
}
