/**
 * portmap: Docker's `-p hostPort:containerPort` for CNI, chained after a
 * plugin that gave the pod an address (bridge, ptp ...).
 *
 *   ADD    parse -> conflicts + claim (locked, on disk) -> program one batch
 *          per family (iptables) or one transaction (nftables) -> flush UDP
 *          conntrack, route_localnet -> pass prevResult through
 *   DEL    from the record ADD wrote, else the request's mappings, else by
 *          chain name / element tag: never leaks when portMappings are absent
 *   CHECK  every rule or element is there
 *   GC     attachments not in cni.dev/valid-attachments lose their mappings
 */
import type { CmdArgs, Plugin } from '../../lib/cni/skel.ts';
import { validAttachments } from '../../lib/cni/attachments.ts';
import { CniError, ErrorCode } from '../../lib/cni/errors.ts';
import type { Result } from '../../lib/cni/types.ts';
import { detectMasqBackend, hasCommand } from '../../lib/firewall/masquerade.ts';
import type { Family } from '../../lib/ip/prefix.ts';
import { logDebug } from '../../lib/log.ts';
import { flushUdpByDstPort } from '../../lib/netlink/conntrack-flush.ts';
import { NETLINK_NETFILTER, closeFd, openNetlinkSocket } from '../../lib/netlink/ffi.ts';
import { withRtnl } from '../../lib/netlink/rtnl.ts';
import { writeSysctl } from '../../lib/sysctl.ts';
import { listTopDnat, teardownChainIptables } from './apply-iptables.ts';
import { driverAvailable, portmapDriver } from './backend.ts';
import { appliesTo, parsePortmapConfig, type PortmapBackend, type PortmapConfig, type PortMapping } from './config.ts';
import { taggedJumps } from './iptables.ts';
import { currentBootId, forgetAttachment, podFamilies, portKey, PortmapState, type AttachmentRecord, type PortHolder } from './state.ts';

function backendOf(cfg: PortmapConfig): PortmapBackend {
  return cfg.backend ?? detectMasqBackend();
}

function recordFrom(cfg: PortmapConfig, holder: PortHolder): AttachmentRecord {
  const rec: AttachmentRecord = {
    ...holder,
    backend: backendOf(cfg),
    snat: cfg.snat,
    masqAll: cfg.masqAll,
    markMasqBit: cfg.markMasqBit,
    mappings: cfg.mappings,
    container: cfg.container,
  };
  if (cfg.externalSetMarkChain) rec.externalSetMarkChain = cfg.externalSetMarkChain;
  if (cfg.conditionsV4) rec.conditionsV4 = cfg.conditionsV4;
  if (cfg.conditionsV6) rec.conditionsV6 = cfg.conditionsV6;
  return rec;
}

/** Host ports this attachment holds: each effective mapping with the key of the families it reaches. */
function wantedPorts(rec: AttachmentRecord): { m: PortMapping; key: string }[] {
  const fams = podFamilies(rec);
  return rec.mappings.flatMap((m) => {
    const reach = fams.filter((f) => appliesTo(m, f));
    return reach.length ? [{ m, key: portKey(m, reach) }] : [];
  });
}

/** Warnings go to stderr: the runtime logs them; stdout stays the protocol's. */
const warn = (msg: string) => process.stderr.write(`[tscni] warning: ${msg}\n`);

/**
 * Old UDP flows to a host port would keep going to the previous target:
 * drop them, in-process over ctnetlink (one dump per family, as the
 * reference's netlink ConntrackDeleteFilters). Best effort, never silent:
 * a failure is a warning on stderr naming the ports, and the ADD or DEL
 * still succeeds (the rules are right; only old flows may linger).
 */
function flushUdpConntrack(rec: AttachmentRecord, warn: (msg: string) => void): void {
  const udp = rec.mappings.filter((m) => m.protocol === 'udp');
  if (udp.length === 0) return;
  for (const f of podFamilies(rec)) {
    const ports = [...new Set(udp.filter((m) => appliesTo(m, f)).map((m) => m.hostPort))];
    try {
      const n = flushUdpByDstPort(f, ports);
      logDebug(`portmap: flushed ${n} IPv${f} UDP conntrack entries for ports ${ports.join(',')}`);
    } catch (e) {
      warn(`portmap: could not flush IPv${f} UDP conntrack entries for ports ${ports.join(',')}: ${(e as Error).message}; old flows to these ports may reach the previous pod until they expire`);
    }
  }
}

/**
 * localhost -> pod needs route_localnet on the interface that routes to the
 * pod (IPv4 only). Only a directly connected pod link qualifies: when the pod
 * is reached through a gateway (say the default route on the uplink), we do
 * not open the host's uplink to 127.0.0.0/8 traffic as the reference would.
 * The route is looked up in-process (RTM_GETROUTE, as the reference's RouteGet).
 */
function enableRouteLocalnet(podIp: string): void {
  const dev = withRtnl(undefined, (host) => {
    const route = host.routeGet(podIp);
    if (!route || route.gateway || route.oif === undefined) return undefined;
    return host.getLink(route.oif)?.name;
  });
  if (dev && !writeSysctl(`net/ipv4/conf/${dev}/route_localnet`, '1', { ifChanged: true })) {
    throw new CniError(ErrorCode.Internal, `unable to enable route_localnet on ${dev}`);
  }
}

async function add(args: CmdArgs): Promise<Result> {
  const cfg = parsePortmapConfig(args.config, args.ifName);
  if (!cfg.prevResult) throw new CniError(ErrorCode.InvalidNetworkConfig, 'must be called as chained plugin', 'portmap needs a prevResult with the pod addresses');
  if (cfg.mappings.length === 0) return cfg.prevResult;
  const holder: PortHolder = { network: cfg.name, containerId: args.containerId, ifName: args.ifName };
  const rec = recordFrom(cfg, holder);
  if (podFamilies(rec).length === 0) return cfg.prevResult;
  const state = new PortmapState(cfg.stateDir);
  const wanted = wantedPorts(rec);

  const bootId = currentBootId();
  if (args.netns.startsWith('/')) rec.netns = args.netns;
  if (bootId) rec.bootId = bootId;

  // Claims of pods that died without a DEL (a reboot, a crashed runtime) do not block: reclaim them first.
  const stale = state.locked(() => state.conflicts(holder, wanted, bootId).stale);
  for (const s of stale) {
    warn(`portmap: reclaiming the host ports of container ${s.rec.containerId} (network ${s.rec.network}, interface ${s.rec.ifName}): ${s.why}`);
    await portmapDriver(s.rec.backend).teardown(state, s.rec, s.rec, true);
  }

  // Claim the ports, or say who holds them; a re-ADD of the same pod replaces its old mappings.
  const previous = state.locked(() => {
    const { conflicts } = state.conflicts(holder, wanted, bootId);
    if (conflicts.length) throw new CniError(ErrorCode.InvalidNetworkConfig, 'host port conflict', conflicts.join('; '));
    const prev = state.readRecord(holder);
    if (prev) state.releasePorts(holder, prev.mappings);
    state.claimPorts(holder, wanted);
    // The record makes the claim live for the next ADD's conflict check: write it in the same locked step.
    state.writeRecord(rec);
    return prev;
  });

  const driver = portmapDriver(rec.backend);
  try {
    // A re-ADD replaces the old mappings; the new claims and record are already in place.
    if (previous) await portmapDriver(previous.backend).replace(state, previous, rec);
    // route_localnet does not depend on the rules: do it meanwhile.
    await Promise.all([driver.setup(state, rec, wanted), rec.snat && rec.container[4] ? enableRouteLocalnet(rec.container[4].ip) : undefined]);
  } catch (e) {
    // Leave nothing behind: rules, claims, record.
    await driver.teardown(state, holder, rec, true).catch((err: unknown) => logDebug(`portmap: rollback: ${(err as Error).message}`));
    state.locked(() => forgetAttachment(state, rec));
    throw e;
  }
  flushUdpConntrack(rec, warn);
  return cfg.prevResult;
}

async function del(args: CmdArgs): Promise<void> {
  const cfg = parsePortmapConfig(args.config, args.ifName, { forDel: true, onIgnored: (why) => warn(`portmap DEL: ${why}`) });
  const holder: PortHolder = { network: cfg.name, containerId: args.containerId, ifName: args.ifName };
  const state = new PortmapState(cfg.stateDir);
  const stored = state.readRecord(holder);
  // No record (an older or the reference plugin added the pod): the request's own mappings, if any.
  const rec = stored ?? (cfg.mappings.length && Object.keys(cfg.container).length ? recordFrom(cfg, holder) : undefined);
  await portmapDriver(rec?.backend ?? backendOf(cfg)).teardown(state, holder, rec, true);
  if (!stored && rec) state.locked(() => forgetAttachment(state, rec));
  if (rec) flushUdpConntrack(rec, warn);
}

async function check(args: CmdArgs): Promise<void> {
  const cfg = parsePortmapConfig(args.config, args.ifName);
  if (!cfg.prevResult) throw new CniError(ErrorCode.InvalidNetworkConfig, 'Required prevResult missing');
  if (cfg.mappings.length === 0) return;
  const holder: PortHolder = { network: cfg.name, containerId: args.containerId, ifName: args.ifName };
  const rec = recordFrom(cfg, holder);
  if (podFamilies(rec).length === 0) return;
  await portmapDriver(rec.backend).check(new PortmapState(cfg.stateDir), rec);
}

async function gc(args: CmdArgs): Promise<void> {
  const cfg = parsePortmapConfig(args.config, args.ifName);
  const valid = validAttachments(args.config);
  const isValid = (cid: string, ifName?: string) => valid.some((a) => a.containerID === cid && (ifName === undefined || a.ifname === ifName));
  const state = new PortmapState(cfg.stateDir);
  const errors: string[] = [];
  const records = state.recordsOf(cfg.name);
  for (const rec of records) {
    if (isValid(rec.containerId, rec.ifName)) continue;
    try {
      await portmapDriver(rec.backend).teardown(state, rec, rec, true);
    } catch (e) {
      errors.push(`${rec.containerId}/${rec.ifName}: ${(e as Error).message}`);
    }
  }
  // Pods the reference plugin mapped have no record; their jumps carry the network and container ID.
  if (hasCommand('iptables')) {
    const known = new Set(records.map((r) => r.containerId));
    for (const family of [4, 6] as Family[]) {
      for (const j of taggedJumps(await listTopDnat(family))) {
        if (j.network !== cfg.name || known.has(j.containerId) || isValid(j.containerId)) continue;
        try {
          await teardownChainIptables(family, j.chain);
        } catch (e) {
          errors.push(`${j.containerId}: ${(e as Error).message}`);
        }
      }
    }
  }
  if (errors.length) throw new CniError(ErrorCode.Internal, 'portmap GC failed for some attachments', errors.join('; '));
}

async function status(args: CmdArgs): Promise<void> {
  const cfg = parsePortmapConfig(args.config, args.ifName);
  const driver = portmapDriver(backendOf(cfg));
  if (!driverAvailable(driver)) throw new CniError(ErrorCode.NotAvailable, `portmap cannot work: ${driver.tool} is not installed`);
  // The UDP conntrack flush is best effort: without ctnetlink, old UDP flows outlive a re-mapped port.
  try {
    closeFd(openNetlinkSocket(NETLINK_NETFILTER));
  } catch (e) {
    throw new CniError(ErrorCode.NotAvailableDegraded, `portmap works, but cannot flush UDP conntrack entries: ${(e as Error).message}`);
  }
}

export const portmapPlugin: Plugin = {
  hostOnly: true,
  name: 'portmap',
  about: 'tscni portmap: host port forwarding (iptables or nftables)',
  add,
  del,
  check,
  gc,
  status,
};
