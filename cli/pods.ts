/**
 * The runner's own bookkeeping for `tscni up/down/inspect`: one JSON file per
 * pod under <stateDir>/pods/<name>.json (default /run/tscni, a tmpfs like
 * /run/netns, so it disappears with the namespaces on reboot).
 *
 * The CNI side of an attachment lives in the libcni result cache as usual;
 * this file only remembers which networks a pod joined and how.
 */
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { writeFileAtomic } from '../lib/fs.ts';
import { join } from 'node:path';
import { UsageError } from './context.ts';

export interface PortMapping {
  hostPort: number;
  containerPort: number;
  protocol: string;
  hostIP?: string;
}

export interface PodAttachment {
  network: string;
  ifName: string;
  containerId: string;
  portMappings?: PortMapping[];
  ips?: string[];
  /** The addresses the ADD result gave (CIDR), for ps and network inspect. */
  addresses?: string[];
  /** The result's dns (a network with a name server fills it). */
  dns?: { nameservers?: string[]; search?: string[]; domain?: string };
}

/** What `up` was told about names; kept to re-render the pod's files when it joins another network. */
export interface PodNames {
  hostname?: string;
  addHosts?: string[];
  dns?: string[];
  dnsSearch?: string[];
  dnsOptions?: string[];
}

export interface PodRecord {
  name: string;
  netns: string;
  /** true when `up` created the namespace (and `down` deletes it). */
  ownsNetns: boolean;
  /** container mode: the pod whose namespace this one shares. */
  sharesWith?: string;
  attachments: PodAttachment[];
  names?: PodNames;
}

const NAME_RE = /^[a-zA-Z0-9][a-zA-Z0-9_.-]{0,62}$/;

export function validatePodName(name: string): void {
  if (!NAME_RE.test(name)) throw new UsageError(`invalid name ${JSON.stringify(name)}: use letters, digits, "_", "." and "-" (at most 63)`);
}

function podsDir(stateDir: string): string {
  return join(stateDir, 'pods');
}

export function readPod(stateDir: string, name: string): PodRecord | undefined {
  validatePodName(name);
  try {
    return JSON.parse(readFileSync(join(podsDir(stateDir), `${name}.json`), 'utf8')) as PodRecord;
  } catch {
    return undefined;
  }
}

export function writePod(stateDir: string, pod: PodRecord): void {
  mkdirSync(podsDir(stateDir), { recursive: true, mode: 0o700 });
  const path = join(podsDir(stateDir), `${pod.name}.json`);
  writeFileAtomic(path, `${JSON.stringify(pod, null, 2)}\n`);
}

export function deletePod(stateDir: string, name: string): void {
  rmSync(join(podsDir(stateDir), `${name}.json`), { force: true });
}

export function listPods(stateDir: string): PodRecord[] {
  let names: string[];
  try {
    names = readdirSync(podsDir(stateDir)).filter((n) => n.endsWith('.json')).sort();
  } catch {
    return [];
  }
  return names.map((n) => readPod(stateDir, n.slice(0, -5))).filter((p): p is PodRecord => p !== undefined);
}

/**
 * Docker's -p syntax: [ip:]hostPort:containerPort[/proto]. An IPv6 host IP
 * goes in brackets: [::1]:8080:80.
 */
export function parsePortSpec(spec: string): PortMapping {
  const m = /^(?:(\[[0-9a-fA-F:.]+\]|[0-9.]+):)?(\d+):(\d+)(?:\/(tcp|udp|sctp))?$/.exec(spec.trim());
  if (!m) throw new UsageError(`invalid port mapping ${JSON.stringify(spec)}: expected [ip:]hostPort:containerPort[/tcp|udp|sctp]`);
  const [, ip, host, ctr, proto] = m;
  const hostPort = Number(host);
  const containerPort = Number(ctr);
  for (const [what, p] of [['host port', hostPort], ['container port', containerPort]] as const) {
    if (!Number.isInteger(p) || p < 1 || p > 65535) throw new UsageError(`invalid port mapping ${JSON.stringify(spec)}: ${what} ${p} is outside 1-65535`);
  }
  const out: PortMapping = { hostPort, containerPort, protocol: proto ?? 'tcp' };
  if (ip) out.hostIP = ip.replace(/^\[|\]$/g, '');
  return out;
}

/** Where a pod's /etc files live: <stateDir>/pods/<name>/ (hosts, resolv.conf, hostname). */
export function podFilesDir(stateDir: string, name: string): string {
  return join(podsDir(stateDir), name);
}

export const POD_FILES = ['hosts', 'resolv.conf', 'hostname'] as const;

/** Docker's --add-host syntax name:ip (the address may be IPv6, so split at the first colon). */
export function parseAddHost(spec: string): { name: string; ip: string } {
  const i = spec.indexOf(':');
  const name = spec.slice(0, i);
  const ip = spec.slice(i + 1).replace(/^\[|\]$/g, '');
  if (i <= 0 || !/^[a-zA-Z0-9]([a-zA-Z0-9.-]*[a-zA-Z0-9])?$/.test(name) || !/^[0-9a-fA-F:.]+$/.test(ip)) {
    throw new UsageError(`invalid --add-host ${JSON.stringify(spec)}: expected name:ip`);
  }
  return { name, ip };
}

/** /etc/hosts of a pod (pure): localhost, the pod's own addresses under its hostname, then --add-host entries. */
export function renderHosts(hostname: string, ownAddresses: readonly string[], extra: readonly { name: string; ip: string }[]): string {
  const lines = ['127.0.0.1\tlocalhost', '::1\tlocalhost ip6-localhost ip6-loopback'];
  for (const a of ownAddresses) lines.push(`${a.replace(/\/\d+$/, '')}\t${hostname}`);
  for (const h of extra) lines.push(`${h.ip}\t${h.name}`);
  return `${lines.join('\n')}\n`;
}

/** /etc/resolv.conf of a pod (pure). */
export function renderResolvConf(nameservers: readonly string[], search: readonly string[], options: readonly string[] = []): string {
  const lines = ['# written by tscni up'];
  if (search.length) lines.push(`search ${search.join(' ')}`);
  for (const n of nameservers) lines.push(`nameserver ${n}`);
  if (options.length) lines.push(`options ${options.join(' ')}`);
  return `${lines.join('\n')}\n`;
}

/** The host's nameservers a pod can reach: loopback ones are dropped (they would be the pod's own lo), as Docker does. */
export function reachableHostNameservers(resolvConf: string): string[] {
  const out: string[] = [];
  for (const line of resolvConf.split('\n')) {
    const m = /^\s*nameserver\s+(\S+)/.exec(line);
    if (m?.[1] && !m[1].startsWith('127.') && m[1] !== '::1') out.push(m[1]);
  }
  return out;
}

/** The pod's three files, rendered from its record (pure but for `hostResolvConf`, passed in). */
export function renderPodFiles(pod: PodRecord, hostResolvConf: string): Record<(typeof POD_FILES)[number], string> {
  const n = pod.names ?? {};
  const hostname = n.hostname || pod.name;
  const own = pod.attachments.flatMap((a) => a.addresses ?? []);
  const netDns = pod.attachments.map((a) => a.dns).filter((d) => d?.nameservers?.length);
  const nameservers = n.dns?.length ? n.dns : netDns.length ? netDns.flatMap((d) => d?.nameservers ?? []) : reachableHostNameservers(hostResolvConf);
  const search = n.dnsSearch?.length ? n.dnsSearch : [...new Set(netDns.flatMap((d) => d?.search ?? []))];
  return {
    hosts: renderHosts(hostname, own, (n.addHosts ?? []).map(parseAddHost)),
    'resolv.conf': renderResolvConf([...new Set(nameservers)], search, n.dnsOptions ?? []),
    hostname: `${hostname}\n`,
  };
}

/** Write the pod's files (atomically) into podFilesDir. */
export function writePodFiles(stateDir: string, pod: PodRecord): string {
  const dir = podFilesDir(stateDir, pod.name);
  mkdirSync(dir, { recursive: true, mode: 0o755 });
  let host = '';
  try {
    host = readFileSync('/etc/resolv.conf', 'utf8');
  } catch {
    // no host resolv.conf: the pod gets none of its servers
  }
  const files = renderPodFiles(pod, host);
  for (const f of POD_FILES) writeFileAtomic(join(dir, f), files[f], { mode: 0o644 });
  return dir;
}

export function deletePodFiles(stateDir: string, name: string): void {
  const dir = podFilesDir(stateDir, name);
  if (existsSync(dir)) rmSync(dir, { recursive: true, force: true });
}

/** `tscni ps` as a table (pure): one row per attachment, with its addresses and published ports. */
export function renderPsTable(pods: readonly PodRecord[]): string {
  const rows = [['POD', 'NETNS', 'NETWORK', 'IFACE', 'ADDRESSES', 'PORTS']];
  for (const p of pods) {
    if (p.sharesWith) {
      rows.push([p.name, p.netns, `container:${p.sharesWith}`, '-', '-', '-']);
      continue;
    }
    if (p.attachments.length === 0) rows.push([p.name, p.netns, '(no networks)', '-', '-', '-']);
    for (const a of p.attachments) {
      const ports = (a.portMappings ?? []).map((m) => `${m.hostIP ? `${m.hostIP}:` : ''}${m.hostPort}->${m.containerPort}/${m.protocol}`).join(',');
      rows.push([p.name, p.netns, a.network, a.ifName, (a.addresses ?? []).join(',') || '-', ports || '-']);
    }
  }
  const widths: number[] = [];
  for (const r of rows) r.forEach((c, i) => (widths[i] = Math.max(widths[i] ?? 0, c.length)));
  return rows.map((r) => r.map((c, i) => (i === r.length - 1 ? c : c.padEnd(widths[i] ?? 0))).join('  ')).join('\n') + '\n';
}
