/**
 * etcd-subnet IPAM config: parse and validate the `ipam` section, pure.
 *
 *   "ipam": {
 *     "type": "etcd-subnet",
 *     "etcd": { "endpoints": ["https://10.0.0.1:2379"], "caFile": "...", "certFile": "...", "keyFile": "...",
 *               "serverName": "etcd.example",  // required with an IP endpoint over TLS
 *               "prefix": "/tscni/overlay" },
 *     "clusterCIDR": "10.252.192.0/18",   // every host's pod subnet is leased out of this
 *     "subnetLen": 24,                     // prefix length of one host's subnet
 *     "hostId": "node-a",                  // default: the machine's hostname
 *     "publicIp": "172.31.250.11",         // the host's underlay address (the VXLAN endpoint)
 *     "leaseTTL": 60,                      // seconds; a dead host's subnet is free after this
 *     "dataDir": "/var/lib/cni/etcd-subnet",
 *     "routes": [{ "dst": "0.0.0.0/0" }]   // in addition to the cluster CIDR route
 *   }
 */
import { hostname } from 'node:os';
import { CniError, ErrorCode } from '../../lib/cni/errors.ts';
import type { NetConf, Route } from '../../lib/cni/types.ts';
import { formatCidr, hasHostBits, parseCidr, parseIp, type Cidr } from '../../lib/ip/cidr.ts';
import { ipFamily } from '../../lib/ip/prefix.ts';

export const DEFAULT_DATA_DIR = '/var/lib/cni/etcd-subnet';
export const DEFAULT_PREFIX = '/tscni/overlay';
export const DEFAULT_LEASE_TTL = 60;
export const DEFAULT_SUBNET_LEN = 24;

/** Where and how to reach etcd. TLS files are paths, read when the client is made. */
export interface EtcdConfig {
  endpoints: string[];
  caFile?: string;
  certFile?: string;
  keyFile?: string;
  /** The name the server certificate is checked against (TLS to an IP endpoint: Bun refuses an IP as TLS server name). */
  serverName?: string;
  /** Key prefix of this network's records, without a trailing slash. */
  prefix: string;
}

export interface EtcdSubnetConfig {
  network: string;
  cniVersion: string;
  etcd: EtcdConfig;
  clusterCidr: Cidr;
  subnetLen: number;
  hostId: string;
  publicIp?: string;
  leaseTtl: number;
  dataDir: string;
  routes: Route[];
}

type Json = Record<string, unknown>;

const isObject = (v: unknown): v is Json => typeof v === 'object' && v !== null && !Array.isArray(v);
const bad = (field: string, msg: string) => new CniError(ErrorCode.InvalidNetworkConfig, `${field}: ${msg}`);

function optString(obj: Json, key: string, field: string): string | undefined {
  const v = obj[key];
  if (v === undefined || v === null || v === '') return undefined;
  if (typeof v !== 'string') throw bad(field, `must be a string, got ${JSON.stringify(v)}`);
  return v;
}

function optInt(obj: Json, key: string, field: string, min: number, max: number): number | undefined {
  const v = obj[key];
  if (v === undefined || v === null) return undefined;
  if (typeof v !== 'number' || !Number.isInteger(v) || v < min || v > max) throw bad(field, `must be an integer from ${min} to ${max}, got ${JSON.stringify(v)}`);
  return v;
}

/** An endpoint is an http(s) URL with a host and a port (etcd3 dials exactly that). */
function parseEndpoint(v: unknown, field: string): string {
  if (typeof v !== 'string') throw bad(field, `must be a string, got ${JSON.stringify(v)}`);
  let u: URL;
  try {
    u = new URL(v);
  } catch {
    throw bad(field, `not a URL: "${v}"`);
  }
  if ((u.protocol !== 'http:' && u.protocol !== 'https:') || !u.hostname || !u.port) throw bad(field, `must be http(s)://host:port, got "${v}"`);
  return v.replace(/\/+$/, '');
}

function parseEtcd(raw: unknown, network: string): EtcdConfig {
  if (!isObject(raw)) throw bad('ipam.etcd', 'must be an object with "endpoints"');
  const eps = raw.endpoints;
  if (!Array.isArray(eps) || eps.length === 0) throw bad('ipam.etcd.endpoints', 'must be a non-empty array of URLs');
  const endpoints = eps.map((e, i) => parseEndpoint(e, `ipam.etcd.endpoints[${i}]`));
  const caFile = optString(raw, 'caFile', 'ipam.etcd.caFile');
  const certFile = optString(raw, 'certFile', 'ipam.etcd.certFile');
  const keyFile = optString(raw, 'keyFile', 'ipam.etcd.keyFile');
  if ((certFile === undefined) !== (keyFile === undefined)) throw bad('ipam.etcd', 'certFile and keyFile go together');
  if ((caFile || certFile) && endpoints.some((e) => e.startsWith('http:'))) throw bad('ipam.etcd.endpoints', 'TLS files are set: endpoints must be https://');
  const serverName = optString(raw, 'serverName', 'ipam.etcd.serverName');
  if (serverName !== undefined && !/^[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?)*$/.test(serverName)) throw bad('ipam.etcd.serverName', `must be a DNS name, got "${serverName}"`);
  const ipHttps = endpoints.find((e) => e.startsWith('https:') && ipFamily(new URL(e).hostname.replace(/^\[|\]$/g, '')) !== 0);
  if (ipHttps && serverName === undefined) {
    throw bad('ipam.etcd.serverName', `is required for the TLS endpoint ${ipHttps}: name a DNS name of the etcd server certificate (TLS cannot use an IP address as server name here)`);
  }
  const base = (optString(raw, 'prefix', 'ipam.etcd.prefix') ?? DEFAULT_PREFIX).replace(/\/+$/, '');
  if (!base.startsWith('/')) throw bad('ipam.etcd.prefix', `must start with "/", got "${base}"`);
  return { endpoints, ...(caFile ? { caFile } : {}), ...(certFile ? { certFile } : {}), ...(keyFile ? { keyFile } : {}), ...(serverName ? { serverName } : {}), prefix: `${base}/${network}` };
}

function parseRoutes(raw: unknown): Route[] {
  if (raw === undefined || raw === null) return [];
  if (!Array.isArray(raw)) throw bad('ipam.routes', 'must be an array');
  return raw.map((r, i) => {
    if (!isObject(r) || typeof r.dst !== 'string' || !parseCidr(r.dst)) throw bad(`ipam.routes[${i}]`, 'needs "dst" as a CIDR');
    if (r.gw !== undefined && (typeof r.gw !== 'string' || !parseIp(r.gw))) throw bad(`ipam.routes[${i}].gw`, 'must be an IP address');
    return { dst: r.dst, ...(typeof r.gw === 'string' ? { gw: r.gw } : {}) };
  });
}

const NAME_RE = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,252}$/;

/** Parse the whole network config (IPAM plugins get all of it); `defaultHost` is the hostname fallback for hostId. */
export function parseEtcdSubnetConfig(conf: NetConf, defaultHost: string = hostname()): EtcdSubnetConfig {
  const ipam = conf.ipam as unknown;
  if (!isObject(ipam)) throw bad('ipam', "IPAM config missing 'ipam' key");
  if (!NAME_RE.test(conf.name)) throw bad('name', `"${conf.name}" cannot name etcd keys and files`);
  const cidrText = optString(ipam, 'clusterCIDR', 'ipam.clusterCIDR');
  if (!cidrText) throw bad('ipam.clusterCIDR', 'is required');
  const clusterCidr = parseCidr(cidrText);
  if (!clusterCidr || clusterCidr.ip.family !== 4) throw bad('ipam.clusterCIDR', `must be an IPv4 CIDR, got "${cidrText}"`);
  if (hasHostBits(clusterCidr)) throw bad('ipam.clusterCIDR', `has host bits set: "${cidrText}" (did you mean ${formatCidr(clusterCidr.ip, clusterCidr.prefix)}?)`);
  const subnetLen = optInt(ipam, 'subnetLen', 'ipam.subnetLen', 1, 30) ?? DEFAULT_SUBNET_LEN;
  if (subnetLen <= clusterCidr.prefix) throw bad('ipam.subnetLen', `must be longer than the cluster CIDR's prefix /${clusterCidr.prefix}, got ${subnetLen}`);
  if (subnetLen - clusterCidr.prefix > 16) throw bad('ipam.subnetLen', `more than 65536 host subnets (/${clusterCidr.prefix} into /${subnetLen}) is not supported`);
  const hostId = optString(ipam, 'hostId', 'ipam.hostId') ?? defaultHost;
  if (!NAME_RE.test(hostId)) throw bad('ipam.hostId', `"${hostId}" is not a valid host name`);
  const publicIp = optString(ipam, 'publicIp', 'ipam.publicIp');
  if (publicIp !== undefined && parseIp(publicIp)?.family !== 4) throw bad('ipam.publicIp', `must be an IPv4 address, got "${publicIp}"`);
  const leaseTtl = optInt(ipam, 'leaseTTL', 'ipam.leaseTTL', 2, 86_400) ?? DEFAULT_LEASE_TTL;
  const dataDir = optString(ipam, 'dataDir', 'ipam.dataDir') ?? DEFAULT_DATA_DIR;
  if (!dataDir.startsWith('/')) throw bad('ipam.dataDir', `must be an absolute path, got "${dataDir}"`);
  return {
    network: conf.name,
    cniVersion: conf.cniVersion,
    etcd: parseEtcd(ipam.etcd, conf.name),
    clusterCidr,
    subnetLen,
    hostId,
    ...(publicIp ? { publicIp } : {}),
    leaseTtl,
    dataDir,
    routes: parseRoutes(ipam.routes),
  };
}
