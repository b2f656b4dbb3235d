/**
 * Section 3: a burst of pods, `concurrency` at a time, as a node does when
 * a deployment scales up: the chain (bridge + host-local + portmap) per pod,
 * each pod in a namespace of its own made beforehand (as the runtime does).
 * Reports the wall time, per-pod latency, failed ADDs and duplicate IPs
 * among the results, then DELs everything the same way. One implementation
 * after the other, each on a fresh network.
 */
import { resultIp } from '../lib/cni.mjs';
import { removeNetwork } from '../lib/cleanup.mjs';
import { addNamespaces, chainAdd, chainDel, makeNetwork, newPod } from '../lib/network.mjs';
import { pool, progress } from '../lib/proc.mjs';
import { summarize } from '../lib/stats.mjs';

const seconds = (t0) => Number(process.hrtime.bigint() - t0) / 1e9;

/** Addresses that appear more than once, counted once per extra holder. */
function duplicates(ips) {
  const seen = new Map();
  for (const ip of ips) seen.set(ip, (seen.get(ip) ?? 0) + 1);
  return [...seen.values()].reduce((n, c) => n + c - 1, 0);
}

/** Run the burst for each of `ctx.impls` on the network spec `ctx.parallelNets[impl.key]`. */
export async function measureParallel(ctx) {
  const out = [];
  for (const impl of ctx.impls) {
    const net = makeNetwork(impl, ctx.parallelNets[impl.key]);
    try {
      const index = Array.from({ length: ctx.parallelPods }, (_, i) => i);
      addNamespaces(net, index.map((i) => `${net.name}-${i}`));
      progress(`parallel: ${impl.label}: ADD ${ctx.parallelPods} pods, ${ctx.concurrency} at a time`);
      let t0 = process.hrtime.bigint();
      const adds = await pool(index, ctx.concurrency, async (i) => {
        const pod = newPod(net, `${net.name}-${i}`);
        return { pod, r: await chainAdd(net, pod) };
      });
      const addWall = seconds(t0);
      const ok = adds.filter((a) => a.r.ok);
      const ips = ok.map((a) => resultIp(a.pod.result));
      progress(`parallel: ${impl.label}: DEL ${ctx.parallelPods} pods`);
      t0 = process.hrtime.bigint();
      const dels = await pool(adds, ctx.concurrency, ({ pod }) => chainDel(net, pod));
      const delWall = seconds(t0);
      out.push({
        key: impl.key,
        label: impl.label,
        pods: ctx.parallelPods,
        concurrency: ctx.concurrency,
        addWall,
        add: summarize(ok.map((a) => a.r.ms)),
        addErrors: adds.length - ok.length + ips.filter((ip) => !ip).length,
        duplicates: duplicates(ips.filter(Boolean)),
        delWall,
        del: summarize(dels.filter((d) => d.ok).map((d) => d.ms)),
        delErrors: dels.filter((d) => !d.ok).length,
        firstError: [...adds.map((a) => a.r), ...dels].find((r) => !r.ok)?.err ?? '',
      });
    } finally {
      removeNetwork(net);
    }
  }
  return out;
}
