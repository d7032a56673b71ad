/**
 * Child process for test/audit-log.test.ts (group commit under a crash): opens the audit log in
 * `<dir>` (a LevelDB, sublevel `audit`) and keeps `<concurrency>` appends outstanding until it is
 * killed, so several group-committed batches are always being written or synced. It prints
 * `ready <seq>` once open, then one line `<seq> <hash>` per append after its promise resolved, i.e.
 * only acknowledged records (stdout to a pipe is synchronous on Linux: a line the parent reads was
 * written before anything that follows it). Crash points (KMS_CRASH_AT) apply as in any process.
 *
 * Usage: node test/helpers/audit-append-child.ts <dir> <concurrency>
 */
import { Level } from 'level';
import { AuditLog } from '../../common/audit-log.ts';

const [dir, concurrencyArg] = process.argv.slice(2);
const concurrency = Number(concurrencyArg);
if (!dir || !Number.isSafeInteger(concurrency) || concurrency < 1)
  throw new Error('usage: audit-append-child.ts <dir> <concurrency>');

const db = new Level(dir);
await db.open();
const log = await AuditLog.open(db.sublevel('audit'));
process.stdout.write(`ready ${log.head().seq}\n`);

async function worker(w: number): Promise<void> {
  for (let i = 0; ; i++) {
    const r = await log.append({ op: 'test', w, i, pid: process.pid });
    process.stdout.write(`${r.seq} ${r.hash}\n`);
  }
}

await Promise.all(Array.from({ length: concurrency }, (_, w) => worker(w)));
