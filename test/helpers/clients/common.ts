/**
 * Shared fixtures for the real-client tests (cnitool, containerd's CRI, `ctr
 * run --cni`): a bridge + host-local + portmap network in a private folder,
 * the kernel state one attachment leaves behind (veths, iptables and nft
 * lines, reservations, cache files), small TCP servers and clients for
 * traffic, and a cleanup that removes exactly what the tests made.
 *
 * Names: networks `tscni-c-<hex>`, bridges `tc<hex>`, subnets 10.247.100.0/22
 * and up (one /24 per network), host ports 31000-31999.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { tryRun } from '../netns.ts';
import { BIN_DIR } from '../plugin.ts';
import { removeSharedIfNew, snapshotShared, type SharedSnapshot } from '../portmap-shared.ts';

export const rand = (n = 3): string => randomBytes(n).toString('hex');

/**
 * Where the client finds its plugins. Defaults to our dist/bin; set
 * TSCNI_CLIENTS_CNI_PATH=/usr/lib/cni to run the same scenarios against the Go
 * reference plugins (for comparison; some scenarios are expected to fail there).
 */
export const PLUGIN_DIR = process.env.TSCNI_CLIENTS_CNI_PATH ?? BIN_DIR;

/** One client test network and the private folders its plugins write to. */
export interface ClientNet {
  name: string;
  bridge: string;
  /** e.g. 10.247.100 */
  prefix: string;
  subnet: string;
  gateway: string;
  dir: string;
  ipamDir: string;
  portmapDir: string;
}

let nextIndex = 100 + Math.floor(Math.random() * 40);
let nextHostPort = 31000 + Math.floor(Math.random() * 900);
const nets: ClientNet[] = [];
const children: ChildProcess[] = [];
let shared: SharedSnapshot | undefined;
/** Whether the bridge's nft masquerade table existed before the first network of this file. */
let masqTableBefore: boolean | undefined;
const MASQ_TABLE = ['inet', 'cni_plugins_masquerade'];

/** A fresh host port in 31000-31999. */
export function hostPort(): number {
  nextHostPort = nextHostPort >= 31990 ? 31000 : nextHostPort + 1;
  return nextHostPort;
}

/** A new network (not yet written anywhere): unique name, bridge, subnet and private state folders. */
export function newClientNet(): ClientNet {
  shared ??= snapshotShared();
  masqTableBefore ??= tryRun(['nft', 'list', 'table', ...MASQ_TABLE]).code === 0;
  const id = rand();
  const index = nextIndex;
  nextIndex = nextIndex >= 199 ? 100 : nextIndex + 1;
  const dir = mkdtempSync(join(tmpdir(), 'tscni-c-'));
  const net: ClientNet = {
    name: `tscni-c-${id}`,
    bridge: `tc${id}`,
    prefix: `10.247.${index}`,
    subnet: `10.247.${index}.0/24`,
    gateway: `10.247.${index}.1`,
    dir,
    ipamDir: join(dir, 'ipam'),
    portmapDir: join(dir, 'portmap'),
  };
  nets.push(net);
  return net;
}

/**
 * The conflist a node would have: bridge (gateway, masquerade) + host-local,
 * portmap with the portMappings capability, and optionally loopback first
 * (containerd's CRI calls loopback itself; `ctr` and cnitool do not).
 */
export function conflist(net: ClientNet, opts: { cniVersion?: string; cniVersions?: string[]; loopback?: boolean; backend?: 'iptables' | 'nftables' } = {}): Record<string, unknown> {
  const backend = opts.backend ? { bridge: { ipMasqBackend: opts.backend }, portmap: { backend: opts.backend } } : { bridge: {}, portmap: {} };
  const doc: Record<string, unknown> = {
    cniVersion: opts.cniVersion ?? '1.0.0',
    name: net.name,
    plugins: [
      ...(opts.loopback ? [{ type: 'loopback' }] : []),
      {
        type: 'bridge',
        bridge: net.bridge,
        isGateway: true,
        ipMasq: true,
        hairpinMode: true,
        ...backend.bridge,
        ipam: { type: 'host-local', dataDir: net.ipamDir, ranges: [[{ subnet: net.subnet }]], routes: [{ dst: '0.0.0.0/0' }] },
      },
      { type: 'portmap', capabilities: { portMappings: true }, stateDir: net.portmapDir, ...backend.portmap },
    ],
  };
  if (opts.cniVersions) doc.cniVersions = opts.cniVersions;
  return doc;
}

/** Write `conflist(net, opts)` as `<dir>/<file>` and return its path. */
export function writeConflist(dir: string, net: ClientNet, opts: Parameters<typeof conflist>[1] = {}, file = `50-${net.name}.conflist`): string {
  mkdirSync(dir, { recursive: true });
  const path = join(dir, file);
  writeFileSync(path, JSON.stringify(conflist(net, opts), null, 2));
  return path;
}

/** The kernel and disk state of a network, for "ADD made it" and "DEL left nothing" assertions. */
export interface NetState {
  /** host ends of veths enslaved to the network's bridge */
  veths: string[];
  /** iptables nat lines mentioning the network (masquerade and DNAT rules carry its name) */
  natRules: string[];
  /** nft rules and set/map elements mentioning the network (portmap and masquerade tag them with its name) */
  nftLines: string[];
  /** host-local reservation files (IP addresses) */
  reservations: string[];
  /** portmap attachment records */
  portmapRecords: string[];
}

function listDir(d: string): string[] {
  return existsSync(d) ? readdirSync(d) : [];
}

/** Everything on the host that belongs to `net` right now. */
export function netState(net: ClientNet): NetState {
  const nft = tryRun(['nft', 'list', 'ruleset']);
  return {
    veths: listDir(`/sys/class/net/${net.bridge}/brif`),
    natRules: natLines(net.name),
    nftLines: nft.code === 0 ? nft.stdout.split('\n').filter((l) => l.includes(net.name)).map((l) => l.trim()) : [],
    reservations: listDir(join(net.ipamDir, net.name)).filter((f) => /^\d+\.\d+\.\d+\.\d+$/.test(f)),
    portmapRecords: listDir(join(net.portmapDir, 'attachments', net.name)),
  };
}

/** The state of a network with no attachment. */
export const EMPTY_STATE: NetState = { veths: [], natRules: [], nftLines: [], reservations: [], portmapRecords: [] };

/**
 * iptables nat lines that mention `needle` (rule comments carry the network
 * name and container ID), plus every rule of the per-container chains those
 * lines jump to.
 */
export function natLines(needle: string): string[] {
  const lines = tryRun(['iptables-save', '-t', 'nat']).stdout.split('\n');
  const chains = new Set(lines.filter((l) => l.includes(needle)).flatMap((l) => [...l.matchAll(/-j (CNI-[\w-]+)/g)].map((m) => m[1] as string)));
  for (const c of ['CNI-HOSTPORT-DNAT', 'CNI-HOSTPORT-SETMARK', 'CNI-HOSTPORT-MASQ']) chains.delete(c);
  return lines.filter((l) => l.includes(needle) || [...chains].some((c) => l.startsWith(`-A ${c} `)));
}

/** IPv4 addresses (with prefix) of `ifname` in the namespace at `netnsPath`. */
export function addrsIn(netnsPath: string, ifname = 'eth0'): string[] {
  const out = tryRun(['nsenter', `--net=${netnsPath}`, 'ip', '-4', '-o', 'addr', 'show', 'dev', ifname]).stdout;
  return [...out.matchAll(/inet (\S+)/g)].map((m) => m[1] as string);
}

const SERVER = `
const [port, name] = process.argv.slice(1);
require('node:net').createServer((c) => c.end(name + ' ' + c.remoteAddress.replace('::ffff:', '') + '\\n')).listen(Number(port), '0.0.0.0', () => console.log('ready'));`;

/** A TCP server in the namespace at `netnsPath` answering "<name> <peer address>"; stopped by cleanupClients. */
export async function startServerIn(netnsPath: string, port: number, name: string): Promise<void> {
  const child = spawn('nsenter', [`--net=${netnsPath}`, '--', process.execPath, '-e', SERVER, String(port), name], { stdio: ['ignore', 'pipe', 'inherit'] });
  children.push(child);
  await new Promise<void>((resolve, reject) => {
    child.stdout?.once('data', () => resolve());
    child.once('exit', (c) => reject(new Error(`server in ${netnsPath} exited with ${c}`)));
  });
}

const CLIENT = `
const [host, port] = process.argv.slice(1);
const fail = (e) => { console.error(String(e)); process.exit(1); };
setTimeout(() => fail('timeout'), 2500);
let out = '';
require('node:net').connect(Number(port), host).on('data', (d) => (out += d)).on('end', () => { console.log(out.trim()); process.exit(0); }).on('error', fail);`;

/** Connect to host:port over TCP from the host (or from `netnsPath`); returns what the server sent, or undefined. */
export function fetchTcp(host: string, port: number, netnsPath?: string): string | undefined {
  const argv = [process.execPath, '-e', CLIENT, host, String(port)];
  const full = netnsPath ? ['nsenter', `--net=${netnsPath}`, '--', ...argv] : argv;
  const r = spawnSync(full[0] as string, full.slice(1), { encoding: 'utf8', timeout: 5000 });
  return r.status === 0 ? r.stdout.trim() : undefined;
}

/** Stop every server started by startServerIn (the pod's processes end). */
export function stopServers(): void {
  for (const c of children.splice(0)) if (c.exitCode === null && c.pid) process.kill(c.pid);
}

/** Poll `cond` every 50 ms until it holds; throws naming `what` after `ms`. */
export async function waitFor(cond: () => boolean, what: string, ms = 5000): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

const HTTP_GET = `
const fail = (e) => { console.error(String(e)); process.exit(1); };
setTimeout(() => fail('timeout'), 2500);
require('node:http').get(process.argv[1], { agent: false }, (res) => {
  let body = '';
  res.on('data', (d) => (body += d)).on('end', () => { console.log(body.trim()); process.exit(res.statusCode === 200 ? 0 : 1); });
}).on('error', fail);`;

/** HTTP GET `url` from the host (or from `netnsPath`); the body, or undefined when nothing answers. */
export function httpGet(url: string, netnsPath?: string): string | undefined {
  const argv = [process.execPath, '-e', HTTP_GET, url];
  const full = netnsPath ? ['nsenter', `--net=${netnsPath}`, '--', ...argv] : argv;
  const r = spawnSync(full[0] as string, full.slice(1), { encoding: 'utf8', timeout: 5000 });
  return r.status === 0 ? r.stdout.trim() : undefined;
}

/** Remove every iptables nat rule and per-container chain that names `needle`. */
export function removeNatRules(needle: string): void {
  const lines = tryRun(['iptables-save', '-t', 'nat']).stdout.split('\n').filter((l) => l.startsWith('-A ') && l.includes(needle));
  const chains = new Set<string>();
  for (const l of lines) {
    const words = l.slice(3).match(/(?:[^\s"]+|"(?:\\.|[^"\\])*")+/g) ?? [];
    tryRun(['iptables', '-w', '-t', 'nat', '-D', ...words.map((w) => (w.startsWith('"') ? (JSON.parse(w) as string) : w))]);
    for (const m of l.matchAll(/-j (CNI-(?:DN-)?[0-9a-f]{21,24})\b/g)) chains.add(m[1] as string);
  }
  for (const c of chains) {
    tryRun(['iptables', '-w', '-t', 'nat', '-F', c]);
    tryRun(['iptables', '-w', '-t', 'nat', '-X', c]);
  }
}

/**
 * Remove every nft rule and set/map element whose comment names `needle`
 * (what a failed test may leave in the shared tables), parsed from
 * `nft -a list ruleset`: rules by handle, elements by their key.
 */
export function removeNftByNeedle(needle: string): void {
  const out = tryRun(['nft', '-a', 'list', 'ruleset']);
  if (out.code !== 0 || !out.stdout.includes(needle)) return;
  let table = '';
  let chain = '';
  let set = '';
  let inElements = false;
  for (const line of out.stdout.split('\n')) {
    const t = line.trim();
    let m: RegExpExecArray | null;
    if ((m = /^table (\S+ \S+) \{/.exec(t))) table = m[1] as string;
    else if ((m = /^chain (\S+) \{/.exec(t))) chain = m[1] as string;
    else if ((m = /^(?:set|map) (\S+) \{/.exec(t))) set = m[1] as string;
    if (t.startsWith('elements = {')) inElements = true;
    if (inElements) {
      for (const el of t.replace(/^elements = \{/, '').replace(/\}$/, '').split(/,\s*$/)) {
        const key = /^\s*(.+?) comment "([^"]*)"/.exec(el);
        if (key && (key[2] as string).includes(needle)) tryRun(['nft', 'delete', 'element', ...table.split(' '), set, `{ ${key[1]} }`]);
      }
      if (t.endsWith('}')) inElements = false;
      continue;
    }
    const handle = / # handle (\d+)$/.exec(t);
    if (handle && t.includes(needle) && chain) tryRun(['nft', 'delete', 'rule', ...table.split(' '), chain, 'handle', handle[1] as string]);
  }
}

/**
 * Stop the servers, delete the bridges, rules and folders of every network
 * made by newClientNet, and portmap's shared chains if they were not there
 * before. Safe to call more than once.
 */
export function cleanupClients(): void {
  stopServers();
  for (const net of nets.splice(0)) {
    for (const v of listDir(`/sys/class/net/${net.bridge}/brif`)) tryRun(['ip', 'link', 'del', v]);
    tryRun(['ip', 'link', 'del', net.bridge]);
    removeNatRules(net.name);
    removeNftByNeedle(net.name);
    rmSync(net.dir, { recursive: true, force: true });
  }
  if (shared) removeSharedIfNew(shared);
  shared = undefined;
  if (masqTableBefore === false) tryRun(['nft', 'delete', 'table', ...MASQ_TABLE]);
  masqTableBefore = undefined;
}
