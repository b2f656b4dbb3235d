/**
 * Config field readers every interface plugin (ptp, macvlan, ipvlan, vlan,
 * host-device, dummy) shares: pure, and a bad value is a code 7 error that
 * names the field. Also the IPAM block's type and the reference's
 * "dns set" test.
 */
import { CniError, ErrorCode } from './errors.ts';
import type { Dns, NetConf } from './types.ts';

export const badConfig = (msg: string, details = '') => new CniError(ErrorCode.InvalidNetworkConfig, msg, details);

type Raw = Record<string, unknown>;

/** An optional boolean key (absent/null = false). */
export function readBool(raw: Raw, key: string): boolean {
  const v = raw[key];
  if (v === undefined || v === null) return false;
  if (typeof v !== 'boolean') throw badConfig(`invalid "${key}": must be a boolean`, `got ${JSON.stringify(v)}`);
  return v;
}

/** An optional integer key (absent/null = 0). */
export function readInt(raw: Raw, key: string): number {
  const v = raw[key];
  if (v === undefined || v === null) return 0;
  if (typeof v !== 'number' || !Number.isInteger(v)) throw badConfig(`invalid "${key}": must be an integer`, `got ${JSON.stringify(v)}`);
  return v;
}

/** An optional string key (absent/null = ""). */
export function readString(raw: Raw, key: string): string {
  const v = raw[key];
  if (v === undefined || v === null) return '';
  if (typeof v !== 'string') throw badConfig(`invalid "${key}": must be a string`, `got ${JSON.stringify(v)}`);
  return v;
}

const IFNAME_RE = /^[^/:\s]{1,15}$/u;

/** An interface name as the kernel accepts it (1-15 bytes, no "/", ":" or whitespace, not "." or ".."). */
export function isIfName(v: string): boolean {
  return IFNAME_RE.test(v) && Buffer.byteLength(v) <= 15 && v !== '.' && v !== '..';
}

const MAC_RE = /^[0-9a-fA-F]{2}(:[0-9a-fA-F]{2}){5}$/;

/** A MAC address ("aa:bb:cc:dd:ee:ff", lower-cased) or undefined when empty; code 7 naming `where` otherwise. */
export function readMac(where: string, v: unknown): string | undefined {
  if (v === undefined || v === null || v === '') return undefined;
  if (typeof v !== 'string' || !MAC_RE.test(v)) throw badConfig(`invalid MAC address in ${where}`, JSON.stringify(v));
  return v.toLowerCase();
}

/** The IPAM plugin type, or undefined when there is no (typed) ipam block. */
export function ipamTypeOf(conf: NetConf): string | undefined {
  const ipam = conf.ipam as unknown;
  if (ipam === undefined || ipam === null) return undefined;
  if (typeof ipam !== 'object' || Array.isArray(ipam)) throw badConfig('invalid "ipam": must be an object');
  const t = (ipam as Raw).type;
  if (t === undefined || t === null || t === '') return undefined;
  if (typeof t !== 'string') throw badConfig('invalid "ipam.type": must be a string');
  return t;
}

/** The config's `dns` when any field is set (the reference's dnsConfSet), else undefined. */
export function dnsOf(conf: NetConf): Dns | undefined {
  const d = conf.dns;
  if (!d || typeof d !== 'object') return undefined;
  const set = d.nameservers !== undefined || d.search !== undefined || d.options !== undefined || !!d.domain;
  return set ? d : undefined;
}
