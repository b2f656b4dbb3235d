/**
 * Masquerade for the main plugins (bridge, ptp): a small dispatcher over two
 * backend drivers (masq-iptables.ts, masq-nftables.ts). Setup is one
 * iptables-restore per family or one nft transaction; teardown and GC find
 * rules by their tags (chain name / comment), never by the pod's live
 * addresses.
 */
import { settleAll } from '../cni/errors.ts';
import type { Family } from '../ip/prefix.ts';
import { familyOf } from '../ip/prefix.ts';
import { detectBackend, hasCommand, type FirewallBackend } from './backend.ts';
import type { Attachment, MasqDriver, TeardownTarget } from './masq-driver.ts';
import { iptablesMasq } from './masq-iptables.ts';
import { nftablesMasq } from './masq-nftables.ts';

export type MasqBackend = FirewallBackend;
export type { Attachment, TeardownTarget };

/** Backend detection is shared by every rule user (lib/firewall/backend.ts); re-exported for the masquerade's callers. */
export { detectBackend as detectMasqBackend, hasCommand };

const DRIVERS: Record<MasqBackend, MasqDriver> = { iptables: iptablesMasq, nftables: nftablesMasq };

/** Masquerade traffic from the attachment's addresses with `backend`. */
export async function setupMasquerade(backend: MasqBackend, cidrs: readonly string[], network: string, ifname: string, containerId: string): Promise<void> {
  if (cidrs.length === 0) return;
  await DRIVERS[backend].setup(cidrs, network, ifname, containerId);
}

async function onEach(backends: readonly MasqBackend[], what: string, fn: (d: MasqDriver) => Promise<void>): Promise<void> {
  await settleAll(backends.map((b) => DRIVERS[b]).filter((d) => d.available()).map(fn), what);
}

/** Remove the masquerade rules of one attachment (from its backend, or from both when unknown). Throws an aggregated error. */
export async function teardownMasquerade(t: TeardownTarget): Promise<void> {
  await onEach(t.backend ? [t.backend] : ['iptables', 'nftables'], 'masquerade teardown', (d) => d.teardown(t));
}

/** Remove the masquerade rules of `network` whose attachment is not in `valid`, from both backends. */
export async function gcMasquerade(network: string, valid: readonly Attachment[]): Promise<void> {
  await onEach(['iptables', 'nftables'], 'masquerade GC', (d) => d.gc(network, valid));
}

export function familiesOf(cidrs: readonly string[]): Family[] {
  const set = new Set(cidrs.map((c) => familyOf(c)));
  return ([4, 6] as const).filter((f) => set.has(f));
}

/** CHECK: the addresses of the attachment whose masquerade rule is missing. */
export async function missingMasquerade(backend: MasqBackend, cidrs: readonly string[], network: string, ifname: string, containerId: string): Promise<string[]> {
  return DRIVERS[backend].missing(cidrs, network, ifname, containerId);
}
