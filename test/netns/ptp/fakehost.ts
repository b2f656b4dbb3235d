/**
 * A fake host for the ptp/macvlan/ipvlan/vlan/host-device/dummy tests: a
 * throwaway namespace that plays the node. The plugin runs INSIDE it
 * (`ip netns exec <fakehost> dist/bin/<plugin>`), so every link, address,
 * route, sysctl and iptables rule it makes on "the host" lands in that
 * namespace, and the machine's own interfaces are never touched. Deleting
 * the namespaces removes everything (links, rules); state dirs live in one
 * temp dir removed at the end.
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { BIN_DIR, TEST_BIN_DIR, binPath, type PluginOutput } from '../../helpers/plugin.ts';
import { createNetns, removeAllNetns, type TestNetns } from '../../helpers/netns.ts';

export const REFERENCE_DIR = '/usr/lib/cni';
/** Every version where results differ; the reference (1.1.1) stops at 1.0.0. */
export const IPAM_VERSIONS: readonly string[] = ['0.1.0', '0.2.0', '0.3.0', '0.3.1', '0.4.0', '1.0.0', '1.1.0'];
export const rand = (n = 3) => randomBytes(n).toString('hex');

const tmpRoot = mkdtempSync(join(tmpdir(), 'tscni-tv-'));

/** A fresh host-local data dir under the test's temp dir. */
export function dataDir(): string {
  return join(tmpRoot, `ipam-${rand()}`);
}

/** Reservation files (IPs) of a host-local data dir for network `net`. */
export function reservations(dir: string, net: string): string[] {
  try {
    return readdirSync(join(dir, net)).filter((f) => /^[0-9a-f.:]+$/i.test(f) && (f.includes('.') || f.includes(':')));
  } catch {
    return [];
  }
}

/** A fake host namespace with lo up. */
export function createFakeHost(tag = 'fh'): TestNetns {
  const ns = createNetns(tag);
  ns.exec(['ip', 'link', 'set', 'lo', 'up']);
  return ns;
}

export interface Call {
  command: string;
  cid: string;
  netns?: string;
  ifname?: string;
  args?: string;
  env?: Record<string, string>;
  config: unknown;
}

/**
 * Run a plugin the way a runtime does, inside the fake host: ours from
 * dist/bin (CNI_PATH dist/bin), or with `reference` the Debian build of the
 * Go plugin (CNI_PATH /usr/lib/cni).
 */
export function callIn(host: TestNetns, plugin: string, c: Call, reference = false): PluginOutput {
  const env: Record<string, string> = {
    PATH: process.env.PATH ?? '/usr/sbin:/usr/bin:/sbin:/bin',
    CNI_COMMAND: c.command,
    CNI_CONTAINERID: c.cid,
    CNI_IFNAME: c.ifname ?? 'eth0',
    CNI_PATH: reference ? REFERENCE_DIR : c.env?.TSCNI_TEST_FAIL_AT ? TEST_BIN_DIR : BIN_DIR,
    ...(c.env ?? {}),
  };
  if (c.netns !== undefined) env.CNI_NETNS = c.netns;
  if (c.args !== undefined) env.CNI_ARGS = c.args;
  // A call that injects a failure runs the test build (failure injection compiled in).
  const exe = reference ? join(REFERENCE_DIR, plugin) : binPath(plugin, c.env?.TSCNI_TEST_FAIL_AT !== undefined);
  const r = spawnSync('ip', ['netns', 'exec', host.name, exe], { env, input: JSON.stringify(c.config), encoding: 'utf8' });
  if (r.error) throw r.error;
  let json: Record<string, unknown> | undefined;
  try {
    json = r.stdout.trim() ? (JSON.parse(r.stdout) as Record<string, unknown>) : undefined;
  } catch {
    json = undefined;
  }
  return { code: r.status ?? -1, stdout: r.stdout, stderr: r.stderr, json };
}

/** callIn that throws with the plugin's output on failure. */
export function callInOk(host: TestNetns, plugin: string, c: Call, reference = false): PluginOutput {
  const out = callIn(host, plugin, c, reference);
  if (out.code !== 0) throw new Error(`${reference ? 'reference ' : ''}${plugin} ${c.command} failed (${out.code}): ${out.stdout} ${out.stderr}`);
  return out;
}

/** Global addresses ("ip/prefix") of a link in a namespace; [] when the link is missing. */
export function addrsOf(ns: TestNetns, ifname = 'eth0'): string[] {
  const r = ns.tryExec(['ip', '-json', 'addr', 'show', 'dev', ifname]);
  if (r.code !== 0) return [];
  const [l] = JSON.parse(r.stdout) as Array<{ addr_info: Array<{ local: string; prefixlen: number; scope: string }> }>;
  return (l?.addr_info ?? []).filter((a) => a.scope === 'global').map((a) => `${a.local}/${a.prefixlen}`);
}

/** One link as `ip -d -json link show` reports it, or undefined. */
export function linkOf(ns: TestNetns, ifname: string): Record<string, unknown> | undefined {
  const r = ns.tryExec(['ip', '-d', '-json', 'link', 'show', 'dev', ifname]);
  if (r.code !== 0) return undefined;
  return (JSON.parse(r.stdout) as Array<Record<string, unknown>>)[0];
}

/** Names of every link in a namespace. */
export function linkNames(ns: TestNetns): string[] {
  return (JSON.parse(ns.exec(['ip', '-json', 'link', 'show'])) as Array<{ ifname: string }>).map((l) => l.ifname);
}

export function ping(ns: TestNetns, dst: string, timeoutS = 2): boolean {
  return ns.tryExec(['ping', '-c', '1', '-W', String(timeoutS), dst]).code === 0;
}

/**
 * Ping until one answer or `totalS` seconds: for IPv6 right after ADD,
 * where neighbour discovery waits for the link-local addresses' DAD.
 */
export function pingWithin(ns: TestNetns, dst: string, totalS = 5): boolean {
  return ns.tryExec(['ping', '-c', '1', '-w', String(totalS), '-i', '0.5', dst]).code === 0;
}

/** A veth pair between two namespaces, both ends up: `a` in nsA, `b` in nsB. */
export function vethBetween(nsA: TestNetns, a: string, nsB: TestNetns, b: string): void {
  nsA.exec(['ip', 'link', 'add', a, 'type', 'veth', 'peer', 'name', b, 'netns', nsB.path]);
  nsA.exec(['ip', 'link', 'set', a, 'up']);
  nsB.exec(['ip', 'link', 'set', b, 'up']);
}

/**
 * A fake host (namespace tagged `hostTag`) holding `master`, a veth whose
 * peer is eth0 of a "lan" namespace (tagged `lanTag`); `lanCidr` (e.g.
 * '10.253.3.254/24'), when given, is the lan side's address. Plugins that
 * need a master (macvlan, ipvlan, host-device) act on it without touching
 * the real host's links.
 */
export function fakeHostWithLan(hostTag: string, lanTag: string, master: string, lanCidr?: string): { host: TestNetns; lan: TestNetns } {
  const host = createFakeHost(hostTag);
  const lan = createNetns(lanTag);
  vethBetween(host, master, lan, 'eth0');
  if (lanCidr) lan.exec(['ip', 'addr', 'add', lanCidr, 'dev', 'eth0']);
  return { host, lan };
}

/** Remove every namespace (and with it every link and rule) and the temp dir. */
export function cleanupAll(): void {
  removeAllNetns();
}

export function removeTmpRoot(): void {
  rmSync(tmpRoot, { recursive: true, force: true });
}
