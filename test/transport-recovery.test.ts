/**
 * The transport after a network cut heals: packets really dropped (nftables on the loopback of a
 * network namespace of the test's own, test/helpers/transport-stall-child.ts), so TCP really
 * retransmits with a growing backoff on the connection the cut stalled. Without root where
 * unprivileged user namespaces are allowed (`unshare --user --map-root-user --net`); as root too.
 */
import { execFile } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';

const exec = promisify(execFile);
const CHILD = fileURLToPath(new URL('./helpers/transport-stall-child.ts', import.meta.url));
/**
 * Long enough for TCP's backoff to matter: on loopback (200 ms minimum retransmission timeout)
 * the stalled connection's resends come about 0.2, 0.6, 1.4, 3.0, 6.2 and 12.6 s into the cut,
 * so after a 7 s cut the old connection would carry nothing for about 6 s more.
 */
const CUT_MS = 7_000;
/** The deadline of the first request after the heal: well inside that backoff. */
const HEALED_MS = 3_000;
const CONCURRENCY = 10;

type Report = {
  warm: string;
  during: Record<string, number>;
  syns: number;
  afterHeal: string;
  afterHealMs: number;
  next: string;
  tcpState: string;
};

async function runStall(): Promise<Report> {
  let stdout: string;
  try {
    ({ stdout } = await exec(
      'unshare',
      [
        '--user',
        '--map-root-user',
        '--net',
        process.execPath,
        CHILD,
        String(CUT_MS),
        String(CONCURRENCY),
        String(HEALED_MS),
      ],
      { timeout: 60_000 },
    ));
  } catch (e) {
    const err = e as { stderr?: string; message?: string };
    throw new Error(
      'the stall child failed; it needs `unshare --user --net` (unprivileged user namespaces, or root), ' +
        `iproute2 and nftables: ${(err.stderr || err.message || String(e)).trim().slice(-2000)}`,
    );
  }
  return JSON.parse(stdout) as Report;
}

describe('transport recovery after a real cut (own network namespace, nftables drops)', () => {
  it('closes the connection the cut stalled, redials without a storm, and the first request after the heal succeeds', async () => {
    const r = await runStall();
    const report = JSON.stringify(r, null, 1);
    expect(r.warm).toBe('ok');
    // During the cut requests fail typed: timeouts, and the stalled connection closed under them.
    expect(
      Object.keys(r.during).every((c) => ['Timeout', 'TransportError', 'QuorumUnavailable'].includes(c)),
      report,
    ).toBe(true);
    expect(r.during.TransportError ?? 0, report).toBeGreaterThan(0);
    // The closed connection was redialed during the cut (SYNs dropped), one dial at a time: at
    // most about one attempt a second with its one SYN resend, not one per waiting request.
    expect(r.syns, report).toBeGreaterThan(0);
    expect(r.syns, report).toBeLessThanOrEqual(2 * Math.ceil(CUT_MS / 1000));
    // Healed: the first request is answered within its deadline, on a fresh connection, instead
    // of waiting seconds for the stalled connection's next retransmission.
    expect(r.afterHeal, report).toBe('ok');
    expect(r.next, report).toBe('ok');
  }, 60_000);
});
