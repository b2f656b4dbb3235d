/**
 * CHECK as the reference does it: the bridge (a bridge, same MAC, promisc
 * as configured), the container veth in the sandbox (same MAC), its host
 * peer enslaved to the bridge, and every IP and route from prevResult.
 */
import { CniError, ErrorCode } from '../../lib/cni/errors.ts';
import type { CniInterface, Result } from '../../lib/cni/types.ts';
import { run } from '../../lib/exec.ts';
import type { IpLink } from '../../lib/ip/ip.ts';
import { canonicalCidr, familyOf, networkOf } from '../../lib/ip/prefix.ts';
import type { BridgeConfig } from './config.ts';
import { batchArg } from './render.ts';

const fail = (msg: string) => new CniError(ErrorCode.Internal, msg);

async function showLinks(names: readonly string[], netns?: string): Promise<IpLink[]> {
  if (names.length === 0) return [];
  if (names.some((n) => n.includes('#'))) {
    // Batch lines cannot carry "#": look each name up on its own.
    const all = await Promise.all(names.map((n) => run(['ip', '-json', '-details', 'link', 'show', 'dev', n], { netns, allowFailure: true })));
    return all.flatMap((r) => (r.code === 0 ? (JSON.parse(r.stdout) as IpLink[]) : []));
  }
  // -force: a name that does not exist must not hide the others.
  const r = await run(['ip', '-json', '-details', '-force', '-batch', '-'], {
    input: names.map((n) => `link show dev ${batchArg(n)}`).join('\n') + '\n',
    netns,
    allowFailure: true,
  });
  const out: IpLink[] = [];
  for (const chunk of r.stdout.trim().split(/\n(?=\[)/)) if (chunk.trim()) out.push(...(JSON.parse(chunk) as IpLink[]));
  return out;
}

interface RouteRow {
  dst: string;
  gateway?: string;
  family?: 4 | 6;
}

async function podState(netns: string, ifName: string): Promise<{ link: IpLink | undefined; addrs: string[]; routes: RouteRow[] }> {
  const [a, r4, r6] = await Promise.all([
    run(['ip', '-json', '-details', 'addr', 'show', 'dev', ifName], { netns, allowFailure: true }),
    run(['ip', '-json', '-4', 'route', 'show', 'table', 'all'], { netns }),
    run(['ip', '-json', '-6', 'route', 'show', 'table', 'all'], { netns }),
  ]);
  const link = a.code === 0 ? (JSON.parse(a.stdout) as IpLink[])[0] : undefined;
  const addrs = (link?.addr_info ?? []).map((x) => canonicalCidr(`${x.local}/${x.prefixlen}`));
  const tag = (text: string, family: 4 | 6) => (JSON.parse(text || '[]') as RouteRow[]).map((r) => ({ ...r, family }));
  const routes = [...tag(r4.stdout, 4), ...tag(r6.stdout, 6)];
  return { link, addrs, routes };
}

const kind = (l: IpLink) => l.linkinfo?.info_kind;
const peerIndex = (l: IpLink) => (typeof l.link_index === 'number' ? l.link_index : undefined);

function routeDst(dst: string): string {
  if (dst === 'default') return 'default';
  return dst.includes('/') ? dst : `${dst}/${dst.includes(':') ? 128 : 32}`;
}

export async function checkAttachment(conf: BridgeConfig, prev: Result, netns: string, ifName: string): Promise<void> {
  const ifaces = prev.interfaces ?? [];
  const brMap: CniInterface | undefined = ifaces.find((i) => i.name === conf.bridge);
  const contMap: CniInterface | undefined = ifaces.find((i) => i.name === ifName && i.sandbox === netns);

  const others = ifaces.filter((i) => i.name !== conf.bridge && i.name !== ifName && !i.sandbox);
  const hostLinks = await showLinks([conf.bridge, ...others.map((i) => i.name)]);
  const br = hostLinks.find((l) => l.ifname === conf.bridge);

  if (!brMap) throw fail('Interface name missing ');
  if (brMap.sandbox) throw fail(`Interface ${brMap.name} should not be in sandbox`);
  if (!br) throw fail(`Interface name ${conf.bridge} not found`);
  if (kind(br) !== 'bridge') throw fail(`Interface ${conf.bridge} does not have link type of bridge`);
  if (brMap.mac && brMap.mac !== br.address) throw fail(`Bridge interface ${conf.bridge} Mac doesn't match: ${brMap.mac}`);
  const promisc = br.flags.includes('PROMISC');
  if (promisc !== conf.promiscMode) {
    throw fail(`Bridge interface ${conf.bridge} configured Promisc Mode ${conf.promiscMode} doesn't match current state: ${promisc} `);
  }
  if (!contMap) throw fail(`Sandbox in prevResult  doesn't match configured netns: ${netns}`);

  const pod = await podState(netns, ifName);
  if (!pod.link) throw fail(`Interface name ${ifName} not found`);
  if (kind(pod.link) !== 'veth') throw fail(`Error: Container interface ${ifName} not of type veth`);
  if (contMap.mac && contMap.mac !== pod.link.address) {
    throw fail(`Interface ${ifName} Mac ${contMap.mac} doesn't match container Mac: ${pod.link.address}`);
  }

  let vethFound = false;
  for (const i of others) {
    const l = hostLinks.find((x) => x.ifname === i.name);
    if (!l) throw fail(`Interface name ${i.name} not found`);
    if (kind(l) !== 'veth') continue; // not something CNI created
    if (l.ifindex !== peerIndex(pod.link) || peerIndex(l) !== pod.link.ifindex || l.master !== conf.bridge) continue;
    if (i.mac && i.mac !== l.address) throw fail(`Interface ${i.name} Mac doesn't match: ${i.mac} not found`);
    vethFound = true;
    break;
  }
  if (!vethFound) throw fail(`CNI veth created for bridge ${conf.bridge} was not found`);

  for (const ip of prev.ips ?? []) {
    if (!pod.addrs.includes(canonicalCidr(ip.address))) throw fail(`Failed to match addr ${ip.address} on interface ${ifName}`);
    const net = networkOf(ip.address);
    if (!pod.routes.some((r) => routeDst(r.dst) === net)) throw fail(`Failed to find Gateway ${ip.gateway ?? '<nil>'} for interface ${ifName}`);
  }
  for (const route of prev.routes ?? []) {
    const net = networkOf(route.dst);
    const isDefault = net === '0.0.0.0/0' || net === '::/0';
    const found = pod.routes.some((r) => {
      const d = routeDst(r.dst);
      if (r.family !== familyOf(route.dst)) return false;
      // As the reference: a default route matches on destination only.
      if (isDefault) return d === 'default';
      return d === net && (route.gw === undefined || r.gateway === route.gw);
    });
    if (!found) throw fail(`Expected Route {Dst:${route.dst} GW:${route.gw ?? '<nil>'}} not found in routing table`);
  }
}
