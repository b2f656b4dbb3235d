/**
 * kill -9 at random points of ADD, then prove that DEL (per attachment) or
 * GC (for everything) recovers: no reservation, index or temp file left and
 * every address allocatable again. Delays are random because the process
 * start takes ~40 ms and the critical section ~1 ms: across many runs the
 * kills land before, inside and after it (the figures are printed).
 */
import { afterAll, afterEach, beforeEach, describe, expect, it } from 'vitest';
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { indexLines, ipsOf, listNet, NET, netConf, removeDir, reservations, runOk, start, stopNetns, tempDataDir, type Output } from './helpers.ts';
import { reservationTemp } from '../../../ipam/host-local/disk-store.ts';

let dir: string;
beforeEach(() => {
  dir = tempDataDir();
});
afterEach(() => removeDir(dir));
afterAll(() => stopNetns());

// 29 usable IPv4 addresses: small enough to prove all of them come back.
const ipam = () => ({ ranges: [[{ subnet: '10.240.0.0/27' }], [{ subnet: 'fd10:240::/64' }]] });
const USABLE_V4 = 29;

function leftovers(): string[] {
  return listNet(dir).filter((n) => n.startsWith('.tscni-idx-') || n.startsWith('.tscni-tmp-') || n === '.tscni-lock' || n === '.tscni-lock-steal');
}

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

async function killedAdd(containerId: string, config: unknown, delayMs: number): Promise<Output & { killed: boolean }> {
  const { child, done } = start({ command: 'ADD', containerId, config });
  await sleep(delayMs);
  const killed = child.kill('SIGKILL');
  const out = await done;
  return { ...out, killed: killed && out.code !== 0 };
}

function assertAllAllocatable(config: unknown): void {
  for (let i = 0; i < USABLE_V4; i++) runOk({ command: 'ADD', containerId: `after${i}`, config });
  const v4 = Object.keys(reservations(dir)).filter((n) => !n.includes(':'));
  expect(v4).toHaveLength(USABLE_V4);
}

describe('host-local crash safety', () => {
  it('random kill -9 during ADD, then DEL of that attachment: nothing left, nothing blocked', async () => {
    const config = netConf(dir, ipam());
    // Calibrate: kill between half and all of an uncontended ADD's wall time.
    const durations: number[] = [];
    for (let i = 0; i < 5; i++) {
      const t0 = Date.now();
      runOk({ command: 'ADD', containerId: `cal${i}`, config });
      durations.push(Date.now() - t0);
      runOk({ command: 'DEL', containerId: `cal${i}`, config });
    }
    const t = durations.sort((a, b) => a - b)[2] as number;
    const seen = { reserved: 0, intentOnly: 0, untouched: 0, completed: 0 };
    for (let i = 0; i < 60; i++) {
      // Two at a time, so a kill also hits lock holders with a waiter behind them.
      const ids = [`k${i}a`, `k${i}b`];
      const pair = await Promise.all(ids.map((id) => killedAdd(id, config, t * (0.5 + Math.random() * 0.55))));
      for (const [j, out] of pair.entries()) {
        const id = ids[j] as string;
        const mine = () => Object.values(reservations(dir)).filter((c) => c.startsWith(`${id}\r\n`));
        if (out.code === 0) seen.completed++;
        else if (mine().length) seen.reserved++;
        else if (indexLines(dir).some((l) => l.includes(` ${id} `))) seen.intentOnly++;
        else seen.untouched++;
        runOk({ command: 'DEL', containerId: id, config });
        expect(mine()).toEqual([]);
      }
    }
    console.log(`crash/DEL (ADD ~${t} ms): ${JSON.stringify(seen)}`);
    expect(seen.reserved + seen.intentOnly + seen.untouched).toBeGreaterThan(0);
    expect(reservations(dir)).toEqual({});
    // DEL removed every index line and reservation temp; only lock/last_reserved temps of killed writers may remain.
    expect(leftovers().filter((n) => !n.startsWith('.tscni-tmp-lock-') && !n.startsWith('.tscni-tmp-last'))).toEqual([]);
    runOk({ command: 'GC', config: { ...netConf(dir, ipam(), {}, '1.1.0'), 'cni.dev/valid-attachments': [] } });
    expect(leftovers()).toEqual([]);
    assertAllAllocatable(config);
  }, 240_000);

  it('random kill -9 of parallel ADDs, then one GC: nothing left, all addresses allocatable', async () => {
    const config = netConf(dir, ipam());
    for (let round = 0; round < 5; round++) {
      const outs = await Promise.all(Array.from({ length: 6 }, (_, i) => killedAdd(`g${round}-${i}`, config, 10 + Math.random() * 70)));
      expect(outs.every((o) => o.code === 0 || o.code === -1)).toBe(true);
      runOk({ command: 'GC', config: { ...netConf(dir, ipam(), {}, '1.1.0'), 'cni.dev/valid-attachments': [] } });
      expect(reservations(dir)).toEqual({});
      expect(leftovers()).toEqual([]);
    }
    assertAllAllocatable(config);
  }, 240_000);

  it('the pid-file lock of an older version does not block, GC removes it; a crash leftover at every write step is recovered by DEL', () => {
    const config = netConf(dir, ipam());
    const net = join(dir, NET);
    mkdirSync(net, { recursive: true });
    // An older version's pid-file lock, even naming a live process (pid 1): the flock(2) lock ignores it.
    writeFileSync(join(net, '.tscni-lock'), `1 ${process.pid}`);
    // The state after "index intent written, reservation temp written, killed before link".
    runOk({ command: 'ADD', containerId: 'live', config });
    // The exact temp an ADD of x/eth0 writes before linking its reservation (killed in between).
    const temp = join(net, reservationTemp({ id: 'x', ifname: 'eth0' }));
    writeFileSync(temp, 'x\r\neth0');
    expect(ipsOf(runOk({ command: 'ADD', containerId: 'x', config }))).toEqual(['10.240.0.3/27', 'fd10:240::3/64']);
    writeFileSync(temp, 'x\r\neth0');
    runOk({ command: 'DEL', containerId: 'x', config });
    // DEL of that attachment removes its leftover itself, before any GC.
    expect(existsSync(temp)).toBe(false);
    runOk({ command: 'DEL', containerId: 'live', config });
    expect(reservations(dir)).toEqual({});
    runOk({ command: 'GC', config: { ...netConf(dir, ipam(), {}, '1.1.0'), 'cni.dev/valid-attachments': [] } });
    expect(leftovers()).toEqual([]);
  });
});
