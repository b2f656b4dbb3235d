/** The firewall/tuning example conflist loads as a list and every plugin config parses. */
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { loadNetworkConf } from '../../../lib/libcni/conf.ts';
import { parseFirewallConfig } from '../../../plugins/firewall/config.ts';
import { parseTuningConfig } from '../../../plugins/tuning/config.ts';

describe('conf-examples/30-tscni-isolated.conflist', () => {
  it('bridge + portmap + firewall (backend detected, same-bridge) + tuning', () => {
    const list = loadNetworkConf(join(import.meta.dirname, '../../../conf-examples'), 'tscni-isolated');
    expect(list.plugins.map((p) => p.type)).toEqual(['bridge', 'portmap', 'firewall', 'tuning']);
    const conf = (i: number) => ({ cniVersion: list.cniVersion, name: list.name, ...list.plugins[i]!.raw }) as Parameters<typeof parseFirewallConfig>[0];
    expect(parseFirewallConfig(conf(2))).toMatchObject({ backend: undefined, policy: 'same-bridge', adminChain: 'CNI-ADMIN' });
    expect(parseTuningConfig(conf(3), '', 'eth0').sysctls).toEqual([{ key: 'net.ipv4.conf.IFNAME.arp_notify', path: 'net/ipv4/conf/eth0/arp_notify', value: '1' }]);
  });
});
