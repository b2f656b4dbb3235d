/**
 * The sampling discipline of every latency figure: implementations take turns
 * call by call in one run, so machine drift (other load, thermal, page cache)
 * hits them alike.
 *
 *   round 0:  ADD a, ADD b, CHECK a, CHECK b, DEL a, DEL b, ...
 *   round 1:  ADD b, ADD a, CHECK b, CHECK a, ...          (order flipped)
 *
 * The first `warmup` rounds are run but not counted.
 */
import { summarize } from './stats.mjs';

/**
 * Run `rounds` rounds of `verbs` over `participants`; each participant has
 * `call(verb, round)` resolving to { ok, ms, err, parts? } (parts: extra named
 * timings, e.g. the bridge share of a chain ADD). Returns a Map from
 * participant to { samples: {verb: ms[]}, errors: {verb: count}, firstError }.
 */
export async function alternate(participants, verbs, { rounds, warmup = 1 }) {
  const out = new Map(participants.map((p) => [p, { samples: {}, errors: {}, firstError: '' }]));
  for (let round = 0; round < rounds + warmup; round++) {
    const order = round % 2 ? [...participants].reverse() : participants;
    for (const verb of verbs) {
      for (const p of order) {
        const r = await p.call(verb, round);
        const rec = out.get(p);
        if (!r.ok) {
          rec.errors[verb] = (rec.errors[verb] ?? 0) + 1;
          rec.firstError ||= r.err;
          continue;
        }
        if (round < warmup) continue;
        (rec.samples[verb] ??= []).push(r.ms);
        for (const [name, ms] of Object.entries(r.parts ?? {})) (rec.samples[`${verb}:${name}`] ??= []).push(ms);
      }
    }
  }
  return out;
}

/** { verb: {p50, p95, n} } of one participant's samples. */
export function summarizeAll(rec) {
  return Object.fromEntries(Object.entries(rec.samples).map(([verb, ms]) => [verb, summarize(ms)]));
}
