/**
 * Section 4: what one plugin process costs, apart from the work it does.
 *
 *   start-up    VERSION of every plugin next to the bare runtime floor: for
 *               ours an empty program compiled with the same Bun runtime and
 *               flags, for the reference /bin/true (the exec floor; Go's own
 *               runtime start is on top of it)
 *   peak RSS    GNU time's %M (the largest process of the call's tree) for
 *               VERSION and ADD of every plugin
 *   children    processes started per ADD, CHECK and DEL, counted with
 *               `strace -f` (successful execve calls other than the plugin's own)
 */
import { mkdirSync, readdirSync, readFileSync } from 'node:fs';
import { basename, join } from 'node:path';
import { alternate, summarizeAll } from '../lib/alternate.mjs';
import { PROCESS_PLUGINS, participantsFor } from '../lib/participants.mjs';
import { SAFE_PATH, progress, timed } from '../lib/proc.mjs';
import { callPlugin } from '../lib/cni.mjs';

const RSS_SAMPLES = 3;

/** Time the implementation's floor program (no CNI at all). */
async function runFloor(impl) {
  if (!impl.floor) return { ok: false, ms: 0, err: 'no floor program' };
  const r = await timed([impl.floor], { env: { PATH: SAFE_PATH } });
  return { ok: r.code === 0, ms: r.ms, err: r.err };
}

/** Start-up latency: VERSION of each plugin and the floor, alternating between the implementations. */
async function measureStartup(ctx) {
  const parts = ctx.impls.map((impl) => ({
    key: impl.key,
    label: impl.label,
    call: (what) => (what === 'floor' ? runFloor(impl) : callPlugin(impl, what, 'VERSION')),
  }));
  const res = await alternate(parts, ['floor', ...PROCESS_PLUGINS], { rounds: ctx.startupRounds, warmup: 2 });
  return parts.map((p) => ({ key: p.key, label: p.label, stats: summarizeAll(res.get(p)) }));
}

/** Peak RSS in MB of one wrapped call, read from GNU time's output file. */
async function rssOf(ctx, run) {
  const file = join(ctx.tmp, 'rss.txt');
  const r = await run(['/usr/bin/time', '-f', '%M', '-o', file]);
  const kb = Number(readFileSync(file, 'utf8').trim().split('\n').pop());
  return { ok: r.ok, mb: kb / 1024, err: r.err };
}

/**
 * Children of one wrapped call: `strace -ff -o prefix` writes one file per
 * process; every successful execve is a process image started, minus the
 * plugin's own (`ownName`). Returns the sorted basenames.
 */
async function childrenOf(ctx, tag, ownName, run) {
  const dir = join(ctx.tmp, 'strace');
  mkdirSync(dir, { recursive: true });
  const prefix = join(dir, tag);
  const r = await run(['strace', '-ff', '-qq', '-e', 'trace=execve,execveat', '-o', prefix]);
  const execs = [];
  for (const f of readdirSync(dir).filter((f) => f.startsWith(`${tag}.`))) {
    for (const line of readFileSync(join(dir, f), 'utf8').split('\n')) {
      const m = /^execve(?:at)?\((?:[^,]+, )?"([^"]+)".* = 0$/.exec(line);
      if (m) execs.push(basename(m[1]));
    }
  }
  const own = execs.indexOf(ownName);
  if (own >= 0) execs.splice(own, 1);
  return { ok: r.ok, names: execs.sort(), err: r.err };
}

/** Peak RSS and children for every plugin participant (each with its own setup). */
async function measureProcesses(ctx) {
  const rss = [];
  const children = [];
  for (const plugin of PROCESS_PLUGINS) {
    for (const p of participantsFor(plugin, ctx.nets)) {
      progress(`process: ${p.label} ${plugin}: peak RSS${ctx.straceNote ? '' : ' and children'}`);
      try {
        await p.setup();
        const row = { plugin, key: p.key, label: p.label, VERSION: 0, ADD: 0, errors: [] };
        for (let i = 0; i < RSS_SAMPLES; i++) {
          for (const verb of ['VERSION', 'ADD']) {
            const m = await rssOf(ctx, (wrap) => p.call(verb, i, wrap));
            if (m.ok) row[verb] = Math.max(row[verb], m.mb);
            else row.errors.push(m.err);
          }
          await p.call('DEL', i);
        }
        rss.push(row);
        if (ctx.straceNote) continue;
        const kids = { plugin, key: p.key, label: p.label };
        for (const verb of ['ADD', 'CHECK', 'DEL']) {
          const tag = `${p.key}-${plugin}-${verb}`;
          kids[verb] = await childrenOf(ctx, tag, plugin, (wrap) => p.call(verb, 0, wrap));
        }
        children.push(kids);
      } finally {
        await p.teardown();
      }
    }
  }
  return { rss, children };
}

/** Peak RSS of each floor program. */
async function floorRss(ctx) {
  const out = {};
  for (const impl of ctx.impls.filter((i) => i.floor)) out[impl.key] = (await rssOf(ctx, (wrap) => timed([...wrap, impl.floor], { env: { PATH: SAFE_PATH } }))).mb;
  return out;
}

/** The whole section: { startup, rss, floorRss, children }. */
export async function measureProcess(ctx) {
  progress(`process: start-up (VERSION) against the runtime floor, ${ctx.startupRounds} rounds`);
  const startup = await measureStartup(ctx);
  const { rss, children } = await measureProcesses(ctx);
  return { startup, rss, floorRss: await floorRss(ctx), children };
}
