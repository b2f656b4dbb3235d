/**
 * Section 2: the pod chain as libcni runs it. ADD: bridge (with host-local),
 * then portmap with bridge's result as prevResult and one host port of its
 * own; DEL: portmap, then bridge, both with the cached result. Ours and the
 * reference alternate pod by pod.
 */
import { alternate, summarizeAll } from '../lib/alternate.mjs';
import { chainAdd, chainDel, newPod } from '../lib/network.mjs';
import { progress } from '../lib/proc.mjs';

/** A participant that ADDs a fresh pod and DELs it again, reporting the per-plugin shares as parts. */
function chainParticipant(net) {
  let pod = null;
  return {
    key: net.impl.key,
    label: net.impl.label,
    call: async (verb) => {
      if (verb === 'ADD') {
        pod = newPod(net, `${net.name}-c`);
        const r = await chainAdd(net, pod);
        return { ...r, parts: { bridge: r.bridgeMs, portmap: r.portmapMs } };
      }
      const r = await chainDel(net, pod);
      return { ...r, parts: { portmap: r.portmapMs, bridge: r.bridgeMs } };
    },
  };
}

/** Chain ADD/DEL at `level` pods: { level, rows: [{ key, label, stats, errors, firstError }] }. */
export async function measureChain(ctx, level) {
  progress(`chain: bridge+portmap with ${level} pods present (${ctx.rounds} rounds)`);
  const parts = ctx.nets.map(chainParticipant);
  const res = await alternate(parts, ['ADD', 'DEL'], { rounds: ctx.rounds, warmup: ctx.warmup });
  return { level, rows: parts.map((p) => ({ key: p.key, label: p.label, stats: summarizeAll(res.get(p)), errors: res.get(p).errors, firstError: res.get(p).firstError })) };
}
