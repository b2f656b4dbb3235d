/**
 * The scoreboard: turns the measured figures into markdown (and the ADD
 * latency chart). Pure functions of the results object; targets are compared
 * and labelled "met"/"MISSED", never asserted.
 */
import { mdTable } from './markdown.mjs';
import { ISOLATED_PLUGINS as ISOLATED, VERBS } from './participants.mjs';
import { fmtMs, fmtRatio, verdict } from './stats.mjs';
import { lineChart } from './svg.mjs';

/** The reference chain measured earlier on this machine (ms), for comparison with today's run. */
export const REFERENCE_EARLIER = { 0: { ADD: 92, DEL: 211 }, 250: { ADD: 247, DEL: 282 }, 1000: { ADD: 694, DEL: 267 } };

/** Absolute targets. */
export const LIMITS = { versionMs: 12, rssMb: 30, parallelSeconds: 10, parallelPods: 200, dnsP99Ms: 1, dnsQps: 10_000, dnsPrivateMb: 40, dnsAddMs: 15 };

const p50 = (stats, verb) => stats?.[verb]?.p50;
const p95 = (stats, verb) => stats?.[verb]?.p95;
/** A latency cell: the figure, or "fails" when every call of that verb failed. */
const cell = (x, verb, pick) => (x && !x.stats?.[verb] && x.errors?.[verb] ? `fails (${x.errors[verb]}×)` : fmtMs(pick(x?.stats, verb)));
const mb = (v) => (v ? `${v.toFixed(1)} MB` : 'n/a');
const short = (s) => (s.length > 240 ? `${s.slice(0, 240)}…` : s);
const row = (rows, key) => rows.find((r) => r.key === key);

/** Every target with its figure and verdict: [{ name, figure, limit, ok }]. */
export function buildTargets(r) {
  const targets = [];
  const verbs = (r.ladder?.verbs ?? []).filter((e) => !e.absent);
  if (verbs.length) {
    const misses = new Map(); // "plugin verb" -> levels missed
    let total = 0;
    let met = 0;
    for (const e of verbs) {
      const ours = row(e.rows, 'ours');
      const ref = row(e.rows, 'ref');
      for (const verb of VERBS) {
        const a = p50(ours?.stats, verb);
        const b = p50(ref?.stats, verb);
        if (!Number.isFinite(a) || !Number.isFinite(b)) continue;
        total++;
        if (a <= b) met++;
        else misses.set(`${e.plugin} ${verb}`, [...(misses.get(`${e.plugin} ${verb}`) ?? []), e.level]);
      }
    }
    const levels = [...new Set(verbs.map((e) => e.level))].join(' and ');
    const missed = [...misses].map(([what, lv]) => `${what} @${lv.join('/')}`).join(', ');
    targets.push({
      name: `every verb of ${[...new Set(verbs.map((e) => e.plugin))].join(', ')} ≤ reference median, at ${levels} pods (portmap: iptables)`,
      figure: total ? `${met} of ${total} met${missed ? `; missed: ${missed}` : ''}` : 'n/a',
      limit: 'reference p50, same run',
      ok: total ? met === total : undefined,
    });
  }
  const chain0 = r.ladder?.chain?.find((c) => c.level === 0);
  if (chain0) {
    const a = p50(row(chain0.rows, 'ours')?.stats, 'ADD');
    const b = p50(row(chain0.rows, 'ref')?.stats, 'ADD');
    targets.push({ name: 'chain ADD (bridge + portmap) at 0 pods ≤ reference', figure: `${fmtMs(a)} vs ${fmtMs(b)} (${fmtRatio(a, b)})`, limit: 'reference p50', ok: Number.isFinite(a) && Number.isFinite(b) ? a <= b : undefined });
  }
  const startup = row(r.process?.startup ?? [], 'ours');
  if (startup) {
    const worst = Object.entries(startup.stats).filter(([k]) => k !== 'floor').sort((x, y) => y[1].p50 - x[1].p50)[0];
    if (worst) targets.push({ name: 'VERSION (start-up) of every plugin', figure: `worst ${fmtMs(worst[1].p50)} (${worst[0]})`, limit: `≤ ${LIMITS.versionMs} ms`, ok: worst[1].p50 <= LIMITS.versionMs });
  }
  const rss = (r.process?.rss ?? []).filter((x) => x.key.startsWith('ours'));
  if (rss.length) {
    const worst = rss.flatMap((x) => [['VERSION', x], ['ADD', x]].map(([v, y]) => ({ what: `${y.plugin} ${v}`, mb: y[v] }))).sort((x, y) => y.mb - x.mb)[0];
    targets.push({ name: 'peak RSS per plugin call', figure: `worst ${mb(worst.mb)} (${worst.what})`, limit: `≤ ${LIMITS.rssMb} MB`, ok: worst.mb > 0 ? worst.mb <= LIMITS.rssMb : undefined });
  }
  const par = row(r.parallel ?? [], 'ours');
  if (par) {
    const limit = (LIMITS.parallelSeconds * par.pods) / LIMITS.parallelPods;
    const scaled = par.pods === LIMITS.parallelPods ? '' : ` (scaled from ${LIMITS.parallelPods} pods ≤ ${LIMITS.parallelSeconds} s)`;
    targets.push({
      name: `${par.pods} pods, ${par.concurrency} in parallel: wall time, errors, duplicate IPs`,
      figure: `${par.addWall.toFixed(1)} s, ${par.addErrors} errors, ${par.duplicates} duplicates`,
      limit: `≤ ${limit.toFixed(1)} s${scaled}, 0, 0`,
      ok: par.addWall <= limit && par.addErrors === 0 && par.duplicates === 0,
    });
  }
  const dns = r.dns?.levels?.at(-1);
  if (dns) {
    targets.push({ name: `name server, ${dns.records} records: local answer p99 (one query at a time)`, figure: fmtMs(dns.latency.p99), limit: `≤ ${LIMITS.dnsP99Ms} ms`, ok: dns.latency.p99 <= LIMITS.dnsP99Ms && dns.latency.lost === 0 && dns.latency.wrong === 0 });
    targets.push({ name: `name server, ${dns.records} records: local answers per second (${dns.throughput.inflight} in flight)`, figure: `${Math.round(dns.throughput.qps)}/s`, limit: `≥ ${LIMITS.dnsQps}/s`, ok: dns.throughput.qps >= LIMITS.dnsQps });
    const m = r.dns.memory;
    targets.push({ name: `name server's private memory after the load (${dns.records} records)`, figure: m ? `${mb(m.anonMb)} (resident ${mb(m.rssMb)}, of which ${mb(m.fileMb)} executable pages)` : 'n/a', limit: `≤ ${LIMITS.dnsPrivateMb} MB`, ok: m ? m.anonMb <= LIMITS.dnsPrivateMb : undefined });
    targets.push({ name: `dnsname's share of a pod's ADD (${dns.records} records, server running)`, figure: fmtMs(dns.add.p50), limit: `≤ ${LIMITS.dnsAddMs} ms`, ok: dns.add.p50 <= LIMITS.dnsAddMs });
  }
  return targets;
}

function dnsSection(r) {
  const d = r.dns;
  const out = [
    '## 5. Names: the host\'s name server and the dnsname plugin',
    '',
    `One \`tscni dns serve\` for the host (started by dnsname's first ADD, ${fmtMs(d.first)} for that ADD), listening for one network on a bench bridge; queries are A lookups of random pods' \`name.domain\` over UDP from this host. There is no reference to compare with (the reference plugins have no name server).`,
    '',
  ];
  const header = ['records', 'dnsname ADD p50', 'p95', 'DEL p50', 'p95', 'answer p50', 'p99', 'lost / wrong', 'answers/s', `p99 ≤ ${LIMITS.dnsP99Ms} ms`, `≥ ${LIMITS.dnsQps}/s`];
  const rows = d.levels.map((l) => [
    String(l.records),
    fmtMs(l.add.p50),
    fmtMs(l.add.p95),
    fmtMs(l.del.p50),
    fmtMs(l.del.p95),
    `${(l.latency.p50 * 1000).toFixed(0)} µs`,
    `${(l.latency.p99 * 1000).toFixed(0)} µs`,
    `${l.latency.lost} / ${l.latency.wrong}`,
    `${Math.round(l.throughput.qps)} (${l.throughput.inflight} in flight)`,
    verdict(l.latency.p99 <= LIMITS.dnsP99Ms),
    verdict(l.throughput.qps >= LIMITS.dnsQps),
  ]);
  out.push(mdTable(header, rows), '');
  if (d.memory) out.push(`Server memory after the load at ${d.levels.at(-1)?.records} records: ${mb(d.memory.rssMb)} resident (peak ${mb(d.memory.hwmMb)}): ${mb(d.memory.anonMb)} its own (anonymous), ${mb(d.memory.fileMb)} pages of the executable (file-backed, shared with the page cache and every plugin call).`, '');
  out.push('"dnsname ADD" is the plugin\'s own process in a pod\'s chain (record written, server already listening); it adds that much to a pod\'s ADD.', '');
  return out;
}

/** Failure lines for rows that had errors. */
function failures(label, rows) {
  return rows
    .filter((x) => Object.keys(x.errors ?? {}).length)
    .map((x) => `- ${x.label} ${label}: ${Object.entries(x.errors).map(([v, n]) => `${v} failed ${n}×`).join(', ')} (first: ${short(x.firstError)})`);
}

function verbSection(r) {
  const out = ['## 1. Every verb, every plugin', '', 'Medians (p50) and p95 of one process per call; tscni and the reference alternate call by call. "pods" = pods present on the node (half on each implementation\'s bridge).', ''];
  const byPlugin = new Map();
  for (const e of r.ladder.verbs) byPlugin.set(e.plugin, [...(byPlugin.get(e.plugin) ?? []), e]);
  for (const [plugin, entries] of byPlugin) {
    const absent = entries.find((e) => e.absent)?.absent;
    if (absent) {
      // No figure for either implementation: the kernel cannot create the link (never a made-up number).
      const header = ['verb', 'tscni', 'reference'];
      out.push(`### ${plugin}`, '', mdTable(header, VERBS.map((v) => [v, absent, absent]), ['l', 'l', 'l']), '');
      continue;
    }
    const portmap = plugin === 'portmap';
    const header = ['verb', 'pods', ...(portmap ? ['backend'] : []), 'tscni p50', 'p95', 'reference p50', 'p95', 'tscni/ref', '≤ reference'];
    const rows = [];
    for (const verb of VERBS) {
      for (const e of entries) {
        const ref = row(e.rows, 'ref');
        for (const ours of e.rows.filter((x) => x.key.startsWith('ours'))) {
          const nft = ours.key === 'ours-nft';
          const a = p50(ours.stats, verb);
          const b = nft ? undefined : p50(ref?.stats, verb);
          const refCell = (pick) => (nft ? 'n/a' : cell(ref, verb, pick));
          rows.push([verb, String(e.level), ...(portmap ? [nft ? 'nftables' : 'iptables'] : []), cell(ours, verb, p50), cell(ours, verb, p95), refCell(p50), refCell(p95), fmtRatio(a, b), Number.isFinite(a) && Number.isFinite(b) ? verdict(a <= b) : 'n/a']);
        }
      }
    }
    out.push(`### ${plugin}`, '', mdTable(header, rows, header.map((_, i) => (i < (portmap ? 3 : 2) ? 'l' : 'r'))), '');
    if (ISOLATED.includes(plugin)) out.push(`${plugin} runs inside a namespace of its own that plays the node (entered with \`nsenter --net\`, whose exec both implementations pay), on a veth there${plugin === 'ptp' ? ' (the host ends, addresses and masquerade rules land there)' : plugin === 'host-device' ? ' that each ADD moves into the pod and each DEL moves back' : ' as the master'}; pods present on the real node do not reach it, so it is measured at the first level only.`, '');
    if (plugin === 'static') out.push('static IPAM alone (it keeps no state and touches nothing): the same address from the config on every ADD; measured at the first level only.', '');
    if (plugin === 'host-local') out.push('host-local runs alone on a store of its own holding N reservations (written in host-local\'s on-disk format before the first round; ours indexes them in the warm-up round), as each bridge\'s store holds only N/2.', '');
    if (portmap) {
      out.push('The reference (Debian 1.1.1) has no nftables backend: n/a. Its CHECK fails for IPv4-only pods on a host with ip6tables: it looks for an IPv6 DNAT chain it never made (containernetworking/plugins#819, fixed after 1.1.1), so there is no reference CHECK figure.', '');
    }
    const fails = entries.flatMap((e) => failures(`${plugin} @${e.level}`, e.rows));
    if (fails.length) out.push(...fails, '');
  }
  return out;
}

function chainSection(r) {
  const out = ['## 2. The pod chain as libcni runs it', '', 'ADD: bridge (+ host-local), then portmap with bridge\'s result and one host port of its own; DEL: portmap, then bridge, both with the cached result. Alternating pod by pod.', ''];
  const header = ['pods', 'implementation', 'ADD p50', 'p95', 'bridge', 'portmap', 'DEL p50', 'p95', 'ADD tscni/ref', 'DEL tscni/ref', 'reference earlier (ADD / DEL)'];
  const rows = [];
  for (const c of r.ladder.chain) {
    const ref = row(c.rows, 'ref');
    for (const x of c.rows) {
      const isRef = x.key === 'ref';
      const earlier = REFERENCE_EARLIER[c.level];
      rows.push([
        String(c.level),
        x.label,
        cell(x, 'ADD', p50),
        cell(x, 'ADD', p95),
        fmtMs(p50(x.stats, 'ADD:bridge')),
        fmtMs(p50(x.stats, 'ADD:portmap')),
        cell(x, 'DEL', p50),
        cell(x, 'DEL', p95),
        isRef ? '' : fmtRatio(p50(x.stats, 'ADD'), p50(ref?.stats, 'ADD')),
        isRef ? '' : fmtRatio(p50(x.stats, 'DEL'), p50(ref?.stats, 'DEL')),
        isRef && earlier ? `${earlier.ADD} / ${earlier.DEL} ms` : '',
      ]);
    }
  }
  out.push(mdTable(header, rows, header.map((_, i) => (i < 2 ? 'l' : 'r'))), '');
  out.push('"bridge" and "portmap" are the medians of each plugin\'s share of the chain ADD.', '');
  const fails = r.ladder.chain.flatMap((c) => failures(`chain @${c.level}`, c.rows));
  if (fails.length) out.push(...fails, '');
  if (r.ladder.fills.length) out.push(`Fill (not a target): ${r.ladder.fills.map((f) => `to ${f.level} pods in ${f.seconds.toFixed(0)} s`).join(', ')} (both networks at once, each by its own implementation, ${r.params.fillConcurrency} in flight each).`, '');
  return out;
}

function parallelSection(r) {
  const out = ['## 3. Parallel ADD', '', `Pods ADDed ${r.parallel[0]?.concurrency} at a time (chain bridge + host-local + portmap, a namespace per pod made beforehand), then DELed the same way; one implementation after the other, each on a fresh network.`, ''];
  const header = ['implementation', 'pods', 'ADD wall', 'pods/s', 'per-pod ADD p50', 'p95', 'ADD errors', 'duplicate IPs', 'DEL wall', 'DEL errors'];
  const rows = r.parallel.map((p) => [p.label, String(p.pods), `${p.addWall.toFixed(1)} s`, (p.pods / p.addWall).toFixed(1), fmtMs(p.add.p50), fmtMs(p.add.p95), String(p.addErrors), String(p.duplicates), `${p.delWall.toFixed(1)} s`, String(p.delErrors)]);
  out.push(mdTable(header, rows), '', 'The reference took about 42 s for 200 pods in an earlier run on this machine.', '');
  for (const p of r.parallel.filter((x) => x.firstError)) out.push(`- ${p.label}: first error: ${short(p.firstError)}`);
  return out;
}

function processSection(r) {
  const pr = r.process;
  const out = ['## 4. Per process', '', '### Start-up: VERSION against the runtime floor', ''];
  const plugins = Object.keys(pr.startup[0]?.stats ?? {}).filter((k) => k !== 'floor');
  const header = ['implementation', 'floor', 'floor p50', ...plugins.map((p) => `${p} p50 (p95)`), 'over floor', `≤ ${LIMITS.versionMs} ms`];
  const rows = pr.startup.map((s) => {
    const worst = Math.max(...plugins.map((p) => p50(s.stats, p) ?? NaN));
    const floorName = s.key === 'ours' ? 'empty Bun program (bun build --compile)' : '/bin/true';
    return [s.label, floorName, fmtMs(p50(s.stats, 'floor')), ...plugins.map((p) => `${fmtMs(p50(s.stats, p))} (${fmtMs(p95(s.stats, p))})`), fmtMs(worst - p50(s.stats, 'floor')), s.key === 'ours' ? verdict(worst <= LIMITS.versionMs) : ''];
  });
  out.push(mdTable(header, rows, header.map((_, i) => (i < 2 ? 'l' : 'r'))), '');
  out.push('### Peak RSS (GNU time %M: the largest process of the call, children included)', '');
  const rssHeader = ['plugin', 'implementation', 'VERSION', 'ADD', `≤ ${LIMITS.rssMb} MB`];
  const rssRows = pr.rss.map((x) => [x.plugin, x.label, mb(x.VERSION), mb(x.ADD), x.key.startsWith('ours') ? verdict(Math.max(x.VERSION, x.ADD) <= LIMITS.rssMb) : '']);
  for (const [key, v] of Object.entries(pr.floorRss)) rssRows.push(['(floor)', key === 'ours' ? 'empty Bun program' : '/bin/true', mb(v), '', '']);
  out.push(mdTable(rssHeader, rssRows, rssHeader.map((_, i) => (i < 2 ? 'l' : 'r'))), '');
  if (pr.children.length) {
    out.push('### Processes started per call (strace -f: execve other than the plugin\'s own)', '');
    const names = (c) => {
      if (!c) return 'n/a';
      const counts = new Map();
      for (const n of c.names) counts.set(n, (counts.get(n) ?? 0) + 1);
      const list = [...counts].map(([n, k]) => (k > 1 ? `${n} ×${k}` : n)).join(', ');
      return `${c.names.length}${list ? `: ${list}` : ''}${c.ok ? '' : ' (call failed)'}`;
    };
    const kidHeader = ['plugin', 'implementation', 'ADD', 'CHECK', 'DEL'];
    out.push(mdTable(kidHeader, pr.children.map((c) => [c.plugin, c.label, names(c.ADD), names(c.CHECK), names(c.DEL)]), ['l', 'l', 'l', 'l', 'l']), '');
  }
  return out;
}

/** The whole report as markdown. */
export function renderReport(r) {
  const h = r.host;
  const out = [
    `# tscni benchmark (${r.params.quick ? 'quick' : 'full'} run)`,
    '',
    `- date: ${h.date}; run took ${(r.wallSeconds / 60).toFixed(1)} min`,
    `- machine: ${h.cpu}, ${h.cores} cores, ${h.memGb} GiB, kernel ${h.kernel}`,
    `- tscni: ${h.tscni}; Bun ${h.bun}`,
    `- reference: ${h.reference} (/usr/lib/cni)`,
    `- samples: ${r.params.rounds} per verb and implementation after ${r.params.warmup} warm-up round(s); pods present: ${r.params.levels.join(' / ')} (verbs at ${r.params.verbLevels.join(' and ')})`,
    `- "N pods present" = N pods on the node, half on each implementation's own bridge (own subnet, IPAM store and host ports), each half made by that implementation: node-wide state (nat table, links) is at N for both, per-bridge state (ports, IPAM reservations) at N/2`,
    '',
  ];
  if (r.notes.length) out.push('Notes:', '', ...r.notes.map((n) => `- ${n}`), '');
  const targets = buildTargets(r);
  if (targets.length) out.push('## Targets (reported, not asserted)', '', mdTable(['target', 'tscni', 'limit', ''], targets.map((t) => [t.name, t.figure, t.limit, verdict(t.ok)]), ['l', 'l', 'l', 'l']), '');
  if (r.ladder?.verbs.length) out.push(...verbSection(r));
  if (r.ladder?.chain.length) out.push(...chainSection(r));
  if (r.parallel?.length) out.push(...parallelSection(r), '');
  if (r.process) out.push(...processSection(r));
  if (r.dns) out.push(...dnsSection(r));
  if (r.ladder?.chain.length) out.push('![ADD latency against pods present](add-latency.svg)', '');
  return `${out.join('\n').replace(/\n{3,}/g, '\n\n').trim()}\n`;
}

/** The ADD latency chart (chain ADD and its bridge share, per implementation), or null without chain data. */
export function renderAddSvg(r) {
  const chain = r.ladder?.chain ?? [];
  if (!chain.length) return null;
  const colors = { ours: '#1f77b4', ref: '#d62728' };
  const series = [];
  for (const key of ['ours', 'ref']) {
    const label = row(chain[0].rows, key)?.label;
    if (!label) continue;
    const pts = (verb) => chain.map((c) => [c.level, p50(row(c.rows, key)?.stats, verb)]);
    series.push({ name: `${label}: chain ADD`, color: colors[key], points: pts('ADD') });
    series.push({ name: `${label}: bridge ADD`, color: colors[key], dashed: true, points: pts('ADD:bridge') });
  }
  return lineChart({ title: `ADD latency (median) against pods present — ${r.host.date.slice(0, 10)}`, xLabel: 'pods present on the node (half on each bridge)', yLabel: 'ms', xTicks: chain.map((c) => c.level), series });
}
