/**
 * `tscni inspect <name>`: read the wiring of a pod from the kernel (ip -json
 * in the pod and on the host), the result cache and the firewall, and hand it
 * to the renderers in ../topology.ts.
 */
import { readCacheEntry } from '../../lib/libcni/cache.ts';
import { run, runJson } from '../../lib/exec.ts';
import { UsageError, type CliContext } from '../context.ts';
import { resolveNetns } from '../netns-util.ts';
import { listPods, readPod, type PodRecord } from '../pods.ts';
import type { AttachmentInfo, HostPortInfo, IfaceInfo, InspectReport } from '../topology.ts';

interface IpAddr {
  ifindex: number;
  ifname: string;
  link_index?: number;
  operstate?: string;
  address?: string;
  mtu?: number;
  master?: string;
  addr_info?: { family: string; local: string; prefixlen: number; scope?: string }[];
}

interface IpRoute {
  dst: string;
  gateway?: string;
  dev?: string;
  protocol?: string;
  scope?: string;
  prefsrc?: string;
}

function addresses(a: IpAddr): string[] {
  return (a.addr_info ?? []).filter((x) => x.scope !== 'link').map((x) => `${x.local}/${x.prefixlen}`);
}

function routeText(r: IpRoute): string {
  return [r.dst, r.gateway ? `via ${r.gateway}` : '', r.dev ? `dev ${r.dev}` : '', r.scope && r.scope !== 'universe' ? `scope ${r.scope}` : '']
    .filter(Boolean)
    .join(' ');
}

/**
 * Lines of `text` that mention any needle (an address or an ID, as a whole
 * word), plus every rule of a chain those lines jump to. With `owner`, a line
 * naming the container ID must also name the network: a pod on two networks
 * has one container ID, and each attachment's rules carry their network's name.
 */
export function ownedRules(text: string, needles: readonly string[], owner?: { containerId: string; network: string }): string[] {
  const lines = text.split('\n');
  const word = (n: string, l: string) => new RegExp(`(^|[^0-9a-fA-F.:])${n.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}([^0-9a-fA-F.:]|$)`).test(l);
  const hit = (l: string) => needles.some((n) => n && word(n, l)) || (owner !== undefined && word(owner.containerId, l) && (l.includes(`\\"${owner.network}\\"`) || l.includes(`"${owner.network}"`)));
  const matched = lines.filter((l) => l.trim() && !l.startsWith('#') && hit(l));
  const chains = new Set<string>();
  for (const l of matched) {
    const m = /-j (CNI-[A-Za-z0-9-]+)/.exec(l);
    if (m?.[1] && /^CNI-(DN-)?[0-9a-f]{20,}$/.test(m[1])) chains.add(m[1]);
  }
  const extra = lines.filter((l) => [...chains].some((c) => l.startsWith(`-A ${c} `)));
  return [...new Set([...matched, ...extra])].map((l) => l.trim());
}

/** iptables-nft keeps its tables in nftables too; they are shown once, from iptables-save. */
const XTABLES_TABLE = /^table (ip|ip6) (nat|filter|mangle|raw|security) \{/;

/** `nft list ruleset` without the tables that iptables-nft manages. */
export function withoutXtables(ruleset: string): string {
  const out: string[] = [];
  let skipping = false;
  for (const l of ruleset.split('\n')) {
    if (XTABLES_TABLE.test(l)) skipping = true;
    if (!skipping) out.push(l);
    if (skipping && l === '}') skipping = false;
  }
  return out.join('\n');
}

async function firewallText(): Promise<string> {
  const parts: string[] = [];
  for (const argv of [['iptables-save'], ['ip6tables-save'], ['nft', 'list', 'ruleset']]) {
    try {
      const r = await run(argv, { allowFailure: true });
      if (r.code === 0) parts.push(argv[0] === 'nft' ? withoutXtables(r.stdout) : r.stdout);
    } catch {
      // The tool is not installed: there are no rules of that kind to show.
    }
  }
  return parts.join('\n');
}

export async function gatherInspect(ctx: CliContext, name: string): Promise<InspectReport> {
  const pod: PodRecord | undefined = readPod(ctx.stateDir, name);
  const netns = pod?.netns ?? resolveNetns(ctx.stateDir, name);
  const owner = pod?.sharesWith ? readPod(ctx.stateDir, pod.sharesWith) : pod;
  if (pod?.sharesWith && !owner) throw new UsageError(`pod ${name} shares the namespace of ${pod.sharesWith}, which is gone`);

  const podAddrs = await runJson<IpAddr[]>(['ip', '-json', 'addr', 'show'], { netns });
  const routes = [
    ...(await runJson<IpRoute[]>(['ip', '-json', '-4', 'route', 'show'], { netns })),
    ...(await runJson<IpRoute[]>(['ip', '-json', '-6', 'route', 'show'], { netns })).filter((r) => !r.dst.startsWith('fe80')),
  ];
  const hostAddrs = await runJson<IpAddr[]>(['ip', '-json', 'addr', 'show']);
  const byIndex = new Map(hostAddrs.map((a) => [a.ifindex, a]));
  const byName = new Map(hostAddrs.map((a) => [a.ifname, a]));

  const interfaces: IfaceInfo[] = [];
  const hostPorts: HostPortInfo[] = [];
  for (const a of podAddrs) {
    const peer = a.link_index !== undefined ? byIndex.get(a.link_index) : undefined;
    // Only a peer that points back at this interface is its veth twin.
    const hostPeer = peer && peer.link_index === a.ifindex ? peer : undefined;
    interfaces.push({ name: a.ifname, state: a.operstate ?? 'UNKNOWN', mac: a.address, mtu: a.mtu, addresses: addresses(a), hostPeer: hostPeer?.ifname });
    if (hostPeer) {
      const bridge = hostPeer.master ? byName.get(hostPeer.master) : undefined;
      hostPorts.push({ name: hostPeer.ifname, bridge: bridge?.ifname, bridgeAddresses: bridge ? addresses(bridge) : [] });
    }
  }

  const attachments: AttachmentInfo[] = [];
  const fw = owner?.attachments.length ? await firewallText() : '';
  for (const at of owner?.attachments ?? []) {
    const cached = readCacheEntry(ctx.cacheDir, { network: at.network, containerId: at.containerId, ifName: at.ifName });
    const ips = ((cached?.result?.ips as { address?: string }[] | undefined) ?? []).map((i) => String(i.address ?? '').split('/')[0] ?? '');
    const fromCache = (cached?.capabilityArgs?.portMappings as AttachmentInfo['portMappings'] | undefined) ?? [];
    attachments.push({
      network: at.network,
      ifName: at.ifName,
      containerId: at.containerId,
      portMappings: at.portMappings ?? fromCache,
      rules: ownedRules(fw, ips.filter(Boolean), { containerId: at.containerId, network: at.network }),
    });
  }

  return {
    name,
    netns,
    sharesWith: pod?.sharesWith,
    sharedBy: listPods(ctx.stateDir)
      .filter((p) => p.sharesWith === (owner?.name ?? name) && p.name !== name)
      .map((p) => p.name),
    interfaces,
    routes: routes.map(routeText),
    hostPorts,
    attachments,
  };
}
