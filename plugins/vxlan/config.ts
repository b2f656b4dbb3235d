/**
 * vxlan plugin config (chained after bridge with etcd-subnet IPAM), pure.
 *
 *   { "type": "vxlan", "vni": 1, "port": 4789, "device": "tscni.1", "dataDir": "/var/lib/cni/etcd-subnet", "agent": true }
 *
 * The subnet, the underlay address and etcd's settings come from the lease
 * the etcd-subnet IPAM saved (<dataDir>/<network>.lease.json): one source.
 */
import { CniError, ErrorCode } from '../../lib/cni/errors.ts';
import { isIfName } from '../../lib/cni/config-read.ts';
import type { NetConf } from '../../lib/cni/types.ts';
import { DEFAULT_DATA_DIR } from '../../ipam/etcd-subnet/config.ts';

export interface VxlanConfig {
  network: string;
  cniVersion: string;
  vni: number;
  port: number;
  device: string;
  /** The etcd-subnet IPAM's dataDir (where the lease is saved). */
  dataDir: string;
  /** Start `tscni overlay agent` when it is not running (tests of the plugin alone turn it off). */
  agent: boolean;
}

const bad = (msg: string) => new CniError(ErrorCode.InvalidNetworkConfig, msg);

function int(conf: NetConf, key: string, def: number, min: number, max: number): number {
  const v = conf[key];
  if (v === undefined || v === null) return def;
  if (typeof v !== 'number' || !Number.isInteger(v) || v < min || v > max) throw bad(`${key}: must be an integer from ${min} to ${max}, got ${JSON.stringify(v)}`);
  return v;
}

export function parseVxlanConfig(conf: NetConf): VxlanConfig {
  const vni = int(conf, 'vni', 1, 1, 16_777_215);
  const port = int(conf, 'port', 4789, 1, 65_535);
  const device = conf.device ?? `tscni.${vni}`;
  if (typeof device !== 'string' || !isIfName(device)) throw bad(`device: not a valid interface name: ${JSON.stringify(device)}`);
  const dataDir = conf.dataDir ?? DEFAULT_DATA_DIR;
  if (typeof dataDir !== 'string' || !dataDir.startsWith('/')) throw bad(`dataDir: must be an absolute path, got ${JSON.stringify(dataDir)}`);
  const agent = conf.agent ?? true;
  if (typeof agent !== 'boolean') throw bad(`agent: must be a boolean, got ${JSON.stringify(agent)}`);
  return { network: conf.name, cniVersion: conf.cniVersion, vni, port, device, dataDir, agent };
}
