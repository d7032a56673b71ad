/**
 * The health probe docker-compose.yml runs inside a container (the image has no curl):
 *
 *   node scripts/devnet-health.ts URL [CA_FILE]
 *
 * Exit 0 when URL answers 200 within 4 s, 1 otherwise (the answer's first line on stderr). With
 * CA_FILE (the devnet's ca.pem), an https URL is verified against that CA.
 */
import { trustCa } from './devnet-tls.ts';

const [url, caFile] = process.argv.slice(2);
if (url === undefined) {
  process.stderr.write('usage: node scripts/devnet-health.ts URL [CA_FILE]\n');
  process.exit(1);
}
try {
  if (caFile !== undefined) trustCa(caFile);
  const res = await fetch(url, { signal: AbortSignal.timeout(4_000) });
  const body = await res.text();
  if (res.status !== 200) process.stderr.write(`${res.status} ${body.split('\n')[0]}\n`);
  process.exit(res.status === 200 ? 0 : 1);
} catch (e) {
  process.stderr.write(`${url}: ${(e as Error).cause ?? (e as Error).message}\n`);
  process.exit(1);
}
