/**
 * The kernel and sysfs work of host-device: find the device the config
 * names in the plugin's namespace, move it into the pod under CNI_IFNAME
 * (its host name kept in the link's alias, as the reference does), and move
 * it back under that name.
 *
 *   host (plugin's netns)              pod netns
 *   thdev0  --- RTM_NEWLINK netns+name --->  eth0  alias "thdev0"
 *   thdev0  <--- RTM_NEWLINK netns+name ---  eth0
 *
 * Each move is one request (IFLA_NET_NS_FD with IFLA_IFNAME: the kernel
 * moves, then renames in the target namespace), and both names are checked
 * free beforehand, so a move either happens whole or not at all.
 */
import { readdirSync, realpathSync } from 'node:fs';
import { basename, join } from 'node:path';
import { CniError, ErrorCode } from '../../lib/cni/errors.ts';
import type { LinkInfo } from '../../lib/netlink/messages.ts';
import type { Rtnl } from '../../lib/netlink/rtnl.ts';
import type { NetnsHandle } from '../../lib/netns.ts';
import { describeSelector, type DeviceSelector } from './config.ts';

const IFF_LOOPBACK = 0x8;

/** Drivers that bind a NIC for userspace (DPDK): such a device has no netdev to move, as in the reference. */
export const USERSPACE_DRIVERS: readonly string[] = ['vfio-pci', 'uio_pci_generic', 'igb_uio'];

const internal = (msg: string) => new CniError(ErrorCode.Internal, msg);

/** Names in a directory, sorted as Go's os.ReadDir returns them; undefined when it cannot be read. */
function listDir(dir: string): string[] | undefined {
  try {
    return readdirSync(dir).sort();
  } catch {
    return undefined;
  }
}

/** `path` (which begins with /sys/) under another sysfs root (tests). */
function underRoot(sysRoot: string, path: string): string {
  return join(sysRoot, path.slice('/sys'.length));
}

/**
 * The net directory of a PCI device: <pci>/net, or <pci>/virtio*\/net for
 * virtio NICs (as the reference's glob). Undefined when there is none.
 */
function pciNetDir(sysRoot: string, pciAddr: string): string | undefined {
  const dev = join(sysRoot, 'bus', 'pci', 'devices', pciAddr);
  if (listDir(join(dev, 'net'))) return join(dev, 'net');
  const virtio = (listDir(dev) ?? []).find((e) => e.startsWith('virtio') && listDir(join(dev, e, 'net')));
  return virtio ? join(dev, virtio, 'net') : undefined;
}

/**
 * Is the PCI device bound to a userspace (DPDK) driver? Reads the
 * <pci>/driver symlink under `sysRoot`; a device without one is an error,
 * as in the reference.
 */
export function hasUserspaceDriver(pciAddr: string, sysRoot = '/sys'): boolean {
  const link = join(sysRoot, 'bus', 'pci', 'devices', pciAddr, 'driver');
  let target: string;
  try {
    target = realpathSync(link);
  } catch (e) {
    throw internal(`error with host device: no driver for PCI device ${pciAddr} (${link}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`);
  }
  return USERSPACE_DRIVERS.includes(basename(target));
}

/**
 * Find the device `sel` names among the links of `nl` (the plugin's
 * namespace); kernelpath and pciBusID name a directory under `sysRoot`
 * whose net/ entries are interface names. Nothing changes. Errors start
 * "failed to find host device", as the reference's.
 */
export function findHostDevice(nl: Rtnl, sel: DeviceSelector, sysRoot = '/sys'): LinkInfo {
  const fail = (why: string) => internal(`failed to find host device: ${why}`);
  let found: LinkInfo | undefined;
  switch (sel.by) {
    case 'device':
      found = nl.getLink(sel.name);
      if (!found) throw fail(`${describeSelector(sel)}: Link not found`);
      break;
    case 'hwaddr':
      found = nl.listLinks().find((l) => l.mac === sel.mac);
      if (!found) throw fail(`no link with hardware address ${sel.mac}`);
      break;
    case 'kernelpath': {
      const netDir = join(underRoot(sysRoot, sel.path), 'net');
      const entries = listDir(netDir);
      if (!entries) throw fail(`failed to find network devices at "${join(sel.path, 'net')}"`);
      const links = nl.listLinks();
      // The first entry that really is an interface here, as the reference.
      for (const e of entries) {
        found = links.find((l) => l.name === e);
        if (found) break;
      }
      if (!found) throw fail(`no interface of ${join(sel.path, 'net')} in this namespace`);
      break;
    }
    case 'pciBusID': {
      const netDir = pciNetDir(sysRoot, sel.pciAddr);
      if (!netDir) throw fail(`no net directory under pci device ${sel.pciAddr}`);
      const [first] = listDir(netDir) ?? [];
      if (!first) throw fail(`failed to find device name for pci address ${sel.pciAddr}`);
      found = nl.getLink(first);
      if (!found) throw fail(`${first} (pci address ${sel.pciAddr}): Link not found`);
      break;
    }
  }
  if (found.flags & IFF_LOOPBACK) throw internal(`host-device: ${describeSelector(sel)} selects the loopback device "${found.name}", which cannot leave its namespace`);
  return found;
}

/**
 * Move `dev` from `host` into the pod (`ns`, socket `pod`) renamed to
 * `ifName`, record its host name in the alias, and return the pod's link
 * (down; the caller brings it up); `hostNs` is the plugin's own namespace. Throws before any change when `ifName`
 * is taken in the pod. If the alias cannot be set the device goes back.
 */
export function moveLinkIn(host: Rtnl, pod: Rtnl, ns: NetnsHandle, hostNs: NetnsHandle, dev: LinkInfo, ifName: string): LinkInfo {
  if (pod.getLink(ifName)) throw internal(`container interface "${ifName}" already exists in ${ns.path}`);
  host.setLink(dev.index, { netnsFd: ns.fd, name: ifName });
  const moved = pod.getLink(ifName);
  if (!moved) throw internal(`failed to find "${ifName}" (host device "${dev.name}") in ${ns.path} right after moving it`);
  try {
    pod.setLinkAlias(moved.index, dev.name, `"${ifName}"`);
  } catch (e) {
    pod.setLink(moved.index, { netnsFd: hostNs.fd, name: dev.name });
    throw internal(`failed to set alias to "${dev.name}": ${(e as Error).message}`);
  }
  return moved;
}

/** What moveLinkOut did: moved back (under `name`), nothing to do, or left in the pod (no alias: not ours). */
export type MoveOutOutcome = { moved: true; name: string } | { moved: false; reason: 'absent' | 'no-alias' };

/**
 * Move CNI_IFNAME out of the pod back into the plugin's namespace under the
 * name kept in its alias, and clear the alias there. Absent = nothing to do
 * (idempotent DEL). A link without an alias was not moved in by host-device
 * and stays where it is. Throws, changing nothing, when the original name is
 * taken in the host.
 */
export function moveLinkOut(host: Rtnl, pod: Rtnl, hostNs: NetnsHandle, ifName: string): MoveOutOutcome {
  const got = pod.getLinkDetails(ifName);
  if (!got) return { moved: false, reason: 'absent' };
  const original = got.details.alias;
  if (!original) return { moved: false, reason: 'no-alias' };
  const clash = host.getLink(original);
  if (clash) throw internal(`failed to restore "${ifName}" to its original name "${original}": a link of that name exists in the host namespace (index ${clash.index})`);
  // Sent on the pod's socket (the link lives there), to the plugin's namespace by descriptor.
  pod.setLink(got.link.index, { netnsFd: hostNs.fd, name: original });
  const back = host.getLink(original);
  if (!back) throw internal(`failed to find "${original}" in the host namespace right after moving it back`);
  host.setLinkAlias(back.index, '', `"${original}"`);
  return { moved: true, name: original };
}
