/**
 * The builders appended for the vxlan overlay against what iproute2 6.1.0 sends.
 *
 * Golden bytes: in a throwaway namespace (`ip netns add tscni-ogold`, a veth
 * tsog0 with 172.31.250.11/24; the VXLAN device tovx0 got index 4), each
 * command below was run as
 *   ip netns exec tscni-ogold strace -f -e trace=sendmsg,sendto -e write=all -s 4096 -xx <command>
 * and the request it sent (after its RTM_GETLINK name lookup) was copied from
 * strace's hex dump. FDB, neighbour and route requests must match byte for
 * byte (with the captured seq); the link request is compared as decoded
 * attributes, because iproute2 orders the top-level attributes differently.
 */
import { describe, expect, it } from 'vitest';
import { AF_BRIDGE, AF_INET, IFLA_IFNAME, IFLA_INFO_DATA, IFLA_INFO_KIND, IFLA_LINKINFO, NTF_SELF, NUD_NOARP, NUD_PERMANENT } from '../../../lib/netlink/codec.ts';
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
} from '../../../lib/netlink/messages.ts';
import { encodeLike, hex, structure, type Shape } from './nl-inspect.ts';

const IFINFO = 16;
const LINK: Shape = { strings: [IFLA_IFNAME], nested: { [IFLA_LINKINFO]: { strings: [IFLA_INFO_KIND], nested: { [IFLA_INFO_DATA]: {} } } } };

const G = {
  // ip link add name tovx0 mtu 1450 address 0a:58:0a:fc:c1:00 type vxlan id 42 local 172.31.250.11 dstport 4789 nolearning
  vxlan: hex(
    '7400000010000506b8070d6b00000000 00000000000000000000000000000000 08000400aa050000 0a0001000a580afcc1000000 0a000300746f767830000000 34001200 0900010076786c616e000000 24000200 080001002a000000 08000400ac1ffa0b 0500070000000000 06000f0012b50000',
  ),
  // bridge fdb append 0a:58:0a:fc:c2:00 dev tovx0 dst 172.31.250.12 self permanent
  fdbAppend: hex('300000001c00050cba070d6b00000000 0700000004000000c0000200 0a0002000a580afcc2000000 08000100ac1ffa0c'),
  // bridge fdb del 0a:58:0a:fc:c2:00 dev tovx0 dst 172.31.250.12 self
  fdbDel: hex('300000001d000500ba070d6b00000000 0700000004000000c0000200 0a0002000a580afcc2000000 08000100ac1ffa0c'),
  // ip neigh replace 10.252.194.0 lladdr 0a:58:0a:fc:c2:00 dev tovx0 nud permanent
  neighReplace: hex('300000001c000505ba070d6b00000000 020000000400000080000000 080001000afcc200 0a0002000a580afcc2000000'),
  // ip neigh del 10.252.194.0 dev tovx0
  neighDel: hex('240000001d000500ba070d6b00000000 020000000400000080000000 080001000afcc200'),
  // ip route replace 10.252.194.0/24 via 10.252.194.0 dev tovx0 onlink
  routeOnlink: hex('3400000018000505b9070d6b00000000 02180000fe03000104000000 080001000afcc200 080005000afcc200 0800040004000000'),
};

describe('vxlan link', () => {
  it('VNI u32, LOCAL, LEARNING u8 0, PORT big-endian u16: the attributes iproute2 sends', () => {
    const ours = encodeLike(newVxlanRequest({ name: 'tovx0', vni: 42, local: '172.31.250.11', port: 4789, mtu: 1450, mac: '0a:58:0a:fc:c1:00' }), G.vxlan);
    expect(structure(ours, IFINFO, LINK)).toEqual(structure(G.vxlan, IFINFO, LINK));
  });

  it('port defaults to 4789 and learning to off', () => {
    const ours = encodeLike(newVxlanRequest({ name: 'tovx0', vni: 42, local: '172.31.250.11', mtu: 1450, mac: '0a:58:0a:fc:c1:00' }), G.vxlan);
    expect(structure(ours, IFINFO, LINK)).toEqual(structure(G.vxlan, IFINFO, LINK));
  });

  it('decodeVxlan reads the settings back from a link payload', () => {
    expect(decodeVxlan(G.vxlan.subarray(16))).toEqual({ kind: 'vxlan', vni: 42, local: '172.31.250.11', port: 4789, learning: false });
    const learning = encodeLike(newVxlanRequest({ name: 'x', vni: 7, local: '10.0.0.1', port: 8472, learning: true }), G.vxlan);
    expect(decodeVxlan(learning.subarray(16))).toEqual({ kind: 'vxlan', vni: 7, local: '10.0.0.1', port: 8472, learning: true });
  });
});

describe('FDB, neighbour and onlink route entries (byte for byte)', () => {
  it.each([
    ['fdb append: AF_BRIDGE, NTF_SELF, permanent|noarp, LLADDR then DST', () => fdbAppendRequest({ index: 4, mac: '0a:58:0a:fc:c2:00', dst: '172.31.250.12' }), G.fdbAppend],
    ['fdb del', () => fdbDelRequest({ index: 4, mac: '0a:58:0a:fc:c2:00', dst: '172.31.250.12' }), G.fdbDel],
    ['neigh replace: NLM_F_REPLACE|CREATE, NUD_PERMANENT, DST then LLADDR', () => neighReplaceRequest({ index: 4, ip: '10.252.194.0', mac: '0a:58:0a:fc:c2:00' }), G.neighReplace],
    ['neigh del', () => neighDelRequest({ index: 4, ip: '10.252.194.0' }), G.neighDel],
    ['route replace via GW onlink: RTNH_F_ONLINK in rtm_flags', () => routeReplaceOnlinkRequest({ dst: '10.252.194.0/24', gw: '10.252.194.0', index: 4 }), G.routeOnlink],
  ])('%s', (_n, build, golden) => {
    expect(encodeLike(build(), golden).toString('hex')).toBe(golden.toString('hex'));
  });

  it('decodeNeigh reads an FDB and an ARP entry', () => {
    expect(decodeNeigh(G.fdbAppend.subarray(16))).toEqual({ family: AF_BRIDGE, index: 4, state: NUD_PERMANENT | NUD_NOARP, flags: NTF_SELF, dst: '172.31.250.12', mac: '0a:58:0a:fc:c2:00' });
    expect(decodeNeigh(G.neighReplace.subarray(16))).toEqual({ family: AF_INET, index: 4, state: NUD_PERMANENT, flags: 0, dst: '10.252.194.0', mac: '0a:58:0a:fc:c2:00' });
  });

  it('a neighbour dump names the family and the device', () => {
    const req = getNeighRequest(AF_BRIDGE, 4);
    expect(req.flags & 0x300).toBe(0x300);
    expect(req.header.toString('hex')).toBe('070000000400000000000000');
  });
});
