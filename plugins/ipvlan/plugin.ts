/**
 * ipvlan: pods share the master's MAC, each with its own IPs (reference:
 * plugins/main/ipvlan/ipvlan.go). Keys: master, mode (l2|l3|l3s), mtu,
 * linkInContainer, ipam, dns. Chained (no ipam, prevResult with IPs): the
 * addresses come from prevResult and an empty master means prevResult's
 * single interface. Recipe shared with macvlan and vlan (../macvlan/stacked.ts).
 */
import type { CmdArgs } from '../../lib/cni/skel.ts';
import { IFLA_IPVLAN_MODE, IPVLAN_MODE_L2, IPVLAN_MODE_L3, IPVLAN_MODE_L3S, attrU16 } from '../../lib/netlink/codec.ts';
import { readMaster } from '../macvlan/config.ts';
import { stackedPlugin, type StackedConfig } from '../macvlan/stacked.ts';
import { badConfig, dnsOf, ipamTypeOf, readBool, readInt, readString } from '../../lib/cni/config-read.ts';
import { internal } from '../../lib/pod-iface.ts';

const MODES: Readonly<Record<string, number>> = { l2: IPVLAN_MODE_L2, l3: IPVLAN_MODE_L3, l3s: IPVLAN_MODE_L3S };

export interface IpvlanConfig extends StackedConfig {
  modeName: string;
  mode: number;
}

/** Parse + validate, pure; code 7 naming the field. */
export function parseIpvlanConfig(args: Pick<CmdArgs, 'config'>): IpvlanConfig {
  const conf = args.config;
  const raw = conf as Record<string, unknown>;
  const modeName = readString(raw, 'mode') || 'l2';
  const mode = MODES[modeName];
  if (mode === undefined) throw badConfig(`unknown ipvlan mode: "${modeName}"`, 'mode must be one of l2, l3, l3s');
  const mtu = readInt(raw, 'mtu');
  if (mtu < 0) throw badConfig(`invalid MTU ${mtu}, must be [0, master MTU]`);
  return { name: conf.name, cniVersion: conf.cniVersion, master: readMaster(raw), mtu, linkInContainer: readBool(raw, 'linkInContainer'), ipamType: ipamTypeOf(conf), dns: dnsOf(conf), modeName, mode };
}

export const ipvlanPlugin = stackedPlugin<IpvlanConfig>({
  kind: 'ipvlan',
  parse: parseIpvlanConfig,
  withoutIpam: 'prev-result',
  masterFromPrev: true,
  notify: true,
  linkSpec: (c, parent) => ({ kind: 'ipvlan', parent, mtu: c.mtu || undefined, data: [attrU16(IFLA_IPVLAN_MODE, c.mode)] }),
  verifyLink: (c, _l, d) => {
    if (d.ipvlanMode !== c.mode) {
      const got = Object.entries(MODES).find(([, v]) => v === d.ipvlanMode)?.[0] ?? `unknown(${String(d.ipvlanMode)})`;
      throw internal(`Container IPVlan mode ${got} does not match expected value: ${c.modeName}`);
    }
  },
});
