/**
 * networkCreate end to end on files (a temporary NETCONFPATH): validation
 * before anything is written. The host's routes and links are given (the
 * real-kernel tests read them over netlink, which needs the Bun runtime).
 */
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { networkCreate as create, type CreateArgs, type HostView } from '../../../cli/commands/network.ts';
import type { CliContext } from '../../../cli/context.ts';

const dirs: string[] = [];
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

function ctx(): CliContext {
  const dir = mkdtempSync(join(tmpdir(), 'tscni-tn-create-'));
  dirs.push(dir);
  return { netDir: join(dir, 'net.d'), cniPath: '', cacheDir: join(dir, 'cache'), stateDir: join(dir, 'state'), cniArgs: [], capabilityArgs: {}, ifName: undefined, env: { TSCNI_STATE_DIR: join(dir, 'state'), TSCNI_BRIDGE_PREFIX: 'tnu' } };
}

const host: HostView = { routes: [{ subnet: '198.18.3.0/24', by: 'a host route (198.18.3.0/24 dev eth9)' }], links: ['lo', 'eth0', 'tnu0'] };
const networkCreate = (c: CliContext, a: CreateArgs) => create(c, a, () => host);

const args = (name: string, extra: Partial<CreateArgs> = {}): CreateArgs => ({
  name,
  subnet: [],
  ipv6: false,
  internal: false,
  isolate: false,
  dns: true,
  driver: 'bridge',
  pool: '198.18.0.0/16',
  pool6: 'fd10:246::/48',
  domain: 'dns.podman',
  ...extra,
});

type Range = { subnet: string; gateway: string; rangeStart?: string; rangeEnd?: string };
const rangesOf = (c: CliContext, name: string) =>
  (JSON.parse(readFileSync(join(c.netDir, `${name}.conflist`), 'utf8')) as { plugins: { ipam: { ranges: Range[][] } }[] }).plugins[0]?.ipam.ranges.map((r) => r[0]);

describe('networkCreate', () => {
  it('takes the next free /24 of the pool for each network; --ip-range becomes rangeStart/rangeEnd', () => {
    const c = ctx();
    networkCreate(c, args('a'));
    networkCreate(c, args('b', { subnet: ['198.18.1.0/24'], ipRange: '198.18.1.128/25' }));
    networkCreate(c, args('c'));
    networkCreate(c, args('d'));
    expect(rangesOf(c, 'a')).toEqual([{ subnet: '198.18.0.0/24', gateway: '198.18.0.1' }]);
    expect(rangesOf(c, 'b')).toEqual([{ subnet: '198.18.1.0/24', gateway: '198.18.1.1', rangeStart: '198.18.1.128', rangeEnd: '198.18.1.254' }]);
    expect(rangesOf(c, 'c')?.[0]?.subnet).toBe('198.18.2.0/24');
    expect(rangesOf(c, 'd')?.[0]?.subnet).toBe('198.18.4.0/24'); // .3 is a host route
    const bridges = ['a', 'b', 'c', 'd'].map((n) => (JSON.parse(readFileSync(join(c.netDir, `${n}.conflist`), 'utf8')) as { plugins: { bridge: string }[] }).plugins[0]?.bridge);
    expect(bridges).toEqual(['tnu1', 'tnu2', 'tnu3', 'tnu4']); // tnu0 is a host link
    expect(() => networkCreate(c, args('e', { subnet: ['198.18.3.0/25'] }))).toThrow(/overlaps 198.18.3.0\/24 used by a host route \(198.18.3.0\/24 dev eth9\)/);
  });

  it('refuses bad input before writing anything', () => {
    const c = ctx();
    networkCreate(c, args('a', { subnet: ['198.18.0.0/23'] }));
    expect(() => networkCreate(c, args('b', { subnet: ['198.18.1.0/24'] }))).toThrow(/overlaps 198.18.0.0\/23 used by network a/);
    expect(() => networkCreate(c, args('b', { subnet: ['198.18.9.0/24', '198.18.9.128/25'] }))).toThrow(/overlaps 198.18.9.0\/24 used by another --subnet/);
    expect(() => networkCreate(c, args('b', { subnet: ['198.18.9.0/24'], gateway: '198.18.10.1' }))).toThrow(/--gateway 198.18.10.1 is not in 198.18.9.0\/24/);
    expect(() => networkCreate(c, args('b', { subnet: ['198.18.9.0/24'], ipRange: '198.18.10.0/25' }))).toThrow(/--ip-range 198.18.10.0\/25 is not inside/);
    expect(() => networkCreate(c, args('b', { mtu: 20 }))).toThrow(/invalid --mtu 20/);
    expect(() => networkCreate(c, args('b', { driver: 'overlay' }))).toThrow(/invalid --driver overlay/);
    expect(() => networkCreate(c, args('bad name'))).toThrow(/invalid network name/);
    expect(() => networkCreate(c, args('a'))).toThrow(/network a already exists/);
    expect(readdirSync(c.netDir)).toEqual(['a.conflist']);
  });

  it('wipes name state left by an earlier network of the same name', () => {
    const c = ctx();
    const stale = join(c.stateDir, 'dns', 'a', 'records');
    mkdirSync(stale, { recursive: true });
    writeFileSync(join(stale, 'old-eth0.json'), '{"name":"old"}');
    networkCreate(c, args('a'));
    expect(existsSync(join(c.stateDir, 'dns', 'a'))).toBe(false);
  });
});
