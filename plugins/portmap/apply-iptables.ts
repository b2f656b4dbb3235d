/**
 * Applying the iptables layout of iptables.ts: one iptables-restore per
 * family for a pod's ADD or DEL. The shared chains are built, under our
 * lock, only when the pod's batch fails for want of them. Nothing here
 * lists the whole nat table; the fallback for a DEL that knows nothing about
 * the pod reads CNI-HOSTPORT-DNAT only.
 */
import { CniError, ErrorCode } from '../../lib/cni/errors.ts';
import { ExecError, run } from '../../lib/exec.ts';
import type { Family } from '../../lib/ip/prefix.ts';
import { IPTABLES } from '../../lib/firewall/iptables-restore.ts';
import { logDebug } from '../../lib/log.ts';
import {
  dnatChainName,
  dnatRules,
  entryRules,
  jumpsTo,
  mappingsFor,
  renderPodSetup,
  renderPodTeardown,
  renderTopLevelSetup,
  SETMARK_CHAIN,
  TOP_DNAT_CHAIN,
  topLevelRules,
  type DnatOptions,
} from './iptables.ts';
import type { AttachmentRecord, PortmapState } from './state.ts';

const IPT = IPTABLES;

const BUILTIN = new Set(['PREROUTING', 'OUTPUT', 'POSTROUTING', 'INPUT', 'FORWARD']);

async function restore(family: Family, text: string): Promise<void> {
  await run([IPT[family].restore, '--noflush', '-w'], { input: text });
}

/** Exit code of an iptables query; -1 when the tool is not installed. */
async function query(family: Family, args: string[]): Promise<{ code: number; stdout: string }> {
  try {
    const r = await run([IPT[family].main, '-w', '-t', 'nat', ...args], { allowFailure: true });
    return { code: r.code, stdout: r.stdout };
  } catch (e) {
    if (e instanceof ExecError && e.code === -1) return { code: -1, stdout: '' };
    throw e;
  }
}

export function dnatOptions(rec: AttachmentRecord, family: Family): DnatOptions {
  return {
    network: rec.network,
    containerId: rec.containerId,
    snat: rec.snat,
    masqAll: rec.masqAll,
    setMarkChain: rec.externalSetMarkChain ?? SETMARK_CHAIN,
    conditions: family === 4 ? rec.conditionsV4 : rec.conditionsV6,
  };
}

/** Build whatever is missing of the shared chains and jumps, under our lock (once per node, normally). */
export async function ensureTopLevel(state: PortmapState, family: Family, rec: AttachmentRecord): Promise<void> {
  const { chains, rules } = topLevelRules(rec.snat, rec.markMasqBit, rec.externalSetMarkChain !== undefined);
  await state.lockedAsync(async () => {
    const chainOk = await Promise.all(chains.map((c) => query(family, ['-S', c])));
    const exists = new Set(chains.filter((_, i) => chainOk[i]?.code === 0));
    const ruleOk = await Promise.all(
      rules.map((r) => (BUILTIN.has(r.chain) || exists.has(r.chain) ? query(family, ['-C', r.chain, ...r.args]) : Promise.resolve({ code: 1, stdout: '' }))),
    );
    const missingChains = chains.filter((c) => !exists.has(c));
    const missingRules = rules.filter((_, i) => ruleOk[i]?.code !== 0);
    if (missingChains.length || missingRules.length) await restore(family, renderTopLevelSetup(missingChains, missingRules));
  });
}

function families(rec: AttachmentRecord): Family[] {
  return ([4, 6] as Family[]).filter((f) => rec.container[f] && mappingsFor(f, rec.mappings).length > 0);
}

/** The pod's jump rules per family, as ADD wrote them. */
export function recordEntries(rec: AttachmentRecord, family: Family): string[][] {
  return entryRules(dnatOptions(rec, family), mappingsFor(family, rec.mappings));
}

/**
 * The pod's batch alone: one iptables-restore per family, no probe. It
 * fails when a shared chain it appends to is missing (first pod on the node,
 * or the nat table was flushed); then the shared layout is built under our
 * lock and the batch retried. A shared jump deleted by hand while its chain
 * stays is not looked for here (that would cost two `iptables -C` per ADD);
 * CHECK reports it and the next ADD after a flush repairs it.
 */
export async function setupPodIptables(state: PortmapState, rec: AttachmentRecord): Promise<void> {
  await Promise.all(
    families(rec).map(async (family) => {
      const batch = renderPodSetup(dnatOptions(rec, family), family, rec.container[family]!, rec.mappings);
      try {
        await restore(family, batch);
        return;
      } catch (e) {
        logDebug(`portmap: pod batch (IPv${family}) failed, building the shared chains: ${(e as Error).message}`);
      }
      await ensureTopLevel(state, family, rec);
      await restore(family, batch);
    }),
  );
}

/** Remove a pod's chain and the jumps to it, finding the jumps by the chain name. */
async function teardownByChain(family: Family, chain: string): Promise<void> {
  const exists = await query(family, ['-S', chain]);
  if (exists.code !== 0) return;
  const top = await query(family, ['-S', TOP_DNAT_CHAIN]);
  await restore(family, renderPodTeardown(chain, top.code === 0 ? jumpsTo(top.stdout, chain) : []));
}

/**
 * DEL. With a record (or the request's own mappings) the exact jumps are
 * known: one restore per family. If that fails (someone changed the rules),
 * or nothing is known, fall back to finding the jumps by chain name.
 */
export async function teardownPodIptables(network: string, containerId: string, rec: AttachmentRecord | undefined): Promise<void> {
  const chain = dnatChainName(network, containerId);
  const known = rec ? families(rec) : [];
  await Promise.all(
    ([4, 6] as Family[]).map(async (family) => {
      // A record names the families ADD programmed; the others have nothing of this pod.
      if (rec && !known.includes(family)) return;
      if (rec) {
        try {
          await restore(family, renderPodTeardown(chain, recordEntries(rec, family)));
          return;
        } catch (e) {
          logDebug(`portmap: exact teardown of ${chain} (IPv${family}) failed, looking the jumps up: ${(e as Error).message}`);
        }
      }
      await teardownByChain(family, chain);
    }),
  );
}

/** Chains named in CNI-HOSTPORT-DNAT, per family (GC of pods the reference made). */
export async function listTopDnat(family: Family): Promise<string> {
  const r = await query(family, ['-S', TOP_DNAT_CHAIN]);
  return r.code === 0 ? r.stdout : '';
}

export async function teardownChainIptables(family: Family, chain: string): Promise<void> {
  await teardownByChain(family, chain);
}

/** CHECK: the pod chain, every rule in it and every jump to it exist. */
export async function checkPodIptables(rec: AttachmentRecord): Promise<void> {
  const chain = dnatChainName(rec.network, rec.containerId);
  const missing: string[] = [];
  await Promise.all(
    families(rec).map(async (family) => {
      if ((await query(family, ['-S', chain])).code !== 0) {
        missing.push(`chain ${chain} not found in iptables table nat (IPv${family})`);
        return;
      }
      const o = dnatOptions(rec, family);
      const shared = topLevelRules(rec.snat, rec.markMasqBit, rec.externalSetMarkChain !== undefined).rules.filter((r) => BUILTIN.has(r.chain));
      const checks = [
        ...dnatRules(o, family, rec.container[family]!, mappingsFor(family, rec.mappings)).map((r) => ({ chain, r })),
        ...recordEntries(rec, family).map((r) => ({ chain: TOP_DNAT_CHAIN, r })),
        ...shared.map((r) => ({ chain: r.chain, r: r.args })),
      ];
      const results = await Promise.all(checks.map((c) => query(family, ['-C', c.chain, ...c.r])));
      results.forEach((res, i) => {
        if (res.code !== 0) missing.push(`rule "${checks[i]!.r.join(' ')}" not found in chain ${checks[i]!.chain} (IPv${family})`);
      });
    }),
  );
  if (missing.length) throw new CniError(ErrorCode.Internal, `portmap rules of ${rec.containerId} are missing`, missing.join('; '));
}
