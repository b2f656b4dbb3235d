/**
 * Conntrack over netlink (NETLINK_NETFILTER, ctnetlink), pure encode and
 * decode: a dump request for one family, entries decoded to their original
 * tuple, and a delete request by tuple. Attributes nest with NLA_F_NESTED
 * and carry ports in network byte order, as libnetfilter_conntrack sends
 * them. Sources: linux/netfilter/nfnetlink.h, nfnetlink_conntrack.h.
 *
 *   nlmsghdr | nfgenmsg (family u8, version u8 = 0, res_id be16 = 0) | attributes
 *   CTA_TUPLE_ORIG { CTA_TUPLE_IP { SRC, DST }, CTA_TUPLE_PROTO { NUM, SRC_PORT, DST_PORT } }
 */
import { AF_INET, AF_INET6, NLM_F_ACK, NLM_F_DUMP, NLM_F_REQUEST, attrBytes, attrU8, parseAttrs, type Attr } from './codec.ts';
import { formatAddrBytes } from './messages.ts';
import type { NlRequest } from './socket.ts';

const NFNL_SUBSYS_CTNETLINK = 1;
const IPCTNL_MSG_CT_GET = 1;
const IPCTNL_MSG_CT_DELETE = 2;
export const CT_DELETE = (NFNL_SUBSYS_CTNETLINK << 8) | IPCTNL_MSG_CT_DELETE;
export const CT_GET = (NFNL_SUBSYS_CTNETLINK << 8) | IPCTNL_MSG_CT_GET;

const NLA_F_NESTED = 0x8000;
const CTA_TUPLE_ORIG = 1;
const CTA_ZONE = 18;
const CTA_TUPLE_IP = 1;
const CTA_TUPLE_PROTO = 2;
const CTA_IP_V4_SRC = 1;
const CTA_IP_V4_DST = 2;
const CTA_IP_V6_SRC = 3;
const CTA_IP_V6_DST = 4;
const CTA_PROTO_NUM = 1;
const CTA_PROTO_SRC_PORT = 2;
const CTA_PROTO_DST_PORT = 3;

export const IPPROTO_TCP = 6;
export const IPPROTO_UDP = 17;

/** The original direction of a connection: what a flush filters on and what a delete names. */
export interface ConntrackTuple {
  family: 4 | 6;
  src: Buffer;
  dst: Buffer;
  proto: number;
  srcPort: number;
  dstPort: number;
  /** CTA_ZONE (big-endian u16 bytes) when the entry has one. */
  zone?: Buffer;
}

function nfgenmsg(family: 4 | 6): Buffer {
  return Buffer.from([family === 4 ? AF_INET : AF_INET6, 0, 0, 0]);
}

const nest = (type: number, attrs: Attr[]): Attr => ({ type: type | NLA_F_NESTED, value: attrs });

function be16(v: number): Buffer {
  const b = Buffer.alloc(2);
  b.writeUInt16BE(v);
  return b;
}

/** Dump every entry of one family (the kernel cannot filter by port before 5.x; we filter here, in one pass). */
export function dumpRequest(family: 4 | 6): NlRequest {
  return { type: CT_GET, flags: NLM_F_REQUEST | NLM_F_DUMP, header: nfgenmsg(family), attrs: [] };
}

/** Delete one entry by its original tuple (and zone). */
export function deleteRequest(t: ConntrackTuple): NlRequest {
  const ip = t.family === 4 ? [attrBytes(CTA_IP_V4_SRC, t.src), attrBytes(CTA_IP_V4_DST, t.dst)] : [attrBytes(CTA_IP_V6_SRC, t.src), attrBytes(CTA_IP_V6_DST, t.dst)];
  const attrs: Attr[] = [
    nest(CTA_TUPLE_ORIG, [
      nest(CTA_TUPLE_IP, ip),
      nest(CTA_TUPLE_PROTO, [attrU8(CTA_PROTO_NUM, t.proto), attrBytes(CTA_PROTO_SRC_PORT, be16(t.srcPort)), attrBytes(CTA_PROTO_DST_PORT, be16(t.dstPort))]),
    ]),
  ];
  if (t.zone) attrs.push(attrBytes(CTA_ZONE, t.zone));
  return { type: CT_DELETE, flags: NLM_F_REQUEST | NLM_F_ACK, header: nfgenmsg(t.family), attrs };
}

/** The original tuple of a dumped entry (payload after the nlmsghdr), or undefined for a protocol without ports. */
export function decodeEntry(payload: Buffer): ConntrackTuple | undefined {
  const family = payload[0] === AF_INET6 ? 6 : 4;
  const top = parseAttrs(payload, 4);
  const orig = top.get(CTA_TUPLE_ORIG);
  if (!orig) return undefined;
  const tuple = parseAttrs(orig);
  const ip = parseAttrs(tuple.get(CTA_TUPLE_IP) ?? Buffer.alloc(0));
  const proto = parseAttrs(tuple.get(CTA_TUPLE_PROTO) ?? Buffer.alloc(0));
  const src = ip.get(family === 4 ? CTA_IP_V4_SRC : CTA_IP_V6_SRC);
  const dst = ip.get(family === 4 ? CTA_IP_V4_DST : CTA_IP_V6_DST);
  const num = proto.get(CTA_PROTO_NUM);
  const sport = proto.get(CTA_PROTO_SRC_PORT);
  const dport = proto.get(CTA_PROTO_DST_PORT);
  if (!src || !dst || !num || !sport || !dport) return undefined;
  const t: ConntrackTuple = { family, src, dst, proto: num[0] as number, srcPort: sport.readUInt16BE(0), dstPort: dport.readUInt16BE(0) };
  const zone = top.get(CTA_ZONE);
  if (zone) t.zone = zone;
  return t;
}

/** "udp 10.0.0.5:40000 -> 10.0.0.1:8080", for messages. */
export function describeTuple(t: ConntrackTuple): string {
  const p = t.proto === IPPROTO_UDP ? 'udp' : t.proto === IPPROTO_TCP ? 'tcp' : `proto ${t.proto}`;
  const a = (b: Buffer, port: number) => (t.family === 6 ? `[${formatAddrBytes(b)}]:${port}` : `${formatAddrBytes(b)}:${port}`);
  return `${p} ${a(t.src, t.srcPort)} -> ${a(t.dst, t.dstPort)}`;
}
