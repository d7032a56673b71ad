/**
 * Key-event phase timeline (issue 17, "what dominates"): with KMS_KEY_EVENT_TIMELINE=1 in its
 * environment, a coordinator or node process writes one stderr line per phase of a DKG or key
 * event, `TL <epoch ms> <text>`, which scripts/bench/key-event-latency.ts --timeline merges across
 * the devnet's logs. Off (undefined, one check per phase) otherwise. Texts name phases, rounds and
 * node ids only: never a key, a share or a request's content.
 */
export const TL: ((text: string) => void) | undefined =
  process.env['KMS_KEY_EVENT_TIMELINE'] === '1'
    ? (text) => {
        process.stderr.write(`TL ${(performance.timeOrigin + performance.now()).toFixed(3)} ${text}\n`);
      }
    : undefined;
