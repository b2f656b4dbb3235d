/**
 * decodeLink / decodeAddr / decodeRoute on real kernel replies (Linux 6.18),
 * captured with strace -e read=all inside a throwaway namespace: see
 * kernel-replies.ts for the commands. The expected values are what iproute2
 * printed for the same replies (`ip -d link show`, `ip addr show`,
 * `ip route show table all`).
 */
import { describe, expect, it } from 'vitest';
import { IFA_F_NODAD, IFA_F_PERMANENT, IFA_F_TENTATIVE, RTM_NEWADDR, RTM_NEWLINK, RTM_NEWROUTE, RT_SCOPE_HOST, RT_SCOPE_LINK, parseMessages } from '../../../lib/netlink/codec.ts';
import { decodeAddr, decodeLink, decodeRoute } from '../../../lib/netlink/messages.ts';
import { ADDR_DUMP, LINK_BRIDGE, LINK_LO, LINK_VETH, ROUTE_DUMP } from './kernel-replies.ts';

/** The payloads of a datagram's messages, all of one type. */
function payloads(datagram: Buffer, type: number): Buffer[] {
  const ms = parseMessages(datagram);
  expect(ms.every((m) => m.type === type)).toBe(true);
  return ms.map((m) => m.payload);
}

const IFF_BROADCAST = 0x2;
const IFF_LOOPBACK = 0x8;
const IFF_RUNNING = 0x40;
const IFF_MULTICAST = 0x1000;
const IFF_LOWER_UP = 0x10000;
const RTN_LOCAL = 2;
const RTN_BROADCAST = 3;
const RTN_MULTICAST = 5;

describe('decodeLink', () => {
  it('lo: <LOOPBACK,UP,LOWER_UP> mtu 65536, state UNKNOWN, no kind', () => {
    const [p] = payloads(LINK_LO, RTM_NEWLINK);
    expect(decodeLink(p!)).toEqual({
      index: 1,
      name: 'lo',
      flags: IFF_LOOPBACK | 0x1 | IFF_RUNNING | IFF_LOWER_UP,
      up: true,
      promisc: false,
      operUp: false,
      mtu: 65536,
      mac: '00:00:00:00:00:00',
    });
  });

  it('tgveth0@tgpeer0: veth enslaved to the bridge (master 3, link 4, slave kind bridge)', () => {
    const [p] = payloads(LINK_VETH, RTM_NEWLINK);
    expect(decodeLink(p!)).toEqual({
      index: 5,
      name: 'tgveth0',
      flags: IFF_BROADCAST | IFF_MULTICAST | 0x1 | IFF_RUNNING | IFF_LOWER_UP,
      up: true,
      // "promiscuity 1" comes from the bridge, not from IFF_PROMISC set by the user.
      promisc: false,
      operUp: true,
      mtu: 1400,
      mac: '46:0d:16:d4:b4:35',
      master: 3,
      link: 4,
      kind: 'veth',
      slaveKind: 'bridge',
    });
  });

  it('tgold0: bridge, up, no master, no IFLA_LINK', () => {
    const [p] = payloads(LINK_BRIDGE, RTM_NEWLINK);
    const l = decodeLink(p!);
    expect(l).toEqual({
      index: 3,
      name: 'tgold0',
      flags: IFF_BROADCAST | IFF_MULTICAST | 0x1 | IFF_RUNNING | IFF_LOWER_UP,
      up: true,
      promisc: false,
      operUp: true,
      mtu: 1400,
      mac: '02:00:00:00:00:01',
      kind: 'bridge',
    });
    expect('master' in l || 'link' in l || 'slaveKind' in l).toBe(false);
  });
});

describe('decodeAddr (`ip addr show` dump)', () => {
  const addrs = payloads(ADDR_DUMP, RTM_NEWADDR).map(decodeAddr);

  it('decodes every address of the dump, IPv4 then IPv6', () => {
    expect(addrs.map((a) => `${a.index} ${a.local}/${a.prefixLen}`)).toEqual([
      '1 127.0.0.1/8',
      '3 10.249.7.1/24',
      '3 10.249.6.1/32',
      '1 ::1/128',
      '3 fd49:7::1/64',
      '3 fe80::ff:fe00:1/64',
      '4 fe80::ff:fe00:4/64',
      '5 fe80::440d:16ff:fed4:b435/64',
    ]);
  });

  it('family, scope and flags (the 32-bit IFA_FLAGS)', () => {
    expect(addrs[0]).toEqual({ family: 4, index: 1, local: '127.0.0.1', prefixLen: 8, scope: RT_SCOPE_HOST, flags: IFA_F_PERMANENT });
    expect(addrs[1]).toEqual({ family: 4, index: 3, local: '10.249.7.1', prefixLen: 24, scope: 0, flags: IFA_F_PERMANENT });
    expect(addrs[4]).toEqual({ family: 6, index: 3, local: 'fd49:7::1', prefixLen: 64, scope: 0, flags: IFA_F_PERMANENT | IFA_F_NODAD });
    expect(addrs[5]).toEqual({ family: 6, index: 3, local: 'fe80::ff:fe00:1', prefixLen: 64, scope: RT_SCOPE_LINK, flags: IFA_F_PERMANENT | IFA_F_TENTATIVE });
  });
});

describe('decodeRoute (`ip route show table all` dump)', () => {
  const routes = payloads(ROUTE_DUMP, RTM_NEWROUTE).map(decodeRoute);
  const find = (dst: string, oif?: number) => routes.filter((r) => r.dst === dst && (oif === undefined || r.oif === oif));

  it('decodes all 23 routes, IPv4 then IPv6', () => {
    expect(routes).toHaveLength(23);
    expect(routes.filter((r) => r.family === 4)).toHaveLength(13);
    expect(routes.slice(13).every((r) => r.family === 6)).toBe(true);
  });

  it('IPv4 main-table routes', () => {
    expect(find('0.0.0.0/0')).toEqual([{ family: 4, dst: '0.0.0.0/0', gateway: '10.249.7.5', oif: 3, table: 254, scope: 0, type: 1 }]);
    expect(find('10.249.8.0/24')).toEqual([{ family: 4, dst: '10.249.8.0/24', gateway: '10.249.7.5', oif: 3, table: 254, scope: 0, type: 1 }]);
    expect(find('10.249.9.0/24')).toEqual([{ family: 4, dst: '10.249.9.0/24', gateway: '10.249.7.5', oif: 3, table: 254, scope: 0, type: 1, priority: 100 }]);
    expect(find('10.249.12.0/24')).toEqual([{ family: 4, dst: '10.249.12.0/24', oif: 3, table: 254, scope: RT_SCOPE_LINK, type: 1 }]);
    expect(find('10.249.7.0/24')).toEqual([{ family: 4, dst: '10.249.7.0/24', oif: 3, table: 254, scope: RT_SCOPE_LINK, type: 1 }]);
  });

  it('table 1000 comes from RTA_TABLE (rtm_table says RT_TABLE_COMPAT 252)', () => {
    expect(payloads(ROUTE_DUMP, RTM_NEWROUTE)[0]?.[4]).toBe(252);
    expect(find('10.249.10.0/24')).toEqual([{ family: 4, dst: '10.249.10.0/24', gateway: '10.249.7.5', oif: 3, table: 1000, scope: 0, type: 1 }]);
  });

  it('local table entries', () => {
    expect(find('10.249.7.1/32')).toEqual([{ family: 4, dst: '10.249.7.1/32', oif: 3, table: 255, scope: RT_SCOPE_HOST, type: RTN_LOCAL }]);
    expect(find('10.249.7.255/32')).toEqual([{ family: 4, dst: '10.249.7.255/32', oif: 3, table: 255, scope: RT_SCOPE_LINK, type: RTN_BROADCAST }]);
    expect(find('ff00::/8').map((r) => [r.oif, r.table, r.type])).toEqual([
      [4, 255, RTN_MULTICAST],
      [5, 255, RTN_MULTICAST],
      [3, 255, RTN_MULTICAST],
    ]);
  });

  it('IPv6 routes: default via a gateway with metric 1024, connected /64 with 256', () => {
    expect(find('::/0')).toEqual([{ family: 6, dst: '::/0', gateway: 'fd49:7::5', oif: 3, table: 254, scope: 0, type: 1, priority: 1024 }]);
    expect(find('fd49:7::/64')).toEqual([{ family: 6, dst: 'fd49:7::/64', oif: 3, table: 254, scope: 0, type: 1, priority: 256 }]);
    expect(find('fe80::/64').map((r) => r.oif)).toEqual([4, 5, 3]);
    expect(find('::1/128')).toEqual([{ family: 6, dst: '::1/128', oif: 1, table: 255, scope: 0, type: RTN_LOCAL, priority: 0 }]);
  });
});
