/**
 * bridge(+host-local) ADD and DEL medians with 0 and with 1000 pods already
 * present on the bridge: ours next to the Go reference (/usr/lib/cni), in the
 * same run, on the same bridge, rules and IPAM state. Targets: ADD <= 60 ms,
 * DEL <= 60 ms, flat from 0 to 1000 pods.
 *
 * Changes kernel state: run it under the shared lock,
 *   flock /tmp/tscni-net.lock npm run bench -- bridge
 * Uses only 10.241.64.0/20, bridge "tbbench0", network "tscni-tb-bench",
 * namespaces "tscni-tb-bench-*", and removes all of it afterwards.
 */
import { spawn, spawnSync } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, symlinkSync } from 'node:fs';
import { availableParallelism, tmpdir } from 'node:os';
import { join } from 'node:path';
import { BIN, fmt, median, table } from './util.mjs';

const REF_DIR = '/usr/lib/cni';
const ROUNDS = Number(process.env.TSCNI_BENCH_ROUNDS ?? 15);
const FILL = 1000;
const FILL_NS = 10;
const CONCURRENCY = 6;
const NET = 'tscni-tb-bench';
const BRIDGE = 'tbbench0';

function sh(argv, input) {
  const r = spawnSync(argv[0], argv.slice(1), { encoding: 'utf8', input });
  return { code: r.status ?? -1, stdout: r.stdout ?? '', stderr: r.stderr ?? '' };
}

function plugin(bin, cniPath, command, cid, netns, ifname, config) {
  const env = { PATH: process.env.PATH, TSCNI_DEBUG: process.env.TSCNI_BENCH_DEBUG, CNI_COMMAND: command, CNI_CONTAINERID: cid, CNI_NETNS: netns, CNI_IFNAME: ifname, CNI_PATH: cniPath };
  const input = JSON.stringify(config);
  return new Promise((resolve) => {
    const t0 = process.hrtime.bigint();
    const child = spawn(bin, [], { env, stdio: ['pipe', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    child.stdout.on('data', (b) => (out += b));
    child.stderr.on('data', (b) => (err += b));
    child.on('close', (code) => resolve({ code, ms: Number(process.hrtime.bigint() - t0) / 1e6, out, err }));
    child.stdin.end(input);
  });
}

async function must(p, what) {
  const r = await p;
  if (r.code !== 0) throw new Error(`${what} failed: ${r.out} ${r.err}`);
  return r;
}

export async function run() {
  const tmp = mkdtempSync(join(tmpdir(), 'tscni-tb-bench-'));
  // One IPAM data dir per implementation: our host-local keeps an attachment index
  // that it rebuilds whenever another writer (the Go host-local) changed the
  // directory, so sharing one would charge that rebuild to every measured ADD.
  const dataDir = join(tmp, 'ipam');
  const refDataDir = join(tmp, 'ipam-ref');
  // Our bridge with our host-local when it is built (runs in-process), else with the Go one.
  let oursPath = BIN;
  if (!existsSync(join(BIN, 'host-local'))) {
    oursPath = join(tmp, 'path');
    mkdirSync(oursPath);
    symlinkSync(join(BIN, 'bridge'), join(oursPath, 'bridge'));
    symlinkSync(join(REF_DIR, 'host-local'), join(oursPath, 'host-local'));
  }
  const impls = [
    { name: 'tscni bridge', bin: join(BIN, 'bridge'), path: oursPath, ipam: existsSync(join(BIN, 'host-local')) ? 'tscni host-local (in-process)' : 'Go host-local' },
    { name: 'reference bridge', bin: join(REF_DIR, 'bridge'), path: REF_DIR, ipam: 'Go host-local', dataDir: refDataDir },
  ];
  const config = {
    cniVersion: '1.0.0', // the reference supports up to 1.0.0
    name: NET,
    type: 'bridge',
    bridge: BRIDGE,
    isDefaultGateway: true,
    ipMasq: true,
    ipam: { type: 'host-local', dataDir, ranges: [[{ subnet: '10.241.64.0/20' }]] },
  };
  const namespaces = [];
  const mkns = (tag) => {
    const name = `tscni-tb-bench-${tag}-${process.pid}`;
    sh(['ip', 'netns', 'add', name]);
    namespaces.push(name);
    return `/run/netns/${name}`;
  };
  const cids = [];
  const rows = [['', 'ADD @0', 'DEL @0', `ADD @${FILL}`, `DEL @${FILL}`, 'IPAM']];
  const results = new Map(impls.map((i) => [i.name, []]));

  const configFor = (impl) => (impl.dataDir ? { ...config, ipam: { ...config.ipam, dataDir: impl.dataDir } } : config);
  const measure = async () => {
    const ns = mkns(`m${results.get(impls[0].name).length}`);
    const samples = new Map(impls.map((i) => [i.name, { add: [], del: [] }]));
    for (let round = 0; round < ROUNDS; round++) {
      for (const impl of impls) {
        const cid = `bench-${impl.bin === join(REF_DIR, 'bridge') ? 'ref' : 'ours'}-${round}-${process.pid}`;
        cids.push(cid);
        const conf = configFor(impl);
        const add = await must(plugin(impl.bin, impl.path, 'ADD', cid, ns, 'eth0', conf), `${impl.name} ADD`);
        const del = await must(plugin(impl.bin, impl.path, 'DEL', cid, ns, 'eth0', { ...conf, prevResult: JSON.parse(add.out) }), `${impl.name} DEL`);
        // The first round warms caches (page cache, iptables modules): not counted.
        if (process.env.TSCNI_BENCH_DEBUG && round === ROUNDS - 1) console.log(`${impl.name} ADD ${add.ms.toFixed(1)} ms\n${add.err}DEL ${del.ms.toFixed(1)} ms\n${del.err}`);
        if (round === 0) continue;
        samples.get(impl.name).add.push(add.ms);
        samples.get(impl.name).del.push(del.ms);
      }
    }
    for (const impl of impls) {
      const s = samples.get(impl.name);
      results.get(impl.name).push(median(s.add), median(s.del));
    }
  };

  try {
    await measure();
    // Fill: FILL real pods added by our plugin (same rules and IPAM state as the reference would leave),
    // as many interfaces (eth0..ethN) in a few namespaces to keep setup cheap.
    const fillNs = Array.from({ length: FILL_NS }, (_, i) => mkns(`f${i}`));
    const t0 = Date.now();
    let next = 0;
    const worker = async () => {
      for (;;) {
        const i = next++;
        if (i >= FILL) return;
        const cid = `bench-fill-${i}-${process.pid}`;
        cids.push(cid);
        await must(plugin(impls[0].bin, oursPath, 'ADD', cid, fillNs[i % FILL_NS], `eth${Math.floor(i / FILL_NS)}`, config), 'fill ADD');
      }
    };
    await Promise.all(Array.from({ length: CONCURRENCY }, worker));
    console.log(`filled ${FILL} pods in ${((Date.now() - t0) / 1000).toFixed(1)} s (nat POSTROUTING now has ${sh(['iptables', '-w', '-t', 'nat', '-S', 'POSTROUTING']).stdout.split('\n').length - 2} rules)`);
    // The reference's IPAM directory gets the same 1000 reservations (plain reference-format files).
    mkdirSync(join(refDataDir, NET), { recursive: true });
    for (const f of readdirSync(join(dataDir, NET))) {
      if (!f.startsWith('.') && statSync(join(dataDir, NET, f)).isFile()) copyFileSync(join(dataDir, NET, f), join(refDataDir, NET, f));
    }
    // Let the kernel finish the per-interface work (IPv6 link-local DAD, MLD) of 2000 new links.
    await new Promise((r) => setTimeout(r, 10_000));
    await measure();
    console.log(`load average during the run: ${readFileSync('/proc/loadavg', 'utf8').split(' ').slice(0, 3).join(' ')} on ${availableParallelism()} CPUs`);
    for (const impl of impls) {
      const [a0, d0, a1, d1] = results.get(impl.name);
      rows.push([impl.name, fmt(a0), fmt(d0), fmt(a1), fmt(d1), impl.ipam]);
    }
    // The process-start floor of each implementation (VERSION does no work).
    const floor = (bin) => {
      const env = { PATH: process.env.PATH, CNI_COMMAND: 'VERSION' };
      const t = [];
      for (let i = 0; i < 15; i++) {
        const t0 = process.hrtime.bigint();
        spawnSync(bin, [], { env });
        t.push(Number(process.hrtime.bigint() - t0) / 1e6);
      }
      return median(t);
    };
    rows.push(...impls.map((i) => [`${i.name} VERSION`, fmt(floor(i.bin)), '', '', '', 'process start floor']));
    table(rows);
    const [a0, d0, a1, d1] = results.get(impls[0].name);
    const worst = Math.max(a0, d0, a1, d1);
    console.log(`targets ADD <= 60 ms and DEL <= 60 ms: ${Math.max(a0, a1) <= 60 && Math.max(d0, d1) <= 60 ? 'met' : 'NOT met'} (worst ${fmt(worst)}); growth 0 -> ${FILL}: ADD ${fmt(a1 - a0)}, DEL ${fmt(d1 - d0)}`);
  } finally {
    // Bulk cleanup: namespaces take their veths with them; rules go in one restore per family.
    for (const ns of namespaces) sh(['ip', 'netns', 'del', ns]);
    for (const [cmd, restore] of [['iptables', 'iptables-restore'], ['ip6tables', 'ip6tables-restore']]) {
      const text = sh([cmd, '-w', '-t', 'nat', '-S', 'POSTROUTING']).stdout;
      const lines = ['*nat'];
      const chains = new Set();
      for (const l of text.split('\n')) {
        if (!l.startsWith('-A POSTROUTING') || !l.includes(`\\"${NET}\\"`)) continue;
        lines.push(`-D POSTROUTING ${l.slice('-A POSTROUTING '.length)}`);
        const m = / -j (CNI-[0-9a-f]+)/.exec(l);
        if (m) chains.add(m[1]);
      }
      for (const c of chains) lines.push(`:${c} - [0:0]`);
      for (const c of chains) lines.push(`-X ${c}`);
      lines.push('COMMIT', '');
      if (chains.size) {
        const r = sh([restore, '--noflush', '-w'], lines.join('\n'));
        if (r.code !== 0) console.error(`cleanup ${restore}: ${r.stderr}`);
      }
    }
    sh(['ip', 'link', 'del', BRIDGE]);
    rmSync(tmp, { recursive: true, force: true });
  }
}
