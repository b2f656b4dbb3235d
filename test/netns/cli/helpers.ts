/**
 * The runner CLI under test: dist/bin/tscni with its own NETCONFPATH, result
 * cache, pod state and host-local data dir in a temporary directory, bridges
 * named tc*, subnets in 10.243.0.0/16, network names tscni-tc-*.
 */
import { spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { tryRun } from '../../helpers/netns.ts';
import { BIN_DIR, binPath } from '../../helpers/plugin.ts';

export const rand = () => randomBytes(3).toString('hex');

export interface CliEnv {
  dir: string;
  netDir: string;
  cacheDir: string;
  stateDir: string;
  ipamDir: string;
  env: Record<string, string>;
}

const envs: CliEnv[] = [];
const bridges = new Set<string>();
const pods = new Set<string>();

export function newCliEnv(): CliEnv {
  const dir = mkdtempSync(join(tmpdir(), 'tscni-tc-'));
  const e: CliEnv = {
    dir,
    netDir: join(dir, 'net.d'),
    cacheDir: join(dir, 'cache'),
    stateDir: join(dir, 'state'),
    ipamDir: join(dir, 'ipam'),
    env: {},
  };
  mkdirSync(e.netDir);
  e.env = {
    PATH: process.env.PATH ?? '/usr/sbin:/usr/bin:/sbin:/bin',
    NETCONFPATH: e.netDir,
    CNI_PATH: BIN_DIR,
    CNI_CACHE_DIR: e.cacheDir,
    TSCNI_STATE_DIR: e.stateDir,
  };
  envs.push(e);
  return e;
}

export interface CliOut {
  code: number;
  stdout: string;
  stderr: string;
}

export function tscni(e: CliEnv, args: string[], extraEnv: Record<string, string> = {}): CliOut {
  const r = spawnSync(binPath('tscni'), args, { env: { ...e.env, ...extraEnv }, encoding: 'utf8' });
  if (r.error) throw r.error;
  return { code: r.status ?? -1, stdout: r.stdout, stderr: r.stderr };
}

export function tscniOk(e: CliEnv, args: string[], extraEnv: Record<string, string> = {}): CliOut {
  const r = tscni(e, args, extraEnv);
  if (r.code !== 0) throw new Error(`tscni ${args.join(' ')} failed (${r.code}): ${r.stdout} ${r.stderr}`);
  return r;
}

export interface NetSpec {
  name: string;
  bridge: string;
  subnet: string;
}

/** A bridge + host-local network written as a conflist into the env's NETCONFPATH. */
export function writeBridgeNet(
  e: CliEnv,
  opts: { version?: string; subnet?: string; ipMasq?: boolean; extraPlugins?: unknown[]; file?: string; capabilities?: Record<string, boolean> } = {},
): NetSpec {
  const id = rand();
  const spec: NetSpec = { name: `tscni-tc-${id}`, bridge: `tc${id}`, subnet: opts.subnet ?? '10.243.1.0/24' };
  bridges.add(spec.bridge);
  const doc = {
    cniVersion: opts.version ?? '1.1.0',
    name: spec.name,
    plugins: [
      {
        type: 'bridge',
        bridge: spec.bridge,
        isGateway: true,
        ipMasq: opts.ipMasq ?? false,
        ...(opts.capabilities ? { capabilities: opts.capabilities } : {}),
        ipam: { type: 'host-local', dataDir: e.ipamDir, ranges: [[{ subnet: spec.subnet }]], routes: [{ dst: '0.0.0.0/0' }] },
      },
      ...(opts.extraPlugins ?? []),
    ],
  };
  writeFileSync(join(e.netDir, opts.file ?? `50-${spec.name}.conflist`), JSON.stringify(doc, null, 2));
  return spec;
}

/** A pod name for `tscni up` (it is also the netns name). */
export function podName(): string {
  const n = `tscni-tc-${rand()}`;
  pods.add(n);
  return n;
}

export function reservations(e: CliEnv, net: NetSpec): string[] {
  const d = join(e.ipamDir, net.name);
  return existsSync(d) ? readdirSync(d).filter((f) => /^\d+\.\d+\.\d+\.\d+$/.test(f)) : [];
}

export function cacheFiles(e: CliEnv): string[] {
  const d = join(e.cacheDir, 'results');
  return existsSync(d) ? readdirSync(d) : [];
}

export function hostVethsOn(bridge: string): string[] {
  const d = `/sys/class/net/${bridge}/brif`;
  return existsSync(d) ? readdirSync(d) : [];
}

/** iptables nat rules that carry one of our network names. */
export function natRulesOfTests(): string[] {
  return tryRun(['iptables-save', '-t', 'nat']).stdout.split('\n').filter((l) => l.includes('tscni-tc-'));
}

export function cleanupCli(): void {
  for (const e of envs.splice(0)) {
    // Let the runner undo what it did first; then sweep by name.
    for (const p of existsSync(join(e.stateDir, 'pods')) ? readdirSync(join(e.stateDir, 'pods')) : []) {
      tscni(e, ['down', p.replace(/\.json$/, '')]);
    }
    rmSync(e.dir, { recursive: true, force: true });
  }
  for (const p of pods) {
    if (existsSync(`/run/netns/${p}`)) tryRun(['ip', 'netns', 'del', p]);
  }
  pods.clear();
  for (const b of bridges) tryRun(['ip', 'link', 'del', b]);
  bridges.clear();
  for (const l of natRulesOfTests()) {
    const m = /-j (CNI-[0-9a-f]{24})/.exec(l);
    if (l.startsWith('-A POSTROUTING')) {
      const spec = l.slice(3).match(/(?:[^\s"]+|"(?:\\.|[^"\\])*")+/g) ?? [];
      tryRun(['iptables', '-w', '-t', 'nat', '-D', ...spec.map((w) => (w.startsWith('"') ? (JSON.parse(w) as string) : w))]);
    }
    if (m?.[1]) {
      tryRun(['iptables', '-w', '-t', 'nat', '-F', m[1]]);
      tryRun(['iptables', '-w', '-t', 'nat', '-X', m[1]]);
    }
  }
}
