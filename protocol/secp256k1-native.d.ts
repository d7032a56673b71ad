// The part of the `secp256k1` npm package (libsecp256k1 bindings, no bundled types) that protocol/
// uses. Imported as `secp256k1/bindings.js`, the native addon itself: the package's main entry
// silently falls back to a JavaScript implementation (elliptic) when the addon does not load.
// Functions throw an Error on a libsecp256k1 failure status (unparsable point, scalar out of range
// or zero, infinity result).
declare module 'secp256k1/bindings.js' {
  type Bytes = Uint8Array;
  const secp256k1: {
    contextRandomize(seed: Bytes | null): void;
    publicKeyVerify(pubkey: Bytes): boolean;
    publicKeyCreate(seckey: Bytes, compressed?: boolean): Uint8Array;
    publicKeyNegate(pubkey: Bytes, compressed?: boolean): Uint8Array;
    publicKeyCombine(pubkeys: Bytes[], compressed?: boolean): Uint8Array;
    publicKeyTweakAdd(pubkey: Bytes, tweak: Bytes, compressed?: boolean): Uint8Array;
    publicKeyTweakMul(pubkey: Bytes, tweak: Bytes, compressed?: boolean): Uint8Array;
  };
  export default secp256k1;
}
