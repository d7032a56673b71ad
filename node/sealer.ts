/**
 * A Sealer encrypts a node's secrets (key shares, the libp2p identity key) so that they touch disk
 * only sealed. Two backends implement it: `sealer-pkcs11.ts` (an HSM through PKCS#11; SoftHSM2 in
 * tests) and `sealer-software.ts` (AES-256-GCM under a passphrase-derived key, the embedded default).
 *
 * Every seal binds its context as AES-GCM associated data, so a sealed blob moved to another key,
 * epoch or node fails to open. Errors are `InfraError` with code `SealError` (tampered, foreign or
 * wrong-context ciphertext) or `SealerUnavailable` (wrong PIN or passphrase, missing token or
 * library); a sealer never falls back to anything weaker.
 */

/** What a sealed blob is bound to. `scope` names the HSM key (one per node and key epoch). */
export type SealContext = {
  /** `identity` for the node's libp2p key, otherwise `<keyId>/<epoch>`. One HSM key per scope. */
  readonly scope: string;
  readonly nodeId: string;
  /** Free-form purpose, e.g. `share`, `identity`. Bound as associated data too. */
  readonly purpose: string;
};

export interface Sealer {
  /** `pkcs11` or `software`; logged at start. */
  readonly kind: 'pkcs11' | 'software';
  /** Seals plaintext; the result is self-describing (version, scope, iv, tag) and safe to store. */
  seal(ctx: SealContext, plaintext: Uint8Array): Promise<Uint8Array>;
  /**
   * Optional: makes the scope's key ahead of its first `seal` (an HSM key generation is slow), so a
   * key event can overlap it with its protocol rounds. Refuses a destroyed scope, as `seal` does.
   */
  prepareScope?(ctx: SealContext): Promise<void>;
  /** Opens a blob sealed with the same context. Throws InfraError('SealError') otherwise. */
  unseal(ctx: SealContext, sealed: Uint8Array): Promise<Uint8Array>;
  /**
   * Destroys the key of a scope (an epoch's HSM key) and leaves a tombstone: blobs of that scope
   * can never be opened again, and a later `seal` in that scope is refused (SealError), never given
   * a fresh key. Idempotent. A failure is an InfraError; the node records the scope and retries
   * (node/scope-cleanup.ts).
   */
  destroyScope(scope: string): Promise<void>;
  /** The scopes that have a live key (not destroyed), e.g. to find orphaned epochs. */
  listScopes(): Promise<string[]>;
  close(): Promise<void>;
}

/** Where a sealer records destroyed scopes (synced before the key is destroyed). */
export interface ScopeTombstones {
  has(scope: string): Promise<boolean>;
  add(scope: string): Promise<void>;
}
