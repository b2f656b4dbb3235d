/** bridge config validation and the pure ADD plan (gateways, batches). */
import { describe, expect, it } from 'vitest';
import { CniError } from '../../../lib/cni/errors.ts';
import type { NetConf } from '../../../lib/cni/types.ts';
import { addrOf, canonicalCidr, firstHostOf, networkOf, prefixContains } from '../../../lib/ip/prefix.ts';
import { collectVlanTrunk, parseBridgeConfig } from '../../../plugins/bridge/config.ts';
import { planBridgeAddrs, planGateways, podSysctls, renderHostBatch, renderPodAddrs, renderPodRoutes, renderPortVlans } from '../../../plugins/bridge/render.ts';

const base = (extra: Record<string, unknown> = {}): NetConf => ({ cniVersion: '1.0.0', name: 'tscni-tb-unit', type: 'bridge', ...extra }) as NetConf;

function errorOf(fn: () => unknown): CniError {
  try {
    fn();
  } catch (e) {
    if (e instanceof CniError) return e;
    throw e;
  }
  throw new Error('expected a CniError');
}

describe('parseBridgeConfig', () => {
  it('applies defaults', () => {
    const c = parseBridgeConfig(base(), '');
    expect(c).toMatchObject({ bridge: 'cni0', isGateway: false, ipMasq: false, mtu: 0, vlan: 0, vlanTrunk: undefined, mac: undefined, ipamType: undefined });
  });
  it('isDefaultGateway implies isGateway', () => {
    expect(parseBridgeConfig(base({ isDefaultGateway: true }), '').isGateway).toBe(true);
  });
  it.each([
    [{ hairpinMode: true, promiscMode: true }, 7, 'cannot set hairpin mode and promiscuous mode at the same time'],
    [{ vlan: 4095 }, 7, 'invalid VLAN ID 4095 (must be between 0 and 4094)'],
    [{ vlan: -1 }, 7, 'invalid VLAN ID -1 (must be between 0 and 4094)'],
    [{ vlanTrunk: [{ minID: 5 }] }, 7, 'minID and maxID should be configured simultaneously, maxID is missing'],
    [{ vlanTrunk: [{ maxID: 5 }] }, 7, 'minID and maxID should be configured simultaneously, minID is missing'],
    [{ vlanTrunk: [{ minID: 9, maxID: 5 }] }, 7, 'minID is greater than maxID in trunk parameter'],
    [{ vlanTrunk: [{ id: 0 }] }, 7, 'incorrect trunk id parameter'],
    [{ vlanTrunk: [{ minID: 1, maxID: 4095 }] }, 7, 'incorrect trunk maxID parameter'],
    [{ vlanTrunk: 'x' }, 7, 'invalid "vlanTrunk": must be a list of {id} or {minID, maxID}'],
    [{ disableContainerInterface: true, ipam: { type: 'host-local' } }, 7, 'cannot use IPAM when DisableContainerInterface flag is set'],
    [{ ipMasqBackend: 'firewalld' }, 2, 'unknown ipmasq backend "firewalld"'],
    [{ isGateway: 'yes' }, 7, 'invalid "isGateway": must be a boolean'],
    [{ mtu: 1.5 }, 7, 'invalid "mtu": must be an integer'],
    [{ bridge: 'a-very-long-bridge-name' }, 7, 'invalid "bridge": must be an interface name of 1-15 characters without "/", ":" or spaces'],
    [{ runtimeConfig: { mac: 'zz' } }, 7, 'invalid MAC address in runtimeConfig.mac'],
  ])('rejects %j with code %i', (extra, code, msg) => {
    const e = errorOf(() => parseBridgeConfig(base(extra), ''));
    expect(e.code).toBe(code);
    expect(e.msg).toBe(msg);
  });
  it('collects vlanTrunk ids sorted and unique', () => {
    expect(collectVlanTrunk([{ id: 7 }, { minID: 3, maxID: 5 }, { id: 4 }])).toEqual([3, 4, 5, 7]);
    expect(collectVlanTrunk([])).toBeUndefined();
  });
  it('takes the MAC from CNI_ARGS, then args.cni.mac, then runtimeConfig.mac', () => {
    expect(parseBridgeConfig(base(), 'IgnoreUnknown=1;MAC=02:00:00:00:00:01').mac).toBe('02:00:00:00:00:01');
    expect(parseBridgeConfig(base({ args: { cni: { mac: '02:00:00:00:00:02' } } }), 'MAC=02:00:00:00:00:01').mac).toBe('02:00:00:00:00:02');
    expect(parseBridgeConfig(base({ args: { cni: { mac: '02:00:00:00:00:02' } }, runtimeConfig: { mac: '02:00:00:00:00:03' } }), '').mac).toBe('02:00:00:00:00:03');
    expect(errorOf(() => parseBridgeConfig(base(), 'FOO=1')).code).toBe(4);
  });
});

describe('prefix maths', () => {
  it('computes networks, first hosts and containment for both families', () => {
    expect(networkOf('10.241.3.7/24')).toBe('10.241.3.0/24');
    expect(firstHostOf('10.241.3.7/24')).toBe('10.241.3.1');
    expect(networkOf('fd10:241:0:3::7/64')).toBe('fd10:241:0:3::/64');
    expect(firstHostOf('fd10:241:0:3::7/64')).toBe('fd10:241:0:3::1');
    expect(addrOf('fd10:0241:0000::0001/64')).toBe('fd10:241::1');
    expect(canonicalCidr('::ffff:10.0.0.1/128')).toBe('::ffff:a00:1/128');
    expect(prefixContains('10.241.0.0/16', '10.241.9.9')).toBe(true);
    expect(prefixContains('10.241.0.0/16', '10.242.0.1')).toBe(false);
    expect(networkOf('::/0')).toBe('::/0');
  });
});

describe('ADD plan', () => {
  const conf = parseBridgeConfig(base({ bridge: 'tbunit0', isDefaultGateway: true, ipam: { type: 'host-local' } }), '');
  it('fills gateways, interface index and a default route per family', () => {
    const plan = planGateways(
      { cniVersion: '1.1.0', ips: [{ address: '10.241.5.2/24' }, { address: 'fd10:241:0:5::2/64', gateway: 'fd10:241:0:5::fe' }] },
      conf,
    );
    expect(plan.ips).toEqual([
      { address: '10.241.5.2/24', gateway: '10.241.5.1', interface: 2 },
      { address: 'fd10:241:0:5::2/64', gateway: 'fd10:241:0:5::fe', interface: 2 },
    ]);
    expect(plan.routes).toEqual([
      { dst: '0.0.0.0/0', gw: '10.241.5.1' },
      { dst: '::/0', gw: 'fd10:241:0:5::fe' },
    ]);
    expect(plan.bridgeAddrs).toEqual({ 4: ['10.241.5.1/24'], 6: ['fd10:241:0:5::fe/64'] });
  });
  it('keeps an IPAM default route', () => {
    const plan = planGateways({ cniVersion: '1.1.0', ips: [{ address: '10.241.5.2/24' }], routes: [{ dst: '0.0.0.0/0', gw: '10.241.5.9' }] }, conf);
    expect(plan.routes).toEqual([{ dst: '0.0.0.0/0', gw: '10.241.5.9' }]);
  });
  it('plans bridge addresses as ensureAddr does', () => {
    const want = { 4: ['10.241.5.1/24'], 6: [] as string[] };
    expect(planBridgeAddrs('tbunit0', [], want, false, true)).toEqual(['addr replace 10.241.5.1/24 dev tbunit0']);
    expect(planBridgeAddrs('tbunit0', [{ family: 'inet', local: '10.241.5.1', prefixlen: 24 }], want, false, true)).toEqual([]);
    const e = errorOf(() => planBridgeAddrs('tbunit0', [{ family: 'inet', local: '10.241.6.1', prefixlen: 24 }], want, false, true));
    expect(e.msg).toBe('failed to set bridge addr: "tbunit0" already has an IP address different from 10.241.5.1/24');
    expect(planBridgeAddrs('tbunit0', [{ family: 'inet', local: '10.241.6.1', prefixlen: 24 }], want, true, true)).toEqual([
      'addr del 10.241.6.1/24 dev tbunit0',
      'addr replace 10.241.5.1/24 dev tbunit0',
    ]);
    // Non-overlapping IPv6 subnets may share the bridge.
    expect(
      planBridgeAddrs('tbunit0', [{ family: 'inet6', local: 'fd10:241:0:9::1', prefixlen: 64 }], { 4: [], 6: ['fd10:241:0:5::1/64'] }, false, true),
    ).toEqual(['addr replace fd10:241:0:5::1/64 dev tbunit0 nodad']);
  });
  it('renders the host batch', () => {
    const c = parseBridgeConfig(base({ bridge: 'tbunit0', mtu: 1400, hairpinMode: true, vlan: 5 }), 'MAC=02:00:00:00:00:09');
    expect(
      renderHostBatch(c, { bridgeExists: false, newBridgeMac: '02:aa:aa:aa:aa:aa', pinBridgeMac: undefined, hostVeth: 'veth01020304', netns: '/run/netns/x', ifName: 'eth0', addrLines: ['addr replace 10.241.5.1/24 dev tbunit0'] }),
    ).toEqual([
      'link add name tbunit0 mtu 1400 address 02:aa:aa:aa:aa:aa type bridge vlan_filtering 1',
      'link set dev tbunit0 up',
      'link add name veth01020304 mtu 1400 type veth peer name eth0 mtu 1400 address 02:00:00:00:00:09 netns /run/netns/x',
      'link set dev veth01020304 master tbunit0 up',
      'link set dev veth01020304 type bridge_slave hairpin on isolated off',
      'addr replace 10.241.5.1/24 dev tbunit0',
    ]);
  });
  it('renders port VLANs as the reference', () => {
    expect(renderPortVlans('v', 5, undefined, false, 1)).toEqual(['vlan del dev v vid 1', 'vlan add dev v vid 5 pvid untagged']);
    expect(renderPortVlans('v', 0, [3, 4], false, 1)).toEqual(['vlan del dev v vid 1', 'vlan add dev v vid 3', 'vlan add dev v vid 4', 'vlan add dev v vid 1 pvid untagged']);
    expect(renderPortVlans('v', 5, undefined, true, 1)).toEqual(['vlan add dev v vid 5 pvid untagged']);
    expect(renderPortVlans('v', 0, undefined, false, 1)).toEqual([]);
  });
  it('renders the pod side', () => {
    expect(podSysctls('eth0', false, false)).toEqual([
      ['net/ipv6/conf/eth0/accept_dad', '0'],
      ['net/ipv4/conf/eth0/arp_notify', '1'],
    ]);
    expect(renderPodAddrs('eth0', [{ address: '10.241.5.2/24' }, { address: 'fd10:241:0:5::2/64' }], true)).toEqual([
      'addr add 10.241.5.2/24 dev eth0',
      'addr add fd10:241:0:5::2/64 dev eth0 nodad',
      'link set dev eth0 up',
    ]);
    expect(
      renderPodRoutes('eth0', [{ address: '10.241.5.2/24', gateway: '10.241.5.1' }], [{ dst: '0.0.0.0/0' }, { dst: '10.241.77.9/24', gw: '10.241.5.3', priority: 5, table: 100, scope: 0 }]),
    ).toEqual(['route append 0.0.0.0/0 via 10.241.5.1 dev eth0', 'route append 10.241.77.0/24 via 10.241.5.3 dev eth0 metric 5 table 100 scope 0']);
  });
});

describe('ipInNetns', () => {
  it('uses ip -n for /run/netns names and nsenter for any other path', async () => {
    const { ipInNetns, batchWords } = await import('../../../plugins/bridge/links.ts');
    expect(ipInNetns('/run/netns/cni-1234')).toEqual({ prefix: ['ip', '-n', 'cni-1234'], netns: undefined });
    expect(ipInNetns('/var/run/netns/cni-1234')).toEqual({ prefix: ['ip', '-n', 'cni-1234'], netns: undefined });
    expect(ipInNetns('/proc/42/ns/net')).toEqual({ prefix: ['ip'], netns: '/proc/42/ns/net' });
    expect(ipInNetns('/run/netns/a b')).toEqual({ prefix: ['ip'], netns: '/run/netns/a b' });
    expect(ipInNetns(undefined)).toEqual({ prefix: ['ip'], netns: undefined });
    expect(batchWords(`link add name v type veth peer name "e#0" netns '/tmp/a "b"'`)).toEqual(['link', 'add', 'name', 'v', 'type', 'veth', 'peer', 'name', 'e#0', 'netns', '/tmp/a "b"']);
  });
});
