/**
 * The plugins do link, address, route and sysctl work in-process over
 * netlink: no `ip`, `nsenter`, `sysctl` or `bridge` child in any ADD, CHECK
 * or DEL. Wrappers with those names come first in PATH and log every call
 * (then run the real tool, so nothing else changes); the log must stay
 * empty through a full bridge + host-local + portmap + loopback life cycle,
 * dual-stack, with hairpin and IP masquerade. iptables-restore runs
 * (rules change), and is counted to show the wrappers work.
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { BIN_DIR, binPath } from '../../helpers/plugin.ts';
import { watchExecs } from '../../helpers/exec-watch.ts';
import { createNetns, removeAllNetns, tryRun } from '../../helpers/netns.ts';
import { removeSharedIfNew, snapshotShared } from '../../helpers/portmap-shared.ts';

const watch = watchExecs();
const work = mkdtempSync(join(tmpdir(), 'tscni-nochild-'));
const shared = snapshotShared();
const BRIDGE = `tnc${process.pid % 100000}`;

afterAll(() => {
  removeAllNetns();
  tryRun(['ip', 'link', 'del', BRIDGE]);
  removeSharedIfNew(shared);
  rmSync(work, { recursive: true, force: true });
  watch.remove();
});

function call(plugin: string, command: string, conf: unknown, ns: string, cid: string, ifname = 'eth0'): { code: number | null; stdout: string; stderr: string } {
  const r = spawnSync(binPath(plugin), [], {
    env: { PATH: watch.path, CNI_COMMAND: command, CNI_CONTAINERID: cid, CNI_NETNS: ns, CNI_IFNAME: ifname, CNI_PATH: BIN_DIR },
    input: JSON.stringify(conf),
    encoding: 'utf8',
  });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

const calls = () => watch.calls();

describe('no ip, nsenter, sysctl or bridge child in any plugin verb', () => {
  it('bridge + host-local + portmap + loopback: ADD, CHECK, DEL', () => {
    const ns = createNetns('nochild');
    const bridgeConf = {
      cniVersion: '1.1.0',
      name: 'tscni-nochild',
      type: 'bridge',
      bridge: BRIDGE,
      isDefaultGateway: true,
      ipMasq: true,
      hairpinMode: true,
      ipam: { type: 'host-local', dataDir: join(work, 'ipam'), ranges: [[{ subnet: '10.247.9.0/24' }], [{ subnet: 'fd10:247:9::/64' }]] },
    };
    const add = call('bridge', 'ADD', bridgeConf, ns.path, 'nc1');
    expect(add.code, add.stdout + add.stderr).toBe(0);
    const prevResult = JSON.parse(add.stdout) as Record<string, unknown>;
    const pm = {
      cniVersion: '1.1.0',
      name: 'tscni-nochild',
      type: 'portmap',
      capabilities: { portMappings: true },
      runtimeConfig: { portMappings: [{ hostPort: 30977, containerPort: 80, protocol: 'tcp' }] },
      stateDir: join(work, 'portmap'),
      prevResult,
    };
    const lo = { cniVersion: '1.1.0', name: 'tscni-nochild', type: 'loopback' };
    expect(call('portmap', 'ADD', pm, ns.path, 'nc1').code).toBe(0);
    expect(call('loopback', 'ADD', lo, ns.path, 'nc1', 'lo').code).toBe(0);
    for (const [plugin, conf] of [['bridge', { ...bridgeConf, prevResult }], ['portmap', pm], ['loopback', { ...lo, prevResult: { cniVersion: '1.1.0' } }]] as const) {
      const r = call(plugin, 'CHECK', conf, ns.path, 'nc1', plugin === 'loopback' ? 'lo' : 'eth0');
      expect(r.code, `${plugin} CHECK: ${r.stdout}${r.stderr}`).toBe(0);
    }
    for (const [plugin, conf] of [['loopback', lo], ['portmap', pm], ['bridge', { ...bridgeConf, prevResult }]] as const) {
      const r = call(plugin, 'DEL', conf, ns.path, 'nc1', plugin === 'loopback' ? 'lo' : 'eth0');
      expect(r.code, `${plugin} DEL: ${r.stdout}${r.stderr}`).toBe(0);
    }
    const seen = calls();
    // The wrappers work: rules changed, so the restore tools ran through them.
    expect(seen.some((c) => c.startsWith('iptables-restore '))).toBe(true);
    expect(seen.filter((c) => /^(ip|nsenter|sysctl|bridge) /.test(c))).toEqual([]);
  });
});
