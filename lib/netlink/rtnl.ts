/**
 * rtnetlink operations on one socket bound to one network namespace. Every
 * operation is synchronous (the kernel answers a route-netlink request
 * before send() returns), waits for the kernel's ACK, and on failure throws
 * a NetlinkError that names the operation and the object:
 *
 *   failed to create veth "veth1a2b3c" (peer eth0 in /run/netns/x): File exists
 *
 * A socket for a pod is created with the thread briefly inside the pod's
 * namespace (withNetns); afterwards it is used from the host namespace and
 * still acts on the pod's, so no thread stays in a foreign namespace.
 */
import { withNetns, type NetnsHandle } from '../netns.ts';
import type { RawMessage } from './codec.ts';
import { closeFd, openRouteSocket } from './ffi.ts';
import { NetlinkError, exchange } from './socket.ts';
import {
  addAddrRequest,
  addRouteRequest,
  bridgeVlanRequest,
  decodeAddr,
  decodeLink,
  decodeRoute,
  delAddrRequest,
  delLinkRequest,
  getAddrsRequest,
  getLinkRequest,
  getRoutesRequest,
  newBridgeRequest,
  newVethRequest,
  routeGetRequest,
  setBridgePortRequest,
  setLinkRequest,
  type AddrChange,
  type AddrInfo,
  type BridgePortChange,
  type LinkChange,
  type LinkInfo,
  type LinkRef,
  type NewBridge,
  type NewVeth,
  type Request,
  type RouteInfo,
  type RouteSpec,
} from './messages.ts';
import type { Family } from '../ip/prefix.ts';

export const EEXIST = 17;
export const ENODEV = 19;
export const ENOENT = 2;
export const EADDRNOTAVAIL = 99;
export const ESRCH = 3;
export const ENETUNREACH = 101;
export const EHOSTUNREACH = 113;

export { NetlinkError };

export class Rtnl {
  /** Where the socket acts, for messages: "host" or the netns path. */
  readonly where: string;
  private fd: number;

  private constructor(fd: number, where: string) {
    this.fd = fd;
    this.where = where;
  }

  /** A socket in the calling thread's namespace (the host, for a plugin). */
  static host(): Rtnl {
    return new Rtnl(openRouteSocket(), 'host');
  }

  /** A socket bound to the namespace `ns`. */
  static in(ns: NetnsHandle): Rtnl {
    return new Rtnl(
      withNetns(ns, () => openRouteSocket()),
      ns.path,
    );
  }

  close(): void {
    if (this.fd >= 0) closeFd(this.fd);
    this.fd = -1;
  }

  /** Send one request; return the messages before the ACK (or before DONE for a dump). */
  private exchange(req: Request, what: () => string): RawMessage[] {
    if (this.fd < 0) throw new Error(`netlink socket (${this.where}) is closed`);
    return exchange(this.fd, req, what);
  }

  private act(req: Request, what: () => string): void {
    this.exchange(req, what);
  }

  private in(): string {
    return this.where === 'host' ? '' : ` in ${this.where}`;
  }

  /** Create a bridge; EEXIST when a link of that name exists. */
  createBridge(b: NewBridge): void {
    this.act(newBridgeRequest(b), () => `create bridge "${b.name}"${this.in()}`);
  }

  /** Create a veth pair; `peerNetns` names where the peer goes (for messages), its fd is in `v`. */
  createVeth(v: NewVeth, peerNetns?: string): void {
    this.act(newVethRequest(v), () => `create veth "${v.name}" (peer ${v.peerName}${peerNetns ? ` in ${peerNetns}` : ''})`);
  }

  setLink(ref: LinkRef, c: LinkChange): void {
    this.act(setLinkRequest(ref, c), () => `set link ${describeRef(ref)}${this.in()} (${describeChange(c)})`);
  }

  setBridgePort(ref: LinkRef, p: BridgePortChange): void {
    this.act(setBridgePortRequest(ref, p), () => `set bridge port flags of ${describeRef(ref)}${this.in()} (${JSON.stringify(p)})`);
  }

  bridgeVlan(op: 'add' | 'del', index: number, vid: number, opts: { pvid?: boolean; untagged?: boolean } = {}): void {
    this.act(bridgeVlanRequest(op, index, vid, opts), () => `${op === 'add' ? 'add' : 'delete'} VLAN ${vid} on port ${index}${this.in()}`);
  }

  /** Delete a link; false when it does not exist (DEL treats that as done). */
  deleteLink(ref: LinkRef): boolean {
    try {
      this.act(delLinkRequest(ref), () => `delete link ${describeRef(ref)}${this.in()}`);
      return true;
    } catch (e) {
      if (e instanceof NetlinkError && e.errno === ENODEV) return false;
      throw e;
    }
  }

  /** One link, or undefined when it does not exist. */
  getLink(ref: LinkRef): LinkInfo | undefined {
    try {
      const req = getLinkRequest(ref);
      const [m] = this.exchange({ ...req, flags: req.flags | 0x4 }, () => `read link ${describeRef(ref)}${this.in()}`);
      return m ? decodeLink(m.payload) : undefined;
    } catch (e) {
      if (e instanceof NetlinkError && e.errno === ENODEV) return undefined;
      throw e;
    }
  }

  /** Every link in the namespace. */
  listLinks(): LinkInfo[] {
    return this.exchange(getLinkRequest(), () => `list links${this.in()}`).map((m) => decodeLink(m.payload));
  }

  addAddr(a: AddrChange, mode: 'add' | 'replace' = 'add', dev = `index ${a.index}`): void {
    this.act(addAddrRequest(a, mode), () => `add address ${a.cidr} to ${dev}${this.in()}`);
  }

  /** Delete an address; false when it was not there. */
  delAddr(a: AddrChange, dev = `index ${a.index}`): boolean {
    try {
      this.act(delAddrRequest(a), () => `delete address ${a.cidr} from ${dev}${this.in()}`);
      return true;
    } catch (e) {
      if (e instanceof NetlinkError && e.errno === EADDRNOTAVAIL) return false;
      throw e;
    }
  }

  /** Addresses, optionally of one family and one link. */
  listAddrs(family?: Family, index?: number): AddrInfo[] {
    const all = this.exchange(getAddrsRequest(family), () => `list addresses${this.in()}`).map((m) => decodeAddr(m.payload));
    return index === undefined ? all : all.filter((a) => a.index === index);
  }

  addRoute(r: RouteSpec, dev = `index ${r.index}`): void {
    this.act(addRouteRequest(r), () => `add route ${r.dst}${r.gw ? ` via ${r.gw}` : ''} dev ${dev}${this.in()}`);
  }

  /** The route to one address (as `ip route get`); undefined when the address is unreachable. */
  routeGet(ip: string): RouteInfo | undefined {
    try {
      const [m] = this.exchange(routeGetRequest(ip), () => `look up the route to ${ip}${this.in()}`);
      return m ? decodeRoute(m.payload) : undefined;
    } catch (e) {
      if (e instanceof NetlinkError && (e.errno === ENETUNREACH || e.errno === EHOSTUNREACH)) return undefined;
      throw e;
    }
  }

  /** Routes of one family in every table. */
  listRoutes(family: Family): RouteInfo[] {
    return this.exchange(getRoutesRequest(family), () => `list IPv${family} routes${this.in()}`).map((m) => decodeRoute(m.payload));
  }

  // --- Appended for the macvlan, ipvlan, vlan, dummy, host-device and ptp plugins. ---

  /**
   * Create a link of any kind (macvlan, ipvlan, vlan, dummy), optionally
   * straight into another namespace (`s.netnsFd`; `target` names it in the
   * error). Throws a NetlinkError naming kind, name and parent.
   */
  createSubLink(s: NewSubLink, target?: string): void {
    const what = () => `create ${s.kind} "${s.name}"${s.parent !== undefined ? ` on parent index ${s.parent}` : ''}${this.in()}${target ? ` (into ${target})` : ''}`;
    this.act(newSubLinkRequest(s), what);
  }

  /** One link with its kind data and alias, or undefined when it does not exist. */
  getLinkDetails(ref: LinkRef): { link: LinkInfo; details: LinkDetails } | undefined {
    try {
      const req = getLinkRequest(ref);
      const [m] = this.exchange({ ...req, flags: req.flags | 0x4 }, () => `read link ${describeRef(ref)}${this.in()}`);
      return m ? { link: decodeLink(m.payload), details: decodeLinkDetails(m.payload) } : undefined;
    } catch (e) {
      if (e instanceof NetlinkError && e.errno === ENODEV) return undefined;
      throw e;
    }
  }

  /** Set (or with "" clear) the alias of a link. */
  setLinkAlias(index: number, alias: string, dev = `index ${index}`): void {
    this.act(setLinkAliasRequest(index, alias), () => `${alias ? `set alias "${alias}" of` : 'clear the alias of'} ${dev}${this.in()}`);
  }

  /** Delete a route by destination and device; false when there was no such route. */
  delRoute(r: { dst: string; index: number; table?: number }, dev = `index ${r.index}`): boolean {
    try {
      this.act(delRouteRequest(r), () => `delete route ${r.dst} dev ${dev}${this.in()}`);
      return true;
    } catch (e) {
      if (e instanceof NetlinkError && e.errno === ESRCH) return false;
      throw e;
    }
  }

  /** addRoute with a preferred source address. */
  addRouteSrc(r: RouteSpec & { src: string }, dev = `index ${r.index}`): void {
    this.act(addRouteSrcRequest(r), () => `add route ${r.dst}${r.gw ? ` via ${r.gw}` : ''} dev ${dev} src ${r.src}${this.in()}`);
  }

  /** Set all-multicast and/or the transmit queue length of a link (tuning). */
  setLinkTuning(index: number, t: LinkTuning, dev = `index ${index}`): void {
    this.act(setLinkTuningRequest(index, t), () => `set ${JSON.stringify(t)} on ${dev}${this.in()}`);
  }

  /** A link with its transmit queue length and all-multicast flag, or undefined when it does not exist. */
  getLinkTuning(ref: LinkRef): { link: LinkInfo; txQLen?: number; allmulti: boolean } | undefined {
    try {
      const req = getLinkRequest(ref);
      const [m] = this.exchange({ ...req, flags: req.flags | 0x4 }, () => `read link ${describeRef(ref)}${this.in()}`);
      return m ? { link: decodeLink(m.payload), ...decodeLinkTuning(m.payload) } : undefined;
    } catch (e) {
      if (e instanceof NetlinkError && e.errno === ENODEV) return undefined;
      throw e;
    }
  }

  // --- Appended for the vxlan overlay. ---

  /** Create a VXLAN device; EEXIST when the name is taken. */
  createVxlan(v: NewVxlan): void {
    this.act(newVxlanRequest(v), () => `create vxlan "${v.name}" (VNI ${v.vni}, local ${v.local})${this.in()}`);
  }

  /** A link with its VXLAN settings, or undefined when it does not exist. */
  getVxlan(ref: LinkRef): { link: LinkInfo; vxlan: ReturnType<typeof decodeVxlan> } | undefined {
    try {
      const req = getLinkRequest(ref);
      const [m] = this.exchange({ ...req, flags: req.flags | 0x4 }, () => `read link ${describeRef(ref)}${this.in()}`);
      return m ? { link: decodeLink(m.payload), vxlan: decodeVxlan(m.payload) } : undefined;
    } catch (e) {
      if (e instanceof NetlinkError && e.errno === ENODEV) return undefined;
      throw e;
    }
  }

  /** Append an FDB entry MAC -> remote VTEP on a VXLAN device (EEXIST when that exact entry exists). */
  fdbAppend(e: { index: number; mac: string; dst: string }): void {
    this.act(fdbAppendRequest(e), () => `append FDB entry ${e.mac} dst ${e.dst} on index ${e.index}${this.in()}`);
  }

  /** Delete an FDB entry; false when it was not there. */
  fdbDel(e: { index: number; mac: string; dst: string }): boolean {
    try {
      this.act(fdbDelRequest(e), () => `delete FDB entry ${e.mac} dst ${e.dst} on index ${e.index}${this.in()}`);
      return true;
    } catch (err) {
      if (err instanceof NetlinkError && (err.errno === ENOENT || err.errno === ENODEV)) return false;
      throw err;
    }
  }

  /** Add or replace a permanent neighbour entry. */
  neighReplace(e: { index: number; ip: string; mac: string }): void {
    this.act(neighReplaceRequest(e), () => `replace neighbour ${e.ip} lladdr ${e.mac} on index ${e.index}${this.in()}`);
  }

  /** Delete a neighbour entry; false when it was not there. */
  neighDel(e: { index: number; ip: string }): boolean {
    try {
      this.act(neighDelRequest(e), () => `delete neighbour ${e.ip} on index ${e.index}${this.in()}`);
      return true;
    } catch (err) {
      if (err instanceof NetlinkError && (err.errno === ENOENT || err.errno === ENODEV)) return false;
      throw err;
    }
  }

  /** Neighbour (AF_INET) or FDB (AF_BRIDGE) entries, of one device when `index` is given. */
  listNeighs(family: number, index = 0): NeighInfo[] {
    const all = this.exchange(getNeighRequest(family, index), () => `list neighbours (family ${family})${this.in()}`).map((m) => decodeNeigh(m.payload));
    return index ? all.filter((n) => n.index === index) : all;
  }

  /** Add or replace a route through an on-link gateway (a remote VTEP address). */
  routeReplaceOnlink(r: { dst: string; gw: string; index: number }): void {
    this.act(routeReplaceOnlinkRequest(r), () => `replace route ${r.dst} via ${r.gw} onlink on index ${r.index}${this.in()}`);
  }
}

function describeRef(ref: LinkRef): string {
  return typeof ref === 'number' ? `index ${ref}` : `"${ref}"`;
}

function describeChange(c: LinkChange): string {
  const parts: string[] = [];
  if (c.up !== undefined) parts.push(c.up ? 'up' : 'down');
  if (c.promisc !== undefined) parts.push(`promisc ${c.promisc ? 'on' : 'off'}`);
  if (c.master !== undefined) parts.push(c.master ? `master index ${c.master}` : 'nomaster');
  if (c.mtu) parts.push(`mtu ${c.mtu}`);
  if (c.mac) parts.push(`address ${c.mac}`);
  if (c.netnsFd !== undefined) parts.push('netns');
  if (c.name) parts.push(`name ${c.name}`);
  return parts.join(', ');
}

/** Run `fn` with a socket in `ns` (or the host when undefined), closing it afterwards. */
export function withRtnl<T>(ns: NetnsHandle | undefined, fn: (nl: Rtnl) => T): T {
  const nl = ns ? Rtnl.in(ns) : Rtnl.host();
  try {
    return fn(nl);
  } finally {
    nl.close();
  }
}

// Appended imports (hoisted by the module system) for the methods above.
import {
  addRouteSrcRequest,
  decodeLinkDetails,
  delRouteRequest,
  newSubLinkRequest,
  setLinkAliasRequest,
  type LinkDetails,
  type NewSubLink,
} from './messages.ts';

// Appended imports for the tuning methods.
import { decodeLinkTuning, setLinkTuningRequest, type LinkTuning } from './messages.ts';

// Appended imports for the vxlan overlay methods.
import {
  decodeNeigh,
  decodeVxlan,
  fdbAppendRequest,
  fdbDelRequest,
  getNeighRequest,
  neighDelRequest,
  neighReplaceRequest,
  newVxlanRequest,
  routeReplaceOnlinkRequest,
  type NeighInfo,
  type NewVxlan,
} from './messages.ts';
