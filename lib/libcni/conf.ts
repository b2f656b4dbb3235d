/**
 * Network configuration lists, loaded the way libcni loads them:
 *
 *   NETCONFPATH/*.conflist   sorted by name; the first whose "name" matches wins
 *   NETCONFPATH/<net>/*.conf extra plugins appended (unless loadOnlyInlinedPlugins)
 *   NETCONFPATH/*.conf|json  single-plugin configs, upgraded to a one-plugin list
 *
 * The "cniVersion"/"cniVersions" pair picks the highest version we support.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { extname, join } from 'node:path';
import { compareVersions, LATEST_VERSION } from '../cni/version.ts';

export type JsonObject = Record<string, unknown>;

/** One plugin of a list: its decoded JSON (everything is passed through to the plugin). */
export interface PluginConf {
  type: string;
  name?: string;
  capabilities: Record<string, boolean>;
  raw: JsonObject;
}

export interface NetworkConfList {
  name: string;
  cniVersion: string;
  disableCheck: boolean;
  disableGC: boolean;
  loadOnlyInlinedPlugins: boolean;
  plugins: PluginConf[];
  /** The bytes the list was read from; the result cache keeps them. */
  bytes: Buffer;
}

export class ConfError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ConfError';
  }
}

function isObject(v: unknown): v is JsonObject {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function isVersion(v: string): boolean {
  return /^\d+\.\d+\.\d+$/.test(v);
}

export function parsePluginConf(raw: unknown, where: string): PluginConf {
  if (!isObject(raw)) throw new ConfError(`${where}: error parsing configuration: not a JSON object`);
  if (typeof raw.type !== 'string' || raw.type === '') throw new ConfError(`${where}: error parsing configuration: missing 'type'`);
  const capabilities: Record<string, boolean> = {};
  if (raw.capabilities !== undefined) {
    if (!isObject(raw.capabilities)) throw new ConfError(`${where}: "capabilities" must be an object of booleans`);
    for (const [k, v] of Object.entries(raw.capabilities)) capabilities[k] = v === true;
  }
  return { type: raw.type, name: typeof raw.name === 'string' ? raw.name : undefined, capabilities, raw };
}

function readBool(raw: JsonObject, key: string): boolean {
  const v = raw[key];
  if (v === undefined) return false;
  if (typeof v === 'boolean') return v;
  if (typeof v === 'string' && ['true', 'false'].includes(v.toLowerCase())) return v.toLowerCase() === 'true';
  throw new ConfError(`error parsing configuration list: invalid value ${JSON.stringify(v)} for ${key}`);
}

/** The version a list runs at: the highest of cniVersion and cniVersions[] that we support. */
export function selectVersion(cniVersion: string | undefined, cniVersions: readonly string[] | undefined): string {
  if (!cniVersions) return cniVersion ?? '';
  const candidates: string[] = [];
  for (const v of [...cniVersions, ...(cniVersion ? [cniVersion] : [])]) {
    if (!isVersion(v)) throw new ConfError(`error parsing configuration list: invalid cniVersions entry ${JSON.stringify(v)}`);
    if (compareVersions(v, LATEST_VERSION) <= 0) candidates.push(v);
  }
  candidates.sort(compareVersions);
  return candidates.at(-1) ?? cniVersion ?? '';
}

/** Parse a conflist document (no file-system lookups). */
export function confListFromBytes(bytes: Buffer): NetworkConfList {
  let raw: unknown;
  try {
    raw = JSON.parse(bytes.toString('utf8'));
  } catch (e) {
    throw new ConfError(`error parsing configuration list: ${(e as Error).message}`);
  }
  if (!isObject(raw)) throw new ConfError('error parsing configuration list: not a JSON object');
  if (raw.name === undefined) throw new ConfError('error parsing configuration list: no name');
  if (typeof raw.name !== 'string') throw new ConfError(`error parsing configuration list: invalid name type ${typeof raw.name}`);
  if (raw.cniVersion !== undefined && typeof raw.cniVersion !== 'string') {
    throw new ConfError(`error parsing configuration list: invalid cniVersion type ${typeof raw.cniVersion}`);
  }
  let versions: string[] | undefined;
  if (raw.cniVersions !== undefined) {
    if (!Array.isArray(raw.cniVersions) || raw.cniVersions.some((v) => typeof v !== 'string')) {
      throw new ConfError('error parsing configuration list: cniVersions must be an array of strings');
    }
    versions = raw.cniVersions as string[];
  }
  const list: NetworkConfList = {
    name: raw.name,
    cniVersion: selectVersion(raw.cniVersion as string | undefined, versions),
    disableCheck: readBool(raw, 'disableCheck'),
    disableGC: readBool(raw, 'disableGC'),
    loadOnlyInlinedPlugins: readBool(raw, 'loadOnlyInlinedPlugins'),
    plugins: [],
    bytes,
  };
  if (raw.plugins === undefined) {
    if (list.loadOnlyInlinedPlugins) throw new ConfError("error parsing configuration list: `loadOnlyInlinedPlugins` is true, and no 'plugins' key");
    return list;
  }
  if (!Array.isArray(raw.plugins)) throw new ConfError("error parsing configuration list: invalid 'plugins' type");
  if (raw.plugins.length === 0) throw new ConfError('error parsing configuration list: no plugins in list');
  list.plugins = raw.plugins.map((p, i) => parsePluginConf(p, `plugin config ${i}`));
  return list;
}

/** Files in `dir` with one of `extensions`, sorted; none when the directory is missing. */
export function confFiles(dir: string, extensions: readonly string[]): string[] {
  let entries;
  try {
    entries = readdirSync(dir, { withFileTypes: true });
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw e;
  }
  return entries
    .filter((e) => !e.isDirectory() && extensions.includes(extname(e.name)))
    .map((e) => join(dir, e.name))
    .sort();
}

function readFile(path: string): Buffer {
  try {
    return readFileSync(path);
  } catch (e) {
    throw new ConfError(`error reading ${path}: ${(e as Error).message}`);
  }
}

export function confListFromFile(path: string, dir: string): NetworkConfList {
  let list: NetworkConfList;
  try {
    list = confListFromBytes(readFile(path));
  } catch (e) {
    throw e instanceof ConfError ? new ConfError(`${path}: ${e.message}`) : e;
  }
  if (!list.loadOnlyInlinedPlugins) {
    // libcni: plugins may also live as <dir>/<network name>/*.conf files.
    for (const f of confFiles(join(dir, list.name), ['.conf'])) {
      let raw: unknown;
      try {
        raw = JSON.parse(readFile(f).toString('utf8'));
      } catch (e) {
        throw new ConfError(`${f}: error parsing configuration: ${(e as Error).message}`);
      }
      list.plugins.push(parsePluginConf(raw, f));
    }
  }
  if (list.plugins.length === 0) throw new ConfError(`${path}: no plugin configs found`);
  return list;
}

/** A single plugin config upgraded to a list, as libcni's ConfListFromConf does. */
export function confListFromConf(raw: JsonObject): NetworkConfList {
  const doc = { name: raw.name, cniVersion: raw.cniVersion, plugins: [raw] };
  return confListFromBytes(Buffer.from(JSON.stringify(doc)));
}

/**
 * Find network `name` in `dir`: conflists first, then single .conf/.json files.
 * Beyond libcni (which fails on the first file it cannot parse): a broken file
 * does not hide the networks of the others; when `name` is found nowhere, the
 * error names the broken files too (one of them may be the network asked for).
 */
export function loadNetworkConf(dir: string, name: string): NetworkConfList {
  const broken: string[] = [];
  const lists = confFiles(dir, ['.conflist']);
  for (const f of lists) {
    let list: NetworkConfList;
    try {
      list = confListFromFile(f, dir);
    } catch (e) {
      broken.push((e as Error).message);
      continue;
    }
    if (list.name === name) return list;
  }
  const singles = confFiles(dir, ['.conf', '.json']);
  if (lists.length === 0 && singles.length === 0) throw new ConfError(`no net configurations found in ${dir}`);
  for (const f of singles) {
    let conf: PluginConf;
    try {
      let raw: unknown;
      try {
        raw = JSON.parse(readFile(f).toString('utf8'));
      } catch (e) {
        throw new ConfError(`${f}: error parsing configuration: ${(e as Error).message}`);
      }
      conf = parsePluginConf(raw, f);
    } catch (e) {
      broken.push((e as Error).message);
      continue;
    }
    if (conf.raw.name === name) return confListFromConf(conf.raw);
  }
  const unreadable = broken.length ? `; files that could not be read: ${broken.join('; ')}` : '';
  throw new ConfError(`no net configuration with name "${name}" in ${dir}${unreadable}`);
}

/** Every network defined in `dir` (for listings); broken files are reported, not fatal. */
export function listNetworks(dir: string): { name: string; file: string; error?: string }[] {
  const out: { name: string; file: string; error?: string }[] = [];
  for (const f of confFiles(dir, ['.conflist', '.conf', '.json'])) {
    try {
      const raw = JSON.parse(readFileSync(f, 'utf8')) as JsonObject;
      out.push({ name: String(raw.name ?? ''), file: f });
    } catch (e) {
      out.push({ name: '', file: f, error: (e as Error).message });
    }
  }
  return out;
}
