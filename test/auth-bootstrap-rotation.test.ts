/**
 * Review I-1: the bootstrap admin token has a fixed token id (`bootstrap-admin`). Idempotency
 * records are scoped by token id *and* credential, so after the configured admin token is rotated
 * the new token never replays answers stored for the old one, and the old token stops working.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Level } from 'level';
import { afterAll, describe, expect, it } from 'vitest';
import { BOOTSTRAP_TOKEN_ID, idempotencyScope, TokenStore } from '../coordinator/auth.ts';
import { IdempotencyStore } from '../coordinator/idempotency.ts';

const dir = mkdtempSync(join(tmpdir(), 'kms-auth-rot-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('bootstrap admin token rotation', () => {
  it('scopes idempotency per credential: a rotated admin token replays nothing of the old one', async () => {
    const db = new Level<string, any>(join(dir, 'db'), { valueEncoding: 'json' });
    await db.open();
    try {
      const tokens = new TokenStore(db);
      const idem = new IdempotencyStore(db);
      const oldToken = `old-admin-${'a'.repeat(40)}`;
      const newToken = `new-admin-${'b'.repeat(40)}`;

      await tokens.ensureBootstrap(oldToken);
      const oldCaller = await tokens.authenticate(`Bearer ${oldToken}`);
      expect(oldCaller.tokenId).toBe(BOOTSTRAP_TOKEN_ID);
      const begun = await idem.begin(idempotencyScope(oldCaller), 'key-1', 'fp');
      if (begun.kind !== 'new') throw new Error('expected a new request');
      await begun.finish({ status: 201, contentType: 'application/json', body: '{"old":true}' });
      // The same credential replays its stored answer.
      const replay = await idem.begin(idempotencyScope(oldCaller), 'key-1', 'fp');
      expect(replay.kind).toBe('replay');

      await tokens.ensureBootstrap(newToken);
      await expect(tokens.authenticate(`Bearer ${oldToken}`)).rejects.toMatchObject({ code: 'Unauthorized' });
      const newCaller = await tokens.authenticate(`Bearer ${newToken}`);
      expect(newCaller.tokenId).toBe(BOOTSTRAP_TOKEN_ID);
      expect(idempotencyScope(newCaller)).not.toBe(idempotencyScope(oldCaller));
      // Same idempotency key, same request: for the new credential it is a new request, not a replay.
      const again = await idem.begin(idempotencyScope(newCaller), 'key-1', 'fp');
      expect(again.kind).toBe('new');
    } finally {
      await db.close();
    }
  });
});
