/**
 * Pure planning for bridge ADD: gateways and routes from the IPAM result,
 * and what to ask the kernel for on the host and in the pod (addresses,
 * VLANs, routes) as plain data that plugins/bridge/links.ts applies over
 * netlink. Nothing here touches the kernel, so all of it is golden-tested.
 */
import { CniError, ErrorCode } from '../../lib/cni/errors.ts';
import type { IpConfig, Result, Route } from '../../lib/cni/types.ts';
import { addrOf, canonicalCidr, defaultDst, familyOf, firstHostOf, networkOf, parsePrefix, prefixContains, type Family } from '../../lib/ip/prefix.ts';
import type { RouteSpec } from '../../lib/netlink/messages.ts';
import type { BridgeConfig } from './config.ts';

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

/** An address the kernel reports on a link (the part planBridgeAddrs needs). */
export interface LinkAddr {
  family: Family;
  local: string;
  prefixLen: number;
  /** RT_SCOPE_* (253 is link scope). */
  scope?: number;
}

/** One address to put on a link. */
export interface AddrPlan {
  cidr: string;
  /** IPv6: no duplicate address detection. */
  nodad: boolean;
}

/** Changes to the gateway device's addresses: removals first, then additions (as replace). */
export interface BridgeAddrPlan {
  remove: string[];
  add: AddrPlan[];
}

const RT_SCOPE_LINK = 253;

/**
 * The reference's ensureAddr for each gateway: keep an identical address;
 * another IPv4 address, or an overlapping IPv6 one, is an error unless
 * forceAddress (then it is removed). Additions are applied as "replace": a
 * concurrent ADD may have put the same address there a moment ago.
 */
export function planBridgeAddrs(dev: string, existing: readonly LinkAddr[], wanted: Record<Family, string[]>, forceAddress: boolean, nodad: boolean): BridgeAddrPlan {
  const plan: BridgeAddrPlan = { remove: [], add: [] };
  const removed = new Set<string>();
  for (const family of [4, 6] as const) {
    for (const gw of wanted[family]) {
      const want = canonicalCidr(gw);
      let present = false;
      for (const a of existing) {
        if (a.family !== family) continue;
        if (family === 6 && a.scope === RT_SCOPE_LINK) continue;
        const have = canonicalCidr(`${a.local}/${a.prefixLen}`);
        if (removed.has(have)) continue;
        if (have === want) {
          present = true;
          continue;
        }
        const overlap = family === 4 || prefixContains(have, addrOf(want)) || prefixContains(want, a.local);
        if (!overlap) continue;
        if (!forceAddress) throw new CniError(ErrorCode.Internal, `failed to set bridge addr: "${dev}" already has an IP address different from ${want}`);
        plan.remove.push(have);
        removed.add(have);
      }
      if (!present) plan.add.push({ cidr: want, nodad: family === 6 && nodad });
    }
  }
  return plan;
}

/** One `bridge vlan add|del` on a port. */
export interface PortVlanOp {
  op: 'add' | 'del';
  vid: number;
  pvid?: boolean;
  untagged?: boolean;
}

/** A port's VLANs, as the reference's setupVeth: drop the default PVID, then the access VLAN or the trunk. */
export function planPortVlans(vlan: number, trunk: readonly number[] | undefined, preserveDefaultVlan: boolean, defaultPvid: number): PortVlanOp[] {
  const ops: PortVlanOp[] = [];
  const hasTrunk = !!trunk && trunk.length > 0;
  if ((vlan !== 0 || hasTrunk) && !preserveDefaultVlan && defaultPvid !== 0) ops.push({ op: 'del', vid: defaultPvid });
  if (vlan !== 0) ops.push({ op: 'add', vid: vlan, pvid: true, untagged: true });
  for (const v of trunk ?? []) ops.push({ op: 'add', vid: v });
  if (vlan === 0 && hasTrunk) ops.push({ op: 'add', vid: 1, pvid: true, untagged: true });
  return ops;
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

/** The pod's addresses, canonical, with nodad on IPv6 unless DAD is wanted. */
export function planPodAddrs(ips: readonly IpConfig[], nodad: boolean): AddrPlan[] {
  return ips.map((ip) => ({ cidr: canonicalCidr(ip.address), nodad: nodad && familyOf(ip.address) === 6 }));
}

/**
 * Routes as ipam.ConfigureIface: a route without gw uses the first gateway of
 * its family; the destination is masked to its network. Added with append
 * (as the reference's RouteAddEcmp): a second interface may add its own default route.
 */
export function planPodRoutes(ips: readonly IpConfig[], routes: readonly Route[]): Array<Omit<RouteSpec, 'index'>> {
  const gw: Partial<Record<Family, string>> = {};
  for (const ip of ips) {
    const f = familyOf(ip.address);
    if (ip.gateway && gw[f] === undefined) gw[f] = ip.gateway;
  }
  return routes.map((r) => {
    const spec: Omit<RouteSpec, 'index'> = { dst: networkOf(r.dst) };
    const via = r.gw ?? gw[familyOf(r.dst)];
    if (via) spec.gw = via;
    if (r.priority !== undefined) spec.priority = r.priority;
    if (r.table !== undefined) spec.table = r.table;
    if (r.scope !== undefined) spec.scope = r.scope;
    if (r.mtu !== undefined) spec.mtu = r.mtu;
    if (r.advmss !== undefined) spec.advmss = r.advmss;
    return spec;
  });
}
