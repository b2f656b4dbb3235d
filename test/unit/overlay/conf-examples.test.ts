/** conf-examples/40-tscni-overlay.conflist loads as a list and the overlay plugins' configs parse. */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { parseEtcdSubnetConfig } from '../../../ipam/etcd-subnet/config.ts';
import { loadNetworkConf } from '../../../lib/libcni/conf.ts';
import { parseVxlanConfig } from '../../../plugins/vxlan/config.ts';
import type { NetConf } from '../../../lib/cni/types.ts';

const DIR = join(import.meta.dirname, '../../../conf-examples');

describe('conf-examples overlay', () => {
  it('40-tscni-overlay.conflist: bridge with etcd-subnet (TLS), vxlan, portmap', () => {
    const list = loadNetworkConf(DIR, 'tscni-overlay');
    expect(list.plugins.map((p) => p.type)).toEqual(['bridge', 'vxlan', 'portmap']);
    const conf = (i: number) => ({ cniVersion: list.cniVersion, name: list.name, ...list.plugins[i]!.raw }) as NetConf;
    expect(parseEtcdSubnetConfig(conf(0), 'node-a')).toMatchObject({ subnetLen: 24, leaseTtl: 60, publicIp: '10.0.0.11', etcd: { caFile: '/etc/etcd/ca.pem', prefix: '/tscni/overlay/tscni-overlay' } });
    expect(parseVxlanConfig(conf(1))).toMatchObject({ vni: 1, device: 'tscni.1', port: 4789 });
    // The bridge's MTU leaves room for the 50 bytes of VXLAN on a 1500-byte underlay.
    expect(list.plugins[0]!.raw.mtu).toBe(1450);
  });

  it('the agent unit runs `tscni overlay agent` for the network named by the instance, with the conflist\'s VNI', () => {
    const unit = readFileSync(join(DIR, 'tscni-overlay@.service'), 'utf8');
    expect(unit).toMatch(/^ExecStart=\/opt\/cni\/bin\/tscni overlay agent --network %i --vni 1$/m);
    expect(unit).toMatch(/^Restart=always$/m);
  });
});
