/**
 * loopback: brings `lo` up in the pod's namespace. CNI_IFNAME is ignored, as
 * in the reference plugin.
 */
import { CniError, ErrorCode } from '../../lib/cni/errors.ts';
import type { CmdArgs, Plugin } from '../../lib/cni/skel.ts';
import type { IpConfig, Result } from '../../lib/cni/types.ts';
import type { AddrInfo, LinkInfo } from '../../lib/netlink/messages.ts';
import { withRtnl, type Rtnl } from '../../lib/netlink/rtnl.ts';
import { closeNetns, inspectNetns, openNetns } from '../../lib/netns.ts';
import { LATEST_VERSION } from '../../lib/cni/version.ts';
import { TSCNI_VERSION } from '../../lib/version-info.ts';

function loopbackResult(netns: string, addrs: readonly AddrInfo[]): Result {
  const ips: IpConfig[] = [];
  for (const family of [4, 6] as const) {
    const all = addrs.filter((a) => a.family === family);
    const nonLoopback = all.find((a) => (family === 4 ? !a.local.startsWith('127.') : a.local !== '::1'));
    if (nonLoopback) {
      throw new CniError(ErrorCode.Internal, `loopback interface found with non-loopback address "${nonLoopback.local}"`);
    }
    const first = all[0];
    if (first) ips.push({ interface: 0, address: `${first.local}/${first.prefixLen}` });
  }
  return {
    cniVersion: LATEST_VERSION,
    interfaces: [{ name: 'lo', mac: '00:00:00:00:00:00', sandbox: netns }],
    ...(ips.length ? { ips } : {}),
  };
}

/** Run `fn` on `lo` in the pod's namespace (opened once, by descriptor). */
function inPodLo<T>(netns: string, fn: (nl: Rtnl, lo: LinkInfo) => T): T {
  const ns = openNetns(netns);
  try {
    return withRtnl(ns, (nl) => {
      const lo = nl.getLink('lo');
      if (!lo) throw new CniError(ErrorCode.Internal, `loopback interface not found in ${netns}`);
      return fn(nl, lo);
    });
  } finally {
    closeNetns(ns);
  }
}

async function add(args: CmdArgs): Promise<Result> {
  const addrs = inPodLo(args.netns, (nl, lo) => {
    if (!lo.up) nl.setLink(lo.index, { up: true });
    return nl.listAddrs(undefined, lo.index);
  });
  const result = loopbackResult(args.netns, addrs);
  return args.config.prevResult ?? result;
}

async function del(args: CmdArgs): Promise<void> {
  if (args.netnsState !== 'ok' && args.netnsState !== 'own') return; // netns gone: nothing left to undo
  try {
    inPodLo(args.netns, (nl, lo) => nl.setLink(lo.index, { up: false }));
  } catch (e) {
    // The namespace may vanish between the check and the call: still a successful DEL.
    if (inspectNetns(args.netns) === 'missing') return;
    throw e;
  }
}

async function check(args: CmdArgs): Promise<void> {
  inPodLo(args.netns, (_nl, lo) => {
    if (!lo.up) throw new CniError(ErrorCode.Internal, 'loopback interface is down');
  });
}

export const loopbackPlugin: Plugin = {
  name: 'loopback',
  about: `tscni loopback plugin v${TSCNI_VERSION}`,
  add,
  del,
  check,
  // loopback keeps no state outside the pod's namespace, so there is nothing to collect.
  gc: async () => {},
  // Bringing up lo needs no shared resource: always ready.
  status: async () => {},
};
