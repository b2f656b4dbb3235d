/**
 * Names and tags shared with the Go reference plugins. They are public
 * contract: hosts that ran the reference depend on them, so never change them.
 */
import { digestHex } from '../digest.ts';

/** Longest iptables chain name the reference produces. */
export const MAX_CHAIN_LENGTH = 28;
export const CHAIN_PREFIX = 'CNI-';

/** `prefix` followed by sha512(toHash) in hex, cut to `length` characters. */
export function formatHashWithPrefix(length: number, prefix: string, toHash: string): string {
  if (prefix.length >= length || length > 128) throw new Error('invalid hash length');
  return `${prefix}${digestHex('sha512', toHash)}`.slice(0, length);
}

/** Per-container chain: "CNI-" + 24 hex of sha512(name + id) (28 characters). */
export function formatChainName(name: string, id: string, prefix = ''): string {
  return formatHashWithPrefix(MAX_CHAIN_LENGTH, CHAIN_PREFIX + prefix, name + id);
}

/** Go's %q of a plain string: quotes, with backslash escapes for \ and ". */
export function goQuote(s: string): string {
  return JSON.stringify(s);
}

/** The tag on every iptables rule of a container: name: "<net>" id: "<cid>". */
export function formatComment(name: string, id: string): string {
  return `name: ${goQuote(name)} id: ${goQuote(id)}`;
}
