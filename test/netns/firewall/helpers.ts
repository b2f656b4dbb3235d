/**
 * Fixtures for the firewall tests: networks on our bridge (bridges tf*,
 * subnets 10.248.<n>.0/24 and fd10:248:<n>::/64), the firewall chained after
 * bridge (and portmap) the way a runtime chains them, ping between pods, and
 * a snapshot of the filter table / nft tables to prove teardown leaves nothing.
 */
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createNetns, removeAllNetns, sh, tryRun, type TestNetns } from '../../helpers/netns.ts';
import { callPlugin, callPluginOk, type PluginOutput } from '../../helpers/plugin.ts';
import { splitWords } from '../../helpers/masq-leftovers.ts';

export const rand = (n = 3) => randomBytes(n).toString('hex');
export type Backend = 'iptables' | 'nftables';

let tmpDir: string | undefined;
/** The temp directory of this file's networks, made on first use (files that only import the snapshot helpers make none). */
const tmpRoot = () => (tmpDir ??= mkdtempSync(join(tmpdir(), 'tscni-tf-')));
const bridges = new Set<string>();
let netIndex = 10 + Math.floor(Math.random() * 100);

export interface FwNet {
  name: string;
  bridge: string;
  index: number;
  dataDir: string;
  stateDir: string;
  backend: Backend;
  policy: string;
  version: string;
  v6: boolean;
}

export function newNet(backend: Backend, policy: string, opts: { stateDir?: string; version?: string; v6?: boolean } = {}): FwNet {
  const id = rand();
  const net: FwNet = {
    name: `tscni-tf-${id}`,
    bridge: `tf${id}`,
    index: netIndex++ % 250,
    dataDir: join(tmpRoot(), `ipam-${id}`),
    stateDir: opts.stateDir ?? join(tmpRoot(), 'fw'),
    backend,
    policy,
    version: opts.version ?? '1.1.0',
    v6: opts.v6 ?? false,
  };
  bridges.add(net.bridge);
  return net;
}

export function bridgeConf(net: FwNet): Record<string, unknown> {
  const ranges: unknown[] = [[{ subnet: `10.248.${net.index}.0/24` }]];
  if (net.v6) ranges.push([{ subnet: `fd10:248:${net.index}::/64` }]);
  return { cniVersion: net.version, name: net.name, type: 'bridge', bridge: net.bridge, isDefaultGateway: true, ipam: { type: 'host-local', dataDir: net.dataDir, ranges } };
}

export function fwConf(net: FwNet, prevResult: unknown, extra: Record<string, unknown> = {}): Record<string, unknown> {
  const c: Record<string, unknown> = { cniVersion: net.version, name: net.name, type: 'firewall', backend: net.backend, ingressPolicy: net.policy, stateDir: net.stateDir, ...extra };
  if (prevResult !== undefined) c.prevResult = prevResult;
  return c;
}

export interface FwPod {
  ns: TestNetns;
  cid: string;
  result: Record<string, unknown>;
  ip4: string;
  ip6?: string;
}

/** bridge ADD, then firewall ADD with the bridge result as prevResult. */
export function addPod(net: FwNet, extra: Record<string, unknown> = {}): FwPod {
  const ns = createNetns('tf');
  const cid = `tf-${rand(6)}`;
  const br = callPluginOk('bridge', { command: 'ADD', containerId: cid, netns: ns.path, ifname: 'eth0', config: bridgeConf(net) });
  const fw = callPluginOk('firewall', { command: 'ADD', containerId: cid, netns: ns.path, ifname: 'eth0', config: fwConf(net, br.json, extra) });
  const ips = ((br.json?.ips as { address: string }[]) ?? []).map((i) => i.address.split('/')[0] as string);
  return { ns, cid, result: fw.json as Record<string, unknown>, ip4: ips.find((i) => !i.includes(':')) as string, ip6: ips.find((i) => i.includes(':')) };
}

export function firewall(command: string, net: FwNet, pod: FwPod, withPrev = true, extra: Record<string, unknown> = {}): PluginOutput {
  return callPlugin('firewall', { command, containerId: pod.cid, netns: pod.ns.path, ifname: 'eth0', config: fwConf(net, withPrev ? pod.result : undefined, extra) });
}

/** firewall DEL (with or without prevResult), bridge DEL, netns gone. */
export function delPod(net: FwNet, pod: FwPod, withPrev = true): void {
  const out = firewall('DEL', net, pod, withPrev);
  if (out.code !== 0) throw new Error(`firewall DEL failed: ${out.stdout}`);
  callPluginOk('bridge', { command: 'DEL', containerId: pod.cid, netns: pod.ns.path, ifname: 'eth0', config: bridgeConf(net) });
  pod.ns.remove();
}

/** Does one ping from `from` reach `ip`? */
export function pings(from: FwPod, ip: string): boolean {
  return from.ns.tryExec(['ping', '-c', '1', '-W', '1', ip]).code === 0;
}

/** What our plugin may touch: the filter tables (without counters) and our nft table. */
export function snapshotFirewall(): string {
  const ipt = tryRun(['iptables-save', '-t', 'filter']).stdout + tryRun(['ip6tables-save', '-t', 'filter']).stdout;
  const nft = tryRun(['nft', 'list', 'table', 'inet', 'tscni_firewall']);
  const lines = ipt.split('\n').filter((l) => !l.startsWith('#')).map((l) => l.replace(/ \[\d+:\d+\]$/, ''));
  return `${lines.join('\n')}\nnft:${nft.code === 0 ? nft.stdout : 'none'}`;
}

const SCAFFOLD = [
  ':CNI-ADMIN -',
  ':CNI-FORWARD -',
  '-A FORWARD -m comment --comment "CNI firewall plugin rules" -j CNI-FORWARD',
  '-A CNI-FORWARD -m comment --comment "CNI firewall plugin admin overrides" -j CNI-ADMIN',
];

/**
 * Compare with the snapshot from before the test: exactly, unless an empty
 * CNI-FORWARD/CNI-ADMIN pair (the reference's, or another user's) was there
 * before; our last DEL removes that pair, so then it is left out of both sides.
 */
export function sameAsBefore(before: string, now: string): boolean {
  if (!before.includes(SCAFFOLD[3] as string)) return before === now;
  const strip = (s: string) => s.split('\n').filter((l) => !SCAFFOLD.includes(l)).join('\n');
  return strip(before) === strip(now);
}

/** After a failed test: remove any filter rule that names our bridges or subnets (never anything else). */
export function removeLeftoverRules(): void {
  for (const [cmd, save] of [['iptables', 'iptables-save'], ['ip6tables', 'ip6tables-save']] as const) {
    for (const l of tryRun([save, '-t', 'filter']).stdout.split('\n')) {
      if (!l.startsWith('-A ') || !(/10\.248\.|fd10:248:/.test(l) || [...bridges].some((b) => l.includes(` ${b} `)))) continue;
      tryRun([cmd, '-w', '-t', 'filter', '-D', ...splitWords(l.slice(3))]);
    }
  }
}

/** Lines of the filter table (both families) or our nft table that mention `needle`. */
export function ruleLines(needle: string): string[] {
  const text = tryRun(['iptables-save', '-t', 'filter']).stdout + tryRun(['ip6tables-save', '-t', 'filter']).stdout + tryRun(['nft', 'list', 'table', 'inet', 'tscni_firewall']).stdout;
  return text.split('\n').filter((l) => l.includes(needle));
}

/** Remove every bridge and namespace the tests made, and the temp state. */
export function cleanupAll(): void {
  removeAllNetns();
  removeLeftoverRules();
  for (const b of bridges) tryRun(['ip', 'link', 'del', b]);
  if (tmpDir) rmSync(tmpDir, { recursive: true, force: true });
  tmpDir = undefined;
}

export { sh, tryRun };
