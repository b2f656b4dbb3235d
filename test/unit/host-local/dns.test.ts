import { describe, expect, it } from 'vitest';
import { parseResolvConf } from '../../../ipam/host-local/dns.ts';

describe('parseResolvConf', () => {
  it('reads nameservers, domain, search and options; skips comments', () => {
    const text = '# c\n; c\nnameserver 10.240.0.53\nnameserver  fd10:240::53\ndomain example.test\nsearch a.test b.test\noptions ndots:5 edns0\nbogus\n';
    expect(parseResolvConf(text)).toEqual({
      nameservers: ['10.240.0.53', 'fd10:240::53'],
      domain: 'example.test',
      search: ['a.test', 'b.test'],
      options: ['ndots:5', 'edns0'],
    });
  });
  it('is empty for an empty file', () => {
    expect(parseResolvConf('')).toEqual({});
  });
});
