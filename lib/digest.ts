/**
 * Digests and random bytes without importing node:crypto. In the Bun
 * executables, evaluating node:crypto costs about 2 ms of every call's
 * start-up (measured on a compiled program: 4.8 ms without it, 6.7 ms with
 * it), so there the native Bun.CryptoHasher and the WebCrypto global are used;
 * on Node (the unit tests) node:crypto, loaded on first use.
 */

export type DigestAlgorithm = 'sha256' | 'sha512';

/** The `algorithm` digest of `data` (UTF-8 for a string), as bytes. */
export function digest(algorithm: DigestAlgorithm, data: string): Uint8Array {
  if (typeof Bun !== 'undefined') return new Bun.CryptoHasher(algorithm).update(data).digest() as Uint8Array;
  const nodeCrypto = process.getBuiltinModule('node:crypto') as typeof import('node:crypto');
  return nodeCrypto.createHash(algorithm).update(data).digest();
}

/** The `algorithm` digest of `data` in lower-case hex. */
export function digestHex(algorithm: DigestAlgorithm, data: string): string {
  return toHex(digest(algorithm, data));
}

/** `n` cryptographically random bytes (WebCrypto's getRandomValues, a global in Bun and Node). */
export function randomBytes(n: number): Uint8Array {
  return globalThis.crypto.getRandomValues(new Uint8Array(n));
}

/** Bytes as lower-case hex. */
export function toHex(bytes: Uint8Array): string {
  let out = '';
  for (const b of bytes) out += b.toString(16).padStart(2, '0');
  return out;
}

/** A host-side veth name: "veth" + 8 random hex digits, as the reference's ip.RandomVethName. */
export function randomVethName(): string {
  return `veth${toHex(randomBytes(4))}`;
}
