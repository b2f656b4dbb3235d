/**
 * bridge: Docker-style bridge networking. ADD reads as a fixed recipe:
 * config (and our IPAM's config) validated -> 1. IPAM -> 2. masquerade
 * child started -> 3. host links in-process (bridge, veth with its pod end
 * created in the netns, port flags, gateway addresses) -> 4. pod side
 * in-process (sysctls, addresses, routes) -> 5. masquerade done -> spoof
 * check, forwarding, port up -> result. Every step that changes something
 * pushes its undo on the next line; any failure unwinds the stack, so a
 * failed ADD leaves no veth, bridge it created, reservation or rule.
 */
import { validAttachments } from '../../lib/cni/attachments.ts';
import { CniError, ErrorCode, settleAll } from '../../lib/cni/errors.ts';
import { delegate, delegateAdd, validateDelegate } from '../../lib/cni/invoke.ts';
import type { CmdArgs, Plugin } from '../../lib/cni/skel.ts';
import type { IpConfig, Result } from '../../lib/cni/types.ts';
import { LATEST_VERSION } from '../../lib/cni/version.ts';
import { detectMasqBackend, familiesOf, gcMasquerade, missingMasquerade, setupMasquerade, teardownMasquerade } from '../../lib/firewall/masquerade.ts';
import { setupSpoofCheck, spoofRefId, teardownSpoofCheck } from '../../lib/firewall/spoofcheck.ts';
import { familyOf, type Family } from '../../lib/ip/prefix.ts';
import { logDebug } from '../../lib/log.ts';
import { UndoStack } from '../../lib/undo.ts';
import type { LinkInfo } from '../../lib/netlink/messages.ts';
import { Rtnl, withRtnl } from '../../lib/netlink/rtnl.ts';
import { closeNetns, inspectNetns, openNetns, writeSysctlsIn, type NetnsHandle } from '../../lib/netns.ts';
import { writeSysctl } from '../../lib/sysctl.ts';
import { TSCNI_VERSION } from '../../lib/version-info.ts';
import { checkAttachment } from './check.ts';
import { parseBridgeConfig, type BridgeConfig } from './config.ts';
import {
  addPodAddrs,
  bridgePorts,
  applyBridgeAddrs,
  applyPortVlans,
  createPodVeth,
  createVlanGateway,
  ensureBridge,
  linkState,
  readLinkFile,
  readLinkFileTarget,
  waitOperUp,
} from './links.ts';
import { CONTAINER_IF_INDEX, planBridgeAddrs, planGateways, planPodAddrs, planPodRoutes, planPortVlans, podSysctls, type GatewayPlan } from './render.ts';
import { failpoint } from '../../lib/failpoint.ts';
import { randomVethName } from '../../lib/digest.ts';


async function add(args: CmdArgs): Promise<Result> {
  const conf = parseBridgeConfig(args.config, args.args);
  const state = linkState(conf.bridge);
  if (state === 'not-bridge') {
    throw new CniError(ErrorCode.Internal, `failed to create bridge "${conf.bridge}": "${conf.bridge}" already exists but is not a bridge`);
  }
  // Everything that can be checked is checked before the kernel is touched: our own IPAM's config too.
  if (conf.ipamType) await validateDelegate(conf.ipamType, args.stdinData, args.env);
  const undo = new UndoStack('bridge');
  const ns = openNetns(args.netns);
  const host = Rtnl.host();
  const pod = Rtnl.in(ns);
  try {
    return await addSteps(args, conf, { ns, host, pod }, undo);
  } catch (e) {
    await undo.unwind();
    throw e;
  } finally {
    pod.close();
    host.close();
    closeNetns(ns);
  }
}

interface Kernel {
  ns: NetnsHandle;
  host: Rtnl;
  pod: Rtnl;
}

async function addSteps(args: CmdArgs, conf: BridgeConfig, k: Kernel, undo: UndoStack): Promise<Result> {
  const br = conf.bridge;
  logDebug('bridge ADD: start', performance.now().toFixed(1));
  let hostVeth = randomVethName();
  // Never reuse a name that exists: the undo step below deletes this link by name.
  while (linkState(hostVeth) !== 'absent') hostVeth = randomVethName();

  // Gateway addresses go on the bridge, or on "<bridge>.<vlan>" when a VLAN is set.
  const wantsGw = conf.isGateway && !!conf.ipamType;
  const vlanGwName = conf.vlan !== 0 && wantsGw ? `${br}.${conf.vlan}` : undefined;

  // 1. IPAM (our host-local runs in-process).
  const ipamType = conf.ipamType;
  let plan: GatewayPlan | undefined;
  let dns = conf.dns;
  if (ipamType) {
    const ipam = await delegateAdd(ipamType, args.stdinData, args.env);
    undo.push('IPAM DEL', () => delegate('DEL', ipamType, args.stdinData, args.env));
    logDebug('bridge ADD: IPAM done', performance.now().toFixed(1));
    if (!ipam.ips || ipam.ips.length === 0) throw new CniError(ErrorCode.Internal, 'IPAM plugin returned missing IP config');
    plan = planGateways(ipam, conf);
    dns = conf.dns ?? ipam.dns;
  }
  failpoint(args.env, 'after-ipam');

  // 2. Masquerade is a child (iptables-restore or nft): start it now, so it runs while we do the kernel work in-process.
  let masq: Promise<void> = Promise.resolve();
  if (plan && conf.ipMasq) {
    const cidrs = plan.ips.map((ip) => ip.address);
    masq = setupMasquerade(conf.ipMasqBackend ?? detectMasqBackend(), cidrs, conf.name, args.ifName, args.containerId);
    masq.catch(() => {}); // awaited in step 5; an earlier failure unwinds through the undo step below
    const started = masq;
    undo.push('masquerade teardown', async () => {
      await started.catch(() => undefined); // never tear down while the setup still runs
      await teardownMasquerade({ network: conf.name, ifname: args.ifName, containerId: args.containerId, families: familiesOf(cidrs), cidrs });
    });
    await yieldToChildren();
  }

  // 3. Host side, in-process: bridge, veth pair (container end straight into the pod's netns), port flags.
  const bridge = ensureBridge(k.host, conf, () =>
    // A bridge this ADD created goes again on failure, unless another pod joined it meanwhile.
    undo.push('delete the bridge this ADD created', async () => {
      if (bridgePorts(br).length === 0) k.host.deleteLink(br);
    }),
  );
  undo.push('delete host veth', async () => k.host.deleteLink(hostVeth));
  const hostLink = createPodVeth(k.host, conf, bridge, hostVeth, k.ns, args.ifName);
  let gwLink: LinkInfo | undefined = wantsGw ? bridge : undefined;
  let vlanGwPeer: string | undefined;
  if (vlanGwName) {
    gwLink = k.host.getLink(vlanGwName);
    if (!gwLink) {
      vlanGwPeer = randomVethName();
      undo.push('delete vlan gateway veth', async () => k.host.deleteLink(vlanGwName));
      gwLink = createVlanGateway(k.host, conf, bridge, vlanGwName, vlanGwPeer);
    }
  }
  logDebug('bridge ADD: host links done', performance.now().toFixed(1));
  failpoint(args.env, 'after-veth');

  // Host follow-ups: no router advertisements on our links, port VLANs, the gateway addresses (bridge MAC pinned once it carries one).
  writeSysctl(`net/ipv6/conf/${br}/accept_ra`, '0', { ifChanged: true });
  writeSysctl(`net/ipv6/conf/${hostVeth}/accept_ra`, '0');
  if (vlanGwPeer) writeSysctl(`net/ipv6/conf/${vlanGwPeer}/accept_ra`, '0');
  const defaultPvid = Number(readLinkFile(br, 'bridge/default_pvid') ?? '1');
  applyPortVlans(k.host, hostLink.index, planPortVlans(conf.vlan, conf.vlanTrunk, conf.preserveDefaultVlan, defaultPvid));
  if (vlanGwPeer) {
    const peer = k.host.getLink(vlanGwPeer);
    if (peer) applyPortVlans(k.host, peer.index, planPortVlans(conf.vlan, undefined, conf.preserveDefaultVlan, defaultPvid));
  }
  if (plan && gwLink) {
    const gw = gwLink;
    const addrPlan = planBridgeAddrs(gw.name, k.host.listAddrs(undefined, gw.index), plan.bridgeAddrs, conf.forceAddress, !conf.enabledad);
    applyBridgeAddrs(k.host, gw.name, gw.index, addrPlan);
    if (addrPlan.add.length && !vlanGwName) {
      const mac = readLinkFile(br, 'address');
      if (mac) k.host.setLink(bridge.index, { mac });
    }
  }

  // 4. Pod side, in-process: sysctls, addresses, link up, routes.
  const contLink = await configurePod(args, conf, plan, k);
  logDebug('bridge ADD: pod done', performance.now().toFixed(1));
  failpoint(args.env, 'after-pod');

  // 5. The masquerade child's outcome.
  await masq;
  logDebug('bridge ADD: masquerade done', performance.now().toFixed(1));
  failpoint(args.env, 'after-masq');

  if (conf.macspoofchk) {
    const refId = spoofRefId(args.containerId, args.ifName);
    undo.push('spoof check teardown', () => teardownSpoofCheck(refId));
    await setupSpoofCheck(refId, hostVeth, contLink?.mac ?? conf.mac ?? '');
  }

  // Forwarding for every family that has a gateway.
  if (plan && conf.isGateway) {
    if (plan.bridgeAddrs[4].length) writeSysctl('net/ipv4/ip_forward', '1', { ifChanged: true });
    if (plan.bridgeAddrs[6].length) writeSysctl('net/ipv6/conf/all/forwarding', '1', { ifChanged: true });
  }

  // The port must be up before the pod starts.
  if (!conf.disableContainerInterface) await waitOperUp(hostVeth);
  logDebug('bridge ADD: port up', performance.now().toFixed(1));
  failpoint(args.env, 'before-result');

  const result: Result = {
    cniVersion: LATEST_VERSION,
    interfaces: [
      { name: br, mac: readLinkFile(br, 'address') ?? '' },
      { name: hostVeth, mac: hostLink.mac },
      { name: args.ifName, mac: contLink?.mac ?? '', sandbox: args.netns },
    ],
  };
  if (vlanGwName) result.interfaces?.push({ name: vlanGwName, mac: readLinkFile(vlanGwName, 'address') ?? '' });
  if (plan) {
    result.ips = plan.ips;
    if (plan.routes.length) result.routes = plan.routes;
  }
  if (dns) result.dns = dns;
  return result;
}

/** Pod side, in-process: sysctls (thread briefly in the pod's netns), addresses, link up, routes. */
async function configurePod(args: CmdArgs, conf: BridgeConfig, plan: GatewayPlan | undefined, k: Kernel): Promise<LinkInfo | undefined> {
  const link = k.pod.getLink(args.ifName);
  if (!link) throw new CniError(ErrorCode.Internal, `failed to find "${args.ifName}" in ${args.netns} right after creating it`);
  if (plan) {
    const hasV6 = plan.ips.some((ip) => familyOf(ip.address) === 6);
    // IPv6 must be enabled before v6 addresses go on.
    writeSysctlsIn(k.ns, podSysctls(args.ifName, conf.enabledad, hasV6));
    addPodAddrs(k.pod, link.index, args.ifName, planPodAddrs(plan.ips, !conf.enabledad));
    k.pod.setLink(link.index, { up: true });
    if (conf.enabledad && hasV6) await settleAddresses(k.pod, link.index, args.ifName);
    for (const r of planPodRoutes(plan.ips, plan.routes)) k.pod.addRoute({ ...r, index: link.index }, `"${args.ifName}"`);
  } else if (!conf.disableContainerInterface) {
    k.pod.setLink(link.index, { up: true });
  }
  return k.pod.getLink(link.index);
}

const IFA_F_DADFAILED = 0x08;
const IFA_F_TENTATIVE = 0x40;

/** With enabledad: wait (up to 5 s, as the reference) until no IPv6 address is tentative. */
async function settleAddresses(pod: Rtnl, index: number, ifName: string): Promise<void> {
  const deadline = Date.now() + 5000;
  for (;;) {
    const addrs = pod.listAddrs(6, index);
    const failed = addrs.find((a) => a.flags & IFA_F_DADFAILED);
    if (failed) throw new CniError(ErrorCode.Internal, `link ${ifName} has address ${failed.local} in DADFAILED state`);
    if (!addrs.some((a) => a.flags & IFA_F_TENTATIVE)) return;
    if (Date.now() > deadline) throw new CniError(ErrorCode.Internal, `link ${ifName} still has tentative addresses after 5 seconds`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** The host veth from prevResult, if it still exists as a port of our bridge (so it is the pod's pair, not a reused name). */
function hostVethFromPrev(args: CmdArgs, conf: BridgeConfig): string | undefined {
  const ifs = args.config.prevResult?.interfaces ?? [];
  const cont = ifs.find((i) => i.name === args.ifName && i.sandbox);
  const host = ifs.find((i) => !i.sandbox && /^veth[0-9a-f]{8}$/.test(i.name));
  if (!cont || !host) return undefined;
  const master = readLinkFileTarget(host.name, 'master');
  if (master !== conf.bridge) return undefined;
  // The host veth's MAC must still be the one the pod's ADD reported.
  if (host.mac && readLinkFile(host.name, 'address') !== host.mac) return undefined;
  return host.name;
}

function prevIps(args: CmdArgs): IpConfig[] | undefined {
  return args.config.prevResult?.ips;
}

/** One turn of the event loop, so that children just spawned are fed their stdin before we block in the kernel. */
const yieldToChildren = () => new Promise<void>((r) => setImmediate(r));

/** Delete the pod's veth pair (either end removes both); gone already, or the netns gone, is success. */
function deletePodVeth(args: CmdArgs, conf: BridgeConfig): void {
  const hostVeth = hostVethFromPrev(args, conf);
  if (hostVeth) {
    withRtnl(undefined, (host) => host.deleteLink(hostVeth));
    return;
  }
  let ns: NetnsHandle;
  try {
    ns = openNetns(args.netns);
  } catch (e) {
    if (inspectNetns(args.netns) === 'missing') return; // vanished since the skel looked
    throw e;
  }
  try {
    withRtnl(ns, (pod) => pod.deleteLink(args.ifName));
  } finally {
    closeNetns(ns);
  }
}

async function del(args: CmdArgs): Promise<void> {
  const conf = parseBridgeConfig(args.config, args.args);
  logDebug('bridge DEL: start', performance.now().toFixed(1));
  const tasks: Array<Promise<unknown>> = [];

  // The veth pair first. With prevResult naming a host veth that is still a
  // port of our bridge with the MAC the ADD reported, delete it from the host
  // side; otherwise delete the pod end inside the netns. Deleting either end
  // removes both. A missing netns or link is success. It goes before the rule
  // teardown: both wait for the kernel's RCU grace periods and slow each
  // other down when they overlap (measured: 60 ms together, ~40 ms in turn).
  if (args.netnsState === 'ok') {
    try {
      deletePodVeth(args, conf);
    } catch (e) {
      tasks.push(Promise.reject(e));
    }
  }
  if (conf.ipamType) tasks.push(delegate('DEL', conf.ipamType, args.stdinData, args.env));
  if (conf.macspoofchk) tasks.push(teardownSpoofCheck(spoofRefId(args.containerId, args.ifName)));
  // Teardown is keyed by the rules' tags; prevResult only narrows the families to look at.
  if (conf.ipamType && conf.ipMasq) {
    const ips = prevIps(args);
    const families: Family[] = ips && ips.length ? familiesOf(ips.map((i) => i.address)) : [4, 6];
    tasks.push(
      teardownMasquerade({ network: conf.name, ifname: args.ifName, containerId: args.containerId, families, cidrs: ips?.map((i) => i.address), backend: conf.ipMasqBackend ?? detectMasqBackend() }),
    );
  }
  await settleAll(tasks);
  logDebug('bridge DEL done', args.containerId);
}

async function check(args: CmdArgs): Promise<void> {
  const conf = parseBridgeConfig(args.config, args.args);
  const prev = args.config.prevResult;
  // Beyond the reference: the masquerade rules are state ADD made, so CHECK verifies them too.
  // Their check runs as children: start them first, so they run while we read the kernel in-process.
  const cidrs = (prev?.ips ?? []).map((i) => i.address);
  const masq: Promise<string[]> =
    prev && conf.ipamType && conf.ipMasq ? missingMasquerade(conf.ipMasqBackend ?? detectMasqBackend(), cidrs, conf.name, args.ifName, args.containerId) : Promise.resolve([]);
  masq.catch(() => {}); // awaited below; a failure before that point must not go unhandled
  // As the reference: IPAM's CHECK first, then the prevResult requirement.
  if (conf.ipamType) await delegate('CHECK', conf.ipamType, args.stdinData, args.env);
  if (!prev) throw new CniError(ErrorCode.InvalidNetworkConfig, 'Required prevResult missing');
  await checkAttachment(conf, prev, args.netns, args.ifName);
  const missing = await masq;
  if (missing.length) throw new CniError(ErrorCode.Internal, `masquerade rule missing for ${missing.join(', ')}`);
}

async function gc(args: CmdArgs): Promise<void> {
  const conf = parseBridgeConfig(args.config, args.args);
  const valid = validAttachments(args.config);
  const tasks: Array<Promise<unknown>> = [gcMasquerade(conf.name, valid)];
  if (conf.ipamType) tasks.push(delegate('GC', conf.ipamType, args.stdinData, args.env));
  await settleAll(tasks);
}

async function status(args: CmdArgs): Promise<void> {
  const conf = parseBridgeConfig(args.config, args.args);
  if (conf.ipamType) await delegate('STATUS', conf.ipamType, args.stdinData, args.env);
}

export const bridgePlugin: Plugin = {
  name: 'bridge',
  about: `tscni bridge plugin v${TSCNI_VERSION}`,
  add,
  del,
  check,
  gc,
  status,
};

export { CONTAINER_IF_INDEX };
