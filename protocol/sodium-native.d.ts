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
  };
  export default sodium;
}
