import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { ownedRules, withoutXtables } from '../../../cli/commands/inspect.ts';
import { parseValidAttachment } from '../../../cli/commands/cni.ts';
import { containerIdForNetns, contextFromEnv, parseCapArgs, parseCniArgsPairs } from '../../../cli/context.ts';
import { exampleConflist } from '../../../cli/example-conf.ts';
import { parsePortSpec } from '../../../cli/pods.ts';
import { renderDot, renderSvg, renderText, type InspectReport } from '../../../cli/topology.ts';
import { loadNetworkConf } from '../../../lib/libcni/conf.ts';

describe('cnitool environment', () => {
  it('derives the container ID as cnitool does (first 20 hex of sha512 of the absolute path)', () => {
    // printf %s /run/netns/tcx | sha512sum | cut -c1-20
    expect(containerIdForNetns('/run/netns/tcx')).toBe('cnitool-9b3d00ab64c5494dbb3f');
    expect(containerIdForNetns('/run/netns/../netns/tcx')).toBe('cnitool-9b3d00ab64c5494dbb3f');
  });

  it('parses CNI_ARGS pairs and rejects a pair without a value', () => {
    expect(parseCniArgsPairs('IgnoreUnknown=1;IP=10.0.0.5')).toEqual([
      ['IgnoreUnknown', '1'],
      ['IP', '10.0.0.5'],
    ]);
    expect(() => parseCniArgsPairs('IP=')).toThrow('invalid CNI_ARGS pair "IP="');
    expect(() => parseCniArgsPairs('a=b=c')).toThrow('invalid CNI_ARGS pair');
  });

  it('parses CAP_ARGS as a JSON object', () => {
    expect(parseCapArgs('{"portMappings":[{"hostPort":1}]}')).toEqual({ portMappings: [{ hostPort: 1 }] });
    expect(() => parseCapArgs('[1]')).toThrow('must be a JSON object');
    expect(() => parseCapArgs('{')).toThrow('CAP_ARGS is not valid JSON');
  });

  it('defaults NETCONFPATH, the cache dir and CNI_PATH', () => {
    const ctx = contextFromEnv({}, '/nonexistent/bin/tscni');
    expect(ctx.netDir).toBe('/etc/cni/net.d');
    expect(ctx.cacheDir).toBe('/var/lib/cni');
    expect(ctx.ifName).toBeUndefined();
    const custom = contextFromEnv({ NETCONFPATH: '/n', CNI_PATH: '/p', CNI_IFNAME: 'net1', CAP_ARGS: '{"ips":["10.0.0.1"]}' }, '/x');
    expect([custom.netDir, custom.cniPath, custom.ifName, custom.capabilityArgs]).toEqual(['/n', '/p', 'net1', { ips: ['10.0.0.1'] }]);
  });

  it('parses --valid containerID/ifname', () => {
    expect(parseValidAttachment('cnitool-abc/eth0')).toEqual({ containerID: 'cnitool-abc', ifname: 'eth0' });
    expect(() => parseValidAttachment('noslash')).toThrow('expected containerID/ifname');
  });
});

describe('-p port specs (Docker syntax)', () => {
  it.each([
    ['8080:80', { hostPort: 8080, containerPort: 80, protocol: 'tcp' }],
    ['53:53/udp', { hostPort: 53, containerPort: 53, protocol: 'udp' }],
    ['127.0.0.1:8080:80', { hostPort: 8080, containerPort: 80, protocol: 'tcp', hostIP: '127.0.0.1' }],
    ['[::1]:8443:443/sctp', { hostPort: 8443, containerPort: 443, protocol: 'sctp', hostIP: '::1' }],
  ])('%s', (spec, expected) => expect(parsePortSpec(spec)).toEqual(expected));

  it.each(['80', '0:80', '8080:70000', '8080:80/icmp', 'host:80:80'])('rejects %s', (spec) => {
    expect(() => parsePortSpec(spec)).toThrow(/invalid port mapping/);
  });
});

const report: InspectReport = {
  name: 'web',
  netns: '/run/netns/web',
  sharedBy: ['sidecar'],
  interfaces: [
    { name: 'lo', state: 'UNKNOWN', addresses: ['127.0.0.1/8'] },
    { name: 'eth0', state: 'UP', addresses: ['10.250.0.2/24'], hostPeer: 'veth0a1b2c3d' },
  ],
  routes: ['default via 10.250.0.1 dev eth0'],
  hostPorts: [{ name: 'veth0a1b2c3d', bridge: 'cni0', bridgeAddresses: ['10.250.0.1/24'] }],
  attachments: [
    {
      network: 'demo',
      ifName: 'eth0',
      containerId: 'cnitool-x',
      portMappings: [{ hostPort: 8080, containerPort: 80, protocol: 'tcp' }],
      rules: ['-A POSTROUTING -s 10.250.0.2/32 -j CNI-abc'],
    },
  ],
};

describe('inspect renderings', () => {
  it('text names every piece of the wiring', () => {
    expect(renderText(report)).toBe(
      [
        'pod web',
        '  netns       /run/netns/web',
        '  shared by   sidecar',
        '  interfaces',
        '    lo         UNKNOWN 127.0.0.1/8',
        '    eth0       UP      10.250.0.2/24  <-> host veth0a1b2c3d',
        '  routes',
        '    default via 10.250.0.1 dev eth0',
        '  host side',
        '    veth0a1b2c3d on bridge cni0 10.250.0.1/24',
        '  network demo (eth0, container id cnitool-x)',
        '    port 8080 -> 80/tcp',
        '    firewall',
        '      -A POSTROUTING -s 10.250.0.2/32 -j CNI-abc',
        '',
      ].join('\n'),
    );
  });

  it('dot links pod interface, veth, bridge and the published port', () => {
    const dot = renderDot(report);
    expect(dot).toContain('"pod:eth0" -- "host:veth0a1b2c3d" [label="veth"];');
    expect(dot).toContain('"host:veth0a1b2c3d" -- "bridge:cni0";');
    expect(dot).toContain('"port:8080 -> 80/tcp" -- "pod:eth0" [style=dashed, label="DNAT"];');
    expect(dot.startsWith('graph tscni {')).toBe(true);
  });

  it('svg is one well-formed document with escaped text', () => {
    const svg = renderSvg({ ...report, name: 'a<b' });
    expect(svg.startsWith('<svg xmlns="http://www.w3.org/2000/svg"')).toBe(true);
    expect(svg.trim().endsWith('</svg>')).toBe(true);
    expect(svg).toContain('tscni inspect a&lt;b');
    expect(svg).not.toContain('a<b');
    expect(svg).toContain('>cni0 (bridge)</text>');
    expect(svg).toContain('>host 8080 -&gt; 80/tcp</text>');
  });
});

describe('owned firewall rules', () => {
  const save = [
    '*nat',
    ':CNI-0123456789abcdef01234567 - [0:0]',
    '-A POSTROUTING -s 10.0.0.2/32 -m comment --comment "name: \\"n\\" id: \\"c1\\"" -j CNI-0123456789abcdef01234567',
    '-A POSTROUTING -s 10.0.0.20/32 -m comment --comment "name: \\"n\\" id: \\"c2\\"" -j CNI-fedcba9876543210fedcba98',
    '-A CNI-0123456789abcdef01234567 ! -d 224.0.0.0/4 -j MASQUERADE',
    '-A CNI-fedcba9876543210fedcba98 ! -d 224.0.0.0/4 -j MASQUERADE',
    'COMMIT',
  ].join('\n');

  it('takes lines naming the container or its IP, and the rules of chains they jump to', () => {
    expect(ownedRules(save, ['c1', '10.0.0.2'])).toEqual([save.split('\n')[2], save.split('\n')[4]]);
  });

  it('with the owner, a container-ID match counts only on the attachment\'s own network (one container, two networks)', () => {
    const two = [
      '-A POSTROUTING -m comment --comment "name: \\"web\\" id: \\"c1\\"" -j CNI-0123456789abcdef01234567',
      '-A POSTROUTING -m comment --comment "name: \\"db\\" id: \\"c1\\"" -j CNI-fedcba9876543210fedcba98',
    ].join('\n');
    expect(ownedRules(two, [], { containerId: 'c1', network: 'web' })).toEqual([two.split('\n')[0]]);
    expect(ownedRules(two, [], { containerId: 'c1', network: 'db' })).toEqual([two.split('\n')[1]]);
  });

  it('does not match an IP that merely starts the same', () => {
    expect(ownedRules('-A X -d 10.0.0.20/32 -j ACCEPT', ['10.0.0.2'])).toEqual([]);
  });

  it('drops the tables iptables-nft keeps in nftables', () => {
    const ruleset = ['table ip nat {', '\tchain POSTROUTING {', '\t}', '}', 'table inet mine {', '\tchain c {', '\t}', '}'].join('\n');
    expect(withoutXtables(ruleset)).toBe(['table inet mine {', '\tchain c {', '\t}', '}'].join('\n'));
  });
});

describe('conf-examples', () => {
  it('10-tscni.conflist is what tscni install writes, and loads as a list', () => {
    const dir = join(import.meta.dirname, '../../../conf-examples');
    expect(readFileSync(join(dir, '10-tscni.conflist'), 'utf8')).toBe(exampleConflist());
    const list = loadNetworkConf(dir, 'tscni');
    expect(list.plugins.map((p) => p.type)).toEqual(['bridge', 'portmap']);
    expect(list.plugins[1]?.capabilities).toEqual({ portMappings: true });
  });
});
