/**
 * firewall plugin on the real kernel: bridge + firewall chained as a runtime
 * does, both backends, real traffic (ping between pods, a published port
 * fetched from the host), and proof that the last DEL leaves the filter
 * table and nft ruleset as they were.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { callPlugin, callPluginOk } from '../../helpers/plugin.ts';
import { removeSharedIfNew, snapshotShared } from '../../helpers/portmap-shared.ts';
import { addPod, cleanupAll, delPod, firewall, fwConf, newNet, pings, ruleLines, sameAsBefore, snapshotFirewall, tryRun, type Backend, type FwPod } from './helpers.ts';

const children: ChildProcess[] = [];
let before = '';
// portmap's shared chains and nft table (the isolated test publishes a port) stay after its last pod, as the reference's do: removed only if this file made them.
const portmapShared = snapshotShared();

beforeAll(() => {
  before = snapshotFirewall();
});

afterAll(() => {
  for (const c of children) if (c.exitCode === null) c.kill();
  cleanupAll();
  removeSharedIfNew(portmapShared);
});

const SERVER = `require('node:net').createServer((c) => c.end('pong\\n')).listen(Number(process.argv[1]), '0.0.0.0', () => console.log('ready'))`;

const CLIENT = `setTimeout(() => process.exit(1), 2500); let o = ''; require('node:net').connect(Number(process.argv[2]), process.argv[1]).on('data', (d) => (o += d)).on('end', () => { console.log(o.trim()); process.exit(0); }).on('error', () => process.exit(1))`;

/** Fetch from the host: the server's answer, or undefined. */
function request(host: string, port: number): string | undefined {
  const r = spawnSync(process.execPath, ['-e', CLIENT, host, String(port)], { encoding: 'utf8', timeout: 5000 });
  return r.status === 0 ? r.stdout.trim() : undefined;
}

async function startServer(pod: FwPod, port: number): Promise<void> {
  const child = spawn('nsenter', [`--net=${pod.ns.path}`, '--', process.execPath, '-e', SERVER, String(port)], { stdio: ['ignore', 'pipe', 'inherit'] });
  children.push(child);
  await new Promise<void>((resolve, reject) => {
    child.stdout?.once('data', () => resolve());
    child.once('exit', (c) => reject(new Error(`server exited with ${c}`)));
  });
}

describe.each(['iptables', 'nftables'] as Backend[])('firewall (%s)', (backend) => {
  it('same-bridge: a network reaches itself, not the other network; DEL without prevResult uses the record; the last DEL leaves nothing', () => {
    const a = newNet(backend, 'same-bridge', { v6: true });
    const b = newNet(backend, 'same-bridge');
    const a1 = addPod(a);
    const a2 = addPod(a);
    const b1 = addPod(b);
    expect(pings(a1, a2.ip4)).toBe(true);
    expect(pings(a1, b1.ip4)).toBe(false);
    expect(pings(b1, a2.ip4)).toBe(false);
    expect(firewall('CHECK', a, a1).code).toBe(0);
    expect(ruleLines(a1.ip4).length).toBeGreaterThan(0);
    expect(ruleLines(a1.ip6 as string).length).toBeGreaterThan(0);
    // DEL without prevResult: from our record, exactly this pod's rules.
    delPod(a, a1, false);
    expect(ruleLines(a1.ip4)).toEqual([]);
    expect(ruleLines(a1.ip6 as string)).toEqual([]);
    expect(ruleLines(a2.ip4).length).toBeGreaterThan(0);
    expect(pings(b1, a2.ip4)).toBe(false);
    delPod(b, b1);
    expect(ruleLines(b.bridge)).toEqual([]);
    // iptables keeps stage 2's drop for the remaining isolated bridge; nftables needs no rule while no other bridge is isolated.
    if (backend === 'iptables') expect(ruleLines(a.bridge).length).toBeGreaterThan(0);
    delPod(a, a2);
    expect(sameAsBefore(before, snapshotFirewall()), snapshotFirewall()).toBe(true);
    // The networks' record folders go with their last records.
    expect(existsSync(join(a.stateDir, 'attachments', a.name))).toBe(false);
    expect(existsSync(join(b.stateDir, 'attachments', b.name))).toBe(false);
  });

  it('isolated: pods on one bridge cannot reach each other, a published port still answers from the host', async () => {
    const a = newNet(backend, 'isolated');
    const port = 31000 + Math.floor(Math.random() * 900);
    const a1 = addPod(a);
    const a2 = addPod(a);
    const pm = { cniVersion: a.version, name: a.name, type: 'portmap', backend, stateDir: `${a.stateDir}-pm`, runtimeConfig: { portMappings: [{ hostPort: port, containerPort: 8080, protocol: 'tcp' }] }, prevResult: a2.result };
    callPluginOk('portmap', { command: 'ADD', containerId: a2.cid, netns: a2.ns.path, ifname: 'eth0', config: pm });
    try {
      await startServer(a2, 8080);
      expect(pings(a1, a2.ip4)).toBe(false);
      expect(pings(a1, `10.248.${a.index}.1`)).toBe(true);
      expect(request('127.0.0.1', port)).toBe('pong');
      expect(request(a2.ip4, 8080)).toBe('pong');
      expect(firewall('CHECK', a, a2).code).toBe(0);
    } finally {
      callPluginOk('portmap', { command: 'DEL', containerId: a2.cid, netns: a2.ns.path, ifname: 'eth0', config: pm });
    }
    delPod(a, a1);
    delPod(a, a2);
    expect(sameAsBefore(before, snapshotFirewall()), snapshotFirewall()).toBe(true);
  });

  it('CHECK names a missing rule; GC removes exactly the attachments not valid', () => {
    const a = newNet(backend, 'same-bridge');
    const a1 = addPod(a);
    const a2 = addPod(a);
    if (backend === 'iptables') tryRun(['iptables', '-w', '-t', 'filter', '-D', 'CNI-FORWARD', '-s', `${a1.ip4}/32`, '-j', 'ACCEPT']);
    else tryRun(['nft', 'delete', 'element', 'inet', 'tscni_firewall', 'pods4', `{ ${a1.ip4} }`]);
    const out = firewall('CHECK', a, a1);
    expect(out.code).not.toBe(0);
    expect(out.stdout).toContain(a1.ip4);
    expect(firewall('CHECK', a, a2).code).toBe(0);
    const gc = callPlugin('firewall', { command: 'GC', config: { ...fwConf(a, undefined), 'cni.dev/valid-attachments': [{ containerID: a2.cid, ifname: 'eth0' }] } });
    expect(gc.code).toBe(0);
    expect(ruleLines(a1.ip4)).toEqual([]);
    expect(firewall('CHECK', a, a2).code).toBe(0);
    delPod(a, a1);
    delPod(a, a2);
    expect(sameAsBefore(before, snapshotFirewall()), snapshotFirewall()).toBe(true);
  });
});

describe('firewall (protocol)', () => {
  it('needs prevResult on ADD, rejects bad keys with code 7, supports 0.4.0 and later only, STATUS works', () => {
    const a = newNet('iptables', 'open');
    const base = { containerId: 'tf-x', netns: '/run/netns/none', ifname: 'eth0' };
    expect(callPlugin('firewall', { ...base, command: 'ADD', config: fwConf(a, undefined) }).json?.code).toBe(7);
    expect(callPlugin('firewall', { ...base, command: 'ADD', config: { ...fwConf(a, undefined), ingressPolicy: 'closed' } }).json?.code).toBe(7);
    expect(callPlugin('firewall', { ...base, command: 'ADD', config: { ...fwConf(a, undefined), backend: 'firewalld' } }).json?.code).toBe(7);
    expect(callPlugin('firewall', { ...base, command: 'ADD', config: { ...fwConf(a, undefined), iptablesAdminChainName: 'a b' } }).json?.code).toBe(7);
    expect(callPlugin('firewall', { ...base, command: 'ADD', config: { ...fwConf(a, { cniVersion: '0.3.1', ips: [] }), cniVersion: '0.3.1' } }).json?.code).toBe(1);
    // same-bridge needs the bridge in prevResult.
    const noIf = { cniVersion: '1.1.0', ips: [{ address: '10.248.250.2/24' }] };
    expect(callPlugin('firewall', { ...base, command: 'ADD', config: { ...fwConf(a, noIf), ingressPolicy: 'same-bridge' } }).json?.code).toBe(7);
    for (const backend of ['iptables', 'nftables']) {
      expect(callPlugin('firewall', { command: 'STATUS', config: { ...fwConf(a, undefined), backend } }).code).toBe(0);
    }
  });

  it.each(['0.4.0', '1.0.0', '1.1.0'])('ADD/CHECK/DEL with cniVersion %s (open policy, custom admin chain)', (version) => {
    const a = newNet('iptables', 'open', { version });
    const pod = addPod(a, { iptablesAdminChainName: 'TF-ADMIN' });
    expect(tryRun(['iptables', '-w', '-t', 'filter', '-C', 'CNI-FORWARD', '-m', 'comment', '--comment', 'CNI firewall plugin admin overrides', '-j', 'TF-ADMIN']).code).toBe(0);
    expect(pod.result.cniVersion).toBe(version);
    expect(firewall('CHECK', a, pod, true, { iptablesAdminChainName: 'TF-ADMIN' }).code).toBe(0);
    delPod(a, pod);
    expect(sameAsBefore(before, snapshotFirewall()), snapshotFirewall()).toBe(true);
  });

  it('drop-in: the reference firewall removes the rules we made, and we remove the reference\'s', () => {
    // Debian's reference (1.1.1) speaks up to 1.0.0.
    const a = newNet('iptables', 'open', { version: '1.0.0' });
    const pod = addPod(a);
    const ref = (cmd: string, cid: string, prev: unknown) =>
      tryRun(['env', `CNI_COMMAND=${cmd}`, `CNI_CONTAINERID=${cid}`, 'CNI_NETNS=' + pod.ns.path, 'CNI_IFNAME=eth0', 'CNI_PATH=/usr/lib/cni', '/usr/lib/cni/firewall'], JSON.stringify({ ...fwConf(a, prev), backend: 'iptables', stateDir: undefined }));
    const refDel = ref('DEL', pod.cid, pod.result);
    expect(refDel.code, refDel.stdout + refDel.stderr).toBe(0);
    expect(ruleLines(pod.ip4)).toEqual([]);
    expect(ref('ADD', pod.cid, pod.result).code).toBe(0);
    expect(ruleLines(pod.ip4).length).toBe(2);
    expect(firewall('CHECK', a, pod).code).toBe(0);
    delPod(a, pod);
    expect(ruleLines(pod.ip4)).toEqual([]);
    expect(sameAsBefore(before, snapshotFirewall()), snapshotFirewall()).toBe(true);
  });
});
