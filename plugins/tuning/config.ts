/**
 * tuning configuration: parse + validate, pure (reference:
 * plugins/meta/tuning/tuning.go TuningConf, parseConf, getSysctlFilename).
 * Precedence of the MAC, lowest first: the config's `mac`, CNI_ARGS `MAC=`,
 * `runtimeConfig.mac`, `args.cni.mac`; `args.cni.*` override the other keys.
 */
import { parseCniArgs } from '../../lib/cni/args.ts';
import { CniError, ErrorCode } from '../../lib/cni/errors.ts';
import type { NetConf, Result } from '../../lib/cni/types.ts';

export const DEFAULT_DATA_DIR = '/run/cni/tuning';

export interface TuningConfig {
  name: string;
  cniVersion: string;
  /** Sysctls as [key as written, path under /proc/sys with IFNAME substituted, value]. */
  sysctls: Array<{ key: string; path: string; value: string }>;
  mac?: string;
  /** Only `true` acts (as the reference: promisc false never turns it off). */
  promisc: boolean;
  mtu?: number;
  txQLen?: number;
  allmulti?: boolean;
  dataDir: string;
  prevResult: Result | undefined;
}

const bad = (msg: string, details = '') => new CniError(ErrorCode.InvalidNetworkConfig, msg, details);
const MAC_RE = /^[0-9a-fA-F]{2}(:[0-9a-fA-F]{2}){5}$/;

/**
 * The path under /proc/sys of a sysctl key ("net.ipv4.conf.IFNAME.arp_notify"
 * or "net/ipv4/conf/IFNAME/arp_notify"), with the segment IFNAME replaced by
 * the interface name (which may contain dots, hence per segment). Only keys
 * under net/ are allowed: anything else, or a "." / ".." / empty segment,
 * is rejected with code 7.
 */
export function sysctlKeyPath(key: string, ifName: string): string {
  const segs = (key.includes('/') ? key.replace(/^\/+/, '').split('/') : key.split('.')).map((s) => (s === 'IFNAME' ? ifName : s));
  if (segs[0] !== 'net' || segs.length < 2 || segs.some((s) => s === '' || s === '.' || s === '..' || s.includes('/'))) {
    throw bad(`invalid sysctl key ${JSON.stringify(key)}: only keys under net. (/proc/sys/net) are allowed`);
  }
  return segs.join('/');
}

function optBool(v: unknown, where: string): boolean | undefined {
  if (v === undefined || v === null) return undefined;
  if (typeof v !== 'boolean') throw bad(`invalid ${where}: must be a boolean`);
  return v;
}

function optInt(v: unknown, where: string, min: number, max: number): number | undefined {
  if (v === undefined || v === null) return undefined;
  if (typeof v !== 'number' || !Number.isInteger(v) || v < min || v > max) throw bad(`invalid ${where}: ${JSON.stringify(v)} (an integer ${min}-${max})`);
  return v;
}

function optMac(v: unknown, where: string): string | undefined {
  if (v === undefined || v === null || v === '') return undefined;
  if (typeof v !== 'string' || !MAC_RE.test(v)) throw bad(`invalid ${where}: ${JSON.stringify(v)} is not a MAC address`);
  return v.toLowerCase();
}

function sysctlMap(v: unknown, where: string): Record<string, string> {
  if (v === undefined || v === null) return {};
  if (typeof v !== 'object' || Array.isArray(v)) throw bad(`invalid ${where}: must be an object of strings`);
  for (const [k, x] of Object.entries(v)) if (typeof x !== 'string') throw bad(`invalid ${where}.${k}: must be a string`);
  return v as Record<string, string>;
}

/** Parse the keys, CNI_ARGS and args.cni; throws CniError 7 (4 for bad CNI_ARGS). */
export function parseTuningConfig(conf: NetConf, cniArgs: string, ifName: string): TuningConfig {
  const raw = conf as Record<string, unknown>;
  const a = ((conf.args as Record<string, unknown> | undefined)?.cni ?? {}) as Record<string, unknown>;
  if (typeof a !== 'object' || a === null) throw bad('invalid args.cni: must be an object');
  const sys = { ...sysctlMap(raw.sysctl, '"sysctl"'), ...sysctlMap(a.sysctl, 'args.cni.sysctl') };
  let mac = optMac(raw.mac, '"mac"');
  const envMac = parseCniArgs(cniArgs, ['MAC']).get('MAC');
  if (envMac) mac = optMac(envMac, 'CNI_ARGS MAC');
  const rtMac = optMac((conf.runtimeConfig as Record<string, unknown> | undefined)?.mac, 'runtimeConfig.mac');
  if (rtMac) mac = rtMac;
  const argMac = optMac(a.mac, 'args.cni.mac');
  if (argMac) mac = argMac;
  let dataDir = DEFAULT_DATA_DIR;
  if (raw.dataDir !== undefined && raw.dataDir !== '') {
    if (typeof raw.dataDir !== 'string' || !raw.dataDir.startsWith('/')) throw bad('invalid "dataDir": must be an absolute path');
    dataDir = raw.dataDir;
  }
  const mtu = optInt(a.mtu, 'args.cni.mtu', 0, 65535) ?? optInt(raw.mtu, '"mtu"', 0, 65535);
  const out: TuningConfig = {
    name: conf.name,
    cniVersion: conf.cniVersion,
    sysctls: Object.entries(sys).map(([key, value]) => ({ key, path: sysctlKeyPath(key, ifName), value })),
    promisc: optBool(a.promisc, 'args.cni.promisc') ?? optBool(raw.promisc, '"promisc"') ?? false,
    dataDir,
    prevResult: conf.prevResult,
  };
  if (mac) out.mac = mac;
  if (mtu) out.mtu = mtu;
  const txQLen = optInt(a.txQLen, 'args.cni.txQLen', 0, 0x7fffffff) ?? optInt(raw.txQLen, '"txQLen"', 0, 0x7fffffff);
  if (txQLen !== undefined) out.txQLen = txQLen;
  const allmulti = optBool(a.allmulti, 'args.cni.allmulti') ?? optBool(raw.allmulti, '"allmulti"');
  if (allmulti !== undefined) out.allmulti = allmulti;
  return out;
}

/** Link changes the config asks for (besides sysctls). */
export const changesLink = (c: TuningConfig) => c.mac !== undefined || c.mtu !== undefined || c.promisc || c.allmulti !== undefined || c.txQLen !== undefined;
