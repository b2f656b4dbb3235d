/**
 * lib/netlink/codec.ts: the wire format itself. Expected bytes are written
 * out from linux/netlink.h (nlmsghdr 16 B, attribute TLVs padded to 4 bytes,
 * host byte order = little-endian here); the kernel messages (ACK, errors,
 * dumps) are real replies captured with strace -e read=all inside a
 * throwaway namespace (see kernel-replies.ts for the setup).
 */
import { describe, expect, it } from 'vitest';
import {
  NLMSG_DONE,
  NLMSG_ERROR,
  NLM_F_MULTI,
  RTM_NEWADDR,
  attrNest,
  attrS32,
  attrStr,
  attrText,
  attrU16,
  attrU32,
  attrU8,
  attrsSize,
  encodeAttrs,
  encodeMessage,
  errorCode,
  formatMac,
  parseAttrs,
  parseMac,
  parseMessages,
} from '../../../lib/netlink/codec.ts';
import { ADDR_DUMP, LINK_LO } from './kernel-replies.ts';
import { hex } from './nl-inspect.ts';

/** `ip link set dev tgold0 up`: the kernel's ACK (error 0; NLM_F_CAPPED, as iproute2 sets NETLINK_CAP_ACK). */
const ACK = hex('2400000002000001d2f70c6bf8490000 00000000 2000000010000500d2f70c6b00000000');
/** `ip link add name tgold0 type bridge` when tgold0 exists: error -EEXIST (-17) and the whole request echoed. */
const EEXIST_REPLY = hex(
  '5000000002000000d3f70c6bfd490000 efffffff' +
    '3c00000010000506d3f70c6b00000000 00000000000000000000000000000000 0b00030074676f6c64300000 100012000a0001006272696467650000',
);
/** The NLMSG_DONE that ended the `ip addr show` dump (NLM_F_MULTI, payload: int 0). */
const DONE = hex('1400000003000200d3f70c6be9490000 00000000');

describe('encodeMessage', () => {
  it('pads an odd-length string attribute and counts the padding in nlmsg_len only', () => {
    // "abcde\0" is 6 bytes: nla_len 10, then 2 bytes of padding; 16 (nlmsghdr) + 8 (header) + 12.
    const m = encodeMessage({ type: 16, flags: 0x605, seq: 0x01020304, header: Buffer.alloc(8), attrs: [attrStr(3, 'abcde')] });
    expect(m.toString('hex')).toBe('24000000' + '1000' + '0506' + '04030201' + '00000000' + '0000000000000000' + '0a000300' + '616263646500' + '0000');
    expect(m.length % 4).toBe(0);
  });

  it('aligns a family header whose length is not a multiple of 4', () => {
    const m = encodeMessage({ type: 1, flags: 0, seq: 0, header: Uint8Array.of(0xaa, 0xbb, 0xcc, 0xdd, 0xee), attrs: [attrU8(1, 7)] });
    expect(m.length).toBe(16 + 8 + 8);
    expect(m.readUInt32LE(0)).toBe(32);
    expect(m.subarray(16).toString('hex')).toBe('aabbccddee000000' + '05000100' + '07000000');
  });

  it('writes pid 0 and the sequence number as an unsigned 32-bit value', () => {
    const m = encodeMessage({ type: 18, flags: 1, seq: 0xfffffffe, header: Buffer.alloc(16), attrs: [] });
    expect(m.subarray(0, 16).toString('hex')).toBe('20000000' + '1200' + '0100' + 'feffffff' + '00000000');
  });

  it('sizes a nest as header plus its padded children, with no flag bits', () => {
    // A nest holding "ab\0" (7, padded to 8) and a u16 (6, padded to 8): 4 + 8 + 8 = 20.
    const nest = attrNest(18, [attrStr(1, 'ab'), attrU16(2, 0x0102)]);
    expect(attrsSize([nest])).toBe(20);
    expect(encodeAttrs([nest]).toString('hex')).toBe('14001200' + '07000100' + '61620000' + '06000200' + '02010000');
  });
});

describe('attribute helpers', () => {
  it('encode integers little-endian, u8 without padding in nla_len', () => {
    expect(encodeAttrs([attrU8(7, 0x1ff)]).toString('hex')).toBe('05000700ff000000');
    expect(encodeAttrs([attrU16(1, 0xbeef)]).toString('hex')).toBe('06000100efbe0000');
    expect(encodeAttrs([attrU32(4, 1400)]).toString('hex')).toBe('0800040078050000');
    expect(encodeAttrs([attrU32(4, 0xffffffff)]).toString('hex')).toBe('08000400ffffffff');
    expect(encodeAttrs([attrS32(28, -1)]).toString('hex')).toBe('08001c00ffffffff');
  });

  it('attrText stops at the first NUL and accepts a string without one', () => {
    expect(attrText(Buffer.from('veth\0\0\0'))).toBe('veth');
    expect(attrText(Buffer.from('bridge_slave'))).toBe('bridge_slave');
    expect(attrText(undefined)).toBeUndefined();
  });
});

describe('parseMessages', () => {
  it('splits a multi-message dump datagram', () => {
    const ms = parseMessages(ADDR_DUMP);
    expect(ms).toHaveLength(8);
    for (const m of ms) {
      expect(m.type).toBe(RTM_NEWADDR);
      expect(m.flags).toBe(NLM_F_MULTI);
      expect(m.seq).toBe(0x6b0cf7d3);
    }
    // Payload lengths: nlmsg_len - 16, per message (the first is 127.0.0.1/8 on lo, 76 bytes).
    expect(ms[0]?.payload.length).toBe(76 - 16);
    expect(ms.reduce((n, m) => n + 16 + m.payload.length, 0)).toBe(ADDR_DUMP.length);
  });

  it('reads ACK, error and DONE messages', () => {
    const [ack] = parseMessages(ACK);
    expect(ack).toMatchObject({ type: NLMSG_ERROR, flags: 0x100, seq: 0x6b0cf7d2 });
    const [done] = parseMessages(DONE);
    expect(done).toMatchObject({ type: NLMSG_DONE, flags: NLM_F_MULTI });
    expect(parseMessages(Buffer.concat([ACK, DONE])).map((m) => m.type)).toEqual([NLMSG_ERROR, NLMSG_DONE]);
  });

  it('throws on a message that runs past the end of the datagram', () => {
    expect(() => parseMessages(ADDR_DUMP.subarray(0, ADDR_DUMP.length - 10))).toThrow(/malformed/);
    expect(() => parseMessages(LINK_LO.subarray(0, 100))).toThrow(/length 1100 at offset 0 of 100/);
  });

  it('throws on an nlmsg_len shorter than the header', () => {
    const bad = Buffer.from(DONE);
    bad.writeUInt32LE(8, 0);
    expect(() => parseMessages(bad)).toThrow(/malformed/);
  });

  it('returns nothing for an empty read', () => {
    expect(parseMessages(Buffer.alloc(0))).toEqual([]);
  });
});

describe('errorCode', () => {
  it('is 0 for an ACK and the positive errno for a refusal', () => {
    // `=== 0`, as rtnl.ts tests it: errorCode of an ACK is -0 (it negates the kernel's int 0).
    expect(errorCode(parseMessages(ACK)[0]!.payload) === 0).toBe(true);
    expect(errorCode(parseMessages(EEXIST_REPLY)[0]!.payload)).toBe(17);
  });
});

describe('parseAttrs', () => {
  it('masks NLA_F_NESTED and NLA_F_NET_BYTEORDER off the type', () => {
    const buf = hex('08001280 01000000' + '08000140 0a000001' + '05000300 61000000');
    const a = parseAttrs(buf);
    expect([...a.keys()]).toEqual([0x12, 1, 3]);
    expect(a.get(1)?.toString('hex')).toBe('0a000001');
    expect(a.get(3)?.toString('hex')).toBe('61');
  });

  it('masks the flag on a real kernel reply (IFLA_DEVLINK_PORT 62 and IFLA_DPLL_PIN 65 come with NLA_F_NESTED)', () => {
    const payload = parseMessages(LINK_LO)[0]!.payload;
    expect(payload.includes(hex('04003e80'))).toBe(true);
    const a = parseAttrs(payload, 16);
    expect(a.has(62)).toBe(true);
    expect(a.has(65)).toBe(true);
    expect([...a.keys()].every((t) => t < 0x4000)).toBe(true);
    expect(attrText(a.get(3))).toBe('lo');
  });

  it('stops at an attribute whose length runs past the buffer', () => {
    const a = parseAttrs(hex('08000400 78050000' + '10000300 6162'));
    expect([...a.keys()]).toEqual([4]);
  });

  it('lets the last of two same-type attributes win', () => {
    expect(parseAttrs(hex('05000100 01000000 05000100 02000000')).get(1)?.[0]).toBe(2);
  });
});

describe('MAC addresses', () => {
  it('parses and formats a round trip', () => {
    expect(parseMac('02:00:00:00:00:0a').toString('hex')).toBe('02000000000a');
    expect(parseMac('AA:bb:CC:dd:EE:ff').toString('hex')).toBe('aabbccddeeff');
    expect(formatMac(parseMac('7E:BB:F5:5C:0E:4E'))).toBe('7e:bb:f5:5c:0e:4e');
    expect(formatMac(Uint8Array.of(0, 1, 2, 3, 4, 255))).toBe('00:01:02:03:04:ff');
  });

  it.each(['', '02:00:00:00:00', '02:00:00:00:00:00:00', '02-00-00-00-00-01', '2:0:0:0:0:1', '02:00:00:00:00:0g', ' 02:00:00:00:00:01', '0200.0000.0001'])(
    'rejects %j',
    (bad) => {
      expect(() => parseMac(bad)).toThrow(/invalid MAC address/);
    },
  );
});
