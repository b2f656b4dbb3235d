/**
 * The two ways portmap programs a host port, behind one interface chosen
 * once per call (as the reference's PortMapper and netavark's firewall
 * drivers). Each driver owns its locking and bookkeeping, so plugin.ts reads
 * as parse, claim, program, roll back.
 *
 *   iptables  one iptables-restore per family (apply-iptables.ts); every
 *             attachment has its own chain, the first jump wins
 *   nftables  one nft transaction (apply-nftables.ts) under the portmap lock:
 *             shared hairpin subnets are reference-counted, one element per
 *             host port (a second attachment of the same container waits as
 *             "dormant" and is promoted when the first goes)
 */
import { hasCommand } from '../../lib/firewall/backend.ts';
import { logDebug } from '../../lib/log.ts';
import { checkPodIptables, setupPodIptables, teardownPodIptables } from './apply-iptables.ts';
import { checkPodNft, setupPodNft, teardownPodNft } from './apply-nftables.ts';
import { appliesTo, type PortmapBackend, type PortMapping } from './config.ts';
import { activeView, forgetAttachment, podFamilies, portKey, samePort, usesPodnets, type AttachmentRecord, type PortHolder, type PortmapState } from './state.ts';

export interface PortmapDriver {
  readonly name: PortmapBackend;
  /** Program an attachment whose claims and record are already in place. */
  setup(state: PortmapState, rec: AttachmentRecord, wanted: ReadonlyArray<{ m: PortMapping; key: string }>): Promise<void>;
  /**
   * Remove what the attachment programmed (found from its record, or by its
   * tags without one); with `forget`, also drop its claims and record.
   */
  teardown(state: PortmapState, holder: PortHolder, rec: AttachmentRecord | undefined, forget: boolean): Promise<void>;
  /** A re-ADD: remove what `previous` programmed, keeping what `next` still uses (claims and record are `next`'s). */
  replace(state: PortmapState, previous: AttachmentRecord, next: AttachmentRecord): Promise<void>;
  /** CHECK: every rule or element of the attachment is there. */
  check(state: PortmapState, rec: AttachmentRecord): Promise<void>;
  /** The tool this driver runs, for STATUS. */
  readonly tool: string;
}

const iptablesDriver: PortmapDriver = {
  name: 'iptables',
  tool: 'iptables-restore',
  setup: (state, rec) => setupPodIptables(state, rec),
  async teardown(state, holder, rec, forget) {
    await teardownPodIptables(holder.network, holder.containerId, rec);
    if (rec && forget) state.locked(() => forgetAttachment(state, rec));
  },
  replace: (_state, previous) => teardownPodIptables(previous.network, previous.containerId, previous),
  check: (_state, rec) => checkPodIptables(rec),
};

/**
 * When an attachment goes, the next attachment of the same container that
 * claims one of its ports gets it programmed (caller holds the lock).
 */
async function promoteSharers(state: PortmapState, gone: AttachmentRecord): Promise<void> {
  const fams = podFamilies(gone);
  for (const m of activeView(gone).mappings) {
    const reach = fams.filter((f) => appliesTo(m, f));
    if (reach.length === 0) continue;
    const next = state.sharers(gone, m, portKey(m, reach)).find((o) => (o.dormant ?? []).some((d) => samePort(d, m)));
    if (!next) continue;
    next.dormant = (next.dormant ?? []).filter((d) => !samePort(d, m));
    await setupPodNft({ ...next, mappings: next.mappings.filter((x) => samePort(x, m)) });
    state.writeRecord(next);
    logDebug(`portmap: host port ${m.hostPort}/${m.protocol} passes to ${next.network}/${next.containerId}/${next.ifName}`);
  }
}

const nftablesDriver: PortmapDriver = {
  name: 'nftables',
  tool: 'nft',
  setup: (state, rec, wanted) =>
    state.lockedAsync(async () => {
      if (usesPodnets(rec)) for (const f of podFamilies(rec)) state.usePodnet(rec, f, rec.container[f]!.net);
      // A port this container already publishes through another network stays with that attachment.
      const dormant = wanted.filter(({ m, key }) => state.sharers(rec, m, key).some((o) => activeView(o).mappings.some((x) => samePort(x, m)))).map((w) => w.m);
      if (dormant.length) {
        rec.dormant = dormant;
        state.writeRecord(rec);
      }
      await setupPodNft(activeView(rec));
    }),
  teardown: (state, holder, rec, forget) =>
    state.lockedAsync(async () => {
      await teardownPodNft(state, holder, rec && activeView(rec));
      if (rec) await promoteSharers(state, rec);
      if (rec && forget) forgetAttachment(state, rec);
    }),
  async replace(state, previous, next) {
    await nftablesDriver.teardown(state, previous, previous, false);
    // Hairpin subnets the old mappings used and the new ones do not.
    if (!usesPodnets(previous)) return;
    state.locked(() => {
      for (const f of podFamilies(previous)) {
        if (!usesPodnets(next) || next.container[f]?.net !== previous.container[f]!.net) state.releasePodnet(previous, f, previous.container[f]!.net);
      }
    });
  },
  async check(state, rec) {
    // Ports another attachment of this container publishes are not ours to program.
    const dormant = state.readRecord(rec)?.dormant;
    await checkPodNft(activeView(dormant ? { ...rec, dormant } : rec));
  },
};

/** The driver for a backend name. */
export function portmapDriver(name: PortmapBackend): PortmapDriver {
  return name === 'nftables' ? nftablesDriver : iptablesDriver;
}

/** Is the driver's tool installed? */
export const driverAvailable = (d: PortmapDriver) => hasCommand(d.tool);
