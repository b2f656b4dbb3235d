/**
 * `tscni firewall check|reload` after the rules are flushed: two networks
 * (bridge with ipMasq + portmap + firewall same-bridge) made with `tscni up`,
 * then every rule of ours deleted from the filter and nat tables (only ours:
 * this is a shared machine, so no `iptables -F`). `check` names what is
 * missing and changes nothing; `reload` brings back the published port and
 * the isolation; a second `check` finds everything; `tscni down` leaves
 * nothing.
 */
import { spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, expect, it } from 'vitest';
import { tryRun } from '../../helpers/netns.ts';
import { removeSharedIfNew, snapshotShared } from '../../helpers/portmap-shared.ts';
import { BIN_DIR, binPath } from '../../helpers/plugin.ts';
import { removeLeftoverRules, sameAsBefore, snapshotFirewall } from './helpers.ts';

const dir = mkdtempSync(join(tmpdir(), 'tscni-tf-reload-'));
const id = randomBytes(3).toString('hex');
type Backend = 'iptables' | 'nftables';
const SUBNET: Record<Backend, number> = { iptables: 241, nftables: 243 };
const netsOf = (b: Backend) => [
  { name: `tscni-tf-r${id}-${b[0]}a`, bridge: `tfr${b[0]}a${id}`, subnet: `10.248.${SUBNET[b]}.0/24` },
  { name: `tscni-tf-r${id}-${b[0]}b`, bridge: `tfr${b[0]}b${id}`, subnet: `10.248.${SUBNET[b] + 1}.0/24` },
];
const podsOf = (b: Backend) => [`tfr-${b[0]}a-${id}`, `tfr-${b[0]}b-${id}`];
const allNets = [...netsOf('iptables'), ...netsOf('nftables')];
const allPods = [...podsOf('iptables'), ...podsOf('nftables')];
const env = { PATH: process.env.PATH ?? '/usr/sbin:/usr/bin:/sbin:/bin', NETCONFPATH: join(dir, 'net.d'), CNI_PATH: BIN_DIR, CNI_CACHE_DIR: join(dir, 'cache'), TSCNI_STATE_DIR: join(dir, 'state') };
const before = snapshotFirewall();
// Shared scaffolding portmap (chains, nft table) and masquerade (nft table) keep (as the reference does): removed at the end only if this file made it.
const SHARED_NFT = ['cni_plugins_masquerade'];
const portmapShared = snapshotShared();
const sharedBefore = SHARED_NFT.filter((t) => tryRun(['nft', 'list', 'table', 'inet', t]).code === 0);

const tscni = (...args: string[]) => {
  const r = spawnSync(binPath('tscni'), args, { env, encoding: 'utf8' });
  return { code: r.status ?? -1, out: r.stdout + r.stderr };
};
const inPod = (pod: string, argv: string[]) => tryRun(['ip', 'netns', 'exec', pod, ...argv]);

afterAll(() => {
  for (const p of allPods) if (tryRun(['ip', 'netns', 'list']).stdout.includes(p)) tscni('down', p);
  for (const p of allPods) tryRun(['ip', 'netns', 'del', p]);
  removeLeftoverRules();
  removeSharedIfNew(portmapShared);
  for (const t of SHARED_NFT) if (!sharedBefore.includes(t)) tryRun(['nft', 'delete', 'table', 'inet', t]);
  for (const n of allNets) tryRun(['ip', 'link', 'del', n.bridge]);
  rmSync(dir, { recursive: true, force: true });
});

/** Delete every filter and nat rule that names our networks, bridges or subnets (a flush of our rules only). */
function flushOurRules(): number {
  let n = 0;
  for (const table of ['filter', 'nat']) {
    for (const l of tryRun(['iptables-save', '-t', table]).stdout.split('\n')) {
      if (!l.startsWith('-A ') || !/10\.248\.24[12]\.|tfri[ab]|tscni-tf-r\w+-i/.test(l)) continue;
      const words = [...l.slice(3).matchAll(/"((?:[^"\\]|\\.)*)"|(\S+)/g)].map((m) => (m[1] !== undefined ? m[1].replace(/\\(.)/g, '$1') : (m[2] as string)));
      if (tryRun(['iptables', '-w', '-t', table, '-D', ...words]).code === 0) n++;
    }
  }
  return n;
}

/** nftables: delete our elements and masquerade rules, and flush the isolation chain (ours only, but for that chain, which is rewritten from the records). */
function flushOurNft(ips: string[], port: number, nets: { name: string }[]): number {
  let n = 0;
  const ok = (argv: string[]) => (tryRun(argv).code === 0 ? n++ : n);
  for (const ip of ips) ok(['nft', 'delete', 'element', 'inet', 'tscni_firewall', 'pods4', `{ ${ip} }`]);
  ok(['nft', 'flush', 'chain', 'inet', 'tscni_firewall', 'isolation']);
  ok(['nft', 'delete', 'element', 'inet', 'tscni_portmap', 'dnat4_any', `{ tcp . ${port} }`]);
  for (const l of tryRun(['nft', '-a', 'list', 'chain', 'inet', 'cni_plugins_masquerade', 'masq_checks']).stdout.split('\n')) {
    const h = /# handle (\d+)/.exec(l);
    if (h && nets.some((x) => l.includes(`net: ${x.name},`))) ok(['nft', 'delete', 'rule', 'inet', 'cni_plugins_masquerade', 'masq_checks', 'handle', h[1] as string]);
  }
  return n;
}

const fetchCodeFor = (port: number) => `fetch('http://127.0.0.1:${port}/',{signal:AbortSignal.timeout(2000)}).then(r=>r.text()).then(t=>console.log(t.trim()),()=>process.exit(1))`;

it.each(['iptables', 'nftables'] as Backend[])('%s: reload re-applies masquerade, published ports and isolation after a flush; check reports without changing', async (backend) => {
  const nets = netsOf(backend);
  const pods = podsOf(backend);
  const port = 32000 + Math.floor(Math.random() * 500) + (backend === 'nftables' ? 500 : 0);
  const fetchCode = fetchCodeFor(port);
  mkdirSync(env.NETCONFPATH, { recursive: true });
  nets.forEach((n, i) => {
    const list = {
      cniVersion: '1.0.0',
      name: n.name,
      plugins: [
        { type: 'bridge', bridge: n.bridge, isGateway: true, ipMasq: true, ipMasqBackend: backend, ipam: { type: 'host-local', dataDir: join(dir, 'ipam'), ranges: [[{ subnet: n.subnet }]], routes: [{ dst: '0.0.0.0/0' }] } },
        { type: 'portmap', capabilities: { portMappings: true }, backend, stateDir: join(dir, 'portmap') },
        { type: 'firewall', backend, ingressPolicy: 'same-bridge', stateDir: join(dir, 'firewall') },
      ],
    };
    writeFileSync(join(env.NETCONFPATH, `${backend}-${i}.conflist`), JSON.stringify(list));
  });
  expect(tscni('up', nets[0]!.name, pods[0]!, '-p', `${port}:80`).code).toBe(0);
  expect(tscni('up', nets[1]!.name, pods[1]!).code).toBe(0);
  const server = spawnSync('sh', ['-c', `ip netns exec ${pods[0]} ${process.execPath} -e "require('node:http').createServer((q,s)=>s.end('hi')).listen(80)" >/dev/null 2>&1 & echo $!`], { encoding: 'utf8' });
  const serverPid = Number(server.stdout.trim());
  try {
    await new Promise((r) => setTimeout(r, 300));
    const ipA = `10.248.${SUBNET[backend]}.2`;
    const fetchHost = () => spawnSync(process.execPath, ['-e', fetchCode], { encoding: 'utf8' }).stdout.trim();
    expect(fetchHost()).toBe('hi');
    expect(inPod(pods[1]!, ['ping', '-c', '1', '-W', '1', ipA]).code).not.toBe(0);
    const ok = tscni('firewall', 'check');
    expect(ok.code, ok.out).toBe(0);

    expect(backend === 'iptables' ? flushOurRules() : flushOurNft([ipA, `10.248.${SUBNET[backend] + 1}.2`], port, nets)).toBeGreaterThan(3);
    expect(fetchHost()).toBe('');
    expect(inPod(pods[1]!, ['ping', '-c', '1', '-W', '1', ipA]).code).toBe(0);

    const checked = tscni('firewall', 'check');
    expect(checked.code).toBe(1);
    for (const kind of ['masquerade', 'portmap', 'firewall']) expect(checked.out).toMatch(new RegExp(`missing +${kind} `));
    expect(fetchHost()).toBe(''); // check changed nothing

    const reload = tscni('firewall', 'reload');
    expect(reload.code, reload.out).toBe(0);
    expect(reload.out).toContain('reapplied');
    expect(fetchHost()).toBe('hi');
    expect(inPod(pods[1]!, ['ping', '-c', '1', '-W', '1', ipA]).code).not.toBe(0);
    const again = tscni('firewall', 'check', '--json');
    expect(again.code, again.out).toBe(0);
    // Only this test's attachments: the default state dirs may hold other (stale) records of this machine.
    const findings = (JSON.parse(again.out) as { kind: string; state: string; attachment: string }[]).filter((f) => nets.some((n) => f.attachment.startsWith(`${n.name}/`)));
    expect(findings.filter((f) => f.state !== 'ok')).toEqual([]);
    expect(new Set(findings.map((f) => f.kind))).toEqual(new Set(['masquerade', 'portmap', 'firewall']));
    // Idempotent: a second reload changes nothing.
    expect(tscni('firewall', 'reload').out).not.toContain('reapplied');
  } finally {
    if (serverPid > 0) process.kill(serverPid);
  }
  for (const p of pods) expect(tscni('down', p).code).toBe(0);
  expect(sameAsBefore(before, snapshotFirewall())).toBe(true);
  expect(`${tryRun(['iptables-save', '-t', 'nat']).stdout}${tryRun(['nft', 'list', 'ruleset']).stdout}`).not.toMatch(new RegExp(`10\\.248\\.${SUBNET[backend]}\\.|10\\.248\\.${SUBNET[backend] + 1}\\.|tscni-tf-r${id}`));
});
