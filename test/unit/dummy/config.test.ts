/** dummy's config: IPAM (with a type) is required, with the reference's code 7 wording otherwise. */
import { describe, expect, it } from 'vitest';
import type { NetConf } from '../../../lib/cni/types.ts';
import { parseDummyConfig } from '../../../plugins/dummy/plugin.ts';

const base = { cniVersion: '1.1.0', name: 'n', type: 'dummy' };

describe('parseDummyConfig', () => {
  it('takes the IPAM type', () => {
    expect(parseDummyConfig({ ...base, ipam: { type: 'static' } } as NetConf)).toEqual({ ipamType: 'static' });
  });

  it.each([[{}], [{ ipam: {} }], [{ ipam: { type: '' } }]])('%j: code 7', (extra) => {
    expect(() => parseDummyConfig({ ...base, ...extra } as NetConf)).toThrow(expect.objectContaining({ code: 7, msg: 'dummy interface requires an IPAM configuration' }));
  });

  it('a malformed ipam block names the field', () => {
    expect(() => parseDummyConfig({ ...base, ipam: 'x' } as unknown as NetConf)).toThrow(expect.objectContaining({ code: 7, msg: 'invalid "ipam": must be an object' }));
  });
});
