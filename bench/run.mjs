#!/usr/bin/env node
/**
 * npm run bench: the project's scoreboard. tscni's plugins (dist/bin) against
 * Debian's Go reference plugins (/usr/lib/cni), in one run, calls alternating.
 * Figures only: targets are printed as met/MISSED, never asserted.
 *
 *   node bench/run.mjs [--quick] [process|verbs|chain|parallel|dns|<plugin> ...]
 *
 * Sections (sections/*.mjs): 4. per process (start-up, peak RSS, children),
 * then 1. every verb and 2. the pod chain on a ladder of pods present, then
 * 3. a parallel burst, then 5. the name server (dnsname) alone. A plugin name as filter runs section 1 for that plugin.
 * Writes bench/results/latest.md and add-latency.svg; progress goes to stderr.
 *
 * Needs root; changes network state only under names starting "tscnib-" and in
 * 10.241.64.0/18 (ptp, macvlan, ipvlan, vlan and host-device only inside
 * namespaces of their own, on veths made there), and holds /tmp/tscni-net.lock for the whole run (re-running
 * itself under flock if needed). Everything is removed at the end, on SIGINT/
 * SIGTERM too; leftovers of a killed run are removed at the next start.
 */
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { callPlugin } from './lib/cni.mjs';
import { listOurs, removeOurs, restoreHost, snapshotHost } from './lib/cleanup.mjs';
import { REF_DIR, ROOT, buildBunFloor, describeHost, ensureReference, ensureTool, isRoot, snapshotOurs } from './lib/host.mjs';
import { ensureLocked } from './lib/lock.mjs';
import { makeNetwork } from './lib/network.mjs';
import { PLUGINS } from './lib/participants.mjs';
import { killInFlight, pool, progress, sh } from './lib/proc.mjs';
import { renderAddSvg, renderReport } from './lib/report.mjs';
import { climbLadder } from './sections/ladder.mjs';
import { measureDns } from './sections/dns.mjs';
import { measureParallel } from './sections/parallel.mjs';
import { measureProcess } from './sections/process.mjs';

const SECTIONS = ['process', 'verbs', 'chain', 'parallel', 'dns'];
const RESULTS = join(ROOT, 'bench', 'results');

/** Run parameters: --quick takes 1-2 minutes, the full run about 10 (under 20) on 2 cores. */
function parameters(argv) {
  const quick = argv.includes('--quick');
  const filters = argv.filter((a) => !a.startsWith('--'));
  const unknown = filters.filter((f) => !SECTIONS.includes(f) && !PLUGINS.includes(f));
  if (unknown.length) {
    console.error(`bench: unknown filter ${unknown.join(', ')} (sections: ${SECTIONS.join(', ')}; plugins: ${PLUGINS.join(', ')})`);
    process.exit(2);
  }
  const pluginFilters = filters.filter((f) => PLUGINS.includes(f));
  const sections = Object.fromEntries(SECTIONS.map((s) => [s, !filters.length || filters.includes(s) || (s === 'verbs' && pluginFilters.length > 0)]));
  const base = quick
    ? { rounds: 10, levels: [0, 100], verbLevels: [0, 100], startupRounds: 30, parallelPods: 40 }
    : { rounds: 15, levels: [0, 250, 1000], verbLevels: [0, 1000], startupRounds: 30, parallelPods: 200 };
  if (process.env.TSCNI_BENCH_ROUNDS) base.rounds = Number(process.env.TSCNI_BENCH_ROUNDS);
  return { quick, sections, plugins: pluginFilters.length ? pluginFilters : PLUGINS, warmup: 1, concurrency: 8, fillConcurrency: 3, ...base };
}

/** The private networks: one per implementation for the ladder, one each for the parallel burst. */
function networkSpecs(tmp) {
  return {
    main: {
      ours: { name: 'tscnib-ours', subnet: '10.241.64.0/20', gateway: '10.241.64.1', portBase: 40000, tmp },
      ref: { name: 'tscnib-ref', subnet: '10.241.80.0/20', gateway: '10.241.80.1', portBase: 45000, tmp },
    },
    parallel: {
      ours: { name: 'tscnib-oursp', subnet: '10.241.96.0/22', gateway: '10.241.96.1', portBase: 50000, tmp },
      ref: { name: 'tscnib-refp', subnet: '10.241.100.0/22', gateway: '10.241.100.1', portBase: 55000, tmp },
    },
  };
}

/** What the before/after check compares: our names, CNI lines in iptables-save, nft tables. */
function hostFootprint() {
  const ours = listOurs();
  return {
    ours: ours.netns.length + ours.links.length + ours.rules.length,
    cniLines: sh(['iptables-save']).stdout.split('\n').filter((l) => l.includes('CNI')).length,
    nftTables: sh(['nft', 'list', 'tables']).stdout.trim(),
  };
}

async function main() {
  const params = parameters(process.argv.slice(2));
  if (!isRoot()) {
    console.error('bench: needs root (network namespaces, iptables, nftables)');
    process.exit(2);
  }
  await ensureLocked();
  const started = Date.now();
  const notes = [];
  const refNote = ensureReference();
  if (refNote) notes.push(refNote);
  const straceNote = ensureTool('/usr/bin/strace', 'strace');
  if (straceNote) notes.push(`${straceNote}: children are not counted`);
  const timeNote = ensureTool('/usr/bin/time', 'time');
  if (timeNote && params.sections.process) throw new Error(`${timeNote}: peak RSS cannot be measured`);

  const leftovers = listOurs();
  if (leftovers.netns.length + leftovers.links.length + leftovers.rules.length) {
    progress(`removing leftovers of an earlier run: ${leftovers.netns.length} namespaces, ${leftovers.links.length} links, ${leftovers.rules.length} rules`);
    removeOurs();
  }
  const footprint = hostFootprint();
  const before = snapshotHost();
  const tmp = mkdtempSync(join(tmpdir(), 'tscni-bench-'));
  const ctx = { ...params, tmp, straceNote, impls: [], nets: [], parallelNets: networkSpecs(tmp).parallel, nftPods: [] };
  let cleaned = false;
  const cleanup = () => {
    if (cleaned) return;
    cleaned = true;
    killInFlight();
    removeOurs();
    restoreHost(before);
    rmSync(tmp, { recursive: true, force: true });
  };
  for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP']) {
    process.on(sig, () => {
      progress(`${sig}: stopping children and cleaning up`);
      if (before.nft && ctx.nftPods.length) progress('the nft table inet tscni_portmap existed before: our mappings in it are left (DEL them or rerun the bench)');
      cleanup();
      process.exit(130);
    });
  }

  const results = { params, notes, host: describeHost() };
  let aborted = false;
  const section = async (name, fn) => {
    try {
      return await fn();
    } catch (e) {
      aborted = true;
      progress(`${name} aborted: ${e.stack ?? e}`);
      notes.push(`${name} aborted: ${e.message}`);
      killInFlight();
      removeOurs();
      return undefined;
    }
  };
  try {
    const ours = { key: 'ours', label: 'tscni', binDir: snapshotOurs(join(tmp, 'bin')).binDir, floor: buildBunFloor(join(tmp, 'floor')) };
    ctx.impls = [ours, ...(refNote ? [] : [{ key: 'ref', label: 'reference', binDir: REF_DIR, floor: '/bin/true' }])];
    ctx.nets = ctx.impls.map((i) => makeNetwork(i, networkSpecs(tmp).main[i.key]));
    if (params.sections.process) results.process = await section('per-process section', () => measureProcess(ctx));
    if (params.sections.verbs || params.sections.chain) results.ladder = await section('verbs/chain ladder', () => climbLadder(ctx));
    if (before.nft && ctx.nftPods.length) await pool(ctx.nftPods, 4, (m) => callPlugin(ours, 'portmap', 'DEL', m));
    removeOurs();
    if (params.sections.parallel) results.parallel = await section('parallel section', () => measureParallel(ctx));
    if (params.sections.dns) results.dns = await section('names section', () => measureDns(ctx));
  } finally {
    cleanup();
  }

  const after = hostFootprint();
  const clean = after.ours === 0 && after.cniLines === footprint.cniLines && after.nftTables === footprint.nftTables;
  notes.push(
    clean
      ? `cleanup check: nothing of ours left (no tscnib-* namespace, link or rule; iptables-save CNI lines ${footprint.cniLines} before and after; nft tables unchanged)`
      : `cleanup check FAILED: ${after.ours} tscnib-* objects left; iptables-save CNI lines ${footprint.cniLines} before, ${after.cniLines} after; nft tables before [${footprint.nftTables}] after [${after.nftTables}]`,
  );
  results.wallSeconds = (Date.now() - started) / 1000;
  const md = renderReport(results);
  mkdirSync(RESULTS, { recursive: true });
  writeFileSync(join(RESULTS, 'latest.md'), md);
  const svg = renderAddSvg(results);
  if (svg) writeFileSync(join(RESULTS, 'add-latency.svg'), svg);
  process.stdout.write(md);
  progress(`done in ${(results.wallSeconds / 60).toFixed(1)} min; wrote bench/results/latest.md${svg ? ' and add-latency.svg' : ''}`);
  if (aborted || !clean) process.exitCode = 1;
}

await main();
