/**
 * The name server's state, one directory per network (default
 * /run/tscni/dns/<network>, a tmpfs: names vanish with the pods on reboot):
 *
 *   network.json            gateways (where the server listens) and domainName
 *   records/<cid>-<if>.json one file per attachment: name, aliases, addresses
 *   server.pid              the running server's pid (written by the server once bound)
 *   server.log              the server's stderr
 *
 * The plugin writes every file atomically (temp + rename), so the server
 * never reads a torn record, and a killed server or plugin leaves nothing
 * half-written. The server re-reads records/ whenever its mtime changes.
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

/** The state directory of `network`: $TSCNI_DNS_DIR, else $TSCNI_STATE_DIR/dns, else /run/tscni/dns. */
export function dnsDirFor(env: Record<string, string | undefined>, network: string): string {
  const base = env.TSCNI_DNS_DIR || join(env.TSCNI_STATE_DIR || '/run/tscni', 'dns');
  return join(base, network);
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

/** The records directory's mtime (ms), 0 when missing: the server's reload trigger. */
export function recordsStamp(dir: string): number {
  try {
    return statSync(join(dir, 'records')).mtimeMs;
  } catch {
    return 0;
  }
}

export function pidFile(dir: string): string {
  return join(dir, 'server.pid');
}

/** Whether `pid` is a live `tscni dns serve --network <network>` (not a recycled pid). */
export function isServer(pid: number, network: string): boolean {
  try {
    const argv = readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0');
    const i = argv.indexOf('serve');
    return i > 0 && argv[i - 1] === 'dns' && argv.includes(network) && !readFileSync(`/proc/${pid}/stat`, 'utf8').includes(') Z ');
  } catch {
    return false;
  }
}

/**
 * A live server of this network found in /proc (argv and its TSCNI_DNS_DIR),
 * for when the pid file is missing or names a dead process: two servers
 * started at once, one of them lost the port and left.
 */
export function findServer(dir: string, network: string, except = process.pid): number | undefined {
  const base = dirname(dir);
  for (const d of readdirSync('/proc')) {
    if (!/^\d+$/.test(d) || Number(d) === except || !isServer(Number(d), network)) continue;
    try {
      if (readFileSync(`/proc/${d}/environ`, 'utf8').split('\0').includes(`TSCNI_DNS_DIR=${base}`)) return Number(d);
    } catch {
      // exited meanwhile
    }
  }
  return undefined;
}

/** The pid of this network's running server, if one runs (the pid file is repaired when it was wrong). */
export function runningServer(dir: string, network: string): number | undefined {
  let pid = NaN;
  try {
    pid = Number(readFileSync(pidFile(dir), 'utf8').trim());
  } catch {
    // no pid file: look for a server below
  }
  if (Number.isInteger(pid) && pid > 0 && isServer(pid, network)) return pid;
  const found = findServer(dir, network);
  if (found && existsSync(dir)) writeFileAtomic(pidFile(dir), `${found}\n`, { mode: 0o644 });
  return found;
}

/**
 * Stop the network's server (SIGTERM, by its verified pid; SIGKILL after 2 s)
 * and wait until it is gone, so a server started right after this never finds
 * the port still taken. Forgets the pid file.
 */
export function stopServer(dir: string, network: string): void {
  const pid = runningServer(dir, network);
  if (pid) {
    const signal = (sig: NodeJS.Signals) => {
      try {
        process.kill(pid, sig);
      } catch {
        // already gone: nothing to stop
      }
    };
    signal('SIGTERM');
    const end = Date.now() + 2000;
    while (isServer(pid, network) && Date.now() < end) Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 10);
    if (isServer(pid, network)) signal('SIGKILL');
  }
  if (existsSync(pidFile(dir))) rmSync(pidFile(dir), { force: true });
}

/**
 * The network's lock, a file outside its directory (which the last DEL removes):
 * ADD's record + server start and DEL's record removal + cleanup never interleave.
 */
export function networkLock(dir: string): FileLock {
  const path = lockPath(dir);
  mkdirSync(dirname(path), { recursive: true, mode: 0o755 });
  return new FileLock(path);
}

/** `<base>/.locks/<network>.lock` (flock(2) on it: released with its holder, even by kill -9). */
export function lockPath(dir: string): string {
  return join(dirname(dir), '.locks', `${basename(dir)}.lock`);
}

/** With the last record gone: stop the server and remove the network's directory (nothing stale is left for a network of the same name). */
export function removeIfUnused(dir: string, network: string): boolean {
  if (readRecords(dir).length > 0) return false;
  stopServer(dir, network);
  rmSync(dir, { recursive: true, force: true });
  return true;
}
