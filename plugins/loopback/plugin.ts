/**
 * loopback: brings `lo` up in the pod's namespace. CNI_IFNAME is ignored, as
 * in the reference plugin.
 */
import { CniError, ErrorCode } from '../../lib/cni/errors.ts';
import type { CmdArgs, Plugin } from '../../lib/cni/skel.ts';
import type { IpConfig, Result } from '../../lib/cni/types.ts';
import { ExecError } from '../../lib/exec.ts';
import { ipBatch, ipJson, isUp, type IpLink } from '../../lib/ip/ip.ts';
import { inspectNetns } from '../../lib/netns.ts';
import { LATEST_VERSION } from '../../lib/cni/version.ts';
import { TSCNI_VERSION } from '../../lib/version-info.ts';

function loopbackResult(netns: string, link: IpLink | undefined): Result {
  const ips: IpConfig[] = [];
  const addrs = link?.addr_info ?? [];
  for (const family of ['inet', 'inet6'] as const) {
    const all = addrs.filter((a) => a.family === family);
    const nonLoopback = all.find((a) => (family === 'inet' ? !a.local.startsWith('127.') : a.local !== '::1'));
    if (nonLoopback) {
      throw new CniError(ErrorCode.Internal, `loopback interface found with non-loopback address "${nonLoopback.local}"`);
    }
    const first = all[0];
    if (first) ips.push({ interface: 0, address: `${first.local}/${first.prefixlen}` });
  }
  return {
    cniVersion: LATEST_VERSION,
    interfaces: [{ name: 'lo', mac: '00:00:00:00:00:00', sandbox: netns }],
    ...(ips.length ? { ips } : {}),
  };
}

async function add(args: CmdArgs): Promise<Result> {
  const links = await ipBatch(['link set lo up', 'addr show dev lo'], args.netns, true);
  const result = loopbackResult(args.netns, links.find((l) => l.ifname === 'lo'));
  return args.config.prevResult ?? result;
}

async function del(args: CmdArgs): Promise<void> {
  if (args.netnsState !== 'ok' && args.netnsState !== 'own') return; // netns gone: nothing left to undo
  try {
    await ipBatch(['link set lo down'], args.netns);
  } catch (e) {
    // The namespace may vanish between the check and the command: still a successful DEL.
    if (e instanceof ExecError && inspectNetns(args.netns) === 'missing') return;
    throw e;
  }
}

async function check(args: CmdArgs): Promise<void> {
  const [lo] = await ipJson(['link', 'show', 'dev', 'lo'], args.netns);
  if (!lo) throw new CniError(ErrorCode.Internal, 'loopback interface not found');
  if (!isUp(lo)) throw new CniError(ErrorCode.Internal, 'loopback interface is down');
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
