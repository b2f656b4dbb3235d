/**
 * dist/bin/ptp in a fake host namespace (see fakehost.ts): real traffic pod
 * -> host and pod -> pod across the host, masquerade to an outside host,
 * every cniVersion's result shape, CHECK, DEL twice and with the netns gone,
 * rollback, GC, STATUS, and interop with the reference ptp both ways.
 */
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { formatChainName } from '../../../lib/firewall/naming.ts';
import type { TestNetns } from '../../helpers/netns.ts';
import { createNetns } from '../../helpers/netns.ts';
import {
  IPAM_VERSIONS,
  addrsOf,
  callIn,
  callInOk,
  cleanupAll,
  createFakeHost,
  dataDir,
  linkNames,
  ping,
  pingWithin,
  rand,
  removeTmpRoot,
  reservations,
  vethBetween,
} from './fakehost.ts';

afterEach(cleanupAll);
afterAll(() => {
  cleanupAll();
  removeTmpRoot();
});

const legacy = (v: string) => v === '0.1.0' || v === '0.2.0';

function conf(version: string, dir: string, extra: Record<string, unknown> = {}, ranges: unknown = [[{ subnet: '10.253.1.0/24' }]]): Record<string, unknown> {
  return { cniVersion: version, name: 'tscni-tv-ptp', type: 'ptp', ipMasq: true, ipam: { type: 'host-local', dataDir: dir, ranges }, ...extra };
}

/** nat rules in the fake host tagged with this attachment (chain + comment), both families. */
function natRules(host: TestNetns, net: string, cid: string): string[] {
  const chain = formatChainName(net, cid);
  return ['iptables', 'ip6tables'].flatMap((cmd) => host.exec([cmd, '-w', '-t', 'nat', '-S']).split('\n').filter((l) => l.includes(chain)));
}

const hostVeths = (host: TestNetns) => linkNames(host).filter((n) => /^veth[0-9a-f]{8}$/.test(n));

describe.each(IPAM_VERSIONS)('ptp with cniVersion %s', (version) => {
  it('two pods reach the host and each other through it; CHECK; DEL twice cleans up', () => {
    const host = createFakeHost();
    const [a, b] = [createNetns('tva'), createNetns('tvb')];
    const dir = dataDir();
    const config = conf(version, dir);
    const [cidA, cidB] = [`pa-${rand()}`, `pb-${rand()}`];
    const outA = callInOk(host, 'ptp', { command: 'ADD', cid: cidA, netns: a.path, config });
    callInOk(host, 'ptp', { command: 'ADD', cid: cidB, netns: b.path, config });

    const r = outA.json as Record<string, unknown>;
    if (legacy(version)) {
      expect(r).toEqual({ cniVersion: version, ip4: { ip: '10.253.1.2/24', gateway: '10.253.1.1' } });
    } else {
      const ifs = r.interfaces as Array<Record<string, unknown>>;
      expect(ifs).toHaveLength(2);
      expect(String(ifs[0]?.name)).toMatch(/^veth[0-9a-f]{8}$/);
      expect(ifs[0]?.sandbox).toBeUndefined();
      expect(ifs[1]).toEqual({ name: 'eth0', mac: JSON.parse(a.exec(['ip', '-json', 'link', 'show', 'eth0']))[0].address, sandbox: a.path });
      const ip = { interface: 1, address: '10.253.1.2/24', gateway: '10.253.1.1' };
      expect(r.ips).toEqual([version.startsWith('0.') ? { version: '4', ...ip } : ip]);
    }
    // Kernel state: the pod's /24 reaches only the gateway directly; the host end carries the gateway /32.
    expect(addrsOf(a)).toEqual(['10.253.1.2/24']);
    const routes = a.exec(['ip', 'route', 'show']);
    expect(routes).toContain('10.253.1.0/24 via 10.253.1.1 dev eth0 src 10.253.1.2');
    expect(routes).toContain('10.253.1.1 dev eth0 scope link src 10.253.1.2');
    expect(routes).not.toMatch(/^10\.253\.1\.0\/24 dev eth0/m);
    const veths = hostVeths(host);
    expect(veths).toHaveLength(2);
    for (const v of veths) expect(addrsOf(host, v)).toEqual(['10.253.1.1/32']);
    expect(host.exec(['ip', 'route', 'show'])).toMatch(/10\.253\.1\.2 dev veth[0-9a-f]{8}/);

    // Real traffic: pod -> host (gateway), pod -> pod across the host, both ways.
    expect(ping(a, '10.253.1.1')).toBe(true);
    expect(ping(a, '10.253.1.3')).toBe(true);
    expect(ping(b, '10.253.1.2')).toBe(true);
    expect(natRules(host, 'tscni-tv-ptp', cidA)).toHaveLength(4); // jump, chain, ACCEPT, MASQUERADE
    expect(reservations(dir, 'tscni-tv-ptp').sort()).toEqual(['10.253.1.2', '10.253.1.3']);

    if (!version.startsWith('0.1') && !version.startsWith('0.2') && !version.startsWith('0.3')) {
      const ck = callIn(host, 'ptp', { command: 'CHECK', cid: cidA, netns: a.path, config: { ...config, prevResult: outA.json } });
      expect(ck.code, ck.stdout + ck.stderr).toBe(0);
      // CHECK fails once the pod's address is gone.
      a.exec(['ip', 'addr', 'del', '10.253.1.2/24', 'dev', 'eth0']);
      const bad = callIn(host, 'ptp', { command: 'CHECK', cid: cidA, netns: a.path, config: { ...config, prevResult: outA.json } });
      expect(bad.code).toBe(1);
      expect(bad.json?.msg).toMatch(/Failed to match addr 10\.253\.1\.2\/24 on interface eth0/);
    }

    for (let i = 0; i < 2; i++) {
      const d = callIn(host, 'ptp', { command: 'DEL', cid: cidA, netns: a.path, config: { ...config, prevResult: outA.json } });
      expect(d.code, d.stdout + d.stderr).toBe(0);
      expect(d.stdout).toBe('');
    }
    expect(a.tryExec(['ip', 'link', 'show', 'eth0']).code).not.toBe(0);
    expect(hostVeths(host)).toHaveLength(1);
    expect(natRules(host, 'tscni-tv-ptp', cidA)).toEqual([]);
    expect(natRules(host, 'tscni-tv-ptp', cidB)).toHaveLength(4);
    expect(reservations(dir, 'tscni-tv-ptp')).toEqual(['10.253.1.3']);
  });
});

describe('ptp', () => {
  it('dual-stack: IPv6 /128 gateway on the host end, pod -> pod over IPv6, mtu', () => {
    const host = createFakeHost();
    const [a, b] = [createNetns('tva'), createNetns('tvb')];
    const config = conf('1.1.0', dataDir(), { mtu: 1400 }, [[{ subnet: '10.253.2.0/24' }], [{ subnet: 'fd10:253:2::/64' }]]);
    const out = callInOk(host, 'ptp', { command: 'ADD', cid: 'd1', netns: a.path, config });
    callInOk(host, 'ptp', { command: 'ADD', cid: 'd2', netns: b.path, config });
    expect((out.json?.ips as unknown[]).length).toBe(2);
    expect(addrsOf(a).sort()).toEqual(['10.253.2.2/24', 'fd10:253:2::2/64']);
    expect(JSON.parse(a.exec(['ip', '-json', 'link', 'show', 'eth0']))[0].mtu).toBe(1400);
    expect(ping(a, 'fd10:253:2::1')).toBe(true);
    expect(pingWithin(a, 'fd10:253:2::3')).toBe(true);
    expect(ping(b, '10.253.2.2')).toBe(true);
    expect(host.exec(['ip6tables', '-w', '-t', 'nat', '-S']).split('\n').filter((l) => l.includes(formatChainName('tscni-tv-ptp', 'd1')))).toHaveLength(4);
  });

  it('ipMasq: an outside host with no route to the pods sees the fake host address', () => {
    const host = createFakeHost();
    const [a, out] = [createNetns('tva'), createNetns('tvo')];
    vethBetween(host, 'tvup0', out, 'eth0');
    host.exec(['ip', 'addr', 'add', '10.253.250.1/24', 'dev', 'tvup0']);
    out.exec(['ip', 'addr', 'add', '10.253.250.2/24', 'dev', 'eth0']);
    const config = conf('1.0.0', dataDir());
    callInOk(host, 'ptp', { command: 'ADD', cid: 'm1', netns: a.path, config: { ...config, ipam: { ...(config.ipam as object), routes: [{ dst: '0.0.0.0/0' }] } } });
    expect(ping(a, '10.253.250.2')).toBe(true);
    // Without the masquerade rules the reply has no way back.
    host.exec(['iptables', '-w', '-t', 'nat', '-F', 'POSTROUTING']);
    host.exec(['conntrack', '-F']);
    expect(ping(a, '10.253.250.2', 1)).toBe(false);
  });

  it('DEL with the netns gone releases the IP and removes the rules; DEL without netns too', () => {
    const host = createFakeHost();
    const a = createNetns('tva');
    const dir = dataDir();
    const config = conf('1.0.0', dir);
    const out = callInOk(host, 'ptp', { command: 'ADD', cid: 'g1', netns: a.path, config });
    const path = a.path;
    a.remove();
    const d = callIn(host, 'ptp', { command: 'DEL', cid: 'g1', netns: path, config: { ...config, prevResult: out.json } });
    expect(d.code, d.stdout + d.stderr).toBe(0);
    expect(natRules(host, 'tscni-tv-ptp', 'g1')).toEqual([]);
    expect(reservations(dir, 'tscni-tv-ptp')).toEqual([]);
    expect(callIn(host, 'ptp', { command: 'DEL', cid: 'g1', config }).code).toBe(0);
  });

  it.each(['after-ipam', 'after-veth', 'after-pod', 'after-masq'])('a failed ADD (%s) leaves no veth, rule or reservation', (step) => {
    const host = createFakeHost();
    const a = createNetns('tva');
    const dir = dataDir();
    const config = conf('1.1.0', dir);
    const r = callIn(host, 'ptp', { command: 'ADD', cid: 'rb1', netns: a.path, config, env: { TSCNI_TEST_FAIL_AT: step } });
    expect(r.code).toBe(1);
    expect(r.json?.msg).toContain(`injected failure at ${step}`);
    expect(hostVeths(host)).toEqual([]);
    expect(linkNames(a)).toEqual(['lo']);
    expect(natRules(host, 'tscni-tv-ptp', 'rb1')).toEqual([]);
    expect(reservations(dir, 'tscni-tv-ptp')).toEqual([]);
  });

  it('GC removes the rules and reservations of attachments not listed; STATUS forwards to IPAM', () => {
    const host = createFakeHost();
    const [a, b] = [createNetns('tva'), createNetns('tvb')];
    const dir = dataDir();
    const config = conf('1.1.0', dir);
    callInOk(host, 'ptp', { command: 'ADD', cid: 'k1', netns: a.path, config });
    callInOk(host, 'ptp', { command: 'ADD', cid: 'k2', netns: b.path, config });
    const gc = callIn(host, 'ptp', { command: 'GC', cid: 'x', config: { ...config, 'cni.dev/valid-attachments': [{ containerID: 'k1', ifname: 'eth0' }] } });
    expect(gc.code, gc.stdout + gc.stderr).toBe(0);
    expect(natRules(host, 'tscni-tv-ptp', 'k1')).toHaveLength(4);
    expect(natRules(host, 'tscni-tv-ptp', 'k2')).toEqual([]);
    expect(reservations(dir, 'tscni-tv-ptp')).toEqual(['10.253.1.2']);
    expect(callIn(host, 'ptp', { command: 'STATUS', cid: 'x', config }).code).toBe(0);
    const full = conf('1.1.0', dir, {}, [[{ subnet: '10.253.1.0/30' }]]);
    const st = callIn(host, 'ptp', { command: 'STATUS', cid: 'x', config: full });
    expect(st.json?.code).toBe(50);
  });

  it('a config without ipam is rejected before anything changes (code 7)', () => {
    const host = createFakeHost();
    const a = createNetns('tva');
    const r = callIn(host, 'ptp', { command: 'ADD', cid: 'c1', netns: a.path, config: { cniVersion: '1.0.0', name: 'tscni-tv-ptp', type: 'ptp' } });
    expect(r.json?.code).toBe(7);
    expect(hostVeths(host)).toEqual([]);
  });

  it.each([
    ['ours', 'the reference'],
    ['the reference', 'ours'],
  ])('interop: ADD by %s, DEL by %s removes veth, rules and reservation', (adder, deleter) => {
    const host = createFakeHost();
    const a = createNetns('tva');
    const dir = dataDir();
    const config = conf('1.0.0', dir);
    const out = callInOk(host, 'ptp', { command: 'ADD', cid: 'i1', netns: a.path, config }, adder !== 'ours');
    expect(ping(a, '10.253.1.1')).toBe(true);
    expect(natRules(host, 'tscni-tv-ptp', 'i1')).toHaveLength(4);
    expect(reservations(dir, 'tscni-tv-ptp')).toEqual(['10.253.1.2']);
    const ck = callIn(host, 'ptp', { command: 'CHECK', cid: 'i1', netns: a.path, config: { ...config, prevResult: out.json } }, deleter !== 'ours');
    expect(ck.code, ck.stdout + ck.stderr).toBe(0);
    callInOk(host, 'ptp', { command: 'DEL', cid: 'i1', netns: a.path, config: { ...config, prevResult: out.json } }, deleter !== 'ours');
    expect(hostVeths(host)).toEqual([]);
    expect(natRules(host, 'tscni-tv-ptp', 'i1')).toEqual([]);
    expect(reservations(dir, 'tscni-tv-ptp')).toEqual([]);
  });
});
