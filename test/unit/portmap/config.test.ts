import { describe, expect, it } from 'vitest';
import type { NetConf, Result } from '../../../lib/cni/types.ts';
import { containerAddrs, parseMappings, parsePortmapConfig } from '../../../plugins/portmap/config.ts';

const prev: Result = {
  cniVersion: '1.1.0',
  interfaces: [{ name: 'cni0' }, { name: 'veth1' }, { name: 'eth0', sandbox: '/run/netns/x' }, { name: 'eth1', sandbox: '/run/netns/x' }],
  ips: [
    { address: '10.1.0.5/24', interface: 3 },
    { address: '10.0.0.2/24', interface: 2 },
    { address: 'fd00:1::0002/64', interface: 2 },
    { address: '10.0.0.9/24', interface: 2 },
  ],
};

const conf = (extra: Record<string, unknown> = {}, mappings: unknown = [{ hostPort: 8080, containerPort: 80, protocol: 'tcp' }]): NetConf =>
  ({ cniVersion: '1.1.0', name: 'net', type: 'portmap', prevResult: prev, runtimeConfig: { portMappings: mappings }, ...extra }) as NetConf;

describe('portmap config', () => {
  it('has the reference defaults', () => {
    const c = parsePortmapConfig(conf(), 'eth0');
    expect(c).toMatchObject({ snat: true, masqAll: false, markMasqBit: 13, externalSetMarkChain: undefined, backend: undefined });
    expect(c.mappings).toEqual([{ hostPort: 8080, containerPort: 80, protocol: 'tcp' }]);
  });

  it('picks the first IPv4 and IPv6 of CNI_IFNAME in the sandbox', () => {
    expect(containerAddrs(prev, 'eth0')).toEqual({
      4: { ip: '10.0.0.2', cidr: '10.0.0.2/24', net: '10.0.0.0/24' },
      6: { ip: 'fd00:1::2', cidr: 'fd00:1::0002/64', net: 'fd00:1::/64' },
    });
    expect(containerAddrs(prev, 'eth1')[4]?.ip).toBe('10.1.0.5');
    expect(containerAddrs(prev, 'eth9')).toEqual({});
  });

  it('normalises protocols and host IPs', () => {
    const c = parsePortmapConfig(conf({}, [{ hostPort: 53, containerPort: 53, protocol: 'UDP', hostIP: 'FD00::0001' }, { hostPort: 1, containerPort: 2 }]), 'eth0');
    expect(c.mappings).toEqual([
      { hostPort: 53, containerPort: 53, protocol: 'udp', hostIP: 'fd00::1' },
      { hostPort: 1, containerPort: 2, protocol: 'tcp' },
    ]);
  });

  it.each([
    [[{ hostPort: 0, containerPort: 80 }], 'runtimeConfig.portMappings[0].hostPort: 0 is not a port number'],
    [[{ hostPort: 80, containerPort: 65536 }], 'containerPort: 65536 is not a port number'],
    [[{ hostPort: 80, containerPort: 80, protocol: 'icmp' }], 'protocol: "icmp" (use tcp, udp or sctp)'],
    [[{ hostPort: 80, containerPort: 80, hostIP: '300.1.1.1' }], 'hostIP: "300.1.1.1" is not an IP address'],
    [[{ hostPort: 80, containerPort: 80 }, { hostPort: 80, containerPort: 81 }], 'host port 80/tcp is mapped twice'],
    ['x', 'must be an array'],
  ])('rejects bad mappings %j with code 7', (mappings, msg) => {
    expect(() => parsePortmapConfig(conf({}, mappings), 'eth0')).toThrow(expect.objectContaining({ code: 7, message: expect.stringContaining(msg) }));
  });

  it.each([
    [{ markMasqBit: 5, externalSetMarkChain: 'X' }, 'Cannot specify externalSetMarkChain and markMasqBit'],
    [{ markMasqBit: 32 }, 'MasqMarkBit must be between 0 and 31'],
    [{ backend: 'ebtables' }, 'invalid "backend"'],
    [{ backend: 'nftables', externalSetMarkChain: 'MYCHAIN' }, 'nftables backend was requested but configuration contains iptables-specific options [externalSetMarkChain]'],
    [{ backend: 'iptables', conditionsV4: ['ip saddr 10.0.0.0/8'] }, 'iptables backend was requested but configuration contains nftables-specific options [conditionsV4]'],
    [{ conditionsV4: ['-s', '10.0.0.0/8'], conditionsV6: ['ip6 saddr ::1'] }, 'conflicting options'],
    [{ snat: 'yes' }, 'invalid "snat"'],
    [{ externalSetMarkChain: 'has space' }, 'is not an iptables chain name'],
  ])('rejects %j with a message naming it', (extra, msg) => {
    expect(() => parsePortmapConfig(conf(extra), 'eth0')).toThrow(expect.objectContaining({ code: 7, message: expect.stringContaining(msg) }));
  });

  it('lets conditions choose the backend when none is given', () => {
    expect(parsePortmapConfig(conf({ conditionsV4: ['-s', '1.2.3.4'] }), 'eth0').backend).toBe('iptables');
    expect(parsePortmapConfig(conf({ conditionsV6: ['ip6 saddr ::1'] }), 'eth0').backend).toBe('nftables');
  });
});

describe('mappings as runtimes send them', () => {
  it("accepts Go field names in any case (containerd's CRI sends HostPort, ContainerPort, Protocol, HostIP)", () => {
    expect(parseMappings([{ HostPort: 31555, ContainerPort: 8080, Protocol: 'tcp', HostIP: '' }])).toEqual([{ hostPort: 31555, containerPort: 8080, protocol: 'tcp' }]);
    expect(parseMappings([{ hostport: 80, CONTAINERPORT: 81, hostIp: '10.0.0.1' }])).toEqual([{ hostPort: 80, containerPort: 81, protocol: 'tcp', hostIP: '10.0.0.1' }]);
    // The exact spelling wins over a case-folded duplicate.
    expect(parseMappings([{ HostPort: 1, hostPort: 2, containerPort: 3 }])).toEqual([{ hostPort: 2, containerPort: 3, protocol: 'tcp' }]);
  });

  it('DEL never fails on mappings it cannot read: it falls back to the record and says why', () => {
    const conf = { cniVersion: '1.1.0', name: 'n', type: 'portmap', runtimeConfig: { portMappings: [{ hostPort: 'x' }] } } as unknown as NetConf;
    expect(() => parsePortmapConfig(conf, 'eth0')).toThrow(/hostPort/);
    const why: string[] = [];
    expect(parsePortmapConfig(conf, 'eth0', { forDel: true, onIgnored: (w) => why.push(w) }).mappings).toEqual([]);
    expect(why[0]).toMatch(/hostPort.*using portmap's own record instead/);
  });
});
