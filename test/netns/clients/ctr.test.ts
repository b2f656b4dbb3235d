/**
 * `ctr run --cni`: containerd's simple path (go-cni defaults: loopback plus
 * the first conflist in /etc/cni/net.d, plugins from /opt/cni/bin), run in a
 * private mount namespace so the machine's own folders are never touched
 * (test/helpers/clients/ctr.ts). Our network: bridge + host-local + portmap.
 */
import { spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { EMPTY_STATE, PLUGIN_DIR, cleanupClients, conflist, httpGet, netState, newClientNet, rand, waitFor, type ClientNet } from '../../helpers/clients/common.ts';
import { IMAGE, RESULTS, destroyAllContainerd, recordedCalls, startContainerd, type Containerd } from '../../helpers/clients/containerd.ts';
import { runCtr, spawnCtr } from '../../helpers/clients/ctr.ts';
import { binPath } from '../../helpers/plugin.ts';

let h: Containerd;
let net: ClientNet;
const containers = new Set<string>();
const foreground: ChildProcess[] = [];

beforeAll(async () => {
  net = newClientNet();
  h = await startContainerd({ [`50-${net.name}.conflist`]: conflist(net) });
}, 60_000);
afterEach(async () => {
  for (const id of containers) {
    h.ctr(['tasks', 'kill', '-s', 'SIGKILL', id]);
    await waitFor(() => !/RUNNING/.test(h.ctr(['tasks', 'ls']).stdout.split('\n').find((l) => l.startsWith(`${id} `)) ?? ''), `task ${id} to stop`).catch(() => undefined);
    h.ctr(['tasks', 'rm', '-f', id]);
    h.ctr(['containers', 'rm', id]);
    for (const f of existsSync(RESULTS) ? readdirSync(RESULTS) : []) if (f.includes(`-k8s.io-${id}-`)) rmSync(join(RESULTS, f), { force: true });
  }
  containers.clear();
  for (const c of foreground.splice(0)) if (c.exitCode === null && c.pid) process.kill(c.pid, 'SIGKILL');
});
afterAll(async () => {
  await destroyAllContainerd();
  cleanupClients();
}, 60_000);

const newId = (tag: string): string => {
  const id = `tscni-c-${tag}-${rand()}`;
  containers.add(id);
  return id;
};
const serve = (body: string) => ['/bin/sh', '-c', `mkdir -p /tmp/w && echo ${body} > /tmp/w/index.html && exec httpd -f -p 8080 -h /tmp/w`];
const exited = (c: ChildProcess) => new Promise<number | null>((r) => (c.exitCode !== null ? r(c.exitCode) : c.once('exit', (code) => r(code))));

describe('ctr run --cni (containerd 1.6)', () => {
  it('two containers reach each other; a killed container is DELed by ctr with its netns gone, leaving nothing', async () => {
    const a = newId('a');
    const ctrA = spawnCtr(h, ['run', '--cni', '--rm', IMAGE, a, ...serve(a)]);
    foreground.push(ctrA);
    await waitFor(() => netState(net).reservations.length === 1, 'container a to get an address', 15_000);
    const ipA = netState(net).reservations[0] as string;
    await waitFor(() => httpGet(`http://${ipA}:8080/`) === a, `a's server at ${ipA}:8080`, 10_000);
    expect(netState(net).natRules.some((l) => l.includes(`k8s.io-${a}`) && l.includes('MASQUERADE'))).toBe(true);

    // b runs to completion: its wget reaches a across the bridge, and ctr DELs b when it exits.
    const b = newId('b');
    const runB = runCtr(h, ['run', '--cni', '--rm', IMAGE, b, 'wget', '-q', '-O', '-', `http://${ipA}:8080/`]);
    expect(runB.stdout.trim(), runB.stderr).toBe(a);
    expect(runB.code).toBe(0);
    expect(netState(net).reservations).toEqual([ipA]);
    expect(netState(net).natRules.filter((l) => l.includes(`k8s.io-${b}`))).toEqual([]);

    // a is killed: ctr run returns and DELs a, whose namespace died with its process.
    h.ctr(['tasks', 'kill', '-s', 'SIGKILL', a]);
    await exited(ctrA);
    const dels = recordedCalls(h).filter((c) => c.env.CNI_COMMAND === 'DEL' && c.env.CNI_CONTAINERID === `k8s.io-${a}`);
    expect(dels.map((c) => c.plugin)).toEqual(expect.arrayContaining(['bridge', 'host-local', 'portmap']));
    // ctr removes the network after the task is gone, without a netns path.
    for (const c of dels) expect(c.env.CNI_NETNS ?? '').toBe('');
    await waitFor(() => netState(net).veths.length === 0, 'the veths to go');
    expect(netState(net)).toEqual(EMPTY_STATE);
    expect(existsSync(RESULTS) ? readdirSync(RESULTS).filter((f) => f.startsWith(`${net.name}-`)) : []).toEqual([]);
  });

  it('ctr run -d never DELs: after the container dies, tscni gc removes its rules, reservation and cache', async () => {
    const c = newId('d');
    const run = runCtr(h, ['run', '-d', '--cni', IMAGE, c, '/bin/sleep', '1000000']);
    expect(run.code, run.stderr).toBe(0);
    expect(netState(net).reservations).toHaveLength(1);
    expect(netState(net).veths).toHaveLength(1);
    const cache = join(RESULTS, `${net.name}-k8s.io-${c}-eth0`);
    expect(existsSync(cache)).toBe(true);

    h.ctr(['tasks', 'kill', '-s', 'SIGKILL', c]);
    await waitFor(() => netState(net).veths.length === 0, 'the veth to go with the container');
    // Nobody DELed: the reservation and the masquerade rules are still there.
    expect(netState(net).reservations).toHaveLength(1);
    expect(netState(net).natRules.some((l) => l.includes(`k8s.io-${c}`))).toBe(true);

    const stateDir = join(net.dir, 'tscni-state');
    mkdirSync(stateDir, { recursive: true });
    const gc = spawnSync(binPath('tscni'), ['gc', net.name], {
      encoding: 'utf8',
      env: { PATH: process.env.PATH ?? '/usr/sbin:/usr/bin:/sbin:/bin', NETCONFPATH: h.confDir, CNI_PATH: PLUGIN_DIR, CNI_CACHE_DIR: '/var/lib/cni', TSCNI_STATE_DIR: stateDir },
    });
    expect(gc.stderr).toBe('');
    expect(gc.status).toBe(0);
    expect(netState(net)).toEqual(EMPTY_STATE);
    expect(existsSync(cache)).toBe(false);
  });
});
