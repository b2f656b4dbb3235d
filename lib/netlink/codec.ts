/**
 * Netlink wire format, pure: message headers, attributes (TLVs, 4-byte
 * aligned, host byte order) and the constants of the rtnetlink messages the
 * plugins use. No I/O here, so every byte is golden-tested.
 *
 *   nlmsghdr (16 B)  len u32 | type u16 | flags u16 | seq u32 | pid u32
 *   family header    ifinfomsg (16 B) | ifaddrmsg (8 B) | rtmsg (12 B) | ndmsg (12 B)
 *   attributes       len u16 | type u16 | value, padded to 4 bytes
 *
 * Sources: linux/netlink.h, linux/rtnetlink.h, linux/if_link.h,
 * linux/if_addr.h, linux/neighbour.h, linux/if_bridge.h.
 */

export const NLMSG_HDRLEN = 16;
export const NLA_HDRLEN = 4;

/** Message types. */
export const NLMSG_ERROR = 2;
export const NLMSG_DONE = 3;
export const RTM_NEWLINK = 16;
export const RTM_DELLINK = 17;
export const RTM_GETLINK = 18;
export const RTM_SETLINK = 19;
export const RTM_NEWADDR = 20;
export const RTM_DELADDR = 21;
export const RTM_GETADDR = 22;
export const RTM_NEWROUTE = 24;
export const RTM_DELROUTE = 25;
export const RTM_GETROUTE = 26;
export const RTM_NEWNEIGH = 28;
export const RTM_DELNEIGH = 29;
export const RTM_GETNEIGH = 30;

/** Header flags. */
export const NLM_F_REQUEST = 0x1;
export const NLM_F_MULTI = 0x2;
export const NLM_F_ACK = 0x4;
export const NLM_F_DUMP = 0x300;
export const NLM_F_REPLACE = 0x100;
export const NLM_F_EXCL = 0x200;
export const NLM_F_CREATE = 0x400;
export const NLM_F_APPEND = 0x800;

/** Address families. */
export const AF_UNSPEC = 0;
export const AF_INET = 2;
export const AF_BRIDGE = 7;
export const AF_INET6 = 10;

/** Link flags (ifi_flags). */
export const IFF_UP = 0x1;
export const IFF_PROMISC = 0x100;
export const IFF_LOWER_UP = 0x10000;

/** Link attributes. */
export const IFLA_ADDRESS = 1;
export const IFLA_BROADCAST = 2;
export const IFLA_IFNAME = 3;
export const IFLA_MTU = 4;
export const IFLA_LINK = 5;
export const IFLA_MASTER = 10;
export const IFLA_PROTINFO = 12;
export const IFLA_OPERSTATE = 16;
export const IFLA_LINKINFO = 18;
export const IFLA_NET_NS_PID = 19;
export const IFLA_AF_SPEC = 26;
export const IFLA_NET_NS_FD = 28;
export const IFLA_EXT_MASK = 29;
export const IFLA_LINK_NETNSID = 37;
export const IFLA_INFO_KIND = 1;
export const IFLA_INFO_DATA = 2;
export const IFLA_INFO_SLAVE_KIND = 4;
export const IFLA_INFO_SLAVE_DATA = 5;
export const VETH_INFO_PEER = 1;
export const IFLA_BR_VLAN_FILTERING = 7;
export const IFLA_BRPORT_MODE = 4;
export const IFLA_BRPORT_LEARNING = 8;
export const IFLA_BRPORT_ISOLATED = 33;
export const IFLA_BRIDGE_VLAN_INFO = 2;
export const BRIDGE_VLAN_INFO_PVID = 0x2;
export const BRIDGE_VLAN_INFO_UNTAGGED = 0x4;
export const IFLA_VLAN_ID = 1;
export const IF_OPER_UP = 6;

/** Address attributes and flags. */
export const IFA_ADDRESS = 1;
export const IFA_LOCAL = 2;
export const IFA_BROADCAST = 4;
export const IFA_FLAGS = 8;
export const IFA_F_NODAD = 0x02;
export const IFA_F_DADFAILED = 0x08;
export const IFA_F_TENTATIVE = 0x40;
export const IFA_F_PERMANENT = 0x80;

/** Route header values and attributes. */
export const RT_TABLE_UNSPEC = 0;
export const RT_TABLE_MAIN = 254;
export const RTPROT_BOOT = 3;
export const RT_SCOPE_UNIVERSE = 0;
export const RT_SCOPE_LINK = 253;
export const RT_SCOPE_HOST = 254;
export const RTN_UNICAST = 1;
export const RTA_DST = 1;
export const RTA_OIF = 4;
export const RTA_GATEWAY = 5;
export const RTA_PRIORITY = 6;
export const RTA_METRICS = 8;
export const RTA_TABLE = 15;
export const RTAX_MTU = 2;
export const RTAX_ADVMSS = 8;

/** Neighbour attributes. */
export const NDA_DST = 1;
export const NDA_LLADDR = 2;
export const NUD_PERMANENT = 0x80;
export const NTF_SELF = 0x02;

/** One attribute to encode: raw bytes, or nested attributes. */
export interface Attr {
  type: number;
  value: Uint8Array | Attr[];
}

const align4 = (n: number) => (n + 3) & ~3;

export const attrU8 = (type: number, v: number): Attr => ({ type, value: Uint8Array.of(v & 0xff) });
export function attrU16(type: number, v: number): Attr {
  const b = Buffer.alloc(2);
  b.writeUInt16LE(v);
  return { type, value: b };
}
export function attrU32(type: number, v: number): Attr {
  const b = Buffer.alloc(4);
  b.writeUInt32LE(v >>> 0);
  return { type, value: b };
}
export function attrS32(type: number, v: number): Attr {
  const b = Buffer.alloc(4);
  b.writeInt32LE(v);
  return { type, value: b };
}
/** A NUL-terminated string (interface names, link kinds). */
export const attrStr = (type: number, s: string): Attr => ({ type, value: Buffer.from(`${s}\0`, 'utf8') });
export const attrBytes = (type: number, b: Uint8Array): Attr => ({ type, value: b });
export const attrNest = (type: number, attrs: Attr[]): Attr => ({ type, value: attrs });

function attrSize(a: Attr): number {
  const inner = Array.isArray(a.value) ? a.value.reduce((n, x) => n + align4(attrSize(x)), 0) : a.value.length;
  return NLA_HDRLEN + inner;
}

function writeAttrs(buf: Buffer, off: number, attrs: readonly Attr[]): number {
  for (const a of attrs) {
    const len = attrSize(a);
    buf.writeUInt16LE(len, off);
    buf.writeUInt16LE(a.type, off + 2);
    if (Array.isArray(a.value)) writeAttrs(buf, off + NLA_HDRLEN, a.value);
    else buf.set(a.value, off + NLA_HDRLEN);
    off += align4(len);
  }
  return off;
}

/** Encoded size of attributes, padding included. */
export function attrsSize(attrs: readonly Attr[]): number {
  return attrs.reduce((n, a) => n + align4(attrSize(a)), 0);
}

/** Attributes as bytes (for a nested payload that follows a fixed struct, such as the veth peer's ifinfomsg). */
export function encodeAttrs(attrs: readonly Attr[]): Buffer {
  const buf = Buffer.alloc(attrsSize(attrs));
  writeAttrs(buf, 0, attrs);
  return buf;
}

export interface NlMessage {
  type: number;
  flags: number;
  seq: number;
  /** Family header (ifinfomsg, ifaddrmsg, rtmsg, ndmsg). */
  header: Uint8Array;
  attrs: readonly Attr[];
}

/** One complete netlink message. pid 0: the kernel assigns the port. */
export function encodeMessage(m: NlMessage): Buffer {
  const hdr = align4(m.header.length);
  const len = NLMSG_HDRLEN + hdr + attrsSize(m.attrs);
  const buf = Buffer.alloc(len);
  buf.writeUInt32LE(len, 0);
  buf.writeUInt16LE(m.type, 4);
  buf.writeUInt16LE(m.flags, 6);
  buf.writeUInt32LE(m.seq >>> 0, 8);
  buf.writeUInt32LE(0, 12);
  buf.set(m.header, NLMSG_HDRLEN);
  writeAttrs(buf, NLMSG_HDRLEN + hdr, m.attrs);
  return buf;
}

/** struct ifinfomsg: family, type, index, flags, change. */
export function ifinfomsg(p: { family?: number; index?: number; flags?: number; change?: number } = {}): Buffer {
  const b = Buffer.alloc(16);
  b.writeUInt8(p.family ?? AF_UNSPEC, 0);
  b.writeInt32LE(p.index ?? 0, 4);
  b.writeUInt32LE((p.flags ?? 0) >>> 0, 8);
  b.writeUInt32LE((p.change ?? 0) >>> 0, 12);
  return b;
}

/** struct ifaddrmsg: family, prefixlen, flags (low 8 bits), scope, index. */
export function ifaddrmsg(p: { family: number; prefixLen?: number; flags?: number; scope?: number; index?: number }): Buffer {
  const b = Buffer.alloc(8);
  b.writeUInt8(p.family, 0);
  b.writeUInt8(p.prefixLen ?? 0, 1);
  b.writeUInt8((p.flags ?? 0) & 0xff, 2);
  b.writeUInt8(p.scope ?? 0, 3);
  b.writeUInt32LE(p.index ?? 0, 4);
  return b;
}

/** struct rtmsg. */
export function rtmsg(p: { family: number; dstLen?: number; table?: number; protocol?: number; scope?: number; type?: number; flags?: number }): Buffer {
  const b = Buffer.alloc(12);
  b.writeUInt8(p.family, 0);
  b.writeUInt8(p.dstLen ?? 0, 1);
  b.writeUInt8(p.table ?? 0, 4);
  b.writeUInt8(p.protocol ?? 0, 5);
  b.writeUInt8(p.scope ?? 0, 6);
  b.writeUInt8(p.type ?? 0, 7);
  b.writeUInt32LE(p.flags ?? 0, 8);
  return b;
}

/** struct ndmsg: family, ifindex, state, flags, type. */
export function ndmsg(p: { family: number; index: number; state?: number; flags?: number; type?: number }): Buffer {
  const b = Buffer.alloc(12);
  b.writeUInt8(p.family, 0);
  b.writeInt32LE(p.index, 4);
  b.writeUInt16LE(p.state ?? 0, 8);
  b.writeUInt8(p.flags ?? 0, 10);
  b.writeUInt8(p.type ?? 0, 11);
  return b;
}

/** A received message: header fields and its payload (family header + attributes). */
export interface RawMessage {
  type: number;
  flags: number;
  seq: number;
  payload: Buffer;
}

/** Split a datagram into messages. Throws on a length that runs past the end (a truncated read). */
export function parseMessages(buf: Buffer): RawMessage[] {
  const out: RawMessage[] = [];
  let off = 0;
  while (off + NLMSG_HDRLEN <= buf.length) {
    const len = buf.readUInt32LE(off);
    if (len < NLMSG_HDRLEN || off + len > buf.length) throw new Error(`netlink: malformed message (length ${len} at offset ${off} of ${buf.length})`);
    out.push({ type: buf.readUInt16LE(off + 4), flags: buf.readUInt16LE(off + 6), seq: buf.readUInt32LE(off + 8), payload: buf.subarray(off + NLMSG_HDRLEN, off + len) });
    off += align4(len);
  }
  if (off < buf.length) throw new Error(`netlink: ${buf.length - off} stray bytes after the last message`);
  return out;
}

/** The errno of an NLMSG_ERROR payload (0 is an ACK). Positive: the kernel sends -errno. */
export function errorCode(payload: Buffer): number {
  return -payload.readInt32LE(0) || 0;
}

/** Attributes by type (the last one wins; the flag bits NLA_F_NESTED/NLA_F_NET_BYTEORDER are masked). */
export function parseAttrs(buf: Buffer, start = 0): Map<number, Buffer> {
  const out = new Map<number, Buffer>();
  let off = start;
  while (off + NLA_HDRLEN <= buf.length) {
    const len = buf.readUInt16LE(off);
    if (len < NLA_HDRLEN || off + len > buf.length) break;
    out.set(buf.readUInt16LE(off + 2) & 0x3fff, buf.subarray(off + NLA_HDRLEN, off + len));
    off += align4(len);
  }
  return out;
}

/** The text of a NUL-terminated string attribute. */
export function attrText(b: Buffer | undefined): string | undefined {
  if (!b) return undefined;
  const end = b.indexOf(0);
  return b.subarray(0, end < 0 ? b.length : end).toString('utf8');
}

/** "aa:bb:cc:dd:ee:ff" from link-layer address bytes. */
export function formatMac(b: Uint8Array): string {
  return [...b].map((x) => x.toString(16).padStart(2, '0')).join(':');
}

/** Link-layer address bytes from "aa:bb:cc:dd:ee:ff"; throws on anything else. */
export function parseMac(mac: string): Buffer {
  if (!/^[0-9a-fA-F]{2}(:[0-9a-fA-F]{2}){5}$/.test(mac)) throw new Error(`invalid MAC address "${mac}"`);
  return Buffer.from(mac.split(':').map((x) => parseInt(x, 16)));
}

/*
 * Appended for the macvlan, ipvlan, vlan, dummy, host-device and ptp plugins
 * (linux/if_link.h, linux/rtnetlink.h).
 */
export const IFLA_IFALIAS = 20;
/** IFLA_INFO_DATA of kind "macvlan": IFLA_MACVLAN_MODE u32. */
export const IFLA_MACVLAN_MODE = 1;
export const MACVLAN_MODE_PRIVATE = 1;
export const MACVLAN_MODE_VEPA = 2;
export const MACVLAN_MODE_BRIDGE = 4;
export const MACVLAN_MODE_PASSTHRU = 8;
/** IFLA_INFO_DATA of kind "ipvlan": IFLA_IPVLAN_MODE u16. */
export const IFLA_IPVLAN_MODE = 1;
export const IPVLAN_MODE_L2 = 0;
export const IPVLAN_MODE_L3 = 1;
export const IPVLAN_MODE_L3S = 2;
/** Route attribute: preferred source address. */
export const RTA_PREFSRC = 7;
/** rtm_scope for a delete: match any scope. */
export const RT_SCOPE_NOWHERE = 255;
/** ifa_flags: no automatic prefix route for the address. */
export const IFA_F_NOPREFIXROUTE = 0x200;
/** IFLA_INFO_DATA of kind "macvlan": broadcast queue length (u32). */
export const IFLA_MACVLAN_BC_QUEUE_LEN = 7;

// Appended for the tuning plugin (include/uapi/linux/if_link.h, if.h).
export const IFLA_TXQLEN = 13;
export const IFF_ALLMULTI = 0x200;

// Appended for the vxlan overlay (include/uapi/linux/if_link.h, neighbour.h, rtnetlink.h).
export const IFLA_VXLAN_ID = 1;
export const IFLA_VXLAN_LOCAL = 4;
export const IFLA_VXLAN_LEARNING = 7;
export const IFLA_VXLAN_PORT = 15;
export const NUD_NOARP = 0x40;
export const RTNH_F_ONLINK = 0x4;
