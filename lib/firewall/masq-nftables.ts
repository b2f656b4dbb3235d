/**
 * The nftables masquerade driver: one transaction for setup, rules found by
 * their comment tags for teardown, GC and CHECK (the reference's
 * `inet cni_plugins_masquerade` layout, masquerade-nftables.ts).
 */
import { run } from '../exec.ts';
import { addrOf } from '../ip/prefix.ts';
import { hasCommand } from './backend.ts';
import type { MasqDriver } from './masq-driver.ts';
import { NFT_MASQ_CHAIN, NFT_MASQ_TABLE, commentForInstance, hashForInstance, hashForNetwork, parseNftRules, renderNftDeleteRules, renderNftMasqSetup } from './masquerade-nftables.ts';

async function listRules(): Promise<ReturnType<typeof parseNftRules> | undefined> {
  const r = await run(['nft', '-j', 'list', 'chain', 'inet', NFT_MASQ_TABLE, NFT_MASQ_CHAIN], { allowFailure: true });
  // A missing table or chain means nothing to remove.
  return r.code === 0 ? parseNftRules(r.stdout) : undefined;
}

async function deleteRules(handles: readonly number[]): Promise<void> {
  if (handles.length) await run(['nft', '-f', '-'], { input: renderNftDeleteRules(handles) });
}

export const nftablesMasq: MasqDriver = {
  available: () => hasCommand('nft'),

  async setup(cidrs, network, ifname, containerId) {
    await run(['nft', '-f', '-'], { input: renderNftMasqSetup(cidrs, network, ifname, containerId) });
  },

  async teardown(t) {
    const rules = await listRules();
    if (!rules) return;
    const prefix = hashForInstance(t.network, t.ifname, t.containerId);
    await deleteRules(rules.filter((r) => r.comment?.startsWith(prefix)).map((r) => r.handle));
  },

  async gc(network, valid) {
    const rules = await listRules();
    if (!rules) return;
    const netHash = hashForNetwork(network);
    const keep = new Set(valid.map((a) => commentForInstance(network, a.ifname, a.containerID)));
    await deleteRules(rules.filter((r) => r.comment?.startsWith(netHash) && !keep.has(r.comment)).map((r) => r.handle));
  },

  /** The tagged rule in masq_checks, per address. */
  async missing(cidrs, network, ifname, containerId) {
    const r = await run(['nft', 'list', 'chain', 'inet', NFT_MASQ_TABLE, NFT_MASQ_CHAIN], { allowFailure: true });
    if (r.code !== 0) return [...cidrs];
    const comment = commentForInstance(network, ifname, containerId);
    const mine = r.stdout.split('\n').filter((l) => l.includes(`comment "${comment}"`));
    return cidrs.filter((c) => !mine.some((l) => l.includes(`saddr ${addrOf(c)} `)));
  },
};
