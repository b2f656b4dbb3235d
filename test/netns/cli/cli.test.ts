/**
 * The runner CLI end to end: dist/bin/tscni driving our built plugins against
 * the real kernel, checked on the kernel state, the result cache and the
 * host-local reservations.
 */
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync, truncateSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { renderCacheEntry } from '../../../lib/libcni/cache.ts';
import { containerIdForNetns } from '../../../cli/context.ts';
import { createNetns, removeAllNetns, sh, tryRun } from '../../helpers/netns.ts';
import { callPluginOk } from '../../helpers/plugin.ts';
import { removeSharedIfNew, snapshotShared } from '../../helpers/portmap-shared.ts';
import { cacheFiles, cleanupCli, hostVethsOn, natRulesOfTests, newCliEnv, podName, reservations, tscni, tscniOk, writeBridgeNet } from './helpers.ts';

const sharedBefore = snapshotShared();

afterEach(() => {
  cleanupCli();
  removeAllNetns();
});
afterAll(() => removeSharedIfNew(sharedBefore));

const addrs = (netns: string, ifname = 'eth0') =>
  [...tryRun(['nsenter', `--net=${netns}`, 'ip', '-4', '-o', 'addr', 'show', 'dev', ifname]).stdout.matchAll(/inet (\S+)/g)].map((m) => m[1]);

describe('cnitool verbs', () => {
  it('add prints the result, wires the pod and caches the result under the cnitool container ID; check, del, del again', () => {
    const e = newCliEnv();
    const net = writeBridgeNet(e, { ipMasq: true });
    const ns = createNetns('tc');
    const add = tscniOk(e, ['add', net.name, ns.path]);
    const result = JSON.parse(add.stdout) as { cniVersion: string; ips: { address: string; interface: number }[]; interfaces: { name: string }[] };
    expect(result.cniVersion).toBe('1.1.0');
    expect(result.ips[0]?.address).toMatch(/^10\.243\.1\.\d+\/24$/);
    expect(addrs(ns.path)).toEqual([result.ips[0]?.address]);
    expect(hostVethsOn(net.bridge)).toHaveLength(1);

    const cid = containerIdForNetns(ns.path);
    const cachePath = join(e.cacheDir, 'results', `${net.name}-${cid}-eth0`);
    const cached = JSON.parse(readFileSync(cachePath, 'utf8')) as Record<string, unknown>;
    expect(cached).toMatchObject({ kind: 'cniCacheV1', containerId: cid, ifName: 'eth0', networkName: net.name, netns: ns.path });
    expect(Buffer.from(cached.config as string, 'base64').toString()).toBe(readFileSync(join(e.netDir, `50-${net.name}.conflist`), 'utf8'));
    expect((statSync(cachePath).mode & 0o777).toString(8)).toBe('600');
    expect(natRulesOfTests().some((l) => l.includes(cid))).toBe(true);

    tscniOk(e, ['check', net.name, ns.path]);
    tscniOk(e, ['del', net.name, ns.path]);
    expect(hostVethsOn(net.bridge)).toEqual([]);
    expect(reservations(e, net)).toEqual([]);
    expect(cacheFiles(e)).toEqual([]);
    expect(natRulesOfTests().filter((l) => l.includes(cid))).toEqual([]);
    tscniOk(e, ['del', net.name, ns.path]);
  });

  it('-i and CNI_IFNAME pick the interface; CNI_ARGS and CAP_ARGS reach the plugins', () => {
    const e = newCliEnv();
    const net = writeBridgeNet(e);
    const ns = createNetns('tc');
    tscniOk(e, ['add', net.name, ns.path, '-i', 'net1'], { CNI_ARGS: 'IgnoreUnknown=1;IP=10.243.1.77' });
    expect(addrs(ns.path, 'net1')).toEqual(['10.243.1.77/24']);
    tscniOk(e, ['del', net.name, ns.path, '-i', 'net1']);
    tscniOk(e, ['add', net.name, ns.path], { CNI_IFNAME: 'net2', CAP_ARGS: '{"ips":["10.243.1.200/24"]}' });
    // host-local does not declare the ips capability in this conflist, so it is not passed.
    expect(addrs(ns.path, 'net2')).not.toEqual(['10.243.1.200/24']);
    expect(addrs(ns.path, 'net2')).toHaveLength(1);
    tscniOk(e, ['del', net.name, ns.path], { CNI_IFNAME: 'net2' });
    expect(reservations(e, net)).toEqual([]);
    // Declared, the capability reaches the plugin as runtimeConfig: host-local gives the asked address.
    const withCap = writeBridgeNet(e, { capabilities: { ips: true }, subnet: '10.243.2.0/24' });
    tscniOk(e, ['add', withCap.name, ns.path], { CNI_IFNAME: 'net3', CAP_ARGS: '{"ips":["10.243.2.200/24"]}' });
    expect(addrs(ns.path, 'net3')).toEqual(['10.243.2.200/24']);
    tscniOk(e, ['del', withCap.name, ns.path], { CNI_IFNAME: 'net3' });
    expect(reservations(e, withCap)).toEqual([]);
  });

  it.each([
    ['0.2.0', (r: Record<string, unknown>) => expect((r.ip4 as { ip: string }).ip).toMatch(/^10\.243\.1\./)],
    ['0.3.1', (r: Record<string, unknown>) => expect((r.ips as { version: string }[])[0]?.version).toBe('4')],
    ['0.4.0', (r: Record<string, unknown>) => expect((r.ips as { version: string }[])[0]?.version).toBe('4')],
    ['1.0.0', (r: Record<string, unknown>) => expect((r.ips as Record<string, unknown>[])[0]).not.toHaveProperty('version')],
  ])('cniVersion %s: the result is printed in that version, and DEL cleans up', (version, assertShape) => {
    const e = newCliEnv();
    const net = writeBridgeNet(e, { version });
    const ns = createNetns('tc');
    const r = JSON.parse(tscniOk(e, ['add', net.name, ns.path]).stdout) as Record<string, unknown>;
    expect(r.cniVersion).toBe(version);
    assertShape(r);
    const check = tscni(e, ['check', net.name, ns.path]);
    if (version === '0.2.0' || version === '0.3.1') {
      expect(check.code).toBe(1);
      expect(check.stderr).toContain(`configuration version "${version}" does not support the CHECK command`);
    } else {
      expect(check.code).toBe(0);
    }
    tscniOk(e, ['del', net.name, ns.path]);
    expect(reservations(e, net)).toEqual([]);
    expect(hostVethsOn(net.bridge)).toEqual([]);
  });

  it('an empty or corrupt cache file does not break DEL: the pod is still removed and its IP released', () => {
    const e = newCliEnv();
    const net = writeBridgeNet(e);
    for (const corrupt of ['', '{"kind":"cniCacheV1","containerId":']) {
      const ns = createNetns('tc');
      tscniOk(e, ['add', net.name, ns.path]);
      const cachePath = join(e.cacheDir, 'results', `${net.name}-${containerIdForNetns(ns.path)}-eth0`);
      if (corrupt) writeFileSync(cachePath, corrupt);
      else truncateSync(cachePath, 0);
      tscniOk(e, ['del', net.name, ns.path]);
      expect(reservations(e, net)).toEqual([]);
      expect(hostVethsOn(net.bridge)).toEqual([]);
      expect(existsSync(cachePath)).toBe(false);
      ns.remove();
    }
  });

  it('deletes an attachment recorded by libcni (cnitool) from its cache file, masquerade rules included', () => {
    const e = newCliEnv();
    const net = writeBridgeNet(e, { ipMasq: true });
    const ns = createNetns('tc');
    const cid = containerIdForNetns(ns.path);
    const confBytes = readFileSync(join(e.netDir, `50-${net.name}.conflist`));
    // What cnitool does: run the plugin, then cacheAdd in libcni's format.
    const plugin = JSON.parse(confBytes.toString()).plugins[0] as Record<string, unknown>;
    const add = callPluginOk('bridge', { command: 'ADD', containerId: cid, netns: ns.path, ifname: 'eth0', config: { ...plugin, name: net.name, cniVersion: '1.1.0' } });
    const goCache = renderCacheEntry({ network: net.name, containerId: cid, ifName: 'eth0', config: confBytes, netns: ns.path, result: add.json });
    sh(['mkdir', '-p', join(e.cacheDir, 'results')]);
    writeFileSync(join(e.cacheDir, 'results', `${net.name}-${cid}-eth0`), goCache);
    expect(natRulesOfTests().some((l) => l.includes(cid))).toBe(true);

    tscniOk(e, ['check', net.name, ns.path]);
    ns.remove();
    // The netns is gone: the masquerade rules are found from the cached result.
    tscniOk(e, ['del', net.name, ns.path]);
    expect(natRulesOfTests().filter((l) => l.includes(cid))).toEqual([]);
    expect(reservations(e, net)).toEqual([]);
    expect(cacheFiles(e)).toEqual([]);
  });

  it('shows plugin errors with their code and message, and leaves nothing behind', () => {
    const e = newCliEnv();
    const net = writeBridgeNet(e, { subnet: '10.243.2.0/24' });
    const path = join(e.netDir, `50-${net.name}.conflist`);
    const doc = JSON.parse(readFileSync(path, 'utf8')) as { plugins: Record<string, unknown>[] };
    (doc.plugins[0] as Record<string, unknown>).mtu = -5;
    writeFileSync(path, JSON.stringify(doc));
    const ns = createNetns('tc');
    const r = tscni(e, ['add', net.name, ns.path]);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/^tscni: plugin type="bridge" failed \(add\): .*mtu.*\(CNI error code 7\)\n$/);
    expect(r.stdout).toBe('');
    const j = tscni(e, ['add', net.name, ns.path, '--json']);
    expect(JSON.parse(j.stdout)).toMatchObject({ code: 7 });
    expect(cacheFiles(e)).toEqual([]);
    expect(reservations(e, net)).toEqual([]);
    expect(tryRun(['ip', '-n', ns.name, '-o', 'link']).stdout.trim().split('\n')).toHaveLength(1);
  });

  it('names an unknown network, a missing plugin and bad environment', () => {
    const e = newCliEnv();
    const ns = createNetns('tc');
    writeBridgeNet(e);
    const unknown = tscni(e, ['add', 'nosuchnet', ns.path]);
    expect(unknown.code).toBe(1);
    expect(unknown.stderr).toContain(`no net configuration with name "nosuchnet" in ${e.netDir}`);
    writeFileSync(join(e.netDir, '90-ghost.conflist'), JSON.stringify({ cniVersion: '1.1.0', name: 'ghost', plugins: [{ type: 'no-such-plugin' }] }));
    const missing = tscni(e, ['add', 'ghost', ns.path]);
    expect(missing.stderr).toContain('failed to find plugin "no-such-plugin"');
    const badArgs = tscni(e, ['add', 'ghost', ns.path], { CNI_ARGS: 'novalue' });
    expect(badArgs.stderr).toContain('invalid CNI_ARGS pair "novalue"');
    const usage = tscni(e, ['add']);
    expect(usage.code).toBe(2);
    expect(usage.stderr).toContain('Not enough non-option arguments');
  });

  it('gc removes the cached attachments that are not valid, keeps the valid ones, and GCs IPAM', () => {
    const e = newCliEnv();
    const net = writeBridgeNet(e);
    const a = createNetns('tc');
    const b = createNetns('tc');
    tscniOk(e, ['add', net.name, a.path]);
    tscniOk(e, ['add', net.name, b.path]);
    // A reservation nobody has a cache entry for: only IPAM's GC can find it.
    callPluginOk('host-local', {
      command: 'ADD',
      containerId: 'orphan',
      netns: a.path,
      ifname: 'eth9',
      config: { cniVersion: '1.1.0', name: net.name, ipam: { type: 'host-local', dataDir: e.ipamDir, ranges: [[{ subnet: net.subnet }]] } },
    });
    expect(reservations(e, net)).toHaveLength(3);
    tscniOk(e, ['gc', net.name, '--valid', `${containerIdForNetns(b.path)}/eth0`]);
    expect(reservations(e, net)).toHaveLength(1);
    expect(cacheFiles(e)).toEqual([`${net.name}-${containerIdForNetns(b.path)}-eth0`]);
    expect(addrs(a.path)).toEqual([]);
    expect(addrs(b.path)).toHaveLength(1);

    // --live keeps attachments whose netns still exists.
    tscniOk(e, ['add', net.name, a.path]);
    a.remove();
    tscniOk(e, ['gc', net.name, '--live']);
    expect(cacheFiles(e)).toEqual([`${net.name}-${containerIdForNetns(b.path)}-eth0`]);
    expect(reservations(e, net)).toHaveLength(1);
    // Like cnitool: no list at all collects everything.
    tscniOk(e, ['gc', net.name, b.path]);
    expect(cacheFiles(e)).toEqual([]);
    expect(reservations(e, net)).toEqual([]);
  });

  it('status succeeds while addresses are left and reports code 50 when the range is exhausted', () => {
    const e = newCliEnv();
    const net = writeBridgeNet(e, { subnet: '10.243.3.0/30' });
    tscniOk(e, ['status', net.name]);
    const ns = createNetns('tc');
    tscniOk(e, ['add', net.name, ns.path]);
    const full = tscni(e, ['status', net.name]);
    expect(full.code).toBe(1);
    expect(full.stderr).toContain('(CNI error code 50)');
    const old = writeBridgeNet(e, { version: '1.0.0', subnet: '10.243.3.0/30', file: '60-old.conflist' });
    // Before 1.1.0 there is no STATUS; libcni reports success without calling plugins.
    tscniOk(e, ['status', old.name]);
    tscniOk(e, ['del', net.name, ns.path]);
  });
});

describe('with the reference plugins', () => {
  it("drives Debian's Go bridge + host-local: add, check, del through the same protocol and cache", () => {
    const e = newCliEnv();
    const net = writeBridgeNet(e, { version: '1.0.0', subnet: '10.243.9.0/24', ipMasq: true });
    const ns = createNetns('tc');
    const env = { CNI_PATH: '/usr/lib/cni' };
    const r = JSON.parse(tscniOk(e, ['add', net.name, ns.path], env).stdout) as { cniVersion: string; ips: { address: string }[] };
    expect(r.cniVersion).toBe('1.0.0');
    expect(addrs(ns.path)).toEqual([r.ips[0]?.address]);
    tscniOk(e, ['check', net.name, ns.path], env);
    // Our plugins can take over a pod the reference made (same cache, same state).
    tscniOk(e, ['del', net.name, ns.path]);
    expect(reservations(e, net)).toEqual([]);
    expect(hostVethsOn(net.bridge)).toEqual([]);
    expect(natRulesOfTests().filter((l) => l.includes(containerIdForNetns(ns.path)))).toEqual([]);
  });
});

describe('netns and exec', () => {
  it('netns add, list, exec with the exit code passed through, del', () => {
    const e = newCliEnv();
    const name = podName();
    tscniOk(e, ['netns', 'add', name]);
    expect(existsSync(`/run/netns/${name}`)).toBe(true);
    expect(tscniOk(e, ['netns', 'list']).stdout.split('\n')).toContain(name);
    expect((JSON.parse(tscniOk(e, ['netns', 'list', '--json']).stdout) as { name: string }[]).map((n) => n.name)).toContain(name);
    const links = tscniOk(e, ['exec', name, '--', 'ip', '-o', 'link', 'show']).stdout.trim().split('\n');
    expect(links).toHaveLength(1);
    expect(links[0]).toContain('lo:');
    expect(tscni(e, ['exec', `/run/netns/${name}`, '--', 'sh', '-c', 'exit 3']).code).toBe(3);
    const none = tscni(e, ['exec', 'tscni-tc-nonexistent', '--', 'true']);
    expect(none.code).toBe(1);
    expect(none.stderr).toContain('no pod or network namespace named "tscni-tc-nonexistent"');
    tscniOk(e, ['netns', 'del', name]);
    expect(existsSync(`/run/netns/${name}`)).toBe(false);
  });
});

describe('up, down, ps, inspect', () => {
  it('two pods on a network ping each other; container mode shares a namespace; a second NIC on a second network', () => {
    const e = newCliEnv();
    const netA = writeBridgeNet(e, { subnet: '10.243.4.0/24', ipMasq: true });
    const netB = writeBridgeNet(e, { subnet: '10.243.5.0/24' });
    const p1 = podName();
    const p2 = podName();
    const side = podName();
    tscniOk(e, ['up', netA.name, p1]);
    tscniOk(e, ['up', netA.name, p2]);
    const ip2 = addrs(`/run/netns/${p2}`)[0]?.split('/')[0] as string;
    expect(ip2).toMatch(/^10\.243\.4\./);
    expect(tscni(e, ['exec', p1, '--', 'ping', '-c', '1', '-W', '2', ip2]).code).toBe(0);

    // Container mode: same namespace, so the same eth0; lo is up for 127.0.0.1 traffic.
    tscniOk(e, ['up', netA.name, side, '--network', `container:${p1}`]);
    expect(tscniOk(e, ['exec', side, '--', 'ip', '-4', '-o', 'addr', 'show', 'eth0']).stdout).toBe(tscniOk(e, ['exec', p1, '--', 'ip', '-4', '-o', 'addr', 'show', 'eth0']).stdout);
    expect(tscni(e, ['exec', side, '--', 'ping', '-c', '1', '-W', '1', '127.0.0.1']).code).toBe(0);

    // A second NIC: the next interface name, on the other network.
    tscniOk(e, ['up', netB.name, p1]);
    expect(addrs(`/run/netns/${p1}`, 'eth1')[0]).toMatch(/^10\.243\.5\./);
    expect(tscni(e, ['up', netB.name, p1]).stderr).toContain(`already attached to ${netB.name}`);

    const ps = JSON.parse(tscniOk(e, ['ps', '--json']).stdout) as { name: string; sharesWith?: string; attachments: { ifName: string }[] }[];
    expect(ps.find((p) => p.name === p1)?.attachments.map((a) => a.ifName)).toEqual(['eth0', 'eth1']);
    expect(ps.find((p) => p.name === side)?.sharesWith).toBe(p1);
    expect(tscniOk(e, ['ps']).stdout).toContain(`container:${p1}`);

    // Downing the owner takes the container-mode pod with it and undoes every attachment.
    const down = tscniOk(e, ['down', p1]);
    expect(down.stderr).toContain(side);
    expect(existsSync(`/run/netns/${p1}`)).toBe(false);
    expect(reservations(e, netA)).toHaveLength(1);
    expect(reservations(e, netB)).toEqual([]);
    expect(hostVethsOn(netB.bridge)).toEqual([]);
    expect(natRulesOfTests().filter((l) => l.includes(containerIdForNetns(`/run/netns/${p1}`)))).toEqual([]);
    tscniOk(e, ['down', p2]);
    expect(reservations(e, netA)).toEqual([]);
    expect(cacheFiles(e)).toEqual([]);
    expect(JSON.parse(tscniOk(e, ['ps', '--json']).stdout)).toEqual([]);
  });

  it('-p publishes a port through the portMappings capability; inspect shows it and its rules; down removes them', async () => {
    const e = newCliEnv();
    const net = writeBridgeNet(e, {
      subnet: '10.243.10.0/24',
      extraPlugins: [{ type: 'portmap', capabilities: { portMappings: true }, stateDir: join(e.dir, 'portmap') }],
    });
    const p = podName();
    const port = 30900 + Math.floor(Math.random() * 90);
    tscniOk(e, ['up', net.name, p, '-p', `${port}:8080`]);
    const server = spawn('nsenter', [`--net=/run/netns/${p}`, '--', process.execPath, '-e', "require('node:http').createServer((q,s)=>s.end('published')).listen(8080,()=>console.log('up'))"], {
      stdio: ['ignore', 'pipe', 'ignore'],
    });
    try {
      await new Promise((resolve) => server.stdout.once('data', resolve));
      const fetchArgs = ['-e', `fetch('http://127.0.0.1:${port}/').then(r=>r.text()).then(t=>console.log(t),()=>process.exit(1))`];
      expect(spawnSync(process.execPath, fetchArgs, { encoding: 'utf8', timeout: 5000 }).stdout.trim()).toBe('published');
      const text = tscniOk(e, ['inspect', p]).stdout;
      expect(text).toContain(`port ${port} -> 8080/tcp`);
      expect(text).toMatch(new RegExp(`DNAT --to-destination 10\\.243\\.10\\.\\d+:8080`));
      // CHECK without CAP_ARGS gets the ADD's port mappings from the cache: an emptied pod chain fails it.
      tscniOk(e, ['check', net.name, `/run/netns/${p}`]);
      const dnChain = /-j (CNI-DN-[0-9a-f]+)/.exec(tryRun(['iptables-save', '-t', 'nat']).stdout.split('\n').find((l) => l.includes(containerIdForNetns(`/run/netns/${p}`)) && l.includes('CNI-DN-')) ?? '')?.[1] as string;
      expect(dnChain).toBeDefined();
      tryRun(['iptables', '-w', '-t', 'nat', '-F', dnChain]);
      const broken = tscni(e, ['check', net.name, `/run/netns/${p}`]);
      expect(broken.code).not.toBe(0);
      expect(broken.stderr).toContain(`not found in chain ${dnChain}`);
      tscniOk(e, ['down', p]);
      expect(spawnSync(process.execPath, fetchArgs, { encoding: 'utf8', timeout: 5000 }).status).not.toBe(0);
      expect(tryRun(['iptables-save', '-t', 'nat']).stdout).not.toContain(containerIdForNetns(`/run/netns/${p}`));
    } finally {
      server.kill();
    }
  });

  it('--ip requests an address through the ips capability', () => {
    const e = newCliEnv();
    const net = writeBridgeNet(e, { subnet: '10.243.6.0/24' });
    const path = join(e.netDir, `50-${net.name}.conflist`);
    const doc = JSON.parse(readFileSync(path, 'utf8')) as { plugins: Record<string, unknown>[] };
    (doc.plugins[0] as Record<string, unknown>).capabilities = { ips: true };
    writeFileSync(path, JSON.stringify(doc));
    const p = podName();
    tscniOk(e, ['up', net.name, p, '--ip', '10.243.6.42/24']);
    expect(addrs(`/run/netns/${p}`)).toEqual(['10.243.6.42/24']);
    tscniOk(e, ['down', p]);
  });

  it('a failed up removes the namespace it created and records nothing', () => {
    const e = newCliEnv();
    const net = writeBridgeNet(e, { subnet: '10.243.7.0/24' });
    const path = join(e.netDir, `50-${net.name}.conflist`);
    const doc = JSON.parse(readFileSync(path, 'utf8')) as { plugins: Record<string, unknown>[] };
    doc.plugins.push({ type: 'no-such-plugin' });
    writeFileSync(path, JSON.stringify(doc));
    const p = podName();
    const r = tscni(e, ['up', net.name, p]);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain('failed to find plugin "no-such-plugin"');
    expect(existsSync(`/run/netns/${p}`)).toBe(false);
    expect(JSON.parse(tscniOk(e, ['ps', '--json']).stdout)).toEqual([]);
    expect(tscni(e, ['up', net.name, 'bad/name']).stderr).toContain('invalid name');
    expect(tscni(e, ['up', net.name, podName(), '-p', '99999:80']).stderr).toContain('host port 99999 is outside 1-65535');
    expect(tscni(e, ['down', 'tscni-tc-never']).stderr).toContain('no pod named tscni-tc-never');
  });

  it('inspect shows interfaces, addresses, routes, the host veth, the bridge and the owned rules, as text, JSON, DOT and SVG', () => {
    const e = newCliEnv();
    const net = writeBridgeNet(e, { subnet: '10.243.8.0/24', ipMasq: true });
    const p = podName();
    tscniOk(e, ['up', net.name, p]);
    const cid = containerIdForNetns(`/run/netns/${p}`);
    const veth = hostVethsOn(net.bridge)[0] as string;
    const text = tscniOk(e, ['inspect', p]).stdout;
    expect(text).toContain(`pod ${p}`);
    expect(text).toMatch(/eth0 +UP +10\.243\.8\.\d+\/24/);
    expect(text).toContain(`<-> host ${veth}`);
    expect(text).toContain(`${veth} on bridge ${net.bridge} 10.243.8.1/24`);
    expect(text).toContain('default via 10.243.8.1 dev eth0');
    expect(text).toContain(`id: \\"${cid}\\"`);
    expect(text).toContain('MASQUERADE');

    const json = JSON.parse(tscniOk(e, ['inspect', p, '--json']).stdout) as { interfaces: { name: string; hostPeer?: string }[]; hostPorts: { bridge: string }[] };
    expect(json.interfaces.find((i) => i.name === 'eth0')?.hostPeer).toBe(veth);
    expect(json.hostPorts[0]?.bridge).toBe(net.bridge);
    expect(tscniOk(e, ['inspect', p, '--format', 'dot']).stdout).toContain(`"host:${veth}" -- "bridge:${net.bridge}";`);
    const svg = tscniOk(e, ['inspect', p, '--format', 'svg']).stdout;
    expect(svg).toMatch(/^<svg [\s\S]*<\/svg>\n$/);
    expect(svg).toContain(`${net.bridge} (bridge)`);
    tscniOk(e, ['down', p]);
  });
});

describe('install', () => {
  it('installs the executable under every plugin name and an example conflist; keeps an existing conflist unless --force', () => {
    const e = newCliEnv();
    const dir = mkdtempSync(join(tmpdir(), 'tscni-tc-install-'));
    try {
      const bin = join(dir, 'bin');
      const conf = join(dir, 'net.d');
      tscniOk(e, ['install', '--dir', bin, '--conf-dir', conf]);
      const main = statSync(join(bin, 'tscni'));
      for (const name of ['bridge', 'host-local', 'loopback']) {
        expect(statSync(join(bin, name)).ino).toBe(main.ino);
        // The installed link answers as that plugin.
        const v = spawnSync(join(bin, name), [], { input: '{"cniVersion":"1.1.0"}', env: { CNI_COMMAND: 'VERSION' }, encoding: 'utf8' });
        expect(v.status).toBe(0);
        expect((JSON.parse(v.stdout) as { supportedVersions: string[] }).supportedVersions).toContain('1.1.0');
      }
      const written = readFileSync(join(conf, '10-tscni.conflist'), 'utf8');
      expect(JSON.parse(written).name).toBe('tscni');
      writeFileSync(join(conf, '10-tscni.conflist'), '{"mine":true}');
      expect(tscniOk(e, ['install', '--dir', bin, '--conf-dir', conf]).stderr).toContain('kept the existing');
      expect(readFileSync(join(conf, '10-tscni.conflist'), 'utf8')).toBe('{"mine":true}');
      tscniOk(e, ['install', '--dir', bin, '--conf-dir', conf, '--force']);
      expect(readFileSync(join(conf, '10-tscni.conflist'), 'utf8')).toBe(written);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
