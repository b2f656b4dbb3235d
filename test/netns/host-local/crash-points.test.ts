/**
 * kill -9 after EVERY write of an ADD, a DEL and a GC, and prove that the
 * next calls recover. The test build (dist/test-bin/host-local) dies by
 * SIGKILL at the n-th crash point it reaches when TSCNI_TEST_FAIL_AT is
 * host-local:write#<n> (ipam/host-local/crashpoint.ts); each case runs the
 * same call for n = 1, 2, ... in a fresh dataDir until it completes, so
 * every write of that path is covered, and the steps met are compared with
 * the writes the path is known to make (a write added without a crash point,
 * or a crash point lost, fails here).
 *
 * After each kill: every reservation file is complete (made or absent,
 * never empty), and listed in the index unless the marker no longer matches
 * (then the next call rescans); then ADD of another attachment never gets an
 * address still reserved, DEL finds and releases what the killed call left,
 * ADD/CHECK work again, the index lists exactly the reservations, the
 * marker vouches for the last_reserved_ip files again (no rescan on every
 * call) and GC leaves no temp file behind.
 *
 * host-local needs no network namespace (CNI_NETNS=/dev/null, as the
 * reference's documentation does): it only writes files in its dataDir.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { createHash } from 'node:crypto';
import { appendFileSync, existsSync, readdirSync, utimesSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { BUCKET_PREFIX, parseBucket, parseMarker, renderLine } from '../../../ipam/host-local/attachment-index.ts';
import { markerSignatureAt } from '../../../ipam/host-local/marker-signature.ts';
import { reservationTemp } from '../../../ipam/host-local/reservation-files.ts';
import { callPlugin, type PluginOutput } from '../../helpers/plugin.ts';
import { listNet, NET, netConf, readNet, removeDir, reservations, tempDataDir } from './helpers.ts';

type Run = PluginOutput;

const dirs: string[] = [];
afterEach(() => {
  for (const d of dirs.splice(0)) removeDir(d);
});

/** One call of host-local: the shipped build, or the test build killed at `failAt`. */
function hl(command: string, config: unknown, id = '', failAt?: string): Run {
  const attachment = command === 'GC' ? {} : { containerId: id, ifname: 'eth0', netns: '/dev/null' };
  return callPlugin('host-local', { command, config, path: '/nonexistent', ...attachment, env: failAt === undefined ? {} : { TSCNI_TEST_FAIL_AT: failAt } });
}

/** The addresses of an ADD result, without prefix length. */
function addresses(r: Run): string[] {
  return ((r.json?.ips as Array<{ address: string }> | undefined) ?? []).map((i) => i.address.split('/')[0] as string);
}

function ok(command: string, config: unknown, id = ''): Run {
  const r = hl(command, config, id);
  if (r.code !== 0) throw new Error(`${command} ${id} failed (${r.code} ${r.signal}): ${r.stdout} ${r.stderr}`);
  return r;
}

const TWO_SETS = { ranges: [[{ subnet: '10.240.0.0/27' }], [{ subnet: 'fd10:240::/64' }]] };
const conf = (dir: string, ipam: Record<string, unknown> = TWO_SETS) => netConf(dir, ipam);
const gcConf = (dir: string, valid: string[], ipam: Record<string, unknown> = TWO_SETS) => ({
  ...netConf(dir, ipam, {}, '1.1.0'),
  'cni.dev/valid-attachments': valid.map((containerID) => ({ containerID, ifname: 'eth0' })),
});

/** Live index lines of every bucket (tombstones applied), sorted. */
function liveIndex(dir: string): string[] {
  return listNet(dir)
    .filter((n) => n.startsWith(BUCKET_PREFIX))
    .flatMap((n) => parseBucket(readNet(dir, n)).lines.map(renderLine))
    .sort();
}

/** The index lines the reservation files call for (empty ones belong to nobody). */
function expectedIndex(dir: string): string[] {
  return Object.entries(reservations(dir))
    .filter(([, owner]) => owner !== '')
    .map(([ip, owner]) => `${ip} ${owner.replace('\r\n', ' ')}`)
    .sort();
}

/** Whether the marker vouches for every last_reserved_ip file as it is now (the index is trusted, no rescan). */
function markerValid(dir: string, sets: number): boolean {
  const net = join(dir, NET);
  if (!existsSync(join(net, '.tscni-index'))) return false;
  const marker = parseMarker(readNet(dir, '.tscni-index'));
  if (!marker) return false;
  for (let i = 0; i < sets; i++) if ((marker[String(i)] ?? 'none') !== markerSignatureAt(join(net, `last_reserved_ip.${i}`))) return false;
  return true;
}

/** Addresses (without prefix) reserved for `id`. */
function heldBy(dir: string, id: string): string[] {
  return Object.entries(reservations(dir))
    .filter(([, owner]) => owner === `${id}\r\neth0`)
    .map(([ip]) => ip)
    .sort();
}

/** The state right after a kill: complete reservations only (but the `emptyOk` files set up empty), each findable (or a rescan pending). */
function assertCrashState(dir: string, ids: string[], sets: number, emptyOk: string[] = []): void {
  for (const [ip, owner] of Object.entries(reservations(dir))) {
    if (owner === '' && emptyOk.includes(ip)) continue;
    expect(ids.map((id) => `${id}\r\neth0`), `reservation ${ip} is complete`).toContain(owner);
  }
  if (markerValid(dir, sets)) {
    const live = liveIndex(dir);
    for (const l of expectedIndex(dir)) expect(live, 'a reservation the trusted index does not list').toContain(l);
  }
}

/**
 * Run `killed` (a call of the test build) in a fresh state made by `setup`,
 * killed after write 1, 2, ... until it completes; after each kill, check
 * and recover with `recover`. Returns the steps killed at, in order, and the
 * completed run.
 */
function everyWrite(
  setup: (dir: string) => void,
  killed: (dir: string, failAt: string) => Run,
  recover: (dir: string, step: string) => void,
): { steps: string[]; done: Run } {
  const steps: string[] = [];
  for (let n = 1; n <= 60; n++) {
    const dir = tempDataDir();
    dirs.push(dir);
    setup(dir);
    const out = killed(dir, `host-local:write#${n}`);
    if (out.signal === null) return { steps, done: out };
    expect(out.signal, out.stderr).toBe('SIGKILL');
    const m = new RegExp(`host-local: killed after (\\S+) \\(write #${n}\\)`).exec(out.stderr);
    expect(m, out.stderr).not.toBeNull();
    const step = (m as RegExpExecArray)[1] as string;
    steps.push(step);
    recover(dir, step);
    removeDir(dir);
  }
  throw new Error('the call did not complete within 60 writes');
}

/** `count` ids whose attachments share an index bucket with `id` (first byte of sha256 of "<id>\r\neth0"). */
function sameBucketIds(id: string, count: number): string[] {
  const first = (s: string) => createHash('sha256').update(`${s}\r\neth0`).digest()[0];
  const out: string[] = [];
  for (let i = 0; out.length < count; i++) if (first(`s${i}`) === first(id)) out.push(`s${i}`);
  return out;
}

/**
 * Recovery after a killed ADD of `victim` (the runtime's next calls: another
 * ADD, then the DEL of the failed attachment, then the ADD again).
 */
function recoverAdd(dir: string, victim: string, others: string[], sets: number, step: string, emptyOk: string[] = []): void {
  assertCrashState(dir, [victim, ...others], sets, emptyOk);
  const reserved = Object.entries(reservations(dir))
    .filter(([, owner]) => owner !== '')
    .map(([ip]) => ip);
  const before = Object.fromEntries(others.map((id) => [id, heldBy(dir, id)]));
  // Another ADD never gets an address still reserved, by the killed ADD or anyone.
  const other = addresses(ok('ADD', conf(dir), 'other'));
  for (const a of other) expect(reserved, `${step}: ADD got an address still reserved`).not.toContain(a);
  // DEL finds whatever the killed ADD left.
  ok('DEL', conf(dir), victim);
  expect(heldBy(dir, victim), `${step}: DEL left a reservation`).toEqual([]);
  expect(liveIndex(dir).filter((l) => l.includes(` ${victim} `)), `${step}: DEL left index lines`).toEqual([]);
  expect(existsSync(join(dir, NET, reservationTemp({ id: victim, ifname: 'eth0' }))), `${step}: reservation temp`).toBe(false);
  // The attachment works again, next to the others.
  const again = addresses(ok('ADD', conf(dir), victim));
  expect(again).toHaveLength(sets);
  for (const a of again) expect(other).not.toContain(a);
  ok('CHECK', conf(dir), victim);
  ok('CHECK', conf(dir), 'other');
  for (const id of others) {
    ok('CHECK', conf(dir), id);
    expect(heldBy(dir, id), `${step}: ${id} lost its reservation`).toEqual(before[id]);
  }
  expect(liveIndex(dir), `${step}: index`).toEqual(expectedIndex(dir));
  expect(markerValid(dir, sets), `${step}: the marker vouches for last_reserved_ip again`).toBe(true);
  ok('GC', gcConf(dir, [victim, 'other', ...others]));
  expect(listNet(dir).filter((n) => n.startsWith('.tscni-tmp-')), `${step}: temp files after GC`).toEqual([]);
  expect(liveIndex(dir), `${step}: index after GC`).toEqual(expectedIndex(dir));
}

/** Recovery after a killed DEL of `victim`: DEL again, the rest intact, ADD again. */
function recoverDel(dir: string, victim: string, others: string[], ipam: Record<string, unknown>, step: string): void {
  const sets = (ipam.ranges as unknown[]).length;
  assertCrashState(dir, [victim, ...others], sets);
  const before = Object.fromEntries(others.map((id) => [id, heldBy(dir, id)]));
  ok('DEL', netConf(dir, ipam), victim);
  expect(heldBy(dir, victim), `${step}: DEL left a reservation`).toEqual([]);
  expect(liveIndex(dir).filter((l) => l.includes(` ${victim} `)), `${step}: DEL left index lines`).toEqual([]);
  expect(existsSync(join(dir, NET, reservationTemp({ id: victim, ifname: 'eth0' }))), `${step}: reservation temp`).toBe(false);
  for (const id of others) {
    ok('CHECK', netConf(dir, ipam), id);
    expect(heldBy(dir, id), `${step}: ${id} lost its reservation`).toEqual(before[id]);
  }
  const again = addresses(ok('ADD', netConf(dir, ipam), victim));
  for (const id of others) for (const a of again) expect(before[id], `${step}: duplicate address`).not.toContain(a);
  ok('CHECK', netConf(dir, ipam), victim);
  expect(liveIndex(dir), `${step}: index`).toEqual(expectedIndex(dir));
  expect(markerValid(dir, sets), `${step}: marker`).toBe(true);
}

/** After a killed ADD whose second set was full: DEL; "live" keeps its addresses; the index is exact. */
function recoverDelOfFailedAdd(dir: string, ipam: Record<string, unknown>, step: string): void {
  assertCrashState(dir, ['victim', 'live'], 2);
  const live = heldBy(dir, 'live');
  ok('DEL', netConf(dir, ipam), 'victim');
  expect(heldBy(dir, 'victim'), step).toEqual([]);
  expect(heldBy(dir, 'live'), step).toEqual(live);
  ok('CHECK', netConf(dir, ipam), 'live');
  expect(liveIndex(dir), step).toEqual(expectedIndex(dir));
  expect(markerValid(dir, 2), step).toBe(true);
  // The full set still refuses, and leaves nothing behind.
  expect(hl('ADD', netConf(dir, ipam), 'victim').json?.code, step).toBe(50);
  expect(heldBy(dir, 'victim'), step).toEqual([]);
  expect(readdirSync(join(dir, NET)).filter((n) => n.startsWith('.tscni-tmp-r-')), step).toEqual([]);
}

const ADD_WRITES_PER_SET = [
  'host-local:after-intent',
  'host-local:after-reservation-temp',
  'host-local:after-link',
  'host-local:after-reservation-temp-removed',
  'host-local:after-last-reserved-temp',
  'host-local:after-last-reserved',
  'host-local:after-marker',
];

describe('host-local: kill -9 after every write, the next calls recover', () => {
  it('ADD into a new network (the index is built first)', () => {
    const { steps, done } = everyWrite(
      () => {},
      (dir, failAt) => hl('ADD', conf(dir), 'victim', failAt),
      (dir, step) => recoverAdd(dir, 'victim', [], 2, step),
    );
    expect(done.code, done.stdout).toBe(0);
    expect(steps).toEqual(['host-local:after-create', 'host-local:after-rebuild-marker', ...ADD_WRITES_PER_SET, ...ADD_WRITES_PER_SET]);
  });

  it('ADD next to live reservations with a trusted index', () => {
    const { steps, done } = everyWrite(
      (dir) => {
        ok('ADD', conf(dir), 'live1');
        ok('ADD', conf(dir), 'live2');
      },
      (dir, failAt) => hl('ADD', conf(dir), 'victim', failAt),
      (dir, step) => recoverAdd(dir, 'victim', ['live1', 'live2'], 2, step),
    );
    expect(done.code, done.stdout).toBe(0);
    expect(steps).toEqual([...ADD_WRITES_PER_SET, ...ADD_WRITES_PER_SET]);
  });

  it('ADD taking over an old empty reservation file (the reference killed between create and write)', () => {
    const { steps, done } = everyWrite(
      (dir) => {
        ok('ADD', conf(dir), 'live');
        // The next address of each set, left empty long ago.
        for (const ip of ['10.240.0.3', 'fd10:240::3']) {
          writeFileSync(join(dir, NET, ip), '');
          utimesSync(join(dir, NET, ip), new Date(Date.now() - 60_000), new Date(Date.now() - 60_000));
        }
      },
      (dir, failAt) => hl('ADD', conf(dir), 'victim', failAt),
      // Each is either still empty (the next ADD may take it over) or victim's, complete.
      (dir, step) => recoverAdd(dir, 'victim', ['live'], 2, step, ['10.240.0.3', 'fd10:240::3']),
    );
    expect(done.code, done.stdout).toBe(0);
    expect(addresses(done)).toEqual(['10.240.0.3', 'fd10:240::3']);
    expect(steps).toEqual([...ADD_WRITES_PER_SET, ...ADD_WRITES_PER_SET]);
  });

  it('ADD that fails in its second set and releases the first (rollback)', () => {
    // The IPv6 set has one address (fd10:240::2), held by "live".
    const ipam = { ranges: [[{ subnet: '10.240.0.0/27' }], [{ subnet: 'fd10:240::/126', rangeStart: 'fd10:240::2', rangeEnd: 'fd10:240::2' }]] };
    const { steps, done } = everyWrite(
      (dir) => {
        ok('ADD', netConf(dir, ipam), 'live');
      },
      (dir, failAt) => hl('ADD', netConf(dir, ipam), 'victim', failAt),
      (dir, step) => recoverDelOfFailedAdd(dir, ipam, step),
    );
    expect(done.json?.code, done.stdout).toBe(50);
    expect(steps).toEqual([...ADD_WRITES_PER_SET, 'host-local:after-release', 'host-local:after-bucket-removed']);
  });

  it('DEL of an attachment alone in its bucket (the bucket goes)', () => {
    const { steps, done } = everyWrite(
      (dir) => {
        ok('ADD', conf(dir), 'live');
        ok('ADD', conf(dir), 'victim');
      },
      (dir, failAt) => hl('DEL', conf(dir), 'victim', failAt),
      (dir, step) => recoverDel(dir, 'victim', ['live'], TWO_SETS, step),
    );
    expect(done.code, done.stdout).toBe(0);
    expect(steps).toEqual(['host-local:after-release', 'host-local:after-release', 'host-local:after-bucket-removed']);
  });

  it('DEL of an attachment sharing its bucket (tombstones), and of one left by an ADD killed before its link', () => {
    const [a, b] = sameBucketIds('victim', 2) as [string, string];
    const { steps, done } = everyWrite(
      (dir) => {
        ok('ADD', conf(dir), a);
        ok('ADD', conf(dir), 'victim');
        ok('ADD', conf(dir), b);
        // What an ADD of victim killed between writing its reservation temp and linking it leaves.
        writeFileSync(join(dir, NET, reservationTemp({ id: 'victim', ifname: 'eth0' })), 'victim\r\neth0');
      },
      (dir, failAt) => hl('DEL', conf(dir), 'victim', failAt),
      (dir, step) => recoverDel(dir, 'victim', [a, b], TWO_SETS, step),
    );
    expect(done.code, done.stdout).toBe(0);
    expect(steps).toEqual(['host-local:after-release', 'host-local:after-release', 'host-local:after-tombstones', 'host-local:after-reservation-temp-removed']);
  });

  it('DEL that compacts its bucket (temp file, then rename)', () => {
    const ipam = { ranges: [[{ subnet: '10.240.0.0/27' }]] };
    const [a] = sameBucketIds('victim', 1) as [string];
    const { steps, done } = everyWrite(
      (dir) => {
        ok('ADD', netConf(dir, ipam), a);
        ok('ADD', netConf(dir, ipam), 'victim');
        // 32 dead lines: the next tombstone would make the file larger than 2 * live + 32.
        const bucket = listNet(dir).find((n) => n.startsWith(BUCKET_PREFIX)) as string;
        appendFileSync(join(dir, NET, bucket), Array.from({ length: 32 }, (_, i) => `\n- 10.240.1.${i} gone eth0`).join(''));
      },
      (dir, failAt) => hl('DEL', netConf(dir, ipam), 'victim', failAt),
      (dir, step) => recoverDel(dir, 'victim', [a], ipam, step),
    );
    expect(done.code, done.stdout).toBe(0);
    expect(steps).toEqual(['host-local:after-release', 'host-local:after-compact-temp', 'host-local:after-compact']);
  });

  it('GC (releases, cleanup, index rebuild)', () => {
    const { steps, done } = everyWrite(
      (dir) => {
        ok('ADD', conf(dir), 'live');
        ok('ADD', conf(dir), 'victim');
        writeFileSync(join(dir, NET, '.tscni-tmp-r-leftover'), 'x'); // a killed writer's temp
      },
      (dir, failAt) => hl('GC', gcConf(dir, ['live']), '', failAt),
      (dir, step) => {
        assertCrashState(dir, ['live', 'victim'], 2);
        ok('GC', gcConf(dir, ['live']));
        expect(Object.values(reservations(dir)).sort(), step).toEqual(['live\r\neth0', 'live\r\neth0']);
        expect(listNet(dir).filter((n) => n.startsWith('.tscni-tmp-')), step).toEqual([]);
        expect(liveIndex(dir), step).toEqual(expectedIndex(dir));
        expect(markerValid(dir, 2), step).toBe(true);
        ok('CHECK', conf(dir), 'live');
        ok('DEL', conf(dir), 'live');
        expect(reservations(dir), step).toEqual({});
      },
    );
    expect(done.code, done.stdout).toBe(0);
    // Releases and cleanup in directory order, then the rebuild: marker first, buckets in directory order, marker last.
    expect(steps.slice(0, 3).sort()).toEqual(['host-local:after-cleanup', 'host-local:after-release', 'host-local:after-release']);
    expect(steps[3]).toBe('host-local:after-marker-unlink');
    // victim's bucket goes, live's (appended to, so not in the canonical form) is rewritten.
    expect(steps.slice(4, 6).sort()).toEqual(['host-local:after-bucket-removed', 'host-local:after-rebuild-bucket']);
    expect(steps.slice(6)).toEqual(['host-local:after-rebuild-marker']);
  });
});
