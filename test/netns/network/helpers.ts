/**
 * `tscni network` and names under test: dist/bin/tscni with its own
 * NETCONFPATH, cache, pod state and name-server state in a temporary
 * directory; networks tscni-n-*, pods (netns names) tn-*, bridges tn<hex><n>,
 * subnets from 10.246.0.0/16 and fd10:246::/48 (the CLI skips subnets that
 * host routes use, so a busy machine only shifts them). Name servers forward
 * nowhere (TSCNI_DNS_UPSTREAM=none): tests never depend on outside DNS.
 */
import { spawn, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { removeMasqueradeOf } from '../../helpers/masq-leftovers.ts';
import { tryRun } from '../../helpers/netns.ts';
import { BIN_DIR, binPath } from '../../helpers/plugin.ts';

export const rand = () => randomBytes(2).toString('hex');

export interface NetEnv {
  dir: string;
  netDir: string;
  stateDir: string;
  bridgePrefix: string;
  env: Record<string, string>;
  networks: Set<string>;
  pods: Set<string>;
}

const envs: NetEnv[] = [];

export function newNetEnv(extra: Record<string, string> = {}): NetEnv {
  const dir = mkdtempSync(join(tmpdir(), 'tscni-tn-'));
  const bridgePrefix = `tn${rand()}`;
  const e: NetEnv = { dir, netDir: join(dir, 'net.d'), stateDir: join(dir, 'state'), bridgePrefix, env: {}, networks: new Set(), pods: new Set() };
  mkdirSync(e.netDir);
  e.env = {
    PATH: process.env.PATH ?? '/usr/sbin:/usr/bin:/sbin:/bin',
    NETCONFPATH: e.netDir,
    CNI_PATH: BIN_DIR,
    CNI_CACHE_DIR: join(dir, 'cache'),
    TSCNI_STATE_DIR: e.stateDir,
    TSCNI_BRIDGE_PREFIX: bridgePrefix,
    TSCNI_SUBNET_POOL: '10.246.0.0/16',
    TSCNI_SUBNET_POOL6: 'fd10:246::/48',
    TSCNI_DNS_UPSTREAM: 'none',
    ...extra,
  };
  envs.push(e);
  return e;
}

export interface Out {
  code: number;
  stdout: string;
  stderr: string;
}

export function tscni(e: NetEnv, args: string[], extraEnv: Record<string, string> = {}): Out {
  const r = spawnSync(binPath('tscni'), args, { env: { ...e.env, ...extraEnv }, encoding: 'utf8', timeout: 60_000 });
  if (r.error) throw r.error;
  return { code: r.status ?? -1, stdout: r.stdout, stderr: r.stderr };
}

export function tscniOk(e: NetEnv, args: string[], extraEnv: Record<string, string> = {}): Out {
  const r = tscni(e, args, extraEnv);
  if (r.code !== 0) throw new Error(`tscni ${args.join(' ')} failed (${r.code}): ${r.stdout} ${r.stderr}`);
  return r;
}

/** Asynchronous tscni, for parallel calls. */
export function tscniAsync(e: NetEnv, args: string[]): Promise<Out> {
  return new Promise((resolve, reject) => {
    const c = spawn(binPath('tscni'), args, { env: e.env });
    let stdout = '';
    let stderr = '';
    c.stdout.on('data', (b: Buffer) => (stdout += b.toString()));
    c.stderr.on('data', (b: Buffer) => (stderr += b.toString()));
    c.on('error', reject);
    c.on('close', (code) => resolve({ code: code ?? -1, stdout, stderr }));
  });
}

export function networkName(): string {
  return `tscni-n-${rand()}`;
}

/** Create a network with `tscni network create`; returns its conflist. */
export function createNetwork(e: NetEnv, name: string, args: string[] = []): { name: string; conflist: { plugins: Record<string, unknown>[] } } {
  const r = tscniOk(e, ['network', 'create', name, '--json', ...args]);
  e.networks.add(name);
  return { name, conflist: (JSON.parse(r.stdout) as { conflist: { plugins: Record<string, unknown>[] } }).conflist };
}

export function podName(e: NetEnv): string {
  const n = `tn-${rand()}${rand()}`;
  e.pods.add(n);
  return n;
}

/** `getent hosts NAME` inside the pod (its net namespace, its /etc files): the addresses, or [] when not resolved. */
export function resolveIn(e: NetEnv, pod: string, name: string): string[] {
  const r = tscni(e, ['exec', pod, '--', 'getent', 'hosts', name]);
  if (r.code !== 0) return [];
  return r.stdout
    .trim()
    .split('\n')
    .filter(Boolean)
    .map((l) => l.split(/\s+/)[0] as string);
}

/** The pid the network's pid file names: the host's name server, once it listens for the network. */
export function serverPid(e: NetEnv, network: string): number | undefined {
  try {
    return Number(readFileSync(join(e.stateDir, 'dns', network, 'server.pid'), 'utf8').split('\n')[0]);
  } catch {
    return undefined;
  }
}

/** The env's name-server state directory (the server's --dir). */
export function dnsBase(e: NetEnv): string {
  return join(e.stateDir, 'dns');
}

export function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return !readFileSync(`/proc/${pid}/stat`, 'utf8').includes(') Z ');
  } catch {
    return false;
  }
}

/** Pids of `tscni dns serve --dir BASE` processes (by /proc cmdline, for cleanup and checks). */
export function serverPids(base: string): number[] {
  const out: number[] = [];
  for (const d of readdirSync('/proc')) {
    if (!/^\d+$/.test(d)) continue;
    try {
      const argv = readFileSync(`/proc/${d}/cmdline`, 'utf8').split('\0');
      if (argv.includes('serve') && argv.includes('dns') && argv[argv.indexOf('--dir') + 1] === base) out.push(Number(d));
    } catch {
      // exited meanwhile
    }
  }
  return out;
}

export function links(prefix: string): string[] {
  return readdirSync('/sys/class/net').filter((n) => n.startsWith(prefix));
}

/**
 * Undo everything: pods down, networks removed, servers stopped (by pid),
 * masquerade rules a failed DEL left, links, netns, dirs. Throws after the
 * cleanup when a DEL left masquerade rules, so a leak fails the test.
 */
export function cleanupNetEnvs(): void {
  const leaked: string[] = [];
  for (const e of envs.splice(0)) {
    for (const p of e.pods) if (existsSync(join(e.stateDir, 'pods', `${p}.json`))) tscni(e, ['down', p]);
    for (const n of e.networks) if (existsSync(join(e.netDir, `${n}.conflist`))) tscni(e, ['network', 'rm', '--force', n]);
    for (const pid of serverPids(dnsBase(e))) {
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        // already gone
      }
    }
    for (const n of e.networks) {
      rmSync(`/var/lib/cni/networks/${n}`, { recursive: true, force: true });
      leaked.push(...removeMasqueradeOf(n));
    }
    for (const p of e.pods) if (existsSync(`/run/netns/${p}`)) tryRun(['ip', 'netns', 'del', p]);
    for (const l of links(e.bridgePrefix)) tryRun(['ip', 'link', 'del', l]);
    rmSync(e.dir, { recursive: true, force: true });
  }
  if (leaked.length > 0) throw new Error(`pods down, yet their masquerade rules were left (now removed):\n${leaked.join('\n')}`);
}
