/**
 * portmap with iptables, laid out exactly as the reference plugin does, so
 * either implementation removes what the other made (pure rendering here;
 * applying is in apply-iptables.ts):
 *
 *   nat PREROUTING, OUTPUT
 *     -m addrtype --dst-type LOCAL -j CNI-HOSTPORT-DNAT
 *   nat POSTROUTING (first rule)
 *     -m comment --comment "CNI portfwd requiring masquerade" -j CNI-HOSTPORT-MASQ
 *   nat CNI-HOSTPORT-MASQ
 *     -m mark --mark 0x2000/0x2000 -j MASQUERADE
 *   nat CNI-HOSTPORT-SETMARK
 *     -m comment --comment "CNI portfwd masquerade mark" -j MARK --set-xmark 0x2000/0x2000
 *   nat CNI-HOSTPORT-DNAT                       one jump per pod and protocol (15 ports per rule)
 *     -m comment --comment "dnat name: \"<net>\" id: \"<cid>\"" -m multiport -p tcp
 *       --destination-ports 8080,8443 [conditions] -j CNI-DN-<hash(net+cid)>
 *   nat CNI-DN-<hash>                           per mapping:
 *     -p tcp --dport 8080 [-d hostIP] -s <pod ip/prefix> -j CNI-HOSTPORT-SETMARK   (snat: hairpin)
 *     -p tcp --dport 8080 [-d hostIP] -s 127.0.0.1 -j CNI-HOSTPORT-SETMARK         (snat, IPv4: localhost)
 *     -p tcp --dport 8080 [-d hostIP] -j DNAT --to-destination <pod ip>:80
 */
import type { Family } from '../../lib/ip/prefix.ts';
import { parseTagComment, restoreArg, ruleText, splitRuleWords } from '../../lib/firewall/iptables-restore.ts';
import { formatHashWithPrefix, goQuote, MAX_CHAIN_LENGTH } from '../../lib/firewall/naming.ts';
import { appliesTo, isSpecificHostIP, type ContainerAddr, type PortMapping } from './config.ts';

export const TOP_DNAT_CHAIN = 'CNI-HOSTPORT-DNAT';
export const SETMARK_CHAIN = 'CNI-HOSTPORT-SETMARK';
export const MASQ_CHAIN = 'CNI-HOSTPORT-MASQ';
export const MASQ_COMMENT = 'CNI portfwd requiring masquerade';
export const SETMARK_COMMENT = 'CNI portfwd masquerade mark';

/** Per-pod chain: "CNI-DN-" + hash(network + container ID), 28 characters. */
export function dnatChainName(network: string, containerId: string): string {
  return formatHashWithPrefix(MAX_CHAIN_LENGTH, 'CNI-DN-', network + containerId);
}

/** The tag on the pod's jump rules (cut to iptables' 255-character limit like the reference). */
export function dnatComment(network: string, containerId: string): string {
  const c = `dnat name: ${goQuote(network)} id: ${goQuote(containerId)}`;
  return c.length <= 255 ? c : `${c.slice(0, 253)}...`;
}

/** Go's %#x of the mark: "0x2000/0x2000". */
export function markDef(bit: number): string {
  const v = (1 << bit) >>> 0;
  return `0x${v.toString(16)}/0x${v.toString(16)}`;
}

export { restoreArg };

const line = ruleText;

export interface TopLevelRule {
  chain: string;
  /** The rule without -A/-I and chain, as iptables arguments. */
  args: string[];
  prepend: boolean;
}

/** The shared rules and chains every pod relies on. */
export function topLevelRules(snat: boolean, markBit: number, external: boolean): { chains: string[]; rules: TopLevelRule[] } {
  const chains = [TOP_DNAT_CHAIN];
  const rules: TopLevelRule[] = [
    { chain: 'PREROUTING', args: ['-m', 'addrtype', '--dst-type', 'LOCAL', '-j', TOP_DNAT_CHAIN], prepend: false },
    { chain: 'OUTPUT', args: ['-m', 'addrtype', '--dst-type', 'LOCAL', '-j', TOP_DNAT_CHAIN], prepend: false },
  ];
  if (snat && !external) {
    chains.push(SETMARK_CHAIN, MASQ_CHAIN);
    rules.push(
      { chain: SETMARK_CHAIN, args: ['-m', 'comment', '--comment', SETMARK_COMMENT, '-j', 'MARK', '--set-xmark', markDef(markBit)], prepend: false },
      { chain: MASQ_CHAIN, args: ['-m', 'mark', '--mark', markDef(markBit), '-j', 'MASQUERADE'], prepend: false },
      { chain: 'POSTROUTING', args: ['-m', 'comment', '--comment', MASQ_COMMENT, '-j', MASQ_CHAIN], prepend: true },
    );
  }
  return { chains, rules };
}

/** iptables-restore input adding the missing shared chains and rules. */
export function renderTopLevelSetup(missingChains: readonly string[], missingRules: readonly TopLevelRule[]): string {
  const out = ['*nat', ...missingChains.map((c) => `:${c} - [0:0]`)];
  for (const r of missingRules) out.push(`${r.prepend ? `-I ${r.chain} 1` : `-A ${r.chain}`} ${line(r.args)}`);
  out.push('COMMIT', '');
  return out.join('\n');
}

export interface DnatOptions {
  network: string;
  containerId: string;
  snat: boolean;
  masqAll: boolean;
  setMarkChain: string;
  conditions: string[] | undefined;
}

/** Groups of up to 15 ports per protocol, protocols sorted: the reference's multiport jumps. */
export function entryRules(o: DnatOptions, mappings: readonly PortMapping[]): string[][] {
  const byProto = new Map<string, number[]>();
  for (const m of mappings) byProto.set(m.protocol, [...(byProto.get(m.protocol) ?? []), m.hostPort]);
  const out: string[][] = [];
  for (const proto of [...byProto.keys()].sort()) {
    const ports = byProto.get(proto) as number[];
    for (let i = 0; i < ports.length; i += 15) {
      out.push([
        '-m',
        'comment',
        '--comment',
        dnatComment(o.network, o.containerId),
        '-m',
        'multiport',
        '-p',
        proto,
        '--destination-ports',
        ports.slice(i, i + 15).join(','),
        ...(o.conditions ?? []),
        '-j',
        dnatChainName(o.network, o.containerId),
      ]);
    }
  }
  return out;
}

/** The rules inside CNI-DN-<hash> for one family. */
export function dnatRules(o: DnatOptions, family: Family, pod: ContainerAddr, mappings: readonly PortMapping[]): string[][] {
  const out: string[][] = [];
  for (const m of mappings) {
    if (!appliesTo(m, family)) continue;
    const base = ['-p', m.protocol, '--dport', String(m.hostPort), ...(isSpecificHostIP(m.hostIP) ? ['-d', m.hostIP] : [])];
    if (o.snat) {
      out.push([...base, '-s', o.masqAll ? (family === 4 ? '0.0.0.0/0' : '::/0') : pod.cidr, '-j', o.setMarkChain]);
      if (family === 4 && !o.masqAll) out.push([...base, '-s', '127.0.0.1', '-j', o.setMarkChain]);
    }
    const to = family === 4 ? `${pod.ip}:${m.containerPort}` : `[${pod.ip}]:${m.containerPort}`;
    out.push([...base, '-j', 'DNAT', '--to-destination', to]);
  }
  return out;
}

/** The mappings that apply to a family (what the entry jumps are built from). */
export function mappingsFor(family: Family, mappings: readonly PortMapping[]): PortMapping[] {
  return mappings.filter((m) => appliesTo(m, family));
}

/**
 * One pod's rules for one family, as one iptables-restore batch. The pod
 * chain is declared (and so emptied) first; `removeEntries` are jumps of an
 * earlier ADD of the same pod to drop in the same transaction.
 */
export function renderPodSetup(o: DnatOptions, family: Family, pod: ContainerAddr, mappings: readonly PortMapping[], removeEntries: readonly string[][] = []): string {
  const chain = dnatChainName(o.network, o.containerId);
  const fam = mappingsFor(family, mappings);
  const out = ['*nat', `:${chain} - [0:0]`];
  for (const e of removeEntries) out.push(`-D ${TOP_DNAT_CHAIN} ${line(e)}`);
  for (const r of dnatRules(o, family, pod, fam)) out.push(`-A ${chain} ${line(r)}`);
  for (const e of entryRules(o, fam)) out.push(`-A ${TOP_DNAT_CHAIN} ${line(e)}`);
  out.push('COMMIT', '');
  return out.join('\n');
}

/** Remove the pod's jumps (given exactly) and its chain, in one batch. */
export function renderPodTeardown(chain: string, entries: readonly string[][]): string {
  const out = ['*nat'];
  for (const e of entries) out.push(`-D ${TOP_DNAT_CHAIN} ${line(e)}`);
  out.push(`-F ${chain}`, `-X ${chain}`, 'COMMIT', '');
  return out.join('\n');
}

export const splitSaveLine = splitRuleWords;

/** From `iptables -S CNI-HOSTPORT-DNAT`: the argument lists of the jumps to `chain`. */
export function jumpsTo(saveText: string, chain: string): string[][] {
  const out: string[][] = [];
  for (const l of saveText.split('\n')) {
    const words = splitSaveLine(l.trim());
    if (words[0] !== '-A' || words[1] !== TOP_DNAT_CHAIN) continue;
    const j = words.indexOf('-j');
    if (j >= 0 && words[j + 1] === chain) out.push(words.slice(2));
  }
  return out;
}

/** From `iptables -S CNI-HOSTPORT-DNAT`: every pod jump with the network and container ID of its tag. */
export function taggedJumps(saveText: string): { network: string; containerId: string; chain: string }[] {
  const out: { network: string; containerId: string; chain: string }[] = [];
  for (const l of saveText.split('\n')) {
    const words = splitSaveLine(l.trim());
    if (words[0] !== '-A' || words[1] !== TOP_DNAT_CHAIN) continue;
    const c = words.indexOf('--comment');
    const j = words.indexOf('-j');
    const tag = c >= 0 ? parseTagComment(words[c + 1], 'dnat') : undefined;
    if (!tag || j < 0) continue;
    out.push({ network: tag.name, containerId: tag.id, chain: words[j + 1] as string });
  }
  return out;
}
