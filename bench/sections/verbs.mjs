/**
 * Section 1: every verb of every plugin, ours next to the reference, at a
 * given number of pods present. The calls alternate between the
 * implementations (and, for portmap, our nftables backend) one by one.
 */
import { alternate, summarizeAll } from '../lib/alternate.mjs';
import { VERBS, participantsFor } from '../lib/participants.mjs';
import { progress } from '../lib/proc.mjs';

/**
 * Measure `ctx.plugins` at `level` pods on `ctx.nets`. Returns one entry per
 * plugin: { plugin, level, rows: [{ key, label, stats: {verb: {p50,p95,n}}, errors, firstError }] }.
 */
export async function measureVerbs(ctx, level) {
  const out = [];
  for (const plugin of ctx.plugins) {
    progress(`verbs: ${plugin} with ${level} pods present (${ctx.rounds} rounds)`);
    const parts = participantsFor(plugin, ctx.nets, level);
    try {
      for (const p of parts) await p.setup();
      const res = await alternate(parts, VERBS, { rounds: ctx.rounds, warmup: ctx.warmup });
      out.push({ plugin, level, rows: parts.map((p) => ({ key: p.key, label: p.label, stats: summarizeAll(res.get(p)), errors: res.get(p).errors, firstError: res.get(p).firstError })) });
    } finally {
      for (const p of parts) await p.teardown();
    }
  }
  return out;
}
