/**
 * Test helper: turn one netlink message into a plain structure (header
 * fields, family header as hex, attributes by type, recursively for the
 * nested ones named in a Shape) so that two encodings can be compared where
 * raw bytes legitimately differ (attribute order, an attribute one side adds).
 *
 * Netlink does not say which attributes are nested (iproute2 does not set
 * NLA_F_NESTED), so the caller describes it with a Shape.
 */
import { NLMSG_HDRLEN, encodeMessage } from '../../../lib/netlink/codec.ts';
import type { Request } from '../../../lib/netlink/messages.ts';

export interface Shape {
  /** Bytes of a fixed struct at the start of the payload (e.g. the veth peer's ifinfomsg). */
  skip?: number;
  /** Attribute types whose payload is more attributes. */
  nested?: Record<number, Shape>;
  /**
   * String attribute types: compared without the trailing NUL. iproute2 sends
   * IFLA_INFO_KIND without one ("bridge", length 4+6), the Go netlink library and
   * our builders with one; the kernel's nla_strscpy accepts both.
   */
  strings?: number[];
}

/** An attribute payload as hex (or text for a Shape string), or nested attributes by type. */
export interface Tree {
  fixed?: string;
  attrs: Record<number, string | Tree>;
}

export interface Inspected {
  len: number;
  type: number;
  flags: number;
  seq: number;
  pid: number;
  /** The family header (ifinfomsg, ifaddrmsg, rtmsg) as hex. */
  header: string;
  attrs: Record<number, string | Tree>;
}

/** Bytes from a hex string (whitespace ignored). */
export const hex = (s: string): Buffer => Buffer.from(s.replace(/\s+/g, ''), 'hex');

/** The sequence number of an encoded message. */
export const seqOf = (msg: Buffer): number => msg.readUInt32LE(8);

/** A builder's request encoded with the sequence number of a captured message (pid is 0 on both sides). */
export const encodeLike = (req: Request, golden: Buffer): Buffer => encodeMessage({ ...req, seq: seqOf(golden) });

function tree(buf: Buffer, shape: Shape): Tree {
  const out: Tree = { attrs: {} };
  const skip = shape.skip ?? 0;
  if (skip) out.fixed = buf.subarray(0, skip).toString('hex');
  let off = skip;
  while (off < buf.length) {
    if (buf.length - off < 4) throw new Error(`trailing ${buf.length - off} bytes at ${off}`);
    const len = buf.readUInt16LE(off);
    const type = buf.readUInt16LE(off + 2) & 0x3fff;
    if (len < 4 || off + len > buf.length) throw new Error(`bad attribute length ${len} at ${off}`);
    if (type in out.attrs) throw new Error(`attribute ${type} twice`);
    const value = buf.subarray(off + 4, off + len);
    const sub = shape.nested?.[type];
    if (sub) out.attrs[type] = tree(value, sub);
    else if (shape.strings?.includes(type)) out.attrs[type] = value.toString('latin1').replace(/\0$/, '');
    else out.attrs[type] = value.toString('hex');
    // Padding must be zero and present (except after the last attribute of a message, where it still is).
    const padded = (len + 3) & ~3;
    if (off + padded > buf.length) throw new Error(`attribute ${type} not padded`);
    if (buf.subarray(off + len, off + padded).some((x) => x !== 0)) throw new Error(`attribute ${type}: non-zero padding`);
    off += padded;
  }
  return out;
}

/** Decode one message whose family header is `headerLen` bytes; throws on any inconsistency. */
export function inspect(msg: Buffer, headerLen: number, shape: Shape = {}): Inspected {
  const len = msg.readUInt32LE(0);
  if (len !== msg.length) throw new Error(`nlmsg_len ${len} but ${msg.length} bytes`);
  const t = tree(msg.subarray(NLMSG_HDRLEN + headerLen), shape);
  return {
    len,
    type: msg.readUInt16LE(4),
    flags: msg.readUInt16LE(6),
    seq: msg.readUInt32LE(8),
    pid: msg.readUInt32LE(12),
    header: msg.subarray(NLMSG_HDRLEN, NLMSG_HDRLEN + headerLen).toString('hex'),
    attrs: t.attrs,
  };
}

/** inspect() without nlmsg_len, for comparisons where the two sides carry different attributes. */
export function structure(msg: Buffer, headerLen: number, shape: Shape = {}): Omit<Inspected, 'len'> {
  const { len: _len, ...rest } = inspect(msg, headerLen, shape);
  return rest;
}
