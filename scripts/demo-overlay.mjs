/**
 * The demo's optional last step (`npm run demo -- --overlay`, or
 * TSCNI_DEMO_OVERLAY=1): pods on two "hosts" talking over the VXLAN overlay,
 * each host's pod subnet leased in etcd (issue 17). Optional because it
 * starts etcd (Debian's etcd-server).
 *
 *   netns tscni-dov-ul: bridge dovul0 172.30.245.1/24, etcd on 172.30.245.1:2379 (the underlay)
 *     |-- netns tscni-dov-a: ul0 172.30.245.11 -- tscni.245 (VXLAN) -- bridge dov0 -- pod tscni-dov-pa
 *     `-- netns tscni-dov-b: ul0 172.30.245.12 -- tscni.245 (VXLAN) -- bridge dov0 -- pod tscni-dov-pb
 *
 * Each host runs the runner inside its namespace (`ip netns exec <host> tscni
 * up ...`) with its own NETCONFPATH, cache and state dirs, as a separate
 * machine would. Nothing is added to the machine's own namespace: etcd listens
 * on an address that exists only inside the demo's underlay namespace, and the
 * pods' cluster range 10.245.0.0/16 is used by nothing else in the project.
 * Everything is removed at the end (pods DEL'd, so the agents stop and the
 * leases are given back; etcd stopped by pid; namespaces and files removed),
 * also when a check fails and on Ctrl-C.
 */
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { setImmediate as tick, setTimeout as sleep } from 'node:timers/promises';

const UL = 'tscni-dov-ul';
const UL_IP = '172.30.245.1';
const ETCD_URL = `http://${UL_IP}:2379`;
const NET = 'demo-overlay';
const PREFIX = '/tscni-demo';
const CLUSTER = '10.245.0.0/16';
const VNI = 245;
const DEV = `tscni.${VNI}`;
const HOSTS = [
  { name: 'a', ns: 'tscni-dov-a', ip: '172.30.245.11', pod: 'tscni-dov-pa' },
  { name: 'b', ns: 'tscni-dov-b', ip: '172.30.245.12', pod: 'tscni-dov-pb' },
];
const NAMESPACES = [...HOSTS.map((h) => h.pod), ...HOSTS.map((h) => h.ns), UL];

export const OVERLAY_HINT = 'overlay step skipped (it starts etcd): run it with `npm run demo -- --overlay` (or TSCNI_DEMO_OVERLAY=1)';

/** /proc/<pid>/stat's start time, or undefined when the process is gone (or a zombie). */
function startTime(pid) {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return f[0] === 'Z' ? undefined : f[19];
  } catch {
    return undefined;
  }
}

/** Signal a process of ours by pid; it may have exited meanwhile. */
function kill(pid, signal) {
  try {
    process.kill(pid, signal);
  } catch {
    // gone already
  }
}

/** The agent's pid file ("pid start-time"), when it names a live process: the one the vxlan plugin started. */
function agentPid(h) {
  try {
    const [pid, start] = readFileSync(join(h.dir, 'overlay', `${NET}.agent.pid`), 'utf8').trim().split(' ');
    return startTime(Number(pid)) === start ? Number(pid) : undefined;
  } catch {
    return undefined;
  }
}

/**
 * Run the overlay step. `demo` carries the narration helpers of scripts/demo.mjs
 * (step, show, ok, bad, check) and the paths of tscni and node; `enabled`
 * false prints one line saying how to run it.
 */
export async function overlayStep(demo) {
  const { enabled, step, show, ok, bad, check, tscni, node } = demo;
  if (!enabled) {
    console.log(`\n${OVERLAY_HINT}`);
    return;
  }
  const t0 = Date.now();
  step('Optional: pods on two hosts over a VXLAN overlay, subnets leased in etcd');
  if (spawnSync('sh', ['-c', 'command -v etcd']).status !== 0) {
    bad('the overlay step needs etcd, which is not installed: apt-get install etcd-server (Debian/Ubuntu), then npm run demo -- --overlay');
    return;
  }
  const taken = NAMESPACES.filter((ns) => existsSync(`/run/netns/${ns}`));
  if (taken.length) {
    bad(`network namespace(s) ${taken.join(', ')} already exist; the overlay step will not touch them`);
    return;
  }

  const work = mkdtempSync(join(tmpdir(), 'tscni-demo-overlay-'));
  for (const h of HOSTS) h.dir = join(work, `host-${h.name}`);
  const baseEnv = { ...process.env, CNI_PATH: dirname(tscni) };
  for (const k of ['CAP_ARGS', 'CNI_ARGS', 'CNI_IFNAME', 'NETCONFPATH', 'CNI_CACHE_DIR', 'TSCNI_STATE_DIR']) delete baseEnv[k];
  // Each host is its own machine for the runner: its own net.d, result cache and pod records.
  const hostEnv = (h) => ({ ...baseEnv, NETCONFPATH: join(h.dir, 'net.d'), CNI_CACHE_DIR: join(h.dir, 'cache'), TSCNI_STATE_DIR: join(h.dir, 'state') });

  /** The demo's runner (echoed unless quiet; returns {code, out, err}), with the overlay's environment by default. */
  const sh = (argv, { env = baseEnv, quiet = false } = {}) => demo.sh(argv, { env, quiet });
  const quiet = (argv, env) => sh(argv, { quiet: true, env });
  const must = (argv) => {
    const r = quiet(argv);
    if (r.code !== 0) throw new Error(`${argv.join(' ')}: ${r.err || `exit ${r.code}`}`);
  };
  const inHost = (h, argv, opts = {}) => sh(['ip', 'netns', 'exec', h.ns, ...argv], { env: hostEnv(h), ...opts });
  /** A node one-liner in a namespace. */
  const nodeIn = (ns, code) => quiet(['ip', 'netns', 'exec', ns, node, '-e', code]);

  // Ctrl-C: finish the current command, then tear down (and let the demo's own teardown run after).
  let interrupted = false;
  const onSigint = () => {
    if (!interrupted) console.log('\n   interrupted: tearing the overlay step down ...');
    interrupted = true;
  };
  process.on('SIGINT', onSigint);
  const interruption = () => Object.assign(new Error('interrupted (SIGINT)'), { stack: 'interrupted (SIGINT)' });
  const guard = async () => {
    await tick();
    if (interrupted) throw interruption();
  };
  const waitFor = async (what, fn, ms) => {
    const start = Date.now();
    for (;;) {
      await guard();
      if (fn()) return Date.now() - start;
      if (Date.now() - start > ms) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
      await sleep(100);
    }
  };

  let etcd;
  let server;
  const podIp = new Map();
  let failed;
  try {
    console.log(`   underlay: netns ${UL}, bridge dovul0 ${UL_IP}/24 with etcd; hosts ${HOSTS.map((h) => `${h.ns} (${h.ip})`).join(', ')} on veths to it`);
    console.log(`   network ${NET} on each host: bridge dov0 (mtu 1450) + etcd-subnet (${CLUSTER}, /24 per host) + vxlan (VNI ${VNI}, device ${DEV})`);

    // ---- the underlay and the hosts
    must(['ip', 'netns', 'add', UL]);
    must(['ip', '-n', UL, 'link', 'set', 'lo', 'up']);
    must(['ip', '-n', UL, 'link', 'add', 'dovul0', 'type', 'bridge']);
    must(['ip', '-n', UL, 'addr', 'add', `${UL_IP}/24`, 'dev', 'dovul0']);
    must(['ip', '-n', UL, 'link', 'set', 'dovul0', 'up']);
    for (const h of HOSTS) {
      must(['ip', 'netns', 'add', h.ns]);
      must(['ip', '-n', h.ns, 'link', 'set', 'lo', 'up']);
      must(['ip', '-n', UL, 'link', 'add', `dovul-${h.name}`, 'type', 'veth', 'peer', 'name', 'ul0', 'netns', h.ns]);
      must(['ip', '-n', UL, 'link', 'set', `dovul-${h.name}`, 'master', 'dovul0', 'up']);
      must(['ip', '-n', h.ns, 'addr', 'add', `${h.ip}/24`, 'dev', 'ul0']);
      must(['ip', '-n', h.ns, 'link', 'set', 'ul0', 'up']);
    }

    // ---- etcd, inside the underlay namespace only
    const dataDir = join(work, 'etcd');
    const peer = `http://${UL_IP}:2380`;
    const argv = ['ip', 'netns', 'exec', UL, 'etcd', '--name', 'tscni-demo', '--data-dir', dataDir, '--listen-client-urls', ETCD_URL, '--advertise-client-urls', ETCD_URL,
      '--listen-peer-urls', peer, '--initial-advertise-peer-urls', peer, '--initial-cluster', `tscni-demo=${peer}`, '--log-level', 'error'];
    show(`ip netns exec ${UL} etcd --data-dir ${dataDir} --listen-client-urls ${ETCD_URL} ...`);
    let etcdErr = '';
    etcd = spawn(argv[0], argv.slice(1), { stdio: ['ignore', 'ignore', 'pipe'] });
    etcd.stderr.on('data', (d) => (etcdErr += d.toString()));
    const health = `fetch('${ETCD_URL}/health',{signal:AbortSignal.timeout(500)}).then(r=>r.json()).then(j=>process.exit(j.health==='true'?0:1),()=>process.exit(1))`;
    const ms = await waitFor('etcd to answer', () => {
      if (etcd.exitCode !== null || etcd.signalCode !== null) throw new Error(`etcd exited: ${etcdErr.trim().slice(-1000)}`);
      return nodeIn(UL, health).code === 0;
    }, 15_000);
    const version = /etcd Version: (\S+)/.exec(quiet(['etcd', '--version']).out)?.[1] ?? '?';
    ok(`etcd ${version} (pid ${etcd.pid}) answers at ${ETCD_URL} after ${ms} ms, an address that exists only inside ${UL}`);

    // ---- one pod on each host, through the runner inside that host
    for (const h of HOSTS) {
      await guard();
      const conflist = {
        cniVersion: '1.1.0',
        name: NET,
        plugins: [
          {
            type: 'bridge',
            bridge: 'dov0',
            isGateway: true,
            mtu: 1450,
            ipam: {
              type: 'etcd-subnet',
              etcd: { endpoints: [ETCD_URL], prefix: PREFIX },
              clusterCIDR: CLUSTER,
              subnetLen: 24,
              hostId: `demo-host-${h.name}`,
              publicIp: h.ip,
              leaseTTL: 10,
              dataDir: join(h.dir, 'overlay'),
            },
          },
          { type: 'vxlan', vni: VNI, dataDir: join(h.dir, 'overlay') },
        ],
      };
      mkdirSync(join(h.dir, 'net.d'), { recursive: true });
      writeFileSync(join(h.dir, 'net.d', `40-${NET}.conflist`), JSON.stringify(conflist, null, 2));
      // The pod's namespace is made out here (a namespace made under `ip netns exec` would stay in its private mounts).
      must(['ip', 'netns', 'add', h.pod]);
      must(['ip', '-n', h.pod, 'link', 'set', 'lo', 'up']);
      const up = inHost(h, [tscni, 'up', NET, h.pod]);
      check(up.code === 0, `host ${h.name}: tscni up ${NET} ${h.pod} (bridge, etcd-subnet, vxlan run inside ${h.ns})`, up.err);
      const addr = /inet (\d+\.\d+\.\d+\.\d+)/.exec(quiet([tscni, 'exec', h.pod, '--', 'ip', '-4', '-o', 'addr', 'show', 'dev', 'eth0'], hostEnv(h)).out)?.[1];
      if (addr) podIp.set(h.name, addr);
    }
    await guard();

    // ---- the leases: one subnet per host, in etcd
    const subnets = HOSTS.map((h) => {
      try {
        return JSON.parse(readFileSync(join(h.dir, 'overlay', `${NET}.lease.json`), 'utf8')).subnet;
      } catch {
        return undefined;
      }
    });
    const listCode = `const p=${JSON.stringify(`${PREFIX}/${NET}/subnets/`)};const e=p.slice(0,-1)+String.fromCharCode(p.charCodeAt(p.length-1)+1);fetch('${ETCD_URL}/v3/kv/range',{method:'POST',body:JSON.stringify({key:btoa(p),range_end:btoa(e)}),signal:AbortSignal.timeout(3000)}).then(r=>r.json()).then(j=>{for(const kv of j.kvs??[])console.log(atob(kv.key)+' '+atob(kv.value))},x=>{console.error(String(x));process.exit(1)})`;
    const records = () => {
      const r = nodeIn(UL, listCode);
      return r.code === 0 ? r.out.split('\n').filter(Boolean) : undefined;
    };
    console.log(`   etcd's records under ${PREFIX}/${NET}/subnets/ (what every host needs to reach the others):`);
    for (const line of records() ?? []) console.log(`     ${line}`);
    HOSTS.forEach((h, i) => console.log(`   host ${h.name} (${h.ip}): leased ${subnets[i]}, pod ${h.pod} has ${podIp.get(h.name)}`));
    const inSubnet = (ip, subnet) => ip !== undefined && subnet !== undefined && ip.split('.').slice(0, 3).join('.') === subnet.split('.').slice(0, 3).join('.');
    check(subnets.every(Boolean) && new Set(subnets).size === HOSTS.length && HOSTS.every((h, i) => inSubnet(podIp.get(h.name), subnets[i])), "each host leased a different /24, and its pod's address is in it");

    // ---- the agents program the other host's subnet into the VXLAN device
    const [ha, hb] = HOSTS;
    const [subA, subB] = subnets;
    const routes = (h) => quiet(['ip', '-n', h.ns, '-4', '-o', 'route', 'show', 'dev', DEV]).out;
    await waitFor('the agents to program the routes', () => routes(ha).includes(subB) && routes(hb).includes(subA), 10_000);
    sh(['ip', '-n', ha.ns, 'route', 'show', 'dev', DEV]);
    ok(`each host's overlay agent (started by the vxlan plugin) routes the other host's subnet into ${DEV}, next hop its VTEP`);

    // ---- pod on a pings pod on b by its pod address
    const ipA = podIp.get('a') ?? '';
    const ipB = podIp.get('b') ?? '';
    const txPackets = () => {
      try {
        return JSON.parse(quiet(['ip', '-n', ha.ns, '-j', '-s', 'link', 'show', DEV]).out)[0].stats64.tx.packets;
      } catch {
        return -1;
      }
    };
    const txBefore = txPackets();
    check(sh([tscni, 'exec', ha.pod, '--', 'ping', '-c', '2', '-W', '2', ipB], { env: hostEnv(ha) }).code === 0, `${ha.pod} on host a (${ipA}) pings ${hb.pod} on host b (${ipB})`);
    const txAfter = txPackets();
    check(txAfter - txBefore >= 2, `the packets left host a through ${DEV} (tx packets ${txBefore} -> ${txAfter}), VXLAN over the underlay to ${hb.ip}`);
    await guard();

    // ---- the peer sees the pod's own address: no NAT
    const serve = `require('node:http').createServer((q,s)=>s.end('you are '+q.socket.remoteAddress+'\\n')).listen(8000,${JSON.stringify(ipB)},()=>console.log('up'))`;
    server = spawn('nsenter', [`--net=/run/netns/${hb.pod}`, '--', node, '-e', serve], { stdio: ['ignore', 'pipe', 'inherit'] });
    await new Promise((resolve, reject) => {
      server.stdout.once('data', resolve);
      server.once('exit', (c) => reject(new Error(`the server in ${hb.pod} exited with ${c}`)));
    });
    const fetchB = `fetch('http://${ipB}:8000/',{signal:AbortSignal.timeout(3000)}).then(r=>r.text()).then(t=>console.log(t.trim()),e=>{console.error(String(e.cause??e));process.exit(1)})`;
    const seen = sh([tscni, 'exec', ha.pod, '--', node, '-e', fetchB], { env: hostEnv(ha) });
    check(seen.out === `you are ${ipA}`, `an HTTP server in ${hb.pod} sees the client as ${ipA}, the pod's own address (no NAT)`, seen.out || seen.err);
  } catch (e) {
    failed = e;
  } finally {
    // ---- teardown: DEL the pods (agents stop, leases go back), then etcd, namespaces, files
    console.log('   teardown of the overlay step:');
    const agents = HOSTS.map((h) => (h.dir ? agentPid(h) : undefined));
    for (const h of [...HOSTS].reverse()) {
      if (h.dir && existsSync(join(h.dir, 'state', 'pods', `${h.pod}.json`))) {
        const down = inHost(h, [tscni, 'down', h.pod]);
        if (down.code !== 0 && !interrupted) bad(`host ${h.name}: tscni down ${h.pod} (${down.err})`);
      }
    }
    if (!failed && !interrupted) {
      const left = (() => {
        const r = nodeIn(UL, `fetch('${ETCD_URL}/v3/kv/range',{method:'POST',body:JSON.stringify({key:btoa('${PREFIX}/'),range_end:btoa('${PREFIX}0')})}).then(r=>r.json()).then(j=>console.log(j.count??0),()=>process.exit(1))`);
        return r.code === 0 ? Number(r.out) : undefined;
      })();
      const devices = HOSTS.filter((h) => quiet(['ip', '-n', h.ns, 'link', 'show', DEV]).code === 0);
      check(agents.every((p) => p !== undefined) && agents.every((p) => startTime(p) === undefined) && devices.length === 0 && left === 0,
        `DEL of each host's last pod stopped its agent (pids ${agents.join(', ')}), deleted ${DEV} and gave the subnet back in etcd (${left} records left)`);
    }
    // Whatever DEL did not stop: the agents the plugin started (their pid files name them), the server, etcd.
    for (const h of HOSTS) {
      const pid = h.dir ? agentPid(h) : undefined;
      if (pid) kill(pid, 'SIGKILL');
    }
    if (server && server.exitCode === null && server.signalCode === null) server.kill('SIGKILL');
    if (etcd && etcd.exitCode === null && etcd.signalCode === null) {
      const exited = new Promise((r) => etcd.once('exit', r));
      kill(etcd.pid, 'SIGTERM');
      await Promise.race([exited, sleep(5_000)]);
      if (etcd.exitCode === null && etcd.signalCode === null) {
        kill(etcd.pid, 'SIGKILL');
        await exited;
      }
    }
    for (const ns of NAMESPACES) if (existsSync(`/run/netns/${ns}`)) quiet(['ip', 'netns', 'del', ns]);
    rmSync(work, { recursive: true, force: true });
    const leftovers = [
      ...NAMESPACES.filter((ns) => existsSync(`/run/netns/${ns}`)).map((ns) => `netns ${ns}`),
      ...(etcd && startTime(etcd.pid) !== undefined ? [`etcd (pid ${etcd.pid})`] : []),
      ...agents.filter((p) => p !== undefined && startTime(p) !== undefined).map((p) => `agent pid ${p}`),
      ...(existsSync(work) ? [work] : []),
    ];
    process.off('SIGINT', onSigint);
    if (leftovers.length) bad(`the overlay step left behind: ${leftovers.join(', ')}`);
    else ok(`etcd stopped, the overlay namespaces and files removed (${((Date.now() - t0) / 1000).toFixed(1)} s for this step)`);
  }
  if (failed) throw failed;
  if (interrupted) throw interruption();
}
