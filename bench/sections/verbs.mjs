/**
 * Section 1: every verb of every plugin, ours next to the reference, at a
 * given number of pods present. The calls alternate between the
 * implementations (and, for portmap, our nftables backend) one by one.
 */
import { alternate, summarizeAll } from '../lib/alternate.mjs';
import { FIRST_LEVEL_ONLY, VERBS, driverAbsent, participantsFor } from '../lib/participants.mjs';
import { progress } from '../lib/proc.mjs';

/**
 * Measure `ctx.plugins` at `level` pods on `ctx.nets`. Returns one entry per
 * plugin: { plugin, level, rows: [{ key, label, stats: {verb: {p50,p95,n}}, errors, firstError }] },
 * or { plugin, level, rows: [], absent } when the kernel lacks the plugin's link driver.
 */
export async function measureVerbs(ctx, level) {
  const out = [];
  for (const plugin of ctx.plugins) {
    // Plugins in a node namespace of their own (or touching nothing) do not see the pods present: one level is their figure.
    if (FIRST_LEVEL_ONLY.includes(plugin) && level !== ctx.verbLevels[0]) continue;
    const absent = driverAbsent(plugin);
    if (absent) {
      progress(`verbs: ${plugin}: ${absent} in this kernel, not measured`);
      out.push({ plugin, level, rows: [], absent });
      continue;
    }
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
