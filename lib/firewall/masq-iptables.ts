/**
 * The iptables masquerade driver: one iptables-restore per family for setup;
 * teardown by exact spec when the addresses are known, else by chain name
 * from a POSTROUTING listing; the reference's layout (masquerade-iptables.ts).
 */
import { settleAll } from '../cni/errors.ts';
import { run } from '../exec.ts';
import type { Family } from '../ip/prefix.ts';
import { hasCommand } from './backend.ts';
import { IPTABLES as IPT } from './iptables-restore.ts';
import type { MasqDriver, TeardownTarget } from './masq-driver.ts';
import { familyOfCidrs, masqJump, missingMasq, parseMasqComment, parsePostrouting, renderMasqSetup, renderMasqTeardown, renderMasqTeardownExact } from './masquerade-iptables.ts';
import { formatChainName, formatComment } from './naming.ts';

async function listPostrouting(family: Family): Promise<string | undefined> {
  const r = await run([IPT[family].main, '-w', '-t', 'nat', '-S', 'POSTROUTING'], { allowFailure: true });
  return r.code === 0 ? r.stdout : undefined;
}

async function teardownChains(family: Family, chains: readonly string[], text: string): Promise<void> {
  await run([IPT[family].restore, '--noflush', '-w'], { input: renderMasqTeardown(chains, parsePostrouting(text)) });
}

export const iptablesMasq: MasqDriver = {
  available: () => hasCommand(IPT[4].main) || hasCommand(IPT[6].main),

  async setup(cidrs, network, _ifname, containerId) {
    const chain = formatChainName(network, containerId);
    const comment = formatComment(network, containerId);
    await Promise.all(
      ([4, 6] as const).map(async (family) => {
        const mine = familyOfCidrs(cidrs, family);
        if (mine.length) await run([IPT[family].restore, '--noflush', '-w'], { input: renderMasqSetup(family, chain, comment, mine) });
      }),
    );
  },

  async teardown(t: TeardownTarget) {
    const chain = formatChainName(t.network, t.containerId);
    const tasks = t.families
      .filter((family) => hasCommand(IPT[family].main))
      .map(async (family) => {
        const mine = familyOfCidrs(t.cidrs ?? [], family);
        if (mine.length) {
          const input = renderMasqTeardownExact(chain, formatComment(t.network, t.containerId), mine);
          const r = await run([IPT[family].restore, '--noflush', '-w'], { input, allowFailure: true });
          if (r.code === 0) return;
          // Some rule is not there as expected (older layout, already gone): find them by chain name.
        }
        const text = await listPostrouting(family);
        if (text !== undefined) await teardownChains(family, [chain], text);
      });
    await settleAll(tasks, 'iptables masquerade teardown');
  },

  async gc(network, valid) {
    const validIds = new Set(valid.map((a) => a.containerID));
    const tasks = ([4, 6] as const)
      .filter((family) => hasCommand(IPT[family].main))
      .map(async (family) => {
        const text = await listPostrouting(family);
        if (text === undefined) return;
        // The iptables tag has no ifname: a container is stale only when none of its attachments is valid.
        const stale = new Set<string>();
        for (const r of parsePostrouting(text)) {
          const tag = parseMasqComment(r.comment);
          if (!tag || tag.name !== network || validIds.has(tag.id) || !r.target) continue;
          if (r.target === formatChainName(network, tag.id)) stale.add(r.target);
        }
        if (stale.size) await teardownChains(family, [...stale], text);
      });
    await settleAll(tasks, 'iptables masquerade GC');
  },

  /** Per family, `-S <chain>` (its rules) and one `-C` per address (its jump), in parallel, judged by missingMasq. */
  async missing(cidrs, network, _ifname, containerId) {
    const chain = formatChainName(network, containerId);
    const comment = formatComment(network, containerId);
    const ok = async (family: Family, args: string[]) => (await run([IPT[family].main, '-w', '-t', 'nat', ...args], { allowFailure: true })).code === 0;
    const lost = await Promise.all(
      ([4, 6] as const).map(async (family) => {
        const mine = familyOfCidrs(cidrs, family);
        if (mine.length === 0) return [];
        const [listed, found] = await Promise.all([
          run([IPT[family].main, '-w', '-t', 'nat', '-S', chain], { allowFailure: true }),
          Promise.all(mine.map((c) => ok(family, ['-C', ...masqJump(chain, comment, c)]))),
        ]);
        return missingMasq(family, chain, comment, mine, listed.code === 0 ? listed.stdout : '', mine.filter((_, i) => found[i]));
      }),
    );
    const missing = new Set(lost.flat());
    return cidrs.filter((c) => missing.has(c));
  },
};
