/**
 * What every runner command reads from the environment, the way cnitool reads
 * it: NETCONFPATH, CNI_PATH, CNI_ARGS, CAP_ARGS, CNI_IFNAME. Parsed once into
 * a plain object; the commands never read process.env themselves.
 */
import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { DEFAULT_CACHE_DIR } from '../lib/libcni/cache.ts';

export const DEFAULT_NET_DIR = '/etc/cni/net.d';
export const DEFAULT_STATE_DIR = '/run/tscni';

export class UsageError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'UsageError';
  }
}

export interface CliContext {
  netDir: string;
  cniPath: string;
  cacheDir: string;
  stateDir: string;
  cniArgs: [string, string][];
  capabilityArgs: Record<string, unknown>;
  ifName: string | undefined;
  env: Record<string, string | undefined>;
}

/** cnitool's CNI_ARGS parser: "K=V;K=V", every pair needs both sides. */
export function parseCniArgsPairs(raw: string): [string, string][] {
  return raw.split(';').map((pair) => {
    const kv = pair.split('=');
    if (kv.length !== 2 || !kv[0] || !kv[1]) throw new UsageError(`invalid CNI_ARGS pair ${JSON.stringify(pair)}`);
    return [kv[0], kv[1]];
  });
}

export function parseCapArgs(raw: string): Record<string, unknown> {
  let v: unknown;
  try {
    v = JSON.parse(raw);
  } catch (e) {
    throw new UsageError(`CAP_ARGS is not valid JSON: ${(e as Error).message}`);
  }
  if (typeof v !== 'object' || v === null || Array.isArray(v)) throw new UsageError('CAP_ARGS must be a JSON object');
  return v as Record<string, unknown>;
}

/** cnitool's container ID: "cnitool-" + the first 20 hex characters of sha512(absolute netns path). */
export function containerIdForNetns(netnsPath: string): string {
  return `cnitool-${createHash('sha512').update(resolve(netnsPath)).digest('hex').slice(0, 20)}`;
}

/**
 * CNI_PATH, or when unset the directory of this executable (where our plugins
 * are) followed by /opt/cni/bin, so `dist/bin/tscni up ...` works as is.
 */
export function defaultCniPath(execPath: string): string {
  const dirs = [dirname(execPath), '/opt/cni/bin'].filter((d, i, a) => a.indexOf(d) === i && existsSync(d));
  return dirs.join(':');
}

export function contextFromEnv(env: Record<string, string | undefined>, execPath: string): CliContext {
  return {
    netDir: env.NETCONFPATH || DEFAULT_NET_DIR,
    cniPath: env.CNI_PATH || defaultCniPath(execPath),
    cacheDir: env.CNI_CACHE_DIR || DEFAULT_CACHE_DIR,
    stateDir: env.TSCNI_STATE_DIR || DEFAULT_STATE_DIR,
    cniArgs: env.CNI_ARGS ? parseCniArgsPairs(env.CNI_ARGS) : [],
    capabilityArgs: env.CAP_ARGS ? parseCapArgs(env.CAP_ARGS) : {},
    ifName: env.CNI_IFNAME || undefined,
    env,
  };
}
