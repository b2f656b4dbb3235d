import { afterAll, afterEach, beforeEach, describe, expect, it } from 'vitest';
import { ipsOf, listNet, netConf, readNet, removeDir, reservations, start, stopNetns, tempDataDir } from './helpers.ts';

let dir: string;
beforeEach(() => {
  dir = tempDataDir();
});
afterEach(() => removeDir(dir));
afterAll(() => stopNetns());

describe('host-local under concurrency', () => {
  it('40 parallel ADDs get unique addresses, last_reserved_ip is the last handed out; 40 parallel DELs release all', async () => {
    const config = netConf(dir, { ranges: [[{ subnet: '10.240.0.0/24' }], [{ subnet: 'fd10:240::/64' }]] });
    const ids = Array.from({ length: 40 }, (_, i) => `par${i}`);
    const outs = await Promise.all(ids.map((containerId) => start({ command: 'ADD', containerId, config }).done));
    for (const o of outs) expect(o.code, o.stdout + o.stderr).toBe(0);
    const v4 = outs.map((o) => ipsOf(o)[0]);
    const v6 = outs.map((o) => ipsOf(o)[1]);
    expect(new Set(v4).size).toBe(40);
    expect(new Set(v6).size).toBe(40);
    // Serialised by the lock, round-robin hands out .2 ... .41 in some order: no gap, no lost update.
    expect([...v4].sort()).toEqual(Array.from({ length: 40 }, (_, i) => `10.240.0.${i + 2}/24`).sort());
    expect(readNet(dir, 'last_reserved_ip.0')).toBe('10.240.0.41');
    expect(readNet(dir, 'last_reserved_ip.1')).toBe('fd10:240::29');
    const files = reservations(dir);
    expect(Object.keys(files)).toHaveLength(80);
    outs.forEach((o, i) => {
      const ip = (ipsOf(o)[0] as string).split('/')[0] as string;
      expect(files[ip]).toBe(`${ids[i]}\r\neth0`);
    });

    const dels = await Promise.all(ids.map((containerId) => start({ command: 'DEL', containerId, config }).done));
    for (const d of dels) expect(d.code, d.stdout + d.stderr).toBe(0);
    expect(reservations(dir)).toEqual({});
    expect(listNet(dir).filter((n) => n.startsWith('.tscni-idx-') || n.startsWith('.tscni-tmp-') || n === '.tscni-lock')).toEqual([]);
  }, 120_000);

  it('parallel ADDs into a range smaller than the demand: every address used once, the rest fail with 50', async () => {
    const config = netConf(dir, { ranges: [[{ subnet: '10.240.0.0/28' }]] }); // 13 usable
    const outs = await Promise.all(Array.from({ length: 20 }, (_, i) => start({ command: 'ADD', containerId: `p${i}`, config }).done));
    const ok = outs.filter((o) => o.code === 0);
    expect(ok).toHaveLength(13);
    expect(new Set(ok.map((o) => ipsOf(o)[0])).size).toBe(13);
    for (const o of outs.filter((x) => x.code !== 0)) expect(o.json?.code).toBe(50);
    expect(Object.keys(reservations(dir))).toHaveLength(13);
  }, 120_000);
});
