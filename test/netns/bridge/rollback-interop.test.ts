/**
 * Leak-freedom and compatibility: a failed ADD leaves nothing behind (veth,
 * reservation, rules), bad configs change nothing, GC removes the rules of
 * attachments that are gone, and the Go reference bridge and ours remove each
 * other's pods (same chain names and comments).
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { binPath } from '../../helpers/plugin.ts';
import { createNetns, removeAllNetns, sh, tryRun } from '../../helpers/netns.ts';
import {
  REFERENCE_DIR,
  bridgePorts,
  call,
  callOk,
  cleanupAll,
  conf,
  iptablesRulesFor,
  linkExists,
  newNet,
  ourCniPath,
  nftRulesFor,
  ping,
  podAddrs,
  rand,
  removeTmpRoot,
  reservations,
  withPrev,
} from './helpers.ts';

afterEach(() => {
  cleanupAll();
  removeAllNetns();
});
afterAll(() => {
  cleanupAll();
  removeAllNetns();
  removeTmpRoot();
});

describe('bridge ADD rollback', () => {
  it.each([
    ['after-ipam', 'iptables'],
    ['after-veth', 'iptables'],
    ['after-pod', 'iptables'],
    ['after-masq', 'iptables'],
    ['before-result', 'iptables'],
    ['after-masq', 'nftables'],
    ['before-result', 'nftables'],
  ])('a failure injected %s (%s) leaves no veth, reservation or rule', (step, backend) => {
    const net = newNet();
    const config = conf(net, '1.0.0', { ipMasqBackend: backend }, [[{ subnet: '10.241.6.0/24' }], [{ subnet: 'fd10:241:6::/64' }]]);
    // A healthy neighbour on the same bridge must survive the rollback untouched.
    const keep = createNetns('tbk');
    const cidKeep = `keep-${rand()}`;
    callOk('ADD', config, { cid: cidKeep, ns: keep });
    const portsBefore = bridgePorts(net.bridge);

    const a = createNetns('tba');
    const cid = `rb-${rand()}`;
    const out = call('ADD', config, { cid, ns: a, env: { TSCNI_TEST_FAIL_AT: step } });
    expect(out.code).toBe(1);
    expect(out.json).toMatchObject({ code: 999, msg: `injected failure at ${step} (TSCNI_TEST_FAIL_AT)` });

    expect(a.exec(['ip', '-o', 'link', 'show'])).not.toContain('eth0');
    expect(bridgePorts(net.bridge)).toEqual(portsBefore);
    expect(reservations(net).sort()).toEqual(['10.241.6.2', 'fd10:241:6::2']);
    expect(iptablesRulesFor(net.name, cid)).toEqual([]);
    expect(nftRulesFor(net.name).filter((l) => l.includes(`id: ${cid}`))).toEqual([]);
    // The neighbour still works and still has its rules.
    expect(ping(keep, '10.241.6.1')).toBe(true);
    if (backend === 'iptables') expect(iptablesRulesFor(net.name, cidKeep)).toHaveLength(8);
    else expect(nftRulesFor(net.name)).toHaveLength(2);
  });

  it('a failure after the spoof check (macspoofchk) removes its nft chains too', () => {
    const net = newNet();
    const config = conf(net, '1.0.0', { macspoofchk: true }, [[{ subnet: '10.241.15.0/24' }]]);
    const a = createNetns('tba');
    const cid = `sp-${rand()}`;
    const out = call('ADD', config, { cid, ns: a, env: { TSCNI_TEST_FAIL_AT: 'before-result' } });
    expect(out.json).toMatchObject({ code: 999, msg: 'injected failure at before-result (TSCNI_TEST_FAIL_AT)' });
    const table = tryRun(['nft', 'list', 'table', 'bridge', 'nat']).stdout;
    expect(table).not.toContain(`cni-br-iface-${cid}`);
    expect(table).not.toContain(`macspoofchk-${cid}`);
    expect(reservations(net)).toEqual([]);
    expect(iptablesRulesFor(net.name, cid)).toEqual([]);
  });

  it('a real failure (CNI_IFNAME already taken in the pod) releases the IP and removes the new veth', () => {
    const net = newNet();
    const config = conf(net, '1.0.0');
    const a = createNetns('tba');
    a.exec(['ip', 'link', 'add', 'eth0', 'type', 'veth', 'peer', 'name', 'eth0p']);
    const out = call('ADD', config, { cid: `dup-${rand()}`, ns: a });
    expect(out.json).toMatchObject({ code: 999, msg: `container interface "eth0" already exists in ${a.path}` });
    expect(bridgePorts(net.bridge)).toEqual([]);
    expect(reservations(net)).toEqual([]);
    expect(sh(['ip', '-o', 'link', 'show', 'type', 'veth'])).not.toMatch(new RegExp(`master ${net.bridge}\\b`));
    // The bridge did not exist before this ADD: the rollback removes it too.
    expect(linkExists(net.bridge)).toBe(false);
  });

  it.each([['10.241.7.0/33'], ['not-a-cidr']])('an invalid IPAM subnet (%s) is refused before any link exists', (subnet) => {
    const net = newNet();
    const a = createNetns('tba');
    const out = call('ADD', conf(net, '1.0.0', {}, [[{ subnet }]]), { cid: `bad-${rand()}`, ns: a });
    expect(out.code).toBe(1);
    expect(out.json).toMatchObject({ code: 7 });
    expect(String(out.json?.msg)).toContain(subnet);
    expect(linkExists(net.bridge)).toBe(false);
    expect(a.exec(['ip', '-o', 'link', 'show'])).not.toContain('eth0');
    expect(reservations(net)).toEqual([]);
  });

  it('an existing non-bridge link of the bridge name is refused before anything changes', () => {
    const net = newNet();
    sh(['ip', 'link', 'add', net.bridge, 'type', 'veth', 'peer', 'name', `${net.bridge}p`]);
    const a = createNetns('tba');
    const out = call('ADD', conf(net, '1.0.0'), { cid: `nb-${rand()}`, ns: a });
    expect(out.json).toMatchObject({ code: 999, msg: `failed to create bridge "${net.bridge}": "${net.bridge}" already exists but is not a bridge` });
    expect(reservations(net)).toEqual([]);
    expect(a.exec(['ip', '-o', 'link', 'show'])).not.toContain('eth0');
  });
});

describe('bridge gateway address and concurrency', () => {
  it('a different address on an existing bridge fails (and rolls back) unless forceAddress', () => {
    const net = newNet();
    sh(['ip', 'link', 'add', net.bridge, 'type', 'bridge']);
    sh(['ip', 'addr', 'add', '10.241.10.254/24', 'dev', net.bridge]);
    const a = createNetns('tba');
    const config = conf(net, '1.0.0', {}, [[{ subnet: '10.241.11.0/24' }]]);
    const out = call('ADD', config, { cid: `fa-${rand()}`, ns: a });
    expect(out.json).toMatchObject({ code: 999, msg: `failed to set bridge addr: "${net.bridge}" already has an IP address different from 10.241.11.1/24` });
    expect(reservations(net)).toEqual([]);
    expect(bridgePorts(net.bridge)).toEqual([]);
    expect(a.exec(['ip', '-o', 'link', 'show'])).not.toContain('eth0');
    const forced = call('ADD', { ...config, forceAddress: true }, { cid: `fb-${rand()}`, ns: a });
    expect(forced.code, forced.stdout).toBe(0);
    const addrs = sh(['ip', '-4', '-o', 'addr', 'show', 'dev', net.bridge]);
    expect(addrs).toContain('10.241.11.1/24');
    expect(addrs).not.toContain('10.241.10.254');
  });

  it('concurrent ADDs on a bridge that does not exist yet all succeed', async () => {
    const net = newNet();
    const config = conf(net, '1.0.0', {}, [[{ subnet: '10.241.12.0/24' }]]);
    const pods = Array.from({ length: 5 }, () => createNetns('tbp'));
    const codes = await Promise.all(
      pods.map(
        (ns, i) =>
          new Promise<number>((resolve) => {
            const env = { PATH: process.env.PATH ?? '', CNI_COMMAND: 'ADD', CNI_CONTAINERID: `cc${i}-${rand()}`, CNI_NETNS: ns.path, CNI_IFNAME: 'eth0', CNI_PATH: ourCniPath() };
            const child = spawn(binPath('bridge'), [], { env, stdio: ['pipe', 'ignore', 'inherit'] });
            child.on('close', (code) => resolve(code ?? -1));
            child.stdin.end(JSON.stringify(config));
          }),
      ),
    );
    expect(codes).toEqual([0, 0, 0, 0, 0]);
    expect(bridgePorts(net.bridge)).toHaveLength(5);
    expect(reservations(net)).toHaveLength(5);
    for (const p of pods) expect(ping(p, '10.241.12.1')).toBe(true);
  });

  it('a netns path with a space and an interface name with "#" are passed through safely', () => {
    const net = newNet();
    const config = conf(net, '1.0.0', {}, [[{ subnet: '10.241.13.0/24' }]]);
    const a = createNetns('tba');
    const dir = mkdtempSync(join(tmpdir(), 'tscni tb '));
    const odd = join(dir, 'pod ns');
    writeFileSync(odd, '');
    sh(['mount', '--bind', a.path, odd]);
    try {
      const cid = `sp-${rand()}`;
      const out = call('ADD', config, { cid, netnsPath: odd, ifname: 'e#0' });
      expect(out.code, out.stdout).toBe(0);
      expect(podAddrs(a, 'e#0')).toEqual(['10.241.13.2/24']);
      expect(call('CHECK', withPrev(config, out.json), { cid, netnsPath: odd, ifname: 'e#0' }).code).toBe(0);
      expect(call('DEL', withPrev(config, out.json), { cid, netnsPath: odd, ifname: 'e#0' }).code).toBe(0);
      expect(podAddrs(a, 'e#0')).toEqual([]);
    } finally {
      sh(['umount', odd]);
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it.each([[`e"''mtu''68`], ['e=0;{x}'], ['e#0\\']])('interface name %s reaches the kernel as one name, with macspoofchk (iptables masquerade and nft spoof check)', (ifname) => {
    const net = newNet();
    const config = conf(net, '1.0.0', { macspoofchk: true }, [[{ subnet: '10.241.14.0/24' }]]);
    const a = createNetns('tba');
    const cid = `q-${rand()}`;
    const out = call('ADD', config, { cid, ns: a, ifname });
    expect(out.code, out.stdout).toBe(0);
    // Exactly one interface with exactly that name, with the default MTU: no word of it was read as an option.
    const links = JSON.parse(a.exec(['ip', '-json', 'link', 'show'])) as Array<{ ifname: string; mtu: number }>;
    expect(links.map((l) => l.ifname).sort()).toEqual([ifname, 'lo'].sort());
    expect(links.find((l) => l.ifname === ifname)?.mtu).toBe(1500);
    expect(podAddrs(a, ifname)).toEqual(['10.241.14.2/24']);
    expect(call('CHECK', withPrev(config, out.json), { cid, ns: a, ifname }).code).toBe(0);
    const del = call('DEL', withPrev(config, out.json), { cid, ns: a, ifname });
    expect(del.code, del.stdout).toBe(0);
    // Nothing left: the spoof-check chains and jump, the masquerade rules.
    expect(sh(['nft', 'list', 'table', 'bridge', 'nat'])).not.toContain(`cni-br-iface-${cid}`);
    expect(iptablesRulesFor(net.name, cid)).toEqual([]);
    expect(call('DEL', withPrev(config, out.json), { cid, ns: a, ifname }).code).toBe(0);
  });

  it('disableContainerInterface (L2, no ipam) leaves the pod end down', () => {
    const net = newNet();
    const a = createNetns('tba');
    const out = call('ADD', { cniVersion: '1.0.0', name: net.name, type: 'bridge', bridge: net.bridge, disableContainerInterface: true }, { cid: `dc-${rand()}`, ns: a });
    expect(out.code, out.stdout).toBe(0);
    const [l] = JSON.parse(a.exec(['ip', '-json', 'link', 'show', 'eth0'])) as Array<{ flags: string[] }>;
    expect(l?.flags).not.toContain('UP');
    expect(bridgePorts(net.bridge)).toHaveLength(1);
  });
});

describe('bridge config errors change nothing', () => {
  it.each([
    [{ hairpinMode: true, promiscMode: true }, 7, 'cannot set hairpin mode and promiscuous mode at the same time'],
    [{ vlan: 5000 }, 7, 'invalid VLAN ID 5000 (must be between 0 and 4094)'],
    [{ vlanTrunk: [{ minID: 10 }] }, 7, 'minID and maxID should be configured simultaneously, maxID is missing'],
    [{ disableContainerInterface: true }, 7, 'cannot use IPAM when DisableContainerInterface flag is set'],
    [{ ipMasqBackend: 'pf' }, 2, 'unknown ipmasq backend "pf"'],
    [{ mtu: 'big' }, 7, 'invalid "mtu": must be an integer'],
  ])('%j -> code %i', (extra, code, msg) => {
    const net = newNet();
    const a = createNetns('tba');
    const out = call('ADD', conf(net, '1.0.0', extra), { cid: `bad-${rand()}`, ns: a });
    expect(out.json).toMatchObject({ code, msg });
    expect(linkExists(net.bridge)).toBe(false);
    expect(reservations(net)).toEqual([]);
    expect(a.exec(['ip', '-o', 'link', 'show'])).not.toContain('eth0');
  });
});

describe('bridge GC and STATUS', () => {
  it('GC removes the masquerade rules of attachments that are not valid any more, and keeps the others', () => {
    const net = newNet();
    const config = conf(net, '1.0.0', {}, [[{ subnet: '10.241.7.0/24' }], [{ subnet: 'fd10:241:7::/64' }]]);
    const nftConfig = conf(net, '1.0.0', { ipMasqBackend: 'nftables' }, [[{ subnet: '10.241.7.0/24' }]]);
    const [a, b, c] = [createNetns('tba'), createNetns('tbb'), createNetns('tbc')];
    const [cidA, cidB, cidC] = [`gca-${rand()}`, `gcb-${rand()}`, `gcc-${rand()}`];
    callOk('ADD', config, { cid: cidA, ns: a });
    callOk('ADD', config, { cid: cidB, ns: b });
    callOk('ADD', nftConfig, { cid: cidC, ns: c });
    expect(nftRulesFor(net.name)).toHaveLength(1);
    // GC goes to host-local too, which releases the addresses of the stale attachments.
    const gcConf = { ...conf(net, '1.1.0', {}, [[{ subnet: '10.241.7.0/24' }], [{ subnet: 'fd10:241:7::/64' }]]), 'cni.dev/valid-attachments': [{ containerID: cidA, ifname: 'eth0' }] };
    const out = call('GC', gcConf, { cid: 'gc' });
    expect(out.code, out.stdout + out.stderr).toBe(0);
    expect(iptablesRulesFor(net.name, cidA)).toHaveLength(8);
    expect(iptablesRulesFor(net.name, cidB)).toEqual([]);
    expect(nftRulesFor(net.name)).toEqual([]);
    expect(reservations(net).sort()).toEqual(['10.241.7.2', 'fd10:241:7::2']);
  });

  it('STATUS succeeds and is refused before 1.1.0', () => {
    const net = newNet();
    const ok = call('STATUS', conf(net, '1.1.0'), { cid: 's' });
    expect(ok.code, ok.stdout).toBe(0);
    // Forwarded to host-local: an exhausted pool is reported as code 50.
    const tiny = conf(net, '1.1.0', {}, [[{ subnet: '10.241.14.0/30' }]]);
    // A /30 has one address left once the gateway is taken out.
    callOk('ADD', tiny, { cid: `st-${rand()}`, ns: createNetns('tbs') });
    expect(call('STATUS', tiny, { cid: 's' }).json).toMatchObject({ code: 50 });
    expect(call('STATUS', conf(net, '1.0.0'), { cid: 's' }).json).toMatchObject({ code: 1, msg: 'config version does not allow STATUS' });
  });
});

describe('interop with the Go reference bridge', () => {
  const REF = `${REFERENCE_DIR}/bridge`;

  it('ours deletes a pod the reference added (rules and reservation), and the reference deletes ours', () => {
    const net = newNet();
    const config = conf(net, '1.0.0', {}, [[{ subnet: '10.241.8.0/24' }]]);
    const [a, b] = [createNetns('tba'), createNetns('tbb')];
    const cidA = `ra-${rand()}`;
    const cidB = `rb-${rand()}`;

    const refAdd = call('ADD', config, { cid: cidA, ns: a, plugin: REF });
    expect(refAdd.code, refAdd.stdout + refAdd.stderr).toBe(0);
    const oursAdd = call('ADD', config, { cid: cidB, ns: b, path: undefined });
    expect(oursAdd.code, oursAdd.stdout).toBe(0);
    expect(ping(a, '10.241.8.3')).toBe(true);
    expect(iptablesRulesFor(net.name, cidA)).toHaveLength(4);
    expect(iptablesRulesFor(net.name, cidB)).toHaveLength(4);
    // Same tags: the reference's rules look exactly like ours.
    const norm = (rules: string[], cid: string, ip: string) => rules.map((r) => r.replaceAll(cid, 'CID').replaceAll(ip, 'IP').replace(/CNI-[0-9a-f]{24}/g, 'CHAIN'));
    expect(norm(iptablesRulesFor(net.name, cidA), cidA, '10.241.8.2').sort()).toEqual(norm(iptablesRulesFor(net.name, cidB), cidB, '10.241.8.3').sort());

    // Ours removes the reference's pod, with the netns already gone.
    const pathA = a.path;
    a.remove();
    const d1 = call('DEL', withPrev(config, refAdd.json), { cid: cidA, netnsPath: pathA });
    expect(d1.code, d1.stdout).toBe(0);
    expect(iptablesRulesFor(net.name, cidA)).toEqual([]);
    expect(reservations(net)).toEqual(['10.241.8.3']);

    // The reference removes ours (it needs the live link to find the addresses).
    const d2 = call('DEL', withPrev(config, oursAdd.json), { cid: cidB, ns: b, plugin: REF });
    expect(d2.code, d2.stdout + d2.stderr).toBe(0);
    expect(iptablesRulesFor(net.name, cidB)).toEqual([]);
    expect(reservations(net)).toEqual([]);
    expect(podAddrs(b)).toEqual([]);
  });

  it('CHECK from ours accepts a pod the reference added', () => {
    const net = newNet();
    const config = conf(net, '1.0.0', {}, [[{ subnet: '10.241.8.0/24' }]]);
    const a = createNetns('tba');
    const cid = `rc-${rand()}`;
    const refAdd = call('ADD', config, { cid, ns: a, plugin: REF });
    expect(refAdd.code, refAdd.stdout).toBe(0);
    const chk = call('CHECK', withPrev(config, refAdd.json), { cid, ns: a });
    expect(chk.code, chk.stdout + chk.stderr).toBe(0);
  });
});
