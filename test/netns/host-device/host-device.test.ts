/**
 * dist/bin/host-device in a fake host namespace whose "device" is one end of
 * a veth; the other end lives in a lan namespace (never a real device of the
 * machine). The device moves into the pod under CNI_IFNAME with its host
 * name in the alias, carries traffic to the lan, and comes back under its
 * name on DEL: every cniVersion's result, CHECK, each selector, L2 only,
 * validation before any change, rollback at each step, a name taken in the
 * host on DEL, DEL with the netns gone, GC/STATUS, interop with the
 * reference both ways.
 */
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { createNetns, type TestNetns } from '../../helpers/netns.ts';
import { IPAM_VERSIONS, addrsOf, callIn, callInOk, cleanupAll, fakeHostWithLan, dataDir, linkNames, linkOf, ping, pingWithin, removeTmpRoot, reservations } from '../ptp/fakehost.ts';

afterEach(cleanupAll);
afterAll(() => {
  cleanupAll();
  removeTmpRoot();
});

const NET = 'tscni-th-hostdev';
const DEV = 'thdev0';
const DEV_MAC = '02:53:12:80:00:01';
const LAN_IP = '10.253.128.254';

/** A fake host holding DEV (a veth, MAC DEV_MAC) whose peer in a lan namespace has LAN_IP. */
function fakeHostWithDevice(): { host: TestNetns; lan: TestNetns } {
  const { host, lan } = fakeHostWithLan('thh', 'thlan', DEV, `${LAN_IP}/24`);
  host.exec(['ip', 'link', 'set', DEV, 'address', DEV_MAC]);
  return { host, lan };
}

function conf(version: string, dir: string, extra: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    cniVersion: version,
    name: NET,
    type: 'host-device',
    device: DEV,
    ipam: { type: 'host-local', dataDir: dir, ranges: [[{ subnet: '10.253.128.0/24', rangeStart: '10.253.128.10', gateway: LAN_IP }]] },
    ...extra,
  };
}

const legacy = (v: string) => v === '0.1.0' || v === '0.2.0';
const aliasOf = (ns: TestNetns, ifname: string) => (linkOf(ns, ifname) as { ifalias?: string } | undefined)?.ifalias;

/** The device is back in the fake host under its name, with its MAC, and the pod holds only lo. */
function expectBackHome(host: TestNetns, pod: TestNetns): void {
  expect(linkNames(pod)).toEqual(['lo']);
  expect(linkNames(host).sort()).toEqual(['lo', DEV]);
  expect(String(linkOf(host, DEV)?.address)).toBe(DEV_MAC);
}

describe.each(IPAM_VERSIONS)('host-device with cniVersion %s', (version) => {
  it('ADD moves the device in as eth0 (alias = its host name) with traffic to the lan; CHECK; DEL twice moves it back', () => {
    const { host } = fakeHostWithDevice();
    const pod = createNetns('thp');
    const dir = dataDir();
    const config = conf(version, dir);
    const out = callInOk(host, 'host-device', { command: 'ADD', cid: 'hd1', netns: pod.path, config });
    const r = out.json as Record<string, unknown>;
    if (legacy(version)) {
      expect(r).toEqual({ cniVersion: version, ip4: { ip: '10.253.128.10/24', gateway: LAN_IP } });
    } else {
      expect(r.interfaces).toEqual([{ name: 'eth0', mac: DEV_MAC, sandbox: pod.path }]);
      const ip = { interface: 0, address: '10.253.128.10/24', gateway: LAN_IP };
      expect(r.ips).toEqual([version.startsWith('0.') ? { version: '4', ...ip } : ip]);
    }
    expect(linkNames(host)).toEqual(['lo']);
    expect(aliasOf(pod, 'eth0')).toBe(DEV);
    expect(String(linkOf(pod, 'eth0')?.address)).toBe(DEV_MAC);
    expect(addrsOf(pod)).toEqual(['10.253.128.10/24']);
    expect(ping(pod, LAN_IP)).toBe(true);

    if (version === '0.4.0' || version.startsWith('1.')) {
      const prev = { ...config, prevResult: out.json };
      const ck = callIn(host, 'host-device', { command: 'CHECK', cid: 'hd1', netns: pod.path, config: prev });
      expect(ck.code, ck.stdout + ck.stderr).toBe(0);
      pod.exec(['ip', 'addr', 'del', '10.253.128.10/24', 'dev', 'eth0']);
      const bad = callIn(host, 'host-device', { command: 'CHECK', cid: 'hd1', netns: pod.path, config: prev });
      expect(bad.json?.msg).toBe('Failed to match addr 10.253.128.10/24 on interface eth0');
    }
    for (let i = 0; i < 2; i++) {
      const d = callIn(host, 'host-device', { command: 'DEL', cid: 'hd1', netns: pod.path, config });
      expect(d.code, d.stdout + d.stderr).toBe(0);
    }
    expectBackHome(host, pod);
    expect(aliasOf(host, DEV) ?? '').toBe('');
    expect(reservations(dir, NET)).toEqual([]);
  });
});

describe('host-device', () => {
  it('selects by hwaddr; L2 only (no ipam): up, no address, interfaces only', () => {
    const { host, lan } = fakeHostWithDevice();
    const pod = createNetns('thp');
    const config = { cniVersion: '1.1.0', name: NET, type: 'host-device', hwaddr: DEV_MAC.toUpperCase() };
    const out = callInOk(host, 'host-device', { command: 'ADD', cid: 'hw', netns: pod.path, ifname: 'net1', config });
    expect(out.json).toEqual({ cniVersion: '1.1.0', interfaces: [{ name: 'net1', mac: DEV_MAC, sandbox: pod.path }] });
    expect((linkOf(pod, 'net1') as { flags: string[] }).flags).toContain('UP');
    expect(addrsOf(pod, 'net1')).toEqual([]);
    // L2 reaches the lan: address both ends by hand.
    pod.exec(['ip', 'addr', 'add', '10.253.128.20/24', 'dev', 'net1']);
    expect(ping(pod, LAN_IP)).toBe(true);
    expect(ping(lan, '10.253.128.20')).toBe(true);
    const ck = callIn(host, 'host-device', { command: 'CHECK', cid: 'hw', netns: pod.path, ifname: 'net1', config: { ...config, prevResult: out.json } });
    expect(ck.code, ck.stdout + ck.stderr).toBe(0);
    callInOk(host, 'host-device', { command: 'DEL', cid: 'hw', netns: pod.path, ifname: 'net1', config });
    expectBackHome(host, pod);
  });

  it('dual-stack: IPv4 and IPv6 addresses and a default route via each gateway, traffic over both to the lan', () => {
    const { host, lan } = fakeHostWithDevice();
    const lan6 = 'fd10:253:8000:128::fe';
    lan.exec(['ip', '-6', 'addr', 'add', `${lan6}/64`, 'dev', 'eth0', 'nodad']);
    const pod = createNetns('thp');
    const dir = dataDir();
    const config = conf('1.1.0', dir, {
      ipam: {
        type: 'host-local',
        dataDir: dir,
        ranges: [[{ subnet: '10.253.128.0/24', rangeStart: '10.253.128.10', gateway: LAN_IP }], [{ subnet: 'fd10:253:8000:128::/64', rangeStart: 'fd10:253:8000:128::10', gateway: lan6 }]],
        routes: [{ dst: '0.0.0.0/0' }, { dst: '::/0' }],
      },
    });
    const out = callInOk(host, 'host-device', { command: 'ADD', cid: 'ds', netns: pod.path, config });
    expect((out.json as { ips: unknown[] }).ips).toEqual([
      { interface: 0, address: '10.253.128.10/24', gateway: LAN_IP },
      { interface: 0, address: 'fd10:253:8000:128::10/64', gateway: lan6 },
    ]);
    expect(addrsOf(pod).sort()).toEqual(['10.253.128.10/24', 'fd10:253:8000:128::10/64']);
    expect(pod.exec(['ip', '-6', 'route', 'show', 'default'])).toContain(`via ${lan6} dev eth0`);
    expect(pod.exec(['ip', '-4', 'route', 'show', 'default'])).toContain(`via ${LAN_IP} dev eth0`);
    expect(ping(pod, LAN_IP)).toBe(true);
    expect(pingWithin(pod, lan6)).toBe(true);
    const ck = callIn(host, 'host-device', { command: 'CHECK', cid: 'ds', netns: pod.path, config: { ...config, prevResult: out.json } });
    expect(ck.code, ck.stdout + ck.stderr).toBe(0);
    callInOk(host, 'host-device', { command: 'DEL', cid: 'ds', netns: pod.path, config });
    expectBackHome(host, pod);
    // Moving a device between namespaces drops its addresses: none of the pod's follows it home.
    expect(addrsOf(host, DEV)).toEqual([]);
    expect(reservations(dir, NET)).toEqual([]);
  });

  it('an L2-only result cannot be expressed in 0.2.0: an error, and the device is back in the host', () => {
    const { host } = fakeHostWithDevice();
    const pod = createNetns('thp');
    const r = callIn(host, 'host-device', { command: 'ADD', cid: 'old', netns: pod.path, config: { cniVersion: '0.2.0', name: NET, type: 'host-device', device: DEV } });
    expect(r.code).toBe(1);
    expectBackHome(host, pod);
  });

  it.each([
    [{ device: undefined }, 7, 'specify either "device", "hwaddr", "kernelpath" or "pciBusID"'],
    [{ device: 'a/b' }, 7, 'invalid "device": must be an interface name of 1-15 characters without "/", ":" or spaces'],
    [{ device: undefined, hwaddr: 'nope' }, 7, 'invalid MAC address in hwaddr'],
    [{ device: undefined, kernelpath: '/etc/passwd' }, 7, 'kernel device path "/etc/passwd" must be absolute and begin with /sys/devices/'],
    [{ device: undefined, pciBusID: '../../x' }, 7, 'invalid PCI address "../../x"'],
    [{ device: 'thnothere0' }, 999, 'failed to find host device: device "thnothere0": Link not found'],
    [{ device: 'lo' }, 999, 'host-device: device "lo" selects the loopback device "lo", which cannot leave its namespace'],
    [{ device: undefined, hwaddr: '02:53:12:80:00:99' }, 999, 'failed to find host device: no link with hardware address 02:53:12:80:00:99'],
    [{ device: undefined, kernelpath: '/sys/devices/thnothere' }, 999, 'failed to find host device: failed to find network devices at "/sys/devices/thnothere/net"'],
    [{ device: undefined, runtimeConfig: { deviceID: '0000:ff:1f.7' } }, 999, 'error with host device: no driver for PCI device 0000:ff:1f.7'],
  ])('invalid %j is rejected before anything changes', (extra, code, msg) => {
    const { host } = fakeHostWithDevice();
    const pod = createNetns('thp');
    const dir = dataDir();
    const config = conf('1.1.0', dir, extra);
    for (const [k, v] of Object.entries(extra)) if (v === undefined) delete config[k];
    const r = callIn(host, 'host-device', { command: 'ADD', cid: 'bad', netns: pod.path, config });
    expect(r.json?.code).toBe(code);
    expect(String(r.json?.msg)).toContain(msg);
    expectBackHome(host, pod);
    expect(reservations(dir, NET)).toEqual([]);
  });

  it('CNI_IFNAME already in the pod: an error, the device stays in the host', () => {
    const { host } = fakeHostWithDevice();
    const pod = createNetns('thp');
    pod.exec(['ip', 'link', 'add', 'eth0', 'type', 'veth', 'peer', 'name', 'thpeer0']);
    const dir = dataDir();
    const r = callIn(host, 'host-device', { command: 'ADD', cid: 'dup', netns: pod.path, config: conf('1.1.0', dir) });
    expect(r.json?.msg).toBe(`container interface "eth0" already exists in ${pod.path}`);
    expect(linkNames(host).sort()).toEqual(['lo', DEV]);
    expect(reservations(dir, NET)).toEqual([]);
  });

  it.each(['after-move', 'after-ipam', 'after-pod'])('a failed ADD (%s) moves the device back under its name and releases the address', (step) => {
    const { host } = fakeHostWithDevice();
    const pod = createNetns('thp');
    const dir = dataDir();
    const r = callIn(host, 'host-device', { command: 'ADD', cid: 'rb', netns: pod.path, config: conf('1.1.0', dir), env: { TSCNI_TEST_FAIL_AT: step } });
    expect(r.json?.msg).toContain(`injected failure at ${step}`);
    expectBackHome(host, pod);
    expect(aliasOf(host, DEV) ?? '').toBe('');
    expect(reservations(dir, NET)).toEqual([]);
  });

  it('DEL when the original name is taken in the host: an error naming it, the device stays in the pod; DEL again once the name is free', () => {
    const { host } = fakeHostWithDevice();
    const pod = createNetns('thp');
    const config = conf('1.1.0', dataDir());
    callInOk(host, 'host-device', { command: 'ADD', cid: 'clash', netns: pod.path, config });
    host.exec(['ip', 'link', 'add', DEV, 'type', 'veth', 'peer', 'name', 'thclash1']);
    const d = callIn(host, 'host-device', { command: 'DEL', cid: 'clash', netns: pod.path, config });
    expect(d.code).toBe(1);
    expect(String(d.json?.msg)).toContain(`failed to restore "eth0" to its original name "${DEV}": a link of that name exists in the host namespace`);
    expect(linkNames(pod).sort()).toEqual(['eth0', 'lo']);
    host.exec(['ip', 'link', 'del', DEV]);
    callInOk(host, 'host-device', { command: 'DEL', cid: 'clash', netns: pod.path, config });
    expectBackHome(host, pod);
  });

  it('DEL with the netns gone releases the address; GC and STATUS forward to IPAM', () => {
    const { host } = fakeHostWithDevice();
    const pod = createNetns('thp');
    const dir = dataDir();
    const config = conf('1.1.0', dir);
    callInOk(host, 'host-device', { command: 'ADD', cid: 'gone', netns: pod.path, config });
    expect(reservations(dir, NET)).toEqual(['10.253.128.10']);
    const path = pod.path;
    pod.remove();
    expect(callIn(host, 'host-device', { command: 'DEL', cid: 'gone', netns: path, config }).code).toBe(0);
    expect(reservations(dir, NET)).toEqual([]);
    // GC: host-local drops a reservation whose attachment is not valid any more.
    const { host: host2 } = fakeHostWithDevice();
    const pod2 = createNetns('thp');
    callInOk(host2, 'host-device', { command: 'ADD', cid: 'gc1', netns: pod2.path, config });
    // host-local hands out the next address after the last one reserved.
    expect(reservations(dir, NET)).toEqual(['10.253.128.11']);
    expect(callIn(host2, 'host-device', { command: 'GC', cid: 'x', config: { ...config, 'cni.dev/valid-attachments': [{ containerID: 'gc1', ifname: 'eth0' }] } }).code).toBe(0);
    expect(reservations(dir, NET)).toEqual(['10.253.128.11']);
    expect(callIn(host2, 'host-device', { command: 'GC', cid: 'x', config: { ...config, 'cni.dev/valid-attachments': [] } }).code).toBe(0);
    expect(reservations(dir, NET)).toEqual([]);
    expect(callIn(host2, 'host-device', { command: 'STATUS', cid: 'x', config }).code).toBe(0);
  });

  it('CHECK notices a changed MAC and a missing alias', () => {
    const { host } = fakeHostWithDevice();
    const pod = createNetns('thp');
    const config = conf('1.1.0', dataDir());
    const out = callInOk(host, 'host-device', { command: 'ADD', cid: 'ck', netns: pod.path, config });
    const prev = { ...config, prevResult: out.json };
    pod.exec(['ip', 'link', 'set', 'eth0', 'alias', '']);
    expect(callIn(host, 'host-device', { command: 'CHECK', cid: 'ck', netns: pod.path, config: prev }).json?.msg).toBe('host-device: eth0 has no alias naming its host device');
    pod.exec(['ip', 'link', 'set', 'eth0', 'alias', DEV]);
    pod.exec(['ip', 'link', 'set', 'eth0', 'address', '02:53:12:80:00:02']);
    expect(callIn(host, 'host-device', { command: 'CHECK', cid: 'ck', netns: pod.path, config: prev }).json?.msg).toBe(`Interface eth0 Mac ${DEV_MAC} doesn't match container Mac: 02:53:12:80:00:02`);
    expect(callIn(host, 'host-device', { command: 'CHECK', cid: 'ck', netns: pod.path, config }).json?.msg).toBe('Required prevResult missing');
  });

  it.each([
    ['ours', 'the reference'],
    ['the reference', 'ours'],
  ])('interop: ADD by %s, CHECK and DEL by %s', (adder, other) => {
    const { host } = fakeHostWithDevice();
    const pod = createNetns('thp');
    const dir = dataDir();
    const config = conf('1.0.0', dir);
    const out = callInOk(host, 'host-device', { command: 'ADD', cid: 'io', netns: pod.path, config }, adder !== 'ours');
    expect(aliasOf(pod, 'eth0')).toBe(DEV);
    expect(ping(pod, LAN_IP)).toBe(true);
    const prev = { ...config, prevResult: out.json };
    const ck = callIn(host, 'host-device', { command: 'CHECK', cid: 'io', netns: pod.path, config: prev }, other !== 'ours');
    expect(ck.code, ck.stdout + ck.stderr).toBe(0);
    callInOk(host, 'host-device', { command: 'DEL', cid: 'io', netns: pod.path, config: prev }, other !== 'ours');
    expectBackHome(host, pod);
    expect(reservations(dir, NET)).toEqual([]);
  });
});
