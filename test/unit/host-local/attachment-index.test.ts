/** The attachment index on strings: parse, render, append, forget/compact, rebuild, marker. */
import { describe, expect, it } from 'vitest';
import { createHash } from 'node:crypto';
import {
  addressesOf,
  bucketOf,
  buildIndex,
  markerSets,
  parseBucket,
  parseMarker,
  planAppend,
  planForget,
  renderBucket,
  renderLine,
  renderMarker,
  type IndexLine,
} from '../../../ipam/host-local/attachment-index.ts';

const line = (ip: string, id: string, ifname: string | null = 'eth0'): IndexLine => ({ ip, k: { id, ifname } });

describe('bucketOf', () => {
  it('is the first byte of sha256 of the reservation content, in two hex digits', () => {
    const byte = createHash('sha256').update('c1\r\neth0').digest()[0] as number;
    expect(bucketOf({ id: 'c1', ifname: 'eth0' })).toBe(`.tscni-idx-${byte.toString(16).padStart(2, '0')}`);
    const legacy = createHash('sha256').update('c1').digest()[0] as number;
    expect(bucketOf({ id: 'c1', ifname: null })).toBe(`.tscni-idx-${legacy.toString(16).padStart(2, '0')}`);
  });
});

describe('parseBucket / renderBucket', () => {
  it('round-trips entries, id-only ones included', () => {
    const lines = [line('10.0.0.2', 'c1'), line('fd00::2', 'c1'), line('10.0.0.3', 'old', null)];
    const text = renderBucket(lines);
    expect(text).toBe('10.0.0.2 c1 eth0\nfd00::2 c1 eth0\n10.0.0.3 old\n');
    expect(parseBucket(text)).toEqual({ lines, raw: 3 });
    expect(renderBucket([])).toBe('');
    expect(parseBucket('')).toEqual({ lines: [], raw: 0 });
  });

  it('tombstones remove an entry; a later entry brings it back', () => {
    expect(parseBucket('10.0.0.2 c1 eth0\n10.0.0.3 c2 eth0\n- 10.0.0.2 c1 eth0').lines).toEqual([line('10.0.0.3', 'c2')]);
    expect(parseBucket('10.0.0.2 c1 eth0\n- 10.0.0.2 c1 eth0\n10.0.0.2 c1 eth0')).toEqual({ lines: [line('10.0.0.2', 'c1')], raw: 3 });
    // A tombstone names the whole line: another ifname or id-only is another entry.
    expect(parseBucket('10.0.0.2 c1 eth0\n10.0.0.2 c1\n- 10.0.0.2 c1').lines).toEqual([line('10.0.0.2', 'c1')]);
  });

  it('skips torn and foreign lines but counts them', () => {
    const text = '\n10.0.0.\n10.0.0.2 c1 eth0\n010.0.0.4 c1 eth0\nlock c1 eth0\nlast_reserved_ip.0 c1\n10.0.0.5\n10.0.0.6  eth0\n10.0.0.7 a b c\n- \n-';
    expect(parseBucket(text)).toEqual({ lines: [line('10.0.0.2', 'c1')], raw: 10 });
  });

  it('keeps one entry per line however often it is appended', () => {
    expect(parseBucket('10.0.0.2 c1 eth0\n10.0.0.2 c1 eth0')).toEqual({ lines: [line('10.0.0.2', 'c1')], raw: 2 });
  });
});

describe('planAppend', () => {
  it('appends after a newline, so a torn previous append ends there', () => {
    const torn = parseBucket('10.0.0.2 c1 eth0\n10.0.0.');
    const plan = planAppend(torn, line('10.0.0.3', 'c2'));
    expect(plan?.text).toBe('\n10.0.0.3 c2 eth0');
    expect(parseBucket(`10.0.0.2 c1 eth0\n10.0.0.${plan?.text}`)).toEqual(plan?.after);
    expect(plan?.after).toEqual({ lines: [line('10.0.0.2', 'c1'), line('10.0.0.3', 'c2')], raw: 3 });
  });

  it('appends nothing for a line already listed', () => {
    expect(planAppend(parseBucket('10.0.0.2 c1 eth0\n'), line('10.0.0.2', 'c1'))).toBeUndefined();
    expect(planAppend(parseBucket('10.0.0.2 c1 eth0\n'), line('10.0.0.2', 'c1', null))).toBeDefined();
  });
});

describe('planForget', () => {
  it('nothing to do when the key is not listed', () => {
    expect(planForget(parseBucket('10.0.0.2 c1 eth0\n'), { id: 'c2', ifname: 'eth0' })).toEqual({ kind: 'none' });
    expect(planForget(parseBucket('10.0.0.2 c1 eth0\n'), { id: 'c1', ifname: 'eth0' }, ['10.0.0.9'])).toEqual({ kind: 'none' });
  });

  it('compacts to nothing when no live line is left', () => {
    expect(planForget(parseBucket('10.0.0.2 c1 eth0\nfd00::2 c1 eth0\n'), { id: 'c1', ifname: 'eth0' })).toEqual({ kind: 'compact', lines: [] });
  });

  it('appends tombstones while live lines dominate, and they parse back to the same bucket', () => {
    const text = '10.0.0.2 c1 eth0\nfd00::2 c1 eth0\n10.0.0.3 c2 eth0\n';
    const plan = planForget(parseBucket(text), { id: 'c1', ifname: 'eth0' });
    expect(plan).toEqual({
      kind: 'tombstones',
      text: '\n- 10.0.0.2 c1 eth0\n- fd00::2 c1 eth0',
      after: { lines: [line('10.0.0.3', 'c2')], raw: 5 },
    });
    if (plan.kind !== 'tombstones') throw new Error('unreachable');
    expect(parseBucket(text + plan.text)).toEqual(plan.after);
  });

  it('forgets only the addresses named', () => {
    const plan = planForget(parseBucket('10.0.0.2 c1 eth0\nfd00::2 c1 eth0\n10.0.0.3 c2 eth0\n'), { id: 'c1', ifname: 'eth0' }, ['fd00::2']);
    expect(plan).toMatchObject({ kind: 'tombstones', text: '\n- fd00::2 c1 eth0' });
  });

  it('compacts once the file would hold more than 2 * live + 32 lines', () => {
    // 1 live line of c2: compaction as soon as raw + gone > 34.
    const dead = Array.from({ length: 32 }, (_, i) => `- 10.0.1.${i} x eth0`).join('\n');
    const at34 = parseBucket(`10.0.0.3 c2 eth0\n${dead}\n10.0.0.2 c1 eth0\n`);
    expect(at34.raw).toBe(34);
    expect(planForget(at34, { id: 'c1', ifname: 'eth0' })).toEqual({ kind: 'compact', lines: [line('10.0.0.3', 'c2')] });
    const at33 = parseBucket(`10.0.0.3 c2 eth0\n${dead.split('\n').slice(1).join('\n')}\n10.0.0.2 c1 eth0\n`);
    expect(at33.raw).toBe(33);
    expect(planForget(at33, { id: 'c1', ifname: 'eth0' }).kind).toBe('tombstones');
  });
});

describe('addressesOf', () => {
  it('lists the distinct addresses of exactly that key', () => {
    const b = parseBucket('10.0.0.2 c1 eth0\n10.0.0.4 c1\n10.0.0.3 c1 eth1\n10.0.0.2 c1 eth0\n');
    expect(addressesOf(b, { id: 'c1', ifname: 'eth0' })).toEqual(['10.0.0.2']);
    expect(addressesOf(b, { id: 'c1', ifname: null })).toEqual(['10.0.0.4']);
  });
});

describe('buildIndex', () => {
  it('groups by bucket, sorts by address, and lists empty existing buckets for removal', () => {
    const a = line('10.0.0.9', 'c1');
    const b = line('10.0.0.10', 'c1');
    const c = line('10.0.0.3', 'other', null);
    const idx = buildIndex([a, c, b], ['.tscni-idx-zz']);
    expect(idx.get('.tscni-idx-zz')).toEqual([]);
    expect(idx.get(bucketOf(a.k))).toEqual(bucketOf(a.k) === bucketOf(c.k) ? [b, c, a] : [b, a]);
    expect(renderBucket(idx.get(bucketOf(c.k)) ?? [])).toContain(`${renderLine(c)}\n`);
    expect([...idx.values()].flat()).toHaveLength(3);
  });
});

describe('marker', () => {
  it('round-trips in the format older versions wrote', () => {
    const text = renderMarker({ '0': '12:1700000000000000000:8:10.0.0.2', '1': 'none' });
    expect(text).toBe('{"tscniIndex":1,"last":{"0":"12:1700000000000000000:8:10.0.0.2","1":"none"}}\n');
    expect(parseMarker(text)).toEqual({ '0': '12:1700000000000000000:8:10.0.0.2', '1': 'none' });
    expect(parseMarker(renderMarker({}))).toEqual({});
  });

  it('absent, torn or foreign markers parse as none (rebuild)', () => {
    for (const t of [undefined, '', '{"tscniIndex":1,"last":{"0":"1', 'null', '{"tscniIndex":2,"last":{}}', '{"tscniIndex":1}', '[]']) {
      expect(parseMarker(t)).toBeUndefined();
    }
  });

  it('speaks for the configured sets and any set it already lists', () => {
    expect(markerSets(2, undefined)).toEqual([0, 1]);
    expect(markerSets(1, { '0': 'none', '3': 'x', foo: 'y' })).toEqual([0, 3]);
  });
});
