/**
 * Outbound masquerade with nftables, in the reference's table layout so
 * either implementation can remove the other's rules:
 *
 *   table inet cni_plugins_masquerade
 *     chain postrouting  (nat hook postrouting, priority srcnat)
 *       ip daddr 224.0.0.0/4 return
 *       ip6 daddr ff00::/8 return
 *       goto masq_checks
 *     chain masq_checks
 *       ip saddr <pod ip> ip daddr != <pod subnet> masquerade
 *           comment "<hash(net)>-<hash(if:cid)>, net: <net>, if: <if>, id: <cid>"
 *
 * Setup is one `nft -f -` transaction; teardown lists masq_checks only and
 * deletes the rules whose comment starts with the attachment's hash.
 */
import { formatHashWithPrefix } from './naming.ts';
import { addrOf, familyOf, networkOf } from '../ip/prefix.ts';

export const NFT_MASQ_TABLE = 'cni_plugins_masquerade';
export const NFT_MASQ_CHAIN = 'masq_checks';
const COMMENT_MAX = 128;

export function hashForNetwork(network: string): string {
  return formatHashWithPrefix(16, '', network);
}

export function hashForInstance(network: string, ifname: string, containerId: string): string {
  return `${hashForNetwork(network)}-${formatHashWithPrefix(16, '', `${ifname}:${containerId}`)}`;
}

export function commentForInstance(network: string, ifname: string, containerId: string): string {
  const strip = (s: string) => s.replaceAll('"', '');
  const c = `${hashForInstance(network, ifname, containerId)}, net: ${strip(network)}, if: ${strip(ifname)}, id: ${strip(containerId)}`;
  return c.length > COMMENT_MAX ? c.slice(0, COMMENT_MAX) : c;
}

const T = `inet ${NFT_MASQ_TABLE}`;

/** `nft -f -` input that ensures the table and adds one masquerade rule per address. */
export function renderNftMasqSetup(cidrs: readonly string[], network: string, ifname: string, containerId: string): string {
  const comment = commentForInstance(network, ifname, containerId);
  const lines = [
    `add table ${T} { comment "Masquerading for plugins from github.com/containernetworking/plugins" ; }`,
    `add chain ${T} ${NFT_MASQ_CHAIN} { comment "Masquerade traffic from certain IPs to any (non-multicast) IP outside their subnet" ; }`,
    `add chain ${T} postrouting { type nat hook postrouting priority 100 ; }`,
    `flush chain ${T} postrouting`,
    `add rule ${T} postrouting ip daddr == 224.0.0.0/4 return`,
    `add rule ${T} postrouting ip6 daddr == ff00::/8 return`,
    `add rule ${T} postrouting goto ${NFT_MASQ_CHAIN}`,
  ];
  for (const cidr of cidrs) {
    const ip = familyOf(cidr) === 4 ? 'ip' : 'ip6';
    lines.push(`add rule ${T} ${NFT_MASQ_CHAIN} ${ip} saddr == ${addrOf(cidr)} ${ip} daddr != ${networkOf(cidr)} masquerade comment "${comment}"`);
  }
  lines.push('');
  return lines.join('\n');
}

export interface NftRule {
  handle: number;
  comment: string | undefined;
}

/** Rules of masq_checks from `nft -j list chain inet cni_plugins_masquerade masq_checks`. */
export function parseNftRules(json: string): NftRule[] {
  const doc = JSON.parse(json) as { nftables?: Array<{ rule?: { handle: number; comment?: string } }> };
  const out: NftRule[] = [];
  for (const item of doc.nftables ?? []) if (item.rule) out.push({ handle: item.rule.handle, comment: item.rule.comment });
  return out;
}

export function renderNftDeleteRules(handles: readonly number[]): string {
  return handles.map((h) => `delete rule ${T} ${NFT_MASQ_CHAIN} handle ${h}`).join('\n') + '\n';
}
