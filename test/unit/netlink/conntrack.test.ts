/**
 * ctnetlink requests (lib/netlink/conntrack.ts). The dump request is
 * compared byte for byte with what `conntrack -L -f ipv4|ipv6` sends
 * (strace -xx, conntrack-tools 1.4.7): nlmsghdr (len 20, type
 * CTNETLINK<<8|CT_GET, flags REQUEST|DUMP) + nfgenmsg (family, v0, res_id 0).
 * The delete request is checked by decoding it back: it carries the same
 * nested tuple a dumped entry has.
 */
import { describe, expect, it } from 'vitest';
import { NLMSG_HDRLEN, encodeMessage, parseMessages } from '../../../lib/netlink/codec.ts';
import { CT_DELETE, IPPROTO_UDP, decodeEntry, deleteRequest, describeTuple, dumpRequest } from '../../../lib/netlink/conntrack.ts';

const SEQ = 1796013505;
const hex = (b: Buffer) => b.toString('hex');

describe('ctnetlink', () => {
  it('dump request as conntrack -L sends it', () => {
    const v4 = encodeMessage({ ...dumpRequest(4), seq: SEQ });
    expect(hex(v4)).toBe('1400000001010103c1fd0c6b00000000' + '02000000');
    const v6 = encodeMessage({ ...dumpRequest(6), seq: SEQ });
    expect(hex(v6)).toBe('1400000001010103c1fd0c6b00000000' + '0a000000');
  });

  it('delete request carries the entry tuple, decodable as a dumped entry', () => {
    const t = { family: 4 as const, src: Buffer.from([10, 9, 8, 7]), dst: Buffer.from([10, 9, 8, 1]), proto: IPPROTO_UDP, srcPort: 40000, dstPort: 8080 };
    const req = deleteRequest(t);
    expect(req.type).toBe(CT_DELETE);
    expect(req.type).toBe(0x102);
    const msg = encodeMessage({ ...req, seq: 1 });
    const [m] = parseMessages(msg);
    expect(m!.payload.subarray(0, 4)).toEqual(Buffer.from([2, 0, 0, 0]));
    // Ports are big-endian inside nested attributes flagged NLA_F_NESTED (0x8000).
    expect(hex(msg)).toContain('06000200' + '9c40');
    expect(hex(msg)).toContain('06000300' + '1f90');
    expect(msg.readUInt16LE(NLMSG_HDRLEN + 4 + 2)).toBe(0x8001);
    expect(decodeEntry(m!.payload)).toEqual(t);
    expect(describeTuple(t)).toBe('udp 10.9.8.7:40000 -> 10.9.8.1:8080');
    const v6 = { family: 6 as const, src: Buffer.alloc(16, 1), dst: Buffer.alloc(16, 2), proto: IPPROTO_UDP, srcPort: 1, dstPort: 2, zone: Buffer.from([0, 5]) };
    expect(decodeEntry(parseMessages(encodeMessage({ ...deleteRequest(v6), seq: 2 }))[0]!.payload)).toEqual(v6);
  });

  it('skips entries without a port tuple', () => {
    expect(decodeEntry(Buffer.from([2, 0, 0, 0]))).toBeUndefined();
  });
});
