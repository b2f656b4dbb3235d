import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { ConfError, confListFromBytes, loadNetworkConf, selectVersion } from '../../../lib/libcni/conf.ts';

let dir: string;
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'tscni-conf-'));
});
afterEach(() => rmSync(dir, { recursive: true, force: true }));

const write = (name: string, doc: unknown) => writeFileSync(join(dir, name), typeof doc === 'string' ? doc : JSON.stringify(doc));

describe('loadNetworkConf', () => {
  it('takes the first matching conflist in sorted order', () => {
    write('20-b.conflist', { cniVersion: '1.0.0', name: 'net', plugins: [{ type: 'second' }] });
    write('10-a.conflist', { cniVersion: '1.0.0', name: 'net', plugins: [{ type: 'first' }] });
    write('05-other.conflist', { cniVersion: '1.0.0', name: 'other', plugins: [{ type: 'x' }] });
    const list = loadNetworkConf(dir, 'net');
    expect(list.plugins.map((p) => p.type)).toEqual(['first']);
    expect(list.bytes.toString()).toContain('"first"');
  });

  it('upgrades a single .conf or .json plugin config to a list', () => {
    write('10-single.conf', { cniVersion: '0.4.0', name: 'single', type: 'bridge', bridge: 'br9' });
    write('20-json.json', { cniVersion: '0.3.1', name: 'fromjson', type: 'loopback' });
    const list = loadNetworkConf(dir, 'single');
    expect(list.name).toBe('single');
    expect(list.cniVersion).toBe('0.4.0');
    expect(list.plugins).toHaveLength(1);
    expect(list.plugins[0]?.raw.bridge).toBe('br9');
    expect(loadNetworkConf(dir, 'fromjson').plugins[0]?.type).toBe('loopback');
  });

  it('prefers a conflist over a single config of the same name', () => {
    write('00-single.conf', { cniVersion: '1.0.0', name: 'n', type: 'single' });
    write('99-list.conflist', { cniVersion: '1.0.0', name: 'n', plugins: [{ type: 'listed' }] });
    expect(loadNetworkConf(dir, 'n').plugins[0]?.type).toBe('listed');
  });

  it('appends plugins from <dir>/<network>/*.conf unless loadOnlyInlinedPlugins', () => {
    write('10-n.conflist', { cniVersion: '1.1.0', name: 'n', plugins: [{ type: 'inline' }] });
    mkdirSync(join(dir, 'n'));
    writeFileSync(join(dir, 'n', 'a.conf'), JSON.stringify({ type: 'extra' }));
    expect(loadNetworkConf(dir, 'n').plugins.map((p) => p.type)).toEqual(['inline', 'extra']);
    write('10-n.conflist', { cniVersion: '1.1.0', name: 'n', loadOnlyInlinedPlugins: true, plugins: [{ type: 'inline' }] });
    expect(loadNetworkConf(dir, 'n').plugins.map((p) => p.type)).toEqual(['inline']);
  });

  it('names the directory and the network when nothing matches', () => {
    expect(() => loadNetworkConf(dir, 'x')).toThrow(`no net configurations found in ${dir}`);
    write('10-a.conflist', { cniVersion: '1.0.0', name: 'a', plugins: [{ type: 't' }] });
    expect(() => loadNetworkConf(dir, 'missing')).toThrow(`no net configuration with name "missing" in ${dir}`);
  });

  it('reports a broken file by path', () => {
    write('10-bad.conflist', '{ not json');
    expect(() => loadNetworkConf(dir, 'a')).toThrow(/no net configuration with name "a" in .*10-bad\.conflist: error parsing configuration list/);
  });

  it('a broken file does not hide the networks of the others', () => {
    write('10-bad.conflist', '{ not json');
    write('20-a.conflist', { cniVersion: '1.0.0', name: 'a', plugins: [{ type: 't' }] });
    write('30-b.conf', '{ nope');
    expect(loadNetworkConf(dir, 'a').name).toBe('a');
    expect(() => loadNetworkConf(dir, 'b')).toThrow(/30-b\.conf.*10-bad\.conflist|10-bad\.conflist.*30-b\.conf/);
  });
});

describe('confListFromBytes', () => {
  const parse = (doc: unknown) => confListFromBytes(Buffer.from(JSON.stringify(doc)));

  it('reads disableCheck/disableGC as booleans or "true"/"false" strings', () => {
    const l = parse({ name: 'n', cniVersion: '1.1.0', disableCheck: 'TRUE', disableGC: true, plugins: [{ type: 't' }] });
    expect([l.disableCheck, l.disableGC]).toEqual([true, true]);
    expect(() => parse({ name: 'n', disableCheck: 'yes', plugins: [{ type: 't' }] })).toThrow('invalid value "yes" for disableCheck');
  });

  it('rejects a list without name, with empty plugins, or a plugin without type', () => {
    expect(() => parse({ plugins: [{ type: 't' }] })).toThrow('no name');
    expect(() => parse({ name: 'n', plugins: [] })).toThrow('no plugins in list');
    expect(() => parse({ name: 'n', plugins: [{ bridge: 'x' }] })).toThrow("missing 'type'");
    expect(() => parse({ name: 7, plugins: [{ type: 't' }] })).toThrow(ConfError);
  });

  it('keeps declared capabilities', () => {
    const l = parse({ name: 'n', cniVersion: '1.0.0', plugins: [{ type: 'portmap', capabilities: { portMappings: true, ips: false } }] });
    expect(l.plugins[0]?.capabilities).toEqual({ portMappings: true, ips: false });
  });
});

describe('selectVersion (cniVersions)', () => {
  it('picks the highest supported of cniVersions and cniVersion', () => {
    expect(selectVersion('0.4.0', ['1.0.0', '0.3.1'])).toBe('1.0.0');
    expect(selectVersion(undefined, ['0.3.1', '1.1.0'])).toBe('1.1.0');
  });
  it('ignores versions newer than we support', () => {
    expect(selectVersion('1.0.0', ['1.0.0', '9.0.0'])).toBe('1.0.0');
  });
  it('uses cniVersion alone when there is no cniVersions', () => {
    expect(selectVersion('0.3.1', undefined)).toBe('0.3.1');
  });
  it('rejects an entry that is not a version', () => {
    expect(() => selectVersion(undefined, ['one'])).toThrow('invalid cniVersions entry "one"');
  });
});
