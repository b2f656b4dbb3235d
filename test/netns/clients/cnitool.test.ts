/**
 * The real cnitool (built from Debian's libcni source, see
 * test/helpers/clients/cnitool.ts) driving our plugins: bridge + host-local +
 * portmap with the portMappings capability, as a node's conflist has them.
 * Every scenario checks the kernel (addresses, veths, iptables), the disk
 * (reservations, libcni's result cache, portmap's records) and real traffic
 * through the host port.
 *
 * TSCNI_CLIENTS_CNI_PATH=/usr/lib/cni runs the same scenarios against the Go
 * reference plugins, for comparison.
 */
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { cnitool, ensureCnitool, libcniVersion } from '../../helpers/clients/cnitool.ts';
import { EMPTY_STATE, PLUGIN_DIR, addrsIn, cleanupClients, fetchTcp, hostPort, netState, newClientNet, startServerIn, stopServers, waitFor, writeConflist, type ClientNet } from '../../helpers/clients/common.ts';
import { createNetns, removeAllNetns } from '../../helpers/netns.ts';
import { binPath } from '../../helpers/plugin.ts';

/** libcni 1.1.x has no cache-dir option: cnitool always uses this one. */
const CACHE = '/var/lib/cni';
let bin = '';
const madeNets: string[] = [];

beforeAll(() => {
  bin = ensureCnitool();
});
afterEach(() => {
  removeAllNetns();
  for (const name of madeNets.splice(0)) {
    const d = join(CACHE, 'results');
    for (const f of existsSync(d) ? readdirSync(d) : []) if (f.startsWith(`${name}-`)) rmSync(join(d, f), { force: true });
  }
  cleanupClients();
});
afterAll(() => cleanupClients());

/** cnitool's container ID: "cnitool-" + the first 20 hex digits of sha512(netns path). */
const cnitoolId = (netns: string): string => `cnitool-${createHash('sha512').update(netns).digest('hex').slice(0, 20)}`;

interface Setup {
  net: ClientNet;
  netDir: string;
  run: (verb: string, netns: string, extra?: Record<string, string>) => { code: number; stdout: string; stderr: string };
  runOk: (verb: string, netns: string, extra?: Record<string, string>) => string;
  tscni: (args: string[]) => { code: number; stdout: string; stderr: string };
  cacheFile: (netns: string) => string;
}

function setup(opts: Parameters<typeof writeConflist>[2] = {}): Setup {
  const net = newClientNet();
  madeNets.push(net.name);
  const netDir = join(net.dir, 'net.d');
  writeConflist(netDir, net, opts);
  const run = (verb: string, netns: string, extra: Record<string, string> = {}) => cnitool(bin, verb, net.name, netns, { netDir, cniPath: PLUGIN_DIR, extra });
  return {
    net,
    netDir,
    run,
    runOk: (verb, netns, extra = {}) => {
      const r = run(verb, netns, extra);
      if (r.code !== 0) throw new Error(`cnitool ${verb} ${net.name} ${netns} failed (exit ${r.code}): ${r.stdout} ${r.stderr}`);
      return r.stdout;
    },
    tscni: (args) => {
      mkdirSync(join(net.dir, 'tscni-state'), { recursive: true });
      const r = spawnSync(binPath('tscni'), args, {
        encoding: 'utf8',
        env: { PATH: process.env.PATH ?? '/usr/sbin:/usr/bin:/sbin:/bin', NETCONFPATH: netDir, CNI_PATH: PLUGIN_DIR, CNI_CACHE_DIR: CACHE, TSCNI_STATE_DIR: join(net.dir, 'tscni-state') },
      });
      return { code: r.status ?? -1, stdout: r.stdout, stderr: r.stderr };
    },
    cacheFile: (netns) => join(CACHE, 'results', `${net.name}-${cnitoolId(netns)}-eth0`),
  };
}

const portMappings = (hp: number, containerPort = 8080) => JSON.stringify({ portMappings: [{ hostPort: hp, containerPort, protocol: 'tcp' }] });

interface AddResult {
  cniVersion: string;
  ips: { address: string; gateway?: string }[];
  interfaces: { name: string; sandbox?: string }[];
}

describe(`cnitool (libcni ${(() => { try { return libcniVersion(); } catch { return 'missing'; } })()})`, () => {
  it.each(['iptables', 'nftables'] as const)('%s: add with CAP_ARGS port mappings, check, del: the pod is wired, its host port answers, DEL leaves nothing', async (backend) => {
    const s = setup({ backend });
    const ns = createNetns('c');
    const hp = hostPort();
    const cap = { CAP_ARGS: portMappings(hp) };
    const result = JSON.parse(s.runOk('add', ns.path, cap)) as AddResult;
    expect(result.cniVersion).toBe('1.0.0');
    const addr = result.ips[0]?.address as string;
    expect(addr).toMatch(new RegExp(`^${s.net.prefix.replace(/\./g, '\\.')}\\.\\d+/24$`));
    const ip = addr.split('/')[0] as string;
    expect(addrsIn(ns.path)).toEqual([addr]);
    expect(result.interfaces.find((i) => i.sandbox)?.sandbox).toBe(ns.path);

    const cid = cnitoolId(ns.path);
    const state = netState(s.net);
    expect(state.veths).toHaveLength(1);
    expect(state.reservations).toEqual([ip]);
    if (backend === 'iptables') {
      expect(state.natRules.some((l) => l.includes(cid) && l.includes('MASQUERADE'))).toBe(true);
      expect(state.natRules.some((l) => l.includes(`--to-destination ${ip}:8080`) && l.includes(`--dport ${hp}`))).toBe(true);
      expect(state.nftLines).toEqual([]);
    } else {
      expect(state.natRules).toEqual([]);
      expect(state.nftLines.some((l) => l.includes(cid) && l.includes('masquerade'))).toBe(true);
      expect(state.nftLines.some((l) => l.includes(`tcp . ${hp}`) && l.includes(`${ip} . 8080`))).toBe(true);
    }
    const cached = JSON.parse(readFileSync(s.cacheFile(ns.path), 'utf8')) as Record<string, unknown>;
    expect(cached).toMatchObject({ kind: 'cniCacheV1', containerId: cid, ifName: 'eth0', networkName: s.net.name, capabilityArgs: { portMappings: [{ hostPort: hp, containerPort: 8080 }] } });

    await startServerIn(ns.path, 8080, 'pod1');
    expect(fetchTcp('127.0.0.1', hp)).toMatch(/^pod1 /);
    expect(fetchTcp(ip, 8080)).toBe(`pod1 ${s.net.gateway}`);

    const check = s.run('check', ns.path, cap);
    expect(check.stderr).toBe('');
    expect(check.code).toBe(0);

    s.runOk('del', ns.path, cap);
    expect(netState(s.net)).toEqual(EMPTY_STATE);
    expect(existsSync(s.cacheFile(ns.path))).toBe(false);
    expect(fetchTcp('127.0.0.1', hp)).toBeUndefined();
    // DEL is idempotent.
    s.runOk('del', ns.path, cap);
  });

  it('DEL without CAP_ARGS (libcni passes no port mappings) still removes the DNAT rules', async () => {
    const s = setup();
    const ns = createNetns('c');
    const hp = hostPort();
    const result = JSON.parse(s.runOk('add', ns.path, { CAP_ARGS: portMappings(hp) })) as AddResult;
    const ip = (result.ips[0]?.address as string).split('/')[0] as string;
    await startServerIn(ns.path, 8080, 'pod1');
    expect(fetchTcp('127.0.0.1', hp)).toMatch(/^pod1 /);
    expect(netState(s.net).natRules.some((l) => l.includes(`--to-destination ${ip}:8080`))).toBe(true);

    s.runOk('del', ns.path);
    expect(netState(s.net)).toEqual(EMPTY_STATE);
    expect(fetchTcp('127.0.0.1', hp)).toBeUndefined();
  });

  it("DEL after the pod's address was flushed, and DEL after its netns is gone, remove the masquerade rules and the reservation", () => {
    const s = setup();
    const flushed = createNetns('c');
    const gone = createNetns('c');
    s.runOk('add', flushed.path);
    s.runOk('add', gone.path);
    expect(netState(s.net).reservations).toHaveLength(2);
    expect(netState(s.net).natRules.filter((l) => l.includes('MASQUERADE'))).toHaveLength(2);

    flushed.exec(['ip', 'addr', 'flush', 'dev', 'eth0']);
    expect(addrsIn(flushed.path)).toEqual([]);
    s.runOk('del', flushed.path);
    expect(netState(s.net).natRules.filter((l) => l.includes(cnitoolId(flushed.path)))).toEqual([]);
    expect(netState(s.net).reservations).toHaveLength(1);

    gone.remove();
    s.runOk('del', gone.path);
    expect(netState(s.net)).toEqual(EMPTY_STATE);
    expect(existsSync(s.cacheFile(gone.path))).toBe(false);
  });

  it('one result cache for both runners: cnitool add -> tscni del, tscni add -> cnitool check and del', async () => {
    const s = setup();
    const a = createNetns('c');
    const hp = hostPort();
    s.runOk('add', a.path, { CAP_ARGS: portMappings(hp) });
    await startServerIn(a.path, 8080, 'a');
    expect(fetchTcp('127.0.0.1', hp)).toMatch(/^a /);
    const del = s.tscni(['del', s.net.name, a.path]);
    expect(del.stderr).toBe('');
    expect(del.code).toBe(0);
    expect(netState(s.net)).toEqual(EMPTY_STATE);
    expect(existsSync(s.cacheFile(a.path))).toBe(false);

    const b = createNetns('c');
    const add = s.tscni(['add', s.net.name, b.path]);
    expect(add.code).toBe(0);
    expect(existsSync(s.cacheFile(b.path))).toBe(true);
    expect(netState(s.net).reservations).toHaveLength(1);
    s.runOk('check', b.path);
    s.runOk('del', b.path);
    expect(netState(s.net)).toEqual(EMPTY_STATE);
    expect(existsSync(s.cacheFile(b.path))).toBe(false);
  });

  it('cnitool add, then tscni gc (libcni 1.1 has no gc verb) removes the stale attachment: rules, DNAT, reservation, cache', async () => {
    const s = setup();
    const ns = createNetns('c');
    const hp = hostPort();
    s.runOk('add', ns.path, { CAP_ARGS: portMappings(hp) });
    await startServerIn(ns.path, 8080, 'gc');
    expect(fetchTcp('127.0.0.1', hp)).toMatch(/^gc /);
    // The pod is gone: its processes end, its namespace (and so its veth) goes away.
    stopServers();
    ns.remove();
    await waitFor(() => netState(s.net).veths.length === 0, 'the veth to go with the namespace');
    const gc = s.tscni(['gc', s.net.name]);
    expect(gc.stderr).toBe('');
    expect(gc.code).toBe(0);
    expect(netState(s.net)).toEqual(EMPTY_STATE);
    expect(existsSync(s.cacheFile(ns.path))).toBe(false);
    expect(fetchTcp('127.0.0.1', hp)).toBeUndefined();
  });

  it('a conflist with cniVersions: libcni 1.1 uses cniVersion (1.0.0), tscni the highest it supports (1.1.0) and deletes what cnitool made', () => {
    const s = setup({ cniVersion: '1.0.0', cniVersions: ['0.4.0', '1.0.0', '1.1.0'] });
    const a = createNetns('c');
    const b = createNetns('c');
    expect((JSON.parse(s.runOk('add', a.path)) as AddResult).cniVersion).toBe('1.0.0');
    const add = s.tscni(['add', s.net.name, b.path]);
    expect(add.code).toBe(0);
    expect((JSON.parse(add.stdout) as AddResult).cniVersion).toBe('1.1.0');
    expect(netState(s.net).veths).toHaveLength(2);
    expect(s.tscni(['check', s.net.name, a.path]).code).toBe(0);
    expect(s.tscni(['del', s.net.name, a.path]).code).toBe(0);
    expect(netState(s.net).veths).toHaveLength(1);
    // libcni 1.1 cannot read a 1.1.0 result: a cache written at 1.1.0 is for tscni (or libcni >= 1.2) to use.
    expect(s.run('check', b.path).stderr).toContain('unsupported CNI result version "1.1.0"');
    expect(s.tscni(['check', s.net.name, b.path]).code).toBe(0);
    expect(s.tscni(['del', s.net.name, b.path]).code).toBe(0);
    expect(netState(s.net)).toEqual(EMPTY_STATE);
  });
});
