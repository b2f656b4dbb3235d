import { describe, expect, it } from 'vitest';
import type { HeldSubnet } from '../../../ipam/etcd-subnet/lease.ts';
import { configFromLease } from '../../../plugins/vxlan/agent.ts';
import { parseVxlanConfig } from '../../../plugins/vxlan/config.ts';
import { diffEntries, planEntries, type CurrentEntries } from '../../../plugins/vxlan/plan.ts';
import type { NetConf } from '../../../lib/cni/types.ts';
import { parseCidr, type Cidr } from '../../../lib/ip/cidr.ts';
import { cniErrorOf } from '../../helpers/errors.ts';

const cidr = (s: string) => parseCidr(s) as Cidr;
const CLUSTER = cidr('10.252.128.0/17');
const held = (subnet: string, hostId: string, publicIp?: string, vtepMac = `0a:58:0a:fc:${Number(subnet.split('.')[2]).toString(16)}:00`): HeldSubnet => ({
  subnet: cidr(subnet),
  record: { hostId, vtepMac, ...(publicIp ? { publicIp } : {}) },
  leaseId: '1',
});

const HELD = [held('10.252.129.0/24', 'a', '172.31.250.11'), held('10.252.130.0/24', 'b', '172.31.250.12'), held('10.252.131.0/24', 'c')];

describe('vxlan entries plan', () => {
  it('one route, one ARP and one FDB entry per other host; ourselves and hosts without an underlay address skipped', () => {
    expect(planEntries('10.252.129.0/24', HELD)).toEqual([{ subnet: '10.252.130.0/24', gw: '10.252.130.0', mac: '0a:58:0a:fc:82:00', dst: '172.31.250.12' }]);
  });

  it('from nothing: everything to put, nothing to delete; once applied, a second diff is empty (idempotent)', () => {
    const want = planEntries('10.252.128.0/24', HELD);
    const empty: CurrentEntries = { routes: [], neighs: [], fdb: [] };
    expect(diffEntries(want, empty, CLUSTER)).toEqual({ put: want, delRoutes: [], delNeighs: [], delFdb: [] });
    const applied: CurrentEntries = {
      routes: want.map((w) => ({ dst: w.subnet, gateway: w.gw })),
      neighs: want.map((w) => ({ family: 2, index: 5, state: 0x80, flags: 0, dst: w.gw, mac: w.mac })),
      fdb: want.map((w) => ({ family: 7, index: 5, state: 0xc0, flags: 2, dst: w.dst, mac: w.mac })),
    };
    expect(diffEntries(want, applied, CLUSTER)).toEqual({ put: [], delRoutes: [], delNeighs: [], delFdb: [] });
  });

  it('a host gone: its route, ARP and FDB entries go; routes outside the cluster CIDR and link routes stay', () => {
    const cur: CurrentEntries = {
      routes: [
        { dst: '10.252.130.0/24', gateway: '10.252.130.0' },
        { dst: '192.168.0.0/24', gateway: '10.252.130.0' },
        { dst: '10.252.128.0/24' },
      ],
      neighs: [{ family: 2, index: 5, state: 0x80, flags: 0, dst: '10.252.130.0', mac: '0a:58:0a:fc:82:00' }],
      fdb: [
        { family: 7, index: 5, state: 0xc0, flags: 2, dst: '172.31.250.12', mac: '0a:58:0a:fc:82:00' },
        { family: 7, index: 5, state: 0xc0, flags: 2, mac: '0a:58:0a:fc:82:00' },
      ],
    };
    expect(diffEntries([], cur, CLUSTER)).toEqual({ put: [], delRoutes: ['10.252.130.0/24'], delNeighs: ['10.252.130.0'], delFdb: [{ mac: '0a:58:0a:fc:82:00', dst: '172.31.250.12' }] });
  });

  it('a host that moved to another underlay address: its entries are put again and the old FDB entry goes', () => {
    const want = planEntries('10.252.128.0/24', [held('10.252.130.0/24', 'b', '172.31.250.99')]);
    const cur: CurrentEntries = {
      routes: [{ dst: '10.252.130.0/24', gateway: '10.252.130.0' }],
      neighs: [{ family: 2, index: 5, state: 0x80, flags: 0, dst: '10.252.130.0', mac: '0a:58:0a:fc:82:00' }],
      fdb: [{ family: 7, index: 5, state: 0xc0, flags: 2, dst: '172.31.250.12', mac: '0a:58:0a:fc:82:00' }],
    };
    const d = diffEntries(want, cur, CLUSTER);
    expect(d.put).toEqual(want);
    expect(d.delFdb).toEqual([{ mac: '0a:58:0a:fc:82:00', dst: '172.31.250.12' }]);
    expect(d.delRoutes).toEqual([]);
  });
});

describe('vxlan config', () => {
  const conf = (extra: Record<string, unknown>): NetConf => ({ cniVersion: '1.1.0', name: 'ov', type: 'vxlan', ...extra });
  it('defaults: VNI 1, port 4789, device tscni.<vni>, the IPAM default dataDir, agent on', () => {
    expect(parseVxlanConfig(conf({}))).toEqual({ network: 'ov', cniVersion: '1.1.0', vni: 1, port: 4789, device: 'tscni.1', dataDir: '/var/lib/cni/etcd-subnet', agent: true });
    expect(parseVxlanConfig(conf({ vni: 4096 })).device).toBe('tscni.4096');
  });
  it.each([
    [{ vni: 0 }, 'vni'],
    [{ vni: 16_777_216 }, 'vni'],
    [{ port: 70_000 }, 'port'],
    [{ device: 'way-too-long-name0' }, 'device'],
    [{ dataDir: 'x' }, 'dataDir'],
    [{ agent: 'yes' }, 'agent'],
  ])('rejects %j', (extra, field) => {
    const e = cniErrorOf(() => parseVxlanConfig(conf(extra)));
    expect(e.code).toBe(7);
    expect(e.msg).toContain(field);
  });

  it('the agent rebuilds the IPAM config from a saved lease (to take the subnet again)', () => {
    const c = configFromLease(
      { network: 'ov', hostId: 'h', subnet: '10.252.130.0/24', clusterCIDR: '10.252.128.0/17', leaseId: '7', leaseTTL: 9, publicIp: '172.31.250.12', vtepMac: '0a:58:0a:fc:82:00', etcd: { endpoints: ['http://e:1'], prefix: '/p/ov' } },
      '/d',
    );
    expect(c).toMatchObject({ network: 'ov', hostId: 'h', subnetLen: 24, leaseTtl: 9, publicIp: '172.31.250.12', dataDir: '/d', etcd: { prefix: '/p/ov' } });
    expect(c.clusterCidr).toEqual(CLUSTER);
  });
});
