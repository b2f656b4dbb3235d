/**
 * static IPAM configuration: parse + validate, pure (reference:
 * plugins/ipam/static/main.go LoadIPAMConfig). Addresses come from, in
 * order of precedence: runtimeConfig.ips (replaces), args.cni.ips
 * (replaces), ipam.addresses plus CNI_ARGS IP= (appended, comma-separated)
 * with CNI_ARGS GATEWAY= assigned to the addresses whose subnet contains it.
 */
import { parseCniArgs } from '../../lib/cni/args.ts';
import { CniError, ErrorCode } from '../../lib/cni/errors.ts';
import type { Dns, NetConf, Route } from '../../lib/cni/types.ts';
import { compareVersions } from '../../lib/cni/version.ts';
import { parseCidr, parseIp, cidrContains, formatIp, formatCidr } from '../../lib/ip/cidr.ts';

export interface StaticAddress {
  /** "ip/prefix" with the host bits kept, canonical text. */
  address: string;
  gateway?: string;
}

export interface StaticConfig {
  name: string;
  cniVersion: string;
  addresses: StaticAddress[];
  routes: Route[];
  dns: Dns | undefined;
}

const bad = (msg: string, details = '') => new CniError(ErrorCode.InvalidNetworkConfig, msg, details);

function cidrText(s: string, what: string): string {
  const c = parseCidr(s.trim());
  if (!c || !s.includes('/')) throw bad(what.replace('%s', s));
  return formatCidr(c.ip, c.prefix);
}

function readRoutes(v: unknown): Route[] {
  if (v === undefined || v === null) return [];
  if (!Array.isArray(v)) throw bad('invalid "ipam.routes": must be a list of {dst, gw}');
  return v.map((r, i) => {
    const o = r as Record<string, unknown> | null;
    if (!o || typeof o.dst !== 'string' || !parseCidr(o.dst)) throw bad(`invalid "ipam.routes[${i}].dst": must be a CIDR`, JSON.stringify(o?.dst));
    const route: Route = { dst: o.dst };
    if (o.gw !== undefined && o.gw !== null && o.gw !== '') {
      if (typeof o.gw !== 'string' || !parseIp(o.gw)) throw bad(`invalid "ipam.routes[${i}].gw": must be an IP address`, JSON.stringify(o.gw));
      route.gw = o.gw;
    }
    return route;
  });
}

function readDns(v: unknown): Dns | undefined {
  if (v === undefined || v === null) return undefined;
  if (typeof v !== 'object' || Array.isArray(v)) throw bad('invalid "ipam.dns": must be an object');
  const o = v as Record<string, unknown>;
  const dns: Dns = {};
  const list = (k: string) => {
    const x = o[k];
    if (x === undefined || x === null) return undefined;
    if (!Array.isArray(x) || x.some((e) => typeof e !== 'string')) throw bad(`invalid "ipam.dns.${k}": must be a list of strings`);
    return x.length ? (x as string[]) : undefined;
  };
  const ns = list('nameservers');
  if (ns) dns.nameservers = ns;
  if (typeof o.domain === 'string' && o.domain) dns.domain = o.domain;
  const search = list('search');
  if (search) dns.search = search;
  const options = list('options');
  if (options) dns.options = options;
  return Object.keys(dns).length ? dns : undefined;
}

function ipsList(v: unknown, where: string): string[] | undefined {
  if (v === undefined || v === null) return undefined;
  if (!Array.isArray(v) || v.some((e) => typeof e !== 'string')) throw bad(`invalid "${where}": must be a list of CIDR strings`);
  return v.length ? (v as string[]) : undefined;
}

/** Parse and validate; code 7 (code 4 for CNI_ARGS) naming the field, the reference's wording where it has one. */
export function parseStaticConfig(conf: NetConf, cniArgs: string): StaticConfig {
  const ipam = conf.ipam as Record<string, unknown> | undefined;
  if (!ipam || typeof ipam !== 'object') throw bad("IPAM config missing 'ipam' key");
  let addresses: StaticAddress[] = [];
  if (ipam.addresses !== undefined && ipam.addresses !== null) {
    if (!Array.isArray(ipam.addresses)) throw bad('invalid "ipam.addresses": must be a list of {address, gateway}');
    addresses = ipam.addresses.map((a, i) => {
      const o = a as Record<string, unknown> | null;
      if (!o || typeof o.address !== 'string') throw bad(`the 'address' field is expected to be in CIDR notation, got: '${String(o?.address)}'`);
      const out: StaticAddress = { address: cidrText(o.address, "the 'address' field is expected to be in CIDR notation, got: '%s'") };
      if (o.gateway !== undefined && o.gateway !== null && o.gateway !== '') {
        const gw = typeof o.gateway === 'string' ? parseIp(o.gateway) : undefined;
        if (!gw) throw bad(`invalid "ipam.addresses[${i}].gateway": must be an IP address`, JSON.stringify(o.gateway));
        out.gateway = formatIp(gw);
      }
      return out;
    });
  }
  const env = parseCniArgs(cniArgs, ['IP', 'GATEWAY']);
  for (const item of (env.get('IP') ?? '').split(',').filter((x) => x.trim() !== '')) {
    addresses.push({ address: cidrText(item, "the 'ip' field is expected to be in CIDR notation, got: '%s'") });
  }
  for (const item of (env.get('GATEWAY') ?? '').split(',').filter((x) => x.trim() !== '')) {
    const gw = parseIp(item.trim());
    if (!gw) throw new CniError(ErrorCode.InvalidEnvironmentVariables, `invalid gateway address: ${item}`);
    for (const a of addresses) {
      const c = parseCidr(a.address);
      if (c && cidrContains(c, gw)) a.gateway = formatIp(gw);
    }
  }
  const fromArgs = ipsList((conf.args as { cni?: { ips?: unknown } } | undefined)?.cni?.ips, 'args.cni.ips');
  if (fromArgs) addresses = fromArgs.map((s) => ({ address: cidrText(s, "an entry in the 'ips' field is NOT in CIDR notation, got: '%s'") }));
  const fromRuntime = ipsList((conf.runtimeConfig as { ips?: unknown } | undefined)?.ips, 'runtimeConfig.ips');
  if (fromRuntime) addresses = fromRuntime.map((s) => ({ address: cidrText(s, "an entry in the 'ips' field is NOT in CIDR notation, got: '%s'") }));

  const v4 = addresses.filter((a) => !a.address.includes(':')).length;
  const v6 = addresses.length - v4;
  if ((v4 > 1 || v6 > 1) && compareVersions(conf.cniVersion, '0.3.0') < 0) {
    throw bad(`CNI version ${conf.cniVersion} does not support more than 1 address per family`);
  }
  return { name: conf.name, cniVersion: conf.cniVersion, addresses, routes: readRoutes(ipam.routes), dns: readDns(ipam.dns) };
}

