/**
 * What the name server answers locally (pure): A and AAAA for the pods of
 * one network, by name, alias, and name.domainName.
 *
 *   name known, type A/AAAA/ANY  -> the addresses of that family (NOERROR, maybe empty)
 *   name under domainName, unknown -> NXDOMAIN (authoritative: never forwarded, so
 *                                     a host search domain cannot answer first)
 *   a single label, unknown      -> NXDOMAIN: a dotless name is not a DNS name outside
 *                                   (ICANN), and forwarding it could reach another
 *                                   network's server and leak its pods' names
 *   PTR of a pod's address       -> name.domainName (reverse lookups of the network's pods)
 *   anything else                -> undefined: forward to the host's resolvers
 */
import type { NameRecord } from './state.ts';

export interface LocalAnswer {
  rcode: 'NOERROR' | 'NXDOMAIN';
  answers: { name: string; type: 'A' | 'AAAA' | 'PTR'; ttl: number; data: string }[];
}

export const TTL = 60;

/** The lookup key of a query name: lower case, no trailing dot, domain suffix removed. Undefined when not ours. */
export function localKey(qname: string, domainName: string): { key: string; inDomain: boolean } {
  const n = qname.toLowerCase().replace(/\.$/, '');
  const d = domainName.toLowerCase().replace(/\.$/, '');
  if (d && n.endsWith(`.${d}`)) return { key: n.slice(0, -(d.length + 1)), inDomain: true };
  return { key: n, inDomain: n === d };
}

/** The reverse-lookup name of an address: 4.3.2.1.in-addr.arpa, or nibbles under ip6.arpa. */
export function reverseName(ip: string): string {
  if (!ip.includes(':')) return `${ip.split('.').reverse().join('.')}.in-addr.arpa`;
  const [head = '', tail = ''] = ip.split('::');
  const groups = (s: string) => (s ? s.split(':') : []);
  const h = groups(head);
  const t = groups(tail);
  const all = ip.includes('::') ? [...h, ...Array<string>(8 - h.length - t.length).fill('0'), ...t] : h;
  return `${all.map((g) => g.padStart(4, '0')).join('').split('').reverse().join('.')}.ip6.arpa`;
}

export function answerLocal(qname: string, qtype: string, records: readonly NameRecord[], domainName: string): LocalAnswer | undefined {
  const lower = qname.toLowerCase().replace(/\.$/, '');
  if (lower.endsWith('.in-addr.arpa') || lower.endsWith('.ip6.arpa')) {
    const owner = records.find((r) => r.ips.some((ip) => reverseName(ip.toLowerCase()) === lower));
    if (!owner) return undefined;
    const target = domainName ? `${owner.name}.${domainName}` : owner.name;
    return { rcode: 'NOERROR', answers: qtype === 'PTR' || qtype === 'ANY' ? [{ name: qname, type: 'PTR', ttl: TTL, data: target }] : [] };
  }
  const { key, inDomain } = localKey(qname, domainName);
  const hits = records.filter((r) => r.name.toLowerCase() === key || r.aliases.some((a) => a.toLowerCase() === key));
  if (hits.length === 0) return inDomain || !key.includes('.') ? { rcode: 'NXDOMAIN', answers: [] } : undefined;
  const answers: LocalAnswer['answers'] = [];
  for (const r of hits) {
    for (const ip of r.ips) {
      const type = ip.includes(':') ? 'AAAA' : 'A';
      if (qtype === type || qtype === 'ANY') answers.push({ name: qname, type, ttl: TTL, data: ip });
    }
  }
  return { rcode: 'NOERROR', answers };
}

/** Nameservers from resolv.conf text, without `exclude` (the server's own addresses: never forward to itself). */
export function parseNameservers(resolvConf: string, exclude: readonly string[]): string[] {
  const out: string[] = [];
  for (const line of resolvConf.split('\n')) {
    const m = /^\s*nameserver\s+(\S+)/.exec(line);
    if (m?.[1] && !exclude.includes(m[1]) && !out.includes(m[1])) out.push(m[1].replace(/%.*$/, ''));
  }
  return out;
}
