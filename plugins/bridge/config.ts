/**
 * bridge configuration: parse + validate, pure. Every problem is reported
 * before anything touches the kernel (code 7 naming the field, code 2 for a
 * value this implementation does not support).
 */
import { parseCniArgs } from '../../lib/cni/args.ts';
import { CniError, ErrorCode } from '../../lib/cni/errors.ts';
import type { Dns, NetConf } from '../../lib/cni/types.ts';
import type { MasqBackend } from '../../lib/firewall/masquerade.ts';

export const DEFAULT_BRIDGE = 'cni0';

export interface BridgeConfig {
  name: string;
  cniVersion: string;
  bridge: string;
  isGateway: boolean;
  isDefaultGateway: boolean;
  forceAddress: boolean;
  ipMasq: boolean;
  /** undefined = auto-detect as the reference does. */
  ipMasqBackend: MasqBackend | undefined;
  mtu: number;
  hairpinMode: boolean;
  promiscMode: boolean;
  vlan: number;
  /** Sorted, unique trunk VLAN ids; undefined when vlanTrunk is absent. */
  vlanTrunk: number[] | undefined;
  preserveDefaultVlan: boolean;
  macspoofchk: boolean;
  enabledad: boolean;
  disableContainerInterface: boolean;
  portIsolation: boolean;
  /** Container MAC from CNI_ARGS MAC, args.cni.mac or runtimeConfig.mac (last wins). */
  mac: string | undefined;
  ipamType: string | undefined;
  dns: Dns | undefined;
}

const bad = (msg: string, details = '') => new CniError(ErrorCode.InvalidNetworkConfig, msg, details);

function bool(raw: Record<string, unknown>, key: string): boolean {
  const v = raw[key];
  if (v === undefined || v === null) return false;
  if (typeof v !== 'boolean') throw bad(`invalid "${key}": must be a boolean`, `got ${JSON.stringify(v)}`);
  return v;
}

function int(raw: Record<string, unknown>, key: string): number {
  const v = raw[key];
  if (v === undefined || v === null) return 0;
  if (typeof v !== 'number' || !Number.isInteger(v)) throw bad(`invalid "${key}": must be an integer`, `got ${JSON.stringify(v)}`);
  return v;
}

const IFNAME_RE = /^[^/:\s]{1,15}$/u;
const MAC_RE = /^[0-9a-fA-F]{2}(:[0-9a-fA-F]{2}){5}$/;

function parseMac(where: string, v: unknown): string | undefined {
  if (v === undefined || v === null || v === '') return undefined;
  if (typeof v !== 'string' || !MAC_RE.test(v)) throw bad(`invalid MAC address in ${where}`, JSON.stringify(v));
  return v.toLowerCase();
}

/** vlanTrunk entries: {id} and/or {minID, maxID}, each in 1..4094. */
export function collectVlanTrunk(v: unknown): number[] | undefined {
  if (v === undefined || v === null) return undefined;
  if (!Array.isArray(v)) throw bad('invalid "vlanTrunk": must be a list of {id} or {minID, maxID}');
  const ids = new Set<number>();
  const num = (x: unknown, what: string) => {
    if (typeof x !== 'number' || !Number.isInteger(x)) throw bad(`incorrect trunk ${what} parameter`, JSON.stringify(x));
    return x;
  };
  for (const item of v) {
    if (typeof item !== 'object' || item === null || Array.isArray(item)) throw bad('invalid "vlanTrunk" entry: must be an object', JSON.stringify(item));
    const { minID, maxID, id } = item as Record<string, unknown>;
    const hasMin = minID !== undefined && minID !== null;
    const hasMax = maxID !== undefined && maxID !== null;
    if (hasMin && hasMax) {
      const lo = num(minID, 'minID');
      if (lo <= 0 || lo > 4094) throw bad('incorrect trunk minID parameter');
      const hi = num(maxID, 'maxID');
      if (hi <= 0 || hi > 4094) throw bad('incorrect trunk maxID parameter');
      if (hi < lo) throw bad('minID is greater than maxID in trunk parameter');
      for (let i = lo; i <= hi; i++) ids.add(i);
    } else if (hasMax) {
      throw bad('minID and maxID should be configured simultaneously, minID is missing');
    } else if (hasMin) {
      throw bad('minID and maxID should be configured simultaneously, maxID is missing');
    }
    if (id !== undefined && id !== null) {
      const one = num(id, 'id');
      if (one <= 0 || one > 4094) throw bad('incorrect trunk id parameter');
      ids.add(one);
    }
  }
  if (ids.size === 0) return undefined;
  return [...ids].sort((a, b) => a - b);
}

function dnsSet(d: Dns | undefined): boolean {
  return !!d && (d.nameservers !== undefined || d.search !== undefined || d.options !== undefined || !!d.domain);
}

export function parseBridgeConfig(conf: NetConf, cniArgs: string): BridgeConfig {
  const raw = conf as Record<string, unknown>;
  const bridge = raw.bridge === undefined || raw.bridge === null || raw.bridge === '' ? DEFAULT_BRIDGE : raw.bridge;
  if (typeof bridge !== 'string' || !IFNAME_RE.test(bridge) || bridge === '.' || bridge === '..') {
    throw bad('invalid "bridge": must be an interface name of 1-15 characters without "/", ":" or spaces', JSON.stringify(raw.bridge));
  }
  let ipMasqBackend: MasqBackend | undefined;
  if (raw.ipMasqBackend !== undefined && raw.ipMasqBackend !== null) {
    if (raw.ipMasqBackend !== 'iptables' && raw.ipMasqBackend !== 'nftables') {
      throw new CniError(ErrorCode.UnsupportedField, `unknown ipmasq backend "${String(raw.ipMasqBackend)}"`, 'ipMasqBackend must be "iptables" or "nftables"');
    }
    ipMasqBackend = raw.ipMasqBackend;
  }
  const mtu = int(raw, 'mtu');
  if (mtu < 0 || mtu > 65535) throw bad(`invalid "mtu" ${mtu}`, 'must be between 0 and 65535');
  const vlan = int(raw, 'vlan');
  if (vlan < 0 || vlan > 4094) throw bad(`invalid VLAN ID ${vlan} (must be between 0 and 4094)`);
  const vlanTrunk = collectVlanTrunk(raw.vlanTrunk);

  const hairpinMode = bool(raw, 'hairpinMode');
  const promiscMode = bool(raw, 'promiscMode');
  if (hairpinMode && promiscMode) throw bad('cannot set hairpin mode and promiscuous mode at the same time');

  const ipam = conf.ipam;
  if (ipam !== undefined && ipam !== null && (typeof ipam !== 'object' || Array.isArray(ipam))) throw bad('invalid "ipam": must be an object');
  const ipamType = ipam && typeof ipam.type === 'string' && ipam.type !== '' ? ipam.type : undefined;
  if (ipam && ipam.type !== undefined && typeof ipam.type !== 'string') throw bad('invalid "ipam.type": must be a string');
  const disableContainerInterface = bool(raw, 'disableContainerInterface');
  if (ipamType && disableContainerInterface) throw bad('cannot use IPAM when DisableContainerInterface flag is set');

  // MAC: CNI_ARGS, then args.cni.mac, then runtimeConfig.mac; the last one set wins (as the reference).
  const envArgs = parseCniArgs(cniArgs, ['MAC']);
  let mac = parseMac('CNI_ARGS MAC', envArgs.get('MAC'));
  const argsCni = (conf.args as { cni?: { mac?: unknown } } | undefined)?.cni;
  mac = parseMac('args.cni.mac', argsCni?.mac) ?? mac;
  mac = parseMac('runtimeConfig.mac', (conf.runtimeConfig as { mac?: unknown } | undefined)?.mac) ?? mac;

  const isDefaultGateway = bool(raw, 'isDefaultGateway');
  return {
    name: conf.name,
    cniVersion: conf.cniVersion,
    bridge,
    isGateway: bool(raw, 'isGateway') || isDefaultGateway,
    isDefaultGateway,
    forceAddress: bool(raw, 'forceAddress'),
    ipMasq: bool(raw, 'ipMasq'),
    ipMasqBackend,
    mtu,
    hairpinMode,
    promiscMode,
    vlan,
    vlanTrunk,
    preserveDefaultVlan: bool(raw, 'preserveDefaultVlan'),
    macspoofchk: bool(raw, 'macspoofchk'),
    enabledad: bool(raw, 'enabledad'),
    disableContainerInterface,
    portIsolation: bool(raw, 'portIsolation'),
    mac,
    ipamType,
    dns: dnsSet(conf.dns) ? conf.dns : undefined,
  };
}
