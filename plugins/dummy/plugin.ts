/**
 * dummy: a dummy interface in the pod addressed by IPAM (reference:
 * plugins/main/dummy/dummy.go), e.g. for a pod-local service address that
 * no other interface carries. IPAM is required.
 *
 *   ADD    IPAM ADD -> dummy CNI_IFNAME created in the pod -> addresses, up,
 *          routes -> result [iface(sandbox)], ips[].interface = 0
 *   DEL    IPAM DEL, delete CNI_IFNAME in the pod (netns or link gone = done)
 *   CHECK  IPAM CHECK, the link (kind dummy, MAC, up), addresses, routes
 *   GC     forwarded to IPAM; STATUS forwarded to IPAM
 *
 * A kernel without the dummy driver (CONFIG_DUMMY unset) cannot create the
 * link: ADD fails naming the operation and the kernel's reason, after
 * releasing the IPAM addresses.
 */
import { ipamTypeOf } from '../../lib/cni/config-read.ts';
import { CniError, ErrorCode, settleAll } from '../../lib/cni/errors.ts';
import { delegate, delegateAdd } from '../../lib/cni/invoke.ts';
import type { CmdArgs, Plugin } from '../../lib/cni/skel.ts';
import type { NetConf, Result } from '../../lib/cni/types.ts';
import { LATEST_VERSION } from '../../lib/cni/version.ts';
import { failpoint } from '../../lib/failpoint.ts';
import { Rtnl } from '../../lib/netlink/rtnl.ts';
import { closeNetns, openNetns } from '../../lib/netns.ts';
import { checkPodIface, configurePodIface, deletePodLink, internal } from '../../lib/pod-iface.ts';
import { UndoStack, withUndo } from '../../lib/undo.ts';
import { TSCNI_VERSION } from '../../lib/version-info.ts';

const IFF_UP = 0x1;

/** The IPAM type, which dummy requires (code 7 with the reference's wording otherwise). */
export function parseDummyConfig(conf: NetConf): { ipamType: string } {
  const ipamType = ipamTypeOf(conf);
  if (!ipamType) throw new CniError(ErrorCode.InvalidNetworkConfig, 'dummy interface requires an IPAM configuration');
  return { ipamType };
}

async function add(args: CmdArgs): Promise<Result> {
  const { ipamType } = parseDummyConfig(args.config);
  const ns = openNetns(args.netns);
  const pod = Rtnl.in(ns);
  const undo = new UndoStack('dummy');
  try {
    return await withUndo(undo, async () => {
      if (pod.getLink(args.ifName)) throw internal(`container interface "${args.ifName}" already exists in ${args.netns}`);
      const ipam = await delegateAdd(ipamType, args.stdinData, args.env);
      undo.push('IPAM DEL', () => delegate('DEL', ipamType, args.stdinData, args.env));
      if (!ipam.ips || ipam.ips.length === 0) throw internal('IPAM plugin returned missing IP config');
      failpoint(args.env, 'after-ipam');

      // Created by the pod's own socket: nothing of it ever exists in the host namespace.
      pod.createSubLink({ kind: 'dummy', name: args.ifName });
      undo.push(`delete dummy "${args.ifName}" in ${args.netns}`, () => pod.deleteLink(args.ifName));
      const link = pod.getLink(args.ifName);
      if (!link) throw internal(`failed to fetch dummy "${args.ifName}" in ${args.netns} right after creating it`);
      failpoint(args.env, 'after-link');

      const result: Result = {
        cniVersion: LATEST_VERSION,
        interfaces: [{ name: args.ifName, mac: link.mac, sandbox: args.netns }],
        ips: ipam.ips.map((ip) => ({ ...ip, interface: 0 })),
      };
      if (ipam.routes?.length) result.routes = ipam.routes;
      await configurePodIface(ns, pod, args.ifName, result);
      failpoint(args.env, 'after-pod');
      // As the reference: the result is IPAM's (its DNS included) with the interface added.
      if (ipam.dns) result.dns = ipam.dns;
      return result;
    });
  } finally {
    pod.close();
    closeNetns(ns);
  }
}

async function del(args: CmdArgs): Promise<void> {
  const { ipamType } = parseDummyConfig(args.config);
  await settleAll([delegate('DEL', ipamType, args.stdinData, args.env), Promise.resolve().then(() => deletePodLink(args))]);
}

async function check(args: CmdArgs): Promise<void> {
  const { ipamType } = parseDummyConfig(args.config);
  await delegate('CHECK', ipamType, args.stdinData, args.env);
  const prev = args.config.prevResult;
  if (!prev) throw internal('dummy: Required prevResult missing');
  const cont = (prev.interfaces ?? []).find((i) => i.name === args.ifName && i.sandbox === args.netns);
  if (!cont) throw internal(`Sandbox in prevResult  doesn't match configured netns: ${args.netns}`);
  const ns = openNetns(args.netns);
  const pod = Rtnl.in(ns);
  try {
    const link = pod.getLink(args.ifName);
    if (!link) throw internal(`Container Interface name in prevResult: ${args.ifName} not found`);
    if (link.kind !== 'dummy') throw internal(`Error: Container interface ${args.ifName} not of type dummy`);
    if (cont.mac && cont.mac !== link.mac) throw internal(`Interface ${args.ifName} Mac ${cont.mac} doesn't match container Mac: ${link.mac}`);
    if (!(link.flags & IFF_UP)) throw internal(`Interface ${args.ifName} is down`);
    checkPodIface(pod, args.ifName, prev);
  } finally {
    pod.close();
    closeNetns(ns);
  }
}

async function gc(args: CmdArgs): Promise<void> {
  const { ipamType } = parseDummyConfig(args.config);
  // No state of our own outside the pods: only IPAM keeps any.
  await delegate('GC', ipamType, args.stdinData, args.env);
}

async function status(args: CmdArgs): Promise<void> {
  const { ipamType } = parseDummyConfig(args.config);
  await delegate('STATUS', ipamType, args.stdinData, args.env);
}

export const dummyPlugin: Plugin = {
  name: 'dummy',
  about: `tscni dummy plugin v${TSCNI_VERSION}`,
  add,
  del,
  check,
  gc,
  status,
};
