/** DiskStore against a real temp directory, in-process. */
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { createHash } from 'node:crypto';
import { appendFileSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, unlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DiskStore, ipFromName } from '../../../ipam/host-local/disk-store.ts';
import { formatIp, parseIp, type Ip } from '../../../lib/ip/cidr.ts';

let root: string;
let net: string;
const ip = (s: string) => parseIp(s) as Ip;

beforeEach(() => {
  root = mkdtempSync(join(tmpdir(), 'tscni-hl-unit-'));
  net = join(root, 'n');
});
afterEach(() => rmSync(root, { recursive: true, force: true }));

function store(sets = 1): DiskStore {
  const s = new DiskStore(root, 'n', sets);
  s.create();
  return s;
}

function buckets(): string[] {
  return readdirSync(net)
    .filter((n) => n.startsWith('.tscni-idx-'))
    .flatMap((n) => readFileSync(join(net, n), 'utf8').split('\n'))
    .filter(Boolean);
}

describe('DiskStore', () => {
  it('creates the reference layout and finds reservations through the index', () => {
    const s = store();
    expect(s.withLock(() => s.reserve('c1', 'eth0', ip('10.240.0.2'), 0))).toBe(true);
    expect(s.withLock(() => s.reserve('c2', 'eth0', ip('10.240.0.2'), 0))).toBe(false);
    expect(readFileSync(join(net, '10.240.0.2'), 'utf8')).toBe('c1\r\neth0');
    expect(readFileSync(join(net, 'last_reserved_ip.0'), 'utf8')).toBe('10.240.0.2');
    expect(existsSync(join(net, 'lock'))).toBe(true);
    expect(buckets()).toEqual(['10.240.0.2 c1 eth0']);
    const s2 = new DiskStore(root, 'n', 1);
    expect(s2.withLock(() => s2.getByAttachment('c1', 'eth0')).map(formatIp)).toEqual(['10.240.0.2']);
    expect(s2.withLock(() => s2.releaseAttachment('c1', 'eth0'))).toEqual(['10.240.0.2']);
    expect(readdirSync(net).filter((n) => n.startsWith('.tscni-idx-') || ipFromName(n))).toEqual([]);
  });

  it('ignores index lines whose reservation belongs to someone else, and torn lines', () => {
    const s = store();
    s.withLock(() => s.reserve('c1', 'eth0', ip('10.240.0.2'), 0));
    writeFileSync(join(net, '10.240.0.2'), 'other\r\neth0'); // reused by another owner meanwhile
    const bucket = readdirSync(net).find((n) => n.startsWith('.tscni-idx-')) as string;
    appendFileSync(join(net, bucket), '\n10.240.0.');
    const s2 = new DiskStore(root, 'n', 1);
    expect(s2.withLock(() => s2.getByAttachment('c1', 'eth0'))).toEqual([]);
    expect(s2.withLock(() => s2.releaseAttachment('c1', 'eth0'))).toEqual([]);
    expect(readFileSync(join(net, '10.240.0.2'), 'utf8')).toBe('other\r\neth0');
  });

  it('DEL appends tombstones and compacts a bucket once dead lines dominate', () => {
    const s = store();
    // Ids that hash to the same bucket as "keep" (first byte of sha256("<id>\r\n<ifname>")).
    const first = (id: string) => createHash('sha256').update(`${id}\r\neth0`).digest()[0];
    const target = first('keep');
    const sameBucket: string[] = [];
    for (let i = 0; sameBucket.length < 40; i++) if (first(`x${i}`) === target) sameBucket.push(`x${i}`);
    s.withLock(() => s.reserve('keep', 'eth0', ip('10.240.1.1'), 0));
    sameBucket.forEach((id, i) => s.withLock(() => s.reserve(id, 'eth0', ip(`10.240.2.${i + 1}`), 0)));
    const bucketName = readdirSync(net).find((n) => n.startsWith('.tscni-idx-')) as string;
    expect(buckets()).toHaveLength(41);
    let sawTombstone = false;
    for (const id of sameBucket) {
      const t = new DiskStore(root, 'n', 1);
      t.withLock(() => t.releaseAttachment(id, 'eth0'));
      const text = readFileSync(join(net, bucketName), 'utf8');
      if (text.includes('\n- ')) sawTombstone = true;
      expect(text.split('\n').filter(Boolean).length).toBeLessThanOrEqual(2 * 41 + 34);
    }
    expect(sawTombstone).toBe(true);
    const t = new DiskStore(root, 'n', 1);
    expect(t.withLock(() => t.getByAttachment('keep', 'eth0')).map(formatIp)).toEqual(['10.240.1.1']);
  });

  it('a foreign write of last_reserved_ip (the reference reserving) forces a rescan', () => {
    const s = store();
    s.withLock(() => s.reserve('c1', 'eth0', ip('10.240.0.2'), 0));
    // What the reference does: create the reservation, then rewrite last_reserved_ip in place.
    writeFileSync(join(net, '10.240.0.3'), 'ref\r\neth0');
    writeFileSync(join(net, 'last_reserved_ip.0'), '10.240.0.3');
    const s2 = new DiskStore(root, 'n', 1);
    expect(s2.withLock(() => s2.getByAttachment('ref', 'eth0')).map(formatIp)).toEqual(['10.240.0.3']);
    // Without the foreign write, a hand-made file is not seen until the marker goes.
    writeFileSync(join(net, '10.240.0.4'), 'hand\r\neth0');
    const s3 = new DiskStore(root, 'n', 1);
    expect(s3.withLock(() => s3.getByAttachment('hand', 'eth0'))).toEqual([]);
    unlinkSync(join(net, '.tscni-index'));
    const s4 = new DiskStore(root, 'n', 1);
    expect(s4.withLock(() => s4.getByAttachment('hand', 'eth0')).map(formatIp)).toEqual(['10.240.0.4']);
  });

  it('GC reports every failure and keeps going', () => {
    const s = store();
    s.withLock(() => s.reserve('a', 'eth0', ip('10.240.0.2'), 0));
    s.withLock(() => s.reserve('b', 'eth0', ip('10.240.0.3'), 0));
    mkdirSync(join(net, '10.240.0.9'));
    mkdirSync(join(net, 'fd10:240::9'));
    const out = new DiskStore(root, 'n', 1).gc([]);
    expect(out.released.sort()).toEqual(['10.240.0.2', '10.240.0.3']);
    expect(out.errors.sort()).toEqual(['10.240.0.9: not a regular file, cannot release it', 'fd10:240::9: not a regular file, cannot release it']);
  });
});
