/**
 * The name server's state (default /run/tscni/dns, a tmpfs: names vanish with
 * the pods on reboot). One server serves every network of the host (as
 * aardvark-dns does); each network has its own directory:
 *
 *   server.pid                    the host's server (written once it runs)
 *   server.log                    the server's stderr
 *   .locks/server.lock            held to start or stop the server
 *   .locks/<network>.lock         held by ADD/DEL/GC of the network
 *   <network>/network.json        gateways (where the server listens for it) and domainName
 *   <network>/records/<cid>-<if>.json  one file per attachment: name, aliases, addresses
 *   <network>/server.pid          the server's pid, written by the server once it listens
 *                                 on this network's gateways (what ADD waits for)
 *
 * The plugin writes every file atomically (temp + rename), so the server
 * never reads a torn record, and a killed server or plugin leaves nothing
 * half-written. The server re-reads a network's records/ when its mtime
 * changes, and the set of networks on SIGHUP (sent by the plugin) and every
 * second.
 */
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { FileLock } from '../../lib/file-lock.ts';
import { writeFileAtomic } from '../../lib/fs.ts';

export interface NameRecord {
  containerId: string;
  ifName: string;
  /** The pod's name (K8S_POD_NAME, else the container ID). */
  name: string;
  aliases: string[];
  /** Addresses without prefix length. */
  ips: string[];
}

export interface NetworkInfo {
  network: string;
  gateways: string[];
  domainName: string;
}

/** The state directory of all networks (the base): $TSCNI_DNS_DIR, else $TSCNI_STATE_DIR/dns, else /run/tscni/dns. */
export function dnsBaseFor(env: Record<string, string | undefined>): string {
  return env.TSCNI_DNS_DIR || join(env.TSCNI_STATE_DIR || '/run/tscni', 'dns');
}

/** The state directory of `network`: `<base>/<network>`. */
export function dnsDirFor(env: Record<string, string | undefined>, network: string): string {
  return join(dnsBaseFor(env), network);
}

/** A file name for an attachment that cannot escape the directory. */
export function recordFileName(containerId: string, ifName: string): string {
  return `${`${containerId}-${ifName}`.replace(/[^a-zA-Z0-9_.-]/g, '_')}.json`;
}

export function writeNetworkInfo(dir: string, info: NetworkInfo): void {
  mkdirSync(join(dir, 'records'), { recursive: true, mode: 0o755 });
  writeFileAtomic(join(dir, 'network.json'), `${JSON.stringify(info)}\n`, { mode: 0o644 });
}

export function readNetworkInfo(dir: string): NetworkInfo | undefined {
  try {
    return JSON.parse(readFileSync(join(dir, 'network.json'), 'utf8')) as NetworkInfo;
  } catch {
    return undefined;
  }
}

export function writeRecord(dir: string, r: NameRecord): void {
  mkdirSync(join(dir, 'records'), { recursive: true, mode: 0o755 });
  writeFileAtomic(join(dir, 'records', recordFileName(r.containerId, r.ifName)), `${JSON.stringify(r)}\n`, { mode: 0o644 });
}

export function deleteRecord(dir: string, containerId: string, ifName: string): void {
  rmSync(join(dir, 'records', recordFileName(containerId, ifName)), { force: true });
}

/** Every record of the network; unreadable files (a temp file mid-rename) are skipped. */
export function readRecords(dir: string): NameRecord[] {
  let names: string[];
  try {
    names = readdirSync(join(dir, 'records')).filter((n) => n.endsWith('.json')).sort();
  } catch {
    return [];
  }
  const out: NameRecord[] = [];
  for (const n of names) {
    try {
      out.push(JSON.parse(readFileSync(join(dir, 'records', n), 'utf8')) as NameRecord);
    } catch {
      // removed between readdir and read, or not ours: not a record
    }
  }
  return out;
}

/** Whether the network has any record (a directory listing: no record is read). */
export function hasRecords(dir: string): boolean {
  try {
    return readdirSync(join(dir, 'records')).some((n) => n.endsWith('.json'));
  } catch {
    return false;
  }
}

/** The records directory's mtime (ms), 0 when missing: the server's reload trigger. */
export function recordsStamp(dir: string): number {
  try {
    return statSync(join(dir, 'records')).mtimeMs;
  } catch {
    return 0;
  }
}

/** `<dir>/server.pid`: of the base, the host's server; of a network's directory, the server serving it. */
export function pidFile(dir: string): string {
  return join(dir, 'server.pid');
}

/** What the server listens for, as one string: the server writes it into a network's pid file, ADD compares it. */
export function networkSig(info: Pick<NetworkInfo, 'gateways' | 'domainName'>): string {
  return JSON.stringify({ gateways: info.gateways, domainName: info.domainName });
}

/** The names of the networks with state in `base` (directories holding a network.json), sorted. */
export function networksIn(base: string): string[] {
  let names: string[];
  try {
    names = readdirSync(base);
  } catch {
    return [];
  }
  return names.filter((n) => !n.startsWith('.') && existsSync(join(base, n, 'network.json'))).sort();
}

function argvOf(pid: number): string[] | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    if (/\) [ZX] /.test(stat)) return undefined;
    return readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0');
  } catch {
    return undefined;
  }
}

/** The state directory a `tscni dns serve` process serves: its `--dir`, else what its environment names. */
function baseOfServer(pid: number, argv: string[]): string | undefined {
  const i = argv.indexOf('--dir');
  if (i > 0) return argv[i + 1];
  try {
    const env: Record<string, string> = {};
    for (const kv of readFileSync(`/proc/${pid}/environ`, 'utf8').split('\0')) {
      const eq = kv.indexOf('=');
      if (eq > 0) env[kv.slice(0, eq)] = kv.slice(eq + 1);
    }
    return dnsBaseFor(env);
  } catch {
    return undefined;
  }
}

function isServeArgv(argv: string[]): boolean {
  const i = argv.indexOf('serve');
  return i > 0 && argv[i - 1] === 'dns';
}

/** Whether `pid` is a live `tscni dns serve` of the state directory `base` (not a recycled pid, not a zombie). */
export function isServer(pid: number, base: string): boolean {
  const argv = argvOf(pid);
  return argv !== undefined && isServeArgv(argv) && baseOfServer(pid, argv) === base;
}

/**
 * Every live `tscni dns serve` of `base` in /proc but `except`: normally none
 * or one; more after a hand-started one, and the per-network servers of
 * tscni before the host-wide one (argv `--network NAME`), which ADD stops.
 */
export function findServers(base: string, except = process.pid): number[] {
  const out: number[] = [];
  for (const d of readdirSync('/proc')) {
    if (!/^\d+$/.test(d) || Number(d) === except) continue;
    if (isServer(Number(d), base)) out.push(Number(d));
  }
  return out;
}

/** The pid of the host's running server for `base` (its pid file, verified; else found in /proc, and the pid file repaired). */
export function runningServer(base: string): number | undefined {
  const pid = pidIn(pidFile(base));
  if (pid !== undefined && isServer(pid, base)) return pid;
  const found = findServers(base).find((p) => !argvOf(p)?.includes('--network'));
  if (found && existsSync(base)) writeFileAtomic(pidFile(base), `${found}\n`, { mode: 0o644 });
  return found;
}

function pidIn(file: string): number | undefined {
  try {
    const pid = Number(readFileSync(file, 'utf8').split('\n')[0]);
    return Number.isInteger(pid) && pid > 0 ? pid : undefined;
  } catch {
    return undefined;
  }
}

/**
 * The server that serves the network in `dir`: the pid its pid file names when
 * that is a live server of the base and, given `sig`, it listens as `sig` says
 * (the network's gateways and domain, as in network.json).
 */
export function servedBy(dir: string, sig?: string): number | undefined {
  let text: string;
  try {
    text = readFileSync(pidFile(dir), 'utf8');
  } catch {
    return undefined;
  }
  const [first = '', second = ''] = text.split('\n');
  const pid = Number(first);
  if (!Number.isInteger(pid) || pid <= 0 || (sig !== undefined && second !== sig)) return undefined;
  return isServer(pid, dirname(dir)) ? pid : undefined;
}

/** SIGTERM `pid` (a server of `base`), SIGKILL after 2 s; returns once it is gone. */
function stopPid(pid: number, base: string): void {
  const signal = (sig: NodeJS.Signals) => {
    try {
      process.kill(pid, sig);
    } catch {
      // already gone: nothing to stop
    }
  };
  signal('SIGTERM');
  const end = Date.now() + 2000;
  while (isServer(pid, base) && Date.now() < end) Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 10);
  if (isServer(pid, base)) signal('SIGKILL');
  while (isServer(pid, base)) Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 5);
}

/**
 * Stop every server of `base` (by verified pid: SIGTERM, SIGKILL after 2 s) and
 * wait until they are gone, so a server started right after this never finds
 * a port still taken. Forgets the pid file.
 */
export function stopServer(base: string): void {
  const pids = new Set(findServers(base));
  const own = runningServer(base);
  if (own) pids.add(own);
  for (const pid of pids) stopPid(pid, base);
  rmSync(pidFile(base), { force: true });
}

/** Stop the per-network servers tscni ran before the host-wide one (argv `--network`): they hold the gateways' port 53. */
export function stopLegacyServers(base: string): void {
  for (const pid of findServers(base)) if (argvOf(pid)?.includes('--network')) stopPid(pid, base);
}

/** Ask the host's server to re-read the networks now (SIGHUP); false when none runs. */
export function nudgeServer(base: string): boolean {
  const pid = runningServer(base);
  if (!pid) return false;
  try {
    process.kill(pid, 'SIGHUP');
    return true;
  } catch {
    return false;
  }
}

function lockIn(base: string, name: string): FileLock {
  const path = join(base, '.locks', `${name}.lock`);
  mkdirSync(dirname(path), { recursive: true, mode: 0o755 });
  return new FileLock(path);
}

/**
 * The network's lock, a file outside its directory (which the last DEL removes):
 * ADD's record + server start and DEL's record removal + cleanup never interleave.
 */
export function networkLock(dir: string): FileLock {
  return lockIn(dirname(dir), basename(dir));
}

/** `<base>/.locks/<network>.lock` (flock(2) on it: released with its holder, even by kill -9). */
export function lockPath(dir: string): string {
  return join(dirname(dir), '.locks', `${basename(dir)}.lock`);
}

/** `<base>/.locks/server.lock`: held to start the host's server or to stop it with the last network (taken after a network's lock, never before). */
export function serverLock(base: string): FileLock {
  return lockIn(base, 'server');
}

/**
 * A network is gone (its directory removed): stop the host's server when no
 * network is left, else tell it to close the network's sockets now.
 */
export function releaseNetwork(base: string): void {
  serverLock(base).with(() => {
    if (networksIn(base).length === 0) stopServer(base);
    else nudgeServer(base);
  });
}

/** With the network's last record gone: remove its directory (nothing stale is left for a network of the same name) and release it. Call under the network's lock. */
export function removeIfUnused(dir: string): boolean {
  if (hasRecords(dir)) return false;
  rmSync(dir, { recursive: true, force: true });
  releaseNetwork(dirname(dir));
  return true;
}
