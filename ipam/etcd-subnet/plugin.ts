/**
 * etcd-subnet IPAM: the host leases its pod subnet out of a cluster CIDR in
 * etcd (lease.ts), then allocates inside it exactly as host-local does, by
 * running host-local in-process on a config whose one range is that subnet.
 *
 * ADD:    parse -> etcd: ensure this host's subnet (code 11 if unreachable) -> host-local ADD in the subnet
 * DEL:    host-local DEL (no etcd: a DEL must work while etcd is down)
 * CHECK:  host-local CHECK in the saved subnet
 * GC:     host-local GC
 * STATUS: etcd reachable and the subnet not full
 */
import type { Etcd3 } from 'etcd3';
import { CniError, ErrorCode } from '../../lib/cni/errors.ts';
import type { CmdArgs, Plugin } from '../../lib/cni/skel.ts';
import type { NetConf, Result, Route } from '../../lib/cni/types.ts';
import { TSCNI_VERSION } from '../../lib/version-info.ts';
import { hostLocalPlugin } from '../host-local/plugin.ts';
import { parseEtcdSubnetConfig, type EtcdSubnetConfig } from './config.ts';
import { etcdError, openEtcd } from './etcd-client.ts';
import { ensureSubnet, listSubnets, readLeaseState } from './lease.ts';
import { cidrKey } from './subnets.ts';

/** The host-local config that allocates inside `subnet` (the pod routes: the cluster CIDR plus the configured ones). */
export function hostLocalConfigFor(conf: NetConf, cfg: EtcdSubnetConfig, subnet: string): NetConf {
  const routes: Route[] = [{ dst: cidrKey(cfg.clusterCidr) }, ...cfg.routes.filter((r) => r.dst !== cidrKey(cfg.clusterCidr))];
  return { ...conf, ipam: { type: 'host-local', ranges: [[{ subnet }]], dataDir: cfg.dataDir, routes } };
}

function withHostLocal(args: CmdArgs, cfg: EtcdSubnetConfig, subnet: string): CmdArgs {
  return { ...args, config: hostLocalConfigFor(args.config, cfg, subnet) };
}

async function withClient<T>(cfg: EtcdSubnetConfig, doing: string, fn: (c: Etcd3) => Promise<T>): Promise<T> {
  const client = await openEtcd(cfg.etcd);
  try {
    return await fn(client);
  } catch (e) {
    throw etcdError(e, cfg.etcd, doing);
  } finally {
    client.close();
  }
}

async function add(args: CmdArgs): Promise<Result> {
  const cfg = parseEtcdSubnetConfig(args.config);
  const state = await withClient(cfg, `leasing a subnet of ${cidrKey(cfg.clusterCidr)}`, (c) => ensureSubnet(c, cfg));
  return hostLocalPlugin.add(withHostLocal(args, cfg, state.subnet));
}

/** The subnet to hand host-local when etcd is not consulted: the saved one, else the whole cluster CIDR (DEL and GC match by owner, not range). */
function localSubnet(cfg: EtcdSubnetConfig): string {
  return readLeaseState(cfg.dataDir, cfg.network)?.subnet ?? cidrKey(cfg.clusterCidr);
}

async function del(args: CmdArgs): Promise<void> {
  const cfg = parseEtcdSubnetConfig(args.config);
  await hostLocalPlugin.del(withHostLocal(args, cfg, localSubnet(cfg)));
}

async function check(args: CmdArgs): Promise<void> {
  const cfg = parseEtcdSubnetConfig(args.config);
  const saved = readLeaseState(cfg.dataDir, cfg.network);
  if (!saved) throw new CniError(ErrorCode.Internal, `etcd-subnet: no subnet leased for network ${cfg.network} on this host`);
  await hostLocalPlugin.check(withHostLocal(args, cfg, saved.subnet));
}

async function gc(args: CmdArgs): Promise<void> {
  const cfg = parseEtcdSubnetConfig(args.config);
  await hostLocalPlugin.gc(withHostLocal(args, cfg, localSubnet(cfg)));
}

async function status(args: CmdArgs): Promise<void> {
  const cfg = parseEtcdSubnetConfig(args.config);
  try {
    await withClient(cfg, 'listing subnets', (c) => listSubnets(c, cfg.etcd.prefix));
  } catch (e) {
    const err = e as CniError;
    throw new CniError(ErrorCode.NotAvailable, err.msg, err.details);
  }
  const saved = readLeaseState(cfg.dataDir, cfg.network);
  if (saved) await hostLocalPlugin.status(withHostLocal(args, cfg, saved.subnet));
}

export const etcdSubnetPlugin: Plugin = {
  hostOnly: true,
  validate: (config) => {
    parseEtcdSubnetConfig(config);
  },
  name: 'etcd-subnet',
  about: `tscni etcd-subnet IPAM plugin v${TSCNI_VERSION}`,
  add,
  del,
  check,
  gc,
  status,
};
