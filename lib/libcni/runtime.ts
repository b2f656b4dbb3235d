/**
 * What a container runtime does with a network config list (libcni's
 * AddNetworkList, DelNetworkList, CheckNetworkList, GCNetworkList and
 * GetStatusNetworkList):
 *
 *   ADD    plugins in order; each gets the previous plugin's result as
 *          prevResult; the last result is cached
 *   DEL    plugins in reverse order with the cached result (>= 0.4.0); the
 *          cache entry is removed afterwards
 *   CHECK  (>= 0.4.0, unless disableCheck) every plugin with the cached result
 *   GC     DEL every cached attachment of the network that is not valid, then
 *          (>= 1.1.0, unless disableGC) GC on every plugin
 *   STATUS (>= 1.1.0) every plugin, stopping at the first error
 *
 * Capabilities: a plugin gets runtimeConfig.<cap> only for the capabilities
 * it declares, and only when the caller provided that capability argument.
 */
import { findInPath } from '../cni/invoke.ts';
import { CniError, ErrorCode } from '../cni/errors.ts';
import { validateContainerId, validateIfName, validateNetworkName } from '../cni/skel.ts';
import { convertResult, parseResult, versionAtLeast } from '../cni/version.ts';
import { run } from '../exec.ts';
import { deleteCacheEntry, listCacheEntries, readCacheEntry, writeCacheEntry, type CachedAttachment } from './cache.ts';
import type { JsonObject, NetworkConfList, PluginConf } from './conf.ts';

export interface RuntimeConf {
  containerId: string;
  netns: string;
  ifName: string;
  /** CNI_ARGS as key/value pairs. */
  args: [string, string][];
  capabilityArgs: Record<string, unknown>;
}

export interface GcAttachment {
  containerID: string;
  ifname: string;
}

export interface PluginOutput {
  code: number;
  stdout: string;
  stderr: string;
}

/** How plugins are found and run; tests substitute a fake. */
export interface PluginExec {
  find(type: string, cniPath: string): string;
  exec(path: string, stdin: Buffer, env: Record<string, string | undefined>): Promise<PluginOutput>;
}

export const processExec: PluginExec = {
  find: (type, cniPath) => findInPath(type, cniPath),
  exec: async (path, stdin, env) => {
    for (let attempt = 0; ; attempt++) {
      try {
        const r = await run([path], { input: stdin, env, allowFailure: true });
        return { code: r.code, stdout: r.stdout, stderr: r.stderr };
      } catch (e) {
        // "text file busy": the plugin is being replaced (an upgrade); retry as libcni and IPAM delegation do.
        if ((e as { errno?: string }).errno === 'ETXTBSY' && attempt < 5) {
          await new Promise((r) => setTimeout(r, 50 * (attempt + 1)));
          continue;
        }
        throw e;
      }
    }
  },
};

export interface RuntimeOptions {
  cniPath: string;
  cacheDir: string;
  exec?: PluginExec;
  /** Base environment for plugins (libcni passes its own environment through). */
  env?: Record<string, string | undefined>;
}

/**
 * A plugin (or the runtime itself) failed: the one CNI error type, its
 * message naming the plugin and the operation (libcni's own wording).
 */
export class RuntimeError extends CniError {
  constructor(code: number, msg: string, details = '') {
    super(code, msg, details);
    this.name = 'RuntimeError';
  }
}

/**
 * What libcni checks before it runs a plugin, with the skel's own validators
 * (one set for both sides): container ID, network name, interface name.
 */
export function validateRuntimeConf(network: string, rt: RuntimeConf): void {
  validateContainerId(rt.containerId);
  validateNetworkName(network);
  validateIfName(rt.ifName);
}

export function describePlugin(p: PluginConf): string {
  return `type=${JSON.stringify(p.type)}${p.name ? ` name=${JSON.stringify(p.name)}` : ''}`;
}

/** runtimeConfig for one plugin: only the capabilities it declares and the caller provided. */
export function runtimeConfigFor(plugin: PluginConf, capabilityArgs: Record<string, unknown>): JsonObject | undefined {
  const rc: JsonObject = {};
  for (const [cap, enabled] of Object.entries(plugin.capabilities)) {
    if (enabled && Object.hasOwn(capabilityArgs, cap) && capabilityArgs[cap] !== undefined) rc[cap] = capabilityArgs[cap];
  }
  return Object.keys(rc).length > 0 ? rc : undefined;
}

/** The stdin of one plugin call (libcni buildOneConfig + injectRuntimeConfig). */
export function buildPluginConfig(list: NetworkConfList, plugin: PluginConf, prevResult: JsonObject | undefined, capabilityArgs?: Record<string, unknown>): Buffer {
  const conf: JsonObject = { ...plugin.raw, name: list.name, cniVersion: list.cniVersion };
  if (prevResult) conf.prevResult = prevResult;
  if (capabilityArgs) {
    const rc = runtimeConfigFor(plugin, capabilityArgs);
    if (rc) conf.runtimeConfig = rc;
  }
  return Buffer.from(JSON.stringify(conf));
}

function stringifyArgs(args: readonly [string, string][]): string {
  return args.map(([k, v]) => `${k}=${v}`).join(';');
}

/** A result document in `version`, whatever version it was written in. */
export function resultAsVersion(raw: JsonObject, version: string): JsonObject {
  if (raw.cniVersion === version) return raw;
  return convertResult(parseResult(raw), version) as JsonObject;
}

export class CniRuntime {
  private readonly opts: RuntimeOptions;
  private readonly pluginExec: PluginExec;

  constructor(opts: RuntimeOptions) {
    this.opts = opts;
    this.pluginExec = opts.exec ?? processExec;
  }

  private env(command: string, rt: RuntimeConf | undefined): Record<string, string | undefined> {
    return {
      ...(this.opts.env ?? process.env),
      CNI_COMMAND: command,
      CNI_CONTAINERID: rt?.containerId ?? '',
      CNI_NETNS: rt?.netns ?? '',
      CNI_ARGS: rt ? stringifyArgs(rt.args) : '',
      CNI_IFNAME: rt?.ifName ?? '',
      CNI_PATH: this.opts.cniPath,
    };
  }

  /** Run one plugin; returns its stdout, throws RuntimeError with the plugin's code and message. */
  private async invoke(command: string, plugin: PluginConf, stdin: Buffer, rt: RuntimeConf | undefined): Promise<string> {
    let path: string;
    try {
      path = this.pluginExec.find(plugin.type, this.opts.cniPath);
    } catch (e) {
      throw new RuntimeError(e instanceof CniError ? e.code : ErrorCode.Internal, (e as Error).message);
    }
    const out = await this.pluginExec.exec(path, stdin, this.env(command, rt));
    if (out.code === 0) return out.stdout;
    let err: { code?: unknown; msg?: unknown; details?: unknown } | undefined;
    try {
      err = JSON.parse(out.stdout) as typeof err;
    } catch {
      err = undefined;
    }
    if (err && typeof err.code === 'number') {
      throw new RuntimeError(err.code, String(err.msg ?? ''), typeof err.details === 'string' ? err.details : '');
    }
    const text = (out.stderr || out.stdout).trim();
    throw new RuntimeError(ErrorCode.Internal, `netplugin failed with exit code ${out.code}${text ? `: ${text}` : ' and no error message'}`);
  }

  private wrap(e: unknown, plugin: PluginConf, op: string): RuntimeError {
    const inner = e instanceof RuntimeError ? e : new RuntimeError(ErrorCode.Internal, (e as Error).message);
    return new RuntimeError(inner.code, `plugin ${describePlugin(plugin)} failed (${op}): ${inner.msg}`, inner.details);
  }

  /** The cached result converted to the list's version; corrupt or missing gives undefined. */
  cachedResult(list: NetworkConfList, rt: RuntimeConf): JsonObject | undefined {
    const entry = readCacheEntry(this.opts.cacheDir, { network: list.name, containerId: rt.containerId, ifName: rt.ifName });
    if (!entry?.result) return undefined;
    try {
      return resultAsVersion(entry.result, list.cniVersion);
    } catch {
      // A result we cannot read is no better than none: DEL must still run.
      return undefined;
    }
  }

  cachedAttachment(list: NetworkConfList, rt: Pick<RuntimeConf, 'containerId' | 'ifName'>): CachedAttachment | undefined {
    return readCacheEntry(this.opts.cacheDir, { network: list.name, containerId: rt.containerId, ifName: rt.ifName });
  }

  /**
   * ADD every plugin in order, each with the previous result; caches the final
   * result. Beyond libcni: every plugin is looked up in CNI_PATH before the
   * first ADD, so a chain naming a missing plugin fails (code 7) before
   * anything is made, instead of after bridge made a pod that the DEL, which
   * needs the same missing plugin, cannot remove.
   */
  async add(list: NetworkConfList, rt: RuntimeConf): Promise<JsonObject> {
    validateRuntimeConf(list.name, rt);
    for (const plugin of list.plugins) {
      try {
        this.pluginExec.find(plugin.type, this.opts.cniPath);
      } catch (e) {
        throw this.wrap(e instanceof CniError ? new RuntimeError(e.code, e.message) : e, plugin, 'add');
      }
    }
    let result: JsonObject | undefined;
    for (const plugin of list.plugins) {
      try {
        const stdin = buildPluginConfig(list, plugin, result, rt.capabilityArgs);
        const stdout = await this.invoke('ADD', plugin, stdin, rt);
        const parsed = JSON.parse(stdout) as JsonObject;
        // libcni: a result without cniVersion is taken to be in the config's version.
        if (typeof parsed.cniVersion !== 'string' || parsed.cniVersion === '') parsed.cniVersion = list.cniVersion;
        result = parsed;
      } catch (e) {
        throw this.wrap(e, plugin, 'add');
      }
    }
    const final = result ?? { cniVersion: list.cniVersion };
    writeCacheEntry(this.opts.cacheDir, {
      network: list.name,
      containerId: rt.containerId,
      ifName: rt.ifName,
      config: list.bytes,
      netns: rt.netns,
      cniArgs: rt.args,
      capabilityArgs: rt.capabilityArgs,
      result: final,
    });
    return final;
  }

  async check(list: NetworkConfList, rt: RuntimeConf): Promise<void> {
    if (!versionAtLeast(list.cniVersion, '0.4.0')) {
      throw new RuntimeError(ErrorCode.IncompatibleCniVersion, `configuration version "${list.cniVersion}" does not support the CHECK command`);
    }
    if (list.disableCheck) return;
    const cached = this.cachedResult(list, rt);
    for (const plugin of list.plugins) {
      try {
        await this.invoke('CHECK', plugin, buildPluginConfig(list, plugin, cached, rt.capabilityArgs), rt);
      } catch (e) {
        throw this.wrap(e, plugin, 'check');
      }
    }
  }

  /**
   * DEL every plugin in reverse order with the cached result. Beyond libcni
   * (which stops at the first failure): a plugin that fails (or is missing)
   * does not keep the ones before it in the list from cleaning up; the first
   * failure is thrown after all ran, and the cache entry is kept for the retry.
   */
  async del(list: NetworkConfList, rt: RuntimeConf): Promise<void> {
    const key = { network: list.name, containerId: rt.containerId, ifName: rt.ifName };
    const cached = versionAtLeast(list.cniVersion || '0.1.0', '0.4.0') ? this.cachedResult(list, rt) : undefined;
    const failures: RuntimeError[] = [];
    for (const plugin of [...list.plugins].reverse()) {
      try {
        await this.invoke('DEL', plugin, buildPluginConfig(list, plugin, cached, rt.capabilityArgs), rt);
      } catch (e) {
        failures.push(this.wrap(e, plugin, 'delete'));
      }
    }
    const [first, ...more] = failures;
    if (first) throw more.length ? new RuntimeError(first.code, [first.msg, ...more.map((f) => f.msg)].join('; '), first.details) : first;
    deleteCacheEntry(this.opts.cacheDir, key);
  }

  /**
   * GC. `valid` undefined means what cnitool means: no list given, so every
   * cached attachment of this network is stale and plugins get no list.
   */
  async gc(list: NetworkConfList, valid: GcAttachment[] | undefined): Promise<void> {
    if (list.disableGC) return;
    const errors: string[] = [];
    const keep = new Set((valid ?? []).map((a) => `${a.containerID}\0${a.ifname}`));
    for (const cached of listCacheEntries(this.opts.cacheDir)) {
      if (cached.network !== list.name || keep.has(`${cached.containerId}\0${cached.ifName}`)) continue;
      const rt: RuntimeConf = {
        containerId: cached.containerId,
        netns: cached.netns ?? '',
        ifName: cached.ifName,
        args: cached.cniArgs ?? [],
        capabilityArgs: cached.capabilityArgs ?? {},
      };
      try {
        await this.del(list, rt);
      } catch (e) {
        errors.push(`failed to delete stale attachment ${rt.containerId} ${rt.ifName}: ${(e as Error).message}`);
      }
    }
    if (versionAtLeast(list.cniVersion || '0.1.0', '1.1.0')) {
      for (const plugin of list.plugins) {
        const conf: JsonObject = { ...plugin.raw, name: list.name, cniVersion: list.cniVersion };
        if (valid) {
          conf['cni.dev/valid-attachments'] = valid;
          conf['cni.dev/attachments'] = valid;
        }
        try {
          await this.invoke('GC', plugin, Buffer.from(JSON.stringify(conf)), undefined);
        } catch (e) {
          errors.push(`failed to GC plugin ${plugin.type}: ${(e as Error).message}`);
        }
      }
    }
    if (errors.length > 0) throw new RuntimeError(ErrorCode.Internal, errors.join('\n'));
  }

  async status(list: NetworkConfList): Promise<void> {
    if (!versionAtLeast(list.cniVersion || '0.1.0', '1.1.0')) return;
    for (const plugin of list.plugins) {
      const conf: JsonObject = { ...plugin.raw, name: list.name, cniVersion: list.cniVersion };
      try {
        await this.invoke('STATUS', plugin, Buffer.from(JSON.stringify(conf)), undefined);
      } catch (e) {
        throw this.wrap(e, plugin, 'status');
      }
    }
  }
}
