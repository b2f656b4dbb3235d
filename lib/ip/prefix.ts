/**
 * Pure address maths for CIDR strings ("10.1.2.3/24", "fd00::5/64"):
 * parse, mask to the network, next address, containment, canonical text.
 * Addresses are BigInts so IPv4 and IPv6 share one code path.
 */

export type Family = 4 | 6;

export interface ParsedPrefix {
  family: Family;
  /** The address as written (host bits kept). */
  addr: bigint;
  prefixLen: number;
}

const BITS: Record<Family, number> = { 4: 32, 6: 128 };

// The address grammar node:net's isIP accepts (dotted decimal without leading
// zeros; RFC 4291 text forms, an embedded IPv4 tail, a %zone suffix), written
// out here because evaluating node:net costs ~2 ms of a Bun executable's start.
const V4_SEG = '(?:25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9][0-9]|[0-9])';
const V4 = `(?:${V4_SEG}\\.){3}${V4_SEG}`;
const V6_SEG = '(?:[0-9a-fA-F]{1,4})';
const IPV4_RE = new RegExp(`^${V4}$`);
const IPV6_RE = new RegExp(
  '^(?:' +
    [
      `(?:${V6_SEG}:){7}(?:${V6_SEG}|:)`,
      `(?:${V6_SEG}:){6}(?:${V4}|:${V6_SEG}|:)`,
      `(?:${V6_SEG}:){5}(?::${V4}|(?::${V6_SEG}){1,2}|:)`,
      `(?:${V6_SEG}:){4}(?:(?::${V6_SEG}){0,1}:${V4}|(?::${V6_SEG}){1,3}|:)`,
      `(?:${V6_SEG}:){3}(?:(?::${V6_SEG}){0,2}:${V4}|(?::${V6_SEG}){1,4}|:)`,
      `(?:${V6_SEG}:){2}(?:(?::${V6_SEG}){0,3}:${V4}|(?::${V6_SEG}){1,5}|:)`,
      `(?:${V6_SEG}:){1}(?:(?::${V6_SEG}){0,4}:${V4}|(?::${V6_SEG}){1,6}|:)`,
      `(?::(?:(?::${V6_SEG}){0,5}:${V4}|(?::${V6_SEG}){1,7}|:))`,
    ].join('|') +
    ')(?:%[0-9a-zA-Z.:-]{1,})?$',
);

/** 4 or 6 for an IPv4 or IPv6 address in text form, else 0: the same answers as node:net's isIP (see the unit test). */
export function ipFamily(text: string): 0 | Family {
  if (IPV4_RE.test(text)) return 4;
  if (IPV6_RE.test(text)) return 6;
  return 0;
}

export function parseAddr(text: string): { family: Family; addr: bigint } {
  const family = ipFamily(text);
  if (family === 4) {
    const parts = text.split('.').map(Number);
    return { family: 4, addr: parts.reduce((acc, p) => (acc << 8n) | BigInt(p), 0n) };
  }
  if (family === 6) {
    let head = text;
    let tailV4: bigint | undefined;
    const lastColon = head.lastIndexOf(':');
    if (head.slice(lastColon + 1).includes('.')) {
      tailV4 = parseAddr(head.slice(lastColon + 1)).addr;
      head = `${head.slice(0, lastColon + 1)}0:0`;
    }
    const [left = '', right] = head.split('::');
    const l = left ? left.split(':') : [];
    const r = right !== undefined && right !== '' ? right.split(':') : [];
    const groups = right === undefined ? l : [...l, ...Array<string>(8 - l.length - r.length).fill('0'), ...r];
    let v = groups.reduce((acc, g) => (acc << 16n) | BigInt(parseInt(g, 16)), 0n);
    if (tailV4 !== undefined) v = (v & ~0xffffffffn) | tailV4;
    return { family: 6, addr: v };
  }
  throw new Error(`invalid IP address "${text}"`);
}

export function parsePrefix(cidr: string): ParsedPrefix {
  const slash = cidr.indexOf('/');
  const ipText = slash < 0 ? cidr : cidr.slice(0, slash);
  const { family, addr } = parseAddr(ipText);
  const prefixLen = slash < 0 ? BITS[family] : Number(cidr.slice(slash + 1));
  if (!Number.isInteger(prefixLen) || prefixLen < 0 || prefixLen > BITS[family] || (slash >= 0 && !/^\d+$/.test(cidr.slice(slash + 1)))) {
    throw new Error(`invalid CIDR address "${cidr}"`);
  }
  return { family, addr, prefixLen };
}

export function formatAddr(family: Family, addr: bigint): string {
  if (family === 4) return [24n, 16n, 8n, 0n].map((s) => String((addr >> s) & 0xffn)).join('.');
  const groups: number[] = [];
  for (let i = 7; i >= 0; i--) groups.push(Number((addr >> BigInt(i * 16)) & 0xffffn));
  // Longest run of zero groups (length >= 2) becomes "::" (RFC 5952).
  let bestStart = -1;
  let bestLen = 0;
  for (let i = 0; i < 8; ) {
    if (groups[i] !== 0) {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && groups[j] === 0) j++;
    if (j - i > bestLen && j - i >= 2) {
      bestStart = i;
      bestLen = j - i;
    }
    i = j;
  }
  const hex = groups.map((g) => g.toString(16));
  if (bestStart < 0) return hex.join(':');
  return `${hex.slice(0, bestStart).join(':')}::${hex.slice(bestStart + bestLen).join(':')}`;
}

function mask(family: Family, prefixLen: number): bigint {
  const bits = BITS[family];
  return ((1n << BigInt(bits)) - 1n) ^ ((1n << BigInt(bits - prefixLen)) - 1n);
}

/** "10.1.2.3/24" -> "10.1.2.0/24". */
export function networkOf(cidr: string): string {
  const p = parsePrefix(cidr);
  return `${formatAddr(p.family, p.addr & mask(p.family, p.prefixLen))}/${p.prefixLen}`;
}

/** The address part of a CIDR, canonical: "10.1.2.3/24" -> "10.1.2.3". */
export function addrOf(cidr: string): string {
  const p = parsePrefix(cidr);
  return formatAddr(p.family, p.addr);
}

export function familyOf(cidrOrAddr: string): Family {
  return parsePrefix(cidrOrAddr).family;
}

/** The first usable address of the subnet: network + 1 (the reference's default gateway). */
export function firstHostOf(cidr: string): string {
  const p = parsePrefix(cidr);
  return formatAddr(p.family, (p.addr & mask(p.family, p.prefixLen)) + 1n);
}

/** Does `cidr` contain address `ip`? */
export function prefixContains(cidr: string, ip: string): boolean {
  const p = parsePrefix(cidr);
  const a = parseAddr(ip);
  if (a.family !== p.family) return false;
  const m = mask(p.family, p.prefixLen);
  return (a.addr & m) === (p.addr & m);
}

/** Canonical CIDR text keeping host bits: "fd00:0::5/64" -> "fd00::5/64". */
export function canonicalCidr(cidr: string): string {
  const p = parsePrefix(cidr);
  return `${formatAddr(p.family, p.addr)}/${p.prefixLen}`;
}

/** The all-zero route destination of a family. */
export function defaultDst(family: Family): string {
  return family === 4 ? '0.0.0.0/0' : '::/0';
}
