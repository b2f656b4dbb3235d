/** `tscni network`: subnet choice, overlap detection, the conflist, ls/inspect renderers (pure). */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import {
  cidrsOverlap,
  defaultGateway,
  findOverlap,
  isolationPeers,
  pickBridgeName,
  pickSubnet,
  renderConflist,
  renderNetworkSvg,
  renderNetworkTable,
  renderNetworkText,
  subnetsOfConflist,
  summarise,
  type NetworkSpec,
} from '../../../cli/commands/network.ts';
import { parseCidr } from '../../../lib/ip/cidr.ts';

const cidr = (s: string) => {
  const c = parseCidr(s);
  if (!c) throw new Error(s);
  return c;
};

const spec = (extra: Partial<NetworkSpec> = {}): NetworkSpec => ({
  name: 'web',
  driver: 'bridge',
  subnets: [{ subnet: '10.89.0.0/24', gateway: '10.89.0.1' }],
  bridge: 'tscni0',
  internal: false,
  isolate: false,
  dns: true,
  domainName: 'dns.podman',
  ...extra,
});

const ALL = ['bridge', 'host-local', 'portmap', 'firewall', 'tuning', 'dnsname'];

describe('subnet choice', () => {
  it('overlap is per family and symmetric', () => {
    expect(cidrsOverlap(cidr('10.89.0.0/16'), cidr('10.89.3.0/24'))).toBe(true);
    expect(cidrsOverlap(cidr('10.89.3.0/24'), cidr('10.89.0.0/16'))).toBe(true);
    expect(cidrsOverlap(cidr('10.89.3.0/24'), cidr('10.89.4.0/24'))).toBe(false);
    expect(cidrsOverlap(cidr('10.89.3.0/24'), cidr('fd10::/64'))).toBe(false);
  });

  it('picks the first /24 of the pool that no conflist and no host route uses', () => {
    expect(pickSubnet('10.89.0.0/16', 24, [])).toBe('10.89.0.0/24');
    const used = [
      { subnet: '10.89.0.0/24', by: 'network a' },
      { subnet: '10.89.1.128/25', by: 'a host route (10.89.1.128/25 dev eth9)' },
      { subnet: '10.88.0.0/16', by: 'network podman' },
    ];
    expect(pickSubnet('10.89.0.0/16', 24, used)).toBe('10.89.2.0/24');
    expect(pickSubnet('fd10:89::/48', 64, [{ subnet: 'fd10:89::/64', by: 'x' }])).toBe('fd10:89:0:1::/64');
  });

  it('a pool fully covered by a route is refused with a way out', () => {
    expect(() => pickSubnet('10.89.0.0/16', 24, [{ subnet: '10.0.0.0/8', by: 'a host route' }])).toThrow(/no free \/24 left in the pool 10.89.0.0\/16/);
  });

  it('an explicit subnet overlapping another network names it', () => {
    const used = [{ subnet: '10.89.0.0/16', by: 'network other (/etc/cni/net.d/other.conflist)' }];
    expect(findOverlap('10.89.7.0/24', used)?.by).toBe('network other (/etc/cni/net.d/other.conflist)');
    expect(findOverlap('10.90.7.0/24', used)).toBeUndefined();
    expect(() => findOverlap('10.89.7/24', used)).toThrow(/invalid subnet/);
  });

  it('bridge names tscni0, tscni1, ... skip names taken', () => {
    expect(pickBridgeName(new Set())).toBe('tscni0');
    expect(pickBridgeName(new Set(['tscni0', 'tscni1', 'tscni3']))).toBe('tscni2');
    expect(pickBridgeName(new Set(['tn0']), 'tn')).toBe('tn1');
  });

  it('the gateway is the first host address', () => {
    expect(defaultGateway('10.89.4.0/24')).toBe('10.89.4.1');
    expect(defaultGateway('fd10:89:0:1::/64')).toBe('fd10:89:0:1::1');
  });
});

describe('renderConflist', () => {
  it('podman layout with every plugin available (golden)', () => {
    expect(renderConflist(spec(), ALL)).toEqual({
      cniVersion: '1.0.0',
      cniVersions: ['1.0.0', '1.1.0'],
      name: 'web',
      plugins: [
        {
          type: 'bridge',
          capabilities: { ips: true },
          bridge: 'tscni0',
          isGateway: true,
          ipMasq: true,
          hairpinMode: true,
          ipam: { type: 'host-local', ranges: [[{ subnet: '10.89.0.0/24', gateway: '10.89.0.1' }]], routes: [{ dst: '0.0.0.0/0' }] },
        },
        { type: 'portmap', capabilities: { portMappings: true } },
        { type: 'firewall', backend: '' },
        { type: 'tuning' },
        { type: 'dnsname', domainName: 'dns.podman', capabilities: { aliases: true } },
      ],
    });
  });

  it('firewall and tuning only when this executable has them; no dnsname with --no-dns', () => {
    const types = (doc: Record<string, unknown>) => (doc.plugins as { type: string }[]).map((p) => p.type);
    expect(types(renderConflist(spec(), ['bridge', 'portmap', 'dnsname']))).toEqual(['bridge', 'portmap', 'dnsname']);
    expect(types(renderConflist(spec({ dns: false }), ALL))).toEqual(['bridge', 'portmap', 'firewall', 'tuning']);
  });

  it('$TSCNI_IPAM_DIR becomes host-local\'s dataDir, where network rm looks too', () => {
    const doc = renderConflist(spec({ ipamDir: '/tmp/ipam' }), ALL);
    expect((doc.plugins as { ipam?: { dataDir?: string } }[])[0]?.ipam?.dataDir).toBe('/tmp/ipam');
    expect((renderConflist(spec(), ALL).plugins as { ipam?: { dataDir?: string } }[])[0]?.ipam?.dataDir).toBeUndefined();
  });

  it('--internal: no masquerade, no default route; --isolate: ingressPolicy same-bridge; dual stack, mtu, ip-range', () => {
    const doc = renderConflist(
      spec({
        internal: true,
        isolate: true,
        mtu: 1400,
        subnets: [
          { subnet: '10.89.0.0/24', gateway: '10.89.0.1', rangeStart: '10.89.0.128', rangeEnd: '10.89.0.254' },
          { subnet: 'fd10:89::/64', gateway: 'fd10:89::1' },
        ],
      }),
      ALL,
    );
    const [main, , fw] = doc.plugins as Record<string, unknown>[];
    expect(main).toEqual({
      type: 'bridge',
      capabilities: { ips: true },
      bridge: 'tscni0',
      isGateway: true,
      ipMasq: false,
      hairpinMode: true,
      mtu: 1400,
      ipam: {
        type: 'host-local',
        ranges: [[{ subnet: '10.89.0.0/24', gateway: '10.89.0.1', rangeStart: '10.89.0.128', rangeEnd: '10.89.0.254' }], [{ subnet: 'fd10:89::/64', gateway: 'fd10:89::1' }]],
        routes: [],
      },
    });
    expect(fw).toEqual({ type: 'firewall', backend: '', ingressPolicy: 'same-bridge' });
    const v6 = renderConflist(spec({ subnets: [{ subnet: '10.89.0.0/24', gateway: '10.89.0.1' }, { subnet: 'fd10:89::/64', gateway: 'fd10:89::1' }] }), ALL);
    expect(((v6.plugins as { ipam?: { routes: unknown } }[])[0]?.ipam?.routes)).toEqual([{ dst: '0.0.0.0/0' }, { dst: '::/0' }]);
  });

  it('ptp and macvlan drivers', () => {
    expect((renderConflist(spec({ driver: 'ptp', bridge: undefined }), ALL).plugins as Record<string, unknown>[])[0]).toMatchObject({ type: 'ptp', ipMasq: true });
    expect((renderConflist(spec({ driver: 'macvlan', bridge: undefined }), ALL).plugins as Record<string, unknown>[])[0]).toMatchObject({ type: 'macvlan', mode: 'bridge' });
  });

  it('summarise reads back what renderConflist wrote, and subnets of foreign conflists', () => {
    const doc = renderConflist(spec({ internal: true, isolate: true }), ALL);
    expect(summarise(doc, '/x/web.conflist')).toEqual({
      name: 'web',
      file: '/x/web.conflist',
      driver: 'bridge',
      subnets: ['10.89.0.0/24'],
      gateways: ['10.89.0.1'],
      bridge: 'tscni0',
      internal: true,
      dns: true,
      domainName: 'dns.podman',
      isolate: true,
    });
    expect(summarise(renderConflist(spec(), ALL), 'f').internal).toBe(false);
    expect(subnetsOfConflist({ name: 'old', type: 'bridge', ipam: { type: 'host-local', subnet: '10.1.0.0/16' } })).toEqual(['10.1.0.0/16']);
  });
});

const inspected = {
  ...summarise(renderConflist(spec(), ALL), '/etc/cni/net.d/web.conflist'),
  pods: [
    { name: 'web1', ifName: 'eth0', ips: ['10.89.0.2/24'], ports: ['8080->80/tcp'] },
    { name: 'db', ifName: 'eth0', ips: ['10.89.0.3/24'], ports: [] },
  ],
  records: [{ name: 'web1', aliases: ['www'], ips: ['10.89.0.2'] }],
  isolatedFrom: ['db-net'],
};

describe('summarise', () => {
  it("an isGateway bridge without an explicit gateway shows host-local's default, the subnet's first address", () => {
    const doc = { name: 'n', plugins: [{ type: 'bridge', isGateway: true, ipam: { type: 'host-local', ranges: [[{ subnet: '10.85.0.0/16' }], [{ subnet: 'fd85::/64', gateway: 'fd85::9' }]] } }] };
    expect(summarise(doc, '/x').gateways).toEqual(['10.85.0.1', 'fd85::9']);
    expect(summarise({ ...doc, plugins: [{ ...doc.plugins[0], isGateway: false }] }, '/x').gateways).toEqual(['fd85::9']);
  });
});

describe('ls and inspect renderers', () => {
  it('ls table (golden)', () => {
    expect(renderNetworkTable([inspected])).toBe(['NAME  DRIVER  SUBNETS       GATEWAY    PODS', 'web   bridge  10.89.0.0/24  10.89.0.1  2', ''].join('\n'));
  });

  it('inspect text (golden)', () => {
    expect(renderNetworkText(inspected)).toBe(
      [
        'network web (bridge tscni0) from /etc/cni/net.d/web.conflist',
        '  subnets:  10.89.0.0/24',
        '  gateway:  10.89.0.1',
        '  internal: no',
        '  isolate:  no (kept apart from db-net by their --isolate)',
        '  names:    10.89.0.1:53, domain dns.podman',
        '  pods:     ',
        '    web1 eth0 10.89.0.2/24 ports 8080->80/tcp',
        '    db eth0 10.89.0.3/24',
        '',
      ].join('\n'),
    );
  });

  it('inspect svg (golden file): bridge, resolver, each pod with addresses, aliases and ports', () => {
    const svg = renderNetworkSvg(inspected);
    expect(svg).toBe(readFileSync(join(import.meta.dirname, 'golden', 'network.svg'), 'utf8'));
    expect(svg).toContain('aka www');
    expect(svg).toContain('port 8080-&gt;80/tcp');
    expect(svg).toContain('isolated from: db-net');
  });

  it('isolation works both ways: an isolated network is apart from every other, an open one from the isolated ones', () => {
    const all = [
      { name: 'a', isolate: true },
      { name: 'b', isolate: false },
      { name: 'c', isolate: false },
    ];
    expect(isolationPeers(all[0]!, all)).toEqual(['b', 'c']);
    expect(isolationPeers(all[1]!, all)).toEqual(['a']);
  });
});
