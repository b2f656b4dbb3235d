/**
 * Shared fixtures for the bridge tests: CNI_PATH with an IPAM, configs on the
 * test-only subnets (10.241.0.0/16, fd10:241::/48) and names (tb*, tscni-tb*),
 * an "outside" host namespace, and a cleanup that removes exactly what the
 * tests created (bridges, namespaces, rules, nft rules/tables, state dirs).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { formatChainName } from '../../../lib/firewall/naming.ts';
import { BIN_DIR, callPlugin, type PluginOutput } from '../../helpers/plugin.ts';
import { createNetns, sh, tryRun, type TestNetns } from '../../helpers/netns.ts';

export const REFERENCE_DIR = '/usr/lib/cni';
const tmpRoot = mkdtempSync(join(tmpdir(), 'tscni-tb-'));

/** CNI_PATH for ours: dist/bin, where host-local is the same executable (it runs in-process). */
export function ourCniPath(): string {
  return BIN_DIR;
}

/** Every version where results differ; the Go reference (interop tests) stops at 1.0.0. */
export const IPAM_VERSIONS: readonly string[] = ['0.1.0', '0.2.0', '0.3.0', '0.3.1', '0.4.0', '1.0.0', '1.1.0'];

export const rand = (n = 3) => randomBytes(n).toString('hex');

export interface Net {
  name: string;
  bridge: string;
  dataDir: string;
}

const nets: Net[] = [];
const attachments: Array<{ net: string; cid: string }> = [];

export function newNet(): Net {
  const id = rand(3);
  const net = { name: `tscni-tb-${id}`, bridge: `tb${id}`, dataDir: join(tmpRoot, `ipam-${id}`) };
  nets.push(net);
  return net;
}

export function conf(net: Net, version: string, extra: Record<string, unknown> = {}, ranges: unknown = [[{ subnet: '10.241.1.0/24' }]]): Record<string, unknown> {
  return {
    cniVersion: version,
    name: net.name,
    type: 'bridge',
    bridge: net.bridge,
    isDefaultGateway: true,
    ipMasq: true,
    ipam: { type: 'host-local', dataDir: net.dataDir, ranges },
    ...extra,
  };
}

export interface CallOpts {
  cid: string;
  ns?: TestNetns;
  netnsPath?: string;
  ifname?: string;
  env?: Record<string, string | undefined>;
  path?: string;
  plugin?: string;
}

export function call(command: string, config: unknown, o: CallOpts): PluginOutput {
  const c = config as { name: string };
  attachments.push({ net: c.name, cid: o.cid });
  const run = () =>
    callPlugin('bridge', {
      command,
      containerId: o.cid,
      netns: o.netnsPath ?? o.ns?.path,
      ifname: o.ifname ?? 'eth0',
      path: o.path ?? ourCniPath(),
      env: o.env,
      config,
    });
  if (o.plugin === undefined) return run();
  // The Go reference, run the same way.
  const env: Record<string, string> = {
    PATH: process.env.PATH ?? '',
    CNI_COMMAND: command,
    CNI_CONTAINERID: o.cid,
    CNI_IFNAME: o.ifname ?? 'eth0',
    CNI_PATH: o.path ?? REFERENCE_DIR,
  };
  const nsPath = o.netnsPath ?? o.ns?.path;
  if (nsPath) env.CNI_NETNS = nsPath;
  const r = tryRun(['env', '-i', ...Object.entries(env).map(([k, v]) => `${k}=${v}`), o.plugin], JSON.stringify(config));
  let json: Record<string, unknown> | undefined;
  try {
    json = r.stdout.trim() ? (JSON.parse(r.stdout) as Record<string, unknown>) : undefined;
  } catch {
    json = undefined;
  }
  return { code: r.code, stdout: r.stdout, stderr: r.stderr, json };
}

export function callOk(command: string, config: unknown, o: CallOpts): PluginOutput {
  const out = call(command, config, o);
  if (out.code !== 0) throw new Error(`bridge ${command} failed (${out.code}): ${out.stdout} ${out.stderr}`);
  return out;
}

export function withPrev(config: Record<string, unknown>, result: unknown): Record<string, unknown> {
  return { ...config, prevResult: result };
}

/** The address (no prefix) of eth0 in a pod. */
export function podAddrs(ns: TestNetns, ifname = 'eth0'): string[] {
  const r = ns.tryExec(['ip', '-json', 'addr', 'show', 'dev', ifname]);
  if (r.code !== 0) return [];
  const [l] = JSON.parse(r.stdout) as Array<{ addr_info: Array<{ local: string; prefixlen: number; scope: string }> }>;
  return (l?.addr_info ?? []).filter((a) => a.scope === 'global').map((a) => `${a.local}/${a.prefixlen}`);
}

export function ping(ns: TestNetns, dst: string): boolean {
  return ns.tryExec(['ping', '-c', '1', '-W', '2', dst]).code === 0;
}

/** Ports (interfaces) enslaved to a bridge. */
export function bridgePorts(bridge: string): string[] {
  try {
    return readdirSync(`/sys/class/net/${bridge}/brif`);
  } catch {
    return [];
  }
}

/** Namespace teardown removes its veths asynchronously: wait (briefly) until the bridge has no ports left. */
export async function waitNoPorts(bridge: string): Promise<string[]> {
  for (let i = 0; i < 100 && bridgePorts(bridge).length; i++) await new Promise((r) => setTimeout(r, 20));
  return bridgePorts(bridge);
}

export function linkExists(name: string): boolean {
  return existsSync(`/sys/class/net/${name}`);
}

/** Reservation files of a host-local data dir (IPs only). */
export function reservations(net: Net): string[] {
  const dir = join(net.dataDir, net.name);
  if (!existsSync(dir)) return [];
  return readdirSync(dir).filter((f) => /^[0-9a-f.:]+$/i.test(f) && (f.includes('.') || f.includes(':')));
}

/** Every iptables (v4+v6) nat rule and chain mentioning this network or container chain. */
export function iptablesRulesFor(netName: string, cid: string): string[] {
  const chain = formatChainName(netName, cid);
  const out: string[] = [];
  for (const cmd of ['iptables', 'ip6tables']) {
    const text = sh([cmd, '-w', '-t', 'nat', '-S']);
    out.push(...text.split('\n').filter((l) => l.includes(chain) || l.includes(`name: \\"${netName}\\" id: \\"${cid}\\"`)));
  }
  return out;
}

export function nftRulesFor(netName: string): string[] {
  const r = tryRun(['nft', 'list', 'table', 'inet', 'cni_plugins_masquerade']);
  if (r.code !== 0) return [];
  return r.stdout.split('\n').filter((l) => l.includes(`net: ${netName},`));
}

/** An "outside" host: its own netns on a veth pair to the host, addressed on both ends. */
export interface Outside {
  ns: TestNetns;
  hostIf: string;
  v4: { host: string; peer: string };
  v6: { host: string; peer: string };
}

const outsides: Outside[] = [];

export function createOutside(index: number): Outside {
  const ns = createNetns('tbout');
  const hostIf = `tbo${rand(3)}`;
  const v4 = { host: `10.241.${240 + index}.1`, peer: `10.241.${240 + index}.2` };
  const v6 = { host: `fd10:241:${240 + index}::1`, peer: `fd10:241:${240 + index}::2` };
  sh(['ip', 'link', 'add', hostIf, 'type', 'veth', 'peer', 'name', 'eth0', 'netns', ns.path]);
  const o = { ns, hostIf, v4, v6 };
  outsides.push(o);
  sh(['ip', 'addr', 'add', `${v4.host}/24`, 'dev', hostIf]);
  sh(['ip', 'addr', 'add', `${v6.host}/64`, 'dev', hostIf, 'nodad']);
  sh(['ip', 'link', 'set', hostIf, 'up']);
  ns.exec(['ip', 'addr', 'add', `${v4.peer}/24`, 'dev', 'eth0']);
  ns.exec(['ip', 'addr', 'add', `${v6.peer}/64`, 'dev', 'eth0', 'nodad']);
  ns.exec(['ip', 'link', 'set', 'eth0', 'up']);
  ns.exec(['ip', 'link', 'set', 'lo', 'up']);
  // Deliberately no route back to the pod subnets: replies only arrive when the source was masqueraded.
  return o;
}

const LISTENER = `
import socket, sys
fam = socket.AF_INET6 if ':' in sys.argv[1] else socket.AF_INET
s = socket.socket(fam, socket.SOCK_STREAM)
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind((sys.argv[1], 7777)); s.listen(1)
print('ready', flush=True)
s.settimeout(15)
c, a = s.accept()
print(a[0], flush=True)
c.close()
`;

const CLIENT = `
import socket, sys, time
for i in range(50):
    try:
        socket.create_connection((sys.argv[1], 7777), timeout=2).close(); sys.exit(0)
    except OSError:
        time.sleep(0.1)
sys.exit(1)
`;

const children: ChildProcess[] = [];

/** Connect from `pod` to the outside host; returns the source address the outside host saw. */
export async function peerSeenByOutside(o: Outside, pod: TestNetns, v6 = false): Promise<string> {
  const listenAddr = v6 ? o.v6.peer : o.v4.peer;
  const child = spawn('ip', ['netns', 'exec', o.ns.name, 'python3', '-c', LISTENER, listenAddr], { stdio: ['ignore', 'pipe', 'pipe'] });
  children.push(child);
  const lines: string[] = [];
  let buf = '';
  const done = new Promise<void>((resolve) => child.on('close', () => resolve()));
  await new Promise<void>((resolve, reject) => {
    child.stdout?.on('data', (b: Buffer) => {
      buf += b.toString();
      const parts = buf.split('\n');
      buf = parts.pop() ?? '';
      lines.push(...parts);
      if (lines.includes('ready')) resolve();
    });
    child.on('close', () => reject(new Error('listener exited early')));
  });
  const c = pod.tryExec(['python3', '-c', CLIENT, listenAddr]);
  if (c.code !== 0) {
    child.kill();
    await done;
    throw new Error(`pod could not connect to ${listenAddr}: ${c.stderr}`);
  }
  await done;
  return lines.find((l) => l !== 'ready') ?? '';
}

let v6ForwardBefore: string | undefined;
export function rememberForwarding(): void {
  v6ForwardBefore = sh(['cat', '/proc/sys/net/ipv6/conf/all/forwarding']).trim();
}

/** Remove everything the tests created. Safe to call repeatedly. */
export function cleanupAll(): void {
  for (const c of children.splice(0)) if (c.exitCode === null) c.kill();
  for (const o of outsides.splice(0)) {
    tryRun(['ip', 'link', 'del', o.hostIf]);
    o.ns.remove();
  }
  // iptables: POSTROUTING jumps and per-container chains of our networks.
  for (const cmd of ['iptables', 'ip6tables']) {
    const text = tryRun([cmd, '-w', '-t', 'nat', '-S', 'POSTROUTING']).stdout;
    for (const line of text.split('\n')) {
      if (!line.startsWith('-A POSTROUTING') || !line.includes('tscni-tb')) continue;
      const spec = line.slice(3).match(/(?:[^\s"]+|"(?:\\.|[^"\\])*")+/g) ?? [];
      tryRun([cmd, '-w', '-t', 'nat', '-D', ...spec.map((w) => (w.startsWith('"') ? (JSON.parse(w) as string) : w))]);
    }
    // Per-container chains: those of tracked attachments and any chain whose rules carry our tag.
    const chains = new Set(attachments.map((a) => formatChainName(a.net, a.cid)));
    for (const line of tryRun([cmd, '-w', '-t', 'nat', '-S']).stdout.split('\n')) {
      const m = /^-A (CNI-[0-9a-f]{24}) .*name: \\"tscni-tb/.exec(line);
      if (m) chains.add(m[1] as string);
    }
    for (const chain of chains) {
      tryRun([cmd, '-w', '-t', 'nat', '-F', chain]);
      tryRun([cmd, '-w', '-t', 'nat', '-X', chain]);
    }
  }
  // nft: our rules only; the table too when nothing else is left in it.
  const r = tryRun(['nft', '-a', 'list', 'chain', 'inet', 'cni_plugins_masquerade', 'masq_checks']);
  if (r.code === 0) {
    for (const line of r.stdout.split('\n')) {
      const m = /net: tscni-tb[^"]*".*# handle (\d+)/.exec(line);
      if (m) tryRun(['nft', 'delete', 'rule', 'inet', 'cni_plugins_masquerade', 'masq_checks', 'handle', m[1] as string]);
    }
    const left = tryRun(['nft', 'list', 'chain', 'inet', 'cni_plugins_masquerade', 'masq_checks']).stdout;
    if (!/daddr .* masquerade/.test(left)) tryRun(['nft', 'delete', 'table', 'inet', 'cni_plugins_masquerade']);
  }
  // Spoof-check chains of our attachments; the bridge nat table too once it is empty.
  const sc = tryRun(['nft', '-a', 'list', 'chain', 'bridge', 'nat', 'PREROUTING']);
  if (sc.code === 0) {
    for (const a of attachments) {
      for (const line of sc.stdout.split('\n')) {
        const m = new RegExp(`macspoofchk-${a.cid}-.*# handle (\\d+)`).exec(line);
        if (m) tryRun(['nft', 'delete', 'rule', 'bridge', 'nat', 'PREROUTING', 'handle', m[1] as string]);
      }
    }
    const chains = tryRun(['nft', 'list', 'table', 'bridge', 'nat']).stdout;
    for (const m of chains.matchAll(/chain (cni-br-iface-\S+)/g)) {
      if (attachments.some((a) => (m[1] as string).startsWith(`cni-br-iface-${a.cid}-`))) {
        tryRun(['nft', 'flush', 'chain', 'bridge', 'nat', m[1] as string]);
      }
    }
    for (const m of chains.matchAll(/chain (cni-br-iface-\S+)/g)) {
      if (attachments.some((a) => (m[1] as string).startsWith(`cni-br-iface-${a.cid}-`))) {
        tryRun(['nft', 'delete', 'chain', 'bridge', 'nat', m[1] as string]);
      }
    }
    const left = tryRun(['nft', 'list', 'table', 'bridge', 'nat']).stdout;
    if (!/cni-br-iface|iifname/.test(left)) tryRun(['nft', 'delete', 'table', 'bridge', 'nat']);
  }
  for (const n of nets.splice(0)) {
    for (const l of readdirSafe('/sys/class/net')) if (l === n.bridge || l.startsWith(`${n.bridge}.`)) tryRun(['ip', 'link', 'del', l]);
    rmSync(n.dataDir, { recursive: true, force: true });
  }
  attachments.length = 0;
  if (v6ForwardBefore !== undefined) tryRun(['sysctl', '-q', '-w', `net.ipv6.conf.all.forwarding=${v6ForwardBefore}`]);
}

function readdirSafe(p: string): string[] {
  try {
    return readdirSync(p);
  } catch {
    return [];
  }
}

export function removeTmpRoot(): void {
  rmSync(tmpRoot, { recursive: true, force: true });
}
