/**
 * macvlan: the pod gets its own MAC on the master's network (reference:
 * plugins/main/macvlan/macvlan.go). IPAM is optional: without it the pod
 * has an L2-only interface, up and unaddressed. The recipe is shared with
 * ipvlan and vlan (stacked.ts).
 */
import { IFLA_MACVLAN_BC_QUEUE_LEN, IFLA_MACVLAN_MODE, attrU32 } from '../../lib/netlink/codec.ts';
import { internal } from '../../lib/pod-iface.ts';
import { macvlanModeName, parseMacvlanConfig, type MacvlanConfig } from './config.ts';
import { stackedPlugin } from './stacked.ts';

export const macvlanPlugin = stackedPlugin<MacvlanConfig>({
  kind: 'macvlan',
  parse: parseMacvlanConfig,
  withoutIpam: 'l2',
  notify: true,
  // The same attributes as newMacvlanRequest (golden-tested).
  linkSpec: (c, parent) => ({
    kind: 'macvlan',
    parent,
    mtu: c.mtu || undefined,
    mac: c.mac,
    data: [attrU32(IFLA_MACVLAN_MODE, c.mode), ...(c.bcQueueLen ? [attrU32(IFLA_MACVLAN_BC_QUEUE_LEN, c.bcQueueLen)] : [])],
  }),
  verifyLink: (c, _link, details) => {
    if (details.macvlanMode !== c.mode) {
      throw internal(`container macvlan mode ${macvlanModeName(details.macvlanMode)} does not match expected value: ${c.modeName}`);
    }
  },
});
