/**
 * Sections 1 and 2 share one ladder of node states. "N pods present" means
 * N pods on the node, half on each implementation's bridge and each half made
 * by that implementation (real pods: the full chain, veths, rules,
 * reservations). So node-wide state (the nat table, the host's links) is at N
 * for both, as on a real node, and per-bridge state (ports, IPAM store) at N/2.
 * After each fill the kernel is given a moment to finish per-link work (IPv6
 * DAD, MLD); then the chain (every level) and the verbs (first and last
 * level) are measured. Our nftables portmap backend gets N mappings of its own
 * (on our pods) before the verbs, so it too sees N mappings present; host-local
 * gets a store of N reservations (participants.mjs).
 */
import { callPlugin } from '../lib/cni.mjs';
import { fillTo, portmapConfig } from '../lib/network.mjs';
import { pool, progress } from '../lib/proc.mjs';
import { measureChain } from './chain.mjs';
import { measureVerbs } from './verbs.mjs';

/** Per new pod, how long to let the kernel settle after a fill (capped at 10 s). */
const SETTLE_MS_PER_POD = 5;

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** Fill the networks at once (each with its own implementation) to `level` pods in all; returns seconds taken. */
async function fillAll(ctx, level) {
  const each = Math.ceil(level / ctx.nets.length);
  const before = ctx.nets.reduce((n, net) => n + net.pods.length, 0);
  progress(`fill: ${ctx.nets.map((n) => n.name).join(', ')} to ${each} pods each (${level} on the node)`);
  const t0 = Date.now();
  await Promise.all(ctx.nets.map((net) => fillTo(net, each, ctx.fillConcurrency)));
  const seconds = (Date.now() - t0) / 1000;
  const added = ctx.nets.reduce((n, net) => n + net.pods.length, 0) - before;
  await sleep(Math.min(10_000, added * SETTLE_MS_PER_POD));
  return seconds;
}

/** Add nftables port mappings (one host port each, on our pods in turn) until there are `level`. */
async function fillNft(ctx, level) {
  const net = ctx.nets.find((n) => n.impl.key === 'ours');
  if (!net?.pods.length) return;
  const index = Array.from({ length: Math.max(0, level - ctx.nftPods.length) }, (_, k) => ctx.nftPods.length + k);
  if (!index.length) return;
  progress(`fill: ${index.length} nftables port mappings on ${net.name}`);
  await pool(index, ctx.fillConcurrency, async (i) => {
    const pod = net.pods[i % net.pods.length];
    const mapping = { cid: `${pod.cid}-n${i}`, netns: pod.ns, ifname: pod.ifname, config: portmapConfig(net, { backend: 'nftables', prevResult: pod.result, hostPort: net.nextPort++ }) };
    const r = await callPlugin(net.impl, 'portmap', 'ADD', mapping);
    if (!r.ok) throw new Error(`nft fill: ${r.err}`);
    ctx.nftPods.push(mapping);
  });
}

/** Climb the levels; returns { verbs: [...], chain: [...], fills: [{ level, seconds }] }. */
export async function climbLadder(ctx) {
  const out = { verbs: [], chain: [], fills: [] };
  const levels = ctx.sections.chain ? ctx.levels : ctx.verbLevels;
  for (const level of levels) {
    if (level > 0) out.fills.push({ level, seconds: await fillAll(ctx, level) });
    if (ctx.sections.chain) out.chain.push(await measureChain(ctx, level));
    if (ctx.sections.verbs && ctx.verbLevels.includes(level)) {
      if (ctx.plugins.includes('portmap')) await fillNft(ctx, level);
      out.verbs.push(...(await measureVerbs(ctx, level)));
    }
  }
  return out;
}
