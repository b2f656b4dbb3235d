/**
 * portmap configuration: parse + validate, pure. Everything is checked before
 * any rule changes: ports, protocols, host IPs, the mark bit, backend-specific
 * options.
 */
import { CniError, ErrorCode } from '../../lib/cni/errors.ts';
import type { NetConf, Result } from '../../lib/cni/types.ts';
import { familyOf, formatAddr, networkOf, parseAddr, type Family } from '../../lib/ip/prefix.ts';

export type PortmapBackend = 'iptables' | 'nftables';
export type Protocol = 'tcp' | 'udp' | 'sctp';

export const DEFAULT_MARK_BIT = 13;
export const DEFAULT_STATE_DIR = '/var/lib/cni/tscni-portmap';
const PROTOCOLS: readonly Protocol[] = ['tcp', 'udp', 'sctp'];

export interface PortMapping {
  hostPort: number;
  containerPort: number;
  protocol: Protocol;
  /** Canonical address; undefined or "" means every address of both families. */
  hostIP?: string;
}

export interface ContainerAddr {
  /** Address without prefix. */
  ip: string;
  /** As in the result, address/prefix (the reference masquerades from this network). */
  cidr: string;
  /** The pod subnet, canonical. */
  net: string;
}

export interface PortmapConfig {
  name: string;
  cniVersion: string;
  /** undefined: auto-detect as the reference does. */
  backend: PortmapBackend | undefined;
  snat: boolean;
  masqAll: boolean;
  markMasqBit: number;
  externalSetMarkChain: string | undefined;
  conditionsV4: string[] | undefined;
  conditionsV6: string[] | undefined;
  mappings: PortMapping[];
  stateDir: string;
  prevResult: Result | undefined;
  container: Partial<Record<Family, ContainerAddr>>;
}

const bad = (msg: string, details = '') => new CniError(ErrorCode.InvalidNetworkConfig, msg, details);

function optBool(raw: Record<string, unknown>, key: string, dflt: boolean): boolean {
  const v = raw[key];
  if (v === undefined || v === null) return dflt;
  if (typeof v !== 'boolean') throw bad(`invalid "${key}": must be a boolean`, `got ${JSON.stringify(v)}`);
  return v;
}

function optStringArray(raw: Record<string, unknown>, key: string): string[] | undefined {
  const v = raw[key];
  if (v === undefined || v === null) return undefined;
  if (!Array.isArray(v) || v.some((x) => typeof x !== 'string')) throw bad(`invalid "${key}": must be an array of strings`, `got ${JSON.stringify(v)}`);
  // Each word goes into one line of iptables-restore or nft input: a line break or NUL would start another rule.
  const bad_ = (v as string[]).find((x) => /[\r\n\0]/.test(x));
  if (bad_ !== undefined) throw bad(`invalid "${key}": ${JSON.stringify(bad_)} contains a line break or NUL`);
  return v as string[];
}

function port(v: unknown, where: string): number {
  if (typeof v !== 'number' || !Number.isInteger(v) || v < 1 || v > 65535) {
    throw bad(`invalid ${where}: ${JSON.stringify(v)} is not a port number (1-65535)`);
  }
  return v;
}

/** Canonical form of a host IP ("" and absent mean any address of any family). */
export function canonicalHostIP(v: unknown, where: string): string | undefined {
  if (v === undefined || v === null || v === '') return undefined;
  if (typeof v !== 'string') throw bad(`invalid ${where}: must be an IP address string`);
  try {
    const { family, addr } = parseAddr(v);
    return formatAddr(family, addr);
  } catch {
    throw bad(`invalid ${where}: ${JSON.stringify(v)} is not an IP address`);
  }
}

/**
 * The mapping's keys as Go's JSON decoder matches them: case-insensitively
 * (containerd's CRI sends "HostPort", "ContainerPort", "Protocol", "HostIP",
 * the Go field names, and the reference accepts them). An exact-case key
 * wins over a case-folded one.
 */
function goFieldView(o: Record<string, unknown>): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(o)) {
    const lower = k.toLowerCase();
    for (const field of ['hostPort', 'containerPort', 'protocol', 'hostIP']) {
      if (field.toLowerCase() === lower && (k === field || !(field in out))) out[field] = v;
    }
  }
  return out;
}

function mappingsOrNone(v: unknown, onIgnored: ((why: string) => void) | undefined): PortMapping[] {
  try {
    return parseMappings(v);
  } catch (e) {
    onIgnored?.(`${(e as Error).message}; using portmap's own record instead`);
    return [];
  }
}

export function parseMappings(v: unknown): PortMapping[] {
  if (v === undefined || v === null) return [];
  if (!Array.isArray(v)) throw bad('invalid runtimeConfig.portMappings: must be an array');
  const out: PortMapping[] = [];
  const seen = new Set<string>();
  v.forEach((m, i) => {
    const where = `runtimeConfig.portMappings[${i}]`;
    if (typeof m !== 'object' || m === null) throw bad(`invalid ${where}: must be an object`);
    const o = goFieldView(m as Record<string, unknown>);
    const hostPort = port(o.hostPort, `${where}.hostPort`);
    const containerPort = port(o.containerPort, `${where}.containerPort`);
    const protoRaw = o.protocol ?? 'tcp';
    if (typeof protoRaw !== 'string' || !PROTOCOLS.includes(protoRaw.toLowerCase() as Protocol)) {
      throw bad(`invalid ${where}.protocol: ${JSON.stringify(protoRaw)} (use tcp, udp or sctp)`);
    }
    const protocol = protoRaw.toLowerCase() as Protocol;
    const hostIP = canonicalHostIP(o.hostIP, `${where}.hostIP`);
    const key = `${protocol}/${hostIP ?? '*'}/${hostPort}`;
    if (seen.has(key)) throw bad(`invalid ${where}: host port ${hostIP ? `${hostIP}:` : ''}${hostPort}/${protocol} is mapped twice`);
    seen.add(key);
    out.push(hostIP ? { hostPort, containerPort, protocol, hostIP } : { hostPort, containerPort, protocol });
  });
  return out;
}

/** The pod addresses the mappings point at: first IPv4 and first IPv6 on CNI_IFNAME (in the sandbox). */
export function containerAddrs(result: Result | undefined, ifName: string): Partial<Record<Family, ContainerAddr>> {
  const out: Partial<Record<Family, ContainerAddr>> = {};
  for (const ip of result?.ips ?? []) {
    const fam = familyOf(ip.address);
    if (out[fam]) continue;
    if (ip.interface !== undefined && ip.interface >= 0 && result?.interfaces && ip.interface < result.interfaces.length) {
      const iface = result.interfaces[ip.interface];
      if (!iface || iface.name !== ifName || !iface.sandbox) continue;
    }
    const [addr] = ip.address.split('/');
    out[fam] = { ip: canonicalHostIP(addr, 'prevResult address') as string, cidr: ip.address, net: networkOf(ip.address) };
  }
  return out;
}

/** Which backend the conditions are written for (iptables arguments start with "-" or "!"). */
function backendOfConditions(c: string[] | undefined): PortmapBackend | undefined {
  const first = c?.[0];
  if (!first) return undefined;
  return first.startsWith('-') || first.startsWith('!') ? 'iptables' : 'nftables';
}

const CHAIN_RE = /^[A-Za-z0-9_.-]{1,28}$/;

/**
 * Parse and validate portmap's config. With `forDel`, mappings that do not
 * parse are dropped (with `onIgnored` told why) instead of failing: a DEL
 * must never fail on what the runtime sends, since the chain would stop and
 * leak everything before portmap; the attachment's own record drives it.
 */
export function parsePortmapConfig(conf: NetConf, ifName: string, opts: { forDel?: boolean; onIgnored?: (why: string) => void } = {}): PortmapConfig {
  const raw = conf as Record<string, unknown>;
  let backend: PortmapBackend | undefined;
  if (raw.backend !== undefined && raw.backend !== null) {
    if (raw.backend !== 'iptables' && raw.backend !== 'nftables') throw bad(`invalid "backend": ${JSON.stringify(raw.backend)} (use iptables or nftables)`);
    backend = raw.backend;
  }
  const markRaw = raw.markMasqBit;
  const extRaw = raw.externalSetMarkChain;
  if (markRaw !== undefined && markRaw !== null && extRaw !== undefined && extRaw !== null) {
    throw bad('Cannot specify externalSetMarkChain and markMasqBit', 'they are mutually exclusive');
  }
  let markMasqBit = DEFAULT_MARK_BIT;
  if (markRaw !== undefined && markRaw !== null) {
    if (typeof markRaw !== 'number' || !Number.isInteger(markRaw) || markRaw < 0 || markRaw > 31) {
      throw bad(`invalid "markMasqBit": ${JSON.stringify(markRaw)} (MasqMarkBit must be between 0 and 31)`);
    }
    markMasqBit = markRaw;
  }
  let externalSetMarkChain: string | undefined;
  if (extRaw !== undefined && extRaw !== null) {
    if (typeof extRaw !== 'string' || !CHAIN_RE.test(extRaw)) throw bad(`invalid "externalSetMarkChain": ${JSON.stringify(extRaw)} is not an iptables chain name`);
    externalSetMarkChain = extRaw;
  }
  const conditionsV4 = optStringArray(raw, 'conditionsV4');
  const conditionsV6 = optStringArray(raw, 'conditionsV6');

  // Options that only one backend understands decide, or contradict, the backend.
  const needs: Record<PortmapBackend, string[]> = { iptables: [], nftables: [] };
  if (externalSetMarkChain) needs.iptables.push('externalSetMarkChain');
  const c4 = backendOfConditions(conditionsV4);
  if (c4) needs[c4].push('conditionsV4');
  const c6 = backendOfConditions(conditionsV6);
  if (c6) needs[c6].push('conditionsV6');
  if (needs.iptables.length && needs.nftables.length) {
    throw bad(`conflicting options: ${needs.iptables.join(', ')} need iptables, ${needs.nftables.join(', ')} need nftables`);
  }
  if (backend) {
    const other: PortmapBackend = backend === 'iptables' ? 'nftables' : 'iptables';
    if (needs[other].length) {
      throw bad(`${backend} backend was requested but configuration contains ${other}-specific options [${needs[other].join(' ')}]`);
    }
  }

  let stateDir = DEFAULT_STATE_DIR;
  if (raw.stateDir !== undefined) {
    if (typeof raw.stateDir !== 'string' || !raw.stateDir.startsWith('/')) throw bad('invalid "stateDir": must be an absolute path');
    stateDir = raw.stateDir;
  }

  const runtime = (conf.runtimeConfig ?? {}) as Record<string, unknown>;
  return {
    name: conf.name,
    cniVersion: conf.cniVersion,
    backend: backend ?? (needs.nftables.length ? 'nftables' : needs.iptables.length ? 'iptables' : undefined),
    snat: optBool(raw, 'snat', true),
    masqAll: optBool(raw, 'masqAll', false),
    markMasqBit,
    externalSetMarkChain,
    conditionsV4,
    conditionsV6,
    mappings: opts.forDel ? mappingsOrNone(runtime.portMappings, opts.onIgnored) : parseMappings(runtime.portMappings),
    stateDir,
    prevResult: conf.prevResult,
    container: containerAddrs(conf.prevResult, ifName),
  };
}

/** Does mapping `m` apply to a pod address of `family`? A host IP of the other family is skipped. */
export function appliesTo(m: PortMapping, family: Family): boolean {
  return m.hostIP === undefined || familyOf(m.hostIP) === family;
}

/** A host IP that names one address (not 0.0.0.0 or ::). */
export function isSpecificHostIP(ip: string | undefined): ip is string {
  return ip !== undefined && ip !== '0.0.0.0' && ip !== '::' && parseAddr(ip).addr !== 0n;
}
