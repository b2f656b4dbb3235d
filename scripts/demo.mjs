#!/usr/bin/env node
/**
 * npm run demo: Docker's network modes done with tscni, with real traffic,
 * each step verified. Everything runs through the runner CLI (dist/bin/tscni)
 * the way a user would type it, with the plugins from dist/bin.
 *
 *   outside host (netns tscni-demo-out, 10.252.0.2) --veth-- host 10.252.0.1
 *   network demo-a: bridge tscni-demo0 10.250.0.1/24 + host-local + portmap + firewall (same-bridge)
 *   network demo-b: bridge tscni-demo1 10.251.0.1/24 + host-local + firewall (same-bridge)
 *   network demo-icc: bridge tscni-fdemo2 10.248.254.1/24 + host-local + portmap + firewall (isolated)
 *   network demo-none: loopback only
 *   networks demo-names, demo-names2: `tscni network create` (bridges tscni-dnm0/1,
 *     10.247.253.0/24 and 10.247.254.0/24) with the dnsname plugin and the host's name server
 *
 * It tears everything down and restores the sysctls it found, even when a
 * step fails. Traffic only goes to namespaces the demo created (and to the
 * host's own 127.0.0.1 for the published port).
 */
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { overlayStep } from './demo-overlay.mjs';
import { removeSharedIfNew, snapshotShared } from './lib/portmap-shared.mjs';

const root = join(import.meta.dirname, '..');
const bin = join(root, 'dist', 'bin');
const tscni = join(bin, 'tscni');
const node = process.execPath;
const work = mkdtempSync(join(tmpdir(), 'tscni-demo-'));
const env = {
  ...process.env,
  NETCONFPATH: join(work, 'net.d'),
  CNI_PATH: bin,
  CNI_CACHE_DIR: join(work, 'cache'),
  TSCNI_STATE_DIR: join(work, 'state'),
  // `tscni network create` names its bridges tscni-dnm0, tscni-dnm1, ... and keeps host-local's state in the work dir.
  TSCNI_BRIDGE_PREFIX: 'tscni-dnm',
  TSCNI_IPAM_DIR: join(work, 'ipam'),
  // The name server answers the demo's names; other names go nowhere (the demo sends no traffic off the host).
  TSCNI_DNS_UPSTREAM: 'none',
};
delete env.CAP_ARGS;
delete env.CNI_ARGS;
delete env.CNI_IFNAME;

const OUT_NS = 'tscni-demo-out';
const OUT_HOST_IF = 'tscni-dout0';
const BRIDGES = ['tscni-demo0', 'tscni-demo1', 'tscni-fdemo2', 'tscni-dnm0', 'tscni-dnm1'];
const PODS = ['web', 'db', 'app', 'sidecar', 'lonely', 'other', 'iso1', 'iso2', 'p2p1', 'p2p2', 'mac1', 'mac2', 'web1', 'web2', 'stranger'];
const NAMED_NETWORKS = ['demo-names', 'demo-names2'];
// The macvlan "master": a veth whose peer is the outside host's second NIC (a lan made by the demo).
const MACVLAN_MASTER = 'tscni-dmv0';
const servers = [];
// The optional last step (it starts etcd): npm run demo -- --overlay, or TSCNI_DEMO_OVERLAY=1.
const overlay = process.argv.includes('--overlay') || process.env.TSCNI_DEMO_OVERLAY === '1';
const failures = [];
const gaps = [];

// ---- narration and checks -------------------------------------------------

let stepNo = 0;
const step = (title) => console.log(`\n\x1b[1m== ${++stepNo}. ${title}\x1b[0m`);
const show = (cmdline) => console.log(`\x1b[2m$ ${cmdline}\x1b[0m`);
const ok = (what) => console.log(`   \x1b[32mverified:\x1b[0m ${what}`);
const bad = (what) => {
  console.log(`   \x1b[31mFAILED:\x1b[0m ${what}`);
  failures.push(what);
};
const check = (cond, what, detail = '') => (cond ? ok(what) : bad(`${what}${detail ? ` (${detail})` : ''}`));

/** Run a command (with the demo's environment unless `env`), echoing it unless `quiet`; returns {code, out, err}. */
function sh(argv, { quiet = false, input, env: runEnv = env } = {}) {
  if (!quiet) show(argv.map((a) => (/[\s"'$]/.test(a) ? `'${a}'` : a)).join(' ').replaceAll(tscni, 'tscni'));
  const r = spawnSync(argv[0], argv.slice(1), { env: runEnv, encoding: 'utf8', input });
  const out = (r.stdout ?? '').trim();
  const err = (r.stderr ?? '').trim();
  if (!quiet) {
    if (out) console.log(out.replace(/^/gm, '   '));
    if (err) console.log(err.replace(/^/gm, '   '));
  }
  return { code: r.status ?? 1, out, err };
}
const cli = (...args) => sh([tscni, ...args]);
const quiet = (argv) => sh(argv, { quiet: true });

/** A node one-liner inside a pod (node is the runtime npm installed). */
const inPod = (pod, code, opts) => sh([tscni, 'exec', pod, '--', node, '-e', code], opts);
const fetchCode = (url) =>
  `fetch(${JSON.stringify(url)},{signal:AbortSignal.timeout(3000)}).then(r=>r.text()).then(t=>console.log(t.trim()),e=>{console.error(String(e.cause??e));process.exit(1)})`;

/** A small HTTP server inside a namespace; killed by pid at the end. */
function startServer(netnsPath, port, body, host = '0.0.0.0') {
  const code = `require('node:http').createServer((q,s)=>s.end(${body}+'\\n')).listen(${port},${JSON.stringify(host)},()=>console.log('up'))`;
  const child = spawn('nsenter', [`--net=${netnsPath}`, '--', node, '-e', code], { stdio: ['ignore', 'pipe', 'inherit'] });
  servers.push(child);
  return new Promise((resolve, reject) => {
    child.stdout.once('data', () => resolve(child));
    child.once('exit', (c) => reject(new Error(`server in ${netnsPath} exited with ${c}`)));
  });
}

// ---- prerequisites --------------------------------------------------------

const TOOLS = { ip: 'iproute2', nsenter: 'util-linux', ping: 'iputils-ping', iptables: 'iptables', nft: 'nftables', conntrack: 'conntrack' };

function missingTools() {
  return Object.keys(TOOLS).filter((t) => spawnSync('sh', ['-c', `command -v ${t}`]).status !== 0);
}

function ensureTools() {
  let missing = missingTools();
  if (missing.length === 0) return;
  const pkgs = [...new Set(missing.map((t) => TOOLS[t]))];
  const debian = existsSync('/etc/debian_version') && spawnSync('sh', ['-c', 'command -v apt-get']).status === 0;
  if (debian && process.getuid?.() === 0) {
    console.log(`installing ${pkgs.join(' ')} with apt-get ...`);
    spawnSync('apt-get', ['update', '-qq'], { stdio: 'inherit' });
    spawnSync('apt-get', ['install', '-y', '-qq', ...pkgs], { stdio: 'inherit', env: { ...process.env, DEBIAN_FRONTEND: 'noninteractive' } });
    missing = missingTools();
  }
  if (missing.length) {
    console.error(`demo: missing ${missing.join(', ')}. Install them: apt-get install -y ${[...new Set(missing.map((t) => TOOLS[t]))].join(' ')}`);
    process.exit(1);
  }
}

// ---- setup and teardown ---------------------------------------------------

const SYSCTLS = ['net.ipv4.ip_forward', 'net.ipv4.conf.all.route_localnet'];
const savedSysctls = new Map();

// portmap's shared chains and nft table (the reference leaves its chains in place too); removed at the end only if the demo made them.
let sharedBefore = { iptables: true, ip6tables: true, nft: true };

/** The firewall plugin as the demo's conflists chain it (its records in the demo's work dir). */
const firewall = (ingressPolicy) => ({ type: 'firewall', ingressPolicy, stateDir: join(work, 'firewall') });

// The firewall plugin's chains: it removes them with the last pod; checked at the end when the demo made them.
const FIREWALL_CHAINS = ['CNI-FORWARD', 'CNI-ISOLATION-STAGE-1'];
let firewallChainsBefore = [];

function writeConfigs() {
  const dir = env.NETCONFPATH;
  mkdirSync(dir, { recursive: true });
  const ipam = (subnet, gw) => ({
    type: 'host-local',
    dataDir: join(work, 'ipam'),
    ranges: [[{ subnet, gateway: gw }]],
    routes: [{ dst: '0.0.0.0/0' }],
  });
  const a = {
    cniVersion: '1.1.0',
    name: 'demo-a',
    plugins: [
      { type: 'bridge', bridge: BRIDGES[0], isGateway: true, ipMasq: true, hairpinMode: true, ipam: ipam('10.250.0.0/24', '10.250.0.1') },
      { type: 'portmap', capabilities: { portMappings: true }, snat: true, stateDir: join(work, 'portmap') },
      firewall('same-bridge'),
    ],
  };
  const b = {
    cniVersion: '1.1.0',
    name: 'demo-b',
    plugins: [{ type: 'bridge', bridge: BRIDGES[1], isGateway: true, ipMasq: true, ipam: ipam('10.251.0.0/24', '10.251.0.1') }, firewall('same-bridge')],
  };
  const icc = {
    cniVersion: '1.1.0',
    name: 'demo-icc',
    plugins: [
      { type: 'bridge', bridge: BRIDGES[2], isGateway: true, ipMasq: true, ipam: ipam('10.248.254.0/24', '10.248.254.1') },
      { type: 'portmap', capabilities: { portMappings: true }, snat: true, stateDir: join(work, 'portmap') },
      firewall('isolated'),
    ],
  };
  const none = { cniVersion: '1.1.0', name: 'demo-none', plugins: [{ type: 'loopback' }] };
  // Seed 004: a point-to-point veth per pod, no bridge; the host routes between them.
  const p2p = {
    cniVersion: '1.1.0',
    name: 'demo-p2p',
    plugins: [{ type: 'ptp', ipMasq: true, ipam: { type: 'host-local', dataDir: join(work, 'ipam'), ranges: [[{ subnet: '10.249.250.0/24' }]], routes: [{ dst: '0.0.0.0/0' }] } }],
  };
  // Seed 001: pods with their own MAC on the (demo's) lan, macvlan bridge mode.
  const mac = {
    cniVersion: '1.1.0',
    name: 'demo-macvlan',
    plugins: [{ type: 'macvlan', master: MACVLAN_MASTER, mode: 'bridge', ipam: { type: 'host-local', dataDir: join(work, 'ipam'), ranges: [[{ subnet: '10.252.10.0/24', rangeStart: '10.252.10.10', rangeEnd: '10.252.10.20' }]] } }],
  };
  writeFileSync(join(dir, '50-demo-p2p.conflist'), JSON.stringify(p2p, null, 2));
  writeFileSync(join(dir, '60-demo-macvlan.conflist'), JSON.stringify(mac, null, 2));
  writeFileSync(join(dir, '40-demo-icc.conflist'), JSON.stringify(icc, null, 2));
  writeFileSync(join(dir, '10-demo-a.conflist'), JSON.stringify(a, null, 2));
  writeFileSync(join(dir, '20-demo-b.conflist'), JSON.stringify(b, null, 2));
  writeFileSync(join(dir, '30-demo-none.conflist'), JSON.stringify(none, null, 2));
}

function createOutsideHost() {
  quiet(['ip', 'netns', 'add', OUT_NS]);
  quiet(['ip', 'link', 'add', OUT_HOST_IF, 'type', 'veth', 'peer', 'name', 'eth0', 'netns', OUT_NS]);
  quiet(['ip', 'addr', 'add', '10.252.0.1/24', 'dev', OUT_HOST_IF]);
  quiet(['ip', 'link', 'set', OUT_HOST_IF, 'up']);
  quiet(['ip', '-n', OUT_NS, 'addr', 'add', '10.252.0.2/24', 'dev', 'eth0']);
  quiet(['ip', '-n', OUT_NS, 'link', 'set', 'eth0', 'up']);
  quiet(['ip', '-n', OUT_NS, 'link', 'set', 'lo', 'up']);
  // The macvlan lan: the host end is the master (no address), the outside host answers at 10.252.10.254.
  quiet(['ip', 'link', 'add', MACVLAN_MASTER, 'type', 'veth', 'peer', 'name', 'lan0', 'netns', OUT_NS]);
  quiet(['ip', 'link', 'set', MACVLAN_MASTER, 'up']);
  quiet(['ip', '-n', OUT_NS, 'addr', 'add', '10.252.10.254/24', 'dev', 'lan0']);
  quiet(['ip', '-n', OUT_NS, 'link', 'set', 'lan0', 'up']);
}

function teardown() {
  console.log('\n== teardown');
  for (const s of servers) if (s.exitCode === null) s.kill('SIGTERM');
  for (const pod of [...PODS].reverse()) {
    if (existsSync(join(env.TSCNI_STATE_DIR, 'pods', `${pod}.json`))) sh([tscni, 'down', pod], { quiet: false });
  }
  for (const n of NAMED_NETWORKS) if (existsSync(join(env.NETCONFPATH, `${n}.conflist`))) sh([tscni, 'network', 'rm', '--force', n]);
  const nameServers = dnsServers();
  if (nameServers.length) bad(`the name server was still running after its networks were removed (pids ${nameServers.join(', ')}; now killed)`);
  for (const pid of nameServers) process.kill(pid, 'SIGKILL');
  quiet(['ip', 'netns', 'del', OUT_NS]);
  quiet(['ip', 'link', 'del', OUT_HOST_IF]);
  quiet(['ip', 'link', 'del', MACVLAN_MASTER]);
  for (const b of BRIDGES) quiet(['ip', 'link', 'del', b]);
  for (const [k, v] of savedSysctls) quiet(['sysctl', '-q', '-w', `${k}=${v}`]);
  removeSharedIfNew(sharedBefore);
  const leftovers = [];
  for (const ns of quiet(['ip', 'netns', 'list']).out.split('\n')) if (/^(tscni-demo|web|db|app|lonely|other|iso1|iso2|p2p1|p2p2|mac1|mac2|web1|web2|stranger)\b/.test(ns)) leftovers.push(`netns ${ns}`);
  for (const l of [OUT_HOST_IF, MACVLAN_MASTER, ...BRIDGES]) if (quiet(['ip', 'link', 'show', l]).code === 0) leftovers.push(`link ${l}`);
  const rules = `${quiet(['iptables-save']).out}\n${quiet(['nft', 'list', 'ruleset']).out}`;
  if (/demo-a|demo-b|demo-icc|demo-p2p|tscni-demo|tscni-fdemo|10\.250\.0\.|10\.251\.0\.|10\.248\.254\.|10\.249\.250\./.test(rules)) leftovers.push('firewall rules mentioning the demo networks');
  for (const c of FIREWALL_CHAINS) if (!firewallChainsBefore.includes(c) && quiet(['iptables', '-w', '-t', 'filter', '-S', c]).code === 0) leftovers.push(`the firewall chain ${c}`);
  const sharedAfter = snapshotShared();
  for (const k of ['iptables', 'ip6tables', 'nft']) if (!sharedBefore[k] && sharedAfter[k]) leftovers.push(`portmap's shared ${k === 'nft' ? 'nft table' : `${k} CNI-HOSTPORT-* chains`}`);
  rmSync(work, { recursive: true, force: true });
  if (leftovers.length) bad(`left behind: ${leftovers.join(', ')}`);
  else ok('no namespace, link, firewall rule or state file of the demo is left; sysctls restored');
}

/** Pids of the host's name server for the demo's state (`tscni dns serve --dir <work>/state/dns`). */
function dnsServers() {
  const base = join(env.TSCNI_STATE_DIR, 'dns');
  const out = [];
  for (const d of readdirSync('/proc')) {
    if (!/^\d+$/.test(d)) continue;
    try {
      const argv = readFileSync(`/proc/${d}/cmdline`, 'utf8').split('\0');
      if (argv.includes('serve') && argv[argv.indexOf('--dir') + 1] === base) out.push(Number(d));
    } catch {
      // exited meanwhile
    }
  }
  return out;
}

/** The addresses `name` resolves to inside `pod` (getent hosts, through the pod's /etc files and name server). */
function resolve(pod, name) {
  const r = sh([tscni, 'exec', pod, '--', 'getent', 'hosts', name]);
  return r.code === 0 ? r.out.split('\n').map((l) => l.split(/\s+/)[0]) : [];
}

// ---- the scenarios --------------------------------------------------------

const addrOf = (pod, ifname) => {
  const r = quiet([tscni, 'exec', pod, '--', 'ip', '-4', '-o', 'addr', 'show', 'dev', ifname]);
  return /inet (\d+\.\d+\.\d+\.\d+)/.exec(r.out)?.[1];
};

async function scenarios() {
  step('A custom network with its own subnet and gateway (bridge + host-local)');
  console.log(`   ${join(env.NETCONFPATH, '10-demo-a.conflist')}: bridge ${BRIDGES[0]}, subnet 10.250.0.0/24, gateway 10.250.0.1, ipMasq`);
  const web = cli('up', 'demo-a', 'web');
  check(web.code === 0, 'tscni up created pod "web" on demo-a', web.err);
  const gw = quiet(['ip', '-4', '-o', 'addr', 'show', 'dev', BRIDGES[0]]).out;
  check(gw.includes('10.250.0.1/24'), `the gateway 10.250.0.1/24 is on bridge ${BRIDGES[0]}`);
  const webIp = addrOf('web', 'eth0');
  check(webIp?.startsWith('10.250.0.'), `web's eth0 has ${webIp} from the subnet`);
  cli('inspect', 'web');

  step('Two pods ping each other through the bridge');
  cli('up', 'demo-a', 'db');
  const dbIp = addrOf('db', 'eth0');
  check(sh([tscni, 'exec', 'web', '--', 'ping', '-c', '2', '-W', '2', dbIp ?? '']).code === 0, `web pings db (${dbIp})`);

  step('A pod reaches an "outside" host through MASQUERADE');
  console.log('   the outside host is its own namespace on a veth: host 10.252.0.1 <-> outside 10.252.0.2');
  await startServer(`/run/netns/${OUT_NS}`, 8000, "'you are '+q.socket.remoteAddress.replace('::ffff:','')");
  const seen = inPod('web', fetchCode('http://10.252.0.2:8000/'));
  check(seen.code === 0 && seen.out.includes('you are 10.252.0.1'), `the outside host sees the host's address 10.252.0.1, not the pod's ${webIp}`, seen.out || seen.err);

  step('Publish a port: -p 8080:80 to an HTTP server in a pod');
  const app = cli('up', 'demo-a', 'app', '-p', '8080:80');
  check(app.code === 0, 'tscni up app -p 8080:80', app.err);
  await startServer('/run/netns/app', 80, "'hello from the app pod'");
  const viaLocal = sh([node, '-e', fetchCode('http://127.0.0.1:8080/')]);
  check(viaLocal.out === 'hello from the app pod', 'the host fetches http://127.0.0.1:8080/ and gets the pod\'s page', viaLocal.err);
  const viaPod = inPod('db', fetchCode('http://10.250.0.1:8080/'));
  check(viaPod.out === 'hello from the app pod', 'another pod reaches the published port on the host address 10.250.0.1:8080', viaPod.err);
  cli('inspect', 'app');

  step('Container mode: a second container in the same network namespace');
  cli('up', 'demo-a', 'sidecar', '--network', 'container:app');
  const side = inPod('sidecar', fetchCode('http://127.0.0.1:80/'));
  check(side.out === 'hello from the app pod', 'the sidecar reaches the app on 127.0.0.1:80 (shared namespace)', side.err);
  check(addrOf('sidecar', 'eth0') === addrOf('app', 'eth0'), 'sidecar and app see the same eth0 and address');

  step('None mode: loopback only');
  cli('up', 'demo-none', 'lonely');
  const links = quiet([tscni, 'exec', 'lonely', '--', 'ip', '-o', 'link', 'show']).out.split('\n').filter(Boolean);
  check(links.length === 1 && links[0].includes('lo:') && links[0].includes('UP'), 'the only interface is lo, and it is up');
  check(sh([tscni, 'exec', 'lonely', '--', 'ping', '-c', '1', '-W', '1', '127.0.0.1']).code === 0, 'ping 127.0.0.1 works inside');
  check(quiet([tscni, 'exec', 'lonely', '--', 'ping', '-c', '1', '-W', '1', '10.250.0.1']).code !== 0, 'nothing else is reachable (no route to 10.250.0.1)');

  step('A second NIC on a second network');
  const second = cli('up', 'demo-b', 'web');
  check(second.code === 0, 'tscni up demo-b web gives web an eth1', second.err);
  const eth1 = addrOf('web', 'eth1');
  check(eth1?.startsWith('10.251.0.'), `web's eth1 has ${eth1} on demo-b (eth0 keeps ${addrOf('web', 'eth0')})`);
  cli('up', 'demo-b', 'other');
  const otherIp = addrOf('other', 'eth0');
  check(sh([tscni, 'exec', 'web', '--', 'ping', '-c', '1', '-W', '2', otherIp ?? '']).code === 0, `web reaches "other" (${otherIp}) over its second NIC`);

  step('Isolation between the two networks');
  console.log('   both conflists chain the firewall plugin with ingressPolicy "same-bridge" (Docker\'s isolation between user-defined networks)');
  const cross = sh([tscni, 'exec', 'other', '--', 'ping', '-c', '1', '-W', '1', dbIp ?? '']);
  check(cross.code !== 0, `"other" on demo-b cannot reach db (${dbIp}) on demo-a`);
  const back = sh([tscni, 'exec', 'db', '--', 'ping', '-c', '1', '-W', '1', otherIp ?? '']);
  check(back.code !== 0, `db on demo-a cannot reach "other" (${otherIp}) on demo-b`);
  check(quiet([tscni, 'exec', 'db', '--', 'ping', '-c', '1', '-W', '2', webIp ?? '']).code === 0, `inside demo-a, db still reaches web (${webIp})`);
  const out2 = inPod('other', fetchCode('http://10.252.0.2:8000/'));
  check(out2.code === 0 && out2.out.includes('you are 10.252.0.1'), '"other" still reaches the outside host (masqueraded)', out2.out || out2.err);
  const fwd = quiet(['iptables', '-w', '-t', 'filter', '-S', 'CNI-ISOLATION-STAGE-1']).out.split('\n').filter((l) => l.includes('tscni-demo'));
  for (const l of fwd) console.log(`   ${l}`);

  step('Isolation inside one network (--icc=false) with a published port');
  console.log(`   ${join(env.NETCONFPATH, '40-demo-icc.conflist')}: bridge ${BRIDGES[2]}, 10.248.254.0/24, firewall ingressPolicy "isolated"`);
  check(cli('up', 'demo-icc', 'iso1', '-p', '8081:80').code === 0, 'tscni up demo-icc iso1 -p 8081:80');
  check(cli('up', 'demo-icc', 'iso2').code === 0, 'tscni up demo-icc iso2');
  await startServer('/run/netns/iso1', 80, "'hello from iso1'");
  const iso1Ip = addrOf('iso1', 'eth0');
  check(sh([tscni, 'exec', 'iso2', '--', 'ping', '-c', '1', '-W', '1', iso1Ip ?? '']).code !== 0, `iso2 cannot reach iso1 (${iso1Ip}) on the same bridge`);
  check(quiet([tscni, 'exec', 'iso2', '--', 'ping', '-c', '1', '-W', '2', '10.248.254.1']).code === 0, 'iso2 still reaches its gateway 10.248.254.1');
  const pub = sh([node, '-e', fetchCode('http://127.0.0.1:8081/')]);
  check(pub.out === 'hello from iso1', 'the published port answers from the host: http://127.0.0.1:8081/', pub.err);
  const pubOut = quiet(['ip', 'netns', 'exec', OUT_NS, node, '-e', fetchCode('http://10.252.0.1:8081/')]);
  check(pubOut.out === 'hello from iso1', 'and from the outside host: http://10.252.0.1:8081/', pubOut.err);

  step('Point-to-point links: two pods on ptp, no bridge (seed 004)');
  console.log(`   ${join(env.NETCONFPATH, '50-demo-p2p.conflist')}: ptp, 10.249.250.0/24; each pod gets a /32 and a veth whose host end routes to it`);
  check(cli('up', 'demo-p2p', 'p2p1').code === 0, 'tscni up demo-p2p p2p1');
  check(cli('up', 'demo-p2p', 'p2p2').code === 0, 'tscni up demo-p2p p2p2');
  const p2p1Ip = addrOf('p2p1', 'eth0');
  const p2p2Ip = addrOf('p2p2', 'eth0');
  const p2pRoute = quiet(['ip', '-4', '-o', 'route', 'show', `${p2p1Ip}/32`]).out;
  check(/dev veth/.test(p2pRoute), `the host routes ${p2p1Ip}/32 to p2p1's veth (no bridge)`, p2pRoute);
  check(sh([tscni, 'exec', 'p2p1', '--', 'ping', '-c', '2', '-W', '2', p2p2Ip ?? '']).code === 0, `p2p1 (${p2p1Ip}) pings p2p2 (${p2p2Ip}) through the host`);
  const p2pOut = inPod('p2p2', fetchCode('http://10.252.0.2:8000/'));
  check(p2pOut.code === 0 && p2pOut.out.includes('you are 10.252.0.1'), 'p2p2 reaches the outside host, masqueraded', p2pOut.out || p2pOut.err);

  step('macvlan: pods with their own MAC on the lan (seed 001)');
  console.log(`   ${join(env.NETCONFPATH, '60-demo-macvlan.conflist')}: macvlan bridge mode on ${MACVLAN_MASTER}, a veth to the demo's lan (the outside host answers at 10.252.10.254)`);
  check(cli('up', 'demo-macvlan', 'mac1').code === 0, 'tscni up demo-macvlan mac1');
  check(cli('up', 'demo-macvlan', 'mac2').code === 0, 'tscni up demo-macvlan mac2');
  const mac1Ip = addrOf('mac1', 'eth0');
  const mac2Ip = addrOf('mac2', 'eth0');
  const macOf = (pod) => /link\/ether ([0-9a-f:]{17})/.exec(quiet([tscni, 'exec', pod, '--', 'ip', '-o', 'link', 'show', 'eth0']).out)?.[1];
  const masterMac = /link\/ether ([0-9a-f:]{17})/.exec(quiet(['ip', '-o', 'link', 'show', MACVLAN_MASTER]).out)?.[1];
  check(macOf('mac1') !== undefined && macOf('mac1') !== masterMac && macOf('mac1') !== macOf('mac2'), `each pod has its own MAC (${macOf('mac1')}, ${macOf('mac2')}), not the master's`);
  check(sh([tscni, 'exec', 'mac1', '--', 'ping', '-c', '2', '-W', '2', mac2Ip ?? '']).code === 0, `mac1 (${mac1Ip}) pings mac2 (${mac2Ip}) on the lan`);
  check(sh([tscni, 'exec', 'mac1', '--', 'ping', '-c', '1', '-W', '2', '10.252.10.254']).code === 0, 'mac1 pings the lan host 10.252.10.254 directly (no NAT, no bridge)');

  step("Docker-style networks with names: network create, the name server, --alias, --link, --hostname");
  check(cli('network', 'create', 'demo-names', '--subnet', '10.247.253.0/24').code === 0, 'tscni network create demo-names: a conflist with bridge, host-local, portmap, firewall, tuning and dnsname');
  check(cli('up', 'demo-names', 'web1', '--alias', 'www', '--hostname', 'web1.example').code === 0, 'tscni up demo-names web1 --alias www --hostname web1.example');
  check(cli('up', 'demo-names', 'web2', '--link', 'web1:w').code === 0, 'tscni up demo-names web2 --link web1:w');
  const web1Ip = addrOf('web1', 'eth0');
  const resolv = sh([tscni, 'exec', 'web2', '--', 'cat', '/etc/resolv.conf']).out;
  check(resolv.includes('nameserver 10.247.253.1') && resolv.includes('search dns.podman'), "web2's resolv.conf points at the network's name server on its gateway 10.247.253.1");
  check(resolve('web2', 'web1')[0] === web1Ip, `web2 resolves web1 to ${web1Ip} (the name server)`);
  check(resolve('web2', 'www.dns.podman')[0] === web1Ip, "and web1's alias www, as www.dns.podman");
  check(resolve('web2', 'w')[0] === web1Ip, "and the --link alias w (web2's /etc/hosts)");
  check(sh([tscni, 'exec', 'web2', '--', 'ping', '-c', '1', '-W', '2', 'web1']).code === 0, 'web2 pings web1 by name');
  check(sh([tscni, 'exec', 'web1', '--', 'hostname']).out === 'web1.example', "web1's hostname is web1.example (its own UTS namespace)");
  check(cli('network', 'create', 'demo-names2', '--subnet', '10.247.254.0/24').code === 0, 'a second network, demo-names2');
  check(cli('up', 'demo-names2', 'stranger').code === 0, 'tscni up demo-names2 stranger');
  check(resolve('stranger', 'web1').length === 0 && resolve('stranger', 'web1.dns.podman').length === 0, 'stranger, on demo-names2, does not learn the names of demo-names');
  check(resolve('stranger', 'stranger')[0] === addrOf('stranger', 'eth0'), 'but resolves the names of its own network');
  const status = cli('dns', 'status');
  const servers = dnsServers();
  check(servers.length === 1 && (status.out.match(new RegExp(`running \\(pid ${servers[0]}\\)`, 'g')) ?? []).length === 2, `one name server for the host (pid ${servers[0]}) listens for both networks, each on its own gateway`);
  cli('network', 'inspect', 'demo-names');
  check(cli('down', 'stranger').code === 0 && cli('network', 'rm', 'demo-names2').code === 0, 'the last pod of demo-names2 goes, then the network (tscni network rm)');
  check(dnsServers().length === 1 && resolve('web2', 'web1')[0] === web1Ip, 'the name server stays for demo-names');

  step('cnitool-style verbs on the same attachments');
  const cid = JSON.parse(readFileSync(join(env.TSCNI_STATE_DIR, 'pods', 'db.json'), 'utf8')).attachments[0].containerId;
  console.log(`   tscni up uses cnitool's container ID for /run/netns/db: ${cid}`);
  check(cli('check', 'demo-a', '/run/netns/db').code === 0, 'tscni check demo-a /run/netns/db passes against the cached result');
  check(cli('status', 'demo-a').code === 0, 'tscni status demo-a: the plugins can take new pods');
}

// ---- main -----------------------------------------------------------------

if (process.getuid?.() !== 0) {
  console.error('demo: run as root (it creates network namespaces, bridges and firewall rules)');
  process.exit(1);
}
ensureTools();
for (const pod of PODS) {
  if (existsSync(`/run/netns/${pod}`)) {
    console.error(`demo: a network namespace named ${pod} already exists; the demo will not touch it. Remove it or run the demo elsewhere.`);
    process.exit(1);
  }
}
for (const k of SYSCTLS) savedSysctls.set(k, quiet(['sysctl', '-n', k]).out);
sharedBefore = snapshotShared();
firewallChainsBefore = FIREWALL_CHAINS.filter((c) => quiet(['iptables', '-w', '-t', 'filter', '-S', c]).code === 0);

let crashed;
try {
  writeConfigs();
  createOutsideHost();
  await scenarios();
  await overlayStep({ enabled: overlay, step, show, ok, bad, check, sh, tscni, node });
} catch (e) {
  crashed = e;
  bad(`the demo stopped: ${e.stack ?? e}`);
} finally {
  teardown();
}
console.log('');
for (const g of gaps) console.log(`known gap: ${g}`);
if (failures.length) {
  console.log(`\x1b[31mdemo FAILED: ${failures.length} check(s)\x1b[0m`);
  for (const f of failures) console.log(` - ${f}`);
  process.exitCode = 1;
} else if (!crashed) {
  console.log('\x1b[32mdemo passed: every step verified, host left as found\x1b[0m');
}
