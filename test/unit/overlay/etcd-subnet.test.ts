import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { parseEtcdSubnetConfig } from '../../../ipam/etcd-subnet/config.ts';
import { embeddedProtoFor, etcdError, isUnavailable } from '../../../ipam/etcd-subnet/etcd-client.ts';
import { ETCD3_PROTOS } from '../../../ipam/etcd-subnet/etcd3-protos.ts';
import { hostLocalConfigFor } from '../../../ipam/etcd-subnet/plugin.ts';
import { candidateOrder, cidrKey, decodeRecord, encodeRecord, nthSubnet, subnetCount, subnetFromKey, subnetKey, vtepMacFor } from '../../../ipam/etcd-subnet/subnets.ts';
import type { NetConf } from '../../../lib/cni/types.ts';
import { parseCidr, type Cidr } from '../../../lib/ip/cidr.ts';
import { cniErrorOf } from '../../helpers/errors.ts';

const cidr = (s: string) => parseCidr(s) as Cidr;
const netConf = (ipam: Record<string, unknown>, name = 'ov'): NetConf => ({ cniVersion: '1.1.0', name, type: 'bridge', ipam: { type: 'etcd-subnet', ...ipam } });
const ETCD = { endpoints: ['http://127.0.0.1:2379'] };

describe('etcd-subnet config', () => {
  it('defaults: /24 subnets, 60 s TTL, hostname as host id, prefix per network', () => {
    const c = parseEtcdSubnetConfig(netConf({ etcd: ETCD, clusterCIDR: '10.252.128.0/17' }), 'node-x');
    expect(c).toMatchObject({ network: 'ov', subnetLen: 24, leaseTtl: 60, hostId: 'node-x', dataDir: '/var/lib/cni/etcd-subnet', routes: [] });
    expect(c.etcd).toEqual({ endpoints: ['http://127.0.0.1:2379'], prefix: '/tscni/overlay/ov' });
    expect(cidrKey(c.clusterCidr)).toBe('10.252.128.0/17');
  });

  it('TLS files and https endpoints', () => {
    const c = parseEtcdSubnetConfig(netConf({ etcd: { endpoints: ['https://e1:2379/', 'https://e2:2379'], caFile: '/ca', certFile: '/c', keyFile: '/k', prefix: '/p/' }, clusterCIDR: '10.0.0.0/16' }));
    expect(c.etcd).toEqual({ endpoints: ['https://e1:2379', 'https://e2:2379'], caFile: '/ca', certFile: '/c', keyFile: '/k', prefix: '/p/ov' });
    const ip = parseEtcdSubnetConfig(netConf({ etcd: { endpoints: ['https://10.0.0.5:2379'], caFile: '/ca', serverName: 'etcd.example' }, clusterCIDR: '10.0.0.0/16' }));
    expect(ip.etcd.serverName).toBe('etcd.example');
  });

  it.each([
    [{ clusterCIDR: '10.0.0.0/16' }, 'ipam.etcd'],
    [{ etcd: { endpoints: [] }, clusterCIDR: '10.0.0.0/16' }, 'ipam.etcd.endpoints'],
    [{ etcd: { endpoints: ['127.0.0.1:2379'] }, clusterCIDR: '10.0.0.0/16' }, 'ipam.etcd.endpoints[0]'],
    [{ etcd: { endpoints: ['http://e:2379'], caFile: '/ca' }, clusterCIDR: '10.0.0.0/16' }, 'must be https'],
    [{ etcd: { endpoints: ['https://e:2379'], certFile: '/c' }, clusterCIDR: '10.0.0.0/16' }, 'certFile and keyFile'],
    [{ etcd: { endpoints: ['https://10.0.0.5:2379'], caFile: '/ca' }, clusterCIDR: '10.0.0.0/16' }, 'ipam.etcd.serverName: is required for the TLS endpoint https://10.0.0.5:2379'],
    [{ etcd: { endpoints: ['https://e:2379'], serverName: 'a b' }, clusterCIDR: '10.0.0.0/16' }, 'ipam.etcd.serverName'],
    [{ etcd: ETCD }, 'ipam.clusterCIDR: is required'],
    [{ etcd: ETCD, clusterCIDR: 'fd00::/64' }, 'IPv4'],
    [{ etcd: ETCD, clusterCIDR: '10.0.0.1/16' }, 'host bits'],
    [{ etcd: ETCD, clusterCIDR: '10.0.0.0/24' }, 'ipam.subnetLen'],
    [{ etcd: ETCD, clusterCIDR: '10.0.0.0/8', subnetLen: 28 }, 'more than 65536'],
    [{ etcd: ETCD, clusterCIDR: '10.0.0.0/16', leaseTTL: 1 }, 'ipam.leaseTTL'],
    [{ etcd: ETCD, clusterCIDR: '10.0.0.0/16', publicIp: 'x' }, 'ipam.publicIp'],
    [{ etcd: ETCD, clusterCIDR: '10.0.0.0/16', hostId: 'a b' }, 'ipam.hostId'],
    [{ etcd: ETCD, clusterCIDR: '10.0.0.0/16', dataDir: 'rel' }, 'ipam.dataDir'],
  ])('rejects %j (code 7, names %s)', (ipam, field) => {
    const e = cniErrorOf(() => parseEtcdSubnetConfig(netConf(ipam), 'h'));
    expect(e.code).toBe(7);
    expect(e.msg).toContain(field);
  });

  it('the host-local config: one range (the subnet), same dataDir, cluster route first', () => {
    const conf = netConf({ etcd: ETCD, clusterCIDR: '10.252.128.0/17', dataDir: '/d', routes: [{ dst: '0.0.0.0/0' }] });
    const c = parseEtcdSubnetConfig(conf, 'h');
    expect(hostLocalConfigFor(conf, c, '10.252.130.0/24').ipam).toEqual({
      type: 'host-local',
      ranges: [[{ subnet: '10.252.130.0/24' }]],
      dataDir: '/d',
      routes: [{ dst: '10.252.128.0/17' }, { dst: '0.0.0.0/0' }],
    });
  });
});

describe('etcd-subnet keys and records', () => {
  const cluster = cidr('10.252.128.0/17');
  it('keys round-trip and foreign keys are ignored', () => {
    const s = cidr('10.252.131.0/24');
    expect(subnetKey('/p/ov', s)).toBe('/p/ov/subnets/10.252.131.0-24');
    expect(cidrKey(subnetFromKey('/p/ov', '/p/ov/subnets/10.252.131.0-24') as Cidr)).toBe('10.252.131.0/24');
    expect(subnetFromKey('/p/ov', '/p/other/subnets/10.252.131.0-24')).toBeUndefined();
    expect(subnetFromKey('/p/ov', '/p/ov/subnets/junk')).toBeUndefined();
  });

  it('the range holds 2^(len-prefix) subnets; the order covers each free one once, starting from the host hash', () => {
    expect(subnetCount(cluster, 24)).toBe(128);
    expect(cidrKey(nthSubnet(cluster, 24, 127))).toBe('10.252.255.0/24');
    const taken = new Set(['10.252.128.0/24', '10.252.200.0/24']);
    const order = candidateOrder(cluster, 24, 'node-a', taken).map(cidrKey);
    expect(order).toHaveLength(126);
    expect(new Set(order).size).toBe(126);
    expect(order).not.toContain('10.252.200.0/24');
    expect(candidateOrder(cluster, 24, 'node-a', new Set())[0]).toEqual(candidateOrder(cluster, 24, 'node-a', new Set())[0]);
    expect(cidrKey(candidateOrder(cluster, 24, 'node-a', new Set())[0] as Cidr)).not.toBe(cidrKey(candidateOrder(cluster, 24, 'node-b', new Set())[0] as Cidr));
  });

  it('VTEP MAC from the subnet; records decode only when they are ours', () => {
    expect(vtepMacFor(cidr('10.252.131.0/24'))).toBe('0a:58:0a:fc:83:00');
    const r = { hostId: 'a', publicIp: '172.31.250.2', vtepMac: '0a:58:0a:fc:83:00' };
    expect(decodeRecord(encodeRecord(r))).toEqual(r);
    expect(decodeRecord('{"hostId":1}')).toBeUndefined();
    expect(decodeRecord('nope')).toBeUndefined();
  });
});

describe('etcd client', () => {
  it('the embedded .proto files are the installed etcd3 package\'s', () => {
    const dir = join(import.meta.dirname, '..', '..', '..', 'node_modules', 'etcd3', 'proto');
    for (const f of ['rpc.proto', 'kv.proto', 'auth.proto']) expect(ETCD3_PROTOS[f]).toBe(readFileSync(join(dir, f), 'utf8'));
  });

  it('serves an embedded proto only for etcd3\'s proto paths that are missing on disk', () => {
    expect(embeddedProtoFor('/$bunfs/root/node_modules/etcd3/proto/rpc.proto', () => false)).toBe(ETCD3_PROTOS['rpc.proto']);
    expect(embeddedProtoFor('/x/node_modules/etcd3/proto/rpc.proto', () => true)).toBeUndefined();
    expect(embeddedProtoFor('/x/other/proto/rpc.proto', () => false)).toBeUndefined();
    expect(embeddedProtoFor('/x/etcd3/proto/none.proto', () => false)).toBeUndefined();
  });

  it('unreachable -> 11 naming the endpoints; anything else -> 999', () => {
    const cfg = { endpoints: ['http://a:1', 'http://b:2'], prefix: '/p' };
    const e = etcdError(new Error('14 UNAVAILABLE: No connection established'), cfg, 'leasing');
    expect(e.code).toBe(11);
    expect(e.msg).toBe('etcd unreachable at http://a:1, http://b:2 while leasing: try again later');
    expect(isUnavailable(new Error('permission denied'))).toBe(false);
    expect(etcdError(new Error('permission denied'), cfg, 'x').code).toBe(999);
  });
});
