/**
 * The firewall plugin's nftables backend (the reference has none). Pure:
 * `nft -f` text for one transaction per call, and a reader of
 * `nft -j list table`. Outside values (bridge names, IDs) are encoded with
 * lib/firewall/nft-text.ts only.
 *
 *   table inet tscni_firewall
 *     set pods4 { type ipv4_addr }       one element per pod address, comment "<net>/<cid>/<ifname>"
 *     set pods6 { type ipv6_addr }
 *     chain forward  (filter hook forward, priority filter, policy accept)
 *       jump isolation
 *       jump admin                        the admin's overrides (never written by us)
 *       ip daddr @pods4 ct state established,related accept
 *       ip saddr @pods4 accept
 *       ip6 daddr @pods6 ct state established,related accept
 *       ip6 saddr @pods6 accept
 *     chain admin
 *     chain isolation                     rewritten from the records on every call:
 *       iifname "<br>" oifname { "<other isolated br>", ... } drop     same-bridge and isolated
 *       iifname "<br>" oifname "<br>" drop                             isolated only
 *
 * Elements are removed exactly (an `add` before the `delete` in the same
 * transaction makes the delete succeed whether or not the element is there),
 * and the whole table goes with the last attachment.
 */
import { nftQuote } from '../../lib/firewall/nft-text.ts';
import { addrOf, familyOf } from '../../lib/ip/prefix.ts';
import type { IngressPolicy } from './config.ts';

export const NFT_TABLE = 'tscni_firewall';
const T = `inet ${NFT_TABLE}`;

/** One attachment as the nftables backend needs it. */
export interface NftAttachment {
  network: string;
  containerId: string;
  ifName: string;
  /** Host prefixes (<ip>/32, <ip>/128). */
  prefixes: string[];
  bridge?: string;
  policy: IngressPolicy;
}

export const elementComment = (a: NftAttachment) => nftQuote(`${a.network}/${a.containerId}/${a.ifName}`);
const setOf = (p: string) => (familyOf(p) === 4 ? 'pods4' : 'pods6');

/** The table's skeleton: declared idempotently, the fixed chains rewritten. */
function skeleton(): string[] {
  return [
    `add table ${T}`,
    `add set ${T} pods4 { type ipv4_addr ; }`,
    `add set ${T} pods6 { type ipv6_addr ; }`,
    `add chain ${T} admin`,
    `add chain ${T} isolation`,
    `add chain ${T} forward { type filter hook forward priority filter ; policy accept ; }`,
    `flush chain ${T} forward`,
    `add rule ${T} forward jump isolation`,
    `add rule ${T} forward jump admin`,
    `add rule ${T} forward ip daddr @pods4 ct state established,related accept`,
    `add rule ${T} forward ip saddr @pods4 accept`,
    `add rule ${T} forward ip6 daddr @pods6 ct state established,related accept`,
    `add rule ${T} forward ip6 saddr @pods6 accept`,
  ];
}

/** The isolation rules for every attachment in `all` (Docker's isolation between bridges, and --icc=false). */
export function isolationRules(all: readonly NftAttachment[]): string[] {
  const policyOf = new Map<string, IngressPolicy>();
  for (const a of all) {
    if (!a.bridge || a.policy === 'open' || a.prefixes.length === 0) continue;
    if (policyOf.get(a.bridge) !== 'isolated') policyOf.set(a.bridge, a.policy);
  }
  const bridges = [...policyOf.keys()].sort();
  const out: string[] = [];
  for (const br of bridges) {
    const others = bridges.filter((b) => b !== br);
    if (others.length) out.push(`add rule ${T} isolation iifname ${nftQuote(br, 15)} oifname { ${others.map((b) => nftQuote(b, 15)).join(', ')} } drop`);
    if (policyOf.get(br) === 'isolated') out.push(`add rule ${T} isolation iifname ${nftQuote(br, 15)} oifname ${nftQuote(br, 15)} drop`);
  }
  return out;
}

/**
 * One transaction that makes the table match `all` (every live attachment
 * of the backend, after this call) while adding `added` and removing
 * `removed`. With nothing left, the table is deleted.
 */
export function renderNftApply(all: readonly NftAttachment[], added: readonly NftAttachment[], removed: readonly NftAttachment[]): string {
  const lines = skeleton();
  lines.push(`flush chain ${T} isolation`, ...isolationRules(all));
  for (const a of added) for (const p of a.prefixes) lines.push(`add element ${T} ${setOf(p)} { ${addrOf(p)} comment ${elementComment(a)} }`);
  const keep = new Set(all.flatMap((a) => a.prefixes));
  for (const a of removed) {
    for (const p of a.prefixes) {
      if (keep.has(p)) continue;
      lines.push(`add element ${T} ${setOf(p)} { ${addrOf(p)} }`, `delete element ${T} ${setOf(p)} { ${addrOf(p)} }`);
    }
  }
  if (all.every((a) => a.prefixes.length === 0)) lines.push(`delete table ${T}`);
  lines.push('');
  return lines.join('\n');
}

/** What `nft -j list table inet tscni_firewall` shows: set elements and the isolation chain's rules (as JSON text). */
export interface NftListing {
  elements: Set<string>;
  forwardRules: number;
  isolation: string[];
}

/** Parse the JSON listing; undefined input (no table) gives an empty listing. */
export function parseNftListing(json: string | undefined): NftListing {
  const out: NftListing = { elements: new Set(), forwardRules: 0, isolation: [] };
  if (!json) return out;
  const doc = JSON.parse(json) as { nftables?: Array<Record<string, { name?: string; chain?: string; elem?: unknown[]; expr?: unknown }>> };
  for (const item of doc.nftables ?? []) {
    if (item.set && (item.set.name === 'pods4' || item.set.name === 'pods6')) {
      for (const e of item.set.elem ?? []) {
        const v = typeof e === 'string' ? e : ((e as { elem?: { val?: unknown } }).elem?.val as string | undefined);
        if (typeof v === 'string') out.elements.add(v);
      }
    }
    if (item.rule?.chain === 'forward') out.forwardRules++;
    if (item.rule?.chain === 'isolation') out.isolation.push(JSON.stringify(item.rule.expr));
  }
  return out;
}

/** Problems CHECK reports for `a`, given the listing and every live attachment (empty: all there). */
export function nftMissing(listing: NftListing, a: NftAttachment, all: readonly NftAttachment[]): string[] {
  const out: string[] = [];
  if (listing.forwardRules < 6) out.push(`chain ${T} forward is missing or incomplete`);
  for (const p of a.prefixes) if (!listing.elements.has(addrOf(p))) out.push(`element ${addrOf(p)} missing from ${T} ${setOf(p)}`);
  const wantIso = isolationRules(all).length;
  if (listing.isolation.length < wantIso) out.push(`chain ${T} isolation has ${listing.isolation.length} of ${wantIso} rules`);
  if (a.bridge && a.policy !== 'open' && wantIso > 0 && !listing.isolation.some((r) => r.includes(JSON.stringify(a.bridge)))) out.push(`no isolation rule for bridge ${a.bridge}`);
  return out;
}
