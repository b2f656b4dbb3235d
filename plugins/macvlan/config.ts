/**
 * macvlan configuration: parse + validate, pure. Keys as the reference
 * (plugins/main/macvlan/macvlan.go): master, mode, mtu, mac, bcqueuelen,
 * linkInContainer, ipam, dns; the MAC may also come from CNI_ARGS MAC= and
 * runtimeConfig.mac (later wins: mac < CNI_ARGS < runtimeConfig).
 * The master's existence and MTU bound are checked by the plugin, before
 * anything changes.
 */
import { parseCniArgs } from '../../lib/cni/args.ts';
import type { CmdArgs } from '../../lib/cni/skel.ts';
import { MACVLAN_MODE_BRIDGE, MACVLAN_MODE_PASSTHRU, MACVLAN_MODE_PRIVATE, MACVLAN_MODE_VEPA } from '../../lib/netlink/codec.ts';
import { badConfig, dnsOf, ipamTypeOf, isIfName, readBool, readInt, readMac, readString } from '../../lib/cni/config-read.ts';
import type { StackedConfig } from './stacked.ts';

export const MACVLAN_MODES: Readonly<Record<string, number>> = {
  bridge: MACVLAN_MODE_BRIDGE,
  private: MACVLAN_MODE_PRIVATE,
  vepa: MACVLAN_MODE_VEPA,
  passthru: MACVLAN_MODE_PASSTHRU,
};

/** The mode's name for a kernel MACVLAN_MODE_* value ("unknown(N)" otherwise). */
export function macvlanModeName(mode: number | undefined): string {
  return Object.entries(MACVLAN_MODES).find(([, v]) => v === mode)?.[0] ?? `unknown(${String(mode)})`;
}

export interface MacvlanConfig extends StackedConfig {
  /** The mode's name ("bridge" when unset) and its kernel value. */
  modeName: string;
  mode: number;
  mac: string | undefined;
  bcQueueLen: number;
}

/** A "master" key: empty, or an interface name. */
export function readMaster(raw: Record<string, unknown>): string {
  const master = readString(raw, 'master');
  if (master && !isIfName(master)) throw badConfig('invalid "master": must be an interface name of 1-15 characters without "/", ":" or spaces', JSON.stringify(master));
  return master;
}

export function parseMacvlanConfig(args: Pick<CmdArgs, 'config' | 'args'>): MacvlanConfig {
  const conf = args.config;
  const raw = conf as Record<string, unknown>;
  const modeName = readString(raw, 'mode') || 'bridge';
  const mode = MACVLAN_MODES[modeName];
  if (mode === undefined) throw badConfig(`unknown macvlan mode: "${modeName}"`, 'mode must be one of bridge, private, vepa, passthru');
  const mtu = readInt(raw, 'mtu');
  if (mtu < 0) throw badConfig(`invalid MTU ${mtu}, must be [0, master MTU]`);
  const bcQueueLen = readInt(raw, 'bcqueuelen');
  if (bcQueueLen < 0 || bcQueueLen > 0xffffffff) throw badConfig(`invalid "bcqueuelen" ${bcQueueLen}`);
  let mac = readMac('mac', raw.mac);
  mac = readMac('CNI_ARGS MAC', parseCniArgs(args.args, ['MAC']).get('MAC')) ?? mac;
  mac = readMac('runtimeConfig.mac', (conf.runtimeConfig as { mac?: unknown } | undefined)?.mac) ?? mac;
  return {
    name: conf.name,
    cniVersion: conf.cniVersion,
    master: readMaster(raw),
    mtu,
    linkInContainer: readBool(raw, 'linkInContainer'),
    ipamType: ipamTypeOf(conf),
    dns: dnsOf(conf),
    modeName,
    mode,
    mac,
    bcQueueLen,
  };
}
