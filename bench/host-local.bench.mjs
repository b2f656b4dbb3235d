/**
 * host-local: ADD and DEL p50 with an empty store and with 10,000
 * reservations, ours next to Debian's reference plugin, in the same run.
 * Each configuration gets its own temp dataDir, pre-populated directly on
 * disk (reference file format), removed afterwards. ADD needs a network
 * namespace path: a private one held by an `unshare --net sleep` child.
 */
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { BIN, fmt, median, table, timeSpawn } from './util.mjs';

const REFERENCE = '/usr/lib/cni/host-local';
const NET = 'bench';
const ITERATIONS = 40;
const POPULATION = 10_000;

function v4(n) {
  return `10.240.${(n >> 8) & 255}.${n & 255}`;
}

/** 10,000 reservations from 10.240.0.2 on, and last_reserved_ip.0 at the last one. */
function populate(dataDir, count) {
  const dir = join(dataDir, NET);
  mkdirSync(dir, { recursive: true });
  for (let i = 0; i < count; i++) writeFileSync(join(dir, v4(i + 2)), `pop${i}\r\neth0`);
  if (count) writeFileSync(join(dir, 'last_reserved_ip.0'), v4(count + 1));
}

function call(bin, command, id, netns, config) {
  const env = { PATH: process.env.PATH, CNI_COMMAND: command, CNI_CONTAINERID: id, CNI_IFNAME: 'eth0', CNI_PATH: '/nonexistent' };
  if (command === 'ADD') env.CNI_NETNS = netns;
  const r = timeSpawn(bin, [], { env, input: JSON.stringify(config) });
  if (r.status !== 0) throw new Error(`${bin} ${command} ${id}: ${r.stdout} ${r.stderr}`);
  return r.ms;
}

function setup(population) {
  const dataDir = mkdtempSync(join(tmpdir(), 'tscni-hl-bench-'));
  populate(dataDir, population);
  const config = { cniVersion: '1.0.0', name: NET, type: 'bridge', ipam: { type: 'host-local', dataDir, ranges: [[{ subnet: '10.240.0.0/16' }]] } };
  return { dataDir, config, population, add: [], del: [], firstAdd: 0 };
}

/** Runs the configurations interleaved (one ADD each in turn, then one DEL each), so load changes hit all alike. */
function measure(impls, netns) {
  const cases = [];
  for (const [name, bin] of impls) for (const pop of [0, POPULATION]) cases.push({ name, bin, ...setup(pop) });
  try {
    for (const c of cases) {
      // Separate: ours builds its attachment index on the first call after the direct population.
      c.firstAdd = call(c.bin, 'ADD', 'warm', netns, c.config);
      call(c.bin, 'DEL', 'warm', netns, c.config);
    }
    for (let i = 0; i < ITERATIONS; i++) for (const c of cases) c.add.push(call(c.bin, 'ADD', `b${i}`, netns, c.config));
    for (let i = 0; i < ITERATIONS; i++) for (const c of cases) c.del.push(call(c.bin, 'DEL', `b${i}`, netns, c.config));
    return cases.map((c) => ({ name: c.name, population: c.population, firstAdd: c.firstAdd, add: median(c.add), del: median(c.del) }));
  } finally {
    for (const c of cases) rmSync(c.dataDir, { recursive: true, force: true });
  }
}

/** Our plugin in-process through the real skel: the store's own cost, without the ~40+ ms process start. */
async function measureInProcess(netns) {
  const { pluginMain } = await import('../lib/cni/skel.ts');
  const { hostLocalPlugin } = await import('../ipam/host-local/plugin.ts');
  const { inspectNetns } = await import('../lib/netns.ts');
  const cases = [setup(0), setup(POPULATION)];
  const once = async (c, command, id) => {
    const env = { CNI_COMMAND: command, CNI_CONTAINERID: id, CNI_IFNAME: 'eth0', CNI_PATH: '/nonexistent', CNI_NETNS: netns };
    let stdout = '';
    const t0 = process.hrtime.bigint();
    const code = await pluginMain(hostLocalPlugin, {
      env,
      readStdin: async () => Buffer.from(JSON.stringify(c.config)),
      writeStdout: (t) => (stdout += t),
      writeStderr: () => {},
      inspectNetns,
    });
    const ms = Number(process.hrtime.bigint() - t0) / 1e6;
    if (code !== 0) throw new Error(`in-process ${command} ${id}: ${stdout}`);
    return ms;
  };
  try {
    // Warm up the JIT (and, for ours, build the index after the direct population).
    for (let i = 0; i < 50; i++) {
      for (const c of cases) {
        await once(c, 'ADD', `w${i}`);
        await once(c, 'DEL', `w${i}`);
      }
    }
    for (let i = 0; i < 300; i++) {
      for (const c of cases) {
        c.add.push(await once(c, 'ADD', `i${i}`));
        c.del.push(await once(c, 'DEL', `i${i}`));
      }
    }
    return cases.map((c) => ({ population: c.population, add: median(c.add), del: median(c.del) }));
  } finally {
    for (const c of cases) rmSync(c.dataDir, { recursive: true, force: true });
  }
}

export async function run() {
  const ours = join(BIN, 'host-local');
  if (!existsSync(ours)) throw new Error('dist/bin/host-local is missing: npm run build');
  const holder = spawn('unshare', ['--net', 'sleep', '600'], { stdio: 'ignore' });
  const netns = `/proc/${holder.pid}/ns/net`;
  try {
    const own = statSync('/proc/self/ns/net').ino;
    for (let i = 0; i < 200 && (!existsSync(netns) || statSync(netns).ino === own); i++) spawnSync('sleep', ['0.01']);
    const impls = [['tscni', ours]];
    if (existsSync(REFERENCE)) impls.push(['reference', REFERENCE]);
    const results = measure(impls, netns);
    const rows = [['plugin (process per call)', 'reservations', 'ADD p50', 'DEL p50', 'first ADD']];
    for (const r of results) rows.push([r.name, String(r.population), fmt(r.add), fmt(r.del), fmt(r.firstAdd)]);
    table(rows);
    const get = (name, pop) => results.find((r) => r.name === name && r.population === pop);
    const ratio = (a, b) => `${((a / b - 1) * 100).toFixed(1)}%`;
    console.log(`tscni ADD p50 at ${POPULATION} vs empty: ${ratio(get('tscni', POPULATION).add, get('tscni', 0).add)} (target: within 20%); DEL: ${ratio(get('tscni', POPULATION).del, get('tscni', 0).del)}`);
    console.log(`(${ITERATIONS} ADDs then ${ITERATIONS} DELs per row, interleaved; "first ADD" includes our one-time index build after the direct population)`);
    const inproc = await measureInProcess(netns);
    console.log('');
    table([['tscni in-process (no process start)', 'reservations', 'ADD p50', 'DEL p50'], ...inproc.map((r) => ['tscni', String(r.population), `${r.add.toFixed(2)} ms`, `${r.del.toFixed(2)} ms`])]);
  } finally {
    holder.kill('SIGKILL');
  }
}
