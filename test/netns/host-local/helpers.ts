/**
 * Helpers for the host-local executable tests. They run dist/bin/host-local
 * (and Debian's reference /usr/lib/cni/host-local) exactly like a runtime:
 * env + stdin, one JSON document on stdout. State lives in a temp dataDir per
 * test. ADD/CHECK need a real network namespace in CNI_NETNS: a private one
 * held by an `unshare --net sleep` child we start and kill by pid; it has no
 * links besides lo and is never attached to anything.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { binPath } from '../../helpers/plugin.ts';

export const REFERENCE = '/usr/lib/cni/host-local';
export const NET = 'hltest';

export interface Call {
  command: string;
  containerId?: string;
  ifname?: string;
  args?: string;
  config: unknown;
  env?: Record<string, string>;
}

export interface Output {
  code: number;
  stdout: string;
  stderr: string;
  json: Record<string, unknown> | undefined;
}

let holder: ChildProcess | undefined;
let holderPath = '';

/** A private network namespace path, created once per test file. */
export function netnsPath(): string {
  if (holder) return holderPath;
  const child = spawn('unshare', ['--net', 'sleep', '3600'], { stdio: 'ignore' });
  holder = child;
  holderPath = `/proc/${child.pid}/ns/net`;
  const own = statSync('/proc/self/ns/net').ino;
  for (let i = 0; i < 500; i++) {
    try {
      if (statSync(holderPath).ino !== own) return holderPath;
    } catch {
      // not started yet
    }
    spawnSync('sleep', ['0.01']);
  }
  throw new Error('unshare --net did not start');
}

export function stopNetns(): void {
  if (holder?.pid) {
    try {
      process.kill(holder.pid, 'SIGKILL');
    } catch {
      // already gone
    }
  }
  holder = undefined;
}

function env(call: Call): Record<string, string> {
  const e: Record<string, string> = {
    PATH: process.env.PATH ?? '/usr/sbin:/usr/bin:/sbin:/bin',
    CNI_COMMAND: call.command,
    CNI_PATH: '/nonexistent',
  };
  if (call.command === 'ADD' || call.command === 'CHECK' || call.command === 'DEL') {
    e.CNI_CONTAINERID = call.containerId ?? 'c1';
    e.CNI_IFNAME = call.ifname ?? 'eth0';
    if (call.command !== 'DEL') e.CNI_NETNS = netnsPath();
  }
  if (call.args !== undefined) e.CNI_ARGS = call.args;
  return { ...e, ...call.env };
}

function parse(stdout: string): Record<string, unknown> | undefined {
  try {
    return stdout.trim() ? (JSON.parse(stdout) as Record<string, unknown>) : undefined;
  } catch {
    return undefined;
  }
}

/** Run ours (default) or the reference synchronously. */
export function run(call: Call, bin = binPath('host-local')): Output {
  const r = spawnSync(bin, [], { env: env(call), input: JSON.stringify(call.config), encoding: 'utf8' });
  if (r.error) throw r.error;
  return { code: r.status ?? -1, stdout: r.stdout, stderr: r.stderr, json: parse(r.stdout) };
}

export function runOk(call: Call, bin?: string): Output {
  const out = run(call, bin);
  if (out.code !== 0) throw new Error(`${call.command} ${call.containerId ?? ''} failed (${out.code}): ${out.stdout} ${out.stderr}`);
  return out;
}

/** Spawn without waiting; the child is returned so a test can kill it. */
export function start(call: Call, bin = binPath('host-local')): { child: ChildProcess; done: Promise<Output> } {
  const child = spawn(bin, [], { env: env(call), stdio: ['pipe', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout?.on('data', (d: Buffer) => (stdout += d.toString()));
  child.stderr?.on('data', (d: Buffer) => (stderr += d.toString()));
  child.stdin?.on('error', () => {}); // killed before reading stdin
  child.stdin?.end(JSON.stringify(call.config));
  const done = new Promise<Output>((resolve) => {
    child.on('close', (code, signal) => resolve({ code: code ?? (signal ? -1 : 0), stdout, stderr, json: parse(stdout) }));
  });
  return { child, done };
}

export function tempDataDir(): string {
  return mkdtempSync(join(tmpdir(), 'tscni-hl-'));
}

export function removeDir(dir: string | undefined): void {
  if (dir) rmSync(dir, { recursive: true, force: true });
}

export function netConf(dataDir: string, ipam: Record<string, unknown>, extra: Record<string, unknown> = {}, cniVersion = '1.0.0'): Record<string, unknown> {
  return { cniVersion, name: NET, type: 'bridge', ipam: { type: 'host-local', dataDir, ...ipam }, ...extra };
}

/** Files of the network dir, excluding our own bookkeeping if `plain`. */
export function listNet(dataDir: string, plain = false): string[] {
  let names: string[];
  try {
    names = readdirSync(join(dataDir, NET));
  } catch {
    return [];
  }
  return names.filter((n) => !plain || !n.startsWith('.tscni-')).sort();
}

/** Reservation files (names that are addresses) with their content. */
export function reservations(dataDir: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const n of listNet(dataDir, true)) {
    if (n === 'lock' || n.startsWith('last_reserved_ip.')) continue;
    out[n] = readFileSync(join(dataDir, NET, n), 'utf8');
  }
  return out;
}

export function readNet(dataDir: string, name: string): string {
  return readFileSync(join(dataDir, NET, name), 'utf8');
}

export function ipsOf(out: Output): string[] {
  const ips = (out.json?.ips as Array<{ address: string }> | undefined) ?? [];
  return ips.map((i) => i.address);
}

/** All lines of our attachment index buckets, sorted. */
export function indexLines(dataDir: string): string[] {
  return listNet(dataDir)
    .filter((n) => n.startsWith('.tscni-idx-'))
    .flatMap((n) => readNet(dataDir, n).split('\n'))
    .filter((l) => l !== '')
    .sort();
}
