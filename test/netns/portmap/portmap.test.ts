/**
 * portmap against the real kernel, both backends: traffic through real DNAT
 * from the host, from an outside host, from another pod and from the pod
 * itself (hairpin), then the rules and elements are checked gone.
 */
import { spawn } from 'node:child_process';
import { existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { createNetns, removeAllNetns, tryRun } from '../../helpers/netns.ts';
import { BIN_DIR, binPath, callPlugin, callPluginOk } from '../../helpers/plugin.ts';
import { dnatChainName } from '../../../plugins/portmap/iptables.ts';
import {
  addPod,
  BACKENDS,
  bridgeConf,
  cleanupPods,
  cleanupShared,
  createOutside,
  delPod,
  gateway4,
  iptablesLines,
  newNet,
  nextPort,
  nftLines,
  portmap,
  portmapConf,
  rand,
  request,
  startServer,
  type Backend,
  type Mapping,
  type Net,
  type Pod,
} from './helpers.ts';

afterEach(() => {
  cleanupPods();
  removeAllNetns();
});
afterAll(() => cleanupShared());

/** Rules or elements this pod owns, in the backend's own terms. */
function owned(net: Net, pod: Pod): string[] {
  if (net.backend === 'iptables') {
    const chain = dnatChainName(net.name, pod.cid);
    return [...iptablesLines(chain), ...iptablesLines(chain, true)];
  }
  return nftLines(`${net.name}/${pod.cid}/eth0`);
}

/** portmap run asynchronously (several at once, as kubelet does). */
function portmapAsync(command: string, net: Net, pod: Pod, mappings: Mapping[] | undefined): Promise<{ code: number; stdout: string }> {
  const env = { PATH: process.env.PATH ?? '', CNI_COMMAND: command, CNI_CONTAINERID: pod.cid, CNI_NETNS: pod.ns.path, CNI_IFNAME: 'eth0', CNI_PATH: BIN_DIR };
  return new Promise((resolve) => {
    const child = spawn(binPath('portmap'), [], { env, stdio: ['pipe', 'pipe', 'ignore'] });
    let stdout = '';
    child.stdout.on('data', (b: Buffer) => (stdout += b.toString()));
    child.on('close', (code) => resolve({ code: code ?? -1, stdout }));
    child.stdin.end(JSON.stringify(portmapConf(net, pod.result, mappings)));
  });
}

function records(net: Net): string[] {
  const d = join(net.stateDir, 'attachments', net.name);
  return existsSync(d) ? readdirSync(d) : [];
}

describe.each(BACKENDS)('portmap with %s', (backend: Backend) => {
  it('forwards a host port from 127.0.0.1, from an outside host, from another pod, and back to the pod itself (hairpin)', async () => {
    const net = newNet(backend);
    const p = nextPort();
    const web = addPod(net, [{ hostPort: p, containerPort: 8080 }]);
    const other = addPod(net, []);
    await startServer(web.ns, 'tcp', 8080, 'web');
    const outside = createOutside();

    // From the host's own loopback (route_localnet + masquerade of 127.0.0.1).
    expect(request(undefined, 'tcp', '127.0.0.1', p)).toMatch(/^web /);
    // From an outside host to the host's address on that link: the pod sees the real client.
    expect(request(outside.ns, 'tcp', outside.host4, p)).toBe(`web ${outside.peer4}`);
    // From another pod to the host (gateway) address: masqueraded so the reply returns through the host.
    expect(request(other.ns, 'tcp', gateway4(net), p)).toBe(`web ${gateway4(net)}`);
    // Hairpin: the pod reaches itself through its own host port.
    expect(request(web.ns, 'tcp', gateway4(net), p)).toBe(`web ${gateway4(net)}`);
    expect(owned(net, web).length).toBeGreaterThan(0);
    expect(owned(net, other)).toEqual([]);

    delPod(net, web, true);
    expect(request(outside.ns, 'tcp', outside.host4, p)).toBeUndefined();
    expect(owned(net, web)).toEqual([]);
    expect(records(net)).toEqual([]);
  });

  it('UDP, with conntrack entries of the host port flushed', async () => {
    const net = newNet(backend);
    const p = nextPort();
    const dns = addPod(net, [{ hostPort: p, containerPort: 5353, protocol: 'udp' }]);
    await startServer(dns.ns, 'udp', 5353, 'dns');
    const outside = createOutside();
    expect(request(outside.ns, 'udp', outside.host4, p)).toBe(`dns ${outside.peer4}`);
    expect(request(undefined, 'udp', '127.0.0.1', p)).toMatch(/^dns /);
    // The check below must be able to fail: the tool works and the flows are there before DEL.
    const listed = () => tryRun(['conntrack', '-L', '-p', 'udp', '--orig-port-dst', String(p)]);
    expect(listed().code).toBe(0);
    expect(listed().stdout).toContain(`dport=${p}`);
    delPod(net, dns, true);
    expect(listed().code).toBe(0);
    expect(listed().stdout).not.toContain(`dport=${p}`);
    expect(request(outside.ns, 'udp', outside.host4, p)).toBeUndefined();
    expect(owned(net, dns)).toEqual([]);
  });

  it('IPv6: an outside host reaches the pod through the host IPv6 address', async () => {
    const net = newNet(backend, { v6: true });
    const p = nextPort();
    const pod = addPod(net, [{ hostPort: p, containerPort: 8080 }]);
    expect(pod.ip6).toMatch(/^fd42:242:/);
    await startServer(pod.ns, 'tcp', 8080, 'v6pod');
    const outside = createOutside();
    expect(request(outside.ns, 'tcp', outside.host6, p)).toBe(`v6pod ${outside.peer6}`);
    expect(request(outside.ns, 'tcp', outside.host4, p)).toBe(`v6pod ${outside.peer4}`);
    delPod(net, pod, false);
    expect(request(outside.ns, 'tcp', outside.host6, p)).toBeUndefined();
    expect(owned(net, pod)).toEqual([]);
  });

  it('a hostIP-bound mapping answers on that address only; a hostIP of the other family is skipped', async () => {
    const net = newNet(backend);
    const outside = createOutside();
    const p = nextPort();
    const pod = addPod(net, [
      { hostPort: p, containerPort: 8080, hostIP: outside.host4 },
      { hostPort: p + 500, containerPort: 8080, hostIP: 'fd42:242:ffff::1' },
    ]);
    const other = addPod(net, []);
    await startServer(pod.ns, 'tcp', 8080, 'bound');
    expect(request(outside.ns, 'tcp', outside.host4, p)).toBe(`bound ${outside.peer4}`);
    expect(request(other.ns, 'tcp', gateway4(net), p)).toBeUndefined();
    expect(request(undefined, 'tcp', '127.0.0.1', p)).toBeUndefined();
    expect(owned(net, pod).some((l) => l.includes(String(p + 500)))).toBe(false);
    delPod(net, pod, true);
    expect(owned(net, pod)).toEqual([]);
  });

  it('refuses a host port another live container holds, naming it, and leaves nothing behind', () => {
    const net = newNet(backend);
    const p = nextPort();
    const a = addPod(net, [{ hostPort: p, containerPort: 80 }]);
    const ns = addPod(net, []);
    const b = portmap('ADD', net, ns, [{ hostPort: p, containerPort: 81 }]);
    expect(b.code).toBe(1);
    expect(b.json).toMatchObject({ code: 7, msg: 'host port conflict' });
    expect(String(b.json?.details)).toContain(`host port ${p}/tcp is already mapped by container ${a.cid} (network ${net.name}, interface eth0)`);
    expect(owned(net, ns)).toEqual([]);
    expect(records(net)).toEqual([`${a.cid}~eth0`]);
    // Another protocol on the same port, or the same container again, is fine.
    expect(portmap('ADD', net, ns, [{ hostPort: p, containerPort: 81, protocol: 'udp' }]).code).toBe(0);
    expect(portmap('ADD', net, a, [{ hostPort: p, containerPort: 80 }]).code).toBe(0);
    // After that re-ADD the port is still held.
    expect(portmap('ADD', net, ns, [{ hostPort: p, containerPort: 81 }]).json).toMatchObject({ msg: 'host port conflict' });
    delPod(net, ns, false);
    delPod(net, a, false);
    expect(records(net)).toEqual([]);
    // No empty per-network folder is left behind.
    expect(existsSync(join(net.stateDir, 'attachments', net.name))).toBe(false);
  });

  it('one container on two networks publishing the same port: no conflict, the first wins, DEL of either leaves the other working', async () => {
    const n1 = newNet(backend);
    const n2 = newNet(backend);
    // One node, one portmap state directory (the default), whatever the network.
    n2.stateDir = n1.stateDir;
    const p = nextPort();
    const ns = createNetns('tp');
    const cid = `tp-${rand(6)}`;
    const mappings = [{ hostPort: p, containerPort: 8080 }];
    const attach = (net: Net, ifname: string) => {
      const br = callPluginOk('bridge', { command: 'ADD', containerId: cid, netns: ns.path, ifname, config: bridgeConf(net) });
      const pm = callPlugin('portmap', { command: 'ADD', containerId: cid, netns: ns.path, ifname, config: portmapConf(net, br.json, mappings) });
      return { br, pm };
    };
    const detach = (net: Net, ifname: string, prev: unknown) => {
      expect(callPlugin('portmap', { command: 'DEL', containerId: cid, netns: ns.path, ifname, config: portmapConf(net, prev, mappings) }).code).toBe(0);
      callPluginOk('bridge', { command: 'DEL', containerId: cid, netns: ns.path, ifname, config: bridgeConf(net) });
    };
    const a = attach(n1, 'eth0');
    expect(a.pm.code, a.pm.stdout).toBe(0);
    const b = attach(n2, 'eth1');
    expect(b.pm.code, b.pm.stdout).toBe(0);
    await startServer(ns, 'tcp', 8080, 'both');
    const outside = createOutside();
    // The first attachment's address answers.
    expect(request(outside.ns, 'tcp', outside.host4, p)).toBe(`both ${outside.peer4}`);
    expect(portmap('CHECK', n2, { ns, cid, result: b.br.json as Record<string, unknown>, ip4: '', mappings }, mappings, {}).code).toBe(0);
    detach(n1, 'eth0', a.br.json);
    // Still published, now through the second network.
    expect(request(outside.ns, 'tcp', outside.host4, p)).toBe(`both ${outside.peer4}`);
    detach(n2, 'eth1', b.br.json);
    expect(request(outside.ns, 'tcp', outside.host4, p)).toBeUndefined();
    expect(records(n1)).toEqual([]);
    expect(records(n2)).toEqual([]);
    expect(backend === 'iptables' ? iptablesLines(dnatChainName(n2.name, cid)) : nftLines(`/${cid}/`)).toEqual([]);
  });

  it.each([['crash: its netns is gone'], ['reboot: its record is from another boot']])('a claim whose owner died without DEL (%s) does not block a new pod', (how) => {
    const net = newNet(backend);
    const p = nextPort();
    const dead = addPod(net, [{ hostPort: p, containerPort: 80 }]);
    if (how.startsWith('crash')) dead.ns.remove();
    else {
      const file = join(net.stateDir, 'attachments', net.name, `${dead.cid}~eth0`);
      const rec = JSON.parse(readFileSync(file, 'utf8')) as Record<string, unknown>;
      expect(rec.bootId).toMatch(/^[0-9a-f-]{36}$/);
      writeFileSync(file, JSON.stringify({ ...rec, bootId: '00000000-0000-0000-0000-000000000000' }));
    }
    const ns = addPod(net, []);
    const out = portmap('ADD', net, ns, [{ hostPort: p, containerPort: 81 }]);
    expect(out.code, out.stdout).toBe(0);
    expect(out.stderr).toContain(`reclaiming the host ports of container ${dead.cid}`);
    // The dead pod's rules and record went with its claim.
    expect(owned(net, dead)).toEqual([]);
    expect(records(net)).toEqual([`${ns.cid}~eth0`]);
    delPod(net, ns, true);
  });

  it('DEL without portMappings (as cnitool sends it) removes everything; DEL is idempotent', async () => {
    const net = newNet(backend);
    const p = nextPort();
    const pod = addPod(net, [
      { hostPort: p, containerPort: 8080 },
      { hostPort: p + 500, containerPort: 8080, protocol: 'udp' },
    ]);
    await startServer(pod.ns, 'tcp', 8080, 'x');
    expect(request(undefined, 'tcp', '127.0.0.1', p)).toMatch(/^x /);
    const del = portmap('DEL', net, pod, undefined);
    expect(del.code).toBe(0);
    expect(owned(net, pod)).toEqual([]);
    expect(request(undefined, 'tcp', '127.0.0.1', p)).toBeUndefined();
    expect(portmap('DEL', net, pod, undefined).code).toBe(0);
    expect(portmap('DEL', net, pod, pod.mappings).code).toBe(0);
    expect(records(net)).toEqual([]);
  });

  it('CHECK passes while the mapping is there and fails once it is damaged', () => {
    const net = newNet(backend);
    const p = nextPort();
    const pod = addPod(net, [{ hostPort: p, containerPort: 80 }]);
    expect(portmap('CHECK', net, pod, pod.mappings).code).toBe(0);
    if (backend === 'iptables') tryRun(['iptables', '-w', '-t', 'nat', '-F', dnatChainName(net.name, pod.cid)]);
    else tryRun(['nft', 'delete', 'element', 'inet', 'tscni_portmap', 'dnat4_any', `{ tcp . ${p} }`]);
    const check = portmap('CHECK', net, pod, pod.mappings);
    expect(check.code).toBe(1);
    expect(JSON.stringify(check.json)).toContain(pod.cid);
    expect(portmap('DEL', net, pod, undefined).code).toBe(0);
    expect(owned(net, pod)).toEqual([]);
  });

  it('GC removes the mappings of attachments that are not valid and keeps the valid ones', () => {
    const net = newNet(backend);
    const keep = addPod(net, [{ hostPort: nextPort(), containerPort: 80 }]);
    const drop = addPod(net, [{ hostPort: nextPort(), containerPort: 80 }]);
    const gc = callPlugin('portmap', {
      command: 'GC',
      config: { ...portmapConf(net, undefined, undefined), 'cni.dev/valid-attachments': [{ containerID: keep.cid, ifname: 'eth0' }] },
    });
    expect(gc.code).toBe(0);
    expect(owned(net, drop)).toEqual([]);
    expect(owned(net, keep).length).toBeGreaterThan(0);
    expect(records(net)).toEqual([`${keep.cid}~eth0`]);
    delPod(net, keep, false);
  });

  it('parallel ADDs: one winner for a contested host port, all succeed on distinct ports, parallel DELs leave nothing', async () => {
    const net = newNet(backend);
    const pods = Array.from({ length: 6 }, () => addPod(net, []));
    const contested = nextPort();
    const race = await Promise.all(pods.map((pod) => portmapAsync('ADD', net, pod, [{ hostPort: contested, containerPort: 80 }])));
    const winners = race.filter((r) => r.code === 0);
    expect(winners).toHaveLength(1);
    const winner = pods[race.findIndex((r) => r.code === 0)] as Pod;
    for (const r of race.filter((x) => x.code !== 0)) expect(r.stdout).toContain(`already mapped by container ${winner.cid}`);
    expect(records(net)).toEqual([`${winner.cid}~eth0`]);
    expect((await portmapAsync('DEL', net, winner, undefined)).code).toBe(0);

    const ports = pods.map(() => nextPort());
    const adds = await Promise.all(pods.map((pod, i) => portmapAsync('ADD', net, pod, [{ hostPort: ports[i] as number, containerPort: 80 }])));
    expect(adds.map((r) => r.code)).toEqual(pods.map(() => 0));
    for (const pod of pods) expect(owned(net, pod).length).toBeGreaterThan(0);
    const dels = await Promise.all(pods.map((pod) => portmapAsync('DEL', net, pod, undefined)));
    expect(dels.map((r) => r.code)).toEqual(pods.map(() => 0));
    for (const pod of pods) expect(owned(net, pod)).toEqual([]);
    expect(records(net)).toEqual([]);
  });

  it('conditionsV4 restrict who is forwarded', async () => {
    const net = newNet(backend);
    const outside = createOutside();
    const p = nextPort();
    const conditionsV4 = backend === 'iptables' ? ['-s', outside.peer4] : [`ip saddr ${outside.peer4}`];
    const pod = addPod(net, [{ hostPort: p, containerPort: 8080 }], { conditionsV4 });
    const other = addPod(net, []);
    await startServer(pod.ns, 'tcp', 8080, 'cond');
    expect(request(outside.ns, 'tcp', outside.host4, p)).toBe(`cond ${outside.peer4}`);
    expect(request(other.ns, 'tcp', gateway4(net), p)).toBeUndefined();
    expect(portmap('CHECK', net, pod, pod.mappings, { conditionsV4 }).code).toBe(0);
    expect(portmap('DEL', net, pod, undefined).code).toBe(0);
    expect(request(outside.ns, 'tcp', outside.host4, p)).toBeUndefined();
    expect(owned(net, pod)).toEqual([]);
  });

  it('bad input is rejected before anything changes, naming the problem', () => {
    const net = newNet(backend);
    const pod = addPod(net, []);
    for (const [mappings, extra, msg] of [
      [[{ hostPort: 70000, containerPort: 80 }], {}, 'hostPort: 70000 is not a port number'],
      [[{ hostPort: 80, containerPort: 80, protocol: 'icmp' }], {}, 'protocol: "icmp"'],
      [[{ hostPort: 80, containerPort: 80 }], { markMasqBit: 3, externalSetMarkChain: 'X' }, 'Cannot specify externalSetMarkChain and markMasqBit'],
    ] as const) {
      const r = portmap('ADD', net, pod, [...mappings], { ...extra });
      expect(r.json).toMatchObject({ code: 7 });
      expect(String(r.json?.msg)).toContain(msg);
    }
    expect(owned(net, pod)).toEqual([]);
    expect(records(net)).toEqual([]);
  });
});

describe('portmap as a chained plugin', () => {
  it.each(BACKENDS.flatMap((b) => ['0.3.1', '0.4.0', '1.0.0', '1.1.0'].map((v) => [b, v] as const)))(
    '%s, cniVersion %s: ADD passes prevResult through unchanged, CHECK and DEL work in that version',
    (backend, version) => {
      const net = newNet(backend, { version });
      const ns = createNetns('tp');
      const cid = `tp-${rand(6)}`;
      const mappings = [{ hostPort: nextPort(), containerPort: 80 }];
      const br = callPluginOk('bridge', { command: 'ADD', containerId: cid, netns: ns.path, ifname: 'eth0', config: bridgeConf(net) });
      const pm = callPluginOk('portmap', { command: 'ADD', containerId: cid, netns: ns.path, ifname: 'eth0', config: portmapConf(net, br.json, mappings) });
      // The whole result, not a few fields: portmap adds nothing and drops nothing.
      expect(pm.json).toEqual(br.json);
      expect(pm.json?.cniVersion).toBe(version);
      const pod: Pod = { ns, cid, result: pm.json as Record<string, unknown>, ip4: '', mappings };
      expect(owned(net, pod).length).toBeGreaterThan(0);
      if (version >= '0.4.0') {
        const check = portmap('CHECK', net, pod, mappings);
        expect(check.code, check.stdout).toBe(0);
      }
      const del = portmap('DEL', net, pod, mappings);
      expect(del.code, del.stdout).toBe(0);
      expect(owned(net, pod)).toEqual([]);
      callPluginOk('bridge', { command: 'DEL', containerId: cid, netns: ns.path, ifname: 'eth0', config: bridgeConf(net) });
    },
  );

  it.each(BACKENDS)('%s: DEL after the pod netns is gone removes the rules and the record', (backend) => {
    const net = newNet(backend);
    const p = nextPort();
    const pod = addPod(net, [{ hostPort: p, containerPort: 80 }]);
    expect(owned(net, pod).length).toBeGreaterThan(0);
    pod.ns.remove();
    const del = portmap('DEL', net, pod, pod.mappings);
    expect(del.code, del.stdout).toBe(0);
    expect(owned(net, pod)).toEqual([]);
    expect(records(net)).toEqual([]);
  });

  it('needs a prevResult; without portMappings it passes prevResult through and touches nothing', () => {
    const net = newNet('iptables');
    const pod = addPod(net, []);
    const none = callPlugin('portmap', { command: 'ADD', containerId: pod.cid, netns: pod.ns.path, ifname: 'eth0', config: portmapConf(net, undefined, [{ hostPort: 1, containerPort: 1 }]) });
    expect(none.json).toMatchObject({ code: 7, msg: 'must be called as chained plugin' });
    expect(pod.result.ips).toBeDefined();
    expect(owned(net, pod)).toEqual([]);
    expect(existsSync(net.stateDir)).toBe(false);
  });
});

describe('interop with the reference portmap (iptables)', () => {
  const REF = '/usr/lib/cni';

  it('the reference removes what we added, and we remove what the reference added, even without portMappings', async () => {
    const net = newNet('iptables', { version: '1.0.0' });
    const p = nextPort();
    const pod = addPod(net, [{ hostPort: p, containerPort: 8080 }]);
    const chain = dnatChainName(net.name, pod.cid);
    await startServer(pod.ns, 'tcp', 8080, 'ours');
    expect(request(undefined, 'tcp', '127.0.0.1', p)).toMatch(/^ours /);

    // Ours added; the reference's DEL (with mappings, as containerd sends it) removes it.
    expect(runReference('DEL', net, pod, pod.mappings).code).toBe(0);
    expect(iptablesLines(chain)).toEqual([]);
    expect(request(undefined, 'tcp', '127.0.0.1', p)).toBeUndefined();

    // The reference added; our DEL without portMappings (as cnitool sends it) removes it.
    expect(runReference('ADD', net, pod, pod.mappings).code).toBe(0);
    expect(iptablesLines(chain).length).toBeGreaterThan(0);
    expect(request(undefined, 'tcp', '127.0.0.1', p)).toMatch(/^ours /);
    expect(portmap('DEL', net, pod, undefined).code).toBe(0);
    expect(iptablesLines(chain)).toEqual([]);
    expect(request(undefined, 'tcp', '127.0.0.1', p)).toBeUndefined();
    expect(records(net)).toEqual([]);
  });

  function runReference(command: string, net: Net, pod: Pod, mappings: Pod['mappings']): { code: number; stdout: string } {
    const input = JSON.stringify(portmapConf(net, pod.result, mappings));
    const r = tryRun(['env', `CNI_COMMAND=${command}`, `CNI_CONTAINERID=${pod.cid}`, `CNI_NETNS=${pod.ns.path}`, 'CNI_IFNAME=eth0', `CNI_PATH=${REF}`, `${REF}/portmap`], input);
    return { code: r.code, stdout: r.stdout };
  }
});
