/**
 * dist/bin/dummy run in a fake host namespace. Where the kernel has the
 * dummy driver: the pod's addresses on the dummy answer pings from inside
 * the pod, routes go through it, CHECK, DEL, rollback at each step. Where it
 * does not (this CI kernel: CONFIG_DUMMY unset), ADD must fail naming the
 * operation and the kernel's reason, having released its address and left no
 * link. Validation, DEL with the netns gone, GC and STATUS either way.
 */
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { createNetns } from '../../helpers/netns.ts';
import { addrsOf, callIn, callInOk, cleanupAll, createFakeHost, dataDir, linkNames, linkOf, ping, removeTmpRoot, reservations } from '../ptp/fakehost.ts';

afterEach(cleanupAll);
afterAll(() => {
  cleanupAll();
  removeTmpRoot();
});

const NET = 'tscni-td-dummy';

/** Can this kernel create a dummy link (probed in a throwaway namespace)? */
function kernelHasDummy(): boolean {
  const ns = createNetns('tdprobe');
  const ok = ns.tryExec(['ip', 'link', 'add', 'tdp0', 'type', 'dummy']).code === 0;
  ns.remove();
  return ok;
}

const conf = (dir: string, version = '1.1.0'): Record<string, unknown> => ({
  cniVersion: version,
  name: NET,
  type: 'dummy',
  ipam: {
    type: 'host-local',
    dataDir: dir,
    ranges: [[{ subnet: '10.253.129.0/24', rangeStart: '10.253.129.10' }], [{ subnet: 'fd10:253:8000:129::/64', rangeStart: 'fd10:253:8000:129::10' }]],
    routes: [{ dst: '10.253.130.0/24' }],
  },
});

describe('dummy', () => {
  const supported = kernelHasDummy();

  it(`ADD on this kernel (dummy driver ${supported ? 'present: addresses, traffic, CHECK, DEL' : 'absent: a named failure that rolled back'})`, () => {
    const host = createFakeHost('tdh');
    const pod = createNetns('tdp');
    const dir = dataDir();
    const config = conf(dir);
    if (!supported) {
      const r = callIn(host, 'dummy', { command: 'ADD', cid: 'd1', netns: pod.path, config });
      expect(r.code).toBe(1);
      expect(r.json?.code).toBe(999);
      expect(String(r.json?.msg)).toMatch(new RegExp(`^failed to create dummy "eth0" in ${pod.path}: .*(Unknown device type|not supported)`));
      expect(linkNames(pod)).toEqual(['lo']);
      expect(linkNames(host)).toEqual(['lo']);
      expect(reservations(dir, NET)).toEqual([]);
      expect(callIn(host, 'dummy', { command: 'DEL', cid: 'd1', netns: pod.path, config }).code).toBe(0);
      return;
    }
    const out = callInOk(host, 'dummy', { command: 'ADD', cid: 'd1', netns: pod.path, config });
    const r = out.json as { interfaces: unknown[]; ips: unknown[] };
    const mac = String(linkOf(pod, 'eth0')?.address);
    expect(r.interfaces).toEqual([{ name: 'eth0', mac, sandbox: pod.path }]);
    expect(r.ips).toEqual([
      { interface: 0, address: '10.253.129.10/24', gateway: '10.253.129.1' },
      { interface: 0, address: 'fd10:253:8000:129::10/64', gateway: 'fd10:253:8000:129::1' },
    ]);
    expect((linkOf(pod, 'eth0') as { linkinfo: { info_kind: string } }).linkinfo.info_kind).toBe('dummy');
    expect(addrsOf(pod).sort()).toEqual(['10.253.129.10/24', 'fd10:253:8000:129::10/64']);
    pod.exec(['ip', 'link', 'set', 'lo', 'up']); // local delivery goes through lo
    expect(ping(pod, '10.253.129.10')).toBe(true);
    expect(pod.exec(['ip', 'route', 'get', '10.253.130.5'])).toContain('dev eth0');
    expect(linkNames(host)).toEqual(['lo']);
    const ck = callIn(host, 'dummy', { command: 'CHECK', cid: 'd1', netns: pod.path, config: { ...config, prevResult: out.json } });
    expect(ck.code, ck.stdout + ck.stderr).toBe(0);
    pod.exec(['ip', 'link', 'set', 'eth0', 'down']);
    expect(callIn(host, 'dummy', { command: 'CHECK', cid: 'd1', netns: pod.path, config: { ...config, prevResult: out.json } }).json?.msg).toBe('Interface eth0 is down');
    for (let i = 0; i < 2; i++) expect(callIn(host, 'dummy', { command: 'DEL', cid: 'd1', netns: pod.path, config }).code).toBe(0);
    expect(linkNames(pod)).toEqual(['lo']);
    expect(reservations(dir, NET)).toEqual([]);
  });

  it.each(supported ? ['after-ipam', 'after-link', 'after-pod'] : ['after-ipam'])('a failed ADD (%s) leaves no link and no reservation', (step) => {
    const host = createFakeHost('tdh');
    const pod = createNetns('tdp');
    const dir = dataDir();
    const r = callIn(host, 'dummy', { command: 'ADD', cid: 'rb', netns: pod.path, config: conf(dir), env: { TSCNI_TEST_FAIL_AT: step } });
    expect(r.json?.msg).toContain(`injected failure at ${step}`);
    expect(linkNames(pod)).toEqual(['lo']);
    expect(reservations(dir, NET)).toEqual([]);
  });

  it('rejects a config without IPAM and an existing CNI_IFNAME before anything changes', () => {
    const host = createFakeHost('tdh');
    const pod = createNetns('tdp');
    const dir = dataDir();
    const noIpam = callIn(host, 'dummy', { command: 'ADD', cid: 'v1', netns: pod.path, config: { cniVersion: '1.1.0', name: NET, type: 'dummy' } });
    expect(noIpam.json).toMatchObject({ code: 7, msg: 'dummy interface requires an IPAM configuration' });
    pod.exec(['ip', 'link', 'add', 'eth0', 'type', 'veth', 'peer', 'name', 'tdpeer0']);
    const dup = callIn(host, 'dummy', { command: 'ADD', cid: 'v2', netns: pod.path, config: conf(dir) });
    expect(dup.json?.msg).toBe(`container interface "eth0" already exists in ${pod.path}`);
    expect(reservations(dir, NET)).toEqual([]);
    expect((linkOf(pod, 'eth0') as { linkinfo: { info_kind: string } }).linkinfo.info_kind).toBe('veth');
  });

  it('DEL with the netns gone releases the address; GC and STATUS forward to IPAM', () => {
    const host = createFakeHost('tdh');
    const dir = dataDir();
    const config = conf(dir);
    // A reservation as an earlier ADD leaves it (made by the IPAM plugin itself, so the test does not depend on the driver).
    const pod = createNetns('tdp');
    callInOk(host, 'host-local', { command: 'ADD', cid: 'g1', netns: pod.path, config: { ...config, type: 'host-local' } });
    expect(reservations(dir, NET).sort()).toEqual(['10.253.129.10', 'fd10:253:8000:129::10']);
    const path = pod.path;
    pod.remove();
    expect(callIn(host, 'dummy', { command: 'DEL', cid: 'g1', netns: path, config }).code).toBe(0);
    expect(reservations(dir, NET)).toEqual([]);
    callInOk(host, 'host-local', { command: 'ADD', cid: 'g2', netns: path, config: { ...config, type: 'host-local' } });
    expect(callIn(host, 'dummy', { command: 'GC', cid: 'x', config: { ...config, 'cni.dev/valid-attachments': [] } }).code).toBe(0);
    expect(reservations(dir, NET)).toEqual([]);
    expect(callIn(host, 'dummy', { command: 'STATUS', cid: 'x', config }).code).toBe(0);
  });
});
