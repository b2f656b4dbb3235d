/**
 * `tscni network` and names on the real kernel: conflists written by
 * `network create`, pods made by `tscni up`, real DNS queries (`getent
 * hosts` inside the pod's namespaces through `tscni exec`, and raw UDP/TCP
 * queries to the network's name server).
 */
import dnsPacket from 'dns-packet';
import { existsSync, mkdtempSync, readdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { createSocket } from 'node:dgram';
import { connect } from 'node:net';
import { spawn } from 'node:child_process';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { containerIdForNetns } from '../../../cli/context.ts';
import { PLUGIN_NAMES } from '../../../plugins/registry.ts';
import { createNetns, removeAllNetns, sh } from '../../helpers/netns.ts';
import { binPath } from '../../helpers/plugin.ts';
import { removeSharedIfNew, snapshotShared } from '../../helpers/portmap-shared.ts';
import { alive, cleanupNetEnvs, createNetwork, dnsBase, links, networkName, newNetEnv, podName, resolveIn, serverPid, serverPids, tscni, tscniAsync, tscniOk } from './helpers.ts';

// Pods published with -p create portmap's shared chains: they go at the end if this file made them.
const shared = snapshotShared();
afterEach(() => {
  cleanupNetEnvs();
  removeAllNetns();
});
afterAll(() => removeSharedIfNew(shared));

const ipOf = (r: { stdout: string }) => ((JSON.parse(r.stdout) as { result: { ips: { address: string }[] } }).result.ips[0]?.address ?? '').replace(/\/\d+$/, '');

/** Map with at most `width` calls in flight; results in input order. */
async function inParallel<T, R>(items: readonly T[], width: number, fn: (x: T) => Promise<R>): Promise<R[]> {
  const out: R[] = [];
  let next = 0;
  const worker = async () => {
    while (next < items.length) {
      const i = next++;
      out[i] = await fn(items[i] as T);
    }
  };
  await Promise.all(Array.from({ length: width }, worker));
  return out;
}

async function waitFor(what: string, fn: () => boolean, ms = 5000): Promise<void> {
  const end = Date.now() + ms;
  while (Date.now() < end) {
    if (fn()) return;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`timed out waiting for ${what}`);
}

describe('network create', () => {
  it('a misspelt option is an error, not a silent default (nothing is written)', () => {
    const e = newNetEnv();
    const name = networkName();
    const r = tscni(e, ['network', 'create', name, '--subent', '10.246.77.0/24']);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('Unknown argument: subent');
    expect(existsSync(join(e.netDir, `${name}.conflist`))).toBe(false);
  });

  it("writes podman's layout: bridge+host-local, portmap, firewall/tuning when registered, dnsname; bridges and subnets allocated", () => {
    const e = newNetEnv();
    const a = createNetwork(e, networkName());
    const expected = ['bridge', 'portmap', ...['firewall', 'tuning'].filter((p) => PLUGIN_NAMES.includes(p)), 'dnsname'];
    expect(a.conflist.plugins.map((p) => p.type)).toEqual(expected);
    const main = a.conflist.plugins[0] as { bridge: string; ipMasq: boolean; ipam: { ranges: { subnet: string; gateway: string }[][]; routes: unknown[] } };
    expect(main.bridge).toBe(`${e.bridgePrefix}0`);
    expect(main.ipMasq).toBe(true);
    expect(main.ipam.routes).toEqual([{ dst: '0.0.0.0/0' }]);
    const first = main.ipam.ranges[0]?.[0]?.subnet ?? '';
    expect(first).toMatch(/^10\.246\.\d+\.0\/24$/);
    const b = createNetwork(e, networkName(), ['--no-dns', '--ipv6']);
    const mainB = b.conflist.plugins[0] as { bridge: string; ipam: { ranges: { subnet: string }[][] } };
    expect(mainB.bridge).toBe(`${e.bridgePrefix}1`);
    expect(b.conflist.plugins.map((p) => p.type)).not.toContain('dnsname');
    const [v4, v6] = mainB.ipam.ranges.map((r) => r[0]?.subnet);
    expect(v4).not.toBe(first);
    expect(v6).toMatch(/^fd10:246:[0-9a-f:]*\/64$/);
    // ls lists both, with driver, subnet and gateway
    const ls = tscniOk(e, ['network', 'ls']).stdout;
    expect(ls.split('\n')[0]).toMatch(/^NAME\s+DRIVER\s+SUBNETS\s+GATEWAY\s+PODS$/);
    expect(ls).toContain(a.name);
    expect(ls).toContain(first.replace('0/24', '1'));
  });

  it('an explicit overlapping subnet is refused naming the other network; a subnet a host route uses is skipped', () => {
    const e = newNetEnv();
    const a = createNetwork(e, networkName(), ['--subnet', '10.246.200.0/24', '--gateway', '10.246.200.254']);
    expect((a.conflist.plugins[0] as { ipam: { ranges: { gateway: string }[][] } }).ipam.ranges[0]?.[0]?.gateway).toBe('10.246.200.254');
    const clash = tscni(e, ['network', 'create', networkName(), '--subnet', '10.246.200.128/25']);
    expect(clash.code).toBe(1);
    expect(clash.stderr).toContain(`overlaps 10.246.200.0/24 used by network ${a.name}`);
    expect(tscni(e, ['network', 'create', a.name]).stderr).toContain('already exists');
    expect(tscni(e, ['network', 'create', networkName(), '--subnet', '10.246.9.0/24', '--gateway', '10.9.9.9']).stderr).toContain('--gateway 10.9.9.9 is not in 10.246.9.0/24');

    // Routes are read where the CLI runs: in a namespace whose routes cover the pool's first /24s.
    const ns = createNetns('tn');
    ns.exec(['ip', 'link', 'add', 'tnv0', 'type', 'veth', 'peer', 'name', 'tnv1']);
    ns.exec(['ip', 'link', 'set', 'tnv0', 'up']);
    ns.exec(['ip', 'link', 'set', 'tnv1', 'up']);
    ns.exec(['ip', 'route', 'add', '10.247.0.0/23', 'dev', 'tnv0']);
    const name = networkName();
    const r = sh(['nsenter', `--net=${ns.path}`, '--', 'env', ...Object.entries({ ...e.env, TSCNI_SUBNET_POOL: '10.247.0.0/16' }).map(([k, v]) => `${k}=${v}`), binPath('tscni'), 'network', 'create', name, '--json']);
    e.networks.add(name);
    expect((JSON.parse(r) as { conflist: { plugins: { ipam: { ranges: { subnet: string }[][] } }[] } }).conflist.plugins[0]?.ipam.ranges[0]?.[0]?.subnet).toBe('10.247.2.0/24');
    const explicit = tscni(e, ['network', 'create', networkName(), '--subnet', '10.247.1.0/24']);
    expect(explicit.code).toBe(0); // the route is in the other namespace, not here
  });

  it('--internal: no masquerade and no default route in the pod', () => {
    const e = newNetEnv();
    const n = createNetwork(e, networkName(), ['--internal']);
    expect((n.conflist.plugins[0] as { ipMasq: boolean }).ipMasq).toBe(false);
    const p = podName(e);
    tscniOk(e, ['up', n.name, p]);
    const routes = tscniOk(e, ['exec', p, '--', 'ip', '-4', 'route']).stdout;
    expect(routes).not.toContain('default');
    expect(routes).toMatch(/10\.246\.\d+\.0\/24 dev eth0/);
  });
});

describe('names', () => {
  it('two pods reach each other by name, name.domain and alias; hostname, --add-host, --dns-search; ps shows addresses and ports', async () => {
    const e = newNetEnv();
    const n = createNetwork(e, networkName());
    const [p1, p2] = [podName(e), podName(e)];
    const ip1 = ipOf(tscniOk(e, ['up', n.name, p1, '--json', '--hostname', 'web1', '--add-host', 'db.example:10.1.2.3', '-p', '18080:80', '--alias', 'www'], { CAP_ARGS: JSON.stringify({ aliases: { [n.name]: ['www2'] } }) }));
    const ip2 = ipOf(tscniOk(e, ['up', n.name, p2, '--json', '--dns-search', 'corp.test', '--dns-option', 'ndots:2', '--link', `${p1}:webby`]));
    const gw = ((n.conflist.plugins[0] as { ipam: { ranges: { gateway: string }[][] } }).ipam.ranges[0]?.[0]?.gateway) as string;
    expect(resolveIn(e, p2, p1)).toEqual([ip1]);
    expect(resolveIn(e, p2, `${p1}.dns.podman`)).toEqual([ip1]);
    expect(resolveIn(e, p2, 'www')).toEqual([ip1]);
    expect(resolveIn(e, p2, 'www2.dns.podman')).toEqual([ip1]);
    expect(tscniOk(e, ['exec', p2, '--', 'cat', '/etc/hosts']).stdout).toContain(`${ip1}\twebby\n`);
    expect(resolveIn(e, p2, 'webby')).toEqual([ip1]);
    expect(resolveIn(e, p1, p2)).toEqual([ip2]);
    expect(resolveIn(e, p1, 'nobody-here')).toEqual([]);
    // the pod's own files, seen through exec
    expect(tscniOk(e, ['exec', p1, '--', 'hostname']).stdout.trim()).toBe('web1');
    const side = podName(e);
    tscniOk(e, ['up', n.name, side, '--network', `container:${p1}`]);
    expect(tscniOk(e, ['exec', side, '--', 'hostname']).stdout.trim()).toBe('web1');
    expect(resolveIn(e, side, p2)).toEqual([ip2]);
    expect(resolveIn(e, p1, 'db.example')).toEqual(['10.1.2.3']);
    expect(tscniOk(e, ['exec', p1, '--', 'cat', '/etc/resolv.conf']).stdout).toBe(`# written by tscni up\nsearch dns.podman\nnameserver ${gw}\n`);
    expect(tscniOk(e, ['exec', p2, '--', 'cat', '/etc/resolv.conf']).stdout).toBe(`# written by tscni up\nsearch corp.test\nnameserver ${gw}\noptions ndots:2\n`);
    // the host's /etc/hosts is untouched
    expect(readFileSync('/etc/hosts', 'utf8')).not.toContain('db.example');
    const ps = tscniOk(e, ['ps']).stdout.split('\n');
    expect(ps[0]).toMatch(/^POD\s+NETNS\s+NETWORK\s+IFACE\s+ADDRESSES\s+PORTS$/);
    expect(ps.find((l) => l.startsWith(p1))).toMatch(new RegExp(`${n.name}\\s+eth0\\s+${ip1.replace(/\./g, '\\.')}/24\\s+18080->80/tcp`));
    // network inspect: pods with addresses and the records, as JSON and as a drawing
    const ins = JSON.parse(tscniOk(e, ['network', 'inspect', n.name, '--json']).stdout) as { pods: { name: string; ips: string[] }[]; records: { name: string; aliases: string[] }[] };
    expect(ins.pods.map((p) => p.name).sort()).toEqual([p1, p2].sort());
    expect(ins.records.find((r) => r.name === p1)?.aliases).toEqual(['www2', 'www']);
    const svg = tscniOk(e, ['network', 'inspect', n.name, '--format', 'svg']).stdout;
    expect(svg).toContain(`${p1} (eth0)`);
    expect(svg).toContain('port 18080-&gt;80/tcp');
    // raw queries to the name server: A over TCP, PTR over UDP
    const reply = await tcpQuery(gw, `${p2}.dns.podman`, 'A');
    expect(reply.answers?.map((a) => a.data)).toEqual([ip2]);
    const ptr = await udpQuery(gw, `${ip1.split('.').reverse().join('.')}.in-addr.arpa`, 'PTR');
    expect(ptr.answers?.map((a) => a.data)).toEqual([`${p1}.dns.podman`]);
  });

  it("one server for the host's networks: a pod learns only its own network's names; other names are forwarded upstream (UDP and TCP)", async () => {
    const upstream = await startUpstream(UPSTREAM, { 'outside.example': '192.0.2.7' });
    try {
      const e = newNetEnv();
      const a = createNetwork(e, networkName(), ['--domain', 'a.test']);
      const pa = podName(e);
      // The call that starts the server passes the upstream: a test name server on loopback, never an outside one.
      const ipa = ipOf(tscniOk(e, ['up', a.name, pa, '--json'], { TSCNI_DNS_UPSTREAM: UPSTREAM }));
      const b = createNetwork(e, networkName());
      const pb = podName(e);
      tscniOk(e, ['up', b.name, pb]);
      expect(serverPids(dnsBase(e))).toHaveLength(1);
      expect(serverPid(e, b.name)).toBe(serverPid(e, a.name));
      expect(resolveIn(e, pa, `${pa}.a.test`)).toEqual([ipa]);
      expect(resolveIn(e, pb, pa)).toEqual([]);
      expect(resolveIn(e, pb, `${pa}.dns.podman`)).toEqual([]);
      // Not B's domain: forwarded, and the upstream does not know it.
      expect(resolveIn(e, pb, `${pa}.a.test`)).toEqual([]);
      expect(upstream.asked()).toContain(`udp ${pa}.a.test`);
      expect(resolveIn(e, pb, 'outside.example')).toEqual(['192.0.2.7']);
      const gwB = ((b.conflist.plugins[0] as { ipam: { ranges: { gateway: string }[][] } }).ipam.ranges[0]?.[0]?.gateway) as string;
      expect((await tcpQuery(gwB, 'outside.example', 'A')).answers?.map((x) => x.data)).toEqual(['192.0.2.7']);
      expect(upstream.asked()).toContain('tcp outside.example');
      expect((await tcpQuery(gwB, `${pa}.a.test`, 'A')).answers ?? []).toEqual([]);
      // Asking A's gateway directly does not help a pod of B: the server refuses it.
      const gwA = ((a.conflist.plugins[0] as { ipam: { ranges: { gateway: string }[][] } }).ipam.ranges[0]?.[0]?.gateway) as string;
      const direct = tscni(e, ['exec', pb, '--', 'busybox', 'nslookup', `${pa}.a.test`, gwA]);
      expect(direct.stdout + direct.stderr).not.toContain(ipa);
      expect(direct.stdout + direct.stderr).toContain('REFUSED');
      const own = tscni(e, ['exec', pa, '--', 'busybox', 'nslookup', `${pa}.a.test`, gwA]);
      expect(own.stdout).toContain(ipa);
    } finally {
      upstream.close();
    }
  });

  it("--ip on a network made by network create gives the pod that address; a flag whose capability no plugin declares is refused before anything is made", () => {
    const e = newNetEnv();
    const n = createNetwork(e, networkName());
    const gw = ((n.conflist.plugins[0] as { ipam: { ranges: { gateway: string }[][] } }).ipam.ranges[0]?.[0]?.gateway) as string;
    const want = gw.replace(/\.1$/, '.77');
    const p = podName(e);
    expect(ipOf(tscniOk(e, ['up', n.name, p, '--json', '--ip', `${want}/24`]))).toBe(want);
    const quiet = createNetwork(e, networkName(), ['--no-dns']);
    const q = podName(e);
    const refused = tscni(e, ['up', quiet.name, q, '--alias', 'www']);
    expect(refused.code).toBe(1);
    expect(refused.stderr).toContain(`--alias: no plugin of network ${quiet.name} declares the "aliases" capability`);
    expect(existsSync(`/run/netns/${q}`)).toBe(false);
  });

  it('ls and rm see attachments other clients made (tscni add, as cnitool): rm refuses naming them, --force DELs them', () => {
    const e = newNetEnv();
    const n = createNetwork(e, networkName());
    const ns = createNetns('tn-add');
    const added = JSON.parse(tscniOk(e, ['add', n.name, ns.path]).stdout) as { ips: { address: string }[] };
    const ls = tscniOk(e, ['network', 'ls', '--json']).stdout;
    const mine = (JSON.parse(ls) as { name: string; pods: { containerId?: string; ips: string[] }[] }[]).find((x) => x.name === n.name);
    expect(mine?.pods).toHaveLength(1);
    expect(mine?.pods[0]?.ips).toEqual([added.ips[0]?.address]);
    const cid = mine?.pods[0]?.containerId as string;
    expect(cid).toBe(containerIdForNetns(ns.path));
    const refused = tscni(e, ['network', 'rm', n.name]);
    expect(refused.code).toBe(1);
    expect(refused.stderr).toContain(`container ${cid} eth0, made by another client`);
    expect(sh(['iptables-save', '-t', 'nat'])).toContain(`name: \\"${n.name}\\" id: \\"${cid}\\"`);
    tscniOk(e, ['network', 'rm', '--force', n.name]);
    expect(sh(['iptables-save', '-t', 'nat'])).not.toContain(`name: \\"${n.name}\\"`);
    expect(ns.tryExec(['ip', 'link', 'show', 'eth0']).code).not.toBe(0);
    expect(readdirSync(join(e.dir, 'cache', 'results')).filter((f) => f.startsWith(`${n.name}-`))).toEqual([]);
  });

  it("a pod on two networks resolves the names of both, whichever network's server it asks; the others learn only their own", () => {
    const e = newNetEnv();
    const a = createNetwork(e, networkName());
    const b = createNetwork(e, networkName(), ['--domain', 'b.test']);
    const [pa, pb, multi] = [podName(e), podName(e), podName(e)];
    const ipa = ipOf(tscniOk(e, ['up', a.name, pa, '--json']));
    const ipb = ipOf(tscniOk(e, ['up', b.name, pb, '--json']));
    tscniOk(e, ['up', a.name, multi]);
    tscniOk(e, ['up', b.name, multi]);
    expect(resolveIn(e, multi, pa)).toEqual([ipa]);
    expect(resolveIn(e, multi, pb)).toEqual([ipb]);
    expect(resolveIn(e, multi, `${pb}.b.test`)).toEqual([ipb]);
    expect(resolveIn(e, pa, pb)).toEqual([]);
    expect(resolveIn(e, pb, pa)).toEqual([]);
    expect(resolveIn(e, pa, multi).length).toBe(1);
  });

  it("upgrade: a per-network server of an older tscni (argv dns serve --network) is stopped by the first ADD that needs the port", async () => {
    const e = newNetEnv();
    const n = createNetwork(e, networkName());
    // Stands in for the old server: its argv and environment are what the new plugin recognises.
    const legacy = spawn(process.execPath, ['-e', 'setInterval(() => {}, 1000)', 'dns', 'serve', '--network', n.name], {
      env: { ...process.env, TSCNI_DNS_DIR: dnsBase(e) },
      stdio: 'ignore',
    });
    try {
      await waitFor('the stand-in to start', () => alive(legacy.pid as number));
      const p = podName(e);
      const ip = ipOf(tscniOk(e, ['up', n.name, p, '--json']));
      await waitFor('the old server to be stopped', () => !alive(legacy.pid as number));
      expect(serverPids(dnsBase(e))).toHaveLength(1);
      expect(resolveIn(e, p, p)).toEqual([ip]);
    } finally {
      legacy.kill('SIGKILL');
    }
  });

  it("a network's last pod closes its sockets; the server stays for the other networks and stops with the last", async () => {
    const e = newNetEnv();
    const a = createNetwork(e, networkName());
    const b = createNetwork(e, networkName());
    const [pa, pb] = [podName(e), podName(e)];
    const ipa = ipOf(tscniOk(e, ['up', a.name, pa, '--json']));
    const ipb = ipOf(tscniOk(e, ['up', b.name, pb, '--json']));
    const pid = serverPid(e, a.name) as number;
    expect(serverPid(e, b.name)).toBe(pid);
    const gw = (n: typeof a) => ((n.conflist.plugins[0] as { ipam: { ranges: { gateway: string }[][] } }).ipam.ranges[0]?.[0]?.gateway) as string;
    expect((await tcpQuery(gw(a), `${pa}.dns.podman`, 'A')).answers?.map((x) => x.data)).toEqual([ipa]);
    expect(tscniOk(e, ['dns', 'status']).stdout).toContain(`server: pid ${pid}, `);
    tscniOk(e, ['down', pa]);
    expect(existsSync(join(dnsBase(e), a.name))).toBe(false);
    await waitFor(`the server to close ${gw(a)}:53`, () => sh(['ss', '-Htln', 'src', `${gw(a)}:53`]).trim() === '');
    await expect(tcpQuery(gw(a), `${pa}.dns.podman`, 'A')).rejects.toThrow(/ECONNREFUSED/);
    expect(alive(pid)).toBe(true);
    expect(resolveIn(e, pb, pb)).toEqual([ipb]);
    tscniOk(e, ['down', pb]);
    expect(alive(pid)).toBe(false); // DEL of the host's last network waits for it
    expect(serverPids(dnsBase(e))).toEqual([]);
    expect(existsSync(join(dnsBase(e), 'server.pid'))).toBe(false);
  });

  it('a killed name server is restarted by the next ADD (and CHECK); a pod removed meanwhile leaves no name', async () => {
    const e = newNetEnv();
    const n = createNetwork(e, networkName());
    const [p1, p2, p3] = [podName(e), podName(e), podName(e)];
    const ip1 = ipOf(tscniOk(e, ['up', n.name, p1, '--json']));
    tscniOk(e, ['up', n.name, p2]);
    const pid = serverPid(e, n.name) as number;
    expect(alive(pid)).toBe(true);
    process.kill(pid, 'SIGKILL');
    await waitFor('the server to die', () => !alive(pid));
    expect(tscniOk(e, ['dns', 'status']).stdout).toMatch(new RegExp(`${n.name}\\s+\\S+\\s+2\\s+not running`));
    tscniOk(e, ['down', p2]); // DEL while the server is down
    tscniOk(e, ['up', n.name, p3]);
    const pid2 = serverPid(e, n.name) as number;
    expect(pid2).not.toBe(pid);
    expect(alive(pid2)).toBe(true);
    expect(resolveIn(e, p3, p1)).toEqual([ip1]);
    expect(resolveIn(e, p3, p2)).toEqual([]);
    // CHECK restarts it too
    process.kill(pid2, 'SIGKILL');
    await waitFor('the server to die', () => !alive(pid2));
    const cached = JSON.parse(tscniOk(e, ['ps', '--json']).stdout) as { name: string; netns: string }[];
    tscniOk(e, ['check', n.name, cached.find((p) => p.name === p1)?.netns as string]);
    expect(alive(serverPid(e, n.name) as number)).toBe(true);
    expect(resolveIn(e, p3, p1)).toEqual([ip1]);
    expect(serverPids(dnsBase(e))).toHaveLength(1);
    // CHECK asks the server: a record that no longer matches the pod's addresses fails it.
    const p1ns = cached.find((p) => p.name === p1)?.netns as string;
    const recFile = join(e.stateDir, 'dns', n.name, 'records', readdirSync(join(e.stateDir, 'dns', n.name, 'records')).find((f) => f.startsWith(containerIdForNetns(p1ns))) as string);
    const rec = JSON.parse(readFileSync(recFile, 'utf8')) as { ips: string[] };
    // Written as the plugin writes records (temp + rename): the server re-reads records/ when it changes.
    writeFileSync(`${recFile}.tmp`, JSON.stringify({ ...rec, ips: ['10.246.250.251'] }));
    renameSync(`${recFile}.tmp`, recFile);
    const bad = tscni(e, ['check', n.name, p1ns]);
    expect(bad.code).toBe(1);
    expect(bad.stderr).toContain(`${p1}.dns.podman resolves to 10.246.250.251 (A), expected ${ip1}`);
  });

  it('the server stops with the last pod; rm refuses while pods are attached, --force detaches and removes everything; a recreated network has no old names', async () => {
    const e = newNetEnv();
    const n = createNetwork(e, networkName());
    const bridge = (n.conflist.plugins[0] as { bridge: string }).bridge;
    const [p1, p2] = [podName(e), podName(e)];
    tscniOk(e, ['up', n.name, p1]);
    const pid = serverPid(e, n.name) as number;
    tscniOk(e, ['down', p1]);
    expect(alive(pid)).toBe(false); // DEL waits for it
    expect(existsSync(join(e.stateDir, 'dns', n.name))).toBe(false);
    expect(tscniOk(e, ['dns', 'status']).stdout.trim()).toBe('NETWORK  LISTEN  RECORDS  SERVER\n\nserver: not running (the first dnsname ADD starts it)');
    tscniOk(e, ['up', n.name, p1]);
    tscniOk(e, ['up', n.name, p2]);
    const pid2 = serverPid(e, n.name) as number;
    const refused = tscni(e, ['network', 'rm', n.name]);
    expect(refused.code).toBe(1);
    expect(refused.stderr).toContain(`network ${n.name} has pods attached`);
    expect(existsSync(join(e.netDir, `${n.name}.conflist`))).toBe(true);
    tscniOk(e, ['network', 'rm', '--force', n.name]);
    expect(existsSync(join(e.netDir, `${n.name}.conflist`))).toBe(false);
    expect(existsSync(`/sys/class/net/${bridge}`)).toBe(false);
    expect(existsSync(join(e.stateDir, 'dns', n.name))).toBe(false);
    expect(existsSync(join(e.stateDir, 'dns', '.locks', `${n.name}.lock`))).toBe(false);
    await waitFor('the server to stop', () => !alive(pid2));
    const ps = JSON.parse(tscniOk(e, ['ps', '--json']).stdout) as { name: string; attachments: unknown[] }[];
    expect(ps.find((p) => p.name === p1)?.attachments).toEqual([]);
    // Recreated under the same name: p2's old record must not answer.
    createNetwork(e, n.name);
    const p3 = podName(e);
    tscniOk(e, ['up', n.name, p3]);
    expect(resolveIn(e, p3, p2)).toEqual([]);
    expect(resolveIn(e, p3, p3).length).toBe(1);
    expect(links(e.bridgePrefix)).toEqual([bridge]);
  });

  it('dual stack, first ADDs racing: one server, listening on both gateways, answering AAAA', async () => {
    const e = newNetEnv();
    const n = createNetwork(e, networkName(), ['--ipv6']);
    const [p1, p2] = [podName(e), podName(e)];
    const ups = await Promise.all([p1, p2].map((p) => tscniAsync(e, ['up', n.name, p, '--json'])));
    expect(ups.filter((r) => r.code !== 0).map((r) => r.stderr)).toEqual([]);
    const ips = (JSON.parse(ups[0]?.stdout ?? '') as { result: { ips: { address: string }[] } }).result.ips.map((i) => i.address.replace(/\/\d+$/, ''));
    const v6 = ips.find((i) => i.includes(':')) as string;
    expect(v6).toMatch(/^fd10:246:/);
    expect(serverPids(dnsBase(e))).toHaveLength(1);
    expect(alive(serverPid(e, n.name) as number)).toBe(true);
    const gws = (n.conflist.plugins[0] as { ipam: { ranges: { gateway: string }[][] } }).ipam.ranges.map((r) => r[0]?.gateway as string);
    expect(tscniOk(e, ['exec', p2, '--', 'cat', '/etc/resolv.conf']).stdout).toBe(`# written by tscni up\nsearch dns.podman\nnameserver ${gws[0]}\nnameserver ${gws[1]}\n`);
    const six = tscni(e, ['exec', p2, '--', 'getent', 'ahostsv6', `${p1}.dns.podman`]);
    expect(six.stdout.split('\n')[0]?.split(/\s+/)[0]).toBe(v6);
    // the IPv6 gateway answers too (it may still be in DAD right after the ADD)
    await waitFor('the server on the IPv6 gateway', () => udp6Answers(e, p2, gws[1] as string, p1));
  });

  it('GC drops the records of attachments that are gone (a DEL that never came)', () => {
    const e = newNetEnv();
    const n = createNetwork(e, networkName());
    const p1 = podName(e);
    const ip1 = ipOf(tscniOk(e, ['up', n.name, p1, '--json']));
    const ghost = { containerId: 'cnitool-0000000000000000dead', ifName: 'eth0', name: 'ghostpod', aliases: [], ips: ['10.246.250.250'] };
    writeFileSync(join(e.stateDir, 'dns', n.name, 'records', `${ghost.containerId}-eth0.json`), JSON.stringify(ghost));
    expect(resolveIn(e, p1, 'ghostpod')).toEqual(['10.246.250.250']);
    tscniOk(e, ['gc', n.name, '--live']);
    expect(resolveIn(e, p1, 'ghostpod')).toEqual([]);
    expect(resolveIn(e, p1, p1)).toEqual([ip1]);
  });

  it('50 pods added and removed in parallel (10 at a time): each name resolves exactly while its pod exists', async () => {
    const e = newNetEnv();
    const n = createNetwork(e, networkName());
    const probe = podName(e);
    tscniOk(e, ['up', n.name, probe]);
    const pods = Array.from({ length: 50 }, () => podName(e));
    const ups = await inParallel(pods, 10, (p) => tscniAsync(e, ['up', n.name, p, '--json']));
    expect(ups.filter((r) => r.code !== 0).map((r) => r.stderr)).toEqual([]);
    const ips = ups.map(ipOf);
    expect(new Set(ips).size).toBe(50);
    pods.forEach((p, i) => expect(resolveIn(e, probe, p)).toEqual([ips[i]]));
    const downs = await inParallel(pods.slice(0, 25), 10, (p) => tscniAsync(e, ['down', p]));
    expect(downs.filter((r) => r.code !== 0).map((r) => r.stderr)).toEqual([]);
    pods.forEach((p, i) => expect(resolveIn(e, probe, p)).toEqual(i < 25 ? [] : [ips[i]]));
    expect(serverPids(dnsBase(e))).toHaveLength(1);
  });
});

type Reply = { answers?: { data: unknown }[] };

/** The test's upstream name server: loopback only, port 53 (the server forwards there). */
const UPSTREAM = '127.246.0.53';

/**
 * A name server on `addr`:53 in a process of its own (test/helpers/dns-upstream.mjs),
 * answering A for `names` and NXDOMAIN for everything else; `asked()` lists
 * "udp NAME" / "tcp NAME" per query; `close()` ends it by pid.
 */
async function startUpstream(addr: string, names: Record<string, string>): Promise<{ asked: () => string[]; close: () => void }> {
  const log = join(mkdtempSync(join(tmpdir(), 'tscni-tn-up-')), 'asked.log');
  writeFileSync(log, '');
  const child = spawn(process.execPath, [join(import.meta.dirname, '../../helpers/dns-upstream.mjs'), addr, log, ...Object.entries(names).map(([n, ip]) => `${n}=${ip}`)], { stdio: ['ignore', 'pipe', 'inherit'] });
  await new Promise<void>((resolve, reject) => {
    child.stdout.once('data', () => resolve());
    child.once('exit', (code) => reject(new Error(`the test upstream on ${addr} exited (${code})`)));
  });
  return {
    asked: () => readFileSync(log, 'utf8').split('\n').filter(Boolean),
    close: () => {
      child.kill('SIGTERM');
      rmSync(dirname(log), { recursive: true, force: true });
    },
  };
}

/** Whether busybox nslookup in the pod, asking `server` directly, gets an answer for `name`. */
function udp6Answers(e: Parameters<typeof tscni>[0], pod: string, server: string, name: string): boolean {
  const r = tscni(e, ['exec', pod, '--', 'busybox', 'nslookup', `${name}.dns.podman`, server]);
  return r.code === 0 && /Address:?\s+10\.246\./.test(r.stdout.split(/Name:/)[1] ?? '');
}

/** One DNS query over UDP to addr:53. */
function udpQuery(addr: string, name: string, type: 'A' | 'PTR'): Promise<Reply> {
  const q = dnsPacket.encode({ type: 'query', id: 8, flags: dnsPacket.RECURSION_DESIRED, questions: [{ type, name, class: 'IN' }] });
  return new Promise((resolve, reject) => {
    const s = createSocket('udp4');
    const t = setTimeout(() => {
      s.close();
      reject(new Error('udp query timed out'));
    }, 3000);
    s.on('message', (m) => {
      clearTimeout(t);
      s.close();
      resolve(dnsPacket.decode(m) as Reply);
    });
    s.send(q, 53, addr);
  });
}

/** One DNS query over TCP (two-byte length prefix) to addr:53. */
function tcpQuery(addr: string, name: string, type: 'A' | 'PTR'): Promise<Reply> {
  const q = dnsPacket.encode({ type: 'query', id: 7, flags: dnsPacket.RECURSION_DESIRED, questions: [{ type, name, class: 'IN' }] });
  const len = Buffer.alloc(2);
  len.writeUInt16BE(q.length);
  return new Promise((resolve, reject) => {
    const s = connect(53, addr, () => s.write(Buffer.concat([len, q])));
    let buf = Buffer.alloc(0);
    s.setTimeout(3000, () => reject(new Error('tcp query timed out')));
    s.on('error', reject);
    s.on('data', (b: Buffer) => {
      buf = Buffer.concat([buf, b]);
      if (buf.length >= 2 && buf.length >= 2 + buf.readUInt16BE(0)) {
        s.end();
        resolve(dnsPacket.decode(buf.subarray(2)) as { answers?: { data: unknown }[] });
      }
    });
  });
}

