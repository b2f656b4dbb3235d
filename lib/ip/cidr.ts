/**
 * Pure IP address and CIDR maths, shared by IPAM and the plugins.
 *
 * Addresses are a family plus a bigint value. Parsing follows Go's net
 * package (what the reference plugins use): dotted quads without leading
 * zeros, RFC 4291 IPv6 text, and IPv4-mapped IPv6 (::ffff:a.b.c.d) is
 * canonicalised to IPv4. Formatting matches Go's net.IP.String(), because
 * host-local names its reservation files with it and the two implementations
 * must agree on every file name.
 */

import { formatAddr } from './prefix.ts';

export type Family = 4 | 6;

export interface Ip {
  family: Family;
  value: bigint;
}

/** An address with a prefix length; the address may have host bits set. */
export interface Cidr {
  ip: Ip;
  prefix: number;
}

export function familyBits(family: Family): number {
  return family === 4 ? 32 : 128;
}

const V4_RE = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/;

function parseV4Value(s: string): bigint | undefined {
  const m = V4_RE.exec(s);
  if (!m) return undefined;
  let v = 0n;
  for (let i = 1; i <= 4; i++) {
    const part = m[i] as string;
    if (part.length > 1 && part.startsWith('0')) return undefined; // Go rejects leading zeros
    const n = Number(part);
    if (n > 255) return undefined;
    v = (v << 8n) | BigInt(n);
  }
  return v;
}

function parseGroups(part: string): bigint[] | undefined {
  if (part === '') return [];
  const out: bigint[] = [];
  const items = part.split(':');
  for (let i = 0; i < items.length; i++) {
    const g = items[i] as string;
    if (i === items.length - 1 && g.includes('.')) {
      const v4 = parseV4Value(g);
      if (v4 === undefined) return undefined;
      out.push(v4 >> 16n, v4 & 0xffffn);
      continue;
    }
    if (!/^[0-9a-fA-F]{1,4}$/.test(g)) return undefined;
    out.push(BigInt(`0x${g}`));
  }
  return out;
}

function parseV6Value(s: string): bigint | undefined {
  if (!s.includes(':')) return undefined;
  const halves = s.split('::');
  if (halves.length > 2) return undefined;
  let groups: bigint[];
  if (halves.length === 2) {
    const head = parseGroups(halves[0] as string);
    const tail = parseGroups(halves[1] as string);
    if (!head || !tail || head.length + tail.length > 7) return undefined;
    groups = [...head, ...new Array<bigint>(8 - head.length - tail.length).fill(0n), ...tail];
  } else {
    const all = parseGroups(s);
    if (!all || all.length !== 8) return undefined;
    groups = all;
  }
  return groups.reduce((acc, g) => (acc << 16n) | g, 0n);
}

/** Parse an address; undefined when it is neither IPv4 nor IPv6. */
export function parseIp(text: string): Ip | undefined {
  const s = text.trim();
  const v4 = parseV4Value(s);
  if (v4 !== undefined) return { family: 4, value: v4 };
  const v6 = parseV6Value(s);
  if (v6 === undefined) return undefined;
  // IPv4-mapped IPv6 is IPv4, as Go's To4() makes it.
  if (v6 >> 32n === 0xffffn) return { family: 4, value: v6 & 0xffffffffn };
  return { family: 6, value: v6 };
}

/** Go's net.IP.String(): dotted quad, or RFC 5952 IPv6 (longest zero run of >= 2 groups compressed); an IPv4-mapped IPv6 address prints as IPv4, as Go does. */
export function formatIp(ip: Ip): string {
  if (ip.family === 6 && ip.value >> 32n === 0xffffn) return formatAddr(4, ip.value & 0xffffffffn);
  return formatAddr(ip.family, ip.value);
}

/** Parse "addr/prefix". The address keeps its host bits (like Go's types.IPNet). */
export function parseCidr(text: string): Cidr | undefined {
  const s = text.trim();
  const slash = s.indexOf('/');
  if (slash < 0) return undefined;
  const ipText = s.slice(0, slash);
  const prefixText = s.slice(slash + 1);
  if (!/^\d{1,3}$/.test(prefixText)) return undefined;
  // Go's ParseCIDR does not map "::ffff:a.b.c.d/n" to IPv4: keep the textual family.
  const v4 = parseV4Value(ipText);
  let ip: Ip | undefined;
  if (v4 !== undefined) ip = { family: 4, value: v4 };
  else {
    const v6 = parseV6Value(ipText);
    if (v6 !== undefined) ip = { family: 6, value: v6 };
  }
  if (!ip) return undefined;
  const prefix = Number(prefixText);
  if (prefix > familyBits(ip.family)) return undefined;
  return { ip, prefix };
}

export function formatCidr(ip: Ip, prefix: number): string {
  return `${formatIp(ip)}/${prefix}`;
}

export function ipEquals(a: Ip | undefined, b: Ip | undefined): boolean {
  return !!a && !!b && a.family === b.family && a.value === b.value;
}

/** Order within a family; IPv4 sorts before IPv6. */
export function compareIp(a: Ip, b: Ip): number {
  if (a.family !== b.family) return a.family - b.family;
  return a.value < b.value ? -1 : a.value > b.value ? 1 : 0;
}

function allOnes(family: Family): bigint {
  return (1n << BigInt(familyBits(family))) - 1n;
}

export function prefixMask(family: Family, prefix: number): bigint {
  const bits = BigInt(familyBits(family));
  return allOnes(family) ^ ((1n << (bits - BigInt(prefix))) - 1n);
}

/** The network address of a CIDR (host bits cleared). */
export function networkAddress(c: Cidr): Ip {
  return { family: c.ip.family, value: c.ip.value & prefixMask(c.ip.family, c.prefix) };
}

/** The last address of a CIDR (the IPv4 broadcast address). */
export function lastAddress(c: Cidr): Ip {
  const hostMask = allOnes(c.ip.family) ^ prefixMask(c.ip.family, c.prefix);
  return { family: c.ip.family, value: (c.ip.value & prefixMask(c.ip.family, c.prefix)) | hostMask };
}

export function hasHostBits(c: Cidr): boolean {
  return networkAddress(c).value !== c.ip.value;
}

export function cidrContains(c: Cidr, ip: Ip): boolean {
  if (c.ip.family !== ip.family) return false;
  const mask = prefixMask(ip.family, c.prefix);
  return (ip.value & mask) === (c.ip.value & mask);
}

/** Number of addresses in a CIDR. */
export function cidrSize(c: Cidr): bigint {
  return 1n << BigInt(familyBits(c.ip.family) - c.prefix);
}

/** The next address, wrapping to zero past the top of the family (as Go's ip.NextIP). */
export function nextIp(ip: Ip): Ip {
  return { family: ip.family, value: (ip.value + 1n) & allOnes(ip.family) };
}

export function prevIp(ip: Ip): Ip {
  return { family: ip.family, value: (ip.value - 1n) & allOnes(ip.family) };
}

export function addToIp(ip: Ip, n: bigint): Ip {
  return { family: ip.family, value: (ip.value + n) & allOnes(ip.family) };
}

/** Parse "addr" or "addr/prefix" and return only the address (Go's ip.ParseIP in pkg/ip). */
export function parseIpOrCidrAddress(text: string): Ip | undefined {
  if (text.includes('/')) {
    const c = parseCidr(text);
    if (!c) return undefined;
    // Canonicalise IPv4-mapped IPv6 to IPv4 as Go's To4() does.
    return parseIp(formatIp(c.ip));
  }
  return parseIp(text);
}
