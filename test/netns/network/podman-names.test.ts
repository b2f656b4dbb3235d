/**
 * Podman (4.3, CNI backend) with our dnsname: `podman network create` (DNS
 * enabled) writes the dnsname plugin into the conflist itself, with podman's
 * keys (domainName dns.podman, the aliases capability), passes K8S_POD_NAME
 * and the aliases, and points the containers' resolv.conf at the gateway. Two
 * containers then reach each other by name, and a container on another
 * network does not; one name server serves both networks. Private
 * containers.conf/storage as in test/netns/podman;
 * networks tscni-n-pod-*, subnets 10.246.24x.0/24.
 */
import { spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { chmodSync, copyFileSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { tryRun } from '../../helpers/netns.ts';
import { podmanRunner } from '../../helpers/podman.ts';
import { BIN_DIR, binPath } from '../../helpers/plugin.ts';
import { serverPids } from './helpers.ts';

const dir = mkdtempSync(join(tmpdir(), 'tscni-tn-pod-'));
const netDir = join(dir, 'net.d');
const IMAGE = 'localhost/tscni-tn-busybox';
const id = randomBytes(2).toString('hex');
const nets: string[] = [];
/** Where the dnsname plugin keeps its state when podman runs it (no TSCNI_* in its environment). */
const DNS_BASE = '/run/tscni/dns';
const { env, podman, podmanOk, ipOf } = podmanRunner(dir);

const conflist = (net: string) => JSON.parse(readFileSync(join(netDir, `${net}.conflist`), 'utf8')) as { plugins: { type: string; bridge?: string; domainName?: string }[] };

/** The address `name` resolves to inside `ctr` (busybox nslookup against the container's resolv.conf), or undefined. */
function lookup(ctr: string, name: string): string | undefined {
  const r = podman('exec', ctr, 'nslookup', name);
  if (r.code !== 0) return undefined;
  return /Name:\s*\S+\s*\nAddress:?\s*(\d+\.\d+\.\d+\.\d+)/.exec(r.out)?.[1];
}

function createNet(subnet: string): string {
  const name = `tscni-n-pod-${id}-${nets.length}`;
  podmanOk('network', 'create', '--subnet', subnet, name);
  nets.push(name);
  return name;
}

beforeAll(() => {
  if (tryRun(['podman', 'version']).code !== 0) throw new Error('podman is not installed: install podman, runc, catatonit and busybox-static (.ci/apt-packages)');
  if (!existsSync('/bin/busybox')) throw new Error('busybox-static is not installed (/bin/busybox)');
  binPath('dnsname');
  mkdirSync(netDir);
  writeFileSync(
    env.CONTAINERS_CONF,
    `[containers]\ndefault_ulimits = []\nlog_driver = "k8s-file"\n\n[network]\nnetwork_backend = "cni"\ncni_plugin_dirs = [${JSON.stringify(BIN_DIR)}]\nnetwork_config_dir = ${JSON.stringify(netDir)}\ndefault_subnet = "10.246.249.0/24"\ndefault_network = "tscni-n-pod-${id}-default"\n\n[engine]\nruntime = "runc"\ncgroup_manager = "cgroupfs"\nevents_logger = "file"\ntmp_dir = ${JSON.stringify(join(dir, 'tmp'))}\n`,
  );
  writeFileSync(env.CONTAINERS_STORAGE_CONF, `[storage]\ndriver = "vfs"\ngraphroot = ${JSON.stringify(join(dir, 'storage'))}\nrunroot = ${JSON.stringify(join(dir, 'run'))}\n`);
  const root = join(dir, 'rootfs');
  for (const d of ['bin', 'tmp', 'etc']) mkdirSync(join(root, d), { recursive: true });
  copyFileSync('/bin/busybox', join(root, 'bin', 'busybox'));
  chmodSync(join(root, 'bin', 'busybox'), 0o755);
  for (const a of ['sh', 'sleep', 'nslookup', 'cat']) symlinkSync('busybox', join(root, 'bin', a));
  spawnSync('tar', ['-C', root, '-cf', join(dir, 'busybox.tar'), '.']);
  podmanOk('import', '--change', 'CMD ["/bin/sh"]', join(dir, 'busybox.tar'), IMAGE);
}, 120_000);

afterAll(() => {
  podman('rm', '-a', '-f', '-t', '0');
  for (const n of nets) {
    const br = existsSync(join(netDir, `${n}.conflist`)) ? conflist(n).plugins[0]?.bridge : undefined;
    podman('network', 'rm', '-f', n);
    if (br) tryRun(['ip', 'link', 'del', br]);
    rmSync(join('/var/lib/cni/networks', n), { recursive: true, force: true });
    rmSync(join(DNS_BASE, n), { recursive: true, force: true });
    rmSync(join(DNS_BASE, '.locks', `${n}.lock`), { force: true });
  }
  for (const pid of serverPids(DNS_BASE)) {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      // already gone
    }
  }
  // The server's log and lock in the default place were made by this test's containers.
  for (const f of ['server.log', 'server.log.1', join('.locks', 'server.lock')]) rmSync(join(DNS_BASE, f), { force: true });
  podman('rmi', '-a', '-f');
  rmSync(dir, { recursive: true, force: true });
}, 120_000);

describe('podman with tscni dnsname', () => {
  it('podman writes dnsname into its conflist; containers resolve each other by name and alias, not across networks; one server for both networks, gone with the last container', () => {
    const a = createNet('10.246.240.0/24');
    const b = createNet('10.246.241.0/24');
    expect(conflist(a).plugins.find((p) => p.type === 'dnsname')).toMatchObject({ domainName: 'dns.podman' });
    const [c1, c2, c3] = [`tn-pod-${id}-1`, `tn-pod-${id}-2`, `tn-pod-${id}-3`];
    podmanOk('run', '-d', '--name', c1, '--network', a, '--network-alias', 'web', IMAGE, 'sleep', '600');
    podmanOk('run', '-d', '--name', c2, '--network', a, IMAGE, 'sleep', '600');
    podmanOk('run', '-d', '--name', c3, '--network', b, IMAGE, 'sleep', '600');
    expect(podmanOk('exec', c2, 'cat', '/etc/resolv.conf')).toContain('nameserver 10.246.240.1');
    expect(lookup(c2, c1)).toBe(ipOf(c1, a));
    expect(lookup(c2, `${c1}.dns.podman`)).toBe(ipOf(c1, a));
    expect(lookup(c2, 'web')).toBe(ipOf(c1, a));
    expect(lookup(c1, c2)).toBe(ipOf(c2, a));
    expect(lookup(c3, c1)).toBeUndefined();
    expect(lookup(c3, c3)).toBe(ipOf(c3, b));
    expect(serverPids(DNS_BASE)).toHaveLength(1);
    const server = serverPids(DNS_BASE)[0];
    podmanOk('rm', '-f', '-t', '0', c1, c2);
    // Network a is gone from the server; b is still served by the same process.
    expect(existsSync(join(DNS_BASE, a))).toBe(false);
    expect(lookup(c3, c3)).toBe(ipOf(c3, b));
    expect(serverPids(DNS_BASE)).toEqual([server]);
    podmanOk('rm', '-f', '-t', '0', c3);
    // SIGTERM was sent by the last DEL; give the process a moment to exit.
    const end = Date.now() + 3000;
    while (serverPids(DNS_BASE).length && Date.now() < end) spawnSync('sleep', ['0.05']);
    expect(serverPids(DNS_BASE)).toHaveLength(0);
    expect(existsSync(join(DNS_BASE, b))).toBe(false);
  });
});
