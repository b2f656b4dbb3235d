/**
 * Crash injection (npm run test:stress): TSCNI_CRASH_ROUNDS (default 200)
 * bridge + host-local ADDs killed with SIGKILL at a random point (0-40 ms),
 * each followed by the runtime's DEL (as the kubelet retries teardown),
 * then one GC. Nothing may remain: reservation, veth, rule, lock that
 * blocks the next call; and the next ADD must succeed. Then the same for
 * portmap ADDs: no DNAT rule, record or claim may outlive the DEL.
 */
import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { BIN_DIR, binPath } from '../helpers/plugin.ts';
import { createNetns, removeAllNetns, tryRun } from '../helpers/netns.ts';
import { removeSharedIfNew, snapshotShared } from '../helpers/portmap-shared.ts';
import { census, leaks } from './leaks.ts';

const ROUNDS = Number(process.env.TSCNI_CRASH_ROUNDS ?? 200);
const dir = mkdtempSync(join(tmpdir(), 'tscni-crash-'));
const shared = snapshotShared();
const conf = {
  cniVersion: '1.1.0',
  name: 'tscni-crash',
  type: 'bridge',
  bridge: 'tcrash0',
  isGateway: true,
  ipMasq: true,
  ipam: { type: 'host-local', dataDir: join(dir, 'ipam'), ranges: [[{ subnet: '10.244.251.0/24' }]] },
};

afterAll(() => {
  // A failed assertion skips a test's last DELs: the bridge pods' masquerade rules must not stay on the host.
  for (const cid of ['pmc', 'after']) spawnSync(binPath('bridge'), [], { env: env('DEL', cid, ''), input: JSON.stringify(conf) });
  removeAllNetns();
  tryRun(['ip', 'link', 'del', 'tcrash0']);
  removeSharedIfNew(shared);
  rmSync(dir, { recursive: true, force: true });
});

function env(command: string, cid: string, netns: string): Record<string, string> {
  return { PATH: '/usr/sbin:/usr/bin:/sbin:/bin', CNI_COMMAND: command, CNI_CONTAINERID: cid, CNI_NETNS: netns, CNI_IFNAME: 'eth0', CNI_PATH: BIN_DIR };
}

/** Start an ADD and kill it after `ms`; resolves with its exit code (null when killed). */
function killedAdd(cid: string, netns: string, ms: number): Promise<number | null> {
  return new Promise((resolve) => {
    const child = spawn(binPath('bridge'), [], { env: env('ADD', cid, netns), stdio: ['pipe', 'ignore', 'ignore'] });
    child.stdin.end(JSON.stringify(conf));
    const t = setTimeout(() => child.kill('SIGKILL'), ms);
    child.on('exit', (code) => {
      clearTimeout(t);
      resolve(code);
    });
  });
}

describe('crash injection', () => {
  it(`${ROUNDS} ADDs killed at random points, then DEL and GC: nothing left`, async () => {
    const ns = createNetns('crash');
    // Warm-up: the bridge exists, so the census compares pods only.
    expect(spawnSync(binPath('bridge'), [], { env: env('ADD', 'warm', ns.path), input: JSON.stringify(conf) }).status).toBe(0);
    expect(spawnSync(binPath('bridge'), [], { env: env('DEL', 'warm', ns.path), input: JSON.stringify(conf) }).status).toBe(0);
    const before = census([join(dir, 'ipam')]);
    let killed = 0;
    for (let i = 0; i < ROUNDS; i++) {
      const cid = `crash${i}`;
      const code = await killedAdd(cid, ns.path, Math.random() * 40);
      if (code === null) killed++;
      const del = spawnSync(binPath('bridge'), [], { env: env('DEL', cid, ns.path), input: JSON.stringify(conf), encoding: 'utf8' });
      expect(del.status, del.stdout).toBe(0);
    }
    const gc = spawnSync(binPath('bridge'), [], { env: { ...env('GC', '', ''), CNI_CONTAINERID: '' }, input: JSON.stringify({ ...conf, 'cni.dev/valid-attachments': [] }), encoding: 'utf8' });
    expect(gc.status, gc.stdout).toBe(0);
    const leaked = leaks(before, census([join(dir, 'ipam')]));
    const reservations = readdirSync(join(dir, 'ipam', 'tscni-crash')).filter((f) => /^\d+\.\d+\.\d+\.\d+$/.test(f));
    console.log(`crash: ${ROUNDS} ADDs, ${killed} killed mid-call; leaks ${JSON.stringify(leaked)}; reservations ${reservations.length}`);
    expect(killed).toBeGreaterThan(0);
    expect(reservations).toEqual([]);
    expect(leaked.links).toBe(0);
    expect(leaked.natRules).toBe(0);
    // The next ADD works: no lock or state left that blocks it.
    const next = spawnSync(binPath('bridge'), [], { env: env('ADD', 'after', ns.path), input: JSON.stringify(conf), encoding: 'utf8' });
    expect(next.status, next.stdout).toBe(0);
    expect(spawnSync(binPath('bridge'), [], { env: env('DEL', 'after', ns.path), input: JSON.stringify(conf) }).status).toBe(0);
  }, 1_800_000);
});

describe('crash injection, portmap', () => {
  it(`${ROUNDS} portmap ADDs killed at random points, then the chain's DEL: no rule, record or claim left`, async () => {
    const ns = createNetns('crashpm');
    const pmDir = join(dir, 'portmap');
    const pm = (prevResult: unknown, port: number) => ({
      cniVersion: '1.1.0',
      name: 'tscni-crash',
      type: 'portmap',
      stateDir: pmDir,
      runtimeConfig: { portMappings: [{ hostPort: port, containerPort: 80, protocol: 'tcp' }] },
      prevResult,
    });
    const br = spawnSync(binPath('bridge'), [], { env: env('ADD', 'pmc', ns.path), input: JSON.stringify(conf), encoding: 'utf8' });
    expect(br.status, br.stdout).toBe(0);
    const prev = JSON.parse(br.stdout) as unknown;
    // A warm round makes portmap's shared chains, which outlive pods (as the reference's do), before the count.
    const warm = spawnSync(binPath('portmap'), [], { env: env('ADD', 'pmwarm', ns.path), input: JSON.stringify(pm(prev, 32399)), encoding: 'utf8' });
    expect(warm.status, warm.stdout).toBe(0);
    expect(spawnSync(binPath('portmap'), [], { env: env('DEL', 'pmwarm', ns.path), input: JSON.stringify(pm(prev, 32399)) }).status).toBe(0);
    const natBefore = census([pmDir]).natRules;
    let killed = 0;
    for (let i = 0; i < ROUNDS; i++) {
      const cid = 'pmc';
      const port = 32400 + (i % 50);
      const code = await new Promise<number | null>((resolve) => {
        const child = spawn(binPath('portmap'), [], { env: env('ADD', cid, ns.path), stdio: ['pipe', 'ignore', 'ignore'] });
        child.stdin.end(JSON.stringify(pm(prev, port)));
        const t = setTimeout(() => child.kill('SIGKILL'), Math.random() * 30);
        child.on('exit', (c) => {
          clearTimeout(t);
          resolve(c);
        });
      });
      if (code === null) killed++;
      // The runtime's DEL, without the mappings (as after its own crash): the record or the tags drive it.
      const del = spawnSync(binPath('portmap'), [], { env: env('DEL', cid, ns.path), input: JSON.stringify({ ...pm(prev, port), runtimeConfig: {} }), encoding: 'utf8' });
      expect(del.status, del.stdout).toBe(0);
    }
    console.log(`crash portmap: ${ROUNDS} ADDs, ${killed} killed mid-call`);
    expect(killed).toBeGreaterThan(0);
    expect(census([pmDir]).natRules).toBe(natBefore);
    expect(tryRun(['iptables-save', '-t', 'nat']).stdout).not.toMatch(/dnat name: "tscni-crash"/);
    const records = join(pmDir, 'attachments', 'tscni-crash');
    expect(tryRun(['ls', '-A', records]).stdout.trim()).toBe('');
    expect(spawnSync(binPath('bridge'), [], { env: env('DEL', 'pmc', ns.path), input: JSON.stringify(conf) }).status).toBe(0);
  }, 1_800_000);
});
