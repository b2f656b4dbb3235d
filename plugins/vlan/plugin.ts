/**
 * vlan: an 802.1Q sub-interface of the master in the pod (reference:
 * plugins/main/vlan/vlan.go). Keys: master (required), vlanId (0-4094), mtu,
 * linkInContainer, ipam (required), dns. Recipe shared with macvlan and
 * ipvlan (../macvlan/stacked.ts).
 */
import type { CmdArgs } from '../../lib/cni/skel.ts';
import { IFLA_VLAN_ID, attrU16 } from '../../lib/netlink/codec.ts';
import { readMaster } from '../macvlan/config.ts';
import { stackedPlugin, type StackedConfig } from '../macvlan/stacked.ts';
import { badConfig, dnsOf, ipamTypeOf, readBool, readInt } from '../../lib/cni/config-read.ts';
import { internal } from '../../lib/pod-iface.ts';

export interface VlanConfig extends StackedConfig {
  vlanId: number;
}

/** Parse + validate, pure; code 7 with the reference's wording. */
export function parseVlanConfig(args: Pick<CmdArgs, 'config'>): VlanConfig {
  const conf = args.config;
  const raw = conf as Record<string, unknown>;
  const master = readMaster(raw);
  if (!master) throw badConfig('"master" field is required. It specifies the host interface name to create the VLAN for');
  const vlanId = readInt(raw, 'vlanId');
  if (vlanId < 0 || vlanId > 4094) throw badConfig(`invalid VLAN ID ${vlanId} (must be between 0 and 4095 inclusive)`);
  const mtu = readInt(raw, 'mtu');
  if (mtu < 0) throw badConfig(`invalid MTU ${mtu}, must be [0, master MTU]`);
  return { name: conf.name, cniVersion: conf.cniVersion, master, mtu, linkInContainer: readBool(raw, 'linkInContainer'), ipamType: ipamTypeOf(conf), dns: dnsOf(conf), vlanId };
}

export const vlanPlugin = stackedPlugin<VlanConfig>({
  kind: 'vlan',
  parse: parseVlanConfig,
  withoutIpam: 'error',
  notify: false,
  linkSpec: (c, parent) => ({ kind: 'vlan', parent, mtu: c.mtu || undefined, data: [attrU16(IFLA_VLAN_ID, c.vlanId)] }),
  verifyLink: (c, _l, d, ifName) => {
    if (d.vlanId !== c.vlanId) throw internal(`Error: Container interface ${ifName} VLAN id ${String(d.vlanId)} does not match expected value: ${c.vlanId}`);
  },
});
