import { describe, expect, it } from 'vitest';
import {
  cidrContains,
  formatIp,
  hasHostBits,
  lastAddress,
  networkAddress,
  nextIp,
  parseCidr,
  parseIp,
  parseIpOrCidrAddress,
  prevIp,
} from '../../../lib/ip/cidr.ts';

const fmt = (s: string) => {
  const ip = parseIp(s);
  return ip ? formatIp(ip) : undefined;
};

describe('parseIp / formatIp (Go net.IP.String spelling)', () => {
  it.each([
    ['10.240.0.1', '10.240.0.1'],
    ['fd10:240::1', 'fd10:240::1'],
    ['FD10:0240:0000:0000:0000:0000:0000:0001', 'fd10:240::1'],
    ['fd10:0:0:1:0:0:0:1', 'fd10:0:0:1::1'],
    ['fd10:0:0:1:1:0:0:1', 'fd10::1:1:0:0:1'],
    ['fd10:1:2:3:4:5:6:7', 'fd10:1:2:3:4:5:6:7'],
    ['fd10:1:0:3:4:5:6:7', 'fd10:1:0:3:4:5:6:7'],
    ['::', '::'],
    ['::1', '::1'],
    ['::ffff:10.240.0.9', '10.240.0.9'],
    ['fd10:240::10.1.2.3', 'fd10:240::a01:203'],
  ])('%s -> %s', (input, out) => {
    expect(fmt(input)).toBe(out);
  });

  it.each(['10.240.0.256', '010.240.0.1', '10.240.0', 'fd10:::1', 'fd10::1::2', '1:2:3:4:5:6:7:8:9', 'g::1', ''])('rejects %j', (s) => {
    expect(parseIp(s)).toBeUndefined();
  });
});

describe('CIDR maths', () => {
  it('parses and keeps host bits', () => {
    const c = parseCidr('10.240.3.7/16');
    expect(c && hasHostBits(c)).toBe(true);
    expect(c && formatIp(networkAddress(c))).toBe('10.240.0.0');
    expect(c && formatIp(lastAddress(c))).toBe('10.240.255.255');
  });
  it('rejects bad prefixes', () => {
    expect(parseCidr('10.240.0.0/33')).toBeUndefined();
    expect(parseCidr('fd10:240::/129')).toBeUndefined();
    expect(parseCidr('10.240.0.0')).toBeUndefined();
  });
  it('containment is per family', () => {
    const c = parseCidr('fd10:240::/32');
    expect(c && cidrContains(c, parseIp('fd10:240:ffff::1')!)).toBe(true);
    expect(c && cidrContains(c, parseIp('fd10:241::1')!)).toBe(false);
    expect(c && cidrContains(c, parseIp('10.240.0.1')!)).toBe(false);
  });
  it('next/prev wrap within the family', () => {
    expect(formatIp(nextIp(parseIp('10.240.0.255')!))).toBe('10.240.1.0');
    expect(formatIp(prevIp(parseIp('10.240.1.0')!))).toBe('10.240.0.255');
    expect(formatIp(nextIp(parseIp('fd10:240::ffff')!))).toBe('fd10:240::1:0');
  });
  it('address with optional prefix', () => {
    expect(formatIp(parseIpOrCidrAddress('10.240.0.9/16')!)).toBe('10.240.0.9');
    expect(formatIp(parseIpOrCidrAddress('fd10:240::9')!)).toBe('fd10:240::9');
    expect(parseIpOrCidrAddress('10.240.0.9/40')).toBeUndefined();
  });
});
