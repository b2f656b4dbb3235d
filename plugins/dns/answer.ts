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
 *   anything else                -> undefined: forward to the host's resolvers
 */
import type { NameRecord } from './state.ts';

export interface LocalAnswer {
  rcode: 'NOERROR' | 'NXDOMAIN';
  answers: { name: string; type: 'A' | 'AAAA'; ttl: number; data: string }[];
}

export const TTL = 60;

/** The lookup key of a query name: lower case, no trailing dot, domain suffix removed. Undefined when not ours. */
export function localKey(qname: string, domainName: string): { key: string; inDomain: boolean } {
  const n = qname.toLowerCase().replace(/\.$/, '');
  const d = domainName.toLowerCase().replace(/\.$/, '');
  if (d && n.endsWith(`.${d}`)) return { key: n.slice(0, -(d.length + 1)), inDomain: true };
  return { key: n, inDomain: n === d };
}

export function answerLocal(qname: string, qtype: string, records: readonly NameRecord[], domainName: string): LocalAnswer | undefined {
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
