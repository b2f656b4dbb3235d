/**
 * host-device: move an existing device of the node into the pod and back
 * (reference: plugins/main/host-device/host-device.go).
 *
 *   ADD    find the device (nothing changes) -> move it into the pod as
 *          CNI_IFNAME, its host name in the alias -> IPAM ADD (optional) ->
 *          addresses, up, routes -> result [iface(sandbox)], ips[].interface 0
 *   DEL    IPAM DEL; move CNI_IFNAME back under the alias name (netns or
 *          link gone = done)
 *   CHECK  IPAM CHECK, the link in the pod (MAC, alias), addresses, routes
 *   GC     forwarded to IPAM (no state of our own)
 *   STATUS forwarded to IPAM
 *
 * A PCI device bound to a userspace (DPDK) driver has no netdev: nothing is
 * moved and the result has no interface, as in the reference. A failed ADD
 * moves the device back and releases the IPAM addresses.
 */
import { settleAll } from '../../lib/cni/errors.ts';
import { delegate, delegateAdd } from '../../lib/cni/invoke.ts';
import type { CmdArgs, Plugin } from '../../lib/cni/skel.ts';
import type { Result } from '../../lib/cni/types.ts';
import { LATEST_VERSION, convertResult } from '../../lib/cni/version.ts';
import { failpoint } from '../../lib/failpoint.ts';
import { Rtnl } from '../../lib/netlink/rtnl.ts';
import { closeNetns, openNetns, type NetnsHandle } from '../../lib/netns.ts';
import { checkPodIface, configurePodIface, internal, openNetnsForDel } from '../../lib/pod-iface.ts';
import { UndoStack, withUndo } from '../../lib/undo.ts';
import { TSCNI_VERSION } from '../../lib/version-info.ts';
import { parseHostDeviceConfig, type HostDeviceConfig } from './config.ts';
import { findHostDevice, hasUserspaceDriver, moveLinkIn, moveLinkOut } from './device.ts';

/** The plugin's own namespace (where devices come from and go back to), by the calling thread. */
const openHostNetns = (): NetnsHandle => openNetns('/proc/thread-self/ns/net');

/** DPDK mode: a pciBusID whose device is bound to a userspace driver (nothing to move). */
function isDpdk(conf: HostDeviceConfig): boolean {
  return conf.selector.by === 'pciBusID' && hasUserspaceDriver(conf.selector.pciAddr);
}

async function add(args: CmdArgs): Promise<Result> {
  const conf = parseHostDeviceConfig(args.config);
  const dpdk = isDpdk(conf);
  const undo = new UndoStack('host-device');
  const ns = openNetns(args.netns);
  const hostNs = openHostNetns();
  const host = Rtnl.host();
  const pod = Rtnl.in(ns);
  try {
    return await withUndo(undo, async () => {
      const result: Result = { cniVersion: LATEST_VERSION };
      if (!dpdk) {
        const dev = findHostDevice(host, conf.selector);
        const link = moveLinkIn(host, pod, ns, hostNs, dev, args.ifName);
        undo.push(`move "${args.ifName}" back to "${dev.name}"`, () => moveLinkOut(host, pod, hostNs, args.ifName));
        result.interfaces = [{ name: args.ifName, mac: link.mac, sandbox: args.netns }];
      }
      failpoint(args.env, 'after-move');
      const ipamType = conf.ipamType;
      if (ipamType) {
        const ipam = await delegateAdd(ipamType, args.stdinData, args.env);
        undo.push('IPAM DEL', () => delegate('DEL', ipamType, args.stdinData, args.env));
        if (!ipam.ips || ipam.ips.length === 0) throw internal('IPAM plugin returned missing IP config');
        // All addresses are the moved device's (interface 0); none in DPDK mode, where there is no interface.
        result.ips = ipam.ips.map(({ interface: _, ...ip }) => (dpdk ? ip : { ...ip, interface: 0 }));
        if (ipam.routes?.length) result.routes = ipam.routes;
      }
      failpoint(args.env, 'after-ipam');
      if (!dpdk) {
        if (result.ips) await configurePodIface(ns, pod, args.ifName, result);
        else pod.setLink(args.ifName, { up: true });
      }
      failpoint(args.env, 'after-pod');
      // As the reference: the result's DNS is the config's (IPAM's is not passed on).
      if (conf.dns) result.dns = conf.dns;
      // A result the config's version cannot express (0.1.0/0.2.0 without an IP) fails here, inside the rollback.
      convertResult(result, conf.cniVersion);
      return result;
    });
  } finally {
    pod.close();
    host.close();
    closeNetns(hostNs);
    closeNetns(ns);
  }
}

async function del(args: CmdArgs): Promise<void> {
  const conf = parseHostDeviceConfig(args.config);
  const tasks: Array<Promise<unknown>> = [];
  if (conf.ipamType) tasks.push(delegate('DEL', conf.ipamType, args.stdinData, args.env));
  tasks.push(Promise.resolve().then(() => moveBack(args)));
  await settleAll(tasks);
}

/** DEL's move back; a gone netns or link is done (a netns going away returns physical devices to the initial namespace itself). */
function moveBack(args: CmdArgs): void {
  const ns = openNetnsForDel(args);
  if (!ns) return;
  const hostNs = openHostNetns();
  const host = Rtnl.host();
  let pod: Rtnl | undefined;
  try {
    pod = Rtnl.in(ns);
    const out = moveLinkOut(host, pod, hostNs, args.ifName);
    if (!out.moved && out.reason === 'no-alias') {
      // Not moved in by host-device (no alias with its host name): leave it rather than rename a device we do not know.
      process.stderr.write(`[tscni] host-device DEL: "${args.ifName}" in ${args.netns} has no alias naming its host device; left in place\n`);
    }
  } finally {
    pod?.close();
    host.close();
    closeNetns(hostNs);
    closeNetns(ns);
  }
}

async function check(args: CmdArgs): Promise<void> {
  const conf = parseHostDeviceConfig(args.config);
  if (conf.ipamType) await delegate('CHECK', conf.ipamType, args.stdinData, args.env);
  const prev = args.config.prevResult;
  if (!prev) throw internal('Required prevResult missing');
  if (isDpdk(conf)) return;
  const cont = (prev.interfaces ?? []).find((i) => i.name === args.ifName && i.sandbox === args.netns);
  if (!cont) throw internal(`Sandbox in prevResult  doesn't match configured netns: ${args.netns}`);
  const ns = openNetns(args.netns);
  const pod = Rtnl.in(ns);
  try {
    const got = pod.getLinkDetails(args.ifName);
    if (!got) throw internal(`Container Interface name in prevResult: ${args.ifName} not found`);
    if (cont.mac && cont.mac !== got.link.mac) throw internal(`Interface ${args.ifName} Mac ${cont.mac} doesn't match container Mac: ${got.link.mac}`);
    // Beyond the reference: without the alias, DEL could not give the device its name back.
    if (!got.details.alias) throw internal(`host-device: ${args.ifName} has no alias naming its host device`);
    checkPodIface(pod, args.ifName, prev);
  } finally {
    pod.close();
    closeNetns(ns);
  }
}

async function gc(args: CmdArgs): Promise<void> {
  const conf = parseHostDeviceConfig(args.config);
  // No state of our own: a device in a pod that is gone is already back in the initial namespace.
  if (conf.ipamType) await delegate('GC', conf.ipamType, args.stdinData, args.env);
}

async function status(args: CmdArgs): Promise<void> {
  const conf = parseHostDeviceConfig(args.config);
  if (conf.ipamType) await delegate('STATUS', conf.ipamType, args.stdinData, args.env);
}

export const hostDevicePlugin: Plugin = {
  name: 'host-device',
  about: `tscni host-device plugin v${TSCNI_VERSION}`,
  add,
  del,
  check,
  gc,
  status,
};
