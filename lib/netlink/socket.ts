/**
 * One netlink request/reply exchange on an open socket, for any netlink
 * protocol: send one message, collect the replies with its sequence number
 * until the kernel's ACK (or NLMSG_DONE for a dump), and turn an error ACK
 * into a NetlinkError that names the operation.
 */
import { NLMSG_DONE, NLMSG_ERROR, NLMSG_HDRLEN, attrText, encodeMessage, errorCode, parseAttrs, parseMessages, type Attr, type RawMessage } from './codec.ts';
import { recvInto, sendAll, strerror } from './ffi.ts';

/** A kernel refusal: errno, libc's text, and the kernel's extended ACK message when it gave one. */
export class NetlinkError extends Error {
  readonly errno: number;
  constructor(what: string, errno: number, extack?: string) {
    super(`failed to ${what}: ${strerror(errno)}${extack ? ` (${extack})` : ''}`);
    this.name = 'NetlinkError';
    this.errno = errno;
  }
}

/** A request without its sequence number (the exchange assigns it). */
export interface NlRequest {
  type: number;
  flags: number;
  header: Uint8Array;
  attrs: Attr[];
}

const NLM_F_CAPPED = 0x100;
const NLM_F_ACK_TLVS = 0x200;
const NLMSGERR_ATTR_MSG = 1;

/** The kernel's extended ACK text of an NLMSG_ERROR message, if any. */
export function extackOf(m: RawMessage): string | undefined {
  if (!(m.flags & NLM_F_ACK_TLVS)) return undefined;
  const origLen = m.flags & NLM_F_CAPPED ? NLMSG_HDRLEN : m.payload.readUInt32LE(4);
  return attrText(parseAttrs(m.payload, 4 + origLen).get(NLMSGERR_ATTR_MSG));
}

const RECV_BUF = Buffer.alloc(1 << 18);
let lastSeq = Math.floor(Date.now() / 1000) & 0x3fffffff;

/**
 * Send `req` on `fd` and return the messages before the ACK (or before DONE
 * for a dump). `what` describes the operation for the error message.
 * Throws NetlinkError when the kernel refuses.
 */
export function exchange(fd: number, req: NlRequest, what: () => string): RawMessage[] {
  const seq = ++lastSeq;
  sendAll(fd, encodeMessage({ ...req, seq }));
  const dump = (req.flags & 0x300) === 0x300;
  const out: RawMessage[] = [];
  for (;;) {
    const n = recvInto(fd, RECV_BUF);
    // Copy out: the receive buffer is reused by the next read.
    for (const m of parseMessages(Buffer.from(RECV_BUF.subarray(0, n)))) {
      if (m.seq !== seq) continue; // a late reply to an earlier request
      if (m.type === NLMSG_ERROR) {
        const errno = errorCode(m.payload);
        if (errno !== 0) throw new NetlinkError(what(), errno, extackOf(m));
        return out;
      }
      if (m.type === NLMSG_DONE) {
        if (dump) return out;
        continue;
      }
      out.push(m);
    }
  }
}
