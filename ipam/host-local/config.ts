/**
 * host-local configuration: parse + validate, pure. Every problem is a
 * CniError with code 7 (4 for CNI_ARGS) whose message starts with the field
 * it is about, followed by the reference plugin's wording.
 *
 * Range sets are assembled in the reference's order, because the set index
 * names `last_reserved_ip.<index>` on disk:
 *   runtimeConfig.ipRanges..., legacy ipam.subnet range, ipam.ranges...
 */
import { CniError, ErrorCode } from '../../lib/cni/errors.ts';
import { parseCniArgs } from '../../lib/cni/args.ts';
import type { NetConf, Route } from '../../lib/cni/types.ts';
import { versionAtLeast } from '../../lib/cni/version.ts';
import {
  cidrContains,
  compareIp,
  familyBits,
  formatCidr,
  formatIp,
  hasHostBits,
  ipEquals,
  lastAddress,
  networkAddress,
  nextIp,
  parseCidr,
  parseIp,
  parseIpOrCidrAddress,
  prevIp,
  type Cidr,
  type Ip,
} from '../../lib/ip/cidr.ts';

export const DEFAULT_DATA_DIR = '/var/lib/cni/networks';

export interface IpRange {
  /** Network address + prefix (no host bits). */
  subnet: Cidr;
  rangeStart: Ip;
  rangeEnd: Ip;
  gateway: Ip;
}

export type RangeSet = IpRange[];

export interface HostLocalConfig {
  name: string;
  cniVersion: string;
  dataDir: string;
  resolvConf?: string;
  routes: Route[];
  rangeSets: RangeSet[];
  /** Requested addresses, deduplicated, in the order CNI_ARGS, args.cni.ips, runtimeConfig.ips. */
  requestedIps: Ip[];
}

type Json = Record<string, unknown>;

function isObject(v: unknown): v is Json {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function bad(field: string, msg: string): CniError {
  return new CniError(ErrorCode.InvalidNetworkConfig, `${field}: ${msg}`);
}

function optionalString(obj: Json, key: string, field: string): string | undefined {
  const v = obj[key];
  if (v === undefined || v === null || v === '') return undefined;
  if (typeof v !== 'string') throw bad(field, `must be a string, got ${JSON.stringify(v)}`);
  return v;
}

function parseAddressField(obj: Json, key: string, field: string): Ip | undefined {
  const text = optionalString(obj, key, field);
  if (text === undefined) return undefined;
  const ip = parseIp(text);
  if (!ip) throw bad(field, `invalid IP address "${text}"`);
  return ip;
}

export function rangeContains(r: IpRange, ip: Ip): boolean {
  return cidrContains(r.subnet, ip) && compareIp(ip, r.rangeStart) >= 0 && compareIp(ip, r.rangeEnd) <= 0;
}

export function rangeSetContains(set: RangeSet, ip: Ip): boolean {
  return set.some((r) => rangeContains(r, ip));
}

export function rangeFor(set: RangeSet, ip: Ip): IpRange | undefined {
  return set.find((r) => rangeContains(r, ip));
}

export function rangeToString(r: IpRange): string {
  return `${formatIp(r.rangeStart)}-${formatIp(r.rangeEnd)}`;
}

/** "a-b,c-d", as the reference prints a range set. */
export function rangeSetToString(set: RangeSet): string {
  return set.map(rangeToString).join(',');
}

function rangesOverlap(a: IpRange, b: IpRange): boolean {
  if (a.subnet.ip.family !== b.subnet.ip.family) return false;
  return compareIp(a.rangeStart, b.rangeEnd) <= 0 && compareIp(b.rangeStart, a.rangeEnd) <= 0;
}

/**
 * Why `ip` must never be handed out in the subnet of `r`, or undefined when
 * it may be: the IPv4 network and broadcast addresses, the IPv6
 * subnet-router anycast address (all-zero host part, RFC 4291 2.6.1), and
 * the range's gateway. One rule for every path: rangeStart/rangeEnd,
 * CNI_ARGS IP=, args.cni.ips, runtimeConfig.ips and the allocator.
 */
export function neverAllocatedReason(subnet: Cidr, gateway: Ip | undefined, ip: Ip): string | undefined {
  const text = formatCidr(subnet.ip, subnet.prefix);
  if (ipEquals(ip, subnet.ip)) {
    return ip.family === 4 ? `is the network address of ${text}` : `is the subnet-router anycast address of ${text}`;
  }
  if (ip.family === 4 && ipEquals(ip, lastAddress(subnet))) return `is the broadcast address of ${text}`;
  if (gateway && ipEquals(ip, gateway)) return `is the gateway of ${text}`;
  return undefined;
}

/** Validate one range and fill in the reference's defaults (start = network+1, end = last usable, gateway = network+1). */
export function parseRange(raw: unknown, field: string): IpRange {
  if (!isObject(raw)) throw bad(field, 'must be an object with a "subnet"');
  const subnetText = optionalString(raw, 'subnet', `${field}.subnet`);
  if (subnetText === undefined) throw bad(`${field}.subnet`, 'missing subnet');
  const parsed = parseCidr(subnetText);
  if (!parsed) throw bad(`${field}.subnet`, `invalid CIDR address: ${subnetText}`);
  const family = parsed.ip.family;
  if (parsed.prefix > familyBits(family) - 2) {
    throw bad(`${field}.subnet`, `Network ${formatCidr(networkAddress(parsed), parsed.prefix)} too small to allocate from`);
  }
  if (hasHostBits(parsed)) {
    throw bad(
      `${field}.subnet`,
      `Network has host bits set. For a subnet mask of length ${parsed.prefix} the network address is ${formatIp(networkAddress(parsed))}`,
    );
  }
  const subnet: Cidr = { ip: networkAddress(parsed), prefix: parsed.prefix };
  const subnetText2 = formatCidr(subnet.ip, subnet.prefix);
  const broadcast = family === 4 ? lastAddress(subnet) : undefined;

  const check = (key: 'rangeStart' | 'rangeEnd' | 'gateway'): Ip | undefined => {
    const ip = parseAddressField(raw, key, `${field}.${key}`);
    if (!ip) return undefined;
    if (ip.family !== family) throw bad(`${field}.${key}`, `${formatIp(ip)} is not the same address family as ${subnetText2}`);
    return ip;
  };
  const gateway = check('gateway') ?? nextIp(subnet.ip);
  const start = check('rangeStart');
  const end = check('rangeEnd');
  for (const [key, ip] of [['rangeStart', start], ['rangeEnd', end]] as const) {
    if (!ip) continue;
    const label = key === 'rangeStart' ? 'RangeStart' : 'RangeEnd';
    if (!cidrContains(subnet, ip)) throw bad(`${field}.${key}`, `${label} ${formatIp(ip)} not in network ${subnetText2}`);
    // A range may start or end on the gateway (it is skipped), never on an address no pod may have.
    const why = neverAllocatedReason(subnet, undefined, ip);
    if (why) throw bad(`${field}.${key}`, `${label} ${formatIp(ip)} ${why}`);
  }
  const rangeStart = start ?? nextIp(subnet.ip);
  const rangeEnd = end ?? (broadcast ? prevIp(broadcast) : lastAddress(subnet));
  if (compareIp(rangeStart, rangeEnd) > 0) {
    throw bad(`${field}.rangeStart`, `RangeStart ${formatIp(rangeStart)} is after RangeEnd ${formatIp(rangeEnd)}`);
  }
  return { subnet, rangeStart, rangeEnd, gateway };
}

export function parseRangeSet(raw: unknown, field: string): RangeSet {
  if (!Array.isArray(raw)) throw bad(field, 'a range set must be an array of ranges');
  if (raw.length === 0) throw bad(field, 'empty range set');
  const set = raw.map((r, i) => parseRange(r, `${field}[${i}]`));
  const family = set[0]?.subnet.ip.family;
  set.forEach((r, i) => {
    if (r.subnet.ip.family !== family) throw bad(`${field}[${i}]`, 'mixed address families');
  });
  for (let i = 0; i < set.length; i++) {
    for (let j = i + 1; j < set.length; j++) {
      const a = set[i] as IpRange;
      const b = set[j] as IpRange;
      if (rangesOverlap(a, b)) throw bad(`${field}[${j}]`, `subnets ${rangeToString(a)} and ${rangeToString(b)} overlap`);
    }
  }
  return set;
}

function parseRoutes(raw: unknown): Route[] {
  if (raw === undefined || raw === null) return [];
  if (!Array.isArray(raw)) throw bad('ipam.routes', 'must be an array');
  return raw.map((r, i) => {
    const field = `ipam.routes[${i}]`;
    if (!isObject(r)) throw bad(field, 'must be an object with a "dst"');
    const dst = optionalString(r, 'dst', `${field}.dst`);
    if (dst === undefined) throw bad(`${field}.dst`, 'missing dst');
    const c = parseCidr(dst);
    if (!c) throw bad(`${field}.dst`, `invalid CIDR address: ${dst}`);
    const route: Route = { dst: formatCidr(networkAddress(c), c.prefix) };
    const gw = parseAddressField(r, 'gw', `${field}.gw`);
    if (gw) route.gw = formatIp(gw);
    for (const k of ['mtu', 'advmss', 'priority', 'table', 'scope'] as const) {
      const v = r[k];
      if (v === undefined || v === null) continue;
      if (typeof v !== 'number' || !Number.isInteger(v) || v < 0) throw bad(`${field}.${k}`, 'must be a non-negative integer');
      route[k] = v;
    }
    return route;
  });
}

function parseIpList(raw: unknown, field: string): Ip[] {
  if (raw === undefined || raw === null) return [];
  if (!Array.isArray(raw)) throw bad(field, 'must be an array of IP addresses');
  return raw.map((v, i) => {
    const ip = typeof v === 'string' ? parseIpOrCidrAddress(v) : undefined;
    if (!ip) throw bad(`${field}[${i}]`, `invalid IP address ${JSON.stringify(v)}`);
    return ip;
  });
}

/** CNI_ARGS IP=<ip>[,<ip>...]; each item may carry a /prefix, which is ignored as in the reference. */
export function parseEnvIps(cniArgs: string): Ip[] {
  const args = parseCniArgs(cniArgs, ['IP']);
  const value = args.get('IP');
  if (value === undefined || value === '') return [];
  return value.split(',').map((item) => {
    const ip = parseIpOrCidrAddress(item.trim());
    if (!ip) throw new CniError(ErrorCode.InvalidEnvironmentVariables, `CNI_ARGS IP: invalid IP address "${item.trim()}"`);
    return ip;
  });
}

/** Parse the full network configuration (IPAM plugins get the whole config) plus CNI_ARGS. */
export function parseHostLocalConfig(conf: NetConf, cniArgs: string): HostLocalConfig {
  const ipam = conf.ipam as unknown;
  if (!isObject(ipam)) throw bad('ipam', "IPAM config missing 'ipam' key");
  const runtime = isObject(conf.runtimeConfig) ? conf.runtimeConfig : {};
  const args = isObject(conf.args) ? conf.args : {};
  const cniSection = isObject(args.cni) ? args.cni : {};

  const requested: Ip[] = [
    ...parseEnvIps(cniArgs),
    ...parseIpList(cniSection.ips, 'args.cni.ips'),
    ...parseIpList(runtime.ips, 'runtimeConfig.ips'),
  ];
  const requestedIps: Ip[] = [];
  for (const ip of requested) if (!requestedIps.some((x) => ipEquals(x, ip))) requestedIps.push(ip);

  const sets: Array<{ set: RangeSet; field: string }> = [];
  const runtimeRanges = runtime.ipRanges;
  if (runtimeRanges !== undefined && runtimeRanges !== null) {
    if (!Array.isArray(runtimeRanges)) throw bad('runtimeConfig.ipRanges', 'must be an array of range sets');
    runtimeRanges.forEach((s, i) => sets.push({ set: parseRangeSet(s, `runtimeConfig.ipRanges[${i}]`), field: `runtimeConfig.ipRanges[${i}]` }));
  }
  if (optionalString(ipam, 'subnet', 'ipam.subnet') !== undefined) {
    sets.push({ set: [parseRange(ipam, 'ipam')], field: 'ipam' });
  }
  const ranges = ipam.ranges;
  if (ranges !== undefined && ranges !== null) {
    if (!Array.isArray(ranges)) throw bad('ipam.ranges', 'must be an array of range sets');
    ranges.forEach((s, i) => sets.push({ set: parseRangeSet(s, `ipam.ranges[${i}]`), field: `ipam.ranges[${i}]` }));
  }
  if (sets.length === 0) throw bad('ipam.ranges', 'no IP ranges specified');

  // CNI 0.2.0 and below carry at most one IPv4 and one IPv6 address.
  const v4 = sets.filter((s) => s.set[0]?.subnet.ip.family === 4).length;
  const v6 = sets.length - v4;
  if ((v4 > 1 || v6 > 1) && !versionAtLeast(conf.cniVersion, '0.3.0')) {
    throw bad('ipam.ranges', `CNI version ${conf.cniVersion} does not support more than 1 address per family`);
  }

  for (let i = 0; i < sets.length; i++) {
    for (let j = i + 1; j < sets.length; j++) {
      const a = sets[i] as { set: RangeSet; field: string };
      const b = sets[j] as { set: RangeSet; field: string };
      if (a.set.some((ra) => b.set.some((rb) => rangesOverlap(ra, rb)))) {
        throw bad(b.field, `range set ${i} overlaps with ${j}`);
      }
    }
  }

  const dataDir = optionalString(ipam, 'dataDir', 'ipam.dataDir') ?? DEFAULT_DATA_DIR;
  const resolvConf = optionalString(ipam, 'resolvConf', 'ipam.resolvConf');
  return {
    name: conf.name,
    cniVersion: conf.cniVersion,
    dataDir,
    ...(resolvConf ? { resolvConf } : {}),
    routes: parseRoutes(ipam.routes),
    rangeSets: sets.map((s) => s.set),
    requestedIps,
  };
}
