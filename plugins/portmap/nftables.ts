/**
 * portmap with nftables: maps and sets instead of one rule per pod, so a pod's
 * ADD and DEL are element changes and a packet costs one hash lookup however
 * many pods are mapped (pure rendering; applying is in apply-nftables.ts).
 *
 *   table inet tscni_portmap
 *     map dnat4_ip   { ipv4_addr . inet_proto . inet_service : ipv4_addr . inet_service }  hostIP-bound
 *     map dnat4_any  { inet_proto . inet_service : ipv4_addr . inet_service }               any address
 *     map dnat6_ip, dnat6_any                                                               the same for IPv6
 *     set masq4/6    { pod ip . proto . pod port }   DNAT targets that get hairpin/localhost SNAT
 *     set masqall4/6 { pod ip . proto . pod port }   masqAll: every DNATed connection is SNATed
 *     set podnets4/6 { pod subnets (interval) }      hairpin sources
 *     chain prerouting/output (nat, priority -100 = dstnat): fib daddr type local jump hostports
 *     chain hostports: jump conditional, then one dnat lookup per map
 *     chain conditional: per-pod rules, only for configs with conditionsV4/V6
 *     chain postrouting (nat, priority 100 = srcnat):
 *       ct status dnat ip daddr . meta l4proto . th dport @masq4 ip saddr @podnets4 masquerade
 *       ct status dnat ip daddr . meta l4proto . th dport @masq4 ip saddr 127.0.0.1 masquerade
 *       ct status dnat ip daddr . meta l4proto . th dport @masqall4 masquerade   (and IPv6)
 *
 * Elements carry the attachment's tag as a comment, so a DEL that has lost
 * its record can still find them. A pod's transaction is elements only; when
 * it fails because the table (or a set) is missing, it is sent again with the
 * static part in front (add is idempotent; the rule chains are flushed and
 * refilled), which builds the table or repairs one someone damaged.
 */
import { nftQuote, nftStoredString } from '../../lib/firewall/nft-text.ts';
import type { Family } from '../../lib/ip/prefix.ts';
import { appliesTo, isSpecificHostIP, type ContainerAddr, type PortMapping } from './config.ts';

export const NFT_TABLE = 'tscni_portmap';
const T = `inet ${NFT_TABLE}`;
const ADDR: Record<Family, string> = { 4: 'ipv4_addr', 6: 'ipv6_addr' };
const IPX: Record<Family, string> = { 4: 'ip', 6: 'ip6' };
const NFPROTO: Record<Family, string> = { 4: 'ipv4', 6: 'ipv6' };

/**
 * Element comment: what the element belongs to, in the form nft stores it
 * (lib/firewall/nft-text.ts), so the tag written by ADD is the tag DEL matches.
 */
export function elementTag(network: string, containerId: string, ifName: string): string {
  return nftStoredString(`${network}/${containerId}/${ifName}`, 120);
}

const q = (s: string) => nftQuote(s);

/** The table, its maps, sets and static chains (idempotent). */
export function renderStatic(): string[] {
  const out = [`add table ${T} { comment "tscni portmap" ; }`];
  for (const f of [4, 6] as Family[]) {
    out.push(
      `add map ${T} dnat${f}_ip { type ${ADDR[f]} . inet_proto . inet_service : ${ADDR[f]} . inet_service ; }`,
      `add map ${T} dnat${f}_any { type inet_proto . inet_service : ${ADDR[f]} . inet_service ; }`,
      `add set ${T} masq${f} { type ${ADDR[f]} . inet_proto . inet_service ; }`,
      `add set ${T} masqall${f} { type ${ADDR[f]} . inet_proto . inet_service ; }`,
      `add set ${T} podnets${f} { type ${ADDR[f]} ; flags interval ; }`,
    );
  }
  out.push(
    `add chain ${T} conditional`,
    `add chain ${T} hostports`,
    `add chain ${T} prerouting { type nat hook prerouting priority -100 ; policy accept ; }`,
    `add chain ${T} output { type nat hook output priority -100 ; policy accept ; }`,
    `add chain ${T} postrouting { type nat hook postrouting priority 100 ; policy accept ; }`,
    `flush chain ${T} hostports`,
    `flush chain ${T} prerouting`,
    `flush chain ${T} output`,
    `flush chain ${T} postrouting`,
    `add rule ${T} prerouting fib daddr type local jump hostports`,
    `add rule ${T} output fib daddr type local jump hostports`,
    `add rule ${T} hostports jump conditional`,
  );
  for (const f of [4, 6] as Family[]) {
    const x = IPX[f];
    out.push(
      `add rule ${T} hostports meta nfproto ${NFPROTO[f]} dnat ${x} to ${x} daddr . meta l4proto . th dport map @dnat${f}_ip`,
      `add rule ${T} hostports meta nfproto ${NFPROTO[f]} dnat ${x} to meta l4proto . th dport map @dnat${f}_any`,
      `add rule ${T} postrouting ct status dnat ${x} daddr . meta l4proto . th dport @masq${f} ${x} saddr @podnets${f} masquerade`,
      `add rule ${T} postrouting ct status dnat ${x} daddr . meta l4proto . th dport @masqall${f} masquerade`,
    );
  }
  out.push(`add rule ${T} postrouting ct status dnat ip daddr . meta l4proto . th dport @masq4 ip saddr 127.0.0.1 masquerade`);
  return out;
}

export interface NftElement {
  /** "add element inet t <set> { <key> [: value] comment ... }" without the verb. */
  set: string;
  key: string;
  value?: string;
}

export interface NftPodOptions {
  snat: boolean;
  masqAll: boolean;
  /** nft expressions; when present the pod's mappings become rules in chain conditional. */
  conditions: string[] | undefined;
}

/** Map/set elements of one pod, deduplicated (one masq entry serves several host ports). */
export function podElements(o: NftPodOptions, family: Family, pod: ContainerAddr, mappings: readonly PortMapping[]): NftElement[] {
  const out: NftElement[] = [];
  const seen = new Set<string>();
  const push = (e: NftElement) => {
    const k = `${e.set} ${e.key}`;
    if (seen.has(k)) return;
    seen.add(k);
    out.push(e);
  };
  for (const m of mappings) {
    if (!appliesTo(m, family)) continue;
    const target = `${pod.ip} . ${m.containerPort}`;
    if (!o.conditions) {
      if (isSpecificHostIP(m.hostIP)) push({ set: `dnat${family}_ip`, key: `${m.hostIP} . ${m.protocol} . ${m.hostPort}`, value: target });
      else push({ set: `dnat${family}_any`, key: `${m.protocol} . ${m.hostPort}`, value: target });
    }
    if (o.snat) push({ set: o.masqAll ? `masqall${family}` : `masq${family}`, key: `${pod.ip} . ${m.protocol} . ${m.containerPort}` });
  }
  if (o.snat && !o.masqAll && out.some((e) => e.set === `masq${family}`)) push({ set: `podnets${family}`, key: pod.net });
  return out;
}

/** The per-pod rules of chain conditional (configs with conditions only). */
export function conditionalRules(o: NftPodOptions, family: Family, pod: ContainerAddr, mappings: readonly PortMapping[], tag: string): string[] {
  if (!o.conditions) return [];
  const x = IPX[family];
  const out: string[] = [];
  for (const m of mappings) {
    if (!appliesTo(m, family)) continue;
    const dst = isSpecificHostIP(m.hostIP) ? ` ${x} daddr ${m.hostIP}` : '';
    const to = family === 4 ? `${pod.ip}:${m.containerPort}` : `[${pod.ip}]:${m.containerPort}`;
    out.push(`add rule ${T} conditional meta nfproto ${NFPROTO[family]} ${o.conditions.join(' ')}${dst} meta l4proto ${m.protocol} th dport ${m.hostPort} dnat ${x} to ${to} comment ${q(tag)}`);
  }
  return out;
}

function elem(verb: 'add' | 'delete', e: NftElement, tag: string): string {
  // The comment belongs to the key: { key comment "tag" : value }.
  const body = verb === 'add' ? `${e.key} comment ${q(tag)}${e.value ? ` : ${e.value}` : ''}` : e.key;
  return `${verb} element ${T} ${e.set} { ${body} }`;
}

/**
 * One transaction for a pod's ADD. Elements use `add`; a host port that
 * another pod holds with a different target fails the whole transaction
 * (EEXIST), so nothing is half-applied.
 */
export function renderPodAdd(elements: readonly NftElement[], rules: readonly string[], tag: string, withStatic = true): string {
  return [...(withStatic ? renderStatic() : []), ...elements.map((e) => elem('add', e, tag)), ...rules, ''].join('\n');
}

/**
 * One transaction removing a pod's elements. Each element is added (a no-op
 * when present) and then deleted, so a DEL that runs twice, or after someone
 * removed part of it, still succeeds. Shared subnets (`keep`) stay.
 */
export function renderPodDelete(elements: readonly NftElement[], tag: string, ruleHandles: readonly number[] = [], withStatic = true): string {
  const out = withStatic ? renderStatic() : [];
  for (const e of elements) out.push(elem('add', e, tag), elem('delete', e, tag));
  for (const h of ruleHandles) out.push(`delete rule ${T} conditional handle ${h}`);
  out.push('');
  return out.join('\n');
}

interface NftJsonElem {
  elem?: { val: unknown; comment?: string };
  [k: string]: unknown;
}

/** Handles of the conditional rules tagged `tag`, from `nft -j -a list chain inet tscni_portmap conditional`. */
export function taggedRuleHandles(json: string, tag: string): number[] {
  const doc = JSON.parse(json) as { nftables?: { rule?: { handle: number; comment?: string } }[] };
  return (doc.nftables ?? []).flatMap((x) => (x.rule && x.rule.comment === tag ? [x.rule.handle] : []));
}

/**
 * Elements of one map or set whose comment is `tag`, rendered back as keys
 * (from `nft -j list map|set inet tscni_portmap <name>`). Used when a DEL has
 * no record and no portMappings.
 */
export function taggedElements(json: string, setName: string, tag: string): NftElement[] {
  const doc = JSON.parse(json) as { nftables?: Record<string, { elem?: unknown[] }>[] };
  const out: NftElement[] = [];
  for (const item of doc.nftables ?? []) {
    const body = item.map ?? item.set;
    for (const raw of body?.elem ?? []) {
      // With data: [key, value]; the key may be wrapped as {elem: {val, comment}}.
      const [k, v] = Array.isArray(raw) ? (raw as unknown[]) : [raw, undefined];
      const wrapped = (k as NftJsonElem)?.elem;
      if (!wrapped || wrapped.comment !== tag) continue;
      out.push({ set: setName, key: jsonToNft(wrapped.val), value: v === undefined ? undefined : jsonToNft(v) });
    }
  }
  return out;
}

/** nft JSON expression of a key or value back to nft syntax (concatenations, prefixes, scalars). */
export function jsonToNft(v: unknown): string {
  if (typeof v === 'string' || typeof v === 'number') return String(v);
  if (v && typeof v === 'object') {
    const o = v as Record<string, unknown>;
    if (Array.isArray(o.concat)) return o.concat.map(jsonToNft).join(' . ');
    if (o.prefix) {
      const p = o.prefix as { addr: string; len: number };
      return `${p.addr}/${p.len}`;
    }
    if (o.range) {
      const [a, b] = o.range as [unknown, unknown];
      return `${jsonToNft(a)}-${jsonToNft(b)}`;
    }
  }
  throw new Error(`unexpected nft element ${JSON.stringify(v)}`);
}

export const NFT_TAGGED_SETS: readonly string[] = [4, 6].flatMap((f) => [`dnat${f}_ip`, `dnat${f}_any`, `masq${f}`, `masqall${f}`, `podnets${f}`]);
