/**
 * Applying masquerade rules: one iptables-restore per family or one nft
 * transaction for setup; teardown and GC find rules by their tags (chain
 * name / comment), never by the pod's live addresses.
 */
import { run } from '../exec.ts';
import type { Family } from '../ip/prefix.ts';
import { addrOf, familyOf } from '../ip/prefix.ts';
import {
  familyOfCidrs,
  parseMasqComment,
  parsePostrouting,
  renderMasqSetup,
  renderMasqTeardown,
  renderMasqTeardownExact,
} from './masquerade-iptables.ts';
import {
  NFT_MASQ_CHAIN,
  NFT_MASQ_TABLE,
  commentForInstance,
  hashForInstance,
  hashForNetwork,
  parseNftRules,
  renderNftDeleteRules,
  renderNftMasqSetup,
} from './masquerade-nftables.ts';
import { detectBackend, hasCommand, type FirewallBackend } from './backend.ts';
import { IPTABLES } from './iptables-restore.ts';
import { formatChainName, formatComment } from './naming.ts';

export type MasqBackend = FirewallBackend;

const IPT = IPTABLES;

/** Backend detection is shared by every rule user (lib/firewall/backend.ts); re-exported for the masquerade's callers. */
export { detectBackend as detectMasqBackend, hasCommand };

export async function setupMasquerade(backend: MasqBackend, cidrs: readonly string[], network: string, ifname: string, containerId: string): Promise<void> {
  if (cidrs.length === 0) return;
  if (backend === 'nftables') {
    await run(['nft', '-f', '-'], { input: renderNftMasqSetup(cidrs, network, ifname, containerId) });
    return;
  }
  const chain = formatChainName(network, containerId);
  const comment = formatComment(network, containerId);
  await Promise.all(
    ([4, 6] as const).map(async (family) => {
      const mine = familyOfCidrs(cidrs, family);
      if (mine.length === 0) return;
      await run([IPT[family].restore, '--noflush', '-w'], { input: renderMasqSetup(family, chain, comment, mine) });
    }),
  );
}

async function listPostrouting(family: Family): Promise<string | undefined> {
  const r = await run([IPT[family].main, '-w', '-t', 'nat', '-S', 'POSTROUTING'], { allowFailure: true });
  return r.code === 0 ? r.stdout : undefined;
}

async function teardownIptablesChains(family: Family, chains: readonly string[], text: string): Promise<void> {
  const input = renderMasqTeardown(chains, parsePostrouting(text));
  await run([IPT[family].restore, '--noflush', '-w'], { input });
}

async function listNftMasqRules(): Promise<ReturnType<typeof parseNftRules> | undefined> {
  const r = await run(['nft', '-j', 'list', 'chain', 'inet', NFT_MASQ_TABLE, NFT_MASQ_CHAIN], { allowFailure: true });
  // A missing table or chain means nothing to remove.
  return r.code === 0 ? parseNftRules(r.stdout) : undefined;
}

async function deleteNftRules(handles: readonly number[]): Promise<void> {
  if (handles.length) await run(['nft', '-f', '-'], { input: renderNftDeleteRules(handles) });
}

export interface TeardownTarget {
  network: string;
  ifname: string;
  containerId: string;
  /** Families to clean in iptables; both when unknown (no prevResult). */
  families: readonly Family[];
  /** The attachment's addresses when known (prevResult): lets iptables delete by exact spec without listing. */
  cidrs?: readonly string[];
  /**
   * The backend ADD used (the config's ipMasqBackend, or the detected one):
   * only its rules are looked for, which saves an `nft` listing per DEL on
   * iptables nodes. Undefined: both backends.
   */
  backend?: MasqBackend;
}

/** Remove the masquerade rules of one attachment from both backends. Throws an aggregated error. */
export async function teardownMasquerade(t: TeardownTarget): Promise<void> {
  const chain = formatChainName(t.network, t.containerId);
  const tasks: Array<Promise<void>> = [];
  for (const family of t.backend === 'nftables' ? [] : t.families) {
    if (!hasCommand(IPT[family].main)) continue;
    tasks.push(
      (async () => {
        const mine = familyOfCidrs(t.cidrs ?? [], family);
        if (mine.length) {
          const input = renderMasqTeardownExact(chain, formatComment(t.network, t.containerId), mine);
          const r = await run([IPT[family].restore, '--noflush', '-w'], { input, allowFailure: true });
          if (r.code === 0) return;
          // Some rule is not there as expected (older layout, already gone): find them by chain name.
        }
        const text = await listPostrouting(family);
        if (text !== undefined) await teardownIptablesChains(family, [chain], text);
      })(),
    );
  }
  if (t.backend !== 'iptables' && hasCommand('nft')) {
    tasks.push(
      (async () => {
        const rules = await listNftMasqRules();
        if (!rules) return;
        const prefix = hashForInstance(t.network, t.ifname, t.containerId);
        await deleteNftRules(rules.filter((r) => r.comment?.startsWith(prefix)).map((r) => r.handle));
      })(),
    );
  }
  const errors = (await Promise.allSettled(tasks)).flatMap((r) => (r.status === 'rejected' ? [String((r.reason as Error)?.message ?? r.reason)] : []));
  if (errors.length) throw new Error(`masquerade teardown: ${errors.join('; ')}`);
}

export interface Attachment {
  containerID: string;
  ifname: string;
}

/** Remove the masquerade rules of `network` whose attachment is not in `valid`. */
export async function gcMasquerade(network: string, valid: readonly Attachment[]): Promise<void> {
  const validIds = new Set(valid.map((a) => a.containerID));
  const tasks: Array<Promise<void>> = [];
  for (const family of [4, 6] as const) {
    if (!hasCommand(IPT[family].main)) continue;
    tasks.push(
      (async () => {
        const text = await listPostrouting(family);
        if (text === undefined) return;
        // The iptables tag has no ifname: a container is stale only when none of its attachments is valid.
        const stale = new Set<string>();
        for (const r of parsePostrouting(text)) {
          const tag = parseMasqComment(r.comment);
          if (!tag || tag.name !== network || validIds.has(tag.id) || !r.target) continue;
          if (r.target === formatChainName(network, tag.id)) stale.add(r.target);
        }
        if (stale.size) await teardownIptablesChains(family, [...stale], text);
      })(),
    );
  }
  if (hasCommand('nft')) {
    tasks.push(
      (async () => {
        const rules = await listNftMasqRules();
        if (!rules) return;
        const netHash = hashForNetwork(network);
        const keep = new Set(valid.map((a) => commentForInstance(network, a.ifname, a.containerID)));
        await deleteNftRules(rules.filter((r) => r.comment?.startsWith(netHash) && !keep.has(r.comment)).map((r) => r.handle));
      })(),
    );
  }
  const errors = (await Promise.allSettled(tasks)).flatMap((r) => (r.status === 'rejected' ? [String((r.reason as Error)?.message ?? r.reason)] : []));
  if (errors.length) throw new Error(`masquerade GC: ${errors.join('; ')}`);
}

export function familiesOf(cidrs: readonly string[]): Family[] {
  const set = new Set(cidrs.map((c) => familyOf(c)));
  return ([4, 6] as const).filter((f) => set.has(f));
}

/**
 * CHECK: is every address of the attachment still masqueraded? Returns the
 * addresses whose rule is missing. iptables: `-C` of the exact POSTROUTING
 * jump (one call per address; the chain must exist for it to succeed);
 * nftables: the tagged rule in masq_checks.
 */
export async function missingMasquerade(backend: MasqBackend, cidrs: readonly string[], network: string, ifname: string, containerId: string): Promise<string[]> {
  if (backend === 'nftables') {
    const r = await run(['nft', 'list', 'chain', 'inet', NFT_MASQ_TABLE, NFT_MASQ_CHAIN], { allowFailure: true });
    if (r.code !== 0) return [...cidrs];
    const comment = commentForInstance(network, ifname, containerId);
    const mine = r.stdout.split('\n').filter((l) => l.includes(`comment "${comment}"`));
    return cidrs.filter((c) => !mine.some((l) => l.includes(`saddr ${addrOf(c)} `)));
  }
  const chain = formatChainName(network, containerId);
  const comment = formatComment(network, containerId);
  const checks = await Promise.all(
    cidrs.map(async (c) => {
      const family = familyOf(c);
      const r = await run([IPT[family].main, '-w', '-t', 'nat', '-C', 'POSTROUTING', '-s', addrOf(c), '-j', chain, '-m', 'comment', '--comment', comment], { allowFailure: true });
      return r.code === 0 ? undefined : c;
    }),
  );
  return checks.filter((c): c is string => c !== undefined);
}
