import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { cacheFilePath, listCacheEntries, parseCacheEntry, readCacheEntry, renderCacheEntry, writeCacheEntry } from '../../../lib/libcni/cache.ts';

let dir: string;
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'tscni-cache-'));
});
afterEach(() => rmSync(dir, { recursive: true, force: true }));

const key = { network: 'mynet', containerId: 'cnitool-0123456789abcdef0123', ifName: 'eth0' };
// Keys deliberately not in sorted order: Go's encoder sorts map keys, and so must we.
const result = { ips: [{ interface: 0, gateway: '10.1.0.1', address: '10.1.0.2/24' }], cniVersion: '1.0.0' };

// What libcni's cacheAdd writes (json.Marshal of cachedInfo: struct fields in order, []byte as
// base64, omitempty fields; capabilityArgs and result are map[string]interface{}, so their keys
// come out sorted at every level).
const goWritten =
  '{"kind":"cniCacheV1","containerId":"cnitool-0123456789abcdef0123","config":"eyJuYW1lIjoibXluZXQifQ==","ifName":"eth0","networkName":"mynet","netns":"/run/netns/x","cniArgs":[["IgnoreUnknown","1"]],"capabilityArgs":{"portMappings":[{"containerPort":8080,"hostPort":80,"protocol":"tcp"}]},"result":{"cniVersion":"1.0.0","ips":[{"address":"10.1.0.2/24","gateway":"10.1.0.1","interface":0}]}}';

describe('result cache (cniCacheV1)', () => {
  it('lives at <dir>/results/<net>-<cid>-<ifname>', () => {
    expect(cacheFilePath('/var/lib/cni', key)).toBe('/var/lib/cni/results/mynet-cnitool-0123456789abcdef0123-eth0');
    expect(() => cacheFilePath(dir, { ...key, ifName: '' })).toThrow('interface name ("")');
  });

  it('renders byte for byte what libcni writes', () => {
    const rendered = renderCacheEntry({
      ...key,
      config: Buffer.from('{"name":"mynet"}'),
      netns: '/run/netns/x',
      cniArgs: [['IgnoreUnknown', '1']],
      capabilityArgs: { portMappings: [{ hostPort: 80, containerPort: 8080, protocol: 'tcp' }] },
      result,
    });
    expect(rendered).toBe(goWritten);
  });

  it('reads a libcni-written file', () => {
    const e = parseCacheEntry(goWritten);
    expect(e?.config.toString()).toBe('{"name":"mynet"}');
    expect(e?.cniArgs).toEqual([['IgnoreUnknown', '1']]);
    expect(e?.result).toEqual(result);
    expect(e?.netns).toBe('/run/netns/x');
  });

  it('omits empty optional fields as Go does', () => {
    const doc = JSON.parse(renderCacheEntry({ ...key, config: Buffer.from('{}'), cniArgs: [], capabilityArgs: {} })) as Record<string, unknown>;
    expect(Object.keys(doc)).toEqual(['kind', 'containerId', 'config', 'ifName', 'networkName']);
  });

  it('writes atomically: no temporary file remains and a reader gets the whole document', () => {
    writeCacheEntry(dir, { ...key, config: Buffer.from('{}'), result });
    expect(readdirSync(join(dir, 'results'))).toEqual([`mynet-${key.containerId}-eth0`]);
    expect(readCacheEntry(dir, key)?.result).toEqual(result);
  });

  it('treats empty, truncated and foreign files as nothing cached', () => {
    mkdirSync(join(dir, 'results'));
    for (const text of ['', '{"kind":"cniCacheV1","contain', '{"kind":"other"}', 'null']) {
      writeFileSync(cacheFilePath(dir, key), text);
      expect(readCacheEntry(dir, key)).toBeUndefined();
    }
  });

  it('reads a pre-cniCacheV1 file (a bare result) as a result', () => {
    mkdirSync(join(dir, 'results'));
    writeFileSync(cacheFilePath(dir, key), JSON.stringify(result));
    expect(readCacheEntry(dir, key)?.result).toEqual(result);
  });

  it('lists valid entries, optionally for one container, skipping broken ones', () => {
    writeCacheEntry(dir, { ...key, config: Buffer.from('{}') });
    writeCacheEntry(dir, { ...key, containerId: 'other', config: Buffer.from('{}') });
    writeFileSync(join(dir, 'results', 'mynet-broken-eth0'), '');
    expect(listCacheEntries(dir).map((e) => e.containerId)).toEqual([key.containerId, 'other']);
    expect(listCacheEntries(dir, 'other').map((e) => e.containerId)).toEqual(['other']);
    expect(readFileSync(cacheFilePath(dir, key), 'utf8')).toContain('"kind":"cniCacheV1"');
  });
});
