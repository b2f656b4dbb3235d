/**
 * Pure planning for bridge ADD: gateways and routes from the IPAM result,
 * and the `ip -batch` / `bridge -batch` scripts for the host and the pod.
 * Nothing here touches the kernel, so all of it is golden-tested.
 */
import { CniError, ErrorCode } from '../../lib/cni/errors.ts';
import type { IpConfig, Result, Route } from '../../lib/cni/types.ts';
import type { AddrInfo } from '../../lib/ip/ip.ts';
import { addrOf, canonicalCidr, defaultDst, familyOf, firstHostOf, networkOf, parsePrefix, prefixContains, type Family } from '../../lib/ip/prefix.ts';
import type { BridgeConfig } from './config.ts';

/**
 * One word of an `ip -batch` line. Names and paths come from outside (a netns
 * path may contain spaces; an interface name may contain "#", which starts a
 * comment in batch files), so quote anything that is not plainly safe.
 */
export function batchArg(s: string): string {
  if (/^[A-Za-z0-9_.:/@+=,-]+$/.test(s)) return s;
  return s.includes('"') ? `'${s}'` : `"${s}"`;
}

/** Index of the container veth in Result.interfaces: [bridge, host veth, container veth]. */
export const CONTAINER_IF_INDEX = 2;

export interface GatewayPlan {
  /** ips with interface=2 and gateways filled in (isGateway). */
  ips: IpConfig[];
  routes: Route[];
  /** Gateway addresses ("gw/prefixlen") to put on the bridge, per family. */
  bridgeAddrs: Record<Family, string[]>;
}

/** As the reference's calcGateways: gateway = subnet + 1 when IPAM gave none, default route when asked. */
export function planGateways(ipam: Result, conf: BridgeConfig): GatewayPlan {
  const ips: IpConfig[] = [];
  const routes: Route[] = [...(ipam.routes ?? [])];
  const bridgeAddrs: Record<Family, string[]> = { 4: [], 6: [] };
  const defaultDone: Record<Family, boolean> = { 4: false, 6: false };
  for (const ipc of ipam.ips ?? []) {
    const family = familyOf(ipc.address);
    const out: IpConfig = { ...ipc, interface: CONTAINER_IF_INDEX };
    if (out.gateway === undefined && conf.isGateway) out.gateway = firstHostOf(ipc.address);
    if (conf.isDefaultGateway && !defaultDone[family]) {
      const dst = defaultDst(family);
      const found = routes.some((r) => r.gw !== undefined && safeNetwork(r.dst) === dst);
      if (!found) routes.push(out.gateway !== undefined ? { dst, gw: out.gateway } : { dst });
      defaultDone[family] = true;
    }
    if (conf.isGateway && out.gateway !== undefined) {
      bridgeAddrs[family].push(`${out.gateway}/${parsePrefix(ipc.address).prefixLen}`);
    }
    ips.push(out);
  }
  return { ips, routes, bridgeAddrs };
}

function safeNetwork(cidr: string): string | undefined {
  try {
    return networkOf(cidr);
  } catch {
    return undefined;
  }
}

/**
 * The reference's ensureAddr for each gateway: keep an identical address;
 * another IPv4 address, or an overlapping IPv6 one, is an error unless
 * forceAddress (then it is removed). Returns the `ip` lines to run.
 */
export function planBridgeAddrs(dev: string, existing: readonly AddrInfo[], wanted: Record<Family, string[]>, forceAddress: boolean, nodad: boolean): string[] {
  const lines: string[] = [];
  const removed = new Set<string>();
  for (const family of [4, 6] as const) {
    for (const gw of wanted[family]) {
      const want = canonicalCidr(gw);
      let present = false;
      for (const a of existing) {
        if ((a.family === 'inet' ? 4 : 6) !== family) continue;
        if (family === 6 && a.scope === 'link') continue;
        const have = canonicalCidr(`${a.local}/${a.prefixlen}`);
        if (removed.has(have)) continue;
        if (have === want) {
          present = true;
          continue;
        }
        const overlap = family === 4 || prefixContains(have, addrOf(want)) || prefixContains(want, a.local);
        if (!overlap) continue;
        if (!forceAddress) throw new CniError(ErrorCode.Internal, `failed to set bridge addr: "${dev}" already has an IP address different from ${want}`);
        lines.push(`addr del ${have} dev ${dev}`);
        removed.add(have);
      }
      // replace, not add: a concurrent ADD may have put the same address there a moment ago.
      if (!present) lines.push(`addr replace ${want} dev ${dev}${family === 6 && nodad ? ' nodad' : ''}`);
    }
  }
  return lines;
}

export interface HostPlan {
  bridgeExists: boolean;
  /** MAC for a bridge this ADD creates (kept fixed so it does not follow its ports). */
  newBridgeMac: string;
  /** Current MAC of an existing bridge, re-set to pin it once it carries a gateway address. */
  pinBridgeMac: string | undefined;
  hostVeth: string;
  netns: string;
  ifName: string;
  /** Gateway-address lines from planBridgeAddrs. */
  addrLines: string[];
  /** VLAN gateway interface "<bridge>.<vlan>" to create, with its bridge-side peer. */
  vlanGw?: { name: string; peer: string; exists: boolean };
}

/** One `ip -batch` for the host: bridge, veth pair (container end straight into the netns), port flags, gateway. */
export function renderHostBatch(conf: BridgeConfig, p: HostPlan): string[] {
  const br = conf.bridge;
  const mtu = conf.mtu > 0 ? ` mtu ${conf.mtu}` : '';
  const lines: string[] = [];
  if (!p.bridgeExists) {
    const vf = conf.vlan !== 0 || conf.vlanTrunk !== undefined ? ' vlan_filtering 1' : '';
    lines.push(`link add name ${br}${mtu} address ${p.newBridgeMac} type bridge${vf}`);
  }
  if (conf.promiscMode) lines.push(`link set dev ${br} promisc on`);
  lines.push(`link set dev ${br} up`);
  const mac = conf.mac ? ` address ${conf.mac}` : '';
  lines.push(`link add name ${p.hostVeth}${mtu} type veth peer name ${batchArg(p.ifName)}${mtu}${mac} netns ${batchArg(p.netns)}`);
  lines.push(`link set dev ${p.hostVeth} master ${br} up`);
  if (conf.hairpinMode || conf.portIsolation) {
    lines.push(`link set dev ${p.hostVeth} type bridge_slave hairpin ${conf.hairpinMode ? 'on' : 'off'} isolated ${conf.portIsolation ? 'on' : 'off'}`);
  }
  if (p.vlanGw && !p.vlanGw.exists) {
    lines.push(`link add name ${p.vlanGw.name}${mtu} type veth peer name ${p.vlanGw.peer}${mtu}`);
    lines.push(`link set dev ${p.vlanGw.peer} master ${br} up`);
    lines.push(`link set dev ${p.vlanGw.name} up`);
  }
  lines.push(...p.addrLines);
  if (p.pinBridgeMac && p.addrLines.length && !p.vlanGw) lines.push(`link set dev ${br} address ${p.pinBridgeMac}`);
  return lines;
}

/** `bridge -batch` lines for a port's VLANs, as the reference's setupVeth. */
export function renderPortVlans(port: string, vlan: number, trunk: readonly number[] | undefined, preserveDefaultVlan: boolean, defaultPvid: number): string[] {
  const lines: string[] = [];
  const hasTrunk = !!trunk && trunk.length > 0;
  if ((vlan !== 0 || hasTrunk) && !preserveDefaultVlan && defaultPvid !== 0) lines.push(`vlan del dev ${port} vid ${defaultPvid}`);
  if (vlan !== 0) lines.push(`vlan add dev ${port} vid ${vlan} pvid untagged`);
  for (const v of trunk ?? []) lines.push(`vlan add dev ${port} vid ${v}`);
  if (vlan === 0 && hasTrunk) lines.push(`vlan add dev ${port} vid 1 pvid untagged`);
  return lines;
}

/** Sysctls for the container interface, applied inside the pod before it comes up. */
export function podSysctls(ifName: string, enabledad: boolean, hasV6: boolean): Array<[string, string]> {
  const s: Array<[string, string]> = [];
  if (hasV6) {
    s.push(['net/ipv6/conf/lo/disable_ipv6', '0'], [`net/ipv6/conf/${ifName}/disable_ipv6`, '0'], [`net/ipv6/conf/${ifName}/keep_addr_on_down`, '1']);
  }
  if (enabledad) s.push([`net/ipv6/conf/${ifName}/enhanced_dad`, '1'], [`net/ipv6/conf/${ifName}/accept_dad`, '1']);
  else s.push([`net/ipv6/conf/${ifName}/accept_dad`, '0']);
  s.push([`net/ipv4/conf/${ifName}/arp_notify`, '1']);
  return s;
}

export function renderPodAddrs(ifName: string, ips: readonly IpConfig[], nodad: boolean): string[] {
  const dev = batchArg(ifName);
  const lines = ips.map((ip) => `addr add ${canonicalCidr(ip.address)} dev ${dev}${nodad && familyOf(ip.address) === 6 ? ' nodad' : ''}`);
  lines.push(`link set dev ${dev} up`);
  return lines;
}

/** Routes as ipam.ConfigureIface: a route without gw uses the first gateway of its family. */
export function renderPodRoutes(ifName: string, ips: readonly IpConfig[], routes: readonly Route[]): string[] {
  const gw: Partial<Record<Family, string>> = {};
  for (const ip of ips) {
    const f = familyOf(ip.address);
    if (ip.gateway && gw[f] === undefined) gw[f] = ip.gateway;
  }
  return routes.map((r) => {
    const via = r.gw ?? gw[familyOf(r.dst)];
    // append, as the reference's RouteAddEcmp: a second interface in the same pod may add its own default route.
    let line = `route append ${networkOf(r.dst)}`;
    if (via) line += ` via ${via}`;
    line += ` dev ${batchArg(ifName)}`;
    if (r.priority !== undefined) line += ` metric ${r.priority}`;
    if (r.table !== undefined) line += ` table ${r.table}`;
    if (r.scope !== undefined) line += ` scope ${r.scope}`;
    if (r.mtu !== undefined) line += ` mtu ${r.mtu}`;
    if (r.advmss !== undefined) line += ` advmss ${r.advmss}`;
    return line;
  });
}
