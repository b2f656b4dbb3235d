import { afterAll, afterEach, beforeEach, describe, expect, it } from 'vitest';
import { existsSync, mkdirSync, utimesSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { ipsOf, listNet, NET, netConf, readNet, removeDir, reservations, run, runOk, stopNetns, tempDataDir } from './helpers.ts';

const V4 = { subnet: '10.240.0.0/29' };
const V6 = { subnet: 'fd10:240::/120' };
let dir: string;

beforeEach(() => {
  dir = tempDataDir();
});
afterEach(() => removeDir(dir));
afterAll(() => stopNetns());

describe('host-local ADD/DEL/CHECK', () => {
  it('dual stack: one address per set, reference file format, DEL releases everything', () => {
    const config = netConf(dir, { ranges: [[V4], [V6]], routes: [{ dst: '0.0.0.0/0' }, { dst: '::/0' }] });
    const out = runOk({ command: 'ADD', config });
    expect(out.json).toEqual({
      cniVersion: '1.0.0',
      ips: [
        { address: '10.240.0.2/29', gateway: '10.240.0.1' },
        { address: 'fd10:240::2/120', gateway: 'fd10:240::1' },
      ],
      routes: [{ dst: '0.0.0.0/0' }, { dst: '::/0' }],
    });
    expect(reservations(dir)).toEqual({ '10.240.0.2': 'c1\r\neth0', 'fd10:240::2': 'c1\r\neth0' });
    expect(readNet(dir, 'last_reserved_ip.0')).toBe('10.240.0.2');
    expect(readNet(dir, 'last_reserved_ip.1')).toBe('fd10:240::2');
    expect(listNet(dir, true)).toContain('lock');

    runOk({ command: 'CHECK', config });
    runOk({ command: 'DEL', config });
    expect(reservations(dir)).toEqual({});
    expect(listNet(dir).filter((n) => n.startsWith('.tscni-idx-'))).toEqual([]);
    // DEL is idempotent; CHECK now fails.
    runOk({ command: 'DEL', config });
    const check = run({ command: 'CHECK', config });
    expect(check.code).toBe(1);
    expect(check.json?.msg).toBe('host-local: Failed to find address added by container c1');
  });

  it('works on its own with CNI_NETNS=/dev/null, as the reference documentation runs it', () => {
    const config = netConf(dir, { ranges: [[{ subnet: '10.240.1.0/24' }], [{ subnet: 'fd10:240:1::/64' }]] });
    for (const command of ['ADD', 'CHECK', 'DEL'] as const) {
      const out = run({ command, config, env: { CNI_NETNS: '/dev/null' } });
      expect(out.code, `${command}: ${out.stdout}`).toBe(0);
      if (command === 'ADD') expect(ipsOf(out)).toEqual(['10.240.1.2/24', 'fd10:240:1::2/64']);
    }
    expect(reservations(dir)).toEqual({});
  });

  it('a full range held by reservations from before the last reboot is reclaimed, with a warning', () => {
    const config = netConf(dir, { ranges: [[V4]] });
    for (const id of ['old1', 'old2', 'old3', 'old4', 'old5']) runOk({ command: 'ADD', containerId: id, config });
    const full = run({ command: 'ADD', containerId: 'new1', config });
    expect(full.json).toMatchObject({ code: 50 });
    // Pretend those pods were made in an earlier boot: their files predate this boot.
    const past = new Date('2001-01-01T00:00:00Z');
    for (const ip of Object.keys(reservations(dir))) utimesSync(join(dir, NET, ip), past, past);
    const out = run({ command: 'ADD', containerId: 'new1', config });
    expect(out.code, out.stdout).toBe(0);
    expect(out.stderr).toContain('reclaimed 5 reservation(s) made before the last reboot');
    expect(Object.values(reservations(dir))).toEqual(['new1\r\neth0']);
    // Reservations of this boot are never touched: the range is full again only after 5 more pods, and then ADD fails.
    for (const id of ['n2', 'n3', 'n4', 'n5']) runOk({ command: 'ADD', containerId: id, config });
    expect(run({ command: 'ADD', containerId: 'n6', config }).json).toMatchObject({ code: 50 });
    expect(Object.keys(reservations(dir))).toHaveLength(5);
  });

  it('round-robins across containers and does not reuse a released address at once', () => {
    const config = netConf(dir, { ranges: [[V4]] });
    expect(ipsOf(runOk({ command: 'ADD', containerId: 'a', config }))).toEqual(['10.240.0.2/29']);
    expect(ipsOf(runOk({ command: 'ADD', containerId: 'b', config }))).toEqual(['10.240.0.3/29']);
    runOk({ command: 'DEL', containerId: 'a', config });
    expect(ipsOf(runOk({ command: 'ADD', containerId: 'c', config }))).toEqual(['10.240.0.4/29']);
    // Same container, other interface: its own address.
    expect(ipsOf(runOk({ command: 'ADD', containerId: 'c', ifname: 'net1', config }))).toEqual(['10.240.0.5/29']);
    runOk({ command: 'DEL', containerId: 'c', ifname: 'net1', config });
    expect(reservations(dir)).toEqual({ '10.240.0.3': 'b\r\neth0', '10.240.0.4': 'c\r\neth0' });
  });

  it('a second ADD for the same container+ifname is an error and changes nothing', () => {
    const config = netConf(dir, { ranges: [[V4]] });
    runOk({ command: 'ADD', config });
    const before = reservations(dir);
    const out = run({ command: 'ADD', config });
    expect(out.code).toBe(1);
    expect(out.json?.code).toBe(999);
    expect(out.json?.msg).toBe('failed to allocate for range 0: 10.240.0.2 has been allocated to c1, duplicate allocation is not allowed');
    expect(reservations(dir)).toEqual(before);
  });

  it('DEL of an unknown container, or with a dataDir never created, succeeds and creates nothing', () => {
    const config = netConf(join(dir, 'nothing-here'), { ranges: [[V4]] });
    runOk({ command: 'DEL', containerId: 'ghost', config });
    expect(existsSync(join(dir, 'nothing-here'))).toBe(false);
    const real = netConf(dir, { ranges: [[V4]] });
    runOk({ command: 'ADD', config: real });
    runOk({ command: 'DEL', containerId: 'ghost', config: real });
    expect(Object.keys(reservations(dir))).toEqual(['10.240.0.2']);
  });

  it('CHECK fails when prevResult carries an address of our ranges that is not ours', () => {
    const config = netConf(dir, { ranges: [[V4]] });
    runOk({ command: 'ADD', config });
    const prevResult = { cniVersion: '1.0.0', ips: [{ address: '10.240.0.5/29' }] };
    const out = run({ command: 'CHECK', config: { ...config, prevResult } });
    expect(out.code).toBe(1);
    expect(out.json?.msg).toBe('host-local: address 10.240.0.5 of prevResult is not reserved for container c1 interface eth0');
    runOk({ command: 'CHECK', config: { ...config, prevResult: { cniVersion: '1.0.0', ips: [{ address: '10.240.0.2/29' }] } } });
  });

  it('legacy single-range keys', () => {
    const config = netConf(dir, { subnet: '10.240.0.0/24', rangeStart: '10.240.0.100', rangeEnd: '10.240.0.101', gateway: '10.240.0.254' });
    expect(runOk({ command: 'ADD', config }).json?.ips).toEqual([{ address: '10.240.0.100/24', gateway: '10.240.0.254' }]);
    expect(ipsOf(runOk({ command: 'ADD', containerId: 'c2', config }))).toEqual(['10.240.0.101/24']);
    const out = run({ command: 'ADD', containerId: 'c3', config });
    expect(out.json?.code).toBe(50);
  });

  it('runtimeConfig.ipRanges are prepended and own last_reserved_ip.0', () => {
    const config = netConf(dir, { ranges: [[V6]] }, { runtimeConfig: { ipRanges: [[{ subnet: '10.240.8.0/24', rangeStart: '10.240.8.50' }]] } });
    expect(ipsOf(runOk({ command: 'ADD', config }))).toEqual(['10.240.8.50/24', 'fd10:240::2/120']);
    expect(readNet(dir, 'last_reserved_ip.0')).toBe('10.240.8.50');
    expect(readNet(dir, 'last_reserved_ip.1')).toBe('fd10:240::2');
  });

  it('resolvConf fills dns', () => {
    const rc = join(dir, 'resolv.conf');
    writeFileSync(rc, 'nameserver 10.240.0.53\nsearch svc.test\noptions ndots:5\ndomain d.test\n');
    const out = runOk({ command: 'ADD', config: netConf(dir, { ranges: [[V4]], resolvConf: rc }) });
    expect(out.json?.dns).toEqual({ nameservers: ['10.240.0.53'], domain: 'd.test', search: ['svc.test'], options: ['ndots:5'] });
    const missing = run({ command: 'ADD', containerId: 'c2', config: netConf(dir, { ranges: [[V4]], resolvConf: join(dir, 'nope') }) });
    expect(missing.json?.code).toBe(7);
    expect(String(missing.json?.msg)).toMatch(/^ipam\.resolvConf: cannot read /);
    expect(Object.keys(reservations(dir))).toEqual(['10.240.0.2']);
  });

  it('exhaustion: code 50 naming the ranges, and the other set is released', () => {
    const config = netConf(dir, { ranges: [[V6], [{ subnet: '10.240.0.0/30' }, { subnet: '10.240.1.0/30' }]] });
    runOk({ command: 'ADD', containerId: 'a', config });
    runOk({ command: 'ADD', containerId: 'b', config });
    const before = reservations(dir);
    const out = run({ command: 'ADD', containerId: 'c', config });
    expect(out.code).toBe(1);
    expect(out.json).toEqual({
      cniVersion: '1.0.0',
      code: 50,
      msg: 'failed to allocate for range 1: no IP addresses available in range set: 10.240.0.1-10.240.0.2,10.240.1.1-10.240.1.2',
    });
    expect(reservations(dir)).toEqual(before);
  });

  it('reclaims an old empty or garbled reservation, but not a fresh one', () => {
    const config = netConf(dir, { ranges: [[{ subnet: '10.240.0.0/30' }]] });
    runOk({ command: 'DEL', config }); // nothing: creates nothing
    runOk({ command: 'ADD', containerId: 'x', config });
    runOk({ command: 'DEL', containerId: 'x', config });
    const file = join(dir, NET, '10.240.0.2');
    writeFileSync(file, '');
    const fresh = run({ command: 'ADD', config });
    expect(fresh.json?.code).toBe(50);
    const old = new Date(Date.now() - 60_000);
    utimesSync(file, old, old);
    expect(ipsOf(runOk({ command: 'ADD', config }))).toEqual(['10.240.0.2/30']);
    expect(readNet(dir, '10.240.0.2')).toBe('c1\r\neth0');
    runOk({ command: 'DEL', config });
    writeFileSync(file, '\u0000\u0000garbage \u0001');
    utimesSync(file, old, old);
    expect(ipsOf(runOk({ command: 'ADD', containerId: 'c2', config }))).toEqual(['10.240.0.2/30']);
  });

  it('legacy id-only records (left by an old version before we ran): duplicate detection, CHECK and DEL fallback', () => {
    const config = netConf(dir, { ranges: [[V4]] });
    mkdirSync(join(dir, NET));
    writeFileSync(join(dir, NET, '10.240.0.5'), 'old1');
    runOk({ command: 'ADD', containerId: 'other', config });
    const dup = run({ command: 'ADD', containerId: 'old1', config });
    expect(dup.json?.msg).toBe('failed to allocate for range 0: 10.240.0.5 has been allocated to old1, duplicate allocation is not allowed');
    runOk({ command: 'CHECK', containerId: 'old1', config });
    runOk({ command: 'DEL', containerId: 'old1', config });
    expect(Object.keys(reservations(dir))).toEqual(['10.240.0.2']);
  });
});

describe('requested addresses', () => {
  const config = () => netConf(dir, { ranges: [[{ subnet: '10.240.0.0/24' }], [{ subnet: 'fd10:240::/64' }]] });

  it('CNI_ARGS IP= (single, with prefix, and a comma-separated dual-stack list)', () => {
    expect(ipsOf(runOk({ command: 'ADD', containerId: 'a', args: 'IgnoreUnknown=1;K8S_POD_NAME=p;IP=10.240.0.77', config: config() }))).toEqual([
      '10.240.0.77/24',
      'fd10:240::2/64',
    ]);
    expect(ipsOf(runOk({ command: 'ADD', containerId: 'b', args: 'IP=10.240.0.78/24', config: config() }))).toEqual(['10.240.0.78/24', 'fd10:240::3/64']);
    expect(ipsOf(runOk({ command: 'ADD', containerId: 'c', args: 'IP=10.240.0.79,fd10:240::79', config: config() }))).toEqual([
      '10.240.0.79/24',
      'fd10:240::79/64',
    ]);
    expect(reservations(dir)['fd10:240::79']).toBe('c\r\neth0');
  });

  it('args.cni.ips and runtimeConfig.ips', () => {
    const a = runOk({ command: 'ADD', containerId: 'a', config: { ...config(), args: { cni: { ips: ['fd10:240::a', '10.240.0.10'] } } } });
    expect(ipsOf(a)).toEqual(['10.240.0.10/24', 'fd10:240::a/64']);
    const b = runOk({ command: 'ADD', containerId: 'b', config: { ...config(), runtimeConfig: { ips: ['10.240.0.11/24'] } } });
    // The v6 set continues round-robin after the requested fd10:240::a.
    expect(ipsOf(b)).toEqual(['10.240.0.11/24', 'fd10:240::b/64']);
  });

  it('a taken, gateway or out-of-range request fails and leaves nothing behind', () => {
    runOk({ command: 'ADD', containerId: 'a', args: 'IP=10.240.0.20', config: config() });
    const before = reservations(dir);
    const taken = run({ command: 'ADD', containerId: 'b', args: 'IP=10.240.0.20', config: config() });
    expect(taken.json?.msg).toBe('failed to allocate for range 0: requested IP address 10.240.0.20 is not available in range set 10.240.0.1-10.240.0.254');
    const gw = run({ command: 'ADD', containerId: 'b', args: 'IP=10.240.0.1', config: config() });
    expect([gw.json?.code, gw.json?.msg]).toEqual([7, "failed to allocate for range 0: requested ip 10.240.0.1 is subnet's gateway"]);
    const outside = run({ command: 'ADD', containerId: 'b', config: { ...config(), args: { cni: { ips: ['10.241.0.1'] } } } });
    expect([outside.json?.code, outside.json?.msg]).toEqual([7, 'failed to allocate all requested IPs: 10.241.0.1']);
    const badEnv = run({ command: 'ADD', containerId: 'b', args: 'IP=10.240.0.999', config: config() });
    expect([badEnv.json?.code, badEnv.json?.msg]).toEqual([4, 'CNI_ARGS IP: invalid IP address "10.240.0.999"']);
    expect(reservations(dir)).toEqual(before);
  });
});

describe('invalid configuration', () => {
  it.each([
    [{ ranges: [[{ subnet: '10.240.0.0/31' }]] }, 'ipam.ranges[0][0].subnet: Network 10.240.0.0/31 too small to allocate from'],
    [{ ranges: [[{ subnet: '10.240.0.4/24' }]] }, 'ipam.ranges[0][0].subnet: Network has host bits set. For a subnet mask of length 24 the network address is 10.240.0.0'],
    [{ ranges: [[{ subnet: '10.240.0.0/24', rangeStart: '10.240.3.1' }]] }, 'ipam.ranges[0][0].rangeStart: RangeStart 10.240.3.1 not in network 10.240.0.0/24'],
    [{ ranges: [[{ subnet: '10.240.0.0/24' }, { subnet: 'fd10:240::/64' }]] }, 'ipam.ranges[0][1]: mixed address families'],
    [{ ranges: [[{ subnet: '10.240.0.0/24' }], [{ subnet: '10.240.0.0/25' }]] }, 'ipam.ranges[1]: range set 0 overlaps with 1'],
  ])('%j -> code 7, nothing created', (ipam, msg) => {
    const dataDir = join(dir, 'd');
    for (const command of ['ADD', 'DEL']) {
      const out = run({ command, config: netConf(dataDir, ipam) });
      expect(out.code).toBe(1);
      expect(out.json).toEqual({ cniVersion: '1.0.0', code: 7, msg });
    }
    expect(existsSync(dataDir)).toBe(false);
  });

  it('more than one set per family is refused for cniVersion 0.2.0', () => {
    const out = run({ command: 'ADD', config: netConf(dir, { ranges: [[{ subnet: '10.240.0.0/24' }], [{ subnet: '10.240.1.0/24' }]] }, {}, '0.2.0') });
    expect(out.json).toEqual({ cniVersion: '0.2.0', code: 7, msg: 'ipam.ranges: CNI version 0.2.0 does not support more than 1 address per family' });
    expect(listNet(dir)).toEqual([]);
  });
});

describe('result per cniVersion', () => {
  const ipam = () => ({ ranges: [[V4], [V6]], routes: [{ dst: '10.241.0.0/16' }, { dst: 'fd10:241::/32', gw: 'fd10:240::1' }] });
  it.each(['0.1.0', '0.2.0'])('%s: ip4/ip6 with routes split by family', (v) => {
    const out = runOk({ command: 'ADD', config: netConf(dir, ipam(), {}, v) });
    expect(out.json).toEqual({
      cniVersion: v,
      ip4: { ip: '10.240.0.2/29', gateway: '10.240.0.1', routes: [{ dst: '10.241.0.0/16' }] },
      ip6: { ip: 'fd10:240::2/120', gateway: 'fd10:240::1', routes: [{ dst: 'fd10:241::/32', gw: 'fd10:240::1' }] },
    });
  });
  it.each(['0.3.0', '0.3.1', '0.4.0'])('%s: ips with version', (v) => {
    const out = runOk({ command: 'ADD', config: netConf(dir, ipam(), {}, v) });
    expect(out.json).toEqual({
      cniVersion: v,
      ips: [
        { version: '4', address: '10.240.0.2/29', gateway: '10.240.0.1' },
        { version: '6', address: 'fd10:240::2/120', gateway: 'fd10:240::1' },
      ],
      routes: [{ dst: '10.241.0.0/16' }, { dst: 'fd10:241::/32', gw: 'fd10:240::1' }],
    });
  });
  it.each(['1.0.0', '1.1.0'])('%s: ips without version', (v) => {
    const out = runOk({ command: 'ADD', config: netConf(dir, ipam(), {}, v) });
    expect(out.json).toEqual({
      cniVersion: v,
      ips: [
        { address: '10.240.0.2/29', gateway: '10.240.0.1' },
        { address: 'fd10:240::2/120', gateway: 'fd10:240::1' },
      ],
      routes: [{ dst: '10.241.0.0/16' }, { dst: 'fd10:241::/32', gw: 'fd10:240::1' }],
    });
    if (v === '1.1.0') {
      // CHECK, GC and STATUS exist from 1.1.0 on.
      runOk({ command: 'CHECK', config: netConf(dir, ipam(), {}, v) });
      runOk({ command: 'STATUS', config: netConf(dir, ipam(), {}, v) });
    }
  });
  it.each(['0.1.0', '0.2.0', '0.3.0', '0.3.1'])('%s: CHECK is refused with code 1', (v) => {
    const out = run({ command: 'CHECK', config: netConf(dir, { ranges: [[V4]] }, {}, v) });
    expect(out.json?.code).toBe(1);
  });
});
