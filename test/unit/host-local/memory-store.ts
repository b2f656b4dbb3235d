/** An in-memory Store for allocator unit tests. */
import type { Store } from '../../../ipam/host-local/allocator.ts';
import { ownerContent, parseOwner } from '../../../ipam/host-local/reservation-files.ts';
import { formatIp, parseIp, type Ip } from '../../../lib/ip/cidr.ts';

export class MemoryStore implements Store {
  readonly files = new Map<string, string>();
  readonly last = new Map<number, string>();

  reserve(id: string, ifname: string, ip: Ip, setIndex: number): boolean {
    const name = formatIp(ip);
    if (this.files.has(name)) return false;
    this.files.set(name, ownerContent(id, ifname));
    this.last.set(setIndex, name);
    return true;
  }

  lastReservedIp(setIndex: number): Ip | undefined {
    const v = this.last.get(setIndex);
    return v === undefined ? undefined : parseIp(v);
  }

  getByAttachment(id: string, ifname: string): Ip[] {
    const out: Ip[] = [];
    for (const [name, content] of this.files) {
      const o = parseOwner(content);
      if ((o.kind === 'attachment' && o.id === id && o.ifname === ifname) || (o.kind === 'legacy' && o.id === id)) out.push(parseIp(name) as Ip);
    }
    return out;
  }

  releaseIps(id: string, ifname: string, ips: Ip[]): void {
    for (const ip of ips) {
      const name = formatIp(ip);
      if (this.files.get(name) === ownerContent(id, ifname)) this.files.delete(name);
    }
  }
}
