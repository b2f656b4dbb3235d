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
import { BIN_DIR, binPath } from '../../helpers/plugin.ts';
import { removeLeftoverRules, sameAsBefore, snapshotFirewall } from './helpers.ts';

const dir = mkdtempSync(join(tmpdir(), 'tscni-tf-reload-'));
const id = randomBytes(3).toString('hex');
const nets = [
  { name: `tscni-tf-r${id}-a`, bridge: `tfra${id}`, subnet: '10.248.241.0/24' },
  { name: `tscni-tf-r${id}-b`, bridge: `tfrb${id}`, subnet: '10.248.242.0/24' },
];
const pods = [`tfr-a-${id}`, `tfr-b-${id}`];
const env = { PATH: process.env.PATH ?? '/usr/sbin:/usr/bin:/sbin:/bin', NETCONFPATH: join(dir, 'net.d'), CNI_PATH: BIN_DIR, CNI_CACHE_DIR: join(dir, 'cache'), TSCNI_STATE_DIR: join(dir, 'state') };
const before = snapshotFirewall();
const port = 32000 + Math.floor(Math.random() * 500);

const tscni = (...args: string[]) => {
  const r = spawnSync(binPath('tscni'), args, { env, encoding: 'utf8' });
  return { code: r.status ?? -1, out: r.stdout + r.stderr };
};
const inPod = (pod: string, argv: string[]) => tryRun(['ip', 'netns', 'exec', pod, ...argv]);

afterAll(() => {
  for (const p of pods) if (tryRun(['ip', 'netns', 'list']).stdout.includes(p)) tscni('down', p);
  for (const p of pods) tryRun(['ip', 'netns', 'del', p]);
  removeLeftoverRules();
  for (const n of nets) tryRun(['ip', 'link', 'del', n.bridge]);
  rmSync(dir, { recursive: true, force: true });
});

/** Delete every filter and nat rule that names our networks, bridges or subnets (a flush of our rules only). */
function flushOurRules(): number {
  let n = 0;
  for (const table of ['filter', 'nat']) {
    for (const l of tryRun(['iptables-save', '-t', table]).stdout.split('\n')) {
      if (!l.startsWith('-A ') || !/10\.248\.24[12]\.|tfr[ab]|tscni-tf-r/.test(l)) continue;
      const words = [...l.slice(3).matchAll(/"((?:[^"\\]|\\.)*)"|(\S+)/g)].map((m) => (m[1] !== undefined ? m[1].replace(/\\(.)/g, '$1') : (m[2] as string)));
      if (tryRun(['iptables', '-w', '-t', table, '-D', ...words]).code === 0) n++;
    }
  }
  return n;
}

const fetchCode = `fetch('http://127.0.0.1:${port}/',{signal:AbortSignal.timeout(2000)}).then(r=>r.text()).then(t=>console.log(t.trim()),()=>process.exit(1))`;

it('reload re-applies masquerade, published ports and isolation after a flush; check reports without changing', async () => {
  mkdirSync(env.NETCONFPATH, { recursive: true });
  nets.forEach((n, i) => {
    const list = {
      cniVersion: '1.0.0',
      name: n.name,
      plugins: [
        { type: 'bridge', bridge: n.bridge, isGateway: true, ipMasq: true, ipMasqBackend: 'iptables', ipam: { type: 'host-local', dataDir: join(dir, 'ipam'), ranges: [[{ subnet: n.subnet }]], routes: [{ dst: '0.0.0.0/0' }] } },
        { type: 'portmap', capabilities: { portMappings: true }, backend: 'iptables', stateDir: join(dir, 'portmap') },
        { type: 'firewall', backend: 'iptables', ingressPolicy: 'same-bridge', stateDir: join(dir, 'firewall') },
      ],
    };
    writeFileSync(join(env.NETCONFPATH, `${i}.conflist`), JSON.stringify(list));
  });
  expect(tscni('up', nets[0]!.name, pods[0]!, '-p', `${port}:80`).code).toBe(0);
  expect(tscni('up', nets[1]!.name, pods[1]!).code).toBe(0);
  const server = spawnSync('sh', ['-c', `ip netns exec ${pods[0]} ${process.execPath} -e "require('node:http').createServer((q,s)=>s.end('hi')).listen(80)" >/dev/null 2>&1 & echo $!`], { encoding: 'utf8' });
  const serverPid = Number(server.stdout.trim());
  try {
    await new Promise((r) => setTimeout(r, 300));
    const ipA = '10.248.241.2';
    const fetchHost = () => spawnSync(process.execPath, ['-e', fetchCode], { encoding: 'utf8' }).stdout.trim();
    expect(fetchHost()).toBe('hi');
    expect(inPod(pods[1]!, ['ping', '-c', '1', '-W', '1', ipA]).code).not.toBe(0);
    const ok = tscni('firewall', 'check');
    expect(ok.code, ok.out).toBe(0);

    expect(flushOurRules()).toBeGreaterThan(5);
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
    const findings = JSON.parse(again.out) as { kind: string; state: string }[];
    expect(findings.filter((f) => f.state !== 'ok')).toEqual([]);
    expect(new Set(findings.map((f) => f.kind))).toEqual(new Set(['masquerade', 'portmap', 'firewall']));
    // Idempotent: a second reload changes nothing.
    expect(tscni('firewall', 'reload').out).not.toContain('reapplied');
  } finally {
    if (serverPid > 0) process.kill(serverPid);
  }
  for (const p of pods) expect(tscni('down', p).code).toBe(0);
  expect(sameAsBefore(before, snapshotFirewall())).toBe(true);
  expect(tryRun(['iptables-save', '-t', 'nat']).stdout).not.toMatch(/10\.248\.24[12]\.|tscni-tf-r/);
});
