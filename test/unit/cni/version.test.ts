import { describe, expect, it } from 'vitest';
import type { Result } from '../../../lib/cni/types.ts';
import { SUPPORTED_VERSIONS, compareVersions, convertResult, parseResult } from '../../../lib/cni/version.ts';

const FULL: Result = {
  cniVersion: '1.1.0',
  interfaces: [
    { name: 'cni0', mac: '0a:00:00:00:00:01' },
    { name: 'veth1', mac: '0a:00:00:00:00:02', mtu: 1400 },
    { name: 'eth0', mac: '0a:00:00:00:00:03', sandbox: '/run/netns/p', socketPath: '/s', pciID: '0000:00:01.0' },
  ],
  ips: [
    { interface: 2, address: '10.240.0.5/24', gateway: '10.240.0.1' },
    { interface: 2, address: '10.240.0.6/24' },
    { interface: 2, address: 'fd10:240::5/64', gateway: 'fd10:240::1' },
  ],
  routes: [
    { dst: '0.0.0.0/0', gw: '10.240.0.1', mtu: 1400, priority: 5 },
    { dst: '::/0', gw: 'fd10:240::1', table: 100, scope: 0, advmss: 1300 },
  ],
  dns: { nameservers: ['10.240.0.53'], domain: 'example.test', search: ['a.test'], options: ['ndots:2'] },
};

describe('compareVersions', () => {
  it('orders versions numerically', () => {
    expect(compareVersions('0.3.1', '0.3.0')).toBeGreaterThan(0);
    expect(compareVersions('0.10.0', '0.9.0')).toBeGreaterThan(0);
    expect(compareVersions('1.0.0', '1.0.0')).toBe(0);
    expect(compareVersions('0.4.0', '1.0.0')).toBeLessThan(0);
  });
});

describe('convertResult', () => {
  it('keeps everything for 1.1.0', () => {
    expect(convertResult(FULL, '1.1.0')).toEqual({ ...FULL, cniVersion: '1.1.0' });
  });

  it('drops the 1.1-only fields for 1.0.0', () => {
    const out = convertResult(FULL, '1.0.0') as { interfaces: Record<string, unknown>[]; routes: Record<string, unknown>[]; ips: Record<string, unknown>[] };
    expect(out.interfaces[1]).toEqual({ name: 'veth1', mac: '0a:00:00:00:00:02' });
    expect(out.interfaces[2]).toEqual({ name: 'eth0', mac: '0a:00:00:00:00:03', sandbox: '/run/netns/p' });
    expect(out.routes).toEqual([{ dst: '0.0.0.0/0', gw: '10.240.0.1' }, { dst: '::/0', gw: 'fd10:240::1' }]);
    expect(out.ips[0]).toEqual({ interface: 2, address: '10.240.0.5/24', gateway: '10.240.0.1' });
  });

  it.each(['0.3.0', '0.3.1', '0.4.0'])('adds ips[].version for %s', (v) => {
    const out = convertResult(FULL, v) as { cniVersion: string; ips: Record<string, unknown>[] };
    expect(out.cniVersion).toBe(v);
    expect(out.ips.map((i) => i.version)).toEqual(['4', '4', '6']);
  });

  it.each(['0.1.0', '0.2.0'])('keeps the first v4 and v6 address and splits routes for %s', (v) => {
    expect(convertResult(FULL, v)).toEqual({
      cniVersion: v,
      ip4: { ip: '10.240.0.5/24', gateway: '10.240.0.1', routes: [{ dst: '0.0.0.0/0', gw: '10.240.0.1' }] },
      ip6: { ip: 'fd10:240::5/64', gateway: 'fd10:240::1', routes: [{ dst: '::/0', gw: 'fd10:240::1' }] },
      dns: FULL.dns,
    });
  });

  it('refuses to convert a result without IPs to 0.2.0', () => {
    expect(() => convertResult({ cniVersion: '1.1.0', interfaces: [{ name: 'x' }] }, '0.2.0')).toThrow(/no valid IP addresses/);
  });

  it('omits empty dns and empty lists', () => {
    expect(convertResult({ cniVersion: '1.1.0', dns: {}, ips: [], routes: [] }, '1.0.0')).toEqual({ cniVersion: '1.0.0' });
  });

  it('refuses an unsupported target version', () => {
    expect(() => convertResult(FULL, '2.0.0')).toThrow(/unsupported version/);
  });
});

describe('round trips between every pair of versions', () => {
  // What survives a trip through version v: the lowest common denominator of both ends.
  function expected(from: string, to: string): Result {
    const low = compareVersions(from, to) < 0 ? from : to;
    const start = parseResult(convertResult(FULL, from));
    return parseResult(convertResult(start, low));
  }

  for (const from of SUPPORTED_VERSIONS) {
    for (const to of SUPPORTED_VERSIONS) {
      it(`${from} -> ${to}`, () => {
        const input = convertResult(FULL, from);
        const internal = parseResult(input);
        const output = convertResult(internal, to);
        expect(output.cniVersion).toBe(to);
        expect(parseResult(output)).toEqual(expected(from, to));
        if (from === to) expect(output).toEqual(input);
      });
    }
  }
});

describe('parseResult', () => {
  it('reads a 0.2.0 result', () => {
    expect(parseResult({ cniVersion: '0.2.0', ip6: { ip: 'fd10:240::5/64', routes: [{ dst: '::/0' }] }, dns: { nameservers: ['1.1.1.1'] } })).toEqual({
      cniVersion: '1.1.0',
      ips: [{ address: 'fd10:240::5/64' }],
      routes: [{ dst: '::/0' }],
      dns: { nameservers: ['1.1.1.1'] },
    });
  });

  it('drops ips[].version of a 0.4.0 result', () => {
    expect(parseResult({ cniVersion: '0.4.0', ips: [{ version: '4', address: '10.240.0.2/24', interface: 0 }] }).ips).toEqual([
      { interface: 0, address: '10.240.0.2/24' },
    ]);
  });

  it('uses the fallback version when the result has none', () => {
    expect(parseResult({ ip4: { ip: '10.240.0.2/24' } }, '0.2.0').ips).toEqual([{ address: '10.240.0.2/24' }]);
  });

  it('rejects malformed results with code 6', () => {
    expect(() => parseResult('x')).toThrow(expect.objectContaining({ code: 6 }));
    expect(() => parseResult({ cniVersion: '1.0.0', ips: [{ gateway: '1.2.3.4' }] })).toThrow(expect.objectContaining({ code: 6 }));
    expect(() => parseResult({ cniVersion: '0.2.0', ip4: { gateway: '1.2.3.4' } })).toThrow(expect.objectContaining({ code: 6 }));
  });

  it('rejects an unknown result version with code 1', () => {
    expect(() => parseResult({ cniVersion: '9.9.9' })).toThrow(expect.objectContaining({ code: 1 }));
  });
});
