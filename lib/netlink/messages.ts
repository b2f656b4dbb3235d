/**
 * rtnetlink requests and replies as data, pure: what each operation sends
 * (type, flags, family header, attributes) and small typed records decoded
 * from what the kernel answers. The socket and sequence numbers live in
 * socket.ts; the operations that name their object in errors in rtnl.ts.
 *
 * Each builder mirrors what iproute2 sends for the same command, so a golden
 * test can compare against `ip -d monitor` captures when in doubt.
 */
import { formatAddr, parseAddr, type Family } from '../ip/prefix.ts';
import {
  AF_BRIDGE,
  AF_INET,
  AF_INET6,
  AF_UNSPEC,
  BRIDGE_VLAN_INFO_PVID,
  BRIDGE_VLAN_INFO_UNTAGGED,
  IFA_ADDRESS,
  IFA_BROADCAST,
  IFA_FLAGS,
  IFA_F_NODAD,
  IFA_LOCAL,
  IFF_PROMISC,
  IFF_UP,
  IFLA_ADDRESS,
  IFLA_AF_SPEC,
  IFLA_BR_VLAN_FILTERING,
  IFLA_BRIDGE_VLAN_INFO,
  IFLA_BRPORT_ISOLATED,
  IFLA_BRPORT_LEARNING,
  IFLA_BRPORT_MODE,
  IFLA_IFNAME,
  IFLA_INFO_DATA,
  IFLA_INFO_KIND,
  IFLA_INFO_SLAVE_DATA,
  IFLA_INFO_SLAVE_KIND,
  IFLA_LINK,
  IFLA_LINKINFO,
  IFLA_MASTER,
  IFLA_MTU,
  IFLA_NET_NS_FD,
  IFLA_OPERSTATE,
  NLM_F_ACK,
  NLM_F_APPEND,
  NLM_F_CREATE,
  NLM_F_DUMP,
  NLM_F_EXCL,
  NLM_F_REPLACE,
  NLM_F_REQUEST,
  RTA_DST,
  RTA_GATEWAY,
  RTA_METRICS,
  RTA_OIF,
  RTA_PRIORITY,
  RTA_TABLE,
  RTAX_ADVMSS,
  RTAX_MTU,
  RTM_DELADDR,
  RTM_DELLINK,
  RTM_GETADDR,
  RTM_GETLINK,
  RTM_GETROUTE,
  RTM_NEWADDR,
  RTM_NEWLINK,
  RTM_NEWROUTE,
  RTM_SETLINK,
  RTN_UNICAST,
  RTPROT_BOOT,
  RT_SCOPE_LINK,
  RT_SCOPE_UNIVERSE,
  RT_TABLE_MAIN,
  RT_TABLE_UNSPEC,
  attrBytes,
  attrNest,
  attrStr,
  attrText,
  attrU32,
  attrU8,
  encodeAttrs,
  formatMac,
  ifaddrmsg,
  ifinfomsg,
  parseAttrs,
  parseMac,
  rtmsg,
  type Attr,
} from './codec.ts';

/** A request without its sequence number (the socket assigns it). */
export interface Request {
  type: number;
  flags: number;
  header: Buffer;
  attrs: Attr[];
}

const REQ_ACK = NLM_F_REQUEST | NLM_F_ACK;
const CREATE_EXCL = REQ_ACK | NLM_F_CREATE | NLM_F_EXCL;

/** A link by index (> 0) or by name. */
export type LinkRef = number | string;

function refHeader(ref: LinkRef, extra: { flags?: number; change?: number; family?: number } = {}): { header: Buffer; attrs: Attr[] } {
  if (typeof ref === 'number') return { header: ifinfomsg({ index: ref, ...extra }), attrs: [] };
  return { header: ifinfomsg(extra), attrs: [attrStr(IFLA_IFNAME, ref)] };
}

/** Address bytes (4 or 16) of an IP address string. */
export function addrBytes(ip: string): { family: Family; bytes: Buffer } {
  const { family, addr } = parseAddr(ip);
  const n = family === 4 ? 4 : 16;
  const b = Buffer.alloc(n);
  let v = addr;
  for (let i = n - 1; i >= 0; i--) {
    b[i] = Number(v & 0xffn);
    v >>= 8n;
  }
  return { family, bytes: b };
}

/** IP address text of 4 or 16 address bytes. */
export function formatAddrBytes(b: Uint8Array): string {
  let v = 0n;
  for (const x of b) v = (v << 8n) | BigInt(x);
  return formatAddr(b.length === 4 ? 4 : 6, v);
}

const afOf = (f: Family) => (f === 4 ? AF_INET : AF_INET6);

export interface NewBridge {
  name: string;
  mtu?: number;
  mac?: string;
  vlanFiltering?: boolean;
}

/** `ip link add name NAME [mtu N] [address MAC] type bridge [vlan_filtering 1]` (fails with EEXIST if it exists). */
export function newBridgeRequest(b: NewBridge): Request {
  const attrs: Attr[] = [attrStr(IFLA_IFNAME, b.name)];
  if (b.mtu) attrs.push(attrU32(IFLA_MTU, b.mtu));
  if (b.mac) attrs.push(attrBytes(IFLA_ADDRESS, parseMac(b.mac)));
  const info: Attr[] = [attrStr(IFLA_INFO_KIND, 'bridge')];
  if (b.vlanFiltering) info.push(attrNest(IFLA_INFO_DATA, [attrU8(IFLA_BR_VLAN_FILTERING, 1)]));
  attrs.push(attrNest(IFLA_LINKINFO, info));
  return { type: RTM_NEWLINK, flags: CREATE_EXCL, header: ifinfomsg(), attrs };
}

export interface NewVeth {
  name: string;
  peerName: string;
  mtu?: number;
  /** MAC of the peer (the container end). */
  peerMac?: string;
  /** Create the peer straight in this network namespace (a file descriptor). */
  peerNetnsFd?: number;
}

/** `ip link add NAME [mtu N] type veth peer name PEER [mtu N] [address MAC] [netns FD]`. */
export function newVethRequest(v: NewVeth): Request {
  const peer: Attr[] = [attrStr(IFLA_IFNAME, v.peerName)];
  if (v.mtu) peer.push(attrU32(IFLA_MTU, v.mtu));
  if (v.peerMac) peer.push(attrBytes(IFLA_ADDRESS, parseMac(v.peerMac)));
  if (v.peerNetnsFd !== undefined) peer.push(attrU32(IFLA_NET_NS_FD, v.peerNetnsFd));
  // VETH_INFO_PEER carries a struct ifinfomsg followed by the peer's attributes.
  const peerInfo = Buffer.concat([ifinfomsg(), encodeAttrs(peer)]);
  const attrs: Attr[] = [attrStr(IFLA_IFNAME, v.name)];
  if (v.mtu) attrs.push(attrU32(IFLA_MTU, v.mtu));
  attrs.push(attrNest(IFLA_LINKINFO, [attrStr(IFLA_INFO_KIND, 'veth'), attrNest(IFLA_INFO_DATA, [attrBytes(1, peerInfo)])]));
  return { type: RTM_NEWLINK, flags: CREATE_EXCL, header: ifinfomsg(), attrs };
}

export interface LinkChange {
  up?: boolean;
  promisc?: boolean;
  /** Master by index; 0 releases the link from its master. */
  master?: number;
  mtu?: number;
  mac?: string;
  /** Move the link into the network namespace with this file descriptor. */
  netnsFd?: number;
  /** Rename. */
  name?: string;
}

/** `ip link set dev REF [up|down] [promisc on|off] [master M] [mtu N] [address MAC] [netns FD] [name NEW]`. */
export function setLinkRequest(ref: LinkRef, c: LinkChange): Request {
  let flags = 0;
  let change = 0;
  if (c.up !== undefined) {
    change |= IFF_UP;
    if (c.up) flags |= IFF_UP;
  }
  if (c.promisc !== undefined) {
    change |= IFF_PROMISC;
    if (c.promisc) flags |= IFF_PROMISC;
  }
  if (c.name !== undefined && typeof ref !== 'number') throw new Error('setLinkRequest: a rename needs the link index');
  const { header, attrs } = refHeader(ref, { flags, change });
  if (c.mtu) attrs.push(attrU32(IFLA_MTU, c.mtu));
  if (c.mac) attrs.push(attrBytes(IFLA_ADDRESS, parseMac(c.mac)));
  if (c.master !== undefined) attrs.push(attrU32(IFLA_MASTER, c.master));
  if (c.netnsFd !== undefined) attrs.push(attrU32(IFLA_NET_NS_FD, c.netnsFd));
  if (c.name) attrs.push(attrStr(IFLA_IFNAME, c.name));
  return { type: RTM_NEWLINK, flags: REQ_ACK, header, attrs };
}

export interface BridgePortChange {
  hairpin?: boolean;
  isolated?: boolean;
  learning?: boolean;
}

/** `ip link set dev REF type bridge_slave [hairpin on|off] [isolated on|off] [learning on|off]`. */
export function setBridgePortRequest(ref: LinkRef, p: BridgePortChange): Request {
  const { header, attrs } = refHeader(ref);
  const data: Attr[] = [];
  if (p.hairpin !== undefined) data.push(attrU8(IFLA_BRPORT_MODE, p.hairpin ? 1 : 0));
  if (p.learning !== undefined) data.push(attrU8(IFLA_BRPORT_LEARNING, p.learning ? 1 : 0));
  if (p.isolated !== undefined) data.push(attrU8(IFLA_BRPORT_ISOLATED, p.isolated ? 1 : 0));
  attrs.push(attrNest(IFLA_LINKINFO, [attrStr(IFLA_INFO_SLAVE_KIND, 'bridge'), attrNest(IFLA_INFO_SLAVE_DATA, data)]));
  return { type: RTM_NEWLINK, flags: REQ_ACK, header, attrs };
}

/** `bridge vlan add|del dev REF vid V [pvid] [untagged]` (RTM_SETLINK / RTM_DELLINK with AF_BRIDGE). */
export function bridgeVlanRequest(op: 'add' | 'del', index: number, vid: number, opts: { pvid?: boolean; untagged?: boolean } = {}): Request {
  const info = Buffer.alloc(4);
  info.writeUInt16LE((opts.pvid ? BRIDGE_VLAN_INFO_PVID : 0) | (opts.untagged ? BRIDGE_VLAN_INFO_UNTAGGED : 0), 0);
  info.writeUInt16LE(vid, 2);
  return {
    type: op === 'add' ? RTM_SETLINK : RTM_DELLINK,
    flags: REQ_ACK,
    header: ifinfomsg({ family: AF_BRIDGE, index }),
    attrs: [attrNest(IFLA_AF_SPEC, [attrBytes(IFLA_BRIDGE_VLAN_INFO, info)])],
  };
}

/** `ip link del dev REF`. */
export function delLinkRequest(ref: LinkRef): Request {
  const { header, attrs } = refHeader(ref);
  return { type: RTM_DELLINK, flags: REQ_ACK, header, attrs };
}

/** `ip link show dev REF` (one link), or every link when ref is undefined (a dump). */
export function getLinkRequest(ref?: LinkRef): Request {
  if (ref === undefined) return { type: RTM_GETLINK, flags: NLM_F_REQUEST | NLM_F_DUMP, header: ifinfomsg(), attrs: [] };
  const { header, attrs } = refHeader(ref);
  return { type: RTM_GETLINK, flags: NLM_F_REQUEST, header, attrs };
}

export interface AddrChange {
  index: number;
  /** "10.1.2.3/24" or "fd00::3/64". */
  cidr: string;
  /** IPv6 only: skip duplicate address detection. */
  nodad?: boolean;
}

function cidrParts(cidr: string): { family: Family; bytes: Buffer; prefixLen: number } {
  const slash = cidr.indexOf('/');
  const ip = slash < 0 ? cidr : cidr.slice(0, slash);
  const { family, bytes } = addrBytes(ip);
  const prefixLen = slash < 0 ? (family === 4 ? 32 : 128) : Number(cidr.slice(slash + 1));
  return { family, bytes, prefixLen };
}

/** IPv4 broadcast bytes for an address and prefix (none for /31 and /32, as the reference's netlink library). */
function broadcastOf(bytes: Buffer, prefixLen: number): Buffer | undefined {
  if (prefixLen >= 31) return undefined;
  const v = bytes.readUInt32BE(0);
  const host = prefixLen === 0 ? 0xffffffff : (1 << (32 - prefixLen)) - 1;
  const b = Buffer.alloc(4);
  b.writeUInt32BE((v | host) >>> 0);
  return b;
}

/** `ip addr add|replace CIDR dev INDEX [nodad]` (IPv4 with its broadcast address, as the reference sets it). */
export function addAddrRequest(a: AddrChange, mode: 'add' | 'replace' = 'add'): Request {
  const { family, bytes, prefixLen } = cidrParts(a.cidr);
  const attrs: Attr[] = [attrBytes(IFA_LOCAL, bytes), attrBytes(IFA_ADDRESS, bytes)];
  if (family === 4) {
    const brd = broadcastOf(bytes, prefixLen);
    if (brd) attrs.push(attrBytes(IFA_BROADCAST, brd));
  }
  const flags = family === 6 && a.nodad ? IFA_F_NODAD : 0;
  if (flags) attrs.push(attrU32(IFA_FLAGS, flags));
  return {
    type: RTM_NEWADDR,
    flags: REQ_ACK | NLM_F_CREATE | (mode === 'replace' ? NLM_F_REPLACE : NLM_F_EXCL),
    header: ifaddrmsg({ family: afOf(family), prefixLen, flags, scope: RT_SCOPE_UNIVERSE, index: a.index }),
    attrs,
  };
}

/** `ip addr del CIDR dev INDEX`. */
export function delAddrRequest(a: AddrChange): Request {
  const { family, bytes, prefixLen } = cidrParts(a.cidr);
  return { type: RTM_DELADDR, flags: REQ_ACK, header: ifaddrmsg({ family: afOf(family), prefixLen, index: a.index }), attrs: [attrBytes(IFA_LOCAL, bytes)] };
}

/** Dump addresses of one family (or both). */
export function getAddrsRequest(family?: Family): Request {
  return { type: RTM_GETADDR, flags: NLM_F_REQUEST | NLM_F_DUMP, header: ifaddrmsg({ family: family ? afOf(family) : AF_UNSPEC }), attrs: [] };
}

export interface RouteSpec {
  /** Destination "10.0.0.0/8", "0.0.0.0/0" or "::/0". */
  dst: string;
  gw?: string;
  index: number;
  priority?: number;
  table?: number;
  scope?: number;
  mtu?: number;
  advmss?: number;
}

/**
 * `ip route append DST [via GW] dev INDEX [metric M] [table T] [scope S] [mtu N] [advmss N]`.
 * Append, as the reference's RouteAddEcmp: a second interface may add its own default route.
 * Scope as iproute2 picks it: IPv4 without a gateway is link scope, otherwise universe.
 */
export function addRouteRequest(r: RouteSpec): Request {
  const { family, bytes, prefixLen } = cidrParts(r.dst);
  const table = r.table ?? RT_TABLE_MAIN;
  const scope = r.scope ?? (family === 4 && !r.gw ? RT_SCOPE_LINK : RT_SCOPE_UNIVERSE);
  const attrs: Attr[] = [];
  if (prefixLen > 0) attrs.push(attrBytes(RTA_DST, bytes));
  if (r.gw) attrs.push(attrBytes(RTA_GATEWAY, addrBytes(r.gw).bytes));
  attrs.push(attrU32(RTA_OIF, r.index));
  if (r.priority !== undefined) attrs.push(attrU32(RTA_PRIORITY, r.priority));
  if (table > 255) attrs.push(attrU32(RTA_TABLE, table));
  const metrics: Attr[] = [];
  if (r.mtu !== undefined) metrics.push(attrU32(RTAX_MTU, r.mtu));
  if (r.advmss !== undefined) metrics.push(attrU32(RTAX_ADVMSS, r.advmss));
  if (metrics.length) attrs.push(attrNest(RTA_METRICS, metrics));
  return {
    type: RTM_NEWROUTE,
    flags: REQ_ACK | NLM_F_CREATE | NLM_F_APPEND,
    header: rtmsg({ family: afOf(family), dstLen: prefixLen, table: table > 255 ? RT_TABLE_UNSPEC : table, protocol: RTPROT_BOOT, scope, type: RTN_UNICAST }),
    attrs,
  };
}

/** Dump routes of one family, every table. */
export function getRoutesRequest(family: Family): Request {
  return { type: RTM_GETROUTE, flags: NLM_F_REQUEST | NLM_F_DUMP, header: rtmsg({ family: afOf(family) }), attrs: [] };
}

/** `ip route get ADDR`: the route the kernel would use to reach one address. */
export function routeGetRequest(ip: string): Request {
  const { family, bytes } = addrBytes(ip);
  return {
    type: RTM_GETROUTE,
    flags: REQ_ACK,
    header: rtmsg({ family: afOf(family), dstLen: family === 4 ? 32 : 128 }),
    attrs: [attrBytes(RTA_DST, bytes)],
  };
}

/** A link as the kernel reports it. */
export interface LinkInfo {
  index: number;
  name: string;
  flags: number;
  up: boolean;
  promisc: boolean;
  operUp: boolean;
  mtu: number;
  mac: string;
  /** Index of the master (bridge) when enslaved. */
  master?: number;
  /** IFLA_LINK: the peer's index for veth (in the peer's namespace). */
  link?: number;
  kind?: string;
  slaveKind?: string;
}

/** Decode an RTM_NEWLINK payload. */
export function decodeLink(payload: Buffer): LinkInfo {
  const index = payload.readInt32LE(4);
  const flags = payload.readUInt32LE(8);
  const a = parseAttrs(payload, 16);
  const info = a.get(IFLA_LINKINFO);
  const li = info ? parseAttrs(info) : undefined;
  const mac = a.get(IFLA_ADDRESS);
  const u32 = (t: number) => (a.get(t)?.length === 4 ? (a.get(t) as Buffer).readUInt32LE(0) : undefined);
  const out: LinkInfo = {
    index,
    name: attrText(a.get(IFLA_IFNAME)) ?? '',
    flags,
    up: (flags & IFF_UP) !== 0,
    promisc: (flags & IFF_PROMISC) !== 0,
    operUp: a.get(IFLA_OPERSTATE)?.[0] === 6,
    mtu: u32(IFLA_MTU) ?? 0,
    mac: mac ? formatMac(mac) : '',
  };
  const master = u32(IFLA_MASTER);
  if (master) out.master = master;
  const link = u32(IFLA_LINK);
  if (link !== undefined) out.link = link;
  const kind = attrText(li?.get(IFLA_INFO_KIND));
  if (kind) out.kind = kind;
  const slaveKind = attrText(li?.get(IFLA_INFO_SLAVE_KIND));
  if (slaveKind) out.slaveKind = slaveKind;
  return out;
}

/** An address as the kernel reports it. */
export interface AddrInfo {
  family: Family;
  index: number;
  /** The address without prefix. */
  local: string;
  prefixLen: number;
  scope: number;
  /** IFA_F_* (the 32-bit IFA_FLAGS when present). */
  flags: number;
}

/** Decode an RTM_NEWADDR payload. */
export function decodeAddr(payload: Buffer): AddrInfo {
  const family: Family = payload[0] === AF_INET ? 4 : 6;
  const a = parseAttrs(payload, 8);
  const local = a.get(IFA_LOCAL) ?? a.get(IFA_ADDRESS) ?? Buffer.alloc(family === 4 ? 4 : 16);
  const f32 = a.get(IFA_FLAGS);
  return {
    family,
    index: payload.readUInt32LE(4),
    local: formatAddrBytes(local),
    prefixLen: payload[1] as number,
    scope: payload[3] as number,
    flags: f32 && f32.length === 4 ? f32.readUInt32LE(0) : (payload[2] as number),
  };
}

/** A route as the kernel reports it. */
export interface RouteInfo {
  family: Family;
  /** "10.0.0.0/24", or "0.0.0.0/0" / "::/0" for a default route. */
  dst: string;
  gateway?: string;
  oif?: number;
  table: number;
  scope: number;
  type: number;
  priority?: number;
}

/** Decode an RTM_NEWROUTE payload. */
export function decodeRoute(payload: Buffer): RouteInfo {
  const family: Family = payload[0] === AF_INET ? 4 : 6;
  const dstLen = payload[1] as number;
  const a = parseAttrs(payload, 12);
  const dst = a.get(RTA_DST);
  const dstText = dst ? formatAddrBytes(dst) : family === 4 ? '0.0.0.0' : '::';
  const gw = a.get(RTA_GATEWAY);
  const table = a.get(RTA_TABLE);
  const oif = a.get(RTA_OIF);
  const prio = a.get(RTA_PRIORITY);
  const out: RouteInfo = {
    family,
    dst: `${dstText}/${dstLen}`,
    table: table ? table.readUInt32LE(0) : (payload[4] as number),
    scope: payload[6] as number,
    type: payload[7] as number,
  };
  if (gw) out.gateway = formatAddrBytes(gw);
  if (oif) out.oif = oif.readUInt32LE(0);
  if (prio) out.priority = prio.readUInt32LE(0);
  return out;
}


// ---------------------------------------------------------------------------
// Appended for the macvlan, ipvlan, vlan, dummy, host-device and ptp plugins.
// Golden bytes: test/unit/netlink/sublink-requests.test.ts.
// ---------------------------------------------------------------------------

import {
  IFLA_IFALIAS,
  IFLA_IPVLAN_MODE,
  IFLA_MACVLAN_BC_QUEUE_LEN,
  IFLA_MACVLAN_MODE,
  IFLA_VLAN_ID,
  RTA_PREFSRC,
  RTM_DELROUTE,
  RT_SCOPE_NOWHERE,
  attrU16,
} from './codec.ts';

/** A link stacked on a parent ("master") or standing alone (dummy), created by kind. */
export interface NewSubLink {
  /** IFLA_INFO_KIND: "macvlan", "ipvlan", "vlan", "dummy". */
  kind: string;
  name: string;
  /** IFLA_LINK: index of the parent link, in the namespace of the socket that sends the request. */
  parent?: number;
  mtu?: number;
  mac?: string;
  /** Create the link straight in this network namespace (a file descriptor); the parent stays where it is. */
  netnsFd?: number;
  /** IFLA_INFO_DATA attributes of the kind. */
  data?: Attr[];
}

/**
 * `ip link add [link PARENT] name NAME [mtu N] [address MAC] [netns FD] type KIND [DATA]`
 * (NLM_F_CREATE | NLM_F_EXCL: EEXIST when the name is taken in the target namespace).
 */
export function newSubLinkRequest(s: NewSubLink): Request {
  const attrs: Attr[] = [attrStr(IFLA_IFNAME, s.name)];
  if (s.mtu) attrs.push(attrU32(IFLA_MTU, s.mtu));
  if (s.mac) attrs.push(attrBytes(IFLA_ADDRESS, parseMac(s.mac)));
  if (s.parent !== undefined) attrs.push(attrU32(IFLA_LINK, s.parent));
  if (s.netnsFd !== undefined) attrs.push(attrU32(IFLA_NET_NS_FD, s.netnsFd));
  const info: Attr[] = [attrStr(IFLA_INFO_KIND, s.kind)];
  if (s.data && s.data.length) info.push(attrNest(IFLA_INFO_DATA, s.data));
  attrs.push(attrNest(IFLA_LINKINFO, info));
  return { type: RTM_NEWLINK, flags: CREATE_EXCL, header: ifinfomsg(), attrs };
}

/** Common fields of a link stacked on a parent. */
export interface NewStacked {
  name: string;
  parent: number;
  mtu?: number;
  netnsFd?: number;
}

/** `ip link add link PARENT name NAME [mtu N] [address MAC] type macvlan mode M [bcqueuelen N]`; `mode` is a MACVLAN_MODE_* value (u32). */
export function newMacvlanRequest(p: NewStacked & { mode: number; mac?: string; bcQueueLen?: number }): Request {
  const data = [attrU32(IFLA_MACVLAN_MODE, p.mode)];
  if (p.bcQueueLen) data.push(attrU32(IFLA_MACVLAN_BC_QUEUE_LEN, p.bcQueueLen));
  return newSubLinkRequest({ kind: 'macvlan', ...p, data });
}

/** `ip link add link PARENT name NAME [mtu N] type ipvlan mode M`; `mode` is an IPVLAN_MODE_* value (u16). */
export function newIpvlanRequest(p: NewStacked & { mode: number }): Request {
  return newSubLinkRequest({ kind: 'ipvlan', ...p, data: [attrU16(IFLA_IPVLAN_MODE, p.mode)] });
}

/** `ip link add link PARENT name NAME [mtu N] type vlan id ID` (802.1Q, IFLA_VLAN_ID u16, 0-4094). */
export function newVlanRequest(p: NewStacked & { vlanId: number }): Request {
  return newSubLinkRequest({ kind: 'vlan', ...p, data: [attrU16(IFLA_VLAN_ID, p.vlanId)] });
}

/** `ip link add name NAME [mtu N] type dummy`. */
export function newDummyRequest(p: { name: string; mtu?: number; netnsFd?: number }): Request {
  return newSubLinkRequest({ kind: 'dummy', ...p });
}

/**
 * `ip link set dev INDEX alias TEXT` (IFLA_IFALIAS, sent without a NUL as
 * iproute2 and the Go netlink library do); an empty text clears the alias.
 */
export function setLinkAliasRequest(index: number, alias: string): Request {
  return { type: RTM_NEWLINK, flags: REQ_ACK, header: ifinfomsg({ index }), attrs: [attrBytes(IFLA_IFALIAS, Buffer.from(alias, 'utf8'))] };
}

/** `ip route del DST dev INDEX [table T]`: any scope and protocol (RT_SCOPE_NOWHERE), as iproute2 sends it. */
export function delRouteRequest(r: { dst: string; index: number; table?: number }): Request {
  const { family, bytes, prefixLen } = cidrParts(r.dst);
  const table = r.table ?? RT_TABLE_MAIN;
  const attrs: Attr[] = [];
  if (prefixLen > 0) attrs.push(attrBytes(RTA_DST, bytes));
  attrs.push(attrU32(RTA_OIF, r.index));
  if (table > 255) attrs.push(attrU32(RTA_TABLE, table));
  return {
    type: RTM_DELROUTE,
    flags: REQ_ACK,
    header: rtmsg({ family: afOf(family), dstLen: prefixLen, table: table > 255 ? RT_TABLE_UNSPEC : table, scope: RT_SCOPE_NOWHERE }),
    attrs,
  };
}

/** addRouteRequest plus `src ADDR` (RTA_PREFSRC): `ip route append DST [via GW] dev INDEX [scope S] src SRC`. */
export function addRouteSrcRequest(r: RouteSpec & { src: string }): Request {
  const req = addRouteRequest(r);
  const src = attrBytes(RTA_PREFSRC, addrBytes(r.src).bytes);
  // After RTA_GATEWAY/RTA_DST, before RTA_OIF: the order iproute2 uses (the kernel does not care).
  const oif = req.attrs.findIndex((a) => a.type === RTA_OIF);
  req.attrs.splice(oif < 0 ? req.attrs.length : oif, 0, src);
  return req;
}

/** Kind-specific and extra attributes of a link, decoded from the same RTM_NEWLINK payload as decodeLink. */
export interface LinkDetails {
  /** IFLA_IFALIAS (host-device keeps the original name there). */
  alias?: string;
  /** macvlan: IFLA_MACVLAN_MODE (MACVLAN_MODE_*). */
  macvlanMode?: number;
  /** ipvlan: IFLA_IPVLAN_MODE (IPVLAN_MODE_*). */
  ipvlanMode?: number;
  /** vlan: IFLA_VLAN_ID. */
  vlanId?: number;
}

/** Decode the kind data (macvlan/ipvlan mode, VLAN id) and the alias of an RTM_NEWLINK payload. */
export function decodeLinkDetails(payload: Buffer): LinkDetails {
  const a = parseAttrs(payload, 16);
  const out: LinkDetails = {};
  const alias = attrText(a.get(IFLA_IFALIAS));
  if (alias) out.alias = alias;
  const info = a.get(IFLA_LINKINFO);
  if (!info) return out;
  const li = parseAttrs(info);
  const kind = attrText(li.get(IFLA_INFO_KIND));
  const dataRaw = li.get(IFLA_INFO_DATA);
  if (!dataRaw) return out;
  const data = parseAttrs(dataRaw);
  if (kind === 'macvlan' || kind === 'macvtap') {
    const m = data.get(IFLA_MACVLAN_MODE);
    if (m && m.length >= 4) out.macvlanMode = m.readUInt32LE(0);
  } else if (kind === 'ipvlan') {
    const m = data.get(IFLA_IPVLAN_MODE);
    if (m && m.length >= 2) out.ipvlanMode = m.readUInt16LE(0);
  } else if (kind === 'vlan') {
    const v = data.get(IFLA_VLAN_ID);
    if (v && v.length >= 2) out.vlanId = v.readUInt16LE(0);
  }
  return out;
}

// ---------------------------------------------------------------------------
// Appended for the tuning plugin: transmit queue length and all-multicast.
// Golden bytes: test/unit/netlink/tuning-requests.test.ts.
// ---------------------------------------------------------------------------

import { IFF_ALLMULTI, IFLA_TXQLEN } from './codec.ts';

/** Link attributes the tuning plugin sets that LinkChange does not carry. */
export interface LinkTuning {
  /** IFF_ALLMULTI on or off. */
  allmulti?: boolean;
  /** IFLA_TXQLEN in packets; 0 is a valid length. */
  txQLen?: number;
}

/**
 * `ip link set dev <index> [allmulticast on|off] [txqueuelen N]`: one
 * RTM_NEWLINK with the flag in ifi_flags/ifi_change and IFLA_TXQLEN (u32).
 */
export function setLinkTuningRequest(index: number, t: LinkTuning): Request {
  let flags = 0;
  let change = 0;
  if (t.allmulti !== undefined) {
    change |= IFF_ALLMULTI;
    if (t.allmulti) flags |= IFF_ALLMULTI;
  }
  const { header, attrs } = refHeader(index, { flags, change });
  if (t.txQLen !== undefined) attrs.push(attrU32(IFLA_TXQLEN, t.txQLen));
  return { type: RTM_NEWLINK, flags: REQ_ACK, header, attrs };
}

/** The tuning-relevant state of an RTM_NEWLINK payload: IFLA_TXQLEN and IFF_ALLMULTI. */
export function decodeLinkTuning(payload: Buffer): { txQLen?: number; allmulti: boolean } {
  const flags = payload.readUInt32LE(8);
  const q = parseAttrs(payload, 16).get(IFLA_TXQLEN);
  return { allmulti: (flags & IFF_ALLMULTI) !== 0, ...(q?.length === 4 ? { txQLen: q.readUInt32LE(0) } : {}) };
}

// ---- Appended for the vxlan overlay: the VXLAN link, FDB and neighbour entries, onlink routes. ----

import {
  AF_BRIDGE as AF_BRIDGE_VX,
  IFLA_VXLAN_ID,
  IFLA_VXLAN_LEARNING,
  IFLA_VXLAN_LOCAL,
  IFLA_VXLAN_PORT,
  NDA_DST,
  NDA_LLADDR,
  NTF_SELF,
  NUD_NOARP,
  NUD_PERMANENT,
  RTM_DELNEIGH,
  RTM_GETNEIGH,
  RTM_NEWNEIGH,
  RTNH_F_ONLINK,
  ndmsg,
} from './codec.ts';

/** A VXLAN device: one per host and VNI, unicast only (no group: every remote is an FDB entry). */
export interface NewVxlan {
  name: string;
  vni: number;
  /** The underlay source address (IFLA_VXLAN_LOCAL). */
  local: string;
  /** UDP destination port (IFLA_VXLAN_PORT, big-endian on the wire); 4789 is IANA's. */
  port?: number;
  /** Source-address learning; off, as the entries come from the control plane. */
  learning?: boolean;
  mtu?: number;
  mac?: string;
}

/** `ip link add name NAME [mtu N] [address MAC] type vxlan id VNI local IP dstport PORT [no]learning`. */
export function newVxlanRequest(v: NewVxlan): Request {
  const port = Buffer.alloc(2);
  port.writeUInt16BE(v.port ?? 4789, 0);
  const data = [attrU32(IFLA_VXLAN_ID, v.vni), attrBytes(IFLA_VXLAN_LOCAL, addrBytes(v.local).bytes), attrU8(IFLA_VXLAN_LEARNING, v.learning ? 1 : 0), attrBytes(IFLA_VXLAN_PORT, port)];
  return newSubLinkRequest({ kind: 'vxlan', name: v.name, ...(v.mtu ? { mtu: v.mtu } : {}), ...(v.mac ? { mac: v.mac } : {}), data });
}

/** The VXLAN settings of an RTM_NEWLINK payload (undefined fields: not a vxlan link or not reported). */
export function decodeVxlan(payload: Buffer): { kind?: string; vni?: number; local?: string; port?: number; learning?: boolean } {
  const info = parseAttrs(payload, 16).get(IFLA_LINKINFO);
  if (!info) return {};
  const li = parseAttrs(info);
  const kind = attrText(li.get(IFLA_INFO_KIND));
  const d = li.get(IFLA_INFO_DATA);
  if (kind !== 'vxlan' || !d) return kind ? { kind } : {};
  const a = parseAttrs(d);
  const id = a.get(IFLA_VXLAN_ID);
  const local = a.get(IFLA_VXLAN_LOCAL);
  const port = a.get(IFLA_VXLAN_PORT);
  const learning = a.get(IFLA_VXLAN_LEARNING);
  return {
    kind,
    ...(id?.length === 4 ? { vni: id.readUInt32LE(0) } : {}),
    ...(local?.length === 4 ? { local: formatAddrBytes(local) } : {}),
    ...(port?.length === 2 ? { port: port.readUInt16BE(0) } : {}),
    ...(learning?.length === 1 ? { learning: learning[0] === 1 } : {}),
  };
}

/** `bridge fdb append MAC dev INDEX dst IP self permanent`: unicast to one remote VTEP (a VXLAN device's own FDB). */
export function fdbAppendRequest(e: { index: number; mac: string; dst: string }): Request {
  return {
    type: RTM_NEWNEIGH,
    flags: REQ_ACK | NLM_F_CREATE | NLM_F_APPEND,
    header: ndmsg({ family: AF_BRIDGE_VX, index: e.index, state: NUD_PERMANENT | NUD_NOARP, flags: NTF_SELF }),
    attrs: [attrBytes(NDA_LLADDR, parseMac(e.mac)), attrBytes(NDA_DST, addrBytes(e.dst).bytes)],
  };
}

/** `bridge fdb del MAC dev INDEX dst IP self`. */
export function fdbDelRequest(e: { index: number; mac: string; dst: string }): Request {
  return {
    type: RTM_DELNEIGH,
    flags: REQ_ACK,
    header: ndmsg({ family: AF_BRIDGE_VX, index: e.index, state: NUD_PERMANENT | NUD_NOARP, flags: NTF_SELF }),
    attrs: [attrBytes(NDA_LLADDR, parseMac(e.mac)), attrBytes(NDA_DST, addrBytes(e.dst).bytes)],
  };
}

/** `ip neigh replace IP lladdr MAC dev INDEX nud permanent`. */
export function neighReplaceRequest(e: { index: number; ip: string; mac: string }): Request {
  const { family, bytes } = addrBytes(e.ip);
  return {
    type: RTM_NEWNEIGH,
    flags: REQ_ACK | NLM_F_CREATE | NLM_F_REPLACE,
    header: ndmsg({ family: afOf(family), index: e.index, state: NUD_PERMANENT }),
    attrs: [attrBytes(NDA_DST, bytes), attrBytes(NDA_LLADDR, parseMac(e.mac))],
  };
}

/** `ip neigh del IP dev INDEX`. */
export function neighDelRequest(e: { index: number; ip: string }): Request {
  const { family, bytes } = addrBytes(e.ip);
  return { type: RTM_DELNEIGH, flags: REQ_ACK, header: ndmsg({ family: afOf(family), index: e.index, state: NUD_PERMANENT }), attrs: [attrBytes(NDA_DST, bytes)] };
}

/** Dump neighbour entries of one family (AF_INET: ARP; AF_BRIDGE: FDB), optionally of one device. */
export function getNeighRequest(family: number, index = 0): Request {
  return { type: RTM_GETNEIGH, flags: NLM_F_REQUEST | NLM_F_DUMP, header: ndmsg({ family, index }), attrs: [] };
}

export interface NeighInfo {
  family: number;
  index: number;
  state: number;
  flags: number;
  /** NDA_DST: the IP (ARP) or the remote VTEP (FDB). */
  dst?: string;
  /** NDA_LLADDR. */
  mac?: string;
}

/** Decode an RTM_NEWNEIGH payload (ndmsg + attributes). */
export function decodeNeigh(payload: Buffer): NeighInfo {
  const a = parseAttrs(payload, 12);
  const dst = a.get(NDA_DST);
  const ll = a.get(NDA_LLADDR);
  return {
    family: payload.readUInt8(0),
    index: payload.readInt32LE(4),
    state: payload.readUInt16LE(8),
    flags: payload.readUInt8(10),
    ...(dst && (dst.length === 4 || dst.length === 16) ? { dst: formatAddrBytes(dst) } : {}),
    ...(ll?.length === 6 ? { mac: formatMac(ll) } : {}),
  };
}

/** `ip route replace DST via GW dev INDEX onlink`: the gateway is on the link although no address says so (a remote VTEP). */
export function routeReplaceOnlinkRequest(r: { dst: string; gw: string; index: number }): Request {
  const { family, bytes, prefixLen } = cidrParts(r.dst);
  return {
    type: RTM_NEWROUTE,
    flags: REQ_ACK | NLM_F_CREATE | NLM_F_REPLACE,
    header: rtmsg({ family: afOf(family), dstLen: prefixLen, table: RT_TABLE_MAIN, protocol: RTPROT_BOOT, scope: RT_SCOPE_UNIVERSE, type: RTN_UNICAST, flags: RTNH_F_ONLINK }),
    attrs: [attrBytes(RTA_DST, bytes), attrBytes(RTA_GATEWAY, addrBytes(r.gw).bytes), attrU32(RTA_OIF, r.index)],
  };
}
