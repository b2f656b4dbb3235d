/**
 * tuning on the real kernel: bridge + tuning chained as a runtime does
 * (bridges tt*, 10.248.200-249.0/24); every key applied inside the pod,
 * checked with iproute2 independently, CHECK, and DEL putting the original
 * values back (also by the reference plugin, from our backup file).
 */
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { afterAll, describe, expect, it } from 'vitest';
import { createNetns, removeAllNetns, tryRun, type TestNetns } from '../../helpers/netns.ts';
import { callPlugin, callPluginOk } from '../../helpers/plugin.ts';

const tmp = mkdtempSync(join(tmpdir(), 'tscni-tt-'));
const bridges: string[] = [];
let index = 200 + Math.floor(Math.random() * 40);

afterAll(() => {
  removeAllNetns();
  for (const b of bridges) tryRun(['ip', 'link', 'del', b]);
  rmSync(tmp, { recursive: true, force: true });
});

interface Pod {
  ns: TestNetns;
  cid: string;
  net: string;
  bridgeConf: Record<string, unknown>;
  result: Record<string, unknown>;
}

function addBridgePod(version = '1.1.0'): Pod {
  const id = randomBytes(3).toString('hex');
  const bridge = `tt${id}`;
  bridges.push(bridge);
  const n = index++;
  const net = `tscni-tt-${id}`;
  const bridgeConf = { cniVersion: version, name: net, type: 'bridge', bridge, isGateway: true, ipam: { type: 'host-local', dataDir: join(tmp, `ipam-${id}`), ranges: [[{ subnet: `10.248.${n}.0/24` }]] } };
  const ns = createNetns('tt');
  const cid = `tt-${id}`;
  const br = callPluginOk('bridge', { command: 'ADD', containerId: cid, netns: ns.path, ifname: 'eth0', config: bridgeConf });
  return { ns, cid, net, bridgeConf, result: br.json as Record<string, unknown> };
}

const tuningConf = (pod: Pod, keys: Record<string, unknown>, prev = true) => ({
  cniVersion: pod.result.cniVersion,
  name: pod.net,
  type: 'tuning',
  dataDir: join(tmp, 'tuning'),
  ...keys,
  ...(prev ? { prevResult: pod.result } : {}),
});
const tuning = (cmd: string, pod: Pod, keys: Record<string, unknown>, extra: { args?: string } = {}) =>
  callPlugin('tuning', { command: cmd, containerId: pod.cid, netns: pod.ns.path, ifname: 'eth0', config: tuningConf(pod, keys), ...extra });

function linkState(pod: Pod): { mac: string; mtu: number; promisc: boolean; allmulti: boolean; txqlen: number } {
  const j = JSON.parse(pod.ns.exec(['ip', '-d', '-j', 'link', 'show', 'eth0']))[0] as { address: string; mtu: number; flags: string[]; promiscuity: number; txqlen: number };
  return { mac: j.address, mtu: j.mtu, promisc: j.promiscuity > 0, allmulti: j.flags.includes('ALLMULTI'), txqlen: j.txqlen };
}
const sysctl = (pod: Pod, key: string) => pod.ns.exec(['cat', `/proc/sys/${key}`]).trim();

describe('tuning', () => {
  it('applies every key inside the pod, CHECK compares, DEL restores the originals', () => {
    const pod = addBridgePod();
    const before = linkState(pod);
    const arp = sysctl(pod, 'net/ipv4/conf/eth0/arp_notify');
    const keys = { mac: '02:48:00:00:00:01', mtu: 1400, promisc: true, allmulti: true, txQLen: 123, sysctl: { 'net.ipv4.conf.IFNAME.arp_notify': arp === '1' ? '0' : '1' } };
    const out = tuning('ADD', pod, keys);
    expect(out.code, out.stdout).toBe(0);
    expect((out.json?.interfaces as { name: string; mac: string }[]).find((i) => i.name === 'eth0')?.mac).toBe('02:48:00:00:00:01');
    expect(linkState(pod)).toEqual({ mac: '02:48:00:00:00:01', mtu: 1400, promisc: true, allmulti: true, txqlen: 123 });
    expect(sysctl(pod, 'net/ipv4/conf/eth0/arp_notify')).toBe(arp === '1' ? '0' : '1');
    expect(tuning('CHECK', pod, keys).code).toBe(0);
    // The pod still talks to its gateway with the new MAC.
    expect(pod.ns.tryExec(['ping', '-c', '1', '-W', '2', ((pod.result.ips as { gateway: string }[])[0] as { gateway: string }).gateway]).code).toBe(0);
    pod.ns.exec(['ip', 'link', 'set', 'eth0', 'txqueuelen', '77']);
    const bad = tuning('CHECK', pod, keys);
    expect(bad.code).not.toBe(0);
    expect(bad.stdout).toContain('transmit queue length is 77');
    expect(tuning('DEL', pod, keys).code).toBe(0);
    expect(linkState(pod)).toEqual(before);
    expect(sysctl(pod, 'net/ipv4/conf/eth0/arp_notify')).toBe(arp);
    expect(existsSync(join(tmp, 'tuning', `${pod.cid}_eth0.json`))).toBe(false);
    callPluginOk('bridge', { command: 'DEL', containerId: pod.cid, netns: pod.ns.path, ifname: 'eth0', config: pod.bridgeConf });
  });

  it('MAC precedence: config < CNI_ARGS MAC < runtimeConfig.mac < args.cni.mac; DEL with the netns gone forgets the backup', () => {
    const pod = addBridgePod('1.0.0');
    const keys = { mac: '02:48:00:00:00:02', runtimeConfig: { mac: '02:48:00:00:00:03' } };
    expect(tuning('ADD', pod, keys, { args: 'IgnoreUnknown=1;MAC=02:48:00:00:00:04;K8S_POD_NAME=x' }).code).toBe(0);
    expect(linkState(pod).mac).toBe('02:48:00:00:00:03');
    expect(tuning('ADD', pod, { ...keys, args: { cni: { mac: '02:48:00:00:00:05', mtu: 1300 } } }).code).toBe(0);
    expect(linkState(pod)).toMatchObject({ mac: '02:48:00:00:00:05', mtu: 1300 });
    expect(tuning('ADD', pod, { mac: '02:48:00:00:00:06' }, { args: 'MAC=02:48:00:00:00:07' }).code).toBe(0);
    expect(linkState(pod).mac).toBe('02:48:00:00:00:07');
    callPluginOk('bridge', { command: 'DEL', containerId: pod.cid, netns: pod.ns.path, ifname: 'eth0', config: pod.bridgeConf });
    pod.ns.remove();
    expect(tuning('DEL', pod, keys).code).toBe(0);
    expect(existsSync(join(tmp, 'tuning', `${pod.cid}_eth0.json`))).toBe(false);
  });

  it('rejects sysctls outside /proc/sys/net and bad values with code 7 before changing anything; needs prevResult; GC drops stale backups', () => {
    const pod = addBridgePod();
    const before = linkState(pod);
    for (const keys of [{ sysctl: { 'kernel.hostname': 'x' } }, { sysctl: { 'net/../kernel/hostname': 'x' } }, { mtu: 1400, mac: 'zz' }, { txQLen: -1 }, { promisc: 'yes' }]) {
      expect(tuning('ADD', pod, keys).json?.code).toBe(7);
    }
    expect(linkState(pod)).toEqual(before);
    expect(callPlugin('tuning', { command: 'ADD', containerId: pod.cid, netns: pod.ns.path, ifname: 'eth0', config: tuningConf(pod, { mtu: 1400 }, false) }).json?.code).toBe(7);
    expect(tuning('ADD', pod, { mtu: 1400 }).code).toBe(0);
    const gc = callPlugin('tuning', { command: 'GC', config: { ...tuningConf(pod, {}, false), 'cni.dev/valid-attachments': [] } });
    expect(gc.code).toBe(0);
    expect(existsSync(join(tmp, 'tuning', `${pod.cid}_eth0.json`))).toBe(false);
    expect(callPlugin('tuning', { command: 'STATUS', config: tuningConf(pod, {}, false) }).code).toBe(0);
    callPluginOk('bridge', { command: 'DEL', containerId: pod.cid, netns: pod.ns.path, ifname: 'eth0', config: pod.bridgeConf });
  });

  it('drop-in: the reference tuning restores the originals (MTU, MAC: the keys Debian 1.1.1 knows) from our backup file', () => {
    const pod = addBridgePod('1.0.0');
    const before = linkState(pod);
    expect(tuning('ADD', pod, { mtu: 1280, mac: '02:48:00:00:00:09' }).code).toBe(0);
    const r = tryRun(
      ['env', 'CNI_COMMAND=DEL', `CNI_CONTAINERID=${pod.cid}`, `CNI_NETNS=${pod.ns.path}`, 'CNI_IFNAME=eth0', 'CNI_PATH=/usr/lib/cni', '/usr/lib/cni/tuning'],
      JSON.stringify(tuningConf(pod, { mtu: 1280, mac: '02:48:00:00:00:09' })),
    );
    expect(r.code, r.stdout).toBe(0);
    expect(linkState(pod)).toEqual(before);
    callPluginOk('bridge', { command: 'DEL', containerId: pod.cid, netns: pod.ns.path, ifname: 'eth0', config: pod.bridgeConf });
  });
});
