/**
 * firewall configuration: parse + validate, pure (reference:
 * plugins/meta/firewall/firewall.go FirewallNetConf). Everything is checked
 * before any rule changes.
 */
import { CniError, ErrorCode } from '../../lib/cni/errors.ts';
import type { NetConf, Result } from '../../lib/cni/types.ts';
import { addrOf, familyOf, formatAddr, parseAddr } from '../../lib/ip/prefix.ts';

export type FirewallBackend = 'iptables' | 'nftables';
export type IngressPolicy = 'open' | 'same-bridge' | 'isolated';

export const DEFAULT_ADMIN_CHAIN = 'CNI-ADMIN';
export const DEFAULT_STATE_DIR = '/var/lib/cni/tscni-firewall';
const POLICIES: readonly IngressPolicy[] = ['open', 'same-bridge', 'isolated'];
/** iptables chain names: at most 28 characters, no blanks or quotes. */
const CHAIN_RE = /^[A-Za-z0-9_.-]{1,28}$/;

export interface FirewallConfig {
  name: string;
  cniVersion: string;
  /** undefined: detect at call time (podman writes `"backend": ""`). */
  backend: FirewallBackend | undefined;
  adminChain: string;
  policy: IngressPolicy;
  stateDir: string;
  prevResult: Result | undefined;
}

const bad = (msg: string, details = '') => new CniError(ErrorCode.InvalidNetworkConfig, msg, details);

/**
 * Parse and validate the plugin's keys. Throws CniError 7 for a bad value;
 * `backend: "firewalld"` (the reference's other backend) is rejected, since
 * we drive iptables or nftables directly.
 */
export function parseFirewallConfig(conf: NetConf): FirewallConfig {
  const raw = conf as Record<string, unknown>;
  let backend: FirewallBackend | undefined;
  const b = raw.backend;
  if (b !== undefined && b !== null && b !== '') {
    if (b === 'firewalld') throw bad('invalid "backend": "firewalld" is not supported by tscni', 'use "iptables", "nftables" or leave it empty to detect');
    if (b !== 'iptables' && b !== 'nftables') throw bad(`invalid "backend": ${JSON.stringify(b)} (use iptables or nftables)`);
    backend = b;
  }
  let adminChain = DEFAULT_ADMIN_CHAIN;
  const a = raw.iptablesAdminChainName;
  if (a !== undefined && a !== null && a !== '') {
    if (typeof a !== 'string' || !CHAIN_RE.test(a) || a.startsWith('-')) throw bad(`invalid "iptablesAdminChainName": ${JSON.stringify(a)} is not an iptables chain name (1-28 of A-Z a-z 0-9 _ . -)`);
    adminChain = a;
  }
  let policy: IngressPolicy = 'open';
  const p = raw.ingressPolicy;
  if (p !== undefined && p !== null && p !== '') {
    if (typeof p !== 'string' || !POLICIES.includes(p as IngressPolicy)) throw bad(`invalid "ingressPolicy": ${JSON.stringify(p)} (use open, same-bridge or isolated)`);
    policy = p as IngressPolicy;
  }
  let stateDir = DEFAULT_STATE_DIR;
  if (raw.stateDir !== undefined) {
    if (typeof raw.stateDir !== 'string' || !raw.stateDir.startsWith('/')) throw bad('invalid "stateDir": must be an absolute path');
    stateDir = raw.stateDir;
  }
  return { name: conf.name, cniVersion: conf.cniVersion, backend, adminChain, policy, stateDir, prevResult: conf.prevResult };
}

/** Every address of the result as "<addr>/32" or "<addr>/128", canonical, de-duplicated (reference: ipString). */
export function hostPrefixes(result: Result | undefined): string[] {
  const out: string[] = [];
  for (const ip of result?.ips ?? []) {
    const { family, addr } = parseAddr(addrOf(ip.address));
    const p = `${formatAddr(family, addr)}/${family === 4 ? 32 : 128}`;
    if (!out.includes(p)) out.push(p);
  }
  return out;
}

/**
 * The bridge of the attachment: the first interface of the result, as the
 * reference takes it (bridge puts its bridge first). Required for
 * same-bridge and isolated; code 7 when the result has none.
 */
export function bridgeOf(result: Result | undefined, policy: IngressPolicy): string | undefined {
  if (policy === 'open') return undefined;
  const name = result?.interfaces?.[0]?.name;
  if (!name) throw bad(`interface needs to be set for ingress policy "${policy}", make sure to chain "firewall" plugin with "bridge"`);
  return name;
}

export { familyOf };
