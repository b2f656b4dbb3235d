import { describe, expect, it } from 'vitest';
import { CniError, ErrorCode } from '../../../lib/cni/errors.ts';
import { pluginMain, validateContainerId, validateIfName } from '../../../lib/cni/skel.ts';
import { SUPPORTED_VERSIONS } from '../../../lib/cni/version.ts';
import { fakeIo, recordingPlugin } from './fake-io.ts';

const RESULT = { cniVersion: '1.1.0', ips: [{ address: '10.240.0.5/24', gateway: '10.240.0.1' }] };
const conf = (extra: Record<string, unknown> = {}) => JSON.stringify({ cniVersion: '1.1.0', name: 'net1', type: 'fake', ...extra });
const addEnv = (over: Record<string, string | undefined> = {}) => ({
  CNI_COMMAND: 'ADD',
  CNI_CONTAINERID: 'ctr1',
  CNI_NETNS: '/run/netns/x',
  CNI_IFNAME: 'eth0',
  CNI_PATH: '/opt/cni/bin',
  ...over,
});

async function runWith(env: Record<string, string | undefined>, stdin: string, netnsState: Parameters<typeof fakeIo>[2] = 'ok') {
  const rec = recordingPlugin(RESULT);
  const f = fakeIo(env, stdin, netnsState);
  const code = await pluginMain(rec.plugin, f.io);
  return { code, rec, f };
}

describe('environment validation', () => {
  it('names every missing variable in one code-4 error', async () => {
    const { code, f, rec } = await runWith({ CNI_COMMAND: 'ADD' }, conf());
    expect(code).toBe(1);
    expect(f.json()).toMatchObject({ code: 4, msg: 'required env variables [CNI_CONTAINERID,CNI_NETNS,CNI_IFNAME,CNI_PATH] missing' });
    expect(rec.calls).toHaveLength(0);
  });

  it('lets DEL run without CNI_NETNS', async () => {
    const { code, rec } = await runWith(addEnv({ CNI_COMMAND: 'DEL', CNI_NETNS: undefined }), conf());
    expect(code).toBe(0);
    expect(rec.calls[0]?.netnsState).toBe('unset');
  });

  it('needs only CNI_COMMAND and CNI_PATH for GC and STATUS', async () => {
    for (const cmd of ['GC', 'STATUS']) {
      const { code, rec } = await runWith({ CNI_COMMAND: cmd, CNI_PATH: '/x' }, conf());
      expect(code).toBe(0);
      expect(rec.calls[0]?.command).toBe(cmd);
    }
    const missing = await runWith({ CNI_COMMAND: 'GC' }, conf());
    expect(missing.f.json()).toMatchObject({ code: 4, msg: 'required env variables [CNI_PATH] missing' });
  });

  it('rejects an unknown command with code 4', async () => {
    const { f } = await runWith(addEnv({ CNI_COMMAND: 'FROB' }), conf());
    expect(f.json()).toMatchObject({ code: 4, msg: 'unknown CNI_COMMAND: FROB' });
  });

  it('prints the about line and versions to stderr with no command', async () => {
    const { code, f } = await runWith({}, '');
    expect(code).toBe(0);
    expect(f.stdout()).toBe('');
    expect(f.stderr()).toContain('fake plugin v0');
    expect(f.stderr()).toContain(`CNI protocol versions supported: ${SUPPORTED_VERSIONS.join(', ')}`);
  });

  it('validates container IDs like the reference', () => {
    expect(() => validateContainerId('')).toThrow(expect.objectContaining({ code: 3 }));
    expect(() => validateContainerId('-abc')).toThrow(expect.objectContaining({ code: 4, msg: 'invalid characters in containerID' }));
    expect(() => validateContainerId('a b')).toThrow(expect.objectContaining({ code: 4 }));
    expect(() => validateContainerId('abc_1.2-3')).not.toThrow();
  });

  it('treats an empty CNI_CONTAINERID as missing (code 4)', async () => {
    const { f } = await runWith(addEnv({ CNI_CONTAINERID: '' }), conf());
    expect(f.json()).toMatchObject({ code: 4, msg: 'required env variables [CNI_CONTAINERID] missing' });
  });

  it('rejects bad container IDs before reading stdin', async () => {
    const { f, rec } = await runWith(addEnv({ CNI_CONTAINERID: 'bad/id' }), 'not json');
    expect(f.json()).toMatchObject({ code: 4, msg: 'invalid characters in containerID', details: 'bad/id' });
    expect(rec.calls).toHaveLength(0);
  });

  it.each([
    ['', 'interface name is empty'],
    ['a'.repeat(16), 'interface name is too long'],
    ['.', 'interface name is . or ..'],
    ['..', 'interface name is . or ..'],
    ['eth/0', 'interface name contains / or : or whitespace characters'],
    ['eth:0', 'interface name contains / or : or whitespace characters'],
    ['eth 0', 'interface name contains / or : or whitespace characters'],
    ['eth\t0', 'interface name contains / or : or whitespace characters'],
  ])('rejects interface name %j', (name, msg) => {
    expect(() => validateIfName(name)).toThrow(expect.objectContaining({ code: 4, msg }));
  });

  it('accepts a 15-character interface name', () => {
    expect(() => validateIfName('a'.repeat(15))).not.toThrow();
  });

  it('does not validate the container id for commands that do not need it', async () => {
    const { code } = await runWith({ CNI_COMMAND: 'STATUS', CNI_PATH: '/x', CNI_CONTAINERID: 'bad/id' }, conf());
    expect(code).toBe(0);
  });
});

describe('stdin', () => {
  it('gives code 6 when stdin is not JSON', async () => {
    const { f } = await runWith(addEnv(), '{nope');
    expect(f.json()).toMatchObject({ code: 6 });
    expect(String(f.json().msg)).toContain('error unmarshall network config');
  });

  it('gives code 6 when stdin is a JSON array', async () => {
    const { f } = await runWith(addEnv(), '[]');
    expect(f.json()).toMatchObject({ code: 6 });
  });

  it('gives code 7 for a missing or invalid network name', async () => {
    expect((await runWith(addEnv(), JSON.stringify({ cniVersion: '1.0.0', type: 'x' }))).f.json()).toMatchObject({ code: 7, msg: 'missing network name' });
    expect((await runWith(addEnv(), conf({ name: 'bad name' }))).f.json()).toMatchObject({
      code: 7,
      msg: 'invalid characters found in network name',
      details: 'bad name',
    });
  });

  it('ignores stdin for VERSION', async () => {
    const { code, f } = await runWith({ CNI_COMMAND: 'VERSION' }, 'garbage');
    expect(code).toBe(0);
    expect(f.json()).toEqual({ cniVersion: '1.1.0', supportedVersions: [...SUPPORTED_VERSIONS] });
  });

  it('passes the raw stdin bytes and decoded config to the handler', async () => {
    const stdin = conf({ extra: { a: 1 } });
    const { rec } = await runWith(addEnv({ CNI_ARGS: 'K=V' }), stdin);
    const call = rec.calls[0];
    expect(call?.stdinData.toString()).toBe(stdin);
    expect(call?.config.extra).toEqual({ a: 1 });
    expect(call?.args).toBe('K=V');
    expect(call?.containerId).toBe('ctr1');
    expect(call?.ifName).toBe('eth0');
    expect(call?.path).toBe('/opt/cni/bin');
  });
});

describe('version negotiation', () => {
  it('treats a missing cniVersion as 0.1.0', async () => {
    const { f, rec } = await runWith(addEnv(), JSON.stringify({ name: 'n', type: 'fake' }));
    expect(rec.calls[0]?.config.cniVersion).toBe('0.1.0');
    expect(f.json()).toEqual({ cniVersion: '0.1.0', ip4: { ip: '10.240.0.5/24', gateway: '10.240.0.1' } });
  });

  it('rejects an unsupported version with code 1', async () => {
    const { f, rec } = await runWith(addEnv(), conf({ cniVersion: '0.5.0' }));
    expect(f.json()).toMatchObject({ code: 1, msg: 'incompatible CNI versions' });
    expect(String(f.json().details)).toContain('config is "0.5.0"');
    expect(rec.calls).toHaveLength(0);
  });

  it('treats a malformed version as incompatible for ADD (1) and undecodable for CHECK (6), like the reference', async () => {
    expect((await runWith(addEnv(), conf({ cniVersion: 'one' }))).f.json()).toMatchObject({ code: 1 });
    expect((await runWith(addEnv({ CNI_COMMAND: 'CHECK' }), conf({ cniVersion: 'one' }))).f.json()).toMatchObject({ code: 6 });
  });

  it.each(['0.1.0', '0.2.0', '0.3.0', '0.3.1'])('refuses CHECK for config version %s', async (v) => {
    const { f, rec } = await runWith(addEnv({ CNI_COMMAND: 'CHECK' }), conf({ cniVersion: v }));
    expect(f.json()).toMatchObject({ code: 1, msg: 'config version does not allow CHECK' });
    expect(rec.calls).toHaveLength(0);
  });

  it.each(['0.4.0', '1.0.0', '1.1.0'])('allows CHECK for config version %s', async (v) => {
    const { code } = await runWith(addEnv({ CNI_COMMAND: 'CHECK' }), conf({ cniVersion: v }));
    expect(code).toBe(0);
  });

  it.each([
    ['GC', '1.0.0'],
    ['STATUS', '1.0.0'],
    ['GC', '0.4.0'],
    ['STATUS', '0.3.1'],
  ])('refuses %s for config version %s', async (cmd, v) => {
    const { f } = await runWith({ CNI_COMMAND: cmd, CNI_PATH: '/x' }, conf({ cniVersion: v }));
    expect(f.json()).toMatchObject({ code: 1, msg: `config version does not allow ${cmd}` });
  });

  it('converts prevResult of any version to the internal shape', async () => {
    const prev = { cniVersion: '0.2.0', ip4: { ip: '10.240.0.9/24', routes: [{ dst: '0.0.0.0/0' }] } };
    const { rec } = await runWith(addEnv(), conf({ cniVersion: '0.2.0', prevResult: prev }));
    expect(rec.calls[0]?.config.prevResult).toEqual({ cniVersion: '1.1.0', ips: [{ address: '10.240.0.9/24' }], routes: [{ dst: '0.0.0.0/0' }] });
  });
});

describe('netns checks', () => {
  it('refuses the plugin\'s own netns with code 8 unless overridden', async () => {
    const own = await runWith(addEnv(), conf(), 'own');
    expect(own.f.json()).toMatchObject({ code: 8, msg: "plugin's netns and netns from CNI_NETNS should not be the same" });
    expect(own.rec.calls).toHaveLength(0);
    const over = await runWith(addEnv({ CNI_NETNS_OVERRIDE: 'true' }), conf(), 'own');
    expect(over.code).toBe(0);
  });

  it('refuses a missing or non-namespace path for ADD and CHECK with code 8', async () => {
    for (const state of ['missing', 'not-netns'] as const) {
      for (const cmd of ['ADD', 'CHECK']) {
        const r = await runWith(addEnv({ CNI_COMMAND: cmd }), conf(), state);
        expect(r.f.json()).toMatchObject({ code: 8 });
        expect(String(r.f.json().msg)).toContain('/run/netns/x');
        expect(r.rec.calls).toHaveLength(0);
      }
    }
  });

  it('does not inspect CNI_NETNS for a host-only plugin (IPAM, portmap), for any command', async () => {
    for (const state of ['missing', 'not-netns', 'own'] as const) {
      for (const cmd of ['ADD', 'CHECK', 'DEL']) {
        const rec = recordingPlugin(RESULT);
        rec.plugin.hostOnly = true;
        const f = fakeIo(addEnv({ CNI_COMMAND: cmd, CNI_NETNS: '/dev/null' }), conf(), state);
        expect(await pluginMain(rec.plugin, f.io), f.stdout()).toBe(0);
        expect(rec.calls[0]?.netns).toBe('/dev/null');
        expect(rec.calls[0]?.netnsState).toBe('unset');
      }
    }
    // CNI_NETNS is still required for ADD, as the reference skel requires it.
    const rec = recordingPlugin(RESULT);
    rec.plugin.hostOnly = true;
    const f = fakeIo(addEnv({ CNI_NETNS: undefined }), conf());
    expect(await pluginMain(rec.plugin, f.io)).toBe(1);
    expect(f.json()).toMatchObject({ code: 4, msg: 'required env variables [CNI_NETNS] missing' });
  });

  it('lets DEL proceed when the netns is gone', async () => {
    const r = await runWith(addEnv({ CNI_COMMAND: 'DEL' }), conf(), 'missing');
    expect(r.code).toBe(0);
    expect(r.rec.calls[0]?.netnsState).toBe('missing');
  });
});

describe('errors from handlers', () => {
  it('prints a typed error as-is, with the config version', async () => {
    const rec = recordingPlugin(RESULT, new CniError(ErrorCode.TryAgainLater, 'busy', 'later'));
    const f = fakeIo(addEnv({ CNI_COMMAND: 'DEL' }), conf({ cniVersion: '0.4.0' }));
    expect(await pluginMain(rec.plugin, f.io)).toBe(1);
    expect(f.json()).toEqual({ cniVersion: '0.4.0', code: 11, msg: 'busy', details: 'later' });
  });

  it('turns an untyped error into 999 without a stack trace on stdout', async () => {
    const rec = recordingPlugin(RESULT, new TypeError('boom'));
    const f = fakeIo(addEnv(), conf());
    expect(await pluginMain(rec.plugin, f.io)).toBe(1);
    expect(f.json()).toEqual({ cniVersion: '1.1.0', code: 999, msg: 'boom' });
    expect(f.stdout()).not.toContain('at ');
    expect(f.stderr()).toContain('TypeError: boom');
  });

  it('turns a thrown non-Error into 999', async () => {
    const rec = recordingPlugin(RESULT, 'just a string');
    const f = fakeIo(addEnv(), conf());
    await pluginMain(rec.plugin, f.io);
    expect(f.json()).toMatchObject({ code: 999, msg: 'just a string' });
  });

  it('prints exactly one JSON document on stdout', async () => {
    const { f } = await runWith(addEnv(), conf());
    expect(() => JSON.parse(f.stdout())).not.toThrow();
    expect(f.stdout().trim().startsWith('{')).toBe(true);
  });
});

describe('ADD result printing', () => {
  it.each(SUPPORTED_VERSIONS)('prints the result in config version %s', async (v) => {
    const { f } = await runWith(addEnv(), conf({ cniVersion: v }));
    expect(f.json().cniVersion).toBe(v);
  });

  it('prints nothing for successful DEL, CHECK, GC and STATUS', async () => {
    for (const cmd of ['DEL', 'CHECK', 'GC', 'STATUS']) {
      const { f, code } = await runWith(addEnv({ CNI_COMMAND: cmd }), conf());
      expect(code).toBe(0);
      expect(f.stdout()).toBe('');
    }
  });
});
