/**
 * `tscni firewall reload|check`: anything that flushes the ruleset
 * (`firewall-cmd --reload`, `nft flush ruleset`, `iptables -F`) silently
 * breaks every pod's NAT, published ports and isolation. tscni records every
 * attachment, so this re-applies, from those records, what is missing:
 *
 *   masquerade  from the runtime's libcni result cache (CNI_CACHE_DIR,
 *               default /var/lib/cni: ours, cnitool's and podman's): every
 *               cached attachment whose netns exists, for each bridge/ptp of
 *               its conflist with ipMasq, the cached result's addresses
 *   portmap     the records in each portmap stateDir (the default, and every
 *               stateDir named in a cached conflist), live ones only
 *   firewall    the records in each firewall stateDir, live ones only
 *
 * An attachment is re-applied only when something of it is missing (check
 * first, then tear down what is left of it and set it up again), so a
 * reload is idempotent. `check` reports the same findings and changes
 * nothing (exit 1 when something is missing). Records of pods whose netns is
 * gone are reported as stale and left to the plugins' GC.
 */
import { existsSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { detectMasqBackend, familiesOf, missingMasquerade, setupMasquerade, teardownMasquerade, type MasqBackend } from '../../lib/firewall/masquerade.ts';
import { confListFromBytes } from '../../lib/libcni/conf.ts';
import { listCacheEntries } from '../../lib/libcni/cache.ts';
import { applyNft, ensureIptables, missingIptables, missingNft } from '../../plugins/firewall/apply.ts';
import { DEFAULT_STATE_DIR as FIREWALL_STATE_DIR } from '../../plugins/firewall/config.ts';
import { FirewallState, type FirewallRecord } from '../../plugins/firewall/state.ts';
import { checkPodIptables, setupPodIptables, teardownPodIptables } from '../../plugins/portmap/apply-iptables.ts';
import { checkPodNft, setupPodNft, teardownPodNft } from '../../plugins/portmap/apply-nftables.ts';
import { DEFAULT_STATE_DIR as PORTMAP_STATE_DIR } from '../../plugins/portmap/config.ts';
import { activeView, currentBootId, PortmapState, staleReason, type AttachmentRecord } from '../../plugins/portmap/state.ts';

/** One attachment's rules of one kind, and what was found. */
export interface Finding {
  kind: 'masquerade' | 'portmap' | 'firewall';
  /** network/containerID/ifname */
  attachment: string;
  /** ok: all there; missing: something was missing (reapplied unless checking); stale: the pod is gone; error: could not check or apply. */
  state: 'ok' | 'missing' | 'reapplied' | 'stale' | 'error';
  details: string[];
}

export interface ReloadOptions {
  /** libcni cache directory (results/ inside). */
  cacheDir: string;
  /** Only report, change nothing. */
  check: boolean;
  /** Extra state directories (tests); the defaults and those in cached conflists are always looked at. */
  portmapStateDirs?: string[];
  firewallStateDirs?: string[];
}

const name = (r: { network: string; containerId: string; ifName: string }) => `${r.network}/${r.containerId}/${r.ifName}`;
const alive = (netns: string | undefined) => !netns || !netns.startsWith('/') || existsSync(netns);
const messageOf = (e: unknown) => {
  const err = e as { msg?: string; details?: string; message?: string };
  return err.details ? `${err.msg}: ${err.details}` : (err.message ?? String(e));
};

interface MasqTarget {
  network: string;
  containerId: string;
  ifName: string;
  backend: MasqBackend;
  cidrs: string[];
}

/** What the cache says: masquerade targets of live attachments, and the state dirs its conflists name. */
function readCache(cacheDir: string): { masq: MasqTarget[]; stale: Finding[]; portmapDirs: Set<string>; firewallDirs: Set<string> } {
  const masq: MasqTarget[] = [];
  const stale: Finding[] = [];
  const portmapDirs = new Set<string>();
  const firewallDirs = new Set<string>();
  for (const entry of listCacheEntries(cacheDir)) {
    let plugins;
    try {
      plugins = confListFromBytes(entry.config).plugins;
    } catch {
      continue; // a conflist we cannot read: nothing to re-apply from it
    }
    for (const p of plugins) {
      const dir = typeof p.raw.stateDir === 'string' ? p.raw.stateDir : undefined;
      if (p.type === 'portmap' && dir) portmapDirs.add(dir);
      if (p.type === 'firewall' && dir) firewallDirs.add(dir);
      if ((p.type === 'bridge' || p.type === 'ptp') && p.raw.ipMasq === true) {
        const cidrs = ((entry.result?.ips ?? []) as Array<{ address?: string }>).map((i) => i.address).filter((a): a is string => typeof a === 'string');
        const target = { network: entry.network, containerId: entry.containerId, ifName: entry.ifName, cidrs, backend: (p.raw.ipMasqBackend as MasqBackend | undefined) ?? detectMasqBackend() };
        if (!alive(entry.netns)) stale.push({ kind: 'masquerade', attachment: name(target), state: 'stale', details: [`netns ${entry.netns} is gone`] });
        else if (cidrs.length) masq.push(target);
      }
    }
  }
  return { masq, stale, portmapDirs, firewallDirs };
}

async function reloadMasquerade(t: MasqTarget, check: boolean): Promise<Finding> {
  const f: Finding = { kind: 'masquerade', attachment: name(t), state: 'ok', details: [] };
  const missing = await missingMasquerade(t.backend, t.cidrs, t.network, t.ifName, t.containerId);
  if (missing.length === 0) return f;
  f.details = missing.map((c) => `no masquerade rule for ${c}`);
  f.state = 'missing';
  if (check) return f;
  // What is left of it goes first, so the re-applied rules are not doubled.
  await teardownMasquerade({ network: t.network, ifname: t.ifName, containerId: t.containerId, families: familiesOf(t.cidrs), cidrs: t.cidrs, backend: t.backend }).catch(() => undefined); // setup below reports what matters
  await setupMasquerade(t.backend, t.cidrs, t.network, t.ifName, t.containerId);
  f.state = 'reapplied';
  return f;
}

function portmapRecords(dir: string): AttachmentRecord[] {
  let nets: string[] = [];
  try {
    nets = readdirSync(join(dir, 'attachments'));
  } catch {
    return [];
  }
  const state = new PortmapState(dir);
  return nets.flatMap((n) => state.recordsOf(n));
}

async function reloadPortmap(dir: string, rec: AttachmentRecord, check: boolean): Promise<Finding> {
  const f: Finding = { kind: 'portmap', attachment: name(rec), state: 'ok', details: [] };
  const why = staleReason(rec, currentBootId());
  if (why) return { ...f, state: 'stale', details: [why] };
  const view = activeView(rec);
  try {
    await (rec.backend === 'nftables' ? checkPodNft(view) : checkPodIptables(rec));
    return f;
  } catch (e) {
    f.details = [messageOf(e)];
    f.state = 'missing';
  }
  if (check) return f;
  const state = new PortmapState(dir);
  if (rec.backend === 'nftables') {
    await state.lockedAsync(async () => {
      await teardownPodNft(state, rec, view);
      await setupPodNft(view);
    });
  } else {
    await teardownPodIptables(rec.network, rec.containerId, rec);
    await setupPodIptables(state, rec);
  }
  f.state = 'reapplied';
  return f;
}

async function reloadFirewall(dir: string, check: boolean): Promise<Finding[]> {
  if (!existsSync(join(dir, 'attachments'))) return [];
  const state = new FirewallState(dir);
  return state.locked(async () => {
    const all = state.all();
    const live = all.filter((r) => alive(r.netns));
    const out: Finding[] = all.filter((r) => !live.includes(r)).map((r) => ({ kind: 'firewall', attachment: name(r), state: 'stale', details: [`netns ${r.netns} is gone`] }));
    const nft = live.filter((r) => r.backend === 'nftables');
    const findings = await Promise.all(
      live.map(async (r): Promise<Finding> => {
        const missing = r.backend === 'iptables' ? await missingIptables(r) : await missingNft(r, nft);
        return { kind: 'firewall', attachment: name(r), state: missing.length ? 'missing' : 'ok', details: missing };
      }),
    );
    const broken = (b: FirewallRecord['backend']) => findings.some((f, i) => f.state === 'missing' && live[i]!.backend === b);
    if (!check) {
      // One batch per family (iptables) and one transaction (nftables) for every live attachment.
      if (broken('iptables')) await ensureIptables(live.filter((r) => r.backend === 'iptables'));
      if (broken('nftables')) await applyNft(nft, nft, []);
      for (const f of findings) if (f.state === 'missing') f.state = 'reapplied';
    }
    return [...out, ...findings];
  });
}

/**
 * Check (and unless `check`, re-apply) the masquerade, port-mapping and
 * firewall rules of every live attachment. Returns one finding per
 * attachment and kind; an attachment that cannot be repaired is an `error`
 * finding, and the others are still processed.
 */
export async function firewallReload(o: ReloadOptions): Promise<Finding[]> {
  const cache = readCache(o.cacheDir);
  const guard = async (kind: Finding['kind'], attachment: string, fn: () => Promise<Finding | Finding[]>): Promise<Finding[]> => {
    try {
      const r = await fn();
      return Array.isArray(r) ? r : [r];
    } catch (e) {
      return [{ kind, attachment, state: 'error', details: [messageOf(e)] }];
    }
  };
  const out: Finding[] = [...cache.stale];
  for (const t of cache.masq) out.push(...(await guard('masquerade', name(t), () => reloadMasquerade(t, o.check))));
  const portmapDirs = new Set([PORTMAP_STATE_DIR, ...cache.portmapDirs, ...(o.portmapStateDirs ?? [])]);
  for (const dir of portmapDirs) {
    if (!existsSync(dir)) continue;
    for (const rec of portmapRecords(dir)) out.push(...(await guard('portmap', name(rec), () => reloadPortmap(dir, rec, o.check))));
  }
  const firewallDirs = new Set([FIREWALL_STATE_DIR, ...cache.firewallDirs, ...(o.firewallStateDirs ?? [])]);
  for (const dir of firewallDirs) out.push(...(await guard('firewall', dir, () => reloadFirewall(dir, o.check))));
  return out;
}

/** One line per finding, for people. */
export function renderFindings(findings: readonly Finding[]): string {
  if (findings.length === 0) return 'no attachments recorded\n';
  return findings.map((f) => `${f.state.padEnd(9)} ${f.kind.padEnd(10)} ${f.attachment}${f.details.length ? `: ${f.details.join('; ')}` : ''}\n`).join('');
}
