/** bridge config validation and the pure ADD plan (gateways, batches). */
import { describe, expect, it } from 'vitest';
import { cniErrorOf } from '../../helpers/errors.ts';
import type { NetConf } from '../../../lib/cni/types.ts';
import { addrOf, canonicalCidr, firstHostOf, networkOf, prefixContains } from '../../../lib/ip/prefix.ts';
import { collectVlanTrunk, parseBridgeConfig } from '../../../plugins/bridge/config.ts';
import { planBridgeAddrs, planGateways, planPodAddrs, planPodRoutes, planPortVlans, podSysctls } from '../../../plugins/bridge/render.ts';

const base = (extra: Record<string, unknown> = {}): NetConf => ({ cniVersion: '1.0.0', name: 'tscni-tb-unit', type: 'bridge', ...extra }) as NetConf;

const errorOf = cniErrorOf;

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
    expect(planBridgeAddrs('tbunit0', [], want, false, true)).toEqual({ remove: [], add: [{ cidr: '10.241.5.1/24', nodad: false }] });
    expect(planBridgeAddrs('tbunit0', [{ family: 4, local: '10.241.5.1', prefixLen: 24 }], want, false, true)).toEqual({ remove: [], add: [] });
    const e = errorOf(() => planBridgeAddrs('tbunit0', [{ family: 4, local: '10.241.6.1', prefixLen: 24 }], want, false, true));
    expect(e.msg).toBe('failed to set bridge addr: "tbunit0" already has an IP address different from 10.241.5.1/24');
    expect(planBridgeAddrs('tbunit0', [{ family: 4, local: '10.241.6.1', prefixLen: 24 }], want, true, true)).toEqual({
      remove: ['10.241.6.1/24'],
      add: [{ cidr: '10.241.5.1/24', nodad: false }],
    });
    // Non-overlapping IPv6 subnets may share the bridge; link-local addresses never conflict.
    expect(
      planBridgeAddrs(
        'tbunit0',
        [
          { family: 6, local: 'fd10:241:0:9::1', prefixLen: 64 },
          { family: 6, local: 'fe80::1', prefixLen: 64, scope: 253 },
        ],
        { 4: [], 6: ['fd10:241:0:5::1/64'] },
        false,
        true,
      ),
    ).toEqual({ remove: [], add: [{ cidr: 'fd10:241:0:5::1/64', nodad: true }] });
  });
  it('plans port VLANs as the reference', () => {
    expect(planPortVlans(5, undefined, false, 1)).toEqual([
      { op: 'del', vid: 1 },
      { op: 'add', vid: 5, pvid: true, untagged: true },
    ]);
    expect(planPortVlans(0, [3, 4], false, 1)).toEqual([
      { op: 'del', vid: 1 },
      { op: 'add', vid: 3 },
      { op: 'add', vid: 4 },
      { op: 'add', vid: 1, pvid: true, untagged: true },
    ]);
    expect(planPortVlans(5, undefined, true, 1)).toEqual([{ op: 'add', vid: 5, pvid: true, untagged: true }]);
    expect(planPortVlans(0, undefined, false, 1)).toEqual([]);
  });
  it('plans the pod side', () => {
    expect(podSysctls('eth0', false, false)).toEqual([
      ['net/ipv6/conf/eth0/accept_dad', '0'],
      ['net/ipv4/conf/eth0/arp_notify', '1'],
    ]);
    expect(planPodAddrs([{ address: '10.241.5.2/24' }, { address: 'fd10:241:0:5::2/64' }], true)).toEqual([
      { cidr: '10.241.5.2/24', nodad: false },
      { cidr: 'fd10:241:0:5::2/64', nodad: true },
    ]);
    expect(
      planPodRoutes([{ address: '10.241.5.2/24', gateway: '10.241.5.1' }], [{ dst: '0.0.0.0/0' }, { dst: '10.241.77.9/24', gw: '10.241.5.3', priority: 5, table: 100, scope: 0 }]),
    ).toEqual([
      { dst: '0.0.0.0/0', gw: '10.241.5.1' },
      { dst: '10.241.77.0/24', gw: '10.241.5.3', priority: 5, table: 100, scope: 0 },
    ]);
  });
});
