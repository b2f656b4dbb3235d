/**
 * Applying the firewall layout: one `iptables-restore --noflush -w` per
 * family or one `nft -f -` per call, planned from one listing of what is
 * there (caller holds the state lock). Shared by the plugin and
 * `tscni firewall reload|check`.
 */
import { run } from '../../lib/exec.ts';
import type { Family } from '../../lib/ip/prefix.ts';
import { IPTABLES } from '../../lib/firewall/iptables-restore.ts';
import { hasCommand } from '../../lib/firewall/masquerade.ts';
import type { IngressPolicy } from './config.ts';
import { forFamily, missingRules, parseFilterListing, renderEnsure, renderTeardown, type AttachmentRules, type FilterListing } from './iptables.ts';
import { NFT_TABLE, nftMissing, parseNftListing, renderNftApply, type NftAttachment } from './nftables.ts';
import type { FirewallRecord } from './state.ts';

const IPT = IPTABLES;

export const toRules = (r: FirewallRecord): AttachmentRules => ({ admin: r.adminChain, prefixes: r.prefixes, bridge: r.bridge, policy: r.policy });
const familiesOf = (recs: readonly FirewallRecord[]): Family[] =>
  ([4, 6] as Family[]).filter((f) => recs.some((r) => r.prefixes.some((p) => (f === 4 ? !p.includes(':') : p.includes(':')))));

async function listFilter(family: Family): Promise<FilterListing> {
  const r = await run([IPT[family].main, '-w', '-t', 'filter', '-S']);
  return parseFilterListing(r.stdout);
}

async function restore(family: Family, text: string | undefined): Promise<void> {
  if (text) await run([IPT[family].restore, '--noflush', '-w'], { input: text });
}

/** iptables: add whatever the records need (ADD, reload); one batch per family. */
export async function ensureIptables(recs: readonly FirewallRecord[]): Promise<void> {
  await Promise.all(
    familiesOf(recs).map(async (f) => {
      const want = recs.map((r) => forFamily(toRules(r), f));
      await restore(f, renderEnsure(await listFilter(f), want));
    }),
  );
}

/**
 * iptables: remove `gone` (and the isolation rules of bridges no record in
 * `remaining` uses any more). Families: those of the records, or both when
 * a record has no addresses (unknown).
 */
export async function teardownIptables(gone: readonly FirewallRecord[], remaining: readonly FirewallRecord[]): Promise<void> {
  const last = new Map<string, IngressPolicy>();
  for (const g of gone) {
    if (g.bridge && g.policy !== 'open' && !remaining.some((r) => r.bridge === g.bridge && r.policy !== 'open' && r.backend === 'iptables')) last.set(g.bridge, g.policy);
  }
  const fams = familiesOf(gone);
  await Promise.all(
    (fams.length ? fams : ([4, 6] as Family[])).map(async (f) => {
      if (!hasCommand(IPT[f].main)) return;
      await restore(f, renderTeardown(await listFilter(f), gone.map((g) => forFamily(toRules(g), f)), last));
    }),
  );
}

/** iptables CHECK: the rules of `rec` (and its shared chains) that are missing, as text. */
export async function missingIptables(rec: FirewallRecord): Promise<string[]> {
  const out = await Promise.all(familiesOf([rec]).map(async (f) => missingRules(await listFilter(f), [forFamily(toRules(rec), f)])));
  return out.flat();
}

export const toNft = (r: FirewallRecord): NftAttachment => ({ network: r.network, containerId: r.containerId, ifName: r.ifName, prefixes: r.prefixes, bridge: r.bridge, policy: r.policy });

/** nftables: one transaction making the table match `all`, adding `added` and removing `removed`. */
export async function applyNft(all: readonly FirewallRecord[], added: readonly FirewallRecord[], removed: readonly FirewallRecord[]): Promise<void> {
  await run(['nft', '-f', '-'], { input: renderNftApply(all.map(toNft), added.map(toNft), removed.map(toNft)) });
}

async function listNft(): Promise<string | undefined> {
  const r = await run(['nft', '-j', 'list', 'table', 'inet', NFT_TABLE], { allowFailure: true });
  return r.code === 0 ? r.stdout : undefined;
}

/** nftables CHECK: what is missing for `rec`, given every live nftables record. */
export async function missingNft(rec: FirewallRecord, all: readonly FirewallRecord[]): Promise<string[]> {
  return nftMissing(parseNftListing(await listNft()), toNft(rec), all.map(toNft));
}
