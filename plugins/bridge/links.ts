/**
 * Kernel I/O for the bridge plugin, in-process over rtnetlink: reads from
 * /sys where that is enough, everything else through lib/netlink (no `ip`,
 * `bridge`, `nsenter` or `sysctl` child). Every failure names the operation
 * and the object (NetlinkError).
 */
import { existsSync, readdirSync, readFileSync, readlinkSync } from 'node:fs';
import { randomBytes } from '../../lib/digest.ts';
import { CniError, ErrorCode } from '../../lib/cni/errors.ts';
import { EEXIST, NetlinkError, withRtnl, type Rtnl } from '../../lib/netlink/rtnl.ts';
import type { LinkInfo } from '../../lib/netlink/messages.ts';
import type { NetnsHandle } from '../../lib/netns.ts';
import type { BridgeConfig } from './config.ts';
import type { AddrPlan, BridgeAddrPlan, PortVlanOp } from './render.ts';

export type BridgeState = 'absent' | 'bridge' | 'not-bridge';

export function linkState(name: string): BridgeState {
  if (!existsSync(`/sys/class/net/${name}`)) return 'absent';
  return existsSync(`/sys/class/net/${name}/bridge`) ? 'bridge' : 'not-bridge';
}

export function readLinkFile(name: string, file: string): string | undefined {
  try {
    return readFileSync(`/sys/class/net/${name}/${file}`, 'utf8').trim();
  } catch {
    return undefined;
  }
}

/** Name of the link a /sys/class/net/<name>/<file> symlink points at (e.g. "master" -> the bridge). */
export function readLinkFileTarget(name: string, file: string): string | undefined {
  try {
    return readlinkSync(`/sys/class/net/${name}/${file}`).split('/').pop();
  } catch {
    return undefined;
  }
}


/** A random locally administered unicast MAC. */
export function randomMac(): string {
  const b = randomBytes(6);
  b[0] = ((b[0] as number) & 0xfe) | 0x02;
  return [...b].map((x) => x.toString(16).padStart(2, '0')).join(':');
}

const notBridge = (name: string, kind: string | undefined) =>
  new CniError(ErrorCode.Internal, `failed to create bridge "${name}": "${name}" already exists but is not a bridge`, kind ? `it is a ${kind} link` : 'the kernel reports no link kind for it');

/**
 * The bridge, created when missing (with a fixed MAC so it does not follow
 * its ports), promiscuous if configured, up. A concurrent ADD creating it
 * first is fine; a non-bridge link of that name is an error. `onCreated`
 * runs right after this call created it (the caller's undo step).
 */
export function ensureBridge(host: Rtnl, conf: BridgeConfig, onCreated: () => void = () => {}): LinkInfo {
  const name = conf.bridge;
  let link = host.getLink(name);
  if (!link) {
    try {
      host.createBridge({ name, mtu: conf.mtu > 0 ? conf.mtu : undefined, mac: randomMac(), vlanFiltering: conf.vlan !== 0 || conf.vlanTrunk !== undefined });
      onCreated();
    } catch (e) {
      if (!(e instanceof NetlinkError && e.errno === EEXIST)) throw e;
    }
    link = host.getLink(name);
    if (!link) throw new CniError(ErrorCode.Internal, `failed to create bridge "${name}": it vanished right after creation`);
  }
  // Under a storm of first ADDs, a bridge another ADD is creating was seen once without its kind
  // (no IFLA_LINKINFO yet): read it again briefly before calling it something else.
  for (let i = 0; i < 50 && link.kind === undefined; i++) {
    Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 2);
    link = host.getLink(name) ?? link;
  }
  if (link.kind !== 'bridge') throw notBridge(name, link.kind);
  if (!link.up || (conf.promiscMode && !link.promisc)) host.setLink(link.index, { up: true, ...(conf.promiscMode ? { promisc: true } : {}) });
  return link;
}

/**
 * The pod's veth pair: the container end is created straight in the pod's
 * namespace (by descriptor) with its name, MTU and MAC; the host end is
 * enslaved to the bridge, brought up, and gets its port flags.
 */
export function createPodVeth(host: Rtnl, conf: BridgeConfig, bridge: LinkInfo, hostVeth: string, ns: NetnsHandle, ifName: string): LinkInfo {
  const mtu = conf.mtu > 0 ? conf.mtu : undefined;
  try {
    host.createVeth({ name: hostVeth, peerName: ifName, mtu, peerMac: conf.mac, peerNetnsFd: ns.fd }, ns.path);
  } catch (e) {
    // Say what exists where: the host name is fresh, so it is the pod's interface.
    if (e instanceof NetlinkError && e.errno === EEXIST && podHasLink(ns, ifName)) {
      throw new CniError(ErrorCode.Internal, `container interface "${ifName}" already exists in ${ns.path}`);
    }
    throw e;
  }
  host.setLink(hostVeth, { master: bridge.index, up: true });
  if (conf.hairpinMode || conf.portIsolation) host.setBridgePort(hostVeth, { hairpin: conf.hairpinMode, isolated: conf.portIsolation });
  const link = host.getLink(hostVeth);
  if (!link) throw new CniError(ErrorCode.Internal, `failed to read veth "${hostVeth}" right after creating it`);
  return link;
}

function podHasLink(ns: NetnsHandle, ifName: string): boolean {
  return withRtnl(ns, (pod) => pod.getLink(ifName) !== undefined);
}

/** "<bridge>.<vlan>": a host veth whose peer is a bridge port in the VLAN, carrying the gateway addresses. */
export function createVlanGateway(host: Rtnl, conf: BridgeConfig, bridge: LinkInfo, name: string, peer: string): LinkInfo {
  const mtu = conf.mtu > 0 ? conf.mtu : undefined;
  host.createVeth({ name, peerName: peer, mtu });
  host.setLink(peer, { master: bridge.index, up: true });
  host.setLink(name, { up: true });
  const link = host.getLink(name);
  if (!link) throw new CniError(ErrorCode.Internal, `failed to read "${name}" right after creating it`);
  return link;
}

/** Ports of a bridge, from /sys (empty when it has none or is gone). */
export function bridgePorts(name: string): string[] {
  try {
    return readdirSync(`/sys/class/net/${name}/brif`);
  } catch {
    return [];
  }
}

/** Apply planBridgeAddrs' result to the gateway device. */
export function applyBridgeAddrs(host: Rtnl, dev: string, index: number, plan: BridgeAddrPlan): void {
  for (const cidr of plan.remove) host.delAddr({ index, cidr }, `"${dev}"`);
  for (const a of plan.add) host.addAddr({ index, cidr: a.cidr, nodad: a.nodad }, 'replace', `"${dev}"`);
}

/** Apply planPortVlans' result to a bridge port. */
export function applyPortVlans(host: Rtnl, index: number, ops: readonly PortVlanOp[]): void {
  for (const o of ops) host.bridgeVlan(o.op, index, o.vid, { pvid: o.pvid, untagged: o.untagged });
}

/** The pod's addresses on its interface (by index), then the link up. */
export function addPodAddrs(pod: Rtnl, index: number, ifName: string, addrs: readonly AddrPlan[]): void {
  for (const a of addrs) pod.addAddr({ index, cidr: a.cidr, nodad: a.nodad }, 'add', `"${ifName}"`);
}

/** Sleep without blocking the event loop. */
export const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/**
 * Wait until the host end of the veth reports operstate "up" (the container
 * end is up by now). Polls /sys: no process, short steps.
 */
export async function waitOperUp(name: string, timeoutMs = 2500): Promise<void> {
  const start = Date.now();
  let delay = 1;
  for (;;) {
    const state = readLinkFile(name, 'operstate');
    if (state === 'up') return;
    if (Date.now() - start > timeoutMs) throw new Error(`bridge port in error state: ${state ?? 'missing'}`);
    await sleep(delay);
    delay = Math.min(delay * 2, 50);
  }
}
