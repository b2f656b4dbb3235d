/**
 * The result cache, in libcni's cniCacheV1 format, so cnitool, containerd and
 * CRI-O can read what we write and the other way round:
 *
 *   <cacheDir>/results/<network>-<containerId>-<ifname>
 *   {"kind":"cniCacheV1","containerId":..,"config":"<base64 conflist bytes>",
 *    "ifName":..,"networkName":..,"netns":..,"cniArgs":[[k,v]],
 *    "capabilityArgs":{..},"result":{..}}
 *
 * Where we differ on purpose: the file is written atomically (temp file,
 * fsync, rename), and an empty or corrupt file reads as "nothing cached"
 * instead of failing the DEL that needs it.
 */
import { mkdirSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { writeFileAtomic } from '../fs.ts';
import { join } from 'node:path';

export const DEFAULT_CACHE_DIR = '/var/lib/cni';
export const CACHE_KIND = 'cniCacheV1';

export interface CacheKey {
  network: string;
  containerId: string;
  ifName: string;
}

export interface CachedAttachment extends CacheKey {
  config: Buffer;
  netns?: string;
  cniArgs?: [string, string][];
  capabilityArgs?: Record<string, unknown>;
  result?: Record<string, unknown>;
}

export function cacheFilePath(cacheDir: string, key: CacheKey): string {
  if (!key.network || !key.containerId || !key.ifName) {
    throw new Error(
      `cache file path requires network name (${JSON.stringify(key.network)}), container ID (${JSON.stringify(key.containerId)}), and interface name (${JSON.stringify(key.ifName)})`,
    );
  }
  return join(cacheDir, 'results', `${key.network}-${key.containerId}-${key.ifName}`);
}

/** The JSON document libcni writes (field order as Go marshals the struct). */
/**
 * A JSON value with every object's keys sorted, recursively: what Go's
 * encoding/json writes for a map[string]interface{} (libcni's cachedInfo
 * holds capabilityArgs and result as such maps).
 */
export function sortedKeys(v: unknown): unknown {
  if (Array.isArray(v)) return v.map(sortedKeys);
  if (v && typeof v === 'object') {
    const o = v as Record<string, unknown>;
    return Object.fromEntries(Object.keys(o).sort().map((k) => [k, sortedKeys(o[k])]));
  }
  return v;
}

export function renderCacheEntry(a: CachedAttachment): string {
  const doc: Record<string, unknown> = {
    kind: CACHE_KIND,
    containerId: a.containerId,
    config: a.config.toString('base64'),
    ifName: a.ifName,
    networkName: a.network,
  };
  if (a.netns) doc.netns = a.netns;
  if (a.cniArgs && a.cniArgs.length > 0) doc.cniArgs = a.cniArgs;
  if (a.capabilityArgs && Object.keys(a.capabilityArgs).length > 0) doc.capabilityArgs = sortedKeys(a.capabilityArgs);
  if (a.result) doc.result = sortedKeys(a.result);
  return JSON.stringify(doc);
}

function isStringPair(v: unknown): v is [string, string] {
  return Array.isArray(v) && v.length === 2 && typeof v[0] === 'string' && typeof v[1] === 'string';
}

/**
 * Decode one cache file. Returns undefined for anything that is not a usable
 * cniCacheV1 entry (empty, truncated, another kind).
 */
export function parseCacheEntry(text: string): CachedAttachment | undefined {
  let doc: unknown;
  try {
    doc = JSON.parse(text);
  } catch {
    return undefined;
  }
  if (typeof doc !== 'object' || doc === null) return undefined;
  const d = doc as Record<string, unknown>;
  if (d.kind !== CACHE_KIND) return undefined;
  if (typeof d.containerId !== 'string' || typeof d.ifName !== 'string' || typeof d.networkName !== 'string') return undefined;
  return {
    network: d.networkName,
    containerId: d.containerId,
    ifName: d.ifName,
    config: typeof d.config === 'string' ? Buffer.from(d.config, 'base64') : Buffer.alloc(0),
    netns: typeof d.netns === 'string' ? d.netns : undefined,
    cniArgs: Array.isArray(d.cniArgs) ? d.cniArgs.filter(isStringPair) : undefined,
    capabilityArgs: typeof d.capabilityArgs === 'object' && d.capabilityArgs !== null ? (d.capabilityArgs as Record<string, unknown>) : undefined,
    result: typeof d.result === 'object' && d.result !== null ? (d.result as Record<string, unknown>) : undefined,
  };
}

/** Write the entry atomically: a reader sees the old file or the new one, never a partial one. */
export function writeCacheEntry(cacheDir: string, a: CachedAttachment): string {
  const path = cacheFilePath(cacheDir, a);
  mkdirSync(join(cacheDir, 'results'), { recursive: true, mode: 0o700 });
  // Durable: the cache is what lets a runtime DEL after its own restart.
  writeFileAtomic(path, renderCacheEntry(a), { durable: true });
  return path;
}

/**
 * The cached attachment for `key`. Missing, empty and corrupt files all give
 * undefined. A result-only file from libcni's pre-cniCacheV1 days is returned
 * with its result and no config.
 */
export function readCacheEntry(cacheDir: string, key: CacheKey): CachedAttachment | undefined {
  let text: string;
  try {
    text = readFileSync(cacheFilePath(cacheDir, key), 'utf8');
  } catch {
    return undefined;
  }
  const entry = parseCacheEntry(text);
  if (entry) return entry;
  try {
    const legacy = JSON.parse(text) as unknown;
    if (typeof legacy === 'object' && legacy !== null && 'cniVersion' in legacy) {
      return { ...key, config: Buffer.alloc(0), result: legacy as Record<string, unknown> };
    }
  } catch {
    // Empty or garbled: treated as nothing cached.
  }
  return undefined;
}

export function deleteCacheEntry(cacheDir: string, key: CacheKey): void {
  rmSync(cacheFilePath(cacheDir, key), { force: true });
}

/** Every valid cached attachment (optionally of one container), sorted by file name. */
export function listCacheEntries(cacheDir: string, containerId?: string): CachedAttachment[] {
  let names: string[];
  try {
    names = readdirSync(join(cacheDir, 'results')).sort();
  } catch {
    return [];
  }
  const out: CachedAttachment[] = [];
  for (const name of names) {
    if (name.includes('.tmp-')) continue;
    if (containerId && !name.includes(`-${containerId}-`)) continue;
    let text: string;
    try {
      text = readFileSync(join(cacheDir, 'results', name), 'utf8');
    } catch {
      continue;
    }
    const entry = parseCacheEntry(text);
    if (!entry || !entry.ifName || !entry.network) continue;
    if (containerId && entry.containerId !== containerId) continue;
    out.push(entry);
  }
  return out;
}
