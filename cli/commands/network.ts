/**
 * `tscni network create|ls|inspect|rm`: Docker/podman-style networks written
 * as conflists into NETCONFPATH, in the layout podman's CNI backend writes:
 *
 *   bridge (+host-local)  ->  portmap  ->  firewall*  ->  tuning*  ->  dnsname
 *
 * (* only when this executable registers that plugin: decided at run time
 * from PLUGIN_NAMES, so a build without them still writes working lists).
 *
 * The pure parts (subnet choice, overlap checks, the conflist, the SVG) take
 * every input as a parameter and are golden-tested; the act part reads the
 * conflists, the host's routes (over rtnetlink, in-process) and the pods.
 */
import type { Argv, CommandModule } from 'yargs';
import { existsSync, mkdirSync, readFileSync, rmSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { writeFileAtomic } from '../../lib/fs.ts';
import { addToIp, cidrContains, compareIp, prevIp, formatCidr, formatIp, lastAddress, networkAddress, nextIp, parseCidr, parseIp, type Cidr } from '../../lib/ip/cidr.ts';
import { listCacheEntries, readCacheEntry } from '../../lib/libcni/cache.ts';
import { confFiles, listNetworks, loadNetworkConf, type JsonObject } from '../../lib/libcni/conf.ts';
import { withRtnl } from '../../lib/netlink/rtnl.ts';
import { PLUGIN_NAMES } from '../../plugins/registry.ts';
import { dnsDirFor, lockPath, networkLock, readRecords, releaseNetwork } from '../../plugins/dns/state.ts';
import { UsageError, type CliContext } from '../context.ts';
import { listPods } from '../pods.ts';
import { runtimeFor } from './cni.ts';
import { podDetach } from './pods.ts';

export const DRIVERS = ['bridge', 'macvlan', 'ipvlan', 'ptp'] as const;
export type Driver = (typeof DRIVERS)[number];
export const DEFAULT_POOL = '10.89.0.0/16';
export const DEFAULT_POOL6 = 'fd10:89::/48';
export const DEFAULT_DOMAIN = 'dns.podman';
export const BRIDGE_PREFIX = 'tscni';

/** Everything a conflist is rendered from (all decided before rendering). */
export interface NetworkSpec {
  name: string;
  driver: Driver;
  /** CIDRs, each with its gateway (the first host address unless --gateway). */
  subnets: { subnet: string; gateway: string; rangeStart?: string; rangeEnd?: string }[];
  bridge?: string;
  internal: boolean;
  isolate: boolean;
  mtu?: number;
  dns: boolean;
  domainName: string;
  /** host-local's dataDir ($TSCNI_IPAM_DIR); unset: host-local's default, /var/lib/cni/networks. */
  ipamDir?: string;
}

const NAME_RE = /^[a-zA-Z0-9][a-zA-Z0-9_.-]{0,62}$/;

/**
 * The conflist document for `spec`. `available` is the set of plugin types
 * this executable provides: firewall and tuning are included only when present.
 */
export function renderConflist(spec: NetworkSpec, available: readonly string[]): JsonObject {
  const routes: JsonObject[] = [];
  if (!spec.internal) {
    if (spec.subnets.some((s) => !s.subnet.includes(':'))) routes.push({ dst: '0.0.0.0/0' });
    if (spec.subnets.some((s) => s.subnet.includes(':'))) routes.push({ dst: '::/0' });
  }
  const ipam: JsonObject = {
    type: 'host-local',
    ...(spec.ipamDir ? { dataDir: spec.ipamDir } : {}),
    ranges: spec.subnets.map((s) => [{ subnet: s.subnet, gateway: s.gateway, ...(s.rangeStart ? { rangeStart: s.rangeStart, rangeEnd: s.rangeEnd } : {}) }]),
    routes,
  };
  // The ips capability: `tscni up --ip`, podman's --ip and CRI's static addresses reach host-local as runtimeConfig.ips.
  const main: JsonObject = { type: spec.driver, capabilities: { ips: true } };
  if (spec.driver === 'bridge') {
    Object.assign(main, { bridge: spec.bridge, isGateway: true, ipMasq: !spec.internal, hairpinMode: true });
  } else if (spec.driver === 'ptp') {
    main.ipMasq = !spec.internal;
  } else if (spec.driver === 'macvlan') {
    main.mode = 'bridge';
  } else {
    main.mode = 'l2';
  }
  if (spec.mtu) main.mtu = spec.mtu;
  main.ipam = ipam;
  const plugins: JsonObject[] = [main, { type: 'portmap', capabilities: { portMappings: true } }];
  if (available.includes('firewall')) plugins.push({ type: 'firewall', backend: '', ...(spec.isolate ? { ingressPolicy: 'same-bridge' } : {}) });
  if (available.includes('tuning')) plugins.push({ type: 'tuning' });
  if (spec.dns && available.includes('dnsname')) plugins.push({ type: 'dnsname', domainName: spec.domainName, capabilities: { aliases: true } });
  // libcni before 1.2 reads cniVersion; newer runtimes and tscni pick 1.1.0 (GC and STATUS) from cniVersions.
  return { cniVersion: '1.0.0', cniVersions: ['1.0.0', '1.1.0'], name: spec.name, plugins };
}

/** Subnets (CIDR text) a conflist document uses: host-local ranges, ipam.subnet, static addresses. */
export function subnetsOfConflist(doc: JsonObject): string[] {
  const out: string[] = [];
  const plugins = Array.isArray(doc.plugins) ? (doc.plugins as JsonObject[]) : [doc];
  for (const p of plugins) {
    const ipam = (p?.ipam ?? {}) as JsonObject;
    if (typeof ipam.subnet === 'string') out.push(ipam.subnet);
    for (const set of Array.isArray(ipam.ranges) ? (ipam.ranges as unknown[]) : []) {
      for (const r of Array.isArray(set) ? (set as JsonObject[]) : []) if (typeof r?.subnet === 'string') out.push(r.subnet);
    }
  }
  return out;
}

function mustCidr(text: string, what: string): Cidr {
  const c = parseCidr(text);
  if (!c) throw new UsageError(`invalid ${what} ${JSON.stringify(text)}: expected a CIDR such as 10.89.3.0/24`);
  return { ip: networkAddress(c), prefix: c.prefix };
}

/** Whether two CIDRs share any address. */
export function cidrsOverlap(a: Cidr, b: Cidr): boolean {
  if (a.ip.family !== b.ip.family) return false;
  return cidrContains(a, networkAddress(b)) || cidrContains(b, networkAddress(a));
}

export interface UsedSubnet {
  subnet: string;
  /** "network NAME" or "host route dev X", for messages. */
  by: string;
}

/** The first subnet in use that overlaps `subnet`, if any. */
export function findOverlap(subnet: string, used: readonly UsedSubnet[]): UsedSubnet | undefined {
  const c = mustCidr(subnet, 'subnet');
  return used.find((u) => {
    const o = parseCidr(u.subnet);
    return o !== undefined && cidrsOverlap(c, { ip: networkAddress(o), prefix: o.prefix });
  });
}

/** The first /`size` of `pool` that overlaps nothing in `used`. */
export function pickSubnet(pool: string, size: number, used: readonly UsedSubnet[]): string {
  const p = mustCidr(pool, 'subnet pool');
  if (size < p.prefix) throw new UsageError(`the pool ${pool} is smaller than a /${size}`);
  const count = 1n << BigInt(size - p.prefix);
  const step = 1n << BigInt((p.ip.family === 4 ? 32 : 128) - size);
  for (let i = 0n; i < count && i < 65536n; i++) {
    const candidate = formatCidr(addToIp(p.ip, i * step), size);
    if (!findOverlap(candidate, used)) return candidate;
  }
  throw new UsageError(`no free /${size} left in the pool ${pool}: remove a network or pass --subnet`);
}

/** tscni0, tscni1, ...: the first name neither a conflist nor a host link uses. */
export function pickBridgeName(taken: ReadonlySet<string>, prefix = BRIDGE_PREFIX): string {
  for (let i = 0; i < 4096; i++) if (!taken.has(`${prefix}${i}`)) return `${prefix}${i}`;
  throw new UsageError('no free bridge name');
}

/** The first host address of a subnet (Docker's and podman's default gateway). */
export function defaultGateway(subnet: string): string {
  const c = mustCidr(subnet, 'subnet');
  return formatIp(nextIp(c.ip));
}

// ---------------------------------------------------------------------------
// Reading what exists

export interface NetworkSummary {
  name: string;
  file: string;
  driver: string;
  subnets: string[];
  gateways: string[];
  bridge?: string;
  internal: boolean;
  dns: boolean;
  domainName?: string;
  isolate: boolean;
  /**
   * The attachments: pods made by `tscni up` by name, and attachments other
   * clients made (`tscni add`, cnitool, containerd, CRI-O, podman: found in the
   * libcni result cache) by container ID, with `containerId` and `netns` set.
   */
  pods: { name: string; ifName: string; ips: string[]; ports: string[]; containerId?: string; netns?: string }[];
}

function readDoc(file: string): JsonObject | undefined {
  try {
    return JSON.parse(readFileSync(file, 'utf8')) as JsonObject;
  } catch {
    return undefined;
  }
}

/** A conflist document summarised (pure). */
export function summarise(doc: JsonObject, file: string): Omit<NetworkSummary, 'pods'> {
  const plugins = Array.isArray(doc.plugins) ? (doc.plugins as JsonObject[]) : [doc];
  const main = plugins[0] ?? {};
  const ipam = (main.ipam ?? {}) as JsonObject;
  const gateways: string[] = [];
  for (const set of Array.isArray(ipam.ranges) ? (ipam.ranges as JsonObject[][]) : []) {
    for (const r of Array.isArray(set) ? set : []) {
      if (typeof r.gateway === 'string') gateways.push(r.gateway);
      // host-local's default gateway, which bridge puts on the bridge: the subnet's first address.
      else if (main.isGateway === true && typeof r.subnet === 'string' && parseCidr(r.subnet)) gateways.push(defaultGateway(r.subnet));
    }
  }
  const dnsPlugin = plugins.find((p) => p.type === 'dnsname');
  const fw = plugins.find((p) => p.type === 'firewall');
  const routes = Array.isArray(ipam.routes) ? (ipam.routes as JsonObject[]) : [];
  return {
    name: String(doc.name ?? ''),
    file,
    driver: String(main.type ?? ''),
    subnets: subnetsOfConflist(doc),
    gateways,
    bridge: typeof main.bridge === 'string' ? main.bridge : undefined,
    internal: main.ipMasq !== true && !routes.some((r) => r.dst === '0.0.0.0/0' || r.dst === '::/0'),
    dns: dnsPlugin !== undefined,
    domainName: typeof dnsPlugin?.domainName === 'string' ? dnsPlugin.domainName : undefined,
    isolate: fw?.ingressPolicy === 'same-bridge' || fw?.ingressPolicy === 'isolated',
  };
}

/** Every network in NETCONFPATH, with the pods `tscni up` attached to it and their addresses. */
export function listNetworkSummaries(ctx: CliContext): NetworkSummary[] {
  const pods = listPods(ctx.stateDir);
  const cached = listCacheEntries(ctx.cacheDir);
  const byUp = new Set(pods.flatMap((p) => p.attachments.map((a) => `${a.network}\n${a.containerId}\n${a.ifName}`)));
  const out: NetworkSummary[] = [];
  const seen = new Set<string>();
  for (const file of confFiles(ctx.netDir, ['.conflist', '.conf', '.json'])) {
    const doc = readDoc(file);
    if (!doc || typeof doc.name !== 'string' || seen.has(doc.name)) continue;
    seen.add(doc.name);
    const s = summarise(doc, file);
    const attached: NetworkSummary['pods'] = [];
    for (const p of pods) {
      for (const a of p.attachments) {
        if (a.network !== s.name) continue;
        attached.push({
          name: p.name,
          ifName: a.ifName,
          ips: a.addresses ?? [],
          ports: (a.portMappings ?? []).map((m) => `${m.hostIP ? `${m.hostIP}:` : ''}${m.hostPort}->${m.containerPort}/${m.protocol}`),
        });
      }
    }
    for (const c of cached) {
      if (c.network !== s.name || byUp.has(`${c.network}\n${c.containerId}\n${c.ifName}`)) continue;
      const ips = ((c.result?.ips as { address?: string }[] | undefined) ?? []).flatMap((i) => (typeof i.address === 'string' ? [i.address] : []));
      attached.push({ name: c.containerId, ifName: c.ifName, ips, ports: [], containerId: c.containerId, ...(c.netns ? { netns: c.netns } : {}) });
    }
    out.push({ ...s, pods: attached });
  }
  return out;
}

/** What `create` needs from the host's kernel: routes (as used subnets) and link names. */
export interface HostView {
  routes: UsedSubnet[];
  links: string[];
}

/** The host's routes (main table, no default routes, no link-local) and links, over rtnetlink in-process. */
export function readHostView(): HostView {
  return withRtnl(undefined, (nl) => {
    const all = nl.listLinks();
    const names = new Map(all.map((l) => [l.index, l.name]));
    const routes: UsedSubnet[] = [];
    for (const family of [4, 6] as const) {
      for (const r of nl.listRoutes(family)) {
        if (r.dst === '0.0.0.0/0' || r.dst === '::/0' || r.table !== 254) continue;
        if (family === 6 && r.dst.startsWith('fe80:')) continue;
        routes.push({ subnet: r.dst, by: `a host route (${r.dst}${r.oif ? ` dev ${names.get(r.oif) ?? r.oif}` : ''})` });
      }
    }
    return { routes, links: all.map((l) => l.name) };
  });
}

/** Subnets in use: every conflist's ranges and every host route. */
function usedSubnets(ctx: CliContext, host: HostView): UsedSubnet[] {
  const used: UsedSubnet[] = [];
  for (const file of confFiles(ctx.netDir, ['.conflist', '.conf', '.json'])) {
    const doc = readDoc(file);
    if (!doc) continue;
    for (const s of subnetsOfConflist(doc)) used.push({ subnet: s, by: `network ${String(doc.name)} (${file})` });
  }
  return [...used, ...host.routes];
}

function takenBridgeNames(ctx: CliContext, host: HostView): Set<string> {
  const taken = new Set<string>(host.links);
  for (const file of confFiles(ctx.netDir, ['.conflist', '.conf', '.json'])) {
    const doc = readDoc(file);
    const plugins = Array.isArray(doc?.plugins) ? (doc.plugins as JsonObject[]) : doc ? [doc] : [];
    for (const p of plugins) if (typeof p.bridge === 'string') taken.add(p.bridge);
  }
  return taken;
}

// ---------------------------------------------------------------------------
// Commands

export interface CreateArgs {
  name: string;
  subnet: string[];
  gateway?: string;
  ipRange?: string;
  ipv6: boolean;
  internal: boolean;
  isolate: boolean;
  mtu?: number;
  dns: boolean;
  driver: string;
  pool: string;
  pool6: string;
  domain: string;
}

export interface CreateOutcome {
  file: string;
  spec: NetworkSpec;
  conflist: JsonObject;
}

/** Parse -> validate -> write: nothing is written when any check fails. */
export function networkCreate(ctx: CliContext, a: CreateArgs, readHost: () => HostView = readHostView): CreateOutcome {
  if (!NAME_RE.test(a.name)) throw new UsageError(`invalid network name ${JSON.stringify(a.name)}: letters, digits, "_", "." and "-" (at most 63)`);
  if (!(DRIVERS as readonly string[]).includes(a.driver)) throw new UsageError(`invalid --driver ${a.driver}: use ${DRIVERS.join(', ')}`);
  if (!PLUGIN_NAMES.includes(a.driver)) throw new UsageError(`driver ${a.driver} is not in this executable`);
  try {
    loadNetworkConf(ctx.netDir, a.name);
    throw new UsageError(`network ${a.name} already exists in ${ctx.netDir}`);
  } catch (e) {
    if (e instanceof UsageError) throw e;
  }
  if (a.mtu !== undefined && (!Number.isInteger(a.mtu) || a.mtu < 68 || a.mtu > 65535)) throw new UsageError(`invalid --mtu ${a.mtu}: 68-65535`);
  const host = readHost();
  const used = usedSubnets(ctx, host);
  const subnets: NetworkSpec['subnets'] = [];
  for (const s of a.subnet) {
    const c = mustCidr(s, '--subnet');
    const text = formatCidr(c.ip, c.prefix);
    const clash = findOverlap(text, [...used, ...subnets.map((x) => ({ subnet: x.subnet, by: 'another --subnet' }))]);
    if (clash) throw new UsageError(`subnet ${text} overlaps ${clash.subnet} used by ${clash.by}`);
    subnets.push({ subnet: text, gateway: '' });
  }
  if (!subnets.some((s) => !s.subnet.includes(':'))) subnets.unshift({ subnet: pickSubnet(a.pool, 24, used), gateway: '' });
  if (a.ipv6 && !subnets.some((s) => s.subnet.includes(':'))) subnets.push({ subnet: pickSubnet(a.pool6, 64, used), gateway: '' });
  for (const s of subnets) {
    const c = mustCidr(s.subnet, 'subnet');
    if (a.gateway && parseIp(a.gateway)?.family === c.ip.family) {
      const g = parseIp(a.gateway);
      if (!g || !cidrContains(c, g)) throw new UsageError(`--gateway ${a.gateway} is not in ${s.subnet}`);
      s.gateway = formatIp(g);
    } else {
      s.gateway = defaultGateway(s.subnet);
    }
    if (a.ipRange) {
      const r = mustCidr(a.ipRange, '--ip-range');
      if (r.ip.family !== c.ip.family) continue;
      if (!cidrContains(c, r.ip) || r.prefix < c.prefix) throw new UsageError(`--ip-range ${a.ipRange} is not inside ${s.subnet}`);
      // Never the subnet's own network or (IPv4) broadcast address; host-local skips the gateway itself.
      const first = compareIp(r.ip, c.ip) === 0 ? nextIp(r.ip) : r.ip;
      const last = c.ip.family === 4 && compareIp(lastAddress(r), lastAddress(c)) === 0 ? prevIp(lastAddress(r)) : lastAddress(r);
      s.rangeStart = formatIp(first);
      s.rangeEnd = formatIp(last);
    }
  }
  const gw = a.gateway === undefined ? undefined : parseIp(a.gateway);
  if (a.gateway !== undefined && (!gw || !subnets.some((s) => s.gateway === formatIp(gw)))) throw new UsageError(`--gateway ${a.gateway} is not an address in the network's subnets`);
  const spec: NetworkSpec = {
    name: a.name,
    driver: a.driver as Driver,
    subnets,
    bridge: a.driver === 'bridge' ? pickBridgeName(takenBridgeNames(ctx, host), ctx.env.TSCNI_BRIDGE_PREFIX || BRIDGE_PREFIX) : undefined,
    internal: a.internal,
    isolate: a.isolate,
    mtu: a.mtu,
    dns: a.dns && (a.driver === 'bridge' || a.driver === 'ptp'),
    domainName: a.domain,
    ...(ctx.env.TSCNI_IPAM_DIR ? { ipamDir: ctx.env.TSCNI_IPAM_DIR } : {}),
  };
  const conflist = renderConflist(spec, PLUGIN_NAMES);
  const file = join(ctx.netDir, `${a.name}.conflist`);
  if (existsSync(file)) throw new UsageError(`${file} exists (a file named after the network, holding another one)`);
  // A network recreated under an old name must not answer with the old pods' records.
  rmSync(dnsDirFor(ctx.env, a.name), { recursive: true, force: true });
  mkdirSync(ctx.netDir, { recursive: true, mode: 0o755 });
  writeFileAtomic(file, `${JSON.stringify(conflist, null, 2)}\n`, { mode: 0o644 });
  return { file, spec, conflist };
}

/** One network with its pods and (when it has one) its name server's records. */
export interface NetworkInspect extends NetworkSummary {
  records: { name: string; aliases: string[]; ips: string[] }[];
  /** Networks whose traffic the firewall keeps apart from this one (either side has --isolate). */
  isolatedFrom: string[];
}

export function networkInspect(ctx: CliContext, name: string): NetworkInspect {
  const all = listNetworkSummaries(ctx);
  const s = all.find((n) => n.name === name);
  if (!s) throw new UsageError(`no network named ${name} in ${ctx.netDir}`);
  const records = s.dns ? readRecords(dnsDirFor(ctx.env, name)).map((r) => ({ name: r.name, aliases: r.aliases, ips: r.ips })) : [];
  const isolatedFrom = isolationPeers(s, all);
  return { ...s, records, isolatedFrom };
}

/** The other networks this one is isolated from (pure): ingress isolation works both ways. */
export function isolationPeers(n: Pick<NetworkSummary, 'name' | 'isolate'>, all: readonly Pick<NetworkSummary, 'name' | 'isolate'>[]): string[] {
  return all.filter((o) => o.name !== n.name && (n.isolate || o.isolate)).map((o) => o.name);
}

export interface RmOutcome {
  removed: string[];
  detached: string[];
}

/** Refuses while pods are attached unless `force` (then DELs each attachment first). */
export async function networkRm(ctx: CliContext, name: string, force: boolean): Promise<RmOutcome> {
  const s = listNetworkSummaries(ctx).find((n) => n.name === name);
  if (!s) throw new UsageError(`no network named ${name} in ${ctx.netDir}`);
  const out: RmOutcome = { removed: [], detached: [] };
  if (s.pods.length && !force) throw new UsageError(`network ${name} has pods attached (${s.pods.map((p) => (p.containerId ? `container ${p.containerId} ${p.ifName}, made by another client` : p.name)).join(', ')}): tscni down them (tscni del, or their runtime, for the others), or rm --force`);
  for (const p of s.pods) {
    if (p.containerId) {
      // Attached by another client: DEL it the way libcni does, with the cached arguments.
      const c = readCacheEntry(ctx.cacheDir, { network: name, containerId: p.containerId, ifName: p.ifName });
      await runtimeFor(ctx).del(loadNetworkConf(ctx.netDir, name), {
        containerId: p.containerId,
        netns: p.netns ?? '',
        ifName: p.ifName,
        args: c?.cniArgs ?? [],
        capabilityArgs: c?.capabilityArgs ?? {},
      });
    } else {
      await podDetach(ctx, p.name, name);
    }
    out.detached.push(p.containerId ? `${p.containerId} (${p.ifName})` : p.name);
  }
  rmSync(s.file, { force: true });
  out.removed.push(s.file);
  if (s.bridge) {
    const bridge = s.bridge;
    if (withRtnl(undefined, (nl) => (nl.getLink(bridge) ? nl.deleteLink(bridge) : false))) out.removed.push(`bridge ${bridge}`);
  }
  const dnsDir = dnsDirFor(ctx.env, name);
  if (existsSync(dnsDir)) {
    networkLock(dnsDir).with(() => rmSync(dnsDir, { recursive: true, force: true }));
    // The host's server closes the network's sockets, or stops with the last network.
    releaseNetwork(dirname(dnsDir));
    out.removed.push(dnsDir);
  }
  rmSync(lockPath(dnsDir), { force: true });
  const ipamDir = join(ctx.env.TSCNI_IPAM_DIR || '/var/lib/cni/networks', name);
  if (existsSync(ipamDir)) {
    rmSync(ipamDir, { recursive: true, force: true });
    out.removed.push(ipamDir);
  }
  return out;
}

/** `ls` as a table (pure). */
export function renderNetworkTable(nets: readonly NetworkSummary[]): string {
  const rows = [['NAME', 'DRIVER', 'SUBNETS', 'GATEWAY', 'PODS']];
  for (const n of nets) rows.push([n.name, n.driver, n.subnets.join(',') || '-', n.gateways.join(',') || '-', String(n.pods.length)]);
  return renderColumns(rows);
}

/** Left-aligned columns separated by two spaces (pure). */
export function renderColumns(rows: readonly string[][]): string {
  const widths: number[] = [];
  for (const r of rows) r.forEach((c, i) => (widths[i] = Math.max(widths[i] ?? 0, c.length)));
  return rows.map((r) => r.map((c, i) => (i === r.length - 1 ? c : c.padEnd(widths[i] ?? 0))).join('  ')).join('\n') + '\n';
}

/** `inspect` as text (pure). */
export function renderNetworkText(n: NetworkInspect): string {
  const lines = [
    `network ${n.name} (${n.driver}${n.bridge ? ` ${n.bridge}` : ''}) from ${n.file}`,
    `  subnets:  ${n.subnets.join(' ') || '-'}`,
    `  gateway:  ${n.gateways.join(' ') || '-'}`,
    `  internal: ${n.internal ? 'yes (no masquerade, no default route)' : 'no'}`,
    `  isolate:  ${n.isolate ? 'yes' : 'no'}${n.isolatedFrom.length ? ` (kept apart from ${n.isolatedFrom.join(', ')}${n.isolate ? '' : ' by their --isolate'})` : ''}`,
    `  names:    ${n.dns ? `${n.gateways.join(' ')}:53, domain ${n.domainName ?? DEFAULT_DOMAIN}` : 'off'}`,
    `  pods:     ${n.pods.length ? '' : '(none)'}`,
  ];
  for (const p of n.pods) lines.push(`    ${p.name} ${p.ifName} ${p.ips.join(' ')}${p.ports.length ? ` ports ${p.ports.join(' ')}` : ''}`);
  return `${lines.join('\n')}\n`;
}

const esc = (s: string) => s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');

/**
 * `inspect --format svg` (pure): the bridge as a bar with its gateway and
 * name server, one box per pod below it with addresses, names and ports.
 */
export function renderNetworkSvg(n: NetworkInspect): string {
  const boxW = 200;
  const gap = 20;
  const width = Math.max(480, n.pods.length * (boxW + gap) + gap);
  const height = 260;
  const parts: string[] = [];
  parts.push(`<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" font-family="monospace" font-size="12">`);
  parts.push(`<text x="${gap}" y="24" font-size="14" font-weight="bold">network ${esc(n.name)} (${esc(n.driver)})</text>`);
  parts.push(`<rect x="${gap}" y="40" width="${width - 2 * gap}" height="40" fill="#dde8f5" stroke="#333"/>`);
  const bridgeLine = `${n.bridge ?? n.driver}  ${n.subnets.join(' ')}  gw ${n.gateways.join(' ')}${n.internal ? '  internal' : ''}${n.isolate ? '  isolated' : ''}`;
  parts.push(`<text x="${gap + 8}" y="58">${esc(bridgeLine)}</text>`);
  parts.push(`<text x="${gap + 8}" y="74">${esc(n.dns ? `resolver ${n.gateways.join(' ')}:53 (${n.domainName ?? DEFAULT_DOMAIN})` : 'no resolver')}</text>`);
  n.pods.forEach((p, i) => {
    const x = gap + i * (boxW + gap);
    const rec = n.records.find((r) => r.name === p.name);
    const lines = [`${p.name} (${p.ifName})`, ...p.ips, ...(rec?.aliases.length ? [`aka ${rec.aliases.join(' ')}`] : []), ...p.ports.map((pt) => `port ${pt}`)];
    parts.push(`<line x1="${x + boxW / 2}" y1="80" x2="${x + boxW / 2}" y2="120" stroke="#333"/>`);
    parts.push(`<rect x="${x}" y="120" width="${boxW}" height="${20 + lines.length * 16}" fill="#f5f0dd" stroke="#333"/>`);
    lines.forEach((l, j) => parts.push(`<text x="${x + 8}" y="${138 + j * 16}">${esc(l)}</text>`));
  });
  if (!n.pods.length) parts.push(`<text x="${gap}" y="110">(no pods)</text>`);
  if (n.isolatedFrom.length) parts.push(`<text x="${gap}" y="${height - 12}" fill="#a00">isolated from: ${esc(n.isolatedFrom.join(', '))}</text>`);
  parts.push('</svg>');
  return `${parts.join('\n')}\n`;
}

// ---------------------------------------------------------------------------
// yargs wiring (main.ts adds this command and `dns`)

/** main.ts's action(): builds the context and reports errors. */
export type ActionFn = <T>(fn: (ctx: CliContext, argv: T & { json: boolean }) => Promise<void>) => (raw: unknown) => Promise<void>;

const write = (s: string) => process.stdout.write(s);
const note = (s: string) => process.stderr.write(`${s}\n`);

export function networkCommand(action: ActionFn): CommandModule {
  return {
    command: 'network <action>',
    describe: 'Docker-style networks: create, ls, inspect, rm (conflists in NETCONFPATH)',
    builder: (y: Argv) =>
      y
        .command(
          'create <name>',
          'write a conflist: bridge(+host-local), portmap, firewall, tuning, dnsname',
          (b) =>
            b
              .positional('name', { type: 'string', demandOption: true })
              .option('subnet', { type: 'string', array: true, default: [], describe: 'a subnet (repeatable; default: a free /24 of the pool)' })
              .option('gateway', { type: 'string', describe: 'gateway address (default: the first host address)' })
              .option('ip-range', { type: 'string', describe: 'allocate pod addresses from this part of the subnet' })
              .option('ipv6', { type: 'boolean', default: false, describe: 'add an IPv6 subnet (a free /64 of --subnet-pool6)' })
              .option('internal', { type: 'boolean', default: false, describe: 'no masquerade, no default route' })
              .option('isolate', { type: 'boolean', default: false, describe: 'no traffic from other networks (firewall ingressPolicy same-bridge)' })
              .option('mtu', { type: 'number', describe: 'MTU of the bridge and veths' })
              .option('dns', { type: 'boolean', default: true, describe: 'a name server for the pods (--no-dns: none)' })
              .option('driver', { alias: 'd', type: 'string', default: 'bridge', choices: DRIVERS as unknown as string[] })
              .option('domain', { type: 'string', default: DEFAULT_DOMAIN, describe: 'the name server domain (pods answer as NAME and NAME.DOMAIN)' })
              .option('subnet-pool', { type: 'string', default: process.env.TSCNI_SUBNET_POOL || DEFAULT_POOL, describe: 'where free IPv4 /24s are taken from ($TSCNI_SUBNET_POOL)' })
              .option('subnet-pool6', { type: 'string', default: process.env.TSCNI_SUBNET_POOL6 || DEFAULT_POOL6, describe: 'where free IPv6 /64s are taken from ($TSCNI_SUBNET_POOL6)' }),
          action<{ name: string; subnet: string[]; gateway?: string; ipRange?: string; ipv6: boolean; internal: boolean; isolate: boolean; mtu?: number; dns: boolean; driver: string; domain: string; subnetPool: string; subnetPool6: string }>(async (ctx, a) => {
            const r = networkCreate(ctx, { ...a, subnet: a.subnet.map(String), pool: a.subnetPool, pool6: a.subnetPool6 });
            if (a.json) write(`${JSON.stringify({ file: r.file, conflist: r.conflist }, null, 2)}\n`);
            else {
              write(`${a.name}\n`);
              note(`wrote ${r.file}: ${r.spec.driver}${r.spec.bridge ? ` ${r.spec.bridge}` : ''} ${r.spec.subnets.map((s) => `${s.subnet} gw ${s.gateway}`).join(', ')}`);
            }
          }),
        )
        .command(
          ['ls', 'list'],
          'list networks',
          (b) => b,
          action<object>(async (ctx, a) => {
            const nets = listNetworkSummaries(ctx);
            write(a.json ? `${JSON.stringify(nets, null, 2)}\n` : renderNetworkTable(nets));
            // Files that are no network at all are said, not hidden (stderr: stdout stays the listing).
            for (const b of listNetworks(ctx.netDir).filter((n) => n.error)) process.stderr.write(`tscni: skipped ${b.file}: ${b.error}\n`);
          }),
        )
        .command(
          'inspect <name>',
          'a network with its pods (text, --json, --format svg)',
          (b) => b.positional('name', { type: 'string', demandOption: true }).option('format', { alias: 'f', choices: ['text', 'json', 'svg'] as const, default: 'text' as const }),
          action<{ name: string; format: 'text' | 'json' | 'svg' }>(async (ctx, a) => {
            const n = networkInspect(ctx, a.name);
            const format = a.json ? 'json' : a.format;
            write(format === 'json' ? `${JSON.stringify(n, null, 2)}\n` : format === 'svg' ? renderNetworkSvg(n) : renderNetworkText(n));
          }),
        )
        .command(
          'rm <name>',
          'remove a network: conflist, bridge, name server and state (refuses while pods are attached)',
          (b) => b.positional('name', { type: 'string', demandOption: true }).option('force', { type: 'boolean', default: false, describe: 'detach attached pods first' }),
          action<{ name: string; force: boolean }>(async (ctx, a) => {
            const r = await networkRm(ctx, a.name, a.force);
            if (a.json) write(`${JSON.stringify(r)}\n`);
            else note(`removed ${r.removed.join(', ')}${r.detached.length ? `; detached ${r.detached.join(', ')}` : ''}`);
          }),
        )
        .demandCommand(1),
    handler: () => undefined,
  };
}
