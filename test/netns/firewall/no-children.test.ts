/**
 * The chain podman writes (bridge + portmap + firewall + tuning) starts no
 * `ip`, `nsenter`, `sysctl` or `bridge` child in ADD, CHECK or DEL: tuning
 * starts no child at all, firewall only iptables(-restore). Wrappers with
 * those names come first in PATH and log every call, then run the real tool.
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { afterAll, expect, it } from 'vitest';
import { BIN_DIR, binPath } from '../../helpers/plugin.ts';
import { createNetns, removeAllNetns, tryRun } from '../../helpers/netns.ts';
import { watchExecs } from '../../helpers/exec-watch.ts';
import { removeLeftoverRules, sameAsBefore, snapshotFirewall } from './helpers.ts';

const work = mkdtempSync(join(tmpdir(), 'tscni-tf-nochild-'));
const watch = watchExecs();
const BRIDGE = `tf${randomBytes(3).toString('hex')}`;
const before = snapshotFirewall();

afterAll(() => {
  removeAllNetns();
  removeLeftoverRules();
  tryRun(['ip', 'link', 'del', BRIDGE]);
  rmSync(work, { recursive: true, force: true });
  watch.remove();
});

function call(plugin: string, command: string, conf: unknown, ns: string, cid: string): { code: number | null; stdout: string } {
  const r = spawnSync(binPath(plugin), [], {
    env: { PATH: watch.path, CNI_COMMAND: command, CNI_CONTAINERID: cid, CNI_NETNS: ns, CNI_IFNAME: 'eth0', CNI_PATH: BIN_DIR },
    input: JSON.stringify(conf),
    encoding: 'utf8',
  });
  return { code: r.status, stdout: r.stdout };
}

const calls = watch.calls;

it('bridge + firewall + tuning: no ip/nsenter/sysctl/bridge child; tuning none at all', () => {
  const ns = createNetns('tfnc');
  const cid = `tfnc-${randomBytes(4).toString('hex')}`;
  const name = `tscni-tf-nc-${randomBytes(2).toString('hex')}`;
  const common = { cniVersion: '1.0.0', name };
  const plugins = [
    { ...common, type: 'bridge', bridge: BRIDGE, isGateway: true, ipam: { type: 'host-local', dataDir: join(work, 'ipam'), ranges: [[{ subnet: '10.248.252.0/24' }]] } },
    { ...common, type: 'firewall', backend: 'iptables', ingressPolicy: 'same-bridge', stateDir: join(work, 'fw') },
    { ...common, type: 'tuning', dataDir: join(work, 'tuning'), mtu: 1400, txQLen: 200, sysctl: { 'net.ipv4.conf.IFNAME.arp_notify': '1' } },
  ];
  let prev: unknown;
  let tuningChildren = 0;
  for (const p of plugins) {
    const n = calls().length;
    const out = call(p.type, 'ADD', prev ? { ...p, prevResult: prev } : p, ns.path, cid);
    expect(out.code, out.stdout).toBe(0);
    prev = JSON.parse(out.stdout);
    if (p.type === 'tuning') tuningChildren += calls().length - n;
  }
  const afterAdd = calls();
  for (const p of plugins) expect(call(p.type, 'CHECK', { ...p, prevResult: prev }, ns.path, cid).code).toBe(0);
  for (const p of [...plugins].reverse()) {
    const n = calls().length;
    expect(call(p.type, 'DEL', { ...p, prevResult: prev }, ns.path, cid).code).toBe(0);
    if (p.type === 'tuning') tuningChildren += calls().length - n;
  }
  expect(tuningChildren).toBe(0);
  const all = calls();
  expect(all.filter((l) => /^(ip|nsenter|sysctl|bridge) /.test(l))).toEqual([]);
  // The wrappers work: firewall ran iptables (listing) and iptables-restore (changes).
  expect(afterAdd.some((l) => l.startsWith('iptables-restore'))).toBe(true);
  expect(sameAsBefore(before, snapshotFirewall())).toBe(true);
});
