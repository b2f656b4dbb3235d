/**
 * A cross-process lock file (host-local per network, portmap per host).
 *
 * Why not flock: Node has no flock(2), and emulating it by spawning
 * `flock` would cost a process per call and still not hold the lock for us.
 * So we use a lock file of our own, `.tscni-lock`, holding "<pid> <start time>"
 * of the holder:
 *   - acquire = write a private temp file with that content, then link() it to
 *     `.tscni-lock`. link() fails with EEXIST while someone holds the lock and,
 *     unlike O_CREAT|O_EXCL + write, never leaves an empty lock file behind.
 *   - a holder that died (no /proc/<pid>, a different start time because the
 *     pid was reused, or a zombie) is detected and its lock stolen, so a
 *     kill -9 never wedges the network. Stealing happens under a second, tiny
 *     lock (`.tscni-lock-steal`) so two waiters cannot both remove the lock
 *     and one of them delete the other's fresh lock.
 *   - waiting is bounded; then the call fails with code 11 (try again later).
 *
 * Uniqueness of addresses never depends on this lock: every reservation is an
 * exclusive create (link() of a complete file), exactly what the reference
 * relies on. The lock only serialises round-robin state (last_reserved_ip,
 * our attachment index) between our own processes. The reference flock()s
 * the `lock` file instead; we cannot take that lock, so with both plugins
 * running at once the worst case is a less even round-robin, never a
 * duplicate address.
 */
import { closeSync, linkSync, openSync, readFileSync, statSync, unlinkSync, writeSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { CniError, ErrorCode } from './cni/errors.ts';

export const LOCK_FILE = '.tscni-lock';
export const STEAL_FILE = '.tscni-lock-steal';
const STEAL_STALE_MS = 10_000;

function sleepMs(ms: number): void {
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);
}

/** Field 22 of /proc/<pid>/stat (start time in clock ticks), or undefined when the process is gone or a zombie. */
export function processStartTime(pid: number): string | undefined {
  let stat: string;
  try {
    stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  } catch {
    return undefined;
  }
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  if (fields[0] === 'Z' || fields[0] === 'X') return undefined;
  return fields[19];
}

/** The pid in a lock temp file name ".tscni-tmp-lock-<pid>-<random>". */
export function lockTempPid(name: string): number | undefined {
  const m = /^\.tscni-tmp-lock-(\d+)-/.exec(name);
  return m ? Number(m[1]) : undefined;
}

function holderIsAlive(content: string): boolean {
  const m = /^(\d+) (\d+)$/.exec(content.trim());
  if (!m) return false;
  return processStartTime(Number(m[1])) === m[2];
}

function errCode(e: unknown): string | undefined {
  return (e as NodeJS.ErrnoException).code;
}

export class FileLock {
  private readonly dir: string;
  private readonly path: string;
  private readonly identity: string;
  /** Nesting depth: acquire inside acquire (portmap's parallel IPv4/IPv6 setup) holds until the outermost release. */
  private depth = 0;

  constructor(dir: string) {
    this.dir = dir;
    this.path = join(dir, LOCK_FILE);
    this.identity = `${process.pid} ${processStartTime(process.pid) ?? '0'}`;
  }

  private tryCreate(): boolean {
    const tmp = join(this.dir, `.tscni-tmp-lock-${process.pid}-${Math.random().toString(36).slice(2)}`);
    writeFileSync(tmp, this.identity, { mode: 0o600 });
    try {
      linkSync(tmp, this.path);
      return true;
    } catch (e) {
      // ENOENT: a GC removed our temp as stale (pid reuse); just try again.
      if (errCode(e) === 'EEXIST' || errCode(e) === 'ENOENT') return false;
      throw e;
    } finally {
      try {
        unlinkSync(tmp);
      } catch {
        // Somebody's cleanup got there first: the temp only ever held our identity.
      }
    }
  }

  /** Remove the lock if its holder `seen` is dead and it is still the same lock; true when removed. */
  private trySteal(seen: string): boolean {
    const steal = join(this.dir, STEAL_FILE);
    let fd: number;
    try {
      fd = openSync(steal, 'wx', 0o600);
    } catch (e) {
      if (errCode(e) !== 'EEXIST') throw e;
      try {
        // A thief killed inside the microsecond-long steal section: its marker is stale.
        if (Date.now() - statSync(steal).mtimeMs > STEAL_STALE_MS) unlinkSync(steal);
      } catch {
        // Gone already.
      }
      return false;
    }
    try {
      writeSync(fd, this.identity);
      let now: string;
      try {
        now = readFileSync(this.path, 'utf8');
      } catch {
        return true; // released meanwhile: free to take
      }
      if (now !== seen || holderIsAlive(now)) return false;
      unlinkSync(this.path);
      return true;
    } finally {
      closeSync(fd);
      unlinkSync(steal);
    }
  }

  acquire(timeoutMs = 30_000): void {
    if (this.depth > 0) {
      this.depth++;
      return;
    }
    const deadline = Date.now() + timeoutMs;
    let delay = 1;
    for (;;) {
      if (this.tryCreate()) {
        this.depth = 1;
        return;
      }
      let holder = '';
      try {
        holder = readFileSync(this.path, 'utf8');
      } catch (e) {
        if (errCode(e) === 'ENOENT') continue; // released between link and read: retry at once
        throw e;
      }
      // A dead holder's lock is removed; if another waiter is busy stealing it, wait like for a live one.
      if (!holderIsAlive(holder) && this.trySteal(holder)) continue;
      if (Date.now() > deadline) {
        throw new CniError(ErrorCode.TryAgainLater, `timed out after ${timeoutMs} ms waiting for the lock ${this.path}`, `held by process "${holder.trim()}" (pid and start time)`);
      }
      sleepMs(delay);
      delay = Math.min(delay * 2, 20);
    }
  }

  release(): void {
    if (this.depth === 0) return;
    this.depth--;
    if (this.depth > 0) return;
    try {
      // Only remove the lock if it is still ours (it is unless we were presumed dead).
      if (readFileSync(this.path, 'utf8') === this.identity) unlinkSync(this.path);
    } catch {
      // Already gone: nothing to release.
    }
  }
}
