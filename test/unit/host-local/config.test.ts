import { describe, expect, it } from 'vitest';
import { cniErrorOf } from '../../helpers/errors.ts';
import type { NetConf } from '../../../lib/cni/types.ts';
import { formatIp } from '../../../lib/ip/cidr.ts';
import { parseHostLocalConfig, rangeSetToString, DEFAULT_DATA_DIR } from '../../../ipam/host-local/config.ts';

function conf(ipam: Record<string, unknown>, extra: Record<string, unknown> = {}, cniVersion = '1.0.0'): NetConf {
  return { cniVersion, name: 'net1', type: 'bridge', ipam: { type: 'host-local', ...ipam }, ...extra } as NetConf;
}

const err = cniErrorOf;

describe('host-local config', () => {
  it('fills the reference defaults for a v4 range', () => {
    const c = parseHostLocalConfig(conf({ ranges: [[{ subnet: '10.240.0.0/24' }]] }), '');
    expect(c.dataDir).toBe(DEFAULT_DATA_DIR);
    expect(rangeSetToString(c.rangeSets[0]!)).toBe('10.240.0.1-10.240.0.254');
    expect(formatIp(c.rangeSets[0]![0]!.gateway)).toBe('10.240.0.1');
  });

  it('fills the reference defaults for a v6 range (no broadcast)', () => {
    const c = parseHostLocalConfig(conf({ ranges: [[{ subnet: 'fd10:240::/120' }]] }), '');
    expect(rangeSetToString(c.rangeSets[0]!)).toBe('fd10:240::1-fd10:240::ff');
  });

  it('keeps explicit start/end/gateway and routes, dataDir, resolvConf', () => {
    const c = parseHostLocalConfig(
      conf({
        ranges: [[{ subnet: '10.240.0.0/16', rangeStart: '10.240.1.10', rangeEnd: '10.240.1.20', gateway: '10.240.0.254' }]],
        routes: [{ dst: '0.0.0.0/0' }, { dst: '10.241.0.0/16', gw: '10.240.0.254' }],
        dataDir: '/tmp/x',
        resolvConf: '/etc/resolv.conf',
      }),
      '',
    );
    expect(rangeSetToString(c.rangeSets[0]!)).toBe('10.240.1.10-10.240.1.20');
    expect(formatIp(c.rangeSets[0]![0]!.gateway)).toBe('10.240.0.254');
    expect(c.routes).toEqual([{ dst: '0.0.0.0/0' }, { dst: '10.241.0.0/16', gw: '10.240.0.254' }]);
    expect(c.dataDir).toBe('/tmp/x');
    expect(c.resolvConf).toBe('/etc/resolv.conf');
  });

  it('orders sets: runtimeConfig.ipRanges, legacy range, ranges', () => {
    const c = parseHostLocalConfig(
      conf(
        { subnet: '10.240.1.0/24', ranges: [[{ subnet: 'fd10:240::/64' }]] },
        { runtimeConfig: { ipRanges: [[{ subnet: '10.240.2.0/24' }]] } },
      ),
      '',
    );
    expect(c.rangeSets.map((s) => rangeSetToString(s))).toEqual(['10.240.2.1-10.240.2.254', '10.240.1.1-10.240.1.254', 'fd10:240::1-fd10:240::ffff:ffff:ffff:ffff']);
  });

  it('collects requested IPs from CNI_ARGS (comma list), args.cni.ips and runtimeConfig.ips, deduplicated', () => {
    const c = parseHostLocalConfig(
      conf(
        { ranges: [[{ subnet: '10.240.0.0/16' }], [{ subnet: 'fd10:240::/64' }]] },
        { args: { cni: { ips: ['10.240.0.7', 'fd10:240::7/64'] } }, runtimeConfig: { ips: ['10.240.0.8/16', '10.240.0.5'] } },
      ),
      'IgnoreUnknown=1;K8S_POD_NAME=x;IP=10.240.0.5,fd10:240::5/64',
    );
    expect(c.requestedIps.map(formatIp)).toEqual(['10.240.0.5', 'fd10:240::5', '10.240.0.7', 'fd10:240::7', '10.240.0.8']);
  });

  it.each([
    [{ ranges: [[{ subnet: '10.240.0.0/31' }]] }, 'ipam.ranges[0][0].subnet: Network 10.240.0.0/31 too small to allocate from'],
    [{ ranges: [[{ subnet: 'fd10:240::/127' }]] }, 'ipam.ranges[0][0].subnet: Network fd10:240::/127 too small to allocate from'],
    [{ ranges: [[{ subnet: '10.240.0.1/24' }]] }, 'ipam.ranges[0][0].subnet: Network has host bits set. For a subnet mask of length 24 the network address is 10.240.0.0'],
    [{ ranges: [[{ subnet: 'nope' }]] }, 'ipam.ranges[0][0].subnet: invalid CIDR address: nope'],
    [{ ranges: [[{ subnet: '10.240.0.0/24', rangeStart: '10.240.1.1' }]] }, 'ipam.ranges[0][0].rangeStart: RangeStart 10.240.1.1 not in network 10.240.0.0/24'],
    [{ ranges: [[{ subnet: '10.240.0.0/24', rangeEnd: '10.240.1.1' }]] }, 'ipam.ranges[0][0].rangeEnd: RangeEnd 10.240.1.1 not in network 10.240.0.0/24'],
    [{ ranges: [[{ subnet: '10.240.0.0/24', rangeEnd: '10.240.0.255' }]] }, 'ipam.ranges[0][0].rangeEnd: RangeEnd 10.240.0.255 is the broadcast address of 10.240.0.0/24'],
    [{ ranges: [[{ subnet: '10.240.2.0/29', rangeStart: '10.240.2.0', rangeEnd: '10.240.2.3', gateway: '10.240.2.1' }]] }, 'ipam.ranges[0][0].rangeStart: RangeStart 10.240.2.0 is the network address of 10.240.2.0/29'],
    [{ ranges: [[{ subnet: 'fd10:240:2::/64', rangeStart: 'fd10:240:2::' }]] }, 'ipam.ranges[0][0].rangeStart: RangeStart fd10:240:2:: is the subnet-router anycast address of fd10:240:2::/64'],
    [{ ranges: [[{ subnet: '10.240.2.0/29', rangeEnd: '10.240.2.0' }]] }, 'ipam.ranges[0][0].rangeEnd: RangeEnd 10.240.2.0 is the network address of 10.240.2.0/29'],
    [{ ranges: [[{ subnet: '10.240.0.0/24', rangeStart: '10.240.0.9', rangeEnd: '10.240.0.8' }]] }, 'ipam.ranges[0][0].rangeStart: RangeStart 10.240.0.9 is after RangeEnd 10.240.0.8'],
    [{ ranges: [[{ subnet: '10.240.0.0/24', gateway: 'x' }]] }, 'ipam.ranges[0][0].gateway: invalid IP address "x"'],
    [{ ranges: [[{ subnet: '10.240.0.0/24' }, { subnet: 'fd10:240::/64' }]] }, 'ipam.ranges[0][1]: mixed address families'],
    [{ ranges: [[{ subnet: '10.240.0.0/24' }, { subnet: '10.240.0.0/16' }]] }, 'ipam.ranges[0][1]: subnets 10.240.0.1-10.240.0.254 and 10.240.0.1-10.240.255.254 overlap'],
    [{ ranges: [[{ subnet: '10.240.0.0/24' }], [{ subnet: '10.240.0.128/25' }]] }, 'ipam.ranges[1]: range set 0 overlaps with 1'],
    [{ ranges: [[]] }, 'ipam.ranges[0]: empty range set'],
    [{ ranges: [] }, 'ipam.ranges: no IP ranges specified'],
    [{}, 'ipam.ranges: no IP ranges specified'],
    [{ ranges: [[{ subnet: '10.240.0.0/24' }]], routes: [{ dst: 'x' }] }, 'ipam.routes[0].dst: invalid CIDR address: x'],
    [{ ranges: [[{ subnet: '10.240.0.0/24' }]], dataDir: 5 }, 'ipam.dataDir: must be a string, got 5'],
  ])('rejects %j with code 7', (ipam, msg) => {
    const e = err(() => parseHostLocalConfig(conf(ipam), ''));
    expect(e.code).toBe(7);
    expect(e.msg).toBe(msg);
  });

  it('rejects a missing ipam section', () => {
    const e = err(() => parseHostLocalConfig({ cniVersion: '1.0.0', name: 'n', type: 'x' }, ''));
    expect([e.code, e.msg]).toEqual([7, "ipam: IPAM config missing 'ipam' key"]);
  });

  it('rejects an overlap between a runtime range and a configured one', () => {
    const e = err(() => parseHostLocalConfig(conf({ ranges: [[{ subnet: '10.240.0.0/24' }]] }, { runtimeConfig: { ipRanges: [[{ subnet: '10.240.0.0/16' }]] } }), ''));
    expect([e.code, e.msg]).toEqual([7, 'ipam.ranges[0]: range set 0 overlaps with 1']);
  });

  it.each(['0.1.0', '0.2.0'])('allows only one set per family for cniVersion %s', (v) => {
    const two = { ranges: [[{ subnet: '10.240.0.0/24' }], [{ subnet: '10.240.1.0/24' }]] };
    const e = err(() => parseHostLocalConfig(conf(two, {}, v), ''));
    expect([e.code, e.msg]).toEqual([7, `ipam.ranges: CNI version ${v} does not support more than 1 address per family`]);
    const dual = { ranges: [[{ subnet: '10.240.0.0/24' }], [{ subnet: 'fd10:240::/64' }]] };
    expect(parseHostLocalConfig(conf(dual, {}, v), '').rangeSets).toHaveLength(2);
  });

  it.each(['0.3.0', '0.3.1', '0.4.0', '1.0.0', '1.1.0'])('allows several sets per family for cniVersion %s', (v) => {
    const two = { ranges: [[{ subnet: '10.240.0.0/24' }], [{ subnet: '10.240.1.0/24' }]] };
    expect(parseHostLocalConfig(conf(two, {}, v), '').rangeSets).toHaveLength(2);
  });

  it('rejects bad requested IPs with the right code and field', () => {
    const base = { ranges: [[{ subnet: '10.240.0.0/24' }]] };
    let e = err(() => parseHostLocalConfig(conf(base), 'IP=10.240.0.300'));
    expect([e.code, e.msg]).toEqual([4, 'CNI_ARGS IP: invalid IP address "10.240.0.300"']);
    e = err(() => parseHostLocalConfig(conf(base), 'FOO=1'));
    expect(e.code).toBe(4);
    e = err(() => parseHostLocalConfig(conf(base, { args: { cni: { ips: ['bad'] } } }), ''));
    expect([e.code, e.msg]).toEqual([7, 'args.cni.ips[0]: invalid IP address "bad"']);
    e = err(() => parseHostLocalConfig(conf(base, { runtimeConfig: { ips: [5] } }), ''));
    expect([e.code, e.msg]).toEqual([7, 'runtimeConfig.ips[0]: invalid IP address 5']);
  });
});
