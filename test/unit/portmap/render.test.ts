import { describe, expect, it } from 'vitest';
import type { ContainerAddr, PortMapping } from '../../../plugins/portmap/config.ts';
import {
  dnatChainName,
  jumpsTo,
  markDef,
  renderPodSetup,
  renderPodTeardown,
  renderTopLevelSetup,
  taggedJumps,
  topLevelRules,
  type DnatOptions,
} from '../../../plugins/portmap/iptables.ts';
import { conditionalRules, elementTag, jsonToNft, podElements, renderPodAdd, renderPodDelete, taggedElements } from '../../../plugins/portmap/nftables.ts';
import { keysOverlap, portKey } from '../../../plugins/portmap/state.ts';

const pod4: ContainerAddr = { ip: '10.0.0.2', cidr: '10.0.0.2/24', net: '10.0.0.0/24' };
const pod6: ContainerAddr = { ip: 'fd00:1::2', cidr: 'fd00:1::2/64', net: 'fd00:1::/64' };
const maps: PortMapping[] = [
  { hostPort: 8080, containerPort: 80, protocol: 'tcp' },
  { hostPort: 53, containerPort: 5353, protocol: 'udp', hostIP: '192.168.1.1' },
  { hostPort: 8443, containerPort: 443, protocol: 'tcp', hostIP: '::1' },
];
const opts: DnatOptions = { network: 'net', containerId: 'c1', snat: true, masqAll: false, setMarkChain: 'CNI-HOSTPORT-SETMARK', conditions: undefined };

describe('iptables rendering (reference layout)', () => {
  it('names the pod chain like the reference (CNI-DN- + 21 hex of sha512(net+cid))', () => {
    // printf %s netc1 | sha512sum | cut -c1-21
    expect(dnatChainName('net', 'c1')).toBe('CNI-DN-623e1c388032b20529218');
  });

  it('formats the mark as Go %#x does', () => {
    expect(markDef(13)).toBe('0x2000/0x2000');
    expect(markDef(0)).toBe('0x1/0x1');
    expect(markDef(31)).toBe('0x80000000/0x80000000');
  });

  it('one pod, IPv4: chain, per-mapping rules and the multiport jumps in one batch', () => {
    const chain = dnatChainName('net', 'c1');
    expect(renderPodSetup(opts, 4, pod4, maps)).toBe(
      [
        '*nat',
        `:${chain} - [0:0]`,
        `-A ${chain} -p tcp --dport 8080 -s 10.0.0.2/24 -j CNI-HOSTPORT-SETMARK`,
        `-A ${chain} -p tcp --dport 8080 -s 127.0.0.1 -j CNI-HOSTPORT-SETMARK`,
        `-A ${chain} -p tcp --dport 8080 -j DNAT --to-destination 10.0.0.2:80`,
        `-A ${chain} -p udp --dport 53 -d 192.168.1.1 -s 10.0.0.2/24 -j CNI-HOSTPORT-SETMARK`,
        `-A ${chain} -p udp --dport 53 -d 192.168.1.1 -s 127.0.0.1 -j CNI-HOSTPORT-SETMARK`,
        `-A ${chain} -p udp --dport 53 -d 192.168.1.1 -j DNAT --to-destination 10.0.0.2:5353`,
        `-A CNI-HOSTPORT-DNAT -m comment --comment "dnat name: \\"net\\" id: \\"c1\\"" -m multiport -p tcp --destination-ports 8080 -j ${chain}`,
        `-A CNI-HOSTPORT-DNAT -m comment --comment "dnat name: \\"net\\" id: \\"c1\\"" -m multiport -p udp --destination-ports 53 -j ${chain}`,
        'COMMIT',
        '',
      ].join('\n'),
    );
  });

  it('IPv6: no localhost rule, bracketed target, masqAll, conditions, the other family skipped', () => {
    const chain = dnatChainName('net', 'c1');
    const text = renderPodSetup({ ...opts, masqAll: true, conditions: ['-d', '2001:db8::/32'] }, 6, pod6, maps);
    expect(text.split('\n')).toEqual([
      '*nat',
      `:${chain} - [0:0]`,
      `-A ${chain} -p tcp --dport 8080 -s ::/0 -j CNI-HOSTPORT-SETMARK`,
      `-A ${chain} -p tcp --dport 8080 -j DNAT --to-destination [fd00:1::2]:80`,
      `-A ${chain} -p tcp --dport 8443 -d ::1 -s ::/0 -j CNI-HOSTPORT-SETMARK`,
      `-A ${chain} -p tcp --dport 8443 -d ::1 -j DNAT --to-destination [fd00:1::2]:443`,
      `-A CNI-HOSTPORT-DNAT -m comment --comment "dnat name: \\"net\\" id: \\"c1\\"" -m multiport -p tcp --destination-ports 8080,8443 -d 2001:db8::/32 -j ${chain}`,
      'COMMIT',
      '',
    ]);
  });

  it('splits more than 15 ports of a protocol over several jumps', () => {
    const many = Array.from({ length: 16 }, (_, i) => ({ hostPort: 30000 + i, containerPort: 80, protocol: 'tcp' as const }));
    const jumps = renderPodSetup(opts, 4, pod4, many).split('\n').filter((l) => l.startsWith('-A CNI-HOSTPORT-DNAT'));
    expect(jumps).toHaveLength(2);
    expect(jumps[1]).toContain('--destination-ports 30015 ');
  });

  it('without snat there is no mark rule; an external mark chain replaces ours', () => {
    expect(renderPodSetup({ ...opts, snat: false }, 4, pod4, maps.slice(0, 1))).not.toContain('SETMARK');
    expect(renderPodSetup({ ...opts, setMarkChain: 'MY-MARK' }, 4, pod4, maps.slice(0, 1))).toContain('-j MY-MARK');
  });

  it('the shared chains, only what is missing', () => {
    const { chains, rules } = topLevelRules(true, 13, false);
    expect(renderTopLevelSetup(chains, rules)).toBe(
      [
        '*nat',
        ':CNI-HOSTPORT-DNAT - [0:0]',
        ':CNI-HOSTPORT-SETMARK - [0:0]',
        ':CNI-HOSTPORT-MASQ - [0:0]',
        '-A PREROUTING -m addrtype --dst-type LOCAL -j CNI-HOSTPORT-DNAT',
        '-A OUTPUT -m addrtype --dst-type LOCAL -j CNI-HOSTPORT-DNAT',
        '-A CNI-HOSTPORT-SETMARK -m comment --comment "CNI portfwd masquerade mark" -j MARK --set-xmark 0x2000/0x2000',
        '-A CNI-HOSTPORT-MASQ -m mark --mark 0x2000/0x2000 -j MASQUERADE',
        '-I POSTROUTING 1 -m comment --comment "CNI portfwd requiring masquerade" -j CNI-HOSTPORT-MASQ',
        'COMMIT',
        '',
      ].join('\n'),
    );
    expect(topLevelRules(true, 13, true).chains).toEqual(['CNI-HOSTPORT-DNAT']);
  });

  it('finds the jumps to a chain in `iptables -S CNI-HOSTPORT-DNAT` output, as the reference writes them', () => {
    const save = [
      '-N CNI-HOSTPORT-DNAT',
      '-A CNI-HOSTPORT-DNAT -p tcp -m comment --comment "dnat name: \\"net\\" id: \\"c1\\"" -m multiport --dports 8080,8081 -j CNI-DN-aaaaaaaaaaaaaaaaaaaaa',
      '-A CNI-HOSTPORT-DNAT -p tcp -m comment --comment "dnat name: \\"other\\" id: \\"c2\\"" -m multiport --dports 9090 -j CNI-DN-bbbbbbbbbbbbbbbbbbbbb',
    ].join('\n');
    expect(jumpsTo(save, 'CNI-DN-aaaaaaaaaaaaaaaaaaaaa')).toEqual([
      ['-p', 'tcp', '-m', 'comment', '--comment', 'dnat name: "net" id: "c1"', '-m', 'multiport', '--dports', '8080,8081', '-j', 'CNI-DN-aaaaaaaaaaaaaaaaaaaaa'],
    ]);
    expect(taggedJumps(save)).toEqual([
      { network: 'net', containerId: 'c1', chain: 'CNI-DN-aaaaaaaaaaaaaaaaaaaaa' },
      { network: 'other', containerId: 'c2', chain: 'CNI-DN-bbbbbbbbbbbbbbbbbbbbb' },
    ]);
    expect(renderPodTeardown('CNI-DN-x', jumpsTo(save, 'CNI-DN-x'))).toBe('*nat\n-F CNI-DN-x\n-X CNI-DN-x\nCOMMIT\n');
  });
});

describe('nftables rendering (maps and sets)', () => {
  const o = { snat: true, masqAll: false, conditions: undefined };

  it('a pod is a handful of map and set elements', () => {
    expect(podElements(o, 4, pod4, maps)).toEqual([
      { set: 'dnat4_any', key: 'tcp . 8080', value: '10.0.0.2 . 80' },
      { set: 'masq4', key: '10.0.0.2 . tcp . 80' },
      { set: 'dnat4_ip', key: '192.168.1.1 . udp . 53', value: '10.0.0.2 . 5353' },
      { set: 'masq4', key: '10.0.0.2 . udp . 5353' },
      { set: 'podnets4', key: '10.0.0.0/24' },
    ]);
    expect(podElements({ ...o, masqAll: true }, 6, pod6, maps)).toEqual([
      { set: 'dnat6_any', key: 'tcp . 8080', value: 'fd00:1::2 . 80' },
      { set: 'masqall6', key: 'fd00:1::2 . tcp . 80' },
      { set: 'dnat6_ip', key: '::1 . tcp . 8443', value: 'fd00:1::2 . 443' },
      { set: 'masqall6', key: 'fd00:1::2 . tcp . 443' },
    ]);
    expect(podElements({ ...o, snat: false }, 4, pod4, maps.slice(0, 1))).toEqual([{ set: 'dnat4_any', key: 'tcp . 8080', value: '10.0.0.2 . 80' }]);
  });

  it('DEL adds then deletes each element, so it is idempotent in one transaction', () => {
    const text = renderPodDelete([{ set: 'dnat4_any', key: 'tcp . 8080', value: '10.0.0.2 . 80' }], 'net/c1/eth0', [7]);
    expect(text).toContain('add element inet tscni_portmap dnat4_any { tcp . 8080 comment "net/c1/eth0" : 10.0.0.2 . 80 }\ndelete element inet tscni_portmap dnat4_any { tcp . 8080 }');
    expect(text).toContain('delete rule inet tscni_portmap conditional handle 7');
    expect(text).toContain('add table inet tscni_portmap');
  });

  it('conditions turn the mappings into tagged rules', () => {
    expect(conditionalRules({ ...o, conditions: ['ip saddr 10.9.0.0/16'] }, 4, pod4, maps.slice(0, 2), 't')).toEqual([
      'add rule inet tscni_portmap conditional meta nfproto ipv4 ip saddr 10.9.0.0/16 meta l4proto tcp th dport 8080 dnat ip to 10.0.0.2:80 comment "t"',
      'add rule inet tscni_portmap conditional meta nfproto ipv4 ip saddr 10.9.0.0/16 ip daddr 192.168.1.1 meta l4proto udp th dport 53 dnat ip to 10.0.0.2:5353 comment "t"',
    ]);
    expect(podElements({ ...o, conditions: ['x'] }, 4, pod4, maps.slice(0, 1))).toEqual([
      { set: 'masq4', key: '10.0.0.2 . tcp . 80' },
      { set: 'podnets4', key: '10.0.0.0/24' },
    ]);
  });

  it('reads tagged elements back from nft -j output', () => {
    const json = JSON.stringify({
      nftables: [
        { metainfo: {} },
        {
          map: {
            name: 'dnat4_any',
            elem: [
              [{ elem: { val: { concat: ['tcp', 8080] }, comment: 'net/c1/eth0' } }, { concat: ['10.0.0.2', 80] }],
              [{ elem: { val: { concat: ['tcp', 9090] }, comment: 'net/c2/eth0' } }, { concat: ['10.0.0.3', 80] }],
            ],
          },
        },
      ],
    });
    expect(taggedElements(json, 'dnat4_any', 'net/c1/eth0')).toEqual([{ set: 'dnat4_any', key: 'tcp . 8080', value: '10.0.0.2 . 80' }]);
    expect(jsonToNft({ prefix: { addr: '10.0.0.0', len: 24 } })).toBe('10.0.0.0/24');
    expect(elementTag('n', 'c', 'eth0')).toBe('n/c/eth0');
  });

  it('writes and matches the same tag for an interface name nft cannot quote as is', () => {
    const tag = elementTag('net', 'c1', 'e"\\#;0');
    expect(tag).toBe('net/c1/e__#;0');
    const script = renderPodAdd([{ set: 'dnat4_any', key: 'tcp . 8080', value: '10.0.0.2 . 80' }], [], tag, false);
    expect(script).toContain('comment "net/c1/e__#;0"');
    for (const line of script.split('\n')) expect((line.match(/"/g) ?? []).length % 2).toBe(0);
    // What nft lists back is what DEL looks for.
    const json = JSON.stringify({ nftables: [{ map: { name: 'dnat4_any', elem: [[{ elem: { val: { concat: ['tcp', 8080] }, comment: 'net/c1/e__#;0' } }, { concat: ['10.0.0.2', 80] }]] } }] });
    expect(taggedElements(json, 'dnat4_any', tag)).toEqual([{ set: 'dnat4_any', key: 'tcp . 8080', value: '10.0.0.2 . 80' }]);
  });
});

describe('host port ownership', () => {
  it('keys a mapping by host IP or by the families it reaches', () => {
    const m = { hostPort: 1, containerPort: 1, protocol: 'tcp' as const };
    expect(portKey(m, [4, 6])).toBe('any');
    expect(portKey(m, [4])).toBe('any4');
    expect(portKey({ ...m, hostIP: '0.0.0.0' }, [4])).toBe('any4');
    expect(portKey({ ...m, hostIP: '::' }, [6])).toBe('any6');
    expect(portKey({ ...m, hostIP: '10.1.1.1' }, [4])).toBe('10.1.1.1');
  });

  it.each([
    ['any', '10.1.1.1', true],
    ['any4', 'fd00::1', false],
    ['any6', 'any', true],
    ['10.1.1.1', '10.1.1.1', true],
    ['10.1.1.1', '10.1.1.2', false],
    ['any4', 'any6', false],
  ])('%s vs %s overlap: %s', (a, b, expected) => expect(keysOverlap(a, b)).toBe(expected));
});
