/** tuning config: sysctl paths, precedence, validation (pure). */
import { describe, expect, it } from 'vitest';
import { parseTuningConfig, sysctlKeyPath } from '../../../plugins/tuning/config.ts';

const base = { cniVersion: '1.1.0', name: 'n', type: 'tuning' };

describe('sysctlKeyPath', () => {
  it.each([
    ['net.ipv4.conf.IFNAME.arp_notify', 'eth0', 'net/ipv4/conf/eth0/arp_notify'],
    ['net.ipv4.conf.IFNAME.arp_notify', 'eth0.100', 'net/ipv4/conf/eth0.100/arp_notify'],
    ['net/ipv6/conf/IFNAME/accept_ra', 'eth1', 'net/ipv6/conf/eth1/accept_ra'],
    ['/net/core/somaxconn', 'eth0', 'net/core/somaxconn'],
  ])('%s with %s -> %s', (key, ifName, path) => {
    expect(sysctlKeyPath(key, ifName)).toBe(path);
  });
  it.each(['kernel.hostname', 'net', 'net/../kernel/hostname', 'net..ipv4', 'vm/swappiness'])('rejects %s with code 7', (key) => {
    expect(() => sysctlKeyPath(key, 'eth0')).toThrow(expect.objectContaining({ code: 7 }));
  });
});

describe('parseTuningConfig', () => {
  it('defaults: nothing to change, /run/cni/tuning', () => {
    expect(parseTuningConfig(base, '', 'eth0')).toMatchObject({ sysctls: [], promisc: false, dataDir: '/run/cni/tuning' });
  });
  it('MAC precedence and args.cni overrides', () => {
    const c = parseTuningConfig({ ...base, mac: '02:00:00:00:00:01', mtu: 1500, runtimeConfig: { mac: '02:00:00:00:00:03' }, args: { cni: { mtu: 1400, txQLen: 0, sysctl: { 'net.core.somaxconn': '1' } } } }, 'MAC=02:00:00:00:00:02', 'eth0');
    expect(c).toMatchObject({ mac: '02:00:00:00:00:03', mtu: 1400, txQLen: 0 });
    expect(c.sysctls).toEqual([{ key: 'net.core.somaxconn', path: 'net/core/somaxconn', value: '1' }]);
    expect(parseTuningConfig({ ...base, args: { cni: { mac: '02:00:00:00:00:04' } } }, 'MAC=02:00:00:00:00:02', 'eth0').mac).toBe('02:00:00:00:00:04');
  });
  it.each([{ mac: 'nope' }, { mtu: -1 }, { txQLen: 1.5 }, { allmulti: 'on' }, { sysctl: { 'net.core.x': 1 } }, { dataDir: 'rel' }])('rejects %j with code 7', (bad) => {
    expect(() => parseTuningConfig({ ...base, ...bad }, '', 'eth0')).toThrow(expect.objectContaining({ code: 7 }));
  });
  it('unknown CNI_ARGS keys need IgnoreUnknown (code 4)', () => {
    expect(() => parseTuningConfig(base, 'FOO=1', 'eth0')).toThrow(expect.objectContaining({ code: 4 }));
    expect(parseTuningConfig(base, 'IgnoreUnknown=1;FOO=1', 'eth0').mac).toBeUndefined();
  });
});
