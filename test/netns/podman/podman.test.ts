/**
 * Podman (4.3, CNI backend) as a real client of tscni's plugins: podman
 * writes the conflists (bridge + portmap + firewall + tuning), execs our
 * executables from dist/bin and keeps its libcni cache in /var/lib/cni.
 * Everything else is private: containers.conf through CONTAINERS_CONF
 * (network_backend "cni", cni_plugin_dirs = dist/bin, a private
 * network_config_dir, runc, cgroupfs, no default ulimits), storage.conf
 * through CONTAINERS_STORAGE_CONF (vfs in a temp dir), and a busybox image
 * made from Debian's busybox-static with `podman import`. Networks are
 * tscni-fpod-*, subnets 10.248.23x.0/24; podman 4.3 names the bridges
 * itself (cni-podmanN, no --interface-name yet): the cleanup removes
 * exactly the bridges its conflists name. Every scenario uses real traffic
 * and checks that nothing of a removed container is left.
 */
import { spawnSync } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, symlinkSync, writeFileSync, copyFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { tryRun } from '../../helpers/netns.ts';
import { podmanRunner } from '../../helpers/podman.ts';
import { removeSharedIfNew, snapshotShared } from '../../helpers/portmap-shared.ts';
import { BIN_DIR, binPath } from '../../helpers/plugin.ts';

const dir = mkdtempSync(join(tmpdir(), 'tscni-fpod-'));
/**
 * Where podman finds its plugins: dist/bin. TSCNI_PODMAN_PLUGIN_DIR=/usr/lib/cni
 * runs the same scenarios on Debian's reference plugins, for comparison (by
 * hand; CI runs ours).
 */
const PLUGIN_DIR = process.env.TSCNI_PODMAN_PLUGIN_DIR || BIN_DIR;
const netDir = join(dir, 'net.d');
const IMAGE = 'localhost/tscni-fbusybox';
const id = randomBytes(2).toString('hex');
const nets: string[] = [];
// portmap's shared chains stay after the last pod, as the reference's do: removed at the end only if this file made them.
const portmapShared = snapshotShared();
const { env, podman, podmanOk, ipOf } = podmanRunner(dir);
let portBase = 33000 + Math.floor(Math.random() * 400) * 2;

const fetchHost = (url: string) => spawnSync('curl', ['-s', '-m', '3', url], { encoding: 'utf8' }).stdout.trim();
const pings = (ctr: string, ip: string) => podman('exec', ctr, 'ping', '-c', '1', '-W', '1', ip).code === 0;
const bridgeOf = (net: string) => (JSON.parse(readFileSync(join(netDir, `${net}.conflist`), 'utf8')) as { plugins: { type: string; bridge?: string }[] }).plugins[0]?.bridge as string;

/** A network made by `podman network create` (no dnsname: only the plugins under test). */
function createNet(subnet: string, opts: string[] = []): string {
  const name = `tscni-fpod-${id}-${nets.length}`;
  podmanOk('network', 'create', '--disable-dns', '--subnet', subnet, ...opts, name);
  nets.push(name);
  return name;
}

/** What a network still holds on the host: IP reservations, rules, cache entries, host veths on its bridge. */
function leftovers(net: string, subnetPrefix: string): string[] {
  const out: string[] = [];
  const ipam = join('/var/lib/cni/networks', net);
  if (existsSync(ipam)) out.push(...readdirSync(ipam).filter((f) => f.startsWith(subnetPrefix)).map((f) => `reservation ${f}`));
  const rules = `${tryRun(['iptables-save']).stdout}\n${tryRun(['nft', 'list', 'ruleset']).stdout}`.split('\n').filter((l) => l.includes(subnetPrefix) && !l.includes('/24'));
  out.push(...rules.map((l) => `rule ${l.trim()}`));
  const results = '/var/lib/cni/results';
  if (existsSync(results)) out.push(...readdirSync(results).filter((f) => f.startsWith(`${net}-`)).map((f) => `cache ${f}`));
  const br = existsSync(join(netDir, `${net}.conflist`)) ? bridgeOf(net) : undefined;
  if (br) out.push(...tryRun(['ip', '-o', 'link', 'show', 'master', br]).stdout.split('\n').filter(Boolean).map((l) => `veth ${l.split(':')[1]?.trim()}`));
  return out;
}

beforeAll(() => {
  const version = tryRun(['podman', 'version', '--format', '{{.Client.Version}}']);
  if (version.code !== 0) throw new Error('podman is not installed: install podman, runc, catatonit and busybox-static (.ci/apt-packages; .ci/run installs them)');
  if (!existsSync('/bin/busybox')) throw new Error('busybox-static is not installed (/bin/busybox): apt-get install busybox-static');
  binPath('firewall');
  binPath('tuning');
  mkdirSync(netDir);
  writeFileSync(
    env.CONTAINERS_CONF,
    `[containers]\ndefault_ulimits = []\nlog_driver = "k8s-file"\n\n[network]\nnetwork_backend = "cni"\ncni_plugin_dirs = [${JSON.stringify(PLUGIN_DIR)}]\nnetwork_config_dir = ${JSON.stringify(netDir)}\ndefault_subnet = "10.248.239.0/24"\ndefault_network = "tscni-fpod-${id}-default"\n\n[engine]\nruntime = "runc"\ncgroup_manager = "cgroupfs"\nevents_logger = "file"\ntmp_dir = ${JSON.stringify(join(dir, 'tmp'))}\n`,
  );
  writeFileSync(env.CONTAINERS_STORAGE_CONF, `[storage]\ndriver = "vfs"\ngraphroot = ${JSON.stringify(join(dir, 'storage'))}\nrunroot = ${JSON.stringify(join(dir, 'run'))}\n`);
  expect(podmanOk('info', '--format', '{{.Host.NetworkBackend}}')).toBe('cni');
  // The image: busybox-static with a few applets and a page for httpd.
  const root = join(dir, 'rootfs');
  for (const d of ['bin', 'www', 'tmp', 'etc']) mkdirSync(join(root, d), { recursive: true });
  copyFileSync('/bin/busybox', join(root, 'bin', 'busybox'));
  chmodSync(join(root, 'bin', 'busybox'), 0o755);
  for (const a of ['sh', 'httpd', 'wget', 'ping', 'sleep', 'ip', 'cat']) symlinkSync('busybox', join(root, 'bin', a));
  writeFileSync(join(root, 'www', 'index.html'), 'hello-tscni\n');
  spawnSync('tar', ['-C', root, '-cf', join(dir, 'busybox.tar'), '.']);
  podmanOk('import', '--change', 'CMD ["/bin/sh"]', join(dir, 'busybox.tar'), IMAGE);
}, 120_000);

afterAll(() => {
  podman('rm', '-a', '-f', '-t', '0');
  podman('pod', 'rm', '-a', '-f', '-t', '0');
  for (const n of nets) {
    const br = existsSync(join(netDir, `${n}.conflist`)) ? bridgeOf(n) : undefined;
    podman('network', 'rm', '-f', n);
    if (br) tryRun(['ip', 'link', 'del', br]);
    rmSync(join('/var/lib/cni/networks', n), { recursive: true, force: true });
  }
  podman('rmi', '-a', '-f');
  removeSharedIfNew(portmapShared);
  rmSync(dir, { recursive: true, force: true });
}, 120_000);

const web = (name: string, net: string, port: number, extra: string[] = []) =>
  podmanOk('run', '-d', '--name', name, '--network', net, '-p', `${port}:80`, ...extra, IMAGE, 'httpd', '-f', '-p', '80', '-h', '/www');

describe('podman with tscni plugins (CNI backend)', () => {
  it('network create writes bridge+portmap+firewall+tuning; run -d -p answers from the host and at the container address; container:<web> reaches it on 127.0.0.1; rm -f leaves nothing', () => {
    const net = createNet('10.248.231.0/24');
    expect(JSON.parse(readFileSync(join(netDir, `${net}.conflist`), 'utf8')).plugins.map((p: { type: string }) => p.type)).toEqual(['bridge', 'portmap', 'firewall', 'tuning']);
    const port = portBase++;
    web(`tf-web-${id}`, net, port);
    const ip = ipOf(`tf-web-${id}`, net);
    expect(fetchHost(`http://127.0.0.1:${port}/`)).toBe('hello-tscni');
    expect(fetchHost(`http://${ip}:80/`)).toBe('hello-tscni');
    expect(podmanOk('run', '--rm', '--network', `container:tf-web-${id}`, IMAGE, 'wget', '-qO-', 'http://127.0.0.1:80/')).toBe('hello-tscni');
    podmanOk('rm', '-f', '-t', '0', `tf-web-${id}`);
    expect(leftovers(net, '10.248.231.')).toEqual([]);
  });

  it('pod create --network -p with an app joining through --pod: the port answers, a second container reaches the first on 127.0.0.1', () => {
    const net = createNet('10.248.232.0/24');
    const port = portBase++;
    podmanOk('pod', 'create', '--name', `tf-pod-${id}`, '--network', net, '-p', `${port}:80`);
    podmanOk('run', '-d', '--name', `tf-app-${id}`, '--pod', `tf-pod-${id}`, IMAGE, 'httpd', '-f', '-p', '80', '-h', '/www');
    expect(fetchHost(`http://127.0.0.1:${port}/`)).toBe('hello-tscni');
    expect(podmanOk('run', '--rm', '--pod', `tf-pod-${id}`, IMAGE, 'wget', '-qO-', 'http://127.0.0.1:80/')).toBe('hello-tscni');
    podmanOk('pod', 'rm', '-f', '-t', '0', `tf-pod-${id}`);
    expect(leftovers(net, '10.248.232.')).toEqual([]);
  });

  it('network connect/disconnect of a container that publishes a port: a second NIC, the port keeps answering, and back', () => {
    const a = createNet('10.248.233.0/24');
    const b = createNet('10.248.234.0/24');
    const port = portBase++;
    web(`tf-nc-${id}`, a, port);
    podmanOk('network', 'connect', b, `tf-nc-${id}`);
    expect(podmanOk('exec', `tf-nc-${id}`, 'ip', '-4', '-o', 'addr').split('\n').filter((l) => l.includes('10.248.23')).length).toBe(2);
    expect(fetchHost(`http://127.0.0.1:${port}/`)).toBe('hello-tscni');
    expect(fetchHost(`http://${ipOf(`tf-nc-${id}`, b)}:80/`)).toBe('hello-tscni');
    podmanOk('network', 'disconnect', b, `tf-nc-${id}`);
    expect(podmanOk('exec', `tf-nc-${id}`, 'ip', '-4', '-o', 'addr').split('\n').filter((l) => l.includes('10.248.23')).length).toBe(1);
    expect(fetchHost(`http://127.0.0.1:${port}/`)).toBe('hello-tscni');
    expect(leftovers(b, '10.248.234.')).toEqual([]);
    podmanOk('rm', '-f', '-t', '0', `tf-nc-${id}`);
    expect(leftovers(a, '10.248.233.')).toEqual([]);
  });

  it('isolate=true networks cannot reach each other; "isolated" inside one network keeps its published port; a flush of our rules is repaired by tscni firewall reload', () => {
    const a = createNet('10.248.235.0/24', ['--opt', 'isolate=true']);
    const b = createNet('10.248.236.0/24', ['--opt', 'isolate=true']);
    const conf = JSON.parse(readFileSync(join(netDir, `${a}.conflist`), 'utf8')) as { plugins: Record<string, unknown>[] };
    expect(conf.plugins.find((p) => p.type === 'firewall')?.ingressPolicy).toBe('same-bridge');
    const port = portBase++;
    web(`tf-ia-${id}`, a, port);
    web(`tf-ia2-${id}`, a, portBase++);
    web(`tf-ib-${id}`, b, portBase++);
    const ipA = ipOf(`tf-ia-${id}`, a);
    expect(pings(`tf-ia2-${id}`, ipA)).toBe(true);
    expect(pings(`tf-ib-${id}`, ipA)).toBe(false);
    expect(pings(`tf-ia-${id}`, ipOf(`tf-ib-${id}`, b))).toBe(false);

    // A flush of every rule of ours (only ours: a shared machine), then the repair.
    const flushed = flushRules(/10\.248\.23[56]\.|cni-podman|tscni-fpod-/);
    expect(flushed).toBeGreaterThan(5);
    expect(fetchHost(`http://127.0.0.1:${port}/`)).toBe('');
    expect(pings(`tf-ib-${id}`, ipA)).toBe(true);
    const reload = spawnSync(binPath('tscni'), ['firewall', 'reload'], { encoding: 'utf8', env: { PATH: process.env.PATH } });
    expect(reload.status, reload.stdout + reload.stderr).toBe(0);
    expect(fetchHost(`http://127.0.0.1:${port}/`)).toBe('hello-tscni');
    expect(pings(`tf-ib-${id}`, ipA)).toBe(false);

    // "isolated" inside one network (podman 4.3's isolate option only writes same-bridge: edit its conflist).
    const iso = createNet('10.248.237.0/24', ['--opt', 'isolate=true']);
    const isoPath = join(netDir, `${iso}.conflist`);
    writeFileSync(isoPath, readFileSync(isoPath, 'utf8').replace('"ingressPolicy": "same-bridge"', '"ingressPolicy": "isolated"'));
    const isoPort = portBase++;
    web(`tf-i1-${id}`, iso, isoPort);
    web(`tf-i2-${id}`, iso, portBase++);
    expect(pings(`tf-i2-${id}`, ipOf(`tf-i1-${id}`, iso))).toBe(false);
    expect(fetchHost(`http://127.0.0.1:${isoPort}/`)).toBe('hello-tscni');
    podmanOk('rm', '-f', '-t', '0', `tf-ia-${id}`, `tf-ia2-${id}`, `tf-ib-${id}`, `tf-i1-${id}`, `tf-i2-${id}`);
    for (const [n, p] of [[a, '10.248.235.'], [b, '10.248.236.'], [iso, '10.248.237.']] as const) expect(leftovers(n, p)).toEqual([]);
  });

  it('50 run/rm cycles leak nothing', () => {
    const net = createNet('10.248.238.0/24');
    const port = portBase++;
    for (let i = 0; i < 50; i++) {
      const name = `tf-loop-${id}-${i}`;
      podmanOk('run', '-d', '--name', name, '--network', net, '-p', `${port}:80`, IMAGE, 'sleep', '600');
      podmanOk('rm', '-f', '-t', '0', name);
    }
    expect(leftovers(net, '10.248.238.')).toEqual([]);
  }, 180_000);
});

/** Delete every iptables rule (filter and nat) matching `re`; returns how many. */
function flushRules(re: RegExp): number {
  let n = 0;
  for (const table of ['filter', 'nat']) {
    for (const l of tryRun(['iptables-save', '-t', table]).stdout.split('\n')) {
      if (!l.startsWith('-A ') || !re.test(l)) continue;
      const words = [...l.slice(3).matchAll(/"((?:[^"\\]|\\.)*)"|(\S+)/g)].map((m) => (m[1] !== undefined ? m[1].replace(/\\(.)/g, '$1') : (m[2] as string)));
      if (tryRun(['iptables', '-w', '-t', table, '-D', ...words]).code === 0) n++;
    }
  }
  return n;
}
