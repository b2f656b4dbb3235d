/**
 * CHECK as the reference does it: the bridge (a bridge, same MAC, promisc
 * as configured), the container veth in the sandbox (same MAC), its host
 * peer enslaved to the bridge, and every IP and route from prevResult.
 */
import { CniError, ErrorCode } from '../../lib/cni/errors.ts';
import type { CniInterface, Result } from '../../lib/cni/types.ts';
import { canonicalCidr, defaultDst, familyOf, networkOf } from '../../lib/ip/prefix.ts';
import type { AddrInfo, LinkInfo, RouteInfo } from '../../lib/netlink/messages.ts';
import { withRtnl } from '../../lib/netlink/rtnl.ts';
import { closeNetns, openNetns } from '../../lib/netns.ts';
import type { BridgeConfig } from './config.ts';

const fail = (msg: string) => new CniError(ErrorCode.Internal, msg);

interface PodState {
  link: LinkInfo | undefined;
  addrs: string[];
  routes: RouteInfo[];
}

/** The pod's interface, its addresses and every route (all tables), read in-process. */
function podState(netns: string, ifName: string): PodState {
  const ns = openNetns(netns);
  try {
    return withRtnl(ns, (pod) => {
      const link = pod.getLink(ifName);
      const addrs = link ? pod.listAddrs(undefined, link.index).map((a: AddrInfo) => canonicalCidr(`${a.local}/${a.prefixLen}`)) : [];
      return { link, addrs, routes: [...pod.listRoutes(4), ...pod.listRoutes(6)] };
    });
  } finally {
    closeNetns(ns);
  }
}

export async function checkAttachment(conf: BridgeConfig, prev: Result, netns: string, ifName: string): Promise<void> {
  const ifaces = prev.interfaces ?? [];
  const brMap: CniInterface | undefined = ifaces.find((i) => i.name === conf.bridge);
  const contMap: CniInterface | undefined = ifaces.find((i) => i.name === ifName && i.sandbox === netns);

  const others = ifaces.filter((i) => i.name !== conf.bridge && i.name !== ifName && !i.sandbox);
  const hostLinks = withRtnl(undefined, (host) => [conf.bridge, ...others.map((i) => i.name)].flatMap((n) => host.getLink(n) ?? []));
  const br = hostLinks.find((l) => l.name === conf.bridge);

  if (!brMap) throw fail('Interface name missing ');
  if (brMap.sandbox) throw fail(`Interface ${brMap.name} should not be in sandbox`);
  if (!br) throw fail(`Interface name ${conf.bridge} not found`);
  if (br.kind !== 'bridge') throw fail(`Interface ${conf.bridge} does not have link type of bridge`);
  if (brMap.mac && brMap.mac !== br.mac) throw fail(`Bridge interface ${conf.bridge} Mac doesn't match: ${brMap.mac}`);
  const promisc = br.promisc;
  if (promisc !== conf.promiscMode) {
    throw fail(`Bridge interface ${conf.bridge} configured Promisc Mode ${conf.promiscMode} doesn't match current state: ${promisc} `);
  }
  if (!contMap) throw fail(`Sandbox in prevResult  doesn't match configured netns: ${netns}`);

  const pod = podState(netns, ifName);
  if (!pod.link) throw fail(`Interface name ${ifName} not found`);
  if (pod.link.kind !== 'veth') throw fail(`Error: Container interface ${ifName} not of type veth`);
  if (contMap.mac && contMap.mac !== pod.link.mac) {
    throw fail(`Interface ${ifName} Mac ${contMap.mac} doesn't match container Mac: ${pod.link.mac}`);
  }

  let vethFound = false;
  for (const i of others) {
    const l = hostLinks.find((x) => x.name === i.name);
    if (!l) throw fail(`Interface name ${i.name} not found`);
    if (l.kind !== 'veth') continue; // not something CNI created
    if (l.index !== pod.link.link || l.link !== pod.link.index || l.master !== br.index) continue;
    if (i.mac && i.mac !== l.mac) throw fail(`Interface ${i.name} Mac doesn't match: ${i.mac} not found`);
    vethFound = true;
    break;
  }
  if (!vethFound) throw fail(`CNI veth created for bridge ${conf.bridge} was not found`);

  for (const ip of prev.ips ?? []) {
    if (!pod.addrs.includes(canonicalCidr(ip.address))) throw fail(`Failed to match addr ${ip.address} on interface ${ifName}`);
    const net = networkOf(ip.address);
    if (!pod.routes.some((r) => r.dst === net)) throw fail(`Failed to find Gateway ${ip.gateway ?? '<nil>'} for interface ${ifName}`);
  }
  for (const route of prev.routes ?? []) {
    const net = networkOf(route.dst);
    const isDefault = net === '0.0.0.0/0' || net === '::/0';
    const found = pod.routes.some((r) => {
      if (r.family !== familyOf(route.dst)) return false;
      // As the reference: a default route matches on destination only.
      if (isDefault) return r.dst === defaultDst(r.family);
      return r.dst === net && (route.gw === undefined || r.gateway === route.gw);
    });
    if (!found) throw fail(`Expected Route {Dst:${route.dst} GW:${route.gw ?? '<nil>'}} not found in routing table`);
  }
}
