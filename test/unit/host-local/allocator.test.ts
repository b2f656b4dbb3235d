import { describe, expect, it } from 'vitest';
import { cniErrorOf } from '../../helpers/errors.ts';
import type { NetConf } from '../../../lib/cni/types.ts';
import { formatIp, parseIp, type Ip } from '../../../lib/ip/cidr.ts';
import { allocateAll, exhaustedSets, RangeIterator } from '../../../ipam/host-local/allocator.ts';
import { ownerIsValid, parseOwner } from '../../../ipam/host-local/reservation-files.ts';
import { parseHostLocalConfig, type HostLocalConfig } from '../../../ipam/host-local/config.ts';
import { MemoryStore } from './memory-store.ts';

function cfg(ranges: unknown[], cniArgs = '', extra: Record<string, unknown> = {}): HostLocalConfig {
  return parseHostLocalConfig({ cniVersion: '1.0.0', name: 'n', type: 'x', ipam: { type: 'host-local', ranges }, ...extra } as NetConf, cniArgs);
}

const err = cniErrorOf;

const ip = (s: string) => parseIp(s) as Ip;

describe('RangeIterator (reference round-robin)', () => {
  it('starts at rangeStart, skips the gateway, walks every range once', () => {
    const c = cfg([[{ subnet: '10.240.0.0/29' }, { subnet: '10.240.1.0/30' }]]);
    const it = new RangeIterator(c.rangeSets[0]!, undefined);
    const seen: string[] = [];
    for (let n = it.next(); n; n = it.next()) seen.push(formatIp(n.ip));
    expect(seen).toEqual(['10.240.0.2', '10.240.0.3', '10.240.0.4', '10.240.0.5', '10.240.0.6', '10.240.1.2']);
  });

  it('continues after the last reserved IP and wraps', () => {
    const c = cfg([[{ subnet: '10.240.0.0/29' }]]);
    const it = new RangeIterator(c.rangeSets[0]!, ip('10.240.0.4'));
    const seen: string[] = [];
    for (let n = it.next(); n; n = it.next()) seen.push(formatIp(n.ip));
    expect(seen).toEqual(['10.240.0.5', '10.240.0.6', '10.240.0.2', '10.240.0.3', '10.240.0.4']);
  });

  it('ignores a last reserved IP outside the set', () => {
    const c = cfg([[{ subnet: '10.240.0.0/29' }]]);
    expect(formatIp(new RangeIterator(c.rangeSets[0]!, ip('10.240.9.9')).next()!.ip)).toBe('10.240.0.2');
  });

  it('never offers a gateway placed inside the range or the v4 broadcast', () => {
    const c = cfg([[{ subnet: '10.240.0.0/29', gateway: '10.240.0.4' }]]);
    const it = new RangeIterator(c.rangeSets[0]!, undefined);
    const seen: string[] = [];
    for (let n = it.next(); n; n = it.next()) seen.push(formatIp(n.ip));
    expect(seen).toEqual(['10.240.0.1', '10.240.0.2', '10.240.0.3', '10.240.0.5', '10.240.0.6']);
  });
});

describe('allocateAll', () => {
  it('allocates round-robin and records the last reserved IP per set', () => {
    const store = new MemoryStore();
    const c = cfg([[{ subnet: '10.240.0.0/29' }], [{ subnet: 'fd10:240::/120' }]]);
    expect(allocateAll(store, c, 'c1', 'eth0')).toEqual([
      { address: '10.240.0.2/29', gateway: '10.240.0.1' },
      { address: 'fd10:240::2/120', gateway: 'fd10:240::1' },
    ]);
    expect(allocateAll(store, c, 'c2', 'eth0').map((x) => x.address)).toEqual(['10.240.0.3/29', 'fd10:240::3/120']);
    expect([store.last.get(0), store.last.get(1)]).toEqual(['10.240.0.3', 'fd10:240::3']);
    // A released address is not reused before the range wrapped.
    store.releaseIps('c1', 'eth0', [ip('10.240.0.2'), ip('fd10:240::2')]);
    expect(allocateAll(store, c, 'c3', 'eth0').map((x) => x.address)).toEqual(['10.240.0.4/29', 'fd10:240::4/120']);
  });

  it('refuses a second allocation for the same container+ifname, including legacy id-only records', () => {
    const store = new MemoryStore();
    const c = cfg([[{ subnet: '10.240.0.0/29' }]]);
    allocateAll(store, c, 'c1', 'eth0');
    const e = err(() => allocateAll(store, c, 'c1', 'eth0'));
    expect(e.msg).toBe('failed to allocate for range 0: 10.240.0.2 has been allocated to c1, duplicate allocation is not allowed');
    expect(allocateAll(store, c, 'c1', 'eth1')).toHaveLength(1);
    store.files.set('10.240.0.6', 'old');
    expect(err(() => allocateAll(store, c, 'old', 'eth0')).msg).toContain('10.240.0.6 has been allocated to old');
  });

  it('hands out a requested IP, and refuses the gateway or a taken one', () => {
    const store = new MemoryStore();
    const c = cfg([[{ subnet: '10.240.0.0/29' }]], 'IP=10.240.0.5');
    expect(allocateAll(store, c, 'c1', 'eth0')[0]!.address).toBe('10.240.0.5/29');
    let e = err(() => allocateAll(store, c, 'c2', 'eth0'));
    expect(e.msg).toBe('failed to allocate for range 0: requested IP address 10.240.0.5 is not available in range set 10.240.0.1-10.240.0.6');
    e = err(() => allocateAll(store, cfg([[{ subnet: '10.240.0.0/29' }]], 'IP=10.240.0.1'), 'c3', 'eth0'));
    expect([e.code, e.msg]).toEqual([7, "failed to allocate for range 0: requested ip 10.240.0.1 is subnet's gateway"]);
    // Addresses no pod may have are refused on every path (CNI_ARGS here; args.cni.ips and runtimeConfig.ips feed the same list).
    e = err(() => allocateAll(store, cfg([[{ subnet: '10.240.0.0/29' }]], 'IP=10.240.0.0'), 'c4', 'eth0'));
    expect([e.code, e.msg]).toEqual([7, 'requested ip 10.240.0.0 is the network address of 10.240.0.0/29']);
    e = err(() => allocateAll(store, cfg([[{ subnet: '10.240.0.0/29' }]], 'IP=10.240.0.7'), 'c5', 'eth0'));
    expect([e.code, e.msg]).toEqual([7, 'requested ip 10.240.0.7 is the broadcast address of 10.240.0.0/29']);
    e = err(() => allocateAll(store, cfg([[{ subnet: 'fd10:240::/120' }]], 'IP=fd10:240::'), 'c6', 'eth0'));
    expect([e.code, e.msg]).toEqual([7, 'requested ip fd10:240:: is the subnet-router anycast address of fd10:240::/120']);
    expect([...store.files.keys()]).toEqual(['10.240.0.5']);
  });

  it('fails before reserving anything when a requested IP fits no set', () => {
    const store = new MemoryStore();
    const c = cfg([[{ subnet: '10.240.0.0/29' }], [{ subnet: 'fd10:240::/120' }]], 'IP=10.240.0.3,10.240.9.9');
    const e = err(() => allocateAll(store, c, 'c1', 'eth0'));
    expect([e.code, e.msg]).toEqual([7, 'failed to allocate all requested IPs: 10.240.9.9']);
    expect(store.files.size).toBe(0);
  });

  it('two requested IPs in one set: the second is left over', () => {
    const c = cfg([[{ subnet: '10.240.0.0/29' }]], 'IP=10.240.0.3,10.240.0.4');
    expect(err(() => allocateAll(new MemoryStore(), c, 'c1', 'eth0')).msg).toBe('failed to allocate all requested IPs: 10.240.0.4');
  });

  it('exhaustion names the ranges, has code 50 and releases what was taken in earlier sets', () => {
    const store = new MemoryStore();
    const c = cfg([[{ subnet: 'fd10:240::/120' }], [{ subnet: '10.240.0.0/30' }]]);
    allocateAll(store, c, 'c1', 'eth0');
    const e = err(() => allocateAll(store, c, 'c2', 'eth0'));
    expect([e.code, e.msg]).toEqual([50, 'failed to allocate for range 1: no IP addresses available in range set: 10.240.0.1-10.240.0.2']);
    expect([...store.files.keys()].sort()).toEqual(['10.240.0.2', 'fd10:240::2']);
  });
});

describe('STATUS and GC helpers', () => {
  it('reports exactly the exhausted sets', () => {
    const c = cfg([[{ subnet: '10.240.0.0/30' }], [{ subnet: 'fd10:240::/126' }]]);
    expect(exhaustedSets(c, [])).toEqual([]);
    expect(exhaustedSets(c, [ip('10.240.0.2')])).toEqual([0]);
    expect(exhaustedSets(c, [ip('10.240.0.2'), ip('fd10:240::2'), ip('fd10:240::3')])).toEqual([0, 1]);
    // The gateway or foreign addresses do not count.
    expect(exhaustedSets(c, [ip('10.240.0.1'), ip('10.240.9.9')])).toEqual([]);
  });

  it('classifies reservation contents', () => {
    expect(parseOwner('c1\r\neth0')).toEqual({ kind: 'attachment', id: 'c1', ifname: 'eth0' });
    expect(parseOwner(' c1 \n')).toEqual({ kind: 'legacy', id: 'c1' });
    expect(parseOwner('')).toEqual({ kind: 'garbled' });
    expect(parseOwner('\u0000\u0000')).toEqual({ kind: 'garbled' });
    expect(parseOwner('c1\r\n')).toEqual({ kind: 'legacy', id: 'c1' });
    expect(parseOwner('c 1\r\neth0')).toEqual({ kind: 'garbled' });
  });

  it('judges owners against valid attachments (legacy by container ID)', () => {
    const valid = [{ containerID: 'c1', ifname: 'eth0' }];
    expect(ownerIsValid({ kind: 'attachment', id: 'c1', ifname: 'eth0' }, valid)).toBe(true);
    expect(ownerIsValid({ kind: 'attachment', id: 'c1', ifname: 'eth1' }, valid)).toBe(false);
    expect(ownerIsValid({ kind: 'legacy', id: 'c1' }, valid)).toBe(true);
    expect(ownerIsValid({ kind: 'legacy', id: 'c2' }, valid)).toBe(false);
    expect(ownerIsValid({ kind: 'garbled' }, valid)).toBe(false);
  });
});
