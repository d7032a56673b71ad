/**
 * Opens the sealer a node's config names. Never falls back: a configured PKCS#11 sealer that
 * cannot open (missing library or token, wrong PIN, locked out) stops the node with the error.
 * PIN attempts are bounded across restarts (the guard's counter lives in the data dir).
 */
import { join } from 'node:path';
import type pino from 'pino';
import { type NodeConfig, readSecret } from './config.ts';
import { PinGuard } from './pin-guard.ts';
import type { Sealer } from './sealer.ts';
import { Pkcs11Sealer } from './sealer-pkcs11.ts';
import { SoftwareSealer, levelSealerKeyStore } from './sealer-software.ts';
import type { NodeStore } from './store.ts';

export async function openSealer(cfg: NodeConfig, store: NodeStore, log: pino.Logger): Promise<Sealer> {
  const guard = await PinGuard.open({ statePath: join(cfg.dataDir, 'pin-guard.json') });
  const s = cfg.sealer;
  if (s.kind === 'pkcs11') {
    const sealer = await Pkcs11Sealer.open({
      library: s.library,
      tokenLabel: s.tokenLabel,
      pin: readSecret(s.pinFile, 'KMS_HSM_PIN'),
      ...(s.softhsmConf ? { softhsmConf: s.softhsmConf } : {}),
      guard,
      // Destroyed scopes are recorded in the node store (why there: sealer-pkcs11.ts).
      tombstones: store.scopeTombstones(),
      // A lost token is re-opened while the node runs (F-18); loss and recovery are logged.
      log,
    });
    log.info({ library: s.library, token: s.tokenLabel }, 'PKCS#11 sealer open');
    return sealer;
  }
  const sealer = await SoftwareSealer.open({
    passphrase: readSecret(s.passphraseFile, 'KMS_PASSPHRASE'),
    keyStore: levelSealerKeyStore(store.sealerDb()),
    guard,
  });
  log.warn({}, 'software sealer: shares are sealed under a passphrase-derived key, not an HSM');
  return sealer;
}
