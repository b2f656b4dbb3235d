/**
 * Bad input, run through the built executables the way a runtime calls
 * them: every case gets one CNI error JSON document on stdout with the
 * expected code and a message naming the problem (no stack trace, no hang),
 * and leaves the host exactly as it was (links, namespaces, iptables and nft
 * rules, state files).
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { BIN_DIR, binPath } from '../../helpers/plugin.ts';
import { createNetns, removeAllNetns, tryRun } from '../../helpers/netns.ts';

const work = mkdtempSync(join(tmpdir(), 'tscni-bad-'));
afterAll(() => {
  removeAllNetns();
  rmSync(work, { recursive: true, force: true });
});

/** Everything a failed call could have left behind. */
function hostState(): string {
  const list = (dir: string): string[] => {
    try {
      return readdirSync(dir, { recursive: true }) as string[];
    } catch {
      return [];
    }
  };
  return JSON.stringify({
    links: tryRun(['ip', '-o', 'link', 'show']).stdout.split('\n').map((l) => l.split(':')[1]?.trim()).sort(),
    netns: tryRun(['ip', 'netns', 'list']).stdout,
    nat: tryRun(['iptables-save', '-t', 'nat']).stdout.split('\n').filter((l) => !l.startsWith('#') && !l.startsWith(':')),
    filter: tryRun(['iptables-save', '-t', 'filter']).stdout.split('\n').filter((l) => !l.startsWith('#') && !l.startsWith(':')),
    nft: tryRun(['nft', 'list', 'tables']).stdout,
    files: list(work).sort(),
  });
}

const ns = createNetns('bad');
const base = (type: string, extra: Record<string, unknown> = {}) => ({
  cniVersion: '1.1.0',
  name: 'tscni-bad',
  type,
  ...extra,
});
const ipam = { type: 'host-local', dataDir: join(work, 'ipam'), ranges: [[{ subnet: '10.240.250.0/24' }]] };
const prev = { cniVersion: '1.1.0', interfaces: [{ name: 'eth0', sandbox: ns.path }], ips: [{ address: '10.240.250.2/24', interface: 0 }] };

interface Case {
  name: string;
  plugin: string;
  stdin: string;
  env?: Record<string, string | undefined>;
  code: number;
  msg: RegExp;
}

const json = (v: unknown) => JSON.stringify(v);
const CASES: Case[] = [
  { name: 'empty stdin', plugin: 'bridge', stdin: '', code: 6, msg: /unmarshall network config/ },
  { name: 'truncated JSON', plugin: 'bridge', stdin: '{"cniVersion":"1.1.0","name":"x",', code: 6, msg: /unmarshall network config/ },
  { name: 'an array', plugin: 'host-local', stdin: '[1,2]', code: 6, msg: /not a JSON object/ },
  { name: 'a string', plugin: 'portmap', stdin: '"hello"', code: 6, msg: /not a JSON object/ },
  { name: 'no name', plugin: 'loopback', stdin: json({ cniVersion: '1.1.0', type: 'loopback' }), code: 7, msg: /missing network name/ },
  { name: 'a name with a slash', plugin: 'loopback', stdin: json({ cniVersion: '1.1.0', name: '../x', type: 'loopback' }), code: 7, msg: /invalid characters found in network name/ },
  { name: 'an unknown version', plugin: 'bridge', stdin: json(base('bridge', { cniVersion: '9.9.9' })), code: 1, msg: /9\.9\.9/ },
  { name: 'a version that is not a string', plugin: 'bridge', stdin: json(base('bridge', { cniVersion: 1 })), code: 6, msg: /cniVersion must be a string/ },
  { name: 'bridge mtu as a string', plugin: 'bridge', stdin: json(base('bridge', { mtu: 'big', ipam })), code: 7, msg: /mtu/ },
  { name: 'bridge mtu out of range', plugin: 'bridge', stdin: json(base('bridge', { mtu: 70000, ipam })), code: 7, msg: /mtu/ },
  { name: 'bridge vlan out of range', plugin: 'bridge', stdin: json(base('bridge', { vlan: 5000, ipam })), code: 7, msg: /vlan/i },
  { name: 'bridge name too long', plugin: 'bridge', stdin: json(base('bridge', { bridge: 'a-very-long-bridge-name', ipam })), code: 7, msg: /bridge/ },
  { name: 'IPAM prefix /33', plugin: 'bridge', stdin: json(base('bridge', { ipam: { ...ipam, ranges: [[{ subnet: '10.240.250.0/33' }]] } })), code: 7, msg: /10\.240\.250\.0\/33/ },
  { name: 'IPAM subnet not a CIDR', plugin: 'host-local', stdin: json(base('bridge', { ipam: { ...ipam, ranges: [[{ subnet: 'not-a-cidr' }]] } })), code: 7, msg: /not-a-cidr/ },
  { name: 'IPAM ranges not an array', plugin: 'host-local', stdin: json(base('bridge', { ipam: { ...ipam, ranges: 'x' } })), code: 7, msg: /ranges/ },
  { name: 'portmap without prevResult', plugin: 'portmap', stdin: json(base('portmap', { runtimeConfig: { portMappings: [{ hostPort: 8080, containerPort: 80, protocol: 'tcp' }] } })), code: 7, msg: /chained plugin/ },
  {
    name: 'portmap host port out of range',
    plugin: 'portmap',
    stdin: json(base('portmap', { prevResult: prev, runtimeConfig: { portMappings: [{ hostPort: 70000, containerPort: 80, protocol: 'tcp' }] } })),
    code: 7,
    msg: /70000/,
  },
  {
    name: 'portmap protocol unknown',
    plugin: 'portmap',
    stdin: json(base('portmap', { prevResult: prev, runtimeConfig: { portMappings: [{ hostPort: 8080, containerPort: 80, protocol: 'icmp' }] } })),
    code: 7,
    msg: /icmp/,
  },
  { name: 'portmap markMasqBit out of range', plugin: 'portmap', stdin: json(base('portmap', { prevResult: prev, markMasqBit: 40 })), code: 7, msg: /markMasqBit/ },
  {
    name: 'portmap conditions with a line break (rule injection)',
    plugin: 'portmap',
    stdin: json(base('portmap', { prevResult: prev, conditionsV4: ['-s', '10.0.0.1\n-A INPUT -j ACCEPT'], runtimeConfig: { portMappings: [{ hostPort: 8080, containerPort: 80, protocol: 'tcp' }] } })),
    code: 7,
    msg: /conditionsV4.*line break/,
  },
  { name: 'prevResult of the wrong shape', plugin: 'portmap', stdin: json(base('portmap', { prevResult: { ips: 'x' } })), code: 6, msg: /"ips" must be an array/ },
  { name: 'CNI_IFNAME too long', plugin: 'bridge', stdin: json(base('bridge')), env: { CNI_IFNAME: 'a-very-long-ifname' }, code: 4, msg: /interface name is too long/ },
  { name: 'CNI_IFNAME with a slash', plugin: 'bridge', stdin: json(base('bridge')), env: { CNI_IFNAME: 'a/b' }, code: 4, msg: /interface name contains/ },
  { name: 'no CNI_CONTAINERID', plugin: 'bridge', stdin: json(base('bridge')), env: { CNI_CONTAINERID: undefined }, code: 4, msg: /CNI_CONTAINERID/ },
  { name: 'a container ID with a space', plugin: 'host-local', stdin: json(base('bridge', { ipam })), env: { CNI_CONTAINERID: 'a b' }, code: 4, msg: /containerID/ },
  { name: 'an unknown command', plugin: 'loopback', stdin: json(base('loopback')), env: { CNI_COMMAND: 'EXPLODE' }, code: 4, msg: /EXPLODE/ },
  { name: 'a netns that does not exist', plugin: 'bridge', stdin: json(base('bridge', { ipam })), env: { CNI_NETNS: '/run/netns/tscni-no-such-ns' }, code: 8, msg: /tscni-no-such-ns/ },
  { name: 'a netns that is a plain file', plugin: 'loopback', stdin: json(base('loopback')), env: { CNI_NETNS: '/etc/hostname' }, code: 8, msg: /not a network namespace/ },
  { name: 'CHECK before 0.4.0', plugin: 'bridge', stdin: json(base('bridge', { cniVersion: '0.3.1', ipam })), env: { CNI_COMMAND: 'CHECK' }, code: 1, msg: /does not allow CHECK/ },
  { name: 'GC before 1.1.0', plugin: 'host-local', stdin: json(base('bridge', { cniVersion: '1.0.0', ipam })), env: { CNI_COMMAND: 'GC' }, code: 1, msg: /does not allow GC/ },
];

describe('bad input: a CNI error, nothing changed', () => {
  it.each(CASES.map((c) => [c.name, c] as const))('%s', (_name, c) => {
    const before = hostState();
    const env: Record<string, string> = {
      PATH: '/usr/sbin:/usr/bin:/sbin:/bin',
      CNI_COMMAND: 'ADD',
      CNI_CONTAINERID: 'bad1',
      CNI_NETNS: ns.path,
      CNI_IFNAME: 'eth0',
      CNI_PATH: BIN_DIR,
    };
    for (const [k, v] of Object.entries(c.env ?? {})) {
      if (v === undefined) delete env[k];
      else env[k] = v;
    }
    const r = spawnSync(binPath(c.plugin), [], { env, input: c.stdin, encoding: 'utf8', timeout: 20_000 });
    expect(r.status, r.stdout + r.stderr).toBe(1);
    const doc = JSON.parse(r.stdout) as { code: number; msg: string; details?: string };
    expect(doc.code, r.stdout).toBe(c.code);
    expect(`${doc.msg} ${doc.details ?? ''}`).toMatch(c.msg);
    // One document, no stack trace on the protocol channel.
    expect(r.stdout).not.toMatch(/\n\s+at /);
    expect(hostState()).toBe(before);
  });
});
