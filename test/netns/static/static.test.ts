/**
 * dist/bin/static as a runtime calls it: results for every cniVersion equal
 * the reference static plugin's for the same input (addresses, CNI_ARGS
 * IP/GATEWAY, args.cni.ips, runtimeConfig.ips, routes, dns), CHECK, DEL,
 * GC, STATUS; and the usual companion: macvlan + static with real traffic
 * in a fake host.
 */
import { spawnSync } from 'node:child_process';
import { afterAll, afterEach, beforeEach, describe, expect, it } from 'vitest';
import { createNetns } from '../../helpers/netns.ts';
import { callPlugin } from '../../helpers/plugin.ts';
import { IPAM_VERSIONS, REFERENCE_DIR, callInOk, cleanupAll, createFakeHost, ping, removeTmpRoot, vethBetween, addrsOf } from '../ptp/fakehost.ts';

/** A pod namespace per test: CNI_NETNS must name a live namespace other than the plugin's. */
let nsPath = '';
beforeEach(() => {
  nsPath = createNetns('tst').path;
});
afterEach(cleanupAll);
afterAll(() => {
  cleanupAll();
  removeTmpRoot();
});

const base = {
  name: 'tscni-tv-static',
  type: 'static',
  ipam: {
    type: 'static',
    addresses: [
      { address: '10.253.4.5/24', gateway: '10.253.4.1' },
      { address: 'fd10:253:4::5/64', gateway: 'fd10:253:4::1' },
    ],
    routes: [{ dst: '0.0.0.0/0' }, { dst: '10.253.0.0/16', gw: '10.253.4.254' }],
    dns: { nameservers: ['10.253.4.53'], search: ['example.test'] },
  },
};

function reference(command: string, config: unknown, args?: string): { code: number; json: unknown } {
  const env: Record<string, string> = { CNI_COMMAND: command, CNI_CONTAINERID: 'st1', CNI_NETNS: nsPath, CNI_IFNAME: 'eth0', CNI_PATH: REFERENCE_DIR };
  if (args) env.CNI_ARGS = args;
  const r = spawnSync(`${REFERENCE_DIR}/static`, [], { env, input: JSON.stringify(config), encoding: 'utf8' });
  const json = r.stdout.trim() ? (JSON.parse(r.stdout) as Record<string, unknown>) : undefined;
  // The reference prints an empty "dns": {}; we omit empty DNS, as the spec's conversions do.
  if (json && JSON.stringify(json.dns) === '{}') delete json.dns;
  return { code: r.status ?? -1, json };
}

function ours(command: string, config: unknown, args?: string) {
  return callPlugin('static', { command, containerId: 'st1', netns: nsPath, ifname: 'eth0', args, config });
}

describe.each(IPAM_VERSIONS)('static with cniVersion %s', (version) => {
  const oneEach = version === '0.1.0' || version === '0.2.0';
  it('ADD: the same result as the reference (config addresses, routes, dns)', () => {
    const config = { ...base, cniVersion: version };
    const out = ours('ADD', config);
    expect(out.code, out.stdout).toBe(0);
    const want = version === '1.1.0' ? reference('ADD', { ...config, cniVersion: '1.0.0' }).json : reference('ADD', config).json;
    expect(out.json).toEqual(version === '1.1.0' ? { ...(want as object), cniVersion: '1.1.0' } : want);
    if (!oneEach) expect((out.json?.ips as unknown[]).length).toBe(2);
  });

  it('CNI_ARGS IP/GATEWAY, args.cni.ips and runtimeConfig.ips as the reference', () => {
    const v = version === '1.1.0' ? '1.0.0' : version;
    const cases: Array<[Record<string, unknown>, string | undefined]> = [
      [{ ...base, ipam: { type: 'static' } }, 'IgnoreUnknown=1;IP=10.253.4.7/24;GATEWAY=10.253.4.1'],
      [{ ...base, args: { cni: { ips: ['10.253.4.8/24'] } } }, undefined],
      [{ ...base, runtimeConfig: { ips: ['10.253.4.9/24'] }, args: { cni: { ips: ['10.253.4.8/24'] } } }, undefined],
    ];
    for (const [config, args] of cases) {
      const o = ours('ADD', { ...config, cniVersion: version }, args);
      const r = reference('ADD', { ...config, cniVersion: v }, args);
      expect(o.code, o.stdout).toBe(r.code);
      expect({ ...o.json, cniVersion: v }).toEqual(r.json);
    }
  });
});

describe('static', () => {
  it('two addresses of one family need 0.3.0+; a bad address is code 7 naming it', () => {
    const two = { ...base, cniVersion: '0.2.0', ipam: { type: 'static', addresses: [{ address: '10.253.4.5/24' }, { address: '10.253.4.6/24' }] } };
    expect(ours('ADD', two).json?.msg).toBe('CNI version 0.2.0 does not support more than 1 address per family');
    const r = ours('ADD', { ...base, cniVersion: '1.0.0', ipam: { type: 'static', addresses: [{ address: '10.253.4.5' }] } });
    expect(r.json?.code).toBe(7);
    expect(r.json?.msg).toBe("the 'address' field is expected to be in CIDR notation, got: '10.253.4.5'");
    expect(ours('ADD', { cniVersion: '1.0.0', name: 'x', type: 'static' }).json?.msg).toBe("IPAM config missing 'ipam' key");
  });

  it('CHECK matches gateways; DEL, GC and STATUS succeed', () => {
    const config = { ...base, cniVersion: '1.1.0' };
    const add = ours('ADD', config);
    expect(ours('CHECK', { ...config, prevResult: add.json }).code).toBe(0);
    const wrong = { ...(add.json as object), ips: [{ address: '10.253.4.5/24', gateway: '10.253.4.2' }] };
    const ck = ours('CHECK', { ...config, prevResult: wrong });
    expect(ck.json?.msg).toBe('static: Failed to match addr 10.253.4.5 on interface eth0');
    expect(ours('CHECK', config).json?.msg).toBe('Required prevResult missing');
    expect(ours('DEL', config).code).toBe(0);
    expect(ours('GC', { ...config, 'cni.dev/valid-attachments': [] }).code).toBe(0);
    expect(ours('STATUS', config).code).toBe(0);
  });

  it('macvlan + static: two pods with fixed addresses talk over a veth master in a fake host', () => {
    const host = createFakeHost();
    const [a, b, lan] = [createNetns('tsa'), createNetns('tsb'), createNetns('tslan')];
    vethBetween(host, 'tsmaster0', lan, 'eth0');
    const mk = (ip: string) => ({ cniVersion: '1.1.0', name: 'tscni-tv-static', type: 'macvlan', master: 'tsmaster0', ipam: { type: 'static', addresses: [{ address: ip }] } });
    callInOk(host, 'macvlan', { command: 'ADD', cid: 'sa', netns: a.path, config: mk('10.253.4.21/24') });
    callInOk(host, 'macvlan', { command: 'ADD', cid: 'sb', netns: b.path, config: mk('10.253.4.22/24') });
    expect(addrsOf(a)).toEqual(['10.253.4.21/24']);
    expect(ping(a, '10.253.4.22')).toBe(true);
  });
});
