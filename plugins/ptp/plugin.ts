/**
 * ptp: a veth pair per pod and no bridge (reference: plugins/main/ptp/ptp.go).
 *
 *   pod netns                         host (the plugin's netns)
 *   eth0 10.1.0.5/24  <----veth---->  vethXXXXXXXX 10.1.0.1/32 (the gateway)
 *     10.1.0.1/32 dev eth0 scope link   10.1.0.5/32 dev vethXXXXXXXX
 *     10.1.0.0/24 via 10.1.0.1          [+ masquerade of 10.1.0.5 with ipMasq]
 *
 * All pod traffic goes through the gateway address on the host end (even to
 * the same subnet: the kernel's prefix route is removed), so pods on one
 * host reach each other through the host's routing. ADD: IPAM -> forwarding
 * -> veth -> pod addresses/routes -> host address/route -> masquerade ->
 * result; every step registers its undo. DEL: IPAM DEL, masquerade teardown
 * by the rules' tags (works with the netns gone), the veth.
 */
import { delegate, delegateAdd } from '../../lib/cni/invoke.ts';
import type { CmdArgs, Plugin } from '../../lib/cni/skel.ts';
import type { Result } from '../../lib/cni/types.ts';
import { LATEST_VERSION } from '../../lib/cni/version.ts';
import { detectMasqBackend, familiesOf, gcMasquerade, missingMasquerade, setupMasquerade, teardownMasquerade } from '../../lib/firewall/masquerade.ts';
import { addrOf, familyOf, networkOf, type Family } from '../../lib/ip/prefix.ts';
import { RT_SCOPE_LINK, RT_SCOPE_UNIVERSE } from '../../lib/netlink/codec.ts';
import { EEXIST, NetlinkError, Rtnl, withRtnl } from '../../lib/netlink/rtnl.ts';
import { closeNetns, openNetns } from '../../lib/netns.ts';
import { writeSysctl } from '../../lib/sysctl.ts';
import { TSCNI_VERSION } from '../../lib/version-info.ts';
import { validAttachments } from '../../lib/cni/attachments.ts';
import { settleAll } from '../../lib/cni/errors.ts';
import { UndoStack, withUndo } from '../../lib/undo.ts';
import { parsePtpConfig, type PtpConfig } from './config.ts';
import { randomVethName } from '../../lib/digest.ts';
import { checkPodIface, configurePodIface, deletePodLink, internal } from '../../lib/pod-iface.ts';
import { failpoint } from '../../lib/failpoint.ts';


const hostPrefix = (f: Family) => (f === 4 ? 32 : 128);

async function add(args: CmdArgs): Promise<Result> {
  const conf = parsePtpConfig(args.config);
  const undo = new UndoStack('ptp');
  const ns = openNetns(args.netns);
  const host = Rtnl.host();
  const pod = Rtnl.in(ns);
  try {
    return await withUndo(undo, () => addSteps(args, conf, undo, host, pod, ns));
  } finally {
    pod.close();
    host.close();
    closeNetns(ns);
  }
}

async function addSteps(args: CmdArgs, conf: PtpConfig, undo: UndoStack, host: Rtnl, pod: Rtnl, ns: ReturnType<typeof openNetns>): Promise<Result> {
  const ipam = await delegateAdd(conf.ipamType, args.stdinData, args.env);
  undo.push('IPAM DEL', () => delegate('DEL', conf.ipamType, args.stdinData, args.env));
  failpoint(args.env, 'after-ipam');
  const ips = ipam.ips ?? [];
  if (ips.length === 0) throw internal('IPAM plugin returned missing IP config');
  for (const ip of ips) {
    if (!ip.gateway) throw internal(`IPAM result ${ip.address} has no gateway: ptp puts the gateway address on the host end of the veth`);
  }
  const families = familiesOf(ips.map((i) => i.address));
  // As the reference's ip.EnableForward: only switched on, never back off (other pods depend on it).
  if (families.includes(4)) writeSysctl('net/ipv4/ip_forward', '1', { ifChanged: true });
  if (families.includes(6)) writeSysctl('net/ipv6/conf/all/forwarding', '1', { ifChanged: true });

  let hostVeth = randomVethName();
  while (host.getLink(hostVeth)) hostVeth = randomVethName();
  undo.push(`delete veth "${hostVeth}"`, () => host.deleteLink(hostVeth));
  host.createVeth({ name: hostVeth, peerName: args.ifName, mtu: conf.mtu || undefined, peerNetnsFd: ns.fd }, ns.path);
  host.setLink(hostVeth, { up: true });
  const hostLink = host.getLink(hostVeth);
  if (!hostLink) throw internal(`failed to lookup "${hostVeth}" right after creating it`);
  failpoint(args.env, 'after-veth');

  const result: Result = {
    cniVersion: LATEST_VERSION,
    interfaces: [
      { name: hostVeth, mac: hostLink.mac },
      { name: args.ifName, sandbox: args.netns },
    ],
    ips: ips.map((ip) => ({ ...ip, interface: 1 })),
  };
  if (ipam.routes?.length) result.routes = ipam.routes;
  const dns = conf.dns ?? ipam.dns;
  if (dns) result.dns = dns;

  // Pod: addresses and up (IPv6 without DAD: nobody else is on a point-to-point link), then the ptp routes, then IPAM's routes.
  const contLink = await configurePodIface(ns, pod, args.ifName, { ...result, routes: [] }, { nodad: true });
  const ifDesc = `"${args.ifName}"`;
  for (const ip of result.ips ?? []) {
    const fam = familyOf(ip.address);
    const gw = ip.gateway as string;
    const src = addrOf(ip.address);
    const subnet = networkOf(ip.address);
    pod.delRoute({ dst: subnet, index: contLink.index }, ifDesc);
    pod.addRouteSrc({ dst: `${gw}/${hostPrefix(fam)}`, index: contLink.index, scope: RT_SCOPE_LINK, src }, ifDesc);
    pod.addRouteSrc({ dst: subnet, gw, index: contLink.index, scope: RT_SCOPE_UNIVERSE, src }, ifDesc);
  }
  for (const r of result.routes ?? []) {
    const gw = r.gw ?? result.ips?.find((ip) => familyOf(ip.address) === familyOf(r.dst))?.gateway;
    pod.addRoute({ dst: r.dst, gw, index: contLink.index, priority: r.priority, table: r.table, scope: r.scope, mtu: r.mtu, advmss: r.advmss }, ifDesc);
  }
  (result.interfaces as NonNullable<Result['interfaces']>)[1] = { name: args.ifName, mac: contLink.mac, sandbox: args.netns };
  failpoint(args.env, 'after-pod');

  // Host: the gateway address on the host end, a host route to the pod.
  const hostDesc = `"${hostVeth}"`;
  for (const ip of result.ips ?? []) {
    const fam = familyOf(ip.address);
    host.addAddr({ index: hostLink.index, cidr: `${ip.gateway as string}/${hostPrefix(fam)}`, nodad: true }, 'add', hostDesc);
    try {
      host.addRoute({ dst: `${addrOf(ip.address)}/${hostPrefix(fam)}`, index: hostLink.index, scope: RT_SCOPE_UNIVERSE }, hostDesc);
    } catch (e) {
      if (!(e instanceof NetlinkError && e.errno === EEXIST)) throw e;
    }
  }
  if (families.includes(6)) writeSysctl(`net/ipv6/conf/${hostVeth}/accept_ra`, '0');

  if (conf.ipMasq) {
    const cidrs = ips.map((i) => i.address);
    undo.push('masquerade teardown', () =>
      teardownMasquerade({ network: conf.name, ifname: args.ifName, containerId: args.containerId, families: familiesOf(cidrs), cidrs }),
    );
    await setupMasquerade(conf.ipMasqBackend ?? detectMasqBackend(), cidrs, conf.name, args.ifName, args.containerId);
  }
  failpoint(args.env, 'after-masq');
  return result;
}

async function del(args: CmdArgs): Promise<void> {
  const conf = parsePtpConfig(args.config);
  const tasks: Array<Promise<unknown>> = [delegate('DEL', conf.ipamType, args.stdinData, args.env)];
  if (conf.ipMasq) {
    // Keyed by the rules' tags, so it works with the netns gone; prevResult only narrows the families.
    const ips = args.config.prevResult?.ips;
    const families: Family[] = ips && ips.length ? familiesOf(ips.map((i) => i.address)) : [4, 6];
    tasks.push(
      teardownMasquerade({
        network: conf.name,
        ifname: args.ifName,
        containerId: args.containerId,
        families,
        cidrs: ips?.map((i) => i.address),
        backend: conf.ipMasqBackend ?? detectMasqBackend(),
      }),
    );
  }
  // Deleting the pod end removes the host end too.
  tasks.push(Promise.resolve().then(() => deletePodLink(args)));
  await settleAll(tasks);
}

async function check(args: CmdArgs): Promise<void> {
  const conf = parsePtpConfig(args.config);
  await delegate('CHECK', conf.ipamType, args.stdinData, args.env);
  const prev = args.config.prevResult;
  if (!prev) throw internal('ptp: Required prevResult missing');
  const cont = (prev.interfaces ?? []).find((i) => i.name === args.ifName && i.sandbox === args.netns);
  if (!cont) throw internal(`Sandbox in prevResult  doesn't match configured netns: ${args.netns}`);
  const ns = openNetns(args.netns);
  try {
    withRtnl(ns, (pod) => {
      const link = pod.getLink(args.ifName);
      if (!link) throw internal(`ptp: Container Interface name in prevResult: ${args.ifName} not found`);
      if (link.kind !== 'veth') throw internal(`Error: Container interface ${args.ifName} not of type veth/p2p`);
      if (cont.mac && cont.mac !== link.mac) throw internal(`ptp: Interface ${args.ifName} Mac ${cont.mac} doesn't match container Mac: ${link.mac}`);
      checkPodIface(pod, args.ifName, prev);
    });
  } finally {
    closeNetns(ns);
  }
  // Beyond the reference: the host end and the masquerade rules are state ADD made.
  const hostIf = (prev.interfaces ?? []).find((i) => !i.sandbox);
  if (hostIf && !withRtnl(undefined, (h) => h.getLink(hostIf.name))) throw internal(`ptp: host interface ${hostIf.name} not found`);
  if (conf.ipMasq) {
    const cidrs = (prev.ips ?? []).map((i) => i.address);
    const missing = await missingMasquerade(conf.ipMasqBackend ?? detectMasqBackend(), cidrs, conf.name, args.ifName, args.containerId);
    if (missing.length) throw internal(`masquerade rule missing for ${missing.join(', ')}`);
  }
}

async function gc(args: CmdArgs): Promise<void> {
  const conf = parsePtpConfig(args.config);
  const valid = validAttachments(args.config);
  await settleAll([gcMasquerade(conf.name, valid), delegate('GC', conf.ipamType, args.stdinData, args.env)]);
}

async function status(args: CmdArgs): Promise<void> {
  const conf = parsePtpConfig(args.config);
  await delegate('STATUS', conf.ipamType, args.stdinData, args.env);
}

export const ptpPlugin: Plugin = {
  name: 'ptp',
  about: `tscni ptp plugin v${TSCNI_VERSION}`,
  add,
  del,
  check,
  gc,
  status,
};
