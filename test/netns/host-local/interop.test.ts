/**
 * Both plugins on one dataDir, as on a node switching between Debian's
 * reference host-local (containernetworking-plugins, cniVersion <= 1.0.0)
 * and ours.
 */
import { afterAll, afterEach, beforeEach, describe, expect, it } from 'vitest';
import { existsSync } from 'node:fs';
import { ipsOf, listNet, netConf, readNet, REFERENCE, removeDir, reservations, run, runOk, start, stopNetns, tempDataDir } from './helpers.ts';

let dir: string;
beforeEach(() => {
  dir = tempDataDir();
});
afterEach(() => removeDir(dir));
afterAll(() => stopNetns());

const ipam = () => ({ ranges: [[{ subnet: '10.240.0.0/24' }], [{ subnet: 'fd10:240::/64' }]] });

describe('interop with the reference host-local', () => {
  it('the reference is installed', () => {
    expect(existsSync(REFERENCE)).toBe(true);
  });

  it('we read the reference state: round-robin continues, CHECK/DEL/duplicate detection see its files', () => {
    const config = netConf(dir, ipam());
    expect(ipsOf(runOk({ command: 'ADD', containerId: 'r1', config }, REFERENCE))).toEqual(['10.240.0.2/24', 'fd10:240::2/64']);
    expect(ipsOf(runOk({ command: 'ADD', containerId: 't1', config }))).toEqual(['10.240.0.3/24', 'fd10:240::3/64']);
    // The reference writes again after our index exists: we still see it.
    expect(ipsOf(runOk({ command: 'ADD', containerId: 'r2', config }, REFERENCE))).toEqual(['10.240.0.4/24', 'fd10:240::4/64']);
    const dup = run({ command: 'ADD', containerId: 'r2', config });
    expect(dup.json?.msg).toBe('failed to allocate for range 0: 10.240.0.4 has been allocated to r2, duplicate allocation is not allowed');
    runOk({ command: 'CHECK', containerId: 'r1', config });
    runOk({ command: 'CHECK', containerId: 'r2', config });
    runOk({ command: 'DEL', containerId: 'r2', config });
    runOk({ command: 'DEL', containerId: 'r1', config });
    expect(reservations(dir)).toEqual({ '10.240.0.3': 't1\r\neth0', 'fd10:240::3': 't1\r\neth0' });
    expect(ipsOf(runOk({ command: 'ADD', containerId: 't2', config }))).toEqual(['10.240.0.5/24', 'fd10:240::5/64']);
  });

  it('the reference reads our state: CHECK, duplicate detection, round-robin and DEL', () => {
    const config = netConf(dir, ipam());
    runOk({ command: 'ADD', containerId: 't1', config });
    runOk({ command: 'ADD', containerId: 't2', config });
    runOk({ command: 'CHECK', containerId: 't1', config }, REFERENCE);
    const dup = run({ command: 'ADD', containerId: 't1', config }, REFERENCE);
    expect(dup.code).not.toBe(0);
    expect(dup.stdout).toContain('duplicate allocation is not allowed');
    expect(ipsOf(runOk({ command: 'ADD', containerId: 'r1', config }, REFERENCE))).toEqual(['10.240.0.4/24', 'fd10:240::4/64']);
    runOk({ command: 'DEL', containerId: 't1', config }, REFERENCE);
    expect(Object.keys(reservations(dir)).sort()).toEqual(['10.240.0.3', '10.240.0.4', 'fd10:240::3', 'fd10:240::4']);
    // The reference DEL left our other attachment's index alone, and we carry on.
    runOk({ command: 'CHECK', containerId: 't2', config });
    const t1 = run({ command: 'CHECK', containerId: 't1', config });
    expect(t1.json?.msg).toBe('host-local: Failed to find address added by container t1');
    expect(ipsOf(runOk({ command: 'ADD', containerId: 't1', config }))).toEqual(['10.240.0.5/24', 'fd10:240::5/64']);
    runOk({ command: 'DEL', containerId: 't1', config }, REFERENCE);
    runOk({ command: 'DEL', containerId: 't2', config }, REFERENCE);
    runOk({ command: 'DEL', containerId: 'r1', config });
    expect(reservations(dir)).toEqual({});
    expect(readNet(dir, 'last_reserved_ip.0')).toBe('10.240.0.5');
  });

  it('requested IPs and every reference-supported version read the same files', () => {
    for (const v of ['0.3.1', '0.4.0', '1.0.0']) {
      const config = netConf(dir, ipam(), {}, v);
      runOk({ command: 'ADD', containerId: `t${v}`, args: `IP=10.240.0.${v === '1.0.0' ? 60 : v === '0.4.0' ? 50 : 40}`, config });
      const r = runOk({ command: 'ADD', containerId: `r${v}`, config }, REFERENCE);
      expect(r.json?.cniVersion).toBe(v);
      runOk({ command: 'DEL', containerId: `r${v}`, config });
      runOk({ command: 'DEL', containerId: `t${v}`, config }, REFERENCE);
    }
    expect(reservations(dir)).toEqual({});
  });

  it('20 of ours and 20 reference ADDs at once never share an address', async () => {
    const config = netConf(dir, ipam());
    const runs = Array.from({ length: 40 }, (_, i) => start({ command: 'ADD', containerId: `m${i}`, config }, i % 2 ? REFERENCE : undefined).done);
    const outs = await Promise.all(runs);
    for (const o of outs) expect(o.code, o.stdout + o.stderr).toBe(0);
    const v4 = outs.map((o) => ipsOf(o)[0]);
    const v6 = outs.map((o) => ipsOf(o)[1]);
    expect(new Set(v4).size).toBe(40);
    expect(new Set(v6).size).toBe(40);
    expect(Object.keys(reservations(dir))).toHaveLength(80);
    // Everyone's state is readable by the other side: ours DELs all.
    const dels = await Promise.all(outs.map((_, i) => start({ command: 'DEL', containerId: `m${i}`, config }).done));
    for (const d of dels) expect(d.code).toBe(0);
    expect(reservations(dir)).toEqual({});
    expect(listNet(dir, true).sort()).toEqual(['last_reserved_ip.0', 'last_reserved_ip.1', 'lock']);
  }, 120_000);
});
