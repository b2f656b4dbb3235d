/**
 * dist/bin/bridge in real namespaces with real traffic: two pods on one
 * bridge, an outside host that must see the masqueraded source, every
 * cniVersion's result shape, CHECK, DEL twice and after the netns is gone.
 */
import { mkdtempSync, rmSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { createNetns, removeAllNetns, sh, tryRun } from '../../helpers/netns.ts';
import {
  IPAM_VERSIONS,
  bridgePorts,
  call,
  callOk,
  cleanupAll,
  conf,
  createOutside,
  iptablesRulesFor,
  linkExists,
  newNet,
  nftRulesFor,
  peerSeenByOutside,
  ping,
  podAddrs,
  rand,
  rememberForwarding,
  waitNoPorts,
  removeTmpRoot,
  reservations,
  withPrev,
} from './helpers.ts';

beforeAll(rememberForwarding);
afterEach(() => {
  cleanupAll();
  removeAllNetns();
});
afterAll(() => {
  cleanupAll();
  removeAllNetns();
  removeTmpRoot();
});

const legacy = (v: string) => v === '0.1.0' || v === '0.2.0';

describe.each(IPAM_VERSIONS)('bridge with cniVersion %s', (version) => {
  it('ADD connects two pods through the bridge, masquerades to the outside, DEL cleans up (twice)', async () => {
    const net = newNet();
    const config = conf(net, version);
    const [a, b] = [createNetns('tba'), createNetns('tbb')];
    const cidA = `ca-${rand()}`;
    const cidB = `cb-${rand()}`;
    const outA = callOk('ADD', config, { cid: cidA, ns: a });
    const outB = callOk('ADD', config, { cid: cidB, ns: b });

    // Result shape per version.
    const r = outA.json as Record<string, unknown>;
    expect(r.cniVersion).toBe(version);
    if (legacy(version)) {
      expect(r).toEqual({ cniVersion: version, ip4: { ip: '10.241.1.2/24', gateway: '10.241.1.1', routes: [{ dst: '0.0.0.0/0', gw: '10.241.1.1' }] } });
    } else {
      const ifs = r.interfaces as Array<Record<string, unknown>>;
      expect(ifs).toHaveLength(3);
      expect(ifs[0]).toEqual({ name: net.bridge, mac: sh(['cat', `/sys/class/net/${net.bridge}/address`]).trim() });
      expect(String(ifs[1]?.name)).toMatch(/^veth[0-9a-f]{8}$/);
      expect(ifs[1]?.mac).toBe(sh(['cat', `/sys/class/net/${String(ifs[1]?.name)}/address`]).trim());
      expect(ifs[2]).toEqual({ name: 'eth0', mac: JSON.parse(a.exec(['ip', '-json', 'link', 'show', 'eth0']))[0].address, sandbox: a.path });
      const ip = { interface: 2, address: '10.241.1.2/24', gateway: '10.241.1.1' };
      expect(r.ips).toEqual([version.startsWith('0.') ? { version: '4', ...ip } : ip]);
      expect(r.routes).toEqual([{ dst: '0.0.0.0/0', gw: '10.241.1.1' }]);
      expect(bridgePorts(net.bridge).sort()).toEqual([String(ifs[1]?.name), String(((outB.json as { interfaces: Array<{ name: string }> }).interfaces[1])?.name)].sort());
    }

    // Real traffic: pod to pod, pod to gateway, pod to an outside host that sees the host's address.
    expect(podAddrs(a)).toEqual(['10.241.1.2/24']);
    expect(podAddrs(b)).toEqual(['10.241.1.3/24']);
    // IPv4 addresses carry the subnet's broadcast address, as the reference sets it (pod and gateway).
    const brd = (json: string) => (JSON.parse(json) as Array<{ addr_info: Array<{ family: string; broadcast?: string }> }>)[0]?.addr_info.find((x) => x.family === 'inet')?.broadcast;
    expect(brd(a.exec(['ip', '-json', 'addr', 'show', 'dev', 'eth0']))).toBe('10.241.1.255');
    expect(brd(sh(['ip', '-json', 'addr', 'show', 'dev', net.bridge]))).toBe('10.241.1.255');
    expect(ping(a, '10.241.1.3')).toBe(true);
    expect(ping(b, '10.241.1.2')).toBe(true);
    expect(ping(a, '10.241.1.1')).toBe(true);
    const outside = createOutside(0);
    expect(await peerSeenByOutside(outside, a)).toBe(outside.v4.host);

    expect(iptablesRulesFor(net.name, cidA)).toHaveLength(4); // POSTROUTING jump, chain, ACCEPT, MASQUERADE
    expect(reservations(net).sort()).toEqual(['10.241.1.2', '10.241.1.3']);

    // DEL with the cached result, twice.
    const del = withPrev(config, outA.json);
    for (let i = 0; i < 2; i++) {
      const d = call('DEL', del, { cid: cidA, ns: a });
      expect(d.code, d.stdout + d.stderr).toBe(0);
      expect(d.stdout).toBe('');
    }
    // The pod's interface is gone from the pod's namespace (not the host's eth0).
    expect(a.tryExec(['ip', 'link', 'show', 'eth0']).code).not.toBe(0);
    expect(iptablesRulesFor(net.name, cidA)).toEqual([]);
    expect(iptablesRulesFor(net.name, cidB)).toHaveLength(4);
    expect(reservations(net)).toEqual(['10.241.1.3']);
    expect(bridgePorts(net.bridge)).toHaveLength(1);
    expect(linkExists(net.bridge)).toBe(true); // the bridge stays
  });

  it('DEL after the netns is gone still releases the IP and removes the rules (with and without prevResult)', async () => {
    const net = newNet();
    const config = conf(net, version);
    const a = createNetns('tba');
    const b = createNetns('tbb');
    const cidA = `ga-${rand()}`;
    const cidB = `gb-${rand()}`;
    const outA = callOk('ADD', config, { cid: cidA, ns: a });
    callOk('ADD', config, { cid: cidB, ns: b });
    const [pathA, pathB] = [a.path, b.path];
    a.remove();
    b.remove();
    expect(await waitNoPorts(net.bridge)).toEqual([]);
    expect(iptablesRulesFor(net.name, cidA)).toHaveLength(4);
    const d1 = call('DEL', withPrev(config, outA.json), { cid: cidA, netnsPath: pathA });
    expect(d1.code, d1.stdout).toBe(0);
    const d2 = call('DEL', config, { cid: cidB, netnsPath: pathB });
    expect(d2.code, d2.stdout).toBe(0);
    const d3 = call('DEL', config, { cid: cidB });
    expect(d3.code, d3.stdout).toBe(0);
    expect(iptablesRulesFor(net.name, cidA)).toEqual([]);
    expect(iptablesRulesFor(net.name, cidB)).toEqual([]);
    expect(reservations(net)).toEqual([]);
  });

  it('DEL after the bridge was deleted by hand removes the pod end, the IP and the rules', () => {
    const net = newNet();
    const config = conf(net, version);
    const a = createNetns('tba');
    const cid = `gh-${rand()}`;
    const out = callOk('ADD', config, { cid, ns: a });
    sh(['ip', 'link', 'del', net.bridge]);
    const del = call('DEL', withPrev(config, out.json), { cid, ns: a });
    expect(del.code, del.stdout).toBe(0);
    expect(a.tryExec(['ip', 'link', 'show', 'eth0']).code).not.toBe(0);
    expect(iptablesRulesFor(net.name, cid)).toEqual([]);
    expect(reservations(net)).toEqual([]);
  });
});

describe.each(IPAM_VERSIONS.filter((v) => !v.startsWith('0.1') && !v.startsWith('0.2') && v !== '0.3.0' && v !== '0.3.1'))('bridge CHECK with cniVersion %s', (version) => {
  it('passes on a healthy pod and fails when an address, the veth or the bridge changes', () => {
    const net = newNet();
    const config = conf(net, version);
    const a = createNetns('tba');
    const cid = `ck-${rand()}`;
    const out = callOk('ADD', config, { cid, ns: a });
    const checkConf = withPrev(config, out.json);
    const ok = call('CHECK', checkConf, { cid, ns: a });
    expect(ok.code, ok.stdout + ok.stderr).toBe(0);
    expect(ok.stdout).toBe('');

    a.exec(['ip', 'addr', 'del', '10.241.1.2/24', 'dev', 'eth0']);
    const noAddr = call('CHECK', checkConf, { cid, ns: a });
    expect(noAddr.json).toMatchObject({ code: 999, msg: 'Failed to match addr 10.241.1.2/24 on interface eth0' });
    a.exec(['ip', 'addr', 'add', '10.241.1.2/24', 'dev', 'eth0']);
    a.exec(['ip', 'route', 'add', 'default', 'via', '10.241.1.1']);
    expect(call('CHECK', checkConf, { cid, ns: a }).code).toBe(0);

    const hostVeth = ((out.json as { interfaces: Array<{ name: string }> }).interfaces[1] as { name: string }).name;
    sh(['ip', 'link', 'set', hostVeth, 'nomaster']);
    const noPort = call('CHECK', checkConf, { cid, ns: a });
    expect(noPort.json).toMatchObject({ code: 999, msg: `CNI veth created for bridge ${net.bridge} was not found` });
    sh(['ip', 'link', 'set', hostVeth, 'master', net.bridge]);

    // The masquerade rule is state ADD made: CHECK notices when it is gone.
    const chain = sh(['iptables', '-w', '-t', 'nat', '-S', 'POSTROUTING']).split('\n').find((l) => l.includes(`id: \\"${cid}\\"`));
    expect(chain).toBeDefined();
    // A flushed chain masquerades nothing although POSTROUTING still jumps to it.
    const masqChain = /-j (CNI-[0-9a-f]+)/.exec(chain as string)?.[1] as string;
    sh(['iptables', '-w', '-t', 'nat', '-F', masqChain]);
    const flushed = call('CHECK', checkConf, { cid, ns: a });
    expect(flushed.json).toMatchObject({ code: 999, msg: 'masquerade rule missing for 10.241.1.2/24' });
    const spec = (chain as string).slice(3).match(/(?:[^\s"]+|"(?:\\.|[^"\\])*")+/g) ?? [];
    sh(['iptables', '-w', '-t', 'nat', '-D', ...spec.map((w) => (w.startsWith('"') ? (JSON.parse(w) as string) : w))]);
    const noRule = call('CHECK', checkConf, { cid, ns: a });
    expect(noRule.json).toMatchObject({ code: 999, msg: 'masquerade rule missing for 10.241.1.2/24' });

    const noPrev = call('CHECK', config, { cid, ns: a });
    expect(noPrev.json).toMatchObject({ code: 7, msg: 'Required prevResult missing' });

    // The bridge itself damaged: another MAC, then promiscuous, then gone.
    const brMac = sh(['cat', `/sys/class/net/${net.bridge}/address`]).trim();
    sh(['ip', 'link', 'set', net.bridge, 'address', '02:00:00:00:de:ad']);
    expect(call('CHECK', checkConf, { cid, ns: a }).json).toMatchObject({ code: 999, msg: `Bridge interface ${net.bridge} Mac doesn't match: ${brMac}` });
    sh(['ip', 'link', 'set', net.bridge, 'address', brMac]);
    sh(['ip', 'link', 'set', net.bridge, 'promisc', 'on']);
    expect(String(call('CHECK', checkConf, { cid, ns: a }).json?.msg)).toContain(`Bridge interface ${net.bridge} configured Promisc Mode false doesn't match current state: true`);
    sh(['ip', 'link', 'del', net.bridge]);
    expect(call('CHECK', checkConf, { cid, ns: a }).json).toMatchObject({ code: 999, msg: `Interface name ${net.bridge} not found` });
  });
});

describe('bridge IPv6 and dual stack', () => {
  it.each(IPAM_VERSIONS.filter((v) => v === '0.2.0' || v === '0.4.0' || v === '1.0.0' || v === '1.1.0'))('dual stack with cniVersion %s: both families reach the pod and the outside, masqueraded', async (version) => {
    const net = newNet();
    const config = conf(net, version, {}, [[{ subnet: '10.241.2.0/24' }], [{ subnet: 'fd10:241:2::/64' }]]);
    const [a, b] = [createNetns('tba'), createNetns('tbb')];
    const cidA = `d6-${rand()}`;
    const out = callOk('ADD', config, { cid: cidA, ns: a });
    callOk('ADD', config, { cid: `d6b-${rand()}`, ns: b });
    if (legacy(version)) {
      expect(out.json).toEqual({
        cniVersion: version,
        ip4: { ip: '10.241.2.2/24', gateway: '10.241.2.1', routes: [{ dst: '0.0.0.0/0', gw: '10.241.2.1' }] },
        ip6: { ip: 'fd10:241:2::2/64', gateway: 'fd10:241:2::1', routes: [{ dst: '::/0', gw: 'fd10:241:2::1' }] },
      });
    } else {
      expect((out.json as { ips: unknown[] }).ips).toHaveLength(2);
      expect((out.json as { routes: unknown }).routes).toEqual([
        { dst: '0.0.0.0/0', gw: '10.241.2.1' },
        { dst: '::/0', gw: 'fd10:241:2::1' },
      ]);
    }
    expect(podAddrs(a)).toEqual(['10.241.2.2/24', 'fd10:241:2::2/64']);
    // No DAD wait needed: the addresses are usable at once.
    expect(a.exec(['ip', '-6', 'addr', 'show', 'dev', 'eth0'])).not.toContain('tentative');
    expect(ping(a, 'fd10:241:2::3')).toBe(true);
    expect(ping(b, '10.241.2.2')).toBe(true);
    expect(ping(a, 'fd10:241:2::1')).toBe(true);
    const outside = createOutside(1);
    expect(await peerSeenByOutside(outside, a, true)).toBe(outside.v6.host);
    expect(await peerSeenByOutside(outside, a, false)).toBe(outside.v4.host);
    expect(sh(['ip6tables', '-w', '-t', 'nat', '-S', 'POSTROUTING'])).toContain('-s fd10:241:2::2/128');
    const d = call('DEL', withPrev(config, out.json), { cid: cidA, ns: a });
    expect(d.code, d.stdout).toBe(0);
    expect(iptablesRulesFor(net.name, cidA)).toEqual([]);
  });

  it('IPv6 only, with enabledad: addresses settle before the result', () => {
    const net = newNet();
    const config = conf(net, '1.0.0', { enabledad: true }, [[{ subnet: 'fd10:241:3::/64' }]]);
    const a = createNetns('tba');
    const out = callOk('ADD', config, { cid: `dad-${rand()}`, ns: a });
    expect((out.json as { ips: Array<{ address: string }> }).ips[0]?.address).toBe('fd10:241:3::2/64');
    expect(a.exec(['sysctl', '-n', 'net.ipv6.conf.eth0.accept_dad']).trim()).toBe('1');
    expect(a.exec(['ip', '-6', 'addr', 'show', 'dev', 'eth0'])).not.toContain('tentative');
    expect(ping(a, 'fd10:241:3::1')).toBe(true);
  });
});

describe('bridge masquerade with nftables', () => {
  it('ADD puts the rule in inet cni_plugins_masquerade, the outside host sees the host address, DEL removes it', async () => {
    const net = newNet();
    const config = conf(net, '1.0.0', { ipMasqBackend: 'nftables' }, [[{ subnet: '10.241.4.0/24' }], [{ subnet: 'fd10:241:4::/64' }]]);
    const a = createNetns('tba');
    const cid = `nf-${rand()}`;
    const out = callOk('ADD', config, { cid, ns: a });
    const rules = nftRulesFor(net.name);
    expect(rules).toHaveLength(2);
    expect(rules[0]).toContain('ip saddr 10.241.4.2 ip daddr != 10.241.4.0/24 masquerade');
    expect(rules[1]).toContain('ip6 saddr fd10:241:4::2 ip6 daddr != fd10:241:4::/64 masquerade');
    expect(iptablesRulesFor(net.name, cid)).toEqual([]);
    const chk = call('CHECK', withPrev(config, out.json), { cid, ns: a });
    expect(chk.code, chk.stdout).toBe(0);
    const outside = createOutside(2);
    expect(await peerSeenByOutside(outside, a)).toBe(outside.v4.host);
    expect(await peerSeenByOutside(outside, a, true)).toBe(outside.v6.host);
    // DEL without the netns and without prevResult: found by the rule's tag.
    const path = a.path;
    a.remove();
    expect(call('DEL', config, { cid, netnsPath: path }).code).toBe(0);
    expect(nftRulesFor(net.name)).toEqual([]);
    expect(out.code).toBe(0);
  });
});

describe('bridge masquerade backend auto-detection', () => {
  it('uses iptables when it is installed, nftables when only nft is', () => {
    const net = newNet();
    const config = conf(net, '1.0.0', {}, [[{ subnet: '10.241.15.0/24' }]]);
    const [a, b] = [createNetns('tba'), createNetns('tbb')];
    const [cidA, cidB] = [`au-${rand()}`, `av-${rand()}`];
    callOk('ADD', config, { cid: cidA, ns: a });
    expect(iptablesRulesFor(net.name, cidA)).toHaveLength(4);
    expect(nftRulesFor(net.name)).toEqual([]);
    // A PATH with every tool the plugin uses except iptables.
    const dir = mkdtempSync(join(tmpdir(), 'tscni-tb-path-'));
    try {
      for (const tool of ['ip', 'bridge', 'nsenter', 'sysctl', 'nft']) {
        symlinkSync(sh(['sh', '-c', `command -v ${tool}`]).trim(), join(dir, tool));
      }
      callOk('ADD', config, { cid: cidB, ns: b, env: { PATH: dir } });
      expect(iptablesRulesFor(net.name, cidB)).toEqual([]);
      expect(nftRulesFor(net.name)).toHaveLength(1);
      expect(call('DEL', config, { cid: cidB, ns: b, env: { PATH: dir } }).code).toBe(0);
      expect(nftRulesFor(net.name)).toEqual([]);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('bridge link options', () => {
  // Some kernels are built without CONFIG_BRIDGE_VLAN_FILTERING. There, every VLAN
  // config must fail cleanly (nothing left behind); elsewhere it must work.
  const vlanKernel = (() => {
    const name = `tbvf${rand(2)}`;
    const ok = tryRun(['ip', 'link', 'add', name, 'type', 'bridge', 'vlan_filtering', '1']).code === 0;
    tryRun(['ip', 'link', 'del', name]);
    return ok;
  })();

  it(`vlan (kernel VLAN filtering: ${vlanKernel ? 'yes' : 'no'}): same VLAN talks, other VLAN does not; trunk and gateway interface`, () => {
    const net = newNet();
    const mk = (extra: Record<string, unknown>) => conf(net, '1.0.0', { isDefaultGateway: false, ipMasq: false, ...extra });
    const [a, b, c] = [createNetns('tba'), createNetns('tbb'), createNetns('tbc')];
    if (!vlanKernel) {
      const out = call('ADD', mk({ vlan: 10 }), { cid: `va-${rand()}`, ns: a });
      expect(out.json).toMatchObject({ code: 999 });
      expect(String(out.json?.msg)).toContain('Operation not supported');
      expect(linkExists(net.bridge)).toBe(false);
      expect(a.exec(['ip', '-o', 'link'])).not.toContain('eth0');
      expect(reservations(net)).toEqual([]);
      return;
    }
    const ra = callOk('ADD', mk({ vlan: 10 }), { cid: `va-${rand()}`, ns: a });
    callOk('ADD', mk({ vlan: 10 }), { cid: `vb-${rand()}`, ns: b });
    callOk('ADD', mk({ vlan: 20 }), { cid: `vc-${rand()}`, ns: c });
    expect(sh(['cat', `/sys/class/net/${net.bridge}/bridge/vlan_filtering`]).trim()).toBe('1');
    const hostVeth = ((ra.json as { interfaces: Array<{ name: string }> }).interfaces[1] as { name: string }).name;
    const vl = JSON.parse(sh(['bridge', '-json', 'vlan', 'show', 'dev', hostVeth])) as Array<{ vlans: Array<{ vlan: number; flags?: string[] }> }>;
    expect(vl[0]?.vlans).toEqual([{ vlan: 10, flags: ['PVID', 'Egress Untagged'] }]);
    expect(ping(a, '10.241.1.3')).toBe(true);
    expect(ping(a, '10.241.1.4')).toBe(false);

    const d = createNetns('tbd');
    const rt = callOk('ADD', mk({ vlanTrunk: [{ id: 101 }, { minID: 200, maxID: 202 }] }), { cid: `vt-${rand()}`, ns: d });
    const trunkVeth = ((rt.json as { interfaces: Array<{ name: string }> }).interfaces[1] as { name: string }).name;
    const tv = JSON.parse(sh(['bridge', '-json', 'vlan', 'show', 'dev', trunkVeth])) as Array<{ vlans: unknown[] }>;
    expect(tv[0]?.vlans).toEqual([{ vlan: 1, flags: ['PVID', 'Egress Untagged'] }, { vlan: 101 }, { vlan: 200, vlanEnd: 202 }]);

    const e = createNetns('tbe');
    const rg = callOk('ADD', conf(net, '1.0.0', { vlan: 30, ipMasq: false }, [[{ subnet: '10.241.9.0/24' }]]), { cid: `vg-${rand()}`, ns: e });
    const ifs = (rg.json as { interfaces: Array<{ name: string }> }).interfaces;
    expect(ifs[3]?.name).toBe(`${net.bridge}.30`);
    expect(sh(['ip', '-4', '-o', 'addr', 'show', 'dev', `${net.bridge}.30`])).toContain('10.241.9.1/24');
    expect(ping(e, '10.241.9.1')).toBe(true);
  });

  it('hairpin, port isolation, mtu and a MAC from CNI_ARGS', () => {
    const net = newNet();
    const config = conf(net, '1.0.0', { hairpinMode: true, portIsolation: true, mtu: 1380 });
    const a = createNetns('tba');
    const out = call('ADD', config, { cid: `hp-${rand()}`, ns: a, env: { CNI_ARGS: 'IgnoreUnknown=1;MAC=02:42:0a:f1:01:09' } });
    expect(out.code, out.stdout).toBe(0);
    const hostVeth = ((out.json as { interfaces: Array<{ name: string }> }).interfaces[1] as { name: string }).name;
    expect(sh(['cat', `/sys/class/net/${hostVeth}/brport/hairpin_mode`]).trim()).toBe('1');
    expect(sh(['cat', `/sys/class/net/${hostVeth}/brport/isolated`]).trim()).toBe('1');
    expect(sh(['cat', `/sys/class/net/${hostVeth}/mtu`]).trim()).toBe('1380');
    expect(sh(['cat', `/sys/class/net/${net.bridge}/mtu`]).trim()).toBe('1380');
    const [l] = JSON.parse(a.exec(['ip', '-json', 'link', 'show', 'eth0'])) as Array<{ mtu: number; address: string }>;
    expect(l).toMatchObject({ mtu: 1380, address: '02:42:0a:f1:01:09' });
    expect(((out.json as { interfaces: Array<{ mac: string }> }).interfaces[2] as { mac: string }).mac).toBe('02:42:0a:f1:01:09');
    // Hairpin: the pod reaches itself through the bridge via its masqueraded path is not needed; the flag is what the kernel uses.
    expect(ping(a, '10.241.1.1')).toBe(true);
  });

  it('macspoofchk drops frames from another MAC; DEL removes the chains', () => {
    const net = newNet();
    const config = conf(net, '1.0.0', { macspoofchk: true, ipMasq: false });
    const [a, b] = [createNetns('tba'), createNetns('tbb')];
    const cid = `sc-${rand()}`;
    const out = callOk('ADD', config, { cid, ns: a });
    callOk('ADD', config, { cid: `sc2-${rand()}`, ns: b });
    const table = sh(['nft', 'list', 'table', 'bridge', 'nat']);
    expect(table).toContain(`chain cni-br-iface-${cid}-eth0-mac`);
    const mac = ((out.json as { interfaces: Array<{ mac: string }> }).interfaces[2] as { mac: string }).mac;
    expect(table).toContain(`ether saddr ${mac} return`);
    expect(ping(a, '10.241.1.3')).toBe(true);
    a.exec(['ip', 'link', 'set', 'eth0', 'address', '02:42:0a:f1:ee:ee']);
    a.exec(['ip', 'neigh', 'flush', 'all']);
    expect(ping(a, '10.241.1.3')).toBe(false);
    expect(call('DEL', withPrev(config, out.json), { cid, ns: a }).code).toBe(0);
    expect(sh(['nft', 'list', 'table', 'bridge', 'nat'])).not.toContain(`cni-br-iface-${cid}`);
  });

  it('two interfaces of one pod on the same network (eth0, eth1) each get an address and a default route', () => {
    const net = newNet();
    const config = conf(net, '1.0.0');
    const a = createNetns('tba');
    const cid = `mi-${rand()}`;
    const o0 = callOk('ADD', config, { cid, ns: a, ifname: 'eth0' });
    const o1 = callOk('ADD', config, { cid: `${cid}-2`, ns: a, ifname: 'eth1' });
    expect(podAddrs(a, 'eth1')).toEqual(['10.241.1.3/24']);
    expect(a.exec(['ip', '-4', 'route', 'show', 'default'])).toMatch(/default via 10\.241\.1\.1 dev eth0[^]*default via 10\.241\.1\.1 dev eth1/);
    expect(call('DEL', withPrev(config, o1.json), { cid: `${cid}-2`, ns: a, ifname: 'eth1' }).code).toBe(0);
    expect(call('DEL', withPrev(config, o0.json), { cid, ns: a, ifname: 'eth0' }).code).toBe(0);
    expect(reservations(net)).toEqual([]);
  });

  it('promiscMode sets the bridge promiscuous; L2-only (no ipam) brings the pod end up without addresses', () => {
    const net = newNet();
    const config = { cniVersion: '1.0.0', name: net.name, type: 'bridge', bridge: net.bridge, promiscMode: true };
    const a = createNetns('tba');
    const out = callOk('ADD', config, { cid: `l2-${rand()}`, ns: a });
    expect(out.json).not.toHaveProperty('ips');
    expect(sh(['ip', '-json', 'link', 'show', net.bridge])).toContain('PROMISC');
    const [l] = JSON.parse(a.exec(['ip', '-json', 'link', 'show', 'eth0'])) as Array<{ flags: string[] }>;
    expect(l?.flags).toContain('UP');
    expect(call('DEL', config, { cid: 'x', ns: a }).code).toBe(0);
  });
});
