/**
 * dist/bin/macvlan in a fake host namespace whose "master" is a veth to a
 * "lan" namespace (never the machine's uplink): pods on one master reach
 * each other in bridge mode and not in private mode, both reach the lan,
 * every cniVersion's result shape, CHECK, L2-only, the default-route master,
 * linkInContainer, validation before any change, rollback, DEL twice and with
 * the netns gone, STATUS, and interop with the reference both ways.
 */
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { createNetns, type TestNetns } from '../../helpers/netns.ts';
import {
  IPAM_VERSIONS,
  addrsOf,
  callIn,
  callInOk,
  cleanupAll,
  createFakeHost,
  fakeHostWithLan,
  dataDir,
  linkNames,
  linkOf,
  ping,
  rand,
  removeTmpRoot,
  reservations,
  vethBetween,
} from '../ptp/fakehost.ts';

afterEach(cleanupAll);
afterAll(() => {
  cleanupAll();
  removeTmpRoot();
});

const NET = 'tscni-tm-macvlan';
const MASTER = 'tmmaster0';
const LAN_IP = '10.253.3.254';

/** A fake host with MASTER (a veth) whose peer in a lan namespace has LAN_IP. */
function fakeHostWithMaster(): { host: TestNetns; lan: TestNetns } {
  return fakeHostWithLan('fh', 'tmlan', MASTER, `${LAN_IP}/24`);
}

function conf(version: string, dir: string, extra: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    cniVersion: version,
    name: NET,
    type: 'macvlan',
    master: MASTER,
    ipam: { type: 'host-local', dataDir: dir, ranges: [[{ subnet: '10.253.3.0/24', rangeStart: '10.253.3.10', gateway: LAN_IP }]] },
    ...extra,
  };
}

const legacy = (v: string) => v === '0.1.0' || v === '0.2.0';
const macOf = (ns: TestNetns, ifname = 'eth0') => String(linkOf(ns, ifname)?.address);

describe.each(IPAM_VERSIONS)('macvlan with cniVersion %s', (version) => {
  it('bridge mode: two pods on one master reach each other and the lan; CHECK; DEL twice', () => {
    const { host } = fakeHostWithMaster();
    const [a, b] = [createNetns('tma'), createNetns('tmb')];
    const dir = dataDir();
    const config = conf(version, dir);
    const outA = callInOk(host, 'macvlan', { command: 'ADD', cid: 'ma', netns: a.path, config });
    callInOk(host, 'macvlan', { command: 'ADD', cid: 'mb', netns: b.path, config });
    const r = outA.json as Record<string, unknown>;
    if (legacy(version)) {
      expect(r).toEqual({ cniVersion: version, ip4: { ip: '10.253.3.10/24', gateway: LAN_IP } });
    } else {
      expect(r.interfaces).toEqual([{ name: 'eth0', mac: macOf(a), sandbox: a.path }]);
      const ip = { interface: 0, address: '10.253.3.10/24', gateway: LAN_IP };
      expect(r.ips).toEqual([version.startsWith('0.') ? { version: '4', ...ip } : ip]);
    }
    const link = linkOf(a, 'eth0') as { linkinfo: { info_kind: string; info_data: { mode: string } } };
    expect(link.linkinfo.info_kind).toBe('macvlan');
    expect(link.linkinfo.info_data.mode).toBe('bridge');
    expect(addrsOf(a)).toEqual(['10.253.3.10/24']);
    expect(ping(a, '10.253.3.11')).toBe(true);
    expect(ping(b, '10.253.3.10')).toBe(true);
    expect(ping(a, LAN_IP)).toBe(true);
    expect(linkNames(host).sort()).toEqual(['lo', MASTER]); // nothing left behind in the host

    if (version === '0.4.0' || version.startsWith('1.')) {
      const prev = { ...config, prevResult: outA.json };
      const ck = callIn(host, 'macvlan', { command: 'CHECK', cid: 'ma', netns: a.path, config: prev });
      expect(ck.code, ck.stdout + ck.stderr).toBe(0);
      const wrongMode = callIn(host, 'macvlan', { command: 'CHECK', cid: 'ma', netns: a.path, config: { ...prev, mode: 'vepa' } });
      expect(wrongMode.json?.msg).toBe('container macvlan mode bridge does not match expected value: vepa');
    }
    for (let i = 0; i < 2; i++) {
      const d = callIn(host, 'macvlan', { command: 'DEL', cid: 'ma', netns: a.path, config });
      expect(d.code, d.stdout + d.stderr).toBe(0);
    }
    expect(linkNames(a)).toEqual(['lo']);
    expect(reservations(dir, NET)).toEqual(['10.253.3.11']);
  });
});

describe('macvlan', () => {
  it('private mode: the pods reach the lan but not each other', () => {
    const { host } = fakeHostWithMaster();
    const [a, b] = [createNetns('tma'), createNetns('tmb')];
    const config = conf('1.1.0', dataDir(), { mode: 'private' });
    callInOk(host, 'macvlan', { command: 'ADD', cid: 'pa', netns: a.path, config });
    callInOk(host, 'macvlan', { command: 'ADD', cid: 'pb', netns: b.path, config });
    expect((linkOf(a, 'eth0') as { linkinfo: { info_data: { mode: string } } }).linkinfo.info_data.mode).toBe('private');
    expect(ping(a, LAN_IP)).toBe(true);
    expect(ping(b, LAN_IP)).toBe(true);
    expect(ping(a, '10.253.3.11', 1)).toBe(false);
  });

  it('L2 only (no ipam): up, no address, MAC from runtimeConfig.mac over CNI_ARGS and mac; mtu', () => {
    const { host } = fakeHostWithMaster();
    const a = createNetns('tma');
    const config = { cniVersion: '1.1.0', name: NET, type: 'macvlan', master: MASTER, mtu: 1400, mac: '02:00:00:00:00:01', runtimeConfig: { mac: '02:00:00:00:00:03' } };
    const out = callInOk(host, 'macvlan', { command: 'ADD', cid: 'l2', netns: a.path, args: 'IgnoreUnknown=1;MAC=02:00:00:00:00:02', config });
    expect(out.json).toEqual({ cniVersion: '1.1.0', interfaces: [{ name: 'eth0', mac: '02:00:00:00:00:03', sandbox: a.path }] });
    const l = linkOf(a, 'eth0') as { operstate: string; flags: string[]; mtu: number };
    expect(l.flags).toContain('UP');
    expect(l.mtu).toBe(1400);
    expect(addrsOf(a)).toEqual([]);
    // An L2 result cannot be expressed in 0.2.0 (no IP): an error, and nothing left behind.
    const old = callIn(host, 'macvlan', { command: 'ADD', cid: 'l2b', netns: createNetns('tmc').path, config: { ...config, cniVersion: '0.2.0', runtimeConfig: {} } });
    expect(old.code).toBe(1);
  });

  it('without "master": the device of the fake host default route', () => {
    const { host } = fakeHostWithMaster();
    host.exec(['ip', 'addr', 'add', '10.253.3.1/24', 'dev', MASTER]);
    host.exec(['ip', 'route', 'add', 'default', 'via', LAN_IP]);
    const a = createNetns('tma');
    const config = conf('1.0.0', dataDir());
    delete config.master;
    callInOk(host, 'macvlan', { command: 'ADD', cid: 'dr', netns: a.path, config });
    expect(ping(a, LAN_IP)).toBe(true);
    // No default route: a clear error before anything changes.
    host.exec(['ip', 'route', 'del', 'default']);
    const b = createNetns('tmb');
    const r = callIn(host, 'macvlan', { command: 'ADD', cid: 'dr2', netns: b.path, config });
    expect(r.json?.msg).toBe('no default route interface found');
    expect(linkNames(b)).toEqual(['lo']);
  });

  it('linkInContainer: the master lives in the pod namespace', () => {
    const host = createFakeHost();
    const [a, lan] = [createNetns('tma'), createNetns('tmlan')];
    vethBetween(a, 'tmcm0', lan, 'eth0');
    lan.exec(['ip', 'addr', 'add', `${LAN_IP}/24`, 'dev', 'eth0']);
    const config = conf('1.1.0', dataDir(), { master: 'tmcm0', linkInContainer: true });
    callInOk(host, 'macvlan', { command: 'ADD', cid: 'lc', netns: a.path, config });
    expect(ping(a, LAN_IP)).toBe(true);
    expect(linkNames(host)).toEqual(['lo']);
    const ck = callIn(host, 'macvlan', { command: 'CHECK', cid: 'lc', netns: a.path, config: { ...config, prevResult: callIn(host, 'macvlan', { command: 'ADD', cid: 'lc2', netns: createNetns('tmx').path, config }).json } });
    expect(ck.code).toBe(1); // prevResult of another sandbox
  });

  it.each([
    [{ mode: 'bogus' }, 7, 'unknown macvlan mode: "bogus"'],
    [{ mtu: 9000 }, 7, 'invalid MTU 9000, must be [0, master MTU(1500)]'],
    [{ master: 'tmnothere0' }, 999, 'failed to lookup master "tmnothere0": Link not found'],
    [{ mac: 'nope' }, 7, 'invalid MAC address in mac'],
  ])('invalid %j is rejected before anything changes', (extra, code, msg) => {
    const { host } = fakeHostWithMaster();
    const a = createNetns('tma');
    const dir = dataDir();
    const r = callIn(host, 'macvlan', { command: 'ADD', cid: 'bad', netns: a.path, config: conf('1.1.0', dir, extra) });
    expect(r.json?.code).toBe(code);
    expect(r.json?.msg).toBe(msg);
    expect(linkNames(a)).toEqual(['lo']);
    expect(reservations(dir, NET)).toEqual([]);
  });

  it.each(['after-ipam', 'after-link', 'after-pod'])('a failed ADD (%s) leaves no link and no reservation', (step) => {
    const { host } = fakeHostWithMaster();
    const a = createNetns('tma');
    const dir = dataDir();
    const r = callIn(host, 'macvlan', { command: 'ADD', cid: 'rb', netns: a.path, config: conf('1.1.0', dir), env: { TSCNI_TEST_FAIL_AT: step } });
    expect(r.json?.msg).toContain(`injected failure at ${step}`);
    expect(linkNames(a)).toEqual(['lo']);
    expect(linkNames(host).sort()).toEqual(['lo', MASTER]);
    expect(reservations(dir, NET)).toEqual([]);
  });

  it('DEL with the netns gone releases the IP; STATUS is 50 without the master; GC forwards to IPAM', () => {
    const { host } = fakeHostWithMaster();
    const [a, b] = [createNetns('tma'), createNetns('tmb')];
    const dir = dataDir();
    const config = conf('1.1.0', dir);
    callInOk(host, 'macvlan', { command: 'ADD', cid: 'g1', netns: a.path, config });
    callInOk(host, 'macvlan', { command: 'ADD', cid: 'g2', netns: b.path, config });
    const path = a.path;
    a.remove();
    expect(callIn(host, 'macvlan', { command: 'DEL', cid: 'g1', netns: path, config }).code).toBe(0);
    expect(reservations(dir, NET)).toEqual(['10.253.3.11']);
    expect(callIn(host, 'macvlan', { command: 'GC', cid: 'x', config: { ...config, 'cni.dev/valid-attachments': [] } }).code).toBe(0);
    expect(reservations(dir, NET)).toEqual([]);
    expect(callIn(host, 'macvlan', { command: 'STATUS', cid: 'x', config }).code).toBe(0);
    const st = callIn(host, 'macvlan', { command: 'STATUS', cid: 'x', config: { ...config, master: 'tmnothere0' } });
    expect(st.json?.code).toBe(50);
  });

  it.each([
    ['ours', 'the reference'],
    ['the reference', 'ours'],
  ])('interop: ADD by %s, CHECK and DEL by %s', (adder, other) => {
    const { host } = fakeHostWithMaster();
    const a = createNetns('tma');
    const dir = dataDir();
    const config = conf('1.0.0', dir, { mode: 'vepa' });
    const out = callInOk(host, 'macvlan', { command: 'ADD', cid: 'io', netns: a.path, config }, adder !== 'ours');
    expect(ping(a, LAN_IP)).toBe(true);
    const prev = { ...config, prevResult: out.json };
    const ck = callIn(host, 'macvlan', { command: 'CHECK', cid: 'io', netns: a.path, config: prev }, other !== 'ours');
    expect(ck.code, ck.stdout + ck.stderr).toBe(0);
    callInOk(host, 'macvlan', { command: 'DEL', cid: 'io', netns: a.path, config: prev }, other !== 'ours');
    expect(linkNames(a)).toEqual(['lo']);
    expect(reservations(dir, NET)).toEqual([]);
  });
});

export { rand };
