/**
 * The recipe macvlan, ipvlan and vlan share (reference: plugins/main/{macvlan,
 * ipvlan,vlan}): a link of some kind on a "master" in the plugin's namespace
 * (or in the pod with linkInContainer), created straight into the pod,
 * addressed from IPAM (or from prevResult for chained ipvlan).
 *
 *   ADD    resolve master (+ MTU bound) -> IPAM ADD -> link -> addresses,
 *          up, routes -> result [iface(sandbox)], ips[].interface = 0
 *   DEL    IPAM DEL, delete CNI_IFNAME in the pod (gone = done)
 *   CHECK  IPAM CHECK, master exists, link kind/mode/MAC, addresses, routes
 *   GC     forwarded to IPAM (no state of our own)
 *   STATUS IPAM STATUS, and the master must exist (code 50 otherwise)
 *
 * Each plugin supplies a StackedKind: its parsed config and how to build and
 * verify its link.
 */
import { CniError, ErrorCode, settleAll } from '../../lib/cni/errors.ts';
import { delegate, delegateAdd } from '../../lib/cni/invoke.ts';
import type { CmdArgs, Plugin } from '../../lib/cni/skel.ts';
import type { Dns, Result } from '../../lib/cni/types.ts';
import { LATEST_VERSION } from '../../lib/cni/version.ts';
import type { LinkDetails, LinkInfo, NewSubLink } from '../../lib/netlink/messages.ts';
import { Rtnl } from '../../lib/netlink/rtnl.ts';
import { closeNetns, openNetns, type NetnsHandle } from '../../lib/netns.ts';
import { TSCNI_VERSION } from '../../lib/version-info.ts';
import { UndoStack, withUndo } from '../../lib/undo.ts';
import { checkPodIface, configurePodIface, createStackedInPod, defaultRouteLink, deletePodLink, internal } from '../../lib/pod-iface.ts';
import { failpoint } from '../../lib/failpoint.ts';

/** What every stacked plugin's config carries. */
export interface StackedConfig {
  name: string;
  cniVersion: string;
  /** "" = the device of the default route (where the master lives). */
  master: string;
  mtu: number;
  linkInContainer: boolean;
  ipamType: string | undefined;
  dns: Dns | undefined;
}

export interface StackedKind<C extends StackedConfig> {
  /** CNI type and link kind ("macvlan", "ipvlan", "vlan"). */
  kind: string;
  parse(args: CmdArgs): C;
  /** Without IPAM: L2 only (macvlan), addresses from prevResult (chained ipvlan), or an error (vlan). */
  withoutIpam: 'l2' | 'prev-result' | 'error';
  /** The master from prevResult's single interface (chained ipvlan) when `master` is empty. */
  masterFromPrev?: boolean;
  /** The link to create, without name/netns (those come from the recipe). */
  linkSpec(conf: C, masterIndex: number): Omit<NewSubLink, 'name' | 'netnsFd'>;
  /** CHECK: throw when the pod's link is not what ADD made. */
  verifyLink(conf: C, link: LinkInfo, details: LinkDetails, ifName: string): void;
  /** Also set arp_notify / ndisc_notify (macvlan, ipvlan). */
  notify: boolean;
}


interface Master {
  link: LinkInfo;
  /** The socket of the namespace the master lives in. */
  nl: Rtnl;
}

/**
 * Find the master (by name, or the default route's device; chained ipvlan:
 * prevResult's single interface) in the plugin's namespace or, with
 * linkInContainer, in the pod's; check the MTU against it. Nothing changes.
 */
function resolveMaster<C extends StackedConfig>(k: StackedKind<C>, conf: C, args: CmdArgs, host: Rtnl, pod: Rtnl | undefined): Master {
  const nl = conf.linkInContainer ? pod : host;
  if (!nl) throw internal(`failed to lookup master: netns ${args.netns} is not available`);
  let name = conf.master;
  if (!name && k.masterFromPrev && args.config.prevResult) {
    const ifs = args.config.prevResult.interfaces ?? [];
    if (ifs.length !== 1 || !ifs[0]?.name) throw internal('chained master failure. PrevResult lacks a single named interface');
    name = ifs[0].name;
  }
  const link = name ? nl.getLink(name) : defaultRouteLink(nl);
  if (!link) throw internal(`failed to lookup master "${name}"${conf.linkInContainer ? ` in ${args.netns}` : ''}: Link not found`);
  if (conf.mtu < 0 || conf.mtu > link.mtu) throw new CniError(ErrorCode.InvalidNetworkConfig, `invalid MTU ${conf.mtu}, must be [0, master MTU(${link.mtu})]`);
  return { link, nl };
}

/** Build the Plugin for one stacked kind. */
export function stackedPlugin<C extends StackedConfig>(k: StackedKind<C>): Plugin {
  async function add(args: CmdArgs): Promise<Result> {
    const conf = k.parse(args);
    const prevIps = k.withoutIpam === 'prev-result' && !conf.ipamType ? (args.config.prevResult?.ips ?? []) : [];
    if (!conf.ipamType && k.withoutIpam === 'error') throw new CniError(ErrorCode.InvalidNetworkConfig, `${k.kind}: "ipam" with a "type" is required`);
    const ns = openNetns(args.netns);
    const host = Rtnl.host();
    const pod = Rtnl.in(ns);
    const undo = new UndoStack(k.kind);
    try {
      const master = resolveMaster(k, conf, args, host, pod);
      return await withUndo(undo, () => addSteps(args, conf, master, ns, host, pod, undo, prevIps));
    } finally {
      pod.close();
      host.close();
      closeNetns(ns);
    }
  }

  async function addSteps(args: CmdArgs, conf: C, master: Master, ns: NetnsHandle, host: Rtnl, pod: Rtnl, undo: UndoStack, prevIps: NonNullable<Result['ips']>): Promise<Result> {
    let ipam: Result | undefined;
    const ipamType = conf.ipamType;
    if (ipamType) {
      ipam = await delegateAdd(ipamType, args.stdinData, args.env);
      undo.push('IPAM DEL', () => delegate('DEL', ipamType, args.stdinData, args.env));
      if (!ipam.ips || ipam.ips.length === 0) throw internal('IPAM plugin returned missing IP config');
    } else if (k.withoutIpam === 'prev-result') {
      if (prevIps.length === 0) throw internal(`${k.kind}: no IPAM configuration and no addresses in prevResult`);
      ipam = { ...(args.config.prevResult as Result), ips: prevIps };
    }
    failpoint(args.env, 'after-ipam');

    const link = createStackedInPod(host, pod, ns, k.linkSpec(conf, master.link.index), args.ifName, conf.linkInContainer);
    undo.push(`delete ${k.kind} "${args.ifName}" in ${args.netns}`, () => pod.deleteLink(link.index));
    failpoint(args.env, 'after-link');

    const result: Result = { cniVersion: LATEST_VERSION, interfaces: [{ name: args.ifName, mac: link.mac, sandbox: args.netns }] };
    if (ipam) {
      result.ips = (ipam.ips ?? []).map((ip) => ({ ...ip, interface: 0 }));
      if (ipam.routes?.length) result.routes = ipam.routes;
      await configurePodIface(ns, pod, args.ifName, result, { notify: k.notify });
    } else {
      pod.setLink(link.index, { up: true });
    }
    failpoint(args.env, 'after-pod');
    const dns = conf.dns ?? ipam?.dns;
    if (dns) result.dns = dns;
    return result;
  }

  async function del(args: CmdArgs): Promise<void> {
    const conf = k.parse(args);
    const tasks: Array<Promise<unknown>> = [];
    if (conf.ipamType) tasks.push(delegate('DEL', conf.ipamType, args.stdinData, args.env));
    tasks.push(Promise.resolve().then(() => deletePodLink(args)));
    await settleAll(tasks);
  }

  async function check(args: CmdArgs): Promise<void> {
    const conf = k.parse(args);
    if (conf.ipamType) await delegate('CHECK', conf.ipamType, args.stdinData, args.env);
    const prev = args.config.prevResult;
    if (!prev) throw internal(`${k.kind}: Required prevResult missing`);
    const cont = (prev.interfaces ?? []).find((i) => i.name === args.ifName && i.sandbox === args.netns);
    if (!cont) throw internal(`Sandbox in prevResult  doesn't match configured netns: ${args.netns}`);
    const ns = openNetns(args.netns);
    const host = Rtnl.host();
    const pod = Rtnl.in(ns);
    try {
      resolveMaster(k, { ...conf, mtu: 0 }, { ...args, config: { ...args.config, prevResult: undefined } }, host, pod);
      const got = pod.getLinkDetails(args.ifName);
      if (!got) throw internal(`Container Interface name in prevResult: ${args.ifName} not found`);
      if (got.link.kind !== k.kind) throw internal(`Error: Container interface ${args.ifName} not of type ${k.kind}`);
      k.verifyLink(conf, got.link, got.details, args.ifName);
      if (cont.mac && cont.mac !== got.link.mac) throw internal(`Interface ${args.ifName} Mac ${cont.mac} doesn't match container Mac: ${got.link.mac}`);
      checkPodIface(pod, args.ifName, prev);
    } finally {
      pod.close();
      host.close();
      closeNetns(ns);
    }
  }

  async function gc(args: CmdArgs): Promise<void> {
    const conf = k.parse(args);
    // No state of our own outside the pods (whose netns are gone): only IPAM keeps any.
    if (conf.ipamType) await delegate('GC', conf.ipamType, args.stdinData, args.env);
  }

  async function status(args: CmdArgs): Promise<void> {
    const conf = k.parse(args);
    if (conf.ipamType) await delegate('STATUS', conf.ipamType, args.stdinData, args.env);
    // ADD cannot succeed without the master (checked in the plugin's namespace; linkInContainer masters live in pods).
    if (!conf.linkInContainer && conf.master) {
      const host = Rtnl.host();
      try {
        if (!host.getLink(conf.master)) throw new CniError(ErrorCode.NotAvailable, `${k.kind}: master "${conf.master}" not found`);
      } finally {
        host.close();
      }
    }
  }

  return { name: k.kind, about: `tscni ${k.kind} plugin v${TSCNI_VERSION}`, add, del, check, gc, status };
}
