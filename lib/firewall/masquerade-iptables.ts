/**
 * Outbound masquerade with iptables, exactly as the reference bridge lays it
 * out (same chain names and comments, so either implementation can remove
 * what the other created):
 *
 *   nat POSTROUTING
 *     -s <pod ip> -j CNI-<hash(net+cid)>        comment: name: "<net>" id: "<cid>"
 *   nat CNI-<hash>
 *     -d <pod subnet> -j ACCEPT                 (one per subnet of this family)
 *     ! -d 224.0.0.0/4 -j MASQUERADE            (ff00::/8 for IPv6)
 *
 * Everything is rendered as iptables-restore input and applied with ONE
 * `iptables-restore --noflush -w` per family. Teardown never lists the whole
 * nat table: it reads POSTROUTING only and deletes by the chain's name.
 */
import { addrOf, familyOf, networkOf, type Family } from '../ip/prefix.ts';

export const MULTICAST_NET: Record<Family, string> = { 4: '224.0.0.0/4', 6: 'ff00::/8' };

/** Quote one iptables-restore argument (comments contain spaces and quotes). */
export function quoteRestoreArg(s: string): string {
  return `"${s.replace(/\\/g, '\\\\').replace(/"/g, '\\"')}"`;
}

/** iptables-restore input that creates the chain and hooks it for the given addresses (all of one family). */
export function renderMasqSetup(family: Family, chain: string, comment: string, cidrs: readonly string[]): string {
  const c = `-m comment --comment ${quoteRestoreArg(comment)}`;
  const lines = ['*nat', `:${chain} - [0:0]`];
  const seen = new Set<string>();
  for (const cidr of cidrs) {
    const net = networkOf(cidr);
    if (seen.has(net)) continue;
    seen.add(net);
    lines.push(`-A ${chain} -d ${net} -j ACCEPT ${c}`);
  }
  lines.push(`-A ${chain} ! -d ${MULTICAST_NET[family]} -j MASQUERADE ${c}`);
  for (const cidr of cidrs) lines.push(`-A POSTROUTING -s ${addrOf(cidr)} -j ${chain} ${c}`);
  lines.push('COMMIT', '');
  return lines.join('\n');
}

/** Split an `iptables -S` line into its words, honouring "quoted strings" with \" escapes. */
export function splitRuleWords(line: string): string[] {
  const out: string[] = [];
  let cur = '';
  let inQuote = false;
  let any = false;
  for (let i = 0; i < line.length; i++) {
    const ch = line[i] as string;
    if (inQuote) {
      if (ch === '\\' && i + 1 < line.length) {
        cur += line[++i];
      } else if (ch === '"') {
        inQuote = false;
      } else {
        cur += ch;
      }
    } else if (ch === '"') {
      inQuote = true;
      any = true;
    } else if (ch === ' ') {
      if (any || cur) out.push(cur);
      cur = '';
      any = false;
    } else {
      cur += ch;
      any = true;
    }
  }
  if (any || cur) out.push(cur);
  return out;
}

export interface PostroutingRule {
  /** The rule as printed by `iptables -S`, after "-A POSTROUTING ". */
  spec: string;
  target: string | undefined;
  comment: string | undefined;
}

/** Parse `iptables -t nat -S POSTROUTING` output. */
export function parsePostrouting(text: string): PostroutingRule[] {
  const out: PostroutingRule[] = [];
  for (const line of text.split('\n')) {
    if (!line.startsWith('-A POSTROUTING ')) continue;
    const words = splitRuleWords(line);
    const j = words.indexOf('-j');
    const ci = words.indexOf('--comment');
    out.push({
      spec: line.slice('-A POSTROUTING '.length),
      target: j >= 0 ? words[j + 1] : undefined,
      comment: ci >= 0 ? words[ci + 1] : undefined,
    });
  }
  return out;
}

/** Parse a reference comment `name: "<net>" id: "<cid>"`. */
export function parseMasqComment(comment: string | undefined): { name: string; id: string } | undefined {
  if (!comment) return undefined;
  const m = /^name: "((?:[^"\\]|\\.)*)" id: "((?:[^"\\]|\\.)*)"$/.exec(comment);
  if (!m) return undefined;
  return { name: JSON.parse(`"${m[1]}"`) as string, id: JSON.parse(`"${m[2]}"`) as string };
}

/**
 * iptables-restore input removing every POSTROUTING jump to `chain` (found
 * in `rules`) and the chain itself. Declaring the chain first makes `-X`
 * succeed whether or not it still exists.
 */
export function renderMasqTeardown(chains: readonly string[], rules: readonly PostroutingRule[]): string {
  const lines = ['*nat'];
  const wanted = new Set(chains);
  for (const r of rules) if (r.target && wanted.has(r.target)) lines.push(`-D POSTROUTING ${r.spec}`);
  for (const chain of chains) lines.push(`:${chain} - [0:0]`);
  for (const chain of chains) lines.push(`-X ${chain}`);
  lines.push('COMMIT', '');
  return lines.join('\n');
}

/**
 * Teardown by exact rule specs when the addresses are known (prevResult):
 * no listing at all. iptables-restore is atomic, so when any rule is not
 * there the whole batch fails and the caller falls back to listing POSTROUTING.
 */
export function renderMasqTeardownExact(chain: string, comment: string, cidrs: readonly string[]): string {
  const c = `-m comment --comment ${quoteRestoreArg(comment)}`;
  const lines = ['*nat'];
  for (const cidr of cidrs) lines.push(`-D POSTROUTING -s ${addrOf(cidr)} -j ${chain} ${c}`);
  lines.push(`:${chain} - [0:0]`, `-X ${chain}`, 'COMMIT', '');
  return lines.join('\n');
}

export function familyOfCidrs(cidrs: readonly string[], family: Family): string[] {
  return cidrs.filter((c) => familyOf(c) === family);
}
