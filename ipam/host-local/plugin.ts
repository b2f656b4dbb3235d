/**
 * host-local IPAM: hands out addresses from range sets and records them as
 * files under <dataDir>/<network>, compatible with the reference plugin.
 * ADD: parse -> (resolv.conf) -> lock -> allocate one IP per set -> result.
 */
import { readFileSync } from 'node:fs';
import { validAttachments } from '../../lib/cni/attachments.ts';
import { CniError, ErrorCode } from '../../lib/cni/errors.ts';
import type { CmdArgs, Plugin } from '../../lib/cni/skel.ts';
import type { Dns, Result } from '../../lib/cni/types.ts';
import { LATEST_VERSION } from '../../lib/cni/version.ts';
import { formatIp, ipEquals, parseIpOrCidrAddress } from '../../lib/ip/cidr.ts';
import { TSCNI_VERSION } from '../../lib/version-info.ts';
import { allocateAll, exhaustedSets } from './allocator.ts';
import { parseHostLocalConfig, rangeSetContains, rangeSetToString, type HostLocalConfig } from './config.ts';
import { DiskStore, RECLAIM_AGE_MS } from './disk-store.ts';
import { parseResolvConf } from './dns.ts';

function loadConfig(args: CmdArgs): HostLocalConfig {
  return parseHostLocalConfig(args.config, args.args);
}

function openStore(cfg: HostLocalConfig): DiskStore {
  return new DiskStore(cfg.dataDir, cfg.name, cfg.rangeSets.length);
}

function readDns(cfg: HostLocalConfig): Dns | undefined {
  if (!cfg.resolvConf) return undefined;
  let text: string;
  try {
    text = readFileSync(cfg.resolvConf, 'utf8');
  } catch (e) {
    throw new CniError(ErrorCode.InvalidNetworkConfig, `ipam.resolvConf: cannot read ${cfg.resolvConf}: ${(e as Error).message}`);
  }
  const dns = parseResolvConf(text);
  return Object.keys(dns).length ? dns : undefined;
}

/** When this boot started, in ms since the epoch (/proc/stat btime); 0 when unknown (nothing is older). */
function bootTimeMs(): number {
  try {
    const m = /^btime (\d+)$/m.exec(readFileSync('/proc/stat', 'utf8'));
    return m ? Number(m[1]) * 1000 : 0;
  } catch {
    return 0;
  }
}

/** Errors that other reservations cause: the range is full, or the requested address is taken. */
function isBlockedByReservations(e: CniError): boolean {
  return e.code === ErrorCode.NotAvailable || /is not available in range set/.test(e.msg);
}

async function add(args: CmdArgs): Promise<Result> {
  const cfg = loadConfig(args);
  const dns = readDns(cfg);
  const store = openStore(cfg);
  try {
    store.create();
  } catch (e) {
    throw new CniError(ErrorCode.IoFailure, `cannot create ${store.dir}: ${(e as Error).message}`);
  }
  const ips = store.withLock(() => {
    try {
      return allocateAll(store, cfg, args.containerId, args.ifName);
    } catch (e) {
      // A full range or a taken requested address may be held by pods of an earlier boot, which no DEL will ever free.
      if (!(e instanceof CniError) || !isBlockedByReservations(e)) throw e;
      const released = store.reclaimFromEarlierBoot(bootTimeMs() - 60_000); // a margin for clock steps after boot
      if (released.length === 0) throw e;
      process.stderr.write(`[tscni] warning: host-local: reclaimed ${released.length} reservation(s) made before the last reboot in ${store.dir}: ${released.join(', ')}\n`);
      return allocateAll(store, cfg, args.containerId, args.ifName);
    }
  });
  const result: Result = { cniVersion: LATEST_VERSION, ips };
  if (cfg.routes.length) result.routes = cfg.routes;
  if (dns) result.dns = dns;
  return result;
}

async function del(args: CmdArgs): Promise<void> {
  const cfg = loadConfig(args);
  const store = openStore(cfg);
  // Never created: nothing was ever reserved here, and DEL of the unknown succeeds.
  if (!store.exists()) return;
  store.withLock(() => store.releaseAttachment(args.containerId, args.ifName));
}

async function check(args: CmdArgs): Promise<void> {
  const cfg = loadConfig(args);
  const store = openStore(cfg);
  const held = store.exists() ? store.withLock(() => store.getByAttachment(args.containerId, args.ifName)) : [];
  if (held.length === 0) {
    throw new CniError(ErrorCode.Internal, `host-local: Failed to find address added by container ${args.containerId}`);
  }
  // Every address of prevResult that lies in our range sets must be reserved for this attachment.
  for (const ipc of args.config.prevResult?.ips ?? []) {
    const ip = parseIpOrCidrAddress(ipc.address);
    if (!ip || !cfg.rangeSets.some((s) => rangeSetContains(s, ip))) continue;
    if (!held.some((h) => ipEquals(h, ip))) {
      throw new CniError(ErrorCode.Internal, `host-local: address ${formatIp(ip)} of prevResult is not reserved for container ${args.containerId} interface ${args.ifName}`);
    }
  }
}

async function gc(args: CmdArgs): Promise<void> {
  const cfg = loadConfig(args);
  const valid = validAttachments(args.config);
  const store = openStore(cfg);
  if (!store.exists()) return;
  const { errors } = store.withLock(() => store.gc(valid));
  if (errors.length) {
    throw new CniError(ErrorCode.IoFailure, `host-local GC: failed to release ${errors.length} file(s)`, errors.join('; '));
  }
}

async function status(args: CmdArgs): Promise<void> {
  const cfg = loadConfig(args);
  const store = openStore(cfg);
  let exhausted = exhaustedSets(cfg, store.listReservedIps());
  if (exhausted.length) {
    // Full by file count: look closer, old empty/garbled files can still be reclaimed by ADD.
    const blocking = store.listReservations().filter((r) => r.owner.kind !== 'garbled' || r.ageMs < RECLAIM_AGE_MS);
    exhausted = exhaustedSets(cfg, blocking.map((r) => r.ip));
  }
  if (exhausted.length) {
    const sets = exhausted.map((i) => `${i} (${rangeSetToString(cfg.rangeSets[i] ?? [])})`).join(', ');
    throw new CniError(ErrorCode.NotAvailable, `no IP addresses available in range set ${sets}`);
  }
}

export const hostLocalPlugin: Plugin = {
  hostOnly: true,
  validate: (config, cniArgs) => {
    parseHostLocalConfig(config, cniArgs);
  },
  name: 'host-local',
  about: `tscni host-local plugin v${TSCNI_VERSION}`,
  add,
  del,
  check,
  gc,
  status,
};
