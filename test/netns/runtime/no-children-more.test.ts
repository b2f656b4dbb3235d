/**
 * ptp, macvlan and static do their link, address, route and sysctl work
 * in-process: no `ip`, `nsenter`, `sysctl` or `bridge` child in ADD, CHECK
 * or DEL. As in no-children.test.ts, logging wrappers with those names come
 * first in PATH; the plugins run inside a fake host namespace (the test's
 * own `ip netns exec` is outside the wrappers). iptables-restore runs for
 * ptp's masquerade and is counted to show the wrappers work. ipvlan, vlan
 * and dummy need kernel drivers this CI kernel lacks (see their tests).
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { BIN_DIR, binPath } from '../../helpers/plugin.ts';
import { watchExecs } from '../../helpers/exec-watch.ts';
import { createNetns, removeAllNetns, type TestNetns } from '../../helpers/netns.ts';

const watch = watchExecs();
const work = mkdtempSync(join(tmpdir(), 'tscni-nochild2-'));

afterAll(() => {
  removeAllNetns();
  rmSync(work, { recursive: true, force: true });
  watch.remove();
});

/** Run a plugin inside `host` (the test's `ip` runs with the real PATH; the plugin gets the wrappers first). */
function call(host: TestNetns, plugin: string, command: string, conf: unknown, ns: string, cid: string) {
  const r = spawnSync('/usr/sbin/ip', ['netns', 'exec', host.name, binPath(plugin)], {
    env: { PATH: watch.path, CNI_COMMAND: command, CNI_CONTAINERID: cid, CNI_NETNS: ns, CNI_IFNAME: 'eth0', CNI_PATH: BIN_DIR },
    input: JSON.stringify(conf),
    encoding: 'utf8',
  });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

const calls = () => watch.calls();

describe('no ip, nsenter, sysctl or bridge child in the new plugins', () => {
  it('ptp (dual-stack, ipMasq) and macvlan + static: ADD, CHECK, DEL', () => {
    const host = createNetns('tvnc');
    const lan = createNetns('tvncl');
    host.exec(['ip', 'link', 'add', 'tvncm0', 'type', 'veth', 'peer', 'name', 'eth0', 'netns', lan.path]);
    host.exec(['ip', 'link', 'set', 'tvncm0', 'up']);
    const [p1, p2] = [createNetns('tvnca'), createNetns('tvncb')];
    const ptp = {
      cniVersion: '1.1.0',
      name: 'tscni-tv-nochild',
      type: 'ptp',
      ipMasq: true,
      ipam: { type: 'host-local', dataDir: join(work, 'ipam'), ranges: [[{ subnet: '10.253.9.0/24' }], [{ subnet: 'fd10:253:9::/64' }]] },
    };
    const mv = {
      cniVersion: '1.1.0',
      name: 'tscni-tv-nochild-mv',
      type: 'macvlan',
      master: 'tvncm0',
      ipam: { type: 'static', addresses: [{ address: '10.253.8.5/24', gateway: '10.253.8.1' }], routes: [{ dst: '10.253.0.0/16' }] },
    };
    for (const [plugin, conf, ns] of [['ptp', ptp, p1.path], ['macvlan', mv, p2.path]] as const) {
      const add = call(host, plugin, 'ADD', conf, ns, 'nc1');
      expect(add.code, `${plugin} ADD: ${add.stdout}${add.stderr}`).toBe(0);
      const withPrev = { ...conf, prevResult: JSON.parse(add.stdout) as unknown };
      const ck = call(host, plugin, 'CHECK', withPrev, ns, 'nc1');
      expect(ck.code, `${plugin} CHECK: ${ck.stdout}${ck.stderr}`).toBe(0);
      const del = call(host, plugin, 'DEL', withPrev, ns, 'nc1');
      expect(del.code, `${plugin} DEL: ${del.stdout}${del.stderr}`).toBe(0);
    }
    const seen = calls();
    expect(seen.some((c) => c.startsWith('iptables-restore '))).toBe(true);
    expect(seen.filter((c) => /^(ip|nsenter|sysctl|bridge) /.test(c))).toEqual([]);
  });
});
