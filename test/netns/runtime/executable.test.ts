/**
 * The Bun executable must not be steered by its working directory or by
 * the runtime's environment switches: a root plugin started by containerd
 * or CRI-O inherits both. build.mjs disables .env and bunfig.toml loading
 * and renames BUN_BE_BUN, BUN_OPTIONS and BUN_INSPECT* inside the
 * executable; NODE_OPTIONS and NODE_EXTRA_CA_CERTS mean nothing to Bun.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { binPath } from '../../helpers/plugin.ts';
import { createNetns, removeAllNetns, tryRun, uniqueName } from '../../helpers/netns.ts';

const work = mkdtempSync(join(tmpdir(), 'tscni-exe-'));
const bridges: string[] = [];
afterAll(() => {
  removeAllNetns();
  for (const b of bridges) tryRun(['ip', 'link', 'del', b]);
  rmSync(work, { recursive: true, force: true });
});

const VERSION_JSON = { cniVersion: '1.1.0', supportedVersions: ['0.1.0', '0.2.0', '0.3.0', '0.3.1', '0.4.0', '1.0.0', '1.1.0'] };
const BASE_ENV = { PATH: '/usr/sbin:/usr/bin:/sbin:/bin' };

function run(name: string, env: Record<string, string>, opts: { cwd?: string; input?: string } = {}) {
  const r = spawnSync(binPath(name), [], { env: { ...BASE_ENV, ...env }, cwd: opts.cwd, input: opts.input ?? '', encoding: 'utf8' });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

describe('the executable ignores its working directory', () => {
  it('does not load .env or bunfig.toml from the working directory', () => {
    const dir = join(work, 'cwd');
    const marker = join(work, 'preloaded');
    mkdirSync(dir, { recursive: true });
    // If .env were read, the bridge ADD below would fail at its injected failure point.
    writeFileSync(join(dir, '.env'), 'TSCNI_TEST_FAIL_AT=before-result\nCNI_COMMAND=DEL\n');
    writeFileSync(join(dir, 'preload.js'), `require('node:fs').writeFileSync(${JSON.stringify(marker)}, 'x'); console.log('PRELOADED');\n`);
    writeFileSync(join(dir, 'bunfig.toml'), 'preload = ["./preload.js"]\n[run]\npreload = ["./preload.js"]\n');

    const v = run('loopback', { CNI_COMMAND: 'VERSION' }, { cwd: dir });
    expect(v.code, v.stderr).toBe(0);
    expect(JSON.parse(v.stdout)).toEqual(VERSION_JSON);

    const ns = createNetns('cwd');
    const br = `tx${uniqueName('x').slice(-6)}`;
    bridges.push(br);
    const conf = JSON.stringify({ cniVersion: '1.1.0', name: 'tscni-exe', type: 'bridge', bridge: br });
    const add = run('bridge', { CNI_COMMAND: 'ADD', CNI_CONTAINERID: 'exe1', CNI_NETNS: ns.path, CNI_IFNAME: 'eth0', CNI_PATH: '/nonexistent' }, { cwd: dir, input: conf });
    expect(add.code, add.stdout + add.stderr).toBe(0);
    expect(JSON.parse(add.stdout)).toMatchObject({ interfaces: [{ name: br }, {}, { name: 'eth0', sandbox: ns.path }] });
    expect(add.stdout).not.toContain('PRELOADED');
    expect(existsSync(marker)).toBe(false);
  });
});

describe("the runtime's environment does not change a plugin", () => {
  const cases: Array<[string, Record<string, string>]> = [
    ['BUN_BE_BUN', { BUN_BE_BUN: '1' }],
    ['BUN_OPTIONS', { BUN_OPTIONS: '--version' }],
    ['BUN_OPTIONS preload', { BUN_OPTIONS: '--preload /nonexistent.js' }],
    ['BUN_INSPECT', { BUN_INSPECT: 'ws://127.0.0.1:9/x', BUN_INSPECT_PRELOAD: '/nonexistent.js' }],
    ['NODE_OPTIONS', { NODE_OPTIONS: '--require /nonexistent.js --max-old-space-size=1' }],
    ['NODE_EXTRA_CA_CERTS', { NODE_EXTRA_CA_CERTS: '/nonexistent.pem' }],
  ];
  for (const [what, env] of cases) {
    it(`answers VERSION unchanged with ${what} set`, () => {
      const r = run('loopback', { ...env, CNI_COMMAND: 'VERSION' });
      expect(r.code, r.stderr).toBe(0);
      expect(JSON.parse(r.stdout)).toEqual(VERSION_JSON);
    });
  }

  it('runs a loopback ADD and DEL with all of them set at once', () => {
    const ns = createNetns('env');
    const env = Object.assign({}, ...cases.map(([, e]) => e)) as Record<string, string>;
    const conf = JSON.stringify({ cniVersion: '1.1.0', name: 'tscni-lo', type: 'loopback' });
    const common = { CNI_CONTAINERID: 'env1', CNI_NETNS: ns.path, CNI_IFNAME: 'eth0', CNI_PATH: '/nonexistent' };
    const add = run('loopback', { ...env, ...common, CNI_COMMAND: 'ADD' }, { input: conf });
    expect(add.code, add.stderr).toBe(0);
    expect(JSON.parse(add.stdout)).toMatchObject({ interfaces: [{ name: 'lo', sandbox: ns.path }] });
    expect(ns.exec(['ip', '-o', 'link', 'show', 'lo'])).toContain('UP');
    const del = run('loopback', { ...env, ...common, CNI_COMMAND: 'DEL' }, { input: conf });
    expect(del.code, del.stderr).toBe(0);
    expect(del.stdout).toBe('');
  });
});

describe('stdin', () => {
  it('refuses a network config larger than 16 MiB with code 6, without reading it all', () => {
    const huge = `{"cniVersion":"1.1.0","name":"big","type":"loopback","pad":"${'x'.repeat(20 * 1024 * 1024)}"}`;
    const r = spawnSync(binPath('loopback'), [], {
      env: { ...BASE_ENV, CNI_COMMAND: 'ADD', CNI_CONTAINERID: 'big1', CNI_NETNS: '/proc/self/ns/net', CNI_IFNAME: 'eth0', CNI_PATH: '/nonexistent' },
      input: huge,
      encoding: 'utf8',
    });
    expect(r.status).toBe(1);
    expect(JSON.parse(r.stdout)).toEqual({ cniVersion: '1.1.0', code: 6, msg: `network config on stdin is larger than ${16 * 1024 * 1024} bytes` });
  });
});

describe('names the executable does not know', () => {
  it('answers a runtime with a CNI error naming the unknown plugin, and prints usage otherwise', () => {
    const link = join(work, 'firewall-not-yet');
    symlinkSync(binPath('tscni'), link);
    const asPlugin = spawnSync(link, [], { env: { ...BASE_ENV, CNI_COMMAND: 'ADD' }, input: '{}', encoding: 'utf8' });
    expect(asPlugin.status).toBe(1);
    const err = JSON.parse(asPlugin.stdout) as { code: number; msg: string };
    expect(err.code).toBe(7);
    expect(err.msg).toMatch(/^unknown plugin "firewall-not-yet": this tscni executable provides .*bridge/);
    const asCli = spawnSync(link, ['--help'], { env: BASE_ENV, encoding: 'utf8' });
    expect(asCli.status).toBe(0);
    expect(asCli.stdout).toContain('tscni <command>');
  });
});

describe('failure injection', () => {
  it('exists only in the test build: the shipped executable ignores TSCNI_TEST_FAIL_AT', () => {
    const ns = createNetns('fp');
    const br = `tx${uniqueName('x').slice(-6)}`;
    bridges.push(br);
    const conf = JSON.stringify({ cniVersion: '1.1.0', name: 'tscni-exe', type: 'bridge', bridge: br });
    const env = { CNI_COMMAND: 'ADD', CNI_CONTAINERID: 'fp1', CNI_NETNS: ns.path, CNI_IFNAME: 'eth0', CNI_PATH: '/nonexistent', TSCNI_TEST_FAIL_AT: 'after-veth' };
    const test = spawnSync(binPath('bridge', true), [], { env: { ...BASE_ENV, ...env }, input: conf, encoding: 'utf8' });
    expect(JSON.parse(test.stdout)).toMatchObject({ code: 999, msg: 'injected failure at after-veth (TSCNI_TEST_FAIL_AT)' });
    const shipped = run('bridge', env, { input: conf });
    expect(shipped.code, shipped.stdout).toBe(0);
    expect(readFileSync(binPath('bridge')).includes('TSCNI_TEST_FAIL_AT')).toBe(false);
  });
});
