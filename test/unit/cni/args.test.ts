import { describe, expect, it } from 'vitest';
import { parseCniArgs } from '../../../lib/cni/args.ts';

describe('parseCniArgs', () => {
  it('parses known keys', () => {
    expect([...parseCniArgs('IP=10.240.0.4;MAC=0a:58:00:00:00:01', ['IP', 'MAC'])]).toEqual([
      ['IP', '10.240.0.4'],
      ['MAC', '0a:58:00:00:00:01'],
    ]);
  });

  it('returns nothing for an empty string', () => {
    expect(parseCniArgs('', ['IP']).size).toBe(0);
    expect(parseCniArgs(undefined, ['IP']).size).toBe(0);
  });

  it('rejects unknown keys', () => {
    expect(() => parseCniArgs('K8S_POD_NAME=web;IP=10.240.0.4', ['IP'])).toThrow(expect.objectContaining({ code: 4, msg: 'ARGS: can not find field "K8S_POD_NAME"' }));
  });

  it.each(['1', 'true', 'True', 'TRUE'])('ignores unknown keys with IgnoreUnknown=%s, wherever it stands', (v) => {
    const out = parseCniArgs(`K8S_POD_NAME=web;IP=10.240.0.4;IgnoreUnknown=${v}`, ['IP']);
    expect([...out]).toEqual([['IP', '10.240.0.4']]);
  });

  it('does not ignore unknown keys with IgnoreUnknown=0', () => {
    expect(() => parseCniArgs('IgnoreUnknown=0;X=1', ['IP'])).toThrow(/can not find field "X"/);
  });

  it('rejects a pair without exactly one "="', () => {
    expect(() => parseCniArgs('IP', ['IP'])).toThrow(expect.objectContaining({ code: 4, msg: 'ARGS: invalid pair "IP"' }));
    expect(() => parseCniArgs('IP=a=b', ['IP'])).toThrow(/invalid pair/);
  });

  it('tolerates empty pairs from a trailing separator', () => {
    expect([...parseCniArgs('IP=10.240.0.4;', ['IP'])]).toEqual([['IP', '10.240.0.4']]);
  });
});
