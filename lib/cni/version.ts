import { CniError, ErrorCode } from './errors.ts';
import type { CniInterface, Dns, IpConfig, Result, Route } from './types.ts';

export const SUPPORTED_VERSIONS = ['0.1.0', '0.2.0', '0.3.0', '0.3.1', '0.4.0', '1.0.0', '1.1.0'] as const;
export const LATEST_VERSION = '1.1.0';

/** A config without cniVersion is 0.1.0, as the spec says. */
export const DEFAULT_CONFIG_VERSION = '0.1.0';

function parseParts(version: string): [number, number, number] {
  const m = /^(\d+)\.(\d+)\.(\d+)$/.exec(version);
  if (!m) throw new CniError(ErrorCode.DecodingFailure, `invalid version "${version}": must be in the form major.minor.patch`);
  return [Number(m[1]), Number(m[2]), Number(m[3])];
}

/** Negative when a < b, zero when equal, positive when a > b. */
export function compareVersions(a: string, b: string): number {
  const pa = parseParts(a);
  const pb = parseParts(b);
  for (let i = 0; i < 3; i++) {
    const d = (pa[i] as number) - (pb[i] as number);
    if (d !== 0) return d;
  }
  return 0;
}

export function versionAtLeast(version: string, min: string): boolean {
  return compareVersions(version, min) >= 0;
}

export function isSupportedVersion(version: string): boolean {
  return (SUPPORTED_VERSIONS as readonly string[]).includes(version);
}

export function assertSupportedVersion(version: string, supported: readonly string[] = SUPPORTED_VERSIONS): void {
  if (!supported.includes(version)) {
    throw new CniError(
      ErrorCode.IncompatibleCniVersion,
      'incompatible CNI versions',
      `config is "${version}", plugin supports ["${supported.join('" "')}"]`,
    );
  }
}

// ---------------------------------------------------------------------------
// Results: any version in, internal 1.1 out; internal in, any version out.
// ---------------------------------------------------------------------------

type Json = Record<string, unknown>;

function isObject(v: unknown): v is Json {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function decodeError(msg: string): CniError {
  return new CniError(ErrorCode.DecodingFailure, msg);
}

function readDns(v: unknown): Dns | undefined {
  if (v === undefined || v === null) return undefined;
  if (!isObject(v)) throw decodeError('result dns must be an object');
  const dns: Dns = {};
  if (Array.isArray(v.nameservers) && v.nameservers.length) dns.nameservers = v.nameservers.map(String);
  if (typeof v.domain === 'string' && v.domain) dns.domain = v.domain;
  if (Array.isArray(v.search) && v.search.length) dns.search = v.search.map(String);
  if (Array.isArray(v.options) && v.options.length) dns.options = v.options.map(String);
  return Object.keys(dns).length ? dns : undefined;
}

function readRoute(v: unknown): Route {
  if (!isObject(v) || typeof v.dst !== 'string') throw decodeError('result route needs a "dst" string');
  const r: Route = { dst: v.dst };
  if (typeof v.gw === 'string' && v.gw) r.gw = v.gw;
  for (const k of ['mtu', 'advmss', 'priority', 'table', 'scope'] as const) {
    if (typeof v[k] === 'number') r[k] = v[k] as number;
  }
  return r;
}

function readInterface(v: unknown): CniInterface {
  if (!isObject(v) || typeof v.name !== 'string') throw decodeError('result interface needs a "name" string');
  const i: CniInterface = { name: v.name };
  if (typeof v.mac === 'string' && v.mac) i.mac = v.mac;
  if (typeof v.mtu === 'number' && v.mtu) i.mtu = v.mtu;
  if (typeof v.sandbox === 'string' && v.sandbox) i.sandbox = v.sandbox;
  if (typeof v.socketPath === 'string' && v.socketPath) i.socketPath = v.socketPath;
  if (typeof v.pciID === 'string' && v.pciID) i.pciID = v.pciID;
  return i;
}

function readIp(v: unknown): IpConfig {
  if (!isObject(v) || typeof v.address !== 'string') throw decodeError('result ip needs an "address" string');
  const ip: IpConfig = { address: v.address };
  if (typeof v.interface === 'number') ip.interface = v.interface;
  if (typeof v.gateway === 'string' && v.gateway) ip.gateway = v.gateway;
  return ip;
}

/** Parse a result of any supported version into the internal 1.1 shape. */
export function parseResult(raw: unknown, fallbackVersion?: string): Result {
  if (!isObject(raw)) throw decodeError('result must be a JSON object');
  const version = typeof raw.cniVersion === 'string' && raw.cniVersion ? raw.cniVersion : (fallbackVersion ?? DEFAULT_CONFIG_VERSION);
  if (!isSupportedVersion(version)) {
    throw new CniError(ErrorCode.IncompatibleCniVersion, `unsupported result version "${version}"`);
  }
  const result: Result = { cniVersion: LATEST_VERSION };
  if (compareVersions(version, '0.3.0') < 0) {
    const ips: IpConfig[] = [];
    const routes: Route[] = [];
    for (const key of ['ip4', 'ip6'] as const) {
      const block = raw[key];
      if (block === undefined || block === null) continue;
      if (!isObject(block) || typeof block.ip !== 'string') throw decodeError(`result ${key} needs an "ip" string`);
      const ip: IpConfig = { address: block.ip };
      if (typeof block.gateway === 'string' && block.gateway) ip.gateway = block.gateway;
      ips.push(ip);
      if (Array.isArray(block.routes)) routes.push(...block.routes.map(readRoute));
    }
    if (ips.length) result.ips = ips;
    if (routes.length) result.routes = routes;
  } else {
    // As Go's decoder: a present key of the wrong type is a decoding failure, not an empty list.
    for (const key of ['interfaces', 'ips', 'routes'] as const) {
      if (raw[key] !== undefined && raw[key] !== null && !Array.isArray(raw[key])) throw decodeError(`result "${key}" must be an array`);
    }
    if (Array.isArray(raw.interfaces) && raw.interfaces.length) result.interfaces = raw.interfaces.map(readInterface);
    if (Array.isArray(raw.ips) && raw.ips.length) result.ips = raw.ips.map(readIp);
    if (Array.isArray(raw.routes) && raw.routes.length) result.routes = raw.routes.map(readRoute);
  }
  const dns = readDns(raw.dns);
  if (dns) result.dns = dns;
  return result;
}

function isIpv6(cidrOrAddress: string): boolean {
  return cidrOrAddress.includes(':');
}

function route10(r: Route, withExtras: boolean): Json {
  const out: Json = { dst: r.dst };
  if (r.gw) out.gw = r.gw;
  if (withExtras) {
    for (const k of ['mtu', 'advmss', 'priority', 'table', 'scope'] as const) {
      if (r[k] !== undefined) out[k] = r[k];
    }
  }
  return out;
}

function interface10(i: CniInterface, withExtras: boolean): Json {
  const out: Json = { name: i.name };
  if (i.mac) out.mac = i.mac;
  if (withExtras && i.mtu) out.mtu = i.mtu;
  if (i.sandbox) out.sandbox = i.sandbox;
  if (withExtras && i.socketPath) out.socketPath = i.socketPath;
  if (withExtras && i.pciID) out.pciID = i.pciID;
  return out;
}

/** Render the internal result as the JSON object of the requested version. */
export function convertResult(result: Result, toVersion: string): Json {
  if (!isSupportedVersion(toVersion)) {
    throw new CniError(ErrorCode.IncompatibleCniVersion, `cannot convert result to unsupported version "${toVersion}"`);
  }
  const out: Json = { cniVersion: toVersion };
  if (compareVersions(toVersion, '0.3.0') < 0) {
    const ips = result.ips ?? [];
    const ip4 = ips.find((ip) => !isIpv6(ip.address));
    const ip6 = ips.find((ip) => isIpv6(ip.address));
    if (!ip4 && !ip6) {
      throw new CniError(ErrorCode.Internal, `cannot convert result to ${toVersion}: no valid IP addresses`);
    }
    for (const [key, ip, v6] of [['ip4', ip4, false], ['ip6', ip6, true]] as const) {
      if (!ip) continue;
      const block: Json = { ip: ip.address };
      if (ip.gateway) block.gateway = ip.gateway;
      const routes = (result.routes ?? []).filter((r) => isIpv6(r.dst) === v6).map((r) => route10(r, false));
      if (routes.length) block.routes = routes;
      out[key] = block;
    }
  } else {
    const extras = versionAtLeast(toVersion, '1.1.0');
    const withIpVersion = compareVersions(toVersion, '1.0.0') < 0;
    if (result.interfaces?.length) out.interfaces = result.interfaces.map((i) => interface10(i, extras));
    if (result.ips?.length) {
      out.ips = result.ips.map((ip) => {
        const o: Json = {};
        if (withIpVersion) o.version = isIpv6(ip.address) ? '6' : '4';
        if (ip.interface !== undefined) o.interface = ip.interface;
        o.address = ip.address;
        if (ip.gateway) o.gateway = ip.gateway;
        return o;
      });
    }
    if (result.routes?.length) out.routes = result.routes.map((r) => route10(r, extras));
  }
  if (result.dns && Object.keys(result.dns).length) out.dns = { ...result.dns };
  return out;
}
