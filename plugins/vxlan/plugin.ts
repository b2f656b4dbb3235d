/**
 * vxlan: the per-host VXLAN device of a multi-host network, chained after
 * `bridge` with `etcd-subnet` IPAM (routed: pods reach the bridge gateway,
 * the host routes other hosts' subnets into the device).
 *
 *   ADD    parse -> saved lease (etcd-subnet's) -> ensure device (VNI, local
 *          underlay IP, port, MTU underlay-50, subnet .0/32, up) -> start the
 *          agent if it is not running (it programs the remote entries and
 *          keeps them); with "agent": false, reconcile once here instead
 *          -> prevResult through
 *   DEL    the host's last pod: stop the agent, delete the device (its routes,
 *          ARP and FDB entries go with it), give the subnet back in etcd
 *          (best effort: the lease expires anyway); otherwise nothing
 *   CHECK  the device is there with the right settings
 */
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseOwner } from '../../ipam/host-local/reservation-files.ts';
import { ipFromName } from '../../ipam/host-local/disk-store.ts';
import { etcdError, openEtcd } from '../../ipam/etcd-subnet/etcd-client.ts';
import { listSubnets, readLeaseState, releaseSubnet, type LeaseState } from '../../ipam/etcd-subnet/lease.ts';
import { CniError, ErrorCode } from '../../lib/cni/errors.ts';
import type { CmdArgs, Plugin } from '../../lib/cni/skel.ts';
import type { Result } from '../../lib/cni/types.ts';
import { logWarn } from '../../lib/log.ts';
import { withRtnl } from '../../lib/netlink/rtnl.ts';
import { TSCNI_VERSION } from '../../lib/version-info.ts';
import { ensureAgent, stopAgent } from './agent.ts';
import { parseVxlanConfig, type VxlanConfig } from './config.ts';
import { ensureDevice, reconcile, VXLAN_OVERHEAD } from './device.ts';

function leaseOf(cfg: VxlanConfig): LeaseState {
  const lease = readLeaseState(cfg.dataDir, cfg.network);
  if (!lease) throw new CniError(ErrorCode.InvalidNetworkConfig, `vxlan: no subnet lease for network ${cfg.network} in ${cfg.dataDir}: use the etcd-subnet IPAM in the plugin before (bridge) with the same dataDir`);
  return lease;
}

const spec = (cfg: VxlanConfig) => ({ name: cfg.device, vni: cfg.vni, port: cfg.port });

async function add(args: CmdArgs): Promise<Result> {
  const cfg = parseVxlanConfig(args.config);
  const prev = args.config.prevResult;
  if (!prev) throw new CniError(ErrorCode.InvalidNetworkConfig, 'vxlan: must be chained after bridge (no prevResult)');
  const lease = leaseOf(cfg);
  const index = withRtnl(undefined, (nl) => ensureDevice(nl, spec(cfg), lease));
  if (cfg.agent) {
    ensureAgent({ ...spec(cfg), network: cfg.network, dataDir: cfg.dataDir });
  } else {
    const client = await openEtcd(lease.etcd);
    try {
      const held = await listSubnets(client, lease.etcd.prefix);
      withRtnl(undefined, (nl) => reconcile(nl, index, lease, held));
    } catch (e) {
      throw etcdError(e, lease.etcd, 'reading the other hosts\' subnets');
    } finally {
      client.close();
    }
  }
  return prev;
}

/** Pods of this network on this host other than `containerId` (etcd-subnet's host-local reservations). */
export function otherPods(dataDir: string, network: string, containerId: string): number {
  let names: string[];
  try {
    names = readdirSync(join(dataDir, network));
  } catch {
    return 0;
  }
  let n = 0;
  for (const name of names) {
    if (!ipFromName(name)) continue;
    let owner;
    try {
      owner = parseOwner(readFileSync(join(dataDir, network, name), 'utf8'));
    } catch {
      continue; // released meanwhile
    }
    if (owner.kind === 'garbled' || owner.id !== containerId) n++;
  }
  return n;
}

async function del(args: CmdArgs): Promise<void> {
  const cfg = parseVxlanConfig(args.config);
  if (otherPods(cfg.dataDir, cfg.network, args.containerId) > 0) return;
  await stopAgent(cfg.dataDir, cfg.network);
  withRtnl(undefined, (nl) => nl.deleteLink(cfg.device));
  const lease = readLeaseState(cfg.dataDir, cfg.network);
  if (!lease) return;
  // The saved lease file stays: the next first pod asks for the same subnet again.
  try {
    const client = await openEtcd(lease.etcd, 1_000);
    try {
      await releaseSubnet(client, lease);
    } finally {
      client.close();
    }
  } catch (e) {
    logWarn(`vxlan: could not give subnet ${lease.subnet} back in etcd (it expires within ${lease.leaseTTL} s): ${(e as Error).message}`);
  }
}

async function check(args: CmdArgs): Promise<void> {
  const cfg = parseVxlanConfig(args.config);
  const lease = leaseOf(cfg);
  const cur = withRtnl(undefined, (nl) => nl.getVxlan(cfg.device));
  if (!cur) throw new CniError(ErrorCode.Internal, `vxlan: device ${cfg.device} is missing`);
  const v = cur.vxlan;
  if (v.vni !== cfg.vni || v.local !== lease.publicIp || v.port !== cfg.port) {
    throw new CniError(ErrorCode.Internal, `vxlan: device ${cfg.device} has VNI ${v.vni} local ${v.local} port ${v.port}, want ${cfg.vni} ${lease.publicIp} ${cfg.port}`);
  }
  if (!cur.link.up) throw new CniError(ErrorCode.Internal, `vxlan: device ${cfg.device} is down`);
}

export const vxlanPlugin: Plugin = {
  hostOnly: true,
  validate: (config) => {
    parseVxlanConfig(config);
  },
  name: 'vxlan',
  about: `tscni vxlan plugin v${TSCNI_VERSION} (MTU underlay-${VXLAN_OVERHEAD})`,
  add,
  del,
  check,
  gc: async (args) => {
    parseVxlanConfig(args.config);
  },
  status: async (args) => {
    parseVxlanConfig(args.config);
  },
};
