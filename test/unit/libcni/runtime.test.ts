import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { cacheFilePath, readCacheEntry } from '../../../lib/libcni/cache.ts';
import { confListFromBytes, type NetworkConfList } from '../../../lib/libcni/conf.ts';
import { buildPluginConfig, CniRuntime, RuntimeError, type PluginExec, type RuntimeConf } from '../../../lib/libcni/runtime.ts';

interface Call {
  type: string;
  command: string;
  conf: Record<string, unknown>;
  env: Record<string, string | undefined>;
}

/** Plugins as functions: each returns stdout and an exit code for one call. */
function fakeExec(behaviour: Record<string, (c: Call) => { code?: number; out: string }>): { exec: PluginExec; calls: Call[] } {
  const calls: Call[] = [];
  return {
    calls,
    exec: {
      find: (type) => {
        if (!behaviour[type]) throw new Error(`failed to find plugin "${type}" in path [/fake]`);
        return `/fake/${type}`;
      },
      exec: async (path, stdin, env) => {
        const type = path.slice('/fake/'.length);
        const call: Call = { type, command: String(env.CNI_COMMAND), conf: JSON.parse(stdin.toString()) as Record<string, unknown>, env };
        calls.push(call);
        const r = (behaviour[type] as (c: Call) => { code?: number; out: string })(call);
        return { code: r.code ?? 0, stdout: r.out, stderr: '' };
      },
    },
  };
}

const resultOf = (c: Call, extra: Record<string, unknown>) => JSON.stringify({ cniVersion: c.conf.cniVersion, ...((c.conf.prevResult as object) ?? {}), ...extra });

let cacheDir: string;
beforeEach(() => {
  cacheDir = mkdtempSync(join(tmpdir(), 'tscni-rt-'));
});
afterEach(() => rmSync(cacheDir, { recursive: true, force: true }));

function list(doc: Record<string, unknown>): NetworkConfList {
  return confListFromBytes(Buffer.from(JSON.stringify({ name: 'net', cniVersion: '1.1.0', ...doc })));
}

const rt: RuntimeConf = { containerId: 'c1', netns: '/run/netns/p', ifName: 'eth0', args: [['K8S_POD_NAME', 'p']], capabilityArgs: { portMappings: [{ hostPort: 8080, containerPort: 80, protocol: 'tcp' }], ips: ['10.0.0.9'] } };

const twoPlugins = list({
  plugins: [
    { type: 'main', ipam: { type: 'host-local' }, capabilities: { ips: true } },
    { type: 'meta', capabilities: { portMappings: true, bandwidth: true } },
  ],
});

const behaviour = {
  main: (c: Call) => (c.command === 'ADD' ? { out: resultOf(c, { ips: [{ address: '10.0.0.9/24' }] }) } : { out: '' }),
  meta: (c: Call) => (c.command === 'ADD' ? { out: resultOf(c, {}) } : { out: '' }),
};

describe('ADD', () => {
  it('runs plugins in order, chains prevResult, and sets the CNI_* environment', async () => {
    const f = fakeExec(behaviour);
    const r = await new CniRuntime({ cniPath: '/fake', cacheDir, exec: f.exec, env: {} }).add(twoPlugins, rt);
    expect(f.calls.map((c) => `${c.type}:${c.command}`)).toEqual(['main:ADD', 'meta:ADD']);
    expect(f.calls[0]?.conf.prevResult).toBeUndefined();
    expect(f.calls[1]?.conf.prevResult).toEqual({ cniVersion: '1.1.0', ips: [{ address: '10.0.0.9/24' }] });
    expect(f.calls[0]?.env).toMatchObject({ CNI_CONTAINERID: 'c1', CNI_NETNS: '/run/netns/p', CNI_IFNAME: 'eth0', CNI_ARGS: 'K8S_POD_NAME=p', CNI_PATH: '/fake' });
    expect(r).toEqual({ cniVersion: '1.1.0', ips: [{ address: '10.0.0.9/24' }] });
  });

  it('injects only the capabilities each plugin declares and the caller gave', async () => {
    const f = fakeExec(behaviour);
    await new CniRuntime({ cniPath: '/fake', cacheDir, exec: f.exec, env: {} }).add(twoPlugins, rt);
    expect(f.calls[0]?.conf.runtimeConfig).toEqual({ ips: ['10.0.0.9'] });
    expect(f.calls[1]?.conf.runtimeConfig).toEqual({ portMappings: rt.capabilityArgs.portMappings });
    expect(f.calls.every((c) => c.conf.name === 'net' && c.conf.cniVersion === '1.1.0')).toBe(true);
  });

  it('caches the final result with the config bytes, args and capability args', async () => {
    const f = fakeExec(behaviour);
    await new CniRuntime({ cniPath: '/fake', cacheDir, exec: f.exec, env: {} }).add(twoPlugins, rt);
    const cached = readCacheEntry(cacheDir, { network: 'net', containerId: 'c1', ifName: 'eth0' });
    expect(cached?.config.equals(twoPlugins.bytes)).toBe(true);
    expect(cached?.cniArgs).toEqual(rt.args);
    expect(cached?.capabilityArgs).toEqual(rt.capabilityArgs);
    expect(cached?.result).toEqual({ cniVersion: '1.1.0', ips: [{ address: '10.0.0.9/24' }] });
  });

  it('stops at a failing plugin, reports its code and message, and caches nothing', async () => {
    const f = fakeExec({ ...behaviour, meta: () => ({ code: 1, out: JSON.stringify({ cniVersion: '1.1.0', code: 7, msg: 'bad hostPort', details: 'port 0' }) }) });
    const run = new CniRuntime({ cniPath: '/fake', cacheDir, exec: f.exec, env: {} }).add(twoPlugins, rt);
    await expect(run).rejects.toMatchObject({ code: 7, msg: 'plugin type="meta" failed (add): bad hostPort', details: 'port 0' });
    expect(readCacheEntry(cacheDir, { network: 'net', containerId: 'c1', ifName: 'eth0' })).toBeUndefined();
  });

  it('rejects an invalid container ID or interface name before running anything', async () => {
    const f = fakeExec(behaviour);
    const runtime = new CniRuntime({ cniPath: '/fake', cacheDir, exec: f.exec, env: {} });
    await expect(runtime.add(twoPlugins, { ...rt, containerId: '-bad' })).rejects.toThrow('invalid characters in containerID');
    await expect(runtime.add(twoPlugins, { ...rt, ifName: 'a/b' })).rejects.toThrow('interface name contains / or : or whitespace characters');
    expect(f.calls).toHaveLength(0);
  });

  it('names a plugin it cannot find, and finds that out before any ADD (nothing is made that a DEL could not undo)', async () => {
    const f = fakeExec({ main: behaviour.main });
    await expect(new CniRuntime({ cniPath: '/fake', cacheDir, exec: f.exec, env: {} }).add(twoPlugins, rt)).rejects.toThrow(
      'plugin type="meta" failed (add): failed to find plugin "meta"',
    );
    expect(f.calls).toHaveLength(0);
  });
});

describe('DEL', () => {
  it('runs plugins in reverse with the cached result, then removes the cache entry', async () => {
    const f = fakeExec(behaviour);
    const runtime = new CniRuntime({ cniPath: '/fake', cacheDir, exec: f.exec, env: {} });
    await runtime.add(twoPlugins, rt);
    f.calls.length = 0;
    await runtime.del(twoPlugins, rt);
    expect(f.calls.map((c) => `${c.type}:${c.command}`)).toEqual(['meta:DEL', 'main:DEL']);
    expect(f.calls[0]?.conf.prevResult).toEqual({ cniVersion: '1.1.0', ips: [{ address: '10.0.0.9/24' }] });
    expect(readCacheEntry(cacheDir, { network: 'net', containerId: 'c1', ifName: 'eth0' })).toBeUndefined();
  });

  it('a failing or missing plugin does not stop the others: all run, the first failure is thrown, the cache entry stays for the retry', async () => {
    const f = fakeExec({ ...behaviour, meta: (c: Call) => (c.command === 'DEL' ? { code: 1, out: JSON.stringify({ cniVersion: '1.1.0', code: 11, msg: 'busy' }) } : behaviour.meta(c)) });
    const runtime = new CniRuntime({ cniPath: '/fake', cacheDir, exec: f.exec, env: {} });
    await runtime.add(twoPlugins, rt);
    f.calls.length = 0;
    await expect(runtime.del(twoPlugins, rt)).rejects.toMatchObject({ code: 11, msg: 'plugin type="meta" failed (delete): busy' });
    expect(f.calls.map((c) => `${c.type}:${c.command}`)).toEqual(['meta:DEL', 'main:DEL']);
    expect(readCacheEntry(cacheDir, { network: 'net', containerId: 'c1', ifName: 'eth0' })).toBeDefined();
    const gone = fakeExec({ main: behaviour.main });
    const without = new CniRuntime({ cniPath: '/fake', cacheDir, exec: gone.exec, env: {} });
    await expect(without.del(twoPlugins, rt)).rejects.toThrow('failed to find plugin "meta"');
    expect(gone.calls.map((c) => `${c.type}:${c.command}`)).toEqual(['main:DEL']);
  });

  it('still runs every plugin when the cache file is empty or corrupt (no prevResult)', async () => {
    for (const text of ['', '{"kind":"cniCacheV1"', 'garbage']) {
      const f = fakeExec(behaviour);
      const runtime = new CniRuntime({ cniPath: '/fake', cacheDir, exec: f.exec, env: {} });
      await runtime.add(twoPlugins, rt);
      writeFileSync(cacheFilePath(cacheDir, { network: 'net', containerId: 'c1', ifName: 'eth0' }), text);
      f.calls.length = 0;
      await runtime.del(twoPlugins, rt);
      expect(f.calls.map((c) => c.type)).toEqual(['meta', 'main']);
      expect(f.calls.every((c) => c.conf.prevResult === undefined)).toBe(true);
    }
  });

  it('converts the cached result to the list version', async () => {
    const f = fakeExec(behaviour);
    const runtime = new CniRuntime({ cniPath: '/fake', cacheDir, exec: f.exec, env: {} });
    // ADD with the list at 1.1.0: the cache holds a 1.1.0 result.
    await runtime.add(list({ cniVersion: '1.1.0', plugins: [{ type: 'main' }] }), rt);
    expect((readCacheEntry(cacheDir, { network: 'net', containerId: 'c1', ifName: 'eth0' })?.result as { cniVersion: string }).cniVersion).toBe('1.1.0');
    f.calls.length = 0;
    // The list was downgraded to 0.4.0 since: DEL must get the result in 0.4.0's shape.
    await runtime.del(list({ cniVersion: '0.4.0', plugins: [{ type: 'main' }] }), rt);
    const prev = f.calls[0]?.conf.prevResult as { cniVersion: string; ips: Array<Record<string, unknown>> };
    expect(prev.cniVersion).toBe('0.4.0');
    expect(prev.ips[0]).toEqual({ version: '4', address: '10.0.0.9/24' });
  });

  it('sends no prevResult before 0.4.0', async () => {
    const f = fakeExec(behaviour);
    const runtime = new CniRuntime({ cniPath: '/fake', cacheDir, exec: f.exec, env: {} });
    const old = list({ cniVersion: '0.3.1', plugins: [{ type: 'main' }] });
    await runtime.add(old, rt);
    f.calls.length = 0;
    await runtime.del(old, rt);
    expect(f.calls[0]?.conf.prevResult).toBeUndefined();
  });
});

describe('CHECK', () => {
  it('runs every plugin with the cached result', async () => {
    const f = fakeExec(behaviour);
    const runtime = new CniRuntime({ cniPath: '/fake', cacheDir, exec: f.exec, env: {} });
    await runtime.add(twoPlugins, rt);
    f.calls.length = 0;
    await runtime.check(twoPlugins, rt);
    expect(f.calls.map((c) => `${c.type}:${c.command}`)).toEqual(['main:CHECK', 'meta:CHECK']);
    expect(f.calls[1]?.conf.prevResult).toBeDefined();
  });

  it('honours disableCheck and refuses versions before 0.4.0', async () => {
    const f = fakeExec(behaviour);
    const runtime = new CniRuntime({ cniPath: '/fake', cacheDir, exec: f.exec, env: {} });
    await runtime.check(list({ disableCheck: true, plugins: [{ type: 'main' }] }), rt);
    expect(f.calls).toHaveLength(0);
    await expect(runtime.check(list({ cniVersion: '0.3.1', plugins: [{ type: 'main' }] }), rt)).rejects.toThrow('does not support the CHECK command');
  });
});

describe('GC and STATUS', () => {
  it('DELs stale cached attachments of the network, then sends GC with the valid list', async () => {
    const f = fakeExec(behaviour);
    const runtime = new CniRuntime({ cniPath: '/fake', cacheDir, exec: f.exec, env: {} });
    await runtime.add(twoPlugins, rt);
    await runtime.add(twoPlugins, { ...rt, containerId: 'c2' });
    f.calls.length = 0;
    await runtime.gc(twoPlugins, [{ containerID: 'c2', ifname: 'eth0' }]);
    const dels = f.calls.filter((c) => c.command === 'DEL');
    expect(dels.map((c) => c.env.CNI_CONTAINERID)).toEqual(['c1', 'c1']);
    // The stale attachment's DEL gets its cached netns and capability args.
    expect(dels[0]?.env.CNI_NETNS).toBe('/run/netns/p');
    expect(dels[0]?.conf.runtimeConfig).toEqual({ portMappings: rt.capabilityArgs.portMappings });
    const gcs = f.calls.filter((c) => c.command === 'GC');
    expect(gcs.map((c) => c.type)).toEqual(['main', 'meta']);
    expect(gcs[0]?.conf['cni.dev/valid-attachments']).toEqual([{ containerID: 'c2', ifname: 'eth0' }]);
    expect(readCacheEntry(cacheDir, { network: 'net', containerId: 'c2', ifName: 'eth0' })).toBeDefined();
  });

  it('honours disableGC and sends no GC before 1.1.0', async () => {
    const f = fakeExec(behaviour);
    const runtime = new CniRuntime({ cniPath: '/fake', cacheDir, exec: f.exec, env: {} });
    await runtime.gc(list({ disableGC: true, plugins: [{ type: 'main' }] }), []);
    await runtime.gc(list({ cniVersion: '1.0.0', plugins: [{ type: 'main' }] }), []);
    expect(f.calls).toHaveLength(0);
  });

  it('collects GC errors from every plugin', async () => {
    const failing = () => ({ code: 1, out: JSON.stringify({ code: 999, msg: 'boom' }) });
    const f = fakeExec({ main: failing, meta: failing });
    await expect(new CniRuntime({ cniPath: '/fake', cacheDir, exec: f.exec, env: {} }).gc(twoPlugins, [])).rejects.toThrow(/main.*boom[\s\S]*meta.*boom/);
    expect(f.calls).toHaveLength(2);
  });

  it('STATUS asks every plugin and stops at the first error with its code', async () => {
    const f = fakeExec({ main: () => ({ code: 1, out: JSON.stringify({ code: 50, msg: 'no addresses left' }) }), meta: () => ({ out: '' }) });
    const runtime = new CniRuntime({ cniPath: '/fake', cacheDir, exec: f.exec, env: {} });
    await expect(runtime.status(twoPlugins)).rejects.toMatchObject({ code: 50 });
    expect(f.calls.map((c) => c.type)).toEqual(['main']);
    expect(f.calls[0]?.env.CNI_CONTAINERID).toBe('');
    await runtime.status(list({ cniVersion: '1.0.0', plugins: [{ type: 'main' }] }));
    expect(f.calls).toHaveLength(1);
  });

  it('turns output that is not an error document into a 999 with the text', async () => {
    const f = fakeExec({ main: () => ({ code: 2, out: 'segfault' }) });
    const err = await new CniRuntime({ cniPath: '/fake', cacheDir, exec: f.exec, env: {} }).status(list({ plugins: [{ type: 'main' }] })).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(RuntimeError);
    expect((err as RuntimeError).code).toBe(999);
    expect((err as RuntimeError).message).toContain('exit code 2: segfault');
  });
});

describe('buildPluginConfig', () => {
  it('overrides name and cniVersion and adds prevResult', () => {
    const l = list({ plugins: [{ type: 'x', name: 'inner', cniVersion: '0.1.0', foo: 1 }] });
    const conf = JSON.parse(buildPluginConfig(l, l.plugins[0] as never, { cniVersion: '1.1.0' }).toString()) as Record<string, unknown>;
    expect(conf).toEqual({ type: 'x', name: 'net', cniVersion: '1.1.0', foo: 1, prevResult: { cniVersion: '1.1.0' } });
  });
});
