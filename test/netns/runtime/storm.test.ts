/**
 * Concurrency: 32 pods ADDed at once through the libcni chain (bridge +
 * host-local, then portmap with a host port each), then a mixed storm of
 * CHECK and DEL, then DEL of the rest, all in parallel. No call may fail,
 * no address may be handed out twice, and nothing may be left.
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { BIN_DIR, binPath } from '../../helpers/plugin.ts';
import { createNetns, removeAllNetns, tryRun, type TestNetns } from '../../helpers/netns.ts';
import { removeSharedIfNew, snapshotShared } from '../../helpers/portmap-shared.ts';

const N = 32;
const dir = mkdtempSync(join(tmpdir(), 'tscni-storm-'));
const shared = snapshotShared();
const bridgeConf = {
  cniVersion: '1.1.0',
  name: 'tscni-storm',
  type: 'bridge',
  bridge: 'tstorm0',
  isGateway: true,
  ipMasq: true,
  ipam: { type: 'host-local', dataDir: join(dir, 'ipam'), ranges: [[{ subnet: '10.244.252.0/24' }]] },
};
const pmConf = (prevResult: unknown, port: number) => ({
  cniVersion: '1.1.0',
  name: 'tscni-storm',
  type: 'portmap',
  stateDir: join(dir, 'portmap'),
  runtimeConfig: { portMappings: [{ hostPort: port, containerPort: 80, protocol: 'tcp' }] },
  prevResult,
});

afterAll(() => {
  removeAllNetns();
  tryRun(['ip', 'link', 'del', 'tstorm0']);
  removeSharedIfNew(shared);
  rmSync(dir, { recursive: true, force: true });
});

/** One plugin call as a runtime makes it, asynchronously; resolves with exit code and stdout. */
function call(plugin: string, command: string, cid: string, ns: TestNetns, conf: unknown): Promise<{ code: number | null; out: string }> {
  return new Promise((resolve) => {
    const child = spawn(binPath(plugin), [], {
      env: { PATH: '/usr/sbin:/usr/bin:/sbin:/bin', CNI_COMMAND: command, CNI_CONTAINERID: cid, CNI_NETNS: ns.path, CNI_IFNAME: 'eth0', CNI_PATH: BIN_DIR },
    });
    let out = '';
    child.stdout.on('data', (b: Buffer) => (out += b.toString()));
    child.on('close', (code) => resolve({ code, out }));
    child.stdin.end(JSON.stringify(conf));
  });
}

describe('storms', () => {
  it(`${N} chain ADDs at once, then CHECK and DEL mixed, then the rest: no error, no duplicate, nothing left`, async () => {
    const pods = Array.from({ length: N }, (_, i) => ({ cid: `storm${i}`, ns: createNetns('storm'), port: 32100 + i, prev: undefined as unknown }));
    const adds = await Promise.all(
      pods.map(async (p) => {
        const br = await call('bridge', 'ADD', p.cid, p.ns, bridgeConf);
        if (br.code !== 0) return br;
        p.prev = JSON.parse(br.out);
        return call('portmap', 'ADD', p.cid, p.ns, pmConf(p.prev, p.port));
      }),
    );
    expect(adds.filter((r) => r.code !== 0).map((r) => r.out)).toEqual([]);
    const ips = pods.map((p) => (p.prev as { ips: Array<{ address: string }> }).ips[0]!.address);
    expect(new Set(ips).size).toBe(N);

    // Half are checked while the other half are deleted (portmap first, as libcni does).
    const half = N / 2;
    const storm = await Promise.all(
      pods.map(async (p, i) => {
        if (i < half) {
          const c1 = await call('portmap', 'CHECK', p.cid, p.ns, pmConf(p.prev, p.port));
          const c2 = await call('bridge', 'CHECK', p.cid, p.ns, { ...bridgeConf, prevResult: p.prev });
          return [c1, c2];
        }
        const d1 = await call('portmap', 'DEL', p.cid, p.ns, pmConf(p.prev, p.port));
        const d2 = await call('bridge', 'DEL', p.cid, p.ns, { ...bridgeConf, prevResult: p.prev });
        return [d1, d2];
      }),
    );
    expect(storm.flat().filter((r) => r.code !== 0).map((r) => r.out)).toEqual([]);
    const rest = await Promise.all(
      pods.slice(0, half).map(async (p) => [await call('portmap', 'DEL', p.cid, p.ns, pmConf(p.prev, p.port)), await call('bridge', 'DEL', p.cid, p.ns, { ...bridgeConf, prevResult: p.prev })]),
    );
    expect(rest.flat().filter((r) => r.code !== 0).map((r) => r.out)).toEqual([]);

    // Nothing left: reservations, pod rules, portmap records, bridge ports.
    expect(readdirSync(join(dir, 'ipam', 'tscni-storm')).filter((f) => /^\d+\.\d+\.\d+\.\d+$/.test(f))).toEqual([]);
    expect(tryRun(['iptables-save', '-t', 'nat']).stdout.split('\n').filter((l) => l.includes('tscni-storm') || /storm\d+/.test(l))).toEqual([]);
    expect(tryRun(['ls', join(dir, 'portmap', 'attachments')]).stdout.trim()).toBe('');
    expect(readdirSync('/sys/class/net/tstorm0/brif')).toEqual([]);
  }, 120_000);
});
