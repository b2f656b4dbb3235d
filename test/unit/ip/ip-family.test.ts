/**
 * ipFamily (lib/ip/prefix.ts) replaces node:net's isIP in the executables
 * (node:net costs ~2 ms of a Bun executable's start-up): it must give the
 * same answer for every string, checked here against isIP itself (these unit
 * tests run on Node) on generated address-like strings.
 */
import { isIP } from 'node:net';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { ipFamily } from '../../../lib/ip/prefix.ts';

const v4Part = fc.oneof(fc.integer({ min: 0, max: 300 }).map(String), fc.constantFrom('00', '01', '007', '', 'a', '-1', '255', '256'));
const v4Like = fc.array(v4Part, { minLength: 1, maxLength: 5 }).map((p) => p.join('.'));
const hexGroup = fc.oneof(fc.integer({ min: 0, max: 0xfffff }).map((n) => n.toString(16)), fc.constantFrom('', '0', 'FFFF', 'g', '00000', 'fe80'));
const v6Like = fc
  .tuple(fc.array(hexGroup, { minLength: 0, maxLength: 9 }), fc.nat(10), fc.boolean(), fc.option(v4Like), fc.option(fc.constantFrom('%eth0', '%1', '%', '%a.b-c:d', '%!')))
  .map(([groups, at, compress, tail, zone]) => {
    const g = [...groups];
    if (compress) g.splice(Math.min(at, g.length), 0, '');
    let s = g.join(':');
    if (compress && s.startsWith(':')) s = `:${s}`;
    if (compress && s.endsWith(':')) s = `${s}:`;
    if (tail) s = `${s}:${tail}`;
    return zone ? `${s}${zone}` : s;
  });

describe('ipFamily', () => {
  it('agrees with node:net isIP on well-known cases', () => {
    for (const s of ['10.0.0.1', '255.255.255.255', '1.2.3.04', '1.2.3', '::', '::1', 'fe80::1%eth0', '::ffff:10.1.2.3', '1:2:3:4:5:6:7:8', '1:2:3:4:5:6:7:8:9', '1::2::3', 'fd10:89::/64', '', ' 10.0.0.1', 'localhost']) {
      expect(ipFamily(s), s).toBe(isIP(s));
    }
  });

  it('agrees with node:net isIP on generated IPv4-like and IPv6-like strings', () => {
    fc.assert(
      fc.property(fc.oneof(v4Like, v6Like, fc.string()), (s) => ipFamily(s) === isIP(s)),
      { numRuns: 20_000 },
    );
  });
});
