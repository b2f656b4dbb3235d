/**
 * Every state file a plugin keeps is written atomically (temp + rename), so a
 * crash leaves the old or the new content. A disk error or an admin can still
 * leave a file empty: here each kind is truncated in turn, and the next call
 * must recover (succeed, and leave nothing behind after DEL).
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readdirSync, rmSync, truncateSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { BIN_DIR, binPath } from '../../helpers/plugin.ts';
import { createNetns, removeAllNetns, tryRun } from '../../helpers/netns.ts';
import { removeSharedIfNew, snapshotShared } from '../../helpers/portmap-shared.ts';

const dir = mkdtempSync(join(tmpdir(), 'tscni-trunc-'));
const shared = snapshotShared();
afterAll(() => {
  removeAllNetns();
  tryRun(['ip', 'link', 'del', 'ttrunc0']);
  removeSharedIfNew(shared);
  rmSync(dir, { recursive: true, force: true });
});

const ns = createNetns('trunc');
const ipamDir = join(dir, 'ipam');
const netDir = join(ipamDir, 'tscni-trunc');
const ipamConf = { cniVersion: '1.1.0', name: 'tscni-trunc', type: 'bridge', ipam: { type: 'host-local', dataDir: ipamDir, ranges: [[{ subnet: '10.244.253.0/28' }]] } };
const pmConf = (prevResult: unknown) => ({
  cniVersion: '1.1.0',
  name: 'tscni-trunc',
  type: 'portmap',
  stateDir: join(dir, 'portmap'),
  runtimeConfig: { portMappings: [{ hostPort: 32300, containerPort: 80, protocol: 'tcp' }] },
  prevResult,
});

function call(plugin: string, command: string, cid: string, conf: unknown) {
  const r = spawnSync(binPath(plugin), [], {
    env: { PATH: '/usr/sbin:/usr/bin:/sbin:/bin', CNI_COMMAND: command, CNI_CONTAINERID: cid, CNI_NETNS: ns.path, CNI_IFNAME: 'eth0', CNI_PATH: BIN_DIR },
    input: JSON.stringify(conf),
    encoding: 'utf8',
  });
  return { code: r.status, out: r.stdout, json: r.stdout.trim() ? (JSON.parse(r.stdout) as Record<string, unknown>) : undefined };
}

const reservations = () => readdirSync(netDir).filter((f) => /^\d+\.\d+\.\d+\.\d+$/.test(f));

describe('truncated state files', () => {
  it.each([['last_reserved_ip.0'], ['an index bucket'], ['the index marker'], ['a reservation of a live pod']])('host-local recovers when %s is empty', (which) => {
    expect(call('host-local', 'ADD', 'keep', ipamConf).code).toBe(0);
    expect(call('host-local', 'ADD', 'other', ipamConf).code).toBe(0);
    const files = readdirSync(netDir);
    const target =
      which === 'last_reserved_ip.0'
        ? 'last_reserved_ip.0'
        : which === 'an index bucket'
          ? files.find((f) => f.startsWith('.tscni-idx-'))
          : which === 'the index marker'
            ? files.find((f) => f === '.tscni-index')
            : reservations()[0];
    expect(target, `${which} among ${files.join(' ')}`).toBeDefined();
    truncateSync(join(netDir, target as string));
    // The next calls work: a new ADD gets a fresh address, the existing pods DEL cleanly.
    const next = call('host-local', 'ADD', 'next', ipamConf);
    expect(next.code, next.out).toBe(0);
    for (const cid of ['next', 'other', 'keep']) expect(call('host-local', 'DEL', cid, ipamConf).code).toBe(0);
    // An emptied reservation has no owner left to DEL it: GC takes it once it is old; nothing else remains.
    const left = reservations();
    if (which === 'a reservation of a live pod') expect(left.length).toBeLessThanOrEqual(1);
    else expect(left).toEqual([]);
    for (const f of left) rmSync(join(netDir, f));
  });

  it('portmap DEL recovers from an empty record: the rules still go', () => {
    const br = call('bridge', 'ADD', 'pm1', { ...ipamConf, bridge: 'ttrunc0', ipMasq: false });
    expect(br.code, br.out).toBe(0);
    const pm = call('portmap', 'ADD', 'pm1', pmConf(br.json));
    expect(pm.code, pm.out).toBe(0);
    const records = join(dir, 'portmap', 'attachments', 'tscni-trunc');
    const [rec] = readdirSync(records);
    truncateSync(join(records, rec as string));
    // DEL without portMappings, as cnitool sends it: only the chain name is left to find the rules by.
    const del = call('portmap', 'DEL', 'pm1', { ...pmConf(br.json), runtimeConfig: {} });
    expect(del.code, del.out).toBe(0);
    expect(tryRun(['iptables-save', '-t', 'nat']).stdout).not.toContain('pm1');
    expect(call('bridge', 'DEL', 'pm1', { ...ipamConf, bridge: 'ttrunc0', ipMasq: false, prevResult: br.json }).code).toBe(0);
    // The port is free again for another pod.
    const again = call('portmap', 'ADD', 'pm2', pmConf(br.json));
    expect(again.code, again.out).toBe(0);
    expect(call('portmap', 'DEL', 'pm2', pmConf(br.json)).code).toBe(0);
  });
});
