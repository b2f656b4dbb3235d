/**
 * etcd-subnet against a real etcd: leases taken by transaction, hosts racing
 * for the same range, restarts keeping their subnet, TTL expiry, and code 11
 * while etcd is down.
 */
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Etcd3 } from 'etcd3';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { binPath, BIN_DIR, callPlugin, callPluginOk } from '../../helpers/plugin.ts';
import { makeTestPki, startEtcd, type TestEtcd } from './etcd.ts';

let etcd: TestEtcd;
let client: Etcd3;
const dirs: string[] = [];
let net = '';
let n = 0;

beforeAll(async () => {
  etcd = await startEtcd();
  client = new Etcd3({ hosts: etcd.url });
});
afterAll(async () => {
  client?.close();
  await etcd?.stop();
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});
beforeEach(() => {
  net = `to-net${++n}-${process.pid}`;
});

function dataDir(): string {
  const d = mkdtempSync(join(tmpdir(), 'tscni-o-ipam-'));
  dirs.push(d);
  return d;
}

function conf(host: string, dir: string, extra: Record<string, unknown> = {}, url = etcd.url): Record<string, unknown> {
  return {
    cniVersion: '1.1.0',
    name: net,
    type: 'etcd-subnet',
    ipam: { type: 'etcd-subnet', etcd: { endpoints: [url], prefix: '/tscni-o' }, clusterCIDR: '10.252.192.0/22', subnetLen: 24, hostId: host, publicIp: '172.31.250.9', dataDir: dir, ...extra },
  };
}

const call = (command: string, config: unknown, containerId = 'c1') => callPlugin('etcd-subnet', { command, config, containerId, netns: '/dev/null', ifname: 'eth0' });
const callOk = (command: string, config: unknown, containerId = 'c1') => callPluginOk('etcd-subnet', { command, config, containerId, netns: '/dev/null', ifname: 'eth0' });

/** Subnet -> record, as etcd holds them now. */
async function records(): Promise<Record<string, { hostId: string; vtepMac: string; publicIp?: string }>> {
  const all = await client.getAll().prefix(`/tscni-o/${net}/subnets/`).strings();
  return Object.fromEntries(Object.entries(all).map(([k, v]) => [k.split('/').pop() as string, JSON.parse(v)]));
}

/** Run ADD as a separate process without waiting (for races). */
function addAsync(config: unknown, containerId: string): Promise<{ code: number; out: string }> {
  return new Promise((resolve, reject) => {
    const p = spawn(binPath('etcd-subnet'), [], {
      env: { PATH: process.env.PATH ?? '', CNI_COMMAND: 'ADD', CNI_CONTAINERID: containerId, CNI_NETNS: '/dev/null', CNI_IFNAME: 'eth0', CNI_PATH: BIN_DIR },
    });
    let out = '';
    p.stdout.on('data', (d: Buffer) => (out += d.toString()));
    p.on('error', reject);
    p.on('close', (code) => resolve({ code: code ?? -1, out }));
    p.stdin.end(JSON.stringify(config));
  });
}

describe('etcd-subnet', () => {
  it('leases a subnet by transaction, allocates inside it the host-local way, keeps it for later pods', async () => {
    const dir = dataDir();
    const r1 = callOk('ADD', conf('to-a', dir)).json as { ips: Array<{ address: string; gateway: string }>; routes: Array<{ dst: string }> };
    const recs = await records();
    expect(Object.keys(recs)).toHaveLength(1);
    const [key, rec] = Object.entries(recs)[0] as [string, { hostId: string; vtepMac: string; publicIp: string }];
    const subnet = key.replace('-', '/');
    const base = subnet.split('/')[0] as string;
    const prefix3 = base.split('.').slice(0, 3).join('.');
    expect(rec).toEqual({ hostId: 'to-a', publicIp: '172.31.250.9', vtepMac: `0a:58:${base.split('.').map((x) => Number(x).toString(16).padStart(2, '0')).join(':')}` });
    expect(r1.ips).toEqual([{ address: `${prefix3}.2/24`, gateway: `${prefix3}.1` }]);
    expect(r1.routes).toEqual([{ dst: '10.252.192.0/22' }]);
    // host-local's on-disk layout inside the subnet; the lease saved next to it.
    expect(readdirSync(join(dir, net))).toContain(`${prefix3}.2`);
    expect(existsSync(join(dir, `${net}.lease.json`))).toBe(true);

    const r2 = callOk('ADD', conf('to-a', dir), 'c2').json as { ips: Array<{ address: string }> };
    expect(r2.ips[0]?.address).toBe(`${prefix3}.3/24`);
    expect(Object.keys(await records())).toEqual([key]);
    callOk('CHECK', { ...conf('to-a', dir), prevResult: r1 });
    callOk('DEL', conf('to-a', dir));
    callOk('DEL', conf('to-a', dir), 'c2');
    expect(readdirSync(join(dir, net)).filter((f) => f.startsWith(prefix3))).toEqual([]);
  });

  it('5 hosts racing for the 4 subnets of one range: 4 distinct subnets, the 5th gets "no free subnet"', async () => {
    const hosts = ['to-h1', 'to-h2', 'to-h3', 'to-h4', 'to-h5'];
    const outs = await Promise.all(hosts.map((h) => addAsync(conf(h, dataDir()), `c-${h}`)));
    const ok = outs.filter((o) => o.code === 0).map((o) => (JSON.parse(o.out) as { ips: Array<{ address: string }> }).ips[0]?.address);
    const failed = outs.filter((o) => o.code !== 0).map((o) => JSON.parse(o.out) as { code: number; msg: string });
    expect(ok).toHaveLength(4);
    expect(new Set(ok.map((a) => a?.split('.').slice(0, 3).join('.'))).size).toBe(4);
    expect(failed).toEqual([{ cniVersion: '1.1.0', code: 50, msg: `no free /24 subnet left in 10.252.192.0/22 for network ${net}` }]);
    const recs = await records();
    expect(Object.keys(recs).sort()).toEqual(['10.252.192.0-24', '10.252.193.0-24', '10.252.194.0-24', '10.252.195.0-24']);
    expect(new Set(Object.values(recs).map((r) => r.hostId)).size).toBe(4);
  });

  it('a restarted host keeps its subnet: with its saved lease, without it, and after the lease expired', async () => {
    const dir = dataDir();
    callOk('ADD', conf('to-r', dir, { leaseTTL: 2 }));
    const [key] = Object.keys(await records());
    // Local state lost: etcd still names this host, so the same subnet comes back.
    rmSync(join(dir, `${net}.lease.json`));
    callOk('ADD', conf('to-r', dir, { leaseTTL: 2 }), 'c2');
    expect(Object.keys(await records())).toEqual([key]);
    // Nobody renews: one TTL later the record is gone...
    await new Promise((r) => setTimeout(r, 3_500));
    expect(await records()).toEqual({});
    // ...and the restarted host takes the saved subnet again (it is free), although its hash would start elsewhere.
    callOk('ADD', conf('to-r', dir, { leaseTTL: 2 }), 'c3');
    expect(Object.keys(await records())).toEqual([key]);
  });

  it('etcd unreachable: ADD fails with code 11 naming the endpoint, DEL still works; ADD succeeds once it is back', async () => {
    const dir = dataDir();
    const first = callOk('ADD', conf('to-u', dir)).json as { ips: Array<{ address: string }> };
    await etcd.kill();
    try {
      const down = call('ADD', conf('to-u', dir), 'c2');
      expect(down.code).not.toBe(0);
      const err = down.json as { code: number; msg: string };
      expect(err.code).toBe(11);
      expect(err.msg).toContain(etcd.url);
      expect(err.msg).toContain('try again later');
      const st = call('STATUS', conf('to-u', dir));
      expect((st.json as { code: number }).code).toBe(50);
      callOk('DEL', conf('to-u', dir));
    } finally {
      await etcd.restart();
    }
    const again = callOk('ADD', conf('to-u', dir), 'c3').json as { ips: Array<{ address: string }> };
    // Same subnet, and the address DEL freed is handed out again after the next one (host-local's round robin).
    expect(again.ips[0]?.address.split('.').slice(0, 3)).toEqual(first.ips[0]?.address.split('.').slice(0, 3));
    callOk('STATUS', conf('to-u', dir));
  });

  it.each(['0.3.1', '0.4.0', '1.0.0', '1.1.0'])('cniVersion %s: the result in that version, an address of the leased subnet', async (v) => {
    const dir = dataDir();
    const out = callOk('ADD', { ...conf(`to-v${v.replaceAll('.', '')}`, dir), cniVersion: v }).json as { cniVersion: string; ips: Array<{ address: string; version?: string }> };
    expect(out.cniVersion).toBe(v);
    const subnet = (Object.keys(await records())[0] as string).replace('-', '/');
    expect(out.ips[0]?.address).toBe(`${subnet.split('.').slice(0, 3).join('.')}.2/24`);
    expect('version' in (out.ips[0] as object)).toBe(v === '0.3.1' || v === '0.4.0');
    callOk('DEL', { ...conf(`to-v${v.replaceAll('.', '')}`, dir), cniVersion: v });
  });

  it('GC releases the reservations of attachments that are not valid any more, without etcd', async () => {
    const dir = dataDir();
    callOk('ADD', conf('to-gc', dir), 'keep');
    callOk('ADD', conf('to-gc', dir), 'stale');
    const held = () => readdirSync(join(dir, net)).filter((f) => /^\d+\.\d+\.\d+\.\d+$/.test(f)).length;
    expect(held()).toBe(2);
    await etcd.kill();
    try {
      callOk('GC', { ...conf('to-gc', dir), 'cni.dev/valid-attachments': [{ containerID: 'keep', ifname: 'eth0' }] });
    } finally {
      await etcd.restart();
    }
    expect(held()).toBe(1);
  });

  it('a config error is code 7 before etcd is asked', () => {
    const bad = call('ADD', conf('to-b', dataDir(), { subnetLen: 20 }));
    expect(bad.json).toMatchObject({ code: 7, msg: expect.stringContaining('ipam.subnetLen') });
    const noEtcd = call('ADD', { ...conf('to-b', dataDir()), ipam: { type: 'etcd-subnet', clusterCIDR: '10.252.192.0/22' } });
    expect(noEtcd.json).toMatchObject({ code: 7, msg: expect.stringContaining('ipam.etcd') });
  });
});

describe('etcd-subnet over TLS (client certificates required)', () => {
  let tlsEtcd: TestEtcd | undefined;
  let pki: ReturnType<typeof makeTestPki>;
  beforeAll(async () => {
    const dir = dataDir();
    pki = makeTestPki(dir);
    tlsEtcd = await startEtcd({ tls: { ca: pki.ca, cert: pki.serverCert, key: pki.serverKey, clientCert: pki.clientCert, clientKey: pki.clientKey } });
  });
  afterAll(async () => {
    await tlsEtcd?.stop();
  });

  it('caFile/certFile/keyFile/serverName from the config: the lease is taken; without the client certificate etcd refuses', () => {
    const url = (tlsEtcd as TestEtcd).url;
    expect(url.startsWith('https://127.0.0.1:')).toBe(true);
    const base = conf('to-tls', dataDir(), {}, url) as { ipam: { etcd: Record<string, unknown> } };
    base.ipam.etcd = { ...base.ipam.etcd, caFile: pki.ca, certFile: pki.clientCert, keyFile: pki.clientKey, serverName: 'etcd.tscni-o.test' };
    const ok = callOk('ADD', base).json as { ips: Array<{ address: string }> };
    expect(ok.ips[0]?.address).toMatch(/^10\.252\.19[2-5]\.2\/24$/);

    const noCert = conf('to-tls2', dataDir(), {}, url) as { ipam: { etcd: Record<string, unknown> } };
    noCert.ipam.etcd = { ...noCert.ipam.etcd, caFile: pki.ca, serverName: 'etcd.tscni-o.test' };
    const refused = call('ADD', noCert);
    expect(refused.code).not.toBe(0);
    expect((refused.json as { msg: string }).msg).toContain(url);
  });

  it('a TLS file that cannot be read is a config error (code 7) naming the key', () => {
    const bad = conf('to-tls3', dataDir(), {}, (tlsEtcd as TestEtcd).url) as { ipam: { etcd: Record<string, unknown> } };
    bad.ipam.etcd = { ...bad.ipam.etcd, caFile: '/nonexistent/ca.pem', serverName: 'etcd.tscni-o.test' };
    expect(call('ADD', bad).json).toMatchObject({ code: 7, msg: expect.stringContaining('ipam.etcd.caFile') });
  });
});
