/**
 * containerd's CRI plugin making pod sandboxes the way the kubelet does
 * (RunPodSandbox, CreateContainer/StartContainer, ExecSync, StopPodSandbox,
 * RemovePodSandbox over CRI runtime.v1), with our plugins as its CNI network:
 * bridge + host-local + portmap, and CRI's own loopback. A private containerd
 * (test/helpers/clients/containerd.ts) records every plugin call, so the
 * tests check what containerd passed, what the kernel got, real traffic, and
 * that removing a pod leaves nothing.
 */
import { existsSync, readdirSync } from 'node:fs';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { EMPTY_STATE, addrsIn, cleanupClients, conflist, hostPort, httpGet, netState, newClientNet, rand, waitFor, type ClientNet } from '../../helpers/clients/common.ts';
import { IMAGE, RESULTS, destroyAllContainerd, netnsPathOf, recordedCalls, startContainerd, type Containerd } from '../../helpers/clients/containerd.ts';
import type { PodSandboxConfig } from '../../helpers/clients/cri-client.ts';
import { tryRun } from '../../helpers/netns.ts';

let h: Containerd;
let net: ClientNet;

beforeAll(async () => {
  net = newClientNet();
  h = await startContainerd({ [`50-${net.name}.conflist`]: conflist(net) });
}, 60_000);
/** Pods a failed test did not remove: removed after it, so the next test starts clean. */
const livePods = new Set<Pod>();
afterEach(async () => {
  for (const p of livePods) await removePod(p).catch(() => undefined);
});
afterAll(async () => {
  await destroyAllContainerd();
  cleanupClients();
}, 60_000);

const HTTPD = ['/bin/sh', '-c', 'mkdir -p /tmp/w && hostname > /tmp/w/index.html && exec httpd -f -p 8080 -h /tmp/w'];

function sandboxConfig(name: string, ports: { hostPort: number; containerPort: number }[] = []): PodSandboxConfig {
  return {
    metadata: { name, uid: rand(8), namespace: 'tscni-c-ns', attempt: 0 },
    hostname: name,
    portMappings: ports.map((p) => ({ protocol: 'TCP' as const, ...p })),
  };
}

async function waitForHttp(url: string, expected: string): Promise<void> {
  await waitFor(() => httpGet(url) === expected, `${url} to answer "${expected}"`, 10_000);
}

/** libcni cache entries (containerd's go-cni writes them) that belong to a sandbox. */
const cacheEntries = (id: string): string[] => (existsSync(RESULTS) ? readdirSync(RESULTS).filter((f) => f.includes(`-${id}-`)) : []);

interface Pod {
  id: string;
  config: PodSandboxConfig;
  ip: string;
  netns: string;
}

async function runPod(name: string, ports: { hostPort: number; containerPort: number }[] = []): Promise<Pod> {
  const config = sandboxConfig(name, ports);
  const id = await h.cri.runPodSandbox(config);
  const { status, info } = await h.cri.podSandboxStatus(id);
  const pod = { id, config, ip: status.network?.ip ?? '', netns: netnsPathOf(info) };
  livePods.add(pod);
  expect(status.state).toBe('SANDBOX_READY');
  return pod;
}

async function removePod(pod: Pod): Promise<void> {
  await h.cri.stopPodSandbox(pod.id);
  await h.cri.removePodSandbox(pod.id);
  livePods.delete(pod);
}

/** Nothing of the pod is left: no veth, rule, reservation, portmap record, cache entry or netns. */
async function expectGone(pods: Pod[]): Promise<void> {
  await waitFor(() => netState(net).veths.length === 0, 'the pods\' veths to go');
  expect(netState(net)).toEqual(EMPTY_STATE);
  for (const p of pods) {
    expect(cacheEntries(p.id)).toEqual([]);
    expect(existsSync(p.netns)).toBe(false);
  }
}

describe('containerd CRI (RunPodSandbox, as the kubelet)', () => {
  it('a pod without ports: CNI_ARGS reach the plugins, host-local address in PodSandboxStatus and in the netns, Stop+Remove leave nothing', async () => {
    const name = `plain-${rand()}`;
    const pod = await runPod(name);

    const calls = recordedCalls(h).filter((c) => c.env.CNI_CONTAINERID === pod.id && c.env.CNI_COMMAND === 'ADD');
    expect(calls.map((c) => c.plugin).sort()).toEqual(['bridge', 'host-local', 'loopback', 'portmap']);
    for (const c of calls) {
      expect(c.env.CNI_ARGS?.split(';')).toEqual(
        expect.arrayContaining(['IgnoreUnknown=1', 'K8S_POD_NAMESPACE=tscni-c-ns', `K8S_POD_NAME=${name}`, `K8S_POD_INFRA_CONTAINER_ID=${pod.id}`]),
      );
      expect(c.env.CNI_NETNS).toBe(pod.netns);
    }
    expect(pod.ip).toMatch(new RegExp(`^${net.prefix.replace(/\./g, '\\.')}\\.\\d+$`));
    expect(netState(net).reservations).toEqual([pod.ip]);
    expect(addrsIn(pod.netns)).toEqual([`${pod.ip}/24`]);
    expect(netState(net).veths).toHaveLength(1);
    expect(netState(net).natRules.some((l) => l.includes(pod.id) && l.includes('MASQUERADE'))).toBe(true);
    expect(cacheEntries(pod.id).sort()).toEqual([`${net.name}-${pod.id}-eth0`, `cni-loopback-${pod.id}-lo`].sort());

    // The pod reaches the host through the bridge gateway, and the host reaches the pod.
    const c = await h.cri.runContainer(pod.id, pod.config, 'web', IMAGE, HTTPD);
    await waitForHttp(`http://${pod.ip}:8080/`, name);
    const ping = await h.cri.execSync(c, ['ping', '-c', '1', '-W', '2', net.gateway]);
    expect(ping.exitCode, ping.stdout + ping.stderr).toBe(0);

    await removePod(pod);
    const dels = recordedCalls(h).filter((c) => c.env.CNI_CONTAINERID === pod.id && c.env.CNI_COMMAND === 'DEL');
    expect(dels.map((c) => c.plugin)).toEqual(expect.arrayContaining(['bridge', 'host-local', 'loopback', 'portmap']));
    await expectGone([pod]);
  });

  it('two containers in one sandbox share its network namespace', async () => {
    const name = `two-${rand()}`;
    const pod = await runPod(name);
    const web = await h.cri.runContainer(pod.id, pod.config, 'web', IMAGE, HTTPD);
    const side = await h.cri.runContainer(pod.id, pod.config, 'side', IMAGE, ['/bin/sleep', '1000000']);
    await waitForHttp(`http://${pod.ip}:8080/`, name);
    const local = await h.cri.execSync(side, ['wget', '-q', '-O', '-', 'http://127.0.0.1:8080/']);
    expect(local.stdout.trim(), `exit ${local.exitCode}: ${local.stderr}`).toBe(name);
    for (const cid of [web, side]) {
      const addr = await h.cri.execSync(cid, ['ip', '-o', '-4', 'addr', 'show', 'dev', 'eth0']);
      expect(addr.stdout).toContain(`inet ${pod.ip}/24`);
    }
    // Still one attachment: one veth, one reservation.
    expect(netState(net).veths).toHaveLength(1);
    expect(netState(net).reservations).toEqual([pod.ip]);
    await removePod(pod);
    await expectGone([pod]);
  });

  it("a sandbox whose netns is already gone when it is stopped: containerd DELs with an empty CNI_NETNS and nothing is left", async () => {
    const pod = await runPod(`gone-${rand()}`);
    expect(netState(net).natRules.some((l) => l.includes(pod.id))).toBe(true);
    // Someone removed the netns mount (a reboot, a cleanup script); the sandbox's process still holds the namespace.
    const del = tryRun(['umount', pod.netns]);
    expect(del.code, del.stderr).toBe(0);
    tryRun(['rm', '-f', pod.netns]);
    const before = recordedCalls(h).length;
    await removePod(pod);
    const dels = recordedCalls(h).slice(before).filter((c) => c.env.CNI_COMMAND === 'DEL' && c.env.CNI_CONTAINERID === pod.id);
    expect(dels.map((c) => c.plugin)).toEqual(expect.arrayContaining(['bridge', 'host-local', 'portmap']));
    for (const c of dels) expect(c.env.CNI_NETNS ?? '').toBe('');
    await expectGone([pod]);
  });

  it('containerd restarted with pods running: the pods keep their addresses and traffic, then are removed cleanly', async () => {
    const pods = [await runPod(`rs-a-${rand()}`), await runPod(`rs-b-${rand()}`)];
    for (const p of pods) await h.cri.runContainer(p.id, p.config, 'web', IMAGE, HTTPD);
    for (const p of pods) await waitForHttp(`http://${p.ip}:8080/`, p.config.metadata.name);
    const oldPid = h.pid();
    await h.restart();
    expect(h.pid()).not.toBe(oldPid);
    for (const p of pods) {
      const { status } = await h.cri.podSandboxStatus(p.id);
      expect(status.state).toBe('SANDBOX_READY');
      expect(status.network?.ip).toBe(p.ip);
      expect(httpGet(`http://${p.ip}:8080/`)).toBe(p.config.metadata.name);
    }
    expect(netState(net).reservations.sort()).toEqual(pods.map((p) => p.ip).sort());
    for (const p of pods) await removePod(p);
    await expectGone(pods);
  });

  // containerd 1.6's go-cni sends portMappings with Go field names
  // ({"HostPort":..,"ContainerPort":..,"Protocol":"tcp","HostIP":""}); portmap reads them
  // case-insensitively, as Go's decoder and the reference do.
  it('RunPodSandbox with a hostPort: CNI_ARGS and portMappings reach the plugins, the pod gets its address, the host port answers, Stop+Remove leave nothing', async () => {
    const hp = hostPort();
    const name = `web-${rand()}`;
    const pod = await runPod(name, [{ hostPort: hp, containerPort: 8080 }]);

    const adds = recordedCalls(h).filter((c) => c.env.CNI_COMMAND === 'ADD' && c.env.CNI_CONTAINERID === pod.id);
    const portmap = adds.find((c) => c.plugin === 'portmap');
    expect(portmap?.env.CNI_ARGS?.split(';').sort()).toEqual(
      expect.arrayContaining(['IgnoreUnknown=1', 'K8S_POD_NAMESPACE=tscni-c-ns', `K8S_POD_NAME=${name}`, `K8S_POD_INFRA_CONTAINER_ID=${pod.id}`]),
    );
    expect(portmap?.env.CNI_NETNS).toBe(pod.netns);
    expect(portmap?.env.CNI_IFNAME).toBe('eth0');
    expect((portmap?.stdin.runtimeConfig as { portMappings: unknown[] }).portMappings).toHaveLength(1);

    expect(pod.ip).toMatch(new RegExp(`^${net.prefix.replace(/\./g, '\\.')}\\.\\d+$`));
    expect(netState(net).reservations).toEqual([pod.ip]);
    expect(addrsIn(pod.netns)).toEqual([`${pod.ip}/24`]);
    expect(netState(net).natRules.some((l) => l.includes(`--to-destination ${pod.ip}:8080`) && l.includes(`--dport ${hp}`))).toBe(true);

    await h.cri.runContainer(pod.id, pod.config, 'web', IMAGE, HTTPD);
    await waitForHttp(`http://127.0.0.1:${hp}/`, name);

    await removePod(pod);
    await expectGone([pod]);
    expect(httpGet(`http://127.0.0.1:${hp}/`)).toBeUndefined();
  });
});
