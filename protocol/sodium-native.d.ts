// The part of sodium-native (libsodium bindings, no bundled types) that protocol/ uses. Functions
// throw on a libsodium failure status (e.g. a zero scalar or an identity result).
declare module 'sodium-native' {
  type Bytes = Uint8Array;
  const sodium: {
    crypto_core_ed25519_is_valid_point(p: Bytes): boolean;
    crypto_core_ed25519_add(r: Bytes, p: Bytes, q: Bytes): void;
    crypto_core_ed25519_sub(r: Bytes, p: Bytes, q: Bytes): void;
    crypto_scalarmult_ed25519_noclamp(q: Bytes, n: Bytes, p: Bytes): void;
    crypto_scalarmult_ed25519_base_noclamp(q: Bytes, n: Bytes): void;
    crypto_sign_verify_detached(sig: Bytes, msg: Bytes, pk: Bytes): boolean;
    crypto_hash_sha512(out: Bytes, msg: Bytes): void;
    crypto_hash_sha256(out: Bytes, msg: Bytes): void;
    sodium_memzero(b: Bytes): void;
    // Recovery officer keys (client/officer-key.ts): X25519 sealed boxes, Argon2id, XChaCha20-Poly1305.
    crypto_box_keypair(pk: Bytes, sk: Bytes): void;
    crypto_box_seal(c: Bytes, m: Bytes, pk: Bytes): void;
    /** False when the box was not sealed to this key pair or was altered. */
    crypto_box_seal_open(m: Bytes, c: Bytes, pk: Bytes, sk: Bytes): boolean;
    crypto_scalarmult_base(q: Bytes, n: Bytes): void;
    crypto_pwhash(
      out: Bytes,
      passwd: Bytes,
      salt: Bytes,
      opslimit: number,
      memlimit: number,
      alg: number,
    ): void;
    /** Returns the ciphertext length. */
    crypto_aead_xchacha20poly1305_ietf_encrypt(
      c: Bytes,
      m: Bytes,
      ad: Bytes | null,
      nsec: null,
      npub: Bytes,
      k: Bytes,
    ): number;
    /** Returns the plaintext length; throws when the tag does not verify. */
    crypto_aead_xchacha20poly1305_ietf_decrypt(
      m: Bytes,
      nsec: null,
      c: Bytes,
      ad: Bytes | null,
      npub: Bytes,
      k: Bytes,
    ): number;
    randombytes_buf(b: Bytes): void;
    /** Guarded, locked memory (a Buffer with `secure: true`). */
    sodium_malloc(size: number): Uint8Array;
    readonly crypto_box_SEALBYTES: number;
    readonly crypto_box_PUBLICKEYBYTES: number;
    readonly crypto_box_SECRETKEYBYTES: number;
    readonly crypto_pwhash_ALG_ARGON2ID13: number;
    readonly crypto_pwhash_SALTBYTES: number;
    readonly crypto_pwhash_OPSLIMIT_MODERATE: number;
    readonly crypto_pwhash_MEMLIMIT_MODERATE: number;
    readonly crypto_pwhash_OPSLIMIT_MIN: number;
    readonly crypto_pwhash_MEMLIMIT_MIN: number;
    readonly crypto_aead_xchacha20poly1305_ietf_NPUBBYTES: number;
    readonly crypto_aead_xchacha20poly1305_ietf_KEYBYTES: number;
    readonly crypto_aead_xchacha20poly1305_ietf_ABYTES: number;
  };
  export default sodium;
}
