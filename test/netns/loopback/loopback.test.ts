/**
 * dist/bin/loopback run exactly as a runtime runs it (env + stdin), in
 * throwaway namespaces, for every cniVersion.
 */
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { SUPPORTED_VERSIONS } from '../../../lib/cni/version.ts';
import { callPlugin, callPluginOk } from '../../helpers/plugin.ts';
import { createNetns, removeAllNetns, sh, type TestNetns } from '../../helpers/netns.ts';

afterEach(removeAllNetns);
afterAll(removeAllNetns);

const conf = (cniVersion: string, extra: Record<string, unknown> = {}) => ({ cniVersion, name: 'tscni-lo', type: 'loopback', ...extra });

function loState(ns: TestNetns): { up: boolean; addrs: string[] } {
  const [lo] = JSON.parse(ns.exec(['ip', '-json', 'addr', 'show', 'dev', 'lo'])) as Array<{ flags: string[]; addr_info: Array<{ local: string; prefixlen: number }> }>;
  return { up: lo?.flags.includes('UP') ?? false, addrs: (lo?.addr_info ?? []).map((a) => `${a.local}/${a.prefixlen}`) };
}

const call = (ns: TestNetns, command: string, cniVersion: string, extra: Record<string, unknown> = {}) =>
  callPlugin('loopback', { command, containerId: 'ctr-lo-1', netns: ns.path, ifname: 'eth0', config: conf(cniVersion, extra) });

describe.each(SUPPORTED_VERSIONS)('loopback with cniVersion %s', (version) => {
  it('ADD brings lo up and reports its addresses in the version\'s shape', () => {
    const ns = createNetns('lo');
    expect(loState(ns).up).toBe(false);
    const out = call(ns, 'ADD', version);
    expect(out.code, out.stdout + out.stderr).toBe(0);
    expect(loState(ns).up).toBe(true);
    expect(loState(ns).addrs).toEqual(['127.0.0.1/8', '::1/128']);
    if (version === '0.1.0' || version === '0.2.0') {
      expect(out.json).toEqual({ cniVersion: version, ip4: { ip: '127.0.0.1/8' }, ip6: { ip: '::1/128' } });
    } else {
      const withVersion = version.startsWith('0.');
      expect(out.json).toEqual({
        cniVersion: version,
        interfaces: [{ name: 'lo', mac: '00:00:00:00:00:00', sandbox: ns.path }],
        ips: [
          { ...(withVersion ? { version: '4' } : {}), interface: 0, address: '127.0.0.1/8' },
          { ...(withVersion ? { version: '6' } : {}), interface: 0, address: '::1/128' },
        ],
      });
    }
  });

  it('ADD passes a prevResult through unchanged', () => {
    const ns = createNetns('lo');
    const prev =
      version === '0.1.0' || version === '0.2.0'
        ? { cniVersion: version, ip4: { ip: '10.240.9.2/24', gateway: '10.240.9.1' } }
        : { cniVersion: version, interfaces: [{ name: 'eth0', sandbox: ns.path }], ips: [{ ...(version.startsWith('0.') ? { version: '4' } : {}), interface: 0, address: '10.240.9.2/24' }] };
    const out = call(ns, 'ADD', version, { prevResult: prev });
    expect(out.code, out.stdout).toBe(0);
    expect(out.json).toEqual(prev);
    expect(loState(ns).up).toBe(true);
  });

  it('DEL brings lo down, twice, and succeeds once the netns is gone', () => {
    const ns = createNetns('lo');
    callPluginOk('loopback', { command: 'ADD', containerId: 'c', netns: ns.path, ifname: 'eth0', config: conf(version) });
    for (let i = 0; i < 2; i++) {
      const out = call(ns, 'DEL', version);
      expect(out.code, out.stdout).toBe(0);
      expect(out.stdout).toBe('');
      expect(loState(ns).up).toBe(false);
    }
    const path = ns.path;
    ns.remove();
    const gone = callPlugin('loopback', { command: 'DEL', containerId: 'c', netns: path, ifname: 'eth0', config: conf(version) });
    expect(gone.code, gone.stdout).toBe(0);
    const unset = callPlugin('loopback', { command: 'DEL', containerId: 'c', ifname: 'eth0', config: conf(version) });
    expect(unset.code, unset.stdout).toBe(0);
  });
});

describe.each(['0.4.0', '1.0.0', '1.1.0'])('loopback CHECK with cniVersion %s', (version) => {
  it('passes while lo is up and fails once it is down', () => {
    const ns = createNetns('lo');
    expect(call(ns, 'ADD', version).code).toBe(0);
    const ok = call(ns, 'CHECK', version);
    expect(ok.code, ok.stdout).toBe(0);
    ns.exec(['ip', 'link', 'set', 'lo', 'down']);
    const bad = call(ns, 'CHECK', version);
    expect(bad.code).toBe(1);
    expect(bad.json).toMatchObject({ code: 999, msg: 'loopback interface is down' });
  });
});

describe('loopback protocol edges', () => {
  it('refuses CHECK before 0.4.0', () => {
    const ns = createNetns('lo');
    const out = call(ns, 'CHECK', '0.3.1');
    expect(out.json).toMatchObject({ code: 1, msg: 'config version does not allow CHECK' });
  });

  it('answers STATUS and GC for 1.1.0 and refuses them for 1.0.0', () => {
    for (const command of ['STATUS', 'GC']) {
      const ok = callPlugin('loopback', { command, config: { ...conf('1.1.0'), 'cni.dev/valid-attachments': [] } });
      expect(ok.code, ok.stdout).toBe(0);
      expect(ok.stdout).toBe('');
      const old = callPlugin('loopback', { command, config: conf('1.0.0') });
      expect(old.json).toMatchObject({ code: 1, msg: `config version does not allow ${command}` });
    }
  });

  it('prints VERSION', () => {
    const out = callPlugin('loopback', { command: 'VERSION' });
    expect(out.json).toEqual({ cniVersion: '1.1.0', supportedVersions: ['0.1.0', '0.2.0', '0.3.0', '0.3.1', '0.4.0', '1.0.0', '1.1.0'] });
  });

  it('rejects a netns path that does not exist with code 8 and changes nothing', () => {
    const out = callPlugin('loopback', { command: 'ADD', containerId: 'c', netns: '/run/netns/tscni-t-does-not-exist', ifname: 'eth0', config: conf('1.0.0') });
    expect(out.json).toMatchObject({ code: 8, msg: 'netns "/run/netns/tscni-t-does-not-exist" does not exist' });
  });

  it('rejects a path that is not a namespace with code 8', () => {
    const out = callPlugin('loopback', { command: 'ADD', containerId: 'c', netns: '/etc/hostname', ifname: 'eth0', config: conf('1.0.0') });
    expect(out.json).toMatchObject({ code: 8 });
    expect(String(out.json?.msg)).toContain('is not a network namespace');
  });

  it('refuses the host\'s own namespace with code 8 and leaves the host lo up', () => {
    const out = callPlugin('loopback', { command: 'DEL', containerId: 'c', netns: '/proc/self/ns/net', ifname: 'eth0', config: conf('1.0.0') });
    expect(out.json).toMatchObject({ code: 8 });
    const [hostLo] = JSON.parse(sh(['ip', '-json', 'link', 'show', 'lo'])) as Array<{ flags: string[] }>;
    expect(hostLo?.flags).toContain('UP');
  });

  it('works through an arbitrary nsfs path (a bind mount outside /run/netns)', () => {
    const ns = createNetns('lo');
    const out = callPlugin('loopback', { command: 'ADD', containerId: 'c', netns: `/proc/${process.pid}/root${ns.path}`, ifname: 'eth0', config: conf('1.1.0') });
    expect(out.code, out.stdout).toBe(0);
    expect(loState(ns).up).toBe(true);
  });

  it('reports missing env variables in one error', () => {
    const out = callPlugin('loopback', { command: 'ADD', env: { CNI_PATH: undefined }, config: conf('1.0.0') });
    expect(out.json).toMatchObject({ code: 4, msg: 'required env variables [CNI_CONTAINERID,CNI_NETNS,CNI_IFNAME,CNI_PATH] missing' });
  });

  it('gives code 6 for undecodable stdin', () => {
    const ns = createNetns('lo');
    const out = callPlugin('loopback', { command: 'ADD', containerId: 'c', netns: ns.path, ifname: 'eth0', stdin: '{"name":' });
    expect(out.json).toMatchObject({ code: 6 });
    expect(loState(ns).up).toBe(false);
  });
});
