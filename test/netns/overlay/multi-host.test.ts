/**
 * Three simulated hosts on one machine: each a network namespace with an
 * "underlay" veth on a test bridge (its own namespace, with etcd on
 * 172.31.250.1), a bridge + etcd-subnet + vxlan chain, and the overlay agent
 * the plugin starts. Nothing here touches the machine's own namespace.
 *
 *   ul ns: bridge toul0 172.31.250.1/24, etcd :2379
 *     |-- h1 ns: ul0 172.31.250.11 -- tscni.42 (VXLAN) -- tob0 (pods' gateway) -- pod p1
 *     |-- h2 ns: ul0 172.31.250.12 -- ...                                      -- pod p2
 *     `-- h3 ns: ul0 172.31.250.13 -- ...                                      -- pod p3
 */
import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { processStartTime } from '../../../lib/file-lock.ts';
import { BIN_DIR } from '../../helpers/plugin.ts';
import { sh, tryRun } from '../../helpers/netns.ts';
import { startEtcd, type TestEtcd } from './etcd.ts';

const TAG = Math.random().toString(16).slice(2, 6);
const UL = `tscni-o-ul-${TAG}`;
const NET = `to-mh-${TAG}`;
const TTL = 3;
const DEV = 'tscni.42';

interface Host {
  n: number;
  ns: string;
  ip: string;
  dir: string;
  pods: string[];
}

const hosts: Host[] = [];
const namespaces: string[] = [];
let etcd: TestEtcd | undefined;
const results = new Map<string, Record<string, unknown>>();

function inNs(ns: string, argv: string[], env: Record<string, string> = {}, input?: string) {
  const r = spawnSync('ip', ['netns', 'exec', ns, ...argv], { env: { PATH: process.env.PATH ?? '', ...env }, input, encoding: 'utf8' });
  return { code: r.status ?? -1, stdout: r.stdout ?? '', stderr: r.stderr ?? '' };
}

function bridgeConf(h: Host): Record<string, unknown> {
  return {
    cniVersion: '1.1.0',
    name: NET,
    type: 'bridge',
    bridge: 'tob0',
    isGateway: true,
    mtu: 1450,
    ipam: {
      type: 'etcd-subnet',
      etcd: { endpoints: ['http://172.31.250.1:2379'], prefix: '/tscni-o' },
      clusterCIDR: '10.252.128.0/17',
      subnetLen: 24,
      hostId: `to-h${h.n}`,
      publicIp: h.ip,
      leaseTTL: TTL,
      dataDir: h.dir,
    },
  };
}

const vxlanConf = (h: Host, prevResult: unknown) => ({ cniVersion: '1.1.0', name: NET, type: 'vxlan', vni: 42, dataDir: h.dir, prevResult });

/** Run one plugin of the chain inside host `h`, as that host's runtime would. */
function plugin(h: Host, name: string, command: string, pod: string, config: unknown) {
  const r = inNs(h.ns, [join(BIN_DIR, name)], { CNI_COMMAND: command, CNI_CONTAINERID: pod, CNI_NETNS: `/run/netns/${pod}`, CNI_IFNAME: 'eth0', CNI_PATH: BIN_DIR }, JSON.stringify(config));
  return { ...r, json: r.stdout.trim() ? (JSON.parse(r.stdout) as Record<string, unknown>) : undefined };
}

/** ADD the chain (bridge with etcd-subnet, then vxlan) for a new pod on `h`. */
function addPod(h: Host, name: string): { code: number; json?: Record<string, unknown>; stderr: string } {
  const pod = `tscni-o-${name}-${TAG}`;
  sh(['ip', 'netns', 'add', pod]);
  namespaces.push(pod);
  const b = plugin(h, 'bridge', 'ADD', pod, bridgeConf(h));
  if (b.code !== 0) return b;
  const v = plugin(h, 'vxlan', 'ADD', pod, vxlanConf(h, b.json));
  if (v.code !== 0) return v;
  h.pods.push(pod);
  results.set(pod, b.json as Record<string, unknown>);
  return b;
}

function delPod(h: Host, pod: string): void {
  const prev = results.get(pod);
  const v = plugin(h, 'vxlan', 'DEL', pod, vxlanConf(h, prev));
  expect(v.code, v.stdout + v.stderr).toBe(0);
  const b = plugin(h, 'bridge', 'DEL', pod, bridgeConf(h));
  expect(b.code, b.stdout + b.stderr).toBe(0);
  h.pods = h.pods.filter((p) => p !== pod);
}

const podIp = (pod: string) => ((results.get(pod)?.ips as Array<{ address: string }>)[0]?.address ?? '').split('/')[0] as string;

/** The remote subnets host `h`'s VXLAN device has a route, an ARP and an FDB entry for. */
function entries(h: Host): { routes: string[]; neighs: string[]; fdb: string[] } {
  const routes = JSON.parse(inNs(h.ns, ['ip', '-j', 'route', 'show', 'dev', DEV]).stdout || '[]') as Array<{ dst: string; gateway?: string }>;
  const neighs = JSON.parse(inNs(h.ns, ['ip', '-j', 'neigh', 'show', 'dev', DEV]).stdout || '[]') as Array<{ dst: string }>;
  const fdb = JSON.parse(inNs(h.ns, ['bridge', '-j', 'fdb', 'show', 'dev', DEV]).stdout || '[]') as Array<{ mac: string; dst?: string }>;
  return {
    routes: routes.filter((r) => r.gateway).map((r) => r.dst).sort(),
    neighs: neighs.map((n) => n.dst).sort(),
    fdb: fdb.filter((f) => f.dst).map((f) => f.dst as string).sort(),
  };
}

function subnetOf(h: Host): string {
  return (JSON.parse(readFileSync(join(h.dir, `${NET}.lease.json`), 'utf8')) as { subnet: string }).subnet;
}

/** What `h` should hold for the hosts in `others`. */
function expected(others: Host[]): { routes: string[]; neighs: string[]; fdb: string[] } {
  return {
    routes: others.map(subnetOf).sort(),
    neighs: others.map((o) => subnetOf(o).split('/')[0] as string).sort(),
    fdb: others.map((o) => o.ip).sort(),
  };
}

async function waitFor(what: string, fn: () => boolean, ms: number): Promise<number> {
  const t0 = Date.now();
  while (!fn()) {
    if (Date.now() - t0 > ms) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
  return Date.now() - t0;
}

function agentPid(h: Host): number | undefined {
  try {
    return Number(readFileSync(join(h.dir, `${NET}.agent.pid`), 'utf8').split(' ')[0]);
  } catch {
    return undefined;
  }
}

/** Connect from pod `from` to a listener in pod `to`; the address the listener saw (proves no NAT). */
async function peerSeenBy(from: string, to: string): Promise<string> {
  const server = spawn('ip', ['netns', 'exec', to, 'python3', '-c', "import socket;s=socket.socket();s.setsockopt(socket.SOL_SOCKET,socket.SO_REUSEADDR,1);s.bind(('0.0.0.0',7777));s.listen();print('ready',flush=True);c,a=s.accept();print(a[0],flush=True)"]);
  let out = '';
  server.stdout.on('data', (d: Buffer) => (out += d.toString()));
  await waitFor('listener', () => out.includes('ready'), 5_000);
  const c = tryRun(['ip', 'netns', 'exec', from, 'python3', '-c', `import socket;socket.create_connection(('${podIp(to)}',7777),3).close()`]);
  if (c.code !== 0) {
    server.kill('SIGKILL');
    throw new Error(`connect ${from} -> ${to} failed: ${c.stderr}`);
  }
  await waitFor('peer address', () => out.trim().split('\n').length >= 2, 5_000);
  server.kill('SIGKILL');
  return out.trim().split('\n')[1] as string;
}

const ping = (from: string, to: string, extra: string[] = []) => tryRun(['ip', 'netns', 'exec', from, 'ping', '-c', '1', '-W', '2', ...extra, podIp(to)]).code;

beforeAll(async () => {
  const used = sh(['ip', 'route']);
  if (/10\.252\.|172\.31\.250\./.test(used)) throw new Error(`the test ranges are in use on this machine:\n${used}`);
  sh(['ip', 'netns', 'add', UL]);
  namespaces.push(UL);
  sh(['ip', 'netns', 'exec', UL, 'ip', 'link', 'set', 'lo', 'up']);
  sh(['ip', 'netns', 'exec', UL, 'ip', 'link', 'add', 'toul0', 'type', 'bridge']);
  sh(['ip', 'netns', 'exec', UL, 'ip', 'addr', 'add', '172.31.250.1/24', 'dev', 'toul0']);
  sh(['ip', 'netns', 'exec', UL, 'ip', 'link', 'set', 'toul0', 'up']);
  for (const n of [1, 2, 3]) {
    const ns = `tscni-o-h${n}-${TAG}`;
    sh(['ip', 'netns', 'add', ns]);
    namespaces.push(ns);
    const h: Host = { n, ns, ip: `172.31.250.1${n}`, dir: mkdtempSync(join(tmpdir(), `tscni-o-h${n}-`)), pods: [] };
    hosts.push(h);
    sh(['ip', 'netns', 'exec', UL, 'ip', 'link', 'add', `toul${n}`, 'type', 'veth', 'peer', 'name', 'ul0', 'netns', ns]);
    sh(['ip', 'netns', 'exec', UL, 'ip', 'link', 'set', `toul${n}`, 'master', 'toul0', 'up']);
    sh(['ip', 'netns', 'exec', ns, 'ip', 'link', 'set', 'lo', 'up']);
    sh(['ip', 'netns', 'exec', ns, 'ip', 'addr', 'add', `${h.ip}/24`, 'dev', 'ul0']);
    sh(['ip', 'netns', 'exec', ns, 'ip', 'link', 'set', 'ul0', 'up']);
  }
  etcd = await startEtcd({ netns: UL, host: '172.31.250.1' });
}, 60_000);

afterAll(async () => {
  for (const h of hosts) {
    const pid = agentPid(h);
    if (pid) tryRun(['kill', '-9', String(pid)]);
  }
  await etcd?.stop();
  for (const ns of namespaces.reverse()) tryRun(['ip', 'netns', 'del', ns]);
  for (const h of hosts) rmSync(h.dir, { recursive: true, force: true });
});

describe('multi-host overlay (3 hosts, VXLAN, etcd)', () => {
  it('pods on three hosts reach each other by pod address, without NAT, at MTU underlay-50', async () => {
    for (const h of hosts) {
      const r = addPod(h, `p${h.n}`);
      expect(r.code, JSON.stringify(r)).toBe(0);
    }
    const [h1, h2, h3] = hosts as [Host, Host, Host];
    expect(new Set(hosts.map(subnetOf)).size).toBe(3);
    for (const h of hosts) await waitFor(`entries on h${h.n}`, () => JSON.stringify(entries(h)) === JSON.stringify(expected(hosts.filter((o) => o !== h))), 10_000);
    const [p1, p2, p3] = [h1.pods[0], h2.pods[0], h3.pods[0]] as [string, string, string];
    expect(ping(p1, p2)).toBe(0);
    expect(ping(p1, p3)).toBe(0);
    expect(ping(p3, p2)).toBe(0);
    expect(await peerSeenBy(p1, p2)).toBe(podIp(p1));
    expect(await peerSeenBy(p3, p1)).toBe(podIp(p3));
    const link = JSON.parse(inNs(h1.ns, ['ip', '-d', '-j', 'link', 'show', DEV]).stdout) as Array<{ mtu: number; linkinfo: { info_data: { id: number; port: number; local: string; learning: boolean } } }>;
    expect(link[0]?.mtu).toBe(1450);
    expect(link[0]?.linkinfo.info_data).toMatchObject({ id: 42, port: 4789, local: h1.ip, learning: false });
    // The largest unfragmented packet fits (1450 - 28), one byte more does not.
    expect(ping(p1, p2, ['-M', 'do', '-s', '1422'])).toBe(0);
    expect(ping(p1, p2, ['-M', 'do', '-s', '1423'])).not.toBe(0);
  });

  it('a second pod on a host changes no entry (reconciliation is idempotent) and reaches the others', async () => {
    const [h1, h2] = hosts as [Host, Host];
    const before = JSON.stringify(entries(h1));
    const pid = agentPid(h1);
    expect(addPod(h1, 'p1b').code).toBe(0);
    expect(agentPid(h1)).toBe(pid); // the running agent is reused, not duplicated
    expect(JSON.stringify(entries(h1))).toBe(before);
    expect(ping(h1.pods[1] as string, h2.pods[0] as string)).toBe(0);
  });

  it('a restarted agent (host software restart): same subnet, the running pods undisturbed, no entry changed anywhere', async () => {
    const [h1, h2, h3] = hosts as [Host, Host, Host];
    const subnet = subnetOf(h1);
    const before = hosts.map((h) => JSON.stringify(entries(h)));
    const pid = agentPid(h1) as number;
    process.kill(pid, 'SIGTERM');
    await waitFor('agent h1 stopped', () => processStartTime(pid) === undefined, 5_000);
    expect(ping(h2.pods[0] as string, h1.pods[0] as string)).toBe(0);
    expect(addPod(h1, 'p1c').code).toBe(0);
    await waitFor('a new agent on h1', () => (agentPid(h1) ?? pid) !== pid, 5_000);
    expect(subnetOf(h1)).toBe(subnet);
    expect(hosts.map((h) => JSON.stringify(entries(h)))).toEqual(before);
    expect(ping(h3.pods[0] as string, h1.pods[0] as string)).toBe(0);
    expect(plugin(h1, 'vxlan', 'CHECK', h1.pods[0] as string, vxlanConf(h1, results.get(h1.pods[0] as string))).code).toBe(0);
  });

  it('etcd down: running pods keep talking, a new ADD fails with code 11; after a restart ADD works again', async () => {
    const [h1, h2] = hosts as [Host, Host];
    const e = etcd as TestEtcd;
    await e.kill();
    try {
      expect(ping(h1.pods[0] as string, h2.pods[0] as string)).toBe(0);
      const r = addPod(h2, 'p2-down');
      expect(r.code).not.toBe(0);
      expect(r.json).toMatchObject({ code: 11, msg: expect.stringContaining('http://172.31.250.1:2379') });
    } finally {
      await e.restart();
    }
    const again = addPod(h2, 'p2b');
    expect(again.code, JSON.stringify(again)).toBe(0);
    expect(ping(h2.pods[1] as string, h1.pods[0] as string)).toBe(0);
  });

  it('a dead host: its lease expires and its entries disappear on the others within one TTL', async () => {
    const [h1, h2, h3] = hosts as [Host, Host, Host];
    const pid = agentPid(h3);
    expect(pid).toBeGreaterThan(0);
    process.kill(pid as number, 'SIGKILL');
    const t = await waitFor('h3 gone from h1 and h2', () => JSON.stringify(entries(h1)) === JSON.stringify(expected([h2])) && JSON.stringify(entries(h2)) === JSON.stringify(expected([h1])), (TTL + 4) * 1000);
    // Expiry comes at most one TTL after the last renewal (every TTL/3) plus etcd's expiry tick (500 ms) and one reconcile.
    expect(t).toBeLessThanOrEqual((TTL + 1.5) * 1000);
    expect(ping(h1.pods[0] as string, h2.pods[0] as string)).toBe(0);
  });

  it("the host's last pod leaving removes the device and the agent, and the other hosts drop its entries", async () => {
    const [h1, h2] = hosts as [Host, Host];
    const pid = agentPid(h2);
    for (const pod of [...h2.pods]) delPod(h2, pod);
    expect(inNs(h2.ns, ['ip', 'link', 'show', DEV]).code).not.toBe(0);
    expect(processStartTime(pid as number)).toBeUndefined(); // gone (or a zombie until init reaps it)
    await waitFor('h2 gone from h1', () => entries(h1).routes.length === 0, 5_000);
    expect(entries(h1)).toEqual({ routes: [], neighs: [], fdb: [] });
    // DEL again is a no-op; CHECK now names the missing device.
    const gone = 'tscni-o-gone';
    expect(plugin(h2, 'vxlan', 'DEL', gone, vxlanConf(h2, undefined)).code).toBe(0);
    const check = plugin(h2, 'vxlan', 'CHECK', gone, vxlanConf(h2, { cniVersion: '1.1.0' }));
    expect(check.json).toMatchObject({ code: 999, msg: `vxlan: device ${DEV} is missing` });
  });
});
