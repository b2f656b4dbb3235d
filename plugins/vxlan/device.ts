/**
 * The host's VXLAN device and its entries, over rtnetlink in the calling
 * namespace (the host's). Shared by the plugin and `tscni overlay agent`.
 *
 *   pods --bridge (gateway .1)-- host routing --> <device> (subnet .0/32, MTU underlay-50)
 *        --UDP 4789 over the underlay--> remote <device> --> remote bridge --> pod
 */
import type { LeaseState, HeldSubnet } from '../../ipam/etcd-subnet/lease.ts';
import { CniError, ErrorCode } from '../../lib/cni/errors.ts';
import { parseCidr, type Cidr } from '../../lib/ip/cidr.ts';
import { AF_BRIDGE, AF_INET } from '../../lib/netlink/codec.ts';
import { EEXIST, NetlinkError, type Rtnl } from '../../lib/netlink/rtnl.ts';
import { diffEntries, planEntries, type Changes } from './plan.ts';

/** VXLAN over IPv4 adds 50 bytes (outer IPv4 20 + UDP 8 + VXLAN 8 + inner Ethernet 14). */
export const VXLAN_OVERHEAD = 50;

export interface DeviceSpec {
  name: string;
  vni: number;
  port: number;
}

/** The underlay link (the one holding `publicIp`) and its MTU. */
export function underlayOf(nl: Rtnl, publicIp: string): { index: number; mtu: number } {
  const addr = nl.listAddrs(4).find((a) => a.local === publicIp);
  if (!addr) throw new CniError(ErrorCode.InvalidNetworkConfig, `vxlan: no link on this host holds the underlay address ${publicIp} (ipam.publicIp)`);
  const link = nl.getLink(addr.index);
  if (!link) throw new CniError(ErrorCode.Internal, `vxlan: underlay link index ${addr.index} vanished`);
  return { index: link.index, mtu: link.mtu };
}

/**
 * Make sure the device exists as `spec` says, carries the subnet's .0/32 and
 * is up; returns its index. A device of that name with other VXLAN settings
 * is replaced (a changed VNI or underlay address). Idempotent.
 */
export function ensureDevice(nl: Rtnl, spec: DeviceSpec, lease: LeaseState): number {
  if (!lease.publicIp) throw new CniError(ErrorCode.InvalidNetworkConfig, `vxlan: the lease of network ${lease.network} has no underlay address: set ipam.publicIp`);
  const underlay = underlayOf(nl, lease.publicIp);
  const mtu = underlay.mtu - VXLAN_OVERHEAD;
  const cur = nl.getVxlan(spec.name);
  const matches = cur && cur.vxlan.kind === 'vxlan' && cur.vxlan.vni === spec.vni && cur.vxlan.local === lease.publicIp && cur.vxlan.port === spec.port && cur.link.mac === lease.vtepMac;
  if (cur && !matches) nl.deleteLink(spec.name);
  if (!matches) {
    try {
      nl.createVxlan({ name: spec.name, vni: spec.vni, local: lease.publicIp, port: spec.port, learning: false, mtu, mac: lease.vtepMac });
    } catch (e) {
      // A concurrent ADD created it between our look and our create.
      if (!(e instanceof NetlinkError && e.errno === EEXIST)) throw e;
    }
  }
  const link = nl.getLink(spec.name);
  if (!link) throw new CniError(ErrorCode.Internal, `vxlan: device ${spec.name} vanished after creation`);
  if (link.mtu !== mtu) nl.setLink(link.index, { mtu });
  const own = `${lease.subnet.split('/')[0]}`;
  const addrs = nl.listAddrs(4, link.index);
  if (!addrs.some((a) => a.local === own && a.prefixLen === 32)) nl.addAddr({ index: link.index, cidr: `${own}/32` }, 'replace', spec.name);
  if (!link.up) nl.setLink(link.index, { up: true });
  return link.index;
}

/** The changes that bring the device's routes, ARP and FDB entries to what etcd says. */
export function planDevice(nl: Rtnl, index: number, lease: LeaseState, held: readonly HeldSubnet[]): Changes {
  const cluster = parseCidr(lease.clusterCIDR) as Cidr;
  const want = planEntries(lease.subnet, held);
  const routes = nl.listRoutes(4).filter((r) => r.oif === index && r.table === 254);
  const neighs = nl.listNeighs(AF_INET, index);
  const fdb = nl.listNeighs(AF_BRIDGE, index);
  return diffEntries(want, { routes, neighs, fdb }, cluster);
}

/** Apply changes: neighbour and FDB before the route that uses them; deletions after. Returns how many kernel calls it made. */
export function applyChanges(nl: Rtnl, index: number, c: Changes): number {
  let n = 0;
  for (const e of c.put) {
    nl.neighReplace({ index, ip: e.gw, mac: e.mac });
    try {
      nl.fdbAppend({ index, mac: e.mac, dst: e.dst });
    } catch (err) {
      if (!(err instanceof NetlinkError && err.errno === EEXIST)) throw err; // the exact entry is there already
    }
    nl.routeReplaceOnlink({ dst: e.subnet, gw: e.gw, index });
    n += 3;
  }
  for (const dst of c.delRoutes) n += nl.delRoute({ dst, index }) ? 1 : 0;
  for (const ip of c.delNeighs) n += nl.neighDel({ index, ip }) ? 1 : 0;
  for (const f of c.delFdb) n += nl.fdbDel({ index, ...f }) ? 1 : 0;
  return n;
}

/** Reconcile once: plan and apply. Idempotent: a second call makes no kernel change. */
export function reconcile(nl: Rtnl, index: number, lease: LeaseState, held: readonly HeldSubnet[]): number {
  return applyChanges(nl, index, planDevice(nl, index, lease, held));
}
