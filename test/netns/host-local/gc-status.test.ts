import { afterAll, afterEach, beforeEach, describe, expect, it } from 'vitest';
import { mkdirSync, utimesSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { indexLines, ipsOf, listNet, NET, netConf, removeDir, reservations, run, runOk, stopNetns, tempDataDir } from './helpers.ts';

let dir: string;
beforeEach(() => {
  dir = tempDataDir();
});
afterEach(() => removeDir(dir));
afterAll(() => stopNetns());

const V = '1.1.0';
const old = new Date(Date.now() - 60_000);

describe('host-local GC', () => {
  it('releases every reservation not in valid-attachments; legacy records count by container ID', () => {
    const ipam = { ranges: [[{ subnet: '10.240.0.0/24' }], [{ subnet: 'fd10:240::/64' }]] };
    const config = netConf(dir, ipam, {}, V);
    const net = join(dir, NET);
    mkdirSync(net);
    writeFileSync(join(net, '10.240.0.100'), 'legacy-keep');
    writeFileSync(join(net, '10.240.0.101'), 'legacy-drop');
    writeFileSync(join(net, '10.240.0.102'), '');
    utimesSync(join(net, '10.240.0.102'), old, old);
    runOk({ command: 'ADD', containerId: 'a', config });
    runOk({ command: 'ADD', containerId: 'b', config });
    runOk({ command: 'ADD', containerId: 'b', ifname: 'net1', config });
    writeFileSync(join(net, '10.240.0.103'), ''); // fresh: may be a reference ADD in progress
    writeFileSync(join(net, '.tscni-tmp-r-0123'), 'b\r\neth0'); // a crashed writer's temp
    writeFileSync(join(net, 'unrelated.txt'), 'not ours');

    const gc = run({
      command: 'GC',
      config: { ...config, 'cni.dev/valid-attachments': [{ containerID: 'a', ifname: 'eth0' }, { containerID: 'legacy-keep', ifname: 'eth7' }] },
    });
    expect(gc.code, gc.stdout).toBe(0);
    expect(gc.stdout).toBe('');
    expect(reservations(dir)).toEqual({
      '10.240.0.2': 'a\r\neth0',
      'fd10:240::2': 'a\r\neth0',
      '10.240.0.100': 'legacy-keep',
      '10.240.0.103': '',
      'unrelated.txt': 'not ours',
    });
    const ours = listNet(dir).filter((n) => n.startsWith('.tscni-'));
    expect(ours.filter((n) => n.startsWith('.tscni-tmp-'))).toEqual([]);
    expect(indexLines(dir)).toEqual(['10.240.0.100 legacy-keep', '10.240.0.2 a eth0', 'fd10:240::2 a eth0']);
    expect(listNet(dir, true)).toEqual(expect.arrayContaining(['lock', 'last_reserved_ip.0', 'last_reserved_ip.1']));
    // The survivors are still found by DEL through the index.
    runOk({ command: 'DEL', containerId: 'a', config });
    runOk({ command: 'DEL', containerId: 'legacy-keep', config });
    expect(Object.keys(reservations(dir)).sort()).toEqual(['10.240.0.103', 'unrelated.txt']);
  });

  it.each([[[]], [null]])('an empty list (%j) releases everything of the network', (valid) => {
    const config = netConf(dir, { ranges: [[{ subnet: '10.240.0.0/24' }]] }, {}, V);
    for (const id of ['x', 'y', 'z']) runOk({ command: 'ADD', containerId: id, config });
    runOk({ command: 'GC', config: { ...config, 'cni.dev/valid-attachments': valid } });
    expect(reservations(dir)).toEqual({});
    expect(listNet(dir).filter((n) => n.startsWith('.tscni-idx-'))).toEqual([]);
    // Everything is allocatable again (round-robin continues after the last one).
    expect(ipsOf(runOk({ command: 'ADD', containerId: 'w', config }))).toEqual(['10.240.0.5/24']);
  });

  it('a network that never existed is fine; bad input is code 7; old versions are refused', () => {
    const config = netConf(join(dir, 'none'), { ranges: [[{ subnet: '10.240.0.0/24' }]] }, {}, V);
    runOk({ command: 'GC', config: { ...config, 'cni.dev/valid-attachments': [] } });
    const bad = run({ command: 'GC', config: { ...config, 'cni.dev/valid-attachments': [{ containerID: 5 }] } });
    expect(bad.json).toEqual({ cniVersion: V, code: 7, msg: 'cni.dev/valid-attachments[0]: needs "containerID" and "ifname" strings' });
    const v100 = run({ command: 'GC', config: netConf(dir, { ranges: [[{ subnet: '10.240.0.0/24' }]] }, {}, '1.0.0') });
    expect(v100.json?.code).toBe(1);
  });
});

describe('host-local STATUS', () => {
  it('0 while every set has room; 50 naming the exhausted set; 0 again after DEL', () => {
    const config = netConf(dir, { ranges: [[{ subnet: 'fd10:240::/64' }], [{ subnet: '10.240.0.0/30' }]] }, {}, V);
    runOk({ command: 'STATUS', config });
    runOk({ command: 'ADD', config });
    const st = run({ command: 'STATUS', config });
    expect(st.code).toBe(1);
    expect(st.json).toEqual({ cniVersion: V, code: 50, msg: 'no IP addresses available in range set 1 (10.240.0.1-10.240.0.2)' });
    runOk({ command: 'DEL', config });
    runOk({ command: 'STATUS', config });
  });

  it('an old empty reservation does not count (ADD would reclaim it); a fresh one does', () => {
    const config = netConf(dir, { ranges: [[{ subnet: '10.240.0.0/30' }]] }, {}, V);
    mkdirSync(join(dir, NET));
    const f = join(dir, NET, '10.240.0.2');
    writeFileSync(f, '');
    expect(run({ command: 'STATUS', config }).json?.code).toBe(50);
    utimesSync(f, old, old);
    runOk({ command: 'STATUS', config });
  });

  it('is refused below 1.1.0', () => {
    const out = run({ command: 'STATUS', config: netConf(dir, { ranges: [[{ subnet: '10.240.0.0/30' }]] }, {}, '1.0.0') });
    expect(out.json?.code).toBe(1);
  });
});
