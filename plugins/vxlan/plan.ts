/**
 * What a host's VXLAN device must hold, from the subnets in etcd, pure.
 * For every other host (flannel's "one route, one ARP and one FDB entry"):
 *
 *   route  <remote subnet> via <remote subnet's .0> dev <vxlan> onlink
 *   neigh  <remote subnet's .0> lladdr <remote VTEP MAC> nud permanent
 *   fdb    <remote VTEP MAC> dst <remote underlay IP> self permanent
 */
import type { HeldSubnet } from '../../ipam/etcd-subnet/lease.ts';
import { cidrKey } from '../../ipam/etcd-subnet/subnets.ts';
import { cidrContains, formatIp, parseCidr, parseIp, type Cidr } from '../../lib/ip/cidr.ts';
import type { NeighInfo, RouteInfo } from '../../lib/netlink/messages.ts';

/** One remote host's entries. */
export interface RemoteEntry {
  subnet: string;
  gw: string;
  mac: string;
  dst: string;
}

/** The entries for every remote host with a usable record (ours and records without an underlay address are skipped). */
export function planEntries(ownSubnet: string, held: readonly HeldSubnet[]): RemoteEntry[] {
  const out: RemoteEntry[] = [];
  for (const h of held) {
    const subnet = cidrKey(h.subnet);
    if (subnet === ownSubnet || !h.record?.publicIp || !/^[0-9a-f]{2}(:[0-9a-f]{2}){5}$/.test(h.record.vtepMac)) continue;
    out.push({ subnet, gw: formatIp(h.subnet.ip), mac: h.record.vtepMac, dst: h.record.publicIp });
  }
  return out.sort((a, b) => a.subnet.localeCompare(b.subnet));
}

/** What the kernel holds on the device now. */
export interface CurrentEntries {
  routes: Array<Pick<RouteInfo, 'dst' | 'gateway'>>;
  neighs: NeighInfo[];
  fdb: NeighInfo[];
}

export interface Changes {
  /** Routes, neighbours and FDB entries to add or replace. */
  put: RemoteEntry[];
  delRoutes: string[];
  delNeighs: string[];
  delFdb: Array<{ mac: string; dst: string }>;
}

/**
 * The changes that turn `cur` into `want`. Only entries inside the cluster
 * CIDR (routes) or on our device are considered; anything already right is
 * left alone, so a second run changes nothing.
 */
export function diffEntries(want: readonly RemoteEntry[], cur: CurrentEntries, cluster: Cidr): Changes {
  const routeOk = new Set(cur.routes.map((r) => `${r.dst}|${r.gateway ?? ''}`));
  const neighOk = new Set(cur.neighs.map((n) => `${n.dst}|${n.mac}`));
  const fdbOk = new Set(cur.fdb.map((f) => `${f.mac}|${f.dst}`));
  const put = want.filter((w) => !routeOk.has(`${w.subnet}|${w.gw}`) || !neighOk.has(`${w.gw}|${w.mac}`) || !fdbOk.has(`${w.mac}|${w.dst}`));
  const wantSubnets = new Set(want.map((w) => w.subnet));
  const wantGws = new Set(want.map((w) => w.gw));
  const wantFdb = new Set(want.map((w) => `${w.mac}|${w.dst}`));
  const inCluster = (dst: string) => {
    const c = parseCidr(dst);
    return !!c && c.prefix >= cluster.prefix && cidrContains(cluster, c.ip);
  };
  const isIpInCluster = (ip: string | undefined) => {
    const p = ip ? parseIp(ip) : undefined;
    return !!p && cidrContains(cluster, p);
  };
  return {
    put,
    delRoutes: [...new Set(cur.routes.filter((r) => r.gateway && inCluster(r.dst) && !wantSubnets.has(r.dst)).map((r) => r.dst))],
    delNeighs: [...new Set(cur.neighs.filter((n) => isIpInCluster(n.dst) && !wantGws.has(n.dst as string)).map((n) => n.dst as string))],
    delFdb: cur.fdb.filter((f) => f.mac && f.dst && f.mac !== '00:00:00:00:00:00' && !wantFdb.has(`${f.mac}|${f.dst}`)).map((f) => ({ mac: f.mac as string, dst: f.dst as string })),
  };
}
