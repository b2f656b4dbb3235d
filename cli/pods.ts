/**
 * The runner's own bookkeeping for `tscni up/down/inspect`: one JSON file per
 * pod under <stateDir>/pods/<name>.json (default /run/tscni, a tmpfs like
 * /run/netns, so it disappears with the namespaces on reboot).
 *
 * The CNI side of an attachment lives in the libcni result cache as usual;
 * this file only remembers which networks a pod joined and how.
 */
import { mkdirSync, readdirSync, readFileSync, rmSync } from 'node:fs';
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
}

export interface PodRecord {
  name: string;
  netns: string;
  /** true when `up` created the namespace (and `down` deletes it). */
  ownsNetns: boolean;
  /** container mode: the pod whose namespace this one shares. */
  sharesWith?: string;
  attachments: PodAttachment[];
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
