/**
 * dist/bin/ipvlan and dist/bin/vlan in a fake host whose master is a veth to
 * a lan namespace. Kernels without the ipvlan / 8021q drivers (this CI
 * kernel: CONFIG_IPVLAN and CONFIG_VLAN_8021Q unset) cannot create the link:
 * there the tests assert the failure names the operation and the kernel's
 * reason and that the ADD rolled back (no link, no reservation). With the
 * drivers, real traffic: ipvlan l2 and l3 pod to pod, a vlan-tagged ping
 * received by a VLAN sub-interface on the lan side of the master.
 */
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { createNetns, type TestNetns } from '../../helpers/netns.ts';
import { callIn, callInOk, cleanupAll, fakeHostWithLan, dataDir, linkNames, ping, removeTmpRoot, reservations } from '../ptp/fakehost.ts';

afterEach(cleanupAll);
afterAll(() => {
  cleanupAll();
  removeTmpRoot();
});

/** Can this kernel create a link of `kind` (probed in a throwaway namespace)? */
function kernelHas(kind: 'ipvlan' | 'vlan'): boolean {
  const ns = createNetns('tvprobe');
  ns.exec(['ip', 'link', 'add', 'tvp0', 'type', 'veth', 'peer', 'name', 'tvp1']);
  const ok = ns.tryExec(['ip', 'link', 'add', 'link', 'tvp0', 'name', 'tvp2', 'type', kind, ...(kind === 'vlan' ? ['id', '5'] : [])]).code === 0;
  ns.remove();
  return ok;
}

function setup(): { host: TestNetns; lan: TestNetns } {
  return fakeHostWithLan('fh', 'tvlan', 'tvmaster0');
}

const conf = (type: string, dir: string, extra: Record<string, unknown>) => ({
  cniVersion: '1.1.0',
  name: `tscni-tv-${type}`,
  type,
  master: 'tvmaster0',
  ipam: { type: 'host-local', dataDir: dir, ranges: [[{ subnet: '10.253.5.0/24', rangeStart: '10.253.5.10' }]] },
  ...extra,
});

describe.each(['ipvlan', 'vlan'] as const)('%s', (kind) => {
  const supported = kernelHas(kind);

  it(`ADD on this kernel (${kind} driver ${supported ? 'present' : 'absent'}): traffic, or a named failure that rolled back`, () => {
    const { host, lan } = setup();
    const [a, b] = [createNetns('tva'), createNetns('tvb')];
    const dir = dataDir();
    const config = conf(kind, dir, kind === 'vlan' ? { vlanId: 253 } : { mode: 'l2' });
    if (!supported) {
      const r = callIn(host, kind, { command: 'ADD', cid: 'u1', netns: a.path, config });
      expect(r.code).toBe(1);
      expect(String(r.json?.msg)).toMatch(new RegExp(`failed to create ${kind} "veth[0-9a-f]{8}" on parent index \\d+ \\(into ${a.path}\\): .*(Unknown device type|not supported)`));
      expect(linkNames(a)).toEqual(['lo']);
      expect(reservations(dir, `tscni-tv-${kind}`)).toEqual([]);
      expect(callIn(host, kind, { command: 'DEL', cid: 'u1', netns: a.path, config }).code).toBe(0);
      return;
    }
    callInOk(host, kind, { command: 'ADD', cid: 's1', netns: a.path, config });
    callInOk(host, kind, { command: 'ADD', cid: 's2', netns: b.path, config });
    if (kind === 'vlan') {
      // The tagged frames arrive on the lan side: a VLAN 253 sub-interface there answers.
      lan.exec(['ip', 'link', 'add', 'link', 'eth0', 'name', 'eth0.253', 'type', 'vlan', 'id', '253']);
      lan.exec(['ip', 'addr', 'add', '10.253.5.254/24', 'dev', 'eth0.253']);
      lan.exec(['ip', 'link', 'set', 'eth0.253', 'up']);
      expect(ping(a, '10.253.5.254')).toBe(true);
    } else {
      expect(ping(a, '10.253.5.11')).toBe(true);
    }
    callInOk(host, kind, { command: 'DEL', cid: 's1', netns: a.path, config });
    expect(linkNames(a)).toEqual(['lo']);
  });

  it('invalid config is rejected before anything changes', () => {
    const { host } = setup();
    const a = createNetns('tva');
    const bad = kind === 'vlan' ? { vlanId: 5000 } : { mode: 'l4' };
    const r = callIn(host, kind, { command: 'ADD', cid: 'b1', netns: a.path, config: conf(kind, dataDir(), bad) });
    expect(r.json?.code).toBe(7);
    expect(r.json?.msg).toBe(kind === 'vlan' ? 'invalid VLAN ID 5000 (must be between 0 and 4095 inclusive)' : 'unknown ipvlan mode: "l4"');
    expect(linkNames(a)).toEqual(['lo']);
  });
});

describe('ipvlan l3', () => {
  const supported = kernelHas('ipvlan');
  it(`pods on one master reach each other (ipvlan driver ${supported ? 'present' : 'absent: a named failure that rolled back'})`, () => {
    const { host } = setup();
    const [a, b] = [createNetns('tva'), createNetns('tvb')];
    const dir = dataDir();
    const config = conf('ipvlan', dir, { mode: 'l3' });
    if (!supported) {
      const r = callIn(host, 'ipvlan', { command: 'ADD', cid: 'l3u', netns: a.path, config });
      expect(r.code).toBe(1);
      expect(String(r.json?.msg)).toMatch(/failed to create ipvlan .*(Unknown device type|not supported)/);
      expect(linkNames(a)).toEqual(['lo']);
      expect(reservations(dir, 'tscni-tv-ipvlan')).toEqual([]);
      return;
    }
    callInOk(host, 'ipvlan', { command: 'ADD', cid: 'l3a', netns: a.path, config });
    callInOk(host, 'ipvlan', { command: 'ADD', cid: 'l3b', netns: b.path, config });
    expect(ping(a, '10.253.5.11')).toBe(true);
  });
});
