/**
 * Fixtures for the portmap tests: pods on our bridge (bridges tp*, subnets in
 * 10.242.0.0/16 and fd42:242::/48), portmap chained after it the way a
 * runtime chains it, small TCP/UDP servers in pods, an "outside" host, and a
 * cleanup that removes exactly what the tests made.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createNetns, sh, tryRun, type TestNetns } from '../../helpers/netns.ts';
import { callPlugin, callPluginOk, type PluginOutput } from '../../helpers/plugin.ts';
import { removeSharedIfNew, snapshotShared } from '../../helpers/portmap-shared.ts';

export const rand = (n = 3) => randomBytes(n).toString('hex');
export type Backend = 'iptables' | 'nftables';
export const BACKENDS: readonly Backend[] = ['iptables', 'nftables'];

const tmpRoot = mkdtempSync(join(tmpdir(), 'tscni-tp-'));
const bridges = new Set<string>();
const hostIfs = new Set<string>();
const children: ChildProcess[] = [];
let port = 30000 + Math.floor(Math.random() * 400);

/** A fresh host port in the test range 30000-30999. */
export function nextPort(): number {
  port = port >= 30990 ? 30000 : port + 1;
  return port;
}

export interface Net {
  name: string;
  bridge: string;
  index: number;
  v6: boolean;
  dataDir: string;
  stateDir: string;
  backend: Backend;
  version: string;
}

let netIndex = 1;

export function newNet(backend: Backend, opts: { v6?: boolean; version?: string } = {}): Net {
  const id = rand();
  const net: Net = {
    name: `tscni-tp-${id}`,
    bridge: `tp${id}`,
    index: netIndex++,
    v6: opts.v6 ?? false,
    dataDir: join(tmpRoot, `ipam-${id}`),
    stateDir: join(tmpRoot, `pm-${id}`),
    backend,
    version: opts.version ?? '1.1.0',
  };
  bridges.add(net.bridge);
  return net;
}

export function gateway4(net: Net): string {
  return `10.242.${net.index}.1`;
}

export function bridgeConf(net: Net): Record<string, unknown> {
  const ranges: unknown[] = [[{ subnet: `10.242.${net.index}.0/24` }]];
  if (net.v6) ranges.push([{ subnet: `fd42:242:${net.index}::/64` }]);
  return {
    cniVersion: net.version,
    name: net.name,
    type: 'bridge',
    bridge: net.bridge,
    isDefaultGateway: true,
    hairpinMode: true,
    ipam: { type: 'host-local', dataDir: net.dataDir, ranges },
  };
}

export interface Mapping {
  hostPort: number;
  containerPort: number;
  protocol?: string;
  hostIP?: string;
}

export function portmapConf(net: Net, prevResult: unknown, mappings: Mapping[] | undefined, extra: Record<string, unknown> = {}): Record<string, unknown> {
  const c: Record<string, unknown> = { cniVersion: net.version, name: net.name, type: 'portmap', backend: net.backend, stateDir: net.stateDir, ...extra };
  if (prevResult !== undefined) c.prevResult = prevResult;
  if (mappings) c.runtimeConfig = { portMappings: mappings.map((m) => ({ protocol: 'tcp', ...m })) };
  return c;
}

export interface Pod {
  ns: TestNetns;
  cid: string;
  result: Record<string, unknown>;
  ip4: string;
  ip6?: string;
  mappings: Mapping[];
}

/** bridge ADD, then portmap ADD with the bridge result as prevResult (what libcni does). */
export function addPod(net: Net, mappings: Mapping[], extra: Record<string, unknown> = {}): Pod {
  const ns = createNetns('tp');
  const cid = `tp-${rand(6)}`;
  const br = callPluginOk('bridge', { command: 'ADD', containerId: cid, netns: ns.path, ifname: 'eth0', config: bridgeConf(net) });
  const pm = callPluginOk('portmap', { command: 'ADD', containerId: cid, netns: ns.path, ifname: 'eth0', config: portmapConf(net, br.json, mappings, extra) });
  const ips = ((br.json?.ips as { address: string }[]) ?? []).map((i) => i.address.split('/')[0] as string);
  return { ns, cid, result: pm.json as Record<string, unknown>, ip4: ips.find((i) => !i.includes(':')) as string, ip6: ips.find((i) => i.includes(':')), mappings };
}

export function portmap(command: string, net: Net, pod: Pod, mappings: Mapping[] | undefined, extra: Record<string, unknown> = {}): PluginOutput {
  return callPlugin('portmap', { command, containerId: pod.cid, netns: pod.ns.path, ifname: 'eth0', config: portmapConf(net, pod.result, mappings, extra) });
}

/** portmap DEL (with or without the mappings), then bridge DEL. */
export function delPod(net: Net, pod: Pod, withMappings: boolean): void {
  const out = portmap('DEL', net, pod, withMappings ? pod.mappings : undefined);
  if (out.code !== 0) throw new Error(`portmap DEL failed: ${out.stdout}`);
  callPluginOk('bridge', { command: 'DEL', containerId: pod.cid, netns: pod.ns.path, ifname: 'eth0', config: bridgeConf(net) });
}

const SERVER = `
const [proto, port, name] = process.argv.slice(1);
if (proto === 'udp') {
  const s = require('node:dgram').createSocket({ type: 'udp6', ipv6Only: false });
  s.on('message', (m, r) => s.send(name + ' ' + r.address.replace('::ffff:', ''), r.port, r.address));
  s.bind(Number(port), '::', () => console.log('ready'));
} else {
  require('node:net').createServer((c) => c.end(name + ' ' + c.remoteAddress.replace('::ffff:', '') + '\\n')).listen(Number(port), '::', () => console.log('ready'));
}`;

/** A server in `ns` answering "<name> <peer address>" on TCP or UDP `port` (both families). */
export async function startServer(ns: TestNetns, proto: 'tcp' | 'udp', port: number, name: string): Promise<void> {
  const child = spawn('nsenter', [`--net=${ns.path}`, '--', process.execPath, '-e', SERVER, proto, String(port), name], { stdio: ['ignore', 'pipe', 'inherit'] });
  children.push(child);
  await new Promise<void>((resolve, reject) => {
    child.stdout?.once('data', () => resolve());
    child.once('exit', (c) => reject(new Error(`server exited with ${c}`)));
  });
}

const CLIENT = `
const [proto, host, port] = process.argv.slice(1);
const fail = (e) => { console.error(String(e)); process.exit(1); };
setTimeout(() => fail('timeout'), 2500);
if (proto === 'udp') {
  const s = require('node:dgram').createSocket(host.includes(':') ? 'udp6' : 'udp4');
  s.on('message', (m) => { console.log(String(m)); process.exit(0); });
  s.send('hi', Number(port), host, (e) => e && fail(e));
} else {
  let out = '';
  require('node:net').connect(Number(port), host).on('data', (d) => (out += d)).on('end', () => { console.log(out.trim()); process.exit(0); }).on('error', fail);
}`;

/** Connect from `ns` (or the host when undefined); returns the server's answer or undefined. */
export function request(ns: TestNetns | undefined, proto: 'tcp' | 'udp', host: string, port: number): string | undefined {
  const argv = [process.execPath, '-e', CLIENT, proto, host, String(port)];
  const full = ns ? ['nsenter', `--net=${ns.path}`, '--', ...argv] : argv;
  const r = spawnSync(full[0] as string, full.slice(1), { encoding: 'utf8', timeout: 5000 });
  return r.status === 0 ? r.stdout.trim() : undefined;
}

export interface Outside {
  ns: TestNetns;
  hostIf: string;
  host4: string;
  peer4: string;
  host6: string;
  peer6: string;
}

/** An "outside" host on its own veth; the host's address on that link is what it connects to. */
export function createOutside(): Outside {
  const ns = createNetns('tpout');
  const i = 200 + (netIndex++ % 50);
  const o: Outside = { ns, hostIf: `tpo${rand()}`, host4: `10.242.${i}.1`, peer4: `10.242.${i}.2`, host6: `fd42:242:${i}::1`, peer6: `fd42:242:${i}::2` };
  hostIfs.add(o.hostIf);
  sh(['ip', 'link', 'add', o.hostIf, 'type', 'veth', 'peer', 'name', 'eth0', 'netns', ns.path]);
  sh(['ip', 'addr', 'add', `${o.host4}/24`, 'dev', o.hostIf]);
  sh(['ip', 'addr', 'add', `${o.host6}/64`, 'dev', o.hostIf, 'nodad']);
  sh(['ip', 'link', 'set', o.hostIf, 'up']);
  ns.exec(['ip', 'addr', 'add', `${o.peer4}/24`, 'dev', 'eth0']);
  ns.exec(['ip', 'addr', 'add', `${o.peer6}/64`, 'dev', 'eth0', 'nodad']);
  ns.exec(['ip', 'link', 'set', 'eth0', 'up']);
  ns.exec(['ip', 'link', 'set', 'lo', 'up']);
  return o;
}

/** Every iptables nat line that mentions one of our test networks or a given chain. */
export function iptablesLines(needle: string, v6 = false): string[] {
  return tryRun([v6 ? 'ip6tables-save' : 'iptables-save', '-t', 'nat']).stdout.split('\n').filter((l) => l.includes(needle));
}

/** Elements and rules of our nft table that mention `needle`. */
export function nftLines(needle: string): string[] {
  const r = tryRun(['nft', 'list', 'table', 'inet', 'tscni_portmap']);
  return r.code === 0 ? r.stdout.split('\n').filter((l) => l.includes(needle)) : [];
}

const sharedBefore = snapshotShared();

export function cleanupPods(): void {
  for (const c of children.splice(0)) if (c.exitCode === null) c.kill();
  for (const cmd of ['iptables', 'ip6tables']) {
    const save = tryRun([`${cmd}-save`, '-t', 'nat']).stdout.split('\n');
    for (const l of save) {
      if (!l.startsWith('-A CNI-HOSTPORT-DNAT') || !l.includes('tscni-tp-')) continue;
      const words = l.slice(3).match(/(?:[^\s"]+|"(?:\\.|[^"\\])*")+/g) ?? [];
      tryRun([cmd, '-w', '-t', 'nat', '-D', ...words.map((w) => (w.startsWith('"') ? (JSON.parse(w) as string) : w))]);
      const chain = /-j (CNI-DN-\w+)/.exec(l)?.[1];
      if (chain) {
        tryRun([cmd, '-w', '-t', 'nat', '-F', chain]);
        tryRun([cmd, '-w', '-t', 'nat', '-X', chain]);
      }
    }
  }
  // nft: every element tagged with a test network.
  const r = tryRun(['nft', '-j', 'list', 'table', 'inet', 'tscni_portmap']);
  if (r.code === 0 && r.stdout.includes('tscni-tp-')) {
    for (const set of ['dnat4_ip', 'dnat4_any', 'dnat6_ip', 'dnat6_any', 'masq4', 'masq6', 'masqall4', 'masqall6', 'podnets4', 'podnets6']) {
      tryRun(['nft', 'flush', 'set', 'inet', 'tscni_portmap', set]);
      tryRun(['nft', 'flush', 'map', 'inet', 'tscni_portmap', set]);
    }
    tryRun(['nft', 'flush', 'chain', 'inet', 'tscni_portmap', 'conditional']);
  }
  for (const b of bridges) tryRun(['ip', 'link', 'del', b]);
  bridges.clear();
  for (const h of hostIfs) tryRun(['ip', 'link', 'del', h]);
  hostIfs.clear();
}

/** After all tests: the shared chains and table, if the tests created them. */
export function cleanupShared(): void {
  cleanupPods();
  removeSharedIfNew(sharedBefore);
  rmSync(tmpRoot, { recursive: true, force: true });
}
