/**
 * host-local allocation, pure: all state goes through a Store. The semantics
 * are the reference's (backend/allocator): a requested IP if it lies in the
 * set and is not the gateway; otherwise refuse a second allocation for the
 * same container+ifname, then round-robin from last_reserved_ip.<set>+1,
 * skipping the gateway (and, for IPv4, the broadcast address).
 */
import { CniError, ErrorCode } from '../../lib/cni/errors.ts';
import type { IpConfig } from '../../lib/cni/types.ts';
import { cidrContains, formatCidr, formatIp, ipEquals, lastAddress, nextIp, type Ip } from '../../lib/ip/cidr.ts';
import { neverAllocatedReason, rangeContains, rangeFor, rangeSetContains, rangeSetToString, type HostLocalConfig, type IpRange, type RangeSet } from './config.ts';

/** What the allocator needs from storage. The caller holds the store's lock. */
export interface Store {
  /** Exclusively reserve `ip` for the attachment; false when it is taken. Records it as the set's last reserved IP. */
  reserve(id: string, ifname: string, ip: Ip, setIndex: number): boolean;
  lastReservedIp(setIndex: number): Ip | undefined;
  /** Addresses held by id+ifname, plus id-only records of older versions (as the reference's GetByID). */
  getByAttachment(id: string, ifname: string): Ip[];
  /** Release exactly these addresses if they still belong to the attachment. */
  releaseIps(id: string, ifname: string, ips: Ip[]): void;
}

/** The reference's RangeIter: walks a range set once, starting after the last reserved IP. */
export class RangeIterator {
  private readonly set: RangeSet;
  private rangeIdx = 0;
  private cur: Ip | undefined;
  private startIp: Ip | undefined;

  constructor(set: RangeSet, lastReserved: Ip | undefined) {
    this.set = set;
    const idx = lastReserved ? set.findIndex((r) => rangeContains(r, lastReserved)) : -1;
    if (idx >= 0 && lastReserved) {
      this.rangeIdx = idx;
      // Next() advances first, so the first candidate is lastReserved+1.
      this.cur = lastReserved;
    } else {
      this.startIp = set[0]?.rangeStart;
    }
  }

  private skip(r: IpRange, ip: Ip): boolean {
    return neverAllocatedReason(r.subnet, r.gateway, ip) !== undefined;
  }

  /** The next candidate and its range, or undefined once every address was offered. */
  next(): { ip: Ip; range: IpRange } | undefined {
    for (;;) {
      let r = this.set[this.rangeIdx] as IpRange;
      if (this.cur === undefined) {
        this.cur = r.rangeStart;
        this.startIp = this.cur;
        if (this.skip(r, this.cur)) continue;
        return { ip: this.cur, range: r };
      }
      if (ipEquals(this.cur, r.rangeEnd)) {
        this.rangeIdx = (this.rangeIdx + 1) % this.set.length;
        r = this.set[this.rangeIdx] as IpRange;
        this.cur = r.rangeStart;
      } else {
        this.cur = nextIp(this.cur);
      }
      if (this.startIp === undefined) this.startIp = this.cur;
      else if (ipEquals(this.cur, this.startIp)) return undefined;
      if (this.skip(r, this.cur)) continue;
      return { ip: this.cur, range: r };
    }
  }
}

function toIpConfig(ip: Ip, r: IpRange): IpConfig {
  return { address: formatCidr(ip, r.subnet.prefix), gateway: formatIp(r.gateway) };
}

/** Allocate one address from one range set (the reference's IPAllocator.Get). */
export function allocateFromSet(
  store: Store,
  set: RangeSet,
  setIndex: number,
  id: string,
  ifname: string,
  requested: Ip | undefined,
): { ip: Ip; config: IpConfig } {
  if (requested) {
    const r = rangeFor(set, requested);
    if (!r) throw new CniError(ErrorCode.InvalidNetworkConfig, `${formatIp(requested)} not in range set ${rangeSetToString(set)}`);
    // The gateway keeps the reference's message; the other addresses no pod may have say which and why.
    if (ipEquals(requested, r.gateway)) throw new CniError(ErrorCode.InvalidNetworkConfig, `requested ip ${formatIp(requested)} is subnet's gateway`);
    const why = neverAllocatedReason(r.subnet, r.gateway, requested);
    if (why) throw new CniError(ErrorCode.InvalidNetworkConfig, `requested ip ${formatIp(requested)} ${why}`);
    if (!store.reserve(id, ifname, requested, setIndex)) {
      throw new CniError(ErrorCode.Internal, `requested IP address ${formatIp(requested)} is not available in range set ${rangeSetToString(set)}`);
    }
    return { ip: requested, config: toIpConfig(requested, r) };
  }
  // The spec forbids a second allocation for the same attachment.
  for (const held of store.getByAttachment(id, ifname)) {
    if (rangeSetContains(set, held)) {
      throw new CniError(ErrorCode.Internal, `${formatIp(held)} has been allocated to ${id}, duplicate allocation is not allowed`);
    }
  }
  const iter = new RangeIterator(set, store.lastReservedIp(setIndex));
  for (let c = iter.next(); c; c = iter.next()) {
    if (store.reserve(id, ifname, c.ip, setIndex)) return { ip: c.ip, config: toIpConfig(c.ip, c.range) };
  }
  throw new CniError(ErrorCode.NotAvailable, `no IP addresses available in range set: ${rangeSetToString(set)}`);
}

/**
 * Assign requested IPs to sets before anything is reserved: the first
 * requested address contained in a set goes to that set. Leftovers are an
 * error raised before any state changes.
 */
export function assignRequestedIps(cfg: HostLocalConfig): Array<Ip | undefined> {
  const remaining = [...cfg.requestedIps];
  const out = cfg.rangeSets.map((set) => {
    const i = remaining.findIndex((ip) => rangeSetContains(set, ip));
    if (i < 0) return undefined;
    const [ip] = remaining.splice(i, 1);
    return ip;
  });
  for (const ip of remaining) {
    // Outside every range because no pod may have it: say which address and why.
    for (const r of cfg.rangeSets.flat()) {
      const why = cidrContains(r.subnet, ip) && !ipEquals(ip, r.gateway) ? neverAllocatedReason(r.subnet, undefined, ip) : undefined;
      if (why) throw new CniError(ErrorCode.InvalidNetworkConfig, `requested ip ${formatIp(ip)} ${why}`);
    }
  }
  if (remaining.length) {
    throw new CniError(ErrorCode.InvalidNetworkConfig, `failed to allocate all requested IPs: ${remaining.map(formatIp).join(' ')}`);
  }
  return out;
}

/** ADD: one address per range set; on failure everything reserved so far is released. */
export function allocateAll(store: Store, cfg: HostLocalConfig, id: string, ifname: string): IpConfig[] {
  const requested = assignRequestedIps(cfg);
  const got: Ip[] = [];
  const configs: IpConfig[] = [];
  try {
    cfg.rangeSets.forEach((set, idx) => {
      try {
        const { ip, config } = allocateFromSet(store, set, idx, id, ifname, requested[idx]);
        got.push(ip);
        configs.push(config);
      } catch (e) {
        if (e instanceof CniError) throw new CniError(e.code, `failed to allocate for range ${idx}: ${e.msg}`, e.details);
        throw e;
      }
    });
  } catch (e) {
    if (got.length) store.releaseIps(id, ifname, got);
    throw e;
  }
  return configs;
}

/** Number of allocatable addresses of a range (gateway and IPv4 broadcast excluded). */
export function rangeCapacity(r: IpRange): bigint {
  let n = r.rangeEnd.value - r.rangeStart.value + 1n;
  const excluded = [r.gateway, r.subnet.ip, ...(r.subnet.ip.family === 4 ? [lastAddress(r.subnet)] : [])];
  const distinct = excluded.filter((ip, i) => excluded.findIndex((x) => ipEquals(x, ip)) === i);
  for (const ip of distinct) if (rangeContains(r, ip)) n -= 1n;
  return n;
}

/**
 * STATUS: the indexes of range sets with no free address left, given the
 * addresses currently taken (reservations that block allocation).
 */
export function exhaustedSets(cfg: HostLocalConfig, taken: Iterable<Ip>): number[] {
  const used = cfg.rangeSets.map(() => 0n);
  const seen = new Set<string>();
  for (const ip of taken) {
    const key = `${ip.family}/${ip.value}`;
    if (seen.has(key)) continue;
    seen.add(key);
    cfg.rangeSets.forEach((set, i) => {
      const r = rangeFor(set, ip);
      if (r && !neverAllocatedReason(r.subnet, r.gateway, ip)) used[i] = (used[i] as bigint) + 1n;
    });
  }
  const out: number[] = [];
  cfg.rangeSets.forEach((set, i) => {
    const cap = set.reduce((acc, r) => acc + rangeCapacity(r), 0n);
    if ((used[i] as bigint) >= cap) out.push(i);
  });
  return out;
}
