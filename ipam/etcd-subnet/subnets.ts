/**
 * Pure parts of the subnet lease: which subnets a cluster CIDR holds, the etcd
 * key layout, and the record a host stores under its subnet's key.
 *
 *   <prefix>/subnets/10.252.193.0-24  ->  {"hostId":"node-a","publicIp":"172.31.250.11","vtepMac":"0a:58:0a:fc:c1:00"}
 *                                         (attached to the host's etcd lease: gone one TTL after the host stops renewing)
 */
import { addToIp, formatIp, parseIp, type Cidr, type Ip } from '../../lib/ip/cidr.ts';

/** What a host publishes about its subnet: enough for every other host to program a route, an ARP and an FDB entry. */
export interface SubnetRecord {
  hostId: string;
  publicIp?: string;
  /** The MAC of the host's VXLAN device, derived from the subnet (vtepMacFor). */
  vtepMac: string;
}

export const SUBNETS_DIR = 'subnets';

/** The key prefix under which every host's subnet lives (ends with "/"). */
export function subnetsPrefix(prefix: string): string {
  return `${prefix}/${SUBNETS_DIR}/`;
}

/** The key of one subnet: "<prefix>/subnets/10.252.193.0-24" (flannel's layout, "/" replaced as it is in flannel). */
export function subnetKey(prefix: string, subnet: Cidr): string {
  return `${subnetsPrefix(prefix)}${formatIp(subnet.ip)}-${subnet.prefix}`;
}

/** The subnet a key names, or undefined for a foreign key. */
export function subnetFromKey(prefix: string, key: string): Cidr | undefined {
  const p = subnetsPrefix(prefix);
  if (!key.startsWith(p)) return undefined;
  const m = /^(\d+\.\d+\.\d+\.\d+)-(\d+)$/.exec(key.slice(p.length));
  const ip = m ? parseIp(m[1] as string) : undefined;
  if (!m || !ip || ip.family !== 4) return undefined;
  return { ip, prefix: Number(m[2]) };
}

/** How many subnets of length `len` the cluster CIDR holds. */
export function subnetCount(cluster: Cidr, len: number): number {
  return 2 ** (len - cluster.prefix);
}

/** The i-th subnet of length `len` inside the cluster CIDR. */
export function nthSubnet(cluster: Cidr, len: number, i: number): Cidr {
  return { ip: addToIp(cluster.ip, BigInt(i) << BigInt(32 - len)), prefix: len };
}

export function cidrKey(c: Cidr): string {
  return `${formatIp(c.ip)}/${c.prefix}`;
}

/**
 * The order in which a host tries free subnets: it starts at an offset from
 * its host id (hosts spread out instead of all fighting for the first free
 * one), skipping the taken ones. Losing a race only costs one more
 * transaction: the etcd compare-and-create decides, not this order.
 */
export function candidateOrder(cluster: Cidr, len: number, hostId: string, taken: ReadonlySet<string>): Cidr[] {
  const n = subnetCount(cluster, len);
  let h = 2166136261;
  for (const ch of hostId) h = Math.imul(h ^ (ch.codePointAt(0) ?? 0), 16777619) >>> 0;
  const start = h % n;
  const out: Cidr[] = [];
  for (let k = 0; k < n; k++) {
    const s = nthSubnet(cluster, len, (start + k) % n);
    if (!taken.has(cidrKey(s))) out.push(s);
  }
  return out;
}

/** The VXLAN device's MAC for a subnet: 0a:58 + the subnet's IPv4 address (unique per subnet, locally administered). */
export function vtepMacFor(subnet: Cidr): string {
  const b = formatIp(subnet.ip).split('.').map((x) => Number(x).toString(16).padStart(2, '0'));
  return ['0a', '58', ...b].join(':');
}

/** The address a host's VXLAN device carries (flannel's: the subnet's network address, as /32). */
export function vtepAddress(subnet: Cidr): Ip {
  return subnet.ip;
}

export function encodeRecord(r: SubnetRecord): string {
  return JSON.stringify(r);
}

/** The record in a value, or undefined when it is not one of ours (never throws: other writers exist). */
export function decodeRecord(text: string): SubnetRecord | undefined {
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch {
    return undefined;
  }
  if (typeof v !== 'object' || v === null) return undefined;
  const o = v as Record<string, unknown>;
  if (typeof o.hostId !== 'string' || typeof o.vtepMac !== 'string') return undefined;
  if (o.publicIp !== undefined && typeof o.publicIp !== 'string') return undefined;
  return { hostId: o.hostId, vtepMac: o.vtepMac, ...(typeof o.publicIp === 'string' ? { publicIp: o.publicIp } : {}) };
}
