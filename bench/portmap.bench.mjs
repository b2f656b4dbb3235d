/**
 * portmap ADD and DEL medians with 0 and with 1000 pods already mapped, for
 * both of our backends, next to the Go reference (/usr/lib/cni/portmap, which
 * in Debian's 1.1.1 has the iptables backend only) in the same run.
 * Target: <= 50 ms for ADD and DEL at both levels.
 *
 * portmap does not touch the pod's namespace, so every call uses one
 * throwaway netns and a synthetic prevResult (pod addresses in 10.242.128.0/17).
 * The 1000 mapped pods hold TCP ports 30000-30999 on host IP 10.242.255.1;
 * measured pods use host IP 10.242.255.2, so nothing conflicts. Changes
 * kernel state: run under the shared lock,
 *   flock /tmp/tscni-net.lock npm run bench -- portmap
 * and it removes everything it made.
 */
import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { BIN, fmt, median, table } from './util.mjs';

const REF = '/usr/lib/cni/portmap';
const ROUNDS = Number(process.env.TSCNI_BENCH_ROUNDS ?? 15);
const FILL = 1000;
const CONCURRENCY = 6;
const NET = 'tscni-tp-bench';
const NS = 'tscni-tp-bench';

function sh(argv) {
  const r = spawnSync(argv[0], argv.slice(1), { encoding: 'utf8' });
  return { code: r.status ?? -1, stdout: r.stdout ?? '' };
}

function podIp(i) {
  return `10.242.${128 + Math.floor(i / 250)}.${(i % 250) + 2}`;
}

function prevResult(i) {
  return {
    cniVersion: '1.0.0',
    interfaces: [{ name: 'tpbench0' }, { name: `veth${i}` }, { name: 'eth0', sandbox: `/run/netns/${NS}` }],
    ips: [{ address: `${podIp(i)}/17`, interface: 2, gateway: '10.242.128.1' }],
  };
}

function call(bin, command, i, extra, hostIP, port) {
  const config = {
    cniVersion: '1.0.0',
    name: NET,
    type: 'portmap',
    snat: true,
    ...extra,
    prevResult: prevResult(i),
    runtimeConfig: { portMappings: [{ hostPort: port, containerPort: 80, protocol: 'tcp', hostIP }] },
  };
  const env = { PATH: process.env.PATH, CNI_COMMAND: command, CNI_CONTAINERID: `tp-bench-${i}`, CNI_NETNS: `/run/netns/${NS}`, CNI_IFNAME: 'eth0', CNI_PATH: BIN };
  return new Promise((resolve) => {
    const t0 = process.hrtime.bigint();
    const child = spawn(bin, [], { env, stdio: ['pipe', 'pipe', 'pipe'] });
    let out = '';
    child.stdout.on('data', (b) => (out += b));
    child.on('close', (code) => resolve({ code, ms: Number(process.hrtime.bigint() - t0) / 1e6, out }));
    child.stdin.end(JSON.stringify(config));
  });
}

async function must(p, what) {
  const r = await p;
  if (r.code !== 0) throw new Error(`${what} failed: ${r.out}`);
  return r;
}

/** Map FILL pods (ports 30000-30999 on 10.242.255.1) with CONCURRENCY calls in flight. */
async function fill(bin, extra, from) {
  let next = 0;
  await Promise.all(
    Array.from({ length: CONCURRENCY }, async () => {
      while (next < FILL) {
        const i = next++;
        await must(call(bin, 'ADD', from + i, extra, '10.242.255.1', 30000 + i), `fill ADD ${i}`);
      }
    }),
  );
}

async function unfill(bin, extra, from) {
  let next = 0;
  await Promise.all(
    Array.from({ length: CONCURRENCY }, async () => {
      while (next < FILL) {
        const i = next++;
        await call(bin, 'DEL', from + i, extra, '10.242.255.1', 30000 + i);
      }
    }),
  );
}

/** ROUNDS × (ADD then DEL) of fresh pods; returns the medians. */
async function measure(bin, extra, base) {
  const add = [];
  const del = [];
  for (let r = 0; r < ROUNDS; r++) {
    const i = base + r;
    add.push((await must(call(bin, 'ADD', i, extra, '10.242.255.2', 30000 + r), 'ADD')).ms);
    del.push((await must(call(bin, 'DEL', i, extra, '10.242.255.2', 30000 + r), 'DEL')).ms);
  }
  return { add: median(add), del: median(del) };
}

/** The shared chains and nft table outlive pods; remove them afterwards only if the bench made them. */
function sharedExists() {
  return {
    iptables: sh(['iptables', '-w', '-t', 'nat', '-S', 'CNI-HOSTPORT-DNAT']).code === 0,
    nft: sh(['nft', 'list', 'table', 'inet', 'tscni_portmap']).code === 0,
  };
}

function removeSharedIfNew(before) {
  if (!before.iptables) {
    for (const c of ['PREROUTING', 'OUTPUT']) sh(['iptables', '-w', '-t', 'nat', '-D', c, '-m', 'addrtype', '--dst-type', 'LOCAL', '-j', 'CNI-HOSTPORT-DNAT']);
    sh(['iptables', '-w', '-t', 'nat', '-D', 'POSTROUTING', '-m', 'comment', '--comment', 'CNI portfwd requiring masquerade', '-j', 'CNI-HOSTPORT-MASQ']);
    for (const c of ['CNI-HOSTPORT-DNAT', 'CNI-HOSTPORT-SETMARK', 'CNI-HOSTPORT-MASQ']) {
      sh(['iptables', '-w', '-t', 'nat', '-F', c]);
      sh(['iptables', '-w', '-t', 'nat', '-X', c]);
    }
  }
  if (!before.nft) sh(['nft', 'delete', 'table', 'inet', 'tscni_portmap']);
}

export async function run() {
  const before = sharedExists();
  const state = mkdtempSync(join(tmpdir(), 'tscni-tp-bench-'));
  sh(['ip', 'netns', 'add', NS]);
  // The pod addresses must route to a link of ours: portmap (ours and the reference's)
  // turns on route_localnet on the link that routes to the pod, and without this the
  // reference would pick the host's uplink through the default route.
  const link = sh(['ip', 'link', 'add', 'tpbench0', 'type', 'veth', 'peer', 'name', 'tpbench1']);
  if (link.code !== 0) throw new Error('portmap bench: cannot create the veth pair tpbench0/tpbench1');
  sh(['ip', 'addr', 'add', '10.242.128.1/17', 'dev', 'tpbench0']);
  sh(['ip', 'link', 'set', 'tpbench1', 'up']);
  sh(['ip', 'link', 'set', 'tpbench0', 'up']);
  const route = sh(['ip', '-json', 'route', 'get', podIp(0)]).stdout;
  if (!route.includes('"dev":"tpbench0"')) throw new Error(`portmap bench: ${podIp(0)} does not route to tpbench0: ${route}`);
  const ours = join(BIN, 'portmap');
  const rows = [['implementation', 'backend', 'ADD @0', 'DEL @0', `ADD @${FILL}`, `DEL @${FILL}`]];
  try {
    for (const backend of ['iptables', 'nftables']) {
      const extra = { backend, stateDir: join(state, backend) };
      const at0 = await measure(ours, extra, 5000);
      let refAt0;
      if (backend === 'iptables') refAt0 = await measure(REF, {}, 6000);
      console.error(`portmap bench: mapping ${FILL} pods (${backend}) ...`);
      await fill(ours, extra, 0);
      const atN = await measure(ours, extra, 5000);
      rows.push([`tscni portmap`, backend, fmt(at0.add), fmt(at0.del), fmt(atN.add), fmt(atN.del)]);
      if (refAt0) {
        // Same chains and rule layout as ours, so the 1000 pods we mapped load the reference equally.
        const refN = await measure(REF, {}, 6000);
        rows.push(['reference portmap (Go)', backend, fmt(refAt0.add), fmt(refAt0.del), fmt(refN.add), fmt(refN.del)]);
      } else {
        rows.push(['reference portmap (Go)', backend, 'n/a', 'n/a', 'n/a', 'n/a (Debian 1.1.1 has no nftables portmap)']);
      }
      await unfill(ours, extra, 0);
    }
  } finally {
    sh(['ip', 'netns', 'del', NS]);
    sh(['ip', 'link', 'del', 'tpbench0']);
    removeSharedIfNew(before);
    rmSync(state, { recursive: true, force: true });
  }
  console.log(`\nportmap: median of ${ROUNDS} ADD and ${ROUNDS} DEL, one TCP mapping each (target <= 50 ms)`);
  table(rows);
}
