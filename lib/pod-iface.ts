/**
 * Kernel work on the pod's interface shared by ptp, macvlan, ipvlan, vlan,
 * host-device and dummy, in-process over rtnetlink (no `ip` child):
 *
 *   configurePodIface  the reference's ipam.ConfigureIface: IPv6 sysctls,
 *                      addresses, link up, (DAD settle), IPAM routes with the
 *                      family's gateway as default next hop
 *   checkPodIface      the reference's ValidateExpectedInterfaceIPs and
 *                      ValidateExpectedRoute, for CHECK
 *   deletePodLink      idempotent DEL of CNI_IFNAME (netns or link gone = done)
 *   defaultRouteLink   the "master" default: the device of the default route
 *   createStackedInPod macvlan/ipvlan/vlan: created under a temporary name
 *                      straight into the pod (or inside it with
 *                      linkInContainer), then renamed, as the reference does
 */
import { randomVethName } from './digest.ts';
import { CniError, ErrorCode } from './cni/errors.ts';
import type { CmdArgs } from './cni/skel.ts';
import type { Result } from './cni/types.ts';
import { canonicalCidr, defaultDst, familyOf, networkOf } from './ip/prefix.ts';
import { RT_TABLE_MAIN } from './netlink/codec.ts';
import type { LinkInfo, NewSubLink } from './netlink/messages.ts';
import { withRtnl, type Rtnl } from './netlink/rtnl.ts';
import { closeNetns, inspectNetns, openNetns, writeSysctlsIn, type NetnsHandle } from './netns.ts';

const IFA_F_DADFAILED = 0x08;
const IFA_F_TENTATIVE = 0x40;

export const internal = (msg: string) => new CniError(ErrorCode.Internal, msg);


export interface ConfigureOpts {
  /** IPv6: skip duplicate address detection (addresses usable at once). Otherwise wait for DAD, as the reference. */
  nodad?: boolean;
  /** Also set arp_notify / ndisc_notify (macvlan, ipvlan: announce the new MAC). */
  notify?: boolean;
  /** Leave the IPv4 prefix routes the kernel adds (default); ptp removes them itself. */
  noPrefixRoute?: boolean;
}

/**
 * Apply `result`'s addresses (those whose `interface` points at `ifName`)
 * and routes to the pod's `ifName`, and bring it up. Routes without a
 * gateway use the first gateway of their family from the addresses, as the
 * reference's ConfigureIface. Errors name the address or route and the link.
 */
export async function configurePodIface(ns: NetnsHandle, pod: Rtnl, ifName: string, result: Result, opts: ConfigureOpts = {}): Promise<LinkInfo> {
  const link = pod.getLink(ifName);
  if (!link) throw internal(`failed to lookup "${ifName}" in ${ns.path}`);
  const ifs = result.interfaces ?? [];
  const mine = (result.ips ?? []).filter((ip) => {
    if (ip.interface === undefined) return false;
    if (ifs[ip.interface]?.name !== ifName) throw internal(`failed to add IP addr ${ip.address} to "${ifName}": invalid interface index`);
    return true;
  });
  const hasV6 = mine.some((ip) => familyOf(ip.address) === 6);
  const sysctls: Array<[string, string]> = [];
  if (opts.notify) sysctls.push([`net/ipv4/conf/${ifName}/arp_notify`, '1'], [`net/ipv6/conf/${ifName}/ndisc_notify`, '1']);
  if (hasV6) {
    sysctls.push(['net/ipv6/conf/lo/disable_ipv6', '0'], [`net/ipv6/conf/${ifName}/disable_ipv6`, '0'], [`net/ipv6/conf/${ifName}/keep_addr_on_down`, '1']);
  }
  if (sysctls.length) writeSysctlsIn(ns, sysctls);
  const gw: { 4?: string; 6?: string } = {};
  for (const ip of mine) {
    const fam = familyOf(ip.address);
    pod.addAddr({ index: link.index, cidr: ip.address, nodad: opts.nodad && fam === 6 }, 'add', `"${ifName}"`);
    if (ip.gateway && gw[fam] === undefined) gw[fam] = ip.gateway;
  }
  if (!link.up) pod.setLink(link.index, { up: true });
  if (hasV6 && !opts.nodad && gw[6]) await settleAddresses(pod, link.index, ifName);
  for (const r of result.routes ?? []) {
    const fam = familyOf(r.dst);
    pod.addRoute({ dst: r.dst, gw: r.gw ?? gw[fam], index: link.index, priority: r.priority, table: r.table, scope: r.scope, mtu: r.mtu, advmss: r.advmss }, `"${ifName}"`);
  }
  return pod.getLink(link.index) ?? link;
}

/** Wait (up to 5 s, as the reference) until no IPv6 address of the link is tentative; DADFAILED is an error. */
export async function settleAddresses(pod: Rtnl, index: number, ifName: string): Promise<void> {
  const deadline = Date.now() + 5000;
  for (;;) {
    const addrs = pod.listAddrs(6, index);
    const failed = addrs.find((a) => a.flags & IFA_F_DADFAILED);
    if (failed) throw internal(`link ${ifName} has address ${failed.local} in DADFAILED state`);
    if (!addrs.some((a) => a.flags & IFA_F_TENTATIVE)) return;
    if (Date.now() > deadline) throw internal(`failed to settle addresses for "${ifName}": still tentative after 5 seconds`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/**
 * CHECK of the pod side: every address of `result` is on `ifName`, every
 * route of `result` is in the pod's tables (default routes match on the
 * destination only, as the reference). Messages follow the reference's.
 */
export function checkPodIface(pod: Rtnl, ifName: string, result: Result): void {
  const link = pod.getLink(ifName);
  if (!link) throw internal(`Container Interface name in prevResult: ${ifName} not found`);
  const addrs = pod.listAddrs(undefined, link.index).map((a) => canonicalCidr(`${a.local}/${a.prefixLen}`));
  const ifs = result.interfaces ?? [];
  for (const ip of result.ips ?? []) {
    if (ip.interface !== undefined && ifs[ip.interface] && ifs[ip.interface]?.name !== ifName) continue;
    if (!addrs.includes(canonicalCidr(ip.address))) throw internal(`Failed to match addr ${ip.address} on interface ${ifName}`);
  }
  const routes = [...pod.listRoutes(4), ...pod.listRoutes(6)];
  for (const r of result.routes ?? []) {
    const fam = familyOf(r.dst);
    const net = networkOf(r.dst);
    const isDefault = net === defaultDst(fam);
    const found = routes.some((k) => {
      if (k.family !== fam || k.dst !== net) return false;
      return isDefault || r.gw === undefined || k.gateway === r.gw;
    });
    if (!found) throw internal(`Failed to find route {Dst:${r.dst} GW:${r.gw ?? '<nil>'}} in the routing table of ${ifName}`);
  }
}

/** Open CNI_NETNS for DEL; undefined when it is unset or gone (nothing left in it to undo). */
export function openNetnsForDel(args: CmdArgs): NetnsHandle | undefined {
  if (args.netns === '' || args.netnsState === 'missing' || args.netnsState === 'unset') return undefined;
  try {
    return openNetns(args.netns);
  } catch (e) {
    if (inspectNetns(args.netns) === 'missing') return undefined; // vanished since the skel looked
    throw e;
  }
}

/** Delete CNI_IFNAME in the pod: a gone netns or link is success (idempotent DEL). */
export function deletePodLink(args: CmdArgs): void {
  const ns = openNetnsForDel(args);
  if (!ns) return;
  try {
    withRtnl(ns, (pod) => pod.deleteLink(args.ifName));
  } finally {
    closeNetns(ns);
  }
}

/** The link of the first default route (IPv4, then IPv6) in the main table, as the reference's getDefaultRouteInterfaceName. */
export function defaultRouteLink(nl: Rtnl): LinkInfo {
  for (const fam of [4, 6] as const) {
    for (const r of nl.listRoutes(fam)) {
      if (r.dst !== defaultDst(fam) || r.table !== RT_TABLE_MAIN || !r.oif) continue;
      const l = nl.getLink(r.oif);
      if (l) return l;
    }
  }
  throw internal(`no default route interface found${nl.where === 'host' ? '' : ` in ${nl.where}`}`);
}

/**
 * Create a macvlan/ipvlan/vlan on `master` for the pod: under a temporary
 * name (a name taken in the host cannot collide), straight into the pod's
 * namespace by descriptor, or from inside the pod when the master lives
 * there (linkInContainer); then renamed to `ifName` inside the pod. A failed
 * rename deletes the link. Returns the pod's link.
 */
export function createStackedInPod(
  host: Rtnl,
  pod: Rtnl,
  ns: NetnsHandle,
  spec: Omit<NewSubLink, 'name' | 'netnsFd'>,
  ifName: string,
  linkInContainer: boolean,
): LinkInfo {
  const tmp = randomVethName();
  if (linkInContainer) pod.createSubLink({ ...spec, name: tmp });
  else host.createSubLink({ ...spec, name: tmp, netnsFd: ns.fd }, ns.path);
  const created = pod.getLink(tmp);
  if (!created) throw internal(`failed to find ${spec.kind} "${tmp}" in ${ns.path} right after creating it`);
  try {
    pod.setLink(created.index, { name: ifName });
  } catch (e) {
    pod.deleteLink(created.index);
    throw internal(`failed to rename ${spec.kind} to "${ifName}": ${(e as Error).message}`);
  }
  const link = pod.getLink(created.index);
  if (!link) throw internal(`failed to refetch ${spec.kind} "${ifName}" in ${ns.path}`);
  return link;
}
